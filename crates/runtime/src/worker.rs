//! One warm worker process speaking the ADK protocol.
//!
//! A worker is an actor: one task owns the process, its stdin, its log (stdout and stderr merged
//! into one pipe, so their lines keep their order) and its answer FIFO, and takes one job at a
//! time from a channel. The protocol, as `algorithmia-adk` speaks it:
//!
//! 1. the process loads and prints `PIPE_INIT_COMPLETE` on stdout;
//! 2. each request is one JSON line on stdin: `{"content_type": ..., "data": ...}`;
//! 3. each answer is one JSON line written to `/tmp/algoout` (its private FIFO):
//!    `{"result": ..., "metadata": {"content_type": ...}}` or `{"error": {...}}`;
//! 4. everything else it prints is its log.
//!
//! Whatever breaks that protocol — exiting, not answering before the deadline, writing a line
//! that is not an answer, or writing when nobody asked — ends the worker: its process group is
//! killed and the job in flight gets a [`Failure`] that says what happened.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use insights_payload::{AlgorithmRef, MetricSet, RequestId, SessionId};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until, timeout, timeout_at};
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
use tracing::Instrument;

use crate::isolation;

/// Everything needed to start workers of one version.
#[derive(Debug, Clone)]
pub(crate) struct WorkerSpec {
    pub(crate) algorithm: AlgorithmRef,
    /// The version's snapshot: the worker's working directory.
    pub(crate) dir: PathBuf,
    pub(crate) command: Vec<String>,
    /// Base URL of this server; each worker gets `<api_base>/worker/<token>` as `ALGORITHMIA_API`.
    pub(crate) api_base: String,
    /// Where per-worker directories (with the worker's answer FIFO) are made.
    pub(crate) run_root: PathBuf,
    pub(crate) startup_timeout: Duration,
    pub(crate) max_answer_bytes: usize,
    pub(crate) max_log_bytes_per_call: usize,
}

/// A request for the worker: one stdin line, answered before `deadline` or failed.
pub(crate) struct Job {
    pub(crate) request_id: RequestId,
    pub(crate) line: String,
    pub(crate) deadline: Instant,
    pub(crate) reply: oneshot::Sender<JobOutcome>,
}

/// An algorithm's result exactly as it wrote it: JSON that is checked, never re-encoded, so a
/// number past what `u64` or `f64` hold comes back to the caller digit for digit.
#[derive(Debug, Clone)]
pub struct RawResult(Box<serde_json::value::RawValue>);

impl RawResult {
    /// The result's JSON text.
    pub fn json(&self) -> &str {
        self.0.get()
    }

    /// The result when it is a JSON string (the `text` and `binary` content types).
    pub fn as_string(&self) -> Option<String> {
        serde_json::from_str(self.0.get()).ok()
    }
}

impl PartialEq for RawResult {
    fn eq(&self, other: &Self) -> bool {
        self.json() == other.json()
    }
}

impl serde::Serialize for RawResult {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// The ADK's answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Result {
        result: RawResult,
        content_type: String,
    },
    Error {
        message: String,
        stacktrace: Option<String>,
        error_type: String,
    },
}

/// Why a job got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The deadline passed; if the worker was running the job, it was killed.
    Timeout { while_starting: bool },
    /// The process exited (or was killed by a signal) while starting or running a job.
    Crashed { detail: String },
    /// The process wrote something to its FIFO that is not an answer.
    BadOutput { detail: String },
    /// The process could not be started, or did not finish loading in time.
    StartFailed { detail: String },
    /// The runtime is shutting down.
    ShuttingDown,
}

impl Failure {
    /// The label used in metrics (`reason`).
    pub fn label(&self) -> &'static str {
        match self {
            Failure::Timeout { .. } => "timeout",
            Failure::Crashed { .. } => "crash",
            Failure::BadOutput { .. } => "bad_output",
            Failure::StartFailed { .. } => "start_failed",
            Failure::ShuttingDown => "shutting_down",
        }
    }
}

/// How a job ended, with what its execution reported and printed (`None` when it never reached
/// the worker's stdin).
#[derive(Debug)]
pub(crate) struct JobOutcome {
    pub(crate) result: Result<(Answer, Duration), Failure>,
    pub(crate) execution: Option<CurrentExecution>,
}

