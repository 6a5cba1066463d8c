//! Byte layouts of the keys of the state machine's trees.
//!
//! - history: `revision (8 bytes BE) ++ sub_revision (8 bytes BE)`, so that a range scan walks
//!   revisions in order.
//! - index: `escape(key) ++ [0, 0] ++ revision ++ sub_revision`. The escaping (`0x00` becomes
//!   `0x00 0xff`) keeps the order of user keys, and the `[0, 0]` terminator sorts every revision of
//!   one key before any longer key, so "the newest revision of `key` at or below R" is one reverse
//!   seek and "the next key" is one forward seek.
//! - leases: the id with its sign bit flipped (8 bytes BE), so that ids sort as signed integers.
//! - lease_keys: `lease id ++ key`, so that a lease's keys are one prefix scan.

use std::ops::Bound;

use super::error::MvccError;

/// Length of a history key.
pub(super) const REVISION_KEY_LEN: usize = 16;

/// The history key of one write.
pub(super) fn revision_key(revision: i64, sub_revision: i64) -> [u8; REVISION_KEY_LEN] {
    let mut out = [0u8; REVISION_KEY_LEN];
    out[..8].copy_from_slice(&(revision as u64).to_be_bytes());
    out[8..].copy_from_slice(&(sub_revision as u64).to_be_bytes());
    out
}

/// The `(revision, sub_revision)` of a history key, or of the last 16 bytes of an index key.
pub(super) fn parse_revision_key(bytes: &[u8]) -> Result<(i64, i64), MvccError> {
    if bytes.len() != REVISION_KEY_LEN {
        return Err(MvccError::Corrupt(format!("revision key of {} bytes", bytes.len())));
    }
    let mut revision = [0u8; 8];
    let mut sub_revision = [0u8; 8];
    revision.copy_from_slice(&bytes[..8]);
    sub_revision.copy_from_slice(&bytes[8..]);
    let revision = u64::from_be_bytes(revision);
    let sub_revision = u64::from_be_bytes(sub_revision);
    if revision > i64::MAX as u64 || sub_revision > i64::MAX as u64 {
        return Err(MvccError::Corrupt("revision key out of range".to_string()));
    }
    Ok((revision as i64, sub_revision as i64))
}

/// `key` with every `0x00` byte written as `0x00 0xff` (order-preserving, prefix-free with the
/// `[0, 0]` terminator).
pub(super) fn escape(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 2 + REVISION_KEY_LEN);
    for &byte in key {
        out.push(byte);
        if byte == 0 {
            out.push(0xff);
        }
    }
    out
}

/// The common prefix of every index entry of `key`.
pub(super) fn index_prefix(key: &[u8]) -> Vec<u8> {
    let mut out = escape(key);
    out.extend_from_slice(&[0, 0]);
    out
}

/// The index entry of `key` written at `(revision, sub_revision)`.
pub(super) fn index_key(key: &[u8], revision: i64, sub_revision: i64) -> Vec<u8> {
    let mut out = index_prefix(key);
    out.extend_from_slice(&revision_key(revision, sub_revision));
    out
}

/// The smallest index key above every entry of `key` and below the entries of any greater key.
pub(super) fn index_key_successor(key: &[u8]) -> Vec<u8> {
    let mut out = escape(key);
    out.extend_from_slice(&[0, 1]);
    out
}

/// Split an index key into the user key and its `(revision, sub_revision)`.
pub(super) fn split_index_key(bytes: &[u8]) -> Result<(Vec<u8>, i64, i64), MvccError> {
    let corrupt = || MvccError::Corrupt("malformed index key".to_string());
    if bytes.len() < 2 + REVISION_KEY_LEN {
        return Err(corrupt());
    }
    let (escaped, revision) = bytes.split_at(bytes.len() - REVISION_KEY_LEN);
    let (revision, sub_revision) = parse_revision_key(revision)?;
    let mut key = Vec::with_capacity(escaped.len());
    let mut position = 0;
    loop {
        match escaped.get(position) {
            None => return Err(corrupt()),
            Some(0) => match escaped.get(position + 1) {
                Some(0xff) => {
                    key.push(0);
                    position += 2;
                }
                Some(0) if position + 2 == escaped.len() => return Ok((key, revision, sub_revision)),
                _ => return Err(corrupt()),
            },
            Some(&byte) => {
                key.push(byte);
                position += 1;
            }
        }
    }
}

