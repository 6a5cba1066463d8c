//! `etcdctl check perf --load=s` against a three-replica group serving the etcd v3 API.
//!
//! A timed measurement, so it is not part of the default test run (Cargo.toml: `test = false`),
//! where it would share the machine with other suites: run it on a quiet machine with
//! `cargo test --test t46_check_perf -- --nocapture` (docs/etcd-api.md).

mod common;
mod etcdctl_support;

use std::time::{Duration, Instant};

use etcdctl_support::*;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_check_perf_small_load_passes_on_three_replicas() {
    let _serial = SERIAL.lock().await;
    init_tracing();
    tracing::info!("--- three replicas serving the etcd API");
    let embedded = EmbeddedGroup::start().await;
    let etcdctl = embedded.etcdctl();

    tracing::info!("--- etcdctl check perf --load=s through all three endpoints (about 60 s)");
    let started = Instant::now();
    let printed = etcdctl
        .run_with_input(&["check", "perf", "--load=s"], "", Duration::from_secs(180))
        .await;
    // The progress bar redraws one line; the verdicts are what is worth keeping.
    let verdicts: Vec<&str> = printed
        .stdout
        .split(['\n', '\r'])
        .filter(|line| {
            line.starts_with("PASS")
                || line.starts_with("FAIL")
                || line.contains("too long")
                || line.contains("too high")
        })
        .collect();
    println!(
        "etcdctl check perf --load=s against 3 replicas ({:.0} s):\n{}\n{}",
        started.elapsed().as_secs_f64(),
        verdicts.join("\n"),
        printed.stderr
    );
    if !printed.success {
        // Under CPU starvation a leader change is the usual cause; the replicas' warnings say.
        let logs = embedded.group.logs();
        let notable: Vec<&str> = logs
            .lines()
            .filter(|line| line.contains("WARN") || line.contains("ERROR") || line.contains("leader"))
            .collect();
        panic!(
            "check perf failed: {}\nverdicts: {verdicts:?}\nreplica warnings and leader changes (last 60):\n{}",
            printed.stderr,
            notable[notable.len().saturating_sub(60)..].join("\n")
        );
    }
    for verdict in ["PASS: Throughput", "PASS: Slowest request", "PASS: Stddev"] {
        assert!(
            verdicts.iter().any(|line| line.starts_with(verdict)),
            "{verdict} missing: {verdicts:?}"
        );
    }
    assert_eq!(verdicts.last(), Some(&"PASS"), "{verdicts:?}");

    tracing::info!("--- check perf leaves no key behind");
    let left = etcdctl
        .run(&["get", "/etcdctl-check-perf/", "--prefix", "--keys-only"])
        .await;
    assert!(left.success && left.stdout.is_empty(), "{left:?}");
    embedded.stop();
}
