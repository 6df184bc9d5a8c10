//! What a payload becomes on its way to Kafka: a spool record (the message key and the JSON,
//! as the dispatcher encoded it), and from the record, the message handed to the producer.

use std::sync::Arc;

use rdkafka::producer::BaseRecord;

use super::MessageKey;
use crate::EncodedPayload;
use crate::spool::Record;

/// The spool's (key, value) for each payload of a batch: the bytes are shared, not copied.
pub(super) fn spool_rows(batch: &[EncodedPayload], key: MessageKey) -> Vec<(Arc<str>, Arc<str>)> {
    batch
        .iter()
        .map(|p| {
            let key: Arc<str> = match key {
                MessageKey::Algorithm => p.algorithm.path().into(),
                MessageKey::None => "".into(),
            };
            (key, p.json.clone())
        })
        .collect()
}

/// The message for a spooled record, carrying its sequence number to the delivery callback.
pub(super) fn message<'a>(topic: &'a str, record: &'a Record) -> BaseRecord<'a, [u8], [u8], usize> {
    let message =
        BaseRecord::with_opaque_to(topic, record.seq as usize).payload(record.value.as_bytes());
    if record.key.is_empty() {
        message
    } else {
        message.key(record.key.as_bytes())
    }
}