impl JobOutcome {
    fn failed(failure: Failure, execution: Option<CurrentExecution>) -> Self {
        Self {
            result: Err(failure),
            execution,
        }
    }
}

/// What the rest of the runtime sees of a worker: identity, liveness, and its execution in
/// flight (where reported metrics and log lines accumulate).
pub(crate) struct WorkerShared {
    pub(crate) id: u64,
    pub(crate) token: String,
    pub(crate) session_id: SessionId,
    pub(crate) algorithm: AlgorithmRef,
    current: Mutex<Option<CurrentExecution>>,
    dead: AtomicBool,
    max_log_bytes: usize,
}

/// The execution a worker is running: the target of `POST /v1/insights` from that worker.
#[derive(Debug)]
pub(crate) struct CurrentExecution {
    pub(crate) request_id: RequestId,
    pub(crate) metrics: MetricSet,
    pub(crate) log: String,
    pub(crate) log_truncated: bool,
}

impl WorkerShared {
    pub(crate) fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    fn begin(&self, request_id: RequestId) {
        *self.lock() = Some(CurrentExecution {
            request_id,
            metrics: MetricSet::new(),
            log: String::new(),
            log_truncated: false,
        });
    }

    /// Ends the execution in flight: later reports from this worker are refused.
    fn finish(&self) -> Option<CurrentExecution> {
        self.lock().take()
    }

    /// Runs `f` on the execution in flight, if any.
    pub(crate) fn with_current<R>(&self, f: impl FnOnce(&mut CurrentExecution) -> R) -> Option<R> {
        self.lock().as_mut().map(f)
    }

