//! The registry suite. Every case runs on SQLite and on PostgreSQL (see `registry_*.rs`),
//! against real opsd servers over gRPC.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeSet;

use ops_proto::v1::*;
use tonic::Code;
use tonic_types::StatusExt;

use crate::common::{Admin, Backend, TestDatabase, TestServer};

// ── fixtures: one valid spec per asset type ─────────────────────────────────────────────

pub fn source_spec() -> asset_spec::Kind {
    asset_spec::Kind::Source(SourceSpec {
        kind: SourceKind::Sqlite as i32,
        connection: Some(SourceConnection {
            path: "/var/lib/ops/plant-ops.db".into(),
            ..Default::default()
        }),
        permissions: Some(SourcePermissions {
            read_only: true,
            schema_allowlist: vec!["main".into()],
        }),
        limits: Some(SourceLimits {
            max_rows: 10_000,
            max_duration_ms: 30_000,
            max_connections: 4,
            max_result_bytes: 0,
        }),
    })
}

pub fn query_spec(sql: &str) -> asset_spec::Kind {
    asset_spec::Kind::Query(QuerySpec {
        source_ref: "source:plant".into(),
        sql: sql.into(),
        params: vec![QueryParam {
            name: "ci_code".into(),
            r#type: ParamType::String as i32,
            required: true,
            ..Default::default()
        }],
        max_execution_time_ms: 5000,
        ..Default::default()
    })
}

