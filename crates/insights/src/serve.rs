//! The composition root: what `insights serve` runs. [`start`] opens the data directory, builds
//! every stage in the order a payload travels (store, delivery and its sinks, the dispatcher,
//! the runtime), hands an [`AppState`] to the HTTP layer (`insights_server::serve`) on a
//! listener it bound, and returns a [`RunningServer`] whose [`RunningServer::shutdown`] stops
//! them in the order that loses nothing: HTTP first (calls in flight finish), then the workers,
//! then delivery drains what was handed over.
//!
//! It lives in the binary's crate so that only the binary imports the server; the system
//! tests and benchmarks start exactly this.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use insights_delivery::datadog::DatadogRequest;
use insights_delivery::{
    DatadogConfig, DatadogDelivery, Dispatcher, DispatcherConfig, Handoff, KafkaConfig,
    KafkaDelivery, PayloadSink, SeriesSink, StoreSink,
};
use insights_kafka::ConnectionRequest;
use insights_runtime::{Catalog, Runtime, RuntimeConfig};
use insights_server::{
    AdminToken, ApiKeys, AppState, ConnectionLimits, ConnectionStore, DatadogStore, PanelConfig,
    Services, Sessions,
};
use insights_store::{ConfigStore, Store};

use crate::background::{
    BackgroundRuntime, DATADOG_MAX_LAG, Follower, KAFKA_MAX_LAG, Lane, follow_each,
    on_background_thread,
};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Everything the server needs, resolved and validated by the binary.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub admin_token: String,
    /// Payloads the hand-off holds before new ones are dropped (and counted).
    pub handoff_capacity: usize,
    /// Payloads the embedded store keeps; older ones are pruned (and counted).
    pub payload_retention: u64,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Batching of the hand-off into sinks (the group-commit interval).
    pub dispatcher: DispatcherConfig,
    /// Kafka delivery: spool, window, bounds.
    pub kafka: KafkaConfig,
    /// A connection declared in the config file: saved at start, replacing the stored one.
    pub kafka_connection: Option<ConnectionRequest>,
    /// Datadog delivery: its spool (`<data-dir>/datadog-spool`), window and the intake's limits.
    pub datadog: DatadogConfig,
    /// Datadog settings declared in the config file (key from `INSIGHTS_DATADOG_API_KEY`):
    /// saved at start, replacing the stored ones.
    pub datadog_settings: Option<DatadogRequest>,
    /// The admin panel: trusted reverse proxies, `Secure` cookies.
    pub panel: PanelConfig,
    /// A warm worker unused this long is stopped; `None` keeps workers warm.
    pub worker_idle_timeout: Option<Duration>,
    /// Calls with `output=void` waiting or running at most: each holds its input until a
    /// worker is free, and nobody waits for them. Beyond, a void call gets 503 (counted in
    /// `insights_void_calls_refused_total`).
    pub max_void_calls: usize,
    /// Calls waiting for a worker of one version at most; beyond, 503 (counted in
    /// `insights_calls_refused_total{reason="queue_full"}`).
    pub max_waiting_calls: usize,
    /// How long a connection may take to send a request's headers, and how many may be open.
    pub connections: ConnectionLimits,
    /// The series store: retention and bounds of each level, flush and checkpoint intervals.
    pub series: insights_series::SeriesConfig,
    /// Whether payloads are given to the series store (the series sink); default `true`. Off,
    /// the store is still opened (its API answers from what it holds) but receives nothing:
    /// `scripts/bench-series` measures `/v1/algo` with and without the sink.
    pub series_enabled: bool,
    /// Alerting: the outbox's delivery window and the bounds of what it keeps.
    pub alerts: insights_alerts::AlertsConfig,
    /// The niceness of background work (delivery, the series store's threads, alerting):
    /// 1..=19 runs it at a lower CPU priority than the request path, 0 at the same (default 10;
    /// see `background.rs`).
    pub background_nice: u8,
    /// Whether delivery's runtime (the dispatcher, the store's and the series' writes; not
    /// alerting) runs under SCHED_IDLE while delivery keeps up, taking only CPU the
    /// request path leaves idle, and at the request path's priority while delivery is behind or
    /// work has waited past `Backlog::STALL`; and Datadog's threads likewise, at their own
    /// niceness when raised, also after lagging `DATADOG_MAX_LAG` (default on; see
    /// `background.rs`).
    pub background_idle: bool,
}