    /// Appends a line to the log of the execution in flight (bounded). Whether one was in
    /// flight: a line printed between calls belongs to no caller.
    pub(crate) fn append_log(&self, line: &str) -> bool {
        let max = self.max_log_bytes;
        self.with_current(|c| {
            if c.log.len() + line.len() + 1 > max {
                c.log_truncated = true;
            } else {
                c.log.push_str(line);
                c.log.push('\n');
            }
        })
        .is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<CurrentExecution>> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The handle the pool holds. Dropping it asks the worker to stop.
pub(crate) struct Worker {
    pub(crate) shared: Arc<WorkerShared>,
    jobs: mpsc::Sender<Job>,
}

impl Worker {
    /// Starts a worker; it loads in the background and takes jobs once ready.
    pub(crate) fn spawn(spec: Arc<WorkerSpec>, id: u64, token: String) -> Worker {
        let shared = Arc::new(WorkerShared {
            id,
            token,
            session_id: SessionId::new(),
            algorithm: spec.algorithm.clone(),
            current: Mutex::new(None),
            dead: AtomicBool::new(false),
            max_log_bytes: spec.max_log_bytes_per_call,
        });
        let (tx, rx) = mpsc::channel(1);
        let span = tracing::info_span!("worker", algorithm = %spec.algorithm.path(), version = %spec.algorithm.version, worker = id);
        tokio::spawn(drive(spec, shared.clone(), rx).instrument(span));
        Worker { shared, jobs: tx }
    }

    /// Runs one job and waits for its outcome.
    pub(crate) async fn run(
        &self,
        request_id: RequestId,
        line: String,
        deadline: Instant,
    ) -> JobOutcome {
        let (reply, outcome) = oneshot::channel();
        let job = Job {
            request_id,
            line,
            deadline,
            reply,
        };
        if self.jobs.send(job).await.is_err() {
            return JobOutcome::failed(
                Failure::Crashed {
                    detail: "the worker had already exited".into(),
                },
                None,
            );
        }
        outcome.await.unwrap_or_else(|_| {
            JobOutcome::failed(
                Failure::Crashed {
                    detail: "the worker exited without answering".into(),
                },
                None,
            )
        })
    }
}

struct Process {
    child: Child,
    /// `None` once closed to ask the worker to exit.
    stdin: Option<ChildStdin>,
    log: FramedRead<pipe::Receiver, LogLines>,
    fifo: FramedRead<pipe::Receiver, LinesCodec>,
    pgid: Option<u32>,
    dir: PathBuf,
}

const LOG_LINE_MAX: usize = 64 * 1024;
const TAIL_LINES: usize = 20;

fn start(spec: &WorkerSpec, shared: &WorkerShared) -> Result<Process, String> {
    let dir = spec.run_root.join(format!("w{}", shared.id));
    let fail = |what: &str, e: std::io::Error| format!("{what}: {e}");
    std::fs::create_dir_all(&dir).map_err(|e| fail("creating the worker's directory", e))?;
    let fifo_path = dir.join("algoout");
    isolation::mkfifo(&fifo_path).map_err(|e| fail("creating /tmp/algoout", e))?;
    // Opened read-write, so that the FIFO never reports end-of-file between the ADK's writes
    // (it opens and closes it for every answer).
    let fifo = pipe::OpenOptions::new()
        .read_write(true)
        .open_receiver(&fifo_path)
        .map_err(|e| fail("opening /tmp/algoout", e))?;
    let (log_r, log_w) = std::io::pipe().map_err(|e| fail("creating the log pipe", e))?;
    let log_w2 = log_w
        .try_clone()
        .map_err(|e| fail("creating the log pipe", e))?;

    let program = resolve_program(&spec.command[0], &spec.dir);
    let mut cmd = Command::new(program);
    // The server's own settings (the admin token, the Kafka password, ...) are not the
    // algorithm's business: every INSIGHTS_* variable is left out of its environment.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("INSIGHTS_") {
            cmd.env_remove(name);
        }
    }
    cmd.args(&spec.command[1..])
        .current_dir(&spec.dir)
        .env(
            "ALGORITHMIA_API",
            format!("{}/worker/{}", spec.api_base, shared.token),
        )
        .env("ALGORITHMIA_API_KEY", &shared.token)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::from(log_w))
        .stderr(Stdio::from(log_w2))
        .kill_on_drop(true);
    isolation::isolate(&mut cmd, &fifo_path).map_err(|e| fail("preparing isolation", e))?;
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Err(match isolation::explain_spawn_error(e) {
                Ok(e) => format!(
                    "starting `{}`: {}",
                    spec.command.join(" "),
                    explain_not_started(e, &spec.command[0], &spec.dir)
                ),
                Err(isolation) => isolation.to_string(),
            });
        }
    };
    // Our copies of the log pipe's write end live in `cmd`; drop them so that the log reports
    // end-of-file when the worker (and every child it started) has exited.
    drop(cmd);
    let stdin = child.stdin.take().expect("stdin was piped");
    let log =
        pipe::Receiver::from_owned_fd(log_r.into()).map_err(|e| fail("reading the log pipe", e))?;
    Ok(Process {
        pgid: child.id(),
        child,
        stdin: Some(stdin),
        log: FramedRead::new(log, LogLines::default()),
        fifo: FramedRead::new(fifo, LinesCodec::new_with_max_length(spec.max_answer_bytes)),
        dir,
    })
}

/// Why a worker's program did not start, in words that say what to do. The kernel answers
/// "No such file or directory" alike for a missing program, a missing working directory and a
/// missing `#!` interpreter; this finds out which.
fn explain_not_started(e: std::io::Error, program: &str, dir: &Path) -> String {
    if e.kind() != std::io::ErrorKind::NotFound {
        return e.to_string();
    }
    if !dir.is_dir() {
        return format!(
            "the version's directory {} does not exist (was the data directory moved or cleaned?); publish the version again",
            dir.display()
        );
    }
    let path = resolve_program(program, dir);
    if program.contains('/') {
        if !path.exists() {
            return format!(
                "{} does not exist (source.command[0] is relative to the algorithm's source directory, or give an absolute path)",
                path.display()
            );
        }
        return format!(
            "{} exists, but its #! interpreter was not found; install it or name it in source.command",
            path.display()
        );
    }
    match find_in_path(program) {
        None => format!(
            "`{program}` was not found in PATH ({}); install it, or give its full path in source.command",
            std::env::var("PATH").unwrap_or_default()
        ),
        Some(found) => format!(
            "{} exists, but its #! interpreter was not found; install it or name it in source.command",
            found.display()
        ),
    }
}

