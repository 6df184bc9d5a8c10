//! The Datadog sink: what the dispatcher and the admin see of Datadog delivery. `write` returns
//! once the batch is appended to the spool (the delivery thread does the appending, so that one
//! thread owns the spool); `configure` changes the settings; `status` is the state the admin API
//! and panel show; [`test_api_key`] asks the intake whether a key is valid.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::service::{DeliveryThread, Event, health::Problem, redact};
use super::{DatadogConfig, DatadogSettings};
use crate::spool::{Spool, SpoolConfig};
use crate::{Backlog, BoxFuture, DropReason, EncodedPayload, Lag, Outcome, PayloadSink};

/// The state of Datadog delivery, for the admin API and panel.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DatadogStatus {
    /// `not_configured`, `connecting` (configured, no answer yet), `connected` (the intake took
    /// the last request) or `failing`.
    pub state: &'static str,
    /// What delivery fails on, when `failing`.
    pub problem: Option<Problem>,
    /// The answer or error behind `state` (status code and the intake's words, never the key).
    pub last_error: Option<String>,
    pub delivered: u64,
    pub dropped: u64,
    pub dropped_by_reason: HashMap<&'static str, u64>,
    /// Handed over, neither delivered nor dropped yet.
    pub waiting: u64,
    /// How long a payload can wait: the shorter of the delivery window and the hour past
    /// which Datadog refuses points.
    pub window_seconds: u64,
    /// Errors listed in the intake's 202 answers.
    pub intake_errors: u64,
    pub last_intake_error: Option<String>,
    /// Metrics not sent because Datadog would refuse their name (over 200 characters, or not
    /// starting with a letter).
    pub metrics_refused: u64,
    /// Until the next request, when delivery waits (backoff or `X-RateLimit-Reset`).
    pub retry_in_ms: Option<u64>,
    /// The settings this state is about (the count of `configure` calls it has seen).
    #[serde(skip)]
    pub(super) generation: u64,
}

/// The handle: a [`PayloadSink`], and the way to change the settings.
pub struct DatadogDelivery {
    events: mpsc::UnboundedSender<Event>,
    status: Arc<Mutex<DatadogStatus>>,
    configured: AtomicBool,
    /// `configure` calls so far: a state published for older settings is not shown as theirs.
    requested: AtomicU64,
    lag: Arc<Lag>,
    /// Its queue in the dispatcher, which its lane follows instead of delivery's backlog.
    backlog: Arc<Backlog>,
}

impl DatadogDelivery {
    /// Opens the spool (recovering what a previous process left) and starts the delivery
    /// thread.
    pub fn start(config: DatadogConfig) -> std::io::Result<DatadogDelivery> {
        let spool = Spool::open(SpoolConfig {
            dir: config.spool_dir.clone(),
            segment_bytes: config.segment_bytes,
            max_bytes: config.spool_max_bytes,
            fsync: config.fsync,
        })?;
        let (tx, rx) = mpsc::unbounded_channel();
        let status = Arc::new(Mutex::new(DatadogStatus {
            state: "not_configured",
            waiting: spool.unresolved(),
            window_seconds: config.effective_window().as_secs(),
            ..Default::default()
        }));
        let lag = Arc::new(Lag::default());
        DeliveryThread::spawn(config, spool, rx, status.clone(), lag.clone())?;
        Ok(DatadogDelivery {
            events: tx,
            status,
            configured: AtomicBool::new(false),
            requested: AtomicU64::new(0),
            lag,
            backlog: Arc::new(Backlog::of_lane("datadog")),
        })
    }

    /// How long the delivery thread has had payloads it could send and has not caught up: how
    /// the server tells when Datadog, which runs on idle CPU, has waited for it long enough.
    pub fn lag(&self) -> Arc<Lag> {
        self.lag.clone()
    }

    /// Whether its queue in the dispatcher is falling behind (half full, or waiting for the
    /// delivery thread without progress): what its lane follows, rather than delivery's
    /// backlog, so that the hand-off or Kafka falling behind does not raise Datadog's threads
    /// (they would take CPU from what is behind) while Datadog's own queue filling does (its
    /// payloads are not in its spool until the thread appends them).
    pub fn lane_backlog(&self) -> Arc<Backlog> {
        self.backlog.clone()
    }

