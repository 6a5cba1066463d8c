//! `kuboard-jepsen bench`: the embedded group and etcd side by side on this machine, driven through the
//! etcd v3 API by the same client, with the same durability (both fdatasync their log before they
//! answer a write). It writes `docs/benchmarks.md`, SVG plots and the raw figures as JSON.
//!
//! Besides the store, two parts measure what sits in front of it: the Kubernetes proxy against the fake
//! apiserver called directly ([`proxy`]) and audit events written to PostgreSQL under each policy
//! ([`audit`]). Parts can run alone (`--only`); the figures of the parts not run are kept from the
//! previous `results.json`, so the report stays whole.
//!
//! Every phase is bounded in time and in operations; progress goes to stdout as it runs.

mod audit;
mod http_load;
mod measure;
pub(crate) mod procs;
mod proxy;
mod report;
mod workloads;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::system::{Cluster, ClusterOptions, SystemKind};
pub use audit::AuditResult;
use measure::{cpu_ticks, reset_peak_rss, status_kib, ticks_per_second, Latencies};
pub use measure::{FsyncFloor, Percentiles};
pub use procs::default_postgres_bin_dir;
pub use proxy::ProxyResult;
use workloads::{LoadOutcome, Op, SteadyWriters};

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub quick: bool,
    pub kuboard_binary: PathBuf,
    pub etcd_binary: PathBuf,
    /// Members' data directories (on the disk being measured) and logs.
    pub work_dir: PathBuf,
    /// Where the report goes (`docs/benchmarks.md`); plots and JSON go to `plots_dir`.
    pub report: PathBuf,
    pub plots_dir: PathBuf,
    /// Leader kills per system.
    pub failovers: usize,
    /// The systems to run (both by default; one alone is useful while tuning).
    pub systems: Vec<SystemKind>,
    /// The parts to run; the others keep their figures from the previous `results.json`.
    pub parts: Vec<BenchPart>,
    /// `kuboard-fake-apiserver` (built from `testkit/`), started as a process by the proxy part.
    pub fake_apiserver_binary: PathBuf,
    /// Where `initdb` and `postgres` are, for the audit part.
    pub postgres_bin_dir: PathBuf,
}

/// A part of the benchmark that can run alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchPart {
    /// The embedded group against etcd: throughput, latency, failover, memory, the fdatasync floor.
    Store,
    /// The Kubernetes proxy against calling the fake apiserver directly.
    Proxy,
    /// Audit events per second and the added latency of each policy.
    Audit,
}

impl BenchOptions {
    /// How long each throughput phase runs.
    fn phase(&self) -> Duration {
        if self.quick {
            Duration::from_secs(4)
        } else {
            Duration::from_secs(15)
        }
    }

    /// The most operations one phase may issue, whatever its duration.
    fn max_ops(&self) -> usize {
        if self.quick {
            200_000
        } else {
            1_000_000
        }
    }

    fn leases(&self) -> usize {
        if self.quick {
            2_000
        } else {
            10_000
        }
    }
}

/// The put concurrencies of the issue.
pub const PUT_CONCURRENCY: [usize; 4] = [1, 16, 64, 256];
/// Concurrent clients of the read, compare-and-set and lease phases.
const READ_CONCURRENCY: usize = 16;
/// Watchers of the fan-out phase.
const WATCHERS: usize = 100;
/// gRPC connections shared by the workers of a phase (workers are spread over them).
const CONNECTIONS: usize = 16;

