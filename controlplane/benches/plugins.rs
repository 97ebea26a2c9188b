//! Plugin call cost, measured on real components built from `plugins/`:
//!
//! 1. **Encoding**: the same table mapping (rows in, a table block out) through the encoding
//!    probe, with rows as typed WIT records, as JSON bytes and as MessagePack bytes; per call:
//!    encode on the host, instantiate, call, decode on the host. 10, 1,000 and 10,000 rows.
//! 2. **The host path** the pipeline uses: `PluginHost::run_mapper` of the default mapper
//!    (instantiate + call + output checks) plus conversion of the blocks to protobuf, for the
//!    same row counts, with the pooling allocator and with on-demand allocation.
//! 3. **Instantiation** alone (instantiate + `describe`), pooling vs on-demand.
//!
//! Run: `cargo bench -p ops-controlplane --bench plugins`. `OPS_BENCH_ITERATIONS` scales the
//! sample count (default 200; 10,000-row cases take a tenth of it).

// A benchmark binary, not library code: a failed setup step should abort the run loudly.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::{Duration, Instant};

use ops_controlplane::config::{PluginAllocator, PluginsConfig};
use ops_controlplane::plugins::bindings::{MapInput, wit};
use ops_controlplane::plugins::{CallLimits, PluginHost, convert};
use serde::{Deserialize, Serialize};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};

mod probe {
    wasmtime::component::bindgen!({
        path: "../plugins/fixtures/encoding-probe/wit",
        world: "encoding-probe",
    });
}
use probe::exports::ops::encoding_probe::probe as p;

const ROW_COUNTS: [usize; 3] = [10, 1_000, 10_000];

fn iterations(rows: usize) -> usize {
    let base: usize = std::env::var("OPS_BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    if rows >= 10_000 {
        (base / 10).max(5)
    } else {
        base
    }
}

/// (p50, p99) in microseconds.
fn measure(n: usize, mut f: impl FnMut()) -> (f64, f64) {
    for _ in 0..n.min(20) {
        f();
    }
    let mut samples: Vec<Duration> = (0..n)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect();
    samples.sort();
    let at =
        |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.99))
}

/// Plant-ops-shaped rows: code, metric, timestamp, value, count, nullable note.
fn columns() -> Vec<String> {
    ["ci_code", "metric_name", "ts", "value", "samples", "note"]
        .map(String::from)
        .to_vec()
}

fn json_rows(n: usize) -> Vec<Vec<serde_json::Value>> {
    (0..n)
        .map(|i| {
            vec![
                serde_json::json!(format!("GT-{:02}", i % 40)),
                serde_json::json!("cpu_usage"),
                serde_json::json!(format!("2026-01-{:02}T{:02}:00:00Z", 1 + i % 28, i % 24)),
                serde_json::json!(35.0 + (i % 600) as f64 / 10.0),
                serde_json::json!(i as i64),
                if i % 3 == 0 {
                    serde_json::Value::Null
                } else {
                    serde_json::json!("steady")
                },
            ]
        })
        .collect()
}

fn typed_rows(rows: &[Vec<serde_json::Value>]) -> Vec<Vec<p::Value>> {
    rows.iter()
        .map(|row| {
            row.iter()
                .map(|v| match v {
                    serde_json::Value::Null => p::Value::Null,
                    serde_json::Value::Number(n) if n.is_i64() => {
                        p::Value::Integer(n.as_i64().unwrap_or_default())
                    }
                    serde_json::Value::Number(n) => p::Value::Float(n.as_f64().unwrap_or_default()),
                    serde_json::Value::String(s) => p::Value::Text(s.clone()),
                    other => p::Value::Json(other.to_string()),
                })
                .collect()
        })
        .collect()
}

