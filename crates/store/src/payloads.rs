//! The data, apart from configuration: the Insights payloads the embedded store keeps for the
//! admin API and panel (the exact JSON, indexed by algorithm, version and the payload's own
//! `time`), appended in batches by delivery's store sink and pruned to a retention bound.
//!
//! These are methods of the same [`Store`] as the configuration: one database file, one
//! connection, one schema migrated in one transaction.

use rusqlite::params;

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

/// Which stored payloads to return, newest first.
#[derive(Debug, Clone, Default)]
pub struct PayloadQuery {
    pub owner: Option<String>,
    pub name: Option<String>,
    pub version: Option<String>,
    pub limit: usize,
}

impl Store {
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
    use crate::ConfigStore as _;
    use crate::config::tests::algo;

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
}
