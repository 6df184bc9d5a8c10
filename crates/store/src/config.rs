//! What an administrator configures, apart from the data it produces: algorithms, their
//! published versions, API keys (hashed), settings (one JSON document per key, such as the
//! Kafka connection with its password sealed by [`crate::SecretBox`]) and the panel's
//! dashboards (one JSON document each). The [`ConfigStore`]
//! trait is the seam every in-memory cache of configuration reads and writes through; today
//! the embedded SQLite [`Store`] implements it.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Result, Store, StoreError};

/// A registered algorithm: where its source lives and how to start it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlgorithmRecord {
    pub owner: String,
    pub name: String,
    pub source_path: String,
    pub command: Vec<String>,
    pub settings: serde_json::Value,
    pub created_at: String,
}

/// A published version: an immutable snapshot of the source and its own settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionRecord {
    pub owner: String,
    pub name: String,
    pub version: String,
    pub snapshot_path: String,
    pub command: Vec<String>,
    pub settings: serde_json::Value,
    pub created_at: String,
}

/// An API key. Only the SHA-256 of the key is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub id: String,
    pub name: String,
    #[serde(skip)]
    pub key_hash: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

/// A dashboard of the panel. The document is opaque JSON here: the server validates it and
/// gives it meaning, as the runtime does for settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DashboardRecord {
    pub id: String,
    pub name: String,
    pub doc: serde_json::Value,
    pub created_at: String,
    pub updated_at: String,
}

/// When an administrator's record was made or last used, as stored and shown: RFC 3339 in UTC
/// (`2026-12-01T22:04:05.123456Z`). Deliberately not the payload's `time` format, which is
/// Algorithmia's wire format for payloads and nothing else.
pub fn record_time(t: time::OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .expect("every UTC time has an RFC 3339 form")
}

/// [`record_time`] of now.
pub fn record_time_now() -> String {
    record_time(time::OffsetDateTime::now_utc())
}

/// Hex SHA-256 of a secret, as stored and compared.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Where configuration is kept: the seam between the in-memory caches of configuration (the
/// runtime's `Catalog`, the server's `ApiKeys` and its stored Kafka connection,
/// `ConnectionStore`) and the database that holds it, kept apart from the payloads so that
/// the two can later live in different places.
///
/// Today the one implementation is the embedded SQLite [`Store`] of one server's data
/// directory. This is where a shared database for several servers will plug in later, and
/// with it a change feed: each cache loads once at start and writes through, so a server
/// learns of another's change only when an implementation can tell the caches what changed.
/// The sealing key ([`crate::SecretBox`], `<data-dir>/secret.key`) stays beside the data
/// directory; servers that share a configuration must share that key too.
///
/// Synchronous, as the store is. Settings are opaque JSON: their owners (the runtime, the
/// server) give them meaning.
pub trait ConfigStore: Send + Sync {
    /// Registers an algorithm; [`StoreError::AlreadyExists`] if its owner and name are taken.
    fn insert_algorithm(&self, a: &AlgorithmRecord) -> Result<()>;

    /// Replaces an algorithm's source and settings (declarative configuration);
    /// [`StoreError::NotFound`] if it is not registered.
    fn update_algorithm(&self, a: &AlgorithmRecord) -> Result<()>;

    /// Every algorithm, by owner and name.
    fn algorithms(&self) -> Result<Vec<AlgorithmRecord>>;

    /// Records a published version; [`StoreError::AlreadyExists`] if it was published before.
    fn insert_version(&self, v: &VersionRecord) -> Result<()>;

    /// Replaces one version's settings; [`StoreError::NotFound`] if it was never published.
    fn update_version_settings(
        &self,
        owner: &str,
        name: &str,
        version: &str,
        settings: &serde_json::Value,
    ) -> Result<()>;

    /// Every published version, by owner and name, oldest first.
    fn versions(&self) -> Result<Vec<VersionRecord>>;

    /// The setting stored under `key`, if any.
    fn setting(&self, key: &str) -> Result<Option<serde_json::Value>>;

    /// Stores `value` under `key`, replacing what was there; `None` removes the setting.
    fn set_setting(&self, key: &str, value: Option<&serde_json::Value>) -> Result<()>;

    /// Stores a new API key (its hash only).
    fn insert_api_key(&self, k: &ApiKeyRecord) -> Result<()>;

    /// Deletes a key; revocation is final. [`StoreError::NotFound`] if there is no such key.
    fn delete_api_key(&self, id: &str) -> Result<()>;

