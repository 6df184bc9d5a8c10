//! The checkpoint's snapshot: `<dir>/series/snapshot`, the whole memory of the store in one
//! file, written to `snapshot.tmp`, `fsync`ed, and renamed over the previous one (then the
//! directory is `fsync`ed), so that there is always one complete snapshot. It names the log
//! generation that follows it.
//!
//! Layout (little-endian): `"ISERIES\0" | format: u32 | next_generation: u64 |` per level
//! `age_horizon: i64 | byte_horizon: i64 |` versions `(id, owner, name, version)*` | series
//! `(version id, metric, first_seen, last_seen, count, raw points, 1m windows, 1h windows)*` |
//! `crc32(everything before): u32`. A window is its exact statistics, its sum's partials and
//! its sketch: in format 2, `0 | n | n bytes` for DDSketch's binary encoding or
//! `1 | n | n × f64` for a small window's values; format 1 (still read) had only the first,
//! without its tag.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use crate::codec::{self, Malformed, Reader};
use crate::exact::ExactSum;
use crate::model::{Level, Micros};
use crate::rollup::{RAW_POINT_BYTES, RawPoint, Window, Windows};
use crate::sketch::{SMALL_VALUES, Sketch};
use crate::state::State;

const MAGIC: &[u8; 8] = b"ISERIES\0";
/// The format written; format 1 is read too.
const FORMAT: u32 = 2;
/// Format 1: every window's sketch in DDSketch's encoding, untagged.
const FORMAT_1: u32 = 1;
const SKETCH_ENCODED: u8 = 0;
const SKETCH_VALUES: u8 = 1;

/// Writes the snapshot of `state` to `path`; returns the file, not yet synced (the caller does
/// that after letting go of the store's lock), and its size in bytes.
pub(crate) fn write(
    path: &Path,
    state: &State,
    next_generation: u64,
) -> std::io::Result<(File, u64)> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    let mut w = Sink {
        out: BufWriter::with_capacity(1 << 20, file),
        crc: crc32fast::Hasher::new(),
        buf: Vec::with_capacity(1 << 16),
        written: 0,
    };
    let b = &mut w.buf;
    b.extend_from_slice(MAGIC);
    codec::put_u32(b, FORMAT);
    codec::put_u64(b, next_generation);
    for level in Level::ALL {
        let lv = state.levels.get(level);
        codec::put_i64(b, lv.age_horizon);
        codec::put_i64(b, lv.byte_horizon);
    }
    codec::put_varint(b, state.versions.len() as u64);
    for (id, v) in state.versions.iter() {
        codec::put_varint(&mut w.buf, u64::from(id));
        codec::put_str(&mut w.buf, &v.owner);
        codec::put_str(&mut w.buf, &v.name);
        codec::put_str(&mut w.buf, &v.version);
    }
    codec::put_varint(&mut w.buf, state.series.len() as u64);
    for (_, s) in state.series.iter() {
        let b = &mut w.buf;
        codec::put_varint(b, u64::from(s.version));
        codec::put_str(b, &s.metric);
        codec::put_i64(b, s.first_seen);
        codec::put_i64(b, s.last_seen);
        codec::put_u64(b, s.count);
        codec::put_varint(b, s.raw.0.len() as u64);
        for p in &s.raw.0 {
            codec::put_i64(b, p.time);
            codec::put_f64(b, p.value);
        }
        w.spill()?;
        for windows in [&s.minute, &s.hour] {
            codec::put_varint(&mut w.buf, windows.0.len() as u64);
            for win in &windows.0 {
                put_window(&mut w.buf, win);
                w.spill()?;
            }
        }
    }
    w.finish()
}

fn put_window(b: &mut Vec<u8>, w: &Window) {
    codec::put_i64(b, w.start);
    codec::put_u64(b, w.count);
    codec::put_f64(b, w.min);
    codec::put_f64(b, w.max);
    codec::put_i64(b, w.last_time);
    codec::put_f64(b, w.last_value);
    codec::put_varint(b, w.sum.partials().len() as u64);
    for &p in w.sum.partials() {
        codec::put_f64(b, p);
    }
    match (w.sketch.values(), w.sketch.encoded()) {
        (Some(values), _) => {
            b.push(SKETCH_VALUES);
            codec::put_varint(b, values.len() as u64);
            for &v in values {
                codec::put_f64(b, v);
            }
        }
        (None, encoded) => {
            let sketch = encoded.expect("a sketch that is not small has an encoding");
            b.push(SKETCH_ENCODED);
            codec::put_varint(b, sketch.len() as u64);
            b.extend_from_slice(&sketch);
        }
    }
}

/// Buffers encoded bytes and hashes them on their way to the file.
struct Sink {
    out: BufWriter<File>,
    crc: crc32fast::Hasher,
    buf: Vec<u8>,
    written: u64,
}

impl Sink {
    fn spill(&mut self) -> std::io::Result<()> {
        if self.buf.len() >= 1 << 16 {
            self.drain()?;
        }
        Ok(())
    }

