//! The checker must be able to fail. The same short partition run against the 3-member embedded group
//! twice: with serializable reads served by any member (unsafe on purpose) the register checker must
//! report stale reads; with linearizable reads it must find none.
//!
//! Needs root, iproute2, iptables and the `kuboard` binary next to this test's target directory
//! (`cargo build -p kuboard`; `cargo test --workspace` builds it).

use std::path::PathBuf;
use std::time::Duration;

use kuboard_jepsen::checker::SearchLimits;
use kuboard_jepsen::nemesis::{FaultKind, NemesisOptions};
use kuboard_jepsen::run::{run_test, RunVerdict, TestOptions};
use kuboard_jepsen::system::SystemKind;
use kuboard_jepsen::workload::register::{ReadMode, RegisterOptions};

mod common;
use common::kuboard_binary;

async fn partition_run(read_mode: ReadMode, out_dir: PathBuf) -> RunVerdict {
    let options = TestOptions {
        kind: SystemKind::Embedded,
        members: 3,
        kuboard_binary: kuboard_binary(),
        etcd_binary: PathBuf::from("/usr/bin/etcd"),
        register: RegisterOptions {
            read_mode,
            ..RegisterOptions::default()
        },
        nemesis: NemesisOptions {
            faults: vec![FaultKind::Partition],
            quiet: Duration::from_secs(1),
            hold: Duration::from_secs(5),
        },
        time_limit: Duration::from_secs(20),
        recovery: Duration::from_secs(3),
        out_dir,
        limits: SearchLimits::default(),
        progress_every: None,
    };
    run_test(&options).await.expect("the test run completes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serializable_reads_from_any_member_are_caught_as_stale_under_partitions() {
    let dir = tempfile::tempdir().expect("create a run directory");
    let verdict = partition_run(ReadMode::SerializableAnyMember, dir.path().to_path_buf()).await;
    assert!(verdict.faults_injected >= 2, "{verdict:#?}");
    assert!(verdict.anomaly, "the checker missed the stale reads: {verdict:#?}");
    // The offending operation is a read (only reads are unsafe in this mode).
    let anomaly = &verdict.register.anomalies[0];
    assert!(
        matches!(
            anomaly.operation.call,
            kuboard_jepsen::history::RegisterCall::Read { .. }
        ),
        "{anomaly:#?}"
    );
    let written = std::fs::read_to_string(dir.path().join("verdict.json")).expect("verdict.json is written");
    assert!(written.contains("\"anomaly\": true"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linearizable_reads_stay_linearizable_under_the_same_partitions() {
    let dir = tempfile::tempdir().expect("create a run directory");
    let verdict = partition_run(ReadMode::Linearizable, dir.path().to_path_buf()).await;
    assert!(verdict.faults_injected >= 2, "{verdict:#?}");
    assert!(verdict.valid, "{:#?}", verdict.register.anomalies);
    assert!(verdict.outcomes.ok > 500, "{verdict:#?}");
    assert!(
        verdict.ok_after_faults > 0,
        "the group did not recover after the faults: {verdict:#?}"
    );
    for file in ["history.jsonl", "timeline.jsonl", "verdict.json"] {
        assert!(dir.path().join(file).is_file(), "{file} is missing");
    }
}
