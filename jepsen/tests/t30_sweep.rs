//! The short sweep of the default suite: the main workloads (register, set, watch, http) at once
//! against the 3-member embedded group, one run per fault type (partition, kill, pause), about 2 minutes
//! each. Every run must be valid, must really have injected its faults, and every workload must have
//! acknowledged operations after the faults ended (the group recovered).
//!
//! The three runs share the machine's two cores, so they run one after the other (a lock), not in
//! parallel. Needs root, iproute2, iptables and the `kuboard` binary next to this test's target
//! directory (`cargo build -p kuboard`; `cargo test --workspace` builds it).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kuboard_jepsen::checker::SearchLimits;
use kuboard_jepsen::nemesis::{FaultKind, NemesisOptions};
use kuboard_jepsen::run::{run_workloads, RunVerdict, TestOptions, WorkloadOptions};
use kuboard_jepsen::system::SystemKind;
use kuboard_jepsen::workload::register::RegisterOptions;
use kuboard_jepsen::workload::WorkloadKind;

/// One run at a time: each starts three members and a dozen clients on a 2-core machine.
static ONE_RUN_AT_A_TIME: Mutex<()> = Mutex::new(());

const TIME_LIMIT: Duration = Duration::from_secs(120);
const RECOVERY: Duration = Duration::from_secs(12);
const WORKLOADS: [WorkloadKind; 4] = [
    WorkloadKind::Register,
    WorkloadKind::Set,
    WorkloadKind::Watch,
    WorkloadKind::Http,
];

/// Fail at once, and say why, when the run cannot work here.
fn preflight() -> PathBuf {
    let uid = std::process::Command::new("id")
        .arg("-u")
        .output()
        .expect("run `id -u`");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "the sweep needs root (network namespaces, iptables); run the suite as root"
    );
    for tool in ["ip", "iptables", "iptables-restore"] {
        let found = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|output| output.status.success());
        assert!(
            found,
            "`{tool}` is missing: install iproute2 and iptables (scripts/install-deps.sh test)"
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

fn sweep_run(fault: FaultKind, out_dir: &Path) -> RunVerdict {
    let kuboard_binary = preflight();
    let _turn = ONE_RUN_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let options = TestOptions {
        kind: SystemKind::Embedded,
        members: 3,
        kuboard_binary,
        etcd_binary: PathBuf::from("/usr/bin/etcd"),
        register: RegisterOptions {
            clients: 4,
            ..RegisterOptions::default()
        },
        nemesis: NemesisOptions {
            faults: vec![fault],
            quiet: Duration::from_secs(4),
            hold: Duration::from_secs(6),
        },
        time_limit: TIME_LIMIT,
        recovery: RECOVERY,
        out_dir: out_dir.to_path_buf(),
        limits: SearchLimits::default(),
        progress_every: None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("start a runtime");
    let started = Instant::now();
    let verdict = runtime
        .block_on(run_workloads(&options, &WorkloadOptions::of(&WORKLOADS)))
        .expect("the run completes (the group starts, the network is built)");
    eprintln!(
        "{fault:?}: {} operations (ok {}, fail {}, info {}), {} faults, {} ok after the faults, valid {}, {:.0} s",
        verdict.operations,
        verdict.outcomes.ok,
        verdict.outcomes.fail,
        verdict.outcomes.info,
        verdict.faults_injected,
        verdict.ok_after_faults,
        verdict.valid,
        started.elapsed().as_secs_f64()
    );
    verdict
}

/// Acknowledged operations per workload that started after the fault window closed.
fn ok_after_faults_by_workload(out_dir: &Path) -> std::collections::BTreeMap<String, usize> {
    let faults_end_ns = (TIME_LIMIT - RECOVERY).as_nanos() as u64;
    let history = std::fs::read_to_string(out_dir.join("history.jsonl")).expect("history.jsonl is written");
    let mut counts = std::collections::BTreeMap::new();
    for line in history.lines() {
        let op: serde_json::Value = serde_json::from_str(line).expect("a history line is JSON");
        let after = op["invoke_ns"].as_u64().expect("invoke_ns") > faults_end_ns;
        if after && op["outcome"] == "ok" {
            *counts
                .entry(op["workload"].as_str().expect("workload").to_string())
                .or_insert(0) += 1;
        }
    }
    counts
}

fn assert_sweep_run(fault: FaultKind, fault_name: &str) {
    let dir = tempfile::tempdir().expect("create a run directory");
    let verdict = sweep_run(fault, dir.path());
    let summary = serde_json::to_string_pretty(&verdict).expect("encode the verdict");
    assert!(
        verdict.valid && !verdict.anomaly,
        "{fault_name}: checkers that failed: {:?}\n{summary}",
        verdict.failed_workloads()
    );
    // The faults really happened: at least five started, none failed to start or stop.
    let timeline = std::fs::read_to_string(dir.path().join("timeline.jsonl")).expect("timeline.jsonl is written");
    let started = timeline
        .lines()
        .filter(|line| line.contains(&format!("\"fault\":\"{fault_name}\"")) && line.contains("\"action\":\"start\""))
        .count();
    assert!(started >= 5, "{fault_name}: only {started} faults started:\n{timeline}");
    assert!(!timeline.contains("\"action\":\"error\""), "{timeline}");
    // Every workload worked during and after the faults.
    for (workload, counts) in &verdict.per_workload {
        assert!(
            counts.ok > 50,
            "{fault_name}: {workload} acknowledged only {} operations",
            counts.ok
        );
    }
    let after = ok_after_faults_by_workload(dir.path());
    for workload in ["register", "set", "watch", "http"] {
        let count = after.get(workload).copied().unwrap_or(0);
        assert!(
            count >= 5,
            "{fault_name}: {workload} acknowledged {count} operations after the faults: {after:?}"
        );
    }
    let set = verdict.set.as_ref().expect("the set verdict");
    assert!(set.acknowledged > 100 && set.lost.is_empty(), "{set:?}");
    let watch = verdict.watch.as_ref().expect("the watch verdict");
    assert!(
        watch.puts_acknowledged > 50 && watch.fence_revision.is_some() && watch.checker.watchers == 3,
        "{watch:?}"
    );
    let http = verdict.http.as_ref().expect("the http verdict");
    assert!(
        http.logged_in && http.creates_acknowledged > 20 && http.session_valid_on.len() == 3,
        "{http:?}"
    );
    for file in [
        "history.jsonl",
        "timeline.jsonl",
        "verdict.json",
        "watchers.jsonl",
        "latency.svg",
        "throughput.svg",
        "index.html",
    ] {
        assert!(dir.path().join(file).is_file(), "{file} is missing");
    }
    let html = std::fs::read_to_string(dir.path().join("index.html")).expect("read index.html");
    assert!(html.contains("valid") && html.contains("latency.svg") && html.contains(fault_name));
}

#[test]
fn main_workloads_stay_valid_under_partitions() {
    assert_sweep_run(FaultKind::Partition, "partition");
}

#[test]
fn main_workloads_stay_valid_under_kill_9() {
    assert_sweep_run(FaultKind::Kill, "kill");
}

#[test]
fn main_workloads_stay_valid_under_sigstop() {
    assert_sweep_run(FaultKind::Pause, "pause");
}
