//! The write-ahead log: what makes an acknowledged export survive `kill -9`.
//!
//! Every export request with accepted spans is appended to the current segment file in
//! `data_dir/wal/` and synced to disk (`fdatasync`) before the client gets its answer; requests
//! arriving together share one sync (group commit). Each flush closes the current segment and
//! opens a new one at the moment it drains the aggregator, so everything in the closed segments
//! is in that flush's batch; once the batch is in the store, those segments are done. At start,
//! the segments left behind by a crash are read back into the aggregator and written to the
//! store before the listeners open.
//!
//! A done segment with a header is kept as a spare (at most [`MAX_SPARES`], each at most
//! [`MAX_SPARE_BYTES`]) and overwritten as a later segment instead of a new file being created:
//! writing over blocks the file already has and pages the kernel still caches spares allocating
//! them, and the sync after it does not have to write the inode (its size does not change). This
//! is what RocksDB's `recycle_log_file_num` does; benches/RESULTS.md measures it.
//!
//! A segment starts with a 16-byte header, [`MAGIC`] and its number (u64 LE). A record is
//! `[payload length u32 LE][CRC-32 of the payload then the segment number (u64 LE), u32 LE]
//! [payload]`, the payload the request as protobuf. Replay of a segment ends at the first record
//! that is cut short or whose CRC does not match: a record torn by the crash (never
//! acknowledged), or what is left of the records of the segment the file was before it was
//! recycled, whose CRCs were computed with another number. Segments written before the header
//! existed (no [`MAGIC`]; CRC of the payload alone) are still read.

use std::fs::{File, OpenOptions};
use std::io::{IoSlice, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// Largest record accepted when reading back (a corrupt length must not allocate gigabytes).
const MAX_RECORD_BYTES: u32 = 256 << 20;

/// The first bytes of a segment with a header. A segment without one starts with a record
/// length, and no length this large (0x4157_4c48) is accepted.
pub const MAGIC: [u8; 8] = *b"HLWAL\x02\0\0";
const HEADER_BYTES: u64 = 16;

/// How many done segments are kept for reuse: a flush closes one and, once written, frees it,
/// so one is enough in steady state; a second covers a flush that frees two.
pub const MAX_SPARES: usize = 2;
/// Larger done segments (a burst) are deleted rather than kept, so the disk a spare holds stays
/// bounded.
pub const MAX_SPARE_BYTES: u64 = 128 << 20;

#[derive(Debug)]
struct State {
    file: Arc<File>,
    /// The current segment's number.
    id: u64,
    /// Where its next record goes (a failed append is cut back to it).
    len: u64,
    /// Whether anything was appended to it.
    dirty: bool,
    /// Records appended since start, and how many of them are known synced.
    appended: u64,
    synced: u64,
    syncing: bool,
}

/// Writes a record's header and payload with one system call (usually), without copying the
/// payload into a buffer of its own.
fn write_record(mut file: &File, header: &[u8], payload: &[u8]) -> std::io::Result<()> {
    let mut slices = [IoSlice::new(header), IoSlice::new(payload)];
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The write-ahead log of one collector.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    state: Mutex<State>,
    synced: Condvar,
    /// Done segments waiting to be reused, renamed `<number>.spare`.
    spares: Mutex<Vec<PathBuf>>,
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.wal"))
}

/// The numbers of the files in `dir` named `<number>.<suffix>`, in order.
fn numbered(dir: &Path, suffix: &str) -> std::io::Result<Vec<u64>> {
    let mut ids: Vec<u64> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name();
            let name = name.to_str()?;
            name.strip_suffix(suffix)?.parse().ok()
        })
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// The numbers of the segments in `dir`, oldest first.
fn segments(dir: &Path) -> std::io::Result<Vec<u64>> {
    numbered(dir, ".wal")
}

