//! Layered configuration: defaults < TOML file < `OPS__SECTION__KEY` environment < flags.
//! Unknown keys are rejected at every layer, so a typo fails loudly instead of being ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ops_proto::executor::ExecutorKind;
use serde::{Deserialize, Serialize};

pub use crate::storage::TraceSync;

/// Environment variables with this prefix override the file (`OPS__SERVER__LISTEN`).
pub const ENV_PREFIX: &str = "OPS__";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub registry: RegistryConfig,
    pub tenancy: TenancyConfig,
    pub log: LogConfig,
    pub executors: ExecutorsConfig,
    pub plugins: PluginsConfig,
    pub watch: WatchConfig,
    pub auth: AuthConfig,
    pub metrics: MetricsConfig,
    pub otel: OtelConfig,
    pub llm: LlmConfig,
}

/// When the LLM plans (an OpenAI-compatible chat endpoint). `off`: never called.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LlmMode {
    #[default]
    Off,
    /// The deterministic planner first; the LLM only when it is unsure of its plan.
    Fallback,
    /// The LLM first; the deterministic planner when the LLM fails or its breaker is open.
    Primary,
}

/// The LLM endpoint: planning the long tail of wordings and writing answer paragraphs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    pub mode: LlmMode,
    /// The chat completions URL, e.g. `https://api.openai.com/v1/chat/completions` or a vLLM,
    /// Ollama or gateway equivalent.
    pub endpoint: String,
    /// The model when the Prompt asset names none.
    pub model: String,
    /// A label for the usage log ("openai", "vllm", ...).
    pub provider: String,
    /// Bearer key, as a reference (`env:NAME` or `file:PATH`); empty: no Authorization header.
    pub api_key: String,
    /// Deadline of one call, connection included.
    pub timeout_ms: u64,
    pub max_tokens: u32,
    /// Ask for a JSON object reply (`response_format`), for servers that support it.
    pub json_mode: bool,
    pub breaker: LlmBreakerConfig,
    /// USD per 1,000 tokens, by model name.
    pub prices: std::collections::BTreeMap<String, LlmPrice>,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            mode: LlmMode::Off,
            endpoint: String::new(),
            model: String::new(),
            provider: "openai".into(),
            api_key: String::new(),
            timeout_ms: 10_000,
            max_tokens: 800,
            json_mode: true,
            breaker: LlmBreakerConfig::default(),
            prices: std::collections::BTreeMap::new(),
        }
    }
}

/// The endpoint's circuit breaker: `failures` calls that returned no completion (errors,
/// timeouts, 429s, a body that is not a chat completion) within `window_ms` open it; after
/// `cooldown_ms` one probe call may close it again. A completion whose plan is invalid is the
/// model's doing, not the endpoint's: it falls back without counting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmBreakerConfig {
    pub failures: u32,
    pub window_ms: u64,
    pub cooldown_ms: u64,
}

impl Default for LlmBreakerConfig {
    fn default() -> Self {
        Self {
            failures: 5,
            window_ms: 60_000,
            cooldown_ms: 30_000,
        }
    }
}

/// A model's price in USD per 1,000 tokens.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmPrice {
    pub prompt_per_1k: f64,
    pub completion_per_1k: f64,
}

/// OpenTelemetry span export over OTLP/HTTP (protobuf): a span per ask with one per stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtelConfig {
    /// The collector's traces URL, e.g. `http://127.0.0.1:4318/v1/traces`; empty: no export.
    pub endpoint: String,
    /// The `service.name` resource attribute.
    pub service_name: String,
}

impl Default for OtelConfig {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            service_name: "opsd".into(),
        }
    }
}

/// Prometheus metrics: text format at `GET /metrics` on their own listener.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of the metrics listener, e.g. `127.0.0.1:9464`; empty: no endpoint.
    pub listen: String,
}

