//! One test run: start the system, run the workload under the nemesis, heal, check, write the run
//! directory.
//!
//! The run directory holds `history.jsonl` (one line per operation of every workload, tagged with
//! the workload's name), `verdict.json` (the checkers' verdicts with the offending operations),
//! `timeline.jsonl` (the faults), `watchers.jsonl` (what each watcher saw, with the watch workload),
//! the plots and `index.html` (see [`crate::report`]) and `members/` (each member's data directory and
//! log).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::checker::{check_register_history, RegisterVerdict, SearchLimits, SetVerdict};
use crate::history::{append_jsonl, write_jsonl, Outcome, RegisterOp, TimedOp};
use crate::nemesis::{self, FaultKind, NemesisOptions, TimelineEvent};
use crate::system::{AuditPolicyChoice, Cluster, ClusterOptions, SystemKind};
use crate::workload::agent_register::{self, AgentRegisterOptions, CasMode, Classify};
use crate::workload::audit::{self, AuditOptions, AuditOutcome, AuditVerdict};
use crate::workload::http::{self, HttpOptions, HttpOutcome, HttpVerdict};
use crate::workload::register::{self, Progress, ReadMode, RegisterOptions};
use crate::workload::set::{self, SetOptions, SetOutcome};
use crate::workload::watch::{self, WatchOptionsSet, WatchOutcome, WatchRunVerdict};
use crate::workload::WorkloadKind;

/// Which workloads run (at once, on disjoint keys) and their settings.
#[derive(Debug, Clone)]
pub struct WorkloadOptions {
    pub kinds: Vec<WorkloadKind>,
    pub set: SetOptions,
    pub watch: WatchOptionsSet,
    pub http: HttpOptions,
    pub audit: AuditOptions,
    pub agent: AgentRegisterOptions,
    /// The fake apiserver binary of the agent site (default: `kuboard-fake-apiserver` beside the
    /// `kuboard` binary).
    pub fake_apiserver_binary: Option<PathBuf>,
}

impl WorkloadOptions {
    /// The given workloads with their default settings.
    pub fn of(kinds: &[WorkloadKind]) -> WorkloadOptions {
        let mut kinds = kinds.to_vec();
        kinds.sort();
        kinds.dedup();
        WorkloadOptions {
            kinds,
            set: SetOptions::default(),
            watch: WatchOptionsSet::default(),
            http: HttpOptions::default(),
            audit: AuditOptions::default(),
            agent: AgentRegisterOptions::default(),
            fake_apiserver_binary: None,
        }
    }

    fn runs(&self, kind: WorkloadKind) -> bool {
        self.kinds.contains(&kind)
    }
}

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
    /// The workloads, comma-separated (`register,set`).
    pub workload: String,
    pub read_mode: ReadMode,
    pub nemesis: Vec<FaultKind>,
    pub time_limit_s: f64,
    pub operations: usize,
    pub outcomes: OutcomeCounts,
    /// Acknowledged operations in the fault-free tail of the run: zero means the system never recovered.
    pub ok_after_faults: usize,
    pub faults_injected: usize,
    pub checker_seconds: f64,
    /// Counts by outcome per workload.
    pub per_workload: BTreeMap<&'static str, OutcomeCounts>,
    /// The register verdict (valid and empty when the register workload did not run).
    pub register: RegisterVerdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set: Option<SetVerdict>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch: Option<WatchRunVerdict>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpVerdict>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict_audit: Option<AuditVerdict>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_register: Option<AgentRegisterVerdict>,
    /// With the `tamper` fault: what the proxies altered and what the members refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tamper: Option<TamperVerdict>,
}

