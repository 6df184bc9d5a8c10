//! The delivery thread's state and log against librdkafka's mock cluster (in process, with
//! fault injection; it has no SASL or TLS, which the server's tests against tansu cover). The
//! thread's log is captured by a subscriber of the test's own, which the thread inherits.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use insights_kafka::{ConnectionRequest, Failure};
use insights_payload::{AlgorithmRef, Payload};
use rdkafka::mocking::MockCluster;
use rdkafka::types::RDKafkaRespErr;
use tracing::Level;

use super::service::KafkaDrop;
use super::{KafkaConfig, KafkaDelivery, KafkaStatus};
use crate::{EncodedPayload, Outcome, PayloadSink};

const TOPIC: &str = "insights";

/// One captured log line: its level, target, message and the other fields as `name=value`.
#[derive(Debug, Clone)]
struct Line {
    level: Level,
    target: String,
    message: String,
    fields: String,
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Line>>>);

impl Capture {
    fn lines(&self) -> Vec<Line> {
        self.0.lock().unwrap().clone()
    }

    fn count(&self, f: impl Fn(&Line) -> bool) -> usize {
        self.lines().iter().filter(|l| f(l)).count()
    }
}

struct Fields<'a>(&'a mut Line);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.message = format!("{value:?}");
        } else {
            self.0.fields += &format!("{}={value:?} ", field.name());
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0.message = value.to_string();
        } else {
            self.0.fields += &format!("{}={value} ", field.name());
        }
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = Line {
            level: *event.metadata().level(),
            target: event.metadata().target().to_string(),
            message: String::new(),
            fields: String::new(),
        };
        event.record(&mut Fields(&mut line));
        self.0.lock().unwrap().push(line);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

struct Harness {
    delivery: KafkaDelivery,
    log: Capture,
    _spool: tempfile::TempDir,
}

fn start(adjust: impl FnOnce(&mut KafkaConfig)) -> Harness {
    let spool = tempfile::tempdir().unwrap();
    let mut config = KafkaConfig::new(spool.path().join("spool"));
    // No repeat is ever due within a test: each kind of warning is said exactly once.
    config.log_interval = Duration::from_secs(3600);
    adjust(&mut config);
    let log = Capture::default();
    let dispatch = tracing::Dispatch::new(log.clone());
    let delivery =
        tracing::dispatcher::with_default(&dispatch, || KafkaDelivery::start(config)).unwrap();
    Harness {
        delivery,
        log,
        _spool: spool,
    }
}

impl Harness {
    fn connect(&self, brokers: &str) {
        let (settings, _) = ConnectionRequest {
            topic: TOPIC.into(),
            brokers: brokers.into(),
            connection_type: "plaintext".into(),
            ..Default::default()
        }
        .validate(None)
        .unwrap();
        self.delivery.connect(Some(settings));
    }

    async fn write(&self, n: usize) {
        let batch: Arc<[EncodedPayload]> =
            (0..n).map(|_| EncodedPayload::new(&payload())).collect();
        let outcome = self.delivery.write(batch).await;
        assert!(matches!(outcome, Outcome::WillRetry), "{outcome:?}");
    }

