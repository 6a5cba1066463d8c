//! openraft's state machine: the MVCC key-value store of [`crate::mvcc`] plus the openraft
//! bookkeeping it persists with every change, and the snapshot files.
//!
//! The entries of one `apply` call are written in one sled transaction (in bounded groups; see
//! `KvStateMachine::apply_group`) together with the meta record `(last applied log id, last
//! membership)` of the last of them, encoded by [`crate::codec`], so after a crash data and meta
//! agree and openraft replays the log from exactly the right place. The raft log is the source of
//! truth; sled is flushed before a snapshot is published, since the log may be purged behind it.
//!
//! Snapshot files (`data_dir/raft/snapshots/snapshot-<term>-<node>-<index>.snap`):
//! `[u32 big-endian header length][codec record of SnapshotMeta][mvcc export][u32 big-endian CRC-32
//! of everything before it]`. A snapshot is written to a temporary file, fsynced, renamed into place
//! and the directory fsynced, before openraft is told about it (and may purge the log behind it).
//! The checksum is verified before a file is trusted: when a member starts (a damaged file is
//! ignored, the state machine in sled does not depend on it) and before a received snapshot is
//! installed (a damaged one is refused and the leader sends it again).

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::{Stream, TryStreamExt};
use kuboard_storage::{ResponseHeader, TxnOpResponse, TxnResponse};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{OptionalSend, RaftSnapshotBuilder};

use crate::codec;
use crate::command::CommandResponse;
use crate::mvcc::KvStateMachine;
use crate::types::{EntryPayload, LogId, NodeId, SnapshotMeta, StoredMembership, TypeConfig};

/// openraft's core of this group, over this state machine.
pub(crate) type Raft = openraft::Raft<TypeConfig, StateMachineStore>;

type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, SnapshotData>;

/// The data of a snapshot as openraft hands it around: an open snapshot file, read from its start.
pub(crate) type SnapshotData = File;

/// Upper bound of a snapshot file header (the encoded meta: a log id and a membership).
const MAX_HEADER_LEN: usize = 1024 * 1024;

/// Length of the checksum trailer of a snapshot file.
const TRAILER_LEN: u64 = 4;

/// A writer that keeps the CRC-32 of everything written through it.
struct ChecksumWriter<W: Write> {
    inner: W,
    hasher: crc32fast::Hasher,
}

impl<W: Write> Write for ChecksumWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write> ChecksumWriter<W> {
    /// Append the checksum trailer and hand back the inner writer.
    fn finish(mut self) -> io::Result<W> {
        let sum = self.hasher.finalize();
        self.inner.write_all(&sum.to_be_bytes())?;
        Ok(self.inner)
    }
}

/// Check a snapshot file's trailer against its content. On success the file is positioned at its
/// start and the length of the content (without the trailer) is returned.
fn verify_checksum(file: &mut File) -> io::Result<u64> {
    let total = file.metadata()?.len();
    let Some(content) = total.checked_sub(TRAILER_LEN).filter(|len| *len >= 4) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("snapshot file of {total} bytes is too short"),
        ));
    };
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut reader = BufReader::with_capacity(64 * 1024, Read::by_ref(file).take(content));
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        hasher.update(chunk);
        let consumed = chunk.len();
        reader.consume(consumed);
    }
    drop(reader);
    let mut trailer = [0u8; TRAILER_LEN as usize];
    file.read_exact(&mut trailer)?;
    let (expected, found) = (u32::from_be_bytes(trailer), hasher.finalize());
    if expected != found {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("snapshot checksum mismatch: the file says {expected:08x}, the content is {found:08x}"),
        ));
    }
    file.seek(SeekFrom::Start(0))?;
    Ok(content)
}

/// What the state machine records with every applied entry.
pub(crate) type AppliedState = (Option<LogId>, StoredMembership);

fn io_err(context: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{context}: {e}"))
}