/// The verdict of the agent-register workload: its register verdict and how its outcomes were
/// judged.
#[derive(Debug, Clone, Serialize)]
pub struct AgentRegisterVerdict {
    pub cas_mode: CasMode,
    pub classify: Classify,
    /// Changes answered 503 (failures or indeterminate, after `classify`).
    pub changes_answered_503: usize,
    /// Changes answered 502 (indeterminate).
    pub changes_answered_502: usize,
    /// `agent-link` faults (the agent cut off from one member).
    pub agent_link_faults: usize,
    /// Operations sent to the member cut off from the agent while it was cut off, and how many of
    /// them were acknowledged (served through a peer's tunnel, or through its own before the cut).
    pub ops_on_cut_member: usize,
    pub ok_on_cut_member: usize,
    /// Connections forwarded between members, from their `/metrics` at the end of the run
    /// (`kuboard_agent_peer_forwards_total`; a member killed during the run lost its counts).
    pub peer_forwards: PeerForwards,
    pub register: RegisterVerdict,
}

/// Sums over the members of `kuboard_agent_peer_forwards_total` at the end of the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PeerForwards {
    /// A member went through a peer's tunnel, by outcome.
    pub out_ok: u64,
    pub out_failed: u64,
    pub out_refused: u64,
    /// Members whose `/metrics` could be read.
    pub members_read: usize,
    pub errors: Vec<String>,
}

/// Read every member's forwarding counters.
async fn peer_forwards(cluster: &Cluster) -> PeerForwards {
    let mut forwards = PeerForwards::default();
    for text in members_metrics(cluster).await {
        let text = match text {
            Ok(text) => text,
            Err(error) => {
                forwards.errors.push(error);
                continue;
            }
        };
        forwards.members_read += 1;
        let sum = |outcome: &str| -> u64 {
            text.lines()
                .filter(|line| line.starts_with("kuboard_agent_peer_forwards_total{"))
                .filter(|line| line.contains("direction=\"out\"") && line.contains(&format!("outcome=\"{outcome}\"")))
                .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
                .sum::<f64>() as u64
        };
        forwards.out_ok += sum("ok");
        forwards.out_failed += sum("failed");
        forwards.out_refused += sum("refused");
    }
    forwards
}

/// Every member's `/metrics` text, or why it could not be read.
async fn members_metrics(cluster: &Cluster) -> Vec<Result<String, String>> {
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(5)).build() {
        Ok(client) => client,
        Err(error) => return vec![Err(format!("build an HTTP client: {error}"))],
    };
    let mut texts = Vec::new();
    for index in 0..cluster.member_count() {
        let url = format!("{}/metrics", cluster.web_url(index));
        let text = match client.get(&url).send().await {
            Ok(response) => response.text().await,
            Err(error) => Err(error),
        };
        texts.push(text.map_err(|error| format!("{url}: {error}")));
    }
    texts
}

impl AgentRegisterVerdict {
    fn of(
        history: &[RegisterOp],
        options: &AgentRegisterOptions,
        limits: SearchLimits,
        timeline: &[TimelineEvent],
        peer_forwards: PeerForwards,
    ) -> AgentRegisterVerdict {
        // The windows of the agent-link faults: (member, from, to).
        let mut windows = Vec::new();
        let mut open: Option<(String, u64)> = None;
        for event in timeline.iter().filter(|event| event.fault == "agent-link") {
            match event.action.as_str() {
                "start" => {
                    let member = event.detail.rsplit(' ').next().unwrap_or_default().to_string();
                    open = Some((member, event.time_ns));
                }
                _ => {
                    if let Some((member, from)) = open.take() {
                        windows.push((member, from, event.time_ns));
                    }
                }
            }
        }
        let on_cut_member: Vec<&RegisterOp> = history
            .iter()
            .filter(|op| {
                windows
                    .iter()
                    .any(|(member, from, to)| op.node == *member && (*from..*to).contains(&op.invoke_ns))
            })
            .collect();
        let changes_answered = |code: &str| {
            history
                .iter()
                .filter(|op| !matches!(op.call, crate::history::RegisterCall::Read { .. }))
                .filter(|op| op.error.as_deref().is_some_and(|error| error.starts_with(code)))
                .count()
        };
        AgentRegisterVerdict {
            cas_mode: options.cas_mode,
            classify: options.classify,
            changes_answered_503: changes_answered("503 "),
            changes_answered_502: changes_answered("502 "),
            agent_link_faults: windows.len(),
            ops_on_cut_member: on_cut_member.len(),
            ok_on_cut_member: on_cut_member.iter().filter(|op| op.outcome == Outcome::Ok).count(),
            peer_forwards,
            register: check_register_history(history, limits),
        }
    }
}

