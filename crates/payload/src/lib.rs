//! The Insights payload: one flat JSON object per execution of an algorithm version with
//! Insights enabled, byte-compatible with what Algorithmia sent to Kafka.
//!
//! This crate owns the wire format and its rules, and nothing else:
//! - [`report`] parses what an algorithm reports (`POST /v1/insights` bodies of the Python, Java
//!   and R clients) into metric values;
//! - [`MetricSet`] holds the metrics of one execution and enforces the documented limits
//!   (25 metrics, 25,000 bytes of keys plus values, reserved names);
//! - [`Payload`] is the finished execution, and [`Payload::to_json`] its exact encoding.
//!
//! Every other stage (store, Kafka, bridge) moves the encoded bytes; none re-encodes them.

pub mod flat;
mod ids;
pub mod keys;
mod metrics;
mod payload;
pub mod report;

pub use ids::{RequestId, SessionId};
pub use metrics::{
    MAX_METRICS, MAX_METRICS_BYTES, MetricRejection, MetricSet, MetricValue, RESERVED_NAMES,
    RESERVED_PREFIX, RejectionReason,
};
pub use payload::{AlgorithmRef, ExecutionStatus, Payload, format_time, parse_time};
