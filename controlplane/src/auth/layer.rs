//! The tower layer that authenticates every request and checks its RPC's role before any
//! service sees it; a refusal is answered here as a gRPC status.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::HeaderMap;
use tonic::Status;

use super::jwt::JwtVerifier;
use super::roles::{self, Access, Role};
use crate::config::{AuthConfig, AuthMode};
use crate::context::{
    CallerContext, PRINCIPAL_HEADER, ROLES_HEADER, TENANT_HEADER, validate_tenant,
};

/// Turns a request's headers and path into its caller context, or the status that refuses it.
#[derive(Debug)]
pub struct Auth {
    jwt: Option<JwtVerifier>,
    default_tenant: String,
}

impl Auth {
    /// Authentication off: the tenant and principal come from metadata, no role is checked.
    pub fn none(default_tenant: &str) -> Self {
        Self {
            jwt: None,
            default_tenant: default_tenant.to_owned(),
        }
    }

    pub fn from_config(config: &AuthConfig, default_tenant: &str) -> Result<Self, String> {
        Ok(Self {
            jwt: match config.mode {
                AuthMode::None => None,
                AuthMode::Jwt => Some(JwtVerifier::from_config(config)?),
            },
            default_tenant: default_tenant.to_owned(),
        })
    }

    pub fn authorize(&self, path: &str, headers: &HeaderMap) -> Result<CallerContext, Status> {
        let Some(jwt) = &self.jwt else {
            return self.context_of_metadata(headers);
        };
        let needed = match roles::access(path) {
            Access::Open => {
                return Ok(CallerContext {
                    roles_enforced: true,
                    ..CallerContext::new(self.default_tenant.clone(), "anonymous")
                });
            }
            Access::Needs(role) => role,
        };
        let token = bearer(headers)?;
        let claimed = jwt.verify(token).map_err(Status::unauthenticated)?;
        let context = CallerContext {
            tenant: claimed.tenant,
            principal: claimed.principal,
            roles: claimed.roles,
            roles_enforced: true,
        };
        let role = context.role();
        let rpc = path.trim_start_matches('/');
        if role < Some(needed) {
            return Err(Status::permission_denied(format!(
                "{rpc} needs role {needed}; {} has {}",
                context.principal,
                role.map_or("no role".to_owned(), |r| format!("role {r}"))
            )));
        }
        // The credential says which tenant; only a platform admin may name another.
        match header(headers, TENANT_HEADER)? {
            Some(asked) if asked != context.tenant => {
                if role < Some(Role::PlatformAdmin) {
                    return Err(Status::permission_denied(format!(
                        "{TENANT_HEADER} names tenant {asked:?}, but {} acts for tenant {:?}; only {} may act for another tenant",
                        context.principal,
                        context.tenant,
                        Role::PlatformAdmin
                    )));
                }
                validate_tenant(&asked).map_err(|e| {
                    Status::invalid_argument(format!("metadata {TENANT_HEADER}: {e}"))
                })?;
                Ok(CallerContext {
                    tenant: asked,
                    ..context
                })
            }
            _ => Ok(context),
        }
    }

    fn context_of_metadata(&self, headers: &HeaderMap) -> Result<CallerContext, Status> {
        let tenant = header(headers, TENANT_HEADER)?.unwrap_or_else(|| self.default_tenant.clone());
        validate_tenant(&tenant)
            .map_err(|e| Status::invalid_argument(format!("metadata {TENANT_HEADER}: {e}")))?;
        let principal = header(headers, PRINCIPAL_HEADER)?.unwrap_or_else(|| "anonymous".into());
        if principal.len() > 256 {
            return Err(Status::invalid_argument(format!(
                "metadata {PRINCIPAL_HEADER} is {} bytes; at most 256 are allowed",
                principal.len()
            )));
        }
        let roles = header(headers, ROLES_HEADER)?
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
            roles_enforced: false,
        })
    }
}

/// A header's trimmed text; empty counts as absent.
fn header(headers: &HeaderMap, name: &str) -> Result<Option<String>, Status> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(|s| Some(s.trim().to_owned()).filter(|s| !s.is_empty()))
            .map_err(|_| Status::invalid_argument(format!("metadata {name} must be ASCII text"))),
    }
}

fn bearer(headers: &HeaderMap) -> Result<&str, Status> {
    let value = headers.get(http::header::AUTHORIZATION).ok_or_else(|| {
        Status::unauthenticated("no credentials: send the metadata authorization: Bearer <JWT>")
    })?;
    let text = value
        .to_str()
        .map_err(|_| Status::unauthenticated("the authorization metadata is not ASCII text"))?;
    match text.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(Status::unauthenticated(
            "the authorization metadata must be \"Bearer <JWT>\"",
        )),
    }
}

/// Puts [`Auth`] in front of a service stack.
#[derive(Debug, Clone)]
pub struct AuthLayer(Arc<Auth>);

impl AuthLayer {
    pub fn new(auth: Auth) -> Self {
        Self(Arc::new(auth))
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            auth: self.0.clone(),
            inner,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuthService<S> {
    auth: Arc<Auth>,
    inner: S,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, ReqBody> tower::Service<http::Request<ReqBody>> for AuthService<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        match self.auth.authorize(request.uri().path(), request.headers()) {
            Ok(context) => {
                request.extensions_mut().insert(context);
                Box::pin(self.inner.call(request))
            }
            Err(status) => {
                crate::metrics::get()
                    .auth_failures
                    .with_label_values(&[format!("{:?}", status.code()).as_str()])
                    .inc();
                tracing::info!(
                    rpc = request.uri().path(),
                    code = ?status.code(),
                    reason = status.message(),
                    "call refused"
                );
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn without_auth_metadata_sets_tenant_principal_and_roles() -> Result<(), Status> {
        let auth = Auth::none("default");
        let ctx = auth.authorize("/ops.v1.OpsService/Ask", &headers(&[]))?;
        assert_eq!(ctx, CallerContext::new("default", "anonymous"));
        let ctx = auth.authorize(
            "/ops.v1.OpsService/Ask",
            &headers(&[
                ("x-ops-tenant", "acme"),
                ("x-ops-principal", "kim"),
                ("x-ops-roles", "admin, viewer"),
            ]),
        )?;
        assert_eq!(ctx.tenant, "acme");
        assert_eq!(ctx.principal, "kim");
        assert_eq!(ctx.roles, vec!["admin".to_owned(), "viewer".to_owned()]);
        assert!(!ctx.roles_enforced);
        Ok(())
    }

    #[test]
    fn a_malformed_tenant_is_invalid_argument_naming_the_header() {
        let err = Auth::none("default")
            .authorize(
                "/ops.v1.OpsService/Ask",
                &headers(&[("x-ops-tenant", "Acme Corp")]),
            )
            .err()
            .map(|s| (s.code(), s.message().to_owned()));
        assert!(
            matches!(&err, Some((tonic::Code::InvalidArgument, m)) if m.contains("x-ops-tenant")),
            "{err:?}"
        );
    }
}
