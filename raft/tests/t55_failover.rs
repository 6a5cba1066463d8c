//! The leader goes away during a stream of writes: a new leader serves writes within 2 s, every
//! acknowledged write is kept, live leases survive the failover, and the old leader reopened
//! rejoins and catches up.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use kuboard_raft::RaftStore;
use kuboard_storage::*;

/// Acknowledged keys, when each write was issued and when it was acknowledged.
type Acks = Arc<Mutex<Vec<(String, Instant, Instant)>>>;

/// Write `t55/<writer>/<n>` keys one after the other through `store` until `stop`, recording
/// every acknowledged one. Errors (the write in flight when the leader goes) are counted, not
/// retried: a retried key could be written twice, which this test does not want to hide.
async fn writer(store: RaftStore, name: u64, acks: Acks, stop: Arc<AtomicBool>) -> u64 {
    let mut errors = 0;
    for n in 0..100_000u64 {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let key = format!("t55/{name}/{n:06}");
        let issued = Instant::now();
        match store.put(PutRequest::new(key.clone(), "v")).await {
            Ok(_) => acks.lock().expect("test lock").push((key, issued, Instant::now())),
            Err(e) => {
                errors += 1;
                tracing::info!(writer = name, error = %e, "write failed");
                assert!(
                    e.is_retryable() || e == StoreError::ShuttingDown,
                    "unexpected error: {e}"
                );
            }
        }
    }
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_serves_within_two_seconds_and_nothing_acknowledged_is_lost() {
    init_tracing();
    let mut cluster = Cluster::start(3, 1000).await;
    let old_leader = cluster.leader().await;
    let followers = cluster.followers_of(old_leader);

    tracing::info!("--- a lease with an attached key, kept alive just before the failover");
    let ttl = 3;
    let lease = cluster
        .store(followers[0])
        .lease_grant(LeaseGrantRequest { ttl, id: 0 })
        .await
        .expect("grant");
    let leased_put = PutRequest {
        lease: lease.id,
        ..PutRequest::new("t55/leased", "v")
    };
    cluster
        .store(followers[1])
        .put(leased_put)
        .await
        .expect("put with lease");

    tracing::info!("--- writers stream through both followers");
    let acks: Acks = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = followers
        .iter()
        .map(|id| tokio::spawn(writer(cluster.store(*id).clone(), *id, acks.clone(), stop.clone())))
        .collect();
    let started = Instant::now();
    while acks.lock().expect("test lock").len() < 50 {
        assert!(started.elapsed() < DEADLINE, "the writers do not make progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    tracing::info!("--- the leader shuts down in the middle of the stream");
    cluster
        .store(followers[0])
        .lease_keep_alive(lease.id)
        .await
        .expect("keepalive");
    let kept_alive_at = Instant::now();
    // Measured conservatively: from the moment the shutdown starts to the first acknowledgement
    // of a write issued after the old leader was completely gone.
    let stopped_at = Instant::now();
    cluster.stop(old_leader).await;
    let gone_at = Instant::now();
    let new_leader = cluster.leader_among(&followers).await;
    assert_ne!(new_leader, old_leader);
    let first_ack_after = loop {
        let first = acks
            .lock()
            .expect("test lock")
            .iter()
            .find(|(_, issued, _)| *issued > gone_at)
            .map(|(_, _, acked)| *acked);
        if let Some(at) = first {
            break at;
        }
        assert!(
            stopped_at.elapsed() < DEADLINE,
            "no write acknowledged after the leader stopped"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let failover = first_ack_after - stopped_at;
    println!(
        "failover: member {new_leader} leads; the first write issued after the old leader was gone was \
         acknowledged {failover:?} after its shutdown began ({:?} of it spent shutting down)",
        gone_at - stopped_at
    );
    assert!(failover < Duration::from_secs(2), "failover took {failover:?}");

    tracing::info!("--- the lease outlives the failover: its key is there until its ttl has passed");
    let promised = kept_alive_at + Duration::from_secs(ttl as u64) - Duration::from_millis(300);
    tokio::time::sleep_until(promised.into()).await;
    let leased = get(cluster.store(new_leader), "t55/leased").await;
    assert!(
        leased.is_some(),
        "the leased key vanished before its ttl after a failover"
    );

    let before = acks.lock().expect("test lock").len();
    while acks.lock().expect("test lock").len() < before + 50 {
        assert!(
            stopped_at.elapsed() < DEADLINE,
            "the writers stalled under the new leader"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut errors = 0;
    for task in writers {
        errors += task.await.expect("writer task");
    }
    let acked: BTreeSet<String> = acks
        .lock()
        .expect("test lock")
        .iter()
        .map(|(key, _, _)| key.clone())
        .collect();
    println!(
        "{} writes acknowledged, {errors} failed across the failover",
        acked.len()
    );

    tracing::info!("--- every acknowledged write is present on both survivors");
    for id in &followers {
        let response = cluster
            .store(*id)
            .range(RangeRequest::prefix("t55/"))
            .await
            .expect("range");
        let present: BTreeSet<String> = response
            .kvs
            .iter()
            .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
            .collect();
        let missing: Vec<&String> = acked.difference(&present).collect();
        assert!(missing.is_empty(), "member {id} lost acknowledged writes: {missing:?}");
    }

    tracing::info!("--- the lease expires through the new leader once no longer kept alive");
    let expiry_started = Instant::now();
    while get(cluster.store(new_leader), "t55/leased").await.is_some() {
        assert!(
            expiry_started.elapsed() < DEADLINE,
            "the lease never expired under the new leader"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    tracing::info!("--- the old leader reopens, rejoins and catches up");
    let reopened_at = Instant::now();
    cluster.reopen(old_leader).await;
    let data = cluster.wait_converged("t55/").await;
    println!("the old leader caught up {:?} after reopening", reopened_at.elapsed());
    assert!(data.len() >= acked.len());
    assert_eq!(
        cluster.leader().await,
        new_leader,
        "the returning member does not depose the leader"
    );
    cluster.shutdown().await;
}
