//! A linearizable read never misses an acknowledged write, also on a member that is still joining
//! the group: while the group forms (three fresh members started together, one of them initialises
//! it, the others wait for the leader to send them the log) and when a member is started after the
//! group has formed. A read may fail with an error while the member catches up; it must never
//! answer "not found" for a key whose write was acknowledged before the read started.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use kuboard_raft::RaftStore;
use kuboard_storage::*;

/// How long each member is read after it starts.
const READ_FOR: Duration = Duration::from_secs(5);
/// Upper bound of reads per member, whatever the timing.
const MAX_READS: u64 = 200_000;

/// What the readers of one member saw.
#[derive(Debug, Default)]
struct Seen {
    found: u64,
    errors: u64,
    /// Reads that began before the write was acknowledged and found nothing (allowed).
    absent_before_ack: u64,
    /// Reads that began after the write was acknowledged and found nothing (a violation).
    stale: Vec<String>,
}

/// Read `key` linearizably on `store` in a loop for [`READ_FOR`], noting for each read whether it
/// began after the write was acknowledged.
async fn hammer(id: u64, store: RaftStore, key: String, acked: Arc<AtomicBool>) -> Seen {
    let mut seen = Seen::default();
    let started = Instant::now();
    let mut reads = 0u64;
    while started.elapsed() < READ_FOR && reads < MAX_READS {
        reads += 1;
        let after_ack = acked.load(Ordering::SeqCst);
        match store.range(RangeRequest::key(key.as_str())).await {
            Ok(response) if !response.kvs.is_empty() => seen.found += 1,
            Ok(response) if after_ack => seen.stale.push(format!(
                "member {id}, {:?} after it started: not found (answered at revision {} by member {})",
                started.elapsed(),
                response.header.revision,
                response.header.member_id
            )),
            Ok(_) => seen.absent_before_ack += 1,
            Err(_) => {
                seen.errors += 1;
                // An error comes back fast while there is no leader; do not spin.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    seen
}

/// Create `key` if absent (as the server's first start creates the administrator), through
/// `store`, retrying errors until a deadline. True when this call's transaction created it.
async fn create_if_absent(store: RaftStore, key: String, acked: Arc<AtomicBool>) -> bool {
    let started = Instant::now();
    loop {
        let txn = TxnRequest {
            compare: vec![Compare::new(
                key.clone(),
                CompareResult::Equal,
                CompareTarget::CreateRevision(0),
            )],
            success: vec![TxnOp::Put(PutRequest::new(key.clone(), "v"))],
            failure: vec![],
        };
        match store.txn(txn).await {
            Ok(response) => {
                acked.store(true, Ordering::SeqCst);
                return response.succeeded;
            }
            Err(e) => {
                assert!(started.elapsed() < DEADLINE, "the key was never created: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

fn report(label: &str, results: &[(u64, Seen)]) {
    for (id, seen) in results {
        println!(
            "{label}: member {id}: {} found, {} absent before the write was acknowledged, {} errors, {} stale",
            seen.found,
            seen.absent_before_ack,
            seen.errors,
            seen.stale.len()
        );
    }
    let stale: Vec<&String> = results.iter().flat_map(|(_, seen)| &seen.stale).collect();
    assert!(
        stale.is_empty(),
        "{label}: {} linearizable reads missed an acknowledged write, first: {:?}",
        stale.len(),
        &stale[..stale.len().min(5)]
    );
    for (id, seen) in results {
        assert!(seen.found > 0, "{label}: member {id} never served the key");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_on_members_of_a_forming_group_never_miss_an_acknowledged_write() {
    init_tracing();
    for round in 0..3 {
        let cluster = Cluster::start(3, 1000).await;
        let key = format!("t57/forming/{round}");
        let acked = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = cluster
            .running()
            .into_iter()
            .map(|id| {
                let task = tokio::spawn(hammer(id, cluster.store(id).clone(), key.clone(), acked.clone()));
                (id, task)
            })
            .collect();
        let writers: Vec<_> = cluster
            .running()
            .into_iter()
            .map(|id| tokio::spawn(create_if_absent(cluster.store(id).clone(), key.clone(), acked.clone())))
            .collect();
        let mut created = 0;
        for writer in writers {
            created += usize::from(writer.await.expect("writer task"));
        }
        assert_eq!(created, 1, "exactly one create-if-absent succeeds");
        let mut results = Vec::new();
        for (id, task) in readers {
            results.push((id, task.await.expect("reader task")));
        }
        report(&format!("forming round {round}"), &results);
        cluster.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_on_a_member_started_after_the_write_never_miss_it() {
    init_tracing();
    for round in 0..3 {
        let mut cluster = Cluster::start_only(3, 1000, &[1, 2]).await;
        let leader = cluster.leader().await;
        let key = format!("t57/late/{round}");
        let put = put_retrying(cluster.store(leader), &key, "v").await;
        assert!(put.header.revision > 0);
        cluster.reopen(3).await;
        let acked = Arc::new(AtomicBool::new(true));
        let seen = hammer(3, cluster.store(3).clone(), key.clone(), acked).await;
        report(&format!("late round {round}"), &[(3, seen)]);
        cluster.shutdown().await;
    }
}
