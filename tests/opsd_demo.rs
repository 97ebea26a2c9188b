//! The README's demo as a user runs it: the real `opsd demo` binary (plant-ops in SQLite, the
//! three sidecars spawned), `opsctl ask` and grpcurl against it, and SIGTERM in the middle of 16
//! concurrent askers: every answered request's trace is in the database afterwards.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ops_proto::v1::AskRequest;
use ops_proto::v1::ops_service_client::OpsServiceClient;
use sqlx::Row;

/// The sidecar binaries live beside opsd (`ops_tests::bin_dir` builds them all).
fn ensure_sidecars() {
    let dir = ops_tests::bin_dir();
    for binary in [
        "ops-sql-executor",
        "ops-metrics-executor",
        "ops-graph-executor",
    ] {
        assert!(
            dir.join(binary).is_file(),
            "{binary} is not built in {}: run `cargo build -p ops-executors --bins` first, or `cargo test --workspace`",
            dir.display()
        );
    }
}

struct Demo {
    child: Child,
    addr: String,
}

impl Demo {
    fn start(data_dir: &Path) -> Self {
        ensure_sidecars();
        let (child, addr, _) = common::spawn_opsd("demo", data_dir, &[]);
        Self { child, addr }
    }
}

impl Drop for Demo {
    /// SIGTERM first, so opsd stops its sidecars (a SIGKILLed opsd would leave them running,
    /// holding the test's output open); SIGKILL only if it does not exit.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .stderr(std::process::Stdio::null())
            .status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opsctl_asks_the_demo_and_sigterm_under_load_loses_no_answered_trace() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Demo::start(dir.path());
    let server = format!("http://{}", demo.addr);

