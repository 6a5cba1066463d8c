//! The run directory's human side: `latency.svg`, `throughput.svg` and `index.html` (the verdict,
//! counts per workload, the fault timeline, the plots and links to the raw files).

pub mod svg;

use std::fmt::Write;
use std::path::Path;

use anyhow::Context;

use crate::history::TimedOp;
use crate::nemesis::TimelineEvent;
use crate::run::RunVerdict;
pub use svg::FaultWindow;

/// The fault windows of a timeline: each `start` closed by the next `stop` or `error` of the same
/// fault, or by the end of the run.
pub fn fault_windows(timeline: &[TimelineEvent], end_s: f64) -> Vec<FaultWindow> {
    let mut windows: Vec<FaultWindow> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    for event in timeline {
        let at = event.time_ns as f64 / 1e9;
        match event.action.as_str() {
            "start" => {
                open.push(windows.len());
                windows.push(FaultWindow {
                    fault: event.fault.clone(),
                    detail: event.detail.clone(),
                    start_s: at,
                    end_s: end_s.max(at),
                });
            }
            "stop" | "error" => {
                let closes_all = event.fault == "all";
                open.retain(|index| {
                    let window = &mut windows[*index];
                    if closes_all || window.fault == event.fault {
                        window.end_s = at;
                        false
                    } else {
                        true
                    }
                });
            }
            _ => {}
        }
    }
    windows
}

/// Write the plots and `index.html` into `dir`.
pub fn write(dir: &Path, verdict: &RunVerdict, ops: &[TimedOp], timeline: &[TimelineEvent]) -> anyhow::Result<()> {
    let last_ns = ops.iter().map(|op| op.complete_ns).max().unwrap_or(0);
    let end_s = (last_ns as f64 / 1e9).max(verdict.time_limit_s);
    let windows = fault_windows(timeline, end_s);
    let subject = format!(
        "{:?} ×{}, {}, faults {}",
        verdict.system,
        verdict.members,
        verdict.workload,
        fault_list(verdict)
    );
    let latency = svg::latency_plot(ops, &windows, end_s, &format!("Latency — {subject}"));
    std::fs::write(dir.join("latency.svg"), latency).context("write latency.svg")?;
    let throughput = svg::throughput_plot(ops, &windows, end_s, &format!("Throughput — {subject}"));
    std::fs::write(dir.join("throughput.svg"), throughput).context("write throughput.svg")?;
    std::fs::write(dir.join("index.html"), html(verdict, &windows, timeline, &subject)).context("write index.html")
}

