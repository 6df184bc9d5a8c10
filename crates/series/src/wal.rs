//! The write-ahead log: `<dir>/series/wal-<generation>.log`, one record per ingested batch,
//! written with one `write()` before the batch is applied in memory. A SIGKILL therefore loses
//! nothing that `ingest_batch` acknowledged (the bytes are in the OS); a power loss loses what
//! was written since the last `fdatasync` (every `flush_interval`).
//!
//! A checkpoint starts a new generation; the files of older generations are deleted once the
//! snapshot that covers them is durable. Recovery replays, after the snapshot, every file of the
//! generation the snapshot names and later, in order.
//!
//! Record: a 16-byte header `body_len: u32 | payloads: u32 | crc32(body): u32 |
//! crc32(header[..12]): u32`, little-endian, then the body:
//! `version definitions | series definitions | payloads`. A definition gives an id its names
//! (`owner, name, version`, or `version id, metric`) the first time a generation's file uses
//! it, so a record costs about 9 bytes per value; ids are those of the store's memory. A payload
//! is `version id | time delta (zigzag varint) | failed: u8 | n | (series id, f64)ⁿ`; the
//! two derived series are not written, they follow from the payload.
//!
//! Recovery reads records until one is incomplete (a torn tail: the process died mid-write) or
//! fails its checksum (damage), cuts the file there, and counts what was cut: its bytes, and
//! the payloads its header announced when the header itself is intact.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::SeriesError;
use crate::codec::{self, Malformed, Reader};
use crate::model::Micros;
use crate::state::{Entry, SeriesId, State, VersionId};

const HEADER: usize = 16;

pub(crate) fn file_name(generation: u64) -> String {
    format!("wal-{generation:016x}.log")
}

