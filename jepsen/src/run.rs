//! One test run: start the system, run the workload under the nemesis, heal, check, write the run
//! directory.
//!
//! The run directory holds `history.jsonl` (one line per operation), `verdict.json` (the checker's
//! verdict with the offending operations), `timeline.jsonl` (the faults) and `members/` (each
//! member's data directory and log).

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::checker::{check_register_history, RegisterVerdict, SearchLimits};
use crate::history::{write_jsonl, Outcome, RegisterOp};
use crate::nemesis::{self, FaultKind, NemesisOptions, TimelineEvent};
use crate::system::{Cluster, ClusterOptions, SystemKind};
use crate::workload::register::{self, Progress, ReadMode, RegisterOptions};

#[derive(Debug, Clone)]
pub struct TestOptions {
    pub kind: SystemKind,
    pub members: usize,
    pub kuboard_binary: PathBuf,
    pub etcd_binary: PathBuf,
    pub register: RegisterOptions,
    pub nemesis: NemesisOptions,
    /// How long the clients run.
    pub time_limit: Duration,
    /// The last part of the run is free of faults, so that the history shows the system recover.
    pub recovery: Duration,
    pub out_dir: PathBuf,
    pub limits: SearchLimits,
    /// Print a progress line this often (none when `None`).
    pub progress_every: Option<Duration>,
}

/// Operation counts by outcome.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct OutcomeCounts {
    pub ok: usize,
    pub fail: usize,
    pub info: usize,
}

/// What `verdict.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct RunVerdict {
    /// True when the checker found every key linearizable and no member exited by itself.
    pub valid: bool,
    /// True when the checker found a definite anomaly or a member exited by itself.
    pub anomaly: bool,
    /// Members that exited without being killed by the nemesis, with their exit status.
    pub members_exited: Vec<String>,
    pub system: SystemKind,
    pub members: usize,
    pub workload: &'static str,
    pub read_mode: ReadMode,
    pub nemesis: Vec<FaultKind>,
    pub time_limit_s: f64,
    pub operations: usize,
    pub outcomes: OutcomeCounts,
    /// Acknowledged operations in the fault-free tail of the run: zero means the system never recovered.
    pub ok_after_faults: usize,
    pub faults_injected: usize,
    pub checker_seconds: f64,
    pub register: RegisterVerdict,
}

/// Run one test and write its run directory. Errors are failures of the harness (the system did not
/// start, the network could not be built), not anomalies: those are in the verdict.
pub async fn run_test(options: &TestOptions) -> anyhow::Result<RunVerdict> {
    std::fs::create_dir_all(&options.out_dir).with_context(|| format!("create {}", options.out_dir.display()))?;
    let cluster_options = ClusterOptions {
        kind: options.kind,
        members: options.members,
        kuboard_binary: options.kuboard_binary.clone(),
        etcd_binary: options.etcd_binary.clone(),
        work_dir: options.out_dir.join("members"),
    };
    let setup_started = Instant::now();
    let mut cluster = Cluster::start(&cluster_options).await?;
    let endpoints: Vec<String> = (0..cluster.member_count())
        .map(|index| cluster.endpoint(index))
        .collect();
    let names: Vec<String> = (0..cluster.member_count())
        .map(|index| cluster.member_name(index).to_string())
        .collect();
    tracing::info!(
        system = ?options.kind,
        members = options.members,
        ready_after_ms = setup_started.elapsed().as_millis() as u64,
        endpoints = ?endpoints,
        "system under test ready"
    );

    let started = Instant::now();
    let deadline = started + options.time_limit;
    let faults_until = deadline - options.recovery.min(options.time_limit);
    let progress = Arc::new(Progress::default());
    let current_fault = Arc::new(Mutex::new("none".to_string()));

    let workload = register::run(
        options.register.clone(),
        endpoints,
        names,
        started,
        deadline,
        Arc::clone(&progress),
    );
    let nemesis = nemesis::run(
        &mut cluster,
        &options.nemesis,
        started,
        faults_until,
        Arc::clone(&current_fault),
    );
    let reporter = report_progress(options, started, &progress, &current_fault);
    let (history, timeline) = tokio::select! {
        (history, timeline) = async { tokio::join!(workload, nemesis) } => (history, timeline),
        never = reporter => match never {},
    };
    let timeline = timeline?;
    let mut exited: Vec<String> = timeline
        .iter()
        .filter(|event| event.fault == "crash")
        .map(|event| event.detail.clone())
        .collect();
    exited.extend(
        cluster
            .crashed_members()
            .into_iter()
            .map(|(member, status)| format!("{member} ({status})")),
    );
    drop(cluster);

    write_jsonl(&options.out_dir.join("history.jsonl"), &history)?;
    write_jsonl(&options.out_dir.join("timeline.jsonl"), &timeline)?;
    let verdict = check(
        options,
        &history,
        &timeline,
        faults_until.duration_since(started),
        exited,
    );
    std::fs::write(
        options.out_dir.join("verdict.json"),
        serde_json::to_vec_pretty(&verdict).context("encode the verdict")?,
    )
    .context("write verdict.json")?;
    Ok(verdict)
}

fn check(
    options: &TestOptions,
    history: &[RegisterOp],
    timeline: &[TimelineEvent],
    faults_end: Duration,
    members_exited: Vec<String>,
) -> RunVerdict {
    let mut outcomes = OutcomeCounts::default();
    for op in history {
        match op.outcome {
            Outcome::Ok => outcomes.ok += 1,
            Outcome::Fail => outcomes.fail += 1,
            Outcome::Info => outcomes.info += 1,
        }
    }
    let ok_after_faults = history
        .iter()
        .filter(|op| op.outcome == Outcome::Ok && op.invoke_ns > faults_end.as_nanos() as u64)
        .count();
    let checker_started = Instant::now();
    let register = check_register_history(history, options.limits);
    let checker_seconds = checker_started.elapsed().as_secs_f64();
    RunVerdict {
        valid: register.valid && members_exited.is_empty(),
        anomaly: register.anomaly || !members_exited.is_empty(),
        members_exited,
        system: options.kind,
        members: options.members,
        workload: "register",
        read_mode: options.register.read_mode,
        nemesis: options.nemesis.faults.clone(),
        time_limit_s: options.time_limit.as_secs_f64(),
        operations: history.len(),
        outcomes,
        ok_after_faults,
        faults_injected: timeline.iter().filter(|event| event.action == "start").count(),
        checker_seconds,
        register,
    }
}

/// Print a progress line every `progress_every` until dropped.
async fn report_progress(
    options: &TestOptions,
    started: Instant,
    progress: &Progress,
    current_fault: &Mutex<String>,
) -> std::convert::Infallible {
    let every = options.progress_every.unwrap_or(Duration::from_secs(3600));
    loop {
        tokio::time::sleep(every).await;
        if options.progress_every.is_some() {
            let fault = current_fault
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone();
            eprintln!(
                "[{:>4}s/{}s] ok {} fail {} info {}; fault: {fault}",
                started.elapsed().as_secs(),
                options.time_limit.as_secs(),
                progress.ok.load(Ordering::Relaxed),
                progress.fail.load(Ordering::Relaxed),
                progress.info.load(Ordering::Relaxed),
            );
        }
    }
}