/// The same rows column by column (what a columnar contract would carry).
fn columnar(rows: &[Vec<serde_json::Value>]) -> p::ColumnarTable {
    let width = rows.first().map_or(0, Vec::len);
    let data = (0..width)
        .map(|c| {
            let cells = rows.iter().map(|r| &r[c]);
            if rows.iter().all(|r| r[c].is_i64() || r[c].is_null()) {
                p::Column::Integers(cells.map(serde_json::Value::as_i64).collect())
            } else if rows.iter().all(|r| r[c].is_number() || r[c].is_null()) {
                p::Column::Floats(cells.map(serde_json::Value::as_f64).collect())
            } else if rows.iter().all(|r| r[c].is_string() || r[c].is_null()) {
                let mut data = String::new();
                let mut ends = Vec::with_capacity(rows.len());
                let has_nulls = rows.iter().any(|r| r[c].is_null());
                let mut nulls = Vec::with_capacity(if has_nulls { rows.len() } else { 0 });
                for cell in cells {
                    data.push_str(cell.as_str().unwrap_or_default());
                    ends.push(data.len() as u32);
                    if has_nulls {
                        nulls.push(cell.is_null());
                    }
                }
                p::Column::Texts(p::Texts { data, ends, nulls })
            } else {
                p::Column::Cells(
                    typed_rows(&rows.iter().map(|r| vec![r[c].clone()]).collect::<Vec<_>>())
                        .into_iter()
                        .flatten()
                        .collect(),
                )
            }
        })
        .collect();
    p::ColumnarTable {
        columns: columns(),
        rows: rows.len() as u32,
        data,
    }
}

#[derive(Serialize, Deserialize)]
struct ByteTable {
    columns: Vec<String>,
    rows: Vec<Vec<serde_json::Value>>,
}

#[derive(Deserialize)]
struct ByteBlock {
    #[allow(dead_code)]
    title: String,
    table: ByteTable,
}

fn encoding_section() {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    let engine = Engine::new(&config).expect("engine");
    let component = Component::new(&engine, ops_plugin_artifacts::fixtures::ENCODING_PROBE)
        .expect("probe component");
    let linker = Linker::<()>::new(&engine);
    let pre =
        probe::EncodingProbePre::new(linker.instantiate_pre(&component).expect("instantiate_pre"))
            .expect("probe world");

    println!("\n## encoding: host encode + instantiate + call + host decode (µs, p50 / p99)\n");
    println!(
        "| rows | typed rows (list<list<value>>) | typed columns | JSON bytes | MessagePack bytes | JSON / typed rows (p50) | typed rows / typed columns (p50) |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for n in ROW_COUNTS {
        let rows = json_rows(n);
        let iters = iterations(n);
        let typed = measure(iters, || {
            let table = p::Table {
                columns: columns(),
                rows: typed_rows(&rows),
            };
            let mut store = Store::new(&engine, ());
            let instance = pre.instantiate(&mut store).expect("instantiate");
            let out = instance
                .ops_encoding_probe_probe()
                .call_map_typed(&mut store, &table)
                .expect("call");
            assert_eq!(out.rows.len(), n);
        });
        let columns_typed = measure(iters, || {
            let table = columnar(&rows);
            let mut store = Store::new(&engine, ());
            let instance = pre.instantiate(&mut store).expect("instantiate");
            let out = instance
                .ops_encoding_probe_probe()
                .call_map_columnar(&mut store, &table)
                .expect("call");
            assert_eq!(out.rows as usize, n);
        });
        let json = measure(iters, || {
            let bytes = serde_json::to_vec(&ByteTable {
                columns: columns(),
                rows: rows.clone(),
            })
            .expect("encode");
            let mut store = Store::new(&engine, ());
            let instance = pre.instantiate(&mut store).expect("instantiate");
            let out = instance
                .ops_encoding_probe_probe()
                .call_map_json(&mut store, &bytes)
                .expect("call");
            let block: ByteBlock = serde_json::from_slice(&out).expect("decode");
            assert_eq!(block.table.rows.len(), n);
        });
        let msgpack = measure(iters, || {
            let bytes = rmp_serde::to_vec_named(&ByteTable {
                columns: columns(),
                rows: rows.clone(),
            })
            .expect("encode");
            let mut store = Store::new(&engine, ());
            let instance = pre.instantiate(&mut store).expect("instantiate");
            let out = instance
                .ops_encoding_probe_probe()
                .call_map_msgpack(&mut store, &bytes)
                .expect("call");
            let block: ByteBlock = rmp_serde::from_slice(&out).expect("decode");
            assert_eq!(block.table.rows.len(), n);
        });
        println!(
            "| {n} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {:.2}× | {:.1}× |",
            typed.0,
            typed.1,
            columns_typed.0,
            columns_typed.1,
            json.0,
            json.1,
            msgpack.0,
            msgpack.1,
            json.0 / typed.0,
            typed.0 / columns_typed.0
        );
    }
}

