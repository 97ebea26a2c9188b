//! The `opsd` command line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use ops_proto::v1::asset_registry_client::AssetRegistryClient;
use ops_proto::v1::{
    BundleFile, BundleFormat, ExportBundleRequest, ImportBundleRequest, ImportOutcome,
};
use tonic::metadata::MetadataValue;

use crate::config::{Config, FlagOverrides, LogFormat};
use crate::context::TENANT_HEADER;
use crate::server;

#[derive(Debug, Parser)]
#[command(name = "opsd", version, about = "The OPS control plane")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the gRPC API.
    Serve(ServeArgs),
    /// Serve on the embedded default (SQLite in the data dir).
    Demo(ServeArgs),
    /// Import or export asset bundles through a running opsd.
    #[command(subcommand)]
    Assets(AssetsCommand),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to bind, e.g. 127.0.0.1:50051 (port 0 picks a free port).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Directory for the embedded database and local state.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// TOML configuration file.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct Target {
    /// opsd endpoint.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// Tenant to act for (x-ops-tenant).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Bearer token, when opsd runs with `auth.mode = "jwt"`.
    #[arg(long, env = "OPS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Yaml,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum AssetsCommand {
    /// Import every .yaml/.yml/.json file under DIR as one atomic bundle.
    Import {
        dir: PathBuf,
        #[command(flatten)]
        target: Target,
        /// Publish every asset whose content changed.
        #[arg(long)]
        publish: bool,
        /// Validate and report without writing.
        #[arg(long)]
        dry_run: bool,
        /// With --publish: run the golden set with the bundle's drafts first (the Policy's
        /// publish_gate does this for every publish); a failing golden query refuses it.
        #[arg(long, requires = "publish")]
        run_golden_set: bool,
    },
    /// Export the latest published assets into DIR (one file per asset).
    Export {
        dir: PathBuf,
        #[command(flatten)]
        target: Target,
        #[arg(long, value_enum, default_value = "yaml")]
        format: Format,
        /// Export drafts where an asset has one.
        #[arg(long)]
        drafts: bool,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args, false).await,
        Command::Demo(args) => serve(args, true).await,
        Command::Assets(command) => assets(command).await,
    }
}

/// Logs to stderr, and spans to OpenTelemetry when `[otel] endpoint` is set (the provider to
/// shut down at exit is returned).
fn init_logging(
    config: &Config,
) -> anyhow::Result<Option<opentelemetry_sdk::trace::SdkTracerProvider>> {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match config.log.format {
        LogFormat::Json => fmt.json().boxed(),
        LogFormat::Text => fmt.boxed(),
    };
    let provider = crate::telemetry::provider(&config.otel).map_err(anyhow::Error::msg)?;
    // The exported spans are OPS's own, whatever the log filter lets through to stderr.
    let otel = provider.as_ref().map(|p| {
        crate::telemetry::layer(p).with_filter(
            tracing_subscriber::filter::Targets::new()
                .with_target("ops_controlplane", tracing::Level::INFO),
        )
    });
    // A second init (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel)
        .try_init();
    Ok(provider)
}

