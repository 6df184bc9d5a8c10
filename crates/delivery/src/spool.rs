//! A durable spool: payloads a remote sink has taken but its destination has not acknowledged
//! yet. Shared machinery, with nothing of any one destination in it: the Kafka sink keeps its
//! payloads here between the dispatcher and the producer; any other remote sink (or an outbox
//! of notifications) can keep its own in a directory of its own.
//!
//! Records are appended to segment files (`<dir>/<first seq>.seg`), one `write` per batch, so
//! a record handed over survives the death of the process as soon as its batch is appended
//! (and a power loss once the batch is `fdatasync`ed, which `fsync: true` does per batch).
//! A record is resolved when its destination acknowledged it, or when its owner gave up on it
//! (its window expired, the destination refused it, the spool was full); resolutions are
//! appended to `<dir>/resolved.log`, so that after a restart only unresolved records are handed
//! out again. A segment whose records are all resolved is deleted. The spool is bounded in
//! bytes: past `max_bytes`, the oldest segment is dropped and its unresolved records returned to
//! the caller, which counts them.
//!
//! Each record carries a key and a value, both text, which the spool stores and returns as they
//! were (the Kafka sink: the message key and the payload's JSON).
//!
//! Record layout: `len: u32 | crc32(rest): u32 | seq: u64 | created_micros: i64 |
//! key_len: u16 | key | value`, little-endian; `len` counts everything after itself. A torn
//! record at the end of the last segment (a crash mid-write) is cut off at recovery.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One spooled record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Record {
    pub seq: u64,
    /// When it was handed over (Unix microseconds, wall clock, so it survives a restart).
    pub created_micros: i64,
    pub key: Arc<str>,
    pub value: Arc<str>,
}

#[derive(Debug, Clone)]
pub(crate) struct SpoolConfig {
    pub dir: PathBuf,
    pub segment_bytes: u64,
    pub max_bytes: u64,
    /// `fdatasync` every appended batch (power-loss durability) instead of relying on the page
    /// cache (process-crash durability).
    pub fsync: bool,
}

struct Segment {
    path: PathBuf,
    bytes: u64,
    /// Sequence numbers of every record in the segment, in order, with their offsets.
    records: Vec<(u64, u64)>,
    resolved: u64,
}

impl Segment {
    fn last_seq(&self) -> Option<u64> {
        self.records.last().map(|r| r.0)
    }
}

pub(crate) struct Spool {
    config: SpoolConfig,
    /// By first sequence number.
    segments: BTreeMap<u64, Segment>,
    writer: Option<(u64, File)>,
    next_seq: u64,
    resolved: HashSet<u64, FastHash>,
    resolved_log: File,
    resolved_log_entries: u64,
    /// The next record to hand out: (segment first seq, index in its records).
    cursor: (u64, usize),
    /// The segment being read, and the reader's position in it.
    reader: Option<(u64, BufReader<File>, u64)>,
    bytes: u64,
    unresolved: u64,
    /// Records found unreadable since the last `take_corrupt`.
    corrupt: u64,
    /// A record's bytes as read, before they are checked (one buffer for every read).
    scratch: Vec<u8>,
    /// The key of records that have none (a sink that needs no key): shared, not allocated
    /// per record.
    no_key: Arc<str>,
}

const HEADER: u64 = 4 + 4;

