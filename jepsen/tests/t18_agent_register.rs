//! The agent-register workload: registers as ConfigMaps of a cluster whose apiserver (the fake of
//! `testkit/`) listens on the loopback of a namespace of its own, reached by the 3 members of the
//! embedded group only through `kuboard agent` in that namespace. Clients read, write and
//! compare-and-set (PUT with the resourceVersion read) through the members' Kubernetes proxy while
//! the nemesis kills members, partitions them, and cuts the agent off from one member (which then
//! serves the cluster through a peer). The history must be linearizable and the proxy must serve
//! again once the faults end. A short run (about 60 s with the set-up) for the default suite;
//! docs/jepsen.md has the longer command.
//!
//! The checker must be able to fail on this workload too: the same clients with a compare-and-set
//! that writes without the resourceVersion (unsafe on purpose, `CasMode::Blind`), without faults,
//! must be reported as not linearizable (about 25 s). The two runs take turns.
//!
//! Needs root, iproute2, iptables, and the `kuboard` and `kuboard-fake-apiserver` binaries next to
//! this test's target directory (`cargo build -p kuboard -p kuboard-testkit --bins`;
//! `cargo test --workspace` builds both).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kuboard_jepsen::checker::SearchLimits;
use kuboard_jepsen::nemesis::{FaultKind, NemesisOptions};
use kuboard_jepsen::run::{run_workloads, TestOptions, WorkloadOptions};
use kuboard_jepsen::system::SystemKind;
use kuboard_jepsen::workload::agent_register::CasMode;
use kuboard_jepsen::workload::register::RegisterOptions;
use kuboard_jepsen::workload::WorkloadKind;

mod common;
use common::kuboard_binary;

/// One run at a time: each starts three members, the agent site and the clients on a 2-core machine.
static ONE_RUN_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The `kuboard` and `kuboard-fake-apiserver` binaries.
fn binaries() -> (PathBuf, PathBuf) {
    let kuboard = kuboard_binary();
    let fake = kuboard.with_file_name("kuboard-fake-apiserver");
    assert!(
        fake.is_file(),
        "{} is missing: build it first with `cargo build -p kuboard-testkit --bins`",
        fake.display()
    );
    (kuboard, fake)
}

