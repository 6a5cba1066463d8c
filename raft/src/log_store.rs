//! openraft's log storage on the `raft-log` WAL (`data_dir/raft/wal`).
//!
//! Durability rules this module keeps (see docs/adr/001-raft-log-wal.md):
//!
//! - `append` returns once the entries are readable; openraft's `IOFlushed` is completed only from
//!   raft-log's flush callback, which runs after `fdatasync` of the WAL chunk.
//! - `save_vote`, `truncate_after` and `purge` wait for the same synced flush before returning, so a
//!   vote is never granted twice and the last purged log id survives a restart (raft-log replays
//!   its purge record on open).
//! - The committed log id is written without a sync of its own: it rides on the next synced flush
//!   and only shortens the replay after a restart.
//!
//! Damage found on open (see [`repair_or_refuse`]): a torn record at the very end of the last
//! chunk is an unacknowledged write cut short by a crash and is cut off with a WARN line; damage
//! anywhere else lies under acknowledged records and stops the open with an `InvalidData` error
//! naming the chunk file and the byte offset. raft-log's own silent truncation is switched off.

use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use raft_log::api::raft_log_writer::RaftLogWriter;
use raft_log::chunked_wal::ChunkedWal;
use raft_log::codeq::{Decode, Encode};
use raft_log::{RaftLog, RaftLogRecord, RaftWalTypes};

use crate::codec;
use crate::types::{Entry, EntryPayload, LogId, TypeConfig, Vote};

/// How long `open` keeps retrying while a previous handle of the same WAL still holds its lock.
/// raft-log releases the lock when its flush thread ends, which happens shortly after the last
/// handle is dropped.
const LOCK_RETRY_DEADLINE: Duration = Duration::from_secs(10);
const LOCK_RETRY_INTERVAL: Duration = Duration::from_millis(20);

/// Bytes of log payload raft-log keeps cached in memory (entries beyond it are read from disk).
const LOG_CACHE_CAPACITY: usize = 256 * 1024 * 1024;

/// How long raft-log's flush thread waits for more writes to share one fdatasync. Writes already
/// queued are taken at once whatever this is; raft-log's default of 1 ms added a full millisecond
/// to every write of a lightly loaded group (see docs/adr/001-raft-log-wal.md).
const FLUSH_BATCH_WAIT: Duration = Duration::from_micros(100);

/// Size at which raft-log closes a chunk file and starts the next one. A purge removes whole
/// chunks only, so this bounds the disk the log keeps behind the last snapshot (raft-log's
/// default is 1 GiB).
const CHUNK_MAX_SIZE: usize = 64 * 1024 * 1024;

/// Buffer raft-log reads a chunk through when it replays it on open (its default is 64 MiB,
/// allocated for every chunk).
const REPLAY_READ_BUFFER: usize = 1024 * 1024;

/// The largest damaged tail of the last chunk that open examines as a possibly torn write. One
/// flush of raft-log writes at most its queue limit (64 MiB); anything longer cannot be a single
/// interrupted write.
const MAX_TORN_TAIL: u64 = 2 * CHUNK_MAX_SIZE as u64;

/// The raft-log type parameters. Its codec traits cannot be implemented on openraft's types here
/// (orphan rule), hence the newtypes below, each encoded by [`crate::codec`] inside a
/// length-prefixed raft-log record.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct WalTypes;

impl raft_log::Types for WalTypes {
    type LogId = WalLogId;
    type LogPayload = WalPayload;
    type Vote = WalVote;
    type Callback = FlushCallback;
    type UserData = ();

    fn log_index(log_id: &WalLogId) -> u64 {
        log_id.0.index
    }

