//! The LLM endpoint (`[llm]`): one OpenAI-compatible chat completions client behind a circuit
//! breaker, pricing each call from the configured prices. What to ask and how to read the
//! reply belongs to the callers (the pipeline's planner and answer writer); this module only
//! sends messages and reports what came back, as an [`LlmCall`] for the trace and usage log.

pub mod breaker;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ops_proto::v1::{AssetRef, LlmCall};
use serde_json::json;

pub use crate::config::{LlmConfig, LlmMode, LlmPrice};
use breaker::{Breaker, BreakerState};

/// The most of a reply kept in the trace.
const MAX_RAW_REPLY: usize = 16 * 1024;

/// Why a call gave nothing usable. The slugs are `AskMeta.fallback_reason` and the usage log's
/// outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    BreakerOpen,
    Timeout,
    /// 429 from the endpoint.
    RateLimited,
    /// Another non-success status.
    HttpError(u16),
    /// No connection (refused, DNS, TLS).
    Unreachable,
    /// Not a chat completion, or no message content.
    InvalidReply,
    /// A completion whose content is not what the caller's contract asks for.
    SchemaMismatch,
    /// The tenant's Policy daily spend cap is reached.
    DailySpendCap,
}

impl Failure {
    pub fn slug(&self) -> &'static str {
        match self {
            Failure::BreakerOpen => "breaker_open",
            Failure::Timeout => "timeout",
            Failure::RateLimited => "rate_limited",
            Failure::HttpError(_) => "http_error",
            Failure::Unreachable => "unreachable",
            Failure::InvalidReply => "invalid_reply",
            Failure::SchemaMismatch => "schema_mismatch",
            Failure::DailySpendCap => "daily_spend_cap",
        }
    }
}

/// One chat message.
#[derive(Debug, Clone)]
pub struct Message {
    pub role: &'static str,
    pub content: String,
}

impl Message {
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: "system",
            content: content.into(),
        }
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: "user",
            content: content.into(),
        }
    }
}

/// What to ask.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// "planner" or "summarizer".
    pub purpose: &'static str,
    /// The Prompt asset the messages came from.
    pub prompt: Option<AssetRef>,
    /// The Prompt's model; empty: the configured one.
    pub model: &'a str,
    pub messages: Vec<Message>,
    /// Ask for a JSON object reply (when `[llm] json_mode`).
    pub json: bool,
}

/// A call's result: the reply's text, and the call as the trace and usage log keep it.
#[derive(Debug)]
pub struct Reply {
    pub content: Result<String, Failure>,
    pub call: Option<LlmCall>,
}

/// The configured endpoint. Cheap to share (`Arc`).
pub struct Llm {
    pub mode: LlmMode,
    http: reqwest::Client,
    endpoint: String,
    provider: String,
    model: String,
    api_key: Option<String>,
    max_tokens: u32,
    json_mode: bool,
    prices: BTreeMap<String, LlmPrice>,
    breaker: Breaker,
}

