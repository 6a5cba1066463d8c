//! The nemesis: injects faults into a [`Cluster`] on a random schedule and records a timeline.
//!
//! Each round waits a quiet interval, starts one fault picked at random from the enabled kinds, holds
//! it, and undoes it. When the fault window closes, everything is healed: partitions and loss lifted,
//! paused members resumed, killed members restarted.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::seq::SliceRandom;
use rand::Rng;
use serde::Serialize;

use crate::net::partition::isolate;
use crate::net::PartitionKind;
use crate::system::Cluster;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    /// Network partitions of the shapes in [`PartitionKind`], or the current leader isolated.
    Partition,
    /// `kill -9` of a minority of members, restarted when the fault ends.
    Kill,
    /// SIGSTOP of a minority of members, SIGCONT when the fault ends.
    Pause,
    /// Random loss of 20% of the packets between members.
    Loss,
}

#[derive(Debug, Clone)]
pub struct NemesisOptions {
    pub faults: Vec<FaultKind>,
    /// Quiet time before each fault.
    pub quiet: Duration,
    /// How long each fault lasts.
    pub hold: Duration,
}

/// One line of the fault timeline.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineEvent {
    pub time_ns: u64,
    pub fault: String,
    /// `start`, `stop` or `error`.
    pub action: String,
    pub detail: String,
}

/// What the progress lines show as the current fault.
pub type CurrentFault = Arc<Mutex<String>>;

/// A fault in force, and how to undo it.
enum Active {
    Partition,
    Loss,
    Killed(Vec<usize>),
    Paused(Vec<usize>),
}

/// Inject faults until `until`, then heal. Returns the timeline. Errors of single faults are recorded
/// in the timeline and the schedule goes on; a failure to heal is an error.
pub async fn run(
    cluster: &mut Cluster,
    options: &NemesisOptions,
    started: Instant,
    until: Instant,
    current: CurrentFault,
) -> anyhow::Result<Vec<TimelineEvent>> {
    let mut timeline = Vec::new();
    let stamp = |timeline: &mut Vec<TimelineEvent>, fault: &str, action: &str, detail: String| {
        tracing::info!(fault, action, %detail, "nemesis");
        timeline.push(TimelineEvent {
            time_ns: started.elapsed().as_nanos() as u64,
            fault: fault.to_string(),
            action: action.to_string(),
            detail,
        });
    };
    // Bounded by `until`: every round sleeps at least the quiet interval (at least 100 ms).
    while !options.faults.is_empty() && Instant::now() + options.quiet < until {
        tokio::time::sleep(options.quiet.max(Duration::from_millis(100))).await;
        let kind = *options
            .faults
            .choose(&mut rand::thread_rng())
            .expect("faults is not empty");
        let name = fault_name(kind);
        let started_fault = match start_fault(cluster, kind).await {
            Ok((active, detail)) => {
                *current.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = format!("{name} ({detail})");
                stamp(&mut timeline, name, "start", detail);
                Some(active)
            }
            Err(error) => {
                stamp(&mut timeline, name, "error", format!("{error:#}"));
                None
            }
        };
        let hold_until = (Instant::now() + options.hold).min(until);
        tokio::time::sleep_until(hold_until.into()).await;
        if let Some(active) = started_fault {
            match stop_fault(cluster, active) {
                Ok(detail) => stamp(&mut timeline, name, "stop", detail),
                Err(error) => stamp(&mut timeline, name, "error", format!("{error:#}")),
            }
            *current.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = "none".to_string();
        }
    }
    let (healed, exited) = heal_everything(cluster).context("heal the cluster at the end of the fault window")?;
    for member in exited {
        stamp(&mut timeline, "crash", "detected", member);
    }
    stamp(&mut timeline, "all", "stop", healed);
    Ok(timeline)
}

fn fault_name(kind: FaultKind) -> &'static str {
    match kind {
        FaultKind::Partition => "partition",
        FaultKind::Kill => "kill",
        FaultKind::Pause => "pause",
        FaultKind::Loss => "loss",
    }
}

/// A random non-empty minority of the members (one member when there are fewer than three).
fn random_minority(members: usize, rng: &mut impl Rng) -> Vec<usize> {
    let largest_minority = ((members.saturating_sub(1)) / 2).max(1);
    let count = rng.gen_range(1..=largest_minority);
    let mut chosen: Vec<usize> = (0..members)
        .collect::<Vec<_>>()
        .choose_multiple(rng, count)
        .copied()
        .collect();
    chosen.sort();
    chosen
}

fn names(cluster: &Cluster, members: &[usize]) -> String {
    members
        .iter()
        .map(|index| cluster.member_name(*index).to_string())
        .collect::<Vec<_>>()
        .join(",")
}

