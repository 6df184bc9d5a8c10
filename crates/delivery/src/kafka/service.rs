//! The producer thread: one thread owns the spool and an idempotent `ThreadedProducer`, so their
//! state needs no locks; everything reaches it as an [`Event`] on one channel (appends from the
//! sink, delivery reports and errors from librdkafka's callbacks, connection changes).
//!
//! Each payload gets attempts for `window` after it was handed over: librdkafka retries within
//! one attempt (`attempt_timeout`), the thread starts another attempt while the window lasts,
//! and after it the payload is dropped and counted ([`KafkaDrop`]). A new connection takes over
//! the previous one's queue (its producer is purged; callbacks of an old generation are
//! ignored).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use insights_kafka::{ConnectionSettings, Failure};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{Producer, ThreadedProducer};
use tokio::sync::oneshot;

mod health;

use health::{Problem, Topic, TopicCheck, kind_of};

use super::context::Context;
use super::{KafkaConfig, KafkaStatus, logs, request_builder};
use crate::spool::{FastHash, Record, Spool};
use crate::{DropReason, EncodedPayload, Lag};

/// Everything the producer thread hears of, on its one channel.
pub(super) enum Event {
    Append {
        batch: Arc<[EncodedPayload]>,
        reply: oneshot::Sender<Result<(), String>>,
    },
    Connect(Option<Box<ConnectionSettings>>),
    Delivered {
        generation: u64,
        seq: u64,
        result: Result<(), (Option<RDKafkaErrorCode>, String)>,
    },
    ClientError {
        generation: u64,
        code: Option<RDKafkaErrorCode>,
        message: String,
    },
    BrokerUp {
        generation: u64,
    },
    /// What the topic's metadata said (see `ProducerThread::check_topic`).
    TopicChecked {
        generation: u64,
        result: TopicCheck,
    },
    /// A line of librdkafka's own log.
    Log {
        level: RDKafkaLogLevel,
        facility: String,
        message: String,
    },
    Stop(oneshot::Sender<()>),
}

/// Why the producer thread gave up on a payload. Each has its key in
/// [`KafkaStatus::dropped_by_reason`] and its [`DropReason`], both by exhaustive match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KafkaDrop {
    /// Not acknowledged within the window.
    WindowExpired,
    /// Evicted to keep the spool within `spool_max_bytes`.
    SpoolFull,
    /// Refused in a way no retry can change.
    Rejected,
    /// Unreadable in the spool.
    SpoolCorrupt,
}

impl KafkaDrop {
    pub(super) fn status_key(self) -> &'static str {
        match self {
            KafkaDrop::WindowExpired => "window_expired",
            KafkaDrop::SpoolFull => "spool_full",
            KafkaDrop::Rejected => "rejected",
            KafkaDrop::SpoolCorrupt => "corrupt",
        }
    }

    pub(super) fn reason(self) -> DropReason {
        match self {
            KafkaDrop::WindowExpired => DropReason::KafkaWindowExpired,
            KafkaDrop::SpoolFull => DropReason::KafkaSpoolFull,
            KafkaDrop::Rejected => DropReason::KafkaRejected,
            KafkaDrop::SpoolCorrupt => DropReason::KafkaSpoolCorrupt,
        }
    }
}