async fn serve(args: ServeArgs, demo: bool) -> anyhow::Result<()> {
    let flags = FlagOverrides {
        listen: args.listen,
        data_dir: args.data_dir,
    };
    let config = Config::load(args.config.as_deref(), &flags)?;
    let spans = init_logging(&config)?;
    let registry = server::open_registry(&config).await?;
    let sidecars = tokio_util::sync::CancellationToken::new();
    let executors = match config.executors.mode {
        crate::config::ExecutorMode::Off => None,
        _ => Some(
            crate::execute::Executors::start(
                &config.executors,
                &config.storage.data_dir,
                sidecars.clone(),
            )
            .await?,
        ),
    };
    if demo {
        let path = crate::demo::prepare(&config.storage.data_dir, &registry).await?;
        println!("opsd demo: plant-ops loaded from {}", path.display());
        println!(
            "opsd demo: source, schema catalog, resolver, tools, policy, planner vocabulary, direct answers, mapping and screen of plant-ops published for tenants acme and globex"
        );
    }
    // Ready to serve before announcing the address: compiling the built-in plugins (first start
    // only; later starts load the compiled cache) must not delay the first RPC.
    let plugins = server::plugin_host(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    // One machine-readable line on stdout, so scripts and tests can find a port-0 server.
    println!("opsd listening on {addr}");
    let served = server::serve(
        &config,
        registry,
        executors.clone(),
        plugins,
        listener,
        server::shutdown_signal(),
    )
    .await;
    // Stop the supervised sidecars whatever happened to the server.
    sidecars.cancel();
    if let Some(executors) = executors {
        executors.stop().await;
    }
    if let Some(spans) = spans {
        // Blocks while the last batch is sent.
        tokio::task::spawn_blocking(move || crate::telemetry::shutdown(spans)).await?;
    }
    served?;
    Ok(())
}

/// `InvalidArgument: <message>`, the way grpcurl names codes.
pub(crate) fn status_error(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", status.code(), status.message())
}

/// A request carrying the target's tenant header and bearer token when given.
pub(crate) fn with_caller<T>(request: T, target: &Target) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(request);
    if let Some(t) = &target.tenant {
        let value: MetadataValue<_> = t.parse().context("tenant must be ASCII")?;
        request.metadata_mut().insert(TENANT_HEADER, value);
    }
    if let Some(token) = &target.token {
        // The error never shows the token.
        let value: MetadataValue<_> = format!("Bearer {}", token.trim())
            .parse()
            .map_err(|_| anyhow::anyhow!("the token must be ASCII text"))?;
        request.metadata_mut().insert("authorization", value);
    }
    Ok(request)
}

fn collect_files(dir: &Path) -> anyhow::Result<Vec<BundleFile>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current)
            .with_context(|| format!("cannot read {}", current.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            ) {
                let relative = path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                let content = std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                files.push(BundleFile {
                    path: relative,
                    content,
                });
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

async fn assets(command: AssetsCommand) -> anyhow::Result<()> {
    match command {
        AssetsCommand::Import {
            dir,
            target,
            publish,
            dry_run,
            run_golden_set,
        } => {
            let files = collect_files(&dir)?;
            if files.is_empty() {
                bail!("no .yaml, .yml or .json files under {}", dir.display());
            }
            let mut client = AssetRegistryClient::connect(target.server.clone()).await?;
            let request = with_caller(
                ImportBundleRequest {
                    files,
                    publish,
                    dry_run,
                    run_golden_set,
                },
                &target,
            )?;
            let response = client
                .import_bundle(request)
                .await
                .map_err(status_error)?
                .into_inner();
            for r in response.results {
                let outcome = ImportOutcome::try_from(r.outcome)
                    .unwrap_or_default()
                    .as_str_name();
                println!("{:<40} {:<28} v{}", r.path, outcome, r.version);
            }
            if let Some(run) = response.gate_run {
                println!(
                    "golden set: {} passed, {} warnings, {} failed (regression run {})",
                    run.passed, run.warnings, run.failed, run.id
                );
            }
            Ok(())
        }
        AssetsCommand::Export {
            dir,
            target,
            format,
            drafts,
        } => {
            let mut client = AssetRegistryClient::connect(target.server.clone()).await?;
            let format = match format {
                Format::Yaml => BundleFormat::Yaml,
                Format::Json => BundleFormat::Json,
            };
            let request = with_caller(
                ExportBundleRequest {
                    types: vec![],
                    format: format as i32,
                    include_drafts: drafts,
                },
                &target,
            )?;
            let response = client.export_bundle(request).await.map_err(status_error)?;
            for file in response.into_inner().files {
                let path = dir.join(&file.path);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&path, &file.content)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                println!("{}", path.display());
            }
            Ok(())
        }
    }
}

/// Runs a command line's future on a multi-threaded runtime; errors print as `name: error`.
pub fn run_to_exit(
    name: &str,
    run: impl std::future::Future<Output = anyhow::Result<()>>,
) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("{name}: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{name}: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
