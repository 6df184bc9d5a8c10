//! The Kafka connection's state in words a person understands. librdkafka's errors name the
//! failing layer (`Local: Authentication failure`, `SSL handshake failed`, `Connection
//! refused`); the panel says what that means and what to check. The raw error stays available
//! as technical detail.

use insights_delivery::KafkaStatus;
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
            "No Kafka connection is set: payloads are kept in the embedded store only.".to_string(),
        ),
        "connecting" => (
            "Connecting",
            "Reaching the brokers; payloads wait until they answer.".to_string(),
        ),
        "connected" => (
            "Connected",
            "Payloads are being delivered to Kafka.".to_string(),
        ),
        _ => (
            "Failing",
            match &status.last_error {
                Some(e) => cause(e).to_string(),
                None => "Delivery is failing; payloads wait and are retried.".to_string(),
            },
        ),
    };
    StatusWords { label, sentence }
}

fn cause(error: &str) -> &'static str {
    let e = error.to_ascii_lowercase();
    if e.contains("authentication") || e.contains("sasl") || e.contains("invalid-proof") {
        "The brokers refused the username or password (SASL authentication failed). Check the credentials and the SASL mechanism."
    } else if e.contains("ssl") || e.contains("certificate") || e.contains("tls") {
        "The TLS handshake failed: the CA certificate does not match the brokers' certificate, or a broker's host name is not in its certificate."
    } else if e.contains("unknown topic") || e.contains("unknown_topic") {
        "The topic does not exist on the cluster. Create it, or check its name."
    } else if e.contains("authorization") || e.contains("not authorized") {
        "The brokers do not allow this user to write to the topic (an ACL is missing)."
    } else if e.contains("timed out") || e.contains("timeout") {
        "The brokers did not acknowledge payloads in time; they are kept and sent again. Check that the cluster is up and reachable from this server."
    } else if e.contains("refused")
        || e.contains("all broker")
        || e.contains("transport")
        || e.contains("resolve")
        || e.contains("connect")
    {
        "No broker can be reached at the configured addresses. Check the broker URLs and that the brokers are running; payloads wait meanwhile."
    } else {
        "Delivery is failing; payloads wait and are retried. The technical detail below has the broker's error."
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failing(error: &str) -> String {
        status_in_words(&KafkaStatus {
            state: "failing",
            last_error: Some(error.into()),
            ..Default::default()
        })
        .sentence
    }

    #[test]
    fn librdkafka_errors_in_words() {
        // Messages as librdkafka and the delivery thread write them (from the broker tests).
        assert!(failing("Client error: Local: Authentication failure: SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512").contains("username or password"));
        assert!(failing("Client error: Local: SSL error: ssl/tls alert handshake failure: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed").contains("TLS handshake"));
        assert!(failing("Message production error: UnknownTopicOrPartition (Broker: Unknown topic or partition)").contains("does not exist"));
        assert!(
            failing("Client error: Local: All broker connections are down: 1/1 brokers are down")
                .contains("No broker can be reached")
        );
        assert!(
            failing("Message production error: MessageTimedOut (Local: Message timed out)")
                .contains("in time")
        );
        assert!(failing("something new").contains("technical detail"));
        let idle = status_in_words(&KafkaStatus {
            state: "not_configured",
            ..Default::default()
        });
        assert_eq!(idle.label, "Not connected");
    }
}
