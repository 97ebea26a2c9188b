//! Shared by the executor integration tests: real sidecar processes on 127.0.0.1:0, the
//! control plane's executor client in front of them, and plant-ops loaded into SQLite,
//! PostgreSQL or MariaDB.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ops_controlplane::execute::balance::{ChannelSettings, EndpointPool};
use ops_controlplane::execute::{ClientOptions, ExecutorClient, RetryPolicy};
use ops_controlplane::model::requests;
use ops_controlplane::registry::bundle;
use ops_proto::executor::{Engine, GraphColumns, MetricColumns, SourceConfig};
use ops_proto::v1::{BundleFile, SchemaCatalogSpec, asset_spec};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub static SQL: LazyLock<String> =
    LazyLock::new(|| ops_tests::bin("ops-sql-executor").display().to_string());
pub static METRICS: LazyLock<String> =
    LazyLock::new(|| ops_tests::bin("ops-metrics-executor").display().to_string());
pub static GRAPH: LazyLock<String> =
    LazyLock::new(|| ops_tests::bin("ops-graph-executor").display().to_string());

/// A sidecar child process; killed on drop.
pub struct Sidecar {
    pub child: Child,
    pub addr: String,
    pub stderr: Option<tokio::task::JoinHandle<String>>,
}

impl Sidecar {
    pub async fn start(program: &str) -> Self {
        Self::start_with(program, &[]).await
    }

    /// Starts `program` on 127.0.0.1:0 with extra environment, capturing its stderr (logs).
    pub async fn start_with(program: &str, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(program);
        command
            .arg("--listen")
            .arg("127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn sidecar");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("sidecar printed its address in time")
            .expect("read stdout")
            .expect("a line");
        let addr = line
            .strip_prefix(ops_proto::executor_api::LISTENING_PREFIX)
            .expect("listening line")
            .trim()
            .to_owned();
        let stderr = child.stderr.take().expect("stderr");
        let stderr = tokio::spawn(async move {
            let mut out = String::new();
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                out.push_str(&line);
                out.push('\n');
            }
            out
        });
        Self {
            child,
            addr,
            stderr: Some(stderr),
        }
    }

    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGTERMs the sidecar and returns everything it logged.
    pub async fn stop_and_logs(mut self) -> String {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        let _ = self.child.kill().await;
        match self.stderr.take() {
            Some(task) => task.await.unwrap_or_default(),
            None => String::new(),
        }
    }
}

pub fn fast_retry() -> ClientOptions {
    ClientOptions {
        default_timeout: Duration::from_secs(20),
        retry: RetryPolicy {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(800),
            multiplier: 2.0,
        },
        ..ClientOptions::default()
    }
}

/// The control plane's client over the given endpoints.
pub fn client(name: &str, uris: &[String], options: ClientOptions) -> ExecutorClient {
    let pool = EndpointPool::new(
        name,
        ChannelSettings {
            connect_timeout: Duration::from_millis(500),
            tls: None,
        },
    );
    pool.set_endpoints(uris).expect("endpoints");
    ExecutorClient::remote(pool, options)
}

/// The demo SchemaCatalog as an admin would publish it.
pub fn catalog() -> SchemaCatalogSpec {
    let file = BundleFile {
        path: "catalog.yaml".into(),
        content: ops_controlplane::demo::PLANT_OPS_CATALOG_YAML
            .as_bytes()
            .to_vec(),
    };
    let parsed = bundle::parse(&file).expect("catalog parses").remove(0);
    match parsed.content.spec.and_then(|s| s.kind) {
        Some(asset_spec::Kind::SchemaCatalog(c)) => c,
        other => panic!("not a catalog: {other:?}"),
    }
}

pub fn metric_columns() -> MetricColumns {
    requests::metric_columns(&catalog()).expect("metric mapping")
}

pub fn graph_columns() -> GraphColumns {
    requests::graph_columns(&catalog()).expect("graph mapping")
}

/// A plant-ops database of one engine, with the source config executors need.
pub struct PlantOps {
    pub source: SourceConfig,
    _dir: Option<tempfile::TempDir>,
    pg: Option<ops_datasets::testing::LoadedPostgres>,
    my: Option<ops_datasets::testing::LoadedMySql>,
}

fn host_port_user(url: &str, default_port: u32) -> (String, u32, String) {
    let rest = url.split("://").nth(1).unwrap_or_default();
    let (auth, host) = rest.split_once('@').unwrap_or(("", rest));
    let host = host.split(['/', '?']).next().unwrap_or("127.0.0.1");
    let (host, port) = match host.split_once(':') {
        Some((h, p)) => (h.to_owned(), p.parse().unwrap_or(default_port)),
        None => (host.to_owned(), default_port),
    };
    let user = auth.split(':').next().unwrap_or_default().to_owned();
    (host, port, user)
}

/// The source config of a database on a server reached through `admin_url`.
fn server_source(
    engine: Engine,
    admin_url: &str,
    default_port: u32,
    database: &str,
) -> SourceConfig {
    let (host, port, user) = host_port_user(admin_url, default_port);
    SourceConfig {
        source_id: format!("test/source:plant_ops@{}", uuid::Uuid::new_v4()),
        engine: engine as i32,
        host,
        port,
        user,
        database: database.to_owned(),
        ..Default::default()
    }
}