    fn payload_size(payload: &WalPayload) -> u64 {
        match &payload.0 {
            EntryPayload::Normal(command) => command.approximate_size(),
            EntryPayload::Blank => 8,
            EntryPayload::Membership(_) => 256,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct WalLogId(LogId);

#[derive(Debug, Clone)]
pub(crate) struct WalPayload(EntryPayload);

/// Ordered as openraft orders votes: raft-log refuses to store a vote that is not greater than or
/// equal to the stored one, which is exactly the rule a voter must keep.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd)]
pub(crate) struct WalVote(Vote);

macro_rules! codec_newtype {
    ($name:ident) => {
        impl Encode for $name {
            fn encode<W: io::Write>(&self, w: W) -> Result<usize, io::Error> {
                let bytes = codec::encode(&self.0).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                bytes.encode(w)
            }
        }

        impl Decode for $name {
            fn decode<R: io::Read>(r: R) -> Result<Self, io::Error> {
                let bytes = Vec::<u8>::decode(r)?;
                codec::decode(&bytes)
                    .map($name)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
            }
        }
    };
}

codec_newtype!(WalLogId);
codec_newtype!(WalPayload);
codec_newtype!(WalVote);

/// Called by raft-log's flush thread once the flushed records are on disk (after `fdatasync`
/// when the flush asked for a sync).
pub(crate) enum FlushCallback {
    /// Completes an openraft append.
    Append(IOFlushed<TypeConfig>),
    /// Wakes a task waiting for the flush.
    Wait(tokio::sync::oneshot::Sender<io::Result<()>>),
}

impl raft_log::Callback for FlushCallback {
    fn send(self, res: Result<(), io::Error>) {
        match self {
            FlushCallback::Append(flushed) => flushed.io_completed(res),
            FlushCallback::Wait(tx) => {
                // The waiter may have been cancelled; nothing is left to tell then.
                let _ = tx.send(res);
            }
        }
    }
}

/// The log storage handle given to openraft; clones share one WAL.
#[derive(Clone)]
pub(crate) struct LogStore {
    wal: Arc<Mutex<RaftLog<WalTypes>>>,
}

impl LogStore {
    /// Open (or create) the WAL in `dir`, waiting a bounded time for a previous handle of the same
    /// directory (in this process) to release its lock.
    ///
    /// A torn record at the end of the last chunk is cut off (with a WARN line); any other damage
    /// fails with [`io::ErrorKind::InvalidData`] and a message naming the chunk file and offset.
    pub(crate) fn open(dir: &Path) -> io::Result<LogStore> {
        Self::open_with_chunk_size(dir, CHUNK_MAX_SIZE)
    }

    fn open_with_chunk_size(dir: &Path, chunk_max_size: usize) -> io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let dir_str = dir
            .to_str()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "WAL directory path is not UTF-8"))?;
        let mut config = raft_log::Config::new(dir_str);
        config.log_cache_capacity = Some(LOG_CACHE_CAPACITY);
        config.wal.flush_batch_wait = Some(FLUSH_BATCH_WAIT);
        config.wal.chunk_max_size = Some(chunk_max_size);
        config.wal.read_buffer_size = Some(REPLAY_READ_BUFFER);
        // raft-log would cut the last chunk at any record it cannot read when that record runs
        // past the end of the file, which is also what a flipped bit in a length field looks like.
        // `repair_or_refuse` cuts only what a crash can have torn; whatever is left is refused.
        config.wal.truncate_incomplete_record = Some(false);
        let config = Arc::new(config);

        let deadline = Instant::now() + LOCK_RETRY_DEADLINE;
        loop {
            match Self::open_once(dir, &config) {
                Ok(store) => return Ok(store),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(LOCK_RETRY_INTERVAL);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn open_once(dir: &Path, config: &Arc<raft_log::Config>) -> io::Result<LogStore> {
        {
            // The check runs under raft-log's directory lock so that it never cuts the tail of a
            // WAL that another process is writing.
            let _lock = ChunkedWal::<RaftWalTypes<WalTypes>>::acquire_lock(&config.wal)?;
            repair_or_refuse(dir)?;
        }
        let wal = RaftLog::<WalTypes>::open(config.clone()).map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => io::Error::new(
                io::ErrorKind::InvalidData,
                format!("raft-log refuses the WAL in {}: {e}", dir.display()),
            ),
            _ => e,
        })?;
        Ok(LogStore {
            wal: Arc::new(Mutex::new(wal)),
        })
    }

    fn lock(&self) -> io::Result<MutexGuard<'_, RaftLog<WalTypes>>> {
        self.wal
            .lock()
            .map_err(|_| io::Error::other("raft log lock poisoned by a panic"))
    }

