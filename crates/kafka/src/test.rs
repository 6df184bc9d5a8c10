//! The connection test: connect with the given settings, fetch the cluster's metadata, check the
//! topic, and say in words what is wrong, if anything.

use std::sync::Mutex;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, Producer};
use serde::Serialize;

use crate::{ConnectionSettings, Security};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictCode {
    Ok,
    Unreachable,
    AuthenticationFailed,
    TlsFailed,
    UnknownTopic,
    Error,
}

/// The test's answer: a code for programs, a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub code: VerdictCode,
    pub message: String,
}

impl Verdict {
    pub fn is_ok(&self) -> bool {
        self.code == VerdictCode::Ok
    }
}

/// Collects what librdkafka reports while the test runs.
#[derive(Default)]
struct Capture {
    errors: Mutex<Vec<(Option<RDKafkaErrorCode>, String)>>,
}

impl ClientContext for Capture {
    fn error(&self, error: KafkaError, reason: &str) {
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((error.rdkafka_error_code(), reason.to_string()));
    }

    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, _fac: &str, log_message: &str) {
        // Some failures (a SCRAM proof the broker rejects, for one) only show in the log.
        if (level as i32) <= (rdkafka::config::RDKafkaLogLevel::Warning as i32) {
            self.errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((None, log_message.to_string()));
        }
    }
}

impl rdkafka::producer::ProducerContext for Capture {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::producer::DeliveryResult<'_>, _: ()) {}
}

/// A librdkafka error in words, without the configuration value it may quote (a
/// `ClientConfig` error names the key and its value, which could be the password).
pub fn redacted(e: &KafkaError) -> String {
    match e {
        KafkaError::ClientConfig(_, description, key, _) => {
            format!("invalid client setting {key}: {description}")
        }
        other => other.to_string(),
    }
}

/// Connects with `settings` and reports whether payloads could be delivered: brokers reachable,
/// credentials accepted, TLS verified, topic present with a leader for every partition.
/// Blocking: call it from a blocking thread. It writes nothing to the topic, because consumers
/// of the topic would see a message that is not a payload.
pub fn test_connection(settings: &ConnectionSettings, timeout: Duration) -> Verdict {
    let mut config = settings.client_config();
    config
        .set(
            "socket.connection.setup.timeout.ms",
            timeout.as_millis().max(1000).to_string(),
        )
        .set("reconnect.backoff.max.ms", "1000");
    let producer: BaseProducer<Capture> = match config.create_with_context(Capture::default()) {
        Ok(p) => p,
        Err(e) => {
            return Verdict {
                code: VerdictCode::Error,
                message: format!("the Kafka client could not be created: {}", redacted(&e)),
            };
        }
    };
    let topic = settings.topic.as_str();
    let result = producer.client().fetch_metadata(None, timeout);
    // Error callbacks are served by polling.
    producer.poll(Duration::ZERO);
    let errors = producer
        .context()
        .errors
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    match result {
        Ok(metadata) => match metadata.topics().iter().find(|t| t.name() == topic) {
            None => Verdict {
                code: VerdictCode::UnknownTopic,
                message: format!(
                    "connected, but the topic {topic:?} does not exist; create it (Insights does not create topics)"
                ),
            },
            Some(t) if t.error().is_some() || t.partitions().is_empty() => Verdict {
                code: VerdictCode::UnknownTopic,
                message: format!(
                    "connected, but the topic {topic:?} cannot be used: {:?}",
                    t.error()
                ),
            },
            Some(t) if t.partitions().iter().any(|p| p.leader() < 0) => Verdict {
                code: VerdictCode::Error,
                message: format!(
                    "connected, but some partitions of {topic:?} have no leader; writes to them would wait"
                ),
            },
            Some(t) => Verdict {
                code: VerdictCode::Ok,
                message: format!(
                    "connected to {} broker(s); topic {topic:?} has {} partition(s)",
                    metadata.brokers().len(),
                    t.partitions().len()
                ),
            },
        },
        Err(e) => classify(settings, &errors, &e),
    }
}

fn classify(
    settings: &ConnectionSettings,
    errors: &[(Option<RDKafkaErrorCode>, String)],
    failure: &KafkaError,
) -> Verdict {
    let find = |code: RDKafkaErrorCode| errors.iter().find(|(c, _)| *c == Some(code));
    let ssl_hint = |reason: &str| {
        let r = reason.to_ascii_lowercase();
        r.contains("ssl") || r.contains("certificate")
    };
    let auth_hint = |reason: &str| {
        let r = reason.to_ascii_lowercase();
        r.contains("sasl") && (r.contains("authentication") || r.contains("invalid-proof"))
    };
    if let Some((_, reason)) =
        find(RDKafkaErrorCode::Authentication).or_else(|| errors.iter().find(|(_, r)| auth_hint(r)))
    {
        let mechanism = match &settings.security {
            Security::SaslScramTls(s) => s.mechanism.as_str(),
            Security::Plaintext => "none",
        };
        return Verdict {
            code: VerdictCode::AuthenticationFailed,
            message: format!(
                "authentication failed: the brokers refused the username or password ({mechanism}): {reason}"
            ),
        };
    }
    if let Some((_, reason)) =
        find(RDKafkaErrorCode::SSL).or_else(|| errors.iter().find(|(_, r)| ssl_hint(r)))
    {
        return Verdict {
            code: VerdictCode::TlsFailed,
            message: format!(
                "TLS verification failed: {reason}; check that the CA certificate is the one that signed the brokers' certificates, and that those certificates are issued for the host names in brokers"
            ),
        };
    }
    let detail = if errors.is_empty() {
        failure.to_string()
    } else {
        errors
            .iter()
            .map(|(_, r)| r.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    };
    Verdict {
        code: VerdictCode::Unreachable,
        message: format!(
            "none of the brokers ({}) answered: {detail}",
            settings.brokers.joined()
        ),
    }
}
