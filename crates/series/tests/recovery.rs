//! Durability: what a store recovers after it is dropped without a flush, after its log is
//! cut at any byte (a process killed mid-write), after a real SIGKILL of the process writing
//! it, after a checkpoint, and when its files are damaged. "Recovered" always means: every
//! query answers exactly as a store that was given the same acknowledged batches.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use insights_series::{ManualClock, SeriesConfig, SeriesError, SeriesStore};

mod support;
use support::{at, batch, dump, ingest};

const START: i64 = 1_700_000_000_000_000;
const NOW: i64 = START + 1_800_000_000; // half an hour in: raw points reach every payload

fn config() -> SeriesConfig {
    SeriesConfig {
        clock: ManualClock::new(at(NOW)).into(),
        // Nothing on schedule during a test: the tests checkpoint themselves.
        checkpoint_interval: Duration::from_secs(3600),
        ..SeriesConfig::default()
    }
}

fn open(dir: &Path) -> SeriesStore {
    SeriesStore::open(dir, config()).unwrap()
}

type View = (
    Vec<insights_series::VersionMetrics>,
    Vec<insights_series::QueryResult>,
);

fn view(s: &SeriesStore) -> View {
    dump(
        s,
        "acme",
        "scorer",
        at(START - 3_600_000_000),
        at(NOW + 3_600_000_000),
    )
}

/// A store given `batches` and nothing else, in a directory of its own.
fn reference(batches: &[Vec<(String, bool)>]) -> (tempfile::TempDir, SeriesStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    for b in batches {
        ingest(&s, b);
    }
    (dir, s)
}

fn wal_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("series"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("wal-"))
        .collect();
    v.sort();
    v
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("series")).unwrap();
    for e in std::fs::read_dir(from.join("series")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join("series").join(p.file_name().unwrap())).unwrap();
    }
}

#[test]
fn dropping_without_a_flush_loses_nothing() {
    let batches: Vec<_> = (0..5).map(|b| batch(b, 200, START)).collect();
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    for b in &batches {
        ingest(&s, b);
    }
    let before = view(&s);
    drop(s); // no flush, no checkpoint: as a SIGKILL leaves it (the OS still has the writes)
    let s = open(dir.path());
    assert_eq!(s.stats().recovery.replayed_payloads, 1000);
    assert_eq!(s.stats().recovery.lost_bytes, 0);
    assert_eq!(view(&s), before);
    let (_d, r) = reference(&batches);
    assert_eq!(view(&s), view(&r));
}

#[test]
fn a_log_cut_at_any_byte_recovers_exactly_the_whole_records_before_it() {
    let batches: Vec<_> = (0..6).map(|b| batch(b, 50 + b * 13, START)).collect();
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let mut ends = Vec::new();
    for b in &batches {
        ingest(&s, b);
        ends.push(s.stats().wal_bytes);
    }
    drop(s);
    let wal = wal_files(dir.path());
    assert_eq!(wal.len(), 1);
    let total = *ends.last().unwrap();
    assert_eq!(std::fs::metadata(&wal[0]).unwrap().len(), total);

    // Cut points: every record boundary, a byte either side, inside headers, and a spread.
    let mut cuts = vec![0, 1, 15, 16, 17, total - 1];
    for &e in &ends {
        cuts.extend([e.saturating_sub(1), e, e + 1, e + 9]);
    }
    cuts.extend((0..12).map(|i| (i * 7919 * 131) % total));
    cuts.retain(|&c| c <= total);
    cuts.sort();
    cuts.dedup();
    for cut in cuts {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), copy.path());
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&wal_files(copy.path())[0])
            .unwrap();
        f.set_len(cut).unwrap();
        drop(f);
        let kept = ends.iter().filter(|&&e| e <= cut).count();
        let s = open(copy.path());
        let rec = s.stats().recovery;
        let boundary = if kept == 0 { 0 } else { ends[kept - 1] };
        assert_eq!(rec.lost_bytes, cut - boundary, "cut at {cut}");
        assert!(!rec.damaged, "a torn tail is not damage (cut at {cut})");
        // The payloads of the torn record are known when its header survived.
        let torn_payloads = if cut - boundary >= 16 {
            batches[kept].len() as u64
        } else {
            0
        };
        assert_eq!(rec.lost_payloads, torn_payloads, "cut at {cut}");
        let (_d, r) = reference(&batches[..kept]);
        assert_eq!(view(&s), view(&r), "cut at {cut}: {kept} batches");
        // Recovery checkpointed: a second start replays nothing and sees the same.
        drop(s);
        let s = open(copy.path());
        assert_eq!(s.stats().recovery.replayed_payloads, 0);
        assert_eq!(view(&s), view(&r));
    }
}

