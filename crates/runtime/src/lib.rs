//! The model runtime: runs algorithm versions in pools of warm worker processes that speak the
//! ADK protocol, tracks what each execution reports, and turns every execution of an
//! Insights-enabled version into a [`Payload`] handed to delivery.
//!
//! - [`catalog`]: algorithms, published versions (source snapshots) and their settings;
//! - `worker`: one process and the protocol it speaks (private `/tmp/algoout` per worker);
//! - [`Runtime`]: pools per version, calls, metric reports, payloads, shutdown.
//!
//! Architecture invariant: a call's execution outlives its caller: it runs in the caller's task
//! while the caller waits and moves into a task of its own when the caller goes away (an HTTP
//! client that disconnects), so that a worker is never left half-way through a request and the
//! execution still produces its payload.

pub mod catalog;
mod isolation;
mod worker;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use insights_delivery::Handoff;
use insights_payload::report::{self, ReportError as BodyError};
use insights_payload::{AlgorithmRef, ExecutionStatus, MetricRejection, Payload, RequestId};
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, timeout_at};
use tokio_util::task::TaskTracker;

pub use catalog::Catalog;
pub use worker::{Answer, Failure, RawResult};
use worker::{Worker, WorkerShared, WorkerSpec};

/// What went wrong handling a request, before or around running the algorithm.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{field}: {message}")]
    InvalidField { field: String, message: String },
    #[error("algorithm {0} does not exist")]
    AlgorithmNotFound(String),
    #[error("version {0} does not exist")]
    VersionNotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("the server is shutting down")]
    ShuttingDown,
    /// Too many calls already wait for a worker of this version.
    #[error("{0}")]
    Busy(String),
    #[error("storage failed: {0}")]
    Store(#[from] insights_store::StoreError),
    #[error("{0}")]
    Io(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl RuntimeError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::InvalidField {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// Tunables of the runtime.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub data_dir: PathBuf,
    /// The server's base URL as workers reach it (e.g. `http://127.0.0.1:8080`).
    pub api_base: String,
    /// The largest `timeout` a call may ask for.
    pub max_timeout: Duration,
    /// The largest answer line a worker may write.
    pub max_answer_bytes: usize,
    /// The most log captured per call for `stdout=true`.
    pub max_log_bytes_per_call: usize,
    /// Calls waiting for a worker of one version at most; beyond, a call is refused at once
    /// ([`RuntimeError::Busy`]) instead of holding its input in a queue that only grows.
    pub max_waiting_calls: usize,
    /// A warm worker unused this long is stopped (a later call starts a new one); `None` keeps
    /// workers warm for as long as the server runs. Bounds the processes kept for versions that
    /// are no longer called.
    pub worker_idle_timeout: Option<Duration>,
}

impl RuntimeConfig {
    pub fn new(data_dir: PathBuf, api_base: String) -> Self {
        Self {
            data_dir,
            api_base,
            max_timeout: Duration::from_secs(3000),
            max_answer_bytes: 64 << 20,
            max_log_bytes_per_call: 1 << 20,
            worker_idle_timeout: Some(Duration::from_secs(30 * 60)),
            max_waiting_calls: 1000,
        }
    }
}

/// An algorithm's input, by the request's content type.
#[derive(Debug, Clone)]
pub enum Input {
    /// As the caller sent it: checked, never re-encoded (a large integer stays exact).
    Json(Box<serde_json::value::RawValue>),
    Text(String),
    Binary(Vec<u8>),
}

impl Input {
    /// The stdin line the ADK expects.
    fn to_request_line(&self) -> String {
        let (content_type, data) = match self {
            // One line: a raw line break in valid JSON can only be whitespace between tokens
            // (strings cannot hold one), so it becomes a space.
            Input::Json(raw) => {
                let data = raw.get().replace(['\n', '\r'], " ");
                return format!(r#"{{"content_type":"json","data":{data}}}"#);
            }
            Input::Text(s) => ("text", Value::String(s.clone())),
            Input::Binary(b) => (
                "binary",
                Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
            ),
        };
        serde_json::json!({"content_type": content_type, "data": data}).to_string()
    }
}

/// One call of `/v1/algo`.
#[derive(Debug, Clone)]
pub struct CallRequest {
    /// Chosen by the caller, so that it can be answered before the execution ends (`output=void`).
    pub request_id: RequestId,
    pub owner: String,
    pub name: String,
    pub version: Option<String>,
    pub input: Input,
    pub timeout: Duration,
    pub capture_stdout: bool,
}

/// An execution that did not produce a result, in the API's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct AlgoError {
    pub error_type: String,
    pub message: String,
    pub stacktrace: Option<String>,
}

/// A completed call.
#[derive(Debug, Clone)]
pub struct CallResponse {
    pub request_id: RequestId,
    pub version: String,
    /// `(result, content_type)`, or why there is none.
    pub outcome: Result<(RawResult, String), AlgoError>,
    pub duration: Duration,
    /// What the algorithm printed during the call, when asked for.
    pub stdout: Option<String>,
}

/// Why a metrics report was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("this insights endpoint was not issued to a running worker")]
    UnknownWorker,
    #[error("{0}")]
    Malformed(#[from] BodyError),
    #[error(
        "the execution this report belongs to has already finished; report insights before the algorithm returns its result"
    )]
    ExecutionFinished,
    /// Some items were refused; every other item was kept.
    #[error("{}", .0.iter().map(|r| r.message.as_str()).collect::<Vec<_>>().join("; "))]
    Rejected(Vec<MetricRejection>),
}