fn fault_list(verdict: &RunVerdict) -> String {
    if verdict.nemesis.is_empty() {
        return "none".to_string();
    }
    verdict
        .nemesis
        .iter()
        .map(|fault| fault.name())
        .collect::<Vec<_>>()
        .join(",")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html(verdict: &RunVerdict, windows: &[FaultWindow], timeline: &[TimelineEvent], subject: &str) -> String {
    let (word, colour) = if verdict.anomaly {
        ("ANOMALY", "#c62828")
    } else if verdict.valid {
        ("valid", "#2e7d32")
    } else {
        ("unknown", "#ef6c00")
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>kuboard-jepsen: {}</title>\
         <style>body{{font-family:sans-serif;margin:2em;max-width:960px}}table{{border-collapse:collapse;margin:1em 0}}\
         td,th{{border:1px solid #bbb;padding:3px 8px;text-align:left}}th{{background:#eee}}\
         .verdict{{font-size:1.6em;font-weight:bold;color:{colour}}}</style></head><body>",
        escape(subject)
    );
    let _ = writeln!(out, "<h1>kuboard-jepsen run</h1>\n<p>{}</p>", escape(subject));
    let _ = writeln!(out, "<p class=\"verdict\">{word}</p>");
    let failed = verdict.failed_workloads();
    if !failed.is_empty() {
        let _ = writeln!(out, "<p>Checkers that found problems: <b>{}</b></p>", failed.join(", "));
    }
    for member in &verdict.members_exited {
        let _ = writeln!(out, "<p>Member exited by itself: <b>{}</b></p>", escape(member));
    }
    let _ = writeln!(
        out,
        "<p>{} operations (ok {}, fail {}, info {}); {} faults injected; {} acknowledged operations after the \
         faults; time limit {} s; checked in {:.2} s.</p>",
        verdict.operations,
        verdict.outcomes.ok,
        verdict.outcomes.fail,
        verdict.outcomes.info,
        verdict.faults_injected,
        verdict.ok_after_faults,
        verdict.time_limit_s,
        verdict.checker_seconds
    );
    out.push_str(
        "<h2>Workloads</h2>\n<table><tr><th>workload</th><th>ok</th><th>fail</th><th>info</th><th>verdict</th></tr>\n",
    );
    for (workload, counts) in &verdict.per_workload {
        let _ = writeln!(
            out,
            "<tr><td>{workload}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            counts.ok,
            counts.fail,
            counts.info,
            escape(&workload_summary(verdict, workload))
        );
    }
    out.push_str("</table>\n");
    out.push_str("<h2>Faults</h2>\n<table><tr><th>from (s)</th><th>to (s)</th><th>fault</th><th>what</th></tr>\n");
    for window in windows {
        let _ = writeln!(
            out,
            "<tr><td>{:.1}</td><td>{:.1}</td><td style=\"background:{}\">{}</td><td>{}</td></tr>",
            window.start_s,
            window.end_s,
            svg::fault_colour(&window.fault),
            escape(&window.fault),
            escape(&window.detail)
        );
    }
    out.push_str("</table>\n");
    let other: Vec<&TimelineEvent> = timeline.iter().filter(|event| event.action != "start").collect();
    if !other.is_empty() {
        out.push_str("<details><summary>Full fault timeline</summary><table><tr><th>time (s)</th><th>fault</th><th>action</th><th>detail</th></tr>\n");
        for event in timeline {
            let _ = writeln!(
                out,
                "<tr><td>{:.2}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                event.time_ns as f64 / 1e9,
                escape(&event.fault),
                escape(&event.action),
                escape(&event.detail)
            );
        }
        out.push_str("</table></details>\n");
    }
    out.push_str(
        "<h2>Plots</h2>\n<p><img src=\"latency.svg\" alt=\"latency over time\"></p>\n\
         <p><img src=\"throughput.svg\" alt=\"throughput over time\"></p>\n\
         <h2>Files</h2>\n<ul><li><a href=\"verdict.json\">verdict.json</a> — the checkers' verdicts</li>\
         <li><a href=\"history.jsonl\">history.jsonl</a> — every operation</li>\
         <li><a href=\"timeline.jsonl\">timeline.jsonl</a> — the faults</li>",
    );
    if verdict.watch.is_some() {
        out.push_str("<li><a href=\"watchers.jsonl\">watchers.jsonl</a> — what each watcher saw</li>");
    }
    out.push_str("<li><a href=\"members/\">members/</a> — the members' logs</li></ul>\n</body></html>\n");
    out
}

/// The summary of a register verdict: linearizable or not, keys, the first anomaly.
fn register_summary(register: &crate::checker::RegisterVerdict) -> String {
    let word = if register.anomaly {
        "NOT linearizable"
    } else if register.valid {
        "linearizable"
    } else {
        "undecided"
    };
    let mut line = format!("{word}: {} keys", register.keys);
    if let Some(anomaly) = register.anomalies.first() {
        let _ = write!(
            line,
            "; e.g. key {} op {} on {}",
            anomaly.key, anomaly.operation.index, anomaly.operation.node
        );
    }
    if !register.unknown_keys.is_empty() {
        let _ = write!(line, "; {} undecided keys", register.unknown_keys.len());
    }
    line
}

fn agent_register_summary(verdict: &crate::run::AgentRegisterVerdict) -> String {
    format!(
        "{}; CAS by {}, 503 of a change counted {}",
        register_summary(&verdict.register),
        match verdict.cas_mode {
            crate::workload::agent_register::CasMode::ResourceVersion => "resourceVersion",
            crate::workload::agent_register::CasMode::Blind => "blind PUT (unsafe)",
        },
        match verdict.classify {
            crate::workload::agent_register::Classify::UnavailableDefinite => "as a failure",
            crate::workload::agent_register::Classify::UnavailableIndeterminate => "as indeterminate",
        }
    )
}

/// One line per workload for the summary table.
fn workload_summary(verdict: &RunVerdict, workload: &str) -> String {
    match workload {
        "register" => register_summary(&verdict.register),
        "agent-register" => verdict
            .agent_register
            .as_ref()
            .map_or_else(String::new, agent_register_summary),
        "set" => verdict.set.as_ref().map_or_else(String::new, |set| {
            format!(
                "{}: {} adds acknowledged of {}; lost {}, unexpected {}, recovered {}",
                if set.valid { "valid" } else { "INVALID" },
                set.acknowledged,
                set.attempted,
                set.lost.len(),
                set.unexpected.len(),
                set.recovered.len()
            )
        }),
        "watch" => verdict.watch.as_ref().map_or_else(String::new, |watch| {
            let problems: usize = watch
                .checker
                .problems
                .iter()
                .map(|p| p.missing.len() + p.duplicates.len() + p.out_of_order.len() + p.outside_window.len())
                .sum();
            format!(
                "{}: {} puts acknowledged, {} committed events, revisions {}..{:?}; {} watcher problems, {} final \
                 mismatches; {}{}",
                if watch.valid { "valid" } else { "INVALID" },
                watch.puts_acknowledged,
                watch.checker.committed_events,
                watch.start_revision,
                watch.fence_revision,
                problems,
                watch.final_mismatches.len(),
                watch.watchers.join("; "),
                watch.error.as_deref().map(|e| format!("; {e}")).unwrap_or_default()
            )
        }),
        "http" => verdict.http.as_ref().map_or_else(String::new, |http| {
            format!(
                "{}: logged in {}, password changed {}; users created {} of {} ({} indeterminate, {} of them \
                 present); lost {}, stale reads {}, sessions rejected {}; session valid on [{}] invalid on [{}]{}",
                if http.valid { "valid" } else { "INVALID" },
                http.logged_in,
                http.password_changed,
                http.creates_acknowledged,
                http.creates_attempted,
                http.creates_indeterminate,
                http.recovered_users,
                http.lost_users.len(),
                http.stale_reads.len(),
                http.session_rejected.len(),
                http.session_valid_on.join(","),
                http.session_invalid_on.join(","),
                http.error.as_deref().map(|e| format!("; {e}")).unwrap_or_default()
            )
        }),
        "strict-audit" => verdict.strict_audit.as_ref().map_or_else(String::new, |audit| {
            format!(
                "{}: {} creations acknowledged, {} refused audit_unavailable, {} indeterminate of {}; {} with an \
                 audit event; acknowledged without event {}, refused but done {}, present without event {}{}",
                if audit.valid { "valid" } else { "INVALID" },
                audit.creates_acknowledged,
                audit.creates_refused_audit_unavailable,
                audit.creates_indeterminate,
                audit.creates_attempted,
                audit.requests_with_events,
                audit.acknowledged_without_event.len(),
                audit.refused_but_done.len(),
                audit.present_without_event.len(),
                audit.error.as_deref().map(|e| format!("; {e}")).unwrap_or_default()
            )
        }),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(time_s: f64, fault: &str, action: &str) -> TimelineEvent {
        TimelineEvent {
            time_ns: (time_s * 1e9) as u64,
            fault: fault.to_string(),
            action: action.to_string(),
            detail: format!("{fault} {action}"),
        }
    }

    #[test]
    fn fault_windows_pair_starts_with_their_stops_and_the_final_heal() {
        let timeline = vec![
            event(5.0, "partition", "start"),
            event(10.0, "partition", "stop"),
            event(15.0, "kill", "start"),
            event(20.0, "kill", "error"),
            event(25.0, "pause", "start"),
            event(28.0, "all", "stop"),
        ];
        let windows = fault_windows(&timeline, 40.0);
        let spans: Vec<(&str, f64, f64)> = windows
            .iter()
            .map(|window| (window.fault.as_str(), window.start_s, window.end_s))
            .collect();
        assert_eq!(
            spans,
            vec![("partition", 5.0, 10.0), ("kill", 15.0, 20.0), ("pause", 25.0, 28.0)]
        );
        // A fault never stopped lasts until the end of the run.
        let open = fault_windows(&[event(30.0, "loss", "start")], 40.0);
        assert_eq!((open[0].start_s, open[0].end_s), (30.0, 40.0));
    }
}
