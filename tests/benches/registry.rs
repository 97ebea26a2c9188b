//! Asset registry latency through the real gRPC API, on SQLite and on PostgreSQL.
//!
//! Each backend gets a fresh database (the integration-test harness) and a real `opsd` on
//! 127.0.0.1:0 (the integration-test harness's `TestServer`), driven by one sequential client
//! over one HTTP/2 connection in the same process.
//! Per iteration: `CreateAsset` of a new Prompt, `PublishAsset` of it, `GetAsset` (latest) of
//! it; then repeated `GetAsset` of one asset, then the same get from 16 concurrent clients.
//! Warm-up iterations are run first and discarded.
//!
//! Run: `cargo bench -p ops-tests --bench registry`. PostgreSQL is taken from
//! `OPS_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`); when it is
//! unreachable only SQLite is reported. Sizes can be changed with `OPS_BENCH_ITERATIONS`,
//! `OPS_BENCH_GETS` and `OPS_BENCH_CONCURRENT_GETS`.

// A benchmark binary, not library code: a failed setup step or RPC should abort the run loudly.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;
#[path = "../suites/registry.rs"]
mod registry_suite;

use std::time::{Duration, Instant};

use ops_proto::v1::AssetType;
use sqlx::Connection;

use common::{Admin, Backend, TestDatabase, TestServer, postgres_admin_url};
use registry_suite::{content, create, get, publish, spec_for};

const WARMUP_ITERATIONS: usize = 30;
const WARMUP_GETS: usize = 200;
const CONCURRENT_CLIENTS: usize = 16;
const TENANT: &str = "bench";

/// How much work each backend does.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    /// Sequential create + publish + get iterations (each a new asset).
    iterations: usize,
    /// Sequential gets of one already-published asset.
    gets: usize,
    /// Gets in total, spread over [`CONCURRENT_CLIENTS`] clients.
    concurrent_gets: usize,
}

impl Sizes {
    fn from_env() -> Self {
        fn var(name: &str, default: usize) -> usize {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .filter(|&n| n > 0)
                .unwrap_or(default)
        }
        Self {
            iterations: var("OPS_BENCH_ITERATIONS", 300),
            gets: var("OPS_BENCH_GETS", 1000),
            concurrent_gets: var("OPS_BENCH_CONCURRENT_GETS", 2000),
        }
    }
}

/// Latency samples of one operation on one backend.
struct Samples {
    op: &'static str,
    micros: Vec<f64>,
}

impl Samples {
    fn new(op: &'static str, capacity: usize) -> Self {
        Self {
            op,
            micros: Vec::with_capacity(capacity),
        }
    }

    fn record(&mut self, elapsed: Duration) {
        self.micros.push(elapsed.as_secs_f64() * 1e6);
    }

    fn stats(&self) -> Stats {
        let mut sorted = self.micros.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let mean = if n == 0 {
            0.0
        } else {
            sorted.iter().sum::<f64>() / n as f64
        };
        Stats {
            op: self.op,
            n,
            p50: percentile(&sorted, 50.0),
            p99: percentile(&sorted, 99.0),
            mean,
        }
    }
}

/// Nearest-rank percentile of an ascending slice.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Stats {
    op: &'static str,
    n: usize,
    p50: f64,
    p99: f64,
    mean: f64,
}

/// Everything measured on one backend.
struct Report {
    backend: &'static str,
    stats: Vec<Stats>,
    /// Wall time of the concurrent phase and how many gets it served.
    concurrent: (Duration, usize),
}

impl Report {
    fn p50(&self, op: &str) -> Option<f64> {
        self.stats.iter().find(|s| s.op == op).map(|s| s.p50)
    }
}

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

async fn create_and_publish(admin: &Admin, name: &str) -> (Duration, Duration) {
    let t = AssetType::Prompt;
    let started = Instant::now();
    let created = create(admin, t, name, content(spec_for(t)))
        .await
        .unwrap_or_else(|s| panic!("create {name}: {s:?}"));
    let create_elapsed = started.elapsed();
    let started = Instant::now();
    publish(admin, t, name, created.revision)
        .await
        .unwrap_or_else(|s| panic!("publish {name}: {s:?}"));
    (create_elapsed, started.elapsed())
}

async fn timed_get(admin: &Admin, name: &str) -> Duration {
    let started = Instant::now();
    let asset = get(admin, AssetType::Prompt, name, None)
        .await
        .unwrap_or_else(|s| panic!("get {name}: {s:?}"));
    let elapsed = started.elapsed();
    assert_eq!(asset.name, name, "get returned another asset");
    elapsed
}

