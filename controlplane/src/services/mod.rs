//! The gRPC adapters — the only layer that names `tonic::Status`: the pipeline's services
//! (`ops`), the registry's (`registry`), the one mapping of every service error to a status
//! (`status`), and the RPCs a later issue implements: until then each answers
//! `UNIMPLEMENTED` naming the issue that brings it — never a fake result.

pub mod ops;
pub mod registry;
mod status;

use ops_proto::v1::regression_server::Regression;
use ops_proto::v1::*;
use tonic::{Request, Response, Status};

pub(crate) fn pending(rpc: &str, issue: &str) -> Status {
    Status::unimplemented(format!(
        "{rpc} is not implemented yet: it lands with {issue}"
    ))
}

#[derive(Debug, Default, Clone)]
pub struct PendingRegression;

const REGRESSION: &str = "issue 13 (regression watch, golden queries, publish gate)";

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