/// The payload's part of a record's CRC, which [`Wal::append`] computes outside its lock.
fn payload_crc(payload: &[u8]) -> flate2::Crc {
    let mut crc = flate2::Crc::new();
    crc.update(payload);
    crc
}

/// A record's CRC from its payload's part: the segment's number comes last, or nothing in a
/// segment without a header.
fn seal(mut crc: flate2::Crc, segment: Option<u64>) -> u32 {
    if let Some(id) = segment {
        crc.update(&id.to_le_bytes());
    }
    crc.sum()
}

/// A record's CRC: of the payload then the segment's number, or of the payload alone in a
/// segment without a header.
fn checksum(segment: Option<u64>, payload: &[u8]) -> u32 {
    seal(payload_crc(payload), segment)
}

/// Segment `id`'s file, positioned after its header: `spare` renamed if there is one (its
/// old records stay behind the header until overwritten), else a new file.
fn create(dir: &Path, id: u64, spare: Option<PathBuf>) -> std::io::Result<File> {
    let path = segment_path(dir, id);
    let renamed = spare.is_some_and(|spare| std::fs::rename(spare, &path).is_ok());
    let opened = if renamed {
        OpenOptions::new().write(true).open(&path)
    } else {
        OpenOptions::new().write(true).create_new(true).open(&path)
    };
    let mut header = [0; HEADER_BYTES as usize];
    header[..8].copy_from_slice(&MAGIC);
    header[8..].copy_from_slice(&id.to_le_bytes());
    // The new name must survive a crash too. The header is synced with the first record.
    let ready = opened.and_then(|mut file| {
        file.write_all(&header)?;
        File::open(dir)?.sync_all()?;
        Ok(file)
    });
    if ready.is_err() {
        // A full disk, or no file descriptor left: no record is in this file, and the next
        // rotation tries again under the same number.
        let _ = std::fs::remove_file(&path);
    }
    ready
}

/// Whether a segment file starts with a header: only such a file may be recycled, since a
/// file without one, renamed to a new number, would have its records replayed again if a crash
/// came before the new header was written.
fn has_header(path: &Path) -> bool {
    let mut magic = [0; MAGIC.len()];
    File::open(path)
        .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut magic))
        .is_ok_and(|()| magic == MAGIC)
}

/// What replaying one segment found.
#[derive(Debug, PartialEq, Eq)]
struct Replayed {
    records: u64,
    /// Bytes after the last record.
    left: usize,
    /// Whether the segment has a header: then bytes after the last record may be a recycled
    /// file's old records, not only a torn one.
    header: bool,
}

/// Hands each record of segment `id` (its file's `bytes`) to `apply`.
fn replay(id: u64, bytes: &[u8], apply: &mut impl FnMut(&[u8])) -> Replayed {
    let (seed, mut rest) = match bytes.strip_prefix(&MAGIC[..]) {
        // A recycled file whose header was not yet rewritten holds no record of this segment.
        Some(rest) if rest.get(..8) == Some(&id.to_le_bytes()[..]) => (Some(id), &rest[8..]),
        Some(rest) => {
            return Replayed {
                records: 0,
                left: rest.len(),
                header: true,
            };
        }
        None => (None, bytes),
    };
    let mut records = 0;
    while rest.len() >= 8 {
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        let Some(payload) = (len <= MAX_RECORD_BYTES)
            .then(|| rest.get(8..8 + len as usize))
            .flatten()
        else {
            break;
        };
        if checksum(seed, payload) != crc {
            break;
        }
        apply(payload);
        records += 1;
        rest = &rest[8 + len as usize..];
    }
    Replayed {
        records,
        left: rest.len(),
        header: seed.is_some(),
    }
}

