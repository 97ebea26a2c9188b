//! What the auth layer costs (one run): per call, `Auth::authorize` with authentication off
//! (metadata only) and with a bearer JWT signed HS256, RS256 and ES256 (signature, claims and
//! the RPC's role checked), p50 and p99 in µs and each ratio to the metadata path; and Ask
//! throughput over gRPC on the demo at 16 clients with authentication off and on (HS256), the
//! audit log written in both. `cargo bench -p ops-tests --bench auth`.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "../executor_support/mod.rs"]
mod executor_support;
#[path = "../pipeline_support/mod.rs"]
mod pipeline_support;

use std::path::Path;
use std::time::Instant;

use http::{HeaderMap, HeaderValue};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ops_controlplane::auth::Auth;
use ops_controlplane::config::{AuthConfig, AuthMode, ExecutorMode};
use ops_proto::v1::AskRequest;
use ops_proto::v1::ops_service_client::OpsServiceClient;

const ROUNDS: usize = 20_000;
const SECRET: &str = "a-bench-only-hs256-key-of-at-least-32-bytes";
const PATH: &str = "/ops.v1.OpsService/Ask";

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/auth")
        .join(name)
}

fn percentile(samples: &mut [f64], q: f64) -> f64 {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[((samples.len() - 1) as f64 * q) as usize]
}

fn measure(auth: &Auth, headers: &HeaderMap) -> (f64, f64) {
    let authorize = || futures::executor::block_on(auth.authorize(PATH, headers, None));
    for _ in 0..1000 {
        authorize().expect("authorized");
    }
    let mut samples = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let context = authorize().expect("authorized");
        samples.push(started.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(context);
    }
    (
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.99),
    )
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    headers
}

/// A mix of the demo's questions (lookup, metric, history, graph, document).
const QUESTIONS: &[&str] = &[
    "List all servers in the HR system",
    "GT-01 CPU average last week",
    "What breaks if SAN-01 fails?",
    "ERP servers in zone-a",
    "open incidents on ERP-DB-01",
];
const CLIENTS: usize = 16;
const ASKS_PER_CLIENT: usize = 25;

async fn ask(
    client: &mut OpsServiceClient<tonic::transport::Channel>,
    token: Option<&str>,
    question: &str,
) {
    let mut request = pipeline_support::request(
        "acme",
        AskRequest {
            question: question.to_owned(),
            ..Default::default()
        },
    );
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    client.ask(request).await.expect("answered");
}

/// Asks per second of 16 clients against a demo server, each call carrying `token` if any.
async fn ask_throughput(token: Option<String>, secret_file: &Path) -> (f64, f64) {
    let secret_ref = format!("file:{}", secret_file.display());
    let demo = pipeline_support::start_demo_with(ExecutorMode::Spawn, |config| {
        if token.is_some() {
            config.auth.mode = AuthMode::Jwt;
            config.auth.jwt_hs256_secret = secret_ref;
            config.auth.jwt_issuer = "https://idp.bench".into();
            config.auth.jwt_audience = "ops".into();
        }
    })
    .await;
    // Warm the snapshot, plugins and connections.
    let mut warm = OpsServiceClient::new(demo.channel.clone());
    for q in QUESTIONS {
        ask(&mut warm, token.as_deref(), q).await;
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let mut client = OpsServiceClient::new(demo.channel.clone());
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            for i in 0..ASKS_PER_CLIENT {
                let t = Instant::now();
                let q = QUESTIONS[(c + i) % QUESTIONS.len()];
                ask(&mut client, token.as_deref(), q).await;
                samples.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            samples
        }));
    }
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await.unwrap());
    }
    let per_second = samples.len() as f64 / started.elapsed().as_secs_f64();
    let p50 = percentile(&mut samples, 0.5);
    demo.stop().await;
    (per_second, p50)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("key");
    std::fs::write(&secret, SECRET).unwrap();
    let config = AuthConfig {
        mode: AuthMode::Jwt,
        jwt_hs256_secret: format!("file:{}", secret.display()),
        jwt_jwks_file: fixture("jwks.json"),
        jwt_issuer: "https://idp.bench".into(),
        jwt_audience: "ops".into(),
        jwt_leeway_seconds: 0,
        client_certs: Vec::new(),
    };
    let jwt = Auth::from_config(&config, "default", None).expect("auth");
    let claims = serde_json::json!({
        "sub": "bench", "tenant": "acme", "roles": ["asker"], "iss": "https://idp.bench",
        "aud": "ops", "exp": time::OffsetDateTime::now_utc().unix_timestamp() + 3600,
    });
    let sign = |algorithm: Algorithm, kid: Option<&str>, key: &EncodingKey| {
        let mut header = Header::new(algorithm);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, &claims, key).unwrap()
    };
    let rsa = EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa.pem")).unwrap()).unwrap();
    let ec = EncodingKey::from_ec_pem(&std::fs::read(fixture("ec.pem")).unwrap()).unwrap();
    let cases = [
        (
            "HS256",
            sign(
                Algorithm::HS256,
                None,
                &EncodingKey::from_secret(SECRET.as_bytes()),
            ),
        ),
        ("RS256", sign(Algorithm::RS256, Some("test-rsa"), &rsa)),
        ("ES256", sign(Algorithm::ES256, Some("test-ec"), &ec)),
    ];

    let mut metadata = HeaderMap::new();
    metadata.insert("x-ops-tenant", HeaderValue::from_static("acme"));
    let (base_p50, base_p99) = measure(&Auth::none("default"), &metadata);
    println!("auth per call, {ROUNDS} calls each (p50 / p99, µs; ratio of p50s to auth off)");
    println!("  off (metadata)  {base_p50:8.2} / {base_p99:8.2}");
    for (name, token) in &cases {
        let (p50, p99) = measure(&jwt, &bearer(token));
        println!(
            "  JWT {name}       {p50:8.2} / {p99:8.2}   ×{:.1}",
            p50 / base_p50
        );
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let hs256 = cases[0].1.clone();
    let (off, off_p50) = runtime.block_on(ask_throughput(None, &secret));
    let (on, on_p50) = runtime.block_on(ask_throughput(Some(hs256), &secret));
    println!(
        "Ask at {CLIENTS} clients, {} asks each run: auth off {off:.0} asks/s (p50 {off_p50:.2} ms), auth on (HS256) {on:.0} asks/s (p50 {on_p50:.2} ms): on/off = {:.3}",
        CLIENTS * ASKS_PER_CLIENT,
        on / off
    );
}
