//! The caller context (tenant, principal, roles) every RPC runs under. The auth layer
//! (`crate::auth`) builds it from the request's credential, or from request metadata when
//! authentication is off; everything downstream reads only this struct.

use tonic::{Request, Status};

use crate::auth::roles::{self, Role};

pub const TENANT_HEADER: &str = "x-ops-tenant";
pub const PRINCIPAL_HEADER: &str = "x-ops-principal";
pub const ROLES_HEADER: &str = "x-ops-roles";

/// Who is calling, on behalf of which tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerContext {
    pub tenant: String,
    pub principal: String,
    pub roles: Vec<String>,
    /// Roles come from a verified credential and are checked (authentication on).
    pub roles_enforced: bool,
}

impl CallerContext {
    pub fn new(tenant: impl Into<String>, principal: impl Into<String>) -> Self {
        Self {
            tenant: tenant.into(),
            principal: principal.into(),
            roles: Vec::new(),
            roles_enforced: false,
        }
    }

    /// Reads the context the auth layer attached to a request.
    pub fn from_request<T>(request: &Request<T>) -> Result<Self, Status> {
        request
            .extensions()
            .get::<CallerContext>()
            .cloned()
            .ok_or_else(|| Status::internal("caller context missing: the auth layer did not run"))
    }

    /// The caller's highest role.
    pub fn role(&self) -> Option<Role> {
        roles::highest(self.roles.iter().map(String::as_str))
    }

    /// PERMISSION_DENIED unless the caller holds `role` (always allowed with authentication
    /// off). For what one RPC allows only some callers, such as a replay inside Ask.
    pub fn require(&self, role: Role, what: &str) -> Result<(), Status> {
        if !self.roles_enforced || self.role() >= Some(role) {
            return Ok(());
        }
        Err(Status::permission_denied(format!(
            "{what} needs role {role}; {} has {}",
            self.principal,
            self.role()
                .map_or("no role".to_owned(), |r| format!("role {r}"))
        )))
    }
}

/// Tenant ids are lower-case slugs so they are safe in logs, paths and SQL binds.
pub fn validate_tenant(tenant: &str) -> Result<(), String> {
    let ok = !tenant.is_empty()
        && tenant.len() <= 64
        && tenant
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tenant {tenant:?} is invalid: expected 1-64 characters of a-z, 0-9, '_' or '-'"
        ))
    }
}

/// A gRPC status code's name as the protocol spells it ("PERMISSION_DENIED"), for audit
/// records and logs.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