/// One phase of one system.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseResult {
    pub name: String,
    pub ok: usize,
    pub errors: usize,
    pub seconds: f64,
    pub per_second: f64,
    pub latency: Percentiles,
    /// Per member: CPU used during the phase, in percent of one core.
    pub cpu_percent: Vec<f64>,
    /// Per member: the peak resident memory during the phase, MiB.
    pub peak_rss_mib: Vec<f64>,
    pub first_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SystemResult {
    pub system: String,
    pub idle_rss_mib: Vec<f64>,
    pub phases: Vec<PhaseResult>,
    /// Seconds from each `kill -9` of the leader to the first successful write started after it.
    pub failover_seconds: Vec<f64>,
    /// Kills after which no write succeeded within the bound.
    pub failover_timeouts: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchResult {
    /// Mode and time of the store part.
    pub quick: bool,
    pub started_utc: String,
    pub machine: report::Machine,
    /// The best of `fsync_samples`.
    pub fsync_floor: FsyncFloor,
    pub fsync_samples: Vec<FsyncFloor>,
    pub systems: Vec<SystemResult>,
    #[serde(default)]
    pub proxy: Option<ProxyResult>,
    #[serde(default)]
    pub audit: Option<AuditResult>,
}

/// Run the selected parts and write the report, keeping the previous figures of the other parts.
pub async fn run_bench(options: &BenchOptions) -> anyhow::Result<BenchResult> {
    std::fs::create_dir_all(&options.work_dir).with_context(|| format!("create {}", options.work_dir.display()))?;
    let previous = previous_results(options);
    let mut result = if options.parts.contains(&BenchPart::Store) {
        run_store(options).await?
    } else {
        match previous.clone() {
            Some(previous) => {
                println!("== store: not run; its figures are kept from the previous results.json");
                previous
            }
            None => BenchResult {
                quick: options.quick,
                started_utc: report::utc_now(),
                machine: report::Machine::describe(&options.work_dir),
                fsync_floor: FsyncFloor::default(),
                fsync_samples: Vec::new(),
                systems: Vec::new(),
                proxy: None,
                audit: None,
            },
        }
    };
    result.proxy = if options.parts.contains(&BenchPart::Proxy) {
        Some(proxy::run(options).await?)
    } else {
        previous.as_ref().and_then(|previous| previous.proxy.clone())
    };
    result.audit = if options.parts.contains(&BenchPart::Audit) {
        Some(audit::run(options).await?)
    } else {
        previous.as_ref().and_then(|previous| previous.audit.clone())
    };
    report::write(options, &result)?;
    Ok(result)
}

/// The figures of the previous run, if `results.json` exists and can be read.
fn previous_results(options: &BenchOptions) -> Option<BenchResult> {
    let path = options.plots_dir.join("results.json");
    let text = std::fs::read_to_string(&path).ok()?;
    match serde_json::from_str(&text) {
        Ok(result) => Some(result),
        Err(error) => {
            println!(
                "   (the previous {} cannot be read, its figures are not kept: {error})",
                path.display()
            );
            None
        }
    }
}

/// The store part: the fdatasync floor, then each system in turn.
async fn run_store(options: &BenchOptions) -> anyhow::Result<BenchResult> {
    let started_utc = report::utc_now();
    let machine = report::Machine::describe(&options.work_dir);
    // The floor is sampled before each system and at the end: other work on the machine lowers a
    // sample, never raises it, so the best sample is the disk's rate and the spread shows the noise.
    let mut fsync_samples = vec![floor_sample(options)?];
    let mut systems = Vec::new();
    for kind in &options.systems {
        systems.push(bench_system(options, *kind).await?);
        fsync_samples.push(floor_sample(options)?);
    }
    let fsync_floor = fsync_samples
        .iter()
        .copied()
        .max_by(|a, b| a.per_second.total_cmp(&b.per_second))
        .expect("at least one sample was taken");
    Ok(BenchResult {
        fsync_samples,
        quick: options.quick,
        started_utc,
        machine,
        fsync_floor,
        systems,
        proxy: None,
        audit: None,
    })
}

/// `put, 1 client` / `put, 16 clients`: the phase names the report looks puts up by.
pub fn put_phase_name(concurrency: usize) -> String {
    format!("put, {concurrency} client{}", if concurrency == 1 { "" } else { "s" })
}

fn floor_sample(options: &BenchOptions) -> anyhow::Result<FsyncFloor> {
    println!(
        "== the physical floor: 4 KiB appends + fdatasync in {}",
        options.work_dir.display()
    );
    let sample = measure::fdatasync_floor(&options.work_dir, Duration::from_secs(3), 100_000)?;
    println!(
        "   {:.0} fdatasync/s (p50 {:.2} ms, p99 {:.2} ms)",
        sample.per_second, sample.p50_ms, sample.p99_ms
    );
    Ok(sample)
}

fn system_name(kind: SystemKind) -> &'static str {
    match kind {
        SystemKind::Embedded => "kuboard",
        SystemKind::Etcd => "etcd",
    }
}

