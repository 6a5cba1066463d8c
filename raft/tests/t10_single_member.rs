//! A one-member group on local disk: it forms itself, serves reads and writes, and keeps its data
//! and revision across a clean restart and a crash-style restart, without re-initialising.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use kuboard_raft::{OpenError, RaftStore, RaftStoreConfig};
use kuboard_storage::*;

fn config(data_dir: &Path) -> RaftStoreConfig {
    RaftStoreConfig {
        node_id: 1,
        data_dir: data_dir.to_owned(),
        peers: BTreeMap::from([(1, "127.0.0.1:10082".to_owned())]),
        peer_listen_addr: "127.0.0.1:0".parse().expect("literal address"),
        cluster_secret: None,
        heartbeat_ms: 50,
        election_timeout_ms: 300,
        snapshot_threshold: 10_000,
    }
}

async fn get(store: &RaftStore, key: &str) -> Option<KeyValue> {
    let response = store.range(RangeRequest::key(key)).await.expect("range");
    response.kvs.into_iter().next()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_member_group_serves_and_survives_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");

    tracing::info!("--- a fresh one-member group elects itself and serves writes");
    let store = RaftStore::open(config(dir.path())).await.expect("open");
    let status = store.status().await.expect("status");
    assert_eq!(status.backend, BackendKind::Raft);
    assert_eq!(status.leader, Some(1));
    assert!(status.healthy);
    assert_eq!(status.members.len(), 1);
    assert_eq!(status.members[0].role, MemberRole::Leader);
    assert_eq!(status.revision, 1, "a fresh store starts at revision 1 like etcd");

    let put = store.put(PutRequest::new("a", "1")).await.expect("put a");
    assert_eq!(put.header.revision, 2);
    assert_eq!(put.header.member_id, 1);
    assert!(put.header.raft_term >= 1);
    store.put(PutRequest::new("b", "2")).await.expect("put b");
    let kv = get(&store, "a").await.expect("a exists");
    assert_eq!(kv.value, b"1");
    assert_eq!(kv.create_revision, 2);

    let serializable = RangeRequest {
        consistency: ReadConsistency::Serializable,
        ..RangeRequest::key("b")
    };
    let response = store.range(serializable).await.expect("serializable range");
    assert_eq!(response.kvs[0].value, b"2");
    assert_eq!(response.header.member_id, 1);

    let txn = TxnRequest {
        compare: vec![Compare::new(
            "a",
            CompareResult::Equal,
            CompareTarget::Value(b"1".to_vec()),
        )],
        success: vec![TxnOp::Put(PutRequest::new("c", "3"))],
        failure: vec![],
    };
    let response = store.txn(txn).await.expect("txn");
    assert!(response.succeeded);
    assert_eq!(response.header.revision, 4);

    let deleted = store.delete_range(DeleteRangeRequest::key("b")).await.expect("delete");
    assert_eq!(deleted.deleted, 1);
    assert!(get(&store, "b").await.is_none());
    let revision_before = store.status().await.expect("status").revision;
    assert_eq!(revision_before, 5);

    tracing::info!("--- bad input is an error and changes nothing");
    let missing_lease = PutRequest {
        lease: 424242,
        ..PutRequest::new("d", "4")
    };
    assert_eq!(store.put(missing_lease).await, Err(StoreError::LeaseNotFound(424242)));
    assert_eq!(store.status().await.expect("status").revision, revision_before);

    tracing::info!("--- a clean shutdown and reopen keeps data and revision");
    store.shutdown().await.expect("shutdown");
    assert_eq!(
        store.put(PutRequest::new("x", "y")).await,
        Err(StoreError::ShuttingDown)
    );
    let term_before = {
        let store = RaftStore::open(config(dir.path())).await.expect("reopen");
        let status = store.status().await.expect("status");
        assert_eq!(status.revision, revision_before);
        assert_eq!(
            status.members.len(),
            1,
            "a restart does not re-initialise the membership"
        );
        assert_eq!(get(&store, "a").await.expect("a survives").value, b"1");
        assert_eq!(get(&store, "c").await.expect("c survives").value, b"3");
        assert!(get(&store, "b").await.is_none());
        let put = store.put(PutRequest::new("e", "5")).await.expect("put after reopen");
        assert_eq!(put.header.revision, revision_before + 1);
        let term = store.status().await.expect("status").raft_term;

        tracing::info!("--- a crash (drop without shutdown) also recovers");
        drop(store);
        term
    };
    let store = open_with_deadline(dir.path()).await;
    let status = store.status().await.expect("status");
    assert_eq!(status.revision, revision_before + 1);
    assert!(status.raft_term >= term_before, "the term never goes back");
    assert_eq!(status.leader, Some(1));
    assert_eq!(get(&store, "e").await.expect("e survives the crash").value, b"5");
    store.shutdown().await.expect("shutdown");
}

