//! The Kafka connection, as an administrator configures it once per installation, shared by the
//! producer (crate `insights-delivery`) and the bridge: what the admin typed
//! ([`ConnectionRequest`]), validated into [`ConnectionSettings`] with one message per faulty
//! field, turned into a librdkafka configuration, and tested against the real cluster
//! ([`test_connection`]); what an error code means for delivery ([`Failure`]), one
//! classification for the test and the delivery thread.

mod failure;
mod probe;
mod settings;

pub use failure::{Failure, topic_in};
pub use probe::{Verdict, VerdictCode, redacted, test_connection};
pub use settings::{
    BrokerList, CaCertificate, ConnectionRequest, ConnectionSettings, ConnectionView, FieldError,
    SaslScram, ScramMechanism, Secret, Security, TopicName,
};
