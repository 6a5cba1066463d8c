//! The `delay` fault: with the peer links routed through the userspace proxies, turning the delay on
//! raises the latency of a linearizable write by about two one-way delays (the leader's append to a
//! follower and its answer), turning it off brings it back, and the group stays correct throughout.
//! Run against the embedded group and against etcd.
//!
//! Needs root, iproute2, iptables, the `kuboard` binary (`cargo build -p kuboard`) and etcd.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kuboard_jepsen::system::{Cluster, ClusterFeatures, ClusterOptions, SystemKind};

mod common;
use common::kuboard_binary;

const DELAY: Duration = Duration::from_millis(40);
const WRITES: usize = 15;

async fn client(endpoint: &str) -> etcd_client::Client {
    let options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(10));
    etcd_client::Client::connect([endpoint], Some(options))
        .await
        .expect("connect to the leader")
}

/// The median latency of `WRITES` puts through `client`, each followed by a linearizable read that
/// must see it.
async fn median_write(client: &mut etcd_client::Client, label: &str) -> Duration {
    let mut latencies = Vec::new();
    for round in 0..WRITES {
        let value = format!("{label}-{round}");
        let started = Instant::now();
        client
            .put("delay-test", value.clone(), None)
            .await
            .expect("a write succeeds");
        latencies.push(started.elapsed());
        let read = client
            .get("delay-test", None)
            .await
            .expect("a linearizable read succeeds");
        let seen = read.kvs().first().map(|kv| kv.value().to_vec()).unwrap_or_default();
        assert_eq!(seen, value.as_bytes(), "a read after an acknowledged write missed it");
    }
    latencies.sort();
    latencies[WRITES / 2]
}

async fn delay_raises_write_latency(kind: SystemKind) {
    let dir = tempfile::tempdir().expect("create a work dir");
    let options = ClusterOptions {
        kind,
        members: 3,
        kuboard_binary: kuboard_binary(),
        etcd_binary: PathBuf::from("/usr/bin/etcd"),
        work_dir: dir.path().join("members"),
    };
    let features = ClusterFeatures {
        delay_proxy: true,
        delay: DELAY,
        jitter: Duration::ZERO,
        ..ClusterFeatures::default()
    };
    let cluster = Cluster::start_with(&options, &features)
        .await
        .expect("the group forms through the proxies");
    assert!(
        cluster.peer_address(0).starts_with("198.19."),
        "{}",
        cluster.peer_address(0)
    );
    let leader = {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(leader) = cluster.find_leader().await {
                break leader;
            }
            assert!(Instant::now() < deadline, "no leader within 20 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let mut client = client(&cluster.endpoint(leader)).await;
    let control = cluster.delay_control().expect("the cluster has proxies").clone();

    let before = median_write(&mut client, "before").await;
    control.set(DELAY, Duration::ZERO);
    let delayed = median_write(&mut client, "delayed").await;
    control.clear();
    let after = median_write(&mut client, "after").await;
    eprintln!(
        "{kind:?}: median linearizable write {} ms without delay, {} ms with {} ms each way, {} ms after",
        before.as_millis(),
        delayed.as_millis(),
        DELAY.as_millis(),
        after.as_millis()
    );
    // A commit needs a follower's answer: one delayed chunk there and one back.
    assert!(
        delayed >= before + DELAY * 3 / 2,
        "delay did not show: {before:?} → {delayed:?}"
    );
    assert!(
        after < delayed - DELAY,
        "the latency stayed up after the delay was lifted: {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_on_the_peer_links_slows_the_embedded_groups_writes_and_lifts_again() {
    delay_raises_write_latency(SystemKind::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_on_the_peer_links_slows_etcds_writes_and_lifts_again() {
    delay_raises_write_latency(SystemKind::Etcd).await;
}

/// The embedded group needs the peer round trip below its heartbeat interval (openraft bounds each
/// append/heartbeat RPC by it): at the default 100 ms, 50 ms each way leaves it without a leader
/// (measured: 20 of 20 linearizable reads refused with "no leader"; etcd serves them in 105 ms). With
/// `KUBOARD_RAFT_HEARTBEAT_MS=250` (election timeout 2 s) it serves through 100 ms each way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_250_ms_heartbeat_the_embedded_group_serves_through_100_ms_of_delay() {
    let dir = tempfile::tempdir().expect("create a work dir");
    let options = ClusterOptions {
        kind: SystemKind::Embedded,
        members: 3,
        kuboard_binary: kuboard_binary(),
        etcd_binary: PathBuf::from("/usr/bin/etcd"),
        work_dir: dir.path().join("members"),
    };
    let features = ClusterFeatures {
        delay_proxy: true,
        member_env: vec![
            ("KUBOARD_RAFT_HEARTBEAT_MS".to_string(), "250".to_string()),
            ("KUBOARD_RAFT_ELECTION_TIMEOUT_MS".to_string(), "2000".to_string()),
        ],
        ..ClusterFeatures::default()
    };
    let cluster = Cluster::start_with(&options, &features)
        .await
        .expect("the group forms through the proxies");
    let control = cluster.delay_control().expect("the cluster has proxies").clone();
    control.set(Duration::from_millis(100), Duration::ZERO);
    // Let a few heartbeats pass at the new delay before measuring.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let leader = {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(leader) = cluster.find_leader().await {
                break leader;
            }
            assert!(Instant::now() < deadline, "no leader within 20 s under 100 ms delay");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let mut client = client(&cluster.endpoint(leader)).await;
    let delayed = median_write(&mut client, "slow-heartbeat").await;
    eprintln!(
        "Embedded, heartbeat 250 ms, 100 ms each way: median linearizable write {} ms",
        delayed.as_millis()
    );
    assert!(delayed >= Duration::from_millis(200), "{delayed:?}");
}
