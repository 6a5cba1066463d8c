//! Plots of a run as SVG: latency over time per operation kind and throughput over time per
//! workload, with the fault windows shaded. Written by hand (no plotting dependency).

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::history::{Outcome, TimedOp};

/// A fault in force from `start_s` to `end_s` (seconds since the start of the run).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultWindow {
    pub fault: String,
    pub detail: String,
    pub start_s: f64,
    pub end_s: f64,
}

/// Panel geometry.
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const PANEL_HEIGHT: f64 = 150.0;
const PANEL_GAP: f64 = 45.0;
const TOP: f64 = 50.0;
const WIDTH: f64 = 900.0;
/// Points drawn per operation kind at most; failed and indeterminate operations are always drawn.
const MAX_OK_POINTS: usize = 3000;
/// Operation kinds with fewer operations (a login, the final reads) get no latency panel of their own.
const MIN_PANEL_OPS: usize = 10;

pub fn outcome_colour(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Ok => "#2e7d32",
        Outcome::Fail => "#c62828",
        Outcome::Info => "#ef6c00",
    }
}

pub fn fault_colour(fault: &str) -> &'static str {
    match fault {
        "partition" => "#90caf9",
        "kill" => "#ef9a9a",
        "pause" => "#ce93d8",
        "loss" => "#ffe082",
        "delay" => "#a5d6a7",
        "tamper" => "#f48fb1",
        "kill-leader" => "#e57373",
        "pause-leader" => "#ba68c8",
        "membership" => "#ffcc80",
        "audit-db" => "#b0bec5",
        _ => "#d7ccc8",
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

struct Frame {
    duration_s: f64,
    plot_width: f64,
}

impl Frame {
    fn x(&self, seconds: f64) -> f64 {
        LEFT + (seconds / self.duration_s).clamp(0.0, 1.0) * self.plot_width
    }
}

fn header(out: &mut String, title: &str, height: f64) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = write!(
        out,
        r#"<text x="{}" y="20" font-size="14" text-anchor="middle">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
}

/// The legend of outcomes and the fault kinds present, on one line below the title.
fn legend(out: &mut String, faults: &[FaultWindow], outcomes: bool) {
    let mut x = LEFT;
    if outcomes {
        for (name, outcome) in [("ok", Outcome::Ok), ("fail", Outcome::Fail), ("info", Outcome::Info)] {
            let _ = write!(
                out,
                r#"<circle cx="{x}" cy="34" r="4" fill="{}"/><text x="{}" y="38">{name}</text>"#,
                outcome_colour(outcome),
                x + 8.0
            );
            x += 50.0;
        }
    }
    let mut kinds: Vec<&str> = faults.iter().map(|window| window.fault.as_str()).collect();
    kinds.sort();
    kinds.dedup();
    for kind in kinds {
        let _ = write!(
            out,
            r#"<rect x="{x}" y="29" width="12" height="10" fill="{}" opacity="0.5"/><text x="{}" y="38">{}</text>"#,
            fault_colour(kind),
            x + 16.0,
            escape(kind)
        );
        x += 24.0 + 7.0 * kind.len() as f64;
    }
}

/// One panel's frame: fault shading, axes, time ticks and the title.
fn panel(out: &mut String, frame: &Frame, top: f64, title: &str, faults: &[FaultWindow]) {
    for window in faults {
        let (x0, x1) = (frame.x(window.start_s), frame.x(window.end_s));
        let _ = write!(
            out,
            r#"<rect x="{x0:.1}" y="{top}" width="{:.1}" height="{PANEL_HEIGHT}" fill="{}" opacity="0.35"><title>{}</title></rect>"#,
            (x1 - x0).max(1.0),
            fault_colour(&window.fault),
            escape(&format!("{}: {}", window.fault, window.detail))
        );
    }
    let _ = write!(
        out,
        r##"<rect x="{LEFT}" y="{top}" width="{}" height="{PANEL_HEIGHT}" fill="none" stroke="#555"/>"##,
        frame.plot_width
    );
    let _ = write!(
        out,
        r#"<text x="{LEFT}" y="{}" font-size="12">{}</text>"#,
        top - 6.0,
        escape(title)
    );
    let step = nice_step(frame.duration_s / 10.0);
    let mut tick = 0.0;
    // Bounded: at most about a dozen ticks across the run.
    while tick <= frame.duration_s + 1e-9 {
        let x = frame.x(tick);
        let bottom = top + PANEL_HEIGHT;
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" y1="{bottom}" x2="{x:.1}" y2="{}" stroke="#555"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
            bottom + 4.0,
            bottom + 15.0,
            format_number(tick)
        );
        tick += step;
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(raw.log10().floor());
    for factor in [1.0, 2.0, 5.0, 10.0] {
        if factor * power >= raw {
            return factor * power;
        }
    }
    10.0 * power
}

fn format_number(value: f64) -> String {
    if value >= 1.0 || value == 0.0 {
        format!("{}", value.round() as i64)
    } else {
        format!("{value:.2}")
    }
}

/// Latency (log scale, milliseconds) against invoke time, one panel per operation kind, a point per
/// operation coloured by its outcome. Kinds with fewer than [`MIN_PANEL_OPS`] operations are left out
/// (named in a note at the bottom).
pub fn latency_plot(ops: &[TimedOp], faults: &[FaultWindow], duration_s: f64, title: &str) -> String {
    let mut by_kind: BTreeMap<&str, Vec<&TimedOp>> = BTreeMap::new();
    for op in ops {
        by_kind.entry(op.kind.as_str()).or_default().push(op);
    }
    let left_out: Vec<String> = by_kind
        .iter()
        .filter(|(_, kind_ops)| kind_ops.len() < MIN_PANEL_OPS)
        .map(|(kind, kind_ops)| format!("{kind} ({})", kind_ops.len()))
        .collect();
    by_kind.retain(|_, kind_ops| kind_ops.len() >= MIN_PANEL_OPS);
    let height = TOP + by_kind.len().max(1) as f64 * (PANEL_HEIGHT + PANEL_GAP) + 25.0;
    let frame = Frame {
        duration_s: duration_s.max(1.0),
        plot_width: WIDTH - LEFT - RIGHT,
    };
    let mut out = String::new();
    header(&mut out, title, height);
    legend(&mut out, faults, true);
    let latency_ms = |op: &TimedOp| (op.complete_ns.saturating_sub(op.invoke_ns)) as f64 / 1e6;
    for (row, (kind, kind_ops)) in by_kind.iter().enumerate() {
        let top = TOP + 8.0 + row as f64 * (PANEL_HEIGHT + PANEL_GAP);
        let max_ms = kind_ops.iter().map(|op| latency_ms(op)).fold(1.0, f64::max);
        let (low, high) = (-1.0_f64, max_ms.log10().ceil().max(0.0) + 0.01);
        let y = |ms: f64| top + PANEL_HEIGHT - ((ms.max(0.1).log10() - low) / (high - low)) * PANEL_HEIGHT;
        let ok_count = kind_ops.iter().filter(|op| op.outcome == Outcome::Ok).count();
        panel(
            &mut out,
            &frame,
            top,
            &format!(
                "{kind}: latency (ms, log scale) by invoke time (s); {} operations",
                kind_ops.len()
            ),
            faults,
        );
        let mut decade = low;
        // Bounded: a handful of decades between 0.1 ms and the slowest operation.
        while decade <= high {
            let yy = y(10f64.powf(decade));
            let _ = write!(
                out,
                r##"<line x1="{}" y1="{yy:.1}" x2="{LEFT}" y2="{yy:.1}" stroke="#555"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT - 4.0,
                LEFT - 6.0,
                yy + 4.0,
                format_number(10f64.powf(decade))
            );
            decade += 1.0;
        }
        let stride = ok_count.div_ceil(MAX_OK_POINTS).max(1);
        let mut ok_seen = 0usize;
        for op in kind_ops {
            if op.outcome == Outcome::Ok {
                ok_seen += 1;
                if ok_seen % stride != 0 {
                    continue;
                }
            }
            let _ = write!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="1.6" fill="{}" opacity="0.6"/>"#,
                frame.x(op.invoke_ns as f64 / 1e9),
                y(latency_ms(op)),
                outcome_colour(op.outcome)
            );
        }
        if stride > 1 {
            let _ = write!(
                out,
                r#"<text x="{}" y="{}" text-anchor="end">ok points: every {stride}th drawn</text>"#,
                WIDTH - RIGHT,
                top - 6.0
            );
        }
    }
    if !left_out.is_empty() {
        let _ = write!(
            out,
            r#"<text x="{LEFT}" y="{:.1}">Too few to plot: {}</text>"#,
            height - 8.0,
            escape(&left_out.join(", "))
        );
    }
    out.push_str("</svg>\n");
    out
}