/// Where `execvp` would find a bare program name.
fn find_in_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// A relative program path with a slash (`bin/run`) is relative to the snapshot; a bare name
/// (`python3`) is looked up in `PATH`.
fn resolve_program(program: &str, dir: &Path) -> PathBuf {
    let p = Path::new(program);
    if p.is_relative() && program.contains('/') {
        dir.join(p)
    } else {
        p.to_path_buf()
    }
}

/// Parses one FIFO line into an [`Answer`], or says why it is not one.
pub(crate) fn parse_answer(line: &str) -> Result<Answer, String> {
    /// One FIFO line; `result` kept as written (see [`RawResult`]), `null` included.
    #[derive(serde::Deserialize)]
    struct Line {
        #[serde(default, deserialize_with = "present")]
        result: Option<Box<serde_json::value::RawValue>>,
        metadata: Option<Value>,
        error: Option<Value>,
    }
    fn present<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Box<serde_json::value::RawValue>>, D::Error> {
        serde::Deserialize::deserialize(d).map(Some)
    }
    let neither = || {
        format!(
            "the algorithm wrote a line to /tmp/algoout that is neither {{\"result\", \"metadata\": {{\"content_type\"}}}} nor {{\"error\"}}: {}",
            excerpt(line)
        )
    };
    let v: Line = serde_json::from_str(line).map_err(|e| {
        if serde_json::from_str::<serde::de::IgnoredAny>(line).is_ok() {
            neither()
        } else {
            format!(
                "the algorithm wrote a line to /tmp/algoout that is not JSON ({e}): {}",
                excerpt(line)
            )
        }
    })?;
    if let Some(err) = v.error {
        let field = |k: &str| err.get(k).and_then(Value::as_str).map(str::to_string);
        return Ok(Answer::Error {
            message: field("message").unwrap_or_else(|| err.to_string()),
            stacktrace: field("stacktrace"),
            error_type: field("error_type").unwrap_or_else(|| "AlgorithmError".into()),
        });
    }
    let content_type = v
        .metadata
        .as_ref()
        .and_then(|m| m.get("content_type"))
        .and_then(Value::as_str);
    match (v.result, content_type) {
        (Some(result), Some(ct)) if matches!(ct, "json" | "text" | "binary") => {
            Ok(Answer::Result {
                result: RawResult(result),
                content_type: ct.to_string(),
            })
        }
        _ => Err(neither()),
    }
}

fn excerpt(s: &str) -> String {
    let mut end = s.len().min(200);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    if end < s.len() {
        format!("{}…", &s[..end])
    } else {
        s.to_string()
    }
}

struct Running {
    reply: oneshot::Sender<JobOutcome>,
    deadline: Instant,
    started: Instant,
}

