//! The thread that removes compacted history (see `compaction`): woken when a compaction is
//! committed or a snapshot installed, it runs purge batches until nothing is left below the
//! compaction revision. It holds the state machine only for the length of one batch, so the
//! database closes when the last handle goes; it then ends on its next wake-up.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::compaction::{purge_batch, PURGE_BATCH};
use super::error::MvccError;
use super::shared::{lock, read, write, Shared};

/// How often an idle purge thread checks whether its state machine still exists.
const IDLE_CHECK: Duration = Duration::from_millis(500);

/// Shortest rest between two batches.
const MIN_PAUSE: Duration = Duration::from_millis(5);

pub(super) fn start(inner: &Arc<Shared>) -> Result<(), MvccError> {
    let weak = Arc::downgrade(inner);
    let wake = inner.purge_wake.clone();
    // Work left by a restart is done at once.
    wake.raise();
    std::thread::Builder::new()
        .name("kv-compaction".to_string())
        .spawn(move || loop {
            wake.wait(IDLE_CHECK);
            loop {
                let Some(inner) = Weak::upgrade(&weak) else {
                    return;
                };
                let started = Instant::now();
                let more = step(&inner);
                drop(inner);
                match more {
                    // Rest twice as long as the batch took (and at least `MIN_PAUSE`): the
                    // removal takes at most about a third of one core from applies and reads.
                    Ok(true) => std::thread::sleep((2 * started.elapsed()).max(MIN_PAUSE)),
                    Ok(false) => break,
                    Err(error) => {
                        // Left for the next compaction or restart; reads are not affected.
                        tracing::warn!(%error, "removing compacted history failed");
                        break;
                    }
                }
            }
        })
        .map_err(MvccError::Io)?;
    Ok(())
}

/// One purge batch; true while more remains.
pub(super) fn step(inner: &Shared) -> Result<bool, MvccError> {
    let _history = write(&inner.history_lock);
    let cursor = *lock(&inner.purge);
    if cursor.resume.is_none() {
        return Ok(false);
    }
    let trees = read(&inner.state).clone();
    let next = purge_batch(&trees, cursor, PURGE_BATCH)?;
    let mut current = lock(&inner.purge);
    // A newer compaction (or an install) restarted the cursor meanwhile: keep its.
    if current.target == cursor.target && current.resume == cursor.resume {
        *current = next;
    }
    Ok(current.resume.is_some())
}
