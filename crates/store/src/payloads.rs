//! The data, apart from configuration: the Insights payloads the embedded store keeps for the
//! admin API and panel (the exact JSON, indexed by algorithm, version and the payload's own
//! `time`), appended in batches by delivery's store sink and pruned to a retention bound.
//!
//! A payload row names its algorithm and version by integer ids (`payload_algorithms`,
//! `payload_versions`), so that its three indexes hold integers: with `owner`, `name` and
//! `version` repeated as text in every index entry, an insert cost about three times what the
//! row alone did. The ids are looked up once per version per process and kept in memory.
//!
//! These are methods of the same [`Store`] as the configuration: one database file, one
//! connection, one schema migrated in one transaction.

use std::collections::HashMap;

use rusqlite::{OptionalExtension as _, Transaction, params};

use crate::{Result, Store};

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

/// Which stored payloads a query returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PayloadScope {
    #[default]
    All,
    /// Every version of one algorithm.
    Algorithm { owner: String, name: String },
    /// One version.
    Version {
        owner: String,
        name: String,
        version: String,
    },
}

/// Which stored payloads to return, newest first.
#[derive(Debug, Clone, Default)]
pub struct PayloadQuery {
    pub scope: PayloadScope,
    pub limit: usize,
}

/// The ids of an algorithm and one of its versions in the payload tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct VersionIds {
    algorithm: i64,
    version: i64,
}

/// Ids already in the database, by `owner`, `name`, `version` (see [`Store::payload_ids`]).
#[derive(Debug, Default)]
pub(crate) struct Ids(HashMap<(String, String, String), VersionIds>);