/// The worker's actor loop.
async fn drive(spec: Arc<WorkerSpec>, shared: Arc<WorkerShared>, mut jobs: mpsc::Receiver<Job>) {
    let labels = [
        ("algorithm", shared.algorithm.path()),
        ("version", shared.algorithm.version.clone()),
    ];
    metrics::counter!("insights_worker_starts_total", &labels).increment(1);
    let idle_output = metrics::counter!("insights_worker_idle_output_bytes_total", &labels);
    let mut proc = match start(&spec, &shared) {
        Ok(p) => p,
        Err(detail) => {
            tracing::error!(algorithm = %shared.algorithm.path(), version = %shared.algorithm.version, %detail, "worker could not start");
            metrics::counter!("insights_worker_crashes_total", "algorithm" => labels[0].1.clone(), "version" => labels[1].1.clone(), "reason" => "start_failed").increment(1);
            let _ = std::fs::remove_dir_all(spec.run_root.join(format!("w{}", shared.id)));
            shared.dead.store(true, Ordering::Release);
            fail_remaining(&mut jobs, None, Failure::StartFailed { detail }).await;
            return;
        }
    };
    tracing::debug!(session_id = %shared.session_id, "worker started");

    let startup_deadline = Instant::now() + spec.startup_timeout;
    let mut ready = false;
    let mut pending: Option<Job> = None;
    let mut running: Option<Running> = None;
    let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
    let mut log_open = true;

    // Two timers for the worker's life, re-armed when the deadline changes: a timer made in
    // every turn of the loop was registered and removed again at each turn (two or three per
    // call).
    let startup = sleep_until(startup_deadline);
    let job_timer = sleep_until(startup_deadline);
    tokio::pin!(startup, job_timer);
    let mut job_timer_at: Option<Instant> = None;

    let failure: Failure = loop {
        let job_deadline = running
            .as_ref()
            .map(|r| r.deadline)
            .or(pending.as_ref().map(|j| j.deadline));
        if let Some(deadline) = job_deadline.filter(|d| job_timer_at != Some(*d)) {
            job_timer.as_mut().reset(deadline);
            job_timer_at = Some(deadline);
        }
        tokio::select! {
            // Deadlines first: an algorithm that never stops printing must not keep its call
            // from timing out. Then the log: a line the algorithm printed before writing its
            // answer is in the log pipe by the time the answer is in the FIFO, so it is
            // attributed to its call.
            biased;
            () = &mut startup, if !ready => {
                break Failure::StartFailed { detail: format!(
                    "the algorithm did not print PIPE_INIT_COMPLETE within {} s of starting",
                    spec.startup_timeout.as_secs()) };
            },
            () = &mut job_timer, if job_deadline.is_some() => {
                if let Some(r) = running.take() {
                    let f = Failure::Timeout { while_starting: false };
                    let _ = r.reply.send(JobOutcome::failed(f.clone(), shared.finish()));
                    break f;
                }
                // Still loading: this caller gives up, the worker keeps loading for the next.
                if let Some(job) = pending.take() {
                    let _ = job.reply.send(JobOutcome::failed(Failure::Timeout { while_starting: true }, None));
                }
            },
            line = proc.log.next(), if log_open => match line {
                Some(Ok(line)) => {
                    if !ready && line.trim_end() == "PIPE_INIT_COMPLETE" {
                        ready = true;
                        tracing::debug!("worker ready");
                        if let Some(job) = pending.take().and_then(still_wanted) {
                            match send_job(&mut proc, &shared, job, &mut tail, &idle_output).await {
                                Ok(r) => running = Some(r),
                                Err(f) => break f,
                            }
                        }
                        continue;
                    }
                    if tail.len() == TAIL_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(line.clone());
                    if !shared.append_log(&line) && ready {
                        // Printed between calls: read and dropped all the same, since an
                        // unread pipe would block the algorithm's next print for good. (What
                        // it prints while loading is quoted if the start fails.)
                        idle_output.increment(line.len() as u64 + 1);
                    }
                    tracing::debug!(target: "algorithm", "{line}");
                }
                // `LogLines` never fails: an error here is the pipe's own.
                Some(Err(_)) | None => log_open = false,
            },
            line = proc.fifo.next() => {
                let Some(r) = running.take() else {
                    break Failure::BadOutput { detail: "the algorithm wrote to /tmp/algoout while no request was in flight".into() };
                };
                let answer = match line {
                    Some(Ok(line)) => parse_answer(&line),
                    Some(Err(LinesCodecError::MaxLineLengthExceeded)) => Err(format!(
                        "the algorithm's answer exceeds the limit of {} bytes", spec.max_answer_bytes)),
                    Some(Err(e)) => Err(format!("reading /tmp/algoout failed: {e}")),
                    None => Err("/tmp/algoout was closed".into()),
                };
                let duration = r.started.elapsed();
                // What the algorithm printed without a newline before answering is this
                // execution's, not the next caller's.
                if let Some(partial) = take_partial_line(&mut proc.log) {
                    shared.append_log(&partial);
                }
                let execution = shared.finish();
                match answer {
                    Ok(answer) => {
                        let _ = r.reply.send(JobOutcome { result: Ok((answer, duration)), execution });
                    }
                    Err(detail) => {
                        let f = Failure::BadOutput { detail };
                        let _ = r.reply.send(JobOutcome::failed(f.clone(), execution));
                        break f;
                    }
                }
            },
            status = proc.child.wait() => {
                // Drain what it printed last, for the message.
                kill(&mut proc).await;
                drain_log(&mut proc, &shared, &mut tail).await;
                let status = match status {
                    Ok(s) => s.to_string(),
                    Err(e) => format!("unknown status ({e})"),
                };
                let last = tail.iter().cloned().collect::<Vec<_>>().join("\n");
                let detail = if ready {
                    format!("the algorithm's process exited ({status}); its last output:\n{last}")
                } else {
                    format!("the algorithm's process exited while loading, before printing PIPE_INIT_COMPLETE ({status}); its last output:\n{last}")
                };
                break if ready { Failure::Crashed { detail } } else { Failure::StartFailed { detail } };
            },
            job = jobs.recv(), if pending.is_none() && running.is_none() => match job {
                Some(job) if ready => {
                    let Some(job) = still_wanted(job) else { continue };
                    match send_job(&mut proc, &shared, job, &mut tail, &idle_output).await {
                        Ok(r) => running = Some(r),
                        Err(f) => break f,
                    }
                }
                Some(job) => pending = Some(job),
                None => break Failure::ShuttingDown,
            },
        }
    };

    shared.dead.store(true, Ordering::Release);
    if failure == Failure::ShuttingDown {
        // Closing stdin ends the ADK's read loop; give it a moment to exit on its own.
        drop(proc.stdin.take());
        let _ = timeout(Duration::from_secs(5), proc.child.wait()).await;
        // Whatever it started (subprocesses, multiprocessing children) goes with it.
        kill(&mut proc).await;
        tracing::debug!("worker stopped");
    } else {
        kill(&mut proc).await;
        metrics::counter!("insights_worker_crashes_total", "algorithm" => labels[0].1.clone(), "version" => labels[1].1.clone(), "reason" => failure.label()).increment(1);
        tracing::warn!(reason = failure.label(), ?failure, "worker ended");
    }
    let dir = proc.dir.clone();
    if let Some(r) = running {
        let _ = r
            .reply
            .send(JobOutcome::failed(failure.clone(), shared.finish()));
    }
    fail_remaining(&mut jobs, pending.map(|j| j.reply), failure).await;
    let _ = tokio::fs::remove_dir_all(dir).await;
}

