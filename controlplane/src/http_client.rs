//! The one outbound HTTP client builder (webhooks; later the LLM endpoint): rustls with the
//! ring provider tonic already uses, platform trust roots, a deadline per request.

use std::time::Duration;

/// A client whose every request has `timeout` end to end.
pub fn build(timeout: Duration) -> Result<reqwest::Client, String> {
    // reqwest is built without a crypto provider of its own: ring becomes the process default
    // once (a second install is refused, which is fine).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("opsd/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}
