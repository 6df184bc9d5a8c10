//! What the producer thread knows about its connection, and the state the admin sees from it:
//! *connected* only once a broker connection is up and the topic's metadata shows it can take
//! writes; *failing* with the most specific failure that error codes, delivery reports and the
//! topic's metadata name; each kind of warning said once (`logs::Limiter`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use insights_kafka::Failure;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::Producer as _;

use super::{Event, ProducerThread};

/// How often the topic's metadata is asked for while the topic is what fails.
const TOPIC_RECHECK: Duration = Duration::from_secs(5);
const TOPIC_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// The failure an error code stands for, and the limiter's key for its kind (the code itself
/// when it stands for none of them).
pub(super) fn kind_of(code: Option<RDKafkaErrorCode>) -> (Option<Failure>, String) {
    let failure = code.and_then(Failure::of);
    let key = match (failure, code) {
        (Some(f), _) => f.as_str().to_string(),
        (None, Some(code)) => format!("{code:?}"),
        (None, None) => "other".to_string(),
    };
    (failure, key)
}

/// What a topic check found.
pub(in crate::kafka) enum TopicCheck {
    /// Every partition has a leader.
    Ready,
    Failed(Failure, String),
    /// No broker answered in time: the connection's own errors say why.
    Unanswered,
}

/// What delivery knows is wrong: a failure, when its code says which, and the error.
#[derive(Debug, Clone)]
pub(super) struct Problem {
    pub(super) failure: Option<Failure>,
    pub(super) message: String,
}

/// What the topic's metadata last said, for this connection.
#[derive(Debug, Clone)]
pub(super) enum Topic {
    Unknown,
    Ready,
    Failed(Problem),
}

impl ProducerThread {
    /// Records what delivery fails on. A failure does not replace a more specific one that
    /// explains it (a refused password is followed by "all brokers are down", and brokers that
    /// cannot be reached by messages timing out): the explanation is kept.
    pub(super) fn fail(&mut self, failure: Option<Failure>, message: String) {
        if self.link.as_ref().is_none_or(|p| failure >= p.failure) {
            self.link = Some(Problem { failure, message });
        }
    }

    /// A warning, said once per kind and then summarised (see `logs`).
    pub(super) fn warn(&mut self, key: String, what: &'static str, error: &str) {
        self.said_connected = false;
        if let Some(line) =
            self.limiter
                .offer(&key, tracing::Level::WARN, what, error, Instant::now())
        {
            line.log();
        }
    }

    /// librdkafka's own log. Its `FAIL` lines are the failures its error callback reports
    /// too, which `Event::ClientError` logs: they are kept for debugging only, so that each
    /// failure is said once. Its other warnings are said once per facility.
    pub(super) fn librdkafka_log(&mut self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        let warning = (level as i32) <= (RDKafkaLogLevel::Warning as i32);
        if !warning || facility == "FAIL" {
            tracing::debug!(target: "librdkafka", facility, "{message}");
            return;
        }
        let key = format!("librdkafka {facility}");
        if let Some(line) = self.limiter.offer(
            &key,
            tracing::Level::WARN,
            "librdkafka warning",
            message,
            Instant::now(),
        ) {
            line.log();
        }
    }

    /// Asks for the topic's metadata, through the producer's own connections, on a thread of
    /// its own (the request blocks until a broker answers): once per producer, and every few
    /// seconds until the topic is known to take writes, so that a topic created meanwhile is
    /// noticed without a payload. (A producer connects to the brokers that lead partitions only
    /// once it has messages for them: without this, nothing would say whether it could.)
    pub(super) fn check_topic(&mut self) {
        let Some(producer) = &self.producer else {
            return;
        };
        let topic_fails = !matches!(self.topic_state, Topic::Ready)
            || self
                .link
                .as_ref()
                .and_then(|p| p.failure)
                .is_some_and(Failure::is_about_the_topic);
        let due = self.checked_generation != Some(self.generation)
            || (topic_fails
                && self
                    .last_topic_check
                    .is_none_or(|t| t.elapsed() >= TOPIC_RECHECK));
        if self.topic_check.is_some() || !due {
            return;
        }
        let (producer, topic, events) = (
            Arc::clone(producer),
            self.topic.clone(),
            self.events_tx.clone(),
        );
        let generation = self.generation;
        let spawned = std::thread::Builder::new()
            .name("kafka-topic-check".into())
            .spawn(move || {
                let result = match producer
                    .client()
                    .fetch_metadata(Some(&topic), TOPIC_CHECK_TIMEOUT)
                {
                    Ok(metadata) => match insights_kafka::topic_in(&metadata, &topic) {
                        Ok(_) => TopicCheck::Ready,
                        Err((failure, message)) => TopicCheck::Failed(failure, message),
                    },
                    Err(_) => TopicCheck::Unanswered,
                };
                let _ = events.send(Event::TopicChecked { generation, result });
            });
        if spawned.is_ok() {
            self.topic_check = Some(generation);
            self.checked_generation = Some(generation);
            self.last_topic_check = Some(Instant::now());
        }
    }

    pub(super) fn topic_checked(&mut self, result: TopicCheck) {
        match result {
            TopicCheck::Ready => {
                self.topic_state = Topic::Ready;
                // A broker answered (connected, TLS and SASL done), and the topic exists and has
                // leaders: what delivery reported about either is over.
                self.broker_up = true;
                if self.link.as_ref().is_some_and(|p| {
                    p.failure
                        .is_none_or(|f| f == Failure::Unreachable || f.is_about_the_topic())
                }) {
                    self.link = None;
                }
            }
            TopicCheck::Failed(failure, message) => {
                self.warn(
                    failure.as_str().to_string(),
                    "the Kafka topic cannot take payloads; they wait",
                    &message,
                );
                self.topic_state = Topic::Failed(Problem {
                    failure: Some(failure),
                    message,
                });
            }
            TopicCheck::Unanswered => {}
        }
    }

    /// The state the admin sees, from what delivery knows (the most specific failure first).
    pub(super) fn derive_state(&mut self) {
        let topic = match &self.topic_state {
            Topic::Failed(p) => Some(p),
            _ => None,
        };
        let problem = match (self.link.as_ref(), topic) {
            (Some(l), Some(t)) => Some(if t.failure > l.failure { t } else { l }),
            (l, t) => l.or(t),
        };
        let (state, problem) = if self.settings.is_none() {
            ("not_configured", None)
        } else if let Some(p) = problem {
            ("failing", Some(p.clone()))
        } else if self.producer.is_some()
            && self.broker_up
            && matches!(self.topic_state, Topic::Ready)
        {
            ("connected", None)
        } else {
            ("connecting", None)
        };
        if state == "connected" && !self.said_connected {
            let brokers = self
                .settings
                .as_ref()
                .map(|s| s.brokers.joined())
                .unwrap_or_default();
            if let Some(line) = self.limiter.offer(
                "connected",
                tracing::Level::INFO,
                "Kafka delivery connected",
                &brokers,
                Instant::now(),
            ) {
                tracing::info!(topic = %self.topic, brokers, repeated = line.repeated, "Kafka delivery connected");
            }
            self.said_connected = true;
        }
        self.counts.state = state;
        self.counts.problem = problem.as_ref().and_then(|p| p.failure);
        self.counts.last_error = problem.map(|p| p.message);
    }
}
