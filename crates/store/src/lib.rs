//! The embedded store: one SQLite database in the data directory (`insights.sqlite`, WAL)
//! that keeps what must survive a restart. It holds two kinds of things, kept apart:
//!
//! - configuration ([`config`]): algorithms, published versions, API keys (hashed),
//!   settings and the panel's dashboards, behind the [`ConfigStore`] trait, the seam the in-memory caches read through;
//! - data ([`payloads`]): the Insights payloads of the embedded default, which feed the admin
//!   API and panel.
//!
//! Both are methods of one [`Store`] over one connection, so that the schema (versioned with
//! `user_version`, set up and migrated here in one transaction) stays one thing, and a start
//! keeps opening one file. [`SecretBox`] seals secrets stored among the settings under
//! `<data-dir>/secret.key`.
//!
//! The store is synchronous (rusqlite) and knows nothing of settings' meaning: settings travel
//! as JSON so that the runtime owns their rules. Async callers use `spawn_blocking`.

pub mod config;
pub mod payloads;
mod secrets;

pub use config::{
    AlgorithmRecord, ApiKeyRecord, ConfigStore, DashboardRecord, VersionRecord, hash_secret,
    record_time, record_time_now,
};
pub use payloads::{PayloadQuery, PayloadRow, PayloadScope};
pub use secrets::{SecretBox, SecretError};

use std::path::Path;
use std::sync::Mutex;

use rusqlite::Connection;

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} already exists")]
    AlreadyExists { what: String },
    #[error("{what} does not exist")]
    NotFound { what: String },
    #[error("the database in the data directory could not be used: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("a stored record is corrupt: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error(
        "the database was written by a newer Insights (schema {found}; this one knows up to {known}): run the newer version, or restore a backup made with this one"
    )]
    NewerSchema { found: i32, known: i32 },
    #[error(
        "the database {path} cannot be used ({detail}): restore it from a backup, or move it aside to start with an empty one"
    )]
    Unusable { path: String, detail: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

const SCHEMA_VERSION: i32 = 6;

const SCHEMA: &str = "
CREATE TABLE algorithms (
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    source_path TEXT NOT NULL,
    command TEXT NOT NULL,
    settings TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (owner, name)
);
CREATE TABLE versions (
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    snapshot_path TEXT NOT NULL,
    command TEXT NOT NULL,
    settings TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (owner, name, version),
    FOREIGN KEY (owner, name) REFERENCES algorithms (owner, name)
);
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    last_used_at TEXT
);
CREATE TABLE payloads (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    json TEXT NOT NULL
);
CREATE INDEX payloads_by_version ON payloads (owner, name, version, seq);
";

