//! The real `opsd` binary as a child process, driven by the real grpcurl 1.8.6 binary
//! (server reflection v1alpha) and by a reflection v1 client: an admin can list and describe
//! every service and run the whole asset lifecycle for every asset type with grpcurl alone;
//! SIGTERM stops the server cleanly and the registry survives a restart.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;
mod suites {
    pub mod registry;
}

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ops_proto::v1::AssetType;
use serde_json::{Value, json};
use suites::registry::{ALL_TYPES, content, fixture_name, spec_for};

struct Opsd {
    child: Child,
    addr: String,
}

impl Opsd {
    fn start(data_dir: &Path) -> Self {
        let (child, addr, before) =
            common::spawn_opsd("serve", data_dir, &[("OPS__EXECUTORS__MODE", "off")]);
        assert!(before.is_empty(), "unexpected first lines {before:?}");
        Self { child, addr }
    }

    /// Sends SIGTERM and waits for a clean exit.
    fn terminate(mut self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .expect("kill")
                .success()
        );
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "opsd exited with {status} after SIGTERM");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("opsd did not stop within 5 s of SIGTERM");
    }
}

impl Drop for Opsd {
    // A failing test must not leave a server behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs grpcurl; returns stdout on success, or (stdout+stderr) on failure.
fn call(addr: &str, tenant: &str, method: &str, body: &Value) -> Result<Value, String> {
    let out = Command::new(common::grpcurl())
        .args([
            "-plaintext",
            "-H",
            &format!("x-ops-tenant: {tenant}"),
            "-H",
            "x-ops-principal: grpcurl-admin",
            "-d",
        ])
        .arg(body.to_string())
        .arg(addr)
        .arg(method)
        .output()
        .expect("run grpcurl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        serde_json::from_str(&stdout)
            .map_err(|e| format!("grpcurl printed non-JSON ({e}): {stdout}"))
    } else {
        Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// `call` with the request on stdin (`-d @`): plugin uploads are larger than one argument may be.
fn call_stdin(addr: &str, tenant: &str, method: &str, body: &Value) -> Result<Value, String> {
    use std::io::Write;
    let mut child = Command::new(common::grpcurl())
        .args([
            "-plaintext",
            "-H",
            &format!("x-ops-tenant: {tenant}"),
            "-d",
            "@",
            addr,
            method,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run grpcurl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.to_string().as_bytes())
        .expect("write request");
    let out = child.wait_with_output().expect("grpcurl output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        serde_json::from_str(&stdout)
            .map_err(|e| format!("grpcurl printed non-JSON ({e}): {stdout}"))
    } else {
        Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)))
    }
}

fn grpcurl_text(args: &[&str]) -> String {
    let out = Command::new(common::grpcurl())
        .args(args)
        .output()
        .expect("run grpcurl");
    assert!(
        out.status.success(),
        "grpcurl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn revision(asset: &Value) -> u64 {
    asset["asset"]["revision"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no revision in {asset}"))
}

fn slug(t: AssetType) -> String {
    t.as_str_name().to_owned()
}

#[test]
fn grpcurl_lists_describes_and_runs_the_whole_lifecycle_for_every_asset_type() {
    let dir = tempfile::tempdir().unwrap();
    let opsd = Opsd::start(dir.path());
    let addr = opsd.addr.clone();

    let services = grpcurl_text(&["-plaintext", &addr, "list"]);
    for service in [
        "grpc.health.v1.Health",
        "ops.v1.AssetRegistry",
        "ops.v1.Inspector",
        "ops.v1.OpsService",
        "ops.v1.Regression",
    ] {
        assert!(
            services.lines().any(|l| l == service),
            "{service} missing from:\n{services}"
        );
    }
    let described = grpcurl_text(&["-plaintext", &addr, "describe", "ops.v1.AssetRegistry"]);
    for rpc in [
        "CreateAsset",
        "UpdateDraft",
        "GetAsset",
        "ListAssets",
        "ListVersions",
        "DiffVersions",
        "ValidateAsset",
        "PublishAsset",
        "ArchiveAsset",
        "RollbackAsset",
        "ImportBundle",
        "ExportBundle",
        "TestSource",
        "ScanSchema",
        "SimulateResolver",
        "PreviewQuery",
        "TestTool",
        "UploadPlugin",
        "ListPlugins",
        "PreviewMapping",
        "PreviewScreen",
    ] {
        assert!(
            described.contains(&format!("rpc {rpc} ( .ops.v1.{rpc}Request )")),
            "{rpc} not described:\n{described}"
        );
    }
    let spec_doc = grpcurl_text(&["-plaintext", &addr, "describe", "ops.v1.AssetSpec"]);
    assert!(
        spec_doc.contains("oneof kind") && spec_doc.contains(".ops.v1.QuerySpec query"),
        "{spec_doc}"
    );
    for service in ["ops.v1.OpsService", "ops.v1.Inspector", "ops.v1.Regression"] {
        assert!(grpcurl_text(&["-plaintext", &addr, "describe", service]).contains("service"));
    }

    let registry = |m: &str| format!("ops.v1.AssetRegistry/{m}");
    for t in ALL_TYPES {
        let name = fixture_name(t);
        let body = serde_json::to_value(content(spec_for(t))).unwrap();
        let created = call(
            &addr,
            "acme",
            &registry("CreateAsset"),
            &json!({"type": slug(t), "name": name, "content": body}),
        )
        .unwrap_or_else(|e| panic!("create {t:?}: {e}"));
        let mut changed = body.clone();
        changed["description"] = json!("edited with grpcurl");
        let updated = call(&addr, "acme", &registry("UpdateDraft"), &json!({"type": slug(t), "name": name, "expected_revision": revision(&created), "content": changed})).unwrap_or_else(|e| panic!("update {t:?}: {e}"));
        let report = call(
            &addr,
            "acme",
            &registry("ValidateAsset"),
            &json!({"type": slug(t), "name": name, "draft": true}),
        )
        .unwrap();
        assert_eq!(report["valid"], json!(true), "{t:?}: {report}");
        let v1 = call(
            &addr,
            "acme",
            &registry("PublishAsset"),
            &json!({"type": slug(t), "name": name, "expected_revision": revision(&updated)}),
        )
        .unwrap_or_else(|e| panic!("publish {t:?}: {e}"));
        assert_eq!(v1["asset"]["version"], json!(1));
        let draft = call(&addr, "acme", &registry("UpdateDraft"), &json!({"type": slug(t), "name": name, "expected_revision": revision(&v1), "content": body})).unwrap();
        let v2 = call(
            &addr,
            "acme",
            &registry("PublishAsset"),
            &json!({"type": slug(t), "name": name, "expected_revision": revision(&draft)}),
        )
        .unwrap();
        let versions = call(
            &addr,
            "acme",
            &registry("ListVersions"),
            &json!({"type": slug(t), "name": name}),
        )
        .unwrap();
        assert_eq!(
            versions["versions"].as_array().map(Vec::len),
            Some(2),
            "{t:?}: {versions}"
        );
        let diff = call(
            &addr,
            "acme",
            &registry("DiffVersions"),
            &json!({"type": slug(t), "name": name, "from_version": 1, "to_version": 2}),
        )
        .unwrap();
        assert_eq!(
            diff["changes"][0]["path"],
            json!("description"),
            "{t:?}: {diff}"
        );
        let archived = call(
            &addr,
            "acme",
            &registry("ArchiveAsset"),
            &json!({"type": slug(t), "name": name, "expected_revision": revision(&v2)}),
        )
        .unwrap();
        assert_eq!(archived["asset"]["status"], json!("ASSET_STATUS_ARCHIVED"));
        let rolled = call(&addr, "acme", &registry("RollbackAsset"), &json!({"type": slug(t), "name": name, "expected_revision": revision(&archived), "to_version": 1})).unwrap_or_else(|e| panic!("rollback {t:?}: {e}"));
        assert_eq!(
            (
                rolled["asset"]["version"].clone(),
                rolled["asset"]["rolledBackFrom"].clone()
            ),
            (json!(3), json!(1)),
            "{t:?}: {rolled}"
        );
        assert_eq!(rolled["asset"]["description"], json!("edited with grpcurl"));
    }

    // A stale revision and a malformed spec give precise, actionable errors.
    let stale = call(
        &addr,
        "acme",
        &registry("PublishAsset"),
        &json!({"type": "ASSET_TYPE_QUERY", "name": "ci_lookup", "expected_revision": 1}),
    )
    .unwrap_err();
    assert!(
        stale.contains("FailedPrecondition") && stale.contains("expected revision 1"),
        "{stale}"
    );
    let bad = call(&addr, "acme", &registry("CreateAsset"), &json!({"type": "ASSET_TYPE_QUERY", "name": "w", "content": {"spec": {"query": {"source_ref": "source:plant", "sql": "DELETE FROM ci_master"}}}})).unwrap_err();
    assert!(
        bad.contains("InvalidArgument") && bad.contains("content.spec.query.sql"),
        "{bad}"
    );
    // This server runs with executors off: Ask says what to change.
    let no_executors = call(
        &addr,
        "acme",
        "ops.v1.OpsService/Ask",
        &json!({"question": "GT-01 CPU?"}),
    )
    .unwrap_err();
    assert!(
        no_executors.contains("FailedPrecondition") && no_executors.contains("executors.mode"),
        "{no_executors}"
    );
    opsd.terminate();

    // Everything survives a restart on the same data dir.
    let again = Opsd::start(dir.path());
    let listed = call(&again.addr, "acme", &registry("ListAssets"), &json!({})).unwrap();
    assert_eq!(
        listed["assets"].as_array().map(Vec::len),
        Some(9),
        "{listed}"
    );
    again.terminate();
}

#[tokio::test]
async fn reflection_v1_lists_the_services_too() {
    use ops_proto::v1::asset_registry_client::AssetRegistryClient;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let database = common::TestDatabase::create(common::Backend::Sqlite).await;
    let server = common::TestServer::start(&database).await;
    let channel = server.channel().await;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = ServerReflectionClient::new(channel.clone())
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = stream.message().await.unwrap().expect("one response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected {response:?}")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"ops.v1.AssetRegistry".to_owned()),
        "{names:?}"
    );

    let health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let status = health
        .clone()
        .check(tonic_health::pb::HealthCheckRequest {
            service: "ops.v1.AssetRegistry".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let _ = AssetRegistryClient::new(channel);
    server.stop().await;
    database.cleanup().await;
}

fn opsd_cli(args: &[&str]) -> (bool, String) {
    let out = Command::new(ops_tests::bin("opsd"))
        .args(args)
        .output()
        .expect("run opsd");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `opsd assets import DIR --publish` for one tenant.
fn import_dir(dir: &Path, server: &str, tenant: &str) -> (bool, String) {
    let dir = dir.to_str().expect("utf-8 path");
    opsd_cli(&[
        "assets",
        "import",
        dir,
        "--server",
        server,
        "--tenant",
        tenant,
        "--publish",
    ])
}

#[test]
fn asset_directories_import_atomically_and_export_through_the_cli() {
    let data = tempfile::tempdir().unwrap();
    let opsd = Opsd::start(data.path());
    let server = format!("http://{}", opsd.addr);
    let assets = tempfile::tempdir().unwrap();
    let write = |path: &str, body: &str| {
        let path = assets.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    };
    write(
        "source/plant_ops.yaml",
        "type: source\nname: plant_ops\nspec:\n  kind: SOURCE_KIND_SQLITE\n  connection: {path: /var/lib/ops/plant-ops.db}\n  permissions: {read_only: true}\n",
    );
    write(
        "query/ci_lookup.yaml",
        "type: query\nname: ci_lookup\nbindings: [execute]\nspec:\n  source_ref: source:plant_ops\n  sql: SELECT ci_code FROM ci_master WHERE ci_code = :ci_code\n  params:\n    - {name: ci_code, type: PARAM_TYPE_STRING, required: true}\n",
    );
    write(
        "tool/ci_tool.json",
        r#"{"type": "tool", "name": "ci_tool", "spec": {"tool_type": "TOOL_TYPE_DATABASE_QUERY", "description": "one CI by code", "query_ref": "query:ci_lookup"}}"#,
    );
    write("notes.txt", "ignored: not an asset file");

    let (ok, out) = import_dir(assets.path(), &server, "acme");
    assert!(ok, "{out}");
    assert_eq!(out.matches("IMPORT_OUTCOME_CREATED").count(), 3, "{out}");

    // A broken file makes the whole directory fail and nothing changes.
    write(
        "query/broken.yaml",
        "type: query\nname: broken\nspec: {source_ref: 'source:plant_ops', sql: 'DROP TABLE ci_master'}\n",
    );
    let (ok, out) = import_dir(assets.path(), &server, "acme");
    assert!(
        !ok && out.contains("query/broken.yaml") && out.contains("InvalidArgument"),
        "{out}"
    );
    std::fs::remove_file(assets.path().join("query/broken.yaml")).unwrap();

    let (ok, out) = import_dir(assets.path(), &server, "acme");
    assert!(
        ok && out.matches("IMPORT_OUTCOME_UNCHANGED").count() == 3,
        "re-import is a no-op: {out}"
    );

    let exported = tempfile::tempdir().unwrap();
    let (ok, out) = opsd_cli(&[
        "assets",
        "export",
        exported.path().to_str().unwrap(),
        "--server",
        &server,
        "--tenant",
        "acme",
    ]);
    assert!(ok, "{out}");
    for file in [
        "source/plant_ops.yaml",
        "query/ci_lookup.yaml",
        "tool/ci_tool.yaml",
    ] {
        assert!(
            exported.path().join(file).is_file(),
            "{file} not exported: {out}"
        );
    }
    // The export imports into another tenant unchanged.
    let (ok, out) = import_dir(exported.path(), &server, "globex");
    assert!(
        ok && out.matches("IMPORT_OUTCOME_CREATED").count() == 3,
        "{out}"
    );
    opsd.terminate();
}

/// The plugin author's path with grpcurl alone: upload the example mapper, reference it from a
/// Mapping asset, publish, and run it; WASI plugins and unknown digests are refused.
#[test]
fn grpcurl_uploads_publishes_and_runs_the_example_mapper() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let opsd = Opsd::start(dir.path());
    let addr = opsd.addr.clone();
    let registry = |m: &str| format!("ops.v1.AssetRegistry/{m}");
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);

    let upload = json!({"wasm": b64(ops_plugin_artifacts::STATUS_BOARD), "expected_world": "PLUGIN_WORLD_MAPPER"});
    let uploaded = call_stdin(&addr, "acme", &registry("UploadPlugin"), &upload).expect("upload");
    let digest = uploaded["plugin"]["digest"]
        .as_str()
        .expect("digest")
        .to_owned();
    assert!(digest.starts_with("sha256:"), "{uploaded}");
    assert_eq!(uploaded["plugin"]["name"], "status-board");
    assert_eq!(uploaded["plugin"]["world"], "PLUGIN_WORLD_MAPPER");
    assert_eq!(uploaded["created"], true);
    let again = call_stdin(&addr, "acme", &registry("UploadPlugin"), &upload).expect("re-upload");
    assert_eq!(
        again.get("created"),
        None,
        "a re-upload is a no-op: {again}"
    );

    let as_screen = json!({"wasm": b64(ops_plugin_artifacts::STATUS_BOARD), "expected_world": "PLUGIN_WORLD_SCREEN"});
    let error = call_stdin(&addr, "globex", &registry("UploadPlugin"), &as_screen).unwrap_err();
    assert!(
        error.contains("InvalidArgument")
            && error.contains("not the expected ops:plugin/screen-plugin"),
        "{error}"
    );
    let wasi = json!({"wasm": b64(ops_plugin_artifacts::fixtures::WASI_IMPORT)});
    let error = call_stdin(&addr, "acme", &registry("UploadPlugin"), &wasi).unwrap_err();
    assert!(
        error.contains("InvalidArgument") && error.contains("wasi:filesystem/"),
        "{error}"
    );

    let listed = call(&addr, "acme", &registry("ListPlugins"), &json!({})).expect("list");
    assert_eq!(
        listed["plugins"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    let others = call(&addr, "globex", &registry("ListPlugins"), &json!({})).expect("list");
    assert_eq!(
        others.get("plugins"),
        None,
        "plugins are per tenant: {others}"
    );

    let mapping = |digest: &str| json!({"description": "CIs per status", "spec": {"mapping": {"plugin": {"digest": digest, "config": {}}}}});
    let created = call(
        &addr,
        "acme",
        &registry("CreateAsset"),
        &json!({"type": "ASSET_TYPE_MAPPING", "name": "status_board", "content": mapping(&digest)}),
    )
    .expect("create");
    call(&addr, "acme", &registry("PublishAsset"), &json!({"type": "ASSET_TYPE_MAPPING", "name": "status_board", "expected_revision": revision(&created)})).expect("publish");

    let unknown = format!("sha256:{}", "0".repeat(64));
    let created = call(
        &addr,
        "acme",
        &registry("CreateAsset"),
        &json!({"type": "ASSET_TYPE_MAPPING", "name": "dangling", "content": mapping(&unknown)}),
    )
    .expect("create");
    let error = call(&addr, "acme", &registry("PublishAsset"), &json!({"type": "ASSET_TYPE_MAPPING", "name": "dangling", "expected_revision": revision(&created)})).unwrap_err();
    assert!(
        error.contains("plugin.exists") && error.contains("UploadPlugin"),
        "{error}"
    );

    let results = json!([{"tool": "ci_tool", "kind": "sql", "columns": ["ci_code", "status"],
        "rows": [["GT-01", "active"], ["GT-02", "active"], ["SAN-01", "standby"]]}]);
    let preview = call(
        &addr,
        "acme",
        &registry("PreviewMapping"),
        &json!({"name": "status_board", "results": results}),
    )
    .expect("preview");
    assert_eq!(
        preview["blocks"][0]["text"]["text"], "3 CIs in 2 statuses",
        "{preview}"
    );
    assert_eq!(
        preview["blocks"][1]["table"]["rows"][0],
        json!(["active", 2]),
        "{preview}"
    );
    assert_eq!(preview["run"]["plugin"], "status-board@1.0.0");
    assert_eq!(preview["run"]["digest"], digest.as_str());
    assert!(
        preview["run"]["peakMemoryBytes"]
            .as_str()
            .is_some_and(|m| m != "0"),
        "{preview}"
    );
}

/// Two environment variables turn authentication on: the secret stays a reference, grpcurl
/// still lists the API through reflection without a token, and a call needs a bearer token.
#[test]
fn environment_alone_turns_on_jwt_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "process-test-hs256-key-of-32-bytes-or-more";
    let (child, addr, before) = common::spawn_opsd(
        "serve",
        dir.path(),
        &[
            ("OPS__EXECUTORS__MODE", "off"),
            ("OPS__AUTH__MODE", "jwt"),
            ("OPS__AUTH__JWT_HS256_SECRET", "env:OPS_TEST_JWT_KEY"),
            ("OPS_TEST_JWT_KEY", secret),
        ],
    );
    assert!(before.is_empty(), "unexpected first lines {before:?}");
    let opsd = Opsd { child, addr };
    assert!(grpcurl_text(&["-plaintext", &opsd.addr, "list"]).contains("ops.v1.AssetRegistry"));

    let list = |extra: &[&str]| {
        Command::new(common::grpcurl())
            .arg("-plaintext")
            .args(extra)
            .args(["-d", "{}", &opsd.addr, "ops.v1.AssetRegistry/ListAssets"])
            .output()
            .expect("run grpcurl")
    };
    let refused = list(&[]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Unauthenticated"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 600;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "grpcurl-admin", "tenant": "acme", "roles": ["admin"], "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    let bearer = format!("authorization: Bearer {token}");
    let allowed = list(&["-H", &bearer]);
    assert!(
        allowed.status.success(),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );
    // Reflection serves the google.rpc error details: grpcurl prints the field violations.
    let invalid = Command::new(common::grpcurl())
        .args(["-plaintext", "-H", &bearer, "-d", "{}", &opsd.addr])
        .arg("ops.v1.AssetRegistry/CreateAsset")
        .output()
        .expect("run grpcurl");
    let printed = String::from_utf8_lossy(&invalid.stderr).into_owned()
        + &String::from_utf8_lossy(&invalid.stdout);
    assert!(!invalid.status.success());
    assert!(printed.contains("InvalidArgument"), "{printed}");
    assert!(printed.contains("BadRequest"), "{printed}");
    assert!(!printed.contains("not recognized"), "{printed}");
    assert!(!printed.contains(&token), "the token was echoed");
    opsd.terminate();
}
