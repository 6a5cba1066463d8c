//! Compaction: physically drop the history that no read at or above the compaction revision can
//! see.
//!
//! For each key the version visible at the compaction revision `C` stays (unless it is a
//! deletion), and so does every write at `C` itself (a deletion at exactly `C` stays too, so that a
//! watch starting at `C` still sees it; reads at `C` treat it as absent anyway). Everything older
//! goes, in the same transaction as the new compaction revision.

use kuboard_storage::StoreError;

use super::error::MvccError;
use super::keys::{index_key, parse_revision_key, revision_key};
use super::range::visible_at;
use super::records::{decode, HistoryRecord};
use super::trees::{TreeId, Trees};
use super::write::Commit;

/// Compact at `revision`, or say why not (already compacted there, or a future revision).
pub(super) fn compact(
    trees: &Trees,
    current_revision: i64,
    compact_revision: i64,
    revision: i64,
    commit: &mut Commit,
) -> Result<Result<(), StoreError>, MvccError> {
    if revision <= compact_revision {
        return Ok(Err(StoreError::Compacted {
            requested: revision,
            compact_revision,
        }));
    }
    if revision > current_revision {
        return Ok(Err(StoreError::FutureRevision {
            requested: revision,
            current: current_revision,
        }));
    }
    for item in trees.history.range(..revision_key(revision, 0)) {
        let (history_key, value) = item?;
        let (written, sub_revision) = parse_revision_key(&history_key)?;
        let record: HistoryRecord = decode("history record", &value)?;
        let visible = visible_at(&trees.index, &record.key, revision)?;
        let keep = record.kv.is_some() && visible == Some((written, sub_revision, false));
        if !keep {
            commit.remove(TreeId::History, history_key);
            commit.remove(TreeId::Index, index_key(&record.key, written, sub_revision));
        }
    }
    commit.new_compact_revision = Some(revision);
    Ok(Ok(()))
}
