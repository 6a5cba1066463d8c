//! [`Shared`]: the state every handle of one state machine shares (the sled database, the locks
//! that order applies, exports and installs, the active trees, the revision counters, the watch
//! hub), and lock helpers that tolerate poisoning.

use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::trees::Trees;
use super::watch_hub::WatchHub;

/// What every handle of one state machine shares.
pub(super) struct Shared {
    pub(super) db: sled::Db,
    /// Serialises every state change (apply, install) and the start of an export.
    pub(super) apply_lock: Mutex<()>,
    /// Held shared by a snapshot export while it streams history; compaction and install, which
    /// remove history, take it exclusively.
    pub(super) history_lock: RwLock<()>,
    /// The active trees. Readers hold it shared for the whole read so that a read sees one
    /// revision; a commit holds it exclusively while the sled transaction runs.
    pub(super) state: RwLock<Arc<Trees>>,
    /// Written only while `state` is held exclusively.
    pub(super) revision: AtomicI64,
    pub(super) compact_revision: AtomicI64,
    pub(super) hub: WatchHub,
    pub(super) progress_interval_millis: AtomicU64,
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data lives in sled and is consistent whatever a panicking holder did.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(super) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

pub(super) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}
