//! The control plane with supervised sidecars: `Executors::start` spawns the three real
//! sidecar binaries, the demo publishes plant-ops, and AssetRegistry.TestSource / ScanSchema
//! reach the data through them.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod executor_support;

use std::path::Path;

use executor_support::SQL;
use ops_controlplane::config::{Config, ExecutorMode};
use ops_controlplane::execute::Executors;
use ops_controlplane::server;
use ops_proto::v1::asset_registry_client::AssetRegistryClient;
use ops_proto::v1::{ScanSchemaRequest, SemanticType, TestSourceRequest, asset_spec};
use tokio_util::sync::CancellationToken;

fn acme<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("x-ops-tenant", "acme".parse().unwrap());
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_tests_and_scans_sources_through_supervised_sidecars() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.storage.data_dir = dir.path().to_owned();
    config.storage.url = "sqlite::memory:".into();
    config.storage.max_connections = 1;
    config.executors.mode = ExecutorMode::Spawn;
    config.plugins.cache_dir =
        std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache");
    config.executors.bin_dir = Path::new(&*SQL).parent().map(Path::to_owned);
    let registry = server::open_registry(&config).await.expect("registry");
    let cancel = CancellationToken::new();
    let executors = Executors::start(&config.executors, dir.path(), cancel.clone())
        .await
        .expect("sidecars");
    assert_eq!(executors.sidecars().len(), 3);
    ops_controlplane::demo::prepare(dir.path(), &registry)
        .await
        .expect("demo data");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = {
        let config = config.clone();
        let executors = executors.clone();
        let plugins = server::plugin_host(&config).await.expect("plugin host");
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
        })
    };
    let mut client = AssetRegistryClient::connect(endpoint).await.unwrap();

    let tested = client
        .test_source(acme(TestSourceRequest {
            name: "plant_ops".into(),
            draft: false,
        }))
        .await
        .expect("test source")
        .into_inner();
    assert!(tested.ok && tested.read_only, "{tested:?}");
    assert!(
        tested.server_version.starts_with('3'),
        "sqlite version: {tested:?}"
    );

    let scanned = client
        .scan_schema(acme(ScanSchemaRequest {
            source_name: "plant_ops".into(),
            catalog_name: "plant_ops".into(),
            exclude_tables: vec!["credential*".into()],
            ..Default::default()
        }))
        .await
        .expect("scan")
        .into_inner();
    assert_eq!(scanned.tables, 6, "7 tables minus the excluded credentials");
    let catalog = scanned.catalog.expect("catalog draft");
    assert_eq!(catalog.version, 0, "the scan is a draft for review");
    let Some(asset_spec::Kind::SchemaCatalog(spec)) = catalog.spec.and_then(|s| s.kind) else {
        panic!("not a catalog")
    };
    let ci = spec
        .tables
        .iter()
        .find(|t| t.name == "ci_master")
        .expect("ci_master");
    assert_eq!(ci.tenant_column, "tenant_id");
    assert!(
        ci.columns
            .iter()
            .any(|c| c.name == "ci_id" && c.primary_key)
    );
    // What the admin curated survives the rescan.
    assert!(ci.synonyms.iter().any(|s| s == "장비"), "{:?}", ci.synonyms);
    assert!(spec.graph.is_some() && spec.metrics.is_some());
    let relation = spec
        .tables
        .iter()
        .find(|t| t.name == "ci_relation")
        .expect("ci_relation");
    assert!(
        relation
            .foreign_keys
            .iter()
            .any(|f| f.referenced_table == "ci_master")
    );
    // A table holding secrets is flagged and disabled until an admin decides.
    let users = spec
        .tables
        .iter()
        .find(|t| t.name == "users")
        .expect("users");
    assert!(!users.enabled);
    assert!(
        users
            .columns
            .iter()
            .any(|c| c.name == "password_hash" && c.semantic_type == SemanticType::Secret as i32)
    );

    // A fresh scan (no curated catalog) proposes from the data what the demo's hand-written
    // catalog says: each table's tenant column, the columns' roles, the metric and graph
    // mappings, and glossary synonyms for values asked in the other language.
    let fresh = client
        .scan_schema(acme(ScanSchemaRequest {
            source_name: "plant_ops".into(),
            catalog_name: "plant_ops_fresh".into(),
            ..Default::default()
        }))
        .await
        .expect("fresh scan")
        .into_inner();
    let notes = fresh.notes.join("\n");
    let Some(asset_spec::Kind::SchemaCatalog(proposed)) =
        fresh.catalog.and_then(|c| c.spec).and_then(|s| s.kind)
    else {
        panic!("not a catalog")
    };
    let written = executor_support::catalog();
    for table in &written.tables {
        let found = proposed
            .tables
            .iter()
            .find(|t| t.name == table.name)
            .unwrap_or_else(|| panic!("{} not scanned", table.name));
        assert_eq!(
            found.tenant_column, table.tenant_column,
            "{}\n{notes}",
            table.name
        );
        for column in &table.columns {
            let semantic = found
                .columns
                .iter()
                .find(|c| c.name == column.name)
                .map(|c| c.semantic_type);
            if matches!(
                SemanticType::try_from(column.semantic_type),
                Ok(SemanticType::Code
                    | SemanticType::Tenant
                    | SemanticType::Timestamp
                    | SemanticType::Measure)
            ) {
                assert_eq!(
                    semantic,
                    Some(column.semantic_type),
                    "{}.{}\n{notes}",
                    table.name,
                    column.name
                );
            }
        }
    }
    let status = proposed
        .tables
        .iter()
        .find(|t| t.name == "ci_master")
        .and_then(|t| t.columns.iter().find(|c| c.name == "status"))
        .expect("status");
    assert!(
        status.filterable && status.enum_values.len() >= 2,
        "{status:?}"
    );
    assert!(
        !proposed.tables.iter().any(|t| t
            .columns
            .iter()
            .any(|c| c.enum_values.iter().any(|v| v == "globex"))),
        "values come from the caller's rows only"
    );
    let (m, w) = (
        proposed.metrics.expect("metric mapping"),
        written.metrics.unwrap(),
    );
    assert_eq!(
        (
            &m.table,
            &m.entity_column,
            &m.metric_name_column,
            &m.timestamp_column,
            &m.value_column
        ),
        (
            &w.table,
            &w.entity_column,
            &w.metric_name_column,
            &w.timestamp_column,
            &w.value_column
        ),
        "{notes}"
    );
    assert_eq!(
        (
            &m.entity_table,
            &m.entity_id_column,
            &m.entity_code_column,
            &m.tenant_column
        ),
        (
            &w.entity_table,
            &w.entity_id_column,
            &w.entity_code_column,
            &w.tenant_column
        )
    );
    let mut names: Vec<&str> = m.metrics.iter().map(|d| d.name.as_str()).collect();
    let mut expected: Vec<&str> = w.metrics.iter().map(|d| d.name.as_str()).collect();
    names.sort();
    expected.sort();
    assert_eq!(names, expected, "every metric, not only the first rows'");
    let (g, w) = (
        proposed.graph.expect("graph mapping"),
        written.graph.unwrap(),
    );
    assert_eq!(
        (
            &g.node_table,
            &g.node_id_column,
            &g.node_code_column,
            &g.edge_table
        ),
        (
            &w.node_table,
            &w.node_id_column,
            &w.node_code_column,
            &w.edge_table
        ),
        "{notes}"
    );
    assert_eq!(
        (
            &g.edge_source_column,
            &g.edge_target_column,
            &g.edge_type_column,
            &g.tenant_column
        ),
        (
            &w.edge_source_column,
            &w.edge_target_column,
            &w.edge_type_column,
            &w.tenant_column
        )
    );
    assert_eq!(g.node_kind_column, w.node_kind_column);
    let directions = |relations: &[ops_proto::v1::RelationType]| {
        let mut d: Vec<(String, i32)> = relations
            .iter()
            .map(|r| (r.name.clone(), r.direction))
            .collect();
        d.sort();
        d
    };
    assert_eq!(
        directions(&g.relation_types),
        directions(&w.relation_types),
        "{notes}"
    );
    assert!(
        notes.contains("graph mapping proposed from ci_relation"),
        "{notes}"
    );
    assert!(
        fresh
            .proposed_vocabulary
            .iter()
            .any(|e| e.meaning == "value:ci_master.os=Linux"
                && e.terms.iter().any(|t| t == "리눅스")),
        "{:?}",
        fresh.proposed_vocabulary
    );

    // A source of another shape: the tenant column is found by its values, not its name.
    let other = dir.path().join("estate.sqlite");
    {
        use sqlx::ConnectOptions;
        let mut db = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&other)
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        sqlx::raw_sql(
            "CREATE TABLE rooms (room_no TEXT PRIMARY KEY, owner_org TEXT, label TEXT, kind TEXT);
             INSERT INTO rooms VALUES ('R-101', 'acme', 'Main hall', 'hall'), ('R-102', 'acme', 'Side room', 'office'),
               ('R-103', 'acme', 'Back office', 'office'), ('R-201', 'globex', 'Lab one', 'lab');",
        )
        .execute(&mut db)
        .await
        .unwrap();
        // Many more tenants than an enum-like column has values: found all the same.
        for n in 0..80 {
            sqlx::query("INSERT INTO rooms VALUES (?, ?, ?, 'lab')")
                .bind(format!("X-{n}"))
                .bind(format!("org-{n}"))
                .bind(format!("Room {n}"))
                .execute(&mut db)
                .await
                .unwrap();
        }
    }
    let source = format!(
        "type: source\nname: estate\nspec:\n  kind: SOURCE_KIND_SQLITE\n  connection: {{path: {:?}}}\n  permissions: {{read_only: true}}\n",
        other.display().to_string()
    );
    client
        .import_bundle(acme(ops_proto::v1::ImportBundleRequest {
            files: vec![ops_proto::v1::BundleFile {
                path: "source.yaml".into(),
                content: source.into_bytes(),
            }],
            publish: true,
            ..Default::default()
        }))
        .await
        .expect("estate source");
    let estate = client
        .scan_schema(acme(ScanSchemaRequest {
            source_name: "estate".into(),
            ..Default::default()
        }))
        .await
        .expect("estate scan")
        .into_inner();
    let Some(asset_spec::Kind::SchemaCatalog(estate_catalog)) =
        estate.catalog.and_then(|c| c.spec).and_then(|s| s.kind)
    else {
        panic!("not a catalog")
    };
    let rooms = &estate_catalog.tables[0];
    assert_eq!(rooms.tenant_column, "owner_org", "{:?}", estate.notes);
    let kind = rooms.columns.iter().find(|c| c.name == "kind").unwrap();
    assert_eq!(
        kind.enum_values,
        ["office", "hall"],
        "acme's values, most frequent first"
    );
    let code = rooms.columns.iter().find(|c| c.name == "room_no").unwrap();
    assert_eq!(code.semantic_type, SemanticType::Identifier as i32);
    let label = rooms.columns.iter().find(|c| c.name == "label").unwrap();
    assert_eq!(
        label.semantic_type,
        SemanticType::Name as i32,
        "{:?}",
        estate.notes
    );

    // A source that does not exist is an answer, not a crash.
    let missing = client
        .test_source(acme(TestSourceRequest {
            name: "nope".into(),
            draft: false,
        }))
        .await
        .expect_err("unknown source");
    assert_eq!(missing.code(), tonic::Code::NotFound);

    stop.send(()).unwrap();
    serving.await.unwrap().expect("served");
    cancel.cancel();
    executors.stop().await;
}
