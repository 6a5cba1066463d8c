//! The backend-agnostic conformance suite of `kuboard_storage` against a one-member embedded group:
//! a behaviour difference from etcd 3.4 is a bug in the embedded store.

use std::collections::BTreeMap;

use kuboard_raft::{RaftStore, RaftStoreConfig};
use kuboard_storage::{conformance, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_on_a_one_member_group() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = RaftStoreConfig {
        node_id: 1,
        data_dir: dir.path().to_owned(),
        peers: BTreeMap::from([(1, "127.0.0.1:10082".to_owned())]),
        peer_listen_addr: "127.0.0.1:0".parse().expect("literal address"),
        cluster_secret: None,
        heartbeat_ms: 50,
        election_timeout_ms: 300,
        // Small, so that snapshots are built and the log purged while the suite runs.
        snapshot_threshold: 50,
    };
    let store = RaftStore::open(config).await.expect("open");
    conformance::run_all(&store).await;

    tracing::info!("--- the state the suite left survives a restart, snapshots included");
    let before = store.status().await.expect("status");
    store.shutdown().await.expect("shutdown");
    let store = RaftStore::open(RaftStoreConfig {
        node_id: 1,
        data_dir: dir.path().to_owned(),
        peers: BTreeMap::from([(1, "127.0.0.1:10082".to_owned())]),
        peer_listen_addr: "127.0.0.1:0".parse().expect("literal address"),
        cluster_secret: None,
        heartbeat_ms: 50,
        election_timeout_ms: 300,
        snapshot_threshold: 50,
    })
    .await
    .expect("reopen");
    let after = store.status().await.expect("status");
    assert_eq!(after.revision, before.revision);
    assert_eq!(after.compact_revision, before.compact_revision);
    let snapshots = std::fs::read_dir(dir.path().join("raft/snapshots"))
        .expect("snapshot dir")
        .count();
    assert!(
        snapshots >= 1,
        "a snapshot was built after {} applied entries",
        before.applied_index
    );
    store.shutdown().await.expect("shutdown");
}