/// Schema changes after version 1, applied in order.
const MIGRATIONS: [&str; 5] = [
    "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    // An algorithm's latest payloads across its versions (the admin API's `algorithm=` filter).
    "CREATE INDEX payloads_by_algorithm ON payloads (owner, name, seq);",
    // The payload's own time, for readers by time range (a series rebuilt from the payloads,
    // a window of payloads). Existing rows get it from their JSON, exactly: the format is
    // always `YYYY-MM-DDTHH:MM:SS.ffffff` in UTC.
    "ALTER TABLE payloads ADD COLUMN time_us INTEGER;
     UPDATE payloads SET time_us =
         CAST(strftime('%s', substr(json_extract(json, '$.time'), 1, 19)) AS INTEGER) * 1000000
         + CAST(substr(json_extract(json, '$.time'), 21, 6) AS INTEGER);
     CREATE INDEX payloads_by_time ON payloads (owner, name, time_us);",
    // The panel's dashboards: one JSON document each, whose meaning the server owns.
    "CREATE TABLE dashboards (
         id TEXT PRIMARY KEY,
         name TEXT NOT NULL,
         doc TEXT NOT NULL,
         created_at TEXT NOT NULL,
         updated_at TEXT NOT NULL
     );",
    // Payload rows name their algorithm and version by integer ids, so that the three indexes
    // hold integers instead of repeating `owner`, `name` and `version` as text: an insert
    // cost about three times what the row alone did. Rows keep their `seq`, and the table its
    // AUTOINCREMENT sequence (a `seq` is never reused, even after pruning).
    "CREATE TABLE payload_algorithms (
         id INTEGER PRIMARY KEY,
         owner TEXT NOT NULL,
         name TEXT NOT NULL,
         UNIQUE (owner, name)
     );
     CREATE TABLE payload_versions (
         id INTEGER PRIMARY KEY,
         algorithm INTEGER NOT NULL REFERENCES payload_algorithms (id),
         version TEXT NOT NULL,
         UNIQUE (algorithm, version)
     );
     INSERT INTO payload_algorithms (owner, name)
         SELECT DISTINCT owner, name FROM payloads ORDER BY owner, name;
     INSERT INTO payload_versions (algorithm, version)
         SELECT DISTINCT a.id, p.version FROM payloads p
         JOIN payload_algorithms a ON a.owner = p.owner AND a.name = p.name
         ORDER BY a.id, p.version;
     CREATE TABLE payloads_by_id (
         seq INTEGER PRIMARY KEY AUTOINCREMENT,
         algorithm INTEGER NOT NULL,
         version INTEGER NOT NULL,
         time_us INTEGER,
         json TEXT NOT NULL
     );
     INSERT INTO payloads_by_id (seq, algorithm, version, time_us, json)
         SELECT p.seq, a.id, v.id, p.time_us, p.json FROM payloads p
         JOIN payload_algorithms a ON a.owner = p.owner AND a.name = p.name
         JOIN payload_versions v ON v.algorithm = a.id AND v.version = p.version
         ORDER BY p.seq;
     INSERT INTO sqlite_sequence (name, seq)
         SELECT 'payloads_by_id', seq FROM sqlite_sequence WHERE name = 'payloads'
         AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'payloads_by_id');
     UPDATE sqlite_sequence SET seq = max(seq, (SELECT seq FROM sqlite_sequence WHERE name = 'payloads'))
         WHERE name = 'payloads_by_id' AND EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'payloads');
     DROP TABLE payloads;
     ALTER TABLE payloads_by_id RENAME TO payloads;
     CREATE INDEX payloads_by_version ON payloads (version, seq);
     CREATE INDEX payloads_by_algorithm ON payloads (algorithm, seq);
     CREATE INDEX payloads_by_time ON payloads (algorithm, time_us);",
];

/// The embedded database.
pub struct Store {
    conn: Mutex<Connection>,
    /// A second connection for the payload readers (the admin API, the panel, readers of a
    /// time range), opened read-only on the same file: with WAL a reader never waits for the
    /// writer, but one connection behind one lock made it wait for the whole of a batch insert,
    /// and for as long as the store sink's thread (SCHED_IDLE while delivery keeps up) was kept
    /// off the CPU while holding it. `None` in memory, where a second connection would be
    /// another database.
    reader: Option<Mutex<Connection>>,
    /// The ids of the algorithms and versions payloads were stored for (see [`payloads`]);
    /// only touched with `conn` held, and only with ids a committed transaction wrote.
    payload_ids: Mutex<payloads::Ids>,
}

