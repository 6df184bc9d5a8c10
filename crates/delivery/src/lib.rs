//! Delivery: how payloads leave the request path and reach their destinations.
//!
//! ```text
//! runtime ──offer()──▶ Handoff (bounded, never blocks) ──▶ Dispatcher ──▶ each PayloadSink
//! ```
//!
//! The [`Handoff`] is the one seam between executing algorithms and delivering their payloads:
//! `offer` never waits; when the queue is full the payload is dropped and counted
//! (`insights_payloads_dropped_total{reason="handoff_full"}`). The [`Dispatcher`] encodes each
//! payload once and hands the same bytes to every sink: today the embedded store
//! ([`StoreSink`]); the Kafka spool plugs in beside it as another [`PayloadSink`].

mod dispatcher;
mod handoff;
pub mod kafka;
mod sink;
mod spool;
mod store_sink;

pub use dispatcher::{Dispatcher, DispatcherConfig};
pub use handoff::Handoff;
pub use kafka::{KafkaConfig, KafkaDelivery, KafkaStatus, MessageKey};
pub use sink::{BoxFuture, DropReason, EncodedPayload, Outcome, PayloadSink, SinkError};
pub use store_sink::StoreSink;
