//! librdkafka's callbacks (statistics, log, errors, delivery reports), each turned into an
//! [`Event`] for the producer thread. They run on librdkafka's own threads, so they only send.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryResult, ProducerContext};

use super::service::Event;

/// One producer's callbacks, tagged with its generation so that the thread can ignore those of
/// a producer it replaced.
pub(super) struct Context {
    generation: u64,
    events: Mutex<mpsc::Sender<Event>>,
    /// A broker connection came up (from librdkafka's statistics); reported once.
    broker_up: AtomicBool,
}

impl Context {
    pub(super) fn new(generation: u64, events: mpsc::Sender<Event>) -> Context {
        Context {
            generation,
            events: Mutex::new(events),
            broker_up: AtomicBool::new(false),
        }
    }
}

/// The part of librdkafka's statistics that says whether a broker connection is up.
#[derive(serde::Deserialize)]
struct BrokerStates {
    brokers: HashMap<String, BrokerState>,
}

#[derive(serde::Deserialize)]
struct BrokerState {
    nodeid: i32,
    state: String,
}

impl ClientContext for Context {
    /// A broker connection counts as up once librdkafka has one in state `UP` (connected, TLS
    /// and SASL done), which ends an "unreachable". (*Connected* also needs the topic: see
    /// `ProducerThread::check_topic`.) After that the statistics are ignored; deliveries tell the rest.
    fn stats_raw(&self, statistics: &[u8]) {
        if self.broker_up.load(Ordering::Relaxed) {
            return;
        }
        let Ok(stats) = serde_json::from_slice::<BrokerStates>(statistics) else {
            return;
        };
        if stats
            .brokers
            .values()
            .any(|b| b.nodeid >= 0 && b.state == "UP")
        {
            self.broker_up.store(true, Ordering::Relaxed);
            let _ = self
                .events
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .send(Event::BrokerUp {
                    generation: self.generation,
                });
        }
    }

    /// librdkafka's log goes to the delivery thread, which says each kind once (see `logs`).
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let _ = self
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(Event::Log {
                level,
                facility: fac.to_string(),
                message: log_message.to_string(),
            });
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let _ = self
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(Event::ClientError {
                generation: self.generation,
                code: error.rdkafka_error_code(),
                message: format!("{error}: {reason}"),
            });
    }
}

impl ProducerContext for Context {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: usize) {
        let result = match result {
            Ok(_) => Ok(()),
            Err((e, _)) => Err((e.rdkafka_error_code(), e.to_string())),
        };
        let _ = self
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(Event::Delivered {
                generation: self.generation,
                seq: seq as u64,
                result,
            });
    }
}