impl ServerConfig {
    pub fn new(listen: SocketAddr, data_dir: PathBuf, admin_token: String) -> Self {
        Self {
            listen,
            data_dir: data_dir.clone(),
            admin_token,
            handoff_capacity: 10_000,
            payload_retention: 1_000_000,
            max_body_bytes: 16 << 20,
            dispatcher: DispatcherConfig::default(),
            kafka: KafkaConfig::new(data_dir.join("spool")),
            kafka_connection: None,
            datadog: DatadogConfig::new(data_dir.join("datadog-spool")),
            datadog_settings: None,
            panel: PanelConfig::default(),
            worker_idle_timeout: Some(Duration::from_secs(30 * 60)),
            max_void_calls: 1000,
            max_waiting_calls: 1000,
            connections: ConnectionLimits::default(),
            series: insights_series::SeriesConfig::default(),
            series_enabled: true,
            alerts: insights_alerts::AlertsConfig::default(),
            background_nice: crate::background::BACKGROUND_NICE,
            background_idle: true,
        }
    }
}

/// A server that is up and serving.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub state: AppState,
    http_shutdown: CancellationToken,
    delivery_shutdown: CancellationToken,
    http: JoinHandle<std::io::Result<()>>,
    dispatcher: JoinHandle<()>,
    alerts_tasks: insights_alerts::AlertsTasks,
    /// Delivery's dispatcher and sinks run here, at the background priority (and under
    /// SCHED_IDLE with `background_idle`); dropped (after everything it ran has stopped) with
    /// the server.
    background: BackgroundRuntime,
    /// Keeps the background runtime following delivery's backlog, and Datadog's lane its queue.
    _follower: Follower,
    /// Alerting runs here, at the background priority but never under SCHED_IDLE: a deadman
    /// check must run when no payloads come, which is when nothing would raise it.
    alerting: BackgroundRuntime,
    /// Held (locked) while the server runs; released when it is dropped.
    _data_dir_lock: std::fs::File,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "cannot listen on {addr}: {}; choose another address with --listen ADDR or INSIGHTS_LISTEN",
        bind_reason(source)
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot use the data directory {dir}: {detail}")]
    DataDir { dir: PathBuf, detail: String },
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Runtime(#[from] insights_runtime::RuntimeError),
}

fn bind_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => "another program is already listening there".into(),
        std::io::ErrorKind::PermissionDenied => {
            "permission denied (ports below 1024 need privileges)".into()
        }
        std::io::ErrorKind::AddrNotAvailable => {
            "no interface of this machine has that address".into()
        }
        _ => e.to_string(),
    }
}

