//! Faults: sidecars killed under load, restarted by the supervisor, and failover between two
//! endpoints. Callers get an answer or UNAVAILABLE within their deadline, never a hang.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod executor_support;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use executor_support::*;
use ops_controlplane::execute::ExecutorClient;
use ops_controlplane::execute::balance::{ChannelSettings, EndpointPool};
use ops_controlplane::execute::supervisor::{SidecarSpec, supervise};
use ops_proto::executor::{ExecuteRequest, SourceConfig, SqlRequest, execute_request};
use ops_proto::executor_api::{CallContext, ExecutorApi, ExecutorErrorKind};
use tokio_util::sync::CancellationToken;

fn lookup(source: &SourceConfig) -> ExecuteRequest {
    ExecuteRequest {
        source: Some(source.clone()),
        request: Some(execute_request::Request::Sql(SqlRequest {
            sql: "SELECT ci_name FROM ci_master WHERE ci_code = 'GT-01'".into(),
            ..Default::default()
        })),
        trace_id: "faults".into(),
    }
}

fn ctx(timeout: Duration) -> CallContext {
    CallContext {
        timeout: Some(timeout),
        trace_id: "faults".into(),
    }
}

async fn kill9(pid: u32) {
    let status = tokio::process::Command::new("kill")
        .arg("-9")
        .arg(pid.to_string())
        .status()
        .await;
    assert!(
        status.map(|s| s.success()).unwrap_or(false),
        "kill -9 {pid}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_sidecar_is_restarted_and_callers_never_hang() {
    let plant = PlantOps::sqlite().await;
    let pool = EndpointPool::new(
        "sql",
        ChannelSettings {
            connect_timeout: Duration::from_millis(300),
            tls: None,
        },
    );
    let cancel = CancellationToken::new();
    let spec = SidecarSpec {
        program: PathBuf::from(&*SQL),
        args: Vec::new(),
        startup_timeout: Duration::from_secs(20),
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(2),
    };
    let sidecar = supervise(spec, pool.clone(), cancel.clone())
        .await
        .expect("supervised sidecar");
    pool.spawn_health_checks(Duration::from_millis(200), cancel.clone());
    let client = ExecutorClient::remote(pool.clone(), fast_retry());
    let deadline = Duration::from_secs(3);

    let ok = Arc::new(AtomicUsize::new(0));
    let unavailable = Arc::new(AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (client, source, ok, unavailable, stop) = (
            client.clone(),
            plant.source.clone(),
            ok.clone(),
            unavailable.clone(),
            stop.clone(),
        );
        workers.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                let started = Instant::now();
                let result = client.execute(ctx(deadline), lookup(&source)).await;
                // Bounded by the deadline (plus scheduling slack), whatever happened.
                assert!(
                    started.elapsed() < deadline + Duration::from_millis(500),
                    "a call hung for {:?}",
                    started.elapsed()
                );
                match result {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(e)
                        if e.kind == ExecutorErrorKind::Unavailable
                            || e.kind == ExecutorErrorKind::DeadlineExceeded =>
                    {
                        unavailable.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(e) => panic!("unexpected error under a crash: {e:?}"),
                };
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = ok.load(Ordering::Relaxed);
    assert!(before > 0, "load was flowing before the crash");
    kill9(sidecar.pid().await.expect("pid")).await;

    // The supervisor brings it back.
    let waited = Instant::now();
    while sidecar.restart_count() == 0 {
        assert!(waited.elapsed() < Duration::from_secs(20), "no restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let at_restart = ok.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.cancel();
    for worker in workers {
        worker.await.expect("worker finished without panicking");
    }
    assert!(
        ok.load(Ordering::Relaxed) > at_restart,
        "traffic resumed after the restart"
    );
    let after = client.execute(ctx(deadline), lookup(&plant.source)).await;
    assert!(after.is_ok(), "{after:?}");
    eprintln!(
        "ok {} / unavailable-or-deadline {} / restarts {}",
        ok.load(Ordering::Relaxed),
        unavailable.load(Ordering::Relaxed),
        sidecar.restart_count()
    );
    cancel.cancel();
    sidecar.join().await;
    plant.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_endpoints_and_one_down_every_request_succeeds() {
    let plant = PlantOps::sqlite().await;
    let (first, second) = (Sidecar::start(&SQL).await, Sidecar::start(&SQL).await);
    let client = client("sql", &[first.uri(), second.uri()], fast_retry());
    for _ in 0..20 {
        client
            .execute(ctx(Duration::from_secs(5)), lookup(&plant.source))
            .await
            .expect("both up");
    }
    let mut first = first;
    first.child.kill().await.expect("kill the first sidecar");
    for i in 0..50 {
        let result = client
            .execute(ctx(Duration::from_secs(5)), lookup(&plant.source))
            .await;
        assert!(
            result.is_ok(),
            "request {i} failed with one endpoint down: {result:?}"
        );
    }
    drop(second);
    plant.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_endpoint_down_callers_get_unavailable_quickly() {
    let plant = PlantOps::sqlite().await;
    let mut sidecar = Sidecar::start(&SQL).await;
    let uri = sidecar.uri();
    sidecar.child.kill().await.expect("kill");
    let client = client("sql", &[uri], fast_retry());
    let started = Instant::now();
    let error = client
        .execute(ctx(Duration::from_secs(3)), lookup(&plant.source))
        .await
        .expect_err("down");
    assert_eq!(error.kind, ExecutorErrorKind::Unavailable, "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(4));
    plant.cleanup().await;
}

#[tokio::test]
async fn load_is_spread_over_endpoints() {
    let plant = PlantOps::sqlite().await;
    let (first, second) = (Sidecar::start(&SQL).await, Sidecar::start(&SQL).await);
    let pool = EndpointPool::new(
        "sql",
        ChannelSettings {
            connect_timeout: Duration::from_millis(500),
            tls: None,
        },
    );
    pool.set_endpoints(&[first.uri(), second.uri()])
        .expect("endpoints");
    let client = ExecutorClient::remote(pool.clone(), fast_retry());
    let mut calls = Vec::new();
    for _ in 0..40 {
        let (client, source) = (client.clone(), plant.source.clone());
        calls.push(tokio::spawn(async move {
            client
                .execute(ctx(Duration::from_secs(5)), lookup(&source))
                .await
        }));
    }
    for call in calls {
        call.await.expect("join").expect("call");
    }
    let first_logs = first.stop_and_logs().await;
    let second_logs = second.stop_and_logs().await;
    assert!(
        first_logs.contains("executed") && second_logs.contains("executed"),
        "both endpoints served calls"
    );
    plant.cleanup().await;
}