/// Lines of the worker's log: split at `\n` (a `\r` before it dropped), decoded lossily (an
/// algorithm may print any bytes), a line longer than [`LOG_LINE_MAX`] cut there with the rest
/// of it dropped. It never fails: with `LinesCodec`, one line of bad UTF-8 or a long one ended
/// the reading for good, and the unread pipe then blocked the algorithm's next print.
#[derive(Debug, Default)]
struct LogLines {
    /// In the middle of a line that was cut: drop up to its newline.
    discarding: bool,
}

impl LogLines {
    /// The incomplete last line in `buf`, if any; `buf` is emptied.
    fn take_partial(&mut self, buf: &mut tokio_util::bytes::BytesMut) -> Option<String> {
        let rest = buf.split();
        let was_cut = std::mem::take(&mut self.discarding);
        (!was_cut && !rest.is_empty()).then(|| String::from_utf8_lossy(&rest).into_owned())
    }
}

/// What the log holds of a line not yet ended by a newline (see [`LogLines::take_partial`]).
fn take_partial_line(log: &mut FramedRead<pipe::Receiver, LogLines>) -> Option<String> {
    let mut rest = log.read_buffer_mut().split();
    log.decoder_mut().take_partial(&mut rest)
}

impl tokio_util::codec::Decoder for LogLines {
    type Item = String;
    type Error = std::io::Error;

    fn decode(
        &mut self,
        buf: &mut tokio_util::bytes::BytesMut,
    ) -> Result<Option<String>, std::io::Error> {
        loop {
            if let Some(end) = buf.iter().position(|&b| b == b'\n') {
                let line = buf.split_to(end + 1);
                if std::mem::take(&mut self.discarding) {
                    continue;
                }
                let line = &line[..end];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                return Ok(Some(String::from_utf8_lossy(line).into_owned()));
            }
            if buf.len() <= LOG_LINE_MAX {
                return Ok(None);
            }
            if self.discarding {
                buf.clear();
                return Ok(None);
            }
            let cut = buf.split_to(LOG_LINE_MAX);
            self.discarding = true;
            return Ok(Some(format!(
                "{}[insights: the line was cut at {LOG_LINE_MAX} bytes]",
                String::from_utf8_lossy(&cut)
            )));
        }
    }

