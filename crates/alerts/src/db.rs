//! The alerts database, `<data-dir>/alerts.sqlite` (mode 0600): checks, endpoints (secrets
//! sealed), rules, the state of every series of every check, the history of status changes,
//! and the notification outbox.
//!
//! One connection behind a mutex: every evaluation of a check is one transaction, so a
//! series' new state, its status change and the notifications it causes are stored together
//! or not at all. Callers run on blocking threads.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::{Connection, params};

use crate::error::Result;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS checks (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS endpoints (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rules (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS series_state (
    check_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    version TEXT NOT NULL,
    level TEXT NOT NULL,
    since_us INTEGER NOT NULL,
    value REAL,
    pending_level TEXT,
    pending_since_us INTEGER,
    last_run_us INTEGER NOT NULL,
    PRIMARY KEY (check_id, algorithm, version)
);
CREATE TABLE IF NOT EXISTS statuses (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    check_id TEXT NOT NULL,
    check_name TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    version TEXT NOT NULL,
    level TEXT NOT NULL,
    previous_level TEXT NOT NULL,
    value REAL,
    message TEXT NOT NULL,
    time_us INTEGER NOT NULL,
    source_time_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS statuses_by_check ON statuses (check_id, time_us);
CREATE INDEX IF NOT EXISTS statuses_by_time ON statuses (time_us);
CREATE TABLE IF NOT EXISTS rule_sent (
    rule_id TEXT NOT NULL,
    check_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    version TEXT NOT NULL,
    last_us INTEGER NOT NULL,
    PRIMARY KEY (rule_id, check_id, algorithm, version)
);
CREATE TABLE IF NOT EXISTS notifications (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    rule_id TEXT,
    endpoint_id TEXT NOT NULL,
    endpoint_kind TEXT NOT NULL,
    check_id TEXT NOT NULL,
    order_key TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    doc TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_us INTEGER NOT NULL,
    last_error TEXT,
    done_us INTEGER
);
CREATE INDEX IF NOT EXISTS notifications_pending ON notifications (state, endpoint_id, order_key, seq);
CREATE INDEX IF NOT EXISTS notifications_by_rule ON notifications (rule_id, created_us);
CREATE INDEX IF NOT EXISTS notifications_by_time ON notifications (created_us);
";

pub(crate) struct Db {
    conn: Mutex<Connection>,
}

impl Db {
    pub(crate) fn open(dir: &Path) -> Result<Db> {
        let path = dir.join("alerts.sqlite");
        // Created private before SQLite opens it: it holds sealed secrets and the history.
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt as _;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)
                .map_err(|e| {
                    crate::AlertError::Internal(format!("cannot create {}: {e}", path.display()))
                })?;
        }
        let conn = Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Db {
            conn: Mutex::new(conn),
        })
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every document of a table (`checks`, `endpoints`, `rules`), oldest id first.
    /// Every stored document of `table` by id, in the order they were made; a row that is not
    /// JSON comes back as the reason, so that one damaged row does not hide the others.
    pub(crate) fn documents(
        &self,
        table: Table,
    ) -> Result<Vec<(String, std::result::Result<serde_json::Value, String>)>> {
        let conn = self.conn();
        let mut st = conn.prepare(&format!(
            "SELECT id, doc FROM {} ORDER BY rowid",
            table.name()
        ))?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, doc) = row?;
            let doc = serde_json::from_str(&doc).map_err(|e| format!("it is not JSON: {e}"));
            out.push((id, doc));
        }
        Ok(out)
    }

    pub(crate) fn put(&self, table: Table, id: &str, doc: &serde_json::Value) -> Result<()> {
        self.conn().execute(
            &format!(
                "INSERT INTO {} (id, doc) VALUES (?1, ?2) ON CONFLICT (id) DO UPDATE SET doc = ?2",
                table.name()
            ),
            params![id, doc.to_string()],
        )?;
        Ok(())
    }

    /// Deletes a document; whether there was one.
    pub(crate) fn delete(&self, table: Table, id: &str) -> Result<bool> {
        let conn = self.conn();
        let n = conn.execute(&format!("DELETE FROM {} WHERE id = ?1", table.name()), [id])?;
        if table == Table::Checks {
            conn.execute("DELETE FROM series_state WHERE check_id = ?1", [id])?;
            conn.execute("DELETE FROM rule_sent WHERE check_id = ?1", [id])?;
        }
        if table == Table::Rules {
            conn.execute("DELETE FROM rule_sent WHERE rule_id = ?1", [id])?;
        }
        Ok(n > 0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    Checks,
    Endpoints,
    Rules,
}

impl Table {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Table::Checks => "checks",
            Table::Endpoints => "endpoints",
            Table::Rules => "rules",
        }
    }
}
