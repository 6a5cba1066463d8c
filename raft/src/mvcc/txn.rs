//! Transactions, as etcd 3.4 applies them: the compares of the transaction and of every nested
//! transaction on the chosen path are evaluated against the state before the transaction; the
//! chosen operations are then checked (leases exist, read revisions are available) and run in order,
//! each seeing the writes of the operations before it, all writes sharing one revision.

use std::collections::BTreeSet;

use kuboard_storage::keys::in_range;
use kuboard_storage::{
    Compare, CompareResult, CompareTarget, StoreError, TxnOp, TxnOpResponse, TxnRequest, TxnResponse,
};

use super::error::MvccError;
use super::range::Overlay;
use super::range::{latest_entries, validate_range};
use super::records::{decode, KvRecord};
use super::trees::{header, Trees};
use super::write::{validate_delete_range, validate_put, Commit, WriteTxn};
use crate::command::CommandResponse;

/// Most compares or operations in one branch (etcd's default `--max-txn-ops`).
pub(super) const MAX_TXN_OPS: usize = 128;
/// Deepest nesting of transactions accepted, so that validation and execution recurse boundedly.
pub(super) const MAX_TXN_DEPTH: usize = 16;

/// Whether a transaction can run on top of pending writes of its group: it reads the latest state
/// only (the `kv` tree and the overlay). A read at a given revision could name one whose writes are
/// still pending, which only the history and index trees could answer.
pub(super) fn reads_latest_only(request: &TxnRequest) -> bool {
    request.success.iter().chain(&request.failure).all(|op| match op {
        TxnOp::Range(range) => range.revision == 0,
        TxnOp::Txn(nested) => reads_latest_only(nested),
        TxnOp::Put(_) | TxnOp::DeleteRange(_) => true,
    })
}

/// Apply a transaction on top of the group's `pending` writes (which it extends). With pending
/// writes, the caller has checked [`reads_latest_only`].
pub(super) fn apply_txn(
    trees: &Trees,
    base_revision: i64,
    compact_revision: i64,
    request: &TxnRequest,
    commit: &mut Commit,
    pending: &mut Overlay,
) -> Result<CommandResponse, MvccError> {
    if let Err(error) = validate_txn(request, 0) {
        return Ok(CommandResponse::Error(error));
    }
    let mut path = Vec::new();
    choose_path(trees, pending, request, &mut path)?;
    if let Err(error) = check_path(
        trees,
        base_revision,
        compact_revision,
        request,
        &mut path.iter().copied(),
    )? {
        return Ok(CommandResponse::Error(error));
    }
    let mut txn = WriteTxn::on_pending(trees, base_revision, std::mem::take(pending));
    let response = execute(&mut txn, request, &mut path.into_iter())?;
    *pending = txn.into_commit(commit)?;
    Ok(CommandResponse::Txn(response))
}

/// Checks that need no state: sizes, keys, and etcd's rule that a branch never writes a key twice.
fn validate_txn(request: &TxnRequest, depth: usize) -> Result<(), StoreError> {
    if depth > MAX_TXN_DEPTH {
        return Err(StoreError::InvalidArgument(format!(
            "txn nested deeper than {MAX_TXN_DEPTH} levels"
        )));
    }
    if request.compare.len() > MAX_TXN_OPS || request.success.len() > MAX_TXN_OPS || request.failure.len() > MAX_TXN_OPS
    {
        return Err(StoreError::InvalidArgument(
            "too many operations in txn request".to_string(),
        ));
    }
    for op in request.success.iter().chain(&request.failure) {
        match op {
            TxnOp::Range(range) => validate_range(range)?,
            TxnOp::Put(put) => validate_put(put)?,
            TxnOp::DeleteRange(delete) => validate_delete_range(delete)?,
            TxnOp::Txn(nested) => validate_txn(nested, depth + 1)?,
        }
    }
    check_intervals(&request.success)?;
    check_intervals(&request.failure)?;
    Ok(())
}

fn duplicate_key() -> StoreError {
    StoreError::InvalidArgument("duplicate key given in txn request".to_string())
}

/// The keys a branch puts and the `(key, range_end)` ranges it deletes.
type Intervals = (BTreeSet<Vec<u8>>, Vec<(Vec<u8>, Vec<u8>)>);

/// etcd's `checkIntervals`: the keys put by `ops` (nested transactions included) and the ranges
/// they delete; an error if a key is put twice or put and deleted. The two branches of a nested
/// transaction exclude each other, so they may put the same key.
fn check_intervals(ops: &[TxnOp]) -> Result<Intervals, StoreError> {
    let mut deletes: Vec<(Vec<u8>, Vec<u8>)> = ops
        .iter()
        .filter_map(|op| match op {
            TxnOp::DeleteRange(delete) => Some((delete.key.clone(), delete.range_end.clone())),
            _ => None,
        })
        .collect();
    let deleted =
        |deletes: &[(Vec<u8>, Vec<u8>)], key: &[u8]| deletes.iter().any(|(start, end)| in_range(start, end, key));
    let mut puts = BTreeSet::new();
    for op in ops {
        let TxnOp::Txn(nested) = op else { continue };
        let (puts_then, deletes_then) = check_intervals(&nested.success)?;
        let (puts_else, deletes_else) = check_intervals(&nested.failure)?;
        for key in &puts_then {
            if puts.contains(key) || deleted(&deletes, key) {
                return Err(duplicate_key());
            }
            puts.insert(key.clone());
        }
        for key in puts_else {
            if (puts.contains(&key) && !puts_then.contains(&key)) || deleted(&deletes, &key) {
                return Err(duplicate_key());
            }
            puts.insert(key);
        }
        deletes.extend(deletes_then);
        deletes.extend(deletes_else);
    }
    for op in ops {
        let TxnOp::Put(put) = op else { continue };
        if puts.contains(&put.key) || deleted(&deletes, &put.key) {
            return Err(duplicate_key());
        }
        puts.insert(put.key.clone());
    }
    Ok((puts, deletes))
}

