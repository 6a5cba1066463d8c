//! Every fault kind in one random schedule: the 3-member embedded group with delay proxies and an
//! audit database, linearizable registers through the etcd API while the nemesis draws from all
//! kinds (partition, kill, pause, loss, delay, kill-leader, pause-leader, membership, audit-db). The
//! history must be linearizable, the group must recover, and everything is restored at the end.
//!
//! Needs root, iproute2, iptables, PostgreSQL 15 and the `kuboard` binary (`cargo build -p kuboard`).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kuboard_jepsen::checker::{check_register_history, SearchLimits};
use kuboard_jepsen::history::Outcome;
use kuboard_jepsen::nemesis::{self, features_for, FaultKind, NemesisOptions};
use kuboard_jepsen::system::{Cluster, ClusterOptions, SystemKind};
use kuboard_jepsen::workload::register::{self, Progress, RegisterOptions};

mod common;
use common::kuboard_binary;

const ALL_FAULTS: [FaultKind; 9] = [
    FaultKind::Partition,
    FaultKind::Kill,
    FaultKind::Pause,
    FaultKind::Loss,
    FaultKind::Delay,
    FaultKind::KillLeader,
    FaultKind::PauseLeader,
    FaultKind::Membership,
    FaultKind::AuditDb,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_stay_linearizable_under_a_random_schedule_of_every_fault_kind() {
    let dir = tempfile::tempdir().expect("create a work dir");
    let options = ClusterOptions {
        kind: SystemKind::Embedded,
        members: 3,
        kuboard_binary: kuboard_binary(),
        etcd_binary: PathBuf::from("/usr/bin/etcd"),
        work_dir: dir.path().join("members"),
    };
    let features = features_for(&ALL_FAULTS, SystemKind::Embedded);
    assert!(features.delay_proxy && features.audit.is_some());
    let mut cluster = Cluster::start_with(&options, &features)
        .await
        .expect("the group forms with proxies and an audit database");
    let endpoints: Vec<String> = (0..3).map(|index| cluster.endpoint(index)).collect();
    let names: Vec<String> = (0..3).map(|index| cluster.member_name(index).to_string()).collect();

    let started = Instant::now();
    let time_limit = Duration::from_secs(45);
    let recovery = Duration::from_secs(5);
    let deadline = started + time_limit;
    let faults_until = deadline - recovery;
    let nemesis_options = NemesisOptions {
        faults: ALL_FAULTS.to_vec(),
        quiet: Duration::from_millis(500),
        hold: Duration::from_secs(3),
    };
    let workload = register::run(
        RegisterOptions::default(),
        endpoints,
        names,
        started,
        deadline,
        Arc::new(Progress::default()),
    );
    let current = Arc::new(Mutex::new(String::new()));
    let nemesis = nemesis::run(&mut cluster, &nemesis_options, started, faults_until, current);
    let (history, timeline) = tokio::join!(workload, nemesis);
    let timeline = timeline.expect("the nemesis heals");

    let kinds: BTreeSet<&str> = timeline
        .iter()
        .filter(|event| event.action == "start")
        .map(|event| event.fault.as_str())
        .collect();
    let errors: Vec<&str> = timeline
        .iter()
        .filter(|event| event.action == "error" || event.action == "skipped")
        .map(|event| event.detail.as_str())
        .collect();
    let ok = history.iter().filter(|op| op.outcome == Outcome::Ok).count();
    let ok_after = history
        .iter()
        .filter(|op| op.outcome == Outcome::Ok && op.invoke_ns > faults_until.duration_since(started).as_nanos() as u64)
        .count();
    eprintln!(
        "{} faults of kinds {kinds:?}; {} operations, {ok} ok, {ok_after} ok after the faults; errors: {errors:?}",
        timeline.iter().filter(|event| event.action == "start").count(),
        history.len()
    );
    for event in &timeline {
        eprintln!(
            "  {:>6.1} s {} {} {}",
            event.time_ns as f64 / 1e9,
            event.fault,
            event.action,
            event.detail
        );
    }
    assert!(kinds.len() >= 4, "too few fault kinds drawn: {kinds:?}");
    assert!(errors.is_empty(), "faults failed: {errors:?}");
    assert!(ok_after > 0, "the group did not recover");

    let verdict = check_register_history(&history, SearchLimits::default());
    assert!(verdict.valid, "{:#?}", verdict.anomalies);

    // Everything is restored: all members run and vote, the database is up.
    for index in 0..3 {
        assert!(cluster.is_running(index) && !cluster.is_paused(index) && !cluster.is_removed(index));
    }
    assert!(cluster.audit_db_is_up());
    assert_eq!(
        cluster.delay_control().expect("proxies").get(),
        (Duration::ZERO, Duration::ZERO)
    );
    cluster
        .wait_ready(Duration::from_secs(60))
        .await
        .expect("every member answers after the run");
    assert!(cluster.crashed_members().is_empty());
}