/// An execution, run in the caller's task while the caller waits for it, and moved into a task
/// of its own (tracked by the runtime's [`TaskTracker`], so that shutdown waits for it) if the
/// caller goes away first: a disconnecting client never leaves a worker half-way, and the
/// execution still produces its payload. Spawning every execution up front kept that invariant
/// too, at the price of a task and a wake-up per call; detaching on drop keeps it for free in
/// the common case, where the caller waits.
struct Detached<F: Future + Send + 'static>
where
    F::Output: Send,
{
    execution: Option<std::pin::Pin<Box<F>>>,
    tasks: TaskTracker,
    /// Counts the execution among the tracker's tasks while it runs here, so that shutdown
    /// waits for it as for a detached one.
    _running: tokio_util::task::task_tracker::TaskTrackerToken,
}

impl<F: Future + Send + 'static> Detached<F>
where
    F::Output: Send,
{
    fn new(tasks: &TaskTracker, execution: F) -> Self {
        Self {
            execution: Some(Box::pin(execution)),
            tasks: tasks.clone(),
            _running: tasks.token(),
        }
    }
}

impl<F: Future + Send + 'static> Future for Detached<F>
where
    F::Output: Send,
{
    /// The execution's output, or what its panic said (a panic ends this call, not the server).
    type Output = Result<F::Output, String>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let execution = self
            .execution
            .as_mut()
            .expect("a Detached future is not polled after it is ready");
        let polled =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| execution.as_mut().poll(cx)));
        match polled {
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Ok(std::task::Poll::Ready(output)) => {
                self.execution = None;
                std::task::Poll::Ready(Ok(output))
            }
            Err(panic) => {
                self.execution = None;
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".to_string());
                std::task::Poll::Ready(Err(message))
            }
        }
    }
}

impl<F: Future + Send + 'static> Drop for Detached<F>
where
    F::Output: Send,
{
    fn drop(&mut self) {
        let Some(execution) = self.execution.take() else {
            return;
        };
        // Tracked before `_running` goes, so the tracker never sees zero tasks in between.
        // Dropped outside a runtime (the runtime itself is going away): nothing can run it.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(self.tasks.track_future(execution));
            metrics::counter!("insights_calls_detached_total").increment(1);
        }
    }
}

type PoolKey = (String, String, String);

/// A place in a pool's queue of calls waiting for a worker, given up when dropped.
struct Waiting(Arc<Pool>);

