//! Authentication and roles on a real opsd with real sidecars: real JWTs (HS256 from a secret
//! reference, RS256 and ES256 from a JWKS file) walk the whole RPC × role table; forged,
//! expired, wrong-issuer, wrong-audience, unsigned and malformed tokens are refused without
//! being echoed; a tenant's credential reads nothing of another tenant; API keys are created,
//! used (either header), listed without their secret, revoked and expire.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod executor_support;
mod pipeline_support;

use std::path::Path;
use std::str::FromStr;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ops_controlplane::auth::roles::{RPC_ROLES, Role};
use ops_controlplane::config::{AuthMode, ExecutorMode};
use ops_proto::v1::api_keys_client::ApiKeysClient;
use ops_proto::v1::asset_registry_client::AssetRegistryClient;
use ops_proto::v1::audit_client::AuditClient;
use ops_proto::v1::inspector_client::InspectorClient;
use ops_proto::v1::ops_service_client::OpsServiceClient;
use ops_proto::v1::regression_client::RegressionClient;
use ops_proto::v1::{
    AskRequest, AskStreamRequest, AuditKind, AuditOutcome, AuditRecord, CreateApiKeyRequest,
    ListApiKeysRequest, ListAssetsRequest, ListAuditRecordsRequest, ListGoldenQueriesRequest,
    ListTracesRequest, Replay, RevokeApiKeyRequest,
};
use pipeline_support::Demo;
use tonic::Code;
use tonic::transport::Channel;

const SECRET: &str = "a-test-only-hs256-key-of-at-least-32-bytes";
const ISSUER: &str = "https://idp.test";
const AUDIENCE: &str = "ops";

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/auth")
        .join(name)
        .display()
        .to_string()
}

async fn start() -> (Demo, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("jwt.key");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let demo = pipeline_support::start_demo_with(ExecutorMode::Connect, |config| {
        config.auth.mode = AuthMode::Jwt;
        config.auth.jwt_hs256_secret = format!("file:{}", secret.display());
        config.auth.jwt_jwks_file = fixture("jwks.json").into();
        config.auth.jwt_issuer = ISSUER.into();
        config.auth.jwt_audience = AUDIENCE.into();
    })
    .await;
    (demo, dir)
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn claims(tenant: &str, roles: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "sub": format!("{}-svc", roles.first().copied().unwrap_or("nobody")),
        "tenant": tenant,
        "roles": roles,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": now() + 600,
    })
}

