//! The demo's Mapping and Screen assets, run by the built-in default plugins on real plant-ops
//! results: rows read from the plant-ops SQLite file, sent to `PreviewMapping` and
//! `PreviewScreen` of a real opsd on 127.0.0.1:0.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use common::{Backend, TestDatabase, TestServer};
use ops_controlplane::demo;
use ops_datasets::plant_ops::ANCHOR;
use ops_proto::v1::*;
use pbjson_types::{ListValue, Struct, Value, value::Kind};
use sqlx::{Column, Connection, Row, SqliteConnection};

fn text(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_owned())),
    }
}

fn number(n: f64) -> Value {
    Value {
        kind: Some(Kind::NumberValue(n)),
    }
}

/// Every column of every row as text or number, as EXECUTE hands results to COMPOSE.
async fn rows(conn: &mut SqliteConnection, sql: &str) -> (Vec<String>, Vec<ListValue>) {
    let fetched = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(&mut *conn)
        .await
        .expect("query");
    let columns = fetched
        .first()
        .map(|r| r.columns().iter().map(|c| c.name().to_owned()).collect())
        .unwrap_or_default();
    let rows = fetched
        .iter()
        .map(|row| ListValue {
            values: (0..row.len())
                .map(|i| match row.try_get::<f64, _>(i) {
                    Ok(n) if row.try_get::<String, _>(i).is_err() => number(n),
                    _ => row.try_get::<Option<String>, _>(i).ok().flatten().map_or(
                        Value {
                            kind: Some(Kind::NullValue(0)),
                        },
                        |s| text(&s),
                    ),
                })
                .collect(),
        })
        .collect();
    (columns, rows)
}