/// The thread that owns the spool and the producer: it appends what the sink is given, hands
/// records to the producer, and resolves each one as delivered or dropped.
pub(super) struct ProducerThread {
    config: KafkaConfig,
    spool: Spool,
    events_tx: mpsc::Sender<Event>,
    status: Arc<Mutex<KafkaStatus>>,
    /// Shared with a topic check in flight (which asks through the producer's connections).
    producer: Option<Arc<ThreadedProducer<Context>>>,
    topic: String,
    generation: u64,
    /// Handed to the producer, not yet acknowledged. Inserted and removed once per message on
    /// this thread, which SipHash made a tenth of the thread's samples.
    in_flight: HashMap<u64, Record, FastHash>,
    /// To hand to the producer again (an attempt ended inside the window, or the producer was
    /// replaced), before anything new from the spool.
    retry: VecDeque<Record>,
    /// In flight when the spool evicted their segment: dropped unless delivered after all.
    orphans: HashSet<u64, FastHash>,
    last_sweep: Instant,
    counts: KafkaStatus,
    /// What the connection's errors and the delivery reports say is wrong, until a payload is
    /// delivered (or a broker comes up, for a broker that could not be reached).
    link: Option<Problem>,
    /// What the topic's metadata says.
    topic_state: Topic,
    /// A broker connection of the current producer is up (connected, TLS and SASL done): from
    /// librdkafka's statistics, a metadata answer or a delivery.
    broker_up: bool,
    /// The generation whose topic check is in flight.
    topic_check: Option<u64>,
    /// The generation whose topic was checked.
    checked_generation: Option<u64>,
    last_topic_check: Option<Instant>,
    limiter: logs::Limiter,
    /// "Connected" was logged and no failure since.
    said_connected: bool,
    /// The connection in use, to start a new producer after a fatal error.
    settings: Option<ConnectionSettings>,
    /// Start a new producer before sending again (an attempt timed out).
    renew_producer: bool,
    last_drop_log: Option<Instant>,
    unlogged_drops: u64,
    /// When a producer was last created (to space out retries when creation fails).
    last_create: Option<Instant>,
    /// When a payload was last acknowledged.
    last_success: Option<Instant>,
    /// Attempts in a row that timed out with nothing acknowledged: each new producer's attempt
    /// is twice as long as the last (see [`MAX_ATTEMPT_GROWTH`]).
    timeouts_in_a_row: u32,
    /// Since when payloads have waited with nothing acknowledged or dropped (see
    /// [`KafkaDelivery::lag`](super::KafkaDelivery::lag)).
    lag: Arc<Lag>,
}

/// How many times longer than `attempt_timeout` an attempt may grow after attempts in a row
/// timed out with nothing acknowledged. A new producer must connect, get its producer id and
/// have a batch acknowledged within one attempt; on a broker (or a machine) slower than that,
/// attempts of a fixed length would each time out in turn and nothing would ever get through
/// (seen on a loaded machine with a 300 ms attempt). The window still bounds the whole.
const MAX_ATTEMPT_GROWTH: u32 = 8;

const TICK: Duration = Duration::from_millis(100);
impl ProducerThread {
    /// Starts the thread (named `kafka-producer`) on a spool just opened.
    pub(super) fn spawn(
        config: KafkaConfig,
        spool: Spool,
        events_tx: mpsc::Sender<Event>,
        events: mpsc::Receiver<Event>,
        status: Arc<Mutex<KafkaStatus>>,
        lag: Arc<Lag>,
    ) -> std::io::Result<()> {
        let thread = ProducerThread {
            limiter: logs::Limiter::new(config.log_interval),
            config,
            spool,
            events_tx,
            status,
            producer: None,
            topic: String::new(),
            generation: 0,
            in_flight: HashMap::default(),
            retry: VecDeque::new(),
            orphans: HashSet::default(),
            last_sweep: Instant::now(),
            counts: KafkaStatus::default(),
            link: None,
            topic_state: Topic::Unknown,
            broker_up: false,
            topic_check: None,
            checked_generation: None,
            last_topic_check: None,
            said_connected: false,
            settings: None,
            renew_producer: false,
            last_drop_log: None,
            unlogged_drops: 0,
            last_create: None,
            last_success: None,
            timeouts_in_a_row: 0,
            lag,
        };
        let hooks = thread.config.threads.clone();
        // The thread logs to the subscriber of the caller (the process's, or a test's).
        let dispatch = tracing::dispatcher::get_default(tracing::Dispatch::clone);
        std::thread::Builder::new()
            .name("kafka-producer".into())
            .spawn(move || {
                let _lane = hooks.enter();
                let _logs = tracing::dispatcher::set_default(&dispatch);
                thread.run(events)
            })?;
        Ok(())
    }

    /// Nothing a tick would do: no connection to keep, nothing in the spool or on its way, no
    /// summary of repeated warnings due.
    fn has_nothing_to_do(&self) -> bool {
        self.settings.is_none()
            && self.producer.is_none()
            && self.spool.unresolved() == 0
            && self.in_flight.is_empty()
            && self.retry.is_empty()
            && !self.limiter.has_pending()
    }