/// Opens the data directory, binds, and starts serving.
pub async fn start(config: ServerConfig) -> Result<RunningServer, StartError> {
    // First, so that every metric handle taken below is recorded.
    insights_server::install_metrics();
    let data_err = |detail: String| StartError::DataDir {
        dir: config.data_dir.clone(),
        detail,
    };
    // Everything under the data directory is handed on (to workers, the spool, the store) and
    // must not depend on the working directory: the binary resolves it once, at start.
    if !config.data_dir.is_absolute() {
        return Err(data_err(
            "it must be an absolute path (resolve it against the working directory first)".into(),
        ));
    }
    private_dir(&config.data_dir).map_err(data_err)?;
    // One server per data directory: two would share the spool, the store and the keys.
    let lock = {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(config.data_dir.join("lock"))
            .map_err(|e| data_err(format!("creating its lock file: {e}")))?
    };
    // A forking process (starting a worker) holds a copy of the lock's descriptor until its
    // child calls exec: a restart at that instant would find the lock taken. Tried for two
    // seconds before the directory is taken to be another server's.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let mut attempt = lock.try_lock();
    while matches!(attempt, Err(std::fs::TryLockError::WouldBlock))
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
        attempt = lock.try_lock();
    }
    match attempt {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(data_err(
                "another insights process is using it; stop that one, or choose another --data-dir"
                    .into(),
            ));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(data_err(format!("locking it: {e}")));
        }
    }
    let store = Arc::new(
        Store::open(&config.data_dir.join("insights.sqlite"))
            .map_err(|e| data_err(e.to_string()))?,
    );
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;

    // What the administrator configured, apart from the payloads: today the same database,
    // reached through the seam every cache of configuration reads through.
    let config_store: Arc<dyn ConfigStore> = store.clone();
    let secrets = insights_store::SecretBox::load_or_create(&config.data_dir)
        .map_err(|e| data_err(e.to_string()))?;
    let connection = Arc::new(ConnectionStore::new(config_store.clone(), secrets));
    if let Some(request) = config.kafka_connection.clone() {
        let (settings, warnings) = request.validate(None).map_err(|errors| {
            StartError::Config(format!(
                "the [kafka] connection in the config file is invalid: {}",
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        })?;
        for w in warnings {
            tracing::warn!("[kafka] in the config file: {w}");
        }
        connection
            .save(&settings)
            .map_err(|e| data_err(e.to_string()))?;
    }
    let datadog_settings = Arc::new(DatadogStore::new(
        config_store.clone(),
        insights_store::SecretBox::load_or_create(&config.data_dir)
            .map_err(|e| data_err(e.to_string()))?,
    ));
    if let Some(request) = config.datadog_settings.clone() {
        let settings = request.validate(None).map_err(|errors| {
            StartError::Config(format!(
                "the [datadog] settings in the config file are invalid: {}",
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        })?;
        datadog_settings
            .save(&settings)
            .map_err(|e| data_err(e.to_string()))?;
    }
    let background = BackgroundRuntime::new(
        "insights-background",
        config.background_nice,
        config.background_idle,
    )
    .map_err(|e| StartError::Config(format!("cannot start the background runtime: {e}")))?;
    let low = config.background_nice;
    // Under SCHED_IDLE while delivery keeps up and Kafka makes progress: librdkafka's threads,
    // started from the producer thread, with it.
    let kafka_lane = Lane::kafka(low, config.background_idle);
    let kafka_config = KafkaConfig {
        threads: kafka_lane.hooks(),
        ..config.kafka.clone()
    };
    let kafka = Arc::new(
        on_background_thread(low, || KafkaDelivery::start(kafka_config)).map_err(|e| {
            data_err(format!(
                "opening the Kafka spool {}: {e}",
                config.kafka.spool_dir.display()
            ))
        })?,
    );
    let kafka_lane = kafka_lane.with_lag(kafka.lag(), KAFKA_MAX_LAG);
    match connection.load() {
        Ok(settings) => kafka.connect(settings),
        Err(e) => {
            tracing::error!(error = %e, "the stored Kafka connection cannot be used; set it again")
        }
    }

    // Its own thread, spool and queue: a slow intake delays neither Kafka, the store nor the
    // series; and a lower priority still (SCHED_IDLE while it keeps up), so that it does not
    // take their CPU either.
    let datadog_lane = Lane::datadog(low, config.background_idle);
    let datadog = Arc::new(
        DatadogDelivery::start(DatadogConfig {
            threads: datadog_lane.hooks(),
            ..config.datadog.clone()
        })
        .map_err(|e| {
            data_err(format!(
                "opening the Datadog spool {}: {e}",
                config.datadog.spool_dir.display()
            ))
        })?,
    );
    let datadog_lane = datadog_lane.with_lag(datadog.lag(), DATADOG_MAX_LAG);
    match datadog_settings.load() {
        Ok(settings) => datadog.configure(settings),
        Err(e) => {
            tracing::error!(error = %e, "the stored Datadog settings cannot be used; set them again")
        }
    }

    let (handoff, handoff_rx) = Handoff::channel(config.handoff_capacity);
    // Datadog's threads follow their own queue, not delivery's backlog: a flood of payloads
    // that puts the hand-off or Kafka behind must not raise them to take CPU from Kafka.
    let follower = follow_each(vec![
        (handoff.backlog(), vec![background.lane(), kafka_lane]),
        (datadog.lane_backlog(), vec![datadog_lane]),
    ]);
    let series = Arc::new(
        on_background_thread(low, || {
            insights_series::SeriesStore::open(&config.data_dir, config.series.clone())
        })
        .map_err(|e| data_err(format!("opening the series store: {e}")))?,
    );
    let mut sinks: Vec<Arc<dyn PayloadSink>> = vec![Arc::new(StoreSink::new(
        store.clone(),
        config.payload_retention,
    ))];
    if config.series_enabled {
        sinks.push(Arc::new(SeriesSink::new(series.clone())));
    }
    sinks.push(kafka.clone());
    sinks.push(datadog.clone());
    let delivery_shutdown = CancellationToken::new();
    let dispatcher = background.handle().spawn(
        Dispatcher::new(handoff_rx, sinks, config.dispatcher.clone())
            .run(delivery_shutdown.clone()),
    );

    let catalog = Arc::new(Catalog::load(
        config_store.clone(),
        config.data_dir.join("versions"),
    )?);
    let mut runtime_config = RuntimeConfig::new(config.data_dir.clone(), worker_api_base(addr));
    runtime_config.worker_idle_timeout = config.worker_idle_timeout;
    runtime_config.max_waiting_calls = config.max_waiting_calls;
    let runtime = Runtime::new(catalog, handoff.clone(), runtime_config)?;
    let keys = Arc::new(ApiKeys::load(config_store).map_err(|e| data_err(e.to_string()))?);
    let alerts = insights_alerts::Alerts::open(
        &config.data_dir,
        config.alerts.clone(),
        series.clone(),
        Arc::new(PublishedVersions(runtime.clone())),
        Arc::new(
            insights_store::SecretBox::load_or_create(&config.data_dir)
                .map_err(|e| data_err(e.to_string()))?,
        ),
        insights_series::Clock::system(),
    )
    .map_err(|e| data_err(format!("opening the alerts database: {e}")))?;
    let alerting = BackgroundRuntime::new("insights-alerting", config.background_nice, false)
        .map_err(|e| StartError::Config(format!("cannot start the alerting runtime: {e}")))?;
    let alerts_tasks = {
        let _alerting = alerting.handle().enter();
        alerts.start()
    };
    let state = AppState::new(Services {
        runtime,
        store,
        keys,
        admin: Arc::new(AdminToken::new(&config.admin_token)),
        handoff,
        kafka,
        connection,
        datadog,
        datadog_settings,
        sessions: Arc::new(Sessions::new(config.panel.clone())),
        void_calls: Arc::new(tokio::sync::Semaphore::new(config.max_void_calls)),
        max_body_bytes: config.max_body_bytes,
        series,
        alerts,
    });

    let http_shutdown = CancellationToken::new();
    let http = tokio::spawn(insights_server::serve(
        listener,
        state.clone(),
        config.connections.clone(),
        http_shutdown.clone(),
    ));
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "serving");
    Ok(RunningServer {
        addr,
        state,
        http_shutdown,
        delivery_shutdown,
        http,
        dispatcher,
        alerts_tasks,
        background,
        _follower: follower,
        alerting,
        _data_dir_lock: lock,
    })
}

/// The series every check expects: the published versions with Insights on.
struct PublishedVersions(Arc<Runtime>);

impl insights_alerts::Catalog for PublishedVersions {
    fn expected(&self) -> Vec<insights_alerts::ExpectedSeries> {
        let mut out = Vec::new();
        for a in self.0.catalog().algorithms() {
            for v in a.versions.iter().filter(|v| v.settings.insights_enabled) {
                let since = time::OffsetDateTime::parse(
                    &v.created_at,
                    &time::format_description::well_known::Rfc3339,
                )
                .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
                out.push(insights_alerts::ExpectedSeries {
                    algorithm: insights_series::AlgorithmPath::new(&a.owner, &a.name),
                    version: v.version_info.semantic_version.clone(),
                    since,
                });
            }
        }
        out
    }
}

/// The data directory holds payloads, key hashes and the sealing key: it is created 0700, and
/// an existing one readable by others is made 0700 (its owner's access is unchanged, so an
/// existing directory keeps working; what is inside becomes unreachable to anyone else).
fn private_dir(dir: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| e.to_string())?;
    let mode = std::fs::metadata(dir)
        .map_err(|e| e.to_string())?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o700))
            .map_err(|e| format!("making it private (mode 0700): {e}"))?;
        tracing::info!(dir = %dir.display(), was = format!("{:o}", mode & 0o777), "the data directory is now readable by its owner only (0700)");
    }
    Ok(())
}

