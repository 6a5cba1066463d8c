//! A one-member embedded store for unit tests (the jobs run as singletons, auto-compaction, the
//! etcd API's auth checks): a real Raft store in a directory of the test's, on a free loopback
//! port.

use std::collections::BTreeMap;

/// A one-member embedded store in `dir` on a free loopback port.
pub(crate) async fn one_member_embedded_store(dir: &std::path::Path) -> kuboard_raft::RaftStore {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let address = listener.local_addr().expect("address");
    drop(listener);
    kuboard_raft::RaftStore::open(kuboard_raft::RaftStoreConfig {
        node_id: 1,
        data_dir: dir.to_path_buf(),
        peers: BTreeMap::from([(1, address.to_string())]),
        peer_listen_addr: address,
        cluster_secret: None,
        heartbeat_ms: 50,
        election_timeout_ms: 300,
        snapshot_threshold: 10_000,
    })
    .await
    .expect("open a one-member embedded store")
}
