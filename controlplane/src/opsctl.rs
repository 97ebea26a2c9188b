//! `opsctl`: the command line for people working with OPS. `ask` sends a question through the
//! pipeline and prints the answer blocks and the stage timeline; `plugin` builds, runs and
//! uploads WASM plugins.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use ops_proto::v1::asset_registry_client::AssetRegistryClient;
use ops_proto::v1::{PluginWorld, UploadPluginRequest};

use crate::cli::{Target, status_error, with_caller};
use crate::config::{Config, FlagOverrides};
use crate::plugins::{self, digest_of};

#[derive(Debug, Parser)]
#[command(
    name = "opsctl",
    version,
    about = "Work with an OPS control plane and its plugins"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Top,
}

#[derive(Debug, Subcommand)]
pub enum Top {
    /// Ask a question: prints the route, the answer blocks, the stage timeline and the trace id.
    Ask(AskArgs),
    /// Replay a recorded run from one stage (test mode): the stages before it are frozen.
    Replay(ReplayArgs),
    /// Compare two runs stage by stage (Inspector.DiffTraces).
    Diff(DiffArgs),
    /// Root-cause analysis of a run, or of what changed since a baseline (Inspector.Rca).
    Rca(RcaArgs),
    /// Run one stage alone on a baseline trace's recorded input (OpsService.StageTest).
    StageTest(StageTestArgs),
    /// Build, run locally and upload Mapping/Screen plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The trace to replay.
    pub trace: String,
    /// route_plan, validate, execute, compose or present.
    #[arg(long = "from")]
    pub from: String,
    /// `type:name@version` or `type:name@draft`; repeatable.
    #[arg(long = "override")]
    pub overrides: Vec<String>,
    #[command(flatten)]
    pub target: Target,
    /// Print the whole response as proto3 JSON instead.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    pub baseline: String,
    pub candidate: String,
    #[command(flatten)]
    pub target: Target,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RcaArgs {
    /// The trace to analyse (the candidate when --baseline is given).
    pub trace: String,
    /// Analyse why TRACE differs from this run instead.
    #[arg(long)]
    pub baseline: Option<String>,
    /// Most hypotheses to show (0: the server's default, 5).
    #[arg(long, default_value_t = 0)]
    pub max: u32,
    #[command(flatten)]
    pub target: Target,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StageTestArgs {
    /// The baseline trace whose recorded input of the stage is used.
    pub trace: String,
    /// route_plan, validate, execute, compose or present.
    #[arg(long)]
    pub stage: String,
    #[arg(long = "override")]
    pub overrides: Vec<String>,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// `cargo build` a plugin crate for wasm32-unknown-unknown and wrap it as a component.
    Build(BuildArgs),
    /// Wrap a core wasm module (built with the SDK) as a component.
    Componentize {
        module: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Run a plugin on a JSON input with the production sandbox: prints the output, the time
    /// and the peak memory.
    Run(RunArgs),
    /// Upload a component to a running opsd (AssetRegistry/UploadPlugin).
    Upload(UploadArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The plugin crate's Cargo.toml.
    #[arg(long, default_value = "Cargo.toml")]
    pub manifest_path: PathBuf,
    /// Where to write the component; default: next to the core module, `<name>.component.wasm`.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The component.
    pub wasm: PathBuf,
    /// `{"question": "...", "results": [ToolResult...], "config": {...}}` for a mapper,
    /// `{"blocks": [Block...], "config": {...}}` for a screen (proto3 JSON).
    #[arg(long)]
    pub input: PathBuf,
    /// opsd configuration whose `[plugins]` limits apply (defaults otherwise).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AskArgs {
    pub question: String,
    #[command(flatten)]
    pub target: Target,
    /// Reference time (RFC 3339) for "yesterday", "last week"…; now when omitted.
    #[arg(long)]
    pub as_of: Option<String>,
    /// all, config, metric, history, graph or document.
    #[arg(long, default_value = "all")]
    pub mode: String,
    /// Print the whole response as proto3 JSON instead.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UploadArgs {
    pub wasm: PathBuf,
    #[command(flatten)]
    pub target: Target,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Top::Replay(args) => replay(&args).await,
        Top::Diff(args) => diff(&args).await,
        Top::Rca(args) => rca(&args).await,
        Top::StageTest(args) => stage_test(&args).await,
        Top::Plugin(PluginCommand::Build(args)) => build(&args),
        Top::Plugin(PluginCommand::Componentize { module, output }) => {
            let component = componentize(
                &std::fs::read(&module).with_context(|| module.display().to_string())?,
            )?;
            std::fs::write(&output, &component)?;
            println!("{} {}", output.display(), digest_of(&component));
            Ok(())
        }
        Top::Plugin(PluginCommand::Run(args)) => run_plugin(&args),
        Top::Plugin(PluginCommand::Upload(args)) => upload(&args).await,
        Top::Ask(args) => ask(&args).await,
    }
}

/// The wit-bindgen core module -> a component (the module's custom sections carry the world).
pub fn componentize(module: &[u8]) -> anyhow::Result<Vec<u8>> {
    wit_component::ComponentEncoder::default()
        .module(module)?
        .validate(true)
        .encode()
        .context("wrap the module as a component")
}

fn build(args: &BuildArgs) -> anyhow::Result<()> {
    let output = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-unknown-unknown",
            "--message-format=json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(&args.manifest_path)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("run cargo")?;
    if !output.status.success() {
        bail!("cargo build failed ({})", output.status);
    }
    let modules: Vec<PathBuf> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "cdylib"))
        })
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| f.as_str().map(PathBuf::from))
        })
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    let [module] = modules.as_slice() else {
        bail!(
            "expected one cdylib .wasm from {}, found {modules:?}",
            args.manifest_path.display()
        );
    };
    let component = componentize(&std::fs::read(module)?)?;
    let out = args
        .output
        .clone()
        .unwrap_or_else(|| module.with_extension("component.wasm"));
    std::fs::write(&out, &component)?;
    println!(
        "{} {} ({} bytes)",
        out.display(),
        digest_of(&component),
        component.len()
    );
    Ok(())
}