    /// Every API key, oldest first.
    fn api_keys(&self) -> Result<Vec<ApiKeyRecord>>;

    /// Whether a key with this id exists.
    fn api_key_exists(&self, id: &str) -> Result<bool>;

    /// Records when a key was last used.
    fn touch_api_key(&self, id: &str, at: &str) -> Result<()>;

    /// Stores a new dashboard; [`StoreError::AlreadyExists`] if its id is taken.
    fn insert_dashboard(&self, d: &DashboardRecord) -> Result<()>;

    /// Replaces a dashboard's name, document and `updated_at` (its `created_at` stays);
    /// [`StoreError::NotFound`] if there is no such dashboard.
    fn update_dashboard(&self, d: &DashboardRecord) -> Result<()>;

    /// Deletes a dashboard; [`StoreError::NotFound`] if there is no such dashboard.
    fn delete_dashboard(&self, id: &str) -> Result<()>;

    /// The dashboard with this id, if any.
    fn dashboard(&self, id: &str) -> Result<Option<DashboardRecord>>;

    /// Every stored dashboard, oldest first.
    fn dashboards(&self) -> Result<Vec<DashboardRecord>>;
}

impl ConfigStore for Store {
    // --- algorithms and versions -------------------------------------------------------

    fn insert_algorithm(&self, a: &AlgorithmRecord) -> Result<()> {
        let n = self.conn().execute(
            "INSERT INTO algorithms (owner, name, source_path, command, settings, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
            params![
                a.owner,
                a.name,
                a.source_path,
                serde_json::to_string(&a.command)?,
                a.settings.to_string(),
                a.created_at
            ],
        )?;
        if n == 0 {
            return Err(StoreError::AlreadyExists {
                what: format!("algorithm {}/{}", a.owner, a.name),
            });
        }
        Ok(())
    }