impl Waiting {
    /// A place, if fewer than `max` calls wait.
    fn join(pool: &Arc<Pool>, max: usize) -> Option<Waiting> {
        let before = pool.waiting.fetch_add(1, Ordering::AcqRel);
        if before >= max {
            pool.waiting.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        pool.metrics.waiting.increment(1.0);
        Some(Waiting(pool.clone()))
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.waiting.decrement(1.0);
    }
}

/// A call with less time left than this when a worker frees up is timed out without running.
const MIN_RUN_TIME: Duration = Duration::from_millis(5);

/// What a version has done since the process started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallCounts {
    pub calls: u64,
    /// Insights payloads emitted (handed to delivery).
    pub payloads: u64,
}

struct Pool {
    spec: Arc<WorkerSpec>,
    /// Calls waiting for a permit (see [`Waiting`]).
    waiting: AtomicUsize,
    permits: Arc<Semaphore>,
    /// Warm workers waiting for a call, each with when it became idle; the most recently used
    /// is taken first, so the ones left at the bottom are those to stop when idle too long.
    idle: Mutex<Vec<(Worker, Instant)>>,
    metrics: PoolMetrics,
}

/// Handles of the metrics a pool records on every call, registered once: looking a labelled
/// metric up by its labels on every call would cost more than the rest of the bookkeeping.
struct PoolMetrics {
    /// Calls and payloads since the process started, for the admin panel.
    calls: AtomicU64,
    payloads: AtomicU64,
    busy: metrics::Gauge,
    duration: metrics::Histogram,
    successes: metrics::Counter,
    emitted: metrics::Counter,
    restarts: metrics::Counter,
    stopped_idle: metrics::Counter,
    waiting: metrics::Gauge,
}

impl PoolMetrics {
    fn new(algorithm: &AlgorithmRef) -> Self {
        let labels = [
            ("algorithm", algorithm.path()),
            ("version", algorithm.version.clone()),
        ];
        let outcome = [
            ("algorithm", algorithm.path()),
            ("version", algorithm.version.clone()),
            ("outcome", "success".to_string()),
        ];
        Self {
            calls: AtomicU64::new(0),
            payloads: AtomicU64::new(0),
            busy: metrics::gauge!("insights_pool_busy_workers", &labels),
            duration: metrics::histogram!("insights_call_duration_seconds", &labels),
            successes: metrics::counter!("insights_calls_total", &outcome),
            emitted: metrics::counter!("insights_payloads_emitted_total", &labels),
            restarts: metrics::counter!("insights_worker_restarts_total", &labels),
            stopped_idle: metrics::counter!("insights_workers_stopped_idle_total", &labels),
            waiting: metrics::gauge!("insights_calls_waiting", &labels),
        }
    }
}

impl Pool {
    /// The most recently used live idle worker, and the dead ones found on the way (whose
    /// report tokens the caller forgets).
    fn take_idle(&self) -> (Option<Worker>, Vec<Worker>) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let mut dead = Vec::new();
        while let Some((w, _)) = idle.pop() {
            if !w.shared.is_dead() {
                return (Some(w), dead);
            }
            dead.push(w);
        }
        (None, dead)
    }

    fn put_idle(&self, w: Worker) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((w, Instant::now()));
    }

    /// Takes out the workers idle for `timeout` or more (dropping them stops them).
    fn take_expired(&self, timeout: Duration) -> Vec<Worker> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let (expired, kept): (Vec<_>, Vec<_>) = idle
            .drain(..)
            .partition(|(_, since)| since.elapsed() >= timeout);
        *idle = kept;
        expired.into_iter().map(|(w, _)| w).collect()
    }
}

/// The runtime: catalog, pools, workers in flight.
pub struct Runtime {
    catalog: Arc<Catalog>,
    config: RuntimeConfig,
    handoff: Handoff,
    pools: Mutex<HashMap<PoolKey, Arc<Pool>>>,
    /// Report tokens of live workers.
    workers: Mutex<HashMap<String, Arc<WorkerShared>>>,
    next_worker: AtomicU64,
    shutting_down: AtomicBool,
    tasks: TaskTracker,
}

