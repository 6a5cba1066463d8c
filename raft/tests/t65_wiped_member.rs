//! A member whose data directory was wiped never forms a second group: it finds the existing group
//! and waits. `remove_member` + `add_member`, or `replace_member`, bring it back, called on any
//! member (they are performed by the leader).

mod common;

use std::time::{Duration, Instant};

use common::*;
use kuboard_storage::*;

fn voters(members: &[Member]) -> Vec<u64> {
    members
        .iter()
        .filter(|m| matches!(m.role, MemberRole::Leader | MemberRole::Follower))
        .map(|m| m.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_member_waits_to_be_added_and_comes_back() {
    init_tracing();
    let mut cluster = Cluster::start(3, 1000).await;
    let leader = cluster.leader().await;
    let followers = cluster.followers_of(leader);
    let (wiped, other) = (followers[0], followers[1]);
    let addr = cluster.peers[&wiped].clone();
    put_retrying(cluster.store(other), "t65/before", "v").await;

    tracing::info!("--- membership operations refuse bad input");
    let unknown = cluster.store(other).remove_member(42).await;
    assert!(matches!(unknown, Err(StoreError::InvalidArgument(_))), "{unknown:?}");
    let moved = cluster.store(other).add_member(wiped, "127.0.0.1:1".into()).await;
    assert!(matches!(moved, Err(StoreError::InvalidArgument(_))), "{moved:?}");

    tracing::info!("--- member {wiped} is removed, loses its data and starts again");
    let members = cluster
        .store(other)
        .remove_member(wiped)
        .await
        .expect("remove through a follower");
    assert_eq!(voters(&members).len(), 2, "{members:?}");
    cluster.stop(wiped).await;
    cluster.wipe(wiped);
    cluster.reopen(wiped).await;
    cluster
        .wait_metrics(wiped, "refusing to initialise", |m| {
            m.joining && m.initialize_refusals >= 1
        })
        .await;
    // Watched for several election timeouts: it must never initialise or elect itself.
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_millis(ELECTION_TIMEOUT_MS * 3) {
        let metrics = cluster.store(wiped).metrics();
        assert_eq!(
            metrics.last_log_index, 0,
            "the wiped member wrote a log of its own: {metrics:?}"
        );
        assert_ne!(metrics.state, "leader", "{metrics:?}");
        assert_eq!(metrics.term, 0, "the wiped member started an election: {metrics:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    put_retrying(cluster.store(other), "t65/while-away", "v").await;

    tracing::info!("--- adding it back (through the leader) brings it up to date as a voter");
    let members = cluster
        .store(leader)
        .add_member(wiped, addr.clone())
        .await
        .expect("add the wiped member back");
    assert_eq!(voters(&members).len(), 3, "{members:?}");
    cluster
        .wait_metrics(wiped, "joined", |m| {
            !m.joining && m.admitted && m.leader == Some(leader)
        })
        .await;
    let data = cluster.wait_converged("t65/").await;
    assert_eq!(data.len(), 2);
    assert!(get(cluster.store(wiped), "t65/while-away").await.is_some());

    tracing::info!("--- wiped again while still a member: it refuses to take part, and the group carries on");
    cluster.stop(wiped).await;
    cluster.wipe(wiped);
    cluster.reopen(wiped).await;
    cluster
        .wait_metrics(wiped, "refusing the leader that remembers its lost log", |m| {
            m.initialize_refusals >= 1 && !m.admitted
        })
        .await;
    let watched = Instant::now();
    let mut n = 0;
    while watched.elapsed() < Duration::from_millis(ELECTION_TIMEOUT_MS * 3) {
        put_retrying(cluster.store(other), &format!("t65/refused-{n}"), "v").await;
        n += 1;
        let metrics = cluster.store(wiped).metrics();
        assert!(!metrics.admitted && metrics.last_log_index == 0, "{metrics:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        cluster.leader_among(&[leader, other]).await,
        leader,
        "the leader was not disturbed"
    );
    cluster
        .store(other)
        .delete_range(DeleteRangeRequest::prefix("t65/refused-"))
        .await
        .expect("clean up");

    tracing::info!("--- replace brings it back");
    let members = cluster
        .store(other)
        .replace_member(wiped, addr)
        .await
        .expect("replace through a follower");
    assert_eq!(voters(&members).len(), 3, "{members:?}");
    put_retrying(cluster.store(wiped), "t65/after", "v").await;
    let data = cluster.wait_converged("t65/").await;
    assert_eq!(data.len(), 3);
    let leader_now = cluster.leader().await;
    assert_eq!(
        cluster.store(wiped).metrics().term,
        cluster.store(leader_now).metrics().term,
        "one group, one term"
    );
    for id in cluster.running() {
        let members = cluster.store(id).members().await.expect("members");
        assert_eq!(voters(&members).len(), 3, "member {id}: {members:?}");
    }
    cluster.shutdown().await;
}
