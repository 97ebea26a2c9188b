//! A real OpenAI-compatible chat completions server on loopback that plays scripted replies
//! (the one network peer OPS cannot run here). It records every request it receives.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::BodyExt;

/// One scripted reply.
#[derive(Debug, Clone)]
pub enum Scripted {
    /// A completion whose message content is this text, with these token counts.
    Content(String, u64, u64),
    /// A completion whose content is the `answer` field of the request's user message (the
    /// answer writer then restates the answer line).
    EchoAnswer,
    /// This HTTP status with an error body.
    Status(u16),
    /// This body as it is, with status 200.
    Raw(String),
    /// Waits, then replies with the inner reply.
    Slow(Duration, Box<Scripted>),
}

impl Scripted {
    /// A completion holding `plan` as its JSON content (100 prompt, 20 completion tokens).
    pub fn plan(plan: serde_json::Value) -> Self {
        Scripted::Content(plan.to_string(), 100, 20)
    }
}

#[derive(Default)]
struct State {
    script: VecDeque<Scripted>,
    /// Played when the script is empty.
    otherwise: Option<Scripted>,
    received: Vec<serde_json::Value>,
}

/// The server's handle: script replies, read what was asked.
#[derive(Clone)]
pub struct ScriptedLlm {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl ScriptedLlm {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/v1/chat/completions",
            listener.local_addr().unwrap()
        );
        let state: Arc<Mutex<State>> = Arc::default();
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let state = state.clone();
                            async move { answer(state, req).await }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { url, state }
    }

    /// Queues replies, played in order.
    pub fn then(&self, reply: Scripted) -> &Self {
        self.state.lock().unwrap().script.push_back(reply);
        self
    }

    /// The reply once the queue is empty (default: HTTP 500).
    pub fn otherwise(&self, reply: Scripted) {
        self.state.lock().unwrap().otherwise = Some(reply);
    }

    /// Request bodies received so far.
    pub fn received(&self) -> Vec<serde_json::Value> {
        self.state.lock().unwrap().received.clone()
    }

    pub fn calls(&self) -> usize {
        self.state.lock().unwrap().received.len()
    }
}

fn completion(content: &str, prompt_tokens: u64, completion_tokens: u64) -> String {
    serde_json::json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}
    })
    .to_string()
}

async fn answer(
    state: Arc<Mutex<State>>,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<http_body_util::Full<hyper::body::Bytes>>, hyper::http::Error> {
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let mut reply = {
        let mut state = state.lock().unwrap();
        state.received.push(request.clone());
        state
            .script
            .pop_front()
            .or_else(|| state.otherwise.clone())
            .unwrap_or(Scripted::Status(500))
    };
    while let Scripted::Slow(wait, inner) = reply {
        tokio::time::sleep(wait).await;
        reply = *inner;
    }
    let (status, body) = match reply {
        Scripted::Content(text, p, c) => (200, completion(&text, p, c)),
        Scripted::EchoAnswer => {
            let user = request["messages"]
                .as_array()
                .and_then(|m| m.iter().find(|m| m["role"] == "user"))
                .and_then(|m| m["content"].as_str())
                .unwrap_or_default();
            let data: serde_json::Value = serde_json::from_str(user).unwrap_or_default();
            (
                200,
                completion(data["answer"].as_str().unwrap_or_default(), 80, 30),
            )
        }
        Scripted::Status(code) => (
            code,
            serde_json::json!({"error": {"message": "scripted failure"}}).to_string(),
        ),
        Scripted::Raw(body) => (200, body),
        Scripted::Slow(..) => unreachable!(),
    };
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
}