impl Store {
    /// Appends payloads in one transaction: all of them are stored, or none.
    pub fn insert_payloads<'a>(
        &self,
        payloads: impl IntoIterator<Item = PayloadRow<'a>>,
    ) -> Result<()> {
        let mut conn = self.conn();
        let mut known = self.payload_ids.lock().unwrap_or_else(|e| e.into_inner());
        // Ids this batch needed: a batch holds a few versions at most, found by a short scan
        // without building a key; those new to the process are remembered once committed.
        let mut batch: Vec<(&str, &str, &str, VersionIds)> = Vec::new();
        let mut learned = Vec::new();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO payloads (algorithm, version, time_us, json) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for p in payloads {
                let ids = match batch
                    .iter()
                    .find(|(o, n, v, _)| (*o, *n, *v) == (p.owner, p.name, p.version))
                {
                    Some(&(.., ids)) => ids,
                    None => {
                        let key = (
                            p.owner.to_string(),
                            p.name.to_string(),
                            p.version.to_string(),
                        );
                        let ids = match known.0.get(&key) {
                            Some(&ids) => ids,
                            None => {
                                let ids = version_ids(&tx, p.owner, p.name, p.version)?;
                                learned.push((key, ids));
                                ids
                            }
                        };
                        batch.push((p.owner, p.name, p.version, ids));
                        ids
                    }
                };
                stmt.execute(params![ids.algorithm, ids.version, p.time_us, p.json])?;
            }
        }
        tx.commit()?;
        known.0.extend(learned);
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
            .read_conn()
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
        let conn = self.read_conn();
        let mut stmt = conn.prepare_cached(
            "SELECT json FROM payloads
             WHERE algorithm = (SELECT id FROM payload_algorithms WHERE owner = ?1 AND name = ?2)
             AND time_us >= ?3 AND time_us < ?4
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
        let conn = self.read_conn();
        let mut stmt = conn.prepare_cached(payloads_sql(&q.scope))?;
        let rows = match &q.scope {
            PayloadScope::All => stmt.query_map(params![limit], json)?,
            PayloadScope::Algorithm { owner, name } => {
                stmt.query_map(params![owner, name, limit], json)?
            }
            PayloadScope::Version {
                owner,
                name,
                version,
            } => stmt.query_map(params![owner, name, version, limit], json)?,
        };
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn json(r: &rusqlite::Row<'_>) -> rusqlite::Result<String> {
    r.get(0)
}

/// The ids of (`owner`, `name`, `version`), added in `tx` when they are new.
fn version_ids(tx: &Transaction<'_>, owner: &str, name: &str, version: &str) -> Result<VersionIds> {
    let algorithm = id_of(
        tx,
        "INSERT INTO payload_algorithms (owner, name) VALUES (?1, ?2)",
        "SELECT id FROM payload_algorithms WHERE owner = ?1 AND name = ?2",
        params![owner, name],
    )?;
    let version = id_of(
        tx,
        "INSERT INTO payload_versions (algorithm, version) VALUES (?1, ?2)",
        "SELECT id FROM payload_versions WHERE algorithm = ?1 AND version = ?2",
        params![algorithm, version],
    )?;
    Ok(VersionIds { algorithm, version })
}

fn id_of(
    tx: &Transaction<'_>,
    insert: &str,
    select: &str,
    key: &[&dyn rusqlite::ToSql],
) -> Result<i64> {
    if let Some(id) = tx
        .prepare_cached(select)?
        .query_row(key, |r| r.get(0))
        .optional()?
    {
        return Ok(id);
    }
    tx.prepare_cached(insert)?.execute(key)?;
    Ok(tx.last_insert_rowid())
}

/// The payload query of a scope, so that SQLite can use an index (`x IS NULL OR x = ?` would
/// make it scan every payload). Parameters: the scope's strings in the order owner, name,
/// version; then the limit.
fn payloads_sql(scope: &PayloadScope) -> &'static str {
    match scope {
        PayloadScope::All => "SELECT json FROM payloads ORDER BY seq DESC LIMIT ?1",
        PayloadScope::Algorithm { .. } => {
            "SELECT json FROM payloads
             WHERE algorithm = (SELECT id FROM payload_algorithms WHERE owner = ?1 AND name = ?2)
             ORDER BY seq DESC LIMIT ?3"
        }
        PayloadScope::Version { .. } => {
            "SELECT json FROM payloads
             WHERE version = (SELECT v.id FROM payload_versions v
                 JOIN payload_algorithms a ON a.id = v.algorithm
                 WHERE a.owner = ?1 AND a.name = ?2 AND v.version = ?3)
             ORDER BY seq DESC LIMIT ?4"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConfigStore as _;
    use crate::config::tests::algo;

    /// (name, version, json) of test payloads, all owned by "o".
    fn payload(name: &str, version: &str, n: u32) -> (String, String, String) {
        (name.into(), version.into(), format!("{{\"n\":{n}}}"))
    }

    fn algorithm(name: &str) -> PayloadScope {
        PayloadScope::Algorithm {
            owner: "o".into(),
            name: name.into(),
        }
    }

    fn version(name: &str, version: &str) -> PayloadScope {
        PayloadScope::Version {
            owner: "o".into(),
            name: name.into(),
            version: version.into(),
        }
    }

    /// The payloads in `scope`, newest first, at most 10.
    fn stored(s: &Store, scope: PayloadScope) -> Vec<String> {
        s.payloads(&PayloadQuery { scope, limit: 10 }).unwrap()
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
        let a = stored(&s, algorithm("a"));
        assert_eq!(a, ["{\"n\":3}", "{\"n\":1}"]);
        let a10 = stored(&s, version("a", "1.0.0"));
        assert_eq!(a10, ["{\"n\":1}"]);
        for (scope, none) in [
            (algorithm("c"), "an algorithm never stored"),
            (version("a", "2.0.0"), "a version never stored"),
        ] {
            assert_eq!(stored(&s, scope), Vec::<String>::new(), "{none}");
        }
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
        for (scope, index, params) in [
            (algorithm("a"), "payloads_by_algorithm", 3),
            (version("a", "1.0.0"), "payloads_by_version", 4),
        ] {
            let sql = format!("EXPLAIN QUERY PLAN {}", payloads_sql(&scope));
            let values: Vec<String> = (0..params).map(|i| i.to_string()).collect();
            let plan: Vec<String> = conn
                .prepare(&sql)
                .unwrap()
                .query_map(rusqlite::params_from_iter(&values), |r| {
                    r.get::<_, String>(3)
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(plan.iter().any(|p| p.contains(index)), "{sql}: {plan:?}");
            assert!(
                !plan.iter().any(|p| p.contains("TEMP B-TREE")),
                "{sql} sorts instead of reading the index in order: {plan:?}"
            );
        }
    }

    #[test]
    fn a_version_stored_in_many_batches_gets_one_id_and_a_failed_batch_none() {
        let s = Store::open_in_memory().unwrap();
        s.insert_payloads(rows(&[payload("a", "1", 1), payload("b", "1", 2)]))
            .unwrap();
        s.insert_payloads(rows(&[payload("a", "1", 3), payload("a", "2", 4)]))
            .unwrap();
        let count = |sql: &str| -> i64 { s.conn().query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(count("SELECT count(*) FROM payload_algorithms"), 2);
        assert_eq!(count("SELECT count(*) FROM payload_versions"), 3);
        // A batch that fails half-way leaves neither rows nor the ids it added, in the
        // database or in memory: the next batch of that version gets a real id.
        s.conn()
            .execute_batch(
                "CREATE TRIGGER refuse AFTER INSERT ON payloads WHEN NEW.json = '{\"n\":6}'
                 BEGIN SELECT RAISE(ABORT, 'refused'); END;",
            )
            .unwrap();
        let err = s.insert_payloads(rows(&[payload("c", "1", 5), payload("c", "1", 6)]));
        assert!(err.is_err());
        assert_eq!(count("SELECT count(*) FROM payload_algorithms"), 2);
        s.insert_payloads(rows(&[payload("c", "1", 7)])).unwrap();
        let c = stored(&s, version("c", "1"));
        assert_eq!(c, ["{\"n\":7}"]);
        assert_eq!(s.payload_count().unwrap(), 5);
    }

    #[test]
    fn readers_do_not_wait_for_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(Store::open(&dir.path().join("insights.sqlite")).unwrap());
        s.insert_payloads(rows(&[payload("a", "1", 1)])).unwrap();
        // The writer's connection is held, as by a store sink kept off the CPU mid-insert, and
        // a payload is written but not committed: readers see what was committed, at once.
        let writer = s.conn();
        writer
            .execute_batch(
                "BEGIN; INSERT INTO payloads (algorithm, version, time_us, json) VALUES (1, 1, 0, '{\"n\":2}');",
            )
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = s.clone();
        std::thread::spawn(move || {
            let q = PayloadQuery {
                scope: algorithm("a"),
                limit: 10,
            };
            let _ = tx.send((
                reader.payloads(&q).unwrap(),
                reader.payload_count().unwrap(),
            ));
        });
        let read = rx.recv_timeout(std::time::Duration::from_secs(30));
        writer.execute_batch("ROLLBACK").unwrap();
        drop(writer);
        let (payloads, count) = read.expect("the read waited for the writer's lock");
        assert_eq!((payloads, count), (vec!["{\"n\":1}".to_string()], 1));
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
}
