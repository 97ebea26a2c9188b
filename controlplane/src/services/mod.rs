//! Services whose behaviour later issues implement. Until then every RPC answers
//! `UNIMPLEMENTED` naming the issue that brings it — never a fake result.

use std::pin::Pin;

use futures::Stream;
use ops_proto::v1::inspector_server::Inspector;
use ops_proto::v1::ops_service_server::OpsService;
use ops_proto::v1::regression_server::Regression;
use ops_proto::v1::*;
use tonic::{Request, Response, Status};

fn pending(rpc: &str, issue: &str) -> Status {
    Status::unimplemented(format!(
        "{rpc} is not implemented yet: it lands with {issue}"
    ))
}

const PIPELINE: &str = "the pipeline issue (#5)";

#[derive(Debug, Default, Clone)]
pub struct PendingOps;

#[tonic::async_trait]
impl OpsService for PendingOps {
    async fn ask(&self, _r: Request<AskRequest>) -> Result<Response<AskResponse>, Status> {
        Err(pending("ops.v1.OpsService/Ask", PIPELINE))
    }

    type AskStreamStream =
        Pin<Box<dyn Stream<Item = Result<AskStreamResponse, Status>> + Send + 'static>>;

    async fn ask_stream(
        &self,
        _r: Request<AskStreamRequest>,
    ) -> Result<Response<Self::AskStreamStream>, Status> {
        Err(pending("ops.v1.OpsService/AskStream", PIPELINE))
    }

    async fn ui_action(
        &self,
        _r: Request<UiActionRequest>,
    ) -> Result<Response<UiActionResponse>, Status> {
        Err(pending("ops.v1.OpsService/UiAction", PIPELINE))
    }

    async fn stage_test(
        &self,
        _r: Request<StageTestRequest>,
    ) -> Result<Response<StageTestResponse>, Status> {
        Err(pending("ops.v1.OpsService/StageTest", PIPELINE))
    }

    async fn feedback(
        &self,
        _r: Request<FeedbackRequest>,
    ) -> Result<Response<FeedbackResponse>, Status> {
        Err(pending("ops.v1.OpsService/Feedback", PIPELINE))
    }
}

#[derive(Debug, Default, Clone)]
pub struct PendingInspector;

#[tonic::async_trait]
impl Inspector for PendingInspector {
    async fn list_traces(
        &self,
        _r: Request<ListTracesRequest>,
    ) -> Result<Response<ListTracesResponse>, Status> {
        Err(pending("ops.v1.Inspector/ListTraces", PIPELINE))
    }

    async fn get_trace(
        &self,
        _r: Request<GetTraceRequest>,
    ) -> Result<Response<GetTraceResponse>, Status> {
        Err(pending("ops.v1.Inspector/GetTrace", PIPELINE))
    }

    async fn diff_traces(
        &self,
        _r: Request<DiffTracesRequest>,
    ) -> Result<Response<DiffTracesResponse>, Status> {
        Err(pending("ops.v1.Inspector/DiffTraces", PIPELINE))
    }

    async fn rca(&self, _r: Request<RcaRequest>) -> Result<Response<RcaResponse>, Status> {
        Err(pending("ops.v1.Inspector/Rca", "a later inspector issue"))
    }
}

#[derive(Debug, Default, Clone)]
pub struct PendingRegression;

const REGRESSION: &str = "a later regression issue";

#[tonic::async_trait]
impl Regression for PendingRegression {
    async fn create_golden_query(
        &self,
        _r: Request<CreateGoldenQueryRequest>,
    ) -> Result<Response<CreateGoldenQueryResponse>, Status> {
        Err(pending("ops.v1.Regression/CreateGoldenQuery", REGRESSION))
    }

    async fn list_golden_queries(
        &self,
        _r: Request<ListGoldenQueriesRequest>,
    ) -> Result<Response<ListGoldenQueriesResponse>, Status> {
        Err(pending("ops.v1.Regression/ListGoldenQueries", REGRESSION))
    }

    async fn delete_golden_query(
        &self,
        _r: Request<DeleteGoldenQueryRequest>,
    ) -> Result<Response<DeleteGoldenQueryResponse>, Status> {
        Err(pending("ops.v1.Regression/DeleteGoldenQuery", REGRESSION))
    }

    async fn run_regression(
        &self,
        _r: Request<RunRegressionRequest>,
    ) -> Result<Response<RunRegressionResponse>, Status> {
        Err(pending("ops.v1.Regression/RunRegression", REGRESSION))
    }

    async fn get_regression_run(
        &self,
        _r: Request<GetRegressionRunRequest>,
    ) -> Result<Response<GetRegressionRunResponse>, Status> {
        Err(pending("ops.v1.Regression/GetRegressionRun", REGRESSION))
    }

    async fn list_regression_runs(
        &self,
        _r: Request<ListRegressionRunsRequest>,
    ) -> Result<Response<ListRegressionRunsResponse>, Status> {
        Err(pending("ops.v1.Regression/ListRegressionRuns", REGRESSION))
    }
}
