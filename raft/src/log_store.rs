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
//! Damage found on open (see `wal_repair`): a torn record at the very end of the last
//! chunk is an unacknowledged write cut short by a crash and is cut off with a WARN line; damage
//! anywhere else lies under acknowledged records and stops the open with an `InvalidData` error
//! naming the chunk file and the byte offset. raft-log's own silent truncation is switched off.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use raft_log::api::raft_log_writer::RaftLogWriter;
use raft_log::chunked_wal::ChunkedWal;
use raft_log::{RaftLog, RaftWalTypes};

use crate::types::{Entry, LogId, TypeConfig, Vote};
use crate::wal_format::{FlushCallback, WalLogId, WalPayload, WalTypes, WalVote, CHUNK_MAX_SIZE, REPLAY_READ_BUFFER};
use crate::wal_repair::repair_or_refuse;

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

    pub(crate) fn open_with_chunk_size(dir: &Path, chunk_max_size: usize) -> io::Result<LogStore> {
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
pub(crate) mod tests {
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

    pub(crate) async fn append(store: &mut LogStore, entries: Vec<Entry>) {
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

    /// Payload bytes raft-log still caches once the worker is idle and evictable entries are gone.
    fn cached_payload_bytes(store: &LogStore) -> u64 {
        let wal = store.lock().expect("lock");
        wal.wait_worker_idle().expect("worker idle");
        wal.drain_cache_evictable();
        wal.stat().payload_cache_size
    }

    /// raft-log caches the payload of every entry of the open chunk, purged or not; only entries of
    /// closed chunks leave the cache. The chunk size is therefore what bounds the log's memory
    /// between purges: with 64 MiB chunks a replica's RSS grew by ~170 MB in the hour-long soak.
    #[tokio::test]
    async fn purged_entries_leave_memory_only_when_their_chunk_closes() {
        let entry = |index: u64| {
            let command = crate::command::Command::Put(kuboard_storage::PutRequest::new(
                format!("/chunk/{index}"),
                vec![b'v'; 1024],
            ));
            Entry::new_normal(log_id(1, index), command)
        };
        let mut cached = Vec::new();
        for chunk_size in [64 * 1024, CHUNK_MAX_SIZE] {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut store = LogStore::open_with_chunk_size(dir.path(), chunk_size).expect("open");
            // About 2 MiB of entries, then everything but the last ten purged, as after a snapshot.
            for batch in 0..20u64 {
                append(&mut store, (1..=100).map(|i| entry(batch * 100 + i)).collect()).await;
            }
            store.purge(log_id(1, 1990)).await.expect("purge");
            cached.push(cached_payload_bytes(&store));
        }
        assert!(
            cached[0] <= 2 * 64 * 1024,
            "with 64 KiB chunks the cache keeps at most about one chunk: {} bytes",
            cached[0]
        );
        assert!(
            cached[1] >= 1024 * 1024,
            "with one open chunk the purged entries stay cached: {} bytes",
            cached[1]
        );
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
    pub(crate) fn put(term: u64, index: u64) -> Entry {
        let command = crate::command::Command::Put(kuboard_storage::PutRequest::new(
            format!("/damage/{index}"),
            format!("value of entry {index}"),
        ));
        Entry::new_normal(log_id(term, index), command)
    }

    /// Write entries `indexes` (each waited for until fsynced, that is acknowledged) to the WAL in
    /// `dir` and close it.
    pub(crate) async fn write_puts(dir: &Path, indexes: std::ops::RangeInclusive<u64>, chunk_max_size: usize) {
        let mut store = LogStore::open_with_chunk_size(dir, chunk_max_size).expect("open");
        for index in indexes {
            append(&mut store, vec![put(1, index)]).await;
        }
        store.sync().await.expect("sync");
    }

    /// The indexes of the entries the WAL in `dir` holds, checking each payload.
    pub(crate) async fn read_puts(store: &mut LogStore) -> Vec<u64> {
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
