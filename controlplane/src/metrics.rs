//! Prometheus metrics of this process, served as text at `/metrics` on their own listener
//! (`[metrics] listen`). One process-wide registry: the auth layer, the pipeline and EXECUTE
//! record into it without being handed anything.

use std::net::SocketAddr;
use std::sync::LazyLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Latency buckets in seconds, 0.5 ms to 30 s.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

pub struct Metrics {
    registry: Registry,
    /// Each stage run, by stage and status.
    pub stage_seconds: HistogramVec,
    /// Each answered ask, by tenant, route and status.
    pub asks: IntCounterVec,
    pub ask_seconds: HistogramVec,
    /// Replans of the control loop, by trigger.
    pub replans: IntCounterVec,
    /// EXECUTE runs that read a fallback source, by source.
    pub fallbacks: IntCounterVec,
    /// Executor calls by kind, endpoint and outcome (`ok` / `error`).
    pub executor_calls: IntCounterVec,
    pub executor_seconds: HistogramVec,
    /// Calls the auth layer refused, by gRPC code.
    pub auth_failures: IntCounterVec,
    /// Audit records that could not be written (queue full or a failed write).
    pub audit_dropped: IntCounter,
    /// Every RPC through the auth layer, by service, method and status code.
    pub rpcs: IntCounterVec,
    pub rpc_seconds: HistogramVec,
    /// Tenant snapshots served from the cache, rechecked against the registry, or rebuilt.
    pub snapshots: IntCounterVec,
    /// Plugin calls by plugin and outcome (`ok`, `trap`, `deadline`, `memory`, …).
    pub plugin_calls: IntCounterVec,
    pub plugin_seconds: HistogramVec,
    /// 1 while a plugin's circuit breaker is open.
    pub plugin_breaker_open: IntGaugeVec,
    /// Traces waiting for the writer task.
    pub trace_queue: IntGauge,
    /// Each trace batch's commit (the answers wait for it).
    pub trace_commit_seconds: Histogram,
    /// Traces committed, by outcome (`ok` / `error`).
    pub traces_committed: IntCounterVec,
    /// LLM calls by purpose and outcome (`ok`, `timeout`, `http_error`, …).
    pub llm_calls: IntCounterVec,
    pub llm_seconds: HistogramVec,
    /// The LLM endpoint's breaker: 0 closed, 1 half-open, 2 open.
    pub llm_breaker_state: IntGauge,
}

fn histogram(name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    HistogramVec::new(
        HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()),
        labels,
    )
    .unwrap_or_else(|e| unreachable!("static histogram {name}: {e}"))
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| unreachable!("static counter {name}: {e}"))
}