pub fn spec_for(t: AssetType) -> asset_spec::Kind {
    match t {
        AssetType::Source => source_spec(),
        AssetType::SchemaCatalog => asset_spec::Kind::SchemaCatalog(SchemaCatalogSpec {
            source_ref: "source:plant".into(),
            tables: vec![CatalogTable {
                name: "ci_master".into(),
                display_name: "Configuration items".into(),
                synonyms: vec!["CI".into(), "구성 항목".into()],
                tenant_column: "tenant_id".into(),
                enabled: true,
                columns: vec![
                    CatalogColumn {
                        name: "tenant_id".into(),
                        data_type: "TEXT".into(),
                        semantic_type: SemanticType::Tenant as i32,
                        ..Default::default()
                    },
                    CatalogColumn {
                        name: "ci_code".into(),
                        data_type: "TEXT".into(),
                        semantic_type: SemanticType::Code as i32,
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }),
        AssetType::Resolver => asset_spec::Kind::Resolver(ResolverSpec {
            rules: vec![ResolverRule {
                rule_type: ResolverRuleType::AliasMapping as i32,
                name: "alias:서버A".into(),
                priority: 100,
                is_active: true,
                rule_data: Some(ResolverRuleData {
                    source_entity: "서버A".into(),
                    target_entity: "ci_code:ERP-WEB-01".into(),
                    ..Default::default()
                }),
            }],
        }),
        AssetType::Query => {
            query_spec("SELECT ci_code, ci_name FROM ci_master WHERE ci_code = :ci_code")
        }
        AssetType::Mapping => asset_spec::Kind::Mapping(MappingSpec {
            implementation: Some(mapping_spec::Implementation::Declarative(
                DeclarativeMapping {
                    version: "1.0".into(),
                    mappings: vec![MappingRule {
                        source_type: "ci_tool".into(),
                        target_block: BlockType::Text as i32,
                        template: "{{ci_name}}({{ci_code}}) is {{status}}".into(),
                        ..Default::default()
                    }],
                },
            )),
        }),
        AssetType::Prompt => asset_spec::Kind::Prompt(PromptSpec {
            purpose: PromptPurpose::Planner as i32,
            template: "Question: {{question}}".into(),
            vocabulary: vec![VocabularyEntry {
                meaning: "aggregation:avg".into(),
                terms: vec!["평균".into(), "average".into()],
            }],
            ..Default::default()
        }),
        AssetType::Policy => asset_spec::Kind::Policy(PolicySpec {
            budget: Some(Budget {
                max_steps: 10,
                max_depth: 3,
                timeout_ms: 60_000,
            }),
            allowed_intents: vec!["config".into(), "metric".into()],
            restricted_tables: vec!["users".into(), "credentials".into()],
            row_limit: 1000,
            replan: Some(ReplanPolicy {
                max_replans: 3,
                allowed_triggers: vec![ReplanTrigger::EmptyResult as i32],
                ..Default::default()
            }),
            ..Default::default()
        }),
        AssetType::Screen => asset_spec::Kind::Screen(ScreenSpec {
            implementation: Some(screen_spec::Implementation::Declarative(
                DeclarativeScreen {
                    layout: ScreenLayout::Vertical as i32,
                    components: vec![ScreenComponent {
                        r#type: BlockType::Table as i32,
                        pagination: true,
                        page_size: 20,
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            )),
        }),
        AssetType::Tool => asset_spec::Kind::Tool(ToolSpec {
            tool_type: ToolType::DatabaseQuery as i32,
            description: "look up one CI by code".into(),
            query_ref: "query:ci_lookup".into(),
            source_ref: "source:plant".into(),
            timeout_ms: 5000,
            ..Default::default()
        }),
        AssetType::Unspecified => unreachable!(),
    }
}

/// Names the fixtures reference each other by.
pub fn fixture_name(t: AssetType) -> &'static str {
    match t {
        AssetType::Source => "plant",
        AssetType::Query => "ci_lookup",
        _ => "main",
    }
}

pub const ALL_TYPES: [AssetType; 9] = [
    AssetType::Source,
    AssetType::SchemaCatalog,
    AssetType::Resolver,
    AssetType::Query,
    AssetType::Mapping,
    AssetType::Prompt,
    AssetType::Policy,
    AssetType::Screen,
    AssetType::Tool,
];

pub fn content(kind: asset_spec::Kind) -> AssetContent {
    AssetContent {
        description: "fixture".into(),
        scope: "production".into(),
        spec: Some(AssetSpec { kind: Some(kind) }),
        ..Default::default()
    }
}

pub async fn create(
    admin: &Admin,
    t: AssetType,
    name: &str,
    c: AssetContent,
) -> Result<Asset, tonic::Status> {
    let r = admin
        .client
        .clone()
        .create_asset(admin.req(CreateAssetRequest {
            r#type: t as i32,
            name: name.into(),
            content: Some(c),
        }))
        .await?;
    Ok(r.into_inner().asset.expect("asset"))
}

pub async fn update(
    admin: &Admin,
    t: AssetType,
    name: &str,
    revision: u64,
    c: AssetContent,
) -> Result<Asset, tonic::Status> {
    let r = admin
        .client
        .clone()
        .update_draft(admin.req(UpdateDraftRequest {
            r#type: t as i32,
            name: name.into(),
            expected_revision: revision,
            content: Some(c),
        }))
        .await?;
    Ok(r.into_inner().asset.expect("asset"))
}

pub async fn publish(
    admin: &Admin,
    t: AssetType,
    name: &str,
    revision: u64,
) -> Result<Asset, tonic::Status> {
    let r = admin
        .client
        .clone()
        .publish_asset(admin.req(PublishAssetRequest {
            r#type: t as i32,
            name: name.into(),
            expected_revision: revision,
            note: "test".into(),
            run_golden_set: false,
        }))
        .await?;
    Ok(r.into_inner().asset.expect("asset"))
}

pub async fn get(
    admin: &Admin,
    t: AssetType,
    name: &str,
    selector: Option<get_asset_request::Selector>,
) -> Result<Asset, tonic::Status> {
    let r = admin
        .client
        .clone()
        .get_asset(admin.req(GetAssetRequest {
            r#type: t as i32,
            name: name.into(),
            selector,
        }))
        .await?;
    Ok(r.into_inner().asset.expect("asset"))
}

/// Every asset the admin's tenant has (first page).
pub async fn list_all(admin: &Admin) -> Vec<AssetSummary> {
    let request = admin.req(ListAssetsRequest::default());
    admin
        .client
        .clone()
        .list_assets(request)
        .await
        .unwrap()
        .into_inner()
        .assets
}

pub async fn import(
    admin: &Admin,
    files: Vec<BundleFile>,
    publish: bool,
    dry_run: bool,
) -> Result<ImportBundleResponse, tonic::Status> {
    let request = admin.req(ImportBundleRequest {
        files,
        publish,
        dry_run,
        run_golden_set: false,
    });
    Ok(admin
        .client
        .clone()
        .import_bundle(request)
        .await?
        .into_inner())
}

pub async fn create_and_publish(
    admin: &Admin,
    t: AssetType,
    name: &str,
    kind: asset_spec::Kind,
) -> Asset {
    let created = create(admin, t, name, content(kind))
        .await
        .unwrap_or_else(|s| panic!("create {t:?} {name}: {s:?}"));
    publish(admin, t, name, created.revision)
        .await
        .unwrap_or_else(|s| panic!("publish {t:?} {name}: {s:?}"))
}

fn field_violations(status: &tonic::Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// A harness owning one database and one server.
pub struct Env {
    pub database: TestDatabase,
    pub server: TestServer,
}

impl Env {
    pub async fn start(backend: Backend) -> Self {
        let database = TestDatabase::create(backend).await;
        let server = TestServer::start(&database).await;
        Self { database, server }
    }

    pub async fn stop(self) {
        self.server.stop().await;
        self.database.cleanup().await;
    }
}

// ── cases ────────────────────────────────────────────────────────────────────────────────

pub async fn lifecycle_create_publish_archive_rollback(backend: Backend) {
    let env = Env::start(backend).await;
    let admin = env.server.admin("acme").await;
    create_and_publish(&admin, AssetType::Source, "plant", source_spec()).await;

    let t = AssetType::Query;
    let draft = create(
        &admin,
        t,
        "ci_lookup",
        content(query_spec(
            "SELECT ci_code FROM ci_master WHERE ci_code = :ci_code",
        )),
    )
    .await
    .unwrap();
    assert_eq!(
        (draft.version, draft.status, draft.revision),
        (0, AssetStatus::Draft as i32, 1)
    );
    assert_eq!(
        draft.bindings,
        vec![Stage::Execute as i32],
        "empty bindings mean every allowed stage"
    );
    assert_eq!(
        get(&admin, t, "ci_lookup", None).await.unwrap_err().code(),
        Code::NotFound,
        "nothing published yet"
    );

    let updated = update(
        &admin,
        t,
        "ci_lookup",
        1,
        content(query_spec(
            "SELECT ci_code, status FROM ci_master WHERE ci_code = :ci_code",
        )),
    )
    .await
    .unwrap();
    assert_eq!(updated.revision, 2);
    let v1 = publish(&admin, t, "ci_lookup", 2).await.unwrap();
    assert_eq!(
        (v1.version, v1.status, v1.revision, v1.latest_version),
        (1, AssetStatus::Published as i32, 3, 1)
    );
    assert_eq!(
        get(
            &admin,
            t,
            "ci_lookup",
            Some(get_asset_request::Selector::Draft(true))
        )
        .await
        .unwrap_err()
        .code(),
        Code::NotFound,
        "publish consumes the draft"
    );

    let again = update(
        &admin,
        t,
        "ci_lookup",
        3,
        content(query_spec(
            "SELECT ci_code, ci_name FROM ci_master WHERE ci_code = :ci_code",
        )),
    )
    .await
    .unwrap();
    assert_eq!(again.base_version, 1);
    let v2 = publish(&admin, t, "ci_lookup", again.revision)
        .await
        .unwrap();
    assert_eq!(v2.version, 2);

    let latest = get(&admin, t, "ci_lookup", None).await.unwrap();
    assert_eq!(latest.version, 2);
    let first = get(
        &admin,
        t,
        "ci_lookup",
        Some(get_asset_request::Selector::Version(1)),
    )
    .await
    .unwrap();
    assert_eq!(
        first.content_sha256, v1.content_sha256,
        "published versions never change"
    );
    assert_eq!(first.spec, v1.spec);

    let versions = admin
        .client
        .clone()
        .list_versions(admin.req(ListVersionsRequest {
            r#type: t as i32,
            name: "ci_lookup".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        versions
            .versions
            .iter()
            .map(|v| v.version)
            .collect::<Vec<_>>(),
        vec![2, 1]
    );

    let diff = admin
        .client
        .clone()
        .diff_versions(admin.req(DiffVersionsRequest {
            r#type: t as i32,
            name: "ci_lookup".into(),
            from_version: 1,
            to_version: 2,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        diff.changes
            .iter()
            .map(|c| c.path.as_str())
            .collect::<Vec<_>>(),
        vec!["spec.query.sql"]
    );

    let archived = admin
        .client
        .clone()
        .archive_asset(admin.req(ArchiveAssetRequest {
            r#type: t as i32,
            name: "ci_lookup".into(),
            expected_revision: v2.revision,
        }))
        .await
        .unwrap()
        .into_inner()
        .asset
        .unwrap();
    assert_eq!(archived.status, AssetStatus::Archived as i32);
    let err = get(&admin, t, "ci_lookup", None).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("archived"), "{}", err.message());
    assert_eq!(
        get(
            &admin,
            t,
            "ci_lookup",
            Some(get_asset_request::Selector::Version(1))
        )
        .await
        .unwrap()
        .version,
        1,
        "history stays readable"
    );

    let rolled = admin
        .client
        .clone()
        .rollback_asset(admin.req(RollbackAssetRequest {
            r#type: t as i32,
            name: "ci_lookup".into(),
            expected_revision: archived.revision,
            to_version: 1,
            note: String::new(),
        }))
        .await
        .unwrap()
        .into_inner()
        .asset
        .unwrap();
    assert_eq!(
        (rolled.version, rolled.rolled_back_from, rolled.status),
        (3, 1, AssetStatus::Published as i32)
    );
    assert_eq!(rolled.content_sha256, v1.content_sha256);
    assert_eq!(get(&admin, t, "ci_lookup", None).await.unwrap().version, 3);

    let audit = admin
        .client
        .clone()
        .list_audit_events(admin.req(ListAuditEventsRequest {
            r#type: t as i32,
            name: "ci_lookup".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let actions: Vec<i32> = audit.events.iter().rev().map(|e| e.action).collect();
    assert_eq!(
        actions,
        vec![
            AuditAction::Create as i32,
            AuditAction::UpdateDraft as i32,
            AuditAction::Publish as i32,
            AuditAction::UpdateDraft as i32,
            AuditAction::Publish as i32,
            AuditAction::Archive as i32,
            AuditAction::Rollback as i32,
        ]
    );
    assert!(audit.events.iter().all(|e| e.principal == "acme-admin"));
    let rollback = &audit.events[0];
    assert_eq!((rollback.from_version, rollback.to_version), (2, 3));
    env.stop().await;
}

pub async fn every_asset_type_goes_through_the_lifecycle(backend: Backend) {
    let env = Env::start(backend).await;
    let admin = env.server.admin("acme").await;
    for t in ALL_TYPES {
        let name = fixture_name(t);
        let v1 = create_and_publish(&admin, t, name, spec_for(t)).await;
        let mut changed = content(spec_for(t));
        changed.description = "second".into();
        let draft = update(&admin, t, name, v1.revision, changed).await.unwrap();
        let v2 = publish(&admin, t, name, draft.revision).await.unwrap();
        assert_eq!(v2.version, 2, "{t:?}");
        let validated = admin
            .client
            .clone()
            .validate_asset(admin.req(ValidateAssetRequest {
                r#type: t as i32,
                name: name.into(),
                target: Some(validate_asset_request::Target::Version(2)),
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(validated.valid, "{t:?}: {:?}", validated.violations);
        let archived = admin
            .client
            .clone()
            .archive_asset(admin.req(ArchiveAssetRequest {
                r#type: t as i32,
                name: name.into(),
                expected_revision: v2.revision,
            }))
            .await
            .unwrap()
            .into_inner()
            .asset
            .unwrap();
        let rolled = admin
            .client
            .clone()
            .rollback_asset(admin.req(RollbackAssetRequest {
                r#type: t as i32,
                name: name.into(),
                expected_revision: archived.revision,
                to_version: 1,
                note: String::new(),
            }))
            .await;
        // Rolling back revives the asset; references must still resolve, and they do because
        // the referenced assets (published earlier in ALL_TYPES order) are still active.
        let rolled = rolled
            .unwrap_or_else(|s| panic!("rollback {t:?}: {s:?}"))
            .into_inner()
            .asset
            .unwrap();
        assert_eq!((rolled.version, rolled.rolled_back_from), (3, 1), "{t:?}");
    }
    let listed = list_all(&admin).await;
    assert_eq!(listed.len(), 9);
    assert!(
        listed
            .iter()
            .all(|a| a.latest_version == 3 && a.status == AssetStatus::Published as i32)
    );
    env.stop().await;
}

pub async fn stale_revisions_are_rejected(backend: Backend) {
    let env = Env::start(backend).await;
    let admin = env.server.admin("acme").await;
    let created = create(
        &admin,
        AssetType::Resolver,
        "r",
        content(spec_for(AssetType::Resolver)),
    )
    .await
    .unwrap();
    update(
        &admin,
        AssetType::Resolver,
        "r",
        created.revision,
        content(spec_for(AssetType::Resolver)),
    )
    .await
    .unwrap();
    let err = update(
        &admin,
        AssetType::Resolver,
        "r",
        created.revision,
        content(spec_for(AssetType::Resolver)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("expected revision 1"),
        "{}",
        err.message()
    );
    let err = publish(&admin, AssetType::Resolver, "r", 0)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(field_violations(&err), vec!["expected_revision"]);
    env.stop().await;
}

/// Two replicas on the same database race to publish and to update: exactly one wins.
pub async fn concurrent_publish_has_exactly_one_winner(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let a = TestServer::start(&database).await;
    let b = TestServer::start(&database).await;
    let admin_a = a.admin("acme").await;
    let admin_b = b.admin("acme").await.with_principal("other-admin");
    let created = create(
        &admin_a,
        AssetType::Prompt,
        "planner",
        content(spec_for(AssetType::Prompt)),
    )
    .await
    .unwrap();

    for round in 0..5u64 {
        let revision = get(
            &admin_a,
            AssetType::Prompt,
            "planner",
            Some(get_asset_request::Selector::Draft(true)),
        )
        .await
        .unwrap()
        .revision;
        let (x, y) = tokio::join!(
            publish(&admin_a, AssetType::Prompt, "planner", revision),
            publish(&admin_b, AssetType::Prompt, "planner", revision),
        );
        let codes: BTreeSet<String> = [&x, &y]
            .iter()
            .map(|r| {
                r.as_ref()
                    .map(|_| "ok".to_owned())
                    .unwrap_or_else(|s| format!("{:?}", s.code()))
            })
            .collect();
        assert_eq!(
            codes,
            BTreeSet::from(["ok".to_owned(), "FailedPrecondition".to_owned()]),
            "round {round}: {x:?} {y:?}"
        );
        let winner = x.or(y).unwrap();
        assert_eq!(u64::from(winner.version), round + 1);
        let mut next = content(spec_for(AssetType::Prompt));
        next.description = format!("round {round}");
        update(
            &admin_a,
            AssetType::Prompt,
            "planner",
            winner.revision,
            next,
        )
        .await
        .unwrap();
    }
    let _ = created;

    // Ten concurrent draft updates from the same revision: one success, nine conflicts.
    let revision = get(
        &admin_a,
        AssetType::Prompt,
        "planner",
        Some(get_asset_request::Selector::Draft(true)),
    )
    .await
    .unwrap()
    .revision;
    let attempts = (0..10).map(|i| {
        let admin = if i % 2 == 0 {
            admin_a.clone()
        } else {
            admin_b.clone()
        };
        let mut c = content(spec_for(AssetType::Prompt));
        c.description = format!("writer {i}");
        async move { update(&admin, AssetType::Prompt, "planner", revision, c).await }
    });
    let results = futures::future::join_all(attempts).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let conflicts = results
        .iter()
        .filter(|r| matches!(r, Err(s) if s.code() == Code::FailedPrecondition))
        .count();
    assert_eq!((ok, conflicts), (1, 9), "{results:?}");
    let draft = get(
        &admin_a,
        AssetType::Prompt,
        "planner",
        Some(get_asset_request::Selector::Draft(true)),
    )
    .await
    .unwrap();
    let winner = results.into_iter().find_map(Result::ok).unwrap();
    assert_eq!(
        draft.description, winner.description,
        "the winner's write is the one stored"
    );

    let versions = admin_a
        .client
        .clone()
        .list_versions(admin_a.req(ListVersionsRequest {
            r#type: AssetType::Prompt as i32,
            name: "planner".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(versions.versions.len(), 5, "exactly one version per round");
    a.stop().await;
    b.stop().await;
    database.cleanup().await;
}

pub async fn wrong_bindings_are_rejected_naming_the_allowed_stages(backend: Backend) {
    let env = Env::start(backend).await;
    let admin = env.server.admin("acme").await;
    let mut c = content(spec_for(AssetType::Query));
    c.bindings = vec![Stage::RoutePlan as i32];
    let err = create(&admin, AssetType::Query, "q", c).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("allowed stages are execute"),
        "{}",
        err.message()
    );
    assert_eq!(field_violations(&err), vec!["content.bindings"]);

    let mut c = content(spec_for(AssetType::Policy));
    c.bindings = vec![Stage::Present as i32];
    let err = create(&admin, AssetType::Policy, "p", c).await.unwrap_err();
    assert!(
        err.message()
            .contains("allowed stages are route_plan, validate, control"),
        "{}",
        err.message()
    );

    let mut c = content(spec_for(AssetType::Prompt));
    c.bindings = vec![Stage::Compose as i32];
    assert_eq!(
        create(&admin, AssetType::Prompt, "p", c)
            .await
            .unwrap()
            .bindings,
        vec![Stage::Compose as i32]
    );
    env.stop().await;
}

pub async fn tenants_are_isolated(backend: Backend) {
    let env = Env::start(backend).await;
    let acme = env.server.admin("acme").await;
    let globex = env.server.admin("globex").await;
    create_and_publish(&acme, AssetType::Source, "plant", source_spec()).await;
    create_and_publish(
        &acme,
        AssetType::Query,
        "ci_lookup",
        spec_for(AssetType::Query),
    )
    .await;

    assert_eq!(
        get(&globex, AssetType::Source, "plant", None)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let listed = list_all(&globex).await;
    assert!(listed.is_empty(), "globex sees nothing of acme");
    let versions = globex
        .client
        .clone()
        .list_versions(globex.req(ListVersionsRequest {
            r#type: AssetType::Source as i32,
            name: "plant".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(versions.code(), Code::NotFound);
    let audit = globex
        .client
        .clone()
        .list_audit_events(globex.req(ListAuditEventsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(audit.events.is_empty());
    let exported = globex
        .client
        .clone()
        .export_bundle(globex.req(ExportBundleRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(exported.files.is_empty());

    // globex cannot reference acme's assets either.
    let err = create(
        &globex,
        AssetType::Tool,
        "t",
        content(spec_for(AssetType::Tool)),
    )
    .await
    .unwrap();
    let err = publish(&globex, AssetType::Tool, "t", err.revision)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("query:ci_lookup"),
        "{}",
        err.message()
    );

    // The same name in another tenant is a different asset.
    let own = create_and_publish(&globex, AssetType::Source, "plant", source_spec()).await;
    assert_eq!((own.tenant.as_str(), own.version), ("globex", 1));
    env.stop().await;
}

pub async fn malformed_specs_are_rejected_naming_the_field(backend: Backend) {
    let env = Env::start(backend).await;
    let admin = env.server.admin("acme").await;

    let mut secret = SourceSpec::default();
    if let asset_spec::Kind::Source(s) = source_spec() {
        secret = s;
    }
    secret.connection.get_or_insert_default().password_ref = "hunter2".into();
    let err = create(
        &admin,
        AssetType::Source,
        "leaky",
        content(asset_spec::Kind::Source(secret)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        field_violations(&err),
        vec!["content.spec.source.connection.password_ref"]
    );
    assert!(
        !err.message().contains("hunter2"),
        "the secret is never echoed"
    );

    let err = create(
        &admin,
        AssetType::Query,
        "writer",
        content(query_spec("DELETE FROM ci_master WHERE ci_code = :ci_code")),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        field_violations(&err).contains(&"content.spec.query.sql".to_owned()),
        "{err:?}"
    );

    let err = create(&admin, AssetType::Query, "mismatch", content(source_spec()))
        .await
        .unwrap_err();
    assert_eq!(field_violations(&err), vec!["content.spec"]);

    let err = create(&admin, AssetType::Unspecified, "x", content(source_spec()))
        .await
        .unwrap_err();
    assert_eq!(field_violations(&err), vec!["type"]);

    let err = create(
        &admin,
        AssetType::Source,
        "bad name!",
        content(source_spec()),
    )
    .await
    .unwrap_err();
    assert_eq!(field_violations(&err), vec!["name"]);

    let policy = PolicySpec {
        row_limit: 50_000_000,
        reject_rules: vec![RejectRule {
            name: "secrets".into(),
            reason: "no".into(),
            patterns: vec!["(unclosed".into()],
            ..Default::default()
        }],
        ..Default::default()
    };
    let err = create(
        &admin,
        AssetType::Policy,
        "p",
        content(asset_spec::Kind::Policy(policy)),
    )
    .await
    .unwrap_err();
    assert_eq!(
        field_violations(&err),
        vec![
            "content.spec.policy.row_limit",
            "content.spec.policy.reject_rules[0].patterns[0]"
        ]
    );

    let mapping = MappingSpec {
        implementation: Some(mapping_spec::Implementation::Declarative(
            DeclarativeMapping {
                version: "1".into(),
                mappings: vec![MappingRule {
                    source_type: "t".into(),
                    target_block: BlockType::Text as i32,
                    template: "{{unclosed".into(),
                    ..Default::default()
                }],
            },
        )),
    };
    let err = create(
        &admin,
        AssetType::Mapping,
        "m",
        content(asset_spec::Kind::Mapping(mapping)),
    )
    .await
    .unwrap_err();
    assert_eq!(
        field_violations(&err),
        vec!["content.spec.mapping.declarative.mappings[0].template"]
    );

    let bad_tenant = {
        let mut r = tonic::Request::new(ListAssetsRequest::default());
        r.metadata_mut()
            .insert("x-ops-tenant", "ACME!".parse().unwrap());
        admin.client.clone().list_assets(r).await.unwrap_err()
    };
    assert_eq!(bad_tenant.code(), Code::InvalidArgument);
    assert!(bad_tenant.message().contains("x-ops-tenant"));

    let listed = list_all(&admin).await;
    assert!(
        listed.is_empty(),
        "nothing was written by rejected requests"
    );
    env.stop().await;
}

pub async fn oversized_payloads_are_rejected(backend: Backend) {
    let env = Env::start(backend).await;
    let admin = env.server.admin("acme").await;
    let mut big = content(spec_for(AssetType::Prompt));
    if let Some(AssetSpec {
        kind: Some(asset_spec::Kind::Prompt(p)),
    }) = big.spec.as_mut()
    {
        p.template = "x".repeat(300 * 1024);
    }
    let err = create(&admin, AssetType::Prompt, "big", big.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(field_violations(&err), vec!["content"]);
    assert!(
        err.message().contains("at most 262144 bytes"),
        "{}",
        err.message()
    );

    // Larger than the transport limit: refused before it reaches the registry.
    if let Some(AssetSpec {
        kind: Some(asset_spec::Kind::Prompt(p)),
    }) = big.spec.as_mut()
    {
        p.template = "x".repeat(9 * 1024 * 1024);
    }
    let err = create(&admin, AssetType::Prompt, "huge", big)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.code(),
            Code::ResourceExhausted | Code::OutOfRange | Code::InvalidArgument
        ),
        "{err:?}"
    );
    assert_eq!(
        get(
            &admin,
            AssetType::Prompt,
            "big",
            Some(get_asset_request::Selector::Draft(true))
        )
        .await
        .unwrap_err()
        .code(),
        Code::NotFound
    );
    env.stop().await;
}

pub async fn references_must_resolve_to_published_assets_of_the_right_type(backend: Backend) {
    let env = Env::start(backend).await;
    let admin = env.server.admin("acme").await;
    // A query whose source does not exist yet: the draft saves, publishing fails naming it.
    let q = create(
        &admin,
        AssetType::Query,
        "ci_lookup",
        content(spec_for(AssetType::Query)),
    )
    .await
    .unwrap();
    let err = publish(&admin, AssetType::Query, "ci_lookup", q.revision)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("source:plant") && err.message().contains("does not exist"),
        "{}",
        err.message()
    );
    let details = err.get_error_details();
    assert_eq!(
        details
            .precondition_failure()
            .map(|p| p.violations[0].subject.clone()),
        Some("content.spec.query.source_ref".to_owned())
    );

    // Only a draft of the source: unpublished.
    create(&admin, AssetType::Source, "plant", content(source_spec()))
        .await
        .unwrap();
    let err = publish(&admin, AssetType::Query, "ci_lookup", q.revision)
        .await
        .unwrap_err();
    assert!(
        err.message().contains("no published version"),
        "{}",
        err.message()
    );

    // A wrong-type reference.
    let mut tool = ToolSpec::default();
    if let asset_spec::Kind::Tool(t) = spec_for(AssetType::Tool) {
        tool = t;
    }
    tool.query_ref = "source:plant".into();
    let t = create(
        &admin,
        AssetType::Tool,
        "tool",
        content(asset_spec::Kind::Tool(tool)),
    )
    .await
    .unwrap();
    let report = admin
        .client
        .clone()
        .validate_asset(admin.req(ValidateAssetRequest {
            r#type: AssetType::Tool as i32,
            name: "tool".into(),
            target: Some(validate_asset_request::Target::Draft(true)),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(!report.valid);
    let rules: Vec<(&str, &str)> = report
        .violations
        .iter()
        .map(|v| (v.field.as_str(), v.rule.as_str()))
        .collect();
    assert!(
        rules.contains(&("content.spec.tool.query_ref", "reference.type")),
        "{rules:?}"
    );
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.message.contains("\"source:plant\"")),
        "messages name the reference"
    );

    // A version that does not exist.
    let source = get(
        &admin,
        AssetType::Source,
        "plant",
        Some(get_asset_request::Selector::Draft(true)),
    )
    .await
    .unwrap();
    publish(&admin, AssetType::Source, "plant", source.revision)
        .await
        .unwrap();
    let mut pinned = content(spec_for(AssetType::Query));
    if let Some(AssetSpec {
        kind: Some(asset_spec::Kind::Query(q)),
    }) = pinned.spec.as_mut()
    {
        q.source_ref = "source:plant@7".into();
    }
    let report = admin
        .client
        .clone()
        .validate_asset(admin.req(ValidateAssetRequest {
            r#type: AssetType::Query as i32,
            name: String::new(),
            target: Some(validate_asset_request::Target::Content(pinned)),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.rule == "reference.version" && v.message.contains("no version 7")),
        "{:?}",
        report.violations
    );

    // Now the query publishes and its reference resolves to the exact version.
    let published = publish(&admin, AssetType::Query, "ci_lookup", q.revision)
        .await
        .unwrap();
    let report = admin
        .client
        .clone()
        .validate_asset(admin.req(ValidateAssetRequest {
            r#type: AssetType::Query as i32,
            name: "ci_lookup".into(),
            target: Some(validate_asset_request::Target::Version(published.version)),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        report.resolved_references,
        vec![AssetRef {
            r#type: AssetType::Source as i32,
            name: "plant".into(),
            version: 1
        }]
    );
    let _ = t;
    env.stop().await;
}

pub async fn validate_runs_the_sql_guard_and_returns_every_violation(backend: Backend) {
    let env = Env::start(backend).await;
    let admin = env.server.admin("acme").await;
    create_and_publish(&admin, AssetType::Source, "plant", source_spec()).await;
    create_and_publish(
        &admin,
        AssetType::Policy,
        "main",
        spec_for(AssetType::Policy),
    )
    .await;
    let sql = "SELECT u.password_hash, pg_sleep(5) FROM users u JOIN ci_master c ON c.ci_code = :ci_code FOR UPDATE";
    let report = admin
        .client
        .clone()
        .validate_asset(admin.req(ValidateAssetRequest {
            r#type: AssetType::Query as i32,
            name: String::new(),
            target: Some(validate_asset_request::Target::Content(content(
                query_spec(sql),
            ))),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(!report.valid);
    let rules: BTreeSet<&str> = report
        .violations
        .iter()
        .filter(|v| v.r#type == "sql_guard")
        .map(|v| v.rule.as_str())
        .collect();
    assert_eq!(
        rules,
        BTreeSet::from([
            "sql.function_allowlist",
            "sql.no_locking",
            "sql.restricted_table"
        ]),
        "{:?}",
        report.violations
    );
    env.stop().await;
}

pub async fn immutable_versions_are_enforced_by_the_database(backend: Backend) {
    let env = Env::start(backend).await;
    let admin = env.server.admin("acme").await;
    create_and_publish(&admin, AssetType::Source, "plant", source_spec()).await;
    let update = sqlx::query("UPDATE asset_versions SET note = 'tampered'")
        .execute(env.server.db.pool())
        .await;
    assert!(update.is_err(), "updating a published version must fail");
    let delete = sqlx::query("DELETE FROM asset_versions")
        .execute(env.server.db.pool())
        .await;
    assert!(delete.is_err(), "deleting a published version must fail");
    assert_eq!(
        get(&admin, AssetType::Source, "plant", None)
            .await
            .unwrap()
            .note,
        "test"
    );
    env.stop().await;
}

pub async fn listing_filters_and_pages(backend: Backend) {
    let env = Env::start(backend).await;
    let admin = env.server.admin("acme").await;
    for i in 0..7 {
        let mut c = content(spec_for(AssetType::Resolver));
        c.scope = if i % 2 == 0 {
            "production".into()
        } else {
            "staging".into()
        };
        let a = create(&admin, AssetType::Resolver, &format!("r{i}"), c)
            .await
            .unwrap();
        if i < 3 {
            publish(&admin, AssetType::Resolver, &format!("r{i}"), a.revision)
                .await
                .unwrap();
        }
    }
    create(
        &admin,
        AssetType::Prompt,
        "p",
        content(spec_for(AssetType::Prompt)),
    )
    .await
    .unwrap();

    let mut names = Vec::new();
    let mut token = String::new();
    loop {
        let page = admin
            .client
            .clone()
            .list_assets(admin.req(ListAssetsRequest {
                r#type: AssetType::Resolver as i32,
                page_size: 3,
                page_token: token.clone(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(page.assets.len() <= 3);
        names.extend(page.assets.into_iter().map(|a| a.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(names, (0..7).map(|i| format!("r{i}")).collect::<Vec<_>>());

    let list = |req: ListAssetsRequest| {
        let admin = admin.clone();
        async move {
            admin
                .client
                .clone()
                .list_assets(admin.req(req))
                .await
                .unwrap()
                .into_inner()
                .assets
                .into_iter()
                .map(|a| a.name)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(ListAssetsRequest {
            status: AssetStatus::Published as i32,
            ..Default::default()
        })
        .await,
        vec!["r0", "r1", "r2"]
    );
    assert_eq!(
        list(ListAssetsRequest {
            r#type: AssetType::Resolver as i32,
            scope: "staging".into(),
            ..Default::default()
        })
        .await,
        vec!["r1", "r3", "r5"]
    );
    assert_eq!(
        list(ListAssetsRequest {
            name_prefix: "p".into(),
            ..Default::default()
        })
        .await,
        vec!["p"]
    );
    let bad = admin
        .client
        .clone()
        .list_assets(admin.req(ListAssetsRequest {
            page_token: "zz".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(field_violations(&bad), vec!["page_token"]);
    env.stop().await;
}

pub async fn bundles_import_atomically_and_round_trip(backend: Backend) {
    let env = Env::start(backend).await;
    let acme = env.server.admin("acme").await;
    let globex = env.server.admin("globex").await;
    for t in ALL_TYPES {
        create_and_publish(&acme, t, fixture_name(t), spec_for(t)).await;
    }
    let exported = acme
        .client
        .clone()
        .export_bundle(acme.req(ExportBundleRequest {
            format: BundleFormat::Yaml as i32,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(exported.files.len(), 9);
    assert!(
        exported
            .files
            .iter()
            .any(|f| f.path == "query/ci_lookup.yaml")
    );

    // A bundle with one broken file writes nothing at all.
    let mut broken = exported.files.clone();
    broken.push(BundleFile { path: "query/broken.yaml".into(), content: b"type: query\nname: broken\nspec:\n  source_ref: source:plant\n  sql: UPDATE ci_master SET status = 'x'\n".to_vec() });
    let err = import(&globex, broken, true, false).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("query/broken.yaml"),
        "{}",
        err.message()
    );
    let listed = list_all(&globex).await;
    assert!(listed.is_empty(), "nothing half-written after an error");

    // A publish that fails on a reference late in the bundle also rolls back everything.
    let dangling: Vec<BundleFile> = exported
        .files
        .iter()
        .filter(|f| !f.path.starts_with("query/"))
        .cloned()
        .collect();
    let err = import(&globex, dangling, true, false).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("query:ci_lookup"),
        "{}",
        err.message()
    );
    assert!(list_all(&globex).await.is_empty());

    // Dry run reports without writing.
    let dry = import(&globex, exported.files.clone(), true, true)
        .await
        .unwrap();
    assert_eq!(dry.results.len(), 9);
    assert!(list_all(&globex).await.is_empty());

    let imported = import(&globex, exported.files.clone(), true, false)
        .await
        .unwrap();
    assert!(
        imported
            .results
            .iter()
            .all(|r| r.outcome == ImportOutcome::Created as i32 && r.version == 1),
        "{imported:?}"
    );
    for t in ALL_TYPES {
        let a = get(&acme, t, fixture_name(t), None).await.unwrap();
        let b = get(&globex, t, fixture_name(t), None).await.unwrap();
        assert_eq!(
            a.content_sha256, b.content_sha256,
            "{t:?} round-trips exactly"
        );
    }
    // Re-importing the same bundle changes nothing.
    let again = import(&globex, exported.files, true, false).await.unwrap();
    assert!(
        again
            .results
            .iter()
            .all(|r| r.outcome == ImportOutcome::Unchanged as i32 && r.version == 1),
        "{again:?}"
    );
    env.stop().await;
}

pub async fn simulate_resolver_and_pending_rpcs(backend: Backend) {
    let env = Env::start(backend).await;
    let admin = env.server.admin("acme").await;
    create_and_publish(
        &admin,
        AssetType::Resolver,
        "plant_resolver",
        spec_for(AssetType::Resolver),
    )
    .await;
    let sim = admin
        .client
        .clone()
        .simulate_resolver(admin.req(SimulateResolverRequest {
            name: "plant_resolver".into(),
            draft: false,
            inputs: vec!["서버A의 CPU 사용량은?".into()],
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sim.resolutions[0].output, "ERP-WEB-01의 CPU 사용량은?");
    assert_eq!(
        sim.resolutions[0].entities,
        vec!["ci_code:ERP-WEB-01".to_owned()]
    );

    let err = admin
        .client
        .clone()
        .test_source(admin.req(TestSourceRequest {
            name: "plant".into(),
            draft: false,
        }))
        .await
        .unwrap_err();
    // This server runs without executor sidecars: reaching a source is unavailable, and says why.
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.message().contains("executor"), "{}", err.message());
    let mut ops =
        ops_proto::v1::ops_service_client::OpsServiceClient::new(env.server.channel().await);
    let err = ops
        .ask(admin.req(AskRequest {
            question: "GT-01 CPU?".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    // Without executors nothing can answer from data, and the error says how to fix it.
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("executors.mode"),
        "{}",
        err.message()
    );
    env.stop().await;
}

/// The trace writer commits on either backend with either `trace_sync`, a committed trace is
/// readable from the pool at once (SQLite "normal" writes through a connection of its own),
/// its mirror rows follow, and a writer starting after a crash mirrors what was left unmirrored.
pub async fn traces_commit_with_either_sync_setting(backend: Backend) {
    use ops_controlplane::config::TraceSync;
    use ops_controlplane::trace::{Retention, TraceWriter};
    let env = Env::start(backend).await;
    for sync in [TraceSync::Normal, TraceSync::Full] {
        let (writer, task) = TraceWriter::start(env.server.db.clone(), sync);
        let trace_id = uuid::Uuid::new_v4().to_string();
        writer
            .commit(
                Trace {
                    trace_id: trace_id.clone(),
                    tenant: "acme".into(),
                    question: format!("written with {sync:?}"),
                    ..Default::default()
                },
                Retention::default(),
                Some("ops.v1.OpsService/Ask"),
            )
            .await
            .expect("commit");
        let question: String =
            sqlx::query_scalar("SELECT question FROM traces WHERE trace_id = $1")
                .bind(&trace_id)
                .fetch_one(env.server.db.pool())
                .await
                .expect("the committed trace is readable");
        assert_eq!(question, format!("written with {sync:?}"));
        // The ask's audit record is committed with its trace.
        let audited: String =
            sqlx::query_scalar("SELECT rpc FROM audit_log WHERE trace_id = $1 AND kind = 'ask'")
                .bind(&trace_id)
                .fetch_one(env.server.db.pool())
                .await
                .expect("the ask's audit record is there with its trace");
        assert_eq!(audited, "ops.v1.OpsService/Ask");
        drop(writer);
        task.await.expect("writer drains");
        assert_eq!(
            task_rows(&env, &trace_id).await,
            1,
            "mirrored after the commit"
        );
        // A crash between a batch's commit and its mirror rows: the next writer mirrors it.
        for table in ["subtasks", "user_queries", "execution_plans", "tasks"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE task_id = $1"
            )))
            .bind(&trace_id)
            .execute(env.server.db.pool())
            .await
            .expect("drop the mirror rows");
        }
        let (writer, task) = TraceWriter::start(env.server.db.clone(), sync);
        drop(writer);
        task.await.expect("writer drains");
        assert_eq!(task_rows(&env, &trace_id).await, 1, "backfilled at start");
        let user_queries: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM user_queries WHERE task_id = $1")
                .bind(&trace_id)
                .fetch_one(env.server.db.pool())
                .await
                .expect("count user queries");
        assert_eq!(user_queries, 1);
    }
    env.stop().await;
}

/// A run's LLM calls land in the usage log in its trace's transaction, and sum by model and
/// day (and into the day's spend the Policy caps) on either backend.
pub async fn llm_usage_is_committed_with_its_trace_and_summed(backend: Backend) {
    use ops_controlplane::audit::usage;
    use ops_controlplane::config::TraceSync;
    use ops_controlplane::trace::{Retention, TraceWriter};
    use ops_proto::v1::{LlmCall, SummarizeLlmUsageRequest};
    let env = Env::start(backend).await;
    let db = &env.server.db;
    let (writer, task) = TraceWriter::start(db.clone(), TraceSync::Normal);
    let call = |model: &str, outcome: &str, tokens: u64, cost: f64| LlmCall {
        purpose: "planner".into(),
        provider: "test".into(),
        model: model.into(),
        prompt_tokens: tokens,
        completion_tokens: tokens / 10,
        latency_ms: 12.5,
        cost_usd: cost,
        outcome: outcome.into(),
        ..Default::default()
    };
    for (tenant, calls) in [
        (
            "acme",
            vec![call("m1", "ok", 1000, 0.25), call("m2", "timeout", 0, 0.0)],
        ),
        ("acme", vec![call("m1", "ok", 500, 0.125)]),
        ("globex", vec![call("m1", "ok", 9000, 9.0)]),
    ] {
        writer
            .commit(
                Trace {
                    trace_id: uuid::Uuid::new_v4().to_string(),
                    tenant: tenant.into(),
                    llm_calls: calls,
                    ..Default::default()
                },
                Retention::default(),
                None,
            )
            .await
            .expect("commit");
    }
    drop(writer);
    task.await.expect("writer drains");
    let summary = usage::summarize(db, "acme", &SummarizeLlmUsageRequest::default())
        .await
        .expect("summary");
    let rows: Vec<(&str, u64, u64, u64)> = summary
        .rows
        .iter()
        .map(|r| (r.model.as_str(), r.calls, r.failed, r.prompt_tokens))
        .collect();
    assert_eq!(rows, vec![("m1", 2, 0, 1500), ("m2", 1, 1, 0)]);
    assert!((summary.total_cost_usd - 0.375).abs() < 1e-9);
    assert_eq!(summary.rows[0].completion_tokens, 150);
    assert_eq!(summary.rows[0].day.len(), 10, "YYYY-MM-DD");
    let today = usage::day_start_micros(time::OffsetDateTime::now_utc());
    let spent = usage::spent_since(db, "acme", today).await.expect("spend");
    assert!((spent - 0.375).abs() < 1e-9, "{spent}");
    let none = usage::spent_since(db, "initech", today)
        .await
        .expect("spend");
    assert_eq!(none, 0.0);
    env.stop().await;
}

async fn task_rows(env: &Env, trace_id: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM tasks WHERE task_id = $1")
        .bind(trace_id)
        .fetch_one(env.server.db.pool())
        .await
        .expect("count task rows")
}

/// What opsd runs on its own, on either backend: alert rules evaluated over committed traces
/// (claimed once), a schedule's occurrence claimed once, a Policy's schedule read across
/// tenants, a minute rolled up into performance records (written once) and read back.
pub async fn alerts_schedules_and_performance_records(backend: Backend) {
    use ops_controlplane::config::TraceSync;
    use ops_controlplane::context::CallerContext;
    use ops_controlplane::storage::unix_micros;
    use ops_controlplane::trace::rollup::{self, MINUTE_MICROS};
    use ops_controlplane::trace::{Retention, TraceWriter};
    use ops_controlplane::watch::{alerts, schedule};
    use ops_proto::v1::{AlertConfig, AlertRule, GetPerformanceRequest, TraceStatus};

    // This case evaluates and rolls up itself: the server's own watch stays off.
    let database = TestDatabase::create(backend).await;
    let mut config = database.config();
    config.watch.enabled = false;
    let server = TestServer::start_with(config).await;
    let env = Env { database, server };
    let admin = env.server.admin("acme").await;
    let db = env.server.db.clone();
    let store = alerts::AlertStore::new(db.clone());
    let ctx = CallerContext::new("acme", "admin");
    for (name, rule) in [
        ("error-rate", AlertRule::AskErrorRate),
        ("fallback", AlertRule::FallbackSourceUsed),
    ] {
        store
            .create(
                &ctx,
                Some(AlertConfig {
                    name: name.into(),
                    rule: rule as i32,
                    threshold_percent: 50.0,
                    window_minutes: 5,
                    webhook_url: "http://127.0.0.1:9/hook".into(),
                    ..Default::default()
                }),
            )
            .await
            .expect("alert");
    }
    let now = unix_micros();
    let (writer, task) = TraceWriter::start(db.clone(), TraceSync::Normal);
    for (status, flags) in [
        (TraceStatus::Error, vec![]),
        (TraceStatus::Error, vec![]),
        (TraceStatus::Success, vec!["fallback_source".to_owned()]),
    ] {
        writer
            .commit(
                Trace {
                    trace_id: uuid::Uuid::new_v4().to_string(),
                    tenant: "acme".into(),
                    mode: "all".into(),
                    question: "q".into(),
                    status: status as i32,
                    started_at: Some(ops_proto::convert::timestamp(
                        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now) * 1000)
                            .expect("now"),
                    )),
                    duration_ms: 5.0,
                    data_quality: flags,
                    ..Default::default()
                },
                Retention::default(),
                None,
            )
            .await
            .expect("commit");
    }
    drop(writer);
    task.await.expect("writer drains");

    let due = alerts::evaluate(&db, now + 10_000_000)
        .await
        .expect("evaluate");
    let mut events: Vec<String> = due.iter().map(|d| d.event.name.clone()).collect();
    events.sort();
    assert_eq!(events, ["ask_error_rate", "fallback_source_used"]);
    assert!(
        alerts::evaluate(&db, now + 10_000_000)
            .await
            .expect("evaluate")
            .is_empty(),
        "an evaluation is claimed once"
    );

    assert!(schedule::claim(&db, "acme", now, now).await.expect("claim"));
    assert!(!schedule::claim(&db, "acme", now, now).await.expect("claim"));
    let policy = format!(
        "{}  regression_schedule: \"0 6 * * *\"\n",
        ops_controlplane::demo::PLANT_OPS_POLICY_YAML
    );
    import(
        &admin,
        vec![BundleFile {
            path: "policy.yaml".into(),
            content: policy.into_bytes(),
        }],
        true,
        false,
    )
    .await
    .expect("policy with a schedule");
    let policies = {
        let mut conn = db.pool().acquire().await.expect("connection");
        ops_controlplane::registry::store::published_policies(&mut conn)
            .await
            .expect("policies")
    };
    assert!(
        policies
            .iter()
            .any(|(tenant, p)| tenant == "acme" && p.regression_schedule == "0 6 * * *"),
        "{policies:?}"
    );

    let minute = now - now.rem_euclid(MINUTE_MICROS);
    let mut written = 0;
    for m in [minute, minute + MINUTE_MICROS] {
        let metrics = rollup::minute(&db, m).await.expect("rollup");
        rollup::store(&db, &metrics).await.expect("store");
        rollup::store(&db, &metrics).await.expect("store again");
        written += metrics.len();
    }
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM performance_metrics")
        .fetch_one(db.pool())
        .await
        .expect("count");
    assert_eq!(stored as usize, written);
    let points = rollup::performance(
        &db,
        "acme",
        &GetPerformanceRequest {
            since: Some(ops_proto::convert::timestamp(
                time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(minute) * 1000)
                    .expect("minute"),
            )),
            ..Default::default()
        },
    )
    .await
    .expect("read")
    .points;
    let value = |name: &str| -> f64 {
        points
            .iter()
            .filter(|p| p.name == name)
            .map(|p| p.value)
            .sum()
    };
    assert_eq!(value("asks"), 3.0);
    assert!(
        (value("fallback_rate") - 1.0 / 3.0).abs() < 1e-9,
        "{points:?}"
    );
    env.stop().await;
}