    fn decode_eof(
        &mut self,
        buf: &mut tokio_util::bytes::BytesMut,
    ) -> Result<Option<String>, std::io::Error> {
        match self.decode(buf)? {
            Some(line) => Ok(Some(line)),
            None => Ok(self.take_partial(buf)),
        }
    }
}

/// A job whose caller has already given up (its deadline passed while it waited for the worker)
/// is answered with a timeout and never sent: it would start an execution nobody waits for,
/// whose timeout would then stop a healthy worker.
fn still_wanted(job: Job) -> Option<Job> {
    if Instant::now() < job.deadline {
        return Some(job);
    }
    let _ = job.reply.send(JobOutcome::failed(
        Failure::Timeout {
            while_starting: true,
        },
        None,
    ));
    None
}

/// Starts `job` on the worker. What came before it is nobody's: a crash message quotes only
/// this execution's output (`tail`), and a line the algorithm began between calls without
/// ending it (a progress bar's `\r`, a print with `end=""`) is dropped and counted rather than
/// left to start this caller's log.
async fn send_job(
    proc: &mut Process,
    shared: &WorkerShared,
    job: Job,
    tail: &mut VecDeque<String>,
    idle_output: &metrics::Counter,
) -> Result<Running, Failure> {
    tail.clear();
    if let Some(partial) = take_partial_line(&mut proc.log) {
        idle_output.increment(partial.len() as u64);
    }
    let mut bytes = job.line.into_bytes();
    bytes.push(b'\n');
    // From here on, the worker's reports and log lines belong to this execution.
    shared.begin(job.request_id);
    let started = Instant::now();
    let write = async {
        let stdin = proc
            .stdin
            .as_mut()
            .ok_or_else(|| std::io::Error::other("stdin is closed"))?;
        stdin.write_all(&bytes).await?;
        stdin.flush().await
    };
    match timeout_at(job.deadline, write).await {
        Ok(Ok(())) => Ok(Running {
            reply: job.reply,
            deadline: job.deadline,
            started,
        }),
        Ok(Err(e)) => {
            let f = Failure::Crashed {
                detail: format!("writing the request to the algorithm's stdin failed: {e}"),
            };
            let _ = job
                .reply
                .send(JobOutcome::failed(f.clone(), shared.finish()));
            Err(f)
        }
        Err(_) => {
            let f = Failure::Timeout {
                while_starting: false,
            };
            let _ = job
                .reply
                .send(JobOutcome::failed(f.clone(), shared.finish()));
            Err(f)
        }
    }
}

async fn kill(proc: &mut Process) {
    if let Some(pgid) = proc.pgid {
        isolation::kill_group(pgid);
    }
    let _ = proc.child.kill().await;
}

async fn drain_log(proc: &mut Process, shared: &WorkerShared, tail: &mut VecDeque<String>) {
    let drain = async {
        while let Some(Ok(line)) = proc.log.next().await {
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            shared.append_log(&line);
            tail.push_back(line);
        }
    };
    let _ = timeout(Duration::from_secs(1), drain).await;
}

