//! The caller context (tenant, principal, roles) every RPC runs under, built from request
//! metadata by an interceptor. Real authentication replaces the header trust in a later
//! issue; everything downstream already reads only this struct.

use std::sync::Arc;

use tonic::{Request, Status};

pub const TENANT_HEADER: &str = "x-ops-tenant";
pub const PRINCIPAL_HEADER: &str = "x-ops-principal";
pub const ROLES_HEADER: &str = "x-ops-roles";

/// Who is calling, on behalf of which tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerContext {
    pub tenant: String,
    pub principal: String,
    pub roles: Vec<String>,
}

impl CallerContext {
    pub fn new(tenant: impl Into<String>, principal: impl Into<String>) -> Self {
        Self {
            tenant: tenant.into(),
            principal: principal.into(),
            roles: Vec::new(),
        }
    }

    /// Reads the context the interceptor attached to a request.
    pub fn from_request<T>(request: &Request<T>) -> Result<Self, Status> {
        request
            .extensions()
            .get::<CallerContext>()
            .cloned()
            .ok_or_else(|| {
                Status::internal("caller context missing: the context interceptor did not run")
            })
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

/// Builds the [`CallerContext`] for every call. Cheap to clone (one `Arc`).
#[derive(Debug, Clone)]
pub struct ContextInterceptor {
    default_tenant: Arc<str>,
}

impl ContextInterceptor {
    pub fn new(default_tenant: &str) -> Self {
        Self {
            default_tenant: Arc::from(default_tenant),
        }
    }

    fn context_of(&self, metadata: &tonic::metadata::MetadataMap) -> Result<CallerContext, Status> {
        let text = |name: &str| -> Result<Option<String>, Status> {
            match metadata.get(name) {
                None => Ok(None),
                Some(value) => value
                    .to_str()
                    .map(|s| Some(s.trim().to_owned()))
                    .map_err(|_| {
                        Status::invalid_argument(format!("metadata {name} must be ASCII text"))
                    }),
            }
        };
        let tenant = text(TENANT_HEADER)?
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| self.default_tenant.to_string());
        validate_tenant(&tenant)
            .map_err(|e| Status::invalid_argument(format!("metadata {TENANT_HEADER}: {e}")))?;
        let principal = text(PRINCIPAL_HEADER)?
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "anonymous".to_owned());
        if principal.len() > 256 {
            return Err(Status::invalid_argument(format!(
                "metadata {PRINCIPAL_HEADER} is {} bytes; at most 256 are allowed",
                principal.len()
            )));
        }
        let roles = text(ROLES_HEADER)?
            .map(|r| {
                r.split(',')
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Ok(CallerContext {
            tenant,
            principal,
            roles,
        })
    }
}

impl tonic::service::Interceptor for ContextInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let context = self.context_of(request.metadata())?;
        request.extensions_mut().insert(context);
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use tonic::service::Interceptor;

    use super::*;

    fn run(headers: &[(&'static str, &'static str)]) -> Result<CallerContext, Status> {
        let mut request = Request::new(());
        for (k, v) in headers {
            request
                .metadata_mut()
                .insert(*k, tonic::metadata::MetadataValue::from_static(v));
        }
        let request = ContextInterceptor::new("default").call(request)?;
        CallerContext::from_request(&request)
    }

    #[test]
    fn defaults_apply_without_metadata() -> Result<(), Status> {
        let ctx = run(&[])?;
        assert_eq!(
            ctx,
            CallerContext {
                tenant: "default".into(),
                principal: "anonymous".into(),
                roles: vec![]
            }
        );
        Ok(())
    }

    #[test]
    fn metadata_sets_tenant_principal_and_roles() -> Result<(), Status> {
        let ctx = run(&[
            ("x-ops-tenant", "acme"),
            ("x-ops-principal", "kim"),
            ("x-ops-roles", "admin, viewer"),
        ])?;
        assert_eq!(ctx.tenant, "acme");
        assert_eq!(ctx.principal, "kim");
        assert_eq!(ctx.roles, vec!["admin".to_owned(), "viewer".to_owned()]);
        Ok(())
    }

    #[test]
    fn malformed_tenant_is_invalid_argument_naming_the_header() {
        let err = run(&[("x-ops-tenant", "Acme Corp")]).err();
        let err = err.map(|s| (s.code(), s.message().to_owned()));
        assert!(
            matches!(&err, Some((tonic::Code::InvalidArgument, m)) if m.contains("x-ops-tenant")),
            "{err:?}"
        );
    }
}
