//! A one-member group started with a cluster secret listens for peers and grows to three members
//! online with `add_member`; the new members never form a group of their own although they are
//! two fresh members out of three configured.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use kuboard_raft::{RaftStore, RaftStoreConfig};
use kuboard_storage::*;

fn config(dir: &std::path::Path, id: u64, peers: &BTreeMap<u64, String>) -> RaftStoreConfig {
    RaftStoreConfig {
        node_id: id,
        data_dir: dir.join(format!("member-{id}")),
        peers: peers.clone(),
        peer_listen_addr: peers[&id].parse().expect("a loopback socket address"),
        cluster_secret: Some(SECRET.to_owned()),
        heartbeat_ms: HEARTBEAT_MS,
        election_timeout_ms: ELECTION_TIMEOUT_MS,
        snapshot_threshold: 1000,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_member_group_grows_to_three_online() {
    init_tracing();
    let dir = tempfile::tempdir().expect("temp dir");
    let all: BTreeMap<u64, String> = (1..=3).map(|id| (id, free_loopback_addr())).collect();
    let alone = BTreeMap::from([(1, all[&1].clone())]);

    tracing::info!("--- a one-member group with a secret serves and listens for peers");
    let first = RaftStore::open(config(dir.path(), 1, &alone))
        .await
        .expect("open member 1");
    assert_eq!(first.peer_listen_addr().map(|a| a.to_string()), Some(all[&1].clone()));
    first.put(PutRequest::new("t52/a", "1")).await.expect("put");

    tracing::info!("--- two fresh members start; they wait instead of forming a group of their own");
    let second = RaftStore::open(config(dir.path(), 2, &all))
        .await
        .expect("open member 2");
    let third = RaftStore::open(config(dir.path(), 3, &all))
        .await
        .expect("open member 3");
    let started = Instant::now();
    while !(second.metrics().initialize_refusals >= 1 && third.metrics().initialize_refusals >= 1) {
        assert!(started.elapsed() < DEADLINE, "the fresh members did not find the group");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(second.metrics().last_log_index, 0);
    assert_eq!(third.metrics().term, 0);

    tracing::info!("--- added one by one (the second through the first's handle)");
    let members = first.add_member(2, all[&2].clone()).await.expect("add member 2");
    assert_eq!(members.len(), 2, "{members:?}");
    let members = first.add_member(3, all[&3].clone()).await.expect("add member 3");
    assert_eq!(members.len(), 3, "{members:?}");
    let again = first
        .add_member(3, all[&3].clone())
        .await
        .expect("adding a voter again changes nothing");
    assert_eq!(again.len(), 3);

    tracing::info!("--- the grown group serves through every member");
    let put = third
        .put(PutRequest::new("t52/b", "2"))
        .await
        .expect("put through member 3");
    for store in [&first, &second, &third] {
        let response = store
            .range(RangeRequest::prefix("t52/"))
            .await
            .expect("linearizable range");
        assert_eq!(response.kvs.len(), 2);
        assert!(response.header.revision >= put.header.revision);
        let status = store.status().await.expect("status");
        assert_eq!(status.members.len(), 3);
        assert_eq!(status.leader, Some(1));
    }
    for store in [first, second, third] {
        store.shutdown().await.expect("shutdown");
    }
}
