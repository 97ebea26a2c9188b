//! Webhook delivery: one POST of a JSON payload per alert event, signed when the alert has a
//! secret, retried with exponential backoff on connection errors, timeouts, 408, 429 and 5xx,
//! and recorded in `alert_deliveries` from the first attempt on (pending → delivered/failed).

use std::time::Duration;

use hmac::{KeyInit, Mac};
use sha2::Sha256;

use super::WatchError;
use crate::config::WebhookConfig;
use crate::storage::{Db, unix_micros};

/// Where and how one alert is delivered.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub tenant: &'a str,
    pub alert_id: &'a str,
    pub url: &'a str,
    pub secret_ref: &'a str,
}

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub delivery_id: String,
    pub delivered: bool,
    pub attempts: u32,
}

pub struct Webhooks {
    client: reqwest::Client,
    db: Db,
    max_attempts: u32,
    timeout: Duration,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl Webhooks {
    pub fn new(db: Db, config: &WebhookConfig) -> Result<Self, WatchError> {
        Ok(Self {
            client: crate::http_client::build(Duration::from_millis(config.timeout_ms))
                .map_err(WatchError::Internal)?,
            db,
            max_attempts: config.max_attempts.max(1),
            timeout: Duration::from_millis(config.timeout_ms),
            initial_backoff: Duration::from_millis(config.initial_backoff_ms),
            max_backoff: Duration::from_millis(config.max_backoff_ms),
        })
    }

    /// Posts `payload` (a JSON object: its `delivery_id` is set here) until it is accepted,
    /// refused for good or out of attempts; every attempt updates the delivery's record.
    pub async fn deliver(
        &self,
        target: &Target<'_>,
        event: &str,
        mut payload: serde_json::Value,
    ) -> Result<Outcome, WatchError> {
        let delivery_id = uuid::Uuid::new_v4().to_string();
        if let Some(object) = payload.as_object_mut() {
            object.insert("delivery_id".into(), delivery_id.clone().into());
        }
        let body = payload.to_string();
        sqlx::query(
            "INSERT INTO alert_deliveries (delivery_id, alert_id, tenant_id, event, payload, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, 'pending', $6)",
        )
        .bind(&delivery_id)
        .bind(target.alert_id)
        .bind(target.tenant)
        .bind(event)
        .bind(&body)
        .bind(unix_micros())
        .execute(self.db.pool())
        .await?;
        let signature = match target.secret_ref {
            "" => None,
            reference => match crate::secrets::resolve(reference) {
                Ok(secret) => Some(sign(secret.as_bytes(), body.as_bytes())),
                // Never sent unsigned when a signature was asked for.
                Err(message) => {
                    self.finish(&delivery_id, false, 0, 0, &message).await?;
                    return Ok(Outcome {
                        delivery_id,
                        delivered: false,
                        attempts: 0,
                    });
                }
            },
        };
        let mut backoff = self.initial_backoff;
        for attempt in 1..=self.max_attempts {
            let mut request = self
                .client
                .post(target.url)
                .header("content-type", "application/json")
                .header("x-ops-delivery", &delivery_id)
                .header("x-ops-event", event)
                .body(body.clone());
            if let Some(signature) = &signature {
                request = request.header("x-ops-signature", signature);
            }
            let (status, error, retry) = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let retry = status.is_server_error()
                        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                        || status == reqwest::StatusCode::REQUEST_TIMEOUT;
                    let error = if status.is_success() {
                        String::new()
                    } else {
                        format!("the receiver answered HTTP {status}")
                    };
                    (status.as_u16(), error, retry)
                }
                // Without the URL: it may carry a token.
                Err(e) => (0, e.without_url().to_string(), true),
            };
            let delivered = (200..300).contains(&status);
            if delivered || !retry || attempt == self.max_attempts {
                self.finish(&delivery_id, delivered, attempt, status, &error)
                    .await?;
                if !delivered {
                    tracing::warn!(delivery = %delivery_id, attempts = attempt, %error, "alert delivery failed");
                }
                return Ok(Outcome {
                    delivery_id,
                    delivered,
                    attempts: attempt,
                });
            }
            sqlx::query(
                "UPDATE alert_deliveries SET attempts = $1, http_status = $2, last_error = $3 WHERE delivery_id = $4",
            )
            .bind(i64::from(attempt))
            .bind(i64::from(status))
            .bind(&error)
            .bind(&delivery_id)
            .execute(self.db.pool())
            .await?;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.max_backoff);
        }
        Err(WatchError::Internal(
            "webhook delivery ended without an outcome".into(),
        ))
    }

    /// Deliveries left "pending" by an opsd that stopped mid-delivery become "failed". Only
    /// those older than the longest a delivery can take (every attempt timing out after the
    /// longest backoff), so another replica's delivery in progress is never touched.
    pub async fn close_abandoned(&self) -> Result<u64, WatchError> {
        let longest = (self.timeout + self.max_backoff) * self.max_attempts;
        let before = unix_micros() - i64::try_from(longest.as_micros()).unwrap_or(i64::MAX);
        let closed = sqlx::query(
            "UPDATE alert_deliveries SET status = 'failed', last_error = $1, finished_at = $2 \
             WHERE status = 'pending' AND created_at < $3",
        )
        .bind("opsd stopped before the delivery finished")
        .bind(unix_micros())
        .bind(before)
        .execute(self.db.pool())
        .await?;
        Ok(closed.rows_affected())
    }

    async fn finish(
        &self,
        delivery_id: &str,
        delivered: bool,
        attempts: u32,
        status: u16,
        error: &str,
    ) -> Result<(), WatchError> {
        sqlx::query(
            "UPDATE alert_deliveries SET status = $1, attempts = $2, http_status = $3, last_error = $4, finished_at = $5 \
             WHERE delivery_id = $6",
        )
        .bind(if delivered { "delivered" } else { "failed" })
        .bind(i64::from(attempts))
        .bind(i64::from(status))
        .bind(error)
        .bind(unix_micros())
        .bind(delivery_id)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`, as GitHub and others sign webhooks.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = match hmac::Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this arm is unreachable in practice.
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_rfc_4231_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
