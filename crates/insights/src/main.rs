//! `insights`: the thin binary. It parses the command line and the config file into a resolved
//! configuration, starts the server (crate `insights-server`), applies declared algorithms, runs
//! the demo when asked, and shuts down cleanly on SIGTERM or Ctrl-C. All behaviour lives in the
//! library crates.

mod config;
mod demo;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "insights",
    version,
    about = "Inference metrics for ML models in production"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the model runtime and the Insights pipeline.
    Serve(ServeArgs),
    /// Move payloads from the Kafka topic into InfluxDB (what Telegraf did in the classic setup).
    Bridge(BridgeArgs),
}

#[derive(clap::Args)]
struct BridgeArgs {
    /// The bridge's TOML file: [kafka], [influxdb], [batch], [dead_letter], [metrics]
    /// (see docs/bridge.md).
    #[arg(long, env = "INSIGHTS_BRIDGE_CONFIG")]
    config: Option<PathBuf>,
    /// Sets one setting, overriding the file and the environment: `--set kafka.brokers=h:9092`.
    /// Every setting can also come from `INSIGHTS_BRIDGE_<SECTION>_<KEY>`.
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE", value_parser = parse_override)]
    overrides: Vec<(String, String)>,
}

fn parse_override(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not section.key=value"))
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "INSIGHTS_LISTEN")]
    listen: Option<SocketAddr>,
    /// Directory for the database, version snapshots and the admin token; a relative path is
    /// relative to the working directory [default: ./insights-data]
    #[arg(long, env = "INSIGHTS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// A TOML file declaring settings and algorithms (see docs/configuration.md); paths inside it
    /// are relative to the file's directory.
    #[arg(long, env = "INSIGHTS_CONFIG")]
    config: Option<PathBuf>,
    /// Publish the bundled example algorithm, call it a few times, and say what to try next.
    #[arg(long)]
    demo: bool,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .fmt_fields(escaped_fields())
        .init();
    let cli = Cli::parse();
    // The server's runtime is its request path: its threads (and the algorithms' processes,
    // started from them) run in short scheduler slices, so that a call that wakes preempts
    // background work at once; background threads go back to the default slice as they start.
    // The bridge has no request path.
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if matches!(cli.command, Command::Serve(_)) {
        insights::background::shorten_slice();
        builder.on_thread_start(insights::background::shorten_slice);
    }
    let runtime = match builder.build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Bridge(args) => bridge(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// Log fields with every control character escaped (`\n` as `\\n`, ESC as `\\u{1b}`): values
/// from outside (metric names, algorithm output, broker messages) reach the log, and a raw line
/// break in one would start a forged log line, an ESC byte would drive the terminal. The
/// message is a field too, so nothing is written unescaped.
fn escaped_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + 'static {
    use tracing_subscriber::field::MakeExt as _;
    tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        let raw = format!("{value:?}");
        let text = escape_controls(&raw);
        if field.name() == "message" {
            write!(w, "{text}")
        } else {
            write!(w, "{field}={text}")
        }
    })
    .delimited(" ")
}

fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => config::FileConfig::load(path)?,
        None => config::FileConfig::default(),
    };
    let settings = config::resolve(&file, args.listen, args.data_dir.clone())?;
    {
        use std::os::unix::fs::DirBuilderExt as _;
        // 0700 from the start (the server makes an existing one 0700 too): the admin token is
        // written here before the server opens the directory.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&settings.data_dir)
    }
    .with_context(|| {
        format!(
            "creating the data directory {}",
            settings.data_dir.display()
        )
    })?;
    let (admin_token, created) = insights_server::auth::load_or_create_admin_token(
        &settings.data_dir,
        std::env::var("INSIGHTS_ADMIN_TOKEN").ok(),
    )
    .context("reading or creating the admin token")?;
    if admin_token.len() < 32 {
        tracing::warn!(
            length = admin_token.len(),
            "the admin token is short: use at least 32 random characters (wrong guesses are limited to 5 a minute per address, not more)"
        );
    }
    if created {
        tracing::info!(path = %settings.data_dir.join("admin-token").display(), "generated the admin token");
    }
    let mut server_config =
        insights::serve::ServerConfig::new(settings.listen, settings.data_dir.clone(), admin_token);
    file.limits.apply(&mut server_config);
    file.delivery.apply(&mut server_config)?;
    file.admin.apply(&mut server_config);
    file.http.apply(&mut server_config)?;
    file.series.apply(&mut server_config);
    file.alerts.apply(&mut server_config)?;
    server_config.kafka_connection = file.kafka.clone();
    if let (Some(c), Ok(p)) = (
        server_config.kafka_connection.as_mut(),
        std::env::var("INSIGHTS_KAFKA_PASSWORD"),
    ) {
        // Keeps the password out of the config file.
        c.password = Some(insights_kafka::Secret::new(p));
    }
    let datadog_key = std::env::var("INSIGHTS_DATADOG_API_KEY").ok();
    match &file.datadog {
        // Keeps the key out of the config file.
        Some(d) => d.apply(&mut server_config, datadog_key)?,
        None if datadog_key.is_some() => tracing::warn!(
            "INSIGHTS_DATADOG_API_KEY is set but the config file has no [datadog] section (its `site` is needed); the key is not used"
        ),
        None => {}
    }
    let server = insights::serve::start(server_config).await?;

    let applied = config::apply_algorithms(&server.state, &file).await;
    if let Err(e) = applied {
        server.shutdown().await;
        return Err(e);
    }
    if args.demo
        && let Err(e) = demo::run(&server, &settings.data_dir).await
    {
        server.shutdown().await;
        return Err(e.context("the demo failed"));
    }

    wait_for_signal().await;
    tracing::info!("shutting down: finishing calls in flight, then stopping workers and delivery");
    server.shutdown().await;
    Ok(())
}

async fn bridge(args: BridgeArgs) -> anyhow::Result<()> {
    // The file, then the environment, then flags: each overrides the one before.
    let mut overrides = insights_bridge::BridgeConfig::env_overrides(std::env::vars());
    overrides.extend(args.overrides);
    let config = insights_bridge::BridgeConfig::load_with(args.config.as_deref(), &overrides)
        .context("in the bridge's configuration")?;
    insights_bridge::serve_metrics(config.metrics_listen)
        .await
        .context("serving the bridge's /metrics")?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: writing the batch in hand, committing, leaving the group");
        stop.cancel();
    });
    insights_bridge::run(config, shutdown).await?;
    Ok(())
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
