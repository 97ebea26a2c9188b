//! The plugin host against real components built from `plugins/` and real wasmtime: hostile
//! plugins are stopped with precise errors and the host keeps serving; upload checks refuse
//! what must not run; the circuit breaker and the Policy's fallback work.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ops_controlplane::config::PluginsConfig;
use ops_controlplane::plugins::bindings::{MapInput, wit};
use ops_controlplane::plugins::{
    CallLimits, LoadedPlugin, PluginBlobs, PluginError, PluginHost, PluginResult, convert,
    digest_of,
};
use ops_plugin_artifacts::fixtures;
use ops_proto::v1::{
    MappingSpec, PluginFailureMode, PluginLimits, PluginRef, PluginWorld, mapping_spec,
};

/// One compiled-artifact cache for the whole test binary, so each host compiles once.
static CACHE: LazyLock<tempfile::TempDir> =
    LazyLock::new(|| tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}")));

fn config() -> PluginsConfig {
    PluginsConfig {
        max_concurrent_calls: 4,
        ..PluginsConfig::default()
    }
}

fn host_with(config: &PluginsConfig) -> PluginHost {
    PluginHost::new(config, Some(CACHE.path().to_path_buf()))
        .unwrap_or_else(|e| panic!("plugin host: {e}"))
}

static HOST: LazyLock<PluginHost> = LazyLock::new(|| host_with(&config()));

fn hostile() -> Arc<LoadedPlugin> {
    HOST.inspect(fixtures::HOSTILE)
        .unwrap_or_else(|e| panic!("hostile fixture: {e}"))
        .plugin
}

fn limits(memory_bytes: u64, cpu_budget_ms: u32) -> CallLimits {
    let policy = PluginLimits {
        memory_limit_bytes: memory_bytes,
        cpu_budget_ms,
        on_failure: PluginFailureMode::Fail as i32,
    };
    CallLimits::resolve(&config(), Some(&policy))
}

fn input(config: &str) -> MapInput {
    MapInput {
        question: "q".into(),
        results: vec![],
        config: config.into(),
    }
}

