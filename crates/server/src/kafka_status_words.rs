//! The Kafka connection's state in words a person understands. Delivery names what it fails
//! on ([`Failure`], read from librdkafka's error codes and the topic's metadata, never from the
//! text of its messages); this says what that means and what to check. The raw error stays
//! available as technical detail.

use insights_delivery::KafkaStatus;
use insights_kafka::Failure;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct StatusWords {
    /// A word or two, for the badge: `Not connected`, `Connecting`, `Connected`, `Failing`.
    pub(crate) label: &'static str,
    /// One sentence.
    pub(crate) sentence: String,
}

pub(crate) fn status_in_words(status: &KafkaStatus) -> StatusWords {
    let (label, sentence) = match status.state {
        "not_configured" => (
            "Not connected",
            "No Kafka connection is set: payloads are kept in the embedded store only.",
        ),
        "connecting" => (
            "Connecting",
            "Reaching the brokers and looking up the topic; payloads wait until both answer.",
        ),
        "connected" => (
            "Connected",
            "The brokers answer and the topic takes writes: payloads are delivered to Kafka.",
        ),
        _ => (
            "Failing",
            match status.problem {
                Some(failure) => cause(failure),
                None => {
                    "Delivery is failing; payloads wait and are retried. The technical detail below has the error."
                }
            },
        ),
    };
    StatusWords {
        label,
        sentence: sentence.to_string(),
    }
}

fn cause(failure: Failure) -> &'static str {
    match failure {
        Failure::AuthenticationFailed => {
            "The brokers refused the username or password (SASL authentication failed). Check the credentials and the SASL mechanism."
        }
        Failure::TlsFailed => {
            "The TLS handshake failed: the CA certificate does not match the brokers' certificate, or a broker's host name is not in its certificate."
        }
        Failure::NotAuthorized => {
            "The brokers do not allow this user to write to the topic (an ACL is missing); payloads wait."
        }
        Failure::UnknownTopic => {
            "The topic does not exist on the cluster; payloads wait. Create it (Insights does not create topics), or check its name."
        }
        Failure::NoLeader => {
            "Some partitions of the topic have no leader broker: payloads for them wait until the cluster elects one."
        }
        Failure::Unreachable => {
            "No broker can be reached at the configured addresses. Check the broker URLs and that the brokers are running; payloads wait meanwhile."
        }
        Failure::TimedOut => {
            "The brokers did not acknowledge payloads in time; they are kept and sent again. Check that the cluster is up and reachable from this server."
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failing(problem: Option<Failure>) -> String {
        status_in_words(&KafkaStatus {
            state: "failing",
            problem,
            last_error: Some("sasl_ssl://localhost:9093/bootstrap: SSL authentication".into()),
            ..Default::default()
        })
        .sentence
    }

    #[test]
    fn each_failure_in_words() {
        // The failure decides, not the words of the error (this one says "SSL" and
        // "authentication" whatever happened).
        for (failure, words) in [
            (Failure::AuthenticationFailed, "username or password"),
            (Failure::TlsFailed, "TLS handshake"),
            (Failure::UnknownTopic, "does not exist"),
            (Failure::NotAuthorized, "do not allow this user"),
            (Failure::NoLeader, "no leader"),
            (Failure::Unreachable, "No broker can be reached"),
            (Failure::TimedOut, "in time"),
        ] {
            let sentence = failing(Some(failure));
            assert!(sentence.contains(words), "{failure:?}: {sentence}");
        }
        assert!(failing(None).contains("technical detail"));
        let idle = status_in_words(&KafkaStatus {
            state: "not_configured",
            ..Default::default()
        });
        assert_eq!(idle.label, "Not connected");
    }
}