/// The generations of the log files in `dir`, in order.
pub(crate) fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, SeriesError> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(SeriesError::io("listing", dir))?;
    for entry in entries {
        let entry = entry.map_err(SeriesError::io("listing", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(hex) = name
            .strip_prefix("wal-")
            .and_then(|n| n.strip_suffix(".log"))
        else {
            continue;
        };
        if let Ok(g) = u64::from_str_radix(hex, 16) {
            out.push((g, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// The open log file of the current generation.
pub(crate) struct Wal {
    pub generation: u64,
    pub path: PathBuf,
    file: Arc<File>,
    /// Bytes in the file.
    pub len: u64,
    /// A failed write that could not be cut back: nothing more is appended to this file.
    broken: bool,
    /// The record being built, reused.
    buf: Vec<u8>,
}

impl Wal {
    /// Opens `wal-<generation>.log` for appending, creating it empty if it is not there.
    pub(crate) fn open(dir: &Path, generation: u64) -> Result<Wal, SeriesError> {
        let path = dir.join(file_name(generation));
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(SeriesError::io("opening", &path))?;
        let len = file
            .metadata()
            .map_err(SeriesError::io("reading the length of", &path))?
            .len();
        // The file's directory entry must be durable too, or a power loss could take a log
        // whose contents were synced.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(SeriesError::io("syncing", dir))?;
        Ok(Wal {
            generation,
            path,
            file: Arc::new(file),
            len,
            broken: false,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    pub(crate) fn file(&self) -> Arc<File> {
        self.file.clone()
    }

    /// Encodes the batch as one record and writes it. Ids the generation has not defined yet
    /// are defined in it; if the write fails they are left undefined, and the file is cut back
    /// to where it was, so that nothing half-written stays in it.
    pub(crate) fn append(
        &mut self,
        state: &mut State,
        entries: &[Entry],
        values: &[(SeriesId, f64)],
    ) -> Result<(), SeriesError> {
        if self.broken {
            return Err(SeriesError::Io {
                action: "appending to (after a write that could not be undone)",
                path: self.path.clone(),
                source: std::io::Error::other("waiting for the next checkpoint"),
            });
        }
        let mut defined = Vec::new();
        encode(
            &mut self.buf,
            state,
            self.generation,
            entries,
            values,
            &mut defined,
        );
        let written = (&*self.file).write_all(&self.buf);
        if let Err(e) = written {
            for d in defined {
                match d {
                    Def::Version(v) => state.versions.get_mut(v).expect("live").wal_gen = 0,
                    Def::Series(s) => state.series.get_mut(s).expect("live").wal_gen = 0,
                }
            }
            if self.file.set_len(self.len).is_err() {
                self.broken = true;
            }
            return Err(SeriesError::Io {
                action: "appending to",
                path: self.path.clone(),
                source: e,
            });
        }
        self.len += self.buf.len() as u64;
        Ok(())
    }
}

enum Def {
    Version(VersionId),
    Series(SeriesId),
}

fn encode(
    out: &mut Vec<u8>,
    state: &mut State,
    generation: u64,
    entries: &[Entry],
    values: &[(SeriesId, f64)],
    defined: &mut Vec<Def>,
) {
    out.clear();
    out.resize(HEADER, 0);
    let mut vdefs = Vec::new();
    let mut sdefs = Vec::new();
    for e in entries {
        let v = state
            .versions
            .get_mut(e.version)
            .expect("resolved ids are live");
        if v.wal_gen != generation {
            v.wal_gen = generation;
            vdefs.push(e.version);
            defined.push(Def::Version(e.version));
        }
        for &(sid, _) in &values[e.values.clone()] {
            let s = state.series.get_mut(sid).expect("resolved ids are live");
            if s.wal_gen != generation {
                s.wal_gen = generation;
                sdefs.push(sid);
                defined.push(Def::Series(sid));
            }
        }
    }
    codec::put_varint(out, vdefs.len() as u64);
    for vid in vdefs {
        let v = state.versions.get(vid).expect("live");
        codec::put_varint(out, u64::from(vid));
        codec::put_str(out, &v.owner);
        codec::put_str(out, &v.name);
        codec::put_str(out, &v.version);
    }
    codec::put_varint(out, sdefs.len() as u64);
    for sid in sdefs {
        let s = state.series.get(sid).expect("live");
        codec::put_varint(out, u64::from(sid));
        codec::put_varint(out, u64::from(s.version));
        codec::put_str(out, &s.metric);
    }
    let mut prev: Micros = 0;
    for e in entries {
        codec::put_varint(out, u64::from(e.version));
        codec::put_varint(out, codec::zigzag(e.time.wrapping_sub(prev)));
        prev = e.time;
        out.push(u8::from(e.failed));
        let vals = &values[e.values.clone()];
        codec::put_varint(out, vals.len() as u64);
        for &(sid, v) in vals {
            codec::put_varint(out, u64::from(sid));
            codec::put_f64(out, v);
        }
    }
    let body_len = (out.len() - HEADER) as u32;
    let body_crc = crc32fast::hash(&out[HEADER..]);
    out[0..4].copy_from_slice(&body_len.to_le_bytes());
    out[4..8].copy_from_slice(&(entries.len() as u32).to_le_bytes());
    out[8..12].copy_from_slice(&body_crc.to_le_bytes());
    let header_crc = crc32fast::hash(&out[..12]);
    out[12..16].copy_from_slice(&header_crc.to_le_bytes());
}

/// What replaying one file found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Replayed {
    pub records: u64,
    pub payloads: u64,
    /// Where the good records end: the file is cut here.
    pub good_len: u64,
    pub lost_bytes: u64,
    /// Payloads in the cut record, when its header was intact.
    pub lost_payloads: u64,
    /// The cut was damage, not an interrupted write.
    pub corrupt: bool,
}

/// A record's entries, decoded and resolved against the state.
pub(crate) struct Decoded {
    pub entries: Vec<Entry>,
    pub values: Vec<(SeriesId, f64)>,
}

/// Reads the records of one file; `apply` gets each one, decoded, in order.
pub(crate) fn replay(
    bytes: &[u8],
    state: &mut State,
    mut apply: impl FnMut(&mut State, &Decoded),
) -> Replayed {
    let mut r = Replayed::default();
    let mut ids = Ids::default();
    let mut pos = 0usize;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        let cut = |r: &mut Replayed, payloads: u64, corrupt: bool| {
            r.lost_bytes = rest.len() as u64;
            r.lost_payloads = payloads;
            r.corrupt = corrupt;
        };
        if rest.len() < HEADER {
            cut(&mut r, 0, false);
            break;
        }
        let word = |i: usize| u32::from_le_bytes(rest[i..i + 4].try_into().expect("4 bytes"));
        if crc32fast::hash(&rest[..12]) != word(12) {
            cut(&mut r, 0, true);
            break;
        }
        let (body_len, payloads, body_crc) = (word(0) as usize, word(4), word(8));
        let Some(body) = rest.get(HEADER..HEADER + body_len) else {
            cut(&mut r, u64::from(payloads), false);
            break;
        };
        if crc32fast::hash(body) != body_crc {
            cut(&mut r, u64::from(payloads), true);
            break;
        }
        match decode(body, payloads, state, &mut ids) {
            Ok(d) => apply(state, &d),
            Err(_) => {
                cut(&mut r, u64::from(payloads), true);
                break;
            }
        }
        r.records += 1;
        r.payloads += u64::from(payloads);
        pos += HEADER + body_len;
        r.good_len = pos as u64;
    }
    r
}

/// A file's ids → the state's ids.
#[derive(Default)]
struct Ids {
    versions: HashMap<u32, VersionId>,
    series: HashMap<u32, SeriesId>,
}

fn decode(
    body: &[u8],
    payloads: u32,
    state: &mut State,
    ids: &mut Ids,
) -> Result<Decoded, Malformed> {
    let mut r = Reader::new(body);
    for _ in 0..r.count(4)? {
        let id = r.u32_id()?;
        let (owner, name, version) = (r.str()?, r.str()?, r.str()?);
        ids.versions
            .insert(id, state.intern_version(owner, name, version));
    }
    for _ in 0..r.count(3)? {
        let id = r.u32_id()?;
        let vid = r.u32_id()?;
        let metric = r.str()?;
        let vid = *ids
            .versions
            .get(&vid)
            .ok_or(Malformed("undefined version"))?;
        ids.series.insert(id, state.intern_series(vid, metric));
    }
    let mut d = Decoded {
        entries: Vec::with_capacity(payloads as usize),
        values: Vec::new(),
    };
    let mut time: Micros = 0;
    for _ in 0..payloads {
        let vid = r.u32_id()?;
        let version = *ids
            .versions
            .get(&vid)
            .ok_or(Malformed("undefined version"))?;
        time = time.wrapping_add(codec::unzigzag(r.varint()?));
        let failed = match r.u8()? {
            0 => false,
            1 => true,
            _ => return Err(Malformed("failed flag")),
        };
        let start = d.values.len();
        for _ in 0..r.count(9)? {
            let sid = r.u32_id()?;
            let sid = *ids.series.get(&sid).ok_or(Malformed("undefined series"))?;
            d.values.push((sid, r.f64()?));
        }
        d.entries.push(Entry {
            version,
            time,
            failed,
            values: start..d.values.len(),
        });
    }
    if r.remaining() != 0 {
        return Err(Malformed("bytes after the last payload"));
    }
    Ok(d)
}
