//! The connection test: connect with the given settings, fetch the cluster's metadata, check the
//! topic, and say in words what is wrong, if anything.

use std::sync::Mutex;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, Producer};
use serde::Serialize;

use crate::failure::topic_in;
use crate::{ConnectionSettings, Failure, Security};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictCode {
    Ok,
    Unreachable,
    AuthenticationFailed,
    TlsFailed,
    UnknownTopic,
    /// The brokers do not allow this user to use the topic or the cluster.
    NotAuthorized,
    /// Some partitions of the topic have no leader.
    NoLeader,
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

/// Collects the errors librdkafka reports while the test runs, with their codes.
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

    /// librdkafka logs each failure it also reports as an error (above): the verdict says it,
    /// the log would only repeat it.
    fn log(&self, _level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        tracing::debug!(target: "librdkafka", fac, "{log_message}");
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
    // Error callbacks are served by polling, one event per turn of `poll` with a zero timeout:
    // poll for a moment, so that every error reported before the fetch ended is served (a
    // refused password is reported, and then the fetch fails).
    producer.poll(Duration::from_millis(100));
    let mut errors = producer
        .context()
        .errors
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    // rdkafka 0.39 calls the error callback twice for each error event of a producer (once
    // in `Client::poll_event`, once in `BaseProducer::poll`).
    errors.dedup();
    match result {
        Ok(metadata) => match topic_in(&metadata, topic) {
            Ok(partitions) => Verdict {
                code: VerdictCode::Ok,
                message: format!(
                    "connected to {} broker(s); topic {topic:?} has {partitions} partition(s)",
                    metadata.brokers().len(),
                ),
            },
            Err((failure, detail)) => {
                let (code, advice) = match failure {
                    Failure::UnknownTopic => (
                        VerdictCode::UnknownTopic,
                        "create it (Insights does not create topics), or check its name",
                    ),
                    Failure::NotAuthorized => (
                        VerdictCode::NotAuthorized,
                        "allow this user to describe and write to the topic (an ACL)",
                    ),
                    Failure::NoLeader => (
                        VerdictCode::NoLeader,
                        "writes to them would wait until the cluster elects leaders",
                    ),
                    _ => (VerdictCode::Error, "see the brokers' logs"),
                };
                Verdict {
                    code,
                    message: format!("connected, but {detail}; {advice}"),
                }
            }
        },
        Err(e) => classify(settings, &errors, &e),
    }
}

/// The verdict on a failed metadata fetch, from the codes of the errors librdkafka reported
/// meanwhile (and the fetch's own): the most specific failure among them is the cause.
fn classify(
    settings: &ConnectionSettings,
    errors: &[(Option<RDKafkaErrorCode>, String)],
    failure: &KafkaError,
) -> Verdict {
    let fetch = failure
        .rdkafka_error_code()
        .map(|code| (Some(code), failure.to_string()));
    let cause = errors
        .iter()
        .chain(fetch.iter())
        .filter_map(|(code, reason)| Some((Failure::of((*code)?)?, reason.as_str())))
        .max_by_key(|(f, _)| *f);
    match cause {
        Some((Failure::AuthenticationFailed, reason)) => {
            let mechanism = match &settings.security {
                Security::SaslScramTls(s) => s.mechanism.as_str(),
                Security::Plaintext => "none",
            };
            Verdict {
                code: VerdictCode::AuthenticationFailed,
                message: format!(
                    "authentication failed: the brokers refused the username or password ({mechanism}): {reason}"
                ),
            }
        }
        Some((Failure::TlsFailed, reason)) => Verdict {
            code: VerdictCode::TlsFailed,
            message: format!(
                "TLS verification failed: {reason}; check that the CA certificate is the one that signed the brokers' certificates, and that those certificates are issued for the host names in brokers"
            ),
        },
        Some((Failure::NotAuthorized, reason)) => Verdict {
            code: VerdictCode::NotAuthorized,
            message: format!(
                "the brokers do not allow this user to use the cluster: {reason}; check its ACLs"
            ),
        },
        // Anything else (refused, unresolvable, dropped, timed out, or nothing reported at all)
        // means that no broker answered.
        _ => {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConnectionRequest;

    fn scram() -> ConnectionSettings {
        ConnectionRequest {
            topic: "insights".into(),
            brokers: "localhost:9093".into(),
            connection_type: "sasl_scram_tls".into(),
            sasl_mechanism: Some("SCRAM-SHA-512".into()),
            username: Some("u".into()),
            password: Some(crate::Secret::new("p".to_string())),
            ca_certificate: Some(include_str!("../tests/data/test-ca.pem").into()),
        }
        .validate(None)
        .unwrap()
        .0
    }

    fn verdict(errors: &[(RDKafkaErrorCode, &str)]) -> VerdictCode {
        let errors: Vec<_> = errors
            .iter()
            .map(|(c, r)| (Some(*c), r.to_string()))
            .collect();
        let failure = KafkaError::MetadataFetch(RDKafkaErrorCode::BrokerTransportFailure);
        classify(&scram(), &errors, &failure).code
    }

    /// Regression (issue 10): every librdkafka message on a SASL/SCRAM-over-TLS connection
    /// starts with `sasl_ssl://`, and a refused connection was blamed on TLS.
    #[test]
    fn a_refused_connection_over_sasl_ssl_is_unreachable_not_tls() {
        use RDKafkaErrorCode as C;
        let refused = "sasl_ssl://localhost:9093/bootstrap: Connect to ipv4#127.0.0.1:9093 failed: Connection refused (after 0ms in state CONNECT)";
        assert_eq!(
            verdict(&[
                (C::BrokerTransportFailure, refused),
                (C::AllBrokersDown, "1/1 brokers are down")
            ]),
            VerdictCode::Unreachable
        );
        // The words that once decided the verdict decide nothing.
        assert_eq!(
            verdict(&[(
                C::Resolve,
                "sasl_ssl://x:1/bootstrap: SASL authentication certificate"
            )]),
            VerdictCode::Unreachable
        );
        // The code decides, and the most specific one wins over what follows from it.
        assert_eq!(
            verdict(&[
                (
                    C::SSL,
                    "sasl_ssl://localhost:9093/bootstrap: SSL handshake failed"
                ),
                (C::AllBrokersDown, "1/1 brokers are down")
            ]),
            VerdictCode::TlsFailed
        );
        assert_eq!(
            verdict(&[
                (C::AllBrokersDown, "1/1 brokers are down"),
                (
                    C::Authentication,
                    "sasl_ssl://localhost:9093/bootstrap: SASL authentication error: invalid-proof"
                ),
            ]),
            VerdictCode::AuthenticationFailed
        );
        assert_eq!(verdict(&[]), VerdictCode::Unreachable);
    }
}