fn run_plugin(args: &RunArgs) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref(), &FlagOverrides::default())?;
    let out = plugins::run_file(&config.plugins, &args.wasm, &args.input)?;
    println!("{}", serde_json::to_string_pretty(&out.output)?);
    eprintln!(
        "plugin {} ({}) {}\n  load+compile {:.1} ms, call {:.3} ms, peak memory {} KiB (limit {} KiB, cpu budget {} ms)",
        out.plugin,
        plugins::world_name(out.world),
        out.digest,
        out.compile_ms,
        out.call_ms,
        out.peak_memory_bytes / 1024,
        out.limits.memory_bytes / 1024,
        out.limits.cpu_budget_ms,
    );
    Ok(())
}

async fn upload(args: &UploadArgs) -> anyhow::Result<()> {
    let wasm = std::fs::read(&args.wasm).with_context(|| args.wasm.display().to_string())?;
    let mut client = AssetRegistryClient::connect(args.target.server.clone())
        .await
        .with_context(|| format!("connect to {}", args.target.server))?
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let request = with_caller(
        UploadPluginRequest {
            wasm,
            expected_world: PluginWorld::Unspecified as i32,
        },
        &args.target,
    )?;
    let response = client
        .upload_plugin(request)
        .await
        .map_err(status_error)?
        .into_inner();
    println!("{}", serde_json::to_string_pretty(&response)?);
    Ok(())
}

async fn ask(args: &AskArgs) -> anyhow::Result<()> {
    use ops_proto::v1::{AskMode, AskRequest};
    let mode = AskMode::from_str_name(&format!("ASK_MODE_{}", args.mode.to_uppercase()))
        .with_context(|| {
            format!(
                "--mode {:?}: expected all, config, metric, history, graph or document",
                args.mode
            )
        })?;
    let as_of = match &args.as_of {
        None => None,
        Some(text) => Some(ops_proto::convert::timestamp(
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .with_context(|| format!("--as-of {text:?}: expected RFC 3339"))?,
        )),
    };
    let mut client = ops_client(&args.target.server).await?;
    let request = with_caller(
        AskRequest {
            question: args.question.clone(),
            mode: mode as i32,
            as_of,
            ..Default::default()
        },
        &args.target,
    )?;
    let response = client
        .ask(request)
        .await
        .map_err(status_error)?
        .into_inner();
    show(args.json, &response, crate::pipeline::render::text)
}

