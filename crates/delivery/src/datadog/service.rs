//! The delivery thread: one OS thread (`datadog-delivery`, with a runtime of its own, so that a
//! slow intake never takes a worker of the server's runtime) owns the spool and the HTTP
//! client; everything reaches it as an [`Event`] on one channel.
//!
//! It takes payloads from the spool (those sent before and answered with a retry first),
//! encodes them into v2 series bodies within Datadog's limits, and keeps up to `concurrency`
//! requests in flight. A 202 resolves a request's payloads as delivered (the `errors` a 202 may
//! list are logged and counted); 408, 429 (after `X-RateLimit-Reset`), 5xx and transport errors
//! put them back, with exponential backoff and jitter; a 413 halves the next requests (a lone
//! payload refused as too large is dropped); a 400 drops them (no retry can change it); a 403
//! holds everything until the key is changed. A payload whose `time` is older than
//! `max_point_age` when its request is built is dropped and counted, since Datadog refuses it;
//! one still unsent after `window` likewise.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

pub(super) mod health;

use health::{Answer, Problem, classify, transport_problem};

use super::request_builder::{self, Encoded, Shared};
use super::{DatadogConfig, DatadogSettings, DatadogStatus};
use crate::DropReason;
use crate::EncodedPayload;
use crate::Lag;
use crate::spool::{FastHash, Record, Spool};

/// Everything the delivery thread hears of.
pub(super) enum Event {
    Append {
        batch: Arc<[EncodedPayload]>,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// New settings (or none), numbered by the sink.
    Configure(u64, Option<Box<DatadogSettings>>),
    Stop(oneshot::Sender<()>),
}

/// Why the delivery thread gave up on a payload: its key in
/// [`DatadogStatus::dropped_by_reason`] and its [`DropReason`], by exhaustive match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DatadogDrop {
    /// Not accepted within the window.
    WindowExpired,
    /// Its `time` was older than Datadog takes (an hour) when it was to be sent.
    TooOld,
    /// Evicted to keep the spool within `spool_max_bytes`.
    SpoolFull,
    /// Refused by the intake (400, or 413 for a payload alone), or not readable as a payload.
    Rejected,
    /// Unreadable in the spool.
    SpoolCorrupt,
}

impl DatadogDrop {
    pub(super) fn status_key(self) -> &'static str {
        match self {
            DatadogDrop::WindowExpired => "window_expired",
            DatadogDrop::TooOld => "too_old",
            DatadogDrop::SpoolFull => "spool_full",
            DatadogDrop::Rejected => "rejected",
            DatadogDrop::SpoolCorrupt => "corrupt",
        }
    }

    pub(super) fn reason(self) -> DropReason {
        match self {
            DatadogDrop::WindowExpired => DropReason::DatadogWindowExpired,
            DatadogDrop::TooOld => DropReason::DatadogTooOld,
            DatadogDrop::SpoolFull => DropReason::DatadogSpoolFull,
            DatadogDrop::Rejected => DropReason::DatadogRejected,
            DatadogDrop::SpoolCorrupt => DropReason::DatadogSpoolCorrupt,
        }
    }
}

/// A record to send. One taken straight from the append keeps the payload it was made from
/// (its batch, and its place in it), so that its series are made from the payload's values
/// rather than read again from its JSON: the same series (`request_builder::encode_known`).
/// A record read back from the spool, or put back after a failed request, has only its JSON,
/// so a batch is held only while its records wait to be sent the first time or are in flight.
struct Pending {
    record: Record,
    known: Option<(Arc<[EncodedPayload]>, usize)>,
}

impl Pending {
    fn read_back(record: Record) -> Pending {
        Pending {
            record,
            known: None,
        }
    }
}

/// A request's answer, back on the delivery thread.
struct Sent {
    generation: u64,
    records: Vec<Pending>,
    answer: Result<(StatusCode, reqwest::header::HeaderMap, String), reqwest::Error>,
}

const TICK: Duration = Duration::from_millis(100);
/// Payloads taken from the spool for one round of requests, at most.
const MAX_TAKE: usize = 8192;

