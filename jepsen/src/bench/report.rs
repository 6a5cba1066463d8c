//! The benchmark report: `docs/benchmarks.md` (tables), SVG plots written by hand and the raw figures
//! as JSON. Text after [`NOTES_MARKER`] in an existing report is kept, so the analysis written by hand
//! survives a regeneration.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::{BenchOptions, BenchResult, SystemResult};

/// Everything after this line of an existing report is carried over unchanged.
pub const NOTES_MARKER: &str = "<!-- notes below are written by hand and kept when the report is regenerated -->";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cpus: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub data_disk: String,
}

impl Machine {
    pub fn describe(work_dir: &Path) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| {
                line.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, name)| name.trim())
            })
            .unwrap_or("unknown")
            .to_string();
        let cpus = cpuinfo.lines().filter(|line| line.starts_with("processor")).count();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: f64 = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string();
        Machine {
            cpu_model,
            cpus,
            memory_gib: memory_kib / 1024.0 / 1024.0,
            kernel,
            data_disk: data_disk(work_dir),
        }
    }
}

/// The device and file system holding `dir` (from `df`), e.g. `/dev/vda (ext4)`.
fn data_disk(dir: &Path) -> String {
    let probe = if dir.exists() { dir } else { Path::new(".") };
    std::process::Command::new("df")
        .args(["--output=source,fstype"])
        .arg(probe)
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| {
            let line = text.lines().nth(1)?.to_string();
            let mut parts = line.split_whitespace();
            Some(format!("{} ({})", parts.next()?, parts.next()?))
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// The current time from `date -u` (the crate has no calendar dependency, and this is only a label).
pub fn utc_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|text| text.trim().to_string())
        .unwrap_or_else(|| "an unknown date".to_string())
}

pub fn write(options: &BenchOptions, result: &BenchResult) -> anyhow::Result<()> {
    std::fs::create_dir_all(&options.plots_dir).with_context(|| format!("create {}", options.plots_dir.display()))?;
    let json = serde_json::to_string_pretty(result).context("encode the results")?;
    let json_path = options.plots_dir.join("results.json");
    std::fs::write(&json_path, json).with_context(|| format!("write {}", json_path.display()))?;
    let plots = write_plots(options, result)?;
    let notes = std::fs::read_to_string(&options.report)
        .ok()
        .and_then(|text| text.split_once(NOTES_MARKER).map(|(_, notes)| notes.to_string()))
        .unwrap_or_else(|| "\n".to_string());
    let relative_plots = options
        .report
        .parent()
        .and_then(|docs| options.plots_dir.strip_prefix(docs).ok())
        .map(|path| path.display().to_string())
        .unwrap_or_else(|| options.plots_dir.display().to_string());
    let markdown = markdown(result, &plots, &relative_plots);
    if let Some(parent) = options.report.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    }
    std::fs::write(&options.report, format!("{markdown}{NOTES_MARKER}{notes}"))
        .with_context(|| format!("write {}", options.report.display()))?;
    println!(
        "report: {} (plots and results.json in {})",
        options.report.display(),
        options.plots_dir.display()
    );
    Ok(())
}

fn find<'a>(result: &'a BenchResult, system: &str) -> Option<&'a SystemResult> {
    result.systems.iter().find(|candidate| candidate.system == system)
}

fn ratio(ours: f64, theirs: f64) -> String {
    if theirs > 0.0 && ours > 0.0 {
        format!("{:.2}", ours / theirs)
    } else {
        "–".to_string()
    }
}

fn joined(values: &[f64], precision: usize) -> String {
    values
        .iter()
        .map(|value| format!("{value:.precision$}"))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// Nearest-rank quantile of a sorted, non-empty slice.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut values = values.to_vec();
    values.sort_by(f64::total_cmp);
    values
}

