//! What the auth layer costs per call (one run): `Auth::authorize` with authentication off
//! (metadata only) and with a bearer JWT signed HS256, RS256 and ES256 (signature, claims and
//! the RPC's role checked). Reports p50 and p99 in µs and each ratio to the metadata path.
//! `cargo bench -p ops-tests --bench auth`.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::time::Instant;

use http::{HeaderMap, HeaderValue};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ops_controlplane::auth::Auth;
use ops_controlplane::config::{AuthConfig, AuthMode};

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
}
