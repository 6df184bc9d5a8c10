//! The config file (`--config insights.toml`): server settings and declared algorithms, read
//! once at start. Flags and environment variables override the file; the file overrides
//! defaults.
//!
//! Every path is made absolute here, once, before anything uses it: a path on the command line
//! or in an environment variable is relative to the working directory at start, a path in the
//! file to the file's own directory. Nothing downstream holds a relative path: a worker changes
//! its directory before its private `/tmp/algoout` is mounted, so a relative path would name
//! something else by then.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use insights_runtime::catalog::{AlgorithmSettings, NewAlgorithm, Source, VersionSettings};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    /// Address to listen on.
    listen: Option<SocketAddr>,
    /// Data directory.
    data_dir: Option<PathBuf>,
    #[serde(default)]
    pub(crate) limits: Limits,
    /// The Kafka connection, for unattended installs (replaces the stored one at start).
    pub(crate) kafka: Option<insights_kafka::ConnectionRequest>,
    #[serde(default)]
    pub(crate) delivery: Delivery,
    /// Datadog delivery, for unattended installs (replaces the stored settings at start; the
    /// key from `INSIGHTS_DATADOG_API_KEY` rather than the file).
    pub(crate) datadog: Option<DatadogFile>,
    #[serde(default)]
    pub(crate) admin: Admin,
    #[serde(default)]
    pub(crate) http: Http,
    #[serde(default)]
    pub(crate) series: Series,
    #[serde(default)]
    pub(crate) alerts: Alerts,
    /// Algorithms to register (or update) at start, with the versions to publish.
    #[serde(default, rename = "algorithm")]
    algorithms: Vec<DeclaredAlgorithm>,
    #[serde(skip)]
    base_dir: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Limits {
    /// Payloads waiting for delivery before new ones are dropped.
    handoff_capacity: Option<usize>,
    /// Payloads kept in the embedded store.
    payload_retention: Option<u64>,
    /// Largest request body, in bytes.
    max_body_bytes: Option<usize>,
    /// Seconds a warm worker may stay unused before it is stopped; 0 keeps workers warm.
    worker_idle_seconds: Option<u64>,
    /// Calls with `output=void` waiting or running at most.
    max_void_calls: Option<usize>,
    /// Calls waiting for a worker of one version at most.
    max_waiting_calls: Option<usize>,
    /// Niceness of background work (delivery, the series store, alerting): 1 to 19 below the
    /// request path, 0 at its priority (default 10).
    background_nice: Option<u8>,
    /// Background work under SCHED_IDLE while delivery keeps up (default true).
    background_idle: Option<bool>,
}

impl Limits {
    pub(crate) fn apply(&self, c: &mut insights::serve::ServerConfig) {
        if let Some(n) = self.handoff_capacity {
            c.handoff_capacity = n;
        }
        if let Some(n) = self.payload_retention {
            c.payload_retention = n;
        }
        if let Some(n) = self.max_body_bytes {
            c.max_body_bytes = n;
        }
        if let Some(n) = self.max_void_calls {
            c.max_void_calls = n;
        }
        if let Some(n) = self.max_waiting_calls {
            c.max_waiting_calls = n;
        }
        if let Some(s) = self.worker_idle_seconds {
            c.worker_idle_timeout = (s > 0).then(|| std::time::Duration::from_secs(s));
        }
        if let Some(n) = self.background_nice {
            c.background_nice = n;
        }
        if let Some(b) = self.background_idle {
            c.background_idle = b;
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.handoff_capacity == Some(0) {
            bail!("limits.handoff_capacity must be at least 1");
        }
        if let Some(n) = self.background_nice
            && n > 19
        {
            bail!(
                "limits.background_nice is {n}; it must be 0 (the request path's priority) to 19"
            );
        }
        if self.payload_retention == Some(0) {
            bail!("limits.payload_retention must be at least 1");
        }
        if self.max_body_bytes == Some(0) {
            bail!("limits.max_body_bytes must be at least 1");
        }
        if self.max_void_calls == Some(0) {
            bail!("limits.max_void_calls must be at least 1");
        }
        if self.max_waiting_calls == Some(0) {
            bail!("limits.max_waiting_calls must be at least 1");
        }
        Ok(())
    }
}

/// How HTTP connections are bounded.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Http {
    /// Seconds a connection may take to send a request's headers, from its opening or its
    /// previous response (so also the keep-alive idle timeout). Default 60.
    header_read_timeout_seconds: Option<u64>,
    /// Connections open at once; beyond, new ones are answered 503 and closed. Default 4096.
    max_connections: Option<usize>,
}