#[tokio::test]
async fn the_demo_mapping_turns_plant_ops_results_into_answer_blocks() {
    let database = TestDatabase::create(Backend::Sqlite).await;
    let data = database.dir.path().join("plant-ops.sqlite");
    ops_datasets::load_sqlite(&data)
        .await
        .expect("load plant-ops");
    let server = TestServer::start(&database).await;
    let admin = server.admin("acme").await;
    let mut client = admin.client.clone();
    let imported = client
        .import_bundle(admin.req(ImportBundleRequest {
            files: demo::plant_ops_bundle(),
            publish: true,
            dry_run: false,
            run_golden_set: false,
        }))
        .await
        .expect("import the demo bundle")
        .into_inner();
    assert!(
        imported.results.iter().all(|r| r.version > 0),
        "every demo asset published: {imported:?}"
    );

    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", data.display()))
        .await
        .expect("open");
    let (columns, ci) = rows(&mut conn, "SELECT ci_code, ci_name, ci_type, system, zone, status FROM ci_master WHERE tenant_id = 'acme' AND ci_code = 'GT-01'").await;
    let (_, avg) = rows(
        &mut conn,
        &format!(
            "SELECT avg(m.value) FROM metric_timeseries m JOIN ci_master c ON c.ci_id = m.ci_id \
         WHERE c.tenant_id = 'acme' AND c.ci_code = 'GT-01' AND m.metric_name = 'cpu_usage' \
         AND m.ts >= strftime('%Y-%m-%dT%H:%M:%SZ', '{ANCHOR}', '-7 days') AND m.ts < '{ANCHOR}'"
        ),
    )
    .await;
    let Some(Kind::NumberValue(average)) = avg[0].values[0].kind else {
        panic!("no average: {avg:?}")
    };
    let (event_columns, events) = rows(&mut conn, "SELECT e.event_id, e.event_type, e.severity, e.occurred_at FROM events e JOIN ci_master c ON c.ci_id = e.ci_id WHERE c.tenant_id = 'acme' AND c.ci_code = 'GT-01' ORDER BY e.occurred_at DESC LIMIT 5").await;
    let (_, edges) = rows(&mut conn, "SELECT s.ci_code, t.ci_code, r.relation_type FROM ci_relation r JOIN ci_master s ON s.ci_id = r.source_ci_id JOIN ci_master t ON t.ci_id = r.target_ci_id WHERE s.tenant_id = 'acme' AND s.ci_code = 'GT-01'").await;
    assert!(
        !events.is_empty() && !edges.is_empty(),
        "plant-ops has GT-01 events and relations"
    );

    let cell = |row: &ListValue, i: usize| match &row.values[i].kind {
        Some(Kind::StringValue(s)) => s.clone(),
        other => panic!("{other:?}"),
    };
    let mut nodes = vec![NetworkNode {
        id: "GT-01".into(),
        label: "GT-01".into(),
        kind: "ci".into(),
        attributes: None,
        depth: 0,
    }];
    nodes.extend(edges.iter().map(|e| NetworkNode {
        id: cell(e, 1),
        label: cell(e, 1),
        kind: "ci".into(),
        attributes: None,
        depth: 1,
    }));
    let graph = NetworkBlock {
        nodes,
        edges: edges
            .iter()
            .map(|e| NetworkEdge {
                source: cell(e, 0),
                target: cell(e, 1),
                relation: cell(e, 2),
            })
            .collect(),
        path: vec![],
    };
    let fields = |pairs: &[(&str, Value)]| Struct {
        fields: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    };
    let results = vec![
        ToolResult {
            tool: "ci_tool".into(),
            kind: "sql".into(),
            columns,
            rows: ci,
            ..Default::default()
        },
        ToolResult {
            tool: "metric_tool".into(),
            kind: "metric".into(),
            fields: Some(fields(&[
                ("ci_code", text("GT-01")),
                ("metric_name", text("cpu_usage")),
                ("aggregation", text("avg")),
                ("window", text("the last 7 days")),
                ("unit", text("%")),
                ("value", number(average)),
            ])),
            references: vec![Reference {
                kind: "metric".into(),
                title: "metric_timeseries GT-01 cpu_usage".into(),
                payload: None,
            }],
            ..Default::default()
        },
        ToolResult {
            tool: "history_tool".into(),
            kind: "sql".into(),
            columns: event_columns,
            rows: events.clone(),
            ..Default::default()
        },
        ToolResult {
            tool: "graph_tool".into(),
            kind: "graph".into(),
            graph: Some(graph),
            ..Default::default()
        },
    ];
    let preview = client
        .preview_mapping(admin.req(PreviewMappingRequest {
            name: "plant_ops_answer".into(),
            results,
            question: "GT-01?".into(),
            ..Default::default()
        }))
        .await
        .expect("preview mapping")
        .into_inner();
    let blocks = preview.blocks;
    let kinds: Vec<_> = blocks
        .iter()
        .map(|b| match &b.content {
            Some(block::Content::Text(_)) => "text",
            Some(block::Content::Table(_)) => "table",
            Some(block::Content::Number(_)) => "number",
            Some(block::Content::Network(_)) => "network",
            Some(block::Content::References(_)) => "references",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "text",
            "table",
            "number",
            "text",
            "table",
            "table",
            "network",
            "references"
        ],
        "{blocks:#?}"
    );
    let Some(block::Content::Text(card)) = &blocks[0].content else {
        unreachable!()
    };
    assert_eq!(
        card.text,
        "Gas Turbine Unit 1 (GT-01) is a GasTurbine in zone plant-1, status active."
    );
    let Some(block::Content::Table(table)) = &blocks[1].content else {
        unreachable!()
    };
    assert_eq!(table.columns, ["item", "value"]);
    assert_eq!(table.rows[0].values, [text("CI code"), text("GT-01")]);
    let Some(block::Content::Number(n)) = &blocks[2].content else {
        unreachable!()
    };
    assert!(
        (n.value - average).abs() < 1e-9
            && n.label == "cpu_usage"
            && n.unit == "%"
            && n.aggregation == "avg",
        "{n:?}"
    );
    let Some(block::Content::Text(sentence)) = &blocks[3].content else {
        unreachable!()
    };
    let shown = sentence
        .text
        .strip_prefix("GT-01 cpu_usage avg over the last 7 days: ")
        .and_then(|t| t.strip_suffix(" %"));
    let shown: f64 = shown
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{sentence:?}"));
    assert!(
        (shown - average).abs() <= 0.005,
        "shown with two decimals: {shown} vs {average}"
    );
    let Some(block::Content::Table(ranking)) = &blocks[4].content else {
        unreachable!()
    };
    assert_eq!(ranking.columns, ["field", "value"], "one CI: a card");
    let Some(block::Content::Table(history)) = &blocks[5].content else {
        unreachable!()
    };
    assert_eq!(history.rows.len(), events.len());
    let Some(block::Content::Network(network)) = &blocks[6].content else {
        unreachable!()
    };
    assert_eq!(network.edges.len(), edges.len());
    let run = preview.run.expect("run report");
    assert!(
        run.builtin && run.plugin.starts_with("default-mapper@"),
        "{run:?}"
    );

    let screen = client
        .preview_screen(admin.req(PreviewScreenRequest {
            name: "plant_ops_screen".into(),
            blocks: blocks.clone(),
            ..Default::default()
        }))
        .await
        .expect("preview screen")
        .into_inner();
    let model = screen.screen.expect("screen model");
    assert_eq!(model.layout, ScreenLayout::Vertical as i32);
    assert_eq!(model.components.len(), blocks.len());
    assert_eq!(
        model.components[0]
            .style
            .get("fontSize")
            .map(String::as_str),
        Some("large")
    );
    let table_component = &model.components[1];
    assert!(
        table_component.pagination
            && table_component.page_size == 20
            && table_component.total_pages == 1,
        "{table_component:?}"
    );
    assert!(model.components[7].collapsible, "references collapse");
    server.stop().await;
    database.cleanup().await;
}