/// How callers are authenticated. `none` (the embedded demo): the tenant and principal come
/// from `x-ops-tenant` / `x-ops-principal` and no role is checked. `jwt`: every RPC but health
/// and reflection needs a bearer token; its `tenant` claim is the tenant and its `roles` claim
/// is checked against the RPC's role.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub mode: AuthMode,
    /// HS256 key, as a reference (`env:NAME` or `file:PATH`).
    pub jwt_hs256_secret: String,
    /// A JWKS file of RS256 / ES256 public keys (a token's `kid` picks one).
    pub jwt_jwks_file: PathBuf,
    /// When set, a token's `iss` must equal it.
    pub jwt_issuer: String,
    /// When set, a token's `aud` must contain it.
    pub jwt_audience: String,
    /// Clock skew allowed on `exp` and `nbf`.
    pub jwt_leeway_seconds: u64,
    /// mTLS callers without a token: a verified client certificate whose subject common name
    /// is listed acts as that principal, tenant and roles (needs `server.client_ca`).
    pub client_certs: Vec<ClientCertConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertConfig {
    pub subject_cn: String,
    pub principal: String,
    pub tenant: String,
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    #[default]
    None,
    Jwt,
}

/// What opsd runs on its own: scheduled regression runs (the Policy's `regression_schedule`)
/// and alert rules delivered to webhooks. Replicas share the work through the database:
/// each cron occurrence and each alert evaluation is claimed by one replica.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchConfig {
    /// Off: this replica neither runs schedules nor evaluates alerts (others still may).
    pub enabled: bool,
    /// How often schedules are checked; a cron with seconds needs at most 1000.
    pub schedule_tick_ms: u64,
    /// How often alert rules are evaluated.
    pub alert_interval_ms: u64,
    /// How often closed minutes are rolled up into performance records.
    pub rollup_interval_ms: u64,
    pub webhook: WebhookConfig,
}

/// Webhook delivery: each attempt has a deadline; connection errors, timeouts, 429 and 5xx
/// are retried with exponential backoff, other statuses are final.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    pub timeout_ms: u64,
    /// Attempts per delivery, the first included.
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            schedule_tick_ms: 1000,
            alert_interval_ms: 15_000,
            rollup_interval_ms: 10_000,
            webhook: WebhookConfig::default(),
        }
    }
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            timeout_ms: 5000,
            max_attempts: 5,
            initial_backoff_ms: 500,
            max_backoff_ms: 30_000,
        }
    }
}

/// How the engine allocates plugin instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginAllocator {
    /// Pre-reserved slots, one per concurrent call (falls back to on-demand if the machine
    /// refuses the reservation).
    Pooling,
    /// mmap per instance.
    OnDemand,
}

/// The WASM plugin host (Mapping and Screen plugins).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    pub allocator: PluginAllocator,
    /// Plugin calls running at once; also the pooling allocator's slot count.
    pub max_concurrent_calls: u32,
    /// Ceiling of any plugin's linear memory; a Policy may ask for less, never more.
    pub max_memory_bytes: u64,
    /// Memory cap when the Policy sets none.
    pub default_memory_bytes: u64,
    /// CPU budget per call when the Policy sets none.
    pub default_cpu_budget_ms: u32,
    /// WASM stack per call; deeper recursion traps.
    pub max_stack_bytes: usize,
    /// Largest component accepted by UploadPlugin.
    pub max_upload_bytes: usize,
    /// Compiled-component cache; empty means `<data_dir>/plugin-cache`.
    pub cache_dir: PathBuf,
    /// Consecutive failures of one plugin version that open its circuit.
    pub breaker_failures: u32,
    /// How long an open circuit refuses calls before one trial call.
    pub breaker_cooldown_ms: u64,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        Self {
            allocator: PluginAllocator::Pooling,
            max_concurrent_calls: 16,
            max_memory_bytes: 256 << 20,
            default_memory_bytes: 64 << 20,
            default_cpu_budget_ms: 500,
            max_stack_bytes: 512 << 10,
            max_upload_bytes: 4 << 20,
            cache_dir: PathBuf::new(),
            breaker_failures: 5,
            breaker_cooldown_ms: 30_000,
        }
    }
}