    /// Uses `settings` from now on (or none: payloads are no longer taken for Datadog; those
    /// waiting stay in the spool within their window, in case settings come back).
    pub fn configure(&self, settings: Option<DatadogSettings>) {
        let _one_at_a_time = self.status.lock().unwrap_or_else(|e| e.into_inner());
        self.configured.store(settings.is_some(), Ordering::Release);
        let generation = self.requested.fetch_add(1, Ordering::AcqRel) + 1;
        let _ = self
            .events
            .send(Event::Configure(generation, settings.map(Box::new)));
    }

    /// The state for the settings last given to [`Self::configure`]: until the delivery thread
    /// has taken them, `connecting` (or `not_configured`), with the counts so far.
    pub fn status(&self) -> DatadogStatus {
        let mut status = self
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if status.generation != self.requested.load(Ordering::Acquire) {
            status.state = if self.configured.load(Ordering::Acquire) {
                "connecting"
            } else {
                "not_configured"
            };
            status.problem = None;
            status.last_error = None;
            status.retry_in_ms = None;
        }
        status
    }

    /// Stops the delivery thread. What is still waiting stays in the spool for the next start.
    pub async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.events.send(Event::Stop(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

impl PayloadSink for DatadogDelivery {
    fn name(&self) -> &'static str {
        "datadog"
    }

    fn queue_full(&self) -> DropReason {
        DropReason::DatadogQueueFull
    }

    fn backlog(&self) -> Option<Arc<Backlog>> {
        Some(self.backlog.clone())
    }

    /// Returns once the batch is in the spool: from there the delivery thread delivers each
    /// payload within its window, or counts it as dropped.
    fn write(&self, batch: Arc<[EncodedPayload]>) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            if !self.configured.load(Ordering::Acquire) {
                return Outcome::Skipped;
            }
            crate::sink::append_to_spool("datadog", DropReason::DatadogError, |reply| {
                self.events.send(Event::Append { batch, reply }).is_ok()
            })
            .await
        })
    }
}

/// What the intake said of a key (`POST /v1/admin/insights/datadog/test`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyVerdict {
    /// The key is valid for the site.
    pub ok: bool,
    /// `valid`, `key_refused`, `unreachable`, `timed_out`, `unexpected_answer`.
    pub outcome: &'static str,
    /// The verdict in a sentence.
    pub verdict: String,
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
}

/// Asks `GET <base>/api/v1/validate` whether the key is valid (Datadog answers 200 with
/// `{"valid": true}`, or 403).
pub async fn test_api_key(settings: &DatadogSettings, timeout: Duration) -> KeyVerdict {
    let client = match reqwest::Client::builder().timeout(timeout).build() {
        Ok(c) => c,
        Err(e) => {
            return KeyVerdict {
                ok: false,
                outcome: "unreachable",
                verdict: format!("no HTTP client could be made: {}", redact(&e)),
                status: None,
            };
        }
    };
    let answer = client
        .get(settings.validate_url())
        .header("DD-API-KEY", settings.api_key.expose())
        .send()
        .await;
    let base = settings.base_url();
    match answer {
        Err(e) => {
            let timed_out = e.is_timeout();
            KeyVerdict {
                ok: false,
                outcome: if timed_out {
                    "timed_out"
                } else {
                    "unreachable"
                },
                verdict: if timed_out {
                    format!("{base} did not answer within {} s.", timeout.as_secs())
                } else {
                    format!("{base} cannot be reached: {}.", redact(&e))
                },
                status: None,
            }
        }
        Ok(r) => {
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            let valid = body.get("valid").and_then(|v| v.as_bool());
            match (status, valid) {
                (200, Some(true)) => KeyVerdict {
                    ok: true,
                    outcome: "valid",
                    verdict: format!("Datadog ({}) accepts the API key.", settings.site),
                    status: Some(status),
                },
                (401 | 403, _) | (200, Some(false)) => KeyVerdict {
                    ok: false,
                    outcome: "key_refused",
                    verdict: format!(
                        "The API key was refused by Datadog ({}): check the key, and that it belongs to an organization on this site.",
                        settings.site
                    ),
                    status: Some(status),
                },
                _ => KeyVerdict {
                    ok: false,
                    outcome: "unexpected_answer",
                    verdict: format!(
                        "{base} answered HTTP {status} to the key check, not Datadog's answer: check the site or the URL."
                    ),
                    status: Some(status),
                },
            }
        }
    }
}
