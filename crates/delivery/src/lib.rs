//! Delivery: how payloads leave the request path and reach their destinations.
//!
//! ```text
//! runtime ──offer()──▶ Handoff ──▶ Dispatcher ─┬─▶ queue ─▶ task ─▶ StoreSink ─▶ SQLite
//!                      (bounded)   (batches,   │
//!                                  encoded     └─▶ queue ─▶ task ─▶ KafkaDelivery ─▶ Spool ─▶ topic
//!                                  once)   ├─▶ queue ─▶ task ─▶ DatadogDelivery ─▶ Spool ─▶ /api/v2/series
//!                                          └─▶ queue ─▶ task ─▶ SeriesSink ─▶ series store
//! ```
//!
//! - [`Handoff`] (`handoff.rs`): the one seam between executing algorithms and delivering their
//!   payloads. `offer` never waits; when the queue is full the payload is dropped and counted
//!   (`insights_payloads_dropped_total{reason="handoff_full"}`).
//! - [`Dispatcher`] (`dispatcher.rs`): drains the hand-off in batches (group commit), encodes
//!   each payload once, and gives the same batch to every sink through a bounded queue and a
//!   task of the sink's own, so a slow or stuck sink never delays another. A sink whose queue
//!   is full loses the batch, counted as `<sink>_queue_full`; when no sink has room the
//!   dispatcher waits and the hand-off fills. On shutdown every payload handed over is written
//!   to every sink before `run` returns.
//! - The sink shape (`sink.rs`): [`PayloadSink`] takes an `Arc<[EncodedPayload]>` and answers
//!   an [`Outcome`] (delivered, will retry, skipped, dropped with a [`DropReason`]); the
//!   reason's [`label`](DropReason::label) is the metric's label, by exhaustive match.
//! - [`StoreSink`] (`store_sink.rs`): the embedded store, with retries and pruning.
//! - [`kafka`]: the Kafka sink, in the folder shape every sink follows (`config`, `sink`,
//!   `request_builder`, `service`, `tests`).
//! - [`datadog`]: the Datadog sink, in the same shape, with a spool of its own.
//! - `spool.rs`: the durable spool (segments of checksummed records, a resolution log, torn-tail
//!   recovery, a bound in bytes), shared machinery for any remote sink; the Kafka sink keeps
//!   its payloads there until the broker acknowledges them.
//! - `lane.rs`: what a scheduler of a remote sink's threads needs from it ([`ThreadHooks`],
//!   [`Lag`]); the priorities themselves are the server's (`insights::background`).

mod backlog;
pub mod datadog;
mod dispatcher;
mod handoff;
pub mod kafka;
mod lane;
mod series_sink;
mod sink;
mod spool;
mod store_sink;

pub use backlog::Backlog;
pub use datadog::{DatadogConfig, DatadogDelivery, DatadogSettings, DatadogStatus};
pub use dispatcher::{Dispatcher, DispatcherConfig};
pub use handoff::{Handoff, HandoffReceiver};
pub use kafka::{KafkaConfig, KafkaDelivery, KafkaStatus, MessageKey};
pub use lane::{Lag, ThreadHooks};
pub use series_sink::SeriesSink;
pub use sink::{BoxFuture, DropReason, EncodedPayload, Outcome, PayloadSink, SinkError};
pub use store_sink::StoreSink;
