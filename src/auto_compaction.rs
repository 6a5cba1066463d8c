//! Automatic compaction of the embedded store (`KUBOARD_RAFT_COMPACTION_RETENTION_SECONDS`), like
//! etcd's periodic `--auto-compaction-retention`: one replica at a time (a [`Singleton`]) notes the
//! store's revision every tenth of the retention and compacts at the revision it noted one
//! retention ago. History younger than the retention stays readable (watches resume, reads at a
//! revision), older history goes; the store removes it in bounded batches in the background (see
//! `kuboard_raft`'s `mvcc::compaction`), so a compaction never holds applies.
//!
//! A replica that has just become the one compacting has no notes older than the retention yet,
//! so the first compaction after a hand-over comes one retention later, as with etcd.
//!
//! Only for the embedded store: an external etcd is compacted by its own
//! `--auto-compaction-retention`, which its operator sets; another application may share it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kuboard_storage::StoreError;
use tokio::sync::watch;

use crate::app_store::AppStore;
use crate::singleton::{Singleton, SingletonState};

/// Shortest interval between two notes of the revision.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Longest interval between two notes of the revision.
const MAX_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// The revisions noted while leading, oldest first.
#[derive(Debug, Default)]
pub struct RevisionNotes {
    notes: VecDeque<(Instant, i64)>,
}

impl RevisionNotes {
    /// Note `revision` at `now`; returns the revision to compact at, if one is due: the newest
    /// noted at least `retention` before `now`. Notes older than that one are forgotten.
    pub fn note(&mut self, now: Instant, revision: i64, retention: Duration) -> Option<i64> {
        self.notes.push_back((now, revision));
        let due = self
            .notes
            .iter()
            .rposition(|(at, _)| now.saturating_duration_since(*at) >= retention)?;
        self.notes.drain(..due);
        self.notes.front().map(|(_, revision)| *revision)
    }
}

/// The settings of the compaction job.
#[derive(Debug, Clone, Copy)]
pub struct AutoCompaction {
    pub retention: Duration,
    /// The election lease of the singleton (it renews every third of it).
    pub lease_ttl: Duration,
}

impl AutoCompaction {
    pub fn new(retention: Duration) -> AutoCompaction {
        AutoCompaction {
            retention,
            lease_ttl: Duration::from_secs(10),
        }
    }

    fn interval(&self) -> Duration {
        (self.retention / 10).clamp(MIN_INTERVAL, MAX_INTERVAL)
    }

    /// Runs the job on whichever replica leads the `store-compaction` singleton, until `shutdown`.
    pub async fn run(
        self,
        store: AppStore,
        replica_id: u64,
        state: watch::Sender<SingletonState>,
        shutdown: watch::Receiver<bool>,
    ) {
        let singleton = Singleton {
            store,
            name: "store-compaction".to_string(),
            holder: format!("replica-{replica_id}-{}", uuid::Uuid::new_v4()),
            lease_ttl: self.lease_ttl,
            job_interval: self.interval(),
        };
        let notes = Arc::new(Mutex::new(RevisionNotes::default()));
        let retention = self.retention;
        singleton
            .run(
                move |store| {
                    let notes = notes.clone();
                    async move {
                        if let Err(error) = compact_once(&store, &notes, retention).await {
                            tracing::warn!(%error, "automatic compaction of the store failed; retrying");
                        }
                    }
                },
                state,
                shutdown,
            )
            .await;
    }
}

