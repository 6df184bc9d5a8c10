//! The bridge from Kafka into InfluxDB (what Telegraf's `kafka_consumer` did in the classic
//! setup), without its flaws: points carry the payload's own `time`, so a redelivered payload
//! overwrites its point instead of adding one.
//!
//! Built so far: [`Mapping`], the conversion of one payload into one line-protocol point.
//! The consumer, the InfluxDB writers and the dead-letter sink come next.

mod mapping;

pub use mapping::{Encoded, Mapping, Rejection};
