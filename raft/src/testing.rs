//! Helpers for this crate's integration tests. Not part of the product's API: hidden from the
//! docs, and openraft types stay out of their signatures.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::errors::ErrorSource;
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::StorageError;

use crate::log_store::LogStore;
use crate::mvcc::KvStateMachine;
use crate::state_machine::StateMachineStore;
use crate::types::TypeConfig;

struct Builder {
    base: PathBuf,
    next: AtomicU64,
}

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, ()> for Builder {
    async fn build(&self) -> Result<((), LogStore, StateMachineStore), StorageError<TypeConfig>> {
        let dir = self
            .base
            .join(format!("store-{}", self.next.fetch_add(1, Ordering::SeqCst)));
        let io = |e: std::io::Error| StorageError::read(ErrorSource::from_error(&e));
        let log = LogStore::open(&dir.join("wal")).map_err(io)?;
        let kv = KvStateMachine::open(&dir.join("sm")).map_err(|e| io(std::io::Error::other(e.to_string())))?;
        let sm = StateMachineStore::open(kv, &dir.join("snapshots"), 1).map_err(io)?;
        Ok(((), log, sm))
    }
}

/// Run openraft's storage conformance suite (`openraft::testing::log::Suite::test_all`) against
/// this crate's log store and state machine, each instance in a fresh directory under `base`.
pub async fn run_openraft_storage_suite(base: &Path) -> Result<(), String> {
    let builder = Builder {
        base: base.to_owned(),
        next: AtomicU64::new(0),
    };
    Suite::test_all(builder).await.map_err(|e| e.to_string())
}

/// Apply at most `limit` log entries in one sled transaction, in every store of this process
/// (clamped to 1..=512; 512 is the default). Measurements compare grouping with `1`, one
/// transaction per entry.
pub fn set_apply_group_limit(limit: usize) {
    crate::state_machine::set_apply_group_limit(limit);
}
