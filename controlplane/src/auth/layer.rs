//! The tower layer that authenticates every request and checks its RPC's role before any
//! service sees it; a refusal is answered here as a gRPC status.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::HeaderMap;
use tonic::Status;

use ops_proto::v1::{AuditKind, AuditOutcome};

use super::api_keys::{ApiKeyStore, KEY_PREFIX};
use super::jwt::JwtVerifier;
use super::roles::{self, Access, Role};
use crate::audit::{self, AuditLog, AuditTarget};
use crate::config::{AuthConfig, AuthMode, ClientCertConfig};
use crate::context::{
    CallerContext, PRINCIPAL_HEADER, ROLES_HEADER, TENANT_HEADER, code_name, validate_tenant,
};

/// Turns a request's headers and path into its caller context, or the status that refuses it.
#[derive(Debug)]
pub struct Auth {
    jwt: Option<JwtVerifier>,
    keys: Option<ApiKeyStore>,
    certs: Vec<ClientCertConfig>,
    default_tenant: String,
    /// Where refused calls and changes are audited (none: not audited).
    audit: Option<AuditLog>,
    /// How many refusals without a verified caller were audited this minute.
    unauthenticated: MinuteBudget,
}

/// Audit records of unauthenticated refusals per minute and replica (all are counted in
/// `ops_auth_failures_total`).
const UNAUTHENTICATED_PER_MINUTE: u32 = 120;

/// A count per clock minute.
#[derive(Debug, Default)]
struct MinuteBudget(std::sync::Mutex<(i64, u32)>);

impl MinuteBudget {
    fn admit(&self) -> bool {
        let minute = crate::storage::unix_micros() / 60_000_000;
        let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if state.0 != minute {
            *state = (minute, 0);
        }
        state.1 += 1;
        state.1 <= UNAUTHENTICATED_PER_MINUTE
    }
}

/// A refused call: the status, and who was refused as far as the credential told.
#[derive(Debug)]
pub struct Refusal {
    pub status: Status,
    pub tenant: String,
    /// Empty when no credential was verified.
    pub principal: String,
}

impl Auth {
    /// Authentication off: the tenant and principal come from metadata, no role is checked.
    pub fn none(default_tenant: &str) -> Self {
        Self {
            jwt: None,
            keys: None,
            certs: Vec::new(),
            default_tenant: default_tenant.to_owned(),
            audit: None,
            unauthenticated: MinuteBudget::default(),
        }
    }

    /// Audits refused calls and changes into `log`.
    pub fn audited(self, log: AuditLog) -> Self {
        Self {
            audit: Some(log),
            ..self
        }
    }

    /// `keys`: where API keys are looked up (none: only JWTs are accepted).
    pub fn from_config(
        config: &AuthConfig,
        default_tenant: &str,
        keys: Option<ApiKeyStore>,
    ) -> Result<Self, String> {
        Ok(Self {
            jwt: match config.mode {
                AuthMode::None => None,
                AuthMode::Jwt => Some(JwtVerifier::from_config(config)?),
            },
            keys,
            certs: config.client_certs.clone(),
            default_tenant: default_tenant.to_owned(),
            audit: None,
            unauthenticated: MinuteBudget::default(),
        })
    }

