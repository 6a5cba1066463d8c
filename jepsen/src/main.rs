//! `kuboard-jepsen`: runs a chaos test against the embedded group or a real etcd, or removes what a
//! killed run left behind.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use kuboard_jepsen::bench::BenchPart;
use kuboard_jepsen::checker::SearchLimits;
use kuboard_jepsen::nemesis::{FaultKind, NemesisOptions};
use kuboard_jepsen::run::{run_workloads, RunVerdict, TestOptions, WorkloadOptions};
use kuboard_jepsen::system::SystemKind;
use kuboard_jepsen::workload::agent_register::{AgentRegisterOptions, CasMode, Classify};
use kuboard_jepsen::workload::register::{ReadMode, RegisterOptions};
use kuboard_jepsen::workload::WorkloadKind;

#[derive(Parser)]
#[command(name = "kuboard-jepsen", about = "The chaos/partition suite of kuboard")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a test: start the system in network namespaces, run the workload under faults, check the
    /// history. Exit 0 when valid, 1 on an anomaly, 3 when the checker could not decide, 2 on a harness
    /// error, 130 when interrupted. Needs root, iproute2 and iptables.
    Test(TestArgs),
    /// Benchmark the embedded group against etcd 3.4 (3 members each, fsync on) through the etcd v3 API
    /// and write docs/benchmarks.md with plots. Needs root (network namespaces) and a release build of
    /// kuboard; progress is printed as it runs.
    Bench(BenchArgs),
    /// Remove network namespaces, links and host iptables rules of the suite (names starting with `kjp`)
    /// and kill the processes left inside those namespaces.
    Cleanup {
        /// Only the network with this id (the part after `kjp-` in its namespace names).
        #[arg(long)]
        id: Option<String>,
    },
    /// Echo TCP connections (used by the network tests inside a namespace).
    #[command(hide = true)]
    EchoServer {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long, default_value_t = 100)]
        max_connections: usize,
    },
    /// Probe an echo server; exit 0 when it echoes (used by the network tests inside a namespace).
    #[command(hide = true)]
    EchoProbe {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 1000)]
        timeout_ms: u64,
    },
}

