//! The demo as a test server: plant-ops in SQLite, the demo assets published, opsd serving on
//! 127.0.0.1:0 with the three real sidecars (spawned by opsd, or started here and connected).
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::Path;

use ops_controlplane::config::{Config, ExecutorMode};
use ops_controlplane::context::CallerContext;
use ops_controlplane::execute::Executors;
use ops_controlplane::registry::Registry;
use ops_controlplane::server;
use ops_proto::v1::inspector_client::InspectorClient;
use ops_proto::v1::{BundleFile, GetTraceRequest, Trace};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::executor_support::{GRAPH, METRICS, SQL, Sidecar};

/// The Ask of one question-file line, for its tenant and at its `as_of`.
pub fn question_request(q: &serde_json::Value) -> tonic::Request<ops_proto::v1::AskRequest> {
    let as_of = time::OffsetDateTime::parse(
        q["as_of"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    request(
        q["tenant"].as_str().unwrap(),
        ops_proto::v1::AskRequest {
            question: q["question"].as_str().unwrap().to_owned(),
            as_of: Some(ops_proto::convert::timestamp(as_of)),
            ..Default::default()
        },
    )
}

pub fn request<T>(tenant: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("x-ops-tenant", tenant.parse().unwrap());
    request
}

/// The committed trace `trace_id`, read back as `tenant` through the Inspector.
pub async fn read_trace(
    inspector: &mut InspectorClient<Channel>,
    tenant: &str,
    trace_id: &str,
) -> Trace {
    inspector
        .get_trace(request(
            tenant,
            GetTraceRequest {
                trace_id: trace_id.to_owned(),
            },
        ))
        .await
        .expect("trace")
        .into_inner()
        .trace
        .expect("trace body")
}

pub struct Demo {
    pub channel: Channel,
    /// `host:port` of the server.
    pub addr: String,
    pub registry: Registry,
    /// Sidecars this test started (connect mode), in the order sql, metrics, graph.
    pub sidecars: Vec<Sidecar>,
    stop: tokio::sync::oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<()>,
    cancel: CancellationToken,
    pub executors: Executors,
    _dir: tempfile::TempDir,
}

pub async fn start_demo(mode: ExecutorMode) -> Demo {
    start_demo_with(mode, |_| {}).await
}

/// [`start_demo`] with the test's own settings applied last.
pub async fn start_demo_with(mode: ExecutorMode, configure: impl FnOnce(&mut Config)) -> Demo {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.storage.data_dir = dir.path().to_owned();
    config.storage.url = format!("sqlite://{}?mode=rwc", dir.path().join("ops.db").display());
    config.executors.mode = mode;
    let mut sidecars = Vec::new();
    if mode == ExecutorMode::Connect {
        for program in [&*SQL, &*METRICS, &*GRAPH] {
            sidecars.push(Sidecar::start(program).await);
        }
        config.executors.sql_endpoints = vec![sidecars[0].uri()];
        config.executors.metrics_endpoints = vec![sidecars[1].uri()];
        config.executors.graph_endpoints = vec![sidecars[2].uri()];
        // A sidecar the test stops must fail fast.
        config.executors.retry.max_attempts = 2;
        config.executors.retry.initial_backoff_ms = 10;
    }
    config.plugins.cache_dir =
        std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache");
    config.executors.bin_dir = Path::new(&*SQL).parent().map(Path::to_owned);
    configure(&mut config);
    let registry = server::open_registry(&config).await.expect("registry");
    let cancel = CancellationToken::new();
    let executors = Executors::start(&config.executors, dir.path(), cancel.clone())
        .await
        .expect("sidecars");
    ops_controlplane::demo::prepare(dir.path(), &registry)
        .await
        .expect("demo data");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let endpoint = format!("http://{addr}");
    let tls = config.server.tls_cert.is_some();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let plugins = server::plugin_host(&config).await.expect("plugin host");
    let serving = {
        let executors = executors.clone();
        let registry = registry.clone();
        tokio::spawn(async move {
            server::serve(
                &config,
                registry,
                Some(executors),
                plugins,
                listener,
                async {
                    let _ = stopped.await;
                },
            )
            .await
            .expect("serve");
        })
    };
    let channel = Channel::from_shared(endpoint).unwrap();
    // A TLS server: the test connects its own way (this plaintext channel is never used).
    let channel = if tls {
        channel.connect_lazy()
    } else {
        channel.connect().await.expect("connect")
    };
    Demo {
        channel,
        addr,
        registry,
        sidecars,
        stop,
        serving,
        cancel,
        executors,
        _dir: dir,
    }
}

impl Demo {
    /// opsd's data dir (where the demo loaded plant-ops; relative SQLite paths resolve here).
    pub fn data_dir(&self) -> &Path {
        self._dir.path()
    }

    /// Publishes asset documents (bundle files) for `tenant`, as an admin would.
    pub async fn publish(&self, tenant: &str, files: Vec<(&str, String)>) {
        self.try_publish(tenant, files).await.expect("publish");
    }

    /// [`Demo::publish`], returning the registry's refusal instead of failing the test.
    pub async fn try_publish(
        &self,
        tenant: &str,
        files: Vec<(&str, String)>,
    ) -> ops_controlplane::registry::RegistryResult<Vec<ops_proto::v1::ImportResult>> {
        let files = files
            .into_iter()
            .map(|(path, content)| BundleFile {
                path: path.to_owned(),
                content: content.into_bytes(),
            })
            .collect();
        self.registry
            .import(
                &CallerContext::new(tenant, "test-admin"),
                files,
                true,
                false,
            )
            .await
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.serving.await;
        self.cancel.cancel();
        self.executors.stop().await;
    }
}