/// How `opsd` reaches its executor sidecars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorMode {
    /// Start the three sidecars as supervised child processes (the embedded default).
    Spawn,
    /// Connect to the endpoints listed below (scale-out).
    Connect,
    /// No executors: RPCs that need a source answer UNAVAILABLE.
    Off,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutorsConfig {
    pub mode: ExecutorMode,
    /// Where the sidecar binaries are; unset means next to `opsd`.
    pub bin_dir: Option<PathBuf>,
    /// `http://host:port` (or `https://` with `tls`) endpoints per kind, for `mode = "connect"`.
    pub sql_endpoints: Vec<String>,
    pub metrics_endpoints: Vec<String>,
    pub graph_endpoints: Vec<String>,
    /// Deadline of a call when the Policy gives none.
    pub default_timeout_ms: u64,
    /// Calls in flight per executor kind; more wait (until their deadline) for a slot.
    pub max_concurrency: usize,
    pub connect_timeout_ms: u64,
    pub health_interval_ms: u64,
    pub max_message_bytes: usize,
    pub retry: RetryConfig,
    pub restart: RestartConfig,
    pub tls: ExecutorTlsConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    pub multiplier: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestartConfig {
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

/// mTLS towards the sidecars: the CA that signed their certificates, and this client's own
/// certificate and key when they require one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutorTlsConfig {
    pub ca_cert: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub domain: Option<String>,
}

impl ExecutorsConfig {
    pub fn endpoints(&self, kind: ExecutorKind) -> &[String] {
        match kind {
            ExecutorKind::Sql => &self.sql_endpoints,
            ExecutorKind::Metrics => &self.metrics_endpoints,
            ExecutorKind::Graph => &self.graph_endpoints,
            ExecutorKind::Unspecified => &[],
        }
    }
}

impl Default for ExecutorsConfig {
    fn default() -> Self {
        Self {
            mode: ExecutorMode::Spawn,
            bin_dir: None,
            sql_endpoints: Vec::new(),
            metrics_endpoints: Vec::new(),
            graph_endpoints: Vec::new(),
            default_timeout_ms: 30_000,
            max_concurrency: 64,
            connect_timeout_ms: 2_000,
            health_interval_ms: 2_000,
            max_message_bytes: 64 * 1024 * 1024,
            retry: RetryConfig::default(),
            restart: RestartConfig::default(),
            tls: ExecutorTlsConfig::default(),
        }
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff_ms: 1_000,
            max_backoff_ms: 4_000,
            multiplier: 2.0,
        }
    }
}

impl Default for RestartConfig {
    fn default() -> Self {
        Self {
            initial_backoff_ms: 100,
            max_backoff_ms: 10_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the gRPC server binds.
    pub listen: SocketAddr,
    /// How long in-flight calls may take to finish after SIGTERM/ctrl-c.
    pub shutdown_grace_seconds: u64,
    /// Largest accepted request message.
    pub max_message_bytes: usize,
    /// TLS on the listener: this server's certificate chain and key (PEM), set together.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// mTLS: only clients with a certificate this CA signed may connect.
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Where the embedded SQLite database, its pre-migration backups and local state live.
    pub data_dir: PathBuf,
    /// `sqlite://…`, `sqlite::memory:` or `postgres://…`; empty means `<data_dir>/ops.db`.
    pub url: String,
    pub max_connections: u32,
    /// `normal`: a trace is committed to the write-ahead log before its answer goes out (it
    /// survives opsd crashing; an OS crash or power loss may lose the last traces). `full`:
    /// also fsynced. Asset and source writes are always fsynced.
    pub trace_sync: TraceSync,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// Largest encoded asset content (spec, description, tags) accepted.
    pub max_content_bytes: usize,
    /// Largest number of files in one imported bundle.
    pub max_bundle_files: usize,
    /// How long a replica answers from its cached view of a tenant's published assets before
    /// checking the database for another replica's changes (its own are seen at once).
    pub snapshot_recheck_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenancyConfig {
    /// Tenant of calls that carry no `x-ops-tenant` metadata.
    pub default_tenant: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// An `EnvFilter` directive, e.g. `info,ops_controlplane=debug`.
    pub filter: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            shutdown_grace_seconds: 30,
            max_message_bytes: 8 * 1024 * 1024,
            tls_cert: None,
            tls_key: None,
            client_ca: None,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./.ops-data"),
            url: String::new(),
            max_connections: 8,
            trace_sync: TraceSync::Normal,
        }
    }
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            max_content_bytes: 256 * 1024,
            max_bundle_files: 1000,
            snapshot_recheck_ms: 1000,
        }
    }
}

impl Default for TenancyConfig {
    fn default() -> Self {
        Self {
            default_tenant: "default".to_owned(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".to_owned(),
        }
    }
}

/// Values given on the command line; they win over every other layer.
#[derive(Debug, Clone, Default)]
pub struct FlagOverrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path} does not exist")]
    MissingFile { path: PathBuf },
    #[error("invalid configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
    #[error("invalid configuration: {0}")]
    Rule(String),
}