fn markdown(result: &BenchResult, plots: &[(String, String)], plots_dir: &str) -> String {
    let mut out = String::new();
    let machine = &result.machine;
    let _ = writeln!(
        out,
        "# Benchmarks: the embedded store side by side with etcd, the Kubernetes proxy, audit\n"
    );
    let _ = writeln!(
        out,
        "The store figures were generated by `scripts/bench.sh{}` on {} ({} mode); the proxy and audit \
         sections say when they were measured. Regenerate everything (this file, the plots in \
         `docs/{plots_dir}/` and `docs/{plots_dir}/results.json`) with:\n\n```sh\nscripts/bench.sh          \
         # full run, about 15 minutes\nscripts/bench.sh --quick  # about 4 minutes\nscripts/bench.sh --only \
         proxy,audit  # some parts only; the others keep their figures from results.json\n```\n",
        if result.quick { " --quick" } else { "" },
        result.started_utc,
        if result.quick { "quick" } else { "full" },
    );
    let _ = writeln!(out, "## Machine\n");
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| CPU | {} × {} |", machine.cpus, machine.cpu_model);
    let _ = writeln!(out, "| Memory | {:.1} GiB |", machine.memory_gib);
    let _ = writeln!(out, "| Kernel | {} |", machine.kernel);
    let _ = writeln!(out, "| Data disk | {} |", machine.data_disk);
    let _ = writeln!(
        out,
        "\nBoth systems run 3 members on this one machine (each member in a network namespace of its own, \
         linked by a bridge), with fsync on: etcd 3.4 with its defaults, `kuboard serve` (release build) with \
         its defaults and the etcd v3 API enabled. The benchmark client runs on the same machine and shares \
         its {} CPUs with the members, so CPU-bound figures are lower than on dedicated hosts — for both \
         systems alike. Every client is `etcd-client` connected to all three members (requests are balanced \
         over them; writes on a follower are forwarded to the leader by both systems). Values are {} bytes.\n",
        machine.cpus,
        super::workloads::VALUE_SIZE,
    );

    if result.systems.is_empty() {
        let _ = writeln!(
            out,
            "## The store\n\nNot measured yet (run `scripts/bench.sh --only store`).\n"
        );
    } else {
        store_sections(&mut out, result, plots, plots_dir);
    }
    proxy_section(&mut out, result.proxy.as_ref());
    audit_section(&mut out, result.audit.as_ref());
    out
}

fn mode(quick: bool) -> &'static str {
    if quick {
        " --quick"
    } else {
        ""
    }
}

fn triple(latency: &super::Percentiles) -> String {
    format!("{:.2} / {:.2} / {:.2}", latency.p50_ms, latency.p99_ms, latency.p999_ms)
}