    /// Ask for a synced flush and wait until the WAL is on disk.
    async fn flush_and_wait(&self) -> io::Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.lock()?.flush(true, Some(FlushCallback::Wait(tx)))?;
        rx.await
            .map_err(|_| io::Error::other("raft log flush thread ended before reporting"))?
    }

    /// True when the log has ever stored a vote or an entry: the member has been initialised (or
    /// has joined a group) before, and must never be initialised again.
    pub(crate) fn has_state(&self) -> io::Result<bool> {
        let wal = self.lock()?;
        let state = wal.log_state();
        Ok(state.vote().is_some() || state.last().is_some() || state.purged().is_some())
    }

    /// Wait until raft-log's flush thread has written everything handed to it.
    pub(crate) async fn sync(&self) -> io::Result<()> {
        self.flush_and_wait().await
    }
}

/// The first record of a WAL chunk that could not be read.
#[derive(Debug)]
struct Damage {
    /// Byte offset of the unreadable record in its chunk file.
    offset: u64,
    file_len: u64,
    error: io::Error,
}

/// Counts the bytes a decoder has taken, to know where each record starts.
struct CountingReader<R> {
    inner: R,
    taken: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.taken += n as u64;
        Ok(n)
    }
}

/// The chunk files of the WAL in `dir`, oldest first (named as raft-log names them; raft-log
/// ignores any other file there).
fn chunk_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut chunks = Vec::new();
    for dirent in std::fs::read_dir(dir)? {
        let dirent = dirent?;
        let name = dirent.file_name();
        if let Ok(chunk_id) = raft_log::chunked_wal::Config::parse_chunk_file_name(&name.to_string_lossy()) {
            chunks.push((chunk_id, dirent.path()));
        }
    }
    chunks.sort();
    Ok(chunks.into_iter().map(|(_, path)| path).collect())
}

/// Read every record of one chunk file; the first one that cannot be read is the damage.
fn scan_chunk(path: &Path) -> io::Result<Option<Damage>> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut reader = CountingReader {
        inner: BufReader::with_capacity(REPLAY_READ_BUFFER, file),
        taken: 0,
    };
    while reader.taken < file_len {
        let offset = reader.taken;
        if let Err(error) = RaftLogRecord::<WalTypes>::decode(&mut reader) {
            return Ok(Some(Damage {
                offset,
                file_len,
                error,
            }));
        }
    }
    Ok(None)
}

/// Whether a record could start at the beginning of `bytes`: a known record type and, where the
/// type is followed by a length, one that fits. Keeps the search for intact records after damage
/// from decoding (and copying) at every byte.
fn plausible_record_start(bytes: &[u8]) -> bool {
    let Some(header) = bytes.get(..8) else {
        return false;
    };
    let record_type = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let length = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    match record_type {
        // Vote, append, commit and purge records start with a length-prefixed codec record.
        0 | 1 | 2 | 4 => length <= bytes.len() - 8,
        // Truncate records start with an option tag, checkpoints with format version 1.
        3 => header[4] <= 1,
        5 => header[4] == 1,
        _ => false,
    }
}

/// Whether an intact record (one that decodes and passes its checksum) starts anywhere in `bytes`
/// after its first byte.
fn holds_an_intact_record(bytes: &[u8]) -> bool {
    (1..bytes.len()).any(|start| {
        let candidate = &bytes[start..];
        plausible_record_start(candidate) && RaftLogRecord::<WalTypes>::decode(candidate).is_ok()
    })
}

/// Why damage at the end of the last chunk is (`Ok`) or is not (`Err`) a torn write.
fn torn_write(path: &Path, damage: &Damage) -> io::Result<Result<(), &'static str>> {
    let tail_len = damage.file_len - damage.offset;
    if tail_len > MAX_TORN_TAIL {
        return Ok(Err("the unreadable tail is longer than any single write"));
    }
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(damage.offset))?;
    let mut tail = Vec::with_capacity(tail_len as usize);
    file.take(tail_len).read_to_end(&mut tail)?;
    // A crash leaves a record that runs past the end of the file or, where the file's new length
    // reached the disk before its data (ext4 data=writeback), zeros.
    let cut_short = damage.error.kind() == io::ErrorKind::UnexpectedEof;
    let unwritten = tail.iter().all(|&b| b == 0);
    if !cut_short && !unwritten {
        return Ok(Err("the record is complete but fails its checksum or decoding"));
    }
    if !unwritten && holds_an_intact_record(&tail) {
        return Ok(Err("intact records follow the damaged one"));
    }
    Ok(Ok(()))
}

