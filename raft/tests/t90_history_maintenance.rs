//! Keeping the history of a long-lived store without stalling its applies: compacting a long
//! history, and exporting a snapshot of a large store, while writes go on. Each measures the longest
//! time one small write took meanwhile (a write waits for its apply), which must stay well under an
//! election timeout.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use kuboard_raft::RaftStore;
use kuboard_storage::*;

/// Writes per transaction while filling a store.
const PUTS_PER_TXN: usize = 100;

/// Longest a small write may take while the history is compacted or exported: the default election
/// timeout (`KUBOARD_RAFT_ELECTION_TIMEOUT_MS`). An apply held that long holds every write behind
/// it as long, which clients see as a dead leader. (Before the history was compacted in batches
/// and exported beside applies, a write waited for the whole compaction or export: over 10 s and
/// 5 s here.)
const MAX_WRITE_STALL: Duration = Duration::from_millis(800);

/// The two tests measure stalls, so they run one after the other, not beside each other.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Fill the store with `txns` transactions of [`PUTS_PER_TXN`] puts each, over `keys` distinct keys
/// (so with fewer keys than writes, most of the history is older versions).
async fn fill(store: &RaftStore, prefix: &str, txns: usize, keys: usize) {
    for txn in 0..txns {
        let success = (0..PUTS_PER_TXN)
            .map(|n| {
                let key = (txn * PUTS_PER_TXN + n) % keys;
                TxnOp::Put(PutRequest::new(format!("{prefix}{key:07}"), vec![b'v'; 64]))
            })
            .collect();
        store
            .txn(TxnRequest {
                compare: vec![],
                success,
                failure: vec![],
            })
            .await
            .expect("a txn of puts");
    }
}

/// Small writes one after another until stopped; the longest one and how many were made.
struct Writer {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(Duration, usize)>,
}

impl Writer {
    fn start(store: &RaftStore) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let stop = stop.clone();
            let store = store.clone();
            async move {
                let (mut longest, mut count) = (Duration::ZERO, 0usize);
                while !stop.load(Ordering::Relaxed) && count < 1_000_000 {
                    let started = Instant::now();
                    store
                        .put(PutRequest::new(format!("probe/{}", count % 16), "x"))
                        .await
                        .expect("a small write");
                    longest = longest.max(started.elapsed());
                    count += 1;
                }
                (longest, count)
            }
        });
        Writer { stop, task }
    }

    async fn finish(self) -> (Duration, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("writer task")
    }
}

/// The longest of the same small writes over two seconds with nothing else going on: the
/// machine's own stall (fsync, other processes), printed beside the figures under test.
async fn baseline_stall(store: &RaftStore) -> Duration {
    let writer = Writer::start(store);
    tokio::time::sleep(Duration::from_secs(2)).await;
    writer.finish().await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacting_a_long_history_does_not_stall_applies() {
    let _alone = ONE_AT_A_TIME.lock().await;
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RaftStore::open(single_member_config(dir.path(), 1_000_000))
        .await
        .expect("open");
    // 50,000 writes over 1,000 keys: 49,000 older versions for the compaction to remove.
    fill(&store, "t90/compact/", 500, 1_000).await;
    let baseline = baseline_stall(&store).await;
    let (before, _) = store.history_entries().expect("history");
    let revision = store.status().await.expect("status").revision;
    let writer = Writer::start(&store);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    store.compact(CompactRequest { revision }).await.expect("compact");
    let deadline = Instant::now() + Duration::from_secs(120);
    let took = loop {
        let (entries, pending) = store.history_entries().expect("history");
        if !pending {
            break started.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "compacted history removed within 120 s ({entries} entries left)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (longest, writes) = writer.finish().await;
    let (after, _) = store.history_entries().expect("history");
    eprintln!(
        "compaction at revision {revision}: history {before} -> {after} entries in {took:?}; \
         {writes} writes meanwhile, the longest took {longest:?} (before: {baseline:?})"
    );
    // What is left: the 1,000 versions visible at the compaction revision, the 16 probe keys the
    // baseline wrote, and the writes made since.
    assert!(
        after <= 1_016 + writes,
        "{after} history entries left after compacting 1,000 keys and writing {writes} times since"
    );
    // Reads at the compaction revision see the same keys as before.
    let kept = store
        .range(RangeRequest {
            revision,
            ..RangeRequest::prefix("t90/compact/")
        })
        .await
        .expect("read at the compaction revision");
    assert_eq!(kept.kvs.len(), 1_000);
    assert!(
        longest < MAX_WRITE_STALL,
        "a write took {longest:?} while a history of {before} entries was compacted (limit {MAX_WRITE_STALL:?})"
    );
    store.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporting_a_snapshot_of_a_large_store_does_not_stall_applies() {
    let _alone = ONE_AT_A_TIME.lock().await;
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RaftStore::open(single_member_config(dir.path(), 1_000_000))
        .await
        .expect("open");
    // 100,000 live keys.
    fill(&store, "t90/export/", 1_000, 100_000).await;

    let baseline = baseline_stall(&store).await;
    let writer = Writer::start(&store);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    let index = store
        .build_snapshot_now(Duration::from_secs(120))
        .await
        .expect("a snapshot is built");
    let took = started.elapsed();
    let (longest, writes) = writer.finish().await;
    eprintln!(
        "snapshot of 100,000 keys up to index {index} built in {took:?}; {writes} writes meanwhile, \
         the longest took {longest:?} (before: {baseline:?})"
    );
    assert!(
        longest < MAX_WRITE_STALL,
        "a write took {longest:?} while a snapshot of 100,000 keys was exported in {took:?} (limit {MAX_WRITE_STALL:?})"
    );
    store.shutdown().await.expect("shutdown");
}