/// The database holds payloads and key hashes: readable by its owner only. SQLite creates the
/// WAL and shared-memory files with the database file's mode, so the database is created 0600
/// before SQLite opens it, and an existing one (and its companions) made 0600.
fn restrict_to_owner(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        match std::fs::metadata(&name) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(&name, std::fs::Permissions::from_mode(0o600))?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Store {
    /// Opens (or creates) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self> {
        let unusable = |e: rusqlite::Error| StoreError::Unusable {
            path: path.display().to_string(),
            detail: e.to_string(),
        };
        restrict_to_owner(path).map_err(|e| StoreError::Unusable {
            path: path.display().to_string(),
            detail: format!("setting its mode to 0600: {e}"),
        })?;
        let conn = Connection::open(path).map_err(unusable)?;
        let mut store = Self::init(conn).map_err(|e| match e {
            StoreError::Sqlite(e) => unusable(e),
            other => other,
        })?;
        let reader = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(unusable)?;
        reader
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(unusable)?;
        store.reader = Some(Mutex::new(reader));
        Ok(store)
    }

    /// An in-memory store, for tests.
    pub fn open_in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self> {
        // WAL: readers (the admin API) never wait for the payload writer; NORMAL sync is durable
        // across a process crash, which is the failure this store must survive.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // One transaction (user_version is transactional): a start killed half-way through,
        // or two processes opening a new data directory at once, leave the schema whole.
        let mut conn = conn;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version: i32 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        if version == 0 {
            tx.execute_batch(SCHEMA)?;
        }
        for (i, migration) in MIGRATIONS.iter().enumerate() {
            if version < i as i32 + 2 {
                tx.execute_batch(migration)?;
            }
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.commit()?;
        Ok(Self {
            conn: Mutex::new(conn),
            reader: None,
            payload_ids: Mutex::default(),
        })
    }

    /// The connection payload readers use (see [`Store::reader`]).
    fn read_conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        match &self.reader {
            Some(r) => r.lock().unwrap_or_else(|e| e.into_inner()),
            None => self.conn(),
        }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions roll
        // back), so a poisoned lock is safe to keep using.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database as a release of schema `version` left it: the base schema and the
    /// migrations up to that version.
    fn database_of_schema(path: &Path, version: i32) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        for m in &MIGRATIONS[..version as usize - 1] {
            conn.execute_batch(m).unwrap();
        }
        conn.pragma_update(None, "user_version", version).unwrap();
        conn
    }

    #[test]
    fn a_database_of_schema_3_gains_the_time_column_filled_from_its_payloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("insights.sqlite");
        {
            // What the previous release wrote: its schema (the first two migrations), and
            // payloads without a time column.
            let conn = database_of_schema(&path, 3);
            for (i, time) in ["2021-02-20T01:00:00.000001", "2021-02-20T01:00:59.999999"]
                .iter()
                .enumerate()
            {
                let json =
                    format!(r#"{{"risk_score":0.{i},"time":"{time}","algorithm_name":"a"}}"#);
                conn.execute(
                    "INSERT INTO payloads (owner, name, version, json) VALUES ('o', 'a', '1.0.0', ?1)",
                    [json],
                )
                .unwrap();
            }
        }
        let s = Store::open(&path).unwrap();
        let base = 1_613_782_800_000_000_i64; // 2021-02-20T01:00:00Z
        let times: Vec<i64> = s
            .conn()
            .prepare("SELECT time_us FROM payloads ORDER BY seq")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(times, [base + 1, base + 59_999_999]);
        // Nothing else was touched, and the time reader uses the new index.
        assert_eq!(s.payload_count().unwrap(), 2);
        let first = s
            .payloads_between("o", "a", base, base + 1_000_000, 10)
            .unwrap();
        assert_eq!(first.len(), 1);
        assert!(first[0].contains("\"risk_score\":0.0"), "{first:?}");
        let plan: String = s
            .conn()
            .query_row(
                "EXPLAIN QUERY PLAN SELECT json FROM payloads WHERE algorithm = 1 AND time_us >= 0 AND time_us < 1 ORDER BY time_us, seq",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("payloads_by_time"), "{plan}");
        drop(s);
        // Reopening runs nothing again.
        let s = Store::open(&path).unwrap();
        assert_eq!(s.payload_count().unwrap(), 2);
    }

    #[test]
    fn a_database_of_schema_4_gains_an_empty_dashboards_table_and_keeps_everything_else() {
        use crate::config::{ConfigStore as _, DashboardRecord};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("insights.sqlite");
        {
            // What the previous release wrote: schema 4 (the first three migrations), with a
            // setting and a payload in it.
            let conn = database_of_schema(&path, 4);
            conn.execute(
                "INSERT INTO settings (key, value) VALUES ('kafka', '{\"topic\":\"t\"}')",
                [],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO payloads (owner, name, version, json, time_us) VALUES ('o', 'a', '1.0.0', '{}', 1)",
                [],
            )
            .unwrap();
            let tables: i64 = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE name = 'dashboards'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(tables, 0);
        }
        let s = Store::open(&path).unwrap();
        let version: i32 = s
            .conn()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        assert_eq!(s.dashboards().unwrap(), vec![]);
        assert_eq!(
            s.setting("kafka").unwrap(),
            Some(serde_json::json!({"topic": "t"}))
        );
        assert_eq!(s.payload_count().unwrap(), 1);
        let d = DashboardRecord {
            id: "d1".into(),
            name: "Scorer".into(),
            doc: serde_json::json!({"name": "Scorer", "cells": []}),
            created_at: "t0".into(),
            updated_at: "t0".into(),
        };
        s.insert_dashboard(&d).unwrap();
        drop(s);
        // Reopening runs nothing again, and the dashboard is still there.
        let s = Store::open(&path).unwrap();
        assert_eq!(s.dashboards().unwrap(), vec![d]);
    }

    #[test]
    fn a_database_of_schema_5_keeps_every_payload_its_seq_and_its_sequence_under_integer_ids() {
        use crate::{PayloadQuery, PayloadRow, PayloadScope};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("insights.sqlite");
        {
            // Schema 5 (the first four migrations) with payloads of two algorithms, three
            // versions, pruned at both ends: seq 1 and the newest, 6, are gone, so the
            // sequence (6) is above every stored seq.
            let conn = database_of_schema(&path, 5);
            for (n, (name, version)) in [
                ("a", "1.0.0"),
                ("a", "1.0.0"),
                ("b", "1.0.0"),
                ("a", "1.1.0"),
                ("a", "1.0.0"),
                ("b", "1.0.0"),
            ]
            .iter()
            .enumerate()
            {
                conn.execute(
                    "INSERT INTO payloads (owner, name, version, json, time_us) VALUES ('o', ?1, ?2, ?3, ?4)",
                    rusqlite::params![name, version, format!("{{\"n\":{}}}", n + 1), n as i64 + 1],
                )
                .unwrap();
            }
            conn.execute("DELETE FROM payloads WHERE seq IN (1, 6)", [])
                .unwrap();
        }
        let s = Store::open(&path).unwrap();
        let version: i32 = s
            .conn()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, 6);
        let seqs: Vec<(i64, String)> = s
            .conn()
            .prepare("SELECT seq, json FROM payloads ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let expect: Vec<(i64, String)> = (2..=5).map(|n| (n, format!("{{\"n\":{n}}}"))).collect();
        assert_eq!(seqs, expect);
        let query = |scope| s.payloads(&PayloadQuery { scope, limit: 10 }).unwrap();
        let a = PayloadScope::Algorithm {
            owner: "o".into(),
            name: "a".into(),
        };
        assert_eq!(query(a), ["{\"n\":5}", "{\"n\":4}", "{\"n\":2}"]);
        let a10 = PayloadScope::Version {
            owner: "o".into(),
            name: "a".into(),
            version: "1.0.0".into(),
        };
        assert_eq!(query(a10), ["{\"n\":5}", "{\"n\":2}"]);
        assert_eq!(
            s.payloads_between("o", "b", 0, 10, 10).unwrap(),
            ["{\"n\":3}"]
        );
        // The next payload continues the sequence past the pruned 6: a seq is never reused.
        s.insert_payloads([PayloadRow {
            owner: "o",
            name: "b",
            version: "1.0.0",
            time_us: 7,
            json: "{\"n\":7}",
        }])
        .unwrap();
        let newest: i64 = s
            .conn()
            .query_row("SELECT max(seq) FROM payloads", [], |r| r.get(0))
            .unwrap();
        assert_eq!(newest, 7);
        let old_columns: i64 = s
            .conn()
            .query_row(
                "SELECT count(*) FROM pragma_table_info('payloads') WHERE name IN ('owner', 'name')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(old_columns, 0);
    }

    #[test]
    fn a_database_from_a_newer_version_is_refused_and_a_broken_one_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("insights.sqlite");
        drop(Store::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let err = Store::open(&path).err().unwrap();
        assert!(matches!(err, StoreError::NewerSchema { .. }), "{err}");
        let version: i32 = Connection::open(&path)
            .unwrap()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION + 1, "left as it was");

        let broken = dir.path().join("broken.sqlite");
        std::fs::write(&broken, vec![b'x'; 4096]).unwrap();
        let err = Store::open(&broken).err().unwrap().to_string();
        assert!(
            err.contains("broken.sqlite") && err.contains("backup"),
            "{err}"
        );
    }
}
