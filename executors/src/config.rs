//! Sidecar configuration: defaults < TOML file < `OPS_EXECUTOR__SECTION__KEY` < flags, with
//! unknown keys rejected at every layer.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub const ENV_PREFIX: &str = "OPS_EXECUTOR__";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutorConfig {
    pub server: ServerConfig,
    pub limits: Limits,
    pub log: LogConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Port 0 picks a free port; the bound address is printed on stdout either way.
    pub listen: SocketAddr,
    pub shutdown_grace_seconds: u64,
    /// Serve TLS with this certificate and key (PEM); with `client_ca` too, require client
    /// certificates signed by it (mTLS).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            shutdown_grace_seconds: 10,
            tls_cert: None,
            tls_key: None,
            client_ca: None,
        }
    }
}

/// Hard limits of this sidecar; a request may ask for less, never for more.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_rows: u32,
    pub max_bytes: u64,
    /// Statement timeout when the caller sent no deadline.
    pub default_timeout_ms: u64,
    pub max_timeout_ms: u64,
    /// Distinct Sources with an open pool.
    pub max_pools: usize,
    pub max_connections_per_source: u32,
    pub connect_timeout_ms: u64,
    /// Graph traversals stop at these, flagging the result truncated.
    pub max_graph_depth: u32,
    pub max_graph_nodes: u32,
    pub max_graph_edges: u32,
    /// Points fetched to compute a percentile in the executor.
    pub max_percentile_points: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_rows: 10_000,
            max_bytes: 16 * 1024 * 1024,
            default_timeout_ms: 30_000,
            max_timeout_ms: 300_000,
            max_pools: 64,
            max_connections_per_source: 8,
            connect_timeout_ms: 5_000,
            max_graph_depth: 12,
            max_graph_nodes: 5_000,
            max_graph_edges: 20_000,
            max_percentile_points: 1_000_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// An `EnvFilter` directive.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: "text".into(),
            filter: "info".into(),
        }
    }
}

impl ExecutorConfig {
    /// Loads the layered configuration; `file` is optional.
    pub fn load(file: Option<&Path>) -> Result<Self, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Self::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment
            .merge(Env::prefixed(ENV_PREFIX).split("__"))
            .extract()
            .map_err(Box::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_and_unknown_keys_fail() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("OPS_EXECUTOR__LIMITS__MAX_ROWS", "5");
            let config = ExecutorConfig::load(None).map_err(|e| e.to_string())?;
            assert_eq!(config.limits.max_rows, 5);
            jail.set_env("OPS_EXECUTOR__LIMITS__MAX_ROWZ", "5");
            assert!(ExecutorConfig::load(None).is_err());
            Ok(())
        });
    }
}
