//! Datadog delivery, in the shape every sink has (see `kafka`): `config` (what an operator
//! and the administrator set), `sink` (the [`PayloadSink`](crate::PayloadSink), the status the
//! admin sees, the key check), `request_builder` (a payload as a spool record and as v2 series),
//! `service` (the delivery thread; `service/health`: what the intake's answers mean).
//!
//! ```text
//! Dispatcher ──DatadogDelivery::write──▶ delivery thread ──append──▶ Spool (<data-dir>/datadog-spool)
//!                                          │  ◀──next── spool               ▲ resolve
//!                                          ▼                                │
//!                            POST /api/v2/series (zstd, ≤ 512,000 B) ──202──┘
//! ```
//!
//! The same spool machinery as Kafka, in a directory of its own: a payload is resolved only
//! when the intake answered 202 for it, or it was dropped and counted, so a crash during an
//! outage loses nothing still inside its window. The thread has a runtime of its own, and the
//! dispatcher gives it a queue of its own: a slow intake delays nothing else.

mod config;
mod request_builder;
mod service;
mod sink;

pub use config::{DatadogConfig, DatadogRequest, DatadogSettings, DatadogView, SITES};
pub use service::health::Problem as DatadogProblem;
pub use sink::{DatadogDelivery, DatadogStatus, KeyVerdict, test_api_key};