#[test]
fn a_checkpoint_then_more_batches_then_a_crash_recovers_both() {
    let batches: Vec<_> = (0..4).map(|b| batch(b, 300, START)).collect();
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    ingest(&s, &batches[0]);
    ingest(&s, &batches[1]);
    s.checkpoint().unwrap();
    assert_eq!(s.stats().wal_bytes, 0);
    ingest(&s, &batches[2]);
    ingest(&s, &batches[3]);
    drop(s);
    // Bounded disk: one snapshot, one log (the one after the checkpoint).
    let files: Vec<String> = std::fs::read_dir(dir.path().join("series"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(wal_files(dir.path()).len(), 1, "{files:?}");
    assert!(files.contains(&"snapshot".to_string()), "{files:?}");
    let s = open(dir.path());
    let rec = s.stats().recovery;
    assert!(rec.snapshot_loaded);
    assert_eq!(
        rec.replayed_payloads, 600,
        "only what came after the checkpoint"
    );
    let (_d, r) = reference(&batches);
    assert_eq!(view(&s), view(&r));
}

#[test]
fn close_checkpoints_so_the_next_start_replays_nothing() {
    let batches: Vec<_> = (0..2).map(|b| batch(b, 100, START)).collect();
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    for b in &batches {
        ingest(&s, b);
    }
    let before = view(&s);
    s.close().unwrap();
    let s = open(dir.path());
    assert!(s.stats().recovery.snapshot_loaded);
    assert_eq!(s.stats().recovery.replayed_payloads, 0);
    assert_eq!(view(&s), before);
}

#[test]
fn a_damaged_record_is_cut_with_what_follows_and_counted_as_damage() {
    let batches: Vec<_> = (0..3).map(|b| batch(b, 100, START)).collect();
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let mut ends = Vec::new();
    for b in &batches {
        ingest(&s, b);
        ends.push(s.stats().wal_bytes);
    }
    drop(s);
    let wal = &wal_files(dir.path())[0];
    let mut bytes = std::fs::read(wal).unwrap();
    let middle = (ends[0] + (ends[1] - ends[0]) / 2) as usize;
    bytes[middle] ^= 0x40;
    std::fs::write(wal, &bytes).unwrap();
    let s = open(dir.path());
    let rec = s.stats().recovery;
    assert!(rec.damaged);
    assert_eq!(rec.lost_bytes, ends[2] - ends[0]);
    assert_eq!(
        rec.lost_payloads, 100,
        "the damaged record's header was intact"
    );
    let (_d, r) = reference(&batches[..1]);
    assert_eq!(view(&s), view(&r));
}

#[test]
fn an_unreadable_snapshot_is_set_aside_and_the_log_still_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    ingest(&s, &batch(0, 100, START));
    s.checkpoint().unwrap();
    let after = batch(1, 100, START);
    ingest(&s, &after);
    drop(s);
    let snapshot = dir.path().join("series/snapshot");
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 1;
    std::fs::write(&snapshot, &bytes).unwrap();
    let s = open(dir.path());
    let rec = s.stats().recovery;
    let aside = rec.snapshot_set_aside.expect("set aside");
    assert!(aside.exists());
    assert!(!rec.snapshot_loaded);
    assert_eq!(rec.replayed_payloads, 100);
    let (_d, r) = reference(&[after]);
    assert_eq!(view(&s), view(&r));
}

#[test]
fn two_stores_never_share_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    match SeriesStore::open(dir.path(), config()) {
        Err(SeriesError::Locked { path }) => assert_eq!(path, dir.path().join("series")),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a second store opened the same directory"),
    }
    drop(s);
    open(dir.path());
}