pub(crate) fn encode_meta(state: &AppliedState) -> io::Result<Vec<u8>> {
    codec::encode(state).map_err(|e| io_err("encode state machine meta", e))
}

pub(crate) fn decode_meta(bytes: &[u8]) -> io::Result<AppliedState> {
    codec::decode(bytes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("decode state machine meta: {e}")))
}

/// Read the applied state recorded in the MVCC store (`None, empty` on a fresh store).
pub(crate) fn read_applied_state(kv: &KvStateMachine) -> io::Result<AppliedState> {
    match kv.meta().map_err(|e| io_err("read state machine meta", e))? {
        Some(bytes) => decode_meta(&bytes),
        None => Ok((None, StoredMembership::default())),
    }
}

/// Set the answering member and the term on a response and on every nested one.
pub(crate) fn fill_header(response: &mut CommandResponse, member_id: NodeId, raft_term: u64) {
    fn set(header: &mut ResponseHeader, member_id: NodeId, raft_term: u64) {
        header.member_id = member_id;
        header.raft_term = raft_term;
    }
    fn txn(response: &mut TxnResponse, member_id: NodeId, raft_term: u64) {
        set(&mut response.header, member_id, raft_term);
        for op in &mut response.responses {
            match op {
                TxnOpResponse::Range(r) => set(&mut r.header, member_id, raft_term),
                TxnOpResponse::Put(r) => set(&mut r.header, member_id, raft_term),
                TxnOpResponse::DeleteRange(r) => set(&mut r.header, member_id, raft_term),
                TxnOpResponse::Txn(r) => txn(r, member_id, raft_term),
            }
        }
    }
    match response {
        CommandResponse::Put(r) => set(&mut r.header, member_id, raft_term),
        CommandResponse::DeleteRange(r) => set(&mut r.header, member_id, raft_term),
        CommandResponse::Txn(r) => txn(r, member_id, raft_term),
        CommandResponse::Compact(r) => set(&mut r.header, member_id, raft_term),
        CommandResponse::LeaseGrant(r) => set(&mut r.header, member_id, raft_term),
        CommandResponse::LeaseRevoke(r) => set(&mut r.header, member_id, raft_term),
        CommandResponse::Applied(header) => set(header, member_id, raft_term),
        CommandResponse::Error(_) => {}
    }
}

/// The snapshot files of this member and which one is current.
struct SnapshotFiles {
    dir: PathBuf,
    current: Mutex<Option<(SnapshotMeta, PathBuf)>>,
}