impl Spool {
    /// Opens the spool in `config.dir`, recovering what a previous process left.
    pub(crate) fn open(config: SpoolConfig) -> io::Result<Spool> {
        // Payloads wait here: readable by the server's user only (0700, files 0600).
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&config.dir)?;
        let resolved_path = config.dir.join("resolved.log");
        let mut resolved: HashSet<u64, FastHash> = HashSet::default();
        if let Ok(bytes) = fs::read(&resolved_path) {
            for chunk in bytes.chunks_exact(8) {
                resolved.insert(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
            }
        }
        let mut names: Vec<(u64, PathBuf)> = fs::read_dir(&config.dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let p = e.path();
                let first = p.file_stem()?.to_str()?.parse::<u64>().ok();
                (p.extension()? == "seg").then_some(())?;
                Some((first?, p))
            })
            .collect();
        names.sort();
        let mut segments = BTreeMap::new();
        // Sequence numbers never repeat: past every segment's first number, every record and
        // every resolution ever logged (a resolution may outlive its deleted segment).
        let mut next_seq = resolved.iter().max().map_or(1, |m| m + 1);
        let last = names.len().saturating_sub(1);
        let mut corrupt_segments = 0;
        for (i, (first, path)) in names.into_iter().enumerate() {
            let Scanned {
                records,
                valid_len,
                corrupt,
            } = scan(&path)?;
            if corrupt {
                // What follows the bad record cannot be read: given up, and said so (the count
                // is of segments; how many records the bytes held is unknown).
                let lost = fs::metadata(&path).map_or(0, |m| m.len().saturating_sub(valid_len));
                tracing::error!(segment = %path.display(), lost_bytes = lost, "a spool segment is corrupt; the payloads after the damage are lost");
                corrupt_segments += 1;
            }
            if i == last {
                // Cut a torn tail (only the last segment can have one).
                OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .set_len(valid_len)?;
            }
            next_seq = next_seq.max(first + 1);
            if let Some((seq, _)) = records.last() {
                next_seq = next_seq.max(seq + 1);
            }
            let done = records.iter().filter(|(s, _)| resolved.contains(s)).count() as u64;
            segments.insert(
                first,
                Segment {
                    path,
                    bytes: valid_len,
                    resolved: done,
                    records,
                },
            );
        }
        // Keep only the resolutions of live records, and rewrite the log with them: this also
        // drops a torn last entry (a crash mid-write) that would misalign every later one.
        let live: HashSet<u64, FastHash> = segments
            .values()
            .flat_map(|s: &Segment| s.records.iter().map(|r| r.0))
            .collect();
        resolved.retain(|seq| live.contains(seq));
        // The high-water mark survives in the rewritten log as a sentinel entry only if needed:
        // keep the largest resolution ever seen so that the next start numbers past it.
        let high_water = next_seq - 1;
        let mut log = Vec::with_capacity((resolved.len() + 1) * 8);
        for seq in &resolved {
            log.extend_from_slice(&seq.to_le_bytes());
        }
        if high_water > 0 && !live.contains(&high_water) {
            log.extend_from_slice(&high_water.to_le_bytes());
        }
        let tmp = config.dir.join("resolved.log.tmp");
        private_file(&tmp)?.write_all(&log)?;
        fs::rename(&tmp, &resolved_path)?;
        let entries = (log.len() / 8) as u64;
        let resolved_log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&resolved_path)?;
        let first = segments.keys().next().copied().unwrap_or(next_seq);
        let mut spool = Spool {
            config,
            bytes: segments.values().map(|s| s.bytes).sum(),
            unresolved: segments
                .values()
                .map(|s| s.records.len() as u64 - s.resolved)
                .sum(),
            segments,
            writer: None,
            next_seq,
            resolved,
            resolved_log,
            resolved_log_entries: entries,
            cursor: (first, 0),
            reader: None,
            corrupt: corrupt_segments,
            scratch: Vec::new(),
            no_key: Arc::from(""),
        };
        spool.collect_garbage()?;
        Ok(spool)
    }

    /// Records neither acknowledged nor dropped: waiting on disk or being sent.
    pub(crate) fn unresolved(&self) -> u64 {
        self.unresolved
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// How many records were found unreadable (and resolved as dropped) since the last call.
    pub(crate) fn take_corrupt(&mut self) -> u64 {
        std::mem::take(&mut self.corrupt)
    }

    /// Appends a batch as one write; returns the records (with their sequence numbers) and
    /// the unresolved records evicted to stay within `max_bytes`.
    pub(crate) fn append(
        &mut self,
        batch: &[(Arc<str>, Arc<str>)],
        created_micros: i64,
    ) -> io::Result<(Vec<Record>, Vec<u64>)> {
        let mut buf = Vec::with_capacity(batch.iter().map(|(k, v)| k.len() + v.len() + 30).sum());
        let mut records = Vec::with_capacity(batch.len());
        let seg_first = self.writer_for_append()?;
        let seg_bytes = self.segments[&seg_first].bytes;
        let mut offsets = Vec::with_capacity(batch.len());
        let mut seq = self.next_seq;
        for (key, value) in batch {
            let offset = seg_bytes + buf.len() as u64;
            let key_len = u16::try_from(key.len()).unwrap_or(u16::MAX);
            let body_len = 8 + 8 + 2 + key_len as usize + value.len();
            let start = buf.len();
            buf.extend_from_slice(&((body_len + 4) as u32).to_le_bytes());
            buf.extend_from_slice(&[0; 4]); // crc, filled below
            buf.extend_from_slice(&seq.to_le_bytes());
            buf.extend_from_slice(&created_micros.to_le_bytes());
            buf.extend_from_slice(&key_len.to_le_bytes());
            buf.extend_from_slice(&key.as_bytes()[..key_len as usize]);
            buf.extend_from_slice(value.as_bytes());
            let crc = crc32fast::hash(&buf[start + 8..]);
            buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
            offsets.push((seq, offset));
            records.push(Record {
                seq,
                created_micros,
                key: key.clone(),
                value: value.clone(),
            });
            seq += 1;
        }
        let (_, file) = self.writer.as_mut().expect("writer_for_append opened it");
        let written = file.write_all(&buf).and_then(|()| {
            if self.config.fsync {
                file.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = written {
            // Nothing of this batch counts: cut what was written, and start a new segment
            // for the next batch (this file's end is no longer trusted).
            let _ = file.set_len(seg_bytes);
            self.writer = None;
            return Err(e);
        }
        self.next_seq = seq;
        let seg = self
            .segments
            .get_mut(&seg_first)
            .expect("writer segment exists");
        seg.records.extend(offsets);
        seg.bytes += buf.len() as u64;
        self.bytes += buf.len() as u64;
        self.unresolved += records.len() as u64;
        let evicted = self.enforce_bound();
        Ok((records, evicted))
    }

    /// The first sequence number of the segment being written, rolling to a new one when full.
    fn writer_for_append(&mut self) -> io::Result<u64> {
        let roll = match &self.writer {
            None => true,
            Some((first, _)) => self.segments[first].bytes >= self.config.segment_bytes,
        };
        if roll {
            let first = self.next_seq;
            let path = self.config.dir.join(format!("{first:020}.seg"));
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&path)?;
            self.segments.insert(
                first,
                Segment {
                    path,
                    bytes: 0,
                    records: Vec::new(),
                    resolved: 0,
                },
            );
            self.writer = Some((first, file));
        }
        Ok(self.writer.as_ref().expect("set above").0)
    }

    /// Up to `max` unresolved records from the cursor on. The cursor only moves forward: a
    /// record handed out is the caller's until it is resolved (sent, retried from memory,
    /// dropped); after a restart, every unresolved record is handed out again.
    pub(crate) fn next(&mut self, max: usize) -> io::Result<Vec<Record>> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some((&first, seg)) = self.segments.range(self.cursor.0..).next() else {
                break;
            };
            if first != self.cursor.0 {
                self.cursor = (first, 0);
            }
            let Some(&(seq, offset)) = seg.records.get(self.cursor.1) else {
                // End of this segment: move on unless it is the one being written.
                match self.segments.range(first + 1..).next() {
                    Some((&next, _)) => {
                        self.cursor = (next, 0);
                        continue;
                    }
                    None => break,
                }
            };
            self.cursor.1 += 1;
            if self.resolved.contains(&seq) {
                continue;
            }
            match self.read_at(first, offset) {
                Ok(record) => out.push(record),
                Err(e) => {
                    // Unreadable (the disk changed under us): dropped and counted, never
                    // silently skipped, and the rest of the spool still goes out.
                    let path = &self.segments[&first].path;
                    tracing::error!(seq, path = %path.display(), error = %e, "a spooled payload cannot be read; it is dropped");
                    self.corrupt += 1;
                    self.reader = None;
                    self.resolve(&[seq])?;
                }
            }
        }
        Ok(out)
    }

    fn read_at(&mut self, first: u64, offset: u64) -> io::Result<Record> {
        if self.reader.as_ref().is_none_or(|(f, _, _)| *f != first) {
            let path = &self.segments[&first].path;
            self.reader = Some((
                first,
                BufReader::with_capacity(256 << 10, File::open(path)?),
                0,
            ));
        }
        let (_, reader, pos) = self.reader.as_mut().expect("set above");
        // Records are read in order: seek (which drops the buffer) only when skipping.
        if *pos != offset {
            reader.seek(SeekFrom::Start(offset))?;
        }
        let record = read_record(reader, &mut self.scratch, &self.no_key);
        *pos = match &record {
            Ok(Some(r)) => offset + record_len(r),
            _ => u64::MAX,
        };
        record?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("no record at {offset} in segment {first}"),
            )
        })
    }

    /// Marks records as resolved (delivered or dropped) and deletes fully resolved segments.
    pub(crate) fn resolve(&mut self, seqs: &[u64]) -> io::Result<()> {
        let mut log = Vec::with_capacity(seqs.len() * 8);
        for &seq in seqs {
            let Some((_, seg)) = self.segments.range_mut(..=seq).next_back() else {
                continue; // its segment was evicted
            };
            if seg.last_seq().is_none_or(|last| seq > last) || !self.resolved.insert(seq) {
                continue;
            }
            seg.resolved += 1;
            self.unresolved -= 1;
            log.extend_from_slice(&seq.to_le_bytes());
        }
        self.resolved_log.write_all(&log)?;
        self.resolved_log_entries += (log.len() / 8) as u64;
        self.collect_garbage()
    }

    fn collect_garbage(&mut self) -> io::Result<()> {
        let writing = self.writer.as_ref().map(|(f, _)| *f);
        let done: Vec<u64> = self
            .segments
            .iter()
            .filter(|(first, s)| Some(**first) != writing && s.resolved == s.records.len() as u64)
            .map(|(first, _)| *first)
            .collect();
        for first in done {
            self.remove_segment(first);
        }
        // Rewrite the resolution log when most of its entries are for deleted segments.
        if self.resolved_log_entries > 2 * self.resolved.len() as u64 + 10_000 {
            let tmp = self.config.dir.join("resolved.log.tmp");
            let mut bytes = Vec::with_capacity((self.resolved.len() + 1) * 8);
            for seq in &self.resolved {
                bytes.extend_from_slice(&seq.to_le_bytes());
            }
            // The high-water mark, so that a restart never reuses a sequence number; but only
            // when no live record carries it (a live one, maybe unresolved, would otherwise be
            // read back as resolved, and silently never sent). A live record numbers the next
            // start past it anyway, as in `open`.
            let high_water = self.next_seq - 1;
            let live = self
                .segments
                .values()
                .any(|s| s.records.iter().any(|r| r.0 == high_water));
            if high_water > 0 && !live {
                bytes.extend_from_slice(&high_water.to_le_bytes());
            }
            let mut f = private_file(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, self.config.dir.join("resolved.log"))?;
            self.resolved_log = OpenOptions::new()
                .append(true)
                .open(self.config.dir.join("resolved.log"))?;
            self.resolved_log_entries = self.resolved.len() as u64;
        }
        Ok(())
    }

    /// Forgets a segment and deletes its file; returns its unresolved records.
    fn remove_segment(&mut self, first: u64) -> Vec<u64> {
        let seg = self.segments.remove(&first).expect("exists");
        let mut unresolved = Vec::new();
        for (seq, _) in &seg.records {
            if !self.resolved.remove(seq) {
                unresolved.push(*seq);
            }
        }
        self.bytes -= seg.bytes;
        self.unresolved -= unresolved.len() as u64;
        if self.reader.as_ref().is_some_and(|(f, _, _)| *f == first) {
            self.reader = None;
        }
        if self.writer.as_ref().is_some_and(|(f, _)| *f == first) {
            self.writer = None;
        }
        if let Err(e) = fs::remove_file(&seg.path) {
            // Harmless but for the disk space: a restart finds its records resolved or not
            // at all, and deletes it again.
            tracing::warn!(path = %seg.path.display(), error = %e, "deleting a spool segment failed");
        }
        unresolved
    }

    /// Drops the oldest segments while the spool is over `max_bytes` (never the one being
    /// written); returns their unresolved records.
    fn enforce_bound(&mut self) -> Vec<u64> {
        let mut evicted = Vec::new();
        while self.bytes > self.config.max_bytes && self.segments.len() > 1 {
            let first = *self.segments.keys().next().expect("non-empty");
            evicted.extend(self.remove_segment(first));
        }
        evicted
    }

    /// True when every record has been handed out (nothing waits behind the cursor's end).
    pub(crate) fn at_end(&self) -> bool {
        match self.segments.range(self.cursor.0..).next() {
            None => true,
            Some((first, seg)) => {
                *first == self.cursor.0
                    && self.cursor.1 >= seg.records.len()
                    && self.segments.range(first + 1..).next().is_none()
            }
        }
    }

    /// Moves the cursor past every record: the caller takes the records it just appended
    /// straight from `append`'s answer instead of reading them back.
    pub(crate) fn hand_out_all(&mut self) {
        if let Some((&first, seg)) = self.segments.iter().next_back() {
            self.cursor = (first, seg.records.len());
        }
    }

    /// Resolves, as dropped, the records not handed out yet (from the cursor on) that were
    /// created before `before_micros`; returns how many. Records are in hand-over order, so this
    /// stops at the first record inside the window.
    pub(crate) fn expire(&mut self, before_micros: i64) -> io::Result<u64> {
        let mut expired = Vec::new();
        loop {
            let cursor = self.cursor;
            let Some(record) = self.next(1)?.pop() else {
                break;
            };
            if record.created_micros >= before_micros {
                self.cursor = cursor; // not expired: leave it to be handed out
                self.reader = None;
                break;
            }
            expired.push(record.seq);
        }
        let n = expired.len() as u64;
        self.resolve(&expired)?;
        Ok(n)
    }
}

