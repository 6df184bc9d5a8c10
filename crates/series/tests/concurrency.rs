//! Sharing: readers query while a writer ingests and checkpoints run, from several threads at
//! once; nothing deadlocks, readers always see whole batches, and the end state is the one a
//! single-threaded store reaches.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use insights_series::{
    AlgorithmPath, EXECUTIONS, Function, ManualClock, Query, SeriesConfig, SeriesStore,
};

mod support;
use support::{at, batch, dump, ingest};

const START: i64 = 1_700_000_000_000_000;
const NOW: i64 = START + 1_800_000_000;
const BATCH: usize = 100;

fn config() -> SeriesConfig {
    SeriesConfig {
        clock: ManualClock::new(at(NOW)).into(),
        // The maintenance thread flushes and checkpoints on its own as well.
        flush_interval: Duration::from_millis(5),
        checkpoint_interval: Duration::from_millis(20),
        ..SeriesConfig::default()
    }
}

#[test]
fn the_store_is_send_and_sync() {
    fn shared<T: Send + Sync>() {}
    shared::<SeriesStore>();
}

#[test]
fn readers_see_whole_batches_while_a_writer_ingests_and_checkpoints_run() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(SeriesStore::open(dir.path(), config()).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let count_query = Query {
        algorithm: AlgorithmPath::new("acme", "scorer"),
        metric: EXECUTIONS.into(),
        function: Function::Count,
        every: "1d".parse().unwrap(),
        from: at(START - 86_400_000_000),
        to: at(NOW + 86_400_000_000),
        version: None,
    };
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (s, done, q) = (s.clone(), done.clone(), count_query.clone());
            std::thread::spawn(move || {
                let mut seen = 0;
                while !done.load(Ordering::Relaxed) {
                    let total: u64 = s
                        .query(&q)
                        .unwrap()
                        .series
                        .iter()
                        .flat_map(|v| &v.points)
                        .map(|p| p.count)
                        .sum();
                    assert_eq!(total as usize % BATCH, 0, "a batch is applied whole");
                    assert!(total >= seen, "counts never go back");
                    seen = total;
                    s.metrics(&AlgorithmPath::new("acme", "scorer"));
                }
                seen
            })
        })
        .collect();
    let batches: Vec<_> = (0..60).map(|b| batch(b, BATCH, START)).collect();
    for (i, b) in batches.iter().enumerate() {
        ingest(&s, b);
        if i % 20 == 19 {
            s.checkpoint().unwrap();
        }
    }
    done.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() <= 6000);
    }
    let window = (at(START - 3_600_000_000), at(NOW + 3_600_000_000));
    let got = dump(&s, "acme", "scorer", window.0, window.1);
    drop(s);

    let reference_dir = tempfile::tempdir().unwrap();
    let reference = SeriesStore::open(reference_dir.path(), config()).unwrap();
    for b in &batches {
        ingest(&reference, b);
    }
    assert_eq!(got, dump(&reference, "acme", "scorer", window.0, window.1));
    // And the same after a restart of the shared one.
    let s = SeriesStore::open(dir.path(), config()).unwrap();
    assert_eq!(got, dump(&s, "acme", "scorer", window.0, window.1));
}