impl SnapshotFiles {
    fn open(dir: &Path) -> io::Result<SnapshotFiles> {
        fs::create_dir_all(dir)?;
        let mut best: Option<(SnapshotMeta, PathBuf)> = None;
        for dirent in fs::read_dir(dir)? {
            let path = dirent?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            if name.starts_with("tmp-") {
                // A snapshot whose writing was interrupted; it was never announced.
                fs::remove_file(&path)?;
                continue;
            }
            if !name.ends_with(".snap") {
                continue;
            }
            let checked = File::open(&path).and_then(|mut f| {
                verify_checksum(&mut f)?;
                read_header(&mut f)
            });
            let meta = match checked {
                Ok(meta) => meta,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable snapshot file");
                    continue;
                }
            };
            if best.as_ref().is_none_or(|(b, _)| meta.last_log_id > b.last_log_id) {
                best = Some((meta, path));
            }
        }
        Ok(SnapshotFiles {
            dir: dir.to_owned(),
            current: Mutex::new(best),
        })
    }

    fn lock(&self) -> io::Result<std::sync::MutexGuard<'_, Option<(SnapshotMeta, PathBuf)>>> {
        self.current
            .lock()
            .map_err(|_| io::Error::other("snapshot lock poisoned"))
    }

    fn current(&self) -> io::Result<Option<(SnapshotMeta, PathBuf)>> {
        Ok(self.lock()?.clone())
    }

    /// The current snapshot, opened while no publish can remove its file: once open, the data
    /// stays readable whatever is published after.
    fn open_current(&self) -> io::Result<Option<(SnapshotMeta, File)>> {
        let current = self.lock()?;
        let Some((meta, path)) = current.as_ref() else {
            return Ok(None);
        };
        Ok(Some((meta.clone(), File::open(path)?)))
    }

    fn file_name(meta: &SnapshotMeta) -> String {
        match &meta.last_log_id {
            Some(id) => format!(
                "snapshot-{}-{}-{}.snap",
                id.leader_id.term, id.leader_id.node_id, id.index
            ),
            None => "snapshot-empty.snap".to_owned(),
        }
    }

    fn temp_path(&self) -> PathBuf {
        self.dir
            .join(format!("tmp-{}-{}", std::process::id(), rand::random::<u64>()))
    }

    /// Make `temp` (fully written and fsynced) the current snapshot for `meta`, durably, and
    /// remove the older snapshot files; returns the current snapshot after it. A snapshot older
    /// than the current one (a build that began before a newer snapshot was installed) is
    /// dropped instead: the current one stays, and is returned.
    ///
    /// Everything happens under the lock of `current`, which [`SnapshotFiles::open_current`]
    /// takes too: a file is never removed between being looked up and being opened.
    fn publish(&self, temp: &Path, meta: &SnapshotMeta) -> io::Result<(SnapshotMeta, PathBuf)> {
        let mut current = self.lock()?;
        if let Some((newer, path)) = current.as_ref().filter(|(now, _)| now.last_log_id > meta.last_log_id) {
            tracing::info!(
                built = ?meta.last_log_id,
                current = ?newer.last_log_id,
                "a newer snapshot was installed while this one was built; keeping the newer one"
            );
            fs::remove_file(temp)?;
            return Ok((newer.clone(), path.clone()));
        }
        let path = self.dir.join(Self::file_name(meta));
        fs::rename(temp, &path)?;
        File::open(&self.dir)?.sync_all()?;
        *current = Some((meta.clone(), path.clone()));
        for dirent in fs::read_dir(&self.dir)? {
            let old = dirent?.path();
            let is_snapshot = old.extension().is_some_and(|e| e == "snap");
            if is_snapshot && old != path {
                // A reader that still has the old file open keeps its data until it closes it.
                fs::remove_file(&old)?;
            }
        }
        Ok((meta.clone(), path))
    }
}

fn write_header<W: Write + ?Sized>(w: &mut W, meta: &SnapshotMeta) -> io::Result<()> {
    let header = codec::encode(meta).map_err(|e| io_err("encode snapshot meta", e))?;
    let len = u32::try_from(header.len()).map_err(|_| io::Error::other("snapshot header too large"))?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(&header)
}

/// Read the header of a snapshot file, leaving the reader at the start of the MVCC export.
fn read_header(r: &mut impl Read) -> io::Result<SnapshotMeta> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_HEADER_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("snapshot header of {len} bytes"),
        ));
    }
    let mut header = vec![0u8; len];
    r.read_exact(&mut header)?;
    codec::decode_with_limit(&header, MAX_HEADER_LEN)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("decode snapshot header: {e}")))
}

/// Load the latest intact snapshot file of `snapshot_dir` into `kv` (a fresh, empty state machine)
/// and flush it; returns the log id the snapshot ends at, or `None` when there is no snapshot (then
/// the log was never purged and replaying it from the start rebuilds everything).
pub(crate) fn restore_latest_snapshot(kv: &KvStateMachine, snapshot_dir: &Path) -> io::Result<Option<LogId>> {
    let Some((meta, path)) = SnapshotFiles::open(snapshot_dir)?.current()? else {
        return Ok(None);
    };
    let mut file = File::open(&path)?;
    let content = verify_checksum(&mut file)?;
    file.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::new(file.take(content));
    let in_file = read_header(&mut reader)?;
    if in_file != meta {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("snapshot file {} changed while it was read", path.display()),
        ));
    }
    kv.install_snapshot(&mut reader)
        .map_err(|e| io_err("install snapshot", e))?;
    kv.flush().map_err(|e| io_err("flush state machine", e))?;
    Ok(meta.last_log_id)
}