    fn run(mut self, events: mpsc::Receiver<Event>) {
        // What a previous process left may be past its window already: dropped and counted
        // before anything is sent, not sent once more.
        self.sweep();
        let mut busy = false;
        loop {
            let resolved_before = self.counts.delivered + self.counts.dropped;
            let first = if !busy && self.has_nothing_to_do() {
                // No connection and nothing unresolved: only an event can give work, so an
                // idle server's thread sleeps until one comes instead of ticking.
                match events.recv() {
                    Ok(e) => Some(e),
                    Err(_) => return,
                }
            } else {
                let wait = if busy { Duration::ZERO } else { TICK };
                match events.recv_timeout(wait) {
                    Ok(e) => Some(e),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            };
            let mut resolved = Vec::new();
            for event in first
                .into_iter()
                .chain(std::iter::from_fn(|| events.try_recv().ok()))
            {
                if let Some(stop) = self.handle(event, &mut resolved) {
                    // Acknowledgements still on their way from a working connection are waited
                    // for (a little) and recorded, so that the next start does not send those
                    // payloads again. (With the brokers away there is nothing to wait for:
                    // what is unacknowledged stays in the spool for the next start.)
                    if let Some(p) = &self.producer
                        && self.counts.state == "connected"
                        && !self.in_flight.is_empty()
                    {
                        let _ = p.flush(Duration::from_secs(5));
                    }
                    while let Ok(event) = events.try_recv() {
                        if let Event::Delivered {
                            generation,
                            seq,
                            result,
                        } = event
                        {
                            self.delivered(generation, seq, result, &mut resolved);
                        }
                    }
                    self.finish_resolve(&mut resolved);
                    self.producer = None;
                    self.publish();
                    let _ = stop.send(());
                    return;
                }
            }
            self.finish_resolve(&mut resolved);
            if std::mem::take(&mut self.renew_producer) {
                self.timeouts_in_a_row = self.timeouts_in_a_row.saturating_add(1);
                self.renew("an attempt timed out with nothing acknowledged");
            }
            // A producer that could not be created is tried again, every few seconds.
            if self.producer.is_none()
                && self.settings.is_some()
                && self
                    .last_create
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(5))
            {
                self.renew("the previous one could not be created");
            }
            self.check_topic();
            for line in self.limiter.due(Instant::now()) {
                line.log();
            }
            let corrupt = self.spool.take_corrupt();
            self.drop_count(KafkaDrop::SpoolCorrupt, corrupt);
            busy = self.pump();
            if self.last_sweep.elapsed() >= Duration::from_secs(1) {
                self.sweep();
            }
            // Progress is a payload resolved (acknowledged, or dropped and counted). Without a
            // producer there is nothing this thread could do, whatever CPU it got.
            self.lag.turn(
                self.producer.is_none()
                    || self.spool.unresolved() == 0
                    || self.counts.delivered + self.counts.dropped != resolved_before,
            );
            self.publish();
        }
    }