/// What the `tamper` fault did to the peer links and what the members' counters say they refused
/// (read from every member's `/metrics` after the faults ended; embedded group only).
#[derive(Debug, Clone, Default, Serialize)]
pub struct TamperVerdict {
    pub chunks_flipped: u64,
    pub chunks_injected: u64,
    pub chunks_replayed: u64,
    /// Sum over the members of `kuboard_raft_peer_forged_frames_total`.
    pub forged_frames_refused: u64,
    /// Sum over the members of `kuboard_raft_peer_auth_failures_total` (handshakes whose proof was
    /// altered on the way).
    pub handshakes_refused: u64,
    /// Members whose `/metrics` could be read.
    pub members_read: usize,
    /// Why a member's `/metrics` could not be read.
    pub errors: Vec<String>,
}

/// Read the tamper counts of the proxies and the members' refusal counters.
async fn tamper_verdict(cluster: &Cluster, kind: SystemKind) -> TamperVerdict {
    let mut verdict = TamperVerdict::default();
    if let Some(control) = cluster.delay_control() {
        let counts = control.tampered();
        verdict.chunks_flipped = counts.flipped;
        verdict.chunks_injected = counts.injected;
        verdict.chunks_replayed = counts.replayed;
    }
    if kind != SystemKind::Embedded {
        return verdict;
    }
    for text in members_metrics(cluster).await {
        match text {
            Ok(text) => {
                verdict.members_read += 1;
                verdict.forged_frames_refused +=
                    crate::bench::procs::metric_value(&text, "kuboard_raft_peer_forged_frames_total") as u64;
                verdict.handshakes_refused +=
                    crate::bench::procs::metric_value(&text, "kuboard_raft_peer_auth_failures_total") as u64;
            }
            Err(error) => verdict.errors.push(error),
        }
    }
    verdict
}

impl RunVerdict {
    /// Names of the workloads whose checker found a definite problem.
    pub fn failed_workloads(&self) -> Vec<&'static str> {
        let mut failed = Vec::new();
        if self.register.anomaly {
            failed.push("register");
        }
        if self.set.as_ref().is_some_and(|set| !set.valid) {
            failed.push("set");
        }
        if self.watch.as_ref().is_some_and(|watch| !watch.valid) {
            failed.push("watch");
        }
        if self.http.as_ref().is_some_and(|http| !http.valid) {
            failed.push("http");
        }
        if self.strict_audit.as_ref().is_some_and(|audit| !audit.valid) {
            failed.push("strict-audit");
        }
        if self.agent_register.as_ref().is_some_and(|agent| agent.register.anomaly) {
            failed.push("agent-register");
        }
        failed
    }
}

/// What the workloads of one run returned.
#[derive(Default)]
struct Histories {
    register: Option<Vec<RegisterOp>>,
    set: Option<SetOutcome>,
    watch: Option<WatchOutcome>,
    http: Option<HttpOutcome>,
    audit: Option<AuditOutcome>,
    agent_register: Option<Vec<RegisterOp>>,
    /// The audit events of the strict-audit workload's requests, read after healing.
    audit_events: Option<Result<BTreeMap<String, Vec<String>>, String>>,
}

impl Histories {
    fn timed(&self) -> Vec<TimedOp> {
        let mut timed: Vec<TimedOp> = Vec::new();
        if let Some(history) = &self.register {
            timed.extend(history.iter().map(TimedOp::of_register));
        }
        if let Some(outcome) = &self.set {
            timed.extend(outcome.history.iter().map(|op| TimedOp::of_op("set", op)));
        }
        if let Some(outcome) = &self.watch {
            timed.extend(outcome.history.iter().map(|op| TimedOp::of_op("watch", op)));
        }
        if let Some(outcome) = &self.http {
            timed.extend(outcome.history.iter().map(|op| TimedOp::of_op("http", op)));
        }
        if let Some(outcome) = &self.audit {
            timed.extend(outcome.history.iter().map(|op| TimedOp::of_op("strict-audit", op)));
        }
        if let Some(history) = &self.agent_register {
            timed.extend(history.iter().map(|op| TimedOp::of_register_in("agent-register", op)));
        }
        timed
    }

