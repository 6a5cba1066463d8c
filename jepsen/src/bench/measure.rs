//! What the benchmark measures besides the clients' own timings: latency percentiles, a member's CPU
//! time and memory from `/proc`, and the data disk's fdatasync rate.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Latency samples in microseconds. The runs are bounded in operations, so keeping every sample and
/// sorting once is exact and cheap enough (no histogram approximation).
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    micros: Vec<u32>,
}

impl Latencies {
    pub fn record(&mut self, elapsed: Duration) {
        self.micros.push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
    }

    pub fn merge(&mut self, other: Latencies) {
        self.micros.extend(other.micros);
    }

    pub fn len(&self) -> usize {
        self.micros.len()
    }

    pub fn is_empty(&self) -> bool {
        self.micros.is_empty()
    }

    /// p50, p99 and p99.9 in milliseconds (zero without samples).
    pub fn summary(mut self) -> Percentiles {
        if self.is_empty() {
            return Percentiles::default();
        }
        self.micros.sort_unstable();
        let at = |quantile: f64| -> f64 {
            if self.micros.is_empty() {
                return 0.0;
            }
            // Nearest rank: the smallest sample with at least `quantile` of the samples at or below it.
            let rank = ((quantile * self.micros.len() as f64).ceil() as usize).clamp(1, self.micros.len());
            f64::from(self.micros[rank - 1]) / 1000.0
        };
        Percentiles {
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: at(1.0),
        }
    }
}

#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// CPU ticks (user + system) of a process from `/proc/<pid>/stat`.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; the fields after the last ')' are fixed.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of the full line, utime 14 and stime 15, i.e. indices 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second (`getconf CLK_TCK`; Linux uses 100 everywhere it runs this suite).
pub fn ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|ticks| *ticks > 0)
        .unwrap_or(100)
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Reset the peak RSS (`VmHWM`) of a process to its current RSS, so the next reading is the peak of the
/// next workload only (Linux ≥ 4.0). Failing that, the reading is the peak since start, which is still
/// an upper bound.
pub fn reset_peak_rss(pid: u32) {
    if let Err(error) = std::fs::write(format!("/proc/{pid}/clear_refs"), "5") {
        tracing::debug!(pid, %error, "cannot reset the peak RSS");
    }
}

#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
pub struct FsyncFloor {
    /// Sequential 4 KiB appends each followed by fdatasync, per second.
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Append 4 KiB blocks to a fresh file in `dir` and fdatasync after each, for `duration` or at most
/// `max_writes` writes: the rate one durable log on this disk can reach with one writer and no batching.
pub fn fdatasync_floor(dir: &Path, duration: Duration, max_writes: usize) -> anyhow::Result<FsyncFloor> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let path = dir.join("fdatasync-probe");
    let mut file = File::create(&path).with_context(|| format!("create {}", path.display()))?;
    let block = [0x5a_u8; 4096];
    let mut latencies = Latencies::default();
    let started = Instant::now();
    while started.elapsed() < duration && latencies.len() < max_writes {
        let begin = Instant::now();
        file.write_all(&block).context("append a block")?;
        file.sync_data().context("fdatasync the probe file")?;
        latencies.record(begin.elapsed());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let writes = latencies.len();
    drop(file);
    std::fs::remove_file(&path).with_context(|| format!("remove {}", path.display()))?;
    let summary = latencies.summary();
    Ok(FsyncFloor {
        per_second: writes as f64 / elapsed.max(1e-9),
        p50_ms: summary.p50_ms,
        p99_ms: summary.p99_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut latencies = Latencies::default();
        for micros in 1..=1000_u64 {
            latencies.record(Duration::from_micros(micros));
        }
        let summary = latencies.summary();
        assert_eq!(summary.p50_ms, 0.5);
        assert_eq!(summary.p99_ms, 0.99);
        assert_eq!(summary.p999_ms, 0.999);
        assert_eq!(summary.max_ms, 1.0);
    }

    #[test]
    fn own_process_has_cpu_time_and_memory() {
        let pid = std::process::id();
        assert!(cpu_ticks(pid).is_some());
        assert!(status_kib(pid, "VmRSS").is_some_and(|kib| kib > 0));
        assert!(status_kib(pid, "VmHWM").is_some_and(|kib| kib > 0));
    }

    #[test]
    fn fdatasync_floor_counts_durable_writes() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let floor = fdatasync_floor(dir.path(), Duration::from_millis(200), 50).expect("the probe runs");
        assert!(floor.per_second > 0.0);
        assert!(!dir.path().join("fdatasync-probe").exists());
    }
}
