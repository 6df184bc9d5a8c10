//! Data directories written by earlier versions of the store open and answer as before.
//!
//! `fixtures/format1/` is a directory written by the store of snapshot format 1 (before the
//! small windows of format 2 existed): a snapshot taken after the first batches, then a log
//! of the batches after it. Opening it must replay both and answer every query exactly as a
//! store that was given the same batches now. The fixture was made with that version's code
//! (commit `b50613e`, by the `write_the_format_1_fixture` function that commit has in this file:
//! the batches below, a checkpoint before batch `IN_SNAPSHOT`, no checkpoint after the last);
//! it is not to be remade with a later version, so no test here writes it.

use std::path::Path;
use std::time::Duration;

use insights_series::{ManualClock, SeriesConfig, SeriesStore};

mod support;
use support::{at, dump, ingest, payload};

/// 2023-11-14T22:13:20Z; the data spans the three hours before it.
const NOW: i64 = 1_700_000_000_000_000;
const HOUR: i64 = 3_600_000_000;
const SECOND: i64 = 1_000_000;

fn config() -> SeriesConfig {
    SeriesConfig {
        clock: ManualClock::new(at(NOW)).into(),
        checkpoint_interval: Duration::from_secs(3600),
        ..SeriesConfig::default()
    }
}

/// Three versions of acme/compat over the last three hours: 1.0.0 one payload every two
/// minutes (a value per 1-minute window), 2.0.0 every 10 s for the last 70 minutes, 3.0.0 every
/// 2 s for five minutes two hours ago and five minutes in the last hour (windows of 30 values); values of both signs, zeros, and values closer to zero
/// than the sketch resolves. In time order, in batches of 256.
fn batches() -> Vec<Vec<(String, bool)>> {
    let mut all: Vec<(i64, String, bool)> = Vec::new();
    let mut push = |version: &str, t: i64, k: usize| {
        let metrics = [
            ("latency", (k % 97) as f64 * 1.25 + 0.5),
            ("drift", (k as f64 * 0.37).sin() * 40.0),
            ("tiny", [0.0, 1e-12, -2.5e-3, 7.0][k % 4]),
        ];
        let json = payload("acme", "compat", version, at(t), &metrics, (k % 300) as u64);
        all.push((t, json, k.is_multiple_of(7)));
    };
    let start = NOW - 3 * HOUR;
    for k in 0..90 {
        push("1.0.0", start + k as i64 * 120 * SECOND + 7 * SECOND, k);
    }
    for k in 660..1080 {
        push("2.0.0", start + k as i64 * 10 * SECOND + 3 * SECOND, k);
    }
    for k in (1800..1950).chain(4800..4950) {
        push("3.0.0", start + k as i64 * 2 * SECOND + 1, k);
    }
    all.sort_by_key(|(t, _, _)| *t);
    all.chunks(256)
        .map(|c| c.iter().map(|(_, j, f)| (j.clone(), *f)).collect())
        .collect()
}

/// The batches written into the snapshot; the rest are in the log after it.
const IN_SNAPSHOT: usize = 2;

fn view(s: &SeriesStore) -> impl PartialEq + std::fmt::Debug {
    dump(s, "acme", "compat", at(NOW - 4 * HOUR), at(NOW + HOUR))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("series")).unwrap();
    for e in std::fs::read_dir(from.join("series")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join("series").join(p.file_name().unwrap())).unwrap();
    }
}

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format1")
}

#[test]
fn a_directory_of_snapshot_format_1_opens_and_answers_as_before() {
    let batches = batches();
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), dir.path());
    let s = SeriesStore::open(dir.path(), config()).unwrap();
    let rec = s.stats().recovery;
    assert!(rec.snapshot_loaded, "{rec:?}");
    assert_eq!(rec.snapshot_set_aside, None);
    let logged: usize = batches[IN_SNAPSHOT..].iter().map(Vec::len).sum();
    assert_eq!(rec.replayed_payloads, logged as u64);
    assert_eq!(rec.lost_payloads, 0);

    let r_dir = tempfile::tempdir().unwrap();
    let r = SeriesStore::open(r_dir.path(), config()).unwrap();
    for b in &batches {
        ingest(&r, b);
    }
    // The same points and windows (their byte estimates differ: a loaded window's sketch
    // stays encoded until it is needed).
    let entries = |s: &SeriesStore| {
        let l = s.stats().levels;
        (l.raw.entries, l.minute.entries, l.hour.entries)
    };
    assert_eq!(entries(&s), entries(&r));
    assert_eq!(view(&s), view(&r));

    // And what it checkpoints now (the current format) reads back the same.
    drop(s);
    let s = SeriesStore::open(dir.path(), config()).unwrap();
    assert!(s.stats().recovery.snapshot_loaded);
    assert_eq!(s.stats().recovery.replayed_payloads, 0);
    assert_eq!(view(&s), view(&r));
}
