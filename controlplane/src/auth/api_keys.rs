//! API keys for service-to-service callers: `ops_<id>_<secret>`, stored as a SHA-256 of the
//! secret with the tenant and roles the key acts with. Verified keys are cached for a few
//! seconds (a revocation on another replica is seen within [`CACHE_TTL`], on this one at once).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ops_proto::convert::{from_micros, micros};
use ops_proto::v1::{ApiKey, CreateApiKeyRequest};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::roles::{self, Role};
use crate::context::CallerContext;
use crate::storage::{Db, Page, unix_micros};

/// How a key starts, so a caller can send it where a JWT would go.
pub const KEY_PREFIX: &str = "ops_";
const CACHE_TTL: Duration = Duration::from_secs(5);
/// `last_used_at` is written at most this often per key.
const LAST_USED_EVERY_MICROS: i64 = 60_000_000;

#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("{field}: {message}")]
    InvalidArgument { field: String, message: String },
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("storage: {0}")]
    Storage(#[from] sqlx::Error),
}

fn invalid(field: &str, message: impl Into<String>) -> ApiKeyError {
    ApiKeyError::InvalidArgument {
        field: field.into(),
        message: message.into(),
    }
}

#[derive(Debug, Clone)]
struct Stored {
    tenant: String,
    name: String,
    roles: Vec<String>,
    secret_sha256: String,
    expires_at: i64,
    revoked_at: i64,
    last_used_at: i64,
}