async fn fail_remaining(
    jobs: &mut mpsc::Receiver<Job>,
    in_flight: Option<oneshot::Sender<JobOutcome>>,
    failure: Failure,
) {
    // These calls never ran on the worker: they get what happened, not its output, which
    // belongs to executions of other callers. (A worker that failed while loading printed
    // nobody's data: its loading output stays, it says what to fix.)
    let failure = match failure {
        Failure::Crashed { .. } | Failure::BadOutput { .. } => Failure::Crashed {
            detail: format!(
                "the worker this call was waiting for stopped ({}) before running it",
                failure.label()
            ),
        },
        other => other,
    };
    if let Some(reply) = in_flight {
        let _ = reply.send(JobOutcome::failed(failure.clone(), None));
    }
    jobs.close();
    while let Some(job) = jobs.recv().await {
        let _ = job.reply.send(JobOutcome::failed(failure.clone(), None));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_that_does_not_start_is_explained_with_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let enoent = || std::io::Error::from(std::io::ErrorKind::NotFound);
        let said = explain_not_started(enoent(), "no-such-program-xyz", dir.path());
        assert!(
            said.contains("`no-such-program-xyz` was not found in PATH"),
            "{said}"
        );
        let said = explain_not_started(enoent(), "bin/run", dir.path());
        assert!(
            said.contains(&format!(
                "{} does not exist",
                dir.path().join("bin/run").display()
            )),
            "{said}"
        );
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/run"), "#!/no/such/interpreter\n").unwrap();
        let said = explain_not_started(enoent(), "bin/run", dir.path());
        assert!(said.contains("its #! interpreter was not found"), "{said}");
        let gone = dir.path().join("gone");
        let said = explain_not_started(enoent(), "python3", &gone);
        assert!(
            said.contains("does not exist") && said.contains("publish the version again"),
            "{said}"
        );
        let other = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(
            explain_not_started(other, "python3", dir.path()),
            std::io::Error::from(std::io::ErrorKind::PermissionDenied).to_string()
        );
    }

    #[test]
    fn log_lines_never_fail_and_cut_long_lines_across_reads() {
        use tokio_util::bytes::BytesMut;
        use tokio_util::codec::Decoder as _;
        let mut d = LogLines::default();
        let mut buf = BytesMut::from(&b"caf\xe9\r\nok\n"[..]);
        assert_eq!(d.decode(&mut buf).unwrap().as_deref(), Some("caf\u{fffd}"));
        assert_eq!(d.decode(&mut buf).unwrap().as_deref(), Some("ok"));
        // A long line, arriving in pieces: cut once, the rest of it dropped, then on.
        let mut buf = BytesMut::from(vec![b'x'; LOG_LINE_MAX + 10].as_slice());
        let cut = d.decode(&mut buf).unwrap().unwrap();
        assert!(cut.ends_with("[insights: the line was cut at 65536 bytes]"));
        assert_eq!(cut.len(), LOG_LINE_MAX + 43);
        buf.extend_from_slice(&vec![b'x'; 100_000]);
        assert_eq!(d.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(b"xx\nnext\npartial");
        assert_eq!(d.decode(&mut buf).unwrap().as_deref(), Some("next"));
        assert_eq!(d.decode(&mut buf).unwrap(), None);
        assert_eq!(d.decode_eof(&mut buf).unwrap().as_deref(), Some("partial"));
    }

    #[test]
    fn answers_are_parsed_and_garbage_is_named() {
        assert_eq!(
            parse_answer(r#"{"result": {"a": 1}, "metadata": {"content_type": "json"}}"#),
            Ok(Answer::Result {
                result: RawResult(
                    serde_json::value::RawValue::from_string(r#"{"a": 1}"#.into()).unwrap()
                ),
                content_type: "json".into()
            })
        );
        // Numbers beyond u64 and f64 are kept as written, and null is a result.
        let big = r#"{"result": {"n": 123456789012345678901234567890, "f": 1e-400}, "metadata": {"content_type": "json"}}"#;
        let Ok(Answer::Result { result, .. }) = parse_answer(big) else {
            panic!("a result")
        };
        assert_eq!(
            result.json(),
            r#"{"n": 123456789012345678901234567890, "f": 1e-400}"#
        );
        let null = parse_answer(r#"{"result": null, "metadata": {"content_type": "json"}}"#);
        assert!(matches!(null, Ok(Answer::Result { result, .. }) if result.json() == "null"));
        let e = parse_answer("[1, 2]").unwrap_err();
        assert!(e.contains("neither"), "{e}");
        assert_eq!(
            parse_answer(
                r#"{"error": {"message": "boom", "stacktrace": "st", "error_type": "InputError"}}"#
            ),
            Ok(Answer::Error {
                message: "boom".into(),
                stacktrace: Some("st".into()),
                error_type: "InputError".into()
            })
        );
        let e = parse_answer("hello").unwrap_err();
        assert!(e.contains("not JSON") && e.contains("hello"), "{e}");
        let e = parse_answer(r#"{"result": 1}"#).unwrap_err();
        assert!(e.contains("neither"), "{e}");
        let e = parse_answer(r#"{"result": 1, "metadata": {"content_type": "xml"}}"#).unwrap_err();
        assert!(e.contains("neither"), "{e}");
    }
}