fn hs256(claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn token(tenant: &str, role: Role) -> String {
    hs256(&claims(tenant, &[role.as_str()]))
}

fn with<T>(message: T, token: Option<&str>, tenant: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    if let Some(tenant) = tenant {
        request
            .metadata_mut()
            .insert("x-ops-tenant", tenant.parse().unwrap());
    }
    request
}

/// Calls any RPC with an empty request message; the status code it ends with.
async fn call(channel: &Channel, path: &str, token: Option<&str>) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let path = http::uri::PathAndQuery::from_str(path).unwrap();
    match grpc.unary(with((), token, None), path, codec).await {
        Ok(_) => tonic::Status::ok(""),
        Err(status) => status,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_needs_its_role_and_credentials_are_checked() {
    let (demo, _dir) = start().await;
    let channel = demo.channel.clone();

    // The whole table: a role at or above the RPC's passes the auth layer, one below is denied
    // (and audited).
    let mut denials = Vec::new();
    for (service, method, needed) in RPC_ROLES {
        let path = format!("/{service}/{method}");
        for role in Role::ALL {
            let status = call(&channel, &path, Some(&token("acme", role))).await;
            if role >= *needed {
                assert!(
                    !matches!(
                        status.code(),
                        Code::PermissionDenied | Code::Unauthenticated
                    ),
                    "{path} as {role}: {status:?}"
                );
            } else {
                assert_eq!(
                    status.code(),
                    Code::PermissionDenied,
                    "{path} as {role}: {status:?}"
                );
                assert!(
                    status.message().contains(needed.as_str()),
                    "{path}: {}",
                    status.message()
                );
                denials.push((format!("{service}/{method}"), format!("{role}-svc")));
            }
        }
    }
    let audited = audit_records(
        &channel,
        &token("acme", Role::Admin),
        ListAuditRecordsRequest {
            kind: AuditKind::Denied as i32,
            ..Default::default()
        },
        denials.len(),
    )
    .await;
    for (rpc, principal) in &denials {
        assert!(
            audited.iter().any(|r| &r.rpc == rpc
                && &r.principal == principal
                && r.code == "PERMISSION_DENIED"
                && r.outcome == AuditOutcome::Denied as i32
                && r.reason.contains("needs role")),
            "no audit record of {principal} denied {rpc}"
        );
    }
    // Health needs no credential; the API does.
    let health = call(&channel, "/grpc.health.v1.Health/Check", None).await;
    assert_eq!(health.code(), Code::Ok, "{health:?}");
    let anonymous = call(&channel, "/ops.v1.OpsService/Ask", None).await;
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    assert!(anonymous.message().contains("authorization: Bearer"));

    // Tokens that must never pass, each saying which check failed and never echoing itself.
    let mut expired = claims("acme", &["admin"]);
    expired["exp"] = (now() - 3600).into();
    let mut wrong_issuer = claims("acme", &["admin"]);
    wrong_issuer["iss"] = "https://evil.test".into();
    let mut wrong_audience = claims("acme", &["admin"]);
    wrong_audience["aud"] = "billing".into();
    let mut no_expiry = claims("acme", &["admin"]);
    no_expiry.as_object_mut().unwrap().remove("exp");
    let forged = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims("acme", &["platform-admin"]),
        &EncodingKey::from_secret(b"another-key-that-is-also-32-bytes-long!"),
    )
    .unwrap();
    let b64 = |v: serde_json::Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let unsigned = format!(
        "{}.{}.",
        b64(serde_json::json!({"alg": "none", "typ": "JWT"})),
        b64(claims("acme", &["platform-admin"]))
    );
    let cases = [
        (forged, "signature"),
        (hs256(&expired), "expired"),
        (hs256(&wrong_issuer), "issuer"),
        (hs256(&wrong_audience), "audience"),
        (hs256(&no_expiry), "exp"),
        (unsigned, "algorithm"),
        ("not-a-jwt".to_owned(), "well-formed"),
    ];
    for (bad, reason) in cases {
        let status = call(&channel, "/ops.v1.AssetRegistry/ListAssets", Some(&bad)).await;
        assert_eq!(status.code(), Code::Unauthenticated, "{reason}: {status:?}");
        assert!(status.message().contains(reason), "{reason}: {status:?}");
        assert!(!status.message().contains(&bad), "the token was echoed");
    }

    // RS256 and ES256 tokens verify against the JWKS file's keys (picked by kid).
    for (algorithm, kid, pem) in [
        (Algorithm::RS256, "test-rsa", "rsa.pem"),
        (Algorithm::ES256, "test-ec", "ec.pem"),
    ] {
        let pem = std::fs::read(fixture(pem)).unwrap();
        let key = match algorithm {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).unwrap(),
            _ => EncodingKey::from_ec_pem(&pem).unwrap(),
        };
        let mut header = Header::new(algorithm);
        header.kid = Some(kid.into());
        let signed = jsonwebtoken::encode(&header, &claims("acme", &["inspector"]), &key).unwrap();
        let status = call(&channel, "/ops.v1.AssetRegistry/ListAssets", Some(&signed)).await;
        assert_eq!(status.code(), Code::Ok, "{algorithm:?}: {status:?}");
        // A key of the JWKS cannot be used with a kid it does not have.
        header.kid = Some("unknown".into());
        let unknown = jsonwebtoken::encode(&header, &claims("acme", &["inspector"]), &key).unwrap();
        let status = call(&channel, "/ops.v1.AssetRegistry/ListAssets", Some(&unknown)).await;
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_credential_reads_nothing_of_another_tenant() {
    let (demo, _dir) = start().await;
    let channel = demo.channel.clone();
    let mut ops = OpsServiceClient::new(channel.clone());
    let mut inspector = InspectorClient::new(channel.clone());
    let mut registry = AssetRegistryClient::new(channel.clone());
    let mut regression = RegressionClient::new(channel.clone());
    let acme = token("acme", Role::Admin);
    let other = token("initech", Role::Admin);
    let platform = token("ops", Role::PlatformAdmin);

    let asked = ops
        .ask(with(
            AskRequest {
                question: "GT-01 CPU average last week".into(),
                ..Default::default()
            },
            Some(&acme),
            None,
        ))
        .await
        .expect("acme asks")
        .into_inner();
    assert!(!asked.trace_id.is_empty());

    // Acme's own view has its trace and its assets.
    let traces = |token: &str, tenant: Option<&str>| {
        with(
            ListTracesRequest {
                page_size: 100,
                ..Default::default()
            },
            Some(token),
            tenant,
        )
    };
    let own = inspector
        .list_traces(traces(&acme, None))
        .await
        .unwrap()
        .into_inner();
    assert!(own.traces.iter().any(|t| t.trace_id == asked.trace_id));

    // Initech (a tenant with nothing published)'s credential sees none of it, and cannot name acme.
    let theirs = inspector
        .list_traces(traces(&other, None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(theirs.traces.len(), 0);
    let assets = registry
        .list_assets(with(ListAssetsRequest::default(), Some(&other), None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(assets.assets.len(), 0);
    let golden = regression
        .list_golden_queries(with(
            ListGoldenQueriesRequest::default(),
            Some(&other),
            None,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(golden.golden_queries.len(), 0);
    let denied = inspector
        .list_traces(traces(&other, Some("acme")))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(denied.message().contains("platform-admin"), "{denied:?}");
    let denied = ops
        .ask(with(
            AskRequest {
                question: "GT-01 CPU average last week".into(),
                ..Default::default()
            },
            Some(&other),
            Some("acme"),
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // A platform admin may act for any tenant.
    let across = inspector
        .list_traces(traces(&platform, Some("acme")))
        .await
        .unwrap()
        .into_inner();
    assert!(across.traces.iter().any(|t| t.trace_id == asked.trace_id));

    // Replaying or test-mode asking is an author's tool, not an asker's.
    let replay = AskRequest {
        test_mode: true,
        replay: Some(Replay {
            trace_id: asked.trace_id.clone(),
            from_stage: ops_proto::v1::Stage::Compose as i32,
        }),
        ..Default::default()
    };
    let denied = ops
        .ask(with(
            replay.clone(),
            Some(&token("acme", Role::Asker)),
            None,
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(denied.message().contains("author"), "{denied:?}");
    ops.ask(with(replay, Some(&token("acme", Role::Author)), None))
        .await
        .expect("an author replays");
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_created_used_listed_and_revoked() {
    let (demo, _dir) = start().await;
    let channel = demo.channel.clone();
    let mut keys = ApiKeysClient::new(channel.clone());
    let admin = token("acme", Role::Admin);

    // An admin cannot mint a key above its own role.
    let denied = keys
        .create_api_key(with(
            CreateApiKeyRequest {
                name: "too-strong".into(),
                roles: vec!["platform-admin".into()],
                ..Default::default()
            },
            Some(&admin),
            None,
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");

    let created = keys
        .create_api_key(with(
            CreateApiKeyRequest {
                name: "dashboard".into(),
                roles: vec!["asker".into()],
                ..Default::default()
            },
            Some(&admin),
            None,
        ))
        .await
        .expect("created")
        .into_inner();
    let secret = created.secret.clone();
    assert!(secret.starts_with("ops_"));

    // The key acts for acme as an asker, through either header.
    let ask = call(&channel, "/ops.v1.OpsService/Ask", Some(&secret)).await;
    assert!(
        !matches!(ask.code(), Code::PermissionDenied | Code::Unauthenticated),
        "{ask:?}"
    );
    let mut ops = OpsServiceClient::new(channel.clone());
    let mut request = tonic::Request::new(AskRequest {
        question: "List all servers in the HR system".into(),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("x-api-key", secret.parse().unwrap());
    let answered = ops.ask(request).await.expect("asked with x-api-key");
    assert!(!answered.into_inner().trace_id.is_empty());
    let traces = call(&channel, "/ops.v1.Inspector/ListTraces", Some(&secret)).await;
    assert_eq!(traces.code(), Code::PermissionDenied, "{traces:?}");
    let mut other_tenant = tonic::Request::new(AskRequest::default());
    other_tenant
        .metadata_mut()
        .insert("x-api-key", secret.parse().unwrap());
    other_tenant
        .metadata_mut()
        .insert("x-ops-tenant", "globex".parse().unwrap());
    assert_eq!(
        ops.ask(other_tenant).await.unwrap_err().code(),
        Code::PermissionDenied
    );

    // A wrong secret for a real id is unknown, and never echoed.
    let (id_part, _) = secret.rsplit_once('_').unwrap();
    let forged = format!("{id_part}_{}", "0".repeat(64));
    let status = call(&channel, "/ops.v1.OpsService/Ask", Some(&forged)).await;
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("unknown"), "{status:?}");
    assert!(!status.message().contains(&forged));

    // Listed without its secret, with its last use recorded (written in the background).
    let mut listed = None;
    for _ in 0..50 {
        let list = keys
            .list_api_keys(with(ListApiKeysRequest::default(), Some(&admin), None))
            .await
            .unwrap()
            .into_inner();
        assert!(!format!("{list:?}").contains(secret.rsplit('_').next().unwrap()));
        let key = list
            .keys
            .into_iter()
            .find(|k| k.name == "dashboard")
            .unwrap();
        if key.last_used_at.is_some() {
            listed = Some(key);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let listed = listed.expect("last use recorded");
    assert_eq!(listed.roles, vec!["asker".to_owned()]);
    assert_eq!(listed.created_by, "admin-svc");

    // Revoked: refused at once.
    keys.revoke_api_key(with(
        RevokeApiKeyRequest {
            id: created.key.unwrap().id,
        },
        Some(&admin),
        None,
    ))
    .await
    .expect("revoked");
    let status = call(&channel, "/ops.v1.OpsService/Ask", Some(&secret)).await;
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("revoked"), "{status:?}");

    // An expired key is refused.
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(1);
    let expiring = keys
        .create_api_key(with(
            CreateApiKeyRequest {
                name: "short-lived".into(),
                roles: vec!["asker".into()],
                expires_at: Some(ops_proto::convert::timestamp(soon)),
            },
            Some(&admin),
            None,
        ))
        .await
        .expect("created")
        .into_inner();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let status = call(&channel, "/ops.v1.OpsService/Ask", Some(&expiring.secret)).await;
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("expired"), "{status:?}");
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_need_authentication_on() {
    // With auth off anyone could mint a key that would work once auth is turned on.
    let demo = pipeline_support::start_demo(ExecutorMode::Connect).await;
    let refused = ApiKeysClient::new(demo.channel.clone())
        .create_api_key(pipeline_support::request(
            "acme",
            CreateApiKeyRequest {
                name: "early".into(),
                roles: vec!["platform-admin".into()],
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    demo.stop().await;
}

/// The tenant's audit records matching `filter`, read page by page (5 a page) once at least
/// `expected` are there (the refusals' and changes' records are written in the background).
async fn audit_records(
    channel: &Channel,
    token: &str,
    filter: ListAuditRecordsRequest,
    expected: usize,
) -> Vec<AuditRecord> {
    let mut audit = AuditClient::new(channel.clone());
    let mut records = Vec::new();
    for _ in 0..100 {
        records.clear();
        let mut page_token = String::new();
        loop {
            let page = audit
                .list_audit_records(with(
                    ListAuditRecordsRequest {
                        page_size: 5,
                        page_token: page_token.clone(),
                        ..filter.clone()
                    },
                    Some(token),
                    None,
                ))
                .await
                .expect("audit listed")
                .into_inner();
            assert!(page.records.len() <= 5);
            records.extend(page.records);
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        if records.len() >= expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), records.len(), "a record repeated across pages");
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_records_asks_refusals_and_changes() {
    let (demo, _dir) = start().await;
    let channel = demo.channel.clone();
    let asker = token("acme", Role::Asker);
    let admin = token("acme", Role::Admin);
    let mut ops = OpsServiceClient::new(channel.clone());

    // An answered ask, a streamed one and one that fails on its input.
    let answered = ops
        .ask(with(
            AskRequest {
                question: "GT-01 CPU average last week".into(),
                ..Default::default()
            },
            Some(&asker),
            None,
        ))
        .await
        .expect("asked")
        .into_inner();
    let mut stream = ops
        .ask_stream(with(
            AskStreamRequest {
                ask: Some(AskRequest {
                    question: "List all servers in the HR system".into(),
                    ..Default::default()
                }),
            },
            Some(&asker),
            None,
        ))
        .await
        .expect("streamed")
        .into_inner();
    let mut streamed_trace = String::new();
    while let Some(event) = stream.message().await.expect("stream event") {
        if let Some(ops_proto::v1::ask_stream_response::Event::Final(last)) = event.event {
            streamed_trace = last.trace_id;
        }
    }
    assert!(!streamed_trace.is_empty());
    let empty = ops
        .ask(with(AskRequest::default(), Some(&asker), None))
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);

    // Refusals: a forged credential naming acme, an asker publishing.
    let forged = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims("acme", &["admin"]),
        &EncodingKey::from_secret(b"another-key-that-is-also-32-bytes-long!"),
    )
    .unwrap();
    let refused = ops
        .ask(with(AskRequest::default(), Some(&forged), Some("acme")))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    let publish = call(&channel, "/ops.v1.AssetRegistry/PublishAsset", Some(&asker)).await;
    assert_eq!(publish.code(), Code::PermissionDenied);

    // Changes: a key created, and a revocation of a key that does not exist.
    let mut keys = ApiKeysClient::new(channel.clone());
    let created = keys
        .create_api_key(with(
            CreateApiKeyRequest {
                name: "audited".into(),
                roles: vec!["asker".into()],
                ..Default::default()
            },
            Some(&admin),
            None,
        ))
        .await
        .expect("created")
        .into_inner();
    let missing = keys
        .revoke_api_key(with(
            RevokeApiKeyRequest { id: "nope".into() },
            Some(&admin),
            None,
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let all = audit_records(&channel, &admin, ListAuditRecordsRequest::default(), 6).await;
    let asks: Vec<&AuditRecord> = all
        .iter()
        .filter(|r| r.kind == AuditKind::Ask as i32)
        .collect();
    assert_eq!(asks.len(), 3, "{asks:#?}");
    let ask = asks
        .iter()
        .find(|r| r.trace_id == answered.trace_id)
        .expect("the ask");
    assert_eq!(
        (
            ask.rpc.as_str(),
            ask.principal.as_str(),
            ask.outcome,
            ask.code.as_str()
        ),
        (
            "ops.v1.OpsService/Ask",
            "asker-svc",
            AuditOutcome::Ok as i32,
            "OK"
        )
    );
    assert_eq!(ask.status, "success");
    assert!(!ask.route.is_empty());
    assert!(
        asks.iter()
            .any(|r| r.trace_id == streamed_trace && r.rpc == "ops.v1.OpsService/AskStream")
    );
    assert!(asks.iter().any(|r| r.outcome == AuditOutcome::Failed as i32
        && r.code == "INVALID_ARGUMENT"
        && r.reason.contains("question")
        && r.trace_id.is_empty()));
    // A refusal without a verified caller is kept apart from every tenant (the tenant it named
    // cannot be trusted); platform admins read those.
    assert!(!all.iter().any(|r| r.code == "UNAUTHENTICATED"));
    let apart = audit_records(
        &channel,
        &token("ops", Role::PlatformAdmin),
        ListAuditRecordsRequest {
            unauthenticated: true,
            ..Default::default()
        },
        1,
    )
    .await;
    let unauthenticated = apart
        .iter()
        .find(|r| r.code == "UNAUTHENTICATED" && r.reason.contains("signature"))
        .expect("the forged credential's refusal");
    assert_eq!(unauthenticated.principal, "", "no credential was verified");
    assert_eq!(unauthenticated.tenant, "*");
    assert!(!unauthenticated.reason.contains(&forged));
    let not_theirs = AuditClient::new(channel.clone())
        .list_audit_records(with(
            ListAuditRecordsRequest {
                unauthenticated: true,
                ..Default::default()
            },
            Some(&admin),
            None,
        ))
        .await
        .unwrap_err();
    assert_eq!(not_theirs.code(), Code::PermissionDenied);
    assert!(
        all.iter()
            .any(|r| r.rpc == "ops.v1.AssetRegistry/PublishAsset"
                && r.kind == AuditKind::Denied as i32
                && r.principal == "asker-svc")
    );
    let key_id = created.key.unwrap().id;
    assert!(all.iter().any(|r| r.kind == AuditKind::Change as i32
        && r.rpc == "ops.v1.ApiKeys/CreateApiKey"
        && r.outcome == AuditOutcome::Ok as i32
        && r.principal == "admin-svc"
        && r.target.contains(&key_id)));
    assert!(all.iter().any(|r| r.kind == AuditKind::Change as i32
        && r.rpc == "ops.v1.ApiKeys/RevokeApiKey"
        && r.outcome == AuditOutcome::Failed as i32
        && r.code == "NOT_FOUND"));
    assert!(
        !format!("{all:?}").contains(&created.secret),
        "a secret in the audit log"
    );

    // Filters: principal, outcome, kind and time; another tenant sees none of it.
    let by_asker = audit_records(
        &channel,
        &admin,
        ListAuditRecordsRequest {
            principal: "asker-svc".into(),
            kind: AuditKind::Ask as i32,
            outcome: AuditOutcome::Ok as i32,
            ..Default::default()
        },
        2,
    )
    .await;
    assert_eq!(by_asker.len(), 2, "{by_asker:#?}");
    let future =
        ops_proto::convert::timestamp(time::OffsetDateTime::now_utc() + time::Duration::hours(1));
    let none = audit_records(
        &channel,
        &admin,
        ListAuditRecordsRequest {
            since: Some(future),
            ..Default::default()
        },
        0,
    )
    .await;
    assert!(none.is_empty());
    let theirs = audit_records(
        &channel,
        &token("initech", Role::Admin),
        ListAuditRecordsRequest::default(),
        0,
    )
    .await;
    assert!(
        theirs.iter().all(|r| r.tenant == "initech"),
        "another tenant's records: {theirs:#?}"
    );
    assert!(!theirs.iter().any(|r| r.principal == "asker-svc"));
    let bad = AuditClient::new(channel.clone())
        .list_audit_records(with(
            ListAuditRecordsRequest {
                page_token: "garbage".into(),
                ..Default::default()
            },
            Some(&admin),
            None,
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("page_token"), "{bad:?}");

    // A caller that gives up before the answer leaves a record too.
    let mut hasty = with(
        AskRequest {
            question: "What breaks if SAN-01 fails?".into(),
            ..Default::default()
        },
        Some(&asker),
        None,
    );
    hasty.set_timeout(std::time::Duration::from_millis(1));
    let gave_up = ops.ask(hasty).await.unwrap_err();
    assert!(
        matches!(gave_up.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{gave_up:?}"
    );
    let failed = audit_records(
        &channel,
        &admin,
        ListAuditRecordsRequest {
            kind: AuditKind::Ask as i32,
            outcome: AuditOutcome::Failed as i32,
            ..Default::default()
        },
        2,
    )
    .await;
    assert!(
        failed
            .iter()
            .any(|r| r.code == "CANCELLED" && r.rpc == "ops.v1.OpsService/Ask"),
        "{failed:#?}"
    );
    demo.stop().await;
}
