//! The records the state machine persists in sled, each encoded with [`crate::codec`].

use kuboard_storage::KeyValue;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::MvccError;
use crate::codec;

/// One live version of a key: the value of the `kv` tree (latest state) and the payload of a put
/// in the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct KvRecord {
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
}

impl KvRecord {
    pub fn to_key_value(&self, key: &[u8], keys_only: bool) -> KeyValue {
        KeyValue {
            key: key.to_vec(),
            value: if keys_only { Vec::new() } else { self.value.clone() },
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            lease: self.lease,
        }
    }
}

/// One write of the history: a put (`kv` is `Some`) or a deletion (a tombstone, `kv` is `None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct HistoryRecord {
    pub key: Vec<u8>,
    pub kv: Option<KvRecord>,
}

/// The value of an index entry: whether that revision of the key is a deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct IndexEntry {
    pub tombstone: bool,
}

/// The value of a lease record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct LeaseRecord {
    /// Granted time to live in seconds.
    pub ttl: i64,
}

/// The records of a snapshot stream, in this order: one `Header`, the `Lease`s ascending by id,
/// the `History` ascending by revision, one `End`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum SnapshotRecord {
    Header {
        revision: i64,
        compact_revision: i64,
        meta: Option<Vec<u8>>,
    },
    Lease {
        id: i64,
        ttl: i64,
    },
    History {
        revision: i64,
        sub_revision: i64,
        record: HistoryRecord,
    },
    End {
        leases: u64,
        history: u64,
    },
}

pub(super) fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, MvccError> {
    codec::encode(value).map_err(|source| MvccError::Codec { what, source })
}

pub(super) fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, MvccError> {
    codec::decode(bytes).map_err(|source| MvccError::Codec { what, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn records_round_trip() {
        let record = HistoryRecord {
            key: b"k".to_vec(),
            kv: Some(KvRecord {
                value: b"v".to_vec(),
                create_revision: 2,
                mod_revision: 3,
                version: 2,
                lease: 9,
            }),
        };
        let bytes = encode("history record", &record).expect("encode");
        assert_eq!(
            decode::<HistoryRecord>("history record", &bytes).expect("decode"),
            record
        );
    }

    proptest! {
        #[test]
        fn decoders_never_panic_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode::<KvRecord>("kv record", &bytes);
            let _ = decode::<HistoryRecord>("history record", &bytes);
            let _ = decode::<IndexEntry>("index entry", &bytes);
            let _ = decode::<LeaseRecord>("lease record", &bytes);
            let _ = decode::<SnapshotRecord>("snapshot record", &bytes);
            let _ = decode::<i64>("counter", &bytes);
            let _ = decode::<u64>("generation", &bytes);
        }

        #[test]
        fn decoders_never_panic_on_versioned_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            // With the right version byte in front the decoder gets past the header and into bincode.
            let mut versioned = vec![codec::FORMAT_VERSION];
            versioned.extend_from_slice(&bytes);
            let _ = decode::<KvRecord>("kv record", &versioned);
            let _ = decode::<HistoryRecord>("history record", &versioned);
            let _ = decode::<IndexEntry>("index entry", &versioned);
            let _ = decode::<LeaseRecord>("lease record", &versioned);
            let _ = decode::<SnapshotRecord>("snapshot record", &versioned);
        }
    }
}