struct Shared {
    kv: KvStateMachine,
    snapshots: SnapshotFiles,
    /// Held while applying and while installing a snapshot. An export does not take it: the MVCC
    /// store captures the data and the meta stored with it at one moment by itself.
    apply_lock: Mutex<()>,
}

/// The state machine handle given to openraft.
pub(crate) struct StateMachineStore {
    shared: Arc<Shared>,
    node_id: NodeId,
    applied: AppliedState,
}

impl StateMachineStore {
    pub(crate) fn open(kv: KvStateMachine, snapshot_dir: &Path, node_id: NodeId) -> io::Result<StateMachineStore> {
        let applied = read_applied_state(&kv)?;
        let snapshots = SnapshotFiles::open(snapshot_dir)?;
        Ok(StateMachineStore {
            shared: Arc::new(Shared {
                kv,
                snapshots,
                apply_lock: Mutex::new(()),
            }),
            node_id,
            applied,
        })
    }
}

/// Builds a snapshot of the state machine on a blocking thread.
pub(crate) struct SnapshotBuilder {
    shared: Arc<Shared>,
}

fn build_snapshot_blocking(shared: &Shared) -> io::Result<(SnapshotMeta, PathBuf)> {
    let temp = shared.snapshots.temp_path();
    let result = (|| {
        let mut writer = ChecksumWriter {
            inner: BufWriter::new(File::create(&temp)?),
            hasher: crc32fast::Hasher::new(),
        };
        // The header is the applied state stored with the exported state, taken at the same
        // moment by the export; applies go on while the history is streamed.
        let mut exported: Option<SnapshotMeta> = None;
        shared
            .kv
            .export_snapshot_with(&mut writer, &mut |raft_meta, out| {
                let (last_log_id, last_membership) = match raft_meta {
                    Some(bytes) => decode_meta(bytes)?,
                    None => (None, StoredMembership::default()),
                };
                let meta = SnapshotMeta {
                    last_log_id,
                    last_membership,
                };
                write_header(out, &meta)?;
                exported = Some(meta);
                Ok(())
            })
            .map_err(|e| io_err("export state machine", e))?;
        let meta = exported.ok_or_else(|| io::Error::other("the export wrote no snapshot header"))?;
        let file = writer.finish()?.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        // openraft purges the log behind a published snapshot. sled writes its log out with every
        // applied group but is flushed lazily otherwise, so the state it holds is made stable
        // first: on a restart the state machine in sled is then never older than the snapshot,
        // and the entries it still needs are in the log.
        shared.kv.flush().map_err(|e| io_err("flush state machine", e))?;
        shared.snapshots.publish(&temp, &meta)
    })();
    if result.is_err() {
        // Best effort: the file is also removed on the next open.
        let _ = fs::remove_file(&temp);
    }
    result
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let shared = self.shared.clone();
        let started = std::time::Instant::now();
        let (meta, path) = tokio::task::spawn_blocking(move || build_snapshot_blocking(&shared))
            .await
            .map_err(|e| io_err("snapshot task", e))??;
        tracing::info!(
            last_log_id = ?meta.last_log_id,
            path = %path.display(),
            duration_ms = started.elapsed().as_millis() as u64,
            "snapshot built"
        );
        // Opened under the lock, so that a snapshot published meanwhile cannot remove it first.
        let (meta, snapshot) = self
            .shared
            .snapshots
            .open_current()?
            .ok_or_else(|| io::Error::other("no current snapshot after publishing one"))?;
        Ok(Snapshot { meta, snapshot })
    }
}