fn proxy_section(out: &mut String, proxy: Option<&super::ProxyResult>) {
    let _ = writeln!(out, "\n## The Kubernetes proxy\n");
    let Some(proxy) = proxy else {
        let _ = writeln!(out, "Not measured yet (run `scripts/bench.sh --only proxy`).\n");
        return;
    };
    let _ = writeln!(
        out,
        "Measured by the proxy part of `scripts/bench.sh{}` (alone: `--only proxy`) on {}. The fake apiserver of `testkit/` \
         (`kuboard-fake-apiserver`, HTTPS on loopback, {}) and one `kuboard serve` (release build, embedded \
         store, plain HTTP on loopback) with the fake imported as a cluster. The same client (reqwest, \
         keep-alive connections, pools warmed first) sends the same GET directly to the fake with its token, \
         and through `/k8s-api/{{cluster}}/…` with a Kuboard session, which the proxy forwards over its own \
         kept-alive TLS connection with the cluster's credential and impersonation headers. Closed loop; \
         latency in ms (p50 / p99 / p99.9); ratio is proxied / direct throughput; added latency is proxied \
         minus direct.\n",
        mode(proxy.quick),
        proxy.started_utc,
        if proxy.pod_requests {
            "100 pods in `default`"
        } else {
            "which refuses the identity the proxy impersonates (`kuboard:administrators`; the binary has no \
             `--admin-group`), so two documents it serves without authorization, `/openapi/v3/api/v1` and \
             `/version`, were measured instead of pods"
        }
    );
    let _ = writeln!(
        out,
        "| Request | clients | direct /s | proxied /s | ratio | direct latency | proxied latency | added p50 | \
         added p99 | body (bytes) | errors (d / p) |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---|---|---:|---:|---:|---|");
    for row in &proxy.rows {
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.0} | {:.2} | {} | {} | {:.2} | {:.2} | {} | {} / {} |",
            row.request,
            row.concurrency,
            row.direct.per_second,
            row.proxied.per_second,
            row.ratio(),
            triple(&row.direct.latency),
            triple(&row.proxied.latency),
            row.proxied.latency.p50_ms - row.direct.latency.p50_ms,
            row.proxied.latency.p99_ms - row.direct.latency.p99_ms,
            row.proxied.body_bytes,
            row.direct.errors,
            row.proxied.errors,
        );
    }
    if let Some(first) = &proxy.first_byte {
        let _ = writeln!(
            out,
            "\n{} ({} requests in a row, each a new watch of all pods, closed after its first chunk): direct \
             {}, proxied {} ms (p50 / p99 / p99.9).",
            first.request,
            first.samples,
            triple(&first.direct),
            triple(&first.proxied)
        );
    }
    let errors: Vec<String> = proxy
        .rows
        .iter()
        .flat_map(|row| {
            [("direct", &row.direct), ("proxied", &row.proxied)]
                .into_iter()
                .filter_map(move |(way, phase)| {
                    phase
                        .first_error
                        .as_ref()
                        .map(|error| format!("- {} ({way}, {}): {}", row.request, row.concurrency, error))
                })
        })
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(out, "\nFirst errors:\n\n{}", errors.join("\n"));
    }
}

fn audit_section(out: &mut String, audit: Option<&super::AuditResult>) {
    let _ = writeln!(out, "\n## Audit\n");
    let Some(audit) = audit else {
        let _ = writeln!(out, "Not measured yet (run `scripts/bench.sh --only audit`).\n");
        return;
    };
    let _ = writeln!(
        out,
        "Measured by the audit part of `scripts/bench.sh{}` (alone: `--only audit`) on {}. {} started by the benchmark on loopback with its \
         default durability (fsync on) stands in for QuestDB (same PG-wire protocol); one `kuboard serve` per \
         policy, each on a fresh data directory. The audited change is an anonymous `POST \
         /kuboard-api/auth/logout` (204): audited like any change, but it touches neither the store nor a \
         cluster, so the difference between policies is the audit path alone.\n",
        mode(audit.quick),
        audit.started_utc,
        audit.postgres
    );
    let baseline = audit.policy("disabled").map(|disabled| disabled.latency.latency);
    let _ = writeln!(
        out,
        "**Added latency**: one client, one change at a time. Latency in ms; added is against `disabled`.\n"
    );
    let _ = writeln!(
        out,
        "| Policy | changes/s | p50 | p99 | p99.9 | added p50 | added p99 | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for policy in &audit.policies {
        let latency = &policy.latency.latency;
        let (added_p50, added_p99) = match (&baseline, policy.policy.as_str()) {
            (_, "disabled") | (None, _) => ("–".to_string(), "–".to_string()),
            (Some(base), _) => (
                format!("{:.2}", latency.p50_ms - base.p50_ms),
                format!("{:.2}", latency.p99_ms - base.p99_ms),
            ),
        };
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {added_p50} | {added_p99} | {} |",
            policy.policy,
            policy.latency.per_second,
            latency.p50_ms,
            latency.p99_ms,
            latency.p999_ms,
            policy.latency.errors
        );
    }
    let _ = writeln!(
        out,
        "\n**Events per second with batching**: {} clients change as fast as they can for the phase; events \
         landed is the rows of the phase counted in the table, events/s is that count over the time from the \
         first request to the last row landing. Written, dropped and refused are the deltas of \
         `kuboard_audit_written_total`, `kuboard_audit_dropped_total` and `kuboard_audit_refused_total`; \
         queue is the largest `kuboard_audit_queue_depth` sampled every 100 ms; WAL flushes is PostgreSQL's \
         `pg_stat_wal.wal_sync` over the phase (one per commit), so events per flush is the batching the \
         database saw; disk is the data disk's fdatasync rate (4 KiB appends) sampled for 1 s just before the \
         phase, because every figure that waits for a flush moves with it.\n",
        super::audit::AUDIT_CONCURRENCY
    );
    let _ = writeln!(
        out,
        "| Policy | changes/s | latency | events landed | events/s landed | written | dropped | refused | max queue | WAL flushes | events per flush | disk fdatasync/s | errors |\n|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for policy in &audit.policies {
        let writes = policy.policy != "disabled";
        let cell = |value: String| if writes { value } else { "–".to_string() };
        let _ = writeln!(
            out,
            "| {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} | {} |",
            policy.policy,
            policy.throughput.per_second,
            triple(&policy.throughput.latency),
            cell(policy.events_landed.to_string()),
            cell(format!("{:.0}", policy.events_per_second)),
            cell(format!("{:.0}", policy.written_total)),
            cell(format!("{:.0}", policy.dropped_total)),
            cell(format!("{:.0}", policy.refused_total)),
            cell(format!("{:.0}", policy.max_queue_depth)),
            cell(policy.wal_syncs.to_string()),
            cell(format!(
                "{:.1}",
                policy.events_landed as f64 / policy.wal_syncs.max(1) as f64
            )),
            policy.fdatasync_per_second,
            policy.throughput.errors,
        );
    }
    let errors: Vec<String> = audit
        .policies
        .iter()
        .flat_map(|policy| {
            [&policy.latency.first_error, &policy.throughput.first_error]
                .into_iter()
                .flatten()
                .map(move |error| format!("- {}: {error}", policy.policy))
        })
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(out, "\nFirst errors:\n\n{}", errors.join("\n"));
    }
    let _ = writeln!(out);
}