fn corrupt(path: &Path, damage: &Damage, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "WAL chunk {} is damaged at byte offset {} (of {}): {}; this is not the torn tail a crash \
             leaves ({why}), so acknowledged records are damaged and the log is not repaired \
             automatically: restore this member from its peers or from a backup",
            path.display(),
            damage.offset,
            damage.file_len,
            damage.error,
        ),
    )
}

/// Check every chunk of the WAL in `dir` before raft-log replays it.
///
/// Every record that was acknowledged had been fdatasync'd, so a crash can only have torn the
/// records written after the last sync: the tail of the last chunk. Such a tail is cut off. Damage
/// anywhere else (in an earlier chunk, before an intact record, or a complete record failing its
/// checksum) means acknowledged data is damaged: the open is refused with the file and offset,
/// and nothing is changed.
fn repair_or_refuse(dir: &Path) -> io::Result<()> {
    let chunks = chunk_files(dir)?;
    for (position, path) in chunks.iter().enumerate() {
        let Some(damage) = scan_chunk(path)? else {
            continue;
        };
        if position + 1 < chunks.len() {
            return Err(corrupt(path, &damage, "a later chunk follows this one"));
        }
        if let Err(why) = torn_write(path, &damage)? {
            return Err(corrupt(path, &damage, why));
        }
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(damage.offset)?;
        file.sync_all()?;
        tracing::warn!(
            file = %path.display(),
            offset = damage.offset,
            dropped_bytes = damage.file_len - damage.offset,
            error = %damage.error,
            "WAL: cut off a torn record at the end of the last chunk (a write that a crash interrupted \
             before it was acknowledged)"
        );
    }
    Ok(())
}

