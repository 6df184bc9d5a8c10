//! The embedded store: one SQLite database in the data directory that keeps what must survive a
//! restart — algorithms, published versions, API keys (hashed) — and the Insights payloads of
//! the embedded default, which feed the admin panel.
//!
//! The store is synchronous (rusqlite) and knows nothing of settings' meaning: settings travel
//! as JSON so that the runtime owns their rules. Async callers use `spawn_blocking`.

mod secrets;

pub use secrets::{SecretBox, SecretError};

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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

/// Hex SHA-256 of a secret, as stored and compared.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// One payload to store: the exact JSON, and the columns it is found by. Borrowed, so that a
/// batch is written straight from the encoded payloads, without copies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PayloadRow<'a> {
    pub owner: &'a str,
    pub name: &'a str,
    pub version: &'a str,
    /// The payload's `time` (when the execution started), in microseconds since the Unix
    /// epoch: what a reader by time range finds payloads by.
    pub time_us: i64,
    pub json: &'a str,
}

/// Which stored payloads to return, newest first.
#[derive(Debug, Clone, Default)]
pub struct PayloadQuery {
    pub owner: Option<String>,
    pub name: Option<String>,
    pub version: Option<String>,
    pub limit: usize,
}

const SCHEMA_VERSION: i32 = 4;

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
const MIGRATIONS: [&str; 3] = [
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
];

/// The embedded database.
pub struct Store {
    conn: Mutex<Connection>,
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
        Self::init(conn).map_err(|e| match e {
            StoreError::Sqlite(e) => unusable(e),
            other => other,
        })
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
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions roll
        // back), so a poisoned lock is safe to keep using.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    // --- algorithms and versions -------------------------------------------------------

