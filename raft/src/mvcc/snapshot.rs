//! Snapshots: a stream of length-prefixed codec records (`u32` little-endian length, then the
//! record): one header, the leases, the retained history in revision order, an end record with
//! counts. The `kv` tree, the index and the lease attachments are rebuilt from the history on
//! install, so they cannot disagree with it.
//!
//! Export is consistent without stopping `apply` for long: under the apply lock it takes the
//! revision, the compaction revision, the meta bytes and the leases; it then streams the history
//! at or below that revision while holding the history lock shared, which keeps the removal of
//! compacted history and installs out until it is done. Applies go on meanwhile: they only add
//! history above the exported revision. The raft layer's meta bytes of the exported moment are
//! handed to the caller's prelude before the stream, so that the snapshot's log id is the one of
//! the state it holds.
//!
//! Install writes the next generation of trees beside the active one and switches to it with one
//! insert of the active generation, so a crash leaves the old state or the new one.

use std::io::{BufReader, BufWriter, Read, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use sled::{Batch, IVec};

use super::compaction::PurgeCursor;
use super::error::MvccError;
use super::keys::{index_key, lease_id_key, lease_key_entry, parse_revision_key, revision_key};
use super::lease;
use super::records::{decode, encode, HistoryRecord, IndexEntry, KvRecord, LeaseRecord, SnapshotRecord};
use super::shared::{lock, read, write, Shared};
use super::trees::{Trees, ACTIVE_GENERATION, META_COMPACT_REVISION, META_RAFT, META_REVISION};
use crate::codec::DEFAULT_DECODE_LIMIT;

/// Writes gathered before they are applied to a tree being built.
const INSTALL_BATCH: usize = 10_000;

fn write_record(writer: &mut impl Write, record: &SnapshotRecord) -> Result<(), MvccError> {
    let bytes = encode("snapshot record", record)?;
    let len = u32::try_from(bytes.len())
        .map_err(|_| MvccError::InvalidSnapshot(format!("record of {} bytes is too large", bytes.len())))?;
    writer.write_all(&len.to_le_bytes())?;
    writer.write_all(&bytes)?;
    Ok(())
}

fn read_record(reader: &mut impl Read) -> Result<SnapshotRecord, MvccError> {
    let mut len = [0u8; 4];
    reader.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > DEFAULT_DECODE_LIMIT {
        return Err(MvccError::InvalidSnapshot(format!(
            "record of {len} bytes exceeds the limit"
        )));
    }
    // Read through `take` so that a lying length cannot make us allocate before data arrives.
    let mut bytes = Vec::new();
    reader.take(len as u64).read_to_end(&mut bytes)?;
    if bytes.len() != len {
        return Err(MvccError::InvalidSnapshot("stream ends inside a record".to_string()));
    }
    decode("snapshot record", &bytes)
}

/// Write what a snapshot file holds before the state: given the raft layer's meta bytes of the
/// exported moment (`None` on a fresh store) and the writer.
pub type ExportPrelude<'a> = &'a mut dyn FnMut(Option<&[u8]>, &mut dyn Write) -> std::io::Result<()>;

pub(super) fn export(inner: &Shared, writer: &mut dyn Write, prelude: ExportPrelude<'_>) -> Result<(), MvccError> {
    let (trees, revision, header, leases, _history) = {
        let _apply = lock(&inner.apply_lock);
        let history = read(&inner.history_lock);
        let trees = read(&inner.state).clone();
        let revision = inner.revision.load(Ordering::SeqCst);
        let header = SnapshotRecord::Header {
            revision,
            compact_revision: inner.compact_revision.load(Ordering::SeqCst),
            meta: trees.meta.get(META_RAFT)?.map(|bytes| bytes.to_vec()),
        };
        let leases = lease::list(&trees)?;
        (trees, revision, header, leases, history)
    };
    let mut writer = BufWriter::new(writer);
    if let SnapshotRecord::Header { meta, .. } = &header {
        prelude(meta.as_deref(), &mut writer)?;
    }
    write_record(&mut writer, &header)?;
    for &(id, ttl) in &leases {
        write_record(&mut writer, &SnapshotRecord::Lease { id, ttl })?;
    }
    let mut history = 0u64;
    for item in trees.history.range(..=revision_key(revision, i64::MAX)) {
        let (key, value) = item?;
        let (revision, sub_revision) = parse_revision_key(&key)?;
        let record: HistoryRecord = decode("history record", &value)?;
        write_record(
            &mut writer,
            &SnapshotRecord::History {
                revision,
                sub_revision,
                record,
            },
        )?;
        history += 1;
    }
    write_record(
        &mut writer,
        &SnapshotRecord::End {
            leases: leases.len() as u64,
            history,
        },
    )?;
    writer.flush()?;
    Ok(())
}

pub(super) fn install(inner: &Shared, reader: &mut dyn Read) -> Result<(), MvccError> {
    let _apply = lock(&inner.apply_lock);
    let _history = write(&inner.history_lock);
    let old_generation = read(&inner.state).generation;
    let generation = old_generation + 1;
    drop_generation(&inner.db, generation)?;
    let fresh = Trees::open(&inner.db, generation)?;
    let (revision, compact_revision) = match load(&fresh, &mut BufReader::new(reader)) {
        Ok(counters) => counters,
        Err(error) => {
            drop(fresh);
            drop_generation(&inner.db, generation)?;
            return Err(error);
        }
    };
    inner.db.flush()?;
    {
        let mut state = write(&inner.state);
        inner
            .db
            .insert(ACTIVE_GENERATION, encode("active generation", &generation)?)?;
        inner.db.flush()?;
        *state = Arc::new(fresh);
        inner.revision.store(revision, Ordering::SeqCst);
        inner.compact_revision.store(compact_revision, Ordering::SeqCst);
    }
    // The sender's history may hold writes below its compaction revision it had not removed yet.
    *lock(&inner.purge) = PurgeCursor::towards(compact_revision);
    inner.purge_wake.raise();
    // Nobody reads the old trees any more: reads hold the state lock, apply and export are held off
    // by the locks taken above.
    drop_generation(&inner.db, old_generation)?;
    inner.hub.reset();
    Ok(())
}

fn drop_generation(db: &sled::Db, generation: u64) -> Result<(), MvccError> {
    for name in Trees::NAMES {
        db.drop_tree(Trees::tree_name(generation, name))?;
    }
    Ok(())
}

/// Batches for the trees being built, applied every [`INSTALL_BATCH`] writes.
struct Loader<'a> {
    trees: &'a Trees,
    history: Batch,
    index: Batch,
    kv: Batch,
    pending: usize,
}