async fn start_fault(cluster: &mut Cluster, kind: FaultKind) -> anyhow::Result<(Active, String)> {
    let members = cluster.member_count();
    // Asked before the random choices: the thread's generator must not live across an await.
    let leader = match kind {
        FaultKind::Partition if members >= 2 => cluster.find_leader().await,
        _ => None,
    };
    let mut rng = rand::thread_rng();
    match kind {
        FaultKind::Partition => {
            let shapes: Vec<PartitionKind> = PartitionKind::ALL
                .into_iter()
                .filter(|shape| shape.applies_to(members))
                .collect();
            // Isolating the leader is one more shape, drawn as often as each of the others.
            if let Some(leader) = leader.filter(|_| rng.gen_range(0..=shapes.len()) == 0) {
                cluster.network_mut().partition(&isolate(members, leader))?;
                let name = cluster.member_name(leader).to_string();
                return Ok((Active::Partition, format!("isolate-leader: {name} cut from all others")));
            }
            let Some(shape) = shapes.choose(&mut rng).copied() else {
                anyhow::bail!("no partition shape exists for {members} member(s)");
            };
            let grudge = shape.grudge(members, &mut rng);
            cluster.network_mut().partition(&grudge)?;
            let cut: BTreeSet<String> = grudge
                .iter()
                .flat_map(|(host, dropped)| {
                    dropped.iter().map(move |other| {
                        let (low, high) = if host < other { (host, other) } else { (other, host) };
                        format!("n{}-n{}", low + 1, high + 1)
                    })
                })
                .collect();
            let shape_name = serde_json::to_value(shape)
                .ok()
                .and_then(|value| value.as_str().map(str::to_string))
                .unwrap_or_default();
            Ok((
                Active::Partition,
                format!("{shape_name}: cut {}", cut.into_iter().collect::<Vec<_>>().join(" ")),
            ))
        }
        FaultKind::Loss => {
            cluster.network_mut().lose_packets(0.2)?;
            Ok((Active::Loss, "20% of packets between members dropped".to_string()))
        }
        FaultKind::Kill => {
            let chosen = random_minority(members, &mut rng);
            for index in &chosen {
                cluster.kill(*index)?;
            }
            Ok((
                Active::Killed(chosen.clone()),
                format!("kill -9 {}", names(cluster, &chosen)),
            ))
        }
        FaultKind::Pause => {
            let chosen = random_minority(members, &mut rng);
            for index in &chosen {
                cluster.pause(*index)?;
            }
            Ok((
                Active::Paused(chosen.clone()),
                format!("SIGSTOP {}", names(cluster, &chosen)),
            ))
        }
    }
}

fn stop_fault(cluster: &mut Cluster, active: Active) -> anyhow::Result<String> {
    match active {
        Active::Partition | Active::Loss => {
            cluster.network_mut().heal()?;
            Ok("healed".to_string())
        }
        Active::Killed(members) => {
            for index in &members {
                cluster.restart(*index)?;
            }
            Ok(format!("restarted {}", names(cluster, &members)))
        }
        Active::Paused(members) => {
            for index in &members {
                cluster.resume(*index)?;
            }
            Ok(format!("SIGCONT {}", names(cluster, &members)))
        }
    }
}

/// Undo anything still in force: heal the network, resume paused members, restart stopped ones.
/// Returns what was done and the members that had exited by themselves (`n2 (exit status: 101)`).
pub fn heal_everything(cluster: &mut Cluster) -> anyhow::Result<(String, Vec<String>)> {
    let mut actions = Vec::new();
    let mut exited = Vec::new();
    for (member, status) in cluster.crashed_members() {
        // A member that exited without being killed is a finding in itself.
        tracing::error!(member, status, "a member exited by itself");
        exited.push(format!("{member} ({status})"));
    }
    cluster.network_mut().heal()?;
    actions.push("network healed".to_string());
    for index in 0..cluster.member_count() {
        if cluster.is_paused(index) {
            cluster.resume(index)?;
            actions.push(format!("resumed {}", cluster.member_name(index)));
        }
        if !cluster.is_running(index) {
            cluster.restart(index)?;
            actions.push(format!("restarted {}", cluster.member_name(index)));
        }
    }
    Ok((actions.join(", "), exited))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minority_is_never_empty_nor_a_majority() {
        let mut rng = rand::thread_rng();
        for members in 1..=7 {
            for _ in 0..50 {
                let chosen = random_minority(members, &mut rng);
                assert!(!chosen.is_empty());
                assert!(members < 3 || chosen.len() * 2 < members, "{members}: {chosen:?}");
                assert!(chosen.iter().all(|index| *index < members));
            }
        }
    }
}
