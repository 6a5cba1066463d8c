//! Confinement of every request to the store's key prefix.
//!
//! Callers speak relative keys. A key `k` is stored as `prefix + k`; a range end `e` becomes
//! `prefix + e`, except `[0]` ("every key from `key` on"), which becomes the end of the prefix so that
//! no request ever reaches a key outside it. Keys in responses lose the prefix again. The mapping
//! keeps order and overlaps, so etcd's own rules (duplicate keys in a txn, empty ranges) still apply.

use crate::error::StoreError;
use crate::keys::prefix_end;

#[derive(Debug, Clone)]
pub(crate) struct KeyPrefix {
    prefix: Vec<u8>,
    end: Vec<u8>,
}

impl KeyPrefix {
    pub(crate) fn new(prefix: &[u8]) -> KeyPrefix {
        KeyPrefix {
            prefix: prefix.to_vec(),
            end: prefix_end(prefix),
        }
    }

    /// The absolute key of a relative key.
    pub(crate) fn key(&self, key: &[u8]) -> Vec<u8> {
        let mut absolute = Vec::with_capacity(self.prefix.len() + key.len());
        absolute.extend_from_slice(&self.prefix);
        absolute.extend_from_slice(key);
        absolute
    }

    /// The absolute range end of a relative range end.
    pub(crate) fn range_end(&self, range_end: &[u8]) -> Vec<u8> {
        match range_end {
            [] => Vec::new(),
            [0] => self.end.clone(),
            end => self.key(end),
        }
    }

    /// The absolute `(key, range_end)` of a relative range, rejecting what etcd rejects: an empty
    /// key, unless the range is "every key" (`range_end == [0]`).
    pub(crate) fn range(&self, key: &[u8], range_end: &[u8]) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
        if key.is_empty() && range_end != [0] {
            return Err(StoreError::InvalidArgument("key is not provided".into()));
        }
        Ok((self.key(key), self.range_end(range_end)))
    }

    /// The relative key of an absolute key from a response; `None` for a key outside the prefix.
    pub(crate) fn strip(&self, key: &[u8]) -> Option<Vec<u8>> {
        key.strip_prefix(self.prefix.as_slice()).map(<[u8]>::to_vec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_range(key: &[u8], range_end: &[u8], expected: Option<(&[u8], &[u8])>) {
        let prefix = KeyPrefix::new(b"/kuboard/");
        let actual = prefix.range(key, range_end).ok();
        let expected = expected.map(|(key, end)| (key.to_vec(), end.to_vec()));
        assert_eq!(actual, expected, "key {key:?} range_end {range_end:?}");
    }

    #[test]
    fn ranges_stay_inside_the_prefix() {
        check_range(b"a", b"", Some((b"/kuboard/a", b"")));
        check_range(b"a", b"b", Some((b"/kuboard/a", b"/kuboard/b")));
        check_range(b"a", &[0], Some((b"/kuboard/a", b"/kuboard0")));
        check_range(b"", &[0], Some((b"/kuboard/", b"/kuboard0")));
        check_range(b"", b"", None);
        check_range(b"", b"b", None);
    }

    #[test]
    fn strip_keeps_only_keys_inside_the_prefix() {
        let prefix = KeyPrefix::new(b"/kuboard/");
        assert_eq!(prefix.strip(b"/kuboard/a/b"), Some(b"a/b".to_vec()));
        assert_eq!(prefix.strip(b"/kuboard/"), Some(Vec::new()));
        assert_eq!(prefix.strip(b"/other/a"), None);
    }
}