impl Loader<'_> {
    fn flush(&mut self) -> Result<(), MvccError> {
        self.trees.history.apply_batch(std::mem::take(&mut self.history))?;
        self.trees.index.apply_batch(std::mem::take(&mut self.index))?;
        self.trees.kv.apply_batch(std::mem::take(&mut self.kv))?;
        self.pending = 0;
        Ok(())
    }
}

fn invalid(message: impl Into<String>) -> MvccError {
    MvccError::InvalidSnapshot(message.into())
}

/// Fill `trees` (empty) from the stream; the revision and compaction revision it holds.
fn load(trees: &Trees, reader: &mut impl Read) -> Result<(i64, i64), MvccError> {
    let SnapshotRecord::Header {
        revision,
        compact_revision,
        meta,
    } = read_record(reader)?
    else {
        return Err(invalid("the first record is not a header"));
    };
    if revision < 1 || compact_revision < 0 || compact_revision > revision {
        return Err(invalid(format!(
            "revision {revision} with compaction revision {compact_revision}"
        )));
    }
    trees
        .meta
        .insert(META_REVISION, encode("revision counter", &revision)?)?;
    trees
        .meta
        .insert(META_COMPACT_REVISION, encode("revision counter", &compact_revision)?)?;
    if let Some(meta) = meta {
        trees.meta.insert(META_RAFT, meta)?;
    }
    let mut loader = Loader {
        trees,
        history: Batch::default(),
        index: Batch::default(),
        kv: Batch::default(),
        pending: 0,
    };
    let mut leases = 0u64;
    let mut history = 0u64;
    let mut last_lease = None;
    let mut last_write = None;
    loop {
        match read_record(reader)? {
            SnapshotRecord::Header { .. } => return Err(invalid("a second header")),
            SnapshotRecord::Lease { id, ttl } => {
                if last_write.is_some() || last_lease.is_some_and(|last| last >= id) || id == 0 {
                    return Err(invalid(format!("lease {id} out of order")));
                }
                last_lease = Some(id);
                trees
                    .leases
                    .insert(lease_id_key(id), encode("lease record", &LeaseRecord { ttl })?)?;
                leases += 1;
            }
            SnapshotRecord::History {
                revision: written,
                sub_revision,
                record,
            } => {
                let position = (written, sub_revision);
                if written < 1
                    || written > revision
                    || sub_revision < 0
                    || last_write.is_some_and(|last| last >= position)
                {
                    return Err(invalid(format!("history record {written}.{sub_revision} out of order")));
                }
                last_write = Some(position);
                let entry = IndexEntry {
                    tombstone: record.kv.is_none(),
                };
                loader.index.insert(
                    index_key(&record.key, written, sub_revision),
                    encode("index entry", &entry)?,
                );
                match &record.kv {
                    Some(kv) => loader.kv.insert(record.key.as_slice(), encode("kv record", kv)?),
                    None => loader.kv.remove(record.key.as_slice()),
                }
                loader.history.insert(
                    &revision_key(written, sub_revision)[..],
                    encode("history record", &record)?,
                );
                loader.pending += 1;
                if loader.pending >= INSTALL_BATCH {
                    loader.flush()?;
                }
                history += 1;
            }
            SnapshotRecord::End {
                leases: expected_leases,
                history: expected_history,
            } => {
                if (expected_leases, expected_history) != (leases, history) {
                    return Err(invalid(format!(
                        "end record counts {expected_leases} leases and {expected_history} writes, stream held {leases} and {history}"
                    )));
                }
                break;
            }
        }
    }
    loader.flush()?;
    if reader.read(&mut [0u8; 1])? != 0 {
        return Err(invalid("data after the end record"));
    }
    // The attachments of keys to leases follow from the live keys.
    let mut attachments = Batch::default();
    for item in trees.kv.iter() {
        let (key, value) = item?;
        let record: KvRecord = decode("kv record", &value)?;
        if record.lease != 0 {
            attachments.insert(lease_key_entry(record.lease, &key), IVec::default());
        }
    }
    trees.lease_keys.apply_batch(attachments)?;
    Ok((revision, compact_revision))
}