/// Bounds of the index entries of the keys in `[key, range_end)` (etcd's conventions), or `None`
/// when the range is empty.
pub(super) fn index_bounds(key: &[u8], range_end: &[u8]) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    if range_end.is_empty() {
        return Some((index_prefix(key), Some(index_key_successor(key))));
    }
    if range_end == [0] {
        return Some((escape(key), None));
    }
    if range_end <= key {
        return None;
    }
    Some((escape(key), Some(escape(range_end))))
}

/// The bounds of a range scan over raw user keys.
pub(super) type KeyBounds = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// Bounds of a sled range over raw user keys in `[key, range_end)`, or `None` when empty.
pub(super) fn key_bounds(key: &[u8], range_end: &[u8]) -> Option<KeyBounds> {
    if range_end.is_empty() {
        return Some((Bound::Included(key.to_vec()), Bound::Included(key.to_vec())));
    }
    if range_end == [0] {
        return Some((Bound::Included(key.to_vec()), Bound::Unbounded));
    }
    if range_end <= key {
        return None;
    }
    Some((Bound::Included(key.to_vec()), Bound::Excluded(range_end.to_vec())))
}

/// The key of a lease record: the id with its sign bit flipped, so that ids sort as integers.
pub(super) fn lease_id_key(id: i64) -> [u8; 8] {
    ((id as u64) ^ (1 << 63)).to_be_bytes()
}

/// The lease id of a lease record key (or of the first 8 bytes of a lease_keys key).
pub(super) fn parse_lease_id_key(bytes: &[u8]) -> Result<i64, MvccError> {
    let head: [u8; 8] = bytes
        .get(..8)
        .and_then(|head| head.try_into().ok())
        .ok_or_else(|| MvccError::Corrupt("lease key shorter than 8 bytes".to_string()))?;
    Ok((u64::from_be_bytes(head) ^ (1 << 63)) as i64)
}

/// The entry recording that `key` is attached to lease `id`.
pub(super) fn lease_key_entry(id: i64, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + key.len());
    out.extend_from_slice(&lease_id_key(id));
    out.extend_from_slice(key);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn index_key_round_trip_with_zero_bytes() {
        for key in [&b""[..], b"a", b"a\0", b"\0\0", b"\0\xff", b"a\0b"] {
            let encoded = index_key(key, 7, 3);
            assert_eq!(
                split_index_key(&encoded).expect("valid index key"),
                (key.to_vec(), 7, 3)
            );
        }
    }

    #[test]
    fn lease_ids_sort_as_integers() {
        let ids = [i64::MIN, -5, -1, 1, 2, 1 << 40, i64::MAX];
        for pair in ids.windows(2) {
            assert!(lease_id_key(pair[0]) < lease_id_key(pair[1]));
        }
        for id in ids {
            assert_eq!(parse_lease_id_key(&lease_id_key(id)).expect("8 bytes"), id);
        }
    }

    proptest! {
        #[test]
        fn index_keys_sort_like_user_keys(
            a in proptest::collection::vec(0u8..4, 0..6),
            b in proptest::collection::vec(0u8..4, 0..6),
            ra in 1i64..1000, rb in 1i64..1000,
        ) {
            let ordering = (a.as_slice(), ra).cmp(&(b.as_slice(), rb));
            prop_assert_eq!(index_key(&a, ra, 0).cmp(&index_key(&b, rb, 0)), ordering);
            // Every entry of a key lies below its successor and below any greater key's entries.
            prop_assert!(index_key(&a, ra, 0) < index_key_successor(&a));
            if a < b {
                prop_assert!(index_key_successor(&a) <= index_key(&b, rb, 0));
                prop_assert!(index_key(&a, ra, 0) < escape(&b));
            }
        }

        #[test]
        fn key_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = split_index_key(&bytes);
            let _ = parse_revision_key(&bytes);
            let _ = parse_lease_id_key(&bytes);
        }
    }
}