/// Publishing checks the plugin reference inside the publish transaction, so even a registry
/// with a single database connection publishes a plugin-backed Mapping (no second connection
/// is waited for).
#[tokio::test]
async fn a_plugin_backed_mapping_publishes_on_a_single_connection() {
    let database = TestDatabase::create(Backend::Sqlite).await;
    let mut config = database.config();
    config.storage.max_connections = 1;
    let server = TestServer::start_with(config).await;
    let admin = server.admin("acme").await;
    let mut client = admin.client.clone();
    let uploaded = client
        .upload_plugin(admin.req(UploadPluginRequest {
            wasm: ops_plugin_artifacts::STATUS_BOARD.to_vec(),
            expected_world: PluginWorld::Mapper as i32,
        }))
        .await
        .expect("upload")
        .into_inner();
    let digest = uploaded.plugin.expect("plugin").digest;
    let spec = AssetSpec {
        kind: Some(asset_spec::Kind::Mapping(MappingSpec {
            implementation: Some(mapping_spec::Implementation::Plugin(PluginRef {
                digest,
                config: None,
            })),
        })),
    };
    let content = AssetContent {
        spec: Some(spec),
        ..Default::default()
    };
    let created = client
        .create_asset(admin.req(CreateAssetRequest {
            r#type: AssetType::Mapping as i32,
            name: "board".into(),
            content: Some(content),
        }))
        .await
        .expect("create")
        .into_inner();
    let revision = created.asset.expect("asset").revision;
    let published = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        client.publish_asset(admin.req(PublishAssetRequest {
            r#type: AssetType::Mapping as i32,
            name: "board".into(),
            expected_revision: revision,
            note: String::new(),
            run_golden_set: false,
        })),
    )
    .await
    .expect("publish must not wait for a second connection")
    .expect("publish");
    assert_eq!(published.into_inner().asset.map(|a| a.version), Some(1));
    server.stop().await;
    database.cleanup().await;
}
