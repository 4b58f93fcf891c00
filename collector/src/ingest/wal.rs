//! The write-ahead log: what makes an acknowledged export survive `kill -9`.
//!
//! Every export request with accepted spans is appended to the current segment file in
//! `data_dir/wal/` and synced to disk (`fdatasync`) before the client gets its answer; requests
//! arriving together share one sync (group commit). Each flush closes the current segment and
//! opens a new one at the moment it drains the aggregator, so everything in the closed segments
//! is in that flush's batch; once the batch is in the store, those segments are deleted. At
//! start, the segments left behind by a crash are read back into the aggregator and written to
//! the store before the listeners open.
//!
//! A record is `[payload length u32 LE][CRC-32 of the payload u32 LE][payload]`, the payload the
//! request as protobuf. A record cut short by the crash, or one whose CRC does not match, ends
//! its segment's replay (everything after it was never acknowledged).

use std::fs::{File, OpenOptions};
use std::io::{IoSlice, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// Largest record accepted when reading back (a corrupt length must not allocate gigabytes).
const MAX_RECORD_BYTES: u32 = 256 << 20;

#[derive(Debug)]
struct State {
    file: Arc<File>,
    /// The current segment's number.
    id: u64,
    /// Its length in bytes (a failed append is cut back to it).
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
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.wal"))
}

/// The numbers of the segments in `dir`, oldest first.
fn segments(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut ids: Vec<u64> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name();
            let name = name.to_str()?;
            name.strip_suffix(".wal")?.parse().ok()
        })
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(bytes);
    crc.sum()
}

fn create(dir: &Path, id: u64) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(segment_path(dir, id))?;
    // The new name must survive a crash too.
    File::open(dir)?.sync_all()?;
    Ok(file)
}

impl Wal {
    /// Opens the log in `dir` (created if missing) with a new, empty segment after the ones
    /// already there; those are left for [`Wal::recover`].
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let id = segments(dir)?.last().map_or(1, |last| last + 1);
        let file = create(dir, id)?;
        Ok(Self {
            dir: dir.to_owned(),
            state: Mutex::new(State {
                file: Arc::new(file),
                id,
                len: 0,
                dirty: false,
                appended: 0,
                synced: 0,
                syncing: false,
            }),
            synced: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads every record of the segments before the current one, oldest first, and hands
    /// each payload to `apply`; returns how many there were. The segments stay until a flush
    /// has written what they held ([`Wal::remove_through`]).
    pub fn recover(&self, mut apply: impl FnMut(&[u8])) -> std::io::Result<u64> {
        let current = self.lock().id;
        let mut records = 0;
        for id in segments(&self.dir)?.into_iter().filter(|id| *id < current) {
            let bytes = std::fs::read(segment_path(&self.dir, id))?;
            let mut rest = &bytes[..];
            while rest.len() >= 8 {
                let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
                let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
                let Some(payload) = (len <= MAX_RECORD_BYTES)
                    .then(|| rest.get(8..8 + len as usize))
                    .flatten()
                else {
                    break;
                };
                if crc32(payload) != crc {
                    break;
                }
                apply(payload);
                records += 1;
                rest = &rest[8 + len as usize..];
            }
            if !rest.is_empty() {
                tracing::warn!(
                    segment = id,
                    bytes = rest.len(),
                    "write-ahead log: a torn record at the end of a segment (never acknowledged) is skipped"
                );
            }
        }
        Ok(records)
    }

    /// Appends one record; returns its sequence number for [`Wal::sync`]. On failure (a full
    /// disk) the segment is cut back, so the log stays readable.
    pub fn append(&self, payload: &[u8]) -> std::io::Result<u64> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|l| *l <= MAX_RECORD_BYTES)
            .ok_or_else(|| std::io::Error::other("request too large for the write-ahead log"))?;
        let mut header = [0; 8];
        header[..4].copy_from_slice(&len.to_le_bytes());
        header[4..].copy_from_slice(&crc32(payload).to_le_bytes());
        let mut state = self.lock();
        if let Err(e) = write_record(&state.file, &header, payload) {
            let _ = state.file.set_len(state.len);
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

    /// Closes the current segment (synced) and opens the next; returns the closed segment's
    /// number, or `None` when nothing was appended to it (it is kept as the current one).
    /// Called while no export is between its append and its apply.
    pub fn rotate(&self) -> std::io::Result<Option<u64>> {
        let mut state = self.lock();
        if !state.dirty {
            return Ok(None);
        }
        state.file.sync_data()?;
        state.synced = state.appended;
        let next = create(&self.dir, state.id + 1)?;
        let closed = state.id;
        state.file = Arc::new(next);
        state.id += 1;
        state.len = 0;
        state.dirty = false;
        self.synced.notify_all();
        Ok(Some(closed))
    }

    /// Deletes the segments up to and including `id`: what they held is in the store.
    pub fn remove_through(&self, id: u64) -> std::io::Result<()> {
        for old in segments(&self.dir)?.into_iter().filter(|s| *s <= id) {
            std::fs::remove_file(segment_path(&self.dir, old))?;
        }
        Ok(())
    }

    /// Deletes every segment before the current one (after [`Wal::recover`] and a flush).
    pub fn remove_older_segments(&self) -> std::io::Result<()> {
        let current = self.lock().id;
        self.remove_through(current - 1)
    }

    /// The number of segment files (the current one included).
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
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let wal = Wal::open(dir.path()).unwrap();
        let mut seen = Vec::new();
        wal.recover(|p| seen.push(p.to_vec())).unwrap();
        assert_eq!(seen, [b"good".to_vec()]);
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