    fn write(&self, dir: &std::path::Path) -> anyhow::Result<()> {
        let path = dir.join("history.jsonl");
        let file = std::fs::File::create(&path).with_context(|| format!("create {}", path.display()))?;
        let mut writer = std::io::BufWriter::new(file);
        if let Some(history) = &self.register {
            append_jsonl(&mut writer, "register", history)?;
        }
        if let Some(outcome) = &self.set {
            append_jsonl(&mut writer, "set", &outcome.history)?;
        }
        if let Some(outcome) = &self.watch {
            append_jsonl(&mut writer, "watch", &outcome.history)?;
            write_jsonl(&dir.join("watchers.jsonl"), &outcome.watchers)?;
        }
        if let Some(outcome) = &self.http {
            append_jsonl(&mut writer, "http", &outcome.history)?;
        }
        if let Some(outcome) = &self.audit {
            append_jsonl(&mut writer, "strict-audit", &outcome.history)?;
        }
        if let Some(history) = &self.agent_register {
            append_jsonl(&mut writer, "agent-register", history)?;
        }
        std::io::Write::flush(&mut writer).with_context(|| format!("write {}", path.display()))
    }
}

/// Run one test of the register workload and write its run directory. Errors are failures of the
/// harness (the system did not start, the network could not be built), not anomalies: those are in the
/// verdict.
pub async fn run_test(options: &TestOptions) -> anyhow::Result<RunVerdict> {
    run_workloads(options, &WorkloadOptions::of(&[WorkloadKind::Register])).await
}

