//! [`MvccError`]: an internal fault of the state machine.

use kuboard_storage::StoreError;

use crate::codec::CodecError;

/// An internal fault of the state machine. Bad client input is never an `MvccError`: it is a
/// `CommandResponse::Error`.
#[derive(Debug, thiserror::Error)]
pub enum MvccError {
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("codec of {what}: {source}")]
    Codec {
        what: &'static str,
        #[source]
        source: CodecError,
    },
    #[error("snapshot stream: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt state machine data: {0}")]
    Corrupt(String),
    #[error("invalid snapshot: {0}")]
    InvalidSnapshot(String),
}

impl From<MvccError> for StoreError {
    fn from(error: MvccError) -> Self {
        StoreError::Internal(error.to_string())
    }
}