impl Http {
    pub(crate) fn apply(&self, c: &mut insights::serve::ServerConfig) -> anyhow::Result<()> {
        if let Some(s) = self.header_read_timeout_seconds {
            if !(1..=3600).contains(&s) {
                bail!("http.header_read_timeout_seconds must be between 1 and 3600 (got {s})");
            }
            c.connections.header_read_timeout = std::time::Duration::from_secs(s);
        }
        if let Some(n) = self.max_connections {
            if n == 0 {
                bail!("http.max_connections must be at least 1");
            }
            c.connections.max_connections = n;
        }
        Ok(())
    }
}

/// The embedded series store: how long and how much each level keeps, and how often it is
/// made durable. Checked when the store opens (errors name the field).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Series {
    /// Raw points: seconds kept (default 3600) and bytes of memory at most (default 64 MiB).
    raw_retention_seconds: Option<u64>,
    raw_max_bytes: Option<u64>,
    /// 1-minute windows: days kept (default 30) and bytes at most (default 512 MiB).
    minute_retention_days: Option<u64>,
    minute_max_bytes: Option<u64>,
    /// 1-hour windows: days kept (default 400) and bytes at most (default 128 MiB).
    hour_retention_days: Option<u64>,
    hour_max_bytes: Option<u64>,
    /// Milliseconds between syncs of the write-ahead log (default 1000): what a power loss can
    /// lose; a crash of the process loses nothing.
    flush_interval_ms: Option<u64>,
    /// Seconds between checkpoints (default 300).
    checkpoint_interval_seconds: Option<u64>,
}

impl Series {
    pub(crate) fn apply(&self, c: &mut insights::serve::ServerConfig) {
        use std::time::Duration;
        let s = &mut c.series;
        let day = |d: u64| Duration::from_secs(d.saturating_mul(86_400));
        if let Some(v) = self.raw_retention_seconds {
            s.raw.age = Duration::from_secs(v);
        }
        if let Some(v) = self.raw_max_bytes {
            s.raw.max_bytes = v;
        }
        if let Some(v) = self.minute_retention_days {
            s.minute.age = day(v);
        }
        if let Some(v) = self.minute_max_bytes {
            s.minute.max_bytes = v;
        }
        if let Some(v) = self.hour_retention_days {
            s.hour.age = day(v);
        }
        if let Some(v) = self.hour_max_bytes {
            s.hour.max_bytes = v;
        }
        if let Some(v) = self.flush_interval_ms {
            s.flush_interval = Duration::from_millis(v);
        }
        if let Some(v) = self.checkpoint_interval_seconds {
            s.checkpoint_interval = Duration::from_secs(v);
        }
    }
}

/// Alerting: how long a notification is retried, and how much the alerts database keeps.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Alerts {
    /// Seconds a notification is retried before it is dropped and counted (default 3600).
    delivery_window_seconds: Option<u64>,
    /// Notifications waiting at most (default 10000); past it new ones are dropped, counted.
    max_pending: Option<usize>,
    /// Finished notifications and status changes kept, each (default 100000).
    max_history: Option<usize>,
}

impl Alerts {
    pub(crate) fn apply(&self, c: &mut insights::serve::ServerConfig) -> anyhow::Result<()> {
        let a = &mut c.alerts;
        if let Some(v) = self.delivery_window_seconds {
            if !(10..=7 * 86_400).contains(&v) {
                anyhow::bail!(
                    "[alerts] delivery_window_seconds is {v}; it must be 10 to 604800 (a week)"
                );
            }
            a.delivery_window = std::time::Duration::from_secs(v);
        }
        if let Some(v) = self.max_pending {
            if v == 0 {
                anyhow::bail!("[alerts] max_pending must be at least 1");
            }
            a.max_pending = v;
        }
        if let Some(v) = self.max_history {
            if v < 100 {
                anyhow::bail!("[alerts] max_history is {v}; at least 100");
            }
            a.max_history = v;
        }
        Ok(())
    }
}

/// The admin panel behind a reverse proxy.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Admin {
    /// Proxies whose `X-Forwarded-For` and `X-Forwarded-Proto` are believed.
    #[serde(default)]
    trusted_proxies: Vec<std::net::IpAddr>,
    /// Always mark the panel's cookies `Secure`.
    #[serde(default)]
    secure_cookies: bool,
}

impl Admin {
    pub(crate) fn apply(&self, c: &mut insights::serve::ServerConfig) {
        c.panel = insights_server::PanelConfig {
            trusted_proxies: self.trusted_proxies.clone(),
            secure_cookies: self.secure_cookies,
        };
    }
}

