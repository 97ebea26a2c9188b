//! OpenTelemetry export on the real `opsd demo` binary: with `OPS__OTEL__ENDPOINT` pointing at
//! a real OTLP/HTTP receiver on loopback, an ask is exported as an `ask` span (tenant, trace
//! id, route, status) with one child span per stage, all flushed by a SIGTERM shutdown.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use ops_proto::v1::AskRequest;
use ops_proto::v1::ops_service_client::OpsServiceClient;
use prost::Message;

/// A real OTLP/HTTP (protobuf) traces receiver on loopback.
async fn receiver() -> (String, Arc<Mutex<Vec<Span>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
    let received = spans.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let received = received.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let received = received.clone();
                        async move {
                            assert_eq!(req.uri().path(), "/v1/traces");
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let export = ExportTraceServiceRequest::decode(body).unwrap();
                            let mut spans = received.lock().unwrap();
                            for resource in export.resource_spans {
                                for scope in resource.scope_spans {
                                    spans.extend(scope.spans);
                                }
                            }
                            hyper::Response::builder()
                                .header("content-type", "application/x-protobuf")
                                .body(http_body_util::Full::new(hyper::body::Bytes::from(
                                    ExportTraceServiceResponse::default().encode_to_vec(),
                                )))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, spans)
}

fn attribute(span: &Span, key: &str) -> String {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            Value::StringValue(s) => s.clone(),
            other => format!("{other:?}"),
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ask_is_exported_as_a_span_with_one_child_per_stage() {
    let (url, spans) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr, _) = common::spawn_opsd(
        "demo",
        dir.path(),
        &[
            ("OPS__OTEL__ENDPOINT", url.as_str()),
            ("OPS__OTEL__SERVICE_NAME", "opsd-otel-test"),
        ],
    );
    let mut ops = OpsServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let mut request = tonic::Request::new(AskRequest {
        question: "GT-01 CPU average last week".into(),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("x-ops-tenant", "acme".parse().unwrap());
    let answer = ops.ask(request).await.expect("answered").into_inner();

    // SIGTERM: opsd drains and flushes the batched spans before it exits.
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    for _ in 0..200 {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let spans = spans.lock().unwrap().clone();
    let ask = spans
        .iter()
        .find(|s| s.name == "ask" && attribute(s, "trace_id") == answer.trace_id)
        .unwrap_or_else(|| {
            panic!(
                "no ask span for {}: {:?}",
                answer.trace_id,
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        });
    assert_eq!(attribute(ask, "tenant"), "acme");
    assert_eq!(attribute(ask, "route"), "ROUTE_ORCH");
    assert_eq!(attribute(ask, "status"), "TRACE_STATUS_SUCCESS");
    let children: Vec<&str> = spans
        .iter()
        .filter(|s| s.parent_span_id == ask.span_id && s.trace_id == ask.trace_id)
        .map(|s| s.name.as_str())
        .collect();
    for stage in ["route_plan", "validate", "execute", "compose"] {
        assert!(children.contains(&stage), "{stage} not in {children:?}");
    }
}