    /// Waits for `done` (delivery is asynchronous), noting every state seen on the way; the
    /// deadline only keeps a broken build from hanging.
    async fn wait(
        &self,
        what: &str,
        seen: &mut Vec<&'static str>,
        done: impl Fn(&KafkaStatus, &Capture) -> bool,
    ) -> KafkaStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.delivery.status();
            if seen.last() != Some(&s.state) {
                seen.push(s.state);
            }
            if done(&s, &self.log) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {s:?}\n{:#?}",
                self.log.lines()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Every warning and error, and no kind of them said twice.
    fn warnings_each_said_once(&self) -> Vec<Line> {
        let warnings: Vec<Line> = self
            .log
            .lines()
            .into_iter()
            .filter(|l| l.level <= Level::WARN)
            .collect();
        let mut kinds: Vec<&str> = warnings.iter().map(kind).collect();
        kinds.sort();
        let before = kinds.len();
        kinds.dedup();
        assert_eq!(kinds.len(), before, "a warning said twice: {warnings:#?}");
        warnings
    }
}

fn kind(l: &Line) -> &str {
    l.fields
        .split(' ')
        .find_map(|f| f.strip_prefix("kind="))
        .unwrap_or(&l.message)
}

fn payload() -> Payload {
    Payload {
        algorithm: AlgorithmRef {
            owner: "acme".into(),
            name: "kafka".into(),
            version: "1.0.0".into(),
        },
        session_id: insights_payload::SessionId::new(),
        request_id: insights_payload::RequestId::new(),
        duration_milliseconds: 1,
        time: time::OffsetDateTime::now_utc(),
        metrics: insights_payload::MetricSet::new(),
        status: None,
        failed: false,
    }
}

/// Regression (issue 11): reasons were strings, and one the label mapping did not know was
/// counted as `kafka_window_expired`. The status keys and the labels are the ones the admin API,
/// dashboards and alerts have always read.
#[test]
fn every_kafka_drop_keeps_its_status_key_and_label() {
    let all = [
        KafkaDrop::WindowExpired,
        KafkaDrop::SpoolFull,
        KafkaDrop::Rejected,
        KafkaDrop::SpoolCorrupt,
    ];
    let keys: Vec<_> = all
        .iter()
        .map(|d| (d.status_key(), d.reason().label()))
        .collect();
    assert_eq!(
        keys,
        [
            ("window_expired", "kafka_window_expired"),
            ("spool_full", "kafka_spool_full"),
            ("rejected", "kafka_rejected"),
            ("corrupt", "kafka_spool_corrupt"),
        ]
    );
}

fn connected_lines(log: &Capture) -> usize {
    log.count(|l| l.message == "Kafka delivery connected")
}

/// Regression (issue 10): with the topic missing, the state said `connected` ("Payloads are
/// being delivered") while payloads waited, and every new producer (one per timed-out attempt)
/// logged "Kafka delivery connected".
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_topic_is_failing_unknown_topic_until_it_is_created() {
    let mock = MockCluster::new(1).unwrap();
    let h = start(|c| c.attempt_timeout = Duration::from_millis(300));
    h.connect(&mock.bootstrap_servers());
    h.write(3).await;
    let mut seen = Vec::new();
    let s = h
        .wait("failing on the topic", &mut seen, |s, _| {
            s.problem == Some(Failure::UnknownTopic)
        })
        .await;
    assert_eq!(s.state, "failing", "{s:?}");
    assert!(
        s.last_error.as_deref().unwrap().contains("does not exist"),
        "{s:?}"
    );
    // Attempts time out and each gets a new producer: three more of them, and the topic
    // still fails, the state was never "connected", and nothing was said twice.
    let producers = |log: &Capture| log.count(|l| l.message == "new Kafka producer");
    h.wait("three new producers", &mut seen, |_, log| {
        producers(log) >= 4
    })
    .await;
    let s = h.delivery.status();
    assert_eq!(
        (s.state, s.problem),
        ("failing", Some(Failure::UnknownTopic))
    );
    assert!(!seen.contains(&"connected"), "{seen:?}");
    assert_eq!(connected_lines(&h.log), 0);
    let warnings = h.warnings_each_said_once();
    assert!(
        warnings.iter().any(|l| kind(l) == "unknown_topic"),
        "{warnings:#?}"
    );

    // Created: noticed without a new payload, and what waited is delivered.
    mock.create_topic(TOPIC, 3, 1).unwrap();
    let s = h
        .wait("delivered", &mut seen, |s, _| {
            s.delivered == 3 && s.state == "connected"
        })
        .await;
    assert_eq!((s.problem, s.last_error, s.waiting), (None, None, 0));
    assert_eq!(connected_lines(&h.log), 1);
    h.delivery.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn partitions_without_a_leader_and_a_refused_topic_are_named() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic(TOPIC, 3, 1).unwrap();
    mock.partition_leader(TOPIC, 1, None).unwrap();
    let h = start(|_| {});
    h.connect(&mock.bootstrap_servers());
    let mut seen = Vec::new();
    let s = h
        .wait("no leader", &mut seen, |s, _| s.problem.is_some())
        .await;
    assert_eq!(
        (s.state, s.problem),
        ("failing", Some(Failure::NoLeader)),
        "{s:?}"
    );
    assert!(!seen.contains(&"connected"), "{seen:?}");
    assert!(s.last_error.unwrap().contains("1 of the 3 partitions"));
    mock.partition_leader(TOPIC, 1, Some(1)).unwrap();
    h.wait("connected", &mut seen, |s, _| s.state == "connected")
        .await;

    // Another connection, to a topic this user may not use.
    h.delivery.connect(None);
    let mut seen = Vec::new();
    h.wait("disconnected", &mut seen, |s, _| {
        s.state == "not_configured"
    })
    .await;
    mock.topic_error(
        TOPIC,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
    )
    .unwrap();
    h.connect(&mock.bootstrap_servers());
    let mut seen = Vec::new();
    let s = h
        .wait("not authorized", &mut seen, |s, _| s.problem.is_some())
        .await;
    assert_eq!(
        (s.state, s.problem),
        ("failing", Some(Failure::NotAuthorized)),
        "{s:?}"
    );
    assert!(!seen.contains(&"connected"), "{seen:?}");
    h.warnings_each_said_once();
    h.delivery.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn payloads_timing_out_are_failing_timed_out() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic(TOPIC, 1, 1).unwrap();
    // Retriable errors until the attempt times out.
    mock.request_errors(
        rdkafka::types::RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 1000],
    );
    let h = start(|c| c.attempt_timeout = Duration::from_millis(300));
    h.connect(&mock.bootstrap_servers());
    let mut seen = Vec::new();
    h.wait("connected", &mut seen, |s, _| s.state == "connected")
        .await;
    h.write(2).await;
    let s = h
        .wait("timed out", &mut seen, |s, _| s.problem.is_some())
        .await;
    assert_eq!(
        (s.state, s.problem),
        ("failing", Some(Failure::TimedOut)),
        "{s:?}"
    );
    mock.clear_request_errors(rdkafka::types::RDKafkaApiKey::Produce);
    h.wait("delivered", &mut seen, |s, _| {
        s.delivered == 2 && s.state == "connected"
    })
    .await;
    // Each attempt after one that timed out with nothing acknowledged is twice as long, up to
    // eight times the configured one: a new producer slower than one attempt (a loaded
    // machine) would otherwise time out in turn, forever (this test did, on a loaded machine).
    let attempts: Vec<u64> = h
        .log
        .lines()
        .iter()
        .filter(|l| l.message == "new Kafka producer" && l.fields.contains("timed out"))
        .map(|l| {
            l.fields
                .split_whitespace()
                .find_map(|f| f.strip_prefix("attempt_ms="))
                .and_then(|ms| ms.parse().ok())
                .unwrap_or_else(|| panic!("no attempt_ms in {:?}", l.fields))
        })
        .collect();
    assert_eq!(attempts.first(), Some(&600), "{attempts:?}");
    for pair in attempts.windows(2) {
        assert_eq!(pair[1], (pair[0] * 2).min(2400), "{attempts:?}");
    }
    h.warnings_each_said_once();
    h.delivery.stop().await;
}

