//! What an operator sets for Kafka delivery (the spool's bounds, the window, the message key);
//! the connection itself (brokers, topic, credentials) is `insights_kafka::ConnectionSettings`,
//! which the administrator changes at run time.

use std::path::PathBuf;
use std::time::Duration;

/// How Kafka delivery behaves; every bound is here.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// Where the spool lives (`<data-dir>/spool`).
    pub spool_dir: PathBuf,
    /// The most the spool holds on disk; past it the oldest payloads are dropped and counted.
    pub spool_max_bytes: u64,
    pub segment_bytes: u64,
    /// `fdatasync` each appended batch: survives power loss, not only a process crash.
    pub fsync: bool,
    /// How long each payload is tried after it was handed over (Algorithmia: four minutes).
    pub window: Duration,
    /// One attempt: librdkafka's `message.timeout.ms`.
    pub attempt_timeout: Duration,
    /// Payloads handed to the producer and not yet acknowledged, at most.
    pub max_in_flight: usize,
    /// The message key.
    pub key: MessageKey,
    /// A warning that repeats (the same kind of failure) is logged at most this often, with the
    /// number of repeats.
    pub log_interval: Duration,
    /// Called on the producer thread as it starts and stops: how the server schedules it (none
    /// by default). librdkafka's threads are started from it and inherit its priority.
    pub threads: crate::ThreadHooks,
}

impl KafkaConfig {
    pub fn new(spool_dir: PathBuf) -> Self {
        Self {
            spool_dir,
            spool_max_bytes: 1 << 30,
            segment_bytes: 16 << 20,
            fsync: false,
            window: Duration::from_secs(240),
            attempt_timeout: Duration::from_secs(30),
            max_in_flight: 20_000,
            key: MessageKey::Algorithm,
            log_interval: Duration::from_secs(30),
            threads: crate::ThreadHooks::default(),
        }
    }
}

/// What each message is keyed by (and so partitioned by).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKey {
    /// `owner/name`: every payload of an algorithm in one partition, in order.
    Algorithm,
    /// No key: spread over partitions.
    None,
}