/// The bytes a record takes in its segment.
fn record_len(r: &Record) -> u64 {
    HEADER + 8 + 8 + 2 + r.key.len() as u64 + r.value.len() as u64
}

/// Reads every valid record's (seq, offset) and the length of the valid prefix.
/// What reading a segment found.
struct Scanned {
    /// (sequence number, offset) of each readable record.
    records: Vec<(u64, u64)>,
    /// The length of the readable part.
    valid_len: u64,
    /// It ended in corruption (bad data with more after it), not at its end or at a torn tail
    /// (a write cut short by a crash).
    corrupt: bool,
}

fn scan(path: &Path) -> io::Result<Scanned> {
    let mut reader = BufReader::new(File::open(path)?);
    let mut records = Vec::new();
    let mut offset = 0u64;
    let (mut scratch, no_key) = (Vec::new(), Arc::from(""));
    loop {
        match read_record(&mut reader, &mut scratch, &no_key) {
            Ok(Some(r)) => {
                records.push((r.seq, offset));
                offset += record_len(&r);
            }
            Ok(None) => {
                return Ok(Scanned {
                    records,
                    valid_len: offset,
                    corrupt: false,
                });
            }
            Err(e) => {
                return Ok(Scanned {
                    records,
                    valid_len: offset,
                    corrupt: e.kind() != io::ErrorKind::UnexpectedEof,
                });
            }
        }
    }
}

