//! The gRPC adapters — the only layer that names `tonic::Status`: the pipeline's services
//! (`ops`), the registry's (`registry`), the one mapping of every service error to a status
//! (`status`), the alerts' (`alerts`), the API keys' (`api_keys`), the audit log's (`audit`)
//! and the regression watch's (here).

pub mod alerts;
pub mod api_keys;
pub mod audit;
pub mod ops;
pub mod registry;
mod status;

use ops_proto::v1::regression_server::Regression;
use ops_proto::v1::*;
use tonic::{Request, Response, Status};

use crate::audit::AuditTarget;
use crate::context::CallerContext;
use crate::pipeline::Pipeline;

/// A response naming what its change changed, for the change's audit record.
fn changed<T>(message: T, target: String) -> Response<T> {
    let mut response = Response::new(message);
    response.extensions_mut().insert(AuditTarget(target));
    response
}

/// `type:name@version` of an asset a change left (`@draft` for version 0).
fn asset_target(asset: &Asset) -> String {
    let slug = AssetType::try_from(asset.r#type)
        .map(crate::model::refs::type_slug)
        .unwrap_or("unknown");
    match asset.version {
        0 => format!("{slug}:{}@draft", asset.name),
        v => format!("{slug}:{}@{v}", asset.name),
    }
}

/// `ops.v1.Regression` over the pipeline: golden queries and regression runs.
#[derive(Debug, Clone)]
pub struct RegressionGrpc {
    /// None when `executors.mode = "off"`: nothing could be asked again.
    pipeline: Option<Pipeline>,
}

impl RegressionGrpc {
    pub fn new(pipeline: Option<Pipeline>) -> Self {
        Self { pipeline }
    }

    fn pipeline(&self) -> Result<&Pipeline, Status> {
        self.pipeline.as_ref().ok_or_else(|| {
            Status::failed_precondition(
                "regression runs ask questions, which needs the executor sidecars, but executors.mode is \"off\": set it to \"spawn\" or \"connect\"",
            )
        })
    }
}

#[tonic::async_trait]
impl Regression for RegressionGrpc {
    async fn create_golden_query(
        &self,
        request: Request<CreateGoldenQueryRequest>,
    ) -> Result<Response<CreateGoldenQueryResponse>, Status> {
        let ctx = CallerContext::from_request(&request)?;
        let golden = self
            .pipeline()?
            .create_golden_query(&ctx, request.into_inner())
            .await?;
        let target = format!("golden-query:{} ({})", golden.name, golden.id);
        Ok(changed(
            CreateGoldenQueryResponse {
                golden_query: Some(golden),
            },
            target,
        ))
    }

    async fn list_golden_queries(
        &self,
        request: Request<ListGoldenQueriesRequest>,
    ) -> Result<Response<ListGoldenQueriesResponse>, Status> {
        let ctx = CallerContext::from_request(&request)?;
        let req = request.get_ref();
        let (golden_queries, next_page_token) = self
            .pipeline()?
            .list_golden_queries(&ctx, req.page_size, &req.page_token)
            .await?;
        Ok(Response::new(ListGoldenQueriesResponse {
            golden_queries,
            next_page_token,
        }))
    }

    async fn delete_golden_query(
        &self,
        request: Request<DeleteGoldenQueryRequest>,
    ) -> Result<Response<DeleteGoldenQueryResponse>, Status> {
        let ctx = CallerContext::from_request(&request)?;
        let id = request.get_ref().id.clone();
        self.pipeline()?.delete_golden_query(&ctx, &id).await?;
        Ok(changed(
            DeleteGoldenQueryResponse {},
            format!("golden-query:{id}"),
        ))
    }

    async fn run_regression(
        &self,
        request: Request<RunRegressionRequest>,
    ) -> Result<Response<RunRegressionResponse>, Status> {
        let ctx = CallerContext::from_request(&request)?;
        let run = self
            .pipeline()?
            .run_regression(&ctx, request.into_inner(), RegressionTrigger::Manual)
            .await?;
        let target = format!("regression-run:{}", run.id);
        Ok(changed(RunRegressionResponse { run: Some(run) }, target))
    }

    async fn get_regression_run(
        &self,
        request: Request<GetRegressionRunRequest>,
    ) -> Result<Response<GetRegressionRunResponse>, Status> {
        let ctx = CallerContext::from_request(&request)?;
        let run = self
            .pipeline()?
            .get_regression_run(&ctx, &request.get_ref().id)
            .await?;
        Ok(Response::new(GetRegressionRunResponse { run: Some(run) }))
    }

    async fn list_regression_runs(
        &self,
        request: Request<ListRegressionRunsRequest>,
    ) -> Result<Response<ListRegressionRunsResponse>, Status> {
        let ctx = CallerContext::from_request(&request)?;
        let req = request.get_ref();
        let (runs, next_page_token) = self
            .pipeline()?
            .list_regression_runs(&ctx, req.page_size, &req.page_token)
            .await?;
        Ok(Response::new(ListRegressionRunsResponse {
            runs,
            next_page_token,
        }))
    }

    async fn get_golden_query_trend(
        &self,
        request: Request<GetGoldenQueryTrendRequest>,
    ) -> Result<Response<GetGoldenQueryTrendResponse>, Status> {
        let ctx = CallerContext::from_request(&request)?;
        let req = request.get_ref();
        let trend = self
            .pipeline()?
            .golden_query_trend(&ctx, &req.golden_query_id, req.page_size, &req.page_token)
            .await?;
        Ok(Response::new(trend))
    }
}