/// The floor, memory, throughput, failover, targets and plots of the store part.
fn store_sections(out: &mut String, result: &BenchResult, plots: &[(String, String)], plots_dir: &str) {
    let ours = find(result, "kuboard");
    let etcd = find(result, "etcd");
    let _ = writeln!(out, "## The physical floor\n");
    let floor = &result.fsync_floor;
    let _ = writeln!(
        out,
        "Sequential 4 KiB appends, each followed by `fdatasync`, in the members' data directory, sampled for \
         3 s before each system and at the end: **{:.0} per second** at best (p50 {:.2} ms, p99 {:.2} ms; \
         samples: {}). Other work on the machine only lowers a sample, so the best one is the disk's rate. \
         A replicated write needs at least one such flush on the leader and on a follower, so one client \
         waiting for each write cannot exceed this rate; more clients share flushes (group commit).\n",
        floor.per_second,
        floor.p50_ms,
        floor.p99_ms,
        result
            .fsync_samples
            .iter()
            .map(|sample| format!("{:.0}/s", sample.per_second))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        out,
        "| System | put, 1 client (/s) | of the fdatasync rate |\n|---|---:|---:|"
    );
    for system in &result.systems {
        if let Some(phase) = system.phases.first() {
            let _ = writeln!(
                out,
                "| {} | {:.0} | {:.0} % |",
                system.system,
                phase.per_second,
                100.0 * phase.per_second / floor.per_second.max(1e-9)
            );
        }
    }

    let _ = writeln!(out, "\n## Idle memory\n");
    let _ = writeln!(
        out,
        "Resident memory of each member 3 s after the group answered its first read.\n"
    );
    let _ = writeln!(out, "| System | RSS per member (MiB) |\n|---|---|");
    for system in &result.systems {
        let _ = writeln!(out, "| {} | {} |", system.system, joined(&system.idle_rss_mib, 1));
    }

    let _ = writeln!(out, "\n## Throughput and latency\n");
    let _ = writeln!(
        out,
        "Closed loop: each client issues one request at a time. Latency in ms (p50 / p99 / p99.9). CPU in % \
         of one core and peak RSS (VmHWM, reset before each phase) in MiB, per member (n1 / n2 / n3). Ratio is \
         ours / etcd throughput (above 1: we are faster). Watch delivery counts events received by all \
         watchers per second; its latency runs from the put being sent to a watcher receiving the event.\n"
    );
    let _ = writeln!(
        out,
        "| Phase | kuboard /s | etcd /s | ratio | kuboard latency | etcd latency | kuboard CPU % | etcd CPU % | kuboard peak RSS | etcd peak RSS | errors (k / e) |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---|---|---|---|---|---|---|");
    let names: Vec<String> = result
        .systems
        .first()
        .map(|system| system.phases.iter().map(|phase| phase.name.clone()).collect())
        .unwrap_or_default();
    for name in &names {
        let pick = |system: Option<&SystemResult>| {
            system.and_then(|system| system.phases.iter().find(|phase| &phase.name == name).cloned())
        };
        let (mine, theirs) = (pick(ours), pick(etcd));
        let cell = |phase: &Option<super::PhaseResult>, what: &dyn Fn(&super::PhaseResult) -> String| {
            phase.as_ref().map(what).unwrap_or_else(|| "–".to_string())
        };
        let rate = |phase: &super::PhaseResult| format!("{:.0}", phase.per_second);
        let latency = |phase: &super::PhaseResult| {
            format!(
                "{:.2} / {:.2} / {:.2}",
                phase.latency.p50_ms, phase.latency.p99_ms, phase.latency.p999_ms
            )
        };
        let cpu = |phase: &super::PhaseResult| joined(&phase.cpu_percent, 0);
        let rss = |phase: &super::PhaseResult| joined(&phase.peak_rss_mib, 0);
        let errors = format!(
            "{} / {}",
            cell(&mine, &|phase| phase.errors.to_string()),
            cell(&theirs, &|phase| phase.errors.to_string())
        );
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {errors} |",
            cell(&mine, &rate),
            cell(&theirs, &rate),
            ratio(
                mine.as_ref().map_or(0.0, |phase| phase.per_second),
                theirs.as_ref().map_or(0.0, |phase| phase.per_second)
            ),
            cell(&mine, &latency),
            cell(&theirs, &latency),
            cell(&mine, &cpu),
            cell(&theirs, &cpu),
            cell(&mine, &rss),
            cell(&theirs, &rss),
        );
    }
    let errors: Vec<String> = result
        .systems
        .iter()
        .flat_map(|system| {
            system.phases.iter().filter_map(move |phase| {
                phase
                    .first_error
                    .as_ref()
                    .map(|error| format!("- {} / {}: {}", system.system, phase.name, error.replace('\n', " ")))
            })
        })
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(
            out,
            "\nFirst error of each phase that had errors:\n\n{}",
            errors.join("\n")
        );
    }

    let _ = writeln!(out, "\n## Failover\n");
    let _ = writeln!(
        out,
        "`kill -9` of the leader while 2 writers per member put in a loop (each writer on one member, 1 s \
         timeout per put); the time from the kill to the end of the first successful put that started after \
         it. The killed member is restarted and the group is ready again before the next kill.\n"
    );
    let _ = writeln!(
        out,
        "| System | kills | p50 (s) | p90 (s) | p99 (s) | max (s) | no write within 30 s |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    for system in &result.systems {
        let values = sorted(&system.failover_seconds);
        let _ = writeln!(
            out,
            "| {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {} |",
            system.system,
            values.len() + system.failover_timeouts,
            quantile(&values, 0.5),
            quantile(&values, 0.9),
            quantile(&values, 0.99),
            values.last().copied().unwrap_or(0.0),
            system.failover_timeouts
        );
    }

    let _ = writeln!(out, "\n## Targets (issue 9)\n");
    let _ = writeln!(out, "| Target | Where we are | Met |\n|---|---|---|");
    if let (Some(ours), Some(etcd)) = (ours, etcd) {
        for concurrency in super::PUT_CONCURRENCY {
            let name = super::put_phase_name(concurrency);
            let (a, b) = (rate_of(ours, &name), rate_of(etcd, &name));
            let _ = writeln!(
                out,
                "| writes ≥ etcd, {name} | {a:.0}/s vs {b:.0}/s (ratio {}) | {} |",
                ratio(a, b),
                met(a >= b && a > 0.0)
            );
        }
        let name = "get linearizable, 16 clients";
        let (a, b) = (rate_of(ours, name), rate_of(etcd, name));
        let _ = writeln!(
            out,
            "| linearizable reads ≥ etcd | {a:.0}/s vs {b:.0}/s (ratio {}) | {} |",
            ratio(a, b),
            met(a >= b && a > 0.0)
        );
        let (a, b) = (
            quantile(&sorted(&ours.failover_seconds), 0.5),
            quantile(&sorted(&etcd.failover_seconds), 0.5),
        );
        let _ = writeln!(
            out,
            "| failover p50 < 1 s and below etcd's | {a:.3} s vs {b:.3} s | {} |",
            met(a > 0.0 && a < 1.0 && a < b && ours.failover_timeouts == 0)
        );
        let worst = ours.idle_rss_mib.iter().copied().fold(0.0, f64::max);
        let _ = writeln!(
            out,
            "| idle RSS per replica < 64 MiB | at most {worst:.1} MiB | {} |",
            met(worst > 0.0 && worst < 64.0)
        );
    } else {
        let _ = writeln!(out, "| (both systems are needed) | – | – |");
    }

    let _ = writeln!(out, "\n## Plots\n");
    for (title, file) in plots {
        let _ = writeln!(out, "### {title}\n\n![{title}]({plots_dir}/{file})\n");
    }
}