impl Wal {
    /// Opens the log in `dir` (created if missing) with a new, empty segment after the ones
    /// already there; those are left for [`Wal::recover`]. Spares left by the last run are
    /// reused.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut spares: Vec<PathBuf> = numbered(dir, ".spare")?
            .into_iter()
            .map(|n| dir.join(format!("{n:020}.spare")))
            .collect();
        for extra in spares.split_off(spares.len().min(MAX_SPARES)) {
            std::fs::remove_file(extra)?;
        }
        let id = segments(dir)?.last().map_or(1, |last| last + 1);
        let file = create(dir, id, spares.pop())?;
        Ok(Self {
            dir: dir.to_owned(),
            state: Mutex::new(State {
                file: Arc::new(file),
                id,
                len: HEADER_BYTES,
                dirty: false,
                appended: 0,
                synced: 0,
                syncing: false,
            }),
            synced: Condvar::new(),
            spares: Mutex::new(spares),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_spares(&self) -> MutexGuard<'_, Vec<PathBuf>> {
        self.spares.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads every record of the segments before the current one, oldest first, and hands
    /// each payload to `apply`; returns how many there were. The segments stay until a flush
    /// has written what they held ([`Wal::remove_through`]).
    pub fn recover(&self, mut apply: impl FnMut(&[u8])) -> std::io::Result<u64> {
        let current = self.lock().id;
        let mut records = 0;
        for id in segments(&self.dir)?.into_iter().filter(|id| *id < current) {
            let bytes = std::fs::read(segment_path(&self.dir, id))?;
            let replayed = replay(id, &bytes, &mut apply);
            records += replayed.records;
            if replayed.left > 0 && replayed.header {
                // A torn last record (never acknowledged), or a recycled file's old records.
                tracing::debug!(
                    segment = id,
                    records = replayed.records,
                    bytes_after = replayed.left,
                    "write-ahead log: replay of a segment ends before the end of its file"
                );
            } else if replayed.left > 0 {
                tracing::warn!(
                    segment = id,
                    bytes = replayed.left,
                    "write-ahead log: a torn record at the end of a segment (never acknowledged) is skipped"
                );
            }
        }
        Ok(records)
    }

    /// Appends one record; returns its sequence number for [`Wal::sync`]. On failure (a full
    /// disk) the segment is cut back, so the log stays readable, and the spares are deleted to
    /// give the disk back.
    pub fn append(&self, payload: &[u8]) -> std::io::Result<u64> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|l| *l <= MAX_RECORD_BYTES)
            .ok_or_else(|| std::io::Error::other("request too large for the write-ahead log"))?;
        // The segment's number is known only under the lock; the payload's part is not.
        let crc = payload_crc(payload);
        let mut state = self.lock();
        let mut header = [0; 8];
        header[..4].copy_from_slice(&len.to_le_bytes());
        header[4..].copy_from_slice(&seal(crc, Some(state.id)).to_le_bytes());
        if let Err(e) = write_record(&state.file, &header, payload) {
            let _ = state.file.set_len(state.len);
            let _ = (&*state.file).seek(SeekFrom::Start(state.len));
            drop(state);
            for spare in std::mem::take(&mut *self.lock_spares()) {
                let _ = std::fs::remove_file(spare);
            }
            return Err(e);
        }
        state.len += (header.len() + payload.len()) as u64;
        state.dirty = true;
        state.appended += 1;
        Ok(state.appended)
    }