/// How payloads are delivered to Kafka.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Delivery {
    /// How long each payload is tried, in seconds (default 240).
    window_seconds: Option<u64>,
    /// The spool's bound on disk, in bytes (default 1 GiB).
    spool_max_bytes: Option<u64>,
    /// fdatasync every spooled batch (default false: durable across a crash of the process,
    /// not of the machine).
    fsync: Option<bool>,
    /// `algorithm` (owner/name, the default) or `none`.
    message_key: Option<insights_delivery::MessageKey>,
    /// The group-commit interval in milliseconds: how long a batch of payloads waits to fill
    /// before it is written to the store and the spool (default 5).
    group_commit_ms: Option<u64>,
}

impl Delivery {
    pub(crate) fn apply(&self, c: &mut insights::serve::ServerConfig) -> anyhow::Result<()> {
        if let Some(w) = self.window_seconds {
            if !(1..=86_400).contains(&w) {
                bail!("delivery.window_seconds must be between 1 and 86400 (got {w})");
            }
            c.kafka.window = std::time::Duration::from_secs(w);
            c.kafka.attempt_timeout = c.kafka.attempt_timeout.min(c.kafka.window);
        }
        if let Some(b) = self.spool_max_bytes {
            if b < 1 << 20 {
                bail!("delivery.spool_max_bytes must be at least 1048576 (got {b})");
            }
            c.kafka.spool_max_bytes = b;
            c.kafka.segment_bytes = c.kafka.segment_bytes.min(b / 4);
        }
        if let Some(f) = self.fsync {
            c.kafka.fsync = f;
        }
        if let Some(k) = self.message_key {
            c.kafka.key = k;
        }
        if let Some(ms) = self.group_commit_ms {
            if ms > 1000 {
                bail!("delivery.group_commit_ms must be at most 1000 (got {ms})");
            }
            c.dispatcher.linger = std::time::Duration::from_millis(ms);
        }
        Ok(())
    }
}

/// `[datadog]`: the settings the admin API takes, and the operator's bounds.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DatadogFile {
    /// `datadoghq.com`, `datadoghq.eu`, `us3.datadoghq.com`, …
    site: Option<String>,
    /// Better in `INSIGHTS_DATADOG_API_KEY`, which overrides this.
    api_key: Option<insights_kafka::Secret>,
    /// Default `algorithmia.`.
    metric_prefix: Option<String>,
    tags: Option<Vec<String>>,
    /// Tag `request_id` and `session_id` too (a billed custom metric per execution).
    legacy_id_tags: Option<bool>,
    /// Send here instead of `https://api.<site>` (a proxy).
    url: Option<String>,
    /// How long each payload is tried, in seconds (default 3600; Datadog refuses points older
    /// than an hour, so more than that changes nothing).
    window_seconds: Option<u64>,
    /// The Datadog spool's bound on disk, in bytes (default 1 GiB).
    spool_max_bytes: Option<u64>,
    /// fdatasync every spooled batch (default false).
    fsync: Option<bool>,
}