/// A response as pretty JSON (`--json`) or as the terminal rendering.
fn show<T: serde::Serialize>(
    json: bool,
    response: &T,
    render: fn(&T) -> String,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(response)?);
    } else {
        print!("{}", render(response));
    }
    Ok(())
}

fn stage_named(name: &str) -> anyhow::Result<ops_proto::v1::Stage> {
    ops_proto::v1::Stage::from_str_name(&format!("STAGE_{}", name.to_uppercase()))
        .filter(|s| crate::model::stages::position(*s).is_some())
        .with_context(|| {
            format!("{name:?}: expected route_plan, validate, execute, compose or present")
        })
}

async fn inspector_client(
    server: &str,
) -> anyhow::Result<ops_proto::v1::inspector_client::InspectorClient<tonic::transport::Channel>> {
    Ok(
        ops_proto::v1::inspector_client::InspectorClient::connect(server.to_owned())
            .await
            .with_context(|| format!("connect to {server}"))?
            .max_decoding_message_size(64 << 20),
    )
}

async fn ops_client(
    server: &str,
) -> anyhow::Result<ops_proto::v1::ops_service_client::OpsServiceClient<tonic::transport::Channel>>
{
    Ok(
        ops_proto::v1::ops_service_client::OpsServiceClient::connect(server.to_owned())
            .await
            .with_context(|| format!("connect to {server}"))?
            .max_decoding_message_size(64 << 20),
    )
}

async fn replay(args: &ReplayArgs) -> anyhow::Result<()> {
    use ops_proto::v1::{AskRequest, Replay};
    let from = stage_named(&args.from)?;
    let mut client = ops_client(&args.target.server).await?;
    let request = with_caller(
        AskRequest {
            test_mode: true,
            asset_overrides: args.overrides.clone(),
            replay: Some(Replay {
                trace_id: args.trace.clone(),
                from_stage: from as i32,
            }),
            ..Default::default()
        },
        &args.target,
    )?;
    let response = client
        .ask(request)
        .await
        .map_err(status_error)?
        .into_inner();
    show(args.json, &response, crate::pipeline::render::text)
}

async fn diff(args: &DiffArgs) -> anyhow::Result<()> {
    use ops_proto::v1::DiffTracesRequest;
    let mut client = inspector_client(&args.target.server).await?;
    let request = with_caller(
        DiffTracesRequest {
            baseline_trace_id: args.baseline.clone(),
            candidate_trace_id: args.candidate.clone(),
        },
        &args.target,
    )?;
    let response = client
        .diff_traces(request)
        .await
        .map_err(status_error)?
        .into_inner();
    show(args.json, &response, crate::pipeline::render::diff)
}

async fn rca(args: &RcaArgs) -> anyhow::Result<()> {
    use ops_proto::v1::{DiffTracesRequest, RcaOptions, RcaRequest, rca_request};
    let mut client = inspector_client(&args.target.server).await?;
    let target = match &args.baseline {
        Some(baseline) => rca_request::Target::Diff(DiffTracesRequest {
            baseline_trace_id: baseline.clone(),
            candidate_trace_id: args.trace.clone(),
        }),
        None => rca_request::Target::TraceId(args.trace.clone()),
    };
    let request = with_caller(
        RcaRequest {
            target: Some(target),
            options: Some(RcaOptions {
                max_hypotheses: args.max,
                ..Default::default()
            }),
        },
        &args.target,
    )?;
    let response = client
        .rca(request)
        .await
        .map_err(status_error)?
        .into_inner();
    show(args.json, &response, crate::pipeline::render::rca)
}

async fn stage_test(args: &StageTestArgs) -> anyhow::Result<()> {
    use ops_proto::v1::StageTestRequest;
    let stage = stage_named(&args.stage)?;
    let mut client = ops_client(&args.target.server).await?;
    let request = with_caller(
        StageTestRequest {
            stage: stage as i32,
            baseline_trace_id: args.trace.clone(),
            asset_overrides: args.overrides.clone(),
            ..Default::default()
        },
        &args.target,
    )?;
    let response = client
        .stage_test(request)
        .await
        .map_err(status_error)?
        .into_inner();
    println!("{}", serde_json::to_string_pretty(&response)?);
    Ok(())
}
