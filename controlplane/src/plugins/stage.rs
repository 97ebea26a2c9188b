//! COMPOSE and PRESENT as stage contracts: typed input → typed output over the plugin host,
//! with the tenant's bound Mapping or Screen and the Policy's plugin limits.

use crate::model::snapshot::Snapshot;
use crate::model::stages::{ComposeInput, ComposeOutput, PresentInput, PresentOutput};

use super::limits::CallLimits;
use super::{PluginBlobs, PluginHost, PluginResult, convert};

fn limits(host: &PluginHost, snapshot: &Snapshot) -> CallLimits {
    CallLimits::resolve(
        host.config(),
        snapshot
            .policy_spec()
            .and_then(|p| p.plugin_limits.as_ref()),
    )
}

/// COMPOSE: tool results → answer blocks, by the bound Mapping (or the default mapper).
pub async fn compose(
    host: &PluginHost,
    blobs: &dyn PluginBlobs,
    snapshot: &Snapshot,
    input: &ComposeInput,
) -> PluginResult<ComposeOutput> {
    let results = input
        .results
        .iter()
        .map(convert::tool_result_from_pb)
        .collect();
    let out = host
        .compose(
            &snapshot.tenant,
            snapshot.mapping.as_ref().map(|m| &m.spec),
            &input.question,
            results,
            limits(host, snapshot),
            blobs,
        )
        .await?;
    Ok(ComposeOutput {
        blocks: out.output.iter().map(convert::block_to_pb).collect(),
        plugin: Some(out.report.to_proto()),
    })
}

/// PRESENT: answer blocks → screen model, by the bound Screen (or the default screen).
pub async fn present(
    host: &PluginHost,
    blobs: &dyn PluginBlobs,
    snapshot: &Snapshot,
    input: &PresentInput,
) -> PluginResult<PresentOutput> {
    let blocks = input
        .blocks
        .iter()
        .filter_map(convert::block_from_pb)
        .collect();
    let out = host
        .present(
            &snapshot.tenant,
            snapshot.screen.as_ref().map(|s| &s.spec),
            blocks,
            limits(host, snapshot),
            blobs,
        )
        .await?;
    Ok(PresentOutput {
        screen: Some(convert::screen_to_pb(&out.output)),
        plugin: Some(out.report.to_proto()),
    })
}