impl Metrics {
    fn new() -> Self {
        let metrics = Self {
            registry: Registry::new(),
            stage_seconds: histogram(
                "ops_stage_duration_seconds",
                "Duration of each pipeline stage run.",
                &["stage", "status"],
            ),
            asks: counter(
                "ops_asks_total",
                "Answered asks (each has a trace).",
                &["tenant", "route", "status"],
            ),
            ask_seconds: histogram(
                "ops_ask_duration_seconds",
                "Duration of a whole ask, trace commit included.",
                &["route"],
            ),
            replans: counter(
                "ops_replans_total",
                "Replans of the control loop.",
                &["trigger"],
            ),
            fallbacks: counter(
                "ops_fallback_sources_total",
                "EXECUTE runs that read a fallback source.",
                &["source"],
            ),
            executor_calls: counter(
                "ops_executor_calls_total",
                "Executor calls.",
                &["kind", "endpoint", "outcome"],
            ),
            executor_seconds: histogram(
                "ops_executor_call_duration_seconds",
                "Duration of executor calls, retries included.",
                &["kind"],
            ),
            auth_failures: counter(
                "ops_auth_failures_total",
                "Calls the auth layer refused.",
                &["code"],
            ),
            audit_dropped: IntCounter::new(
                "ops_audit_records_dropped_total",
                "Audit records that could not be written.",
            )
            .unwrap_or_else(|e| unreachable!("static counter: {e}")),
            rpcs: counter(
                "ops_rpc_calls_total",
                "RPCs served (registry operations included), by status code.",
                &["service", "method", "code"],
            ),
            rpc_seconds: histogram(
                "ops_rpc_duration_seconds",
                "Time to an RPC's response headers (a stream's first message).",
                &["service", "method"],
            ),
            snapshots: counter(
                "ops_snapshot_loads_total",
                "Tenant snapshots: cached, rechecked (registry unchanged) or rebuilt.",
                &["result"],
            ),
            plugin_calls: counter(
                "ops_plugin_calls_total",
                "Plugin calls by outcome.",
                &["plugin", "outcome"],
            ),
            plugin_seconds: histogram(
                "ops_plugin_call_duration_seconds",
                "Plugin run time (instantiate, call, checks).",
                &["plugin"],
            ),
            plugin_breaker_open: IntGaugeVec::new(
                Opts::new(
                    "ops_plugin_breaker_open",
                    "1 while the plugin's circuit breaker is open.",
                ),
                &["plugin"],
            )
            .unwrap_or_else(|e| unreachable!("static gauge: {e}")),
            trace_queue: IntGauge::new(
                "ops_trace_queue_depth",
                "Traces waiting for the trace writer.",
            )
            .unwrap_or_else(|e| unreachable!("static gauge: {e}")),
            trace_commit_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "ops_trace_commit_duration_seconds",
                    "Commit of one batch of traces.",
                )
                .buckets(BUCKETS.to_vec()),
            )
            .unwrap_or_else(|e| unreachable!("static histogram: {e}")),
            traces_committed: counter(
                "ops_traces_committed_total",
                "Traces committed by the trace writer.",
                &["outcome"],
            ),
            llm_calls: counter(
                "ops_llm_calls_total",
                "Calls to the LLM endpoint by purpose and outcome.",
                &["purpose", "outcome"],
            ),
            llm_seconds: histogram(
                "ops_llm_call_duration_seconds",
                "Calls to the LLM endpoint, until the reply is read.",
                &["purpose"],
            ),
            llm_breaker_state: IntGauge::new(
                "ops_llm_breaker_state",
                "The LLM endpoint's circuit breaker: 0 closed, 1 half-open, 2 open.",
            )
            .unwrap_or_else(|e| unreachable!("static gauge: {e}")),
        };
        for collector in [
            Box::new(metrics.stage_seconds.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(metrics.asks.clone()),
            Box::new(metrics.ask_seconds.clone()),
            Box::new(metrics.replans.clone()),
            Box::new(metrics.fallbacks.clone()),
            Box::new(metrics.executor_calls.clone()),
            Box::new(metrics.executor_seconds.clone()),
            Box::new(metrics.auth_failures.clone()),
            Box::new(metrics.audit_dropped.clone()),
            Box::new(metrics.rpcs.clone()),
            Box::new(metrics.rpc_seconds.clone()),
            Box::new(metrics.snapshots.clone()),
            Box::new(metrics.plugin_calls.clone()),
            Box::new(metrics.plugin_seconds.clone()),
            Box::new(metrics.plugin_breaker_open.clone()),
            Box::new(metrics.trace_queue.clone()),
            Box::new(metrics.trace_commit_seconds.clone()),
            Box::new(metrics.traces_committed.clone()),
            Box::new(metrics.llm_calls.clone()),
            Box::new(metrics.llm_seconds.clone()),
            Box::new(metrics.llm_breaker_state.clone()),
        ] {
            if let Err(e) = metrics.registry.register(collector) {
                unreachable!("metric names are unique: {e}");
            }
        }
        metrics
    }

    /// Every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "metrics could not be encoded");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// This process's metrics.
pub fn get() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            (
                [(
                    http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                get().render(),
            )
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds the metrics listener named by config (empty: no endpoint).
pub async fn bind(listen: &str) -> std::io::Result<Option<tokio::net::TcpListener>> {
    if listen.trim().is_empty() {
        return Ok(None);
    }
    let addr: SocketAddr = listen.parse().map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("metrics.listen {listen:?}: {e}"),
        )
    })?;
    tokio::net::TcpListener::bind(addr).await.map(Some)
}
