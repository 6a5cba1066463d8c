//! Compaction: physically drop the history that no read at or above the compaction revision can
//! see.
//!
//! For each key the version visible at the compaction revision `C` stays (unless it is a
//! deletion), and so does every write at `C` itself (a deletion at exactly `C` stays too, so that a
//! watch starting at `C` still sees it; reads at `C` treat it as absent anyway). Everything older
//! goes.
//!
//! The `Compact` command itself only records the new compaction revision (reads and watches below
//! it are refused from then on); the removal follows in the background, in batches of at most
//! [`PURGE_BATCH`] history entries, each removed from the index, then from the history.
//! A batch takes no lock that applies take, so however long the history, no apply waits for more
//! than one batch's commit. What a batch removes is settled for good: a write below `C` that is not
//! visible at `C` is not visible at any later revision either, so later writes cannot change the
//! decision, and no read or watch at or above `C` ever looks at it. Exports, which stream the
//! history, hold the history lock shared; a batch holds it exclusively, so an export sees a
//! history that is either before or after each batch, never one with half a key's versions gone.

use kuboard_storage::StoreError;
use sled::Batch;

use super::error::MvccError;
use super::keys::{index_key, parse_revision_key, revision_key, REVISION_KEY_LEN};
use super::range::visible_at;
use super::records::{decode, HistoryRecord};
use super::trees::Trees;
use super::write::Commit;

/// History entries examined by one purge batch: 256 held writes for up to 840 ms in a debug build
/// on a loaded machine, 64 for about 400 ms (t90).
pub(super) const PURGE_BATCH: usize = 64;

/// Where the physical removal below the compaction revision stands.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct PurgeCursor {
    /// The compaction revision the removal works towards.
    pub target: i64,
    /// The history key to resume from; `None` when everything below `target` is done.
    pub resume: Option<[u8; REVISION_KEY_LEN]>,
}

impl PurgeCursor {
    /// The removal of everything below `target` still to do, from the start of the history (what
    /// earlier batches kept for an older target may go now).
    pub fn towards(target: i64) -> PurgeCursor {
        PurgeCursor {
            target,
            resume: (target > 0).then(|| revision_key(0, 0)),
        }
    }
}

/// Record a compaction at `revision`, or say why not (already compacted there, or a future
/// revision).
pub(super) fn compact(
    current_revision: i64,
    compact_revision: i64,
    revision: i64,
    commit: &mut Commit,
) -> Result<(), StoreError> {
    if revision <= compact_revision {
        return Err(StoreError::Compacted {
            requested: revision,
            compact_revision,
        });
    }
    if revision > current_revision {
        return Err(StoreError::FutureRevision {
            requested: revision,
            current: current_revision,
        });
    }
    commit.new_compact_revision = Some(revision);
    Ok(())
}

/// Remove the writes below `cursor.target` that are not visible at it, among at most `limit`
/// history entries from `cursor.resume`. Returns the cursor to continue from. The caller holds the
/// history lock exclusively.
pub(super) fn purge_batch(trees: &Trees, cursor: PurgeCursor, limit: usize) -> Result<PurgeCursor, MvccError> {
    let Some(from) = cursor.resume else {
        return Ok(cursor);
    };
    let mut history = Batch::default();
    let mut index = Batch::default();
    let mut removed = 0usize;
    let mut examined = 0usize;
    let mut last = None;
    for item in trees.history.range(from..revision_key(cursor.target, 0)) {
        if examined >= limit {
            break;
        }
        let (history_key, value) = item?;
        examined += 1;
        let (written, sub_revision) = parse_revision_key(&history_key)?;
        last = Some((written, sub_revision));
        let record: HistoryRecord = decode("history record", &value)?;
        let visible = visible_at(&trees.index, &record.key, cursor.target)?;
        let keep = record.kv.is_some() && visible == Some((written, sub_revision, false));
        if !keep {
            history.remove(history_key);
            index.remove(index_key(&record.key, written, sub_revision));
            removed += 1;
        }
    }
    // Index first: an interruption between the two leaves history entries without their index
    // entries, which the next pass removes (they are not visible at the target without them);
    // neither tree is read below the compaction revision meanwhile. Two plain batches, not one
    // transaction: sled runs transactions one at a time, and a commit of an apply would wait.
    if removed > 0 {
        trees.index.apply_batch(index)?;
        trees.history.apply_batch(history)?;
    }
    let resume = match last {
        Some((written, sub_revision)) if examined >= limit => Some(match sub_revision.checked_add(1) {
            Some(next) => revision_key(written, next),
            None => revision_key(written.saturating_add(1), 0),
        }),
        _ => None,
    };
    Ok(PurgeCursor {
        target: cursor.target,
        resume,
    })
}
