//! `ops.v1.OpsService` (Ask, AskStream, StageTest, UiAction) and `ops.v1.Inspector`
//! (ListTraces, GetTrace, DiffTraces, Rca) over the pipeline and the trace store: thin adapters that
//! unwrap the caller context, call the tonic-free service and map its errors once
//! (`services::status`).

use std::pin::Pin;

use futures::Stream;
use ops_proto::v1::inspector_server::Inspector;
use ops_proto::v1::ops_service_server::OpsService;
use ops_proto::v1::*;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::audit::{self, AuditLog};
use crate::auth::roles::Role;
use crate::context::CallerContext;
use crate::pipeline::Pipeline;
use crate::storage::Db;
use crate::trace::{TraceError, diff, feedback, read, rollup};

/// Stage events buffered per stream before the pipeline waits for the client.
const STREAM_BUFFER: usize = 8;

#[derive(Debug, Clone)]
pub struct OpsGrpc {
    /// None when `executors.mode = "off"`: nothing could answer from data.
    pipeline: Option<Pipeline>,
    /// Where an ask that ends without an answer (and so without a trace) is audited.
    audit: AuditLog,
}

impl OpsGrpc {
    pub fn new(pipeline: Option<Pipeline>, audit: AuditLog) -> Self {
        Self { pipeline, audit }
    }

    fn pipeline(&self) -> Result<&Pipeline, Status> {
        self.pipeline.as_ref().ok_or_else(|| {
            Status::failed_precondition(
                "questions need the executor sidecars, but executors.mode is \"off\": set it to \"spawn\" or \"connect\"",
            )
        })
    }
}

/// An ask's result, its failure audited: an answered ask is audited with its trace, one that
/// ends in an error has no trace, so its record is written here.
fn audited<T>(
    log: &AuditLog,
    ctx: &CallerContext,
    rpc: &str,
    result: Result<T, Status>,
) -> Result<T, Status> {
    if let Err(status) = &result {
        let code = crate::context::code_name(status.code());
        let outcome = if audit::is_denial(code) {
            AuditOutcome::Denied
        } else {
            AuditOutcome::Failed
        };
        log.record(audit::with_status(
            audit::record(AuditKind::Ask, outcome, &ctx.tenant, &ctx.principal, rpc),
            code,
            status.message(),
        ));
    }
    result
}

/// A test-mode ask (draft overrides, a replay) is an author's tool, not an asker's.
fn authoring_needs_author(ctx: &CallerContext, ask: &AskRequest) -> Result<(), Status> {
    if ask.test_mode || ask.replay.is_some() || !ask.asset_overrides.is_empty() {
        ctx.require(
            Role::Author,
            "an ask in test mode, with asset overrides or a replay",
        )?;
    }
    Ok(())
}

#[tonic::async_trait]
impl OpsService for OpsGrpc {
    async fn ask(&self, request: Request<AskRequest>) -> Result<Response<AskResponse>, Status> {
        let ctx = CallerContext::from_request(&request)?;
        let answered = async {
            authoring_needs_author(&ctx, request.get_ref())?;
            Ok(self
                .pipeline()?
                .ask(&ctx, request.into_inner(), None, Some(audit::ASK))
                .await?)
        }
        .await;
        Ok(Response::new(audited(
            &self.audit,
            &ctx,
            audit::ASK,
            answered,
        )?))
    }

    type AskStreamStream =
        Pin<Box<dyn Stream<Item = Result<AskStreamResponse, Status>> + Send + 'static>>;