/// Install a received snapshot; false when a newer one was already current (nothing changed).
fn install_snapshot_blocking(shared: &Shared, meta: &SnapshotMeta, mut source: File) -> io::Result<bool> {
    source.seek(SeekFrom::Start(0))?;
    let temp = shared.snapshots.temp_path();
    let result = (|| {
        let mut file = File::create(&temp)?;
        io::copy(&mut source, &mut file)?;
        file.sync_all()?;
        drop(file);

        let mut received = File::open(&temp)?;
        let content = verify_checksum(&mut received)?;
        let mut reader = BufReader::new(received.take(content));
        let in_file = read_header(&mut reader)?;
        if &in_file != meta {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "snapshot file is of {:?}, expected {:?}",
                    in_file.last_log_id, meta.last_log_id
                ),
            ));
        }
        // The file is published (durably) before the state machine changes: a crash in between
        // leaves a snapshot newer than the state machine, which openraft installs again at the
        // next start. The other order could leave the state machine ahead of every snapshot
        // file, with the log purged up to it: a member that could never send a snapshot of what
        // it holds.
        let (current, _) = shared.snapshots.publish(&temp, meta)?;
        if current.last_log_id != meta.last_log_id {
            // A newer snapshot is current (openraft does not send an older one than it applied):
            // the state machine is at least there already.
            return Ok(false);
        }
        #[cfg(test)]
        tests::interrupt_point()?;
        // `reader` goes on reading the file it opened, now the published one.
        {
            let _guard = shared
                .apply_lock
                .lock()
                .map_err(|_| io::Error::other("apply lock poisoned"))?;
            shared
                .kv
                .install_snapshot(&mut reader)
                .map_err(|e| io_err("install snapshot", e))?;
        }
        shared.kv.flush().map_err(|e| io_err("flush state machine", e))?;
        Ok(true)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Most log entries applied in one sled transaction.
const MAX_APPLY_GROUP: usize = 512;

/// The group limit in force: [`MAX_APPLY_GROUP`] unless a measurement lowered it (1 applies every
/// entry in a transaction of its own, as before grouping) through `testing::set_apply_group_limit`.
static APPLY_GROUP_LIMIT: AtomicUsize = AtomicUsize::new(MAX_APPLY_GROUP);

pub(crate) fn set_apply_group_limit(limit: usize) {
    APPLY_GROUP_LIMIT.store(limit.clamp(1, MAX_APPLY_GROUP), Ordering::Relaxed);
}

impl StateMachineStore {
    /// Apply consecutive entries, store the meta of the last one with them, then answer each
    /// entry's client, in log order. The work on sled runs on a blocking thread: a large group (a
    /// delete of thousands of keys, a long catch-up) holds the apply lock for as long as it takes,
    /// and must not hold one of the runtime's workers meanwhile, where heartbeats, the lease clock
    /// and every request are served.
    async fn apply_group(&mut self, group: Vec<EntryResponder<TypeConfig>>) -> io::Result<()> {
        let shared = self.shared.clone();
        let applied = self.applied.clone();
        let (group, applied, responses) =
            tokio::task::spawn_blocking(move || apply_group_blocking(&shared, group, applied))
                .await
                .map_err(|e| io_err("apply task", e))??;
        self.applied = applied;
        for ((entry, responder), mut response) in group.into_iter().zip(responses) {
            fill_header(&mut response, self.node_id, entry.log_id().leader_id.term);
            if let Some(responder) = responder {
                responder.send(response);
            }
        }
        Ok(())
    }
}

/// What [`apply_group_blocking`] hands back: the entries with their responders, the applied state
/// after them, and one response per entry.
type AppliedGroup = (Vec<EntryResponder<TypeConfig>>, AppliedState, Vec<CommandResponse>);

