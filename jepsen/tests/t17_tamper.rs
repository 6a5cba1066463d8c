//! The `tamper` fault: the proxies on the peer links flip bytes in, inject bytes into, or replay 2%
//! of the chunks between the members of the 3-member embedded group, in bursts. The members must
//! refuse the altered traffic (their `kuboard_raft_peer_forged_frames_total` counts it), the register
//! and set workloads must stay valid (linearizable, nothing acknowledged lost), and the group must
//! serve again once the tampering stops. A short run (about 35 s) so that it fits the default suite;
//! `scripts/jepsen-runs.sh` runs it for 300 s.
//!
//! Needs root, iproute2, iptables and the `kuboard` binary next to this test's target directory
//! (`cargo build -p kuboard`; `cargo test --workspace` builds it).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kuboard_jepsen::checker::SearchLimits;
use kuboard_jepsen::nemesis::{FaultKind, NemesisOptions};
use kuboard_jepsen::run::{run_workloads, TestOptions, WorkloadOptions};
use kuboard_jepsen::system::SystemKind;
use kuboard_jepsen::workload::register::RegisterOptions;
use kuboard_jepsen::workload::WorkloadKind;

mod common;
use common::kuboard_binary;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_refuses_tampered_peer_traffic_and_stays_linearizable() {
    let dir = tempfile::tempdir().expect("create a run directory");
    let options = TestOptions {
        kind: SystemKind::Embedded,
        members: 3,
        kuboard_binary: kuboard_binary(),
        etcd_binary: PathBuf::from("/usr/bin/etcd"),
        register: RegisterOptions {
            clients: 4,
            ..RegisterOptions::default()
        },
        nemesis: NemesisOptions {
            faults: vec![FaultKind::Tamper],
            quiet: Duration::from_secs(2),
            hold: Duration::from_secs(5),
        },
        time_limit: Duration::from_secs(35),
        recovery: Duration::from_secs(8),
        out_dir: dir.path().to_path_buf(),
        limits: SearchLimits::default(),
        progress_every: None,
    };
    let started = Instant::now();
    let verdict = run_workloads(
        &options,
        &WorkloadOptions::of(&[WorkloadKind::Register, WorkloadKind::Set]),
    )
    .await
    .expect("the run completes (the group starts, the network is built)");
    let summary = serde_json::to_string_pretty(&verdict).expect("encode the verdict");
    eprintln!(
        "tamper: {} operations (ok {}, fail {}, info {}), {} faults, {} ok after the faults, valid {}, {:.0} s; {:?}",
        verdict.operations,
        verdict.outcomes.ok,
        verdict.outcomes.fail,
        verdict.outcomes.info,
        verdict.faults_injected,
        verdict.ok_after_faults,
        verdict.valid,
        started.elapsed().as_secs_f64(),
        verdict.tamper,
    );

    assert!(
        verdict.valid && !verdict.anomaly,
        "checkers that failed: {:?}\n{summary}",
        verdict.failed_workloads()
    );
    let timeline = std::fs::read_to_string(dir.path().join("timeline.jsonl")).expect("timeline.jsonl is written");
    let bursts = timeline
        .lines()
        .filter(|line| line.contains("\"fault\":\"tamper\"") && line.contains("\"action\":\"start\""))
        .count();
    assert!(bursts >= 3, "only {bursts} tamper bursts started:\n{timeline}");
    assert!(!timeline.contains("\"action\":\"error\""), "{timeline}");

    let tamper = verdict.tamper.as_ref().expect("the tamper verdict");
    assert_eq!(tamper.members_read, 3, "{tamper:?}");
    let altered = tamper.chunks_flipped + tamper.chunks_injected + tamper.chunks_replayed;
    assert!(altered >= 10, "the proxies altered only {altered} chunks: {tamper:?}");
    assert!(
        tamper.forged_frames_refused > 0,
        "the members refused no peer frame although {altered} chunks were altered: {tamper:?}"
    );
    assert!(
        verdict.ok_after_faults >= 10,
        "the group did not serve after the tampering:\n{summary}"
    );
    let set = verdict.set.as_ref().expect("the set verdict");
    assert!(set.acknowledged > 20 && set.lost.is_empty(), "{set:?}");
}