impl Runtime {
    pub fn new(
        catalog: Arc<Catalog>,
        handoff: Handoff,
        config: RuntimeConfig,
    ) -> Result<Arc<Self>, RuntimeError> {
        // Workers change directory before their FIFO is mounted: every path handed to one
        // must be absolute, and they all start from here.
        if !config.data_dir.is_absolute() {
            return Err(RuntimeError::Io(format!(
                "the data directory {} must be an absolute path",
                config.data_dir.display()
            )));
        }
        let run_root = config.data_dir.join("run");
        // Left by an earlier process: its workers are gone.
        let _ = std::fs::remove_dir_all(&run_root);
        std::fs::create_dir_all(&run_root)
            .map_err(|e| RuntimeError::Io(format!("creating {}: {e}", run_root.display())))?;
        let runtime = Arc::new(Self {
            catalog,
            config,
            handoff,
            pools: Mutex::new(HashMap::new()),
            workers: Mutex::new(HashMap::new()),
            next_worker: AtomicU64::new(1),
            shutting_down: AtomicBool::new(false),
            tasks: TaskTracker::new(),
        });
        if let (Some(timeout), Ok(tokio)) = (
            runtime.config.worker_idle_timeout,
            tokio::runtime::Handle::try_current(),
        ) {
            tokio.spawn(stop_idle_workers(Arc::downgrade(&runtime), timeout));
        }
        Ok(runtime)
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// Calls and payloads per version (`owner`, `name`, `version`) since the process started.
    /// A version not called yet is absent.
    pub fn call_counts(&self) -> HashMap<(String, String, String), CallCounts> {
        self.pools
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(key, pool)| {
                let counts = CallCounts {
                    calls: pool.metrics.calls.load(Ordering::Relaxed),
                    payloads: pool.metrics.payloads.load(Ordering::Relaxed),
                };
                (key.clone(), counts)
            })
            .collect()
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// Runs one call to completion. Dropping this future does not cancel the execution: it
    /// moves into a task of its own and runs to its end (see [`Detached`]).
    pub async fn call(
        self: &Arc<Self>,
        request: CallRequest,
    ) -> Result<CallResponse, RuntimeError> {
        if self.shutting_down.load(Ordering::Acquire) {
            return Err(RuntimeError::ShuttingDown);
        }
        if request.timeout.is_zero() || request.timeout > self.config.max_timeout {
            return Err(RuntimeError::invalid(
                "timeout",
                format!(
                    "must be between 1 and {} seconds (got {})",
                    self.config.max_timeout.as_secs(),
                    request.timeout.as_secs_f64()
                ),
            ));
        }
        let resolved =
            self.catalog
                .resolve(&request.owner, &request.name, request.version.as_deref())?;
        let pool = self.pool(&resolved);
        let waiting = Waiting::join(&pool, self.config.max_waiting_calls).ok_or_else(|| {
            metrics::counter!("insights_calls_refused_total", "algorithm" => pool.spec.algorithm.path(), "version" => pool.spec.algorithm.version.clone(), "reason" => "queue_full")
                .increment(1);
            RuntimeError::Busy(format!(
                "{} calls already wait for a worker of {}/{}; retry later (the limit is max_waiting_calls)",
                self.config.max_waiting_calls,
                pool.spec.algorithm.path(),
                pool.spec.algorithm.version
            ))
        })?;
        let this = self.clone();
        Detached::new(&self.tasks, this.execute(pool, resolved, request, waiting))
            .await
            .map_err(|panic| RuntimeError::Internal(format!("the execution failed: {panic}")))
    }

    async fn execute(
        self: Arc<Self>,
        pool: Arc<Pool>,
        resolved: catalog::ResolvedVersion,
        request: CallRequest,
        waiting: Waiting,
    ) -> CallResponse {
        let started_at = time::OffsetDateTime::now_utc();
        let call_started = Instant::now();
        let deadline = call_started + request.timeout;
        let version = resolved.version.to_string();
        let algorithm = AlgorithmRef {
            owner: resolved.owner.clone(),
            name: resolved.name.clone(),
            version: version.clone(),
        };
        let request_id = request.request_id.clone();

        let permit: Option<OwnedSemaphorePermit> =
            timeout_at(deadline, pool.permits.clone().acquire_owned())
                .await
                .ok()
                .and_then(Result::ok);
        drop(waiting);
        let (result, execution, session_id) = match permit {
            None => (
                Err(Failure::Timeout {
                    while_starting: true,
                }),
                None,
                None,
            ),
            // The permit came at (or just before) the deadline: the caller has given up. Sending
            // the call would start an execution whose timeout then stops a healthy worker.
            Some(_) if deadline.saturating_duration_since(Instant::now()) < MIN_RUN_TIME => (
                Err(Failure::Timeout {
                    while_starting: true,
                }),
                None,
                None,
            ),
            Some(permit) => {
                let (idle, dead) = pool.take_idle();
                for w in &dead {
                    self.forget(w);
                }
                let worker = match idle {
                    Some(w) => w,
                    None => self.spawn_worker(&pool.spec),
                };
                pool.metrics.busy.increment(1.0);
                let outcome = worker
                    .run(
                        request_id.clone(),
                        request.input.to_request_line(),
                        deadline,
                    )
                    .await;
                pool.metrics.busy.decrement(1.0);
                let session_id = worker.shared.session_id.clone();
                match &outcome.result {
                    Ok(_)
                    | Err(Failure::Timeout {
                        while_starting: true,
                    }) if !worker.shared.is_dead() => pool.put_idle(worker),
                    Err(Failure::StartFailed { .. }) => {
                        // No eager replacement: it would most likely fail the same way. The
                        // next call starts a new worker and reports the error again.
                        self.forget(&worker);
                    }
                    _ => {
                        self.forget(&worker);
                        if !self.shutting_down.load(Ordering::Acquire) {
                            pool.metrics.restarts.increment(1);
                            pool.put_idle(self.spawn_worker(&pool.spec));
                        }
                    }
                }
                drop(permit);
                (outcome.result, outcome.execution, Some(session_id))
            }
        };

        // A failed call lasted until it failed (a timeout: the whole timeout), not zero.
        let duration = result
            .as_ref()
            .map_or_else(|_| call_started.elapsed(), |(_, d)| *d);
        let outcome = match result {
            Ok((
                Answer::Result {
                    result,
                    content_type,
                },
                _,
            )) => Ok((result, content_type)),
            Ok((
                Answer::Error {
                    message,
                    stacktrace,
                    error_type,
                },
                _,
            )) => Err(AlgoError {
                error_type,
                message,
                stacktrace,
            }),
            Err(f) => Err(failure_to_error(&f, request.timeout)),
        };
        pool.metrics.calls.fetch_add(1, Ordering::Relaxed);
        match &outcome {
            Ok(_) => pool.metrics.successes.increment(1),
            Err(e) => metrics::counter!("insights_calls_total", "algorithm" => algorithm.path(), "version" => version.clone(), "outcome" => outcome_label(&e.error_type))
                .increment(1),
        }
        pool.metrics.duration.record(duration.as_secs_f64());

        let (metrics_set, stdout) = match execution {
            Some(c) => {
                let mut log = c.log;
                if c.log_truncated {
                    log.push_str(&format!(
                        "[insights: output beyond {} bytes was left out]\n",
                        self.config.max_log_bytes_per_call
                    ));
                }
                (c.metrics, log)
            }
            None => Default::default(),
        };
        if resolved.settings.insights_enabled {
            let session_id = session_id.unwrap_or_default();
            pool.metrics.emitted.increment(1);
            pool.metrics.payloads.fetch_add(1, Ordering::Relaxed);
            self.handoff.offer(Payload {
                algorithm,
                session_id,
                request_id: request_id.clone(),
                duration_milliseconds: duration.as_millis() as u64,
                time: started_at,
                metrics: metrics_set,
                failed: outcome.is_err(),
                status: resolved
                    .settings
                    .insights_include_status
                    .then(|| match &outcome {
                        Ok(_) => ExecutionStatus::Success,
                        Err(e) => ExecutionStatus::Error {
                            error_type: e.error_type.clone(),
                        },
                    }),
            });
        }
        CallResponse {
            request_id,
            version,
            outcome,
            duration,
            stdout: request.capture_stdout.then_some(stdout),
        }
    }

    /// Accepts a metrics report from the worker holding `token`, for its execution in flight.
    /// Whether `token` is a live worker's: checked before a report's body is read, so that
    /// strangers cannot make the server buffer bodies.
    pub fn knows_worker(&self, token: &str) -> bool {
        self.workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .is_some_and(|w| !w.is_dead())
    }

    pub fn report(&self, token: &str, body: &[u8]) -> Result<usize, ReportError> {
        let worker = self
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned()
            .filter(|w| !w.is_dead());
        let Some(worker) = worker else {
            metrics::counter!("insights_reports_rejected_total", "reason" => "unknown_worker")
                .increment(1);
            return Err(ReportError::UnknownWorker);
        };
        let items = report::parse(body).inspect_err(|_| {
            metrics::counter!("insights_reports_rejected_total", "reason" => "malformed")
                .increment(1);
        })?;
        let result = worker.with_current(|current| {
            let mut accepted = 0;
            let mut rejected = Vec::new();
            for (key, value) in items {
                match value.and_then(|v| current.metrics.insert(&key, v)) {
                    Ok(()) => accepted += 1,
                    Err(r) => rejected.push(r),
                }
            }
            for r in &rejected {
                metrics::counter!("insights_reports_rejected_total", "reason" => r.reason.label())
                    .increment(1);
                tracing::warn!(request_id = %current.request_id, key = %r.key, "insight rejected: {}", r.message);
                // Written to the execution's log too, where the algorithm's author looks.
                let line = format!("[insights] rejected: {}\n", r.message);
                if current.log.len() + line.len() <= self.config.max_log_bytes_per_call {
                    current.log.push_str(&line);
                }
            }
            (accepted, rejected)
        });
        match result {
            None => {
                metrics::counter!("insights_reports_rejected_total", "reason" => "execution_finished")
                    .increment(1);
                Err(ReportError::ExecutionFinished)
            }
            Some((_, rejected)) if !rejected.is_empty() => Err(ReportError::Rejected(rejected)),
            Some((accepted, _)) => Ok(accepted),
        }
    }

    /// Stops taking calls, lets calls in flight finish, and stops every worker.
    pub async fn shutdown(&self, grace: Duration) {
        self.shutting_down.store(true, Ordering::Release);
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("calls still running after the shutdown grace period");
        }
        // Dropping the pools drops the idle workers' handles: each closes its worker's stdin
        // and waits for it to exit (killing it after 5 s).
        let pools: Vec<_> = self
            .pools
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, p)| p)
            .collect();
        let shared: Vec<Arc<WorkerShared>> = pools
            .iter()
            .flat_map(|p| {
                p.idle
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .map(|(w, _)| w.shared.clone())
                    .collect::<Vec<_>>()
            })
            .collect();
        drop(pools);
        let all_stopped = async {
            while shared.iter().any(|w| !w.is_dead()) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(6), all_stopped).await;
    }

    fn pool(&self, v: &catalog::ResolvedVersion) -> Arc<Pool> {
        let key = (v.owner.clone(), v.name.clone(), v.version.to_string());
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools
            .entry(key)
            .or_insert_with(|| {
                let size = v.algorithm_settings.pool_size as usize;
                metrics::gauge!("insights_pool_size", "algorithm" => format!("{}/{}", v.owner, v.name), "version" => v.version.to_string())
                    .set(size as f64);
                let algorithm = AlgorithmRef {
                    owner: v.owner.clone(),
                    name: v.name.clone(),
                    version: v.version.to_string(),
                };
                Arc::new(Pool {
                    waiting: AtomicUsize::new(0),
                    metrics: PoolMetrics::new(&algorithm),
                    spec: Arc::new(WorkerSpec {
                        algorithm,
                        dir: v.snapshot.clone(),
                        command: v.command.clone(),
                        api_base: self.config.api_base.clone(),
                        run_root: self.config.data_dir.join("run"),
                        startup_timeout: Duration::from_secs(
                            v.algorithm_settings.startup_timeout_seconds,
                        ),
                        max_answer_bytes: self.config.max_answer_bytes,
                        max_log_bytes_per_call: self.config.max_log_bytes_per_call,
                    }),
                    permits: Arc::new(Semaphore::new(size)),
                    idle: Mutex::new(Vec::with_capacity(size)),
                })
            })
            .clone()
    }

    fn spawn_worker(&self, spec: &Arc<WorkerSpec>) -> Worker {
        let id = self.next_worker.fetch_add(1, Ordering::Relaxed);
        let worker = Worker::spawn(spec.clone(), id, random_token());
        self.workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(worker.shared.token.clone(), worker.shared.clone());
        worker
    }

    fn forget(&self, worker: &Worker) {
        self.workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&worker.shared.token);
    }
}