async fn bench_system(options: &BenchOptions, kind: SystemKind) -> anyhow::Result<SystemResult> {
    let name = system_name(kind);
    let work_dir = options.work_dir.join(name);
    if work_dir.exists() {
        std::fs::remove_dir_all(&work_dir).with_context(|| format!("remove the old {}", work_dir.display()))?;
    }
    println!("== {name}: starting 3 members in {}", work_dir.display());
    let mut cluster = Cluster::start(&ClusterOptions {
        kind,
        members: 3,
        kuboard_binary: options.kuboard_binary.clone(),
        etcd_binary: options.etcd_binary.clone(),
        work_dir: work_dir.clone(),
    })
    .await?;
    // Let start-up work (elections, first snapshots, caches) settle before the idle reading.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_rss_mib = pids(&cluster)
        .iter()
        .map(|pid| status_kib(*pid, "VmRSS").unwrap_or(0) as f64 / 1024.0)
        .collect::<Vec<_>>();
    println!("   idle RSS per member: {}", format_list(&idle_rss_mib, "MiB"));
    let endpoints: Vec<String> = (0..cluster.member_count())
        .map(|index| cluster.endpoint(index))
        .collect();
    let clients = workloads::connect(&endpoints, CONNECTIONS).await?;
    let prefix = "bench";
    workloads::preload(&clients[0], prefix).await?;
    let mut phases = Vec::new();
    for concurrency in PUT_CONCURRENCY {
        let phase = put_phase_name(concurrency);
        check_members(&mut cluster)?;
        let result = load_phase(options, &cluster, &clients, prefix, &phase, Op::Put, concurrency).await?;
        phases.push(result);
    }
    for (phase, op) in [
        ("get linearizable, 16 clients", Op::GetLinearizable),
        ("get serializable, 16 clients", Op::GetSerializable),
        ("txn compare-and-set, 16 clients", Op::CompareAndSet),
    ] {
        check_members(&mut cluster)?;
        phases.push(load_phase(options, &cluster, &clients, prefix, phase, op, READ_CONCURRENCY).await?);
    }
    check_members(&mut cluster)?;
    phases.push(watch_phase(options, &cluster, &clients, prefix).await?);
    check_members(&mut cluster)?;
    phases.extend(lease_phases(options, &cluster, &clients).await?);
    check_members(&mut cluster)?;
    drop(clients);
    let (failover_seconds, failover_timeouts) = failovers(options, &mut cluster, &endpoints, name).await?;
    drop(cluster);
    if let Err(error) = std::fs::remove_dir_all(&work_dir) {
        tracing::warn!(%error, "cannot remove the members' data");
    }
    Ok(SystemResult {
        system: name.to_string(),
        idle_rss_mib,
        phases,
        failover_seconds,
        failover_timeouts,
    })
}

/// Fail the run when a member exited by itself (or was killed from outside): its figures would be wrong.
fn check_members(cluster: &mut Cluster) -> anyhow::Result<()> {
    let exited = cluster.crashed_members();
    if let Some((name, status)) = exited.first() {
        bail!("member {name} exited during the benchmark ({status}); its log is in the work directory");
    }
    Ok(())
}

fn pids(cluster: &Cluster) -> Vec<u32> {
    (0..cluster.member_count())
        .filter_map(|index| cluster.pid(index))
        .collect()
}

/// CPU and peak memory of every member over one phase.
struct ResourceProbe {
    pids: Vec<u32>,
    ticks: Vec<u64>,
    started: Instant,
}

impl ResourceProbe {
    fn start(cluster: &Cluster) -> ResourceProbe {
        let pids = pids(cluster);
        for pid in &pids {
            reset_peak_rss(*pid);
        }
        let ticks = pids.iter().map(|pid| cpu_ticks(*pid).unwrap_or(0)).collect();
        ResourceProbe {
            pids,
            ticks,
            started: Instant::now(),
        }
    }

    /// (CPU % of one core, peak RSS MiB) per member.
    fn finish(&self) -> (Vec<f64>, Vec<f64>) {
        let seconds = self.started.elapsed().as_secs_f64().max(1e-9);
        let per_second = ticks_per_second() as f64;
        let cpu = self
            .pids
            .iter()
            .zip(&self.ticks)
            .map(|(pid, before)| {
                let used = cpu_ticks(*pid).unwrap_or(*before).saturating_sub(*before);
                100.0 * used as f64 / per_second / seconds
            })
            .collect();
        let rss = self
            .pids
            .iter()
            .map(|pid| status_kib(*pid, "VmHWM").unwrap_or(0) as f64 / 1024.0)
            .collect();
        (cpu, rss)
    }
}

fn phase_result(name: &str, outcome: LoadOutcome, probe: &ResourceProbe) -> PhaseResult {
    let (cpu_percent, peak_rss_mib) = probe.finish();
    let seconds = outcome.elapsed.as_secs_f64();
    let result = PhaseResult {
        name: name.to_string(),
        ok: outcome.ok,
        errors: outcome.errors,
        seconds,
        per_second: outcome.ok as f64 / seconds.max(1e-9),
        latency: outcome.latencies.summary(),
        cpu_percent,
        peak_rss_mib,
        first_error: outcome.first_error,
    };
    println!(
        "   {:<34} {:>9.0}/s  p50 {:>7.2} ms  p99 {:>7.2} ms  p99.9 {:>7.2} ms  errors {}  CPU {}",
        result.name,
        result.per_second,
        result.latency.p50_ms,
        result.latency.p99_ms,
        result.latency.p999_ms,
        result.errors,
        format_list(&result.cpu_percent, "%"),
    );
    if let Some(error) = &result.first_error {
        println!("      first error: {error}");
    }
    result
}

