//! A group of `RaftStore` members in one process, talking over real peer transports on loopback.
//! Members can be stopped, reopened, wiped and cut off from each other.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use kuboard_raft::{RaftStore, RaftStoreConfig, RaftStoreMetrics};
use kuboard_storage::*;

pub const SECRET: &str = "test cluster secret";
pub const HEARTBEAT_MS: u64 = 50;
pub const ELECTION_TIMEOUT_MS: u64 = 500;
/// Upper bound of every wait in these tests.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

/// The settings of a one-member group in `data_dir` with fast timers (no peer secret: it has no peers).
pub fn single_member_config(data_dir: &std::path::Path, snapshot_threshold: u64) -> RaftStoreConfig {
    RaftStoreConfig {
        node_id: 1,
        data_dir: data_dir.to_owned(),
        peers: BTreeMap::from([(1, "127.0.0.1:10082".to_owned())]),
        peer_listen_addr: "127.0.0.1:0".parse().expect("literal address"),
        cluster_secret: None,
        heartbeat_ms: 20,
        election_timeout_ms: 100,
        snapshot_threshold,
    }
}

/// A loopback port nobody listens on right now. The listener is closed again so that the member
/// can bind it; peers must know every address before any member starts.
pub fn free_loopback_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port");
    let addr = listener.local_addr().expect("local address of a bound listener");
    addr.to_string()
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub peers: BTreeMap<u64, String>,
    pub snapshot_threshold: u64,
    stores: BTreeMap<u64, Option<RaftStore>>,
}

impl Cluster {
    /// Open `size` fresh members (ids 1..=size) at once; they form the group by themselves.
    pub async fn start(size: u64, snapshot_threshold: u64) -> Cluster {
        let all: Vec<u64> = (1..=size).collect();
        Cluster::start_only(size, snapshot_threshold, &all).await
    }