/// A run of the agent-register workload alone against 3 members.
fn agent_run(
    dir: &Path,
    faults: Vec<FaultKind>,
    hold: Duration,
    time_limit: Duration,
    recovery: Duration,
) -> (TestOptions, WorkloadOptions) {
    let (kuboard, fake) = binaries();
    let options = TestOptions {
        kind: SystemKind::Embedded,
        members: 3,
        kuboard_binary: kuboard,
        etcd_binary: PathBuf::from("/usr/bin/etcd"),
        register: RegisterOptions::default(),
        nemesis: NemesisOptions {
            faults,
            quiet: Duration::from_secs(2),
            hold,
        },
        time_limit,
        recovery,
        out_dir: dir.to_path_buf(),
        limits: SearchLimits::default(),
        progress_every: None,
    };
    let mut workloads = WorkloadOptions::of(&[WorkloadKind::AgentRegister]);
    workloads.fake_apiserver_binary = Some(fake);
    (options, workloads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_through_the_agent_stay_linearizable_under_kills_and_partitions() {
    let _turn = ONE_RUN_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("create a run directory");
    // Three rounds of 14 s (one of each fault: the schedule draws every kind once per cycle), then
    // 8 s without faults. A fault holds long enough for the member cut off from the agent to notice
    // its tunnel is dead (the keepalive takes up to 10 s) and serve through a peer for a while.
    let (options, workloads) = agent_run(
        dir.path(),
        vec![FaultKind::Kill, FaultKind::Partition, FaultKind::AgentLink],
        Duration::from_secs(12),
        Duration::from_secs(52),
        Duration::from_secs(8),
    );
    let started = Instant::now();
    let verdict = run_workloads(&options, &workloads)
        .await
        .expect("the run completes (the group, the agent site and the network start)");
    let summary = serde_json::to_string_pretty(&verdict).expect("encode the verdict");
    let agent = verdict.agent_register.as_ref().expect("the agent-register verdict");
    let timeline = std::fs::read_to_string(dir.path().join("timeline.jsonl")).expect("timeline.jsonl is written");
    let faults: Vec<&str> = timeline
        .lines()
        .filter(|line| line.contains("\"action\":\"start\""))
        .filter_map(|line| line.split("\"detail\":\"").nth(1))
        .filter_map(|detail| detail.split('"').next())
        .collect();
    eprintln!(
        "agent-register: {} operations (ok {}, fail {}, info {}), {} keys, changes answered 503: {}, 502: {}; \
         {} of {} operations on the member cut from the agent acknowledged; forwards {:?}; \
         {} faults {faults:?}; {} ok after the faults; valid {}; {:.0} s",
        verdict.operations,
        verdict.outcomes.ok,
        verdict.outcomes.fail,
        verdict.outcomes.info,
        agent.register.keys,
        agent.changes_answered_503,
        agent.changes_answered_502,
        agent.ok_on_cut_member,
        agent.ops_on_cut_member,
        agent.peer_forwards,
        verdict.faults_injected,
        verdict.ok_after_faults,
        verdict.valid,
        started.elapsed().as_secs_f64(),
    );

    assert!(
        verdict.valid && !verdict.anomaly,
        "checkers that failed: {:?}\n{summary}",
        verdict.failed_workloads()
    );
    assert!(agent.register.valid && agent.register.keys >= 3, "{summary}");
    assert!(
        verdict.faults_injected >= 3,
        "only {} faults:\n{timeline}",
        verdict.faults_injected
    );
    for kind in ["kill", "partition", "agent-link"] {
        assert!(
            timeline.contains(&format!("\"fault\":\"{kind}\",\"action\":\"start\"")),
            "no {kind} fault started:\n{timeline}"
        );
    }
    // Requests sent to the member cut off from the agent after the cut could only pass through a
    // peer's tunnel.
    assert_eq!(agent.agent_link_faults, 1, "{summary}");
    assert!(
        agent.ok_on_cut_member >= 5,
        "the member cut off from the agent did not serve through a peer:\n{summary}"
    );
    assert!(!timeline.contains("\"action\":\"error\""), "{timeline}");
    assert!(
        verdict.outcomes.ok >= 200,
        "too few acknowledged operations:\n{summary}"
    );
    assert!(
        verdict.ok_after_faults >= 20,
        "the proxy did not serve the agent cluster after the faults:\n{summary}"
    );
    // Every kind of operation was acknowledged at least once (a workload that only ever failed its
    // writes would be linearizable for nothing).
    let history = std::fs::read_to_string(dir.path().join("history.jsonl")).expect("history.jsonl is written");
    for f in ["read", "write", "cas"] {
        let acknowledged = history
            .lines()
            .filter(|line| line.contains("\"workload\":\"agent-register\""))
            .filter(|line| line.contains(&format!("\"f\":\"{f}\"")))
            .filter(|line| line.contains("\"outcome\":\"ok\""))
            .count();
        assert!(acknowledged >= 10, "only {acknowledged} {f} acknowledged:\n{summary}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compare_and_set_without_the_resource_version_is_caught() {
    let _turn = ONE_RUN_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("create a run directory");
    let (options, mut workloads) = agent_run(
        dir.path(),
        Vec::new(),
        Duration::from_secs(2),
        Duration::from_secs(20),
        Duration::ZERO,
    );
    workloads.agent.cas_mode = CasMode::Blind;
    let verdict = run_workloads(&options, &workloads).await.expect("the run completes");
    let agent = verdict.agent_register.as_ref().expect("the agent-register verdict");
    eprintln!(
        "blind compare-and-set: {} operations (ok {}), {} keys, {} not linearizable",
        verdict.operations,
        verdict.outcomes.ok,
        agent.register.keys,
        agent.register.anomalies.len()
    );
    assert!(
        verdict.anomaly && agent.register.anomaly,
        "the checker missed the lost updates: {:#?}",
        agent.register
    );
    assert_eq!(verdict.failed_workloads(), vec!["agent-register"]);
    let written = std::fs::read_to_string(dir.path().join("verdict.json")).expect("verdict.json is written");
    assert!(written.contains("\"cas_mode\": \"blind\""), "{written}");
}
