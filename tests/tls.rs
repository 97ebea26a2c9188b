//! TLS and mTLS on opsd's own listener (rustls), with a test CA: a client that trusts the CA
//! asks over TLS, a plaintext client gets nothing; with `server.client_ca` only a client
//! presenting a certificate that CA signed gets through; with authentication on, a certificate
//! listed in `auth.client_certs` is the credential (its principal, tenant and roles).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod executor_support;
mod pipeline_support;

use std::path::{Path, PathBuf};

use ops_controlplane::config::{AuthMode, ClientCertConfig, ExecutorMode};
use ops_proto::v1::inspector_client::InspectorClient;
use ops_proto::v1::ops_service_client::OpsServiceClient;
use ops_proto::v1::{AskRequest, ListTracesRequest};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/tls")
        .join(name)
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

async fn ask(channel: Channel) -> Result<String, tonic::Status> {
    let response = OpsServiceClient::new(channel)
        .ask(pipeline_support::request(
            "acme",
            AskRequest {
                question: "List all servers in the HR system".into(),
                ..Default::default()
            },
        ))
        .await?;
    Ok(response.into_inner().answer)
}

async fn tls_channel(addr: &str, client_identity: bool) -> Result<Channel, String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(pem("ca.pem")))
        .domain_name("localhost");
    if client_identity {
        tls = tls.identity(Identity::from_pem(pem("client.pem"), pem("client.key")));
    }
    Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_speaks_tls_and_mtls_admits_only_the_cas_clients() {
    let demo = pipeline_support::start_demo_with(ExecutorMode::Connect, |config| {
        config.server.tls_cert = Some(fixture("server.pem"));
        config.server.tls_key = Some(fixture("server.key"));
    })
    .await;
    let answer = ask(tls_channel(&demo.addr, false).await.expect("TLS connect"))
        .await
        .expect("asked over TLS");
    assert!(answer.contains("HR-DB-01"), "{answer}");
    // Plaintext to a TLS listener gets no answer.
    let plaintext = Channel::from_shared(format!("http://{}", demo.addr))
        .unwrap()
        .connect_lazy();
    assert!(ask(plaintext).await.is_err());
    demo.stop().await;

    let demo = pipeline_support::start_demo_with(ExecutorMode::Connect, |config| {
        config.server.tls_cert = Some(fixture("server.pem"));
        config.server.tls_key = Some(fixture("server.key"));
        config.server.client_ca = Some(fixture("ca.pem"));
    })
    .await;
    let with_cert = tls_channel(&demo.addr, true).await.expect("mTLS connect");
    ask(with_cert)
        .await
        .expect("asked with a client certificate");
    // Without a client certificate the handshake or the first call fails.
    let refused = match tls_channel(&demo.addr, false).await {
        Err(_) => true,
        Ok(channel) => ask(channel).await.is_err(),
    };
    assert!(refused, "a client without a certificate got through");
    demo.stop().await;

    // With authentication on, a mapped certificate is the credential: no token needed.
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("jwt.key");
    std::fs::write(&secret, "a-test-only-hs256-key-of-at-least-32-bytes").unwrap();
    let demo = pipeline_support::start_demo_with(ExecutorMode::Connect, |config| {
        config.server.tls_cert = Some(fixture("server.pem"));
        config.server.tls_key = Some(fixture("server.key"));
        config.server.client_ca = Some(fixture("ca.pem"));
        config.auth.mode = AuthMode::Jwt;
        config.auth.jwt_hs256_secret = format!("file:{}", secret.display());
        config.auth.client_certs = vec![ClientCertConfig {
            subject_cn: "svc-reporting".into(),
            principal: "reporting".into(),
            tenant: "acme".into(),
            roles: vec!["asker".into()],
        }];
    })
    .await;
    let channel = tls_channel(&demo.addr, true).await.expect("mTLS connect");
    let answer = ask(channel.clone())
        .await
        .expect("the certificate's principal asks");
    assert!(answer.contains("HR-DB-01"), "{answer}");
    let denied = InspectorClient::new(channel)
        .list_traces(ListTracesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    assert!(denied.message().contains("reporting"), "{denied:?}");
    demo.stop().await;
}