    /// Returns once record `seq` is on disk. Concurrent callers share one `fdatasync`.
    pub fn sync(&self, seq: u64) -> std::io::Result<()> {
        let mut state = self.lock();
        loop {
            if state.synced >= seq {
                return Ok(());
            }
            if state.syncing {
                state = self
                    .synced
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            state.syncing = true;
            let (file, target) = (Arc::clone(&state.file), state.appended);
            drop(state);
            let result = file.sync_data();
            state = self.lock();
            state.syncing = false;
            if result.is_ok() {
                state.synced = state.synced.max(target);
            }
            self.synced.notify_all();
            result?;
        }
    }

    /// Closes the current segment (synced) and opens the next, over a spare if there is one;
    /// returns the closed segment's number, or `None` when nothing was appended to it (it is
    /// kept as the current one). Called while no export is between its append and its apply.
    pub fn rotate(&self) -> std::io::Result<Option<u64>> {
        let mut state = self.lock();
        if !state.dirty {
            return Ok(None);
        }
        state.file.sync_data()?;
        state.synced = state.appended;
        let spare = self.lock_spares().pop();
        let next = create(&self.dir, state.id + 1, spare)?;
        let closed = state.id;
        state.file = Arc::new(next);
        state.id += 1;
        state.len = HEADER_BYTES;
        state.dirty = false;
        self.synced.notify_all();
        Ok(Some(closed))
    }

    /// Retires the segments up to and including `id`, whose records are in the store: kept as
    /// spares while there is room, deleted otherwise.
    pub fn remove_through(&self, id: u64) -> std::io::Result<()> {
        for old in segments(&self.dir)?.into_iter().filter(|s| *s <= id) {
            let path = segment_path(&self.dir, old);
            let mut spares = self.lock_spares();
            let fits = std::fs::metadata(&path).is_ok_and(|m| m.len() <= MAX_SPARE_BYTES);
            if spares.len() < MAX_SPARES && fits && has_header(&path) {
                let spare = self.dir.join(format!("{old:020}.spare"));
                std::fs::rename(&path, &spare)?;
                spares.push(spare);
            } else {
                std::fs::remove_file(path)?;
            }
        }
        Ok(())
    }

    /// Retires every segment before the current one (after [`Wal::recover`] and a flush).
    pub fn remove_older_segments(&self) -> std::io::Result<()> {
        let current = self.lock().id;
        self.remove_through(current - 1)
    }

    /// The number of segment files (the current one included; spares not).
    pub fn segment_count(&self) -> usize {
        segments(&self.dir).map_or(0, |s| s.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_in_order_until_a_torn_tail_and_flushed_segments_go() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path()).unwrap();
        let seq = wal.append(b"one").unwrap();
        wal.append(b"two").unwrap();
        wal.sync(seq + 1).unwrap();
        let first = wal.rotate().unwrap().unwrap();
        assert_eq!(wal.rotate().unwrap(), None, "nothing appended since");
        wal.append(b"three").unwrap();
        drop(wal);
        // A crash in the middle of a fourth record: a torn tail.
        let last = segments(dir.path()).unwrap()[1];
        let mut f = OpenOptions::new()
            .append(true)
            .open(segment_path(dir.path(), last))
            .unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2]).unwrap();
        drop(f);