impl DatadogFile {
    /// Sets the bounds on `c` and declares the settings, the key from `env_key` if given.
    pub(crate) fn apply(
        &self,
        c: &mut insights::serve::ServerConfig,
        env_key: Option<String>,
    ) -> anyhow::Result<()> {
        if let Some(w) = self.window_seconds {
            if !(1..=86_400).contains(&w) {
                bail!("datadog.window_seconds must be between 1 and 86400 (got {w})");
            }
            c.datadog.window = std::time::Duration::from_secs(w);
        }
        if let Some(b) = self.spool_max_bytes {
            if b < 1 << 20 {
                bail!("datadog.spool_max_bytes must be at least 1048576 (got {b})");
            }
            c.datadog.spool_max_bytes = b;
            c.datadog.segment_bytes = c.datadog.segment_bytes.min(b / 4);
        }
        if let Some(f) = self.fsync {
            c.datadog.fsync = f;
        }
        c.datadog_settings = Some(insights_delivery::datadog::DatadogRequest {
            site: self.site.clone(),
            api_key: env_key
                .map(insights_kafka::Secret::new)
                .or_else(|| self.api_key.clone()),
            metric_prefix: self.metric_prefix.clone(),
            tags: self.tags.clone(),
            legacy_id_tags: self.legacy_id_tags,
            url: self.url.clone(),
        });
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeclaredAlgorithm {
    owner: String,
    name: String,
    source: Source,
    #[serde(default)]
    settings: AlgorithmSettings,
    #[serde(default, rename = "version")]
    versions: Vec<DeclaredVersion>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeclaredVersion {
    version: semver::Version,
    #[serde(flatten)]
    settings: VersionSettings,
}

impl FileConfig {
    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        let path = &absolute(path, "--config")?;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the config file {}", path.display()))?;
        // Described by field and line, never quoting the line (it may hold the password).
        let mut config: FileConfig = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!(insights_bridge::config::describe_toml_error(&e, &text)))
            .with_context(|| format!("in the config file {}", path.display()))?;
        config.limits.validate()?;
        config.base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        Ok(config)
    }

    /// A path written in the file: relative to the file's directory. Without a file (the
    /// defaults), relative to the working directory at start.
    fn relative(&self, p: &Path) -> anyhow::Result<PathBuf> {
        if self.base_dir.as_os_str().is_empty() {
            absolute(p, "a path")
        } else {
            Ok(self.base_dir.join(p))
        }
    }
}

/// `p` made absolute against the working directory (lexically: `..` and symbolic links are
/// kept, so the path still says what the user typed). `what` names the setting in the error.
pub(crate) fn absolute(p: &Path, what: &str) -> anyhow::Result<PathBuf> {
    if p.as_os_str().is_empty() {
        bail!("{what} is empty: give a path");
    }
    std::path::absolute(p).with_context(|| {
        format!(
            "{what} {} is relative and the working directory cannot be read; give an absolute path",
            p.display()
        )
    })
}

/// Where the data lives when neither a flag, the environment nor the file says: relative to
/// the working directory at start.
const DEFAULT_DATA_DIR: &str = "insights-data";

/// The settings the server starts with, after flags, environment and file are merged.
pub(crate) struct Resolved {
    pub(crate) listen: SocketAddr,
    pub(crate) data_dir: PathBuf,
}

pub(crate) fn resolve(
    file: &FileConfig,
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<Resolved> {
    let data_dir = match (data_dir, &file.data_dir) {
        (Some(d), _) => absolute(&d, "--data-dir (or INSIGHTS_DATA_DIR)")?,
        (None, Some(d)) => file.relative(d).context("data_dir in the config file")?,
        (None, None) => absolute(Path::new(DEFAULT_DATA_DIR), "the data directory")?,
    };
    Ok(Resolved {
        listen: listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
        data_dir,
    })
}

/// Registers or updates every declared algorithm and publishes its declared versions.
pub(crate) async fn apply_algorithms(
    state: &insights_server::AppState,
    file: &FileConfig,
) -> anyhow::Result<()> {
    let catalog = state.runtime.catalog();
    for a in &file.algorithms {
        let what = format!("algorithm {}/{} in the config file", a.owner, a.name);
        catalog
            .upsert(
                &a.owner,
                NewAlgorithm {
                    name: a.name.clone(),
                    source: Source {
                        path: file
                            .relative(&a.source.path)
                            .with_context(|| what.clone())?,
                        command: a.source.command.clone(),
                    },
                    settings: a.settings.clone(),
                    details: None,
                },
            )
            .with_context(|| what.clone())?;
        for v in &a.versions {
            catalog
                .ensure_version(&a.owner, &a.name, v.version.clone(), v.settings.clone())
                .await
                .with_context(|| format!("{what}, version {}", v.version))?;
        }
        tracing::info!(algorithm = %format!("{}/{}", a.owner, a.name), versions = a.versions.len(), "declared algorithm applied");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_config_parses_and_paths_are_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("insights.toml");
        std::fs::write(
            &path,
            r#"
listen = "127.0.0.1:9999"
data_dir = "data"
[limits]
payload_retention = 5000
[kafka]
topic = "insights"
brokers = "k1:9092,k2:9092"
connection_type = "plaintext"
[delivery]
window_seconds = 60
[admin]
trusted_proxies = ["10.0.0.2", "::1"]
[series]
minute_retention_days = 7
raw_max_bytes = 1048576
[[algorithm]]
owner = "demo"
name = "scorer"
source = { path = "algo", command = ["python3", "-u", "src/Algorithm.py"] }
settings = { pool_size = 3 }
[[algorithm.version]]
version = "1.0.0"
insights_enabled = true
"#,
        )
        .unwrap();
        let c = FileConfig::load(&path).unwrap();
        let r = resolve(&c, None, None).unwrap();
        assert_eq!(r.listen.port(), 9999);
        assert_eq!(r.data_dir, dir.path().join("data"));
        assert_eq!(c.algorithms[0].settings.pool_size, 3);
        assert_eq!(c.admin.trusted_proxies.len(), 2);
        let mut server =
            insights::serve::ServerConfig::new(r.listen, r.data_dir.clone(), "t".into());
        c.series.apply(&mut server);
        assert_eq!(
            server.series.minute.age,
            std::time::Duration::from_secs(7 * 86_400)
        );
        assert_eq!(server.series.raw.max_bytes, 1_048_576);
        assert!(c.algorithms[0].versions[0].settings.insights_enabled);
        assert_eq!(
            c.relative(&c.algorithms[0].source.path).unwrap(),
            dir.path().join("algo")
        );
        // Flags win over the file.
        let r = resolve(&c, Some("127.0.0.1:1".parse().unwrap()), Some("/x".into())).unwrap();
        assert_eq!((r.listen.port(), r.data_dir), (1, PathBuf::from("/x")));
    }

    #[test]
    fn relative_paths_become_absolute_once_against_the_working_directory_or_the_file() {
        let cwd = std::env::current_dir().unwrap();
        // No file, no flag: the default, under the working directory.
        let r = resolve(&FileConfig::default(), None, None).unwrap();
        assert_eq!(r.data_dir, cwd.join("insights-data"));
        // A relative flag: against the working directory.
        let r = resolve(&FileConfig::default(), None, Some("some/dir".into())).unwrap();
        assert_eq!(r.data_dir, cwd.join("some/dir"));
        // A config file named relatively: its paths against its own (absolute) directory.
        let dir = tempfile::tempdir_in(&cwd).unwrap();
        std::fs::write(
            dir.path().join("c.toml"),
            "data_dir = \"data\"\n[[algorithm]]\nowner='a'\nname='b'\nsource={path='algo', command=['x']}\n",
        )
        .unwrap();
        let name = dir.path().file_name().unwrap();
        let c = FileConfig::load(&Path::new(name).join("c.toml")).unwrap();
        let r = resolve(&c, None, None).unwrap();
        assert_eq!(r.data_dir, dir.path().join("data"));
        assert!(r.data_dir.is_absolute());
        let source = c.relative(&c.algorithms[0].source.path).unwrap();
        assert_eq!(source, dir.path().join("algo"));
        assert!(FileConfig::load(Path::new("")).is_err());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        for (text, needle) in [
            ("lissten = \"x\"", "lissten"),
            ("listen = \"localhost\"", "listen"),
            ("[limits]\nhandoff_capacity = 0", "handoff_capacity"),
            ("[kafka]\ntopic = 't'\nbrokerz = 'x'", "brokerz"),
            ("[delivery]\nwindow = 5", "window"),
            // A password that is not valid TOML is named, not shown.
            ("[kafka]\npassword = \"ab\\qc\"", "kafka.password"),
            (
                "[admin]\ntrusted_proxies = ['proxy.local']",
                "trusted_proxies",
            ),
            (
                "[[algorithm]]\nowner='a'\nname='b'\nsource={path='.', command=['x']}\n[[algorithm.version]]\nversion='one'",
                "version",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = format!("{:#}", FileConfig::load(&path).unwrap_err());
            assert!(err.contains(needle), "{text:?} → {err}");
            assert!(!err.contains("ab\\qc"), "the value is not quoted: {err}");
        }
    }

    #[test]
    fn datadog_in_the_file_with_the_key_from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[datadog]\nsite = 'datadoghq.eu'\napi_key = 'fromfile'\ntags = ['env:prod']\nwindow_seconds = 600\n",
        )
        .unwrap();
        let file = FileConfig::load(&path).unwrap();
        let mut c = insights::serve::ServerConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            dir.path().into(),
            "t".into(),
        );
        let d = file.datadog.as_ref().unwrap();
        d.apply(&mut c, Some("fromenv".into())).unwrap();
        assert_eq!(c.datadog.window, std::time::Duration::from_secs(600));
        let settings = c.datadog_settings.clone().unwrap().validate(None).unwrap();
        assert_eq!(settings.api_key.expose(), "fromenv");
        assert_eq!(settings.tags, ["env:prod"]);
        d.apply(&mut c, None).unwrap();
        let settings = c.datadog_settings.unwrap().validate(None).unwrap();
        assert_eq!(settings.api_key.expose(), "fromfile");

        std::fs::write(&path, "[datadog]\nsite = 'x'\nwindow = 5").unwrap();
        let err = format!("{:#}", FileConfig::load(&path).unwrap_err());
        assert!(err.contains("window"), "{err}");
    }
}