impl std::fmt::Debug for Llm {
    // By hand: the API key never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Llm")
            .field("mode", &self.mode)
            .field("endpoint", &self.endpoint)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

impl Llm {
    /// The client `config` describes, or None when `mode = "off"`. The API key reference is
    /// read here, once: a missing secret fails the start, not the first question.
    pub fn from_config(config: &LlmConfig) -> Result<Option<Self>, String> {
        if config.mode == LlmMode::Off {
            return Ok(None);
        }
        let api_key = if config.api_key.is_empty() {
            None
        } else {
            Some(
                crate::secrets::resolve(&config.api_key)
                    .map_err(|e| format!("llm.api_key: {e}"))?,
            )
        };
        let http = crate::http_client::build(Duration::from_millis(config.timeout_ms))?;
        Ok(Some(Self {
            mode: config.mode,
            http,
            endpoint: config.endpoint.clone(),
            provider: config.provider.clone(),
            model: config.model.clone(),
            api_key,
            max_tokens: config.max_tokens,
            json_mode: config.json_mode,
            prices: config.prices.clone(),
            breaker: Breaker::new(
                config.breaker.failures,
                Duration::from_millis(config.breaker.window_ms),
                Duration::from_millis(config.breaker.cooldown_ms),
            ),
        }))
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// The model a request goes to.
    pub fn model_for<'a>(&'a self, requested: &'a str) -> &'a str {
        if requested.trim().is_empty() {
            &self.model
        } else {
            requested.trim()
        }
    }

    /// USD of a call from the configured prices (0 for a model without one).
    pub fn cost(&self, model: &str, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        self.prices.get(model).map_or(0.0, |p| {
            (prompt_tokens as f64 * p.prompt_per_1k
                + completion_tokens as f64 * p.completion_per_1k)
                / 1000.0
        })
    }

    /// Sends `request` unless the breaker is open. A call that was made always comes back
    /// with its [`LlmCall`], failed or not.
    pub async fn chat(&self, request: Request<'_>) -> Reply {
        let Some(permit) = self.breaker.try_acquire() else {
            return Reply {
                content: Err(Failure::BreakerOpen),
                call: None,
            };
        };
        let model = self.model_for(request.model).to_owned();
        let started = Instant::now();
        let sent = self.send(&model, &request).await;
        let latency = started.elapsed();
        // The endpoint failed when it did not answer with a completion; a completion whose
        // content the caller cannot use is the model's doing, not the endpoint's.
        permit.record(sent.is_ok());
        let metrics = crate::metrics::get();
        metrics
            .llm_seconds
            .with_label_values(&[request.purpose])
            .observe(latency.as_secs_f64());
        let mut call = LlmCall {
            purpose: request.purpose.to_owned(),
            provider: self.provider.clone(),
            model: model.clone(),
            prompt: request.prompt.clone(),
            latency_ms: latency.as_secs_f64() * 1000.0,
            outcome: "ok".into(),
            ..LlmCall::default()
        };
        let content = match sent {
            Ok(completion) => {
                call.prompt_tokens = completion.prompt_tokens;
                call.completion_tokens = completion.completion_tokens;
                call.cost_usd = self.cost(
                    &model,
                    completion.prompt_tokens,
                    completion.completion_tokens,
                );
                call.raw_reply = clip(&completion.raw);
                match completion.content {
                    Some(text) => Ok(text),
                    None => {
                        call.outcome = Failure::InvalidReply.slug().into();
                        call.error = "the reply has no choices[0].message.content".into();
                        Err(Failure::InvalidReply)
                    }
                }
            }
            Err((failure, error, raw)) => {
                call.outcome = failure.slug().into();
                call.error = error;
                call.raw_reply = clip(&raw);
                Err(failure)
            }
        };
        metrics
            .llm_calls
            .with_label_values(&[request.purpose, call.outcome.as_str()])
            .inc();
        Reply {
            content,
            call: Some(call),
        }
    }

    async fn send(
        &self,
        model: &str,
        request: &Request<'_>,
    ) -> Result<Completion, (Failure, String, String)> {
        let messages: Vec<serde_json::Value> = request
            .messages
            .iter()
            .map(|m| json!({ "role": m.role, "content": m.content }))
            .collect();
        let mut body = json!({
            "model": model,
            "messages": messages,
            "max_tokens": self.max_tokens,
            "temperature": 0,
        });
        if request.json && self.json_mode {
            body["response_format"] = json!({ "type": "json_object" });
        }
        let mut post = self
            .http
            .post(&self.endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Some(key) = &self.api_key {
            post = post.bearer_auth(key);
        }
        let response = post.send().await.map_err(transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport)?;
        // An error body is not kept: providers quote (part of) a rejected key in it.
        if status.as_u16() == 429 {
            return Err((
                Failure::RateLimited,
                "the endpoint answered 429 Too Many Requests".into(),
                String::new(),
            ));
        }
        if !status.is_success() {
            return Err((
                Failure::HttpError(status.as_u16()),
                format!("the endpoint answered HTTP {}", status.as_u16()),
                String::new(),
            ));
        }
        let raw = String::from_utf8_lossy(&bytes).into_owned();
        Completion::parse(raw).map_err(|(error, raw)| (Failure::InvalidReply, error, raw))
    }
}

fn transport(error: reqwest::Error) -> (Failure, String, String) {
    if error.is_timeout() {
        (
            Failure::Timeout,
            "the endpoint did not answer within llm.timeout_ms".into(),
            String::new(),
        )
    } else {
        // Without the URL: an endpoint may carry credentials in it.
        (
            Failure::Unreachable,
            format!("the endpoint could not be reached: {}", error.without_url()),
            String::new(),
        )
    }
}

/// A chat completion as the OpenAI API shapes it.
struct Completion {
    content: Option<String>,
    prompt_tokens: u64,
    completion_tokens: u64,
    raw: String,
}

impl Completion {
    fn parse(raw: String) -> Result<Self, (String, String)> {
        let value: serde_json::Value = match serde_json::from_str(&raw) {
            Ok(v) => v,
            Err(e) => return Err((format!("the reply is not JSON: {e}"), raw)),
        };
        if value.get("choices").is_none() {
            return Err((
                "the reply is not a chat completion (no choices)".into(),
                raw,
            ));
        }
        let tokens = |key: &str| {
            value
                .get("usage")
                .and_then(|u| u.get(key))
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0)
        };
        Ok(Self {
            content: value
                .pointer("/choices/0/message/content")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned),
            prompt_tokens: tokens("prompt_tokens"),
            completion_tokens: tokens("completion_tokens"),
            raw,
        })
    }
}

fn clip(raw: &str) -> String {
    if raw.len() <= MAX_RAW_REPLY {
        return raw.to_owned();
    }
    let mut end = MAX_RAW_REPLY;
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    raw[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completion_is_read_with_its_usage() {
        let raw = r#"{"choices":[{"message":{"role":"assistant","content":"{}"}}],"usage":{"prompt_tokens":12,"completion_tokens":3}}"#;
        let c = Completion::parse(raw.into()).map_err(|e| e.0);
        let c = c.as_ref().ok();
        assert_eq!(c.and_then(|c| c.content.as_deref()), Some("{}"));
        assert_eq!(
            c.map(|c| (c.prompt_tokens, c.completion_tokens)),
            Some((12, 3))
        );
        assert!(Completion::parse("not json".into()).is_err());
        assert!(Completion::parse(r#"{"error":"x"}"#.into()).is_err());
    }

    #[test]
    fn cost_comes_from_the_model_price() {
        let mut config = LlmConfig {
            mode: LlmMode::Fallback,
            endpoint: "http://127.0.0.1:9/v1/chat/completions".into(),
            model: "m".into(),
            ..LlmConfig::default()
        };
        config.prices.insert(
            "m".into(),
            LlmPrice {
                prompt_per_1k: 0.5,
                completion_per_1k: 2.0,
            },
        );
        let llm = Llm::from_config(&config).ok().flatten();
        let cost = llm
            .as_ref()
            .map(|l| (l.cost("m", 1000, 500), l.cost("other", 1000, 500)));
        assert_eq!(cost, Some((1.5, 0.0)));
        assert!(
            Llm::from_config(&LlmConfig::default())
                .ok()
                .flatten()
                .is_none()
        );
    }

    #[test]
    fn a_long_reply_is_clipped_on_a_character_boundary() {
        let long = "가".repeat(MAX_RAW_REPLY);
        let clipped = clip(&long);
        assert!(clipped.len() <= MAX_RAW_REPLY && !clipped.is_empty());
    }
}