    fn handle(&mut self, event: Event, resolved: &mut Vec<u64>) -> Option<oneshot::Sender<()>> {
        match event {
            Event::Append { batch, reply } => {
                let rows = request_builder::spool_rows(&batch, self.config.key);
                // When nothing waits in the spool and there is room, the producer takes these
                // records straight from here instead of reading them back from disk.
                let straight = self.spool.at_end()
                    && self.producer.is_some()
                    && self.in_flight.len() + self.retry.len() + rows.len()
                        <= self.config.max_in_flight;
                let result = self.spool.append(&rows, now_micros());
                match result {
                    Ok((records, evicted)) => {
                        if straight {
                            self.spool.hand_out_all();
                            self.retry.extend(records);
                        }
                        let mut dropped = HashSet::new();
                        for seq in evicted {
                            if self.in_flight.contains_key(&seq) {
                                self.orphans.insert(seq);
                            } else {
                                dropped.insert(seq);
                            }
                        }
                        if !dropped.is_empty() {
                            self.retry.retain(|r| !dropped.contains(&r.seq));
                            self.drop_count(KafkaDrop::SpoolFull, dropped.len() as u64);
                        }
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.to_string()));
                    }
                }
            }
            Event::Connect(settings) => self.connect(settings.map(|s| *s)),
            Event::Delivered {
                generation,
                seq,
                result,
            } => self.delivered(generation, seq, result, resolved),
            Event::BrokerUp { generation } => {
                if generation == self.generation {
                    self.broker_up = true;
                    // A broker that could not be reached now can be (one broker of several
                    // was down, say). Not a refused password or certificate, which a broker
                    // being up does not undo, nor payloads timing out, which a delivery does.
                    if self
                        .link
                        .as_ref()
                        .is_some_and(|p| matches!(p.failure, None | Some(Failure::Unreachable)))
                    {
                        self.link = None;
                    }
                }
            }
            Event::TopicChecked { generation, result } => {
                if self.topic_check == Some(generation) {
                    self.topic_check = None;
                }
                if generation == self.generation {
                    self.topic_checked(result);
                }
            }
            Event::Log {
                level,
                facility,
                message,
            } => self.librdkafka_log(level, &facility, &message),
            Event::ClientError {
                generation,
                code,
                message,
            } => {
                tracing::debug!(?code, error = %message, generation, "librdkafka error");
                if generation == self.generation && code == Some(RDKafkaErrorCode::Fatal) {
                    // The idempotent producer cannot go on (e.g. the cluster lost its producer
                    // state): start a new one; what was in flight is sent again.
                    tracing::error!(error = %message, "the Kafka producer hit a fatal error; starting a new one");
                    self.renew("the previous one hit a fatal error");
                    self.fail(None, message);
                    return None;
                }
                if generation == self.generation {
                    let (failure, key) = kind_of(code);
                    self.warn(key, "Kafka connection problem", &message);
                    self.fail(failure, message);
                }
            }
            Event::Stop(reply) => return Some(reply),
        }
        None
    }

    /// Uses another connection (or none): what was known about the previous one no longer
    /// holds, and what was said about it is no reason to keep quiet about this one.
    fn connect(&mut self, settings: Option<ConnectionSettings>) {
        self.settings = settings;
        self.link = None;
        self.topic_state = Topic::Unknown;
        self.limiter.forget();
        self.said_connected = false;
        self.renew("a new connection");
    }

    /// Starts a new producer for the connection in use (or none). What is known about the
    /// connection stays: the same brokers answer the new producer.
    fn renew(&mut self, why: &'static str) {
        self.generation += 1;
        self.broker_up = false;
        if let Some(old) = self.producer.take() {
            // Its queue is handed to the next producer; the purge's callbacks are ignored (old
            // generation).
            old.purge(rdkafka::producer::PurgeConfig::default().queue().inflight());
        }
        let mut requeue: Vec<Record> = self.in_flight.drain().map(|(_, r)| r).collect();
        requeue.sort_by_key(|r| r.seq);
        for r in requeue.into_iter().rev() {
            self.retry.push_front(r);
        }
        let Some(settings) = self.settings.clone() else {
            return;
        };
        let mut config = settings.client_config();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", "lz4")
            .set("linger.ms", "5")
            .set("message.timeout.ms", self.attempt().as_millis().to_string())
            .set(
                "queue.buffering.max.messages",
                self.config.max_in_flight.to_string(),
            )
            .set("queue.buffering.max.kbytes", "1048576")
            // Insights does not create topics (the connection test says so): a producer that
            // did, on a cluster that allows it, would deliver to a topic nobody set up, and a
            // missing topic would go unnoticed.
            .set("allow.auto.create.topics", "false")
            // Only until a broker connection is up (see `Context::stats_raw`).
            .set("statistics.interval.ms", "1000");
        self.last_create = Some(Instant::now());
        let context = Context::new(self.generation, self.events_tx.clone());
        match config.create_with_context(context) {
            Ok(p) => {
                self.producer = Some(Arc::new(p));
                self.topic = settings.topic.to_string();
                // Not "connected": nothing is known yet (see `derive_state`).
                tracing::debug!(topic = %self.topic, brokers = %settings.brokers.joined(), why, attempt_ms = self.attempt().as_millis() as u64, "new Kafka producer");
            }
            Err(e) => {
                let message = format!(
                    "the Kafka producer could not be created: {}",
                    insights_kafka::redacted(&e)
                );
                self.warn("producer".into(), "Kafka delivery cannot start", &message);
                self.link = Some(Problem {
                    failure: None,
                    message,
                });
            }
        }
    }

    fn delivered(
        &mut self,
        generation: u64,
        seq: u64,
        result: Result<(), (Option<RDKafkaErrorCode>, String)>,
        resolved: &mut Vec<u64>,
    ) {
        if generation != self.generation {
            // From a replaced producer: a success still counts (and must not be sent again);
            // a failure was already requeued.
            if result.is_ok() && self.retry.iter().any(|r| r.seq == seq) {
                self.retry.retain(|r| r.seq != seq);
                self.count_delivered(seq, resolved);
            }
            return;
        }
        let Some(record) = self.in_flight.remove(&seq) else {
            return;
        };
        match result {
            Ok(()) => {
                // Delivered: whatever the connection failed on is over, and a broker is up.
                self.link = None;
                self.broker_up = true;
                if let Topic::Failed(p) = &self.topic_state
                    && p.failure == Some(Failure::UnknownTopic)
                {
                    // The topic exists after all: look at it now rather than in a while. (Not
                    // for partitions without a leader: a delivery to another says nothing.)
                    self.last_topic_check = None;
                }
                self.last_success = Some(Instant::now());
                self.timeouts_in_a_row = 0;
                self.count_delivered(seq, resolved);
            }
            Err((code, message)) => {
                let (failure, key) = kind_of(code);
                if failure.is_some() {
                    self.warn(key, "payloads were not delivered to Kafka", &message);
                    self.fail(failure, message.clone());
                }
                if self.orphans.remove(&seq) {
                    self.drop_count(KafkaDrop::SpoolFull, 1);
                } else if is_permanent(code) {
                    if let Some(line) = self.limiter.offer(
                        &format!("rejected {code:?}"),
                        tracing::Level::ERROR,
                        "Kafka refused a payload; it is dropped",
                        &message,
                        Instant::now(),
                    ) {
                        line.log();
                    }
                    self.drop_count(KafkaDrop::Rejected, 1);
                    resolved.push(seq);
                } else if now_micros() - record.created_micros
                    >= self.config.window.as_micros() as i64
                {
                    self.drop_count(KafkaDrop::WindowExpired, 1);
                    resolved.push(seq);
                } else {
                    let delivering = self
                        .last_success
                        .is_some_and(|t| t.elapsed() < self.config.attempt_timeout);
                    if code == Some(RDKafkaErrorCode::MessageTimedOut) && !delivering {
                        // After an attempt timed out, librdkafka's idempotent producer may wait
                        // for producer state the broker no longer has: the next attempt goes
                        // through a new producer. Not while others are being acknowledged: a
                        // new producer would send everything in flight again.
                        self.renew_producer = true;
                    }
                    self.retry.push_back(record);
                }
            }
        }
    }

    /// How long the next producer's attempt lasts: `attempt_timeout`, doubled for each attempt
    /// in a row that timed out with nothing acknowledged, up to [`MAX_ATTEMPT_GROWTH`] times.
    fn attempt(&self) -> Duration {
        let growth = 1u32
            .checked_shl(self.timeouts_in_a_row)
            .unwrap_or(u32::MAX)
            .min(MAX_ATTEMPT_GROWTH);
        self.config.attempt_timeout * growth
    }

    fn count_delivered(&mut self, seq: u64, resolved: &mut Vec<u64>) {
        self.counts.delivered += 1;
        metrics::counter!("insights_kafka_delivered_total").increment(1);
        if !self.orphans.remove(&seq) {
            resolved.push(seq);
        }
    }

    fn drop_count(&mut self, why: KafkaDrop, n: u64) {
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
        // Logged at most once a second: an outage past the window drops payloads by the
        // thousand, and one line per payload would bury everything else.
        self.unlogged_drops += n;
        if self
            .last_drop_log
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            tracing::warn!(
                reason = why.status_key(),
                payloads = self.unlogged_drops,
                total_dropped = self.counts.dropped,
                "payloads for Kafka dropped"
            );
            self.unlogged_drops = 0;
            self.last_drop_log = Some(Instant::now());
        }
    }

    fn finish_resolve(&mut self, resolved: &mut Vec<u64>) {
        if resolved.is_empty() {
            return;
        }
        if let Err(e) = self.spool.resolve(resolved) {
            tracing::error!(error = %e, "recording delivered payloads in the spool failed; they may be sent again after a restart");
        }
        resolved.clear();
    }

    /// Hands records to the producer until it is full or nothing is waiting (up to 64k at a
    /// time, so that events are not starved). True if it may have more to send right away.
    fn pump(&mut self) -> bool {
        let mut rejected = 0;
        let more = self.pump_into_producer(&mut rejected);
        self.drop_count(KafkaDrop::Rejected, rejected);
        more
    }

    fn pump_into_producer(&mut self, rejected: &mut u64) -> bool {
        let Some(producer) = self.producer.as_ref() else {
            return false;
        };
        let mut sent = 0;
        loop {
            let room = self
                .config
                .max_in_flight
                .saturating_sub(self.in_flight.len());
            if room == 0 {
                return false;
            }
            if sent >= 65_536 {
                return true;
            }
            let mut batch: Vec<Record> = Vec::new();
            while batch.len() < room.min(1024) {
                match self.retry.pop_front() {
                    Some(r) => batch.push(r),
                    None => break,
                }
            }
            if batch.is_empty() {
                match self.spool.next(room.min(1024)) {
                    Ok(records) => batch = records,
                    Err(e) => {
                        tracing::error!(error = %e, "reading the spool failed");
                        return false;
                    }
                }
            }
            if batch.is_empty() {
                return false;
            }
            let mut rest = batch.into_iter();
            for record in rest.by_ref() {
                match producer.send(request_builder::message(&self.topic, &record)) {
                    Ok(()) => {
                        sent += 1;
                        self.in_flight.insert(record.seq, record);
                    }
                    Err((e, _)) => {
                        let code = e.rdkafka_error_code();
                        if is_permanent(code) {
                            // This one can never be sent (too large, say): drop and count it,
                            // and let the rest go on.
                            if let Some(line) = self.limiter.offer(
                                &format!("rejected {code:?}"),
                                tracing::Level::ERROR,
                                "Kafka cannot take a payload; it is dropped",
                                &e.to_string(),
                                Instant::now(),
                            ) {
                                line.log();
                            }
                            *rejected += 1;
                            let seq = record.seq;
                            if let Err(e) = self.spool.resolve(&[seq]) {
                                tracing::error!(error = %e, "recording a dropped payload in the spool failed");
                            }
                            continue;
                        }
                        // Back to the front, in their order: the record, then the rest.
                        for r in rest.rev() {
                            self.retry.push_front(r);
                        }
                        self.retry.push_front(record);
                        if code == Some(RDKafkaErrorCode::Fatal) {
                            // The idempotent producer cannot go on (the cluster lost its
                            // producer state, say, after a broker restart with empty storage):
                            // start a new one; what was in flight is sent again.
                            tracing::error!(error = %e, "the Kafka producer hit a fatal error; starting a new one");
                            self.renew("the previous one hit a fatal error");
                            self.fail(None, e.to_string());
                            return true;
                        }
                        if code != Some(RDKafkaErrorCode::QueueFull) {
                            // Tried again at the next tick (the topic is missing, say): said
                            // once, not ten times a second.
                            let (failure, key) = kind_of(code);
                            let message = e.to_string();
                            self.warn(
                                key,
                                "handing payloads to the Kafka producer failed; they wait",
                                &message,
                            );
                            self.fail(failure, message);
                        }
                        return false;
                    }
                }
            }
        }
    }

    /// Drops payloads that waited past the window without being sent.
    fn sweep(&mut self) {
        self.last_sweep = Instant::now();
        let before = now_micros() - self.config.window.as_micros() as i64;
        let (expired, kept): (Vec<Record>, Vec<Record>) = self
            .retry
            .drain(..)
            .partition(|r| r.created_micros < before);
        self.retry = kept.into();
        // A record whose segment was evicted while it was in flight was already given up for
        // the spool's bound: it is counted under that reason, and forgotten.
        let (orphaned, expired): (Vec<Record>, Vec<Record>) = expired
            .into_iter()
            .partition(|r| self.orphans.remove(&r.seq));
        self.drop_count(KafkaDrop::SpoolFull, orphaned.len() as u64);
        let seqs: Vec<u64> = expired.iter().map(|r| r.seq).collect();
        self.drop_count(KafkaDrop::WindowExpired, seqs.len() as u64);
        if let Err(e) = self.spool.resolve(&seqs) {
            tracing::error!(error = %e, "recording dropped payloads in the spool failed");
        }
        match self.spool.expire(before) {
            Ok(n) => self.drop_count(KafkaDrop::WindowExpired, n),
            Err(e) => tracing::error!(error = %e, "expiring old payloads in the spool failed"),
        }
    }

    fn publish(&mut self) {
        self.derive_state();
        self.counts.waiting = self.spool.unresolved();
        metrics::gauge!("insights_kafka_waiting").set(self.counts.waiting as f64);
        metrics::gauge!("insights_kafka_spool_bytes").set(self.spool.bytes() as f64);
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        *status = KafkaStatus {
            window_seconds: self.config.window.as_secs(),
            ..self.counts.clone()
        };
    }
}

/// Errors after which another attempt cannot succeed.
fn is_permanent(code: Option<RDKafkaErrorCode>) -> bool {
    matches!(
        code,
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::InvalidRecord
        )
    )
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}