#[derive(Debug, Clone)]
pub struct ApiKeyStore {
    db: Db,
    cache: Arc<Mutex<HashMap<String, (Stored, Instant)>>>,
    /// Keys revoked through this replica: refused even if a lookup that began before the
    /// revocation refills the cache.
    revoked: Arc<Mutex<std::collections::HashSet<String>>>,
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Equal-length hex strings compared without an early exit.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

const SELECT_KEYS: &str = "SELECT key_id, tenant_id, name, roles, secret_sha256, created_by, created_at, expires_at, revoked_at, last_used_at FROM api_keys";

fn api_key(row: &sqlx::any::AnyRow) -> Result<ApiKey, sqlx::Error> {
    let at = |column: &str| -> Result<Option<pbjson_types::Timestamp>, sqlx::Error> {
        let value: i64 = row.try_get(column)?;
        Ok((value > 0).then(|| from_micros(value)))
    };
    let roles: String = row.try_get("roles")?;
    Ok(ApiKey {
        id: row.try_get("key_id")?,
        name: row.try_get("name")?,
        roles: roles.split(',').map(str::to_owned).collect(),
        created_by: row.try_get("created_by")?,
        created_at: at("created_at")?,
        expires_at: at("expires_at")?,
        last_used_at: at("last_used_at")?,
        revoked_at: at("revoked_at")?,
    })
}

impl ApiKeyStore {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            cache: Arc::new(Mutex::new(HashMap::new())),
            revoked: Arc::new(Mutex::new(std::collections::HashSet::new())),
        }
    }

    /// A new key for the caller's tenant, with roles no higher than the caller's own.
    pub async fn create(
        &self,
        ctx: &CallerContext,
        request: CreateApiKeyRequest,
    ) -> Result<(ApiKey, String), ApiKeyError> {
        if !ctx.roles_enforced {
            // With auth off anyone could mint keys that would work once it is turned on.
            return Err(ApiKeyError::FailedPrecondition(
                "API keys can be created only with authentication on (auth.mode = \"jwt\")".into(),
            ));
        }
        let name = request.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 64 {
            return Err(invalid("name", "a key needs a name of 1-64 characters"));
        }
        if request.roles.is_empty() {
            return Err(invalid("roles", "a key needs at least one role"));
        }
        let mut granted = Vec::new();
        for (index, name) in request.roles.iter().enumerate() {
            let role: Role = name.parse().map_err(|e| {
                invalid(
                    &format!("roles[{index}]"),
                    format!(
                        "{e}; expected one of {}",
                        Role::ALL.map(Role::as_str).join(", ")
                    ),
                )
            })?;
            if ctx.roles_enforced && ctx.role() < Some(role) {
                return Err(ApiKeyError::PermissionDenied(format!(
                    "{} cannot grant role {role}, which is above its own",
                    ctx.principal
                )));
            }
            granted.push(role.as_str().to_owned());
        }
        let now = unix_micros();
        let expires_at = request.expires_at.as_ref().map_or(0, micros);
        if request.expires_at.is_some() && expires_at <= now {
            return Err(invalid("expires_at", "the expiry is in the past"));
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let secret = hex::encode(bytes);
        let inserted = sqlx::query(
            "INSERT INTO api_keys (key_id, tenant_id, name, roles, secret_sha256, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(&ctx.tenant)
        .bind(&name)
        .bind(granted.join(","))
        .bind(sha256_hex(&secret))
        .bind(&ctx.principal)
        .bind(now)
        .bind(expires_at)
        .execute(self.db.pool())
        .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(ApiKeyError::AlreadyExists(format!(
                    "an API key named {name:?} already exists in tenant {}",
                    ctx.tenant
                )));
            }
            Err(e) => return Err(e.into()),
        }
        let key = ApiKey {
            id: id.clone(),
            name,
            roles: granted,
            created_by: ctx.principal.clone(),
            created_at: Some(from_micros(now)),
            expires_at: request.expires_at,
            last_used_at: None,
            revoked_at: None,
        };
        Ok((key, format!("{KEY_PREFIX}{id}_{secret}")))
    }

    pub async fn list(
        &self,
        ctx: &CallerContext,
        page_size: u32,
        page_token: &str,
    ) -> Result<(Vec<ApiKey>, String), ApiKeyError> {
        let page = Page::parse(page_size, page_token, 50, 500)
            .map_err(|message| invalid("page_token", message))?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT_KEYS} WHERE tenant_id = $1 ORDER BY created_at DESC, key_id LIMIT $2 OFFSET $3"
        )))
        .bind(&ctx.tenant)
        .bind(page.limit())
        .bind(page.offset)
        .fetch_all(self.db.pool())
        .await?;
        let mut keys = rows.iter().map(api_key).collect::<Result<Vec<_>, _>>()?;
        let next = page.finish(&mut keys);
        Ok((keys, next))
    }

    pub async fn revoke(&self, ctx: &CallerContext, id: &str) -> Result<ApiKey, ApiKeyError> {
        let updated = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE key_id = $2 AND tenant_id = $3 AND revoked_at = 0",
        )
        .bind(unix_micros())
        .bind(id)
        .bind(&ctx.tenant)
        .execute(self.db.pool())
        .await?;
        if let Ok(mut revoked) = self.revoked.lock() {
            revoked.insert(id.to_owned());
        }
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(id);
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT_KEYS} WHERE key_id = $1 AND tenant_id = $2"
        )))
        .bind(id)
        .bind(&ctx.tenant)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or_else(|| {
            ApiKeyError::NotFound(format!("no API key {id:?} in tenant {}", ctx.tenant))
        })?;
        if updated.rows_affected() == 0 {
            tracing::info!(key_id = id, "API key was already revoked");
        }
        Ok(api_key(&row)?)
    }

    /// The caller a presented key stands for; the error says which check failed and never
    /// contains the key.
    pub async fn verify(&self, presented: &str) -> Result<CallerContext, String> {
        let malformed = || "the API key is not of the form ops_<id>_<secret>".to_owned();
        let rest = presented.strip_prefix(KEY_PREFIX).ok_or_else(malformed)?;
        let (id, secret) = rest.split_once('_').ok_or_else(malformed)?;
        let stored = self.stored(id).await?.ok_or("the API key is unknown")?;
        if !same(&sha256_hex(secret), &stored.secret_sha256) {
            return Err("the API key is unknown".into());
        }
        let now = unix_micros();
        let revoked_here = self.revoked.lock().map(|r| r.contains(id)).unwrap_or(true);
        if stored.revoked_at > 0 || revoked_here {
            return Err(format!("the API key {:?} was revoked", stored.name));
        }
        if stored.expires_at > 0 && stored.expires_at <= now {
            return Err(format!("the API key {:?} has expired", stored.name));
        }
        if now - stored.last_used_at > LAST_USED_EVERY_MICROS {
            self.touch(id, now);
        }
        Ok(CallerContext {
            tenant: stored.tenant,
            principal: format!("api-key:{}", stored.name),
            roles: stored
                .roles
                .into_iter()
                .filter(|r| roles::highest([r.as_str()]).is_some())
                .collect(),
            roles_enforced: true,
        })
    }

    async fn stored(&self, id: &str) -> Result<Option<Stored>, String> {
        if let Ok(cache) = self.cache.lock()
            && let Some((stored, at)) = cache.get(id)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(Some(stored.clone()));
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT_KEYS} WHERE key_id = $1"
        )))
        .bind(id)
        .fetch_optional(self.db.pool())
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "API key lookup failed");
            "the API key cannot be checked right now".to_owned()
        })?;
        let Some(row) = row else {
            return Ok(None);
        };
        let read = |row: &sqlx::any::AnyRow| -> Result<Stored, sqlx::Error> {
            let roles: String = row.try_get("roles")?;
            Ok(Stored {
                tenant: row.try_get("tenant_id")?,
                name: row.try_get("name")?,
                roles: roles.split(',').map(str::to_owned).collect(),
                secret_sha256: row.try_get("secret_sha256")?,
                expires_at: row.try_get("expires_at")?,
                revoked_at: row.try_get("revoked_at")?,
                last_used_at: row.try_get("last_used_at")?,
            })
        };
        let stored = read(&row).map_err(|e| {
            tracing::warn!(error = %e, "API key row unreadable");
            "the API key cannot be checked right now".to_owned()
        })?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(id.to_owned(), (stored.clone(), Instant::now()));
        }
        Ok(Some(stored))
    }

    /// Records the use in the background; the call does not wait for it.
    fn touch(&self, id: &str, now: i64) {
        if let Ok(mut cache) = self.cache.lock()
            && let Some((stored, _)) = cache.get_mut(id)
        {
            stored.last_used_at = now;
        }
        let db = self.db.clone();
        let id = id.to_owned();
        tokio::spawn(async move {
            let written = sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE key_id = $2")
                .bind(now)
                .bind(&id)
                .execute(db.pool())
                .await;
            if let Err(e) = written {
                tracing::warn!(error = %e, key_id = %id, "last use of an API key not recorded");
            }
        });
    }
}
