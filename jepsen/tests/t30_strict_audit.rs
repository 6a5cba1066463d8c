//! The strict-audit workload against the 3-member embedded group with a PostgreSQL audit database that
//! the nemesis kills and restarts: no acknowledged change without its audit event, no change refused
//! with `audit_unavailable` that happened all the same. The database must really have been down
//! (refusals seen) and changes must succeed again after it is back.
//!
//! Needs root, iproute2, iptables, PostgreSQL 15 (`/usr/lib/postgresql/15/bin`) and the `kuboard`
//! binary next to this test's target directory (`cargo build -p kuboard`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use kuboard_jepsen::checker::SearchLimits;
use kuboard_jepsen::nemesis::{FaultKind, NemesisOptions};
use kuboard_jepsen::run::{run_workloads, TestOptions, WorkloadOptions};
use kuboard_jepsen::system::SystemKind;
use kuboard_jepsen::workload::register::RegisterOptions;
use kuboard_jepsen::workload::WorkloadKind;

const TIME_LIMIT: Duration = Duration::from_secs(45);
const RECOVERY: Duration = Duration::from_secs(10);

fn preflight() -> PathBuf {
    let uid = std::process::Command::new("id")
        .arg("-u")
        .output()
        .expect("run `id -u`");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "this test needs root (network namespaces, iptables); run the suite as root"
    );
    for program in [
        "/usr/lib/postgresql/15/bin/postgres",
        "/usr/lib/postgresql/15/bin/initdb",
    ] {
        assert!(
            Path::new(program).is_file(),
            "{program} is missing: install PostgreSQL 15 (scripts/install-deps.sh test)"
        );
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    let binary = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test executable lives in target/<profile>/deps")
        .join("kuboard");
    assert!(
        binary.is_file(),
        "{} is missing: build it first with `cargo build -p kuboard`",
        binary.display()
    );
    binary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_change_runs_without_its_audit_event_while_the_audit_database_dies() {
    let kuboard_binary = preflight();
    let dir = tempfile::tempdir().expect("create a run directory");
    let options = TestOptions {
        kind: SystemKind::Embedded,
        members: 3,
        kuboard_binary,
        etcd_binary: PathBuf::from("/usr/bin/etcd"),
        register: RegisterOptions::default(),
        nemesis: NemesisOptions {
            faults: vec![FaultKind::AuditDb],
            quiet: Duration::from_secs(3),
            hold: Duration::from_secs(5),
        },
        time_limit: TIME_LIMIT,
        recovery: RECOVERY,
        out_dir: dir.path().to_path_buf(),
        limits: SearchLimits::default(),
        progress_every: None,
    };
    let verdict = run_workloads(&options, &WorkloadOptions::of(&[WorkloadKind::StrictAudit]))
        .await
        .expect("the run completes (the group and the audit database start)");
    let audit = verdict.strict_audit.as_ref().expect("the strict-audit verdict");
    eprintln!("{audit:?}; {} faults", verdict.faults_injected);
    assert!(verdict.valid && audit.valid, "{audit:#?}");
    assert!(verdict.faults_injected >= 3, "{verdict:#?}");
    // The database was really down: changes were refused; and it was really up: changes went through,
    // each with its event.
    assert!(audit.creates_refused_audit_unavailable > 0, "{audit:#?}");
    assert!(audit.creates_acknowledged > 30, "{audit:#?}");
    assert!(audit.requests_with_events >= audit.creates_acknowledged, "{audit:#?}");
    assert!(
        verdict.ok_after_faults >= 5,
        "no change succeeded after the database came back: {verdict:#?}"
    );
    for file in [
        "history.jsonl",
        "verdict.json",
        "timeline.jsonl",
        "index.html",
        "latency.svg",
    ] {
        assert!(dir.path().join(file).is_file(), "{file} is missing");
    }
}