    fn update_algorithm(&self, a: &AlgorithmRecord) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE algorithms SET source_path = ?3, command = ?4, settings = ?5
             WHERE owner = ?1 AND name = ?2",
            params![
                a.owner,
                a.name,
                a.source_path,
                serde_json::to_string(&a.command)?,
                a.settings.to_string()
            ],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound {
                what: format!("algorithm {}/{}", a.owner, a.name),
            });
        }
        Ok(())
    }

    fn algorithms(&self) -> Result<Vec<AlgorithmRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT owner, name, source_path, command, settings, created_at
             FROM algorithms ORDER BY owner, name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
        rows.map(|row| {
            let (owner, name, source_path, command, settings, created_at) = row?;
            Ok(AlgorithmRecord {
                owner,
                name,
                source_path,
                command: serde_json::from_str(&command)?,
                settings: serde_json::from_str(&settings)?,
                created_at,
            })
        })
        .collect()
    }

    fn insert_version(&self, v: &VersionRecord) -> Result<()> {
        let n = self.conn().execute(
            "INSERT INTO versions (owner, name, version, snapshot_path, command, settings, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
            params![
                v.owner,
                v.name,
                v.version,
                v.snapshot_path,
                serde_json::to_string(&v.command)?,
                v.settings.to_string(),
                v.created_at
            ],
        )?;
        if n == 0 {
            return Err(StoreError::AlreadyExists {
                what: format!("version {}/{}/{}", v.owner, v.name, v.version),
            });
        }
        Ok(())
    }

    fn update_version_settings(
        &self,
        owner: &str,
        name: &str,
        version: &str,
        settings: &serde_json::Value,
    ) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE versions SET settings = ?4 WHERE owner = ?1 AND name = ?2 AND version = ?3",
            params![owner, name, version, settings.to_string()],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound {
                what: format!("version {owner}/{name}/{version}"),
            });
        }
        Ok(())
    }

    fn versions(&self) -> Result<Vec<VersionRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT owner, name, version, snapshot_path, command, settings, created_at
             FROM versions ORDER BY owner, name, created_at",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
            ))
        })?;
        rows.map(|row| {
            let (owner, name, version, snapshot_path, command, settings, created_at) = row?;
            Ok(VersionRecord {
                owner,
                name,
                version,
                snapshot_path,
                command: serde_json::from_str(&command)?,
                settings: serde_json::from_str(&settings)?,
                created_at,
            })
        })
        .collect()
    }

    // --- settings (one JSON document per key) ------------------------------------------

    fn setting(&self, key: &str) -> Result<Option<serde_json::Value>> {
        let text: Option<String> = self
            .conn()
            .query_row(
                "SELECT value FROM settings WHERE key = ?1",
                params![key],
                |r| r.get(0),
            )
            .optional()?;
        Ok(text.map(|t| serde_json::from_str(&t)).transpose()?)
    }

    fn set_setting(&self, key: &str, value: Option<&serde_json::Value>) -> Result<()> {
        match value {
            Some(v) => self.conn().execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, v.to_string()],
            )?,
            None => self
                .conn()
                .execute("DELETE FROM settings WHERE key = ?1", params![key])?,
        };
        Ok(())
    }

    // --- API keys ----------------------------------------------------------------------

    fn insert_api_key(&self, k: &ApiKeyRecord) -> Result<()> {
        self.conn().execute(
            "INSERT INTO api_keys (id, name, key_hash, created_at, last_used_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![k.id, k.name, k.key_hash, k.created_at, k.last_used_at],
        )?;
        Ok(())
    }

    fn delete_api_key(&self, id: &str) -> Result<()> {
        let n = self
            .conn()
            .execute("DELETE FROM api_keys WHERE id = ?1", params![id])?;
        if n == 0 {
            return Err(StoreError::NotFound {
                what: format!("API key {id}"),
            });
        }
        Ok(())
    }

    fn api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, name, key_hash, created_at, last_used_at FROM api_keys ORDER BY created_at",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(ApiKeyRecord {
                id: r.get(0)?,
                name: r.get(1)?,
                key_hash: r.get(2)?,
                created_at: r.get(3)?,
                last_used_at: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn api_key_exists(&self, id: &str) -> Result<bool> {
        Ok(self
            .conn()
            .query_row("SELECT 1 FROM api_keys WHERE id = ?1", params![id], |_| {
                Ok(())
            })
            .optional()?
            .is_some())
    }

    fn touch_api_key(&self, id: &str, at: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1",
            params![id, at],
        )?;
        Ok(())
    }

    // --- dashboards --------------------------------------------------------------------

    fn insert_dashboard(&self, d: &DashboardRecord) -> Result<()> {
        let n = self.conn().execute(
            "INSERT INTO dashboards (id, name, doc, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
            params![d.id, d.name, d.doc.to_string(), d.created_at, d.updated_at],
        )?;
        if n == 0 {
            return Err(StoreError::AlreadyExists {
                what: format!("dashboard {}", d.id),
            });
        }
        Ok(())
    }

    fn update_dashboard(&self, d: &DashboardRecord) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE dashboards SET name = ?2, doc = ?3, updated_at = ?4 WHERE id = ?1",
            params![d.id, d.name, d.doc.to_string(), d.updated_at],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound {
                what: format!("dashboard {}", d.id),
            });
        }
        Ok(())
    }

    fn delete_dashboard(&self, id: &str) -> Result<()> {
        let n = self
            .conn()
            .execute("DELETE FROM dashboards WHERE id = ?1", params![id])?;
        if n == 0 {
            return Err(StoreError::NotFound {
                what: format!("dashboard {id}"),
            });
        }
        Ok(())
    }

    fn dashboard(&self, id: &str) -> Result<Option<DashboardRecord>> {
        let row = self
            .conn()
            .query_row(
                "SELECT id, name, doc, created_at, updated_at FROM dashboards WHERE id = ?1",
                params![id],
                dashboard_row,
            )
            .optional()?;
        row.map(dashboard_record).transpose()
    }

    fn dashboards(&self) -> Result<Vec<DashboardRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, name, doc, created_at, updated_at FROM dashboards
             ORDER BY created_at, id",
        )?;
        let rows = stmt.query_map([], dashboard_row)?;
        rows.map(|row| dashboard_record(row?)).collect()
    }
}

type DashboardRow = (String, String, String, String, String);

