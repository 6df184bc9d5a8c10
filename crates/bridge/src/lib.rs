//! The bridge from Kafka into InfluxDB (what Telegraf's `kafka_consumer` did in the classic
//! setup), without its flaws: points carry the payload's own `time`, so a redelivered payload
//! overwrites its point instead of adding one.
//!
//! - [`config`]: `bridge.toml`, validated into a [`BridgeConfig`];
//! - [`Mapping`]: one payload → one line-protocol point;
//! - `writer`: the InfluxDB v1 / v2 / v3 write APIs;
//! - [`run`]: consume a batch, write it (retrying while InfluxDB is unavailable), dead-letter
//!   what can never be written, and only then mark the offsets consumed (at least once);
//! - `idle`: the warning when the bridge holds no partition while messages wait that nobody
//!   consumes (a broker that did not rebalance, or another member that is stuck).

pub mod config;
mod idle;
mod mapping;
mod run;
mod telemetry;
mod writer;

pub use config::{BridgeConfig, ConfigError, InfluxApi};
pub use mapping::{Encoded, Mapping, Rejection};
pub use run::{BridgeError, BridgeStats, run, run_with_stats};
pub use telemetry::serve_metrics;
