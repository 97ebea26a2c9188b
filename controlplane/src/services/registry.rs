//! `ops.v1.AssetRegistry` over tonic: unwraps the caller context and the request, calls the
//! tonic-free [`Registry`] (previews through the pipeline), and maps errors once (`services::status`).

use ops_proto::v1::asset_registry_server::AssetRegistry;
use ops_proto::v1::*;
use tonic::{Request, Response, Status};

use crate::context::CallerContext;
use crate::execute::Executors;
use crate::pipeline::Pipeline;
use crate::plugins::PluginHost;
use crate::registry::{Registry, RegistryError};

#[derive(Clone)]
pub struct RegistryGrpc {
    registry: Registry,
    executors: Option<Executors>,
    plugins: PluginHost,
    /// None when `executors.mode = "off"`.
    pipeline: Option<Pipeline>,
}

impl RegistryGrpc {
    pub fn new(
        registry: Registry,
        executors: Option<Executors>,
        plugins: PluginHost,
        pipeline: Option<Pipeline>,
    ) -> Self {
        Self {
            registry,
            executors,
            plugins,
            pipeline,
        }
    }

    /// Previews run assets through the pipeline's guard and sidecars.
    fn pipeline(&self, rpc: &str) -> Result<&Pipeline, Status> {
        self.pipeline.as_ref().ok_or_else(|| {
            Status::failed_precondition(format!(
                "{rpc} runs assets on the executor sidecars, but executors.mode is \"off\": set it to \"spawn\" or \"connect\""
            ))
        })
    }

    fn executors(&self) -> Result<&Executors, Status> {
        self.executors.as_ref().ok_or_else(|| {
            Status::unavailable("this opsd runs without executor sidecars (executors disabled), so it cannot reach sources")
        })
    }
}