/// How workers reach this server: the bound address, with an unspecified IP (0.0.0.0, ::)
/// replaced by loopback.
fn worker_api_base(addr: SocketAddr) -> String {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    format!("http://{addr}")
}

impl RunningServer {
    pub fn url(&self) -> String {
        worker_api_base(self.addr)
    }

    /// Stops serving: HTTP (in-flight requests finish), then the workers, then delivery, which
    /// writes every payload already handed over.
    pub async fn shutdown(self) {
        self.http_shutdown.cancel();
        // Checks stop first (no new notifications); what the outbox holds stays in the
        // alerts database for the next start.
        self.alerts_tasks.stop().await;
        match tokio::time::timeout(Duration::from_secs(30), self.http).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "HTTP server ended with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server task failed"),
            Err(_) => tracing::warn!("HTTP connections still open after 30 s; closing them"),
        }
        self.state.runtime.shutdown(Duration::from_secs(30)).await;
        self.delivery_shutdown.cancel();
        if let Err(e) = self.dispatcher.await {
            tracing::warn!(error = %e, "delivery task failed");
        }
        // Every payload the dispatcher wrote is in the series store's log; a checkpoint now
        // means the next start has no log to replay (and a power loss nothing to lose).
        if let Err(e) = self.state.series.checkpoint() {
            tracing::warn!(error = %e, "checkpointing the series store failed; the next start replays its log");
        }
        // What Kafka has not acknowledged yet stays in the spool for the next start.
        self.state.kafka.stop().await;
        // Likewise what Datadog has not accepted.
        self.state.datadog.stop().await;
        // Everything that ran on them has stopped.
        drop(self.alerting);
        drop(self.background);
        tracing::info!("stopped");
    }
}