    /// Configure `size` members (ids 1..=size) but open only those in `open`, at once; the others
    /// can be started later with [`Cluster::reopen`].
    pub async fn start_only(size: u64, snapshot_threshold: u64, open: &[u64]) -> Cluster {
        let peers: BTreeMap<u64, String> = (1..=size).map(|id| (id, free_loopback_addr())).collect();
        let mut cluster = Cluster {
            dir: tempfile::tempdir().expect("temp dir"),
            peers,
            snapshot_threshold,
            stores: BTreeMap::new(),
        };
        for id in 1..=size {
            cluster.stores.insert(id, None);
        }
        let opens = open.iter().map(|id| RaftStore::open(cluster.config(*id)));
        let opened = futures::future::join_all(opens).await;
        for (id, store) in open.iter().zip(opened) {
            cluster.stores.insert(*id, Some(store.expect("open a member")));
        }
        cluster
    }

    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("member-{id}"))
    }

    pub fn config(&self, id: u64) -> RaftStoreConfig {
        RaftStoreConfig {
            node_id: id,
            data_dir: self.data_dir(id),
            peers: self.peers.clone(),
            peer_listen_addr: self.peers[&id].parse().expect("a loopback socket address"),
            cluster_secret: Some(SECRET.to_owned()),
            heartbeat_ms: HEARTBEAT_MS,
            election_timeout_ms: ELECTION_TIMEOUT_MS,
            snapshot_threshold: self.snapshot_threshold,
        }
    }

    pub fn store(&self, id: u64) -> &RaftStore {
        self.stores
            .get(&id)
            .and_then(Option::as_ref)
            .unwrap_or_else(|| panic!("member {id} is not running"))
    }

    pub fn running(&self) -> Vec<u64> {
        self.stores
            .iter()
            .filter(|(_, store)| store.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    pub async fn stop(&mut self, id: u64) {
        if let Some(store) = self.stores.get_mut(&id).and_then(Option::take) {
            store.shutdown().await.expect("shut a member down");
        }
    }

    pub async fn reopen(&mut self, id: u64) {
        assert!(
            self.stores.get(&id).is_none_or(Option::is_none),
            "member {id} is running"
        );
        let started = Instant::now();
        // The port of the previous incarnation may take a moment to be released.
        let store = loop {
            match RaftStore::open(self.config(id)).await {
                Ok(store) => break store,
                Err(e) if started.elapsed() < DEADLINE => {
                    tracing::info!(error = %e, "reopen of member {id} failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("reopen member {id}: {e}"),
            }
        };
        self.stores.insert(id, Some(store));
    }

    /// Remove member `id`'s data directory (it must be stopped).
    pub fn wipe(&self, id: u64) {
        assert!(
            self.stores.get(&id).is_none_or(Option::is_none),
            "member {id} is running"
        );
        std::fs::remove_dir_all(self.data_dir(id)).expect("wipe the member's data directory");
    }

    /// Wait until the running members in `among` agree on one leader that is one of them.
    pub async fn leader_among(&self, among: &[u64]) -> u64 {
        let started = Instant::now();
        loop {
            let metrics: Vec<RaftStoreMetrics> = among.iter().map(|id| self.store(*id).metrics()).collect();
            let leaders: Vec<Option<u64>> = metrics.iter().map(|m| m.leader).collect();
            // Every member has received at least the leader's first entry of its term.
            let replicated = metrics.iter().all(|m| m.applied_index > 0);
            if let Some(Some(leader)) = leaders.first() {
                if replicated && among.contains(leader) && leaders.iter().all(|l| *l == Some(*leader)) {
                    let state = self.store(*leader).metrics().state;
                    if state == "leader" {
                        return *leader;
                    }
                }
            }
            assert!(
                started.elapsed() < DEADLINE,
                "no agreed leader among {among:?}: {leaders:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn leader(&self) -> u64 {
        self.leader_among(&self.running()).await
    }

    pub fn followers_of(&self, leader: u64) -> Vec<u64> {
        self.running().into_iter().filter(|id| *id != leader).collect()
    }

    /// Cut every member of `a` off from every member of `b`, both ways.
    pub fn partition(&self, a: &[u64], b: &[u64]) {
        for id in self.running() {
            let blocked: &[u64] = if a.contains(&id) {
                b
            } else if b.contains(&id) {
                a
            } else {
                &[]
            };
            self.store(id).set_blocked_peers(blocked);
        }
    }

    pub fn heal(&self) {
        for id in self.running() {
            self.store(id).set_blocked_peers(&[]);
        }
    }

    /// Wait until `condition` holds for member `id`'s metrics.
    pub async fn wait_metrics(
        &self,
        id: u64,
        what: &str,
        condition: impl Fn(&RaftStoreMetrics) -> bool,
    ) -> RaftStoreMetrics {
        let started = Instant::now();
        loop {
            let metrics = self.store(id).metrics();
            if condition(&metrics) {
                return metrics;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "member {id}: {what} not reached: {metrics:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait until every running member has applied the same revision and holds the same data under
    /// `prefix` (serializable reads, so each member answers from its own state).
    pub async fn wait_converged(&self, prefix: &str) -> Vec<KeyValue> {
        let started = Instant::now();
        loop {
            let mut views = Vec::new();
            for id in self.running() {
                let request = RangeRequest {
                    consistency: ReadConsistency::Serializable,
                    ..RangeRequest::prefix(prefix)
                };
                let response = self.store(id).range(request).await.expect("serializable range");
                views.push((response.header.revision, response.kvs));
            }
            if views.windows(2).all(|pair| pair[0] == pair[1]) {
                return views.pop().map(|(_, kvs)| kvs).unwrap_or_default();
            }
            let revisions: Vec<i64> = views.iter().map(|(revision, _)| *revision).collect();
            assert!(
                started.elapsed() < DEADLINE,
                "members did not converge: revisions {revisions:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn shutdown(mut self) {
        for id in self.running() {
            self.stop(id).await;
        }
    }
}

/// Put with retries on errors that say "try again" (a leader change), for test set-up steps.
pub async fn put_retrying(store: &RaftStore, key: &str, value: &str) -> PutResponse {
    let started = Instant::now();
    loop {
        match store.put(PutRequest::new(key, value)).await {
            Ok(response) => return response,
            Err(e) if e.is_retryable() && started.elapsed() < DEADLINE => {
                tracing::info!(error = %e, "put failed; retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("put {key}: {e}"),
        }
    }
}

pub async fn get(store: &RaftStore, key: &str) -> Option<KeyValue> {
    let response = store.range(RangeRequest::key(key)).await.expect("linearizable range");
    response.kvs.into_iter().next()
}