#[derive(clap::Args)]
struct TestArgs {
    #[arg(long, value_enum, default_value = "embedded")]
    system: SystemKind,
    /// Members of the group (1, 3 or 5 for the embedded group, 3 for etcd).
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// Workloads to run at once, comma-separated: register, set, watch, http, strict-audit,
    /// agent-register (the last three: embedded group only; strict-audit starts a PostgreSQL audit
    /// database with the strict policy; agent-register a fake apiserver behind `kuboard agent`).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "register")]
    workload: Vec<WorkloadKind>,
    /// Faults to pick from, comma-separated; `none` for a run without faults. `delay` runs the peer links
    /// through delay proxies; `audit-db` (embedded group only) adds a PostgreSQL audit database host.
    #[arg(long, value_delimiter = ',', default_value = "partition,kill,pause")]
    nemesis: Vec<NemesisArg>,
    /// Seconds the clients run.
    #[arg(long, default_value_t = 60)]
    time_limit: u64,
    /// Seconds at the end of the run without faults.
    #[arg(long, default_value_t = 10)]
    recovery: u64,
    /// Seconds of quiet before each fault.
    #[arg(long, default_value_t = 5)]
    fault_quiet: u64,
    /// Seconds each fault lasts.
    #[arg(long, default_value_t = 5)]
    fault_hold: u64,
    /// Run directory: history.jsonl, verdict.json, timeline.jsonl, latency.svg, throughput.svg, index.html,
    /// members/.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value = "target/debug/kuboard")]
    kuboard_binary: PathBuf,
    #[arg(long, default_value = "/usr/bin/etcd")]
    etcd_binary: PathBuf,
    /// `serializable-any-member` is unsafe on purpose, to show that the checker catches stale reads.
    #[arg(long, value_enum, default_value = "linearizable")]
    read_mode: ReadMode,
    #[arg(long, default_value_t = 6)]
    clients: usize,
    /// Operations per key before the clients move to fresh keys.
    #[arg(long, default_value_t = 150)]
    ops_per_key: usize,
    /// Milliseconds before an unanswered operation counts as indeterminate.
    #[arg(long, default_value_t = 1500)]
    op_timeout_ms: u64,
    /// Search steps per key before the checker answers "unknown".
    #[arg(long, default_value_t = 5_000_000)]
    max_steps_per_key: u64,
    /// Keep the members' data directories (their logs are always kept).
    #[arg(long)]
    keep_data: bool,
    /// The fake apiserver of `testkit/` that the agent-register workload runs behind the agent
    /// (default: `kuboard-fake-apiserver` beside --kuboard-binary).
    #[arg(long)]
    fake_apiserver_binary: Option<PathBuf>,
    /// Clients of the agent-register workload.
    #[arg(long, default_value_t = 4)]
    agent_clients: usize,
    /// How the agent-register workload does compare-and-set; `blind` is unsafe on purpose, to show
    /// that the checker catches lost updates.
    #[arg(long, value_enum, default_value = "resource-version")]
    agent_cas: CasMode,
    /// How the agent-register workload counts a change answered 503 by the proxy.
    #[arg(long, value_enum, default_value = "unavailable-definite")]
    agent_503: Classify,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// About 4 minutes: 4 s phases and 5 leader kills per system instead of 15 s phases and 20 kills.
    #[arg(long)]
    quick: bool,
    /// Leader kills per system (default 20, or 5 with --quick).
    #[arg(long)]
    failovers: Option<usize>,
    /// Systems to run, comma-separated (both by default).
    #[arg(long, value_delimiter = ',', default_value = "embedded,etcd")]
    systems: Vec<SystemKind>,
    #[arg(long, default_value = "target/release/kuboard")]
    kuboard_binary: PathBuf,
    #[arg(long, default_value = "/usr/bin/etcd")]
    etcd_binary: PathBuf,
    /// Members' data directories: on the disk whose fdatasync rate is measured.
    #[arg(long, default_value = "target/bench")]
    work_dir: PathBuf,
    #[arg(long, default_value = "docs/benchmarks.md")]
    report: PathBuf,
    #[arg(long, default_value = "docs/bench")]
    plots_dir: PathBuf,
    /// Parts to run, comma-separated (all by default); the figures of the others are kept from the
    /// previous results.json in --plots-dir.
    #[arg(long, value_delimiter = ',', default_value = "store,proxy,audit")]
    only: Vec<BenchPart>,
    /// The fake Kubernetes apiserver of testkit/ (the proxy part starts it).
    #[arg(long, default_value = "target/release/kuboard-fake-apiserver")]
    fake_apiserver_binary: PathBuf,
    /// Where initdb and postgres are (the audit part starts PostgreSQL); default: the newest
    /// /usr/lib/postgresql/<version>/bin.
    #[arg(long)]
    postgres_bin_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum NemesisArg {
    None,
    Partition,
    Kill,
    Pause,
    Loss,
    Delay,
    /// Flip, inject or replay bytes on the peer links (through the same proxies as `delay`).
    Tamper,
    KillLeader,
    PauseLeader,
    Membership,
    AuditDb,
    /// Cut the agent off from one member (needs the agent-register workload's agent site).
    AgentLink,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Test(args) => return test(args),
        Command::Bench(args) => return bench(args),
        Command::Cleanup { id } => cleanup(id.as_deref()),
        Command::EchoServer {
            listen,
            max_connections,
        } => kuboard_jepsen::echo::serve(listen, max_connections),
        Command::EchoProbe { target, timeout_ms } => {
            kuboard_jepsen::echo::probe(target, Duration::from_millis(timeout_ms))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kuboard-jepsen: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn cleanup(id: Option<&str>) -> anyhow::Result<()> {
    let cleaned = kuboard_jepsen::net::cleanup(id)?;
    println!(
        "removed {} namespaces, {} links, {} host FORWARD rules; killed {} processes",
        cleaned.namespaces.len(),
        cleaned.links.len(),
        cleaned.forward_rules,
        cleaned.killed_processes.len()
    );
    Ok(())
}

fn test(args: TestArgs) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("kuboard-jepsen: start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    let options = test_options(&args);
    let mut workloads = WorkloadOptions::of(&args.workload);
    workloads.fake_apiserver_binary = args.fake_apiserver_binary.clone();
    workloads.agent = AgentRegisterOptions {
        clients: args.agent_clients.max(1),
        cas_mode: args.agent_cas,
        classify: args.agent_503,
        ..AgentRegisterOptions::default()
    };
    let outcome = runtime.block_on(async {
        // Dropping the run on a signal kills the members and removes the network (their Drop impls).
        tokio::select! {
            verdict = run_workloads(&options, &workloads) => Some(verdict),
            _ = interrupted() => None,
        }
    });
    match outcome {
        None => {
            eprintln!("kuboard-jepsen: interrupted; members stopped and the test network removed");
            ExitCode::from(130)
        }
        Some(Err(error)) => {
            eprintln!("kuboard-jepsen: {error:#}");
            ExitCode::from(2)
        }
        Some(Ok(verdict)) => {
            if !args.keep_data {
                remove_member_data(&options);
            }
            print_verdict(&options, &verdict);
            if verdict.anomaly {
                ExitCode::from(1)
            } else if !verdict.valid {
                ExitCode::from(3)
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}

fn bench(args: BenchArgs) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("kuboard-jepsen: start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    let options = kuboard_jepsen::bench::BenchOptions {
        quick: args.quick,
        kuboard_binary: args.kuboard_binary,
        etcd_binary: args.etcd_binary,
        work_dir: args.work_dir,
        report: args.report,
        plots_dir: args.plots_dir,
        failovers: args.failovers.unwrap_or(if args.quick { 5 } else { 20 }),
        systems: args.systems,
        parts: args.only,
        fake_apiserver_binary: args.fake_apiserver_binary,
        postgres_bin_dir: args
            .postgres_bin_dir
            .unwrap_or_else(kuboard_jepsen::bench::default_postgres_bin_dir),
    };
    let outcome = runtime.block_on(async {
        // Dropping the running cluster on a signal kills its members and removes its network.
        tokio::select! {
            result = kuboard_jepsen::bench::run_bench(&options) => Some(result),
            _ = interrupted() => None,
        }
    });
    match outcome {
        None => {
            eprintln!("kuboard-jepsen: interrupted; members stopped and the network removed");
            ExitCode::from(130)
        }
        Some(Err(error)) => {
            eprintln!("kuboard-jepsen: {error:#}");
            ExitCode::from(2)
        }
        Some(Ok(_)) => ExitCode::SUCCESS,
    }
}

fn test_options(args: &TestArgs) -> TestOptions {
    let faults = args
        .nemesis
        .iter()
        .filter_map(|fault| match fault {
            NemesisArg::None => None,
            NemesisArg::Partition => Some(FaultKind::Partition),
            NemesisArg::Kill => Some(FaultKind::Kill),
            NemesisArg::Pause => Some(FaultKind::Pause),
            NemesisArg::Loss => Some(FaultKind::Loss),
            NemesisArg::Delay => Some(FaultKind::Delay),
            NemesisArg::Tamper => Some(FaultKind::Tamper),
            NemesisArg::KillLeader => Some(FaultKind::KillLeader),
            NemesisArg::PauseLeader => Some(FaultKind::PauseLeader),
            NemesisArg::Membership => Some(FaultKind::Membership),
            NemesisArg::AuditDb => Some(FaultKind::AuditDb),
            NemesisArg::AgentLink => Some(FaultKind::AgentLink),
        })
        .collect();
    TestOptions {
        kind: args.system,
        members: args.members,
        kuboard_binary: args.kuboard_binary.clone(),
        etcd_binary: args.etcd_binary.clone(),
        register: RegisterOptions {
            clients: args.clients.max(1),
            ops_per_key: args.ops_per_key.max(1),
            read_mode: args.read_mode,
            op_timeout: Duration::from_millis(args.op_timeout_ms),
            ..RegisterOptions::default()
        },
        nemesis: NemesisOptions {
            faults,
            quiet: Duration::from_secs(args.fault_quiet),
            hold: Duration::from_secs(args.fault_hold),
        },
        time_limit: Duration::from_secs(args.time_limit),
        recovery: Duration::from_secs(args.recovery),
        out_dir: args.out.clone(),
        limits: SearchLimits {
            max_steps_per_key: args.max_steps_per_key,
        },
        progress_every: Some(Duration::from_secs(5)),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn interrupted() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

fn remove_member_data(options: &TestOptions) {
    let members = options.out_dir.join("members");
    for index in 1..=options.members {
        let data = members.join(format!("n{index}"));
        if let Err(error) = std::fs::remove_dir_all(&data).context("remove member data") {
            if data.exists() {
                eprintln!("kuboard-jepsen: {}: {error:#}", data.display());
            }
        }
    }
}

fn print_verdict(options: &TestOptions, verdict: &RunVerdict) {
    let word = if verdict.anomaly {
        "ANOMALY"
    } else if verdict.valid {
        "valid"
    } else {
        "unknown"
    };
    println!(
        "{word}: {} operations (ok {}, fail {}, info {}), workloads {}, {} faults, {} ok after the faults, checked in {:.2} s",
        verdict.operations,
        verdict.outcomes.ok,
        verdict.outcomes.fail,
        verdict.outcomes.info,
        verdict.workload,
        verdict.faults_injected,
        verdict.ok_after_faults,
        verdict.checker_seconds
    );
    if !verdict.register.per_key.is_empty() {
        println!("  register: {} keys", verdict.register.keys);
    }
    if let Some(set) = &verdict.set {
        println!(
            "  set: {} acknowledged of {} adds; lost {}, unexpected {}, recovered {}",
            set.acknowledged,
            set.attempted,
            set.lost.len(),
            set.unexpected.len(),
            set.recovered.len()
        );
    }
    if let Some(watch) = &verdict.watch {
        println!(
            "  watch: {}; {} puts acknowledged; {} watchers with problems; {} final mismatches{}",
            if watch.valid { "valid" } else { "INVALID" },
            watch.puts_acknowledged,
            watch.checker.problems.len(),
            watch.final_mismatches.len(),
            watch
                .error
                .as_deref()
                .map(|error| format!("; {error}"))
                .unwrap_or_default()
        );
    }
    if let Some(http) = &verdict.http {
        println!(
            "  http: {}; {} users created ({} indeterminate); lost {}, stale reads {}, sessions rejected {}, session invalid on {:?}{}",
            if http.valid { "valid" } else { "INVALID" },
            http.creates_acknowledged,
            http.creates_indeterminate,
            http.lost_users.len(),
            http.stale_reads.len(),
            http.session_rejected.len(),
            http.session_invalid_on,
            http.error.as_deref().map(|error| format!("; {error}")).unwrap_or_default()
        );
    }
    if let Some(audit) = &verdict.strict_audit {
        println!(
            "  strict-audit: {}; {} creations acknowledged, {} refused audit_unavailable, {} indeterminate; {} with events; acknowledged without event {}, refused but done {}, present without event {}{}",
            if audit.valid { "valid" } else { "INVALID" },
            audit.creates_acknowledged,
            audit.creates_refused_audit_unavailable,
            audit.creates_indeterminate,
            audit.requests_with_events,
            audit.acknowledged_without_event.len(),
            audit.refused_but_done.len(),
            audit.present_without_event.len(),
            audit.error.as_deref().map(|error| format!("; {error}")).unwrap_or_default()
        );
    }
    if let Some(agent) = &verdict.agent_register {
        println!(
            "  agent-register: {}; {} keys; changes answered 503: {}, 502: {}; {} agent-link faults: {} of {} operations \
             on the cut member acknowledged; forwarded through a peer (members' counters at the end): {} ok, {} failed",
            if agent.register.anomaly {
                "NOT linearizable"
            } else if agent.register.valid {
                "linearizable"
            } else {
                "undecided"
            },
            agent.register.keys,
            agent.changes_answered_503,
            agent.changes_answered_502,
            agent.agent_link_faults,
            agent.ok_on_cut_member,
            agent.ops_on_cut_member,
            agent.peer_forwards.out_ok,
            agent.peer_forwards.out_failed
        );
    }
    let agent_anomalies = verdict
        .agent_register
        .iter()
        .flat_map(|agent| agent.register.anomalies.iter());
    for anomaly in verdict.register.anomalies.iter().chain(agent_anomalies).take(3) {
        println!(
            "  key {}: op {} ({:?} on {}) cannot be linearized; register was {:?} after {} ops",
            anomaly.key,
            anomaly.operation.index,
            anomaly.operation.call,
            anomaly.operation.node,
            anomaly.state_before,
            anomaly.linearized
        );
    }
    for member in &verdict.members_exited {
        println!("  member {member} exited by itself");
    }
    if !verdict.register.unknown_keys.is_empty() {
        println!("  undecided keys: {:?}", verdict.register.unknown_keys);
    }
    println!("run directory: {} (summary: index.html)", options.out_dir.display());
}