    pub fn insert_algorithm(&self, a: &AlgorithmRecord) -> Result<()> {
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

    /// Replaces an algorithm's source and settings (declarative configuration).
    pub fn update_algorithm(&self, a: &AlgorithmRecord) -> Result<()> {
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

    pub fn algorithms(&self) -> Result<Vec<AlgorithmRecord>> {
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

    pub fn insert_version(&self, v: &VersionRecord) -> Result<()> {
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

    pub fn update_version_settings(
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

    pub fn versions(&self) -> Result<Vec<VersionRecord>> {
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

    pub fn setting(&self, key: &str) -> Result<Option<serde_json::Value>> {
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

    pub fn set_setting(&self, key: &str, value: Option<&serde_json::Value>) -> Result<()> {
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

    pub fn insert_api_key(&self, k: &ApiKeyRecord) -> Result<()> {
        self.conn().execute(
            "INSERT INTO api_keys (id, name, key_hash, created_at, last_used_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![k.id, k.name, k.key_hash, k.created_at, k.last_used_at],
        )?;
        Ok(())
    }

    /// Deletes a key; revocation is final.
    pub fn delete_api_key(&self, id: &str) -> Result<()> {
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

    pub fn api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
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

    pub fn api_key_exists(&self, id: &str) -> Result<bool> {
        Ok(self
            .conn()
            .query_row("SELECT 1 FROM api_keys WHERE id = ?1", params![id], |_| {
                Ok(())
            })
            .optional()?
            .is_some())
    }

    pub fn touch_api_key(&self, id: &str, at: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1",
            params![id, at],
        )?;
        Ok(())
    }

    // --- payloads ----------------------------------------------------------------------

    /// Appends payloads in one transaction: all of them are stored, or none.
    pub fn insert_payloads<'a>(
        &self,
        payloads: impl IntoIterator<Item = PayloadRow<'a>>,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO payloads (owner, name, version, time_us, json) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for p in payloads {
                stmt.execute(params![p.owner, p.name, p.version, p.time_us, p.json])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Deletes the oldest payloads so that at most `keep` remain; returns how many went.
    pub fn prune_payloads(&self, keep: u64) -> Result<u64> {
        let n = self.conn().execute(
            "DELETE FROM payloads WHERE seq <= (SELECT MAX(seq) FROM payloads) - ?1",
            params![keep as i64],
        )?;
        Ok(n as u64)
    }

    pub fn payload_count(&self) -> Result<u64> {
        Ok(self
            .conn()
            .query_row("SELECT COUNT(*) FROM payloads", [], |r| r.get::<_, i64>(0))?
            as u64)
    }

    /// The exact JSON of one algorithm's payloads whose `time` is in `[from_us, to_us)`
    /// (microseconds since the Unix epoch), oldest first, at most `limit`.
    pub fn payloads_between(
        &self,
        owner: &str,
        name: &str,
        from_us: i64,
        to_us: i64,
        limit: usize,
    ) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT json FROM payloads WHERE owner = ?1 AND name = ?2 AND time_us >= ?3 AND time_us < ?4
             ORDER BY time_us, seq LIMIT ?5",
        )?;
        let rows = stmt.query_map(params![owner, name, from_us, to_us, limit as i64], |r| {
            r.get::<_, String>(0)
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The exact JSON of the matching payloads, newest first.
    pub fn payloads(&self, q: &PayloadQuery) -> Result<Vec<String>> {
        let limit = q.limit as i64;
        let mut values: Vec<&dyn rusqlite::ToSql> = [&q.owner, &q.name, &q.version]
            .into_iter()
            .flatten()
            .map(|v| v as &dyn rusqlite::ToSql)
            .collect();
        values.push(&limit);
        let sql = payloads_sql(q);
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(values.as_slice(), |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// The payload query for the filters given, and only those, so that SQLite can use an index
/// (`x IS NULL OR x = ?` would make it scan every payload). Parameters: the filters given, in
/// the order owner, name, version; then the limit.
fn payloads_sql(q: &PayloadQuery) -> String {
    let filters: Vec<String> = [
        ("owner", q.owner.is_some()),
        ("name", q.name.is_some()),
        ("version", q.version.is_some()),
    ]
    .into_iter()
    .filter(|(_, given)| *given)
    .enumerate()
    .map(|(i, (column, _))| format!("{column} = ?{}", i + 1))
    .collect();
    let where_clause = if filters.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", filters.join(" AND "))
    };
    format!(
        "SELECT json FROM payloads {where_clause} ORDER BY seq DESC LIMIT ?{}",
        filters.len() + 1
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn algo(name: &str) -> AlgorithmRecord {
        AlgorithmRecord {
            owner: "o".into(),
            name: name.into(),
            source_path: "/src".into(),
            command: vec!["python3".into()],
            settings: serde_json::json!({"pool_size": 2}),
            created_at: "t".into(),
        }
    }

    /// (name, version, json) of test payloads, all owned by "o".
    fn payload(name: &str, version: &str, n: u32) -> (String, String, String) {
        (name.into(), version.into(), format!("{{\"n\":{n}}}"))
    }

    fn rows(p: &[(String, String, String)]) -> impl Iterator<Item = PayloadRow<'_>> {
        p.iter().map(|(name, version, json)| PayloadRow {
            owner: "o",
            name,
            version,
            time_us: 0,
            json,
        })
    }

    #[test]
    fn a_database_of_schema_3_gains_the_time_column_filled_from_its_payloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("insights.sqlite");
        {
            // What the previous release wrote: its schema (the first two migrations), and
            // payloads without a time column.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA).unwrap();
            for m in &MIGRATIONS[..2] {
                conn.execute_batch(m).unwrap();
            }
            conn.pragma_update(None, "user_version", 3).unwrap();
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
                "EXPLAIN QUERY PLAN SELECT json FROM payloads WHERE owner = 'o' AND name = 'a' AND time_us >= 0 AND time_us < 1 ORDER BY time_us, seq",
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
    fn payload_queries_filter_and_order_newest_first() {
        let s = Store::open_in_memory().unwrap();
        s.insert_algorithm(&algo("a")).unwrap();
        s.insert_payloads(rows(&[
            payload("a", "1.0.0", 1),
            payload("b", "1.0.0", 2),
            payload("a", "1.1.0", 3),
        ]))
        .unwrap();
        let all = s
            .payloads(&PayloadQuery {
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(all, ["{\"n\":3}", "{\"n\":2}", "{\"n\":1}"]);
        let a = s
            .payloads(&PayloadQuery {
                owner: Some("o".into()),
                name: Some("a".into()),
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(a, ["{\"n\":3}", "{\"n\":1}"]);
        let a10 = s
            .payloads(&PayloadQuery {
                owner: Some("o".into()),
                name: Some("a".into()),
                version: Some("1.0.0".into()),
                limit: 10,
            })
            .unwrap();
        assert_eq!(a10, ["{\"n\":1}"]);
        let one = s
            .payloads(&PayloadQuery {
                limit: 1,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(one, ["{\"n\":3}"]);
    }

    #[test]
    fn filtered_payload_queries_use_an_index() {
        let store = Store::open_in_memory().unwrap();
        let conn = store.conn();
        let query = |version: Option<&str>| PayloadQuery {
            owner: Some("o".into()),
            name: Some("a".into()),
            version: version.map(String::from),
            limit: 5,
        };
        for (q, index) in [
            (query(None), "payloads_by_algorithm"),
            (query(Some("1.0.0")), "payloads_by_version"),
        ] {
            let sql = format!("EXPLAIN QUERY PLAN {}", payloads_sql(&q));
            let mut values: Vec<&dyn rusqlite::ToSql> = [&q.owner, &q.name, &q.version]
                .into_iter()
                .flatten()
                .map(|v| v as &dyn rusqlite::ToSql)
                .collect();
            values.push(&5i64);
            let plan: Vec<String> = conn
                .prepare(&sql)
                .unwrap()
                .query_map(values.as_slice(), |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(plan.iter().any(|p| p.contains(index)), "{sql}: {plan:?}");
        }
    }

    #[test]
    fn pruning_keeps_the_newest() {
        let s = Store::open_in_memory().unwrap();
        let batch: Vec<_> = (0..10).map(|n| payload("a", "1", n)).collect();
        s.insert_payloads(rows(&batch)).unwrap();
        assert_eq!(s.prune_payloads(4).unwrap(), 6);
        assert_eq!(s.payload_count().unwrap(), 4);
        let left = s
            .payloads(&PayloadQuery {
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(left.last().unwrap(), "{\"n\":6}");
        assert_eq!(s.prune_payloads(4).unwrap(), 0);
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
}
