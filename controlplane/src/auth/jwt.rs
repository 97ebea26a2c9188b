//! Bearer JWTs: HS256 with a secret given as a reference, RS256 / ES256 with public keys from a
//! JWKS file. Signature, expiry (required), not-before and, when configured, issuer and audience
//! are checked; a failure says which check failed and never repeats the token.

use std::path::Path;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::config::AuthConfig;

/// What a verified token says about its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub principal: String,
    pub tenant: String,
    pub roles: Vec<String>,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    roles: RolesClaim,
}

/// `roles` as a list, or as one string of names separated by spaces or commas.
#[derive(Deserialize, Default)]
#[serde(untagged)]
enum RolesClaim {
    #[default]
    Missing,
    List(Vec<String>),
    Text(String),
}

impl RolesClaim {
    fn names(self) -> Vec<String> {
        match self {
            RolesClaim::Missing => Vec::new(),
            RolesClaim::List(list) => list,
            RolesClaim::Text(text) => text
                .split([' ', ','])
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }
}

struct Key {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

pub struct JwtVerifier {
    keys: Vec<Key>,
    issuer: String,
    audience: String,
    leeway: u64,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key material stays out of logs.
        f.debug_struct("JwtVerifier")
            .field("keys", &self.keys.len())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

impl JwtVerifier {
    /// Reads the configured keys; an error names the setting, never a key.
    pub fn from_config(config: &AuthConfig) -> Result<Self, String> {
        let mut keys = Vec::new();
        if !config.jwt_hs256_secret.is_empty() {
            let secret = crate::secrets::resolve(&config.jwt_hs256_secret)
                .map_err(|e| format!("auth.jwt_hs256_secret: {e}"))?;
            if secret.len() < 32 {
                return Err(format!(
                    "auth.jwt_hs256_secret: the key is {} bytes; HS256 needs at least 32",
                    secret.len()
                ));
            }
            keys.push(Key {
                kid: None,
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(secret.as_bytes()),
            });
        }
        if !config.jwt_jwks_file.as_os_str().is_empty() {
            keys.extend(jwks_keys(&config.jwt_jwks_file)?);
        }
        if keys.is_empty() {
            return Err(
                "auth.mode = \"jwt\" has no key: set auth.jwt_hs256_secret or auth.jwt_jwks_file"
                    .into(),
            );
        }
        Ok(Self {
            keys,
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
            leeway: config.jwt_leeway_seconds,
        })
    }

    pub fn verify(&self, token: &str) -> Result<Claimed, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            ErrorKind::InvalidAlgorithmName | ErrorKind::Json(_) => {
                "the bearer token's algorithm is not accepted (HS256, RS256 or ES256; unsigned tokens never are)".to_owned()
            }
            _ => "the bearer token is not a well-formed JWT".to_owned(),
        })?;
        let candidates: Vec<&Key> = self
            .keys
            .iter()
            .filter(|k| k.algorithm == header.alg)
            .filter(|k| header.kid.is_none() || k.kid.is_none() || k.kid == header.kid)
            .collect();
        if candidates.is_empty() {
            return Err(format!(
                "no configured key verifies {:?} tokens{}",
                header.alg,
                header
                    .kid
                    .as_deref()
                    .map(|k| format!(" with kid {k:?}"))
                    .unwrap_or_default()
            ));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        if self.issuer.is_empty() {
            validation.iss = None;
        } else {
            validation.set_issuer(&[&self.issuer]);
        }
        if self.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&[&self.audience]);
        }
        let mut failure = String::new();
        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => return claimed(data.claims),
                Err(e) => {
                    failure = failure_message(e.kind());
                    if !matches!(e.kind(), ErrorKind::InvalidSignature) {
                        break;
                    }
                }
            }
        }
        Err(failure)
    }
}

fn claimed(claims: Claims) -> Result<Claimed, String> {
    if claims.sub.trim().is_empty() {
        return Err("the bearer token has no sub claim (the principal)".into());
    }
    if claims.tenant.trim().is_empty() {
        return Err("the bearer token has no tenant claim".into());
    }
    crate::context::validate_tenant(&claims.tenant)
        .map_err(|e| format!("the bearer token's tenant claim: {e}"))?;
    Ok(Claimed {
        principal: claims.sub,
        tenant: claims.tenant,
        roles: claims.roles.names(),
    })
}

fn failure_message(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::InvalidSignature => "the bearer token's signature does not verify".into(),
        ErrorKind::ExpiredSignature => "the bearer token has expired".into(),
        ErrorKind::ImmatureSignature => "the bearer token is not valid yet (nbf)".into(),
        ErrorKind::InvalidIssuer => "the bearer token's issuer is not the configured one".into(),
        ErrorKind::InvalidAudience => {
            "the bearer token's audience does not include the configured one".into()
        }
        ErrorKind::MissingRequiredClaim(claim) => {
            format!("the bearer token has no {claim} claim")
        }
        ErrorKind::InvalidAlgorithm => "the bearer token's algorithm does not match its key".into(),
        _ => "the bearer token is not a well-formed JWT".into(),
    }
}

fn jwks_keys(path: &Path) -> Result<Vec<Key>, String> {
    let where_ = format!("auth.jwt_jwks_file {}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| format!("{where_}: {e}"))?;
    let set: JwkSet =
        serde_json::from_str(&text).map_err(|e| format!("{where_} is not a JWKS: {e}"))?;
    let mut keys = Vec::new();
    for (index, jwk) in set.keys.iter().enumerate() {
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            return Err(format!(
                "{where_}: keys[{index}] is an encryption key (use: enc), not a signing key"
            ));
        }
        let algorithm = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                Algorithm::ES256
            }
            _ => {
                return Err(format!(
                    "{where_}: keys[{index}] is neither an RSA (RS256) nor an EC P-256 (ES256) key"
                ));
            }
        };
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|e| format!("{where_}: keys[{index}] cannot be read: {e}"))?;
        keys.push(Key {
            kid: jwk.common.key_id.clone(),
            algorithm,
            key,
        });
    }
    Ok(keys)
}
