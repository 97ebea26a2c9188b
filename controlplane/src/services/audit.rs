//! `ops.v1.Audit` over the audit log (the caller's tenant's records, filtered and paged) and
//! the LLM usage log (calls, tokens and cost by model and day).

use ops_proto::v1::audit_server::Audit;
use ops_proto::v1::*;
use tonic::{Request, Response, Status};

use crate::audit::store;
use crate::auth::roles::Role;
use crate::context::CallerContext;
use crate::storage::Db;

#[derive(Debug, Clone)]
pub struct AuditGrpc {
    db: Db,
}

impl AuditGrpc {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

#[tonic::async_trait]
impl Audit for AuditGrpc {
    async fn list_audit_records(
        &self,
        request: Request<ListAuditRecordsRequest>,
    ) -> Result<Response<ListAuditRecordsResponse>, Status> {
        let ctx = CallerContext::from_request(&request)?;
        let tenant = if request.get_ref().unauthenticated {
            ctx.require(
                Role::PlatformAdmin,
                "reading the refusals of unauthenticated calls",
            )?;
            crate::audit::UNAUTHENTICATED
        } else {
            ctx.tenant.as_str()
        };
        let (records, next_page_token) = store::list(&self.db, tenant, request.get_ref()).await?;
        Ok(Response::new(ListAuditRecordsResponse {
            records,
            next_page_token,
        }))
    }

    async fn summarize_llm_usage(
        &self,
        request: Request<SummarizeLlmUsageRequest>,
    ) -> Result<Response<SummarizeLlmUsageResponse>, Status> {
        let ctx = CallerContext::from_request(&request)?;
        let summary =
            crate::audit::usage::summarize(&self.db, &ctx.tenant, request.get_ref()).await?;
        Ok(Response::new(summary))
    }
}