async fn load_phase(
    options: &BenchOptions,
    cluster: &Cluster,
    clients: &[etcd_client::Client],
    prefix: &str,
    name: &str,
    op: Op,
    concurrency: usize,
) -> anyhow::Result<PhaseResult> {
    let probe = ResourceProbe::start(cluster);
    let outcome = workloads::closed_loop(clients, prefix, op, concurrency, options.phase(), options.max_ops()).await?;
    Ok(phase_result(name, outcome, &probe))
}

async fn watch_phase(
    options: &BenchOptions,
    cluster: &Cluster,
    clients: &[etcd_client::Client],
    prefix: &str,
) -> anyhow::Result<PhaseResult> {
    let probe = ResourceProbe::start(cluster);
    let watched = workloads::watch_fan_out(clients, prefix, WATCHERS, options.phase(), options.max_ops()).await?;
    let missing = watched.expected.saturating_sub(watched.delivered);
    let outcome = LoadOutcome {
        ok: watched.delivered,
        errors: missing,
        elapsed: watched.elapsed,
        latencies: watched.latencies,
        first_error: (missing > 0).then(|| format!("{missing} events not delivered within 5 s of the last write")),
    };
    println!(
        "   (watch: {} writes fanned out to {WATCHERS} watchers)",
        watched.writes
    );
    Ok(phase_result(
        &format!("watch delivery, 1 writer, {WATCHERS} watchers"),
        outcome,
        &probe,
    ))
}

async fn lease_phases(
    options: &BenchOptions,
    cluster: &Cluster,
    clients: &[etcd_client::Client],
) -> anyhow::Result<Vec<PhaseResult>> {
    let probe = ResourceProbe::start(cluster);
    let (grants, keep_alives) =
        workloads::leases(clients, options.leases(), READ_CONCURRENCY, options.phase() * 2).await?;
    let leases = grants.ok;
    // Both halves share one resource window: the probe covers granting and keeping alive.
    let grant = phase_result(&format!("lease grant ({leases} leases), 16 clients"), grants, &probe);
    let keep = phase_result(
        &format!("lease keep-alive ({leases} leases), 16 clients"),
        keep_alives,
        &probe,
    );
    Ok(vec![grant, keep])
}

/// Kill the leader with SIGKILL under steady writes, `options.failovers` times; each time measure from
/// the kill to the end of the first successful put started after it, then restart the member.
async fn failovers(
    options: &BenchOptions,
    cluster: &mut Cluster,
    endpoints: &[String],
    name: &str,
) -> anyhow::Result<(Vec<f64>, usize)> {
    println!("   failover: {} leader kills under steady writes", options.failovers);
    let bound = Duration::from_secs(30);
    let writers = SteadyWriters::start(endpoints, "bench", 2).await?;
    let mut seconds = Vec::new();
    let mut timeouts = 0;
    for round in 1..=options.failovers {
        let leader = wait_for_leader(cluster, Duration::from_secs(30)).await?;
        // Steady state first: writes are succeeding before the kill.
        let warm = Instant::now();
        let settle_deadline = warm + Duration::from_secs(30);
        while writers.first_success_since(warm).is_none() && Instant::now() < settle_deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        writers.clear();
        let killed_at = Instant::now();
        cluster.kill(leader)?;
        let deadline = killed_at + bound;
        let mut recovered = None;
        while Instant::now() < deadline {
            if let Some(end) = writers.first_success_since(killed_at) {
                recovered = Some(end.duration_since(killed_at));
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        match recovered {
            Some(after) => {
                seconds.push(after.as_secs_f64());
                println!(
                    "   [{name}] kill {round}/{}: {} killed, first write after {:.3} s",
                    options.failovers,
                    cluster.member_name(leader),
                    after.as_secs_f64()
                );
            }
            None => {
                timeouts += 1;
                println!(
                    "   [{name}] kill {round}/{}: no write within {bound:?}",
                    options.failovers
                );
            }
        }
        cluster.restart(leader)?;
        cluster.wait_ready(Duration::from_secs(60)).await?;
    }
    writers.stop().await;
    if !seconds.is_empty() {
        let mut latencies = Latencies::default();
        for value in &seconds {
            latencies.record(Duration::from_secs_f64(*value));
        }
        let summary = latencies.summary();
        println!(
            "   failover p50 {:.3} s, p99 {:.3} s, max {:.3} s",
            summary.p50_ms / 1000.0,
            summary.p99_ms / 1000.0,
            summary.max_ms / 1000.0
        );
    }
    Ok((seconds, timeouts))
}

async fn wait_for_leader(cluster: &Cluster, within: Duration) -> anyhow::Result<usize> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(leader) = cluster.find_leader().await {
            return Ok(leader);
        }
        if Instant::now() >= deadline {
            bail!("no member claimed leadership within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn format_list(values: &[f64], unit: &str) -> String {
    values
        .iter()
        .map(|value| format!("{value:.0}{unit}"))
        .collect::<Vec<_>>()
        .join(" / ")
}