/// Completed operations per second against time, one panel per workload, a line per outcome.
pub fn throughput_plot(ops: &[TimedOp], faults: &[FaultWindow], duration_s: f64, title: &str) -> String {
    let mut by_workload: BTreeMap<&str, Vec<&TimedOp>> = BTreeMap::new();
    for op in ops {
        let workload = op.kind.split(' ').next().unwrap_or("");
        by_workload.entry(workload).or_default().push(op);
    }
    let seconds = duration_s.max(1.0).ceil() as usize;
    let height = TOP + by_workload.len().max(1) as f64 * (PANEL_HEIGHT + PANEL_GAP) + 10.0;
    let frame = Frame {
        duration_s: seconds as f64,
        plot_width: WIDTH - LEFT - RIGHT,
    };
    let mut out = String::new();
    header(&mut out, title, height);
    legend(&mut out, faults, true);
    for (row, (workload, workload_ops)) in by_workload.iter().enumerate() {
        let top = TOP + 8.0 + row as f64 * (PANEL_HEIGHT + PANEL_GAP);
        let mut buckets = vec![[0usize; 3]; seconds + 1];
        for op in workload_ops {
            let second = ((op.complete_ns as f64 / 1e9) as usize).min(seconds);
            let slot = match op.outcome {
                Outcome::Ok => 0,
                Outcome::Fail => 1,
                Outcome::Info => 2,
            };
            buckets[second][slot] += 1;
        }
        let max = buckets
            .iter()
            .flat_map(|bucket| bucket.iter())
            .copied()
            .max()
            .unwrap_or(0)
            .max(1) as f64;
        let high = nice_step(max);
        panel(
            &mut out,
            &frame,
            top,
            &format!("{workload}: completed operations per second by time (s)"),
            faults,
        );
        let y = |count: f64| top + PANEL_HEIGHT - count / high * PANEL_HEIGHT;
        for value in [0.0, high / 2.0, high] {
            let yy = y(value);
            let _ = write!(
                out,
                r##"<line x1="{}" y1="{yy:.1}" x2="{LEFT}" y2="{yy:.1}" stroke="#555"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT - 4.0,
                LEFT - 6.0,
                yy + 4.0,
                format_number(value)
            );
        }
        for (slot, outcome) in [Outcome::Ok, Outcome::Fail, Outcome::Info].into_iter().enumerate() {
            let points: Vec<String> = buckets
                .iter()
                .enumerate()
                .map(|(second, bucket)| format!("{:.1},{:.1}", frame.x(second as f64 + 0.5), y(bucket[slot] as f64)))
                .collect();
            let _ = write!(
                out,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="1.5"/>"#,
                points.join(" "),
                outcome_colour(outcome)
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(kind: &str, outcome: Outcome, invoke_s: f64, latency_ms: f64) -> TimedOp {
        let invoke_ns = (invoke_s * 1e9) as u64;
        TimedOp {
            kind: kind.to_string(),
            outcome,
            invoke_ns,
            complete_ns: invoke_ns + (latency_ms * 1e6) as u64,
        }
    }

    #[test]
    fn plots_draw_every_kind_every_outcome_and_every_fault() {
        let mut ops = vec![
            op("register read", Outcome::Fail, 5.5, 1500.0),
            op("set add", Outcome::Info, 6.0, 1500.0),
            op("http login", Outcome::Ok, 0.1, 80.0),
        ];
        ops.extend((0..10).map(|i| op("register read", Outcome::Ok, 1.0 + f64::from(i) * 0.1, 2.0)));
        ops.extend((0..10).map(|i| op("set add", Outcome::Ok, 9.0 - f64::from(i) * 0.1, 5.0)));
        let faults = vec![FaultWindow {
            fault: "kill".into(),
            detail: "kill -9 n2 <x>".into(),
            start_s: 5.0,
            end_s: 8.0,
        }];
        let latency = latency_plot(&ops, &faults, 10.0, "latency");
        assert!(latency.starts_with("<svg") && latency.trim_end().ends_with("</svg>"));
        assert!(latency.contains("register read:") && latency.contains("set add:"));
        assert_eq!(
            latency.matches("<circle cx=").count(),
            22 + 3,
            "22 points and 3 legend marks"
        );
        assert!(latency.contains("Too few to plot: http login (1)"), "{latency}");
        for outcome in [Outcome::Ok, Outcome::Fail, Outcome::Info] {
            assert!(latency.contains(outcome_colour(outcome)));
        }
        // One shaded window per panel, its detail escaped.
        assert_eq!(latency.matches("kill -9 n2 &lt;x&gt;").count(), 2);
        let throughput = throughput_plot(&ops, &faults, 10.0, "throughput");
        assert_eq!(
            throughput.matches("<polyline").count(),
            3 * 3,
            "three workloads, three outcomes"
        );
        assert!(throughput.contains("register: completed") && throughput.contains("set: completed"));
    }

    #[test]
    fn nice_steps_are_one_two_or_five_times_a_power_of_ten() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(1.3), 2.0);
        assert_eq!(nice_step(4.0), 5.0);
        assert_eq!(nice_step(31.0), 50.0);
        assert_eq!(nice_step(0.0), 1.0);
    }
}
