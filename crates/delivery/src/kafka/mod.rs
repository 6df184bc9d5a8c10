//! Kafka delivery, in the shape every sink has: `config` (what an operator sets), `sink` (the
//! [`PayloadSink`](crate::PayloadSink) and the status the admin sees), `request_builder` (a
//! payload as a spool record and as a message), `service` (the producer thread; `service/health`:
//! what it knows about the connection), `context` (librdkafka's callbacks), `logs` (warnings
//! said once), `tests` (against librdkafka's mock cluster).
//!
//! ```text
//! Dispatcher ──KafkaDelivery::write──▶ producer thread ──append──▶ Spool (segments on disk)
//!                                        │  ◀──next── spool                ▲ resolve
//!                                        ▼                                 │
//!                                 ThreadedProducer ──delivery callback──▶ events
//! ```
//!
//! One thread owns the spool and the producer, so their state needs no locks; everything
//! reaches it as an event on one channel. Each payload gets attempts for `window` after it
//! was handed over: librdkafka retries within one attempt (`attempt_timeout`), the thread starts
//! another attempt while the window lasts (twice as long after each one that timed out with
//! nothing acknowledged, up to 8 times), and after it the payload is dropped and counted.
//!
//! The state the admin sees is what delivery sees: *connected* only once a broker connection is
//! up and the topic's metadata shows it can take writes (every partition with a leader);
//! *failing* with the [`Failure`](insights_kafka::Failure) that error codes, delivery reports
//! and the topic's metadata name (topic missing, not authorized, partitions without a leader,
//! messages timing out, brokers unreachable, credentials or certificates refused). Warnings go
//! through `logs::Limiter`: each kind once, then summarised.

mod config;
mod context;
mod logs;
mod request_builder;
mod service;
mod sink;
#[cfg(test)]
mod tests;

pub use config::{KafkaConfig, MessageKey};
pub use sink::{KafkaDelivery, KafkaStatus};
