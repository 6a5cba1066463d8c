//! Leases as the state machine sees them: granted ttl and attached keys. Deadlines and expiry are
//! the raft layer's business (it proposes `LeaseRevoke` for expired leases), so `apply` never reads
//! a clock.

use kuboard_storage::{LeaseGrantResponse, LeaseRevokeResponse, StoreError};
use sled::IVec;

use super::error::MvccError;
use super::keys::{lease_id_key, parse_lease_id_key};
use super::records::{decode, encode, LeaseRecord};
use super::trees::{header, LeaseDetails, TreeId, Trees};
use super::write::{Commit, WriteTxn};
use crate::command::CommandResponse;

/// Largest ttl a lease may be granted with, in seconds (etcd's `MaxLeaseTTL`).
pub(super) const MAX_LEASE_TTL: i64 = 9_000_000_000;

pub(super) fn apply_grant(
    trees: &Trees,
    base_revision: i64,
    id: i64,
    ttl: i64,
    commit: &mut Commit,
) -> Result<CommandResponse, MvccError> {
    if id == 0 {
        return Ok(CommandResponse::Error(StoreError::InvalidArgument(
            "lease id 0 means no lease".to_string(),
        )));
    }
    if !(1..=MAX_LEASE_TTL).contains(&ttl) {
        return Ok(CommandResponse::Error(StoreError::InvalidArgument(format!(
            "lease ttl {ttl} is outside 1..={MAX_LEASE_TTL} seconds"
        ))));
    }
    if trees.lease_exists(id)? {
        return Ok(CommandResponse::Error(StoreError::LeaseExists(id)));
    }
    commit.insert(
        TreeId::Leases,
        &lease_id_key(id)[..],
        encode("lease record", &LeaseRecord { ttl })?,
    );
    Ok(CommandResponse::LeaseGrant(LeaseGrantResponse {
        header: header(base_revision),
        id,
        ttl,
    }))
}

/// The keys attached to lease `id`, ascending.
fn attached_keys(trees: &Trees, id: i64) -> Result<Vec<(IVec, Vec<u8>)>, MvccError> {
    let mut keys = Vec::new();
    for item in trees.lease_keys.scan_prefix(lease_id_key(id)) {
        let (entry, _) = item?;
        let key = entry.get(8..).map(<[u8]>::to_vec).unwrap_or_default();
        keys.push((entry, key));
    }
    Ok(keys)
}

/// Delete the lease and every key attached to it, all deletions in one revision.
pub(super) fn apply_revoke(
    trees: &Trees,
    base_revision: i64,
    id: i64,
    commit: &mut Commit,
) -> Result<CommandResponse, MvccError> {
    if !trees.lease_exists(id)? {
        return Ok(CommandResponse::Error(StoreError::LeaseNotFound(id)));
    }
    let mut txn = WriteTxn::new(trees, base_revision);
    for (entry, key) in attached_keys(trees, id)? {
        match txn.get(&key)? {
            Some(record) if record.lease == id => txn.delete_existing(key, record),
            // An attachment without its key cannot arise from apply; drop it rather than delete a
            // key that belongs to someone else.
            _ => commit.remove(TreeId::LeaseKeys, entry),
        }
    }
    commit.remove(TreeId::Leases, &lease_id_key(id)[..]);
    let revision = txn.current_revision();
    txn.into_commit(commit)?;
    Ok(CommandResponse::LeaseRevoke(LeaseRevokeResponse {
        header: header(revision),
    }))
}

pub(super) fn list(trees: &Trees) -> Result<Vec<(i64, i64)>, MvccError> {
    let mut leases = Vec::new();
    for item in trees.leases.iter() {
        let (key, value) = item?;
        let record: LeaseRecord = decode("lease record", &value)?;
        leases.push((parse_lease_id_key(&key)?, record.ttl));
    }
    Ok(leases)
}

pub(super) fn get(trees: &Trees, id: i64) -> Result<Option<LeaseDetails>, MvccError> {
    let Some(value) = trees.leases.get(lease_id_key(id))? else {
        return Ok(None);
    };
    let record: LeaseRecord = decode("lease record", &value)?;
    let keys = attached_keys(trees, id)?.into_iter().map(|(_, key)| key).collect();
    Ok(Some((record.ttl, keys)))
}
