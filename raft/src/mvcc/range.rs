//! Reads: of the latest state (the `kv` tree, one range scan) and of an older revision (the index,
//! one seek per key, then the history).

use std::collections::BTreeMap;

use kuboard_storage::{KeyValue, RangeRequest, SortOrder, StoreError};
use sled::IVec;

use super::error::MvccError;
use super::keys::{index_bounds, index_key, index_key_successor, key_bounds, parse_revision_key, revision_key};
use super::keys::{split_index_key, REVISION_KEY_LEN};
use super::records::{decode, HistoryRecord, IndexEntry, KvRecord};
use super::trees::Trees;

/// Writes of a command not yet committed, which later reads of the same txn see (`None`: deleted).
pub(super) type Overlay = BTreeMap<Vec<u8>, Option<KvRecord>>;

/// The result of a range before the header is attached.
#[derive(Debug, Default)]
pub(super) struct RangeResult {
    pub kvs: Vec<KeyValue>,
    pub count: i64,
    pub more: bool,
}

pub(super) fn validate_range(request: &RangeRequest) -> Result<(), StoreError> {
    if request.key.is_empty() && request.range_end.is_empty() {
        return Err(StoreError::InvalidArgument("key is not provided".to_string()));
    }
    if request.limit < 0 {
        return Err(StoreError::InvalidArgument("limit must not be negative".to_string()));
    }
    if request.revision < 0 {
        return Err(StoreError::InvalidArgument("revision must not be negative".to_string()));
    }
    Ok(())
}

fn limit_of(request: &RangeRequest) -> usize {
    if request.limit > 0 {
        usize::try_from(request.limit).unwrap_or(usize::MAX)
    } else {
        usize::MAX
    }
}

/// etcd's `more`: the limit cut keys off (never with `count_only`).
fn more_of(request: &RangeRequest, count: i64) -> bool {
    !request.count_only && request.limit > 0 && count > request.limit
}

/// The latest versions of the keys in `[key, range_end)` with the overlay's pending writes applied,
/// ascending by key.
pub(super) fn latest_entries(
    trees: &Trees,
    overlay: &Overlay,
    key: &[u8],
    range_end: &[u8],
) -> Result<Vec<(Vec<u8>, KvRecord)>, MvccError> {
    let Some(bounds) = key_bounds(key, range_end) else {
        return Ok(Vec::new());
    };
    let mut merged = std::collections::BTreeMap::new();
    for item in trees.kv.range(bounds.clone()) {
        let (key, value) = item?;
        merged.insert(key.to_vec(), decode::<KvRecord>("kv record", &value)?);
    }
    for (key, pending) in overlay.range(bounds) {
        match pending {
            Some(record) => merged.insert(key.clone(), record.clone()),
            None => merged.remove(key),
        };
    }
    Ok(merged.into_iter().collect())
}

/// A range over the latest state, seeing `overlay` (the pending writes of a transaction) if given.
pub(super) fn range_latest(
    trees: &Trees,
    overlay: Option<&Overlay>,
    request: &RangeRequest,
) -> Result<RangeResult, MvccError> {
    let Some(bounds) = key_bounds(&request.key, &request.range_end) else {
        return Ok(RangeResult::default());
    };
    if let Some(overlay) = overlay.filter(|overlay| overlay.range(bounds.clone()).next().is_some()) {
        let mut entries = latest_entries(trees, overlay, &request.key, &request.range_end)?;
        if request.sort_order == SortOrder::Descend {
            entries.reverse();
        }
        let count = entries.len() as i64;
        let kvs = if request.count_only {
            Vec::new()
        } else {
            entries
                .iter()
                .take(limit_of(request))
                .map(|(key, record)| record.to_key_value(key, request.keys_only))
                .collect()
        };
        return Ok(RangeResult {
            kvs,
            count,
            more: more_of(request, count),
        });
    }
    let mut result = RangeResult::default();
    let take = |key: &[u8], value: &IVec, result: &mut RangeResult| -> Result<(), MvccError> {
        result.count += 1;
        if !request.count_only && result.kvs.len() < limit_of(request) {
            let record: KvRecord = decode("kv record", value)?;
            result.kvs.push(record.to_key_value(key, request.keys_only));
        }
        Ok(())
    };
    if request.range_end.is_empty() {
        if let Some(value) = trees.kv.get(&request.key)? {
            take(&request.key, &value, &mut result)?;
        }
    } else {
        let iter = trees.kv.range(bounds);
        let iter: Box<dyn Iterator<Item = sled::Result<(IVec, IVec)>>> = match request.sort_order {
            SortOrder::Ascend => Box::new(iter),
            SortOrder::Descend => Box::new(iter.rev()),
        };
        for item in iter {
            let (key, value) = item?;
            take(&key, &value, &mut result)?;
        }
    }
    result.more = more_of(request, result.count);
    Ok(result)
}

