//! OpenTelemetry span export (`[otel] endpoint`, off by default): the `tracing` spans of the
//! pipeline — one `ask` per run with a child per stage — sent over OTLP/HTTP (protobuf) by a
//! batch exporter. Logs stay on stderr; only spans are exported.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

use crate::config::OtelConfig;

/// The exporting tracer provider, or none when no endpoint is configured. Keep it for the
/// process's life and [`shutdown`] it at exit, which flushes the spans still batched.
pub fn provider(config: &OtelConfig) -> Result<Option<SdkTracerProvider>, String> {
    if config.endpoint.trim().is_empty() {
        return Ok(None);
    }
    // The exporter's HTTP client uses rustls; ring is the process's provider (as for webhooks).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(config.endpoint.trim())
        .build()
        .map_err(|e| format!("otel.endpoint {:?}: {e}", config.endpoint))?;
    Ok(Some(
        SdkTracerProvider::builder()
            .with_resource(
                Resource::builder()
                    .with_service_name(config.service_name.clone())
                    .build(),
            )
            .with_batch_exporter(exporter)
            .build(),
    ))
}

/// The `tracing` layer that turns spans into OpenTelemetry spans of `provider`.
pub fn layer<S>(
    provider: &SdkTracerProvider,
) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("opsd"))
}

/// Flushes and stops the exporter.
pub fn shutdown(provider: SdkTracerProvider) {
    if let Err(error) = provider.shutdown() {
        tracing::warn!(%error, "OpenTelemetry spans not all exported at shutdown");
    }
}