/// After a drop without shutdown the old member's tasks release their locks asynchronously; the
/// store's own retry covers that, this only bounds the whole wait.
async fn open_with_deadline(dir: &Path) -> RaftStore {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match RaftStore::open(config(dir)).await {
            Ok(store) => return store,
            Err(e) if Instant::now() < deadline => {
                tracing::info!(error = %e, "reopen not possible yet");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("reopen after a crash failed: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_expire_through_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RaftStore::open(config(dir.path())).await.expect("open");

    let grant = store
        .lease_grant(LeaseGrantRequest { ttl: 1, id: 0 })
        .await
        .expect("grant");
    assert!(grant.id > 0, "the store chooses a positive id");
    let put = PutRequest {
        lease: grant.id,
        ..PutRequest::new("session/1", "alive")
    };
    store.put(put).await.expect("put with lease");
    let ttl = store.lease_time_to_live(grant.id, true).await.expect("ttl");
    assert_eq!(ttl.granted_ttl, 1);
    assert_eq!(ttl.keys, vec![b"session/1".to_vec()]);
    assert_eq!(store.lease_leases().await.expect("leases").ids, vec![grant.id]);

    // Explicit revoke of a second lease deletes its keys at once.
    let other = store
        .lease_grant(LeaseGrantRequest { ttl: 60, id: 77 })
        .await
        .expect("grant 77");
    assert_eq!(other.id, 77);
    assert_eq!(
        store.lease_grant(LeaseGrantRequest { ttl: 60, id: 77 }).await,
        Err(StoreError::LeaseExists(77))
    );
    store
        .put(PutRequest {
            lease: 77,
            ..PutRequest::new("session/2", "x")
        })
        .await
        .expect("put 77");
    store.lease_keep_alive(77).await.expect("keepalive");
    store.lease_revoke(77).await.expect("revoke");
    assert!(get(&store, "session/2").await.is_none());
    assert_eq!(store.lease_keep_alive(77).await, Err(StoreError::LeaseNotFound(77)));

    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&store, "session/1").await.is_some() {
        assert!(
            Instant::now() < deadline,
            "the leased key was not deleted after its lease expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(store.lease_time_to_live(grant.id, false).await.expect("ttl").ttl, -1);
    store.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwritable_data_dir_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").expect("write file");
    match RaftStore::open(config(&file)).await {
        Err(OpenError::DataDir { path, .. }) => assert!(path.starts_with(&file)),
        Err(other) => panic!("expected a data directory error, got {other}"),
        Ok(_) => panic!("opening a store inside a regular file must fail"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contradictory_config_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bad = config(dir.path());
    bad.node_id = 2;
    assert!(matches!(RaftStore::open(bad).await, Err(OpenError::Config(_))));
    let mut bad = config(dir.path());
    bad.election_timeout_ms = bad.heartbeat_ms;
    assert!(matches!(RaftStore::open(bad).await, Err(OpenError::Config(_))));
}

/// The server and other crates' tests may run on a current-thread runtime: the store must not rely
/// on blocking the runtime's only thread.
#[tokio::test]
async fn works_on_a_current_thread_runtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RaftStore::open(config(dir.path())).await.expect("open");
    store.put(PutRequest::new("k", "v")).await.expect("put");
    assert_eq!(get(&store, "k").await.expect("k").value, b"v");
    store.shutdown().await.expect("shutdown");
    let store = RaftStore::open(config(dir.path())).await.expect("reopen");
    assert_eq!(get(&store, "k").await.expect("k survives").value, b"v");
    store.shutdown().await.expect("shutdown");
}