pub(super) struct DeliveryThread {
    config: DatadogConfig,
    spool: Spool,
    status: Arc<Mutex<DatadogStatus>>,
    client: reqwest::Client,
    settings: Option<Arc<DatadogSettings>>,
    generation: u64,
    /// Answered with a retry (or held back), to send before anything new from the spool.
    retry: VecDeque<Pending>,
    in_flight: JoinSet<Sent>,
    /// The sequence numbers of the payloads in `in_flight`.
    sending: HashSet<u64, FastHash>,
    /// In flight when the spool evicted them: dropped unless the intake accepts them after all.
    orphans: HashSet<u64, FastHash>,
    /// Metric names and tag arrays, made once per settings rather than once per payload.
    shared: Shared,
    /// No request before this (backoff, `X-RateLimit-Reset`).
    not_before: Option<Instant>,
    failures: u32,
    /// The key was refused: nothing is sent until the settings change.
    key_refused: bool,
    /// Payloads per request round; halved by a 413, grown back by each 202.
    take: usize,
    counts: DatadogStatus,
    last_sweep: Instant,
    /// Per kind of warning: when it was last logged and how many were not logged since.
    said: HashMap<&'static str, (Instant, u64)>,
    lag: Arc<Lag>,
}

impl DeliveryThread {
    pub(super) fn spawn(
        config: DatadogConfig,
        spool: Spool,
        events: mpsc::UnboundedReceiver<Event>,
        status: Arc<Mutex<DatadogStatus>>,
        lag: Arc<Lag>,
    ) -> std::io::Result<()> {
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("insights/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(std::io::Error::other)?;
        let thread = DeliveryThread {
            config,
            spool,
            status,
            client,
            settings: None,
            generation: 0,
            retry: VecDeque::new(),
            in_flight: JoinSet::new(),
            sending: HashSet::default(),
            orphans: HashSet::default(),
            shared: Shared::default(),
            not_before: None,
            failures: 0,
            key_refused: false,
            take: MAX_TAKE,
            counts: DatadogStatus::default(),
            last_sweep: Instant::now(),
            said: HashMap::new(),
            lag,
        };
        let hooks = thread.config.threads.clone();
        let mut runtime = tokio::runtime::Builder::new_current_thread();
        // Its blocking threads (name lookups) are the delivery's too.
        runtime.enable_all().thread_name("datadog-delivery");
        hooks.apply(&mut runtime);
        let runtime = runtime.build()?;
        let dispatch = tracing::dispatcher::get_default(tracing::Dispatch::clone);
        std::thread::Builder::new()
            .name("datadog-delivery".into())
            .spawn(move || {
                let _lane = hooks.enter();
                let _logs = tracing::dispatcher::set_default(&dispatch);
                runtime.block_on(thread.run(events))
            })?;
        Ok(())
    }

    async fn run(mut self, mut events: mpsc::UnboundedReceiver<Event>) {
        // What a previous process left may be past its window already: dropped and counted
        // before anything is sent.
        self.sweep();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.pump();
            self.publish();
            tokio::select! {
                event = events.recv() => match event {
                    None => return,
                    Some(Event::Stop(reply)) => {
                        self.stop().await;
                        let _ = reply.send(());
                        return;
                    }
                    Some(event) => self.handle(event),
                },
                Some(done) = self.in_flight.join_next(), if !self.in_flight.is_empty() => {
                    if let Ok(sent) = done {
                        self.answered(sent);
                    }
                }
                // Not while there is nothing a tick would do (no settings, nothing in the spool
                // or in flight): an idle server's thread sleeps until an event comes.
                _ = tick.tick(), if !self.has_nothing_to_do() => {}
            }
            if self.last_sweep.elapsed() >= Duration::from_secs(1) {
                self.sweep();
            }
        }
    }

    fn has_nothing_to_do(&self) -> bool {
        self.settings.is_none()
            && self.spool.unresolved() == 0
            && self.in_flight.is_empty()
            && self.retry.is_empty()
    }

