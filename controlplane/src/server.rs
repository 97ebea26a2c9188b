//! The `opsd` gRPC server: health, reflection (v1 and v1alpha, for grpcurl 1.8.6), the auth
//! layer in front of every RPC, and graceful shutdown that drains in-flight calls.

use std::future::Future;
use std::time::Duration;

use ops_proto::v1::alerts_server::AlertsServer;
use ops_proto::v1::api_keys_server::ApiKeysServer;
use ops_proto::v1::asset_registry_server::AssetRegistryServer;
use ops_proto::v1::audit_server::AuditServer;
use ops_proto::v1::inspector_server::InspectorServer;
use ops_proto::v1::ops_service_server::OpsServiceServer;
use ops_proto::v1::regression_server::RegressionServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::audit::AuditLog;
use crate::auth::api_keys::ApiKeyStore;
use crate::auth::{Auth, AuthLayer};
use crate::config::Config;
use crate::execute::Executors;
use crate::pipeline::Pipeline;
use crate::plugins::{PluginError, PluginHost};
use crate::registry::Registry;
use crate::services::RegressionGrpc;
use crate::services::alerts::AlertsGrpc;
use crate::services::api_keys::ApiKeysGrpc;
use crate::services::audit::AuditGrpc;
use crate::services::ops::{InspectorGrpc, OpsGrpc};
use crate::services::registry::RegistryGrpc;
use crate::storage::Db;
use crate::trace::TraceWriter;
use crate::watch::alerts::AlertStore;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    #[error("reflection setup failed: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("plugin host: {0}")]
    Plugins(PluginError),
    #[error("{0}")]
    Auth(String),
    #[error("TLS file {0}")]
    Tls(String),
    #[error("metrics listener: {0}")]
    Metrics(std::io::Error),
    #[error("[llm]: {0}")]
    Llm(String),
}

/// Opens the configured database (applying migrations) and builds the registry.
pub async fn open_registry(config: &Config) -> Result<Registry, ServerError> {
    let db = Db::open(
        &config.storage_url(),
        config.storage.max_connections,
        Some(&config.storage.data_dir),
    )
    .await?;
    Ok(Registry::new(db, config.registry.clone()))
}

/// The plugin host of this server: its compiled cache lives under the data directory unless
/// `plugins.cache_dir` says otherwise. Compiling the built-in plugins blocks, so it runs on a
/// blocking thread (and only once per data directory: later starts load the cache).
pub async fn plugin_host(config: &Config) -> Result<PluginHost, ServerError> {
    let plugins = config.plugins.clone();
    let cache_dir = if plugins.cache_dir.as_os_str().is_empty() {
        config.storage.data_dir.join("plugin-cache")
    } else {
        plugins.cache_dir.clone()
    };
    tokio::task::spawn_blocking(move || {
        let host = PluginHost::new(&plugins, Some(cache_dir))?;
        host.load_builtins()?;
        Ok(host)
    })
    .await
    .map_err(|e| ServerError::Plugins(PluginError::Internal(e.to_string())))?
    .map_err(ServerError::Plugins)
}

/// TLS (and mTLS with `server.client_ca`) on the listener when configured.
fn tls(builder: Server, config: &Config) -> Result<Server, ServerError> {
    let (Some(cert), Some(key)) = (&config.server.tls_cert, &config.server.tls_key) else {
        return Ok(builder);
    };
    let read = |path: &std::path::PathBuf| {
        std::fs::read(path).map_err(|e| ServerError::Tls(format!("{}: {e}", path.display())))
    };
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(read(cert)?, read(key)?));
    if let Some(ca) = &config.server.client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(read(ca)?));
    }
    Ok(builder.tls_config(tls)?)
}