    let out = Command::new(ops_tests::bin("opsctl"))
        .args([
            "ask",
            "GT-01 CPU 사용률 평균 최근 1주일",
            "--tenant",
            "acme",
        ])
        .args(["--as-of", "2026-01-31T00:00:00Z", "--server", &server])
        .output()
        .expect("opsctl ask");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "[orch]",
        "56.86",
        "stages:",
        "route_plan",
        "present",
        "trace: ",
    ] {
        assert!(
            printed.contains(needle),
            "{needle:?} missing from:\n{printed}"
        );
    }

    // grpcurl (reflection v1alpha) asks and reads the trace back, as the README shows.
    let grpcurl = |tenant: &str, method: &str, body: &str| -> serde_json::Value {
        let out = Command::new(common::grpcurl())
            .args([
                "-plaintext",
                "-H",
                &format!("x-ops-tenant: {tenant}"),
                "-d",
                body,
            ])
            .arg(&demo.addr)
            .arg(method)
            .output()
            .expect("grpcurl");
        assert!(
            out.status.success(),
            "{method}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("grpcurl prints JSON")
    };
    let asked = grpcurl(
        "acme",
        "ops.v1.OpsService/Ask",
        r#"{"question": "zone-a에 위치한 서버를 나열해줘", "as_of": "2026-01-31T00:00:00Z"}"#,
    );
    assert_eq!(asked["route"], "ROUTE_ORCH", "{asked}");
    assert!(asked.to_string().contains("HR-WEB-01"), "{asked}");
    let trace_id = asked["traceId"].as_str().expect("trace id");
    let trace = grpcurl(
        "acme",
        "ops.v1.Inspector/GetTrace",
        &serde_json::json!({ "trace_id": trace_id }).to_string(),
    );
    assert_eq!(
        trace["trace"]["stages"].as_array().map(Vec::len),
        Some(5),
        "{trace}"
    );

    let answered: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let questions = [
        "ERP 시스템의 모든 서버를 나열해줘",
        "GT-01 CPU 평균 지난 1주일",
        "ERP-DB-01 장애 시 영향받는 CI 전부",
        "지난 7일간 critical 알람 몇 건?",
        "오늘 날짜는?",
    ];
    let mut askers = Vec::new();
    for n in 0..16 {
        let server = server.clone();
        let answered = answered.clone();
        askers.push(tokio::spawn(async move {
            let Ok(mut client) = OpsServiceClient::connect(server).await else {
                return;
            };
            for i in 0.. {
                let mut request = tonic::Request::new(AskRequest {
                    question: questions[(n + i) % questions.len()].to_owned(),
                    ..Default::default()
                });
                request
                    .metadata_mut()
                    .insert("x-ops-tenant", "acme".parse().unwrap());
                match client.ask(request).await {
                    Ok(r) => {
                        answered.lock().unwrap().insert(r.into_inner().trace_id);
                    }
                    // The server is draining or gone.
                    Err(_) => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_signal = answered.lock().unwrap().len();
    assert!(before_signal > 0, "no request was answered under load");
    let pid = demo.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    for asker in askers {
        let _ = tokio::time::timeout(Duration::from_secs(30), asker).await;
    }
    let status = tokio::task::spawn_blocking(move || {
        let status = demo.child.wait();
        (status, demo)
    })
    .await
    .unwrap();
    assert!(
        status.0.unwrap().success(),
        "opsd exits cleanly after SIGTERM"
    );

    let answered = answered.lock().unwrap().clone();
    let url = format!("sqlite://{}", dir.path().join("ops.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let stored: BTreeSet<String> = sqlx::query("SELECT trace_id FROM traces")
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
    let lost: Vec<&String> = answered.difference(&stored).collect();
    println!(
        "{} answered ({before_signal} before SIGTERM), {} traces stored, {} lost",
        answered.len(),
        stored.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "answered but not traced: {lost:?}");
    let mirrored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tasks")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(mirrored as usize, stored.len(), "one task row per trace");
}

/// The README's Test → Inspect → Fix walkthrough, run as written (bash) against a real
/// `opsd demo`: only the address, the binaries' directory and the scratch directories change.
#[test]
fn the_readme_test_inspect_fix_walkthrough_runs_against_the_demo() {
    let readme = include_str!("../README.md");
    let marker = "<!-- walkthrough: test-inspect-fix -->\n```sh\n";
    let start = readme.find(marker).expect("the walkthrough marker") + marker.len();
    let script = &readme[start..];
    let script = &script[..script.find("\n```").expect("the end of the block")];
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(dir.path());
    let scratch = tempfile::tempdir().unwrap();
    let bins = format!("{}/", ops_tests::bin_dir().display());
    // Scratch directories first: the binaries may themselves live under /tmp.
    let script = script
        .replace("/tmp/", &format!("{}/", scratch.path().display()))
        .replace("opsd=127.0.0.1:50051", &format!("opsd={}", demo.addr))
        .replace("./target/release/", &bins);
    let grpcurl = common::grpcurl();
    let path = format!(
        "{}:{}",
        grpcurl.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap())
        .env("PATH", path)
        .output()
        .expect("bash");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the walkthrough failed:\n{printed}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Re-importing the demo's asset directory: every asset unchanged, none re-published.
    let demo_assets: usize = ops_controlplane::demo::plant_ops_bundle()
        .iter()
        .map(|file| {
            ops_controlplane::registry::bundle::parse(file)
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(
        printed.matches("IMPORT_OUTCOME_UNCHANGED").count(),
        demo_assets,
        "{printed}"
    );
    assert!(printed.contains("tools.yaml[0]"), "{printed}");
    for needle in [
        // StageTest's diff against the baseline, the draft's sentence in the replay, the first
        // divergence, the guarded preview, a tool result and a page of a list.
        "\"equal\": false",
        "\"equal\": true",
        "in last week was",
        "First divergence: COMPOSE",
        "\"executedSql\"",
        "\"graph\"",
        "\"table_offset\": 4",
    ] {
        assert!(
            printed.contains(needle),
            "{needle:?} missing from:\n{printed}"
        );
    }
}

/// Process ids whose parent is `parent` (Linux /proc).
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    // "pid (comm) state ppid …": comm may hold spaces, so split after ')'.
                    let rest = &stat[stat.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

#[test]
fn sidecars_do_not_outlive_a_killed_opsd_and_its_answered_traces_survive() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Demo::start(dir.path());
    let sidecars = children_of(demo.child.id());
    assert_eq!(
        sidecars.len(),
        3,
        "opsd demo spawns three sidecars: {sidecars:?}"
    );
    // Answered with the default `trace_sync = "normal"`: the trace is in the WAL, not fsynced.
    let out = Command::new(ops_tests::bin("opsctl"))
        .args(["ask", "zone-a에 위치한 서버를 나열해줘", "--tenant", "acme"])
        .args(["--server", &format!("http://{}", demo.addr)])
        .output()
        .expect("opsctl ask");
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{printed}");
    let trace_id = printed
        .lines()
        .find_map(|l| l.strip_prefix("trace: "))
        .expect("opsctl prints the trace id")
        .trim()
        .to_owned();
    demo.child.kill().unwrap();
    demo.child.wait().unwrap();
    // SIGKILL gives opsd no chance to flush anything: the answered trace must be readable.
    let db = dir.path().join("ops.db");
    let stored: i64 = tokio::runtime::Runtime::new().unwrap().block_on(async {
        use sqlx::ConnectOptions;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db)
            .connect()
            .await
            .expect("open the killed opsd's database");
        sqlx::query_scalar("SELECT COUNT(*) FROM traces WHERE trace_id = $1")
            .bind(&trace_id)
            .fetch_one(&mut conn)
            .await
            .expect("count traces")
    });
    assert_eq!(stored, 1, "trace {trace_id} lost when opsd was killed");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while sidecars.iter().any(|pid| alive(*pid)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let left: Vec<u32> = sidecars.into_iter().filter(|pid| alive(*pid)).collect();
    assert!(
        left.is_empty(),
        "sidecars still running after opsd was killed: {left:?}"
    );
}