impl Config {
    /// Loads the layered configuration from `file` (optional), the process environment and
    /// the flags.
    pub fn load(file: Option<&Path>, flags: &FlagOverrides) -> Result<Self, ConfigError> {
        Self::from_figment(Self::figment(file, flags)?)
    }

    fn figment(file: Option<&Path>, flags: &FlagOverrides) -> Result<Figment, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::MissingFile {
                    path: path.to_owned(),
                });
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__"));
        if let Some(listen) = flags.listen {
            figment = figment.merge(Serialized::default("server.listen", listen));
        }
        if let Some(dir) = &flags.data_dir {
            figment = figment.merge(Serialized::default("storage.data_dir", dir));
        }
        Ok(figment)
    }

    fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let config: Config = figment.extract().map_err(Box::new)?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if crate::context::validate_tenant(&self.tenancy.default_tenant).is_err() {
            return Err(ConfigError::Rule(format!(
                "tenancy.default_tenant {:?} must be 1-64 characters of a-z, 0-9, '_' or '-'",
                self.tenancy.default_tenant
            )));
        }
        if self.server.tls_cert.is_some() != self.server.tls_key.is_some() {
            return Err(ConfigError::Rule(
                "server.tls_cert and server.tls_key must be set together".into(),
            ));
        }
        for (index, cert) in self.auth.client_certs.iter().enumerate() {
            let at = format!("auth.client_certs[{index}]");
            if cert.subject_cn.trim().is_empty() || cert.principal.trim().is_empty() {
                return Err(ConfigError::Rule(format!(
                    "{at} needs subject_cn and principal"
                )));
            }
            crate::context::validate_tenant(&cert.tenant)
                .map_err(|e| ConfigError::Rule(format!("{at}.tenant: {e}")))?;
            for role in &cert.roles {
                role.parse::<crate::auth::roles::Role>()
                    .map_err(|e| ConfigError::Rule(format!("{at}.roles: {e}")))?;
            }
        }
        if !self.auth.client_certs.is_empty() && self.auth.mode != AuthMode::Jwt {
            return Err(ConfigError::Rule(
                "auth.client_certs takes effect only with auth.mode = \"jwt\" (with \"none\" no credential is checked)".into(),
            ));
        }
        if self.auth.mode == AuthMode::Jwt
            && !self.auth.jwt_jwks_file.as_os_str().is_empty()
            && self.auth.jwt_audience.is_empty()
        {
            return Err(ConfigError::Rule(
                "auth.jwt_jwks_file needs auth.jwt_audience: an identity provider's keys also sign tokens meant for other applications".into(),
            ));
        }
        if !self.auth.client_certs.is_empty() && self.server.client_ca.is_none() {
            return Err(ConfigError::Rule(
                "auth.client_certs needs server.client_ca: only CA-verified certificates may name a principal".into(),
            ));
        }
        if self.server.client_ca.is_some() && self.server.tls_cert.is_none() {
            return Err(ConfigError::Rule(
                "server.client_ca (mTLS) needs server.tls_cert and server.tls_key".into(),
            ));
        }
        if self.auth.mode == AuthMode::Jwt
            && self.auth.jwt_hs256_secret.is_empty()
            && self.auth.jwt_jwks_file.as_os_str().is_empty()
        {
            return Err(ConfigError::Rule(
                "auth.mode = \"jwt\" needs auth.jwt_hs256_secret (env:NAME or file:PATH) or auth.jwt_jwks_file".into(),
            ));
        }
        if !self.auth.jwt_hs256_secret.is_empty()
            && !crate::secrets::is_reference(&self.auth.jwt_hs256_secret)
        {
            return Err(ConfigError::Rule(
                "auth.jwt_hs256_secret must be a reference (env:NAME or file:PATH), never the secret itself".into(),
            ));
        }
        if self.storage.max_connections == 0 {
            return Err(ConfigError::Rule(
                "storage.max_connections must be at least 1".into(),
            ));
        }
        if self.executors.mode == ExecutorMode::Connect
            && ExecutorKind::ALL
                .iter()
                .any(|k| self.executors.endpoints(*k).is_empty())
        {
            return Err(ConfigError::Rule(
                "executors.mode = \"connect\" needs sql_endpoints, metrics_endpoints and graph_endpoints".into(),
            ));
        }
        if self.executors.retry.max_attempts == 0 || self.executors.max_concurrency == 0 {
            return Err(ConfigError::Rule(
                "executors.retry.max_attempts and executors.max_concurrency must be at least 1"
                    .into(),
            ));
        }
        if self.watch.schedule_tick_ms == 0
            || self.watch.alert_interval_ms == 0
            || self.watch.rollup_interval_ms == 0
            || self.watch.webhook.max_attempts == 0
            || self.watch.webhook.timeout_ms == 0
        {
            return Err(ConfigError::Rule(
                "watch.schedule_tick_ms, watch.alert_interval_ms, watch.rollup_interval_ms, watch.webhook.max_attempts and watch.webhook.timeout_ms must be at least 1".into(),
            ));
        }
        self.check_llm()?;
        if self.registry.max_content_bytes < 1024 {
            return Err(ConfigError::Rule(
                "registry.max_content_bytes must be at least 1024".into(),
            ));
        }
        Ok(())
    }

    fn check_llm(&self) -> Result<(), ConfigError> {
        let llm = &self.llm;
        if llm.mode == LlmMode::Off {
            return Ok(());
        }
        let url = reqwest::Url::parse(&llm.endpoint).map_err(|e| {
            ConfigError::Rule(format!(
                "llm.endpoint {:?} is not a URL ({e}): expected e.g. https://api.openai.com/v1/chat/completions",
                llm.endpoint
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::Rule(
                "llm.endpoint must be an http or https URL".into(),
            ));
        }
        if llm.model.trim().is_empty() {
            return Err(ConfigError::Rule(
                "llm.mode is on: llm.model names the model used when a Prompt names none".into(),
            ));
        }
        if !llm.api_key.is_empty() && !crate::secrets::is_reference(&llm.api_key) {
            return Err(ConfigError::Rule(
                "llm.api_key must be a reference (env:NAME or file:PATH), never the key itself"
                    .into(),
            ));
        }
        if llm.timeout_ms == 0 || llm.max_tokens == 0 || llm.breaker.failures == 0 {
            return Err(ConfigError::Rule(
                "llm.timeout_ms, llm.max_tokens and llm.breaker.failures must be at least 1".into(),
            ));
        }
        for (model, price) in &llm.prices {
            let valid = |v: f64| v.is_finite() && v >= 0.0;
            if !valid(price.prompt_per_1k) || !valid(price.completion_per_1k) {
                return Err(ConfigError::Rule(format!(
                    "llm.prices.{model}: prices are USD per 1,000 tokens, 0 or more"
                )));
            }
        }
        Ok(())
    }

    /// The storage URL, defaulting to the SQLite file in the data dir.
    pub fn storage_url(&self) -> String {
        if self.storage.url.is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self.storage.data_dir.join("ops.db").display()
            )
        } else {
            self.storage.url.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_with(
        jail: &mut figment::Jail,
        toml: Option<&str>,
        flags: &FlagOverrides,
    ) -> Result<Config, ConfigError> {
        let file = toml.map(|body| {
            jail.create_file("ops.toml", body)
                .map(|_| PathBuf::from("ops.toml"))
        });
        let file = match file {
            Some(Ok(path)) => Some(path),
            Some(Err(e)) => return Err(ConfigError::Rule(e.to_string())),
            None => None,
        };
        Config::load(file.as_deref(), flags)
    }

    #[test]
    fn layers_apply_in_order_defaults_file_env_flags() {
        figment::Jail::expect_with(|jail| {
            let defaults =
                load_with(jail, None, &FlagOverrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(defaults, Config::default());

            let file =
                "[server]\nlisten = \"127.0.0.1:6000\"\n[tenancy]\ndefault_tenant = \"file\"\n";
            let from_file = load_with(jail, Some(file), &FlagOverrides::default())
                .map_err(|e| e.to_string())?;
            assert_eq!(from_file.server.listen.port(), 6000);
            assert_eq!(from_file.tenancy.default_tenant, "file");

            jail.set_env("OPS__SERVER__LISTEN", "127.0.0.1:7000");
            let from_env = load_with(jail, Some(file), &FlagOverrides::default())
                .map_err(|e| e.to_string())?;
            assert_eq!(from_env.server.listen.port(), 7000);
            assert_eq!(from_env.tenancy.default_tenant, "file");

            let flags = FlagOverrides {
                listen: Some(SocketAddr::from(([127, 0, 0, 1], 8000))),
                data_dir: Some("/tmp/x".into()),
            };
            let from_flags = load_with(jail, Some(file), &flags).map_err(|e| e.to_string())?;
            assert_eq!(from_flags.server.listen.port(), 8000);
            assert_eq!(from_flags.storage.data_dir, PathBuf::from("/tmp/x"));
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_rejected_in_file_and_env() {
        figment::Jail::expect_with(|jail| {
            let err = load_with(
                jail,
                Some("[server]\nlistn = \"x\"\n"),
                &FlagOverrides::default(),
            )
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
            assert!(err.contains("listn"), "{err}");

            jail.set_env("OPS__STORAGE__URLL", "x");
            let err = load_with(jail, None, &FlagOverrides::default())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("urll"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn jwt_mode_needs_a_key_given_as_a_reference() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("OPS__AUTH__MODE", "jwt");
            let err = load_with(jail, None, &FlagOverrides::default())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("auth.jwt_hs256_secret"), "{err}");
            jail.set_env("OPS__AUTH__JWT_HS256_SECRET", "plain-secret-in-config");
            let err = load_with(jail, None, &FlagOverrides::default())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("must be a reference"), "{err}");
            assert!(!err.contains("plain-secret-in-config"), "{err}");
            jail.set_env("OPS__AUTH__JWT_HS256_SECRET", "env:OPS_JWT_KEY");
            let config =
                load_with(jail, None, &FlagOverrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.auth.mode, AuthMode::Jwt);
            // A certificate may name a principal only when a CA verifies certificates.
            let file = r#"
                [auth]
                client_certs = [{subject_cn = "svc", principal = "svc", tenant = "acme", roles = ["asker"]}]
            "#;
            let err = load_with(jail, Some(file), &FlagOverrides::default())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("server.client_ca"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn the_llm_section_is_checked_when_on() {
        figment::Jail::expect_with(|jail| {
            let err = |toml: &str, jail: &mut figment::Jail| {
                load_with(jail, Some(toml), &FlagOverrides::default())
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default()
            };
            let on = "[llm]\nmode = \"fallback\"\nmodel = \"m\"\n";
            assert!(err(on, jail).contains("llm.endpoint"));
            let inline_key = format!(
                "{on}endpoint = \"http://127.0.0.1:1/v1/chat/completions\"\napi_key = \"sk-123\"\n"
            );
            let message = err(&inline_key, jail);
            assert!(
                message.contains("llm.api_key must be a reference"),
                "{message}"
            );
            assert!(!message.contains("sk-123"), "the key is never echoed");
            let bad_price = format!(
                "{on}endpoint = \"https://llm.example/v1/chat/completions\"\n[llm.prices.m]\nprompt_per_1k = -1.0\n"
            );
            assert!(err(&bad_price, jail).contains("llm.prices.m"));
            jail.set_env("OPS__LLM__MODE", "primary");
            jail.set_env(
                "OPS__LLM__ENDPOINT",
                "https://llm.example/v1/chat/completions",
            );
            jail.set_env("OPS__LLM__MODEL", "gpt-x");
            let config =
                load_with(jail, None, &FlagOverrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.llm.mode, LlmMode::Primary);
            assert_eq!(config.llm.breaker, LlmBreakerConfig::default());
            jail.set_env("OPS__LLM__MODE", "sometimes");
            assert!(load_with(jail, None, &FlagOverrides::default()).is_err());
            Ok(())
        });
    }

    #[test]
    fn the_committed_example_config_loads() {
        figment::Jail::expect_with(|jail| {
            let example = include_str!("../opsd.example.toml");
            let config = load_with(jail, Some(example), &FlagOverrides::default())
                .map_err(|e| e.to_string())?;
            assert_eq!(
                config,
                Config::default(),
                "the example documents the defaults"
            );
            Ok(())
        });
    }

    #[test]
    fn a_missing_config_file_is_an_error() {
        let err = Config::load(
            Some(Path::new("/nonexistent/ops.toml")),
            &FlagOverrides::default(),
        );
        assert!(matches!(err, Err(ConfigError::MissingFile { .. })));
    }
}
