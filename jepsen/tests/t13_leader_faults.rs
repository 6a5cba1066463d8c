//! The leader-targeted faults: `kill-leader` kills exactly the member that leads (the timeline names
//! it), `pause-leader` stops exactly it; in both cases the rest elects a new leader and keeps taking
//! writes while the fault holds, and the old leader is back when it ends.
//!
//! Needs root, iproute2, iptables and the `kuboard` binary (`cargo build -p kuboard`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kuboard_jepsen::nemesis::{self, FaultKind, NemesisOptions, TimelineEvent};
use kuboard_jepsen::system::{Cluster, ClusterOptions, SystemKind};

mod common;
use common::kuboard_binary;

const HOLD: Duration = Duration::from_secs(6);

async fn wait_leader(cluster: &Cluster) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(leader) = cluster.find_leader().await {
            return leader;
        }
        assert!(Instant::now() < deadline, "no leader within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Write through every endpoint but the old leader's until `until`; returns the times (since
/// `started`) of the acknowledged writes.
async fn write_through(endpoints: Vec<String>, started: Instant, until: Instant) -> Vec<Duration> {
    let options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_millis(500))
        .with_timeout(Duration::from_secs(1));
    let mut acknowledged = Vec::new();
    let mut round = 0u64;
    while Instant::now() < until {
        round += 1;
        let endpoint = &endpoints[round as usize % endpoints.len()];
        let attempt = async {
            let mut client = etcd_client::Client::connect([endpoint.as_str()], Some(options.clone())).await?;
            client.put("leader-fault", round.to_string(), None).await
        };
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), attempt).await {
            acknowledged.push(started.elapsed());
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    acknowledged
}

fn event<'a>(timeline: &'a [TimelineEvent], fault: &str, action: &str) -> &'a TimelineEvent {
    timeline
        .iter()
        .find(|event| event.fault == fault && event.action == action)
        .unwrap_or_else(|| panic!("no {fault} {action} in {timeline:#?}"))
}

async fn leader_fault(kind: FaultKind, verb: &str) {
    let dir = tempfile::tempdir().expect("create a work dir");
    let options = ClusterOptions {
        kind: SystemKind::Embedded,
        members: 3,
        kuboard_binary: kuboard_binary(),
        etcd_binary: PathBuf::from("/usr/bin/etcd"),
        work_dir: dir.path().join("members"),
    };
    let mut cluster = Cluster::start(&options).await.expect("the group forms");
    let leader = wait_leader(&cluster).await;
    let leader_name = cluster.member_name(leader).to_string();
    let survivors: Vec<String> = (0..3)
        .filter(|index| *index != leader)
        .map(|index| cluster.endpoint(index))
        .collect();

    let started = Instant::now();
    // One round: 300 ms quiet, then the fault held for HOLD.
    let quiet = Duration::from_millis(300);
    let until = started + quiet + HOLD;
    let nemesis_options = NemesisOptions {
        faults: vec![kind],
        quiet,
        hold: HOLD,
    };
    let current = Arc::new(Mutex::new(String::new()));
    let (timeline, acknowledged) = tokio::join!(
        nemesis::run(&mut cluster, &nemesis_options, started, until, current),
        write_through(survivors, started, until)
    );
    let timeline = timeline.expect("the nemesis heals");
    let start = event(&timeline, kind.name(), "start");
    assert_eq!(
        start.detail,
        format!("{verb} leader {leader_name}"),
        "the fault hit another member"
    );
    let stop = event(&timeline, kind.name(), "stop");
    let during: Vec<&Duration> = acknowledged
        .iter()
        .filter(|at| at.as_nanos() as u64 > start.time_ns && (at.as_nanos() as u64) < stop.time_ns)
        .collect();
    eprintln!(
        "{}: {} writes acknowledged by the survivors while {leader_name} was out; first {:?} after the fault",
        kind.name(),
        during.len(),
        during
            .first()
            .map(|at| at.saturating_sub(Duration::from_nanos(start.time_ns)))
    );
    assert!(
        !during.is_empty(),
        "no write succeeded while the leader was out: {timeline:#?}"
    );
    assert!(cluster.is_running(leader) && !cluster.is_paused(leader));
    cluster
        .wait_ready(Duration::from_secs(30))
        .await
        .expect("every member answers again after the fault");
    assert!(cluster.crashed_members().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_leader_kills_the_leader_and_the_rest_keeps_writing() {
    leader_fault(FaultKind::KillLeader, "kill -9").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_leader_stops_the_leader_and_the_rest_keeps_writing() {
    leader_fault(FaultKind::PauseLeader, "SIGSTOP").await;
}