fn dashboard_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DashboardRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn dashboard_record(
    (id, name, doc, created_at, updated_at): DashboardRow,
) -> Result<DashboardRecord> {
    Ok(DashboardRecord {
        id,
        name,
        doc: serde_json::from_str(&doc)?,
        created_at,
        updated_at,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn records_are_stamped_in_rfc_3339_not_the_payload_s_format() {
        let t = time::macros::datetime!(2026-12-01 22:04:05.123456 UTC);
        assert_eq!(record_time(t), "2026-12-01T22:04:05.123456Z");
        let now = record_time_now();
        assert!(now.ends_with('Z') && now.as_bytes()[10] == b'T', "{now}");
    }

    pub(crate) fn algo(name: &str) -> AlgorithmRecord {
        AlgorithmRecord {
            owner: "o".into(),
            name: name.into(),
            source_path: "/src".into(),
            command: vec!["python3".into()],
            settings: serde_json::json!({"pool_size": 2}),
            created_at: "t".into(),
        }
    }

    #[test]
    fn algorithms_and_versions_round_trip_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        {
            let s = Store::open(&path).unwrap();
            s.insert_algorithm(&algo("a")).unwrap();
            assert!(matches!(
                s.insert_algorithm(&algo("a")),
                Err(StoreError::AlreadyExists { .. })
            ));
            s.insert_version(&VersionRecord {
                owner: "o".into(),
                name: "a".into(),
                version: "1.0.0".into(),
                snapshot_path: "/snap".into(),
                command: vec!["x".into()],
                settings: serde_json::json!({"insights_enabled": true}),
                created_at: "t".into(),
            })
            .unwrap();
            s.update_version_settings(
                "o",
                "a",
                "1.0.0",
                &serde_json::json!({"insights_enabled": false}),
            )
            .unwrap();
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(s.algorithms().unwrap(), vec![algo("a")]);
        let v = s.versions().unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].settings,
            serde_json::json!({"insights_enabled": false})
        );
        assert!(matches!(
            s.update_version_settings("o", "a", "9.9.9", &serde_json::json!({})),
            Err(StoreError::NotFound { .. })
        ));
    }

    #[test]
    fn api_keys_are_stored_hashed_and_deleted() {
        let s = Store::open_in_memory().unwrap();
        let rec = ApiKeyRecord {
            id: "k1".into(),
            name: "ci".into(),
            key_hash: hash_secret("simSECRET"),
            created_at: "t".into(),
            last_used_at: None,
        };
        s.insert_api_key(&rec).unwrap();
        let keys = s.api_keys().unwrap();
        assert_eq!(keys[0].key_hash, hash_secret("simSECRET"));
        assert_ne!(keys[0].key_hash, "simSECRET");
        s.touch_api_key("k1", "later").unwrap();
        assert_eq!(
            s.api_keys().unwrap()[0].last_used_at.as_deref(),
            Some("later")
        );
        s.delete_api_key("k1").unwrap();
        assert!(!s.api_key_exists("k1").unwrap());
        assert!(matches!(
            s.delete_api_key("k1"),
            Err(StoreError::NotFound { .. })
        ));
    }

    #[test]
    fn dashboards_are_inserted_updated_listed_and_deleted_through_the_seam() {
        let store: std::sync::Arc<dyn ConfigStore> =
            std::sync::Arc::new(Store::open_in_memory().unwrap());
        let d = |id: &str, name: &str, at: &str| DashboardRecord {
            id: id.into(),
            name: name.into(),
            doc: serde_json::json!({"name": name, "cells": []}),
            created_at: at.into(),
            updated_at: at.into(),
        };
        store.insert_dashboard(&d("b", "B", "t1")).unwrap();
        store.insert_dashboard(&d("a", "A", "t2")).unwrap();
        assert!(matches!(
            store.insert_dashboard(&d("a", "again", "t3")),
            Err(StoreError::AlreadyExists { .. })
        ));
        let ids: Vec<String> = store
            .dashboards()
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(ids, ["b", "a"], "oldest first");
        store.update_dashboard(&d("b", "B2", "t9")).unwrap();
        let b = store.dashboard("b").unwrap().unwrap();
        assert_eq!(
            (
                b.name.as_str(),
                b.created_at.as_str(),
                b.updated_at.as_str()
            ),
            ("B2", "t1", "t9")
        );
        assert_eq!(b.doc["name"], "B2");
        assert!(matches!(
            store.update_dashboard(&d("zz", "Z", "t9")),
            Err(StoreError::NotFound { .. })
        ));
        store.delete_dashboard("b").unwrap();
        assert_eq!(store.dashboard("b").unwrap(), None);
        assert!(matches!(
            store.delete_dashboard("b"),
            Err(StoreError::NotFound { .. })
        ));
    }

    #[test]
    fn settings_are_replaced_and_removed_through_the_seam() {
        let store: std::sync::Arc<dyn ConfigStore> =
            std::sync::Arc::new(Store::open_in_memory().unwrap());
        assert_eq!(store.setting("k").unwrap(), None);
        store
            .set_setting("k", Some(&serde_json::json!({"a": 1})))
            .unwrap();
        store
            .set_setting("k", Some(&serde_json::json!({"a": 2})))
            .unwrap();
        assert_eq!(
            store.setting("k").unwrap(),
            Some(serde_json::json!({"a": 2}))
        );
        store.set_setting("k", None).unwrap();
        assert_eq!(store.setting("k").unwrap(), None);
    }
}