/// The newest index entry of `key` at or below `revision`: `(revision, sub_revision, tombstone)`.
pub(super) fn visible_at(index: &sled::Tree, key: &[u8], revision: i64) -> Result<Option<(i64, i64, bool)>, MvccError> {
    let low = index_key(key, 0, 0);
    let high = index_key(key, revision, i64::MAX);
    last_entry(index.range(low..=high).next_back())
}

/// The index entry of `key` just before `(revision, sub_revision)`.
pub(super) fn previous_entry(
    index: &sled::Tree,
    key: &[u8],
    revision: i64,
    sub_revision: i64,
) -> Result<Option<(i64, i64, bool)>, MvccError> {
    let low = index_key(key, 0, 0);
    let high = index_key(key, revision, sub_revision);
    last_entry(index.range(low..high).next_back())
}

fn last_entry(item: Option<sled::Result<(IVec, IVec)>>) -> Result<Option<(i64, i64, bool)>, MvccError> {
    let Some(item) = item else {
        return Ok(None);
    };
    let (key, value) = item?;
    let revision_part = key
        .len()
        .checked_sub(REVISION_KEY_LEN)
        .map(|start| &key[start..])
        .ok_or_else(|| MvccError::Corrupt("index key too short".to_string()))?;
    let (revision, sub_revision) = parse_revision_key(revision_part)?;
    let entry: IndexEntry = decode("index entry", &value)?;
    Ok(Some((revision, sub_revision, entry.tombstone)))
}

/// The put stored in the history at `(revision, sub_revision)`.
pub(super) fn history_put(trees: &Trees, revision: i64, sub_revision: i64) -> Result<KvRecord, MvccError> {
    let bytes = trees
        .history
        .get(revision_key(revision, sub_revision))?
        .ok_or_else(|| {
            MvccError::Corrupt(format!(
                "index names revision {revision}.{sub_revision}, history lacks it"
            ))
        })?;
    let record: HistoryRecord = decode("history record", &bytes)?;
    record.kv.ok_or_else(|| {
        MvccError::Corrupt(format!(
            "index names a put at {revision}.{sub_revision}, history has a deletion"
        ))
    })
}

/// A range as of an older `revision` (validated by the caller against the compaction point).
pub(super) fn range_at(trees: &Trees, revision: i64, request: &RangeRequest) -> Result<RangeResult, MvccError> {
    let Some((lower, upper)) = index_bounds(&request.key, &request.range_end) else {
        return Ok(RangeResult::default());
    };
    let mut visible = Vec::new();
    if request.range_end.is_empty() {
        if let Some((found, sub_revision, false)) = visible_at(&trees.index, &request.key, revision)? {
            visible.push((request.key.clone(), found, sub_revision));
        }
    } else {
        // One forward seek finds the next key, one reverse seek its version at `revision`: the
        // loop runs once per distinct key in the range, however long each key's history is.
        let mut cursor = lower;
        loop {
            let next = match &upper {
                Some(upper) if cursor >= *upper => break,
                Some(upper) => trees.index.range(cursor.as_slice()..upper.as_slice()).next(),
                None => trees.index.range(cursor.as_slice()..).next(),
            };
            let Some(item) = next else { break };
            let (index_entry_key, _) = item?;
            let (key, _, _) = split_index_key(&index_entry_key)?;
            if let Some((found, sub_revision, false)) = visible_at(&trees.index, &key, revision)? {
                visible.push((key.clone(), found, sub_revision));
            }
            cursor = index_key_successor(&key);
        }
    }
    if request.sort_order == SortOrder::Descend {
        visible.reverse();
    }
    let count = visible.len() as i64;
    let mut kvs = Vec::new();
    if !request.count_only {
        for (key, found, sub_revision) in visible.iter().take(limit_of(request)) {
            kvs.push(history_put(trees, *found, *sub_revision)?.to_key_value(key, request.keys_only));
        }
    }
    Ok(RangeResult {
        kvs,
        count,
        more: more_of(request, count),
    })
}