#[cfg(unix)]
#[test]
fn the_store_directory_and_files_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    ingest(&s, &batch(0, 10, START));
    s.checkpoint().unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join("series")), 0o700);
    for e in std::fs::read_dir(dir.path().join("series")).unwrap() {
        let p = e.unwrap().path();
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
}

const CHILD_DIR: &str = "INSIGHTS_SERIES_SIGKILL_DIR";
const CHILD_BATCH: usize = 64;

/// Not a test by itself: the process the SIGKILL test starts and kills. It ingests batches
/// forever and prints the number of each one acknowledged.
#[test]
fn sigkill_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let s = open(Path::new(&dir));
    for b in 0.. {
        ingest(&s, &batch(b, CHILD_BATCH, START));
        println!("acked {b}");
    }
}

#[test]
fn a_sigkill_mid_stream_loses_no_acknowledged_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigkill_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("acked ") {
            let n: usize = n.parse().unwrap();
            acked = Some(n);
            if n >= 40 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL, mid-stream: the child is writing batch 41 or later
    child.wait().unwrap();
    let acked = acked.expect("the child acknowledged batches") + 1;

    let s = open(dir.path());
    let rec = s.stats().recovery;
    let replayed = rec.replayed_payloads as usize;
    assert_eq!(replayed % CHILD_BATCH, 0, "whole batches only: {rec:?}");
    let batches = replayed / CHILD_BATCH;
    assert!(
        batches >= acked,
        "{batches} batches recovered, {acked} acknowledged"
    );
    let all: Vec<_> = (0..batches).map(|b| batch(b, CHILD_BATCH, START)).collect();
    let (_d, r) = reference(&all);
    assert_eq!(view(&s), view(&r));
}

#[test]
fn rollup_sketches_survive_the_snapshot_and_the_log() {
    // Raw points kept for a second only: every quantile is read from the rollups' sketches.
    let config = || SeriesConfig {
        raw: insights_series::Retention {
            age: Duration::from_secs(1),
            max_bytes: 1 << 20,
        },
        ..config()
    };
    let batches: Vec<_> = (0..4).map(|b| batch(b, 500, START)).collect();
    let dir = tempfile::tempdir().unwrap();
    let s = SeriesStore::open(dir.path(), config()).unwrap();
    ingest(&s, &batches[0]);
    ingest(&s, &batches[1]);
    s.checkpoint().unwrap();
    ingest(&s, &batches[2]);
    ingest(&s, &batches[3]);
    assert_eq!(s.stats().levels.raw.entries, 0);
    drop(s);
    let s = SeriesStore::open(dir.path(), config()).unwrap();
    let r_dir = tempfile::tempdir().unwrap();
    let r = SeriesStore::open(r_dir.path(), config()).unwrap();
    for b in &batches {
        ingest(&r, b);
    }
    let (listed, results) = view(&s);
    assert_eq!((listed, results.clone()), view(&r));
    assert!(results.iter().any(|q| {
        q.sources
            .iter()
            .all(|src| src.level != insights_series::Level::Raw)
            && q.series.iter().any(|v| v.points.len() > 1)
    }));
}

#[test]
fn a_batch_larger_than_a_record_is_several_records_and_recovers_whole() {
    let big = batch(0, 2500, START);
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    ingest(&s, &big);
    drop(s);
    let s = open(dir.path());
    assert_eq!(s.stats().recovery.replayed_payloads, 2500);
    let (_d, r) = reference(&[big]);
    assert_eq!(view(&s), view(&r));
}