fn rate_of(system: &SystemResult, phase: &str) -> f64 {
    system
        .phases
        .iter()
        .find(|candidate| candidate.name == phase)
        .map_or(0.0, |phase| phase.per_second)
}

fn met(yes: bool) -> &'static str {
    if yes {
        "yes"
    } else {
        "**no**"
    }
}

/// Write the plots; returns (title, file name) pairs.
fn write_plots(options: &BenchOptions, result: &BenchResult) -> anyhow::Result<Vec<(String, String)>> {
    let names: Vec<String> = result
        .systems
        .first()
        .map(|system| system.phases.iter().map(|phase| phase.name.clone()).collect())
        .unwrap_or_default();
    let series = |value: &dyn Fn(&super::PhaseResult) -> f64| -> Vec<(String, Vec<f64>)> {
        result
            .systems
            .iter()
            .map(|system| {
                let values = names
                    .iter()
                    .map(|name| {
                        system
                            .phases
                            .iter()
                            .find(|phase| &phase.name == name)
                            .map_or(0.0, value)
                    })
                    .collect();
                (system.system.clone(), values)
            })
            .collect()
    };
    let mut plots = Vec::new();
    let charts = [
        (
            "Throughput (operations per second, log scale)",
            "throughput.svg",
            series(&|phase| phase.per_second),
            true,
        ),
        (
            "p99 latency (ms, log scale)",
            "latency-p99.svg",
            series(&|phase| phase.latency.p99_ms),
            true,
        ),
        (
            "CPU of all members (% of one core)",
            "cpu.svg",
            series(&|phase| phase.cpu_percent.iter().sum()),
            false,
        ),
    ];
    for (title, file, data, log) in charts {
        let svg = grouped_bars(title, &names, &data, log);
        let path = options.plots_dir.join(file);
        std::fs::write(&path, svg).with_context(|| format!("write {}", path.display()))?;
        plots.push((title.to_string(), file.to_string()));
    }
    let longest = result
        .systems
        .iter()
        .map(|system| system.failover_seconds.len())
        .max()
        .unwrap_or(0);
    let labels: Vec<String> = (1..=longest).map(|rank| format!("#{rank}")).collect();
    let data: Vec<(String, Vec<f64>)> = result
        .systems
        .iter()
        .map(|system| {
            let mut values = sorted(&system.failover_seconds);
            values.resize(longest, 0.0);
            (system.system.clone(), values)
        })
        .collect();
    let title = "Failover: seconds from kill -9 of the leader to the first write, sorted";
    let path = options.plots_dir.join("failover.svg");
    std::fs::write(&path, grouped_bars(title, &labels, &data, false))
        .with_context(|| format!("write {}", path.display()))?;
    plots.push((title.to_string(), "failover.svg".to_string()));
    Ok(plots)
}