/// Evaluate the compares of `request` and of the nested transactions on its chosen branch, in
/// pre-order, against the state before the transaction.
fn choose_path(trees: &Trees, pending: &Overlay, request: &TxnRequest, path: &mut Vec<bool>) -> Result<(), MvccError> {
    let mut succeeded = true;
    for compare in &request.compare {
        if !compare_holds(trees, pending, compare)? {
            succeeded = false;
            break;
        }
    }
    path.push(succeeded);
    let ops = if succeeded { &request.success } else { &request.failure };
    for op in ops {
        if let TxnOp::Txn(nested) = op {
            choose_path(trees, pending, nested, path)?;
        }
    }
    Ok(())
}

fn compare_holds(trees: &Trees, pending: &Overlay, compare: &Compare) -> Result<bool, MvccError> {
    let records: Vec<KvRecord> = if compare.range_end.is_empty() {
        match pending.get(&compare.key) {
            Some(record) => record.iter().cloned().collect(),
            None => match trees.kv.get(&compare.key)? {
                Some(bytes) => vec![decode("kv record", &bytes)?],
                None => Vec::new(),
            },
        }
    } else {
        latest_entries(trees, pending, &compare.key, &compare.range_end)?
            .into_iter()
            .map(|(_, record)| record)
            .collect()
    };
    if records.is_empty() {
        // A missing key compares as zero version, revisions and lease; its value never compares.
        return Ok(!matches!(compare.target, CompareTarget::Value(_)) && compare_record(None, compare));
    }
    Ok(records.iter().all(|record| compare_record(Some(record), compare)))
}

fn compare_record(record: Option<&KvRecord>, compare: &Compare) -> bool {
    let ordering = match &compare.target {
        CompareTarget::Value(value) => record
            .map_or(&[][..], |record| record.value.as_slice())
            .cmp(value.as_slice()),
        CompareTarget::Version(version) => record.map_or(0, |record| record.version).cmp(version),
        CompareTarget::CreateRevision(revision) => record.map_or(0, |record| record.create_revision).cmp(revision),
        CompareTarget::ModRevision(revision) => record.map_or(0, |record| record.mod_revision).cmp(revision),
        CompareTarget::Lease(lease) => record.map_or(0, |record| record.lease).cmp(lease),
    };
    match compare.result {
        CompareResult::Equal => ordering.is_eq(),
        CompareResult::NotEqual => ordering.is_ne(),
        CompareResult::Greater => ordering.is_gt(),
        CompareResult::Less => ordering.is_lt(),
    }
}

/// etcd's `checkRequests` on the chosen path: puts name existing leases, reads name available
/// revisions (judged against the state before the transaction).
fn check_path(
    trees: &Trees,
    base_revision: i64,
    compact_revision: i64,
    request: &TxnRequest,
    path: &mut impl Iterator<Item = bool>,
) -> Result<Result<(), StoreError>, MvccError> {
    let succeeded = path
        .next()
        .ok_or_else(|| MvccError::Corrupt("txn path shorter than the txn".to_string()))?;
    let ops = if succeeded { &request.success } else { &request.failure };
    for op in ops {
        match op {
            TxnOp::Put(put) if put.lease != 0 && !trees.lease_exists(put.lease)? => {
                return Ok(Err(StoreError::LeaseNotFound(put.lease)));
            }
            TxnOp::Range(range) if range.revision > base_revision => {
                return Ok(Err(StoreError::FutureRevision {
                    requested: range.revision,
                    current: base_revision,
                }));
            }
            TxnOp::Range(range) if range.revision != 0 && range.revision < compact_revision => {
                return Ok(Err(StoreError::Compacted {
                    requested: range.revision,
                    compact_revision,
                }));
            }
            TxnOp::Txn(nested) => {
                if let Err(error) = check_path(trees, base_revision, compact_revision, nested, path)? {
                    return Ok(Err(error));
                }
            }
            _ => {}
        }
    }
    Ok(Ok(()))
}

fn execute(
    txn: &mut WriteTxn<'_>,
    request: &TxnRequest,
    path: &mut impl Iterator<Item = bool>,
) -> Result<TxnResponse, MvccError> {
    let succeeded = path
        .next()
        .ok_or_else(|| MvccError::Corrupt("txn path shorter than the txn".to_string()))?;
    let ops = if succeeded { &request.success } else { &request.failure };
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        responses.push(match op {
            TxnOp::Range(range) => TxnOpResponse::Range(txn.range(range)?),
            TxnOp::Put(put) => TxnOpResponse::Put(txn.put(put)?),
            TxnOp::DeleteRange(delete) => TxnOpResponse::DeleteRange(txn.delete_range(delete)?),
            TxnOp::Txn(nested) => TxnOpResponse::Txn(execute(txn, nested, path)?),
        });
    }
    Ok(TxnResponse {
        header: header(txn.current_revision()),
        succeeded,
        responses,
    })
}