/// Note the current revision; compact when a note is one retention old.
async fn compact_once(store: &AppStore, notes: &Mutex<RevisionNotes>, retention: Duration) -> Result<(), StoreError> {
    let status = store.status().await?;
    let due = notes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).note(
        Instant::now(),
        status.revision,
        retention,
    );
    let Some(revision) = due.filter(|revision| *revision > status.compact_revision) else {
        return Ok(());
    };
    match store.compact(revision).await {
        Ok(_) => {
            tracing::info!(
                revision,
                retention_seconds = retention.as_secs(),
                "store history compacted"
            );
            Ok(())
        }
        // Another replica (around a hand-over) or an operator compacted further already.
        Err(StoreError::Compacted { .. }) => Ok(()),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use kuboard_storage::{PutRequest, RangeRequest, Store};

    use super::*;
    use crate::metrics::Metrics;
    use crate::store_backend::StoreBackend;

    #[test]
    fn notes_give_the_revision_one_retention_old() {
        let start = Instant::now();
        let retention = Duration::from_secs(10);
        let mut notes = RevisionNotes::default();
        assert_eq!(notes.note(start, 5, retention), None);
        assert_eq!(notes.note(start + Duration::from_secs(5), 9, retention), None);
        assert_eq!(notes.note(start + Duration::from_secs(10), 20, retention), Some(5));
        // 14 s: the note of 4 s ago is not old enough, the one of 9 s ago neither; 5 stays due.
        assert_eq!(notes.note(start + Duration::from_secs(14), 30, retention), Some(5));
        assert_eq!(notes.note(start + Duration::from_secs(15), 31, retention), Some(9));
        assert_eq!(notes.note(start + Duration::from_secs(26), 40, retention), Some(31));
    }

    /// A store written steadily with compaction on: its history stops growing once compactions
    /// begin, and reads below the compaction revision are refused.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn history_stops_growing_on_the_embedded_store() {
        let dir = tempfile::tempdir().expect("temp dir");
        let raft = crate::one_member_store::one_member_embedded_store(dir.path()).await;
        let backend = Arc::new(StoreBackend::Raft(raft.clone()));
        let store = AppStore::new(backend.clone(), Arc::new(Metrics::new(1)));
        let (state, _) = watch::channel(SingletonState::Follower);
        let (stop, stopped) = watch::channel(false);
        let job = AutoCompaction {
            retention: Duration::from_secs(1),
            lease_ttl: Duration::from_millis(600),
        };
        let task = tokio::spawn(job.run(store.clone(), 1, state, stopped));

        // 12 rounds of 0.5 s, each writing the same 20 keys until the round ends; the size of the
        // history and the number of writes are noted at the end of each round.
        let mut sizes = Vec::new();
        let mut rounds = Vec::new();
        let mut writes = 0u64;
        for _ in 0..12 {
            let round_end = Instant::now() + Duration::from_millis(500);
            let mut round = 0u64;
            while Instant::now() < round_end {
                store
                    .put(PutRequest::new(format!("t/auto-compaction/{}", writes % 20), "v"))
                    .await
                    .expect("put");
                writes += 1;
                round += 1;
            }
            rounds.push(round);
            sizes.push(raft.history_entries().expect("history").0);
        }
        let status = store.status().await.expect("status");
        eprintln!(
            "writes per 0.5 s: {rounds:?}; history entries at each 0.5 s: {sizes:?}; revision {}, compacted at {}",
            status.revision, status.compact_revision
        );
        assert!(status.compact_revision > 1, "the store was compacted: {status:?}");
        let old = backend
            .range(RangeRequest {
                revision: 1,
                ..RangeRequest::key("t/auto-compaction/0")
            })
            .await;
        assert!(
            matches!(old, Err(StoreError::Compacted { .. })),
            "a read at revision 1 is refused as compacted: {old:?}"
        );
        // Flat after the first compactions: from 3 s on, the history holds no more than the 20
        // live keys and the writes of the last 2.5 s (the retention, the interval between notes,
        // the singleton's tick and the removal's lag), whatever the pace of the writes was.
        // Without compaction it would hold every write.
        for end in 6..sizes.len() {
            let recent: u64 = rounds[end - 4..=end].iter().sum();
            assert!(
                sizes[end] as u64 <= 20 + recent,
                "history of {} entries after round {end}, with {recent} writes in the last 2.5 s: \
                 sizes {sizes:?}, writes {rounds:?}",
                sizes[end]
            );
        }

        stop.send(true).expect("job listens");
        task.await.expect("job ends");
        backend.shutdown().await.expect("store shuts down");
    }
}