fn apply_group_blocking(
    shared: &Shared,
    group: Vec<EntryResponder<TypeConfig>>,
    mut applied: AppliedState,
) -> io::Result<AppliedGroup> {
    let mut items = Vec::with_capacity(group.len());
    for (entry, _) in &group {
        let log_id = entry.log_id();
        applied.0 = Some(log_id);
        if let Some(membership) = entry.get_membership() {
            applied.1 = StoredMembership::new(Some(log_id), membership);
        }
        let command = match &entry.payload {
            EntryPayload::Normal(command) => Some(command),
            EntryPayload::Blank | EntryPayload::Membership(_) => None,
        };
        items.push((command, encode_meta(&applied)?));
    }
    let responses = {
        let _guard = shared
            .apply_lock
            .lock()
            .map_err(|_| io::Error::other("apply lock poisoned"))?;
        shared.kv.apply_group(&items).map_err(|e| io_err("apply commands", e))?
    };
    drop(items);
    if responses.len() != group.len() {
        // Every responder must be answered or its client waits forever; this cannot happen.
        return Err(io::Error::other(format!(
            "{} answers for {} applied entries",
            responses.len(),
            group.len()
        )));
    }
    Ok((group, applied, responses))
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<AppliedState, io::Error> {
        Ok(self.applied.clone())
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        // The entries openraft hands over at once are applied together (see `apply_group`), in
        // bounded groups so that a long catch-up does not hold them all in memory.
        let mut group = Vec::new();
        loop {
            let next = entries.try_next().await?;
            let ended = next.is_none();
            group.extend(next);
            if group.len() >= APPLY_GROUP_LIMIT.load(Ordering::Relaxed) || (ended && !group.is_empty()) {
                self.apply_group(std::mem::take(&mut group)).await?;
            }
            if ended {
                return Ok(());
            }
        }
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            shared: self.shared.clone(),
        }
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: SnapshotData) -> Result<(), io::Error> {
        let shared = self.shared.clone();
        let owned_meta = meta.clone();
        let installed = tokio::task::spawn_blocking(move || install_snapshot_blocking(&shared, &owned_meta, snapshot))
            .await
            .map_err(|e| io_err("snapshot task", e))??;
        if installed {
            self.applied = (meta.last_log_id, meta.last_membership.clone());
            tracing::info!(last_log_id = ?meta.last_log_id, "snapshot installed");
        }
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        Ok(self
            .shared
            .snapshots
            .open_current()?
            .map(|(meta, snapshot)| Snapshot { meta, snapshot }))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use openraft::vote::RaftLeaderId;
    use openraft::RaftTypeConfig;

    use super::*;

    thread_local! {
        static INTERRUPT: Cell<bool> = const { Cell::new(false) };
    }

    /// Where a test stops an install half-way, as a crash would (an error instead of the rest).
    pub(super) fn interrupt_point() -> io::Result<()> {
        if INTERRUPT.with(|flag| flag.replace(false)) {
            return Err(io::Error::other("interrupted by the test"));
        }
        Ok(())
    }

    fn log_id(index: u64) -> LogId {
        LogId {
            leader_id: <TypeConfig as RaftTypeConfig>::LeaderId::new(1, 1).to_committed(),
            index,
        }
    }

    fn meta_at(index: u64) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: Some(log_id(index)),
            last_membership: StoredMembership::default(),
        }
    }

    fn store_in(dir: &Path) -> StateMachineStore {
        let kv = KvStateMachine::open(&dir.join("sm")).expect("open the state machine");
        StateMachineStore::open(kv, &dir.join("snapshots"), 1).expect("open the snapshot files")
    }

    /// A state machine that applied entries up to `index` (a put per entry), and a snapshot of it.
    fn built_snapshot(dir: &Path, index: u64) -> (StateMachineStore, SnapshotMeta, PathBuf) {
        let store = store_in(dir);
        for at in 1..=index {
            let command = crate::command::Command::Put(kuboard_storage::PutRequest::new(format!("k{at}"), "v"));
            let meta = encode_meta(&(Some(log_id(at)), StoredMembership::default())).expect("meta");
            store.shared.kv.apply_group(&[(Some(&command), meta)]).expect("apply");
        }
        let (meta, path) = build_snapshot_blocking(&store.shared).expect("build a snapshot");
        (store, meta, path)
    }

    fn temp_with(files: &SnapshotFiles, bytes: &[u8]) -> PathBuf {
        let temp = files.temp_path();
        fs::write(&temp, bytes).expect("write a temporary snapshot");
        temp
    }

    /// A build that began before a newer snapshot was installed finished after it: publishing it
    /// replaced the newer snapshot and removed its file.
    #[test]
    fn an_older_build_published_over_a_newer_installed_snapshot() {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = SnapshotFiles::open(dir.path()).expect("open");
        let newer = temp_with(&files, b"newer");
        files.publish(&newer, &meta_at(20)).expect("publish the newer snapshot");
        let older = temp_with(&files, b"older");
        files.publish(&older, &meta_at(10)).expect("publish the older snapshot");

        let (meta, path) = files.current().expect("current").expect("a current snapshot");
        assert_eq!(meta.last_log_id, Some(log_id(20)), "the current snapshot went back");
        assert_eq!(fs::read(&path).expect("the current file is there"), b"newer");
        assert!(!older.exists(), "the older temporary file is removed");
        let snap_files = fs::read_dir(dir.path()).expect("list").count();
        assert_eq!(snap_files, 1, "only the current snapshot file is left");
    }

    /// A reader looked the current snapshot up, a publish removed its file, and the reader's open
    /// failed. Readers and a publisher race here, bounded in count; no open may fail.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_snapshot_file_deleted_between_lookup_and_open() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = store_in(dir.path());
        let shared = store.shared.clone();
        let publisher = std::thread::spawn(move || {
            for index in 1..=2_000u64 {
                let temp = temp_with(&shared.snapshots, &index.to_be_bytes());
                shared.snapshots.publish(&temp, &meta_at(index)).expect("publish");
            }
        });
        let mut opened = 0;
        while !publisher.is_finished() {
            match store.get_current_snapshot().await {
                Ok(Some(_)) => opened += 1,
                Ok(None) => {}
                Err(error) => panic!("opening the current snapshot failed after {opened} opens: {error}"),
            }
        }
        publisher.join().expect("publisher");
        assert!(opened > 0, "the reader opened snapshots while they were published");
    }

    /// A received snapshot was installed into the state machine before its file was published; a
    /// crash in between left the state machine ahead of every snapshot file (with the log purged
    /// up to it, a snapshot of what it holds could never be sent).
    #[test]
    fn the_state_machine_updated_before_the_received_snapshot_was_published() {
        let source = tempfile::tempdir().expect("temp dir");
        let (_sender, meta, path) = built_snapshot(source.path(), 30);
        let dir = tempfile::tempdir().expect("temp dir");
        let receiver = store_in(dir.path());

        INTERRUPT.with(|flag| flag.set(true));
        let file = File::open(&path).expect("open the snapshot");
        assert!(
            install_snapshot_blocking(&receiver.shared, &meta, file).is_err(),
            "the install stops at the interruption"
        );
        let (applied, _) = read_applied_state(&receiver.shared.kv).expect("applied state");
        let published = receiver
            .shared
            .snapshots
            .current()
            .expect("current")
            .map(|(meta, _)| meta.last_log_id);
        assert!(
            applied <= published.flatten(),
            "the state machine is at {applied:?}, the newest snapshot file at {published:?}"
        );

        // Installing again (as openraft does at the next start) completes it.
        let file = File::open(
            receiver
                .shared
                .snapshots
                .current()
                .expect("current")
                .expect("published")
                .1,
        )
        .expect("open the published snapshot");
        assert!(install_snapshot_blocking(&receiver.shared, &meta, file).expect("install"));
        let (applied, _) = read_applied_state(&receiver.shared.kv).expect("applied state");
        assert_eq!(applied, meta.last_log_id);
        assert_eq!(receiver.shared.kv.revision(), 31, "30 puts after revision 1");
    }
}
