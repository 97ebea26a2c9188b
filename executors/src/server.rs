//! What every sidecar shares: CLI and config, tracing, gRPC server with health and reflection
//! (v1 and v1alpha), optional (m)TLS, and graceful shutdown on SIGTERM or ctrl-c.

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use ops_proto::executor::ExecutorKind;
use ops_proto::executor::executor_server::ExecutorServer;
use ops_proto::executor_api::{ExecutorGrpcAdapter, LISTENING_PREFIX};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::config::ExecutorConfig;
use crate::service::LocalExecutor;

#[derive(Debug, Parser)]
struct Cli {
    /// Address to bind (port 0 picks a free port).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Shut down when standard input closes: a supervisor keeps the pipe open, so the sidecar
    /// never outlives it, even one that was killed without a chance to stop it.
    #[arg(long)]
    exit_with_parent: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("reflection setup failed: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("cannot read tls file {path}: {source}")]
    TlsFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("server.tls_cert and server.tls_key must be set together")]
    TlsIncomplete,
}

fn read(path: &PathBuf) -> Result<Vec<u8>, ServeError> {
    std::fs::read(path).map_err(|source| ServeError::TlsFile {
        path: path.clone(),
        source,
    })
}

/// Serves `executor` on an already-bound listener until `shutdown` resolves.
pub async fn serve(
    config: &ExecutorConfig,
    executor: Arc<LocalExecutor>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<ExecutorServer<ExecutorGrpcAdapter<LocalExecutor>>>()
        .await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(ops_proto::executor::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let mut builder = Server::builder();
    match (&config.server.tls_cert, &config.server.tls_key) {
        (Some(cert), Some(key)) => {
            let mut tls =
                ServerTlsConfig::new().identity(Identity::from_pem(read(cert)?, read(key)?));
            if let Some(ca) = &config.server.client_ca {
                tls = tls.client_ca_root(Certificate::from_pem(read(ca)?));
            }
            builder = builder.tls_config(tls)?;
        }
        (None, None) => {}
        _ => return Err(ServeError::TlsIncomplete),
    }
    let grace = Duration::from_secs(config.server.shutdown_grace_seconds);
    let draining = Arc::new(tokio::sync::Notify::new());
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let signal = draining.clone();
    let server = builder
        .add_service(health_service)
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?)
        .add_service(ExecutorServer::new(ExecutorGrpcAdapter(executor)))
        .serve_with_incoming_shutdown(incoming, async move {
            shutdown.await;
            signal.notify_waiters();
        });
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result.map_err(ServeError::from),
        () = draining.notified() => {}
    }
    // Shutdown began: in-flight calls get the grace period to finish.
    match tokio::time::timeout(grace, server).await {
        Ok(result) => result.map_err(ServeError::from),
        Err(_) => {
            tracing::warn!(
                grace_seconds = grace.as_secs(),
                "in-flight calls cut at the shutdown grace period"
            );
            Ok(())
        }
    }
}

/// Resolves when standard input reaches its end (the supervisor that holds it is gone).
async fn stdin_closed() {
    use tokio::io::AsyncReadExt;
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    while let Ok(n) = stdin.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

async fn shutdown_signal(exit_with_parent: bool) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let parent = async {
        if exit_with_parent {
            stdin_closed().await;
            tracing::warn!("standard input closed: the supervisor is gone, shutting down");
        } else {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
        () = parent => {}
    }
}

fn init_tracing(config: &ExecutorConfig) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The whole `main` of a sidecar binary.
pub fn main_for(kind: ExecutorKind) -> ExitCode {
    let cli = Cli::parse();
    let mut config = match ExecutorConfig::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("invalid configuration: {error}");
            return ExitCode::from(2);
        }
    };
    if let Some(listen) = cli.listen {
        config.server.listen = listen;
    }
    init_tracing(&config);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        let listener = match TcpListener::bind(config.server.listen).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(listen = %config.server.listen, %error, "cannot bind");
                return ExitCode::FAILURE;
            }
        };
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "{LISTENING_PREFIX}{addr}");
        let _ = stdout.flush();
        tracing::info!(kind = ?kind, %addr, "executor serving");
        let executor = Arc::new(LocalExecutor::new(kind, config.limits.clone()));
        match serve(
            &config,
            executor,
            listener,
            shutdown_signal(cli.exit_with_parent),
        )
        .await
        {
            Ok(()) => {
                tracing::info!("executor stopped");
                ExitCode::SUCCESS
            }
            Err(error) => {
                tracing::error!(%error, "executor failed");
                ExitCode::FAILURE
            }
        }
    });
    // Not a plain drop: that waits for the blocking read of stdin (`--exit-with-parent`), which
    // returns only when the supervisor closes the pipe — a SIGTERMed sidecar would linger.
    runtime.shutdown_background();
    code
}