/// Reads one record into `body` (a buffer kept from one record to the next); `None` at a clean
/// end of file, an error for a torn or corrupt record. A record without a key gets `no_key`.
fn read_record(
    reader: &mut impl Read,
    body: &mut Vec<u8>,
    no_key: &Arc<str>,
) -> io::Result<Option<Record>> {
    let mut head = [0u8; 8];
    match reader.read_exact(&mut head[..4]) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    reader.read_exact(&mut head[4..])?;
    let len = u32::from_le_bytes(head[..4].try_into().expect("4")) as usize;
    let crc = u32::from_le_bytes(head[4..].try_into().expect("4"));
    if !(4 + 18..=64 << 20).contains(&len) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "record length out of range",
        ));
    }
    body.clear();
    body.resize(len - 4, 0);
    reader.read_exact(body)?;
    if crc32fast::hash(body) != crc {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "record checksum mismatch",
        ));
    }
    let seq = u64::from_le_bytes(body[..8].try_into().expect("8"));
    let created_micros = i64::from_le_bytes(body[8..16].try_into().expect("8"));
    let key_len = u16::from_le_bytes(body[16..18].try_into().expect("2")) as usize;
    let text = |b: &[u8]| {
        std::str::from_utf8(b)
            .map(Arc::<str>::from)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "record is not UTF-8"))
    };
    let key = match key_len {
        0 => no_key.clone(),
        _ => text(body.get(18..18 + key_len).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "record key out of range")
        })?)?,
    };
    let value = text(&body[18 + key_len..])?;
    if body.capacity() > 1 << 20 {
        *body = Vec::new(); // a rare large record does not keep its buffer
    }
    Ok(Some(Record {
        seq,
        created_micros,
        key,
        value,
    }))
}