        let wal = Wal::open(dir.path()).unwrap();
        let mut seen = Vec::new();
        let n = wal.recover(|p| seen.push(p.to_vec())).unwrap();
        assert_eq!(n, 3);
        assert_eq!(seen, [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]);
        assert_eq!(wal.segment_count(), 3);
        wal.remove_through(last).unwrap();
        assert_eq!(wal.segment_count(), 1, "only the current segment is left");
        assert!(first < last);
    }

    #[test]
    fn a_corrupt_record_ends_its_segment() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path()).unwrap();
        wal.append(b"good").unwrap();
        wal.append(b"flipped").unwrap();
        drop(wal);
        let path = segment_path(dir.path(), 1);
        let mut bytes = std::fs::read(&path).unwrap();
        assert!(bytes.starts_with(&MAGIC));
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let wal = Wal::open(dir.path()).unwrap();
        let mut seen = Vec::new();
        wal.recover(|p| seen.push(p.to_vec())).unwrap();
        assert_eq!(seen, [b"good".to_vec()]);
    }

    #[test]
    fn a_recycled_segment_replays_only_its_own_records() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path()).unwrap();
        let old: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; 1000]).collect();
        for record in &old {
            wal.append(record).unwrap();
        }
        let first = wal.rotate().unwrap().unwrap();
        let first_len = std::fs::metadata(segment_path(dir.path(), first))
            .unwrap()
            .len();
        wal.remove_through(first).unwrap();
        assert_eq!(
            wal.lock_spares().len(),
            1,
            "the done segment is kept as a spare"
        );
        wal.append(b"second").unwrap();
        let second = wal.rotate().unwrap().unwrap();
        // The third segment is the first one's file, overwritten from its start.
        let third = second + 1;
        assert!(wal.lock_spares().is_empty());
        let third_path = segment_path(dir.path(), third);
        assert_eq!(std::fs::metadata(&third_path).unwrap().len(), first_len);
        wal.append(b"third").unwrap();
        drop(wal);

        let wal = Wal::open(dir.path()).unwrap();
        let mut seen = Vec::new();
        assert_eq!(wal.recover(|p| seen.push(p.to_vec())).unwrap(), 2);
        assert_eq!(seen, [b"second".to_vec(), b"third".to_vec()]);
        // The old records are still in the file, past the new one: replay stopped at them.
        assert_eq!(std::fs::metadata(&third_path).unwrap().len(), first_len);
    }

    #[test]
    fn a_spare_renamed_before_its_header_was_rewritten_holds_no_record() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&7u64.to_le_bytes());
        let payload = b"from segment 7";
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&checksum(Some(7), payload).to_le_bytes());
        bytes.extend_from_slice(payload);
        let mut seen = Vec::new();
        let replayed = replay(7, &bytes, &mut |p| seen.push(p.to_vec()));
        assert_eq!((replayed.records, replayed.left), (1, 0));
        assert_eq!(seen, [payload.to_vec()]);
        // The same file under number 9: the header is segment 7's, so nothing is segment 9's.
        assert_eq!(replay(9, &bytes, &mut |_| panic!("no record")).records, 0);
    }

    #[test]
    fn segments_without_a_header_from_earlier_versions_are_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = Vec::new();
        for payload in [&b"old one"[..], b"old two"] {
            bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&checksum(None, payload).to_le_bytes());
            bytes.extend_from_slice(payload);
        }
        std::fs::write(segment_path(dir.path(), 3), bytes).unwrap();
        let wal = Wal::open(dir.path()).unwrap();
        let mut seen = Vec::new();
        assert_eq!(wal.recover(|p| seen.push(p.to_vec())).unwrap(), 2);
        assert_eq!(seen, [b"old one".to_vec(), b"old two".to_vec()]);
        // Once written, it is deleted, not kept as a spare: renamed to a new number, a crash
        // before its new header was written would replay its records again.
        wal.remove_older_segments().unwrap();
        assert!(wal.lock_spares().is_empty());
        assert!(!segment_path(dir.path(), 3).exists());
    }

    #[test]
    fn spares_are_bounded_and_reused_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path()).unwrap();
        let mut last = 0;
        for i in 0..4u8 {
            wal.append(&[i; 100]).unwrap();
            last = wal.rotate().unwrap().unwrap();
        }
        wal.remove_through(last).unwrap();
        assert_eq!(wal.lock_spares().len(), MAX_SPARES);
        assert_eq!(numbered(dir.path(), ".spare").unwrap().len(), MAX_SPARES);
        assert_eq!(wal.segment_count(), 1);
        drop(wal);
        let wal = Wal::open(dir.path()).unwrap();
        assert_eq!(
            wal.lock_spares().len(),
            MAX_SPARES - 1,
            "one became the new segment"
        );
        assert_eq!(wal.recover(|_| panic!("nothing to replay")).unwrap(), 0);
    }

    #[test]
    fn concurrent_appends_are_all_synced() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Arc::new(Wal::open(dir.path()).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let wal = Arc::clone(&wal);
                std::thread::spawn(move || {
                    for i in 0..20 {
                        let seq = wal.append(format!("{t}-{i}").as_bytes()).unwrap();
                        wal.sync(seq).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let state = wal.lock();
        assert_eq!(state.appended, 160);
        assert_eq!(state.synced, 160);
    }
}