impl PlantOps {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path: PathBuf = dir.path().join("plant-ops.sqlite");
        ops_datasets::load_sqlite(&path).await.expect("load sqlite");
        Self {
            source: SourceConfig {
                source_id: format!("test/source:plant_ops@{}", uuid::Uuid::new_v4()),
                engine: Engine::Sqlite as i32,
                path: path.display().to_string(),
                ..Default::default()
            },
            _dir: Some(dir),
            pg: None,
            my: None,
        }
    }

    pub async fn postgres() -> Self {
        let loaded = ops_datasets::testing::loaded_postgres()
            .await
            .expect("load postgres");
        Self {
            source: server_source(Engine::Postgres, &loaded.admin_url, 5432, &loaded.db_name),
            _dir: None,
            pg: Some(loaded),
            my: None,
        }
    }

    pub async fn mysql() -> Self {
        let loaded = ops_datasets::testing::loaded_mysql()
            .await
            .expect("load mariadb");
        Self {
            source: server_source(Engine::Mysql, &loaded.admin_url, 3306, &loaded.db_name),
            _dir: None,
            pg: None,
            my: Some(loaded),
        }
    }

    /// Deletes every other tenant's rows, leaving what `tenant` alone may see.
    pub async fn keep_only_tenant(&self, tenant: &str) {
        const TABLES: [&str; 7] = [
            "ci_relation",
            "metric_timeseries",
            "events",
            "documents",
            "users",
            "credentials",
            "ci_master",
        ];
        for table in TABLES {
            let sql = format!("DELETE FROM {table} WHERE tenant_id <> '{tenant}'");
            if let Some(pg) = &self.pg {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&pg.pool)
                    .await
                    .expect("delete");
            } else if let Some(my) = &self.my {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&my.pool)
                    .await
                    .expect("delete");
            } else {
                let url = format!("sqlite://{}", self.source.path);
                let pool = sqlx::SqlitePool::connect(&url).await.expect("sqlite");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&pool)
                    .await
                    .expect("delete");
                pool.close().await;
            }
        }
    }

    pub async fn cleanup(self) {
        if let Some(pg) = self.pg {
            pg.cleanup().await.expect("drop postgres db");
        }
        if let Some(my) = self.my {
            my.cleanup().await.expect("drop mariadb db");
        }
    }
}

pub fn arc<T>(t: T) -> Arc<T> {
    Arc::new(t)
}

/// The strings of a JSON array (the question file's expected codes, ids, needles).
pub fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Rounded to two decimals, as the question file states numbers.
pub fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The SQL guard corpus (`sqlguard/src/sql_guard_corpus.yaml`) and the guard
/// settings it is written for: tenant `acme` of acme and globex, users and credentials
/// restricted, the plant-ops tables scoped on `tenant_id`, a row limit of 1000.
pub struct GuardCorpus {
    pub entries: Vec<CorpusEntry>,
    pub policy: ops_controlplane::validate::sql_guard::GuardPolicy,
    pub tenant_columns: std::collections::HashMap<String, String>,
    /// Every scoped table, for a context that scopes none of them.
    pub scoped_tables: Vec<String>,
    pub known_tenants: Vec<String>,
}

#[derive(serde::Deserialize)]
pub struct CorpusEntry {
    pub name: String,
    pub dialect: String,
    pub sql: String,
    pub allowed: bool,
    #[serde(default)]
    pub params: std::collections::BTreeMap<String, serde_yaml::Value>,
}

impl CorpusEntry {
    pub fn dialect(&self) -> ops_controlplane::validate::sql_guard::Dialect {
        use ops_controlplane::validate::sql_guard::Dialect;
        match self.dialect.as_str() {
            "postgres" => Dialect::Postgres,
            "mysql" => Dialect::MySql,
            _ => Dialect::Sqlite,
        }
    }
}

impl GuardCorpus {
    pub fn load() -> Self {
        let scoped_tables: Vec<String> = [
            "ci_master",
            "ci_relation",
            "metric_timeseries",
            "events",
            "documents",
        ]
        .iter()
        .map(|t| (*t).to_owned())
        .collect();
        Self {
            entries: serde_yaml::from_str(include_str!("../../sqlguard/src/sql_guard_corpus.yaml"))
                .expect("corpus"),
            policy: ops_controlplane::validate::sql_guard::GuardPolicy {
                restricted_tables: vec!["users".into(), "credentials".into()],
                allowed_functions: Vec::new(),
            },
            tenant_columns: scoped_tables
                .iter()
                .map(|t| (t.clone(), "tenant_id".to_owned()))
                .collect(),
            scoped_tables,
            known_tenants: vec!["acme".to_owned(), "globex".to_owned()],
        }
    }

    /// The context the corpus is written for, in `dialect`.
    pub fn context(
        &self,
        dialect: ops_controlplane::validate::sql_guard::Dialect,
    ) -> ops_controlplane::validate::sql_prepare::GuardContext<'_> {
        ops_controlplane::validate::sql_prepare::GuardContext {
            dialect,
            policy: &self.policy,
            tenant: "acme",
            tenant_columns: &self.tenant_columns,
            global_tables: &[],
            known_tenants: &self.known_tenants,
            row_limit: Some(1000),
        }
    }
}