/// What the server's scheduler reads to tell when Kafka's threads, under SCHED_IDLE, have
/// waited long enough: it counts while payloads wait with nothing acknowledged, and is zero
/// again once they are.
#[tokio::test]
async fn its_lag_counts_while_payloads_wait_without_progress_and_ends_when_they_are_acknowledged() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic(TOPIC, 1, 1).unwrap();
    let h = start(|_| {});
    h.connect(&mock.bootstrap_servers());
    let mut seen = Vec::new();
    h.wait("connected", &mut seen, |s, _| s.state == "connected")
        .await;
    let lag = h.delivery.lag();
    assert_eq!(lag.lagging_for(), Duration::ZERO, "nothing waits");
    mock.request_errors(
        rdkafka::types::RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 1000],
    );
    h.write(2).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while lag.lagging_for() < Duration::from_millis(300) {
        assert!(
            Instant::now() < deadline,
            "no lag: {:?}",
            h.delivery.status()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(h.delivery.status().delivered, 0);
    mock.clear_request_errors(rdkafka::types::RDKafkaApiKey::Produce);
    // The turn that resolves them says so before it publishes the count.
    h.wait("delivered", &mut seen, |s, _| s.delivered == 2)
        .await;
    assert_eq!(lag.lagging_for(), Duration::ZERO);
    h.delivery.stop().await;
}

/// Regression (issue 10): while the brokers were unreachable, every failed connection attempt
/// was logged twice (librdkafka's own log line, and the error callback's warning), about six
/// lines a second.
#[tokio::test(flavor = "multi_thread")]
async fn unreachable_brokers_are_said_once_not_at_every_attempt() {
    let closed: Vec<String> = (0..3)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .to_string()
        })
        .collect();
    let h = start(|_| {});
    h.connect(&closed.join(","));
    let errors = |log: &Capture| log.count(|l| l.message == "librdkafka error");
    let mut seen = Vec::new();
    let s = h
        .wait("four errors", &mut seen, |s, log| {
            errors(log) >= 4 && s.problem.is_some()
        })
        .await;
    assert_eq!(
        (s.state, s.problem),
        ("failing", Some(Failure::Unreachable)),
        "{s:?}"
    );
    let warnings = h.warnings_each_said_once();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!(kind(&warnings[0]), "unreachable");
    // librdkafka's own lines for the same failures are there for debugging only.
    assert!(
        h.log
            .count(|l| l.target == "librdkafka" && l.level == Level::DEBUG)
            >= 1,
        "{:#?}",
        h.log.lines()
    );
    h.delivery.stop().await;
}