/// Serves on an already-bound listener until `shutdown` resolves, then drains in-flight calls
/// for up to `server.shutdown_grace_seconds`.
pub async fn serve(
    config: &Config,
    registry: Registry,
    executors: Option<Executors>,
    plugins: PluginHost,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let keys = ApiKeyStore::new(registry.db().clone());
    // Refused calls and changes are audited by a writer task that stops once the server (the
    // last handle) is gone and its queue is written.
    let (audit_log, audit_writer) = AuditLog::start(registry.db().clone());
    let auth = Auth::from_config(
        &config.auth,
        &config.tenancy.default_tenant,
        Some(keys.clone()),
    )
    .map_err(ServerError::Auth)?
    .audited(audit_log.clone());
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<AssetRegistryServer<RegistryGrpc>>()
        .await;
    health.set_serving::<OpsServiceServer<OpsGrpc>>().await;
    health.set_serving::<InspectorServer<InspectorGrpc>>().await;
    health
        .set_serving::<RegressionServer<RegressionGrpc>>()
        .await;
    health.set_serving::<AlertsServer<AlertsGrpc>>().await;
    health.set_serving::<ApiKeysServer<ApiKeysGrpc>>().await;
    health.set_serving::<AuditServer<AuditGrpc>>().await;

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(ops_proto::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            // google.rpc error details: grpcurl prints a refusal's field violations.
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let max = config.server.max_message_bytes;
    // Traces are written by one task with group commit; it stops after the server has
    // drained (every answered request has its trace committed by then).
    let (traces, trace_writer) =
        TraceWriter::start(registry.db().clone(), config.storage.trace_sync);
    let llm = crate::llm::Llm::from_config(&config.llm)
        .map_err(ServerError::Llm)?
        .map(std::sync::Arc::new);
    if let Some(llm) = &llm {
        tracing::info!(mode = ?llm.mode, "LLM planner on");
    }
    let pipeline = executors.clone().map(|executors| {
        Pipeline::new(registry.clone(), executors, plugins.clone(), traces.clone())
            .with_llm(llm.clone())
    });
    drop(traces);
    // Schedules and alerts: stopped after the server drains, before the trace writer (a
    // scheduled run holds a pipeline, and with it a trace handle).
    let watch_stop = CancellationToken::new();
    let watch = config.watch.enabled.then(|| {
        tokio::spawn(crate::watch::run(
            pipeline.clone(),
            registry.db().clone(),
            config.watch.clone(),
            watch_stop.clone(),
        ))
    });
    let registry_service = AssetRegistryServer::new(RegistryGrpc::new(
        registry.clone(),
        executors,
        plugins,
        pipeline.clone(),
    ))
    .max_decoding_message_size(max)
    .max_encoding_message_size(max);

    let draining = CancellationToken::new();
    let addr = listener.local_addr().ok();
    // Without TCP_NODELAY small responses wait ~40 ms for the peer's delayed ACK.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let server = tls(Server::builder(), config)?
        .layer(AuthLayer::new(auth))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(registry_service)
        .add_service(
            OpsServiceServer::new(OpsGrpc::new(pipeline.clone(), audit_log))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(RegressionServer::new(RegressionGrpc::new(pipeline.clone())))
        .add_service(ApiKeysServer::new(ApiKeysGrpc::new(keys)))
        .add_service(AuditServer::new(AuditGrpc::new(registry.db().clone())))
        .add_service(AlertsServer::new(AlertsGrpc::new(AlertStore::new(
            registry.db().clone(),
        ))))
        .add_service(
            // The last handle: once the server is gone, the trace writer can drain and stop.
            InspectorServer::new(InspectorGrpc::new(registry.db().clone(), pipeline))
                .max_encoding_message_size(max),
        )
        .serve_with_incoming_shutdown(incoming, draining.clone().cancelled_owned());
    // Metrics on their own listener, stopped with the server (bound once the server is built, so a
    // TLS error leaves no listener behind).
    if let Some(listener) = crate::metrics::bind(&config.metrics.listen)
        .await
        .map_err(ServerError::Metrics)?
    {
        tracing::info!(addr = ?listener.local_addr().ok(), "metrics serving at /metrics");
        let stop = draining.clone().cancelled_owned();
        tokio::spawn(async move {
            if let Err(e) = crate::metrics::serve(listener, stop).await {
                tracing::warn!(error = %e, "metrics listener stopped");
            }
        });
    }
    tracing::info!(addr = ?addr, "opsd serving");
    let served = async {
        tokio::pin!(server);
        tokio::select! {
            result = &mut server => result,
            () = shutdown => {
                tracing::info!("shutdown requested: draining in-flight calls");
                health.set_not_serving::<AssetRegistryServer<RegistryGrpc>>().await;
                health.set_not_serving::<OpsServiceServer<OpsGrpc>>().await;
                draining.cancel();
                let grace = Duration::from_secs(config.server.shutdown_grace_seconds);
                match tokio::time::timeout(grace, &mut server).await {
                    Ok(result) => result,
                    Err(_) => {
                        tracing::warn!(grace_seconds = grace.as_secs(), "grace period elapsed; dropping calls still running");
                        Ok(())
                    }
                }
            }
        }
    }
    .await;
    watch_stop.cancel();
    if let Some(watch) = watch {
        match watch.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "schedules and alerts stopped abnormally"),
            Err(error) => tracing::error!(%error, "schedules and alerts task failed"),
        }
    }
    // The server (and with it every trace and audit handle) is gone: the writers drain and
    // stop.
    if let Err(error) = trace_writer.await {
        tracing::error!(%error, "trace writer stopped abnormally");
    }
    if let Err(error) = audit_writer.await {
        tracing::error!(%error, "audit writer stopped abnormally");
    }
    registry.db().close().await;
    served?;
    tracing::info!("opsd stopped");
    Ok(())
}

/// Resolves on SIGTERM or ctrl-c.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