/// What an import changed: its published versions, or how many assets it wrote as drafts.
fn import_target(results: &[ImportResult]) -> String {
    let published: Vec<String> = results
        .iter()
        .filter(|r| r.version > 0)
        .map(|r| {
            let slug = AssetType::try_from(r.r#type)
                .map(crate::model::refs::type_slug)
                .unwrap_or("unknown");
            format!("{slug}:{}@{}", r.name, r.version)
        })
        .collect();
    if published.is_empty() {
        format!("{} files, none published", results.len())
    } else {
        published.join(", ")
    }
}

fn split<T>(request: Request<T>) -> Result<(CallerContext, T), Status> {
    let ctx = CallerContext::from_request(&request)?;
    Ok((ctx, request.into_inner()))
}

#[tonic::async_trait]
impl AssetRegistry for RegistryGrpc {
    async fn create_asset(
        &self,
        request: Request<CreateAssetRequest>,
    ) -> Result<Response<CreateAssetResponse>, Status> {
        let (ctx, req) = split(request)?;
        let asset = self
            .registry
            .create(&ctx, req.r#type, &req.name, req.content.unwrap_or_default())
            .await?;
        let target = super::asset_target(&asset);
        Ok(super::changed(
            CreateAssetResponse { asset: Some(asset) },
            target,
        ))
    }

    async fn update_draft(
        &self,
        request: Request<UpdateDraftRequest>,
    ) -> Result<Response<UpdateDraftResponse>, Status> {
        let (ctx, req) = split(request)?;
        let asset = self
            .registry
            .update_draft(
                &ctx,
                req.r#type,
                &req.name,
                req.expected_revision,
                req.content.unwrap_or_default(),
            )
            .await?;
        let target = super::asset_target(&asset);
        Ok(super::changed(
            UpdateDraftResponse { asset: Some(asset) },
            target,
        ))
    }

    async fn get_asset(
        &self,
        request: Request<GetAssetRequest>,
    ) -> Result<Response<GetAssetResponse>, Status> {
        let (ctx, req) = split(request)?;
        let asset = self
            .registry
            .get(&ctx, req.r#type, &req.name, req.selector)
            .await?;
        Ok(Response::new(GetAssetResponse { asset: Some(asset) }))
    }

    async fn list_assets(
        &self,
        request: Request<ListAssetsRequest>,
    ) -> Result<Response<ListAssetsResponse>, Status> {
        let (ctx, req) = split(request)?;
        let (assets, next_page_token) = self.registry.list(&ctx, req).await?;
        Ok(Response::new(ListAssetsResponse {
            assets,
            next_page_token,
        }))
    }

    async fn list_versions(
        &self,
        request: Request<ListVersionsRequest>,
    ) -> Result<Response<ListVersionsResponse>, Status> {
        let (ctx, req) = split(request)?;
        let (versions, next_page_token) = self
            .registry
            .list_versions(&ctx, req.r#type, &req.name, req.page_size, &req.page_token)
            .await?;
        Ok(Response::new(ListVersionsResponse {
            versions,
            next_page_token,
        }))
    }

    async fn diff_versions(
        &self,
        request: Request<DiffVersionsRequest>,
    ) -> Result<Response<DiffVersionsResponse>, Status> {
        let (ctx, req) = split(request)?;
        let changes = self
            .registry
            .diff(
                &ctx,
                req.r#type,
                &req.name,
                req.from_version,
                req.to_version,
            )
            .await?;
        Ok(Response::new(DiffVersionsResponse { changes }))
    }

    async fn validate_asset(
        &self,
        request: Request<ValidateAssetRequest>,
    ) -> Result<Response<ValidateAssetResponse>, Status> {
        let (ctx, req) = split(request)?;
        let (violations, resolved_references) = self
            .registry
            .validate(&ctx, req.r#type, &req.name, req.target)
            .await?;
        let valid = !violations.iter().any(|v| v.blocking);
        Ok(Response::new(ValidateAssetResponse {
            valid,
            violations,
            resolved_references,
        }))
    }

    async fn publish_asset(
        &self,
        request: Request<PublishAssetRequest>,
    ) -> Result<Response<PublishAssetResponse>, Status> {
        let (ctx, req) = split(request)?;
        // The gate asks questions, so it needs the pipeline; without executors it cannot run.
        let gate_run = match (&self.pipeline, AssetType::try_from(req.r#type)) {
            (Some(pipeline), Ok(t)) if t != AssetType::Unspecified => {
                let asset = format!("{}:{}", crate::model::refs::type_slug(t), req.name);
                pipeline
                    .publish_gate(&ctx, &asset, req.run_golden_set)
                    .await?
            }
            _ => None,
        };
        let asset = self
            .registry
            .publish(
                &ctx,
                req.r#type,
                &req.name,
                req.expected_revision,
                &req.note,
            )
            .await?;
        let target = super::asset_target(&asset);
        Ok(super::changed(
            PublishAssetResponse {
                asset: Some(asset),
                gate_run,
            },
            target,
        ))
    }

    async fn archive_asset(
        &self,
        request: Request<ArchiveAssetRequest>,
    ) -> Result<Response<ArchiveAssetResponse>, Status> {
        let (ctx, req) = split(request)?;
        let asset = self
            .registry
            .archive(&ctx, req.r#type, &req.name, req.expected_revision)
            .await?;
        let target = super::asset_target(&asset);
        Ok(super::changed(
            ArchiveAssetResponse { asset: Some(asset) },
            target,
        ))
    }

    async fn rollback_asset(
        &self,
        request: Request<RollbackAssetRequest>,
    ) -> Result<Response<RollbackAssetResponse>, Status> {
        let (ctx, req) = split(request)?;
        let asset = self
            .registry
            .rollback(
                &ctx,
                req.r#type,
                &req.name,
                req.expected_revision,
                req.to_version,
                &req.note,
            )
            .await?;
        let target = super::asset_target(&asset);
        Ok(super::changed(
            RollbackAssetResponse { asset: Some(asset) },
            target,
        ))
    }

    async fn list_audit_events(
        &self,
        request: Request<ListAuditEventsRequest>,
    ) -> Result<Response<ListAuditEventsResponse>, Status> {
        let (ctx, req) = split(request)?;
        let (events, next_page_token) = self
            .registry
            .audit(&ctx, req.r#type, &req.name, req.page_size, &req.page_token)
            .await?;
        Ok(Response::new(ListAuditEventsResponse {
            events,
            next_page_token,
        }))
    }

    async fn import_bundle(
        &self,
        request: Request<ImportBundleRequest>,
    ) -> Result<Response<ImportBundleResponse>, Status> {
        let (ctx, req) = split(request)?;
        // Publishing goes through the gate, which asks questions and so needs the pipeline.
        let (results, gate_run) = match &self.pipeline {
            Some(pipeline) if req.publish && !req.dry_run => {
                pipeline
                    .gated_import(&ctx, req.files, req.run_golden_set)
                    .await?
            }
            _ => (
                self.registry
                    .import(&ctx, req.files, req.publish, req.dry_run)
                    .await?,
                None,
            ),
        };
        let target = import_target(&results);
        Ok(super::changed(
            ImportBundleResponse { results, gate_run },
            target,
        ))
    }

    async fn export_bundle(
        &self,
        request: Request<ExportBundleRequest>,
    ) -> Result<Response<ExportBundleResponse>, Status> {
        let (ctx, req) = split(request)?;
        let format = BundleFormat::try_from(req.format).map_err(|_| {
            Status::from(RegistryError::invalid(
                "format",
                "request.format",
                "format must be BUNDLE_FORMAT_YAML or BUNDLE_FORMAT_JSON",
            ))
        })?;
        let files = self
            .registry
            .export(&ctx, &req.types, format, req.include_drafts)
            .await?;
        Ok(Response::new(ExportBundleResponse { files }))
    }

    async fn test_source(
        &self,
        request: Request<TestSourceRequest>,
    ) -> Result<Response<TestSourceResponse>, Status> {
        let executors = self.executors()?;
        let (ctx, req) = split(request)?;
        let response = self
            .registry
            .test_source(executors, &ctx, &req.name, req.draft)
            .await?;
        Ok(Response::new(response))
    }

    async fn scan_schema(
        &self,
        request: Request<ScanSchemaRequest>,
    ) -> Result<Response<ScanSchemaResponse>, Status> {
        let executors = self.executors()?;
        let (ctx, req) = split(request)?;
        Ok(Response::new(
            self.registry.scan_schema(executors, &ctx, req).await?,
        ))
    }

    async fn simulate_resolver(
        &self,
        request: Request<SimulateResolverRequest>,
    ) -> Result<Response<SimulateResolverResponse>, Status> {
        let (ctx, req) = split(request)?;
        let resolutions = self
            .registry
            .simulate_resolver(&ctx, &req.name, req.draft, &req.inputs)
            .await?;
        Ok(Response::new(SimulateResolverResponse { resolutions }))
    }

    async fn preview_query(
        &self,
        request: Request<PreviewQueryRequest>,
    ) -> Result<Response<PreviewQueryResponse>, Status> {
        let (ctx, req) = split(request)?;
        let pipeline = self.pipeline("PreviewQuery")?;
        Ok(Response::new(pipeline.preview_query(&ctx, req).await?))
    }

    async fn test_tool(
        &self,
        request: Request<TestToolRequest>,
    ) -> Result<Response<TestToolResponse>, Status> {
        let (ctx, req) = split(request)?;
        let pipeline = self.pipeline("TestTool")?;
        Ok(Response::new(pipeline.test_tool(&ctx, req).await?))
    }

    async fn upload_plugin(
        &self,
        request: Request<UploadPluginRequest>,
    ) -> Result<Response<UploadPluginResponse>, Status> {
        let (ctx, req) = split(request)?;
        let uploaded = self
            .registry
            .upload_plugin(&self.plugins, &ctx, req)
            .await?;
        let target = uploaded.plugin.as_ref().map_or_else(String::new, |p| {
            format!("plugin:{}@{} ({})", p.name, p.version, p.digest)
        });
        Ok(super::changed(uploaded, target))
    }

    async fn list_plugins(
        &self,
        request: Request<ListPluginsRequest>,
    ) -> Result<Response<ListPluginsResponse>, Status> {
        let (ctx, _) = split(request)?;
        let plugins = self.registry.list_plugins(&ctx).await?;
        Ok(Response::new(ListPluginsResponse { plugins }))
    }

    async fn preview_mapping(
        &self,
        request: Request<PreviewMappingRequest>,
    ) -> Result<Response<PreviewMappingResponse>, Status> {
        let (ctx, req) = split(request)?;
        Ok(Response::new(
            self.registry
                .preview_mapping(&self.plugins, &ctx, req)
                .await?,
        ))
    }

    async fn preview_screen(
        &self,
        request: Request<PreviewScreenRequest>,
    ) -> Result<Response<PreviewScreenResponse>, Status> {
        let (ctx, req) = split(request)?;
        Ok(Response::new(
            self.registry
                .preview_screen(&self.plugins, &ctx, req)
                .await?,
        ))
    }
}
