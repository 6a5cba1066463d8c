//! Taking a snapshot of a store and restoring one into an empty store, over the `Store` contract
//! only, so that both backends (and the HTTP endpoint of a running replica) share one meaning.
//!
//! - **Consistent**: every key is read at one revision (the first page's); later pages ask for
//!   that revision explicitly, so concurrent writes never mix in.
//! - **Restore only into an empty store**: checked first, and every write is a create-only
//!   transaction (each key's version must still be 0), so a restore never overwrites a key even if
//!   someone writes to the target while it runs.
//! - **Leases are not carried over**: keys attached to a lease (login sessions) are left out of a
//!   restore, as the lease cannot be recreated with its remaining time; users and settings are
//!   kept. Revisions are the target store's own: they do not continue from the snapshot's.

use kuboard_storage::*;
use thiserror::Error;

use super::snapshot_file::{Snapshot, SnapshotHeader};

/// Keys per range page while reading.
const READ_PAGE: i64 = 500;
/// Keys per restore transaction (etcd allows 128 operations per transaction by default).
const RESTORE_BATCH_KEYS: usize = 64;
/// Bytes of keys and values per restore transaction, well under the 1.5 MiB request limit.
const RESTORE_BATCH_BYTES: usize = 512 * 1024;
/// A bound on the pages of one snapshot (500 million keys), so the loop always ends.
const MAX_PAGES: usize = 1_000_000;

#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error(
        "the target store is not empty: it holds {count} keys; a snapshot is restored only into an empty store \
         (nothing was changed)"
    )]
    NotEmpty { count: i64 },
    #[error(
        "key {key} appeared in the target store while the restore ran ({restored} keys were restored before it); \
         another writer is using the store: stop it, empty the store and restore again"
    )]
    Conflict { key: String, restored: usize },
    #[error("the store compacted revision {revision} while the snapshot was read; take it again")]
    CompactedWhileReading { revision: i64 },
    #[error("the store answered a page with more=true but no keys; the snapshot is stopped")]
    NoProgress,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a restore did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreReport {
    pub restored: usize,
    /// Keys attached to a lease in the snapshot (sessions), not restored.
    pub skipped_leased: usize,
    /// The target store's revision after the restore.
    pub revision: i64,
}

/// Reads every key the store exposes (for etcd: every key under the prefix) at one revision.
pub async fn take_snapshot<S: Store>(
    store: &S,
    backend: BackendKind,
    source: &str,
    now_unix: u64,
) -> Result<Snapshot, SnapshotError> {
    let mut entries: Vec<KeyValue> = Vec::new();
    let mut revision = 0;
    let mut next_key: Vec<u8> = Vec::new();
    for _ in 0..MAX_PAGES {
        let request = RangeRequest {
            key: next_key.clone(),
            range_end: vec![0],
            limit: READ_PAGE,
            revision,
            ..Default::default()
        };
        let response = match store.range(request).await {
            Ok(response) => response,
            Err(StoreError::Compacted { .. }) => return Err(SnapshotError::CompactedWhileReading { revision }),
            Err(error) => return Err(error.into()),
        };
        if revision == 0 {
            revision = response.header.revision;
        }
        let more = response.more;
        let Some(last) = response.kvs.last() else {
            if more {
                return Err(SnapshotError::NoProgress);
            }
            break;
        };
        next_key = last.key.clone();
        next_key.push(0);
        entries.extend(response.kvs);
        if !more {
            break;
        }
    }
    Ok(Snapshot {
        header: SnapshotHeader {
            backend: backend.as_str().to_string(),
            source: source.to_string(),
            revision,
            created_at: now_unix,
            key_count: entries.len() as u64,
            kuboard_version: crate::version::VERSION.to_string(),
        },
        entries,
    })
}

/// The number of keys the store exposes now.
pub async fn count_keys<S: Store>(store: &S) -> Result<i64, StoreError> {
    let response = store
        .range(RangeRequest {
            key: Vec::new(),
            range_end: vec![0],
            count_only: true,
            ..Default::default()
        })
        .await?;
    Ok(response.count)
}

/// Writes the snapshot's keys into an empty store. Refuses a non-empty store without writing.
pub async fn restore_snapshot<S: Store>(store: &S, snapshot: &Snapshot) -> Result<RestoreReport, SnapshotError> {
    let count = count_keys(store).await?;
    if count > 0 {
        return Err(SnapshotError::NotEmpty { count });
    }
    let (leased, kept): (Vec<&KeyValue>, Vec<&KeyValue>) = snapshot.entries.iter().partition(|kv| kv.lease != 0);
    let mut restored = 0usize;
    let mut revision = 0;
    let mut batch: Vec<&KeyValue> = Vec::new();
    let mut batch_bytes = 0usize;
    for kv in kept {
        let size = kv.key.len() + kv.value.len();
        if !batch.is_empty() && (batch.len() >= RESTORE_BATCH_KEYS || batch_bytes + size > RESTORE_BATCH_BYTES) {
            revision = write_batch(store, &batch, restored).await?;
            restored += batch.len();
            batch.clear();
            batch_bytes = 0;
        }
        batch.push(kv);
        batch_bytes += size;
    }
    if !batch.is_empty() {
        revision = write_batch(store, &batch, restored).await?;
        restored += batch.len();
    }
    Ok(RestoreReport {
        restored,
        skipped_leased: leased.len(),
        revision,
    })
}

/// One create-only transaction: every key must still be absent, else nothing of the batch is written.
async fn write_batch<S: Store>(store: &S, batch: &[&KeyValue], restored: usize) -> Result<i64, SnapshotError> {
    let request = TxnRequest {
        compare: batch
            .iter()
            .map(|kv| Compare::new(kv.key.clone(), CompareResult::Equal, CompareTarget::Version(0)))
            .collect(),
        success: batch
            .iter()
            .map(|kv| TxnOp::Put(PutRequest::new(kv.key.clone(), kv.value.clone())))
            .collect(),
        failure: Vec::new(),
    };
    let response = store.txn(request).await?;
    if !response.succeeded {
        // Name one key that exists now, for the operator.
        let mut existing = String::from("(unknown)");
        for kv in batch {
            if let Ok(found) = store.range(RangeRequest::key(kv.key.clone())).await {
                if !found.kvs.is_empty() {
                    existing = String::from_utf8_lossy(&kv.key).into_owned();
                    break;
                }
            }
        }
        return Err(SnapshotError::Conflict {
            key: existing,
            restored,
        });
    }
    Ok(response.header.revision)
}