/// Stops the workers idle for `timeout` or more, looking a few times per timeout (at least every
/// 30 s), for as long as the runtime lives. A pool keeps no minimum: its next call starts a
/// worker, as the first call did.
async fn stop_idle_workers(runtime: std::sync::Weak<Runtime>, timeout: Duration) {
    let every = (timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let Some(runtime) = runtime.upgrade() else {
            return;
        };
        if runtime.shutting_down.load(Ordering::Acquire) {
            return;
        }
        let pools: Vec<Arc<Pool>> = runtime
            .pools
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for pool in pools {
            let expired = pool.take_expired(timeout);
            if expired.is_empty() {
                continue;
            }
            pool.metrics.stopped_idle.increment(expired.len() as u64);
            tracing::info!(
                algorithm = %pool.spec.algorithm.path(),
                version = %pool.spec.algorithm.version,
                workers = expired.len(),
                idle_seconds = timeout.as_secs(),
                "stopped idle workers"
            );
            for worker in &expired {
                runtime.forget(worker);
            }
            // Dropping a worker closes its stdin: it exits, or is killed after 5 s.
            drop(expired);
        }
    }
}

/// The `outcome` label of a failed call. `error_type` may come from the algorithm, which can
/// name it anything: only the runtime's own types and Algorithmia's usual ones are labels, the
/// rest count as `AlgorithmError`, so the number of series stays bounded.
fn outcome_label(error_type: &str) -> &'static str {
    match error_type {
        "SystemError" => "SystemError",
        "TimeoutError" => "TimeoutError",
        "InputError" => "InputError",
        "UnsupportedError" => "UnsupportedError",
        _ => "AlgorithmError",
    }
}

fn failure_to_error(f: &Failure, timeout: Duration) -> AlgoError {
    let (error_type, message) = match f {
        Failure::Timeout {
            while_starting: false,
        } => (
            "TimeoutError",
            format!(
                "the algorithm did not answer within the timeout of {} s; its worker was stopped and replaced",
                timeout.as_secs()
            ),
        ),
        Failure::Timeout {
            while_starting: true,
        } => (
            "TimeoutError",
            format!(
                "no worker became available within the timeout of {} s (all busy, or still loading)",
                timeout.as_secs()
            ),
        ),
        Failure::Crashed { detail } => ("SystemError", format!("the algorithm crashed: {detail}")),
        Failure::BadOutput { detail } => (
            "SystemError",
            format!("the algorithm broke the ADK protocol: {detail}"),
        ),
        Failure::StartFailed { detail } => (
            "LoadingError",
            format!("the algorithm failed to load: {detail}"),
        ),
        Failure::ShuttingDown => ("SystemError", "the server is shutting down".to_string()),
    };
    AlgoError {
        error_type: error_type.to_string(),
        message,
        stacktrace: None,
    }
}

/// 32 random bytes, hex: the per-worker credential for its insights endpoint.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source works");
    hex::encode(bytes)
}
