//! What stands in the way of delivery, read from librdkafka's error codes and the cluster's
//! metadata: one classification for the connection test and the delivery thread, so that both
//! name the same cause for the same error. Codes, never the text of messages: librdkafka's
//! messages begin with the broker's name, and `sasl_ssl://…` contains both `sasl` and `ssl`
//! whatever went wrong.

use rdkafka::error::RDKafkaErrorCode;
use rdkafka::metadata::Metadata;
use serde::Serialize;

/// Why payloads cannot be delivered. Ordered from the least to the most specific: a more
/// specific failure explains the less specific ones that follow from it (brokers that refuse
/// the password are unreachable to the client too, and its messages time out), so where
/// several are seen, the most specific is the one to tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// Messages were not acknowledged within their timeout.
    TimedOut,
    /// No broker connection: refused, unresolvable, dropped.
    Unreachable,
    /// Some partitions of the topic have no leader: writes to them wait.
    NoLeader,
    /// The topic does not exist on the cluster.
    UnknownTopic,
    /// The brokers do not allow this user to use the topic (or the cluster).
    NotAuthorized,
    /// The TLS handshake failed: an untrusted certificate, or one for another host name.
    TlsFailed,
    /// The brokers refused the username or password.
    AuthenticationFailed,
}

impl Failure {
    /// The failure an error code stands for; `None` for codes that say nothing about the
    /// connection (a message too large, say, is that message's fault).
    pub fn of(code: RDKafkaErrorCode) -> Option<Failure> {
        use RDKafkaErrorCode as C;
        Some(match code {
            C::Authentication
            | C::SaslAuthenticationFailed
            | C::UnsupportedSASLMechanism
            | C::IllegalSASLState => Failure::AuthenticationFailed,
            C::SSL => Failure::TlsFailed,
            C::TopicAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::TransactionalIdAuthorizationFailed => Failure::NotAuthorized,
            C::UnknownTopic | C::UnknownTopicOrPartition | C::UnknownTopicId => {
                Failure::UnknownTopic
            }
            C::LeaderNotAvailable | C::NotLeaderForPartition => Failure::NoLeader,
            C::BrokerTransportFailure
            | C::AllBrokersDown
            | C::Resolve
            | C::BrokerNotAvailable
            | C::NetworkException => Failure::Unreachable,
            C::MessageTimedOut | C::RequestTimedOut | C::OperationTimedOut | C::TimedOutQueue => {
                Failure::TimedOut
            }
            _ => return None,
        })
    }

    /// The name used in the admin API (`status.problem`).
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::TimedOut => "timed_out",
            Failure::Unreachable => "unreachable",
            Failure::NoLeader => "no_leader",
            Failure::UnknownTopic => "unknown_topic",
            Failure::NotAuthorized => "not_authorized",
            Failure::TlsFailed => "tls_failed",
            Failure::AuthenticationFailed => "authentication_failed",
        }
    }

    /// Whether it is about the topic, so that a look at the topic's metadata can tell when it
    /// is over. (A refused write is not: metadata shows what a user may describe, not what it
    /// may write.)
    pub fn is_about_the_topic(self) -> bool {
        matches!(self, Failure::UnknownTopic | Failure::NoLeader)
    }
}

/// Whether `topic` can take writes, as the cluster's `metadata` describes it: its number of
/// partitions, or why not.
pub fn topic_in(metadata: &Metadata, topic: &str) -> Result<usize, (Failure, String)> {
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Err((
            Failure::UnknownTopic,
            format!("the topic {topic:?} does not exist on the cluster"),
        ));
    };
    if let Some(e) = t.error() {
        let code = RDKafkaErrorCode::from(e);
        return Err(match Failure::of(code) {
            Some(Failure::UnknownTopic) => (
                Failure::UnknownTopic,
                format!("the topic {topic:?} does not exist on the cluster"),
            ),
            failure => (
                failure.unwrap_or(Failure::UnknownTopic),
                format!("the topic {topic:?} cannot be used: {code}"),
            ),
        });
    }
    if t.partitions().is_empty() {
        return Err((
            Failure::UnknownTopic,
            format!("the topic {topic:?} has no partitions"),
        ));
    }
    let leaderless = t.partitions().iter().filter(|p| p.leader() < 0).count();
    if leaderless > 0 {
        return Err((
            Failure::NoLeader,
            format!(
                "{leaderless} of the {} partitions of the topic {topic:?} have no leader",
                t.partitions().len()
            ),
        ));
    }
    Ok(t.partitions().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_layer_is_named_by_its_code() {
        use RDKafkaErrorCode as C;
        for (code, failure) in [
            (C::BrokerTransportFailure, Failure::Unreachable),
            (C::AllBrokersDown, Failure::Unreachable),
            (C::Resolve, Failure::Unreachable),
            (C::Authentication, Failure::AuthenticationFailed),
            (C::SaslAuthenticationFailed, Failure::AuthenticationFailed),
            (C::SSL, Failure::TlsFailed),
            (C::UnknownTopicOrPartition, Failure::UnknownTopic),
            (C::UnknownTopic, Failure::UnknownTopic),
            (C::TopicAuthorizationFailed, Failure::NotAuthorized),
            (C::LeaderNotAvailable, Failure::NoLeader),
            (C::MessageTimedOut, Failure::TimedOut),
        ] {
            assert_eq!(Failure::of(code), Some(failure), "{code:?}");
        }
        assert_eq!(Failure::of(C::MessageSizeTooLarge), None);
    }

    #[test]
    fn the_specific_explains_the_generic() {
        assert!(Failure::AuthenticationFailed > Failure::Unreachable);
        assert!(Failure::TlsFailed > Failure::Unreachable);
        assert!(Failure::Unreachable > Failure::TimedOut);
        assert!(Failure::UnknownTopic > Failure::TimedOut);
        assert!(Failure::NoLeader > Failure::TimedOut);
    }
}