async fn run_backend(backend: Backend, sizes: Sizes) -> Report {
    let database = TestDatabase::create(backend).await;
    let server = TestServer::start(&database).await;
    let admin = server.admin(TENANT).await;

    // Warm-up: connections, statement caches, page cache. Discarded.
    for i in 0..WARMUP_ITERATIONS {
        let name = format!("warmup_{i:04}");
        create_and_publish(&admin, &name).await;
        timed_get(&admin, &name).await;
    }
    for _ in 0..WARMUP_GETS {
        timed_get(&admin, "warmup_0000").await;
    }

    // Sequential create / publish / get of fresh assets.
    let mut creates = Samples::new("create", sizes.iterations);
    let mut publishes = Samples::new("publish", sizes.iterations);
    let mut gets_fresh = Samples::new("get", sizes.iterations);
    for i in 0..sizes.iterations {
        let name = format!("prompt_{i:05}");
        let (c, p) = create_and_publish(&admin, &name).await;
        creates.record(c);
        publishes.record(p);
        gets_fresh.record(timed_get(&admin, &name).await);
    }

    // Sequential gets of one asset.
    let hot = "prompt_00000";
    let mut gets_hot = Samples::new("get_1", sizes.gets);
    for _ in 0..sizes.gets {
        gets_hot.record(timed_get(&admin, hot).await);
    }

    // The same get from concurrent clients, each on its own connection.
    let mut clients = Vec::with_capacity(CONCURRENT_CLIENTS);
    for _ in 0..CONCURRENT_CLIENTS {
        let client = server.admin(TENANT).await;
        timed_get(&client, hot).await; // connect + warm
        clients.push(client);
    }
    let per_client = sizes.concurrent_gets.div_ceil(CONCURRENT_CLIENTS);
    let started = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|client| {
            tokio::spawn(async move {
                let mut micros = Vec::with_capacity(per_client);
                for _ in 0..per_client {
                    micros.push(timed_get(&client, hot).await.as_secs_f64() * 1e6);
                }
                micros
            })
        })
        .collect();
    let mut gets_concurrent = Samples::new("get_c16", per_client * CONCURRENT_CLIENTS);
    for task in futures::future::join_all(tasks).await {
        gets_concurrent
            .micros
            .extend(task.expect("concurrent client"));
    }
    let concurrent = (started.elapsed(), gets_concurrent.micros.len());
    server.stop().await;

    database.cleanup().await;

    Report {
        backend: backend_name(backend),
        stats: [creates, publishes, gets_fresh, gets_hot, gets_concurrent]
            .iter()
            .map(Samples::stats)
            .collect(),
        concurrent,
    }
}

/// Whether the PostgreSQL admin URL accepts a connection; the reason when it does not.
async fn postgres_reachable() -> Result<(), String> {
    let url = postgres_admin_url();
    match tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&url)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(format!("{url}: {e}")),
        Err(_) => Err(format!("{url}: no connection within 5s")),
    }
}

/// Runs one backend on its own task so that a failure in the harness (which panics) is reported
/// instead of aborting the other backend's results.
async fn run_isolated(backend: Backend, sizes: Sizes) -> Option<Report> {
    let started = Instant::now();
    match tokio::spawn(run_backend(backend, sizes)).await {
        Ok(report) => {
            eprintln!(
                "{}: done in {:.1}s",
                backend_name(backend),
                started.elapsed().as_secs_f64()
            );
            Some(report)
        }
        Err(e) => {
            println!(
                "{}: benchmark failed, not reported: {e}",
                backend_name(backend)
            );
            None
        }
    }
}

fn print_reports(reports: &[Report]) {
    println!(
        "{:<9} {:<9} {:>6} {:>9} {:>9} {:>9}",
        "backend", "op", "n", "p50_us", "p99_us", "mean_us"
    );
    for report in reports {
        for s in &report.stats {
            println!(
                "{:<9} {:<9} {:>6} {:>9.0} {:>9.0} {:>9.0}",
                report.backend, s.op, s.n, s.p50, s.p99, s.mean
            );
        }
    }
    println!();
    for report in reports {
        let (wall, n) = report.concurrent;
        println!(
            "{:<9} get_c16 throughput: {n} gets from {CONCURRENT_CLIENTS} clients in {:.2}s = {:.0} req/s",
            report.backend,
            wall.as_secs_f64(),
            n as f64 / wall.as_secs_f64()
        );
    }
    let sqlite = reports.iter().find(|r| r.backend == "sqlite");
    let postgres = reports.iter().find(|r| r.backend == "postgres");
    if let (Some(sqlite), Some(postgres)) = (sqlite, postgres) {
        let ratios: Vec<String> = sqlite
            .stats
            .iter()
            .filter_map(|s| {
                let pg = postgres.p50(s.op)?;
                (s.p50 > 0.0).then(|| format!("{} {:.2}x", s.op, pg / s.p50))
            })
            .collect();
        println!();
        println!("ratio postgres/sqlite p50: {}", ratios.join(" "));
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // `cargo bench` passes `--bench` (and any filter); this binary takes no arguments.
    let sizes = Sizes::from_env();
    let started = Instant::now();
    println!(
        "registry bench: Prompt assets, {} create/publish/get iterations, {} gets of one asset, \
         {} gets from {CONCURRENT_CLIENTS} concurrent clients; \
         {WARMUP_ITERATIONS} warm-up iterations + {WARMUP_GETS} warm-up gets discarded; \
         sequential rows use one client on one HTTP/2 connection, server in-process on loopback",
        sizes.iterations, sizes.gets, sizes.concurrent_gets
    );
    println!(
        "ops: create=CreateAsset, publish=PublishAsset, get=GetAsset latest right after publish, \
         get_1=GetAsset latest of one asset, get_c16=get_1 from {CONCURRENT_CLIENTS} concurrent clients"
    );
    println!();

    let mut reports = Vec::new();
    reports.extend(run_isolated(Backend::Sqlite, sizes).await);
    match postgres_reachable().await {
        Ok(()) => reports.extend(run_isolated(Backend::Postgres, sizes).await),
        Err(reason) => println!(
            "postgres: not reachable, skipped (set OPS_TEST_POSTGRES_URL to benchmark it): {reason}"
        ),
    }

    print_reports(&reports);
    println!();
    println!("total {:.1}s", started.elapsed().as_secs_f64());
}