    /// Answers still on their way are waited for (a little) and recorded, so that the next
    /// start does not send those payloads again; what is unanswered stays in the spool.
    async fn stop(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !self.in_flight.is_empty() {
            match tokio::time::timeout_at(deadline, self.in_flight.join_next()).await {
                Ok(Some(Ok(sent))) => self.answered(sent),
                Ok(Some(Err(_))) => {}
                Ok(None) | Err(_) => break,
            }
        }
        self.in_flight.abort_all();
        self.publish();
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Append { batch, reply } => {
                let rows = request_builder::spool_rows(&batch);
                // When nothing waits in the spool and delivery is going, the records are taken
                // straight from here instead of being read back from disk.
                let straight = self.spool.at_end()
                    && self.settings.is_some()
                    && !self.key_refused
                    && self.retry.len() + rows.len() <= 4 * MAX_TAKE;
                match self.spool.append(&rows, now_micros()) {
                    Ok((records, evicted)) => {
                        if straight {
                            debug_assert_eq!(records.len(), batch.len());
                            self.spool.hand_out_all();
                            self.retry.extend(records.into_iter().enumerate().map(
                                |(i, record)| Pending {
                                    record,
                                    known: Some((batch.clone(), i)),
                                },
                            ));
                        }
                        if !evicted.is_empty() {
                            // Those in flight are counted when their answer comes, and not at
                            // all if it is a 202; the rest here.
                            let mut dropped = HashSet::new();
                            for seq in evicted {
                                if self.sending.contains(&seq) {
                                    self.orphans.insert(seq);
                                } else {
                                    dropped.insert(seq);
                                }
                            }
                            self.retry.retain(|r| !dropped.contains(&r.record.seq));
                            self.drop_count(DatadogDrop::SpoolFull, dropped.len() as u64);
                        }
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.to_string()));
                    }
                }
            }
            Event::Configure(generation, settings) => {
                // A new key (or site) is worth trying at once; what was said about the
                // previous one no longer holds.
                self.generation = generation;
                self.counts.generation = generation;
                self.settings = settings.map(|s| Arc::new(*s));
                self.shared.clear();
                self.key_refused = false;
                self.not_before = None;
                self.failures = 0;
                self.counts.problem = None;
                self.counts.last_error = None;
                self.counts.state = if self.settings.is_some() {
                    "connecting"
                } else {
                    "not_configured"
                };
                self.said.clear();
            }
            Event::Stop(_) => unreachable!("handled by run"),
        }
    }

    /// Starts requests while there is room, something to send, and no reason to wait.
    fn pump(&mut self) {
        let Some(settings) = self.settings.clone() else {
            return;
        };
        if self.key_refused || self.not_before.is_some_and(|t| Instant::now() < t) {
            return;
        }
        while self.in_flight.len() < self.config.concurrency {
            let mut records: Vec<Pending> = Vec::new();
            while records.len() < self.take {
                match self.retry.pop_front() {
                    Some(r) => records.push(r),
                    None => break,
                }
            }
            if records.is_empty() {
                match self.spool.next(self.take) {
                    Ok(r) => records = r.into_iter().map(Pending::read_back).collect(),
                    Err(e) => {
                        tracing::error!(error = %e, "reading the Datadog spool failed");
                        return;
                    }
                }
            }
            let corrupt = self.spool.take_corrupt();
            self.drop_count(DatadogDrop::SpoolCorrupt, corrupt);
            if records.is_empty() {
                return;
            }
            self.send(&settings, records);
        }
    }

    /// Encodes `records` into bodies and starts a request for each.
    fn send(&mut self, settings: &Arc<DatadogSettings>, records: Vec<Pending>) {
        let cutoff = now_micros() / 1_000_000 - self.config.max_point_age.as_secs() as i64;
        // Ids into `shared` live until the bodies are made, below.
        self.shared.trim();
        let mut parts: Vec<Encoded> = Vec::with_capacity(records.len());
        // The records of `parts`, in the same order.
        let mut kept: Vec<Pending> = Vec::with_capacity(records.len());
        let (mut too_old, mut rejected, mut empty) = (Vec::new(), Vec::new(), Vec::new());
        for pending in records {
            let seq = pending.record.seq;
            let encoded = match &pending.known {
                Some((batch, i)) => Ok(request_builder::encode_known(
                    seq,
                    &batch[*i],
                    settings,
                    &mut self.shared,
                )),
                None => request_builder::encode(&pending.record, settings, &mut self.shared),
            };
            match encoded {
                Err(why) => {
                    self.warn(
                        "unreadable",
                        "a spooled payload cannot be read; it is dropped",
                        &why.0,
                    );
                    rejected.push(seq);
                }
                Ok(e) if e.time_s < cutoff => too_old.push(e.seq),
                Ok(e) => {
                    for why in &e.refused {
                        self.counts.metrics_refused += 1;
                        metrics::counter!("insights_datadog_metrics_refused_total", "reason" => why.label())
                            .increment(1);
                        self.warn(
                            why.label(),
                            "a metric name cannot go to Datadog (longer than 200 characters, or not starting with a letter); that metric is not sent",
                            why.label(),
                        );
                    }
                    if e.is_empty() {
                        empty.push(e.seq);
                    } else {
                        kept.push(pending);
                        parts.push(e);
                    }
                }
            }
        }
        self.resolve_dropped(DatadogDrop::TooOld, &too_old);
        self.resolve_dropped(DatadogDrop::Rejected, &rejected);
        // Nothing Datadog can take in it (every name refused): nothing more to do for it.
        self.resolve(&empty);
        let url = settings.series_url();
        // The bodies' ranges follow one another over `parts`: each takes the next records.
        let mut kept = kept.into_iter();
        for body in request_builder::bodies(
            &parts,
            &self.shared,
            self.config.max_request_bytes,
            self.config.max_uncompressed_bytes,
        ) {
            let records: Vec<Pending> = kept.by_ref().take(body.parts.len()).collect();
            let bytes = body.compressed.len();
            let request = self
                .client
                .post(&url)
                .header("DD-API-KEY", settings.api_key.expose())
                .header("Content-Type", "application/json")
                .header("Content-Encoding", "zstd1")
                .body(body.compressed);
            tracing::trace!(
                payloads = records.len(),
                bytes,
                uncompressed = body.uncompressed_len,
                "request to Datadog"
            );
            self.sending.extend(records.iter().map(|r| r.record.seq));
            let generation = self.generation;
            self.in_flight.spawn(async move {
                let answer = async {
                    let response = request.send().await?;
                    let status = response.status();
                    let headers = response.headers().clone();
                    let text = response.text().await.unwrap_or_default();
                    Ok((status, headers, text))
                }
                .await;
                Sent {
                    generation,
                    records,
                    answer,
                }
            });
        }
    }

    fn answered(&mut self, sent: Sent) {
        let Sent {
            generation,
            records,
            answer,
        } = sent;
        for r in &records {
            self.sending.remove(&r.record.seq);
        }
        let delivered = matches!(&answer, Ok((status, headers, _)) if classify(*status, headers) == Answer::Delivered);
        // Evicted from the spool while in flight: accepted after all, or dropped for the bound.
        let mut records = records;
        if !self.orphans.is_empty() {
            let before = records.len();
            if delivered {
                for r in &records {
                    self.orphans.remove(&r.record.seq);
                }
            } else {
                records.retain(|r| !self.orphans.remove(&r.record.seq));
                self.drop_count(DatadogDrop::SpoolFull, (before - records.len()) as u64);
            }
        }
        let seqs: Vec<u64> = records.iter().map(|r| r.record.seq).collect();
        let (answer, detail) = match answer {
            Ok((status, headers, body)) => {
                let a = classify(status, &headers);
                if a == Answer::Delivered {
                    self.accepted(&seqs, &body);
                    return;
                }
                (a, format!("HTTP {status}: {}", cut(&body, 300)))
            }
            Err(e) => {
                let p = transport_problem(&e);
                (
                    Answer::Retry {
                        problem: p,
                        after: None,
                    },
                    redact(&e),
                )
            }
        };
        if generation != self.generation {
            // Sent with settings since replaced: whatever it failed on says nothing of the
            // new ones. Sent again with them.
            self.requeue(records);
            return;
        }
        match answer {
            Answer::Delivered => unreachable!("handled above"),
            Answer::Retry { problem, after } => {
                self.failures = self.failures.saturating_add(1);
                let wait = after.unwrap_or_else(|| self.backoff());
                self.not_before = Some(Instant::now() + wait);
                self.fail(problem, &detail);
                self.warn(
                    problem_key(problem),
                    "Datadog did not take payloads; they wait and are sent again",
                    &format!("{detail} (next try in {} ms)", wait.as_millis()),
                );
                self.requeue(records);
            }
            Answer::Split => {
                if records.len() <= 1 {
                    self.warn(
                        "too_large",
                        "Datadog refused a payload as too large; it is dropped",
                        &detail,
                    );
                    self.resolve_dropped(DatadogDrop::Rejected, &seqs);
                } else {
                    self.take = (records.len() / 2).max(1);
                    self.requeue(records);
                }
            }
            Answer::Refused(Problem::KeyRefused) => {
                self.key_refused = true;
                self.fail(Problem::KeyRefused, &detail);
                self.warn(
                    "key_refused",
                    "Datadog refused the API key; nothing is sent until the key is changed (payloads wait within their window)",
                    &detail,
                );
                self.requeue(records);
            }
            Answer::Refused(problem) => {
                self.fail(problem, &detail);
                self.warn(
                    "bad_request",
                    "Datadog refused a request as malformed; its payloads are dropped",
                    &detail,
                );
                self.resolve_dropped(DatadogDrop::Rejected, &seqs);
            }
        }
    }

    fn accepted(&mut self, seqs: &[u64], body: &str) {
        self.resolve(seqs);
        self.counts.delivered += seqs.len() as u64;
        metrics::counter!("insights_datadog_delivered_total").increment(seqs.len() as u64);
        self.failures = 0;
        self.not_before = None;
        self.take = (self.take * 2).min(MAX_TAKE);
        if self.counts.state != "connected" {
            tracing::info!("Datadog takes payloads");
            self.said.clear();
        }
        self.counts.state = "connected";
        self.counts.problem = None;
        self.counts.last_error = None;
        // A 202 can still list errors (some series refused): said and counted.
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(body)
            && let Some(errors) = v.get("errors").and_then(|e| e.as_array())
            && !errors.is_empty()
        {
            self.counts.intake_errors += errors.len() as u64;
            metrics::counter!("insights_datadog_intake_errors_total")
                .increment(errors.len() as u64);
            let words: Vec<String> = errors
                .iter()
                .take(5)
                .map(|e| {
                    e.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| e.to_string())
                })
                .collect();
            self.counts.last_intake_error = words.first().map(|w| cut(w, 300));
            self.warn(
                "intake_errors",
                "Datadog accepted a request but listed errors in its answer",
                &cut(&words.join("; "), 500),
            );
        }
    }

    /// Exponential backoff with jitter: `backoff_min · 2^(failures-1)`, capped, times a random
    /// factor in [0.5, 1).
    fn backoff(&self) -> Duration {
        let exp = self.failures.saturating_sub(1).min(20);
        let base = self
            .config
            .backoff_min
            .saturating_mul(1u32 << exp)
            .min(self.config.backoff_max);
        let jitter = 0.5 + (random_u64() % 1000) as f64 / 2000.0;
        base.mul_f64(jitter)
    }

    fn fail(&mut self, problem: Problem, detail: &str) {
        self.counts.state = "failing";
        self.counts.problem = Some(problem);
        self.counts.last_error = Some(detail.to_string());
    }

    /// Puts `records` back, to be sent before anything new. Without their payloads: a record
    /// put back is read from its JSON next time, so that a batch is not held for as long as
    /// any one of its records waits (an outage can hold records for the whole window).
    fn requeue(&mut self, mut records: Vec<Pending>) {
        records.sort_by_key(|r| r.record.seq);
        for r in records.into_iter().rev() {
            self.retry.push_front(Pending::read_back(r.record));
        }
    }

    fn resolve(&mut self, seqs: &[u64]) {
        if seqs.is_empty() {
            return;
        }
        if let Err(e) = self.spool.resolve(seqs) {
            tracing::error!(error = %e, "recording resolved payloads in the Datadog spool failed; they may be sent again after a restart");
        }
    }

    fn resolve_dropped(&mut self, why: DatadogDrop, seqs: &[u64]) {
        self.resolve(seqs);
        self.drop_count(why, seqs.len() as u64);
    }

    fn drop_count(&mut self, why: DatadogDrop, n: u64) {
        if n == 0 {
            return;
        }
        self.counts.dropped += n;
        *self
            .counts
            .dropped_by_reason
            .entry(why.status_key())
            .or_default() += n;
        why.reason().count(n);
        self.warn(
            why.status_key(),
            "payloads for Datadog dropped",
            &format!(
                "{n} payload(s), reason {}, {} dropped in all",
                why.status_key(),
                self.counts.dropped
            ),
        );
    }

    /// Logs a warning of `kind` at most once per `log_interval`, with how many were not logged.
    fn warn(&mut self, kind: &'static str, message: &str, detail: &str) {
        let now = Instant::now();
        let entry = self
            .said
            .entry(kind)
            .or_insert((now - self.config.log_interval * 2, 0));
        if now.duration_since(entry.0) >= self.config.log_interval {
            let repeats = std::mem::take(&mut entry.1);
            entry.0 = now;
            tracing::warn!(kind, detail, repeats, "{message}");
        } else {
            entry.1 += 1;
        }
    }

    /// Drops what waited past the window (or past the age Datadog takes).
    fn sweep(&mut self) {
        self.last_sweep = Instant::now();
        let window = self.config.effective_window();
        let why = if self.config.window <= self.config.max_point_age {
            DatadogDrop::WindowExpired
        } else {
            DatadogDrop::TooOld
        };
        let before = now_micros() - window.as_micros() as i64;
        let (expired, kept): (Vec<Pending>, Vec<Pending>) = self
            .retry
            .drain(..)
            .partition(|r| r.record.created_micros < before);
        self.retry = kept.into();
        let seqs: Vec<u64> = expired.iter().map(|r| r.record.seq).collect();
        self.resolve_dropped(why, &seqs);
        match self.spool.expire(before) {
            Ok(n) => self.drop_count(why, n),
            Err(e) => {
                tracing::error!(error = %e, "expiring old payloads in the Datadog spool failed")
            }
        }
    }

    fn publish(&mut self) {
        // Caught up: everything handed to a request (those in flight wait for the intake,
        // not for this thread). Payloads held back by a backoff or by `concurrency` requests
        // in flight count as work left: a thread kept off the CPU would not join the answers
        // that free them, and cannot be told from one that waits on the intake; an outage
        // longer than the lag a scheduler tolerates raises the thread, which then sleeps.
        self.lag.turn(
            self.settings.is_none()
                || self.key_refused
                || (self.retry.is_empty() && self.spool.at_end()),
        );
        self.counts.waiting = self.spool.unresolved();
        metrics::gauge!("insights_datadog_waiting").set(self.counts.waiting as f64);
        metrics::gauge!("insights_datadog_spool_bytes").set(self.spool.bytes() as f64);
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        *status = DatadogStatus {
            window_seconds: self.config.effective_window().as_secs(),
            retry_in_ms: self
                .not_before
                .and_then(|t| t.checked_duration_since(Instant::now()))
                .map(|d| d.as_millis() as u64),
            ..self.counts.clone()
        };
    }
}

fn problem_key(p: Problem) -> &'static str {
    match p {
        Problem::KeyRefused => "key_refused",
        Problem::RateLimited => "rate_limited",
        Problem::ServerError => "server_error",
        Problem::TimedOut => "timed_out",
        Problem::Unreachable => "unreachable",
        Problem::BadRequest => "bad_request",
        Problem::UnexpectedAnswer => "unexpected_answer",
    }
}

/// A transport error without its URL (which holds nothing secret, but is long) and never the
/// key (which is in a header, never in an error).
pub(super) fn redact(e: &reqwest::Error) -> String {
    let mut words = e.without_url_ref().to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        words.push_str(": ");
        words.push_str(&s.to_string());
        source = s.source();
    }
    words
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        if self.is_timeout() {
            "the request timed out".into()
        } else if self.is_connect() {
            "no connection could be made".into()
        } else if self.is_body() || self.is_decode() {
            "reading the answer failed".into()
        } else {
            "the request failed".into()
        }
    }
}

fn cut(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return now_micros() as u64;
    }
    u64::from_le_bytes(b)
}

pub(super) fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}