/// Turn any range bound over log indexes into `[start, end)`.
fn index_range<RB: RangeBounds<u64>>(range: &RB) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&i) => i,
        Bound::Excluded(&i) => i.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&i) => i.saturating_add(1),
        Bound::Excluded(&i) => i,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let (start, end) = index_range(&range);
        if start >= end {
            return Ok(Vec::new());
        }
        let wal = self.lock()?;
        wal.read(start, end)
            .map(|res| {
                res.map(|(log_id, payload)| Entry {
                    log_id: log_id.0,
                    payload: payload.0,
                })
            })
            .collect()
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.lock()?.log_state().vote().map(|v| v.0))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let wal = self.lock()?;
        let state = wal.log_state();
        let last_purged_log_id = state.purged().map(|id| id.0);
        // raft-log moves `last` up to `purged` when everything is purged, as openraft expects.
        let last_log_id = state.last().map(|id| id.0).or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.lock()?.save_vote(WalVote(*vote))?;
        self.flush_and_wait().await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        let Some(committed) = committed else {
            return Ok(());
        };
        let mut wal = self.lock()?;
        let state = wal.log_state();
        let committed = WalLogId(committed);
        // raft-log refuses a committed id that goes back or lies past the last entry; neither
        // carries information worth keeping, so such a call is skipped.
        if state.committed() >= Some(&committed) || state.last() < Some(&committed) {
            return Ok(());
        }
        wal.commit(committed)?;
        wal.flush(false, None)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.lock()?.log_state().committed().map(|id| id.0))
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut wal = self.lock()?;
        wal.append(entries.into_iter().map(|e| (WalLogId(e.log_id), WalPayload(e.payload))))?;
        // The callback runs on raft-log's flush thread after fdatasync; openraft learns that the
        // entries are durable only then.
        wal.flush(true, Some(FlushCallback::Append(callback)))
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        {
            let mut wal = self.lock()?;
            let keep_until = last_log_id.as_ref().map(|id| id.index);
            let last = wal.log_state().last().map(|id| id.0.index);
            // openraft may ask to truncate after the last entry (nothing to remove); raft-log
            // refuses that, so it is a no-op here.
            if last.is_none() || keep_until >= last {
                return Ok(());
            }
            let first_removed = keep_until.map_or(0, |i| i + 1);
            wal.truncate(first_removed)?;
        }
        self.flush_and_wait().await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        self.lock()?.purge(WalLogId(log_id))?;
        self.flush_and_wait().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::entry::RaftEntry;
    use openraft::type_config::TypeConfigExt;
    use openraft::vote::RaftLeaderId;
    use openraft::RaftTypeConfig;

    fn log_id(term: u64, index: u64) -> LogId {
        LogId {
            leader_id: <TypeConfig as RaftTypeConfig>::LeaderId::new(term, 1).to_committed(),
            index,
        }
    }

    async fn append(store: &mut LogStore, entries: Vec<Entry>) {
        let (tx, rx) = TypeConfig::oneshot();
        store.append(entries, IOFlushed::signal(tx)).await.expect("append");
        rx.await.expect("flush reported").expect("flush succeeded");
    }

    fn blank(term: u64, index: u64) -> Entry {
        Entry::new_blank(log_id(term, index))
    }

    #[tokio::test]
    async fn entries_vote_and_purge_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wal_dir = dir.path().join("wal");
        {
            let mut store = LogStore::open(&wal_dir).expect("open");
            assert!(!store.has_state().expect("state"));
            append(&mut store, (1..=5).map(|i| blank(1, i)).collect()).await;
            store.save_vote(&Vote::new_committed(1, 1)).await.expect("vote");
            store.purge(log_id(1, 2)).await.expect("purge");
            store.truncate_after(Some(log_id(1, 4))).await.expect("truncate");
            // Truncating after the last entry is a no-op, not an error.
            store
                .truncate_after(Some(log_id(1, 4)))
                .await
                .expect("truncate after last");
        }
        let mut store = LogStore::open(&wal_dir).expect("reopen");
        assert!(store.has_state().expect("state"));
        let state = store.get_log_state().await.expect("log state");
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 2)));
        assert_eq!(state.last_log_id, Some(log_id(1, 4)));
        assert_eq!(store.read_vote().await.expect("vote"), Some(Vote::new_committed(1, 1)));
        let entries = store.try_get_log_entries(0..10).await.expect("read");
        let indexes: Vec<u64> = entries.iter().map(|e| e.log_id.index).collect();
        assert_eq!(indexes, vec![3, 4]);
    }

    #[tokio::test]
    async fn vote_going_back_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = LogStore::open(dir.path()).expect("open");
        store.save_vote(&Vote::new(5, 1)).await.expect("vote");
        assert!(store.save_vote(&Vote::new(4, 1)).await.is_err());
        assert_eq!(store.read_vote().await.expect("vote"), Some(Vote::new(5, 1)));
    }

    /// A put with a recognisable value, so that a read-back proves the payload survived too.
    fn put(term: u64, index: u64) -> Entry {
        let command = crate::command::Command::Put(kuboard_storage::PutRequest::new(
            format!("/damage/{index}"),
            format!("value of entry {index}"),
        ));
        Entry::new_normal(log_id(term, index), command)
    }

    /// Write entries `indexes` (each waited for until fsynced, that is acknowledged) to the WAL in
    /// `dir` and close it.
    async fn write_puts(dir: &Path, indexes: std::ops::RangeInclusive<u64>, chunk_max_size: usize) {
        let mut store = LogStore::open_with_chunk_size(dir, chunk_max_size).expect("open");
        for index in indexes {
            append(&mut store, vec![put(1, index)]).await;
        }
        store.sync().await.expect("sync");
    }

    /// The indexes of the entries the WAL in `dir` holds, checking each payload.
    async fn read_puts(store: &mut LogStore) -> Vec<u64> {
        let entries = store.try_get_log_entries(0..u64::MAX).await.expect("read entries");
        for entry in &entries {
            let expected = put(1, entry.log_id.index);
            assert_eq!(
                entry.payload, expected.payload,
                "payload of entry {}",
                entry.log_id.index
            );
        }
        entries.iter().map(|e| e.log_id.index).collect()
    }

    /// Byte offsets at which the records of a (healthy) chunk file start.
    fn record_starts(path: &Path) -> Vec<u64> {
        let bytes = std::fs::read(path).expect("read chunk");
        let mut reader = CountingReader {
            inner: &bytes[..],
            taken: 0,
        };
        let mut starts = Vec::new();
        while reader.taken < bytes.len() as u64 {
            starts.push(reader.taken);
            RaftLogRecord::<WalTypes>::decode(&mut reader).expect("healthy record");
        }
        starts
    }

    fn only_chunk(dir: &Path) -> PathBuf {
        let chunks = chunk_files(dir).expect("list chunks");
        assert_eq!(chunks.len(), 1, "one chunk file expected: {chunks:?}");
        chunks[0].clone()
    }

    #[tokio::test]
    async fn torn_last_record_is_cut_off_with_a_warning() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_puts(dir.path(), 1..=6, CHUNK_MAX_SIZE).await;
        let chunk = only_chunk(dir.path());
        let last_start = *record_starts(&chunk).last().expect("records");
        let len = std::fs::metadata(&chunk).expect("stat").len();
        // The append of entry 6 loses its last bytes, as a crash in the middle of its write
        // would leave it (before its fsync, so before it was acknowledged).
        OpenOptions::new()
            .write(true)
            .open(&chunk)
            .and_then(|f| f.set_len(len - 3))
            .expect("cut the chunk");

        // The WARN line of the repair is checked by raft/tests/t45_wal_damage.rs, whose process has
        // one global subscriber: a thread-scoped one here raced other tests over tracing's global
        // interest cache and sometimes saw no line at all.
        let mut store = LogStore::open(dir.path()).expect("a torn last record is repaired");
        assert_eq!(read_puts(&mut store).await, vec![1, 2, 3, 4, 5]);
        assert_eq!(
            std::fs::metadata(&chunk).expect("stat").len(),
            last_start,
            "the torn record is cut off at its start"
        );

        tracing::info!("--- the repaired log takes entry 6 again and keeps it");
        append(&mut store, vec![put(1, 6)]).await;
        drop(store);
        let mut store = LogStore::open(dir.path()).expect("reopen");
        assert_eq!(read_puts(&mut store).await, vec![1, 2, 3, 4, 5, 6]);
    }

    #[tokio::test]
    async fn zeroed_tail_is_cut_off() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_puts(dir.path(), 1..=3, CHUNK_MAX_SIZE).await;
        let chunk = only_chunk(dir.path());
        let len = std::fs::metadata(&chunk).expect("stat").len();
        // A file whose new length reached the disk before its data (ext4 data=writeback).
        OpenOptions::new()
            .write(true)
            .open(&chunk)
            .and_then(|f| f.set_len(len + 4096))
            .expect("extend the chunk");
        let mut store = LogStore::open(dir.path()).expect("a zeroed tail is repaired");
        assert_eq!(read_puts(&mut store).await, vec![1, 2, 3]);
        assert_eq!(
            std::fs::metadata(&chunk).expect("stat").len(),
            len,
            "the 4096 zeroed bytes are cut off"
        );
    }

    /// Open must fail with a clear `InvalidData` error naming the file and offset, and leave the
    /// file as it was.
    fn assert_refused(dir: &Path, chunk: &Path, offset: u64) {
        let before = std::fs::read(chunk).expect("read chunk");
        let error = LogStore::open(dir).err().expect("a damaged WAL is refused");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
        let message = error.to_string();
        assert!(message.contains(&chunk.display().to_string()), "{message}");
        assert!(message.contains(&format!("byte offset {offset} ")), "{message}");
        assert_eq!(
            std::fs::read(chunk).expect("read chunk"),
            before,
            "a refused WAL is left untouched"
        );
    }

    #[tokio::test]
    async fn garbage_in_the_middle_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_puts(dir.path(), 1..=6, CHUNK_MAX_SIZE).await;
        let chunk = only_chunk(dir.path());
        let starts = record_starts(&chunk);
        let mut bytes = std::fs::read(&chunk).expect("read chunk");
        let at = starts[3] as usize + 6;
        bytes[at..at + 16].fill(0xa5);
        std::fs::write(&chunk, &bytes).expect("write chunk");
        assert_refused(dir.path(), &chunk, starts[3]);
    }

    #[tokio::test]
    async fn flipped_bit_in_an_earlier_record_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_puts(dir.path(), 1..=6, CHUNK_MAX_SIZE).await;
        let chunk = only_chunk(dir.path());
        let starts = record_starts(&chunk);
        let mut bytes = std::fs::read(&chunk).expect("read chunk");
        let at = ((starts[2] + starts[3]) / 2) as usize;
        bytes[at] ^= 0x10;
        std::fs::write(&chunk, &bytes).expect("write chunk");
        assert_refused(dir.path(), &chunk, starts[2]);
    }

    #[tokio::test]
    async fn damage_in_an_earlier_chunk_is_refused_and_a_torn_last_chunk_repaired() {
        const SMALL_CHUNK: usize = 512;
        let dir = tempfile::tempdir().expect("tempdir");
        write_puts(dir.path(), 1..=20, SMALL_CHUNK).await;
        let chunks = chunk_files(dir.path()).expect("list chunks");
        assert!(chunks.len() >= 3, "small chunks rotate: {chunks:?}");

        tracing::info!("--- a torn record at the end of the last chunk is cut off");
        let last = chunks.last().expect("chunks");
        let len = std::fs::metadata(last).expect("stat").len();
        OpenOptions::new()
            .write(true)
            .open(last)
            .and_then(|f| f.set_len(len - 1))
            .expect("cut the chunk");
        {
            let mut store = LogStore::open_with_chunk_size(dir.path(), SMALL_CHUNK).expect("repaired");
            assert_eq!(read_puts(&mut store).await, (1..=19).collect::<Vec<_>>());
        }

        tracing::info!("--- a flipped bit in the first chunk stops the open");
        let first = &chunks[0];
        let starts = record_starts(first);
        let mut bytes = std::fs::read(first).expect("read chunk");
        let at = starts[1] as usize + 10;
        bytes[at] ^= 0x01;
        std::fs::write(first, &bytes).expect("write chunk");
        assert_refused(dir.path(), first, starts[1]);
    }

    /// Walks a single flipped bit through every bit of a small WAL. Each open either refuses the
    /// WAL, or (only when the flip lies in the last record, where it looks exactly like a torn
    /// write) cuts that one record off; it never panics and never loses an earlier entry.
    #[tokio::test]
    async fn every_single_bit_flip_is_refused_or_costs_at_most_the_last_record() {
        let base = tempfile::tempdir().expect("tempdir");
        let pristine_dir = base.path().join("pristine");
        write_puts(&pristine_dir, 1..=3, CHUNK_MAX_SIZE).await;
        let pristine_chunk = only_chunk(&pristine_dir);
        let name = pristine_chunk.file_name().expect("file name").to_owned();
        let pristine = std::fs::read(&pristine_chunk).expect("read chunk");
        let last_start = *record_starts(&pristine_chunk).last().expect("records") as usize;
        let (mut refused, mut cut) = (0, 0);
        let started = Instant::now();
        for bit in 0..pristine.len() * 8 {
            let at = bit / 8;
            let dir = base.path().join(format!("flip-{bit}"));
            std::fs::create_dir_all(&dir).expect("mkdir");
            let mut bytes = pristine.clone();
            bytes[at] ^= 1 << (bit % 8);
            std::fs::write(dir.join(&name), &bytes).expect("write chunk");
            match LogStore::open(&dir) {
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "flip of bit {bit}: {e}");
                    refused += 1;
                }
                Ok(mut store) => {
                    assert!(
                        at >= last_start,
                        "a flip of bit {bit} (before the last record) was accepted"
                    );
                    assert_eq!(read_puts(&mut store).await, vec![1, 2], "flip of bit {bit}");
                    cut += 1;
                }
            }
            std::fs::remove_dir_all(&dir).expect("clean up");
        }
        println!(
            "single-bit flips through a {}-byte WAL: {refused} refused, {cut} cut off as a torn last record, in {:.1} s",
            pristine.len(),
            started.elapsed().as_secs_f64()
        );
        assert!(refused > 0 && refused + cut == pristine.len() * 8);
    }

    /// A healthy one-chunk WAL holding puts 1..=6: the chunk's file name and bytes.
    fn pristine_wal() -> &'static (std::ffi::OsString, Vec<u8>) {
        static PRISTINE: std::sync::OnceLock<(std::ffi::OsString, Vec<u8>)> = std::sync::OnceLock::new();
        PRISTINE.get_or_init(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
            runtime.block_on(write_puts(dir.path(), 1..=6, CHUNK_MAX_SIZE));
            let chunk = only_chunk(dir.path());
            let name = chunk.file_name().expect("chunk file name").to_owned();
            (name, std::fs::read(&chunk).expect("read chunk"))
        })
    }

    /// Open a WAL made of one chunk file holding `bytes`: either refused as damaged, or opened with
    /// the entries it then holds. Never a panic, never another kind of error.
    fn open_chunk_bytes(bytes: &[u8]) -> Result<Vec<u64>, io::Error> {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(&pristine_wal().0), bytes).expect("write chunk");
        match LogStore::open(dir.path()) {
            Ok(mut store) => {
                let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
                Ok(runtime.block_on(read_puts(&mut store)))
            }
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
                Err(e)
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

        /// Random bytes never panic the decoders of a WAL record and of its fields, nor the search
        /// for intact records after damage.
        #[test]
        fn random_bytes_never_panic_the_wal_decoders(bytes in proptest::collection::vec(0u8..=255, 0..600)) {
            let _ = RaftLogRecord::<WalTypes>::decode(&bytes[..]);
            let _ = WalLogId::decode(&bytes[..]);
            let _ = WalPayload::decode(&bytes[..]);
            let _ = WalVote::decode(&bytes[..]);
            let _ = holds_an_intact_record(&bytes);
        }

        /// The records of a healthy WAL with one byte changed: the decoders fail or decode, never
        /// panic (a length prefix that lies reads through `take`, bounded by the input).
        #[test]
        fn mutated_wal_records_never_panic_the_decoders(at in 0usize..10_000, byte in 0u8..=255) {
            let bytes = &pristine_wal().1;
            let mut mutated = bytes.clone();
            let at = at % mutated.len();
            mutated[at] = byte;
            let mut reader = &mutated[..];
            while !reader.is_empty() {
                if RaftLogRecord::<WalTypes>::decode(&mut reader).is_err() {
                    break;
                }
            }
        }

        /// A chunk file of random bytes is refused, or taken as a torn write and cut off.
        #[test]
        fn random_chunk_file_is_refused_or_cut_off(bytes in proptest::collection::vec(0u8..=255, 0..2000)) {
            if let Ok(entries) = open_chunk_bytes(&bytes) {
                proptest::prop_assert!(entries.is_empty(), "entries invented from random bytes: {:?}", entries);
            }
        }

        /// A healthy WAL with bytes overwritten, inserted, removed or cut: open refuses it, or
        /// keeps a prefix of the written entries with their exact payloads; it never invents or
        /// reorders an entry.
        #[test]
        fn mutated_wal_is_refused_or_keeps_a_prefix(
            mutations in proptest::collection::vec((0usize..10_000, 0u8..4, 0u8..=255), 1..4)
        ) {
            let mut bytes = pristine_wal().1.clone();
            for (at, op, byte) in mutations {
                let at = at % (bytes.len() + 1);
                match op {
                    0 if at < bytes.len() => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    2 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => bytes.truncate(at),
                }
            }
            if let Ok(entries) = open_chunk_bytes(&bytes) {
                let prefix: Vec<u64> = (1..=entries.len() as u64).collect();
                proptest::prop_assert_eq!(entries, prefix);
            }
        }
    }

    /// The figure behind docs/adr/001-raft-log-wal.md: 200 sequential single-entry appends, each
    /// waited for until raft-log's fdatasync completed. Run with `--nocapture` to see it.
    #[tokio::test]
    async fn append_fsync_latency() {
        const APPENDS: u64 = 200;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = LogStore::open(dir.path()).expect("open");
        let payload = vec![b'x'; 256];
        let mut latencies = Vec::with_capacity(APPENDS as usize);
        let started = Instant::now();
        for index in 1..=APPENDS {
            let command = crate::command::Command::Put(kuboard_storage::PutRequest::new(
                format!("/bench/{index}"),
                payload.clone(),
            ));
            let op = Instant::now();
            append(&mut store, vec![Entry::new_normal(log_id(1, index), command)]).await;
            latencies.push(op.elapsed());
        }
        let total = started.elapsed();
        latencies.sort();
        let percentile = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
        println!(
            "raft-log append+fdatasync: {APPENDS} sequential single-entry appends in {:.1} ms; per op p50 {:.3} ms, \
             p99 {:.3} ms, max {:.3} ms",
            total.as_secs_f64() * 1000.0,
            percentile(50).as_secs_f64() * 1000.0,
            percentile(99).as_secs_f64() * 1000.0,
            latencies[latencies.len() - 1].as_secs_f64() * 1000.0,
        );
        let entries = store.try_get_log_entries(1..=APPENDS).await.expect("read back");
        assert_eq!(entries.len() as u64, APPENDS);
    }
}
