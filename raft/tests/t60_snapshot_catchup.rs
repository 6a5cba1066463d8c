//! A follower stopped while 10,000 writes and a compaction happen catches up by snapshot when it
//! comes back: the leader has purged the log it would need (only behind its own snapshot), so it
//! streams a snapshot over the peer transport.

mod common;

use std::time::{Duration, Instant};

use common::*;
use kuboard_storage::*;

const WRITES: u64 = 10_000;
const CONCURRENT_WRITERS: u64 = 20;
/// Low, so that the leader snapshots and purges many times during the writes.
const SNAPSHOT_THRESHOLD: u64 = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_follower_catches_up_by_snapshot() {
    init_tracing();
    let mut cluster = Cluster::start(3, SNAPSHOT_THRESHOLD).await;
    let leader = cluster.leader().await;
    let lagging = cluster.followers_of(leader)[0];
    put_retrying(cluster.store(lagging), "t60/before", "v").await;

    tracing::info!("--- a follower stops; {WRITES} writes and a compaction happen without it");
    cluster.stop(lagging).await;
    let started = Instant::now();
    let writers = (0..CONCURRENT_WRITERS).map(|writer| {
        let store = cluster.store(leader).clone();
        tokio::spawn(async move {
            for n in (writer..WRITES).step_by(CONCURRENT_WRITERS as usize) {
                // Every key written twice in a row, so that the compaction has history to drop.
                let key = format!("t60/{n:05}");
                store.put(PutRequest::new(key.clone(), "first")).await.expect("put");
                if n % 10 == 0 {
                    store.put(PutRequest::new(key, "second")).await.expect("put again");
                }
            }
        })
    });
    for writer in futures::future::join_all(writers).await {
        writer.expect("writer task");
    }
    println!("{WRITES} writes took {:?}", started.elapsed());
    let revision = cluster.store(leader).status().await.expect("status").revision;
    cluster
        .store(leader)
        .compact(CompactRequest { revision })
        .await
        .expect("compact");
    let leader_metrics = cluster
        .wait_metrics(leader, "a snapshot and a purge behind it", |m| {
            m.snapshot_index > 0 && m.purged_index > 0 && m.purged_index <= m.snapshot_index
        })
        .await;
    println!("leader after the writes: {leader_metrics:?}");
    assert!(
        leader_metrics.log_entries < WRITES,
        "the log was purged behind the snapshots: {leader_metrics:?}"
    );

    tracing::info!("--- the follower reopens and catches up by snapshot");
    let reopened_at = Instant::now();
    cluster.reopen(lagging).await;
    cluster
        .wait_metrics(lagging, "the leader's applied index", |m| {
            m.applied_index >= leader_metrics.applied_index
        })
        .await;
    let data = cluster.wait_converged("t60/").await;
    let caught_up = reopened_at.elapsed();
    println!("the lagging follower caught up {caught_up:?} after reopening");
    assert_eq!(data.len() as u64, WRITES + 1);
    let metrics = cluster.store(lagging).metrics();
    assert!(metrics.snapshots_installed >= 1, "caught up by snapshot: {metrics:?}");
    assert!(metrics.snapshot_index > 0, "{metrics:?}");
    let status = cluster.store(lagging).status().await.expect("status");
    assert_eq!(
        status.compact_revision, revision,
        "the compaction came with the snapshot"
    );
    assert!(caught_up < Duration::from_secs(20));

    tracing::info!("--- the caught-up follower serves reads and takes part in writes");
    let put = put_retrying(cluster.store(lagging), "t60/after", "v").await;
    let kv = get(cluster.store(leader), "t60/after")
        .await
        .expect("written through the caught-up member");
    assert_eq!(kv.mod_revision, put.header.revision);
    let old = cluster
        .store(lagging)
        .range(RangeRequest {
            revision: revision - 1,
            ..RangeRequest::key("t60/00000")
        })
        .await;
    assert!(matches!(old, Err(StoreError::Compacted { .. })), "{old:?}");
    cluster.shutdown().await;
}