/// Run one test of the given workloads at once (on disjoint keys) and write its run directory.
pub async fn run_workloads(options: &TestOptions, workloads: &WorkloadOptions) -> anyhow::Result<RunVerdict> {
    if workloads.kinds.is_empty() {
        anyhow::bail!("no workload to run");
    }
    if (workloads.runs(WorkloadKind::Http)
        || workloads.runs(WorkloadKind::StrictAudit)
        || workloads.runs(WorkloadKind::AgentRegister))
        && options.kind != SystemKind::Embedded
    {
        anyhow::bail!(
            "the http, strict-audit and agent-register workloads need the embedded group (etcd has no kuboard REST \
             API)"
        );
    }
    std::fs::create_dir_all(&options.out_dir).with_context(|| format!("create {}", options.out_dir.display()))?;
    let cluster_options = ClusterOptions {
        kind: options.kind,
        members: options.members,
        kuboard_binary: options.kuboard_binary.clone(),
        etcd_binary: options.etcd_binary.clone(),
        work_dir: options.out_dir.join("members"),
    };
    let mut features = nemesis::features_for(&options.nemesis.faults, options.kind);
    if workloads.runs(WorkloadKind::StrictAudit) {
        features.audit = Some(AuditPolicyChoice::Strict);
    }
    if workloads.runs(WorkloadKind::AgentRegister) {
        features.agent_site = true;
        features.fake_apiserver_binary = workloads
            .fake_apiserver_binary
            .clone()
            .unwrap_or_else(|| options.kuboard_binary.with_file_name("kuboard-fake-apiserver"));
    }
    let setup_started = Instant::now();
    let mut cluster = Cluster::start_with(&cluster_options, &features).await?;
    let admin_users = usize::from(options.nemesis.faults.contains(&FaultKind::Membership))
        + usize::from(workloads.runs(WorkloadKind::Http))
        + usize::from(workloads.runs(WorkloadKind::StrictAudit));
    if admin_users > 1 && options.kind == SystemKind::Embedded {
        // The membership fault and the REST workloads log in as admin. Changing the first-start
        // password ends the user's other sessions, so it is changed once now, before any of them logs
        // in; a single REST workload makes the change itself (the first-login path).
        cluster
            .ensure_admin_password()
            .await
            .context("set the admin password")?;
    }
    let endpoints: Vec<String> = (0..cluster.member_count())
        .map(|index| cluster.endpoint(index))
        .collect();
    let web_urls: Vec<String> = (0..cluster.member_count())
        .map(|index| cluster.web_url(index))
        .collect();
    let names: Vec<String> = (0..cluster.member_count())
        .map(|index| cluster.member_name(index).to_string())
        .collect();
    // The agent workload's clients share one administrator session, made before any fault.
    let agent_token = if workloads.runs(WorkloadKind::AgentRegister) {
        cluster
            .admin_token()
            .await
            .context("log in for the agent-register workload")?
    } else {
        String::new()
    };
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

    let register_run = when(
        workloads.runs(WorkloadKind::Register),
        register::run(
            options.register.clone(),
            endpoints.clone(),
            names.clone(),
            started,
            deadline,
            Arc::clone(&progress),
        ),
    );
    let set_run = when(
        workloads.runs(WorkloadKind::Set),
        set::run(
            workloads.set.clone(),
            endpoints.clone(),
            names.clone(),
            started,
            deadline,
            Arc::clone(&progress),
        ),
    );
    let watch_run = when(
        workloads.runs(WorkloadKind::Watch),
        watch::run(
            workloads.watch.clone(),
            endpoints.clone(),
            names.clone(),
            started,
            deadline,
            Arc::clone(&progress),
        ),
    );
    let http_run = when(
        workloads.runs(WorkloadKind::Http),
        http::run(
            workloads.http.clone(),
            web_urls.clone(),
            names.clone(),
            started,
            deadline,
            Arc::clone(&progress),
        ),
    );
    let audit_run = when(
        workloads.runs(WorkloadKind::StrictAudit),
        audit::run(
            workloads.audit.clone(),
            web_urls.clone(),
            names.clone(),
            started,
            deadline,
            Arc::clone(&progress),
        ),
    );
    let agent_run = when(
        workloads.runs(WorkloadKind::AgentRegister),
        agent_register::run(
            workloads.agent.clone(),
            web_urls.clone(),
            names.clone(),
            agent_token,
            started,
            deadline,
            Arc::clone(&progress),
        ),
    );
    let nemesis = nemesis::run(
        &mut cluster,
        &options.nemesis,
        started,
        faults_until,
        Arc::clone(&current_fault),
    );
    let reporter = report_progress(options, started, &progress, &current_fault);
    let (register_history, set_outcome, watch_outcome, http_outcome, audit_outcome, agent_history, timeline) = tokio::select! {
        all = async { tokio::join!(register_run, set_run, watch_run, http_run, audit_run, agent_run, nemesis) } => all,
        never = reporter => match never {},
    };
    // Read after the nemesis healed everything (the audit database included).
    let audit_events = audit_outcome.as_ref().map(|_| {
        cluster
            .audit_db_query(&audit::events_query())
            .map(|rows| audit::events_by_agent(&rows))
            .map_err(|error| format!("read the audit events: {error:#}"))
    });
    let histories = Histories {
        register: register_history,
        set: set_outcome,
        watch: watch_outcome,
        http: http_outcome,
        audit: audit_outcome,
        agent_register: agent_history,
        audit_events,
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
    if let Err(error) = cluster.check_agent_site() {
        exited.push(format!("agent site: {error:#}"));
    }
    let forwards = if workloads.runs(WorkloadKind::AgentRegister) {
        peer_forwards(&cluster).await
    } else {
        PeerForwards::default()
    };
    let tamper = if options.nemesis.faults.contains(&FaultKind::Tamper) {
        Some(tamper_verdict(&cluster, options.kind).await)
    } else {
        None
    };
    drop(cluster);

    histories.write(&options.out_dir)?;
    write_jsonl(&options.out_dir.join("timeline.jsonl"), &timeline)?;
    let mut verdict = check(
        options,
        workloads,
        &histories,
        &timeline,
        faults_until.duration_since(started),
        exited,
        forwards,
    );
    verdict.tamper = tamper;
    std::fs::write(
        options.out_dir.join("verdict.json"),
        serde_json::to_vec_pretty(&verdict).context("encode the verdict")?,
    )
    .context("write verdict.json")?;
    crate::report::write(&options.out_dir, &verdict, &histories.timed(), &timeline)?;
    Ok(verdict)
}

fn count(ops: impl Iterator<Item = Outcome>) -> OutcomeCounts {
    let mut outcomes = OutcomeCounts::default();
    for outcome in ops {
        match outcome {
            Outcome::Ok => outcomes.ok += 1,
            Outcome::Fail => outcomes.fail += 1,
            Outcome::Info => outcomes.info += 1,
        }
    }
    outcomes
}

fn check(
    options: &TestOptions,
    workloads: &WorkloadOptions,
    histories: &Histories,
    timeline: &[TimelineEvent],
    faults_end: Duration,
    members_exited: Vec<String>,
    forwards: PeerForwards,
) -> RunVerdict {
    let timed = histories.timed();
    let outcomes = count(timed.iter().map(|op| op.outcome));
    let mut per_workload = BTreeMap::new();
    for kind in &workloads.kinds {
        let prefix = format!("{} ", kind.name());
        per_workload.insert(
            kind.name(),
            count(
                timed
                    .iter()
                    .filter(|op| op.kind.starts_with(&prefix))
                    .map(|op| op.outcome),
            ),
        );
    }
    let faults_end_ns = faults_end.as_nanos() as u64;
    let ok_after_faults = timed
        .iter()
        .filter(|op| op.outcome == Outcome::Ok && op.invoke_ns > faults_end_ns)
        .count();
    let checker_started = Instant::now();
    let register = check_register_history(histories.register.as_deref().unwrap_or(&[]), options.limits);
    let set = histories.set.as_ref().map(SetOutcome::verdict);
    let watch = histories.watch.as_ref().map(WatchOutcome::verdict);
    let http = histories.http.as_ref().map(HttpOutcome::verdict);
    let strict_audit = histories.audit.as_ref().map(|outcome| {
        outcome.verdict(
            histories
                .audit_events
                .clone()
                .unwrap_or_else(|| Err("the audit events were not read".to_string())),
        )
    });
    let agent_register = histories
        .agent_register
        .as_ref()
        .map(|history| AgentRegisterVerdict::of(history, &workloads.agent, options.limits, timeline, forwards));
    let checker_seconds = checker_started.elapsed().as_secs_f64();
    let agent_valid = agent_register.as_ref().is_none_or(|verdict| verdict.register.valid);
    let agent_anomaly = agent_register.as_ref().is_some_and(|verdict| verdict.register.anomaly);
    let others_valid = set.as_ref().is_none_or(|verdict| verdict.valid)
        && watch.as_ref().is_none_or(|verdict| verdict.valid)
        && http.as_ref().is_none_or(|verdict| verdict.valid)
        && strict_audit.as_ref().is_none_or(|verdict| verdict.valid);
    RunVerdict {
        valid: register.valid && agent_valid && others_valid && members_exited.is_empty(),
        anomaly: register.anomaly || agent_anomaly || !others_valid || !members_exited.is_empty(),
        members_exited,
        system: options.kind,
        members: options.members,
        workload: workloads
            .kinds
            .iter()
            .map(|kind| kind.name())
            .collect::<Vec<_>>()
            .join(","),
        read_mode: options.register.read_mode,
        nemesis: options.nemesis.faults.clone(),
        time_limit_s: options.time_limit.as_secs_f64(),
        operations: timed.len(),
        outcomes,
        ok_after_faults,
        faults_injected: timeline.iter().filter(|event| event.action == "start").count(),
        checker_seconds,
        per_workload,
        register,
        set,
        watch,
        http,
        strict_audit,
        agent_register,
        tamper: None,
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

/// Run `workload` only when it was selected; a future does nothing until it is awaited.
async fn when<T>(selected: bool, workload: impl std::future::Future<Output = T>) -> Option<T> {
    if selected {
        Some(workload.await)
    } else {
        None
    }
}