/// A new file (replacing any at `path`) that only the server's user can read.
fn private_file(path: &Path) -> std::io::Result<fs::File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// Hashes keys this crate makes itself (sequence numbers, ids, arrays it wrote) with foldhash's
/// fixed-seed hasher instead of SipHash: the spool and the delivery threads hash several of them
/// per payload, and SipHash showed in their profiles. Never for keys an outside party chooses
/// (those get foldhash's seeded `RandomState`).
pub(crate) type FastHash = foldhash::fast::FixedState;

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> SpoolConfig {
        SpoolConfig {
            dir: dir.to_path_buf(),
            segment_bytes: 1 << 20,
            max_bytes: 1 << 30,
            fsync: false,
        }
    }

    fn batch(n: usize, tag: &str) -> Vec<(Arc<str>, Arc<str>)> {
        (0..n)
            .map(|i| {
                (
                    Arc::from("o/a"),
                    Arc::from(format!("{{\"{tag}\":{i}}}").as_str()),
                )
            })
            .collect()
    }

    /// The segment file of a spool that has one.
    fn only_segment(dir: &Path) -> PathBuf {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "seg"))
            .unwrap()
    }

    fn values(records: &[Record]) -> Vec<String> {
        records.iter().map(|r| r.value.to_string()).collect()
    }

    #[test]
    fn unresolved_records_survive_reopening_and_resolved_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Spool::open(config(dir.path())).unwrap();
            let (recs, _) = s.append(&batch(5, "a"), 1).unwrap();
            assert_eq!(
                recs.iter().map(|r| r.seq).collect::<Vec<_>>(),
                [1, 2, 3, 4, 5]
            );
            s.resolve(&[1, 3]).unwrap();
            assert_eq!(s.unresolved(), 3);
            assert_eq!(
                values(&s.next(10).unwrap()),
                ["{\"a\":1}", "{\"a\":3}", "{\"a\":4}"]
            );
        }
        let mut s = Spool::open(config(dir.path())).unwrap();
        assert_eq!(s.unresolved(), 3);
        let again = s.next(10).unwrap();
        assert_eq!(again.iter().map(|r| r.seq).collect::<Vec<_>>(), [2, 4, 5]);
        let (more, _) = s.append(&batch(1, "b"), 2).unwrap();
        assert_eq!(more[0].seq, 6, "sequence numbers continue after a restart");
    }

    #[test]
    fn sequence_numbers_never_repeat_across_restarts_with_an_empty_spool() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Spool::open(config(dir.path())).unwrap();
            s.append(&batch(3, "a"), 1).unwrap();
            s.resolve(&[1, 2, 3]).unwrap();
        }
        // Reopened twice with nothing appended: every segment is gone.
        drop(Spool::open(config(dir.path())).unwrap());
        let mut s = Spool::open(config(dir.path())).unwrap();
        let (r, _) = s.append(&batch(2, "b"), 1).unwrap();
        assert_eq!(r[0].seq, 4, "numbered past everything ever resolved");
        assert_eq!(values(&s.next(10).unwrap()), ["{\"b\":0}", "{\"b\":1}"]);
        s.resolve(&[4, 5]).unwrap();
        assert_eq!(s.unresolved(), 0);
    }

    #[test]
    fn rewriting_the_resolution_log_never_marks_the_newest_record_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let mut small = config(dir.path());
        small.segment_bytes = 4096; // many segments, so that resolved ones are deleted
        {
            let mut s = Spool::open(small.clone()).unwrap();
            let mut recs = Vec::new();
            for _ in 0..240 {
                recs.extend(s.append(&batch(50, "a"), 1).unwrap().0);
            }
            assert!(s.segments.len() > 10, "{}", s.segments.len());
            assert_eq!(s.next(20_000).unwrap().len(), 12_000);
            // Everything but the newest is acknowledged: enough resolutions for deleted
            // segments that the log is rewritten.
            let done: Vec<u64> = recs[..recs.len() - 1].iter().map(|r| r.seq).collect();
            s.resolve(&done).unwrap();
            assert_eq!(s.unresolved(), 1);
        } // a crash: nothing else is written
        let mut s = Spool::open(small).unwrap();
        assert_eq!(s.unresolved(), 1, "the newest record still waits");
        assert_eq!(values(&s.next(10).unwrap()), ["{\"a\":49}"]);
    }

    #[test]
    fn a_torn_resolution_log_is_repaired() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Spool::open(config(dir.path())).unwrap();
            s.append(&batch(3, "a"), 1).unwrap();
            s.resolve(&[1]).unwrap();
        }
        let log = dir.path().join("resolved.log");
        let mut bytes = fs::read(&log).unwrap();
        bytes.extend_from_slice(&[7, 7, 7]); // a crash mid-entry
        fs::write(&log, bytes).unwrap();
        {
            let mut s = Spool::open(config(dir.path())).unwrap();
            assert_eq!(s.unresolved(), 2);
            s.resolve(&[2]).unwrap();
        }
        let mut s = Spool::open(config(dir.path())).unwrap();
        assert_eq!(
            s.next(10)
                .unwrap()
                .iter()
                .map(|r| r.seq)
                .collect::<Vec<_>>(),
            [3]
        );
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_everything_before_it_kept() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Spool::open(config(dir.path())).unwrap();
            s.append(&batch(3, "a"), 1).unwrap();
        }
        let seg = only_segment(dir.path());
        let len = fs::metadata(&seg).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let mut s = Spool::open(config(dir.path())).unwrap();
        assert_eq!(s.unresolved(), 2);
        assert_eq!(s.take_corrupt(), 0, "a torn tail is not corruption");
        assert_eq!(values(&s.next(10).unwrap()), ["{\"a\":0}", "{\"a\":1}"]);
        let (r, _) = s.append(&batch(1, "b"), 1).unwrap();
        assert_eq!(r[0].seq, 3);
        assert_eq!(s.next(10).unwrap().len(), 1);
    }

    #[test]
    fn damage_in_the_middle_of_a_segment_is_counted_not_taken_for_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Spool::open(config(dir.path())).unwrap();
            s.append(&batch(3, "a"), 1).unwrap();
        }
        let seg = only_segment(dir.path());
        let mut bytes = fs::read(&seg).unwrap();
        let len = bytes.len();
        bytes[len / 2] ^= 0xff; // a flipped byte in the second record
        fs::write(&seg, bytes).unwrap();
        let mut s = Spool::open(config(dir.path())).unwrap();
        assert_eq!(s.take_corrupt(), 1, "counted");
        assert_eq!(values(&s.next(10).unwrap()), ["{\"a\":0}"]);
    }

    #[test]
    fn resolved_segments_are_deleted_and_the_bound_evicts_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        c.segment_bytes = 100;
        c.max_bytes = 250;
        let mut s = Spool::open(c).unwrap();
        let segs = || {
            fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .path()
                        .extension()
                        .is_some_and(|x| x == "seg")
                })
                .count()
        };
        s.append(&batch(3, "a"), 1).unwrap(); // ~120 bytes: one segment
        s.append(&batch(3, "b"), 1).unwrap(); // a second segment
        assert_eq!(segs(), 2);
        s.resolve(&[1, 2, 3]).unwrap();
        assert_eq!(segs(), 1, "the fully resolved first segment is gone");
        let (_, ev) = s.append(&batch(3, "c"), 1).unwrap();
        assert!(ev.is_empty());
        let (_, ev) = s.append(&batch(3, "d"), 1).unwrap();
        assert_eq!(
            ev,
            vec![4, 5, 6],
            "the oldest unresolved segment was evicted"
        );
        assert!(s.bytes() <= 250);
        assert_eq!(s.unresolved(), 6);
    }

    #[test]
    fn records_taken_straight_from_append_are_not_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(config(dir.path())).unwrap();
        assert!(s.at_end());
        s.append(&batch(2, "a"), 1).unwrap();
        assert!(!s.at_end());
        s.hand_out_all();
        assert!(s.at_end());
        assert!(s.next(10).unwrap().is_empty());
        s.append(&batch(1, "b"), 1).unwrap();
        assert_eq!(values(&s.next(10).unwrap()), ["{\"b\":0}"]);
    }

    #[test]
    fn expiry_drops_old_records_not_handed_out_yet() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(config(dir.path())).unwrap();
        s.append(&batch(2, "old"), 100).unwrap();
        s.append(&batch(2, "new"), 200).unwrap();
        assert_eq!(
            s.next(1).unwrap()[0].seq,
            1,
            "handed out: the caller's to resolve"
        );
        assert_eq!(
            s.expire(150).unwrap(),
            1,
            "seq 2 expired; seq 1 is the caller's"
        );
        assert_eq!(s.unresolved(), 3);
        assert_eq!(values(&s.next(10).unwrap()), ["{\"new\":0}", "{\"new\":1}"]);
    }
}
