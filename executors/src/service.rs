//! The executor service: one implementation of [`ExecutorApi`] per sidecar kind, over shared
//! per-Source pools. A sidecar only serves its own request type.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ops_proto::executor::{
    DescribeResponse, Engine, ExecuteRequest, ExecuteResponse, ExecutorKind, ScanSchemaRequest,
    ScanSchemaResponse, TestConnectionRequest, TestConnectionResponse, execute_request,
    execute_response,
};
use ops_proto::executor_api::{CallContext, ExecutorApi, ExecutorError};
use tracing::Instrument;

use crate::config::Limits;
use crate::source::SourcePools;
use crate::sql::{self, Caps};
use crate::{graph, metrics, scan};

/// An executor of one kind, usable in-process or behind gRPC.
#[derive(Debug)]
pub struct LocalExecutor {
    kind: ExecutorKind,
    limits: Limits,
    pools: Arc<SourcePools>,
}

impl LocalExecutor {
    pub fn new(kind: ExecutorKind, limits: Limits) -> Self {
        let pools = SourcePools::new(limits.clone());
        Self {
            kind,
            limits,
            pools,
        }
    }

    pub fn kind(&self) -> ExecutorKind {
        self.kind
    }

    fn deadline(&self, ctx: &CallContext) -> Instant {
        let max = Duration::from_millis(self.limits.max_timeout_ms);
        let timeout = ctx
            .timeout
            .unwrap_or(Duration::from_millis(self.limits.default_timeout_ms));
        // Answer DEADLINE_EXCEEDED ourselves a little before the caller gives up, so the caller
        // learns why instead of seeing its own timer fire.
        let margin = (timeout / 10).min(Duration::from_millis(50));
        Instant::now() + timeout.min(max) - margin
    }

    fn caps(&self, max_rows: u32, max_bytes: u64) -> Caps {
        let rows = if max_rows == 0 {
            self.limits.max_rows
        } else {
            max_rows.min(self.limits.max_rows)
        };
        let bytes = if max_bytes == 0 {
            self.limits.max_bytes
        } else {
            max_bytes.min(self.limits.max_bytes)
        };
        Caps {
            max_rows: rows as usize,
            max_bytes: bytes,
        }
    }

    fn wrong_kind(&self, got: &str) -> ExecutorError {
        let serves = match self.kind {
            ExecutorKind::Sql => "sql",
            ExecutorKind::Metrics => "metric",
            ExecutorKind::Graph => "graph",
            ExecutorKind::Unspecified => "no",
        };
        ExecutorError::invalid(
            "request",
            format!(
                "this executor serves {serves} requests, not {got}; send {got} requests to the {got} executor"
            ),
        )
    }

    async fn execute_inner(
        &self,
        ctx: &CallContext,
        request: ExecuteRequest,
    ) -> Result<ExecuteResponse, ExecutorError> {
        let started = Instant::now();
        let deadline = self.deadline(ctx);
        let handle = self.pools.get(request.source.as_ref())?;
        let (result, executed_sql) = match request.request {
            Some(execute_request::Request::Sql(sql_request)) => {
                if self.kind != ExecutorKind::Sql {
                    return Err(self.wrong_kind("sql"));
                }
                let (text, params) = if sql_request.named_params.is_empty() {
                    (sql_request.sql.clone(), sql_request.params.clone())
                } else if !sql_request.params.is_empty() {
                    return Err(ExecutorError::invalid(
                        "sql.params",
                        "give either positional params or named_params, not both",
                    ));
                } else {
                    sql::bind_named(&sql_request.sql, handle.engine(), &sql_request.named_params)?
                };
                let caps = self.caps(sql_request.max_rows, sql_request.max_bytes);
                let rows = sql::run(&handle, &text, &params, caps, deadline).await?;
                (execute_response::Result::Rows(rows), text)
            }
            Some(execute_request::Request::Metric(metric)) => {
                if self.kind != ExecutorKind::Metrics {
                    return Err(self.wrong_kind("metric"));
                }
                let caps = self.caps(0, 0);
                let (rows, text) = metrics::run(
                    &handle,
                    &metric,
                    caps,
                    self.limits.max_percentile_points,
                    deadline,
                )
                .await?;
                (execute_response::Result::Rows(rows), text)
            }
            Some(execute_request::Request::Graph(graph_request)) => {
                if self.kind != ExecutorKind::Graph {
                    return Err(self.wrong_kind("graph"));
                }
                let limits = graph::GraphLimits {
                    max_depth: self.limits.max_graph_depth,
                    max_nodes: self.limits.max_graph_nodes,
                    max_edges: self.limits.max_graph_edges,
                };
                let result =
                    graph::run(&handle, &graph_request, limits, self.caps(0, 0), deadline).await?;
                (execute_response::Result::Graph(result), String::new())
            }
            None => {
                return Err(ExecutorError::invalid(
                    "request",
                    "a sql, metric or graph request is required",
                ));
            }
        };
        Ok(ExecuteResponse {
            result: Some(result),
            elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
            executed_sql,
        })
    }
}

#[async_trait::async_trait]
impl ExecutorApi for LocalExecutor {
    async fn execute(
        &self,
        ctx: CallContext,
        request: ExecuteRequest,
    ) -> Result<ExecuteResponse, ExecutorError> {
        let source_id = request
            .source
            .as_ref()
            .map(|s| s.source_id.clone())
            .unwrap_or_default();
        let span = tracing::info_span!("execute", trace_id = %ctx.trace_id, source_id = %source_id);
        let result = self
            .execute_inner(&ctx, request)
            .instrument(span.clone())
            .await;
        span.in_scope(|| match &result {
            Ok(response) => tracing::info!(elapsed_ms = response.elapsed_ms, "executed"),
            Err(error) => {
                tracing::warn!(kind = ?error.kind, message = %error.message, "execute failed")
            }
        });
        result
    }

    async fn describe(&self, _ctx: CallContext) -> Result<DescribeResponse, ExecutorError> {
        Ok(DescribeResponse {
            kind: self.kind as i32,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            engines: vec![
                Engine::Postgres as i32,
                Engine::Mysql as i32,
                Engine::Sqlite as i32,
            ],
        })
    }

    async fn test_connection(
        &self,
        ctx: CallContext,
        request: TestConnectionRequest,
    ) -> Result<TestConnectionResponse, ExecutorError> {
        let handle = self.pools.get(request.source.as_ref())?;
        scan::test_connection(&handle, self.deadline(&ctx)).await
    }

    async fn scan_schema(
        &self,
        ctx: CallContext,
        request: ScanSchemaRequest,
    ) -> Result<ScanSchemaResponse, ExecutorError> {
        let handle = self.pools.get(request.source.as_ref())?;
        let tables = scan::scan(&handle, &request, self.deadline(&ctx)).await?;
        Ok(ScanSchemaResponse { tables })
    }
}