    /// `client_cn`: the subject common name of the client certificate the TLS layer verified.
    pub async fn authorize(
        &self,
        path: &str,
        headers: &HeaderMap,
        client_cn: Option<&str>,
    ) -> Result<CallerContext, Refusal> {
        let Some(jwt) = &self.jwt else {
            return self
                .context_of_metadata(headers)
                .map_err(|status| self.refusal(status, None));
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
        let context = self
            .credential_context(jwt, headers, client_cn)
            .await
            .map_err(|status| self.refusal(status, None))?;
        Self::admit(context, needed, path, headers)
            .map_err(|(status, who)| self.refusal(status, Some(who)))
    }

    /// Who was refused: the verified caller, else no one known (the unauthenticated bucket).
    fn refusal(&self, status: Status, who: Option<CallerContext>) -> Refusal {
        match who {
            Some(who) => Refusal {
                status,
                tenant: who.tenant,
                principal: who.principal,
            },
            // No credential was verified, so the tenant the call names cannot be trusted:
            // such refusals are kept apart from every tenant.
            None => Refusal {
                status,
                tenant: audit::UNAUTHENTICATED.to_owned(),
                principal: String::new(),
            },
        }
    }

    /// The caller a credential stands for.
    async fn credential_context(
        &self,
        jwt: &JwtVerifier,
        headers: &HeaderMap,
        client_cn: Option<&str>,
    ) -> Result<CallerContext, Status> {
        Ok(match credential(headers, client_cn)? {
            Credential::Certificate(cn) => {
                let Some(mapped) = self.certs.iter().find(|c| c.subject_cn == cn) else {
                    return Err(Status::unauthenticated(format!(
                        "no credentials: the client certificate CN={cn} names no principal (auth.client_certs) and no token was sent"
                    )));
                };
                CallerContext {
                    tenant: mapped.tenant.clone(),
                    principal: mapped.principal.clone(),
                    roles: mapped.roles.clone(),
                    roles_enforced: true,
                }
            }
            Credential::ApiKey(key) => match &self.keys {
                Some(keys) => keys.verify(key).await.map_err(Status::unauthenticated)?,
                None => return Err(Status::unauthenticated("API keys are not accepted here")),
            },
            Credential::Jwt(token) => {
                let claimed = jwt.verify(token).map_err(Status::unauthenticated)?;
                CallerContext {
                    tenant: claimed.tenant,
                    principal: claimed.principal,
                    roles: claimed.roles,
                    roles_enforced: true,
                }
            }
        })
    }

    /// The verified caller, if its role suffices and it acts for its own tenant (only a
    /// platform admin may name another); else the refusal and who was refused.
    fn admit(
        context: CallerContext,
        needed: Role,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<CallerContext, (Status, CallerContext)> {
        if let Err(status) = context.require(needed, path.trim_start_matches('/')) {
            return Err((status, context));
        }
        let asked = match header(headers, TENANT_HEADER) {
            Ok(asked) => asked,
            Err(status) => return Err((status, context)),
        };
        match asked {
            Some(asked) if asked != context.tenant => {
                if context.role() < Some(Role::PlatformAdmin) {
                    let status = Status::permission_denied(format!(
                        "{TENANT_HEADER} names tenant {asked:?}, but {} acts for tenant {:?}; only {} may act for another tenant",
                        context.principal,
                        context.tenant,
                        Role::PlatformAdmin
                    ));
                    return Err((status, context));
                }
                if let Err(e) = validate_tenant(&asked) {
                    let status = Status::invalid_argument(format!("metadata {TENANT_HEADER}: {e}"));
                    return Err((status, context));
                }
                Ok(CallerContext {
                    tenant: asked,
                    ..context
                })
            }
            _ => Ok(context),
        }
    }

    /// Audits a refusal of the layer (those without a verified caller at most
    /// [`UNAUTHENTICATED_PER_MINUTE`] a minute: anyone can send them).
    fn audit_refusal(&self, path: &str, refusal: &Refusal) {
        if refusal.tenant == audit::UNAUTHENTICATED && !self.unauthenticated.admit() {
            return;
        }
        if let Some(log) = &self.audit {
            log.record(audit::with_status(
                audit::record(
                    AuditKind::Denied,
                    AuditOutcome::Denied,
                    &refusal.tenant,
                    &refusal.principal,
                    path,
                ),
                code_name(refusal.status.code()),
                refusal.status.message(),
            ));
        }
    }

    /// Audits what a service answered (`status`: the error it answered, if any): a change, or
    /// a refusal of the service itself (the ask RPCs audit their own outcome).
    fn audit_answer(
        &self,
        path: &str,
        context: &CallerContext,
        status: Option<&Status>,
        response: &http::Response<tonic::body::Body>,
    ) {
        let Some(log) = &self.audit else {
            return;
        };
        let rpc = path.trim_start_matches('/');
        let code = status.map_or("OK", |s| code_name(s.code()));
        let reason = status.map_or("", |s| s.message());
        let asks = [audit::ASK, audit::ASK_STREAM, audit::UI_ACTION];
        let (kind, outcome) = if audit::is_denial(code) {
            if asks.contains(&rpc) {
                return;
            }
            (AuditKind::Denied, AuditOutcome::Denied)
        } else if roles::is_change(rpc) {
            let outcome = if code == "OK" {
                AuditOutcome::Ok
            } else {
                AuditOutcome::Failed
            };
            (AuditKind::Change, outcome)
        } else {
            return;
        };
        let mut record = audit::with_status(
            audit::record(kind, outcome, &context.tenant, &context.principal, rpc),
            code,
            reason,
        );
        if let Some(AuditTarget(target)) = response.extensions().get::<AuditTarget>() {
            record.target = audit::cut(target);
        }
        log.record(record);
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

enum Credential<'h> {
    Jwt(&'h str),
    ApiKey(&'h str),
    Certificate(&'h str),
}

/// `x-api-key: ops_…`, or `authorization: Bearer <JWT or ops_…>`, else a verified client
/// certificate.
fn credential<'h>(
    headers: &'h HeaderMap,
    client_cn: Option<&'h str>,
) -> Result<Credential<'h>, Status> {
    if let (None, None, Some(cn)) = (
        headers.get("x-api-key"),
        headers.get(http::header::AUTHORIZATION),
        client_cn,
    ) {
        return Ok(Credential::Certificate(cn));
    }
    if let Some(key) = headers.get("x-api-key") {
        let key = key
            .to_str()
            .map_err(|_| Status::unauthenticated("the x-api-key metadata is not ASCII text"))?;
        return Ok(Credential::ApiKey(key.trim()));
    }
    let token = bearer(headers)?;
    Ok(if token.starts_with(KEY_PREFIX) {
        Credential::ApiKey(token)
    } else {
        Credential::Jwt(token)
    })
}

fn bearer(headers: &HeaderMap) -> Result<&str, Status> {
    let value = headers.get(http::header::AUTHORIZATION).ok_or_else(|| {
        Status::unauthenticated(
            "no credentials: send the metadata authorization: Bearer <JWT or API key>",
        )
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

/// The subject CN of the client certificate TLS verified (with `server.client_ca`).
fn client_common_name<B>(request: &http::Request<B>) -> Option<String> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    let certs = request
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()?
        .peer_certs()?;
    let (_, cert) = x509_parser::parse_x509_certificate(certs.first()?.as_ref()).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?;
    Some(cn.to_owned())
}

/// An audited call in flight; dropped before its answer (the caller went away), it records the
/// call as cancelled.
struct Pending<'a> {
    auth: &'a Auth,
    path: &'a str,
    context: &'a CallerContext,
    answered: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        let Some(log) = self.auth.audit.as_ref().filter(|_| !self.answered) else {
            return;
        };
        let rpc = self.path.trim_start_matches('/');
        let kind = if [audit::ASK, audit::UI_ACTION].contains(&rpc) {
            AuditKind::Ask
        } else if roles::is_change(rpc) {
            AuditKind::Change
        } else {
            return;
        };
        log.record(audit::with_status(
            audit::record(
                kind,
                AuditOutcome::Failed,
                &self.context.tenant,
                &self.context.principal,
                rpc,
            ),
            "CANCELLED",
            "the caller went away before the answer; the call may have completed",
        ));
    }
}

/// Counts a served call in the RPC metrics; paths that name no RPC of ours share one label
/// (a caller cannot grow the label set).
fn served(path: &str, code: &str, started: std::time::Instant) {
    let (service, method) = match roles::known(path) {
        Some((service, method)) => (service, method),
        None => ("unknown", "unknown"),
    };
    let metrics = crate::metrics::get();
    metrics
        .rpcs
        .with_label_values(&[service, method, code])
        .inc();
    metrics
        .rpc_seconds
        .with_label_values(&[service, method])
        .observe(started.elapsed().as_secs_f64());
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
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let auth = self.auth.clone();
        // The service polled ready goes into the future; a fresh clone stays for the next call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let started = std::time::Instant::now();
            let path = request.uri().path().to_owned();
            let client_cn = client_common_name(&request);
            match auth
                .authorize(&path, request.headers(), client_cn.as_deref())
                .await
            {
                Ok(context) => {
                    request.extensions_mut().insert(context.clone());
                    // A caller that goes away drops this future: the change or ask it made
                    // is audited as cancelled rather than not at all.
                    let mut pending = Pending {
                        auth: &auth,
                        path: &path,
                        context: &context,
                        answered: false,
                    };
                    let response = inner.call(request).await?;
                    pending.answered = true;
                    // An error is answered in the headers (trailers-only); success has no
                    // status there.
                    let status = Status::from_header_map(response.headers());
                    let code = status.as_ref().map_or("OK", |s| code_name(s.code()));
                    served(&path, code, started);
                    auth.audit_answer(&path, &context, status.as_ref(), &response);
                    Ok(response)
                }
                Err(refusal) => {
                    let status = &refusal.status;
                    crate::metrics::get()
                        .auth_failures
                        .with_label_values(&[format!("{:?}", status.code()).as_str()])
                        .inc();
                    tracing::info!(
                        rpc = path,
                        code = ?status.code(),
                        reason = status.message(),
                        "call refused"
                    );
                    auth.audit_refusal(&path, &refusal);
                    served(&path, code_name(refusal.status.code()), started);
                    Ok(refusal.status.into_http())
                }
            }
        })
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

    #[tokio::test]
    async fn without_auth_metadata_sets_tenant_principal_and_roles() -> Result<(), Refusal> {
        let auth = Auth::none("default");
        let ctx = auth
            .authorize("/ops.v1.OpsService/Ask", &headers(&[]), None)
            .await?;
        assert_eq!(ctx, CallerContext::new("default", "anonymous"));
        let ctx = auth
            .authorize(
                "/ops.v1.OpsService/Ask",
                &headers(&[
                    ("x-ops-tenant", "acme"),
                    ("x-ops-principal", "kim"),
                    ("x-ops-roles", "admin, viewer"),
                ]),
                None,
            )
            .await?;
        assert_eq!(ctx.tenant, "acme");
        assert_eq!(ctx.principal, "kim");
        assert_eq!(ctx.roles, vec!["admin".to_owned(), "viewer".to_owned()]);
        assert!(!ctx.roles_enforced);
        Ok(())
    }

    #[tokio::test]
    async fn a_malformed_tenant_is_invalid_argument_naming_the_header() {
        let err = Auth::none("default")
            .authorize(
                "/ops.v1.OpsService/Ask",
                &headers(&[("x-ops-tenant", "Acme Corp")]),
                None,
            )
            .await
            .err()
            .map(|r| (r.status.code(), r.status.message().to_owned()));
        assert!(
            matches!(&err, Some((tonic::Code::InvalidArgument, m)) if m.contains("x-ops-tenant")),
            "{err:?}"
        );
    }
}
