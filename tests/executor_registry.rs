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
