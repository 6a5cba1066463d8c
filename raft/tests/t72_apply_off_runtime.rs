//! A large apply (one delete of many thousands of keys, as `etcdctl check perf` ends with) must not
//! hold a worker of the async runtime: heartbeats, the lease clock and every other request are
//! served there. On a one-thread runtime the difference is plain: while the delete is applied, a
//! task that wakes every 5 ms must go on waking.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use kuboard_raft::RaftStore;
use kuboard_storage::*;

const KEYS: usize = 20_000;
const PUTS_PER_TXN: usize = 100;

#[tokio::test(flavor = "current_thread")]
async fn a_large_delete_is_applied_without_freezing_the_runtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RaftStore::open(single_member_config(dir.path(), 1_000_000))
        .await
        .expect("open");
    for first in (0..KEYS).step_by(PUTS_PER_TXN) {
        let success = (first..first + PUTS_PER_TXN)
            .map(|index| TxnOp::Put(PutRequest::new(format!("t72/{index:06}"), vec![b'v'; 64])))
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

    // A task that wakes every 5 ms and records the longest time it was kept from running.
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut longest = Duration::ZERO;
            let mut last = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let now = Instant::now();
                longest = longest.max(now - last);
                last = now;
            }
            longest
        }
    });
    // Let the ticker start before the delete is sent.
    tokio::time::sleep(Duration::from_millis(20)).await;

    let started = Instant::now();
    let deleted = store
        .delete_range(DeleteRangeRequest::prefix("t72/"))
        .await
        .expect("the delete of every key");
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let longest_stall = ticker.await.expect("the ticker task");
    assert_eq!(deleted.deleted, KEYS as i64);
    println!("delete of {KEYS} keys took {took:?}; the runtime's longest stall meanwhile: {longest_stall:?}");
    // The stall a frozen runtime shows is the whole apply; a runtime left free shows the timer's
    // own granularity and scheduling noise. Judged against the delete's own time, so that a slow
    // or a fast machine gives the same verdict.
    assert!(
        took >= Duration::from_millis(40),
        "the delete took only {took:?}: too short to tell a frozen runtime from a free one"
    );
    assert!(
        longest_stall < took / 2,
        "the runtime was frozen for {longest_stall:?} of the delete's {took:?}"
    );
    store.shutdown().await.expect("shutdown");
}