    async fn ask_stream(
        &self,
        request: Request<AskStreamRequest>,
    ) -> Result<Response<Self::AskStreamStream>, Status> {
        let ctx = CallerContext::from_request(&request)?;
        let started = async {
            let ask = request.into_inner().ask.ok_or_else(|| {
                Status::invalid_argument("ask: the request carries no AskRequest in `ask`")
            })?;
            authoring_needs_author(&ctx, &ask)?;
            Ok((ask, self.pipeline()?.clone()))
        }
        .await;
        let (ask, pipeline) = audited(&self.audit, &ctx, audit::ASK_STREAM, started)?;
        let audit_log = self.audit.clone();
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        // The run continues (and is traced) even if the client stops reading.
        tokio::spawn(async move {
            let (stage_tx, mut stage_rx) = mpsc::channel(STREAM_BUFFER);
            let forward = async {
                while let Some(event) = stage_rx.recv().await {
                    let _ = tx
                        .send(Ok(AskStreamResponse {
                            event: Some(ask_stream_response::Event::Stage(event)),
                        }))
                        .await;
                }
            };
            let (result, ()) = tokio::join!(
                pipeline.ask(&ctx, ask, Some(stage_tx), Some(audit::ASK_STREAM)),
                forward
            );
            let last = audited(
                &audit_log,
                &ctx,
                audit::ASK_STREAM,
                result.map_err(Status::from),
            )
            .map(|response| AskStreamResponse {
                event: Some(ask_stream_response::Event::Final(response)),
            });
            let _ = tx.send(last).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn ui_action(
        &self,
        request: Request<UiActionRequest>,
    ) -> Result<Response<UiActionResponse>, Status> {
        let ctx = CallerContext::from_request(&request)?;
        let answered = async {
            Ok(self
                .pipeline()?
                .ui_action(&ctx, request.into_inner())
                .await?)
        }
        .await;
        Ok(Response::new(audited(
            &self.audit,
            &ctx,
            audit::UI_ACTION,
            answered,
        )?))
    }

    async fn stage_test(
        &self,
        request: Request<StageTestRequest>,
    ) -> Result<Response<StageTestResponse>, Status> {
        let ctx = CallerContext::from_request(&request)?;
        let response = self
            .pipeline()?
            .stage_test(&ctx, request.into_inner())
            .await?;
        Ok(Response::new(response))
    }

    async fn feedback(
        &self,
        request: Request<FeedbackRequest>,
    ) -> Result<Response<FeedbackResponse>, Status> {
        let ctx = CallerContext::from_request(&request)?;
        let db = self.pipeline()?.registry().db();
        Ok(Response::new(
            feedback::record(db, &ctx.tenant, &ctx.principal, request.get_ref()).await?,
        ))
    }
}

#[derive(Debug, Clone)]
pub struct InspectorGrpc {
    db: Db,
    /// RCA records its analysis as a trace through the pipeline's writer.
    pipeline: Option<Pipeline>,
}

impl InspectorGrpc {
    pub fn new(db: Db, pipeline: Option<Pipeline>) -> Self {
        Self { db, pipeline }
    }
}

#[tonic::async_trait]
impl Inspector for InspectorGrpc {
    async fn list_traces(
        &self,
        request: Request<ListTracesRequest>,
    ) -> Result<Response<ListTracesResponse>, Status> {
        let ctx = CallerContext::from_request(&request)?;
        let db = &self.db;
        Ok(Response::new(
            read::list(db, &ctx.tenant, request.get_ref()).await?,
        ))
    }

    async fn get_trace(
        &self,
        request: Request<GetTraceRequest>,
    ) -> Result<Response<GetTraceResponse>, Status> {
        let ctx = CallerContext::from_request(&request)?;
        let db = &self.db;
        let trace = read::get(db, &ctx.tenant, &request.get_ref().trace_id).await?;
        Ok(Response::new(GetTraceResponse { trace: Some(trace) }))
    }

    async fn diff_traces(
        &self,
        request: Request<DiffTracesRequest>,
    ) -> Result<Response<DiffTracesResponse>, Status> {
        let ctx = CallerContext::from_request(&request)?;
        let req = request.get_ref();
        let baseline = read::get(&self.db, &ctx.tenant, &req.baseline_trace_id)
            .await
            .map_err(|e| field(e, "baseline_trace_id"))?;
        let candidate = read::get(&self.db, &ctx.tenant, &req.candidate_trace_id)
            .await
            .map_err(|e| field(e, "candidate_trace_id"))?;
        Ok(Response::new(diff::traces(&baseline, &candidate)))
    }

    async fn rca(&self, request: Request<RcaRequest>) -> Result<Response<RcaResponse>, Status> {
        let ctx = CallerContext::from_request(&request)?;
        let pipeline = self.pipeline.as_ref().ok_or_else(|| {
            Status::failed_precondition(
                "RCA records its analysis as a trace, which needs the pipeline, but executors.mode is \"off\": set it to \"spawn\" or \"connect\"",
            )
        })?;
        Ok(Response::new(
            pipeline.rca(&ctx, request.into_inner()).await?,
        ))
    }

    async fn get_performance(
        &self,
        request: Request<GetPerformanceRequest>,
    ) -> Result<Response<GetPerformanceResponse>, Status> {
        let ctx = CallerContext::from_request(&request)?;
        Ok(Response::new(
            rollup::performance(&self.db, &ctx.tenant, request.get_ref()).await?,
        ))
    }
}

/// A trace read's bad-input error, named by the request field that carried the id.
fn field(error: TraceError, name: &str) -> Status {
    match error {
        TraceError::InvalidArgument { message, .. } => TraceError::InvalidArgument {
            field: name.to_owned(),
            message,
        }
        .into(),
        other => other.into(),
    }
}
