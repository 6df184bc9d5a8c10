//! A batch of payloads into the embedded store, on one core, against the same rows in the same
//! run into the previous schema (5: `owner`, `name`, `version` as text in the row and in all
//! three indexes) and into a table with no index at all (the floor: the row alone). Each
//! database is a file in a temporary directory with the store's pragmas (WAL, synchronous
//! NORMAL), so commits cost what they cost in `insights serve`. Criterion reports payloads
//! per second; `docs/benchmarks.md` has the ratios.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use insights_store::{PayloadRow, Store};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, params_from_iter};

/// The store sink's batches are up to the dispatcher's batch; 64 is a typical one under load.
const BATCH: usize = 64;

const SCHEMA_5: &str = "
CREATE TABLE payloads (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    json TEXT NOT NULL,
    time_us INTEGER
);
CREATE INDEX payloads_by_version ON payloads (owner, name, version, seq);
CREATE INDEX payloads_by_algorithm ON payloads (owner, name, seq);
CREATE INDEX payloads_by_time ON payloads (owner, name, time_us);";

const NO_INDEX: &str = "
CREATE TABLE payloads (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    algorithm INTEGER NOT NULL,
    version INTEGER NOT NULL,
    time_us INTEGER,
    json TEXT NOT NULL
);";

fn payload(i: usize) -> String {
    format!(
        r#"{{"risk_score":0.{i:04},"approved":{},"duration_milliseconds":{},"algorithm_owner":"acme","algorithm_name":"credit_scorer","algorithm_version":"1.{}.0","request_id":"req-{i:032x}","time":"2026-12-02T06:00:00.{:06}","session_id":"sess-{:032x}","error":false}}"#,
        i % 2,
        i % 97,
        i % 3,
        i % 1_000_000,
        i / 100
    )
}

fn connection(dir: &std::path::Path, name: &str, schema: &str) -> Connection {
    let conn = Connection::open(dir.join(name)).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    conn.execute_batch(schema).unwrap();
    conn
}

fn insert(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    // For the life of the bench (static, so that rows can borrow them).
    let jsons: &'static [String] = Vec::leak((0..4096).map(payload).collect());
    let versions = ["1.0.0", "1.1.0", "1.2.0"];
    let mut group = c.benchmark_group("store_insert");
    group.throughput(Throughput::Elements(BATCH as u64));

    let store = Store::open(&dir.path().join("insights.sqlite")).unwrap();
    let mut next = 0usize;
    group.bench_function("insert_payloads", |b| {
        b.iter(|| {
            let rows = (next..next + BATCH).map(|i| PayloadRow {
                owner: "acme",
                name: "credit_scorer",
                version: versions[i % 3],
                time_us: i as i64,
                json: &jsons[i % jsons.len()],
            });
            store.insert_payloads(rows).unwrap();
            next += BATCH;
        })
    });

    // The same batches through a plain prepared statement, into the other two schemas.
    let mut raw =
        |name: &str, schema: &str, sql: &str, row: &dyn Fn(usize) -> Vec<ToSqlOutput<'static>>| {
            let mut conn = connection(dir.path(), &format!("{name}.sqlite"), schema);
            let mut next = 0usize;
            group.bench_function(name, |b| {
                b.iter(|| {
                    let tx = conn.transaction().unwrap();
                    {
                        let mut stmt = tx.prepare_cached(sql).unwrap();
                        for i in next..next + BATCH {
                            stmt.execute(params_from_iter(row(i))).unwrap();
                        }
                    }
                    tx.commit().unwrap();
                    next += BATCH;
                })
            });
        };
    // Borrowed, as `insert_payloads` binds them: the comparison is of the schemas, not of copies.
    let text = |s: &'static str| ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()));
    let int = |n: i64| ToSqlOutput::Borrowed(ValueRef::Integer(n));
    let json = |i: usize| ToSqlOutput::Borrowed(ValueRef::Text(jsons[i % jsons.len()].as_bytes()));
    raw(
        "schema_5_text_columns",
        SCHEMA_5,
        "INSERT INTO payloads (owner, name, version, time_us, json) VALUES (?1, ?2, ?3, ?4, ?5)",
        &|i| {
            vec![
                text("acme"),
                text("credit_scorer"),
                text(versions[i % 3]),
                int(i as i64),
                json(i),
            ]
        },
    );
    raw(
        "no_index",
        NO_INDEX,
        "INSERT INTO payloads (algorithm, version, time_us, json) VALUES (?1, ?2, ?3, ?4)",
        &|i| vec![int(1), int((i % 3) as i64 + 1), int(i as i64), json(i)],
    );
    group.finish();
}

criterion_group!(benches, insert);
criterion_main!(benches);