fn host(allocator: PluginAllocator) -> PluginHost {
    let config = PluginsConfig {
        allocator,
        ..PluginsConfig::default()
    };
    let host = PluginHost::new(&config, None).expect("plugin host");
    assert_eq!(
        host.allocator(),
        allocator,
        "the machine refused the {allocator:?} allocator"
    );
    host
}

fn host_section() {
    let pooling = host(PluginAllocator::Pooling);
    let on_demand = host(PluginAllocator::OnDemand);
    let limits = CallLimits::resolve(pooling.config(), None);

    println!(
        "\n## default mapper via PluginHost::run_mapper: instantiate + call + lift + output checks, then + blocks to protobuf (µs, p50 / p99)\n"
    );
    println!("| rows | pooling | pooling + protobuf | on-demand | peak guest memory |");
    println!("| ---: | ---: | ---: | ---: | ---: |");
    for n in ROW_COUNTS {
        // What EXECUTE hands COMPOSE: protobuf rows, converted once to the contract's row set.
        let proto_rows: Vec<pbjson_types::ListValue> = json_rows(n)
            .into_iter()
            .map(|r| serde_json::from_value(serde_json::Value::Array(r)).expect("row"))
            .collect();
        let rows = convert::row_set_from_pb(&columns(), &proto_rows);
        let input = MapInput {
            question: String::new(),
            results: vec![wit::ToolResult {
                tool: "metric_series_tool".into(),
                kind: "metric".into(),
                rows,
                truncated: false,
                fields: vec![],
                graph: None,
                references: vec![],
            }],
            config: String::new(),
        };
        let mut peak = 0;
        let mut run = |host: &PluginHost, to_protobuf: bool| {
            let plugin = host.default_mapper().expect("default mapper");
            measure(iterations(n), || {
                let (blocks, usage) = host.run_mapper(&plugin, &input, limits).expect("map");
                peak = usage.peak_memory_bytes;
                if to_protobuf {
                    let proto: Vec<_> = blocks.iter().map(convert::block_to_pb).collect();
                    assert_eq!(proto.len(), 1);
                }
            })
        };
        let pooled = run(&pooling, false);
        let pooled_pb = run(&pooling, true);
        let demand = run(&on_demand, false);
        println!(
            "| {n} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {} KiB |",
            pooled.0,
            pooled.1,
            pooled_pb.0,
            pooled_pb.1,
            demand.0,
            demand.1,
            peak / 1024
        );
    }

    println!(
        "\n## instantiation: instantiate + describe() of the default mapper (µs, p50 / p99)\n"
    );
    println!("| allocator | p50 / p99 |");
    println!("| --- | ---: |");
    for (name, host) in [("pooling", &pooling), ("on-demand", &on_demand)] {
        let plugin = host.default_mapper().expect("default mapper");
        let t = measure(iterations(0) * 5, || {
            host.run_describe(&plugin).expect("describe");
        });
        println!("| {name} | {:.1} / {:.1} |", t.0, t.1);
    }
}

fn main() {
    println!(
        "# plugin benchmarks ({} cores)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    encoding_section();
    host_section();
}