const COLOURS: [&str; 4] = ["#2b6cb0", "#dd6b20", "#38a169", "#805ad5"];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A grouped bar chart: one group per category, one bar per series; a log10 axis when `log`.
pub fn grouped_bars(title: &str, categories: &[String], series: &[(String, Vec<f64>)], log: bool) -> String {
    let (left, top, plot_height, group_width) = (70.0, 50.0, 300.0, 70.0_f64.max(24.0 * series.len() as f64));
    let width = left + group_width * categories.len().max(1) as f64 + 30.0;
    let height = top + plot_height + 170.0;
    let max = series
        .iter()
        .flat_map(|(_, values)| values.iter().copied())
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let positive_min = series
        .iter()
        .flat_map(|(_, values)| values.iter().copied())
        .filter(|value| *value > 0.0)
        .fold(f64::INFINITY, f64::min);
    let (low, high) = if log {
        let low = if positive_min.is_finite() {
            positive_min.log10().floor()
        } else {
            0.0
        };
        (low, max.log10().ceil().max(low + 1.0))
    } else {
        (0.0, max * 1.1)
    };
    let scale = |value: f64| -> f64 {
        let position = if log {
            if value <= 0.0 {
                0.0
            } else {
                (value.log10() - low) / (high - low)
            }
        } else {
            value / high
        };
        plot_height * position.clamp(0.0, 1.0)
    };
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{left}" y="22" font-size="14" font-weight="bold">{}</text>"#,
        escape(title)
    );
    // Axis ticks: every power of ten on a log axis, five steps on a linear one.
    let ticks: Vec<f64> = if log {
        (low as i32..=high as i32).map(|power| 10_f64.powi(power)).collect()
    } else {
        (0..=5).map(|step| high * f64::from(step) / 5.0).collect()
    };
    for tick in ticks {
        let y = top + plot_height - scale(tick);
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            width - 30.0,
            left - 6.0,
            y + 4.0,
            if tick >= 100.0 {
                format!("{tick:.0}")
            } else {
                format!("{tick:.2}")
            }
        );
    }
    let bar = (group_width - 14.0) / series.len().max(1) as f64;
    for (index, category) in categories.iter().enumerate() {
        let x0 = left + group_width * index as f64 + 7.0;
        for (rank, (_, values)) in series.iter().enumerate() {
            let value = values.get(index).copied().unwrap_or(0.0);
            let bar_height = scale(value);
            let _ = writeln!(
                svg,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{bar_height:.1}" fill="{}"><title>{}</title></rect>"#,
                x0 + bar * rank as f64,
                top + plot_height - bar_height,
                bar - 2.0,
                COLOURS[rank % COLOURS.len()],
                value
            );
        }
        let label_x = x0 + (group_width - 14.0) / 2.0;
        let label_y = top + plot_height + 12.0;
        let _ = writeln!(
            svg,
            r#"<text x="{label_x:.1}" y="{label_y:.1}" transform="rotate(35 {label_x:.1} {label_y:.1})">{}</text>"#,
            escape(category)
        );
    }
    let _ = writeln!(
        svg,
        r#"<line x1="{left}" y1="{0:.1}" x2="{1:.1}" y2="{0:.1}" stroke="black"/>"#,
        top + plot_height,
        width - 30.0
    );
    for (rank, (name, _)) in series.iter().enumerate() {
        let x = left + 120.0 * rank as f64;
        let _ = writeln!(
            svg,
            r#"<rect x="{x:.1}" y="32" width="10" height="10" fill="{}"/><text x="{:.1}" y="41">{}</text>"#,
            COLOURS[rank % COLOURS.len()],
            x + 14.0,
            escape(name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_has_one_bar_per_value() {
        let categories = vec!["a".to_string(), "b<c".to_string()];
        let series = vec![
            ("kuboard".to_string(), vec![10.0, 1000.0]),
            ("etcd".to_string(), vec![5.0, 0.0]),
        ];
        let svg = grouped_bars("t", &categories, &series, true);
        assert_eq!(svg.matches("<rect x=").count(), 4 + 2, "4 bars and 2 legend boxes");
        assert!(svg.contains("b&lt;c"));
        assert!(svg.ends_with("</svg>\n"));
    }

    fn phase(per_second: f64, p50_ms: f64) -> crate::bench::http_load::HttpPhase {
        crate::bench::http_load::HttpPhase {
            concurrency: 1,
            ok: 10,
            errors: 0,
            seconds: 1.0,
            per_second,
            latency: super::super::Percentiles {
                p50_ms,
                p99_ms: p50_ms * 2.0,
                p999_ms: p50_ms * 3.0,
                max_ms: p50_ms * 4.0,
            },
            body_bytes: 42,
            first_error: None,
        }
    }

    /// A results.json written before the proxy and audit parts existed still reads, and a report
    /// with those parts only has their tables and says the store was not measured.
    #[test]
    fn old_results_read_and_new_parts_are_reported() {
        let old = r#"{"quick": true, "started_utc": "then", "machine": {"cpu_model": "x", "cpus": 2,
            "memory_gib": 1.0, "kernel": "k", "data_disk": "d"}, "fsync_floor": {"per_second": 1.0,
            "p50_ms": 1.0, "p99_ms": 1.0}, "fsync_samples": [], "systems": []}"#;
        let mut result: BenchResult = serde_json::from_str(old).expect("an old results.json reads");
        assert!(result.proxy.is_none() && result.audit.is_none());
        result.proxy = Some(crate::bench::ProxyResult {
            started_utc: "now".to_string(),
            quick: false,
            pod_requests: true,
            rows: vec![crate::bench::proxy::ProxyRow {
                request: "get one pod".to_string(),
                concurrency: 16,
                direct: phase(1000.0, 1.0),
                proxied: phase(500.0, 1.5),
            }],
            first_byte: None,
        });
        let policy = |name: &str, p50_ms: f64| crate::bench::audit::PolicyResult {
            policy: name.to_string(),
            latency: phase(100.0, p50_ms),
            throughput: phase(1000.0, p50_ms),
            events_landed: 400,
            landing_seconds: 2.0,
            events_per_second: 200.0,
            written_total: 400.0,
            dropped_total: 0.0,
            refused_total: 0.0,
            max_queue_depth: 5.0,
            wal_syncs: 100,
            fdatasync_per_second: 900.0,
        };
        result.audit = Some(crate::bench::AuditResult {
            started_utc: "now".to_string(),
            quick: false,
            postgres: "PostgreSQL 15".to_string(),
            policies: vec![policy("disabled", 0.5), policy("strict", 2.0)],
        });
        let text = markdown(&result, &[], "bench");
        assert!(text.contains("## The store\n\nNot measured yet"), "{text}");
        assert!(
            text.contains("| get one pod | 16 | 1000 | 500 | 0.50 | 1.00 / 2.00 / 3.00 | 1.50 / 3.00 / 4.50 | 0.50 | 1.00 | 42 | 0 / 0 |"),
            "{text}"
        );
        assert!(
            text.contains("| strict | 100 | 2.00 | 4.00 | 6.00 | 1.50 | 3.00 | 0 |"),
            "{text}"
        );
        assert!(
            text.contains("| 400 | 200 | 400 | 0 | 0 | 5 | 100 | 4.0 | 900 | 0 |"),
            "{text}"
        );
    }

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let values = sorted(&[0.5, 0.1, 0.3, 0.2, 0.4]);
        assert_eq!(quantile(&values, 0.5), 0.3);
        assert_eq!(quantile(&values, 0.99), 0.5);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}