/// After each attack the same plugin, asked nicely, answers.
async fn still_serving(plugin: &Arc<LoadedPlugin>) {
    let outcome = HOST
        .call(plugin.clone(), input(""), limits(0, 0))
        .await
        .unwrap_or_else(|e| panic!("the call after an attack failed: {e}"));
    assert!(
        matches!(&outcome.output[0].content, wit::BlockContent::Text(t) if t == "ok: 0 results")
    );
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_at_the_cpu_budget() {
    let plugin = hostile();
    let started = Instant::now();
    let error = HOST
        .call(
            plugin.clone(),
            input(r#"{"attack":"loop"}"#),
            limits(0, 100),
        )
        .await
        .err();
    let elapsed = started.elapsed();
    assert!(
        matches!(
            error,
            Some(PluginError::DeadlineExceeded { budget_ms: 100, .. })
        ),
        "{error:?}"
    );
    assert!(
        elapsed < Duration::from_secs(2),
        "stopped after {elapsed:?}"
    );
    assert_eq!(error.map(|e| e.code()), Some(tonic::Code::DeadlineExceeded));
    still_serving(&plugin).await;
}

#[tokio::test]
async fn a_memory_bomb_is_stopped_at_the_cap() {
    let plugin = hostile();
    let error = HOST
        .call(
            plugin.clone(),
            input(r#"{"attack":"memory"}"#),
            limits(16 << 20, 2_000),
        )
        .await
        .err();
    assert!(
        matches!(error, Some(PluginError::MemoryExhausted { limit_bytes, .. }) if limit_bytes == 16 << 20),
        "{error:?}"
    );
    assert_eq!(
        error.map(|e| e.code()),
        Some(tonic::Code::ResourceExhausted)
    );
    still_serving(&plugin).await;
}

#[tokio::test]
async fn deep_recursion_is_stopped_at_the_stack_limit() {
    let plugin = hostile();
    let error = HOST
        .call(
            plugin.clone(),
            input(r#"{"attack":"recursion"}"#),
            limits(0, 2_000),
        )
        .await
        .err();
    assert!(
        matches!(error, Some(PluginError::StackExhausted { .. })),
        "{error:?}"
    );
    assert_eq!(
        error.map(|e| e.code()),
        Some(tonic::Code::ResourceExhausted)
    );
    still_serving(&plugin).await;
}

#[tokio::test]
async fn a_panic_is_an_internal_error_with_the_guest_backtrace() {
    let plugin = hostile();
    let error = HOST
        .call(
            plugin.clone(),
            input(r#"{"attack":"panic"}"#),
            limits(0, 2_000),
        )
        .await
        .err();
    let Some(PluginError::Trapped {
        message, backtrace, ..
    }) = &error
    else {
        panic!("expected a trap, got {error:?}");
    };
    assert!(message.contains("panicked"), "{message}");
    assert!(
        backtrace.contains("hostile") || backtrace.contains("map"),
        "backtrace: {backtrace}"
    );
    assert_eq!(
        error.as_ref().map(PluginError::code),
        Some(tonic::Code::Internal)
    );
    let status = tonic::Status::from(error.unwrap_or_else(|| unreachable!()));
    assert!(status.message().contains("panicked"));
    still_serving(&plugin).await;
}

#[tokio::test]
async fn malformed_output_is_refused_naming_the_path() {
    let plugin = hostile();
    let error = HOST
        .call(
            plugin.clone(),
            input(r#"{"attack":"malformed"}"#),
            limits(0, 0),
        )
        .await
        .err();
    let Some(PluginError::MalformedOutput { path, message, .. }) = &error else {
        panic!("expected malformed output, got {error:?}");
    };
    assert_eq!(path, "blocks[0].table.rows.columns[0]");
    assert!(message.contains("1 cells, expected 2"), "{message}");
    still_serving(&plugin).await;
}

#[tokio::test]
async fn a_plugin_error_is_a_refusal_not_a_crash() {
    let plugin = hostile();
    let error = HOST
        .call(plugin.clone(), input(r#"{"attack":"error"}"#), limits(0, 0))
        .await
        .err();
    assert!(
        matches!(&error, Some(PluginError::Refused { code, .. }) if code == "refused"),
        "{error:?}"
    );
    assert_eq!(
        error.map(|e| e.code()),
        Some(tonic::Code::FailedPrecondition)
    );
    still_serving(&plugin).await;
}

#[test]
fn wasi_filesystem_and_sockets_are_refused_at_upload() {
    let error = HOST.inspect(fixtures::WASI_IMPORT).err();
    let Some(PluginError::InvalidPlugin { field, message }) = &error else {
        panic!(
            "expected the upload to be refused, got {:?}",
            error.map(|e| e.to_string())
        );
    };
    assert_eq!(*field, "wasm");
    assert!(message.contains("wasi:filesystem/"), "{message}");
    assert!(message.contains("wasi:sockets/"), "{message}");
    assert!(message.contains("plugins may import nothing"), "{message}");
}

#[test]
fn uploads_must_be_components_within_the_size_cap() {
    let core_module = b"\0asm\x01\0\0\0";
    let cases: [(&[u8], &str); 3] = [
        (core_module, "a core wasm module, not a component"),
        (b"not wasm at all", "not a WASM component"),
        (b"", "no bytes"),
    ];
    for (bytes, expected) in cases {
        let message = HOST
            .inspect(bytes)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(message.contains(expected), "{message}");
    }
    let small = PluginsConfig {
        max_upload_bytes: 1024,
        ..config()
    };
    let small_host = host_with(&small);
    let message = small_host
        .inspect(fixtures::HOSTILE)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        message.contains("plugins may be at most 1024 bytes"),
        "{message}"
    );
}

#[test]
fn uploads_report_world_and_description() {
    let screen = HOST
        .inspect(ops_plugin_artifacts::DEFAULT_SCREEN)
        .map(|i| i.plugin);
    let screen = screen.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(screen.world, PluginWorld::Screen);
    assert_eq!(screen.info.name, "default-screen");
    let example = HOST
        .inspect(ops_plugin_artifacts::STATUS_BOARD)
        .map(|i| i.plugin);
    let example = example.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (example.world, example.info.name.as_str()),
        (PluginWorld::Mapper, "status-board")
    );
    assert_eq!(
        example.digest,
        digest_of(ops_plugin_artifacts::STATUS_BOARD)
    );
}

/// A plugin store for `compose`: the registry's part, held in memory here.
struct Blobs(HashMap<String, Vec<u8>>);

#[async_trait]
impl PluginBlobs for Blobs {
    async fn fetch(&self, _tenant: &str, digest: &str) -> PluginResult<Vec<u8>> {
        self.0
            .get(digest)
            .cloned()
            .ok_or_else(|| PluginError::NotFound {
                digest: digest.into(),
            })
    }
}

fn plugin_mapping(wasm: &[u8], config: &str) -> (MappingSpec, Blobs) {
    let digest = digest_of(wasm);
    let config = serde_json::from_str(config).unwrap_or_else(|e| panic!("config: {e}"));
    let spec = MappingSpec {
        implementation: Some(mapping_spec::Implementation::Plugin(PluginRef {
            digest: digest.clone(),
            config,
        })),
    };
    (spec, Blobs(HashMap::from([(digest, wasm.to_vec())])))
}

#[tokio::test]
async fn the_policy_falls_back_to_the_default_mapper() {
    let (spec, blobs) = plugin_mapping(fixtures::HOSTILE, r#"{"attack":"panic"}"#);
    let result = wit::ToolResult {
        tool: "ci_tool".into(),
        kind: "sql".into(),
        rows: convert::row_set_from_pb(
            &["ci_code".into()],
            &[pbjson_types::ListValue {
                values: vec![pbjson_types::Value::from("GT-01".to_owned())],
            }],
        ),
        truncated: false,
        fields: vec![],
        graph: None,
        references: vec![],
    };
    let mut fallback = limits(0, 0);
    fallback.on_failure = PluginFailureMode::FallbackToDefault;
    let outcome = HOST
        .compose(
            "t",
            Some(&spec),
            "q",
            vec![result.clone()],
            fallback,
            &blobs,
        )
        .await
        .unwrap_or_else(|e| panic!("fallback failed: {e}"));
    assert!(outcome.report.builtin);
    assert!(
        outcome
            .report
            .fallback_reason
            .as_deref()
            .is_some_and(|r| r.contains("panicked"))
    );
    assert!(matches!(&outcome.output[0].content, wit::BlockContent::Table(t) if t.rows.len == 1));

    let error = HOST
        .compose("t", Some(&spec), "q", vec![result], limits(0, 0), &blobs)
        .await
        .err();
    assert!(
        matches!(error, Some(PluginError::Trapped { .. })),
        "without fallback the error stands"
    );
}

#[tokio::test]
async fn a_plugin_that_keeps_trapping_is_cut_off_then_retried() {
    let host = host_with(&PluginsConfig {
        breaker_failures: 2,
        breaker_cooldown_ms: 300,
        ..config()
    });
    let plugin = host
        .inspect(fixtures::HOSTILE)
        .unwrap_or_else(|e| panic!("{e}"))
        .plugin;
    for _ in 0..2 {
        let error = host
            .call(plugin.clone(), input(r#"{"attack":"panic"}"#), limits(0, 0))
            .await
            .err();
        assert!(
            matches!(error, Some(PluginError::Trapped { .. })),
            "{error:?}"
        );
    }
    let error = host
        .call(plugin.clone(), input(""), limits(0, 0))
        .await
        .err();
    assert!(
        matches!(error, Some(PluginError::CircuitOpen { failures: 2, .. })),
        "{error:?}"
    );
    assert_eq!(error.map(|e| e.code()), Some(tonic::Code::Unavailable));
    // The metrics show the traps, the refusal and the open breaker.
    let metrics = ops_controlplane::metrics::get();
    let label = plugin.label();
    let calls = |outcome: &str| {
        metrics
            .plugin_calls
            .with_label_values(&[label.as_str(), outcome])
            .get()
    };
    assert!(calls("trap") >= 2 && calls("circuit_open") >= 1);
    let open = metrics
        .plugin_breaker_open
        .with_label_values(&[label.as_str()]);
    assert_eq!(open.get(), 1, "the breaker is shown open");
    tokio::time::sleep(Duration::from_millis(350)).await;
    let trial = host.call(plugin.clone(), input(""), limits(0, 0)).await;
    assert!(
        trial.is_ok(),
        "the trial call after the cooldown runs: {:?}",
        trial.err()
    );
    assert!(
        host.call(plugin, input(""), limits(0, 0)).await.is_ok(),
        "closed again"
    );
    assert_eq!(open.get(), 0, "the breaker is shown closed");
}

#[test]
fn compiled_components_are_cached_by_digest_and_engine() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let first = PluginHost::new(&config(), Some(dir.path().to_path_buf()))
        .unwrap_or_else(|e| panic!("{e}"));
    let compiled = first
        .inspect(fixtures::HOSTILE)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(compiled.compile_ms.is_some(), "first load compiles");
    let second = PluginHost::new(&config(), Some(dir.path().to_path_buf()))
        .unwrap_or_else(|e| panic!("{e}"));
    let cached = second
        .inspect(fixtures::HOSTILE)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        cached.compile_ms.is_none(),
        "a restart loads the compiled artifact"
    );
    // A corrupted artifact is detected by its checksum and recompiled, not executed.
    let hex = digest_of(fixtures::HOSTILE)
        .trim_start_matches("sha256:")
        .to_owned();
    let artifact = walk(dir.path())
        .into_iter()
        .find(|p| p.ends_with(format!("{hex}.cwasm")));
    let artifact = artifact.unwrap_or_else(|| panic!("no cached artifact for {hex}"));
    std::fs::write(&artifact, b"garbage").unwrap_or_else(|e| panic!("{e}"));
    let third = PluginHost::new(&config(), Some(dir.path().to_path_buf()))
        .unwrap_or_else(|e| panic!("{e}"));
    let recompiled = third
        .inspect(fixtures::HOSTILE)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(recompiled.compile_ms.is_some());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path))
        } else {
            out.push(path)
        }
    }
    out
}

#[test]
fn pooling_falls_back_to_on_demand_when_the_machine_refuses_the_reservation() {
    use ops_controlplane::config::PluginAllocator;
    // Ten million slots of reserved linear memory exceed any address space.
    let huge = PluginsConfig {
        max_concurrent_calls: 10_000_000,
        ..config()
    };
    let host = host_with(&huge);
    assert_eq!(host.allocator(), PluginAllocator::OnDemand);
    assert_eq!(HOST.allocator(), PluginAllocator::Pooling);
    let plugin = host
        .inspect(fixtures::HOSTILE)
        .unwrap_or_else(|e| panic!("{e}"))
        .plugin;
    assert!(host.run_describe(&plugin).is_ok());
}

/// The authors' runner: the real `opsctl` binary on a component file and a JSON input.
#[test]
fn opsctl_plugin_run_prints_output_time_and_peak_memory() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let wasm = dir.path().join("status_board.wasm");
    std::fs::write(&wasm, ops_plugin_artifacts::STATUS_BOARD).unwrap_or_else(|e| panic!("{e}"));
    let input = dir.path().join("results.json");
    let results = r#"{"results": [{"tool": "ci_tool", "kind": "sql", "columns": ["ci_code", "status"],
        "rows": [["GT-01", "active"], ["SAN-01", "standby"]]}]}"#;
    std::fs::write(&input, results).unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new(ops_tests::bin("opsctl"))
        .args(["plugin", "run"])
        .arg(&wasm)
        .arg("--input")
        .arg(&input)
        .output()
        .unwrap_or_else(|e| panic!("run opsctl: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let blocks: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("stdout is not JSON: {e}"));
    assert_eq!(blocks[0]["text"]["text"], "2 CIs in 2 statuses");
    assert!(
        stderr.contains("plugin status-board@1.0.0 (ops:plugin/mapper-plugin)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("call ") && stderr.contains("peak memory "),
        "{stderr}"
    );

    let wasi = dir.path().join("wasi.wasm");
    std::fs::write(&wasi, fixtures::WASI_IMPORT).unwrap_or_else(|e| panic!("{e}"));
    let refused = std::process::Command::new(ops_tests::bin("opsctl"))
        .args(["plugin", "run"])
        .arg(&wasi)
        .arg("--input")
        .arg(&input)
        .output()
        .unwrap_or_else(|e| panic!("run opsctl: {e}"));
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("plugins may import nothing"));
}
