//! The stored Kafka connection: what the administrator saved, kept as one setting in the
//! configuration store (`insights_store::ConfigStore`), its password sealed with the data
//! directory's key ([`SecretBox`], `<data-dir>/secret.key`) so that a copy of the database
//! alone does not reveal it.
//!
//! It lives in the server, not in the store, because it knows the connection's rules
//! (`insights-kafka`) and hands every change to delivery; the store stays ignorant of both.
//! The handlers (`connection.rs`) and the composition root use it; neither touches the setting
//! itself.

use std::sync::Arc;

use insights_kafka::{ConnectionRequest, ConnectionSettings, FieldError, Secret};
use insights_store::{ConfigStore, SecretBox, SecretError, StoreError};
use serde_json::Value;

/// The setting the connection is stored under.
const SETTING: &str = "kafka_connection";

/// Why the stored connection cannot be read or written. The messages are what the admin API
/// reports and the log records, so they say what happened.
#[derive(Debug, thiserror::Error)]
pub enum StoredConnectionError {
    /// The configuration store failed to read, write or remove the setting.
    #[error(transparent)]
    Database(#[from] StoreError),
    /// The sealed password does not open with this data directory's key: `secret.key` was
    /// replaced, or the database comes from another data directory.
    #[error(transparent)]
    PasswordCannotBeOpened(#[from] SecretError),
    /// The stored document no longer reads as a connection request (its shape changed).
    #[error("the stored connection is invalid: {0}")]
    Malformed(#[source] serde_json::Error),
    /// The stored document reads, but no longer passes the connection's rules (rules that
    /// changed since it was saved).
    #[error("the stored connection is invalid: {0:?}")]
    NoLongerValid(Vec<FieldError>),
}

/// The stored connection.
pub struct ConnectionStore {
    store: Arc<dyn ConfigStore>,
    secrets: SecretBox,
    /// Held while a change is saved and handed to delivery, so that concurrent changes
    /// leave the database and delivery agreeing.
    changing: std::sync::Mutex<()>,
}

impl ConnectionStore {
    pub fn new(store: Arc<dyn ConfigStore>, secrets: SecretBox) -> Self {
        Self {
            store,
            secrets,
            changing: std::sync::Mutex::new(()),
        }
    }

    /// Saves `settings` (or removes the connection) and switches delivery to it, as one step.
    pub fn change(
        &self,
        settings: Option<&ConnectionSettings>,
        kafka: &insights_delivery::KafkaDelivery,
    ) -> Result<(), StoredConnectionError> {
        let _one_at_a_time = self.changing.lock().unwrap_or_else(|e| e.into_inner());
        match settings {
            Some(s) => self.save(s)?,
            None => self.clear()?,
        }
        kafka.connect(settings.cloned());
        Ok(())
    }

    /// The stored connection, its password opened; `None` when none is stored.
    pub fn load(&self) -> Result<Option<ConnectionSettings>, StoredConnectionError> {
        let Some(mut doc) = self.store.setting(SETTING)? else {
            return Ok(None);
        };
        let password = match doc.get("password_sealed").and_then(Value::as_str) {
            Some(sealed) => Some(Secret::new(self.secrets.open(sealed)?)),
            None => None,
        };
        if let Some(o) = doc.as_object_mut() {
            o.remove("password_sealed");
            o.remove("password_set");
        }
        let mut request: ConnectionRequest =
            serde_json::from_value(doc).map_err(StoredConnectionError::Malformed)?;
        request.password = password;
        request
            .validate(None)
            .map(|(s, _)| Some(s))
            .map_err(StoredConnectionError::NoLongerValid)
    }

    /// Stores `settings`, replacing the stored connection, the password sealed. Delivery is
    /// not told: [`Self::change`] does both.
    pub fn save(&self, settings: &ConnectionSettings) -> Result<(), StoredConnectionError> {
        let mut doc = serde_json::to_value(settings.view()).expect("a view serializes");
        if let Some(o) = doc.as_object_mut() {
            o.remove("password_set");
            if let Some(p) = settings.password() {
                o.insert(
                    "password_sealed".into(),
                    self.secrets.seal(p.expose()).into(),
                );
            }
        }
        Ok(self.store.set_setting(SETTING, Some(&doc))?)
    }

    /// Removes the stored connection. Delivery is not told: [`Self::change`] does both.
    pub fn clear(&self) -> Result<(), StoredConnectionError> {
        Ok(self.store.set_setting(SETTING, None)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use insights_store::Store;
    use serde_json::json;

    fn stored(dir: &std::path::Path) -> (Arc<dyn ConfigStore>, ConnectionStore) {
        let config: Arc<dyn ConfigStore> = Arc::new(Store::open_in_memory().unwrap());
        let secrets = SecretBox::load_or_create(dir).unwrap();
        (config.clone(), ConnectionStore::new(config, secrets))
    }

    #[test]
    fn a_saved_connection_loads_back_and_clears() {
        let dir = tempfile::tempdir().unwrap();
        let (_, connection) = stored(dir.path());
        assert!(connection.load().unwrap().is_none());
        let request: ConnectionRequest = serde_json::from_value(
            json!({"topic": "t", "brokers": "127.0.0.1:1,127.0.0.1:2", "connection_type": "plaintext"}),
        )
        .unwrap();
        let (settings, _) = request.validate(None).unwrap();
        connection.save(&settings).unwrap();
        assert_eq!(connection.load().unwrap(), Some(settings));
        connection.clear().unwrap();
        assert!(connection.load().unwrap().is_none());
    }

    #[test]
    fn what_cannot_be_loaded_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let (config, connection) = stored(dir.path());
        let plaintext =
            json!({"topic": "t", "brokers": "127.0.0.1:1", "connection_type": "plaintext"});
        let mut cases = [
            (json!({"topic": 7}), "Malformed"),
            (
                json!({"topic": "no spaces", "brokers": "127.0.0.1:1", "connection_type": "plaintext"}),
                "NoLongerValid",
            ),
            (plaintext.clone(), "PasswordCannotBeOpened"),
        ];
        cases[2].0["password_sealed"] = "not sealed with this key".into();
        for (doc, want) in cases {
            config.set_setting(SETTING, Some(&doc)).unwrap();
            let err = connection.load().unwrap_err();
            let got = match err {
                StoredConnectionError::Database(_) => "Database",
                StoredConnectionError::PasswordCannotBeOpened(_) => "PasswordCannotBeOpened",
                StoredConnectionError::Malformed(_) => "Malformed",
                StoredConnectionError::NoLongerValid(_) => "NoLongerValid",
            };
            assert_eq!(got, want, "{doc}: {err}");
        }
    }
}
