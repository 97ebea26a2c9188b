//! EXECUTE: dispatch to the executor sidecars (SQL, metrics, graph) through one client type per
//! kind, whether the sidecars are supervised children of `opsd` or configured remote endpoints.

pub mod balance;
pub mod client;
pub mod failover;
pub mod source_health;
pub mod supervisor;
pub mod tasks;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ops_proto::executor::ExecutorKind;
use ops_proto::v1::SourceSpec;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::config::{ExecutorMode, ExecutorsConfig};
use crate::model::requests;
use balance::{ChannelSettings, EndpointPool};
pub use client::{ClientOptions, ExecutorClient, RetryPolicy};
use supervisor::{Sidecar, SidecarSpec};

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(
        "sidecar binary {path} not found; build the workspace (`cargo build --release`) or set executors.bin_dir, or run with executors.mode = \"connect\""
    )]
    MissingBinary { path: PathBuf },
    #[error(transparent)]
    Supervisor(#[from] supervisor::SupervisorError),
    #[error(transparent)]
    Endpoint(#[from] balance::EndpointError),
    #[error("cannot read {path}: {source}")]
    TlsFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The executor clients of the control plane, and the sidecars it supervises.
#[derive(Debug, Clone)]
pub struct Executors {
    pub sql: ExecutorClient,
    pub metrics: ExecutorClient,
    pub graph: ExecutorClient,
    sidecars: Arc<Vec<Sidecar>>,
    /// opsd's data dir: a Source's relative SQLite path is resolved against it.
    data_dir: Arc<PathBuf>,
}

impl Executors {
    pub fn client(&self, kind: ExecutorKind) -> &ExecutorClient {
        match kind {
            ExecutorKind::Sql | ExecutorKind::Unspecified => &self.sql,
            ExecutorKind::Metrics => &self.metrics,
            ExecutorKind::Graph => &self.graph,
        }
    }

    /// The connection settings sent to an executor for a Source asset: a relative SQLite path
    /// becomes a path in opsd's data dir (where the demo loads its data), so an asset directory
    /// can name its database without knowing where opsd keeps its files.
    pub fn source_config(
        &self,
        source_id: &str,
        spec: &SourceSpec,
    ) -> ops_proto::executor::SourceConfig {
        let mut config = requests::source_config(source_id, spec);
        let path = Path::new(&config.path);
        if !config.path.is_empty() && path.is_relative() {
            config.path = self.data_dir.join(path).to_string_lossy().into_owned();
        }
        config
    }

    /// The same in-process executor for every kind (tests, benchmarks).
    pub fn in_process(
        sql: Arc<dyn ops_proto::executor_api::ExecutorApi>,
        metrics: Arc<dyn ops_proto::executor_api::ExecutorApi>,
        graph: Arc<dyn ops_proto::executor_api::ExecutorApi>,
        options: ClientOptions,
    ) -> Self {
        Self {
            sql: ExecutorClient::in_process(sql, options.clone()),
            metrics: ExecutorClient::in_process(metrics, options.clone()),
            graph: ExecutorClient::in_process(graph, options),
            sidecars: Arc::new(Vec::new()),
            data_dir: Arc::new(PathBuf::from(".")),
        }
    }

    pub fn sidecars(&self) -> &[Sidecar] {
        &self.sidecars
    }

    /// Waits for the supervised sidecars to stop once the cancellation token passed to
    /// [`Executors::start`] fired.
    pub async fn stop(self) {
        if let Ok(sidecars) = Arc::try_unwrap(self.sidecars) {
            for sidecar in sidecars {
                sidecar.join().await;
            }
        }
    }

    /// Builds the clients from configuration: spawns and supervises the sidecars
    /// (`mode = "spawn"`) or connects to the configured endpoints (`mode = "connect"`).
    /// `data_dir` is opsd's data dir (relative SQLite paths of Sources are resolved against it).
    pub async fn start(
        config: &ExecutorsConfig,
        data_dir: &Path,
        cancel: CancellationToken,
    ) -> Result<Self, DispatchError> {
        let settings = ChannelSettings {
            connect_timeout: Duration::from_millis(config.connect_timeout_ms),
            tls: tls_config(config)?,
        };
        let options = ClientOptions {
            default_timeout: Duration::from_millis(config.default_timeout_ms),
            max_concurrency: config.max_concurrency,
            retry: RetryPolicy {
                max_attempts: config.retry.max_attempts,
                initial_backoff: Duration::from_millis(config.retry.initial_backoff_ms),
                max_backoff: Duration::from_millis(config.retry.max_backoff_ms),
                multiplier: config.retry.multiplier,
            },
            max_message_bytes: config.max_message_bytes,
        };
        let mut sidecars = Vec::new();
        let client =
            |kind: ExecutorKind| -> Result<(ExecutorClient, Option<SidecarSpec>), DispatchError> {
                let pool = EndpointPool::new(kind.name(), settings.clone());
                let spec = match config.mode {
                    ExecutorMode::Connect => {
                        pool.set_endpoints(config.endpoints(kind))?;
                        None
                    }
                    ExecutorMode::Spawn => Some(sidecar_spec(config, kind)?),
                    ExecutorMode::Off => None,
                };
                pool.spawn_health_checks(
                    Duration::from_millis(config.health_interval_ms),
                    cancel.clone(),
                );
                Ok((ExecutorClient::remote(pool, options.clone()), spec))
            };
        let (sql, sql_spec) = client(ExecutorKind::Sql)?;
        let (metrics, metrics_spec) = client(ExecutorKind::Metrics)?;
        let (graph, graph_spec) = client(ExecutorKind::Graph)?;
        for (client, spec) in [
            (&sql, sql_spec),
            (&metrics, metrics_spec),
            (&graph, graph_spec),
        ] {
            if let (Some(spec), Some(pool)) = (spec, client.pool()) {
                sidecars.push(supervisor::supervise(spec, pool.clone(), cancel.clone()).await?);
            }
        }
        Ok(Self {
            sql,
            metrics,
            graph,
            sidecars: Arc::new(sidecars),
            data_dir: Arc::new(
                std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_owned()),
            ),
        })
    }
}

fn sidecar_spec(
    config: &ExecutorsConfig,
    kind: ExecutorKind,
) -> Result<SidecarSpec, DispatchError> {
    let dir = match &config.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(PathBuf::from))
            .unwrap_or_default(),
    };
    let program = dir.join(kind.binary());
    if !program.is_file() {
        return Err(DispatchError::MissingBinary { path: program });
    }
    Ok(SidecarSpec {
        program,
        args: Vec::new(),
        startup_timeout: Duration::from_secs(20),
        initial_backoff: Duration::from_millis(config.restart.initial_backoff_ms),
        max_backoff: Duration::from_millis(config.restart.max_backoff_ms),
    })
}

fn tls_config(config: &ExecutorsConfig) -> Result<Option<ClientTlsConfig>, DispatchError> {
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|source| DispatchError::TlsFile {
            path: path.clone(),
            source,
        })
    };
    let Some(ca) = &config.tls.ca_cert else {
        return Ok(None);
    };
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?));
    if let Some(domain) = &config.tls.domain {
        tls = tls.domain_name(domain.clone());
    }
    if let (Some(cert), Some(key)) = (&config.tls.client_cert, &config.tls.client_key) {
        tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
    }
    Ok(Some(tls))
}

/// The EXECUTE stage: the task DAG → tool results, tool calls and failures, each task on its
/// sidecar through the one failover path, within `deadline`.
pub async fn run(
    executors: &Executors,
    health: &source_health::SourceHealth,
    snapshot: &crate::model::snapshot::Snapshot,
    trace_id: &str,
    deadline: std::time::Instant,
    input: &crate::model::stages::ExecuteInput,
) -> crate::model::stages::ExecuteOutput {
    tasks::TaskRunner {
        executors,
        health,
        snapshot,
        trace_id,
        deadline,
    }
    .run(&input.tasks)
    .await
}