    fn drain(&mut self) -> std::io::Result<()> {
        self.crc.update(&self.buf);
        self.out.write_all(&self.buf)?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<(File, u64)> {
        self.drain()?;
        let crc = self.crc.clone().finalize();
        self.out.write_all(&crc.to_le_bytes())?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        Ok((file, self.written + 4))
    }
}

/// Loads a snapshot into an empty `state`; returns the log generation that follows it.
pub(crate) fn read(bytes: &[u8], state: &mut State) -> Result<u64, Malformed> {
    let Some(body_len) = bytes.len().checked_sub(4) else {
        return Err(Malformed("shorter than its checksum"));
    };
    let (body, crc) = bytes.split_at(body_len);
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
        return Err(Malformed("checksum mismatch"));
    }
    let mut r = Reader::new(body);
    if r.bytes(8)? != MAGIC {
        return Err(Malformed("not a series snapshot"));
    }
    let format = r.u32()?;
    if format != FORMAT && format != FORMAT_1 {
        return Err(Malformed("unknown snapshot format"));
    }
    let next_generation = r.u64()?;
    for level in Level::ALL {
        let lv = state.levels.get_mut(level);
        lv.age_horizon = r.i64()?;
        lv.byte_horizon = r.i64()?;
    }
    let mut versions = std::collections::HashMap::new();
    for _ in 0..r.count(4)? {
        let id = r.u32_id()?;
        let (owner, name, version) = (r.str()?, r.str()?, r.str()?);
        versions.insert(id, state.intern_version(owner, name, version));
    }
    for _ in 0..r.count(30)? {
        let vid = r.u32_id()?;
        let vid = *versions
            .get(&vid)
            .ok_or(Malformed("series of an unknown version"))?;
        let metric = r.str()?;
        let sid = state.intern_series(vid, metric);
        let (first_seen, last_seen, count) = (r.i64()?, r.i64()?, r.u64()?);
        let mut raw = std::collections::VecDeque::with_capacity(0);
        let mut prev = Micros::MIN;
        for _ in 0..r.count(16)? {
            let p = RawPoint {
                time: r.i64()?,
                value: r.f64()?,
            };
            if p.time < prev {
                return Err(Malformed("raw points out of order"));
            }
            prev = p.time;
            raw.push_back(p);
        }
        let raw_items = raw.len() as u64;
        let mut rollups = [Windows::default(), Windows::default()];
        let mut rollup_bytes = [0u64; 2];
        for (windows, bytes) in rollups.iter_mut().zip(&mut rollup_bytes) {
            for _ in 0..r.count(50)? {
                *bytes += windows
                    .push_loaded(read_window(&mut r, format)?)
                    .map_err(Malformed)? as u64;
            }
        }
        let [minute, hour] = rollups;
        state.account_loaded(Level::Raw, raw_items, raw_items * RAW_POINT_BYTES as u64);
        state.account_loaded(Level::Minute, minute.0.len() as u64, rollup_bytes[0]);
        state.account_loaded(Level::Hour, hour.0.len() as u64, rollup_bytes[1]);
        let s = state.series.get_mut(sid).expect("just interned");
        if s.count != 0 {
            return Err(Malformed("a series given twice"));
        }
        s.first_seen = first_seen;
        s.last_seen = last_seen;
        s.count = count;
        s.raw.0 = raw;
        s.minute = minute;
        s.hour = hour;
    }
    if r.remaining() != 0 {
        return Err(Malformed("bytes after the last series"));
    }
    Ok(next_generation)
}

fn read_window(r: &mut Reader<'_>, format: u32) -> Result<Window, Malformed> {
    let start = r.i64()?;
    let count = r.u64()?;
    let (min, max) = (r.f64()?, r.f64()?);
    let (last_time, last_value) = (r.i64()?, r.f64()?);
    let mut partials = Vec::with_capacity(0);
    for _ in 0..r.count(8)? {
        partials.push(r.f64()?);
    }
    let kind = if format == FORMAT_1 {
        SKETCH_ENCODED
    } else {
        r.u8()?
    };
    let sketch = match kind {
        SKETCH_ENCODED => {
            let n = r.count(1)?;
            // Not decoded here: the checksum vouches for the bytes, and decoding every window
            // would make a start with millions of windows take seconds. (A sketch that fails to
            // decode later reads as empty; see `Sketch::thawed`.)
            Sketch::Frozen(r.bytes(n)?.into())
        }
        SKETCH_VALUES => {
            let n = r.count(8)?;
            if n == 0 || n > SMALL_VALUES || n as u64 != count {
                return Err(Malformed("a small window's values"));
            }
            let mut values = Vec::with_capacity(n);
            for _ in 0..n {
                values.push(r.f64()?);
            }
            Sketch::of_values(values)
        }
        _ => return Err(Malformed("unknown kind of sketch")),
    };
    if count == 0 {
        return Err(Malformed("an empty window"));
    }
    Ok(Window {
        start,
        count,
        min,
        max,
        last_time,
        last_value,
        sum: ExactSum::from_partials(partials),
        sketch,
    })
}
