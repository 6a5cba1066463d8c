//! The nemesis: injects faults into a [`Cluster`] on a random schedule and records a timeline.
//!
//! Each round waits a quiet interval, starts one fault picked at random from the enabled kinds, holds
//! it, and undoes it. When the fault window closes, everything is healed: partitions and loss lifted,
//! paused members resumed, killed members restarted, delay lifted, removed members added back, the
//! audit database started again.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::seq::SliceRandom;
use rand::Rng;
use serde::Serialize;

use crate::net::partition::{complete, isolate};
use crate::net::PartitionKind;
use crate::system::{AuditPolicyChoice, Cluster, ClusterFeatures, SystemKind};

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
    /// Delay (with jitter) on every peer link, through the userspace proxies on the peer links
    /// (the cluster must be started with `ClusterFeatures::delay_proxy`; see [`features_for`]).
    Delay,
    /// Bytes flipped, injected or replayed on every peer link by the same proxies as
    /// [`FaultKind::Delay`] (a hostile host or a broken middlebox on the path): the members must refuse
    /// the altered traffic and stay correct.
    Tamper,
    /// `kill -9` of the current leader, restarted when the fault ends.
    KillLeader,
    /// SIGSTOP of the current leader, SIGCONT when the fault ends.
    PauseLeader,
    /// One member removed from the group (and its data wiped), added back as a fresh member when the
    /// fault ends.
    Membership,
    /// `kill -9` of the audit database, restarted when the fault ends (the cluster must be started
    /// with `ClusterFeatures::audit`; embedded group only).
    AuditDb,
    /// The agent cut off from one random member (both directions), healed when the fault ends: that
    /// member must serve the agent cluster through a peer (the cluster must have an agent site,
    /// `ClusterFeatures::agent_site`).
    AgentLink,
}

impl FaultKind {
    /// The name in the timeline and on the command line.
    pub fn name(self) -> &'static str {
        fault_name(self)
    }
}

/// The optional cluster parts the faults in `faults` need: peer-link proxies for [`FaultKind::Delay`]
/// and [`FaultKind::Tamper`],
/// an audit database (policy `buffered` unless the caller sets another) for [`FaultKind::AuditDb`].
pub fn features_for(faults: &[FaultKind], kind: SystemKind) -> ClusterFeatures {
    ClusterFeatures {
        delay_proxy: faults.contains(&FaultKind::Delay) || faults.contains(&FaultKind::Tamper),
        audit: (faults.contains(&FaultKind::AuditDb) && kind == SystemKind::Embedded)
            .then_some(AuditPolicyChoice::Buffered),
        ..ClusterFeatures::default()
    }
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
    Delayed,
    Tampered,
    Removed(usize),
    AuditDbKilled,
}

/// How long a fault aimed at the leader waits for the group to have one (several election timeouts of
/// either system under test, with room for a loaded machine).
const LEADER_PATIENCE: Duration = Duration::from_secs(10);

/// The probability that the `tamper` fault alters a chunk on a peer link. Most chunks carry one
/// frame (heartbeats, appends), so about this share of the peer frames is refused while it holds.
const TAMPER_PROBABILITY: f64 = 0.02;

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
    // Faults this cluster cannot take are left out of the schedule once, with the reason, instead of
    // failing every time they are drawn.
    let mut faults = Vec::new();
    for kind in &options.faults {
        match unavailable(cluster, *kind) {
            Some(reason) => stamp(&mut timeline, fault_name(*kind), "skipped", reason),
            None => faults.push(*kind),
        }
    }
    // Faults are drawn in cycles: every enabled kind once per cycle, in a random order, so that a
    // run with at least as many faults as kinds injects each of them.
    let mut cycle: Vec<FaultKind> = Vec::new();
    // Bounded by `until`: every round sleeps at least the quiet interval (at least 100 ms).
    while !faults.is_empty() && Instant::now() + options.quiet < until {
        tokio::time::sleep(options.quiet.max(Duration::from_millis(100))).await;
        if cycle.is_empty() {
            cycle = faults.clone();
            cycle.shuffle(&mut rand::thread_rng());
        }
        let kind = cycle.pop().expect("the cycle was refilled");
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
            match stop_fault(cluster, active).await {
                Ok(detail) => stamp(&mut timeline, name, "stop", detail),
                Err(error) => stamp(&mut timeline, name, "error", format!("{error:#}")),
            }
            *current.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = "none".to_string();
        }
    }
    let mut restored = restore_membership(cluster)
        .await
        .context("restore the membership at the end of the fault window")?;
    let (healed, exited) = heal_everything(cluster).context("heal the cluster at the end of the fault window")?;
    restored.push(healed);
    let healed = restored.join(", ");
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
        FaultKind::Delay => "delay",
        FaultKind::Tamper => "tamper",
        FaultKind::KillLeader => "kill-leader",
        FaultKind::PauseLeader => "pause-leader",
        FaultKind::Membership => "membership",
        FaultKind::AuditDb => "audit-db",
        FaultKind::AgentLink => "agent-link",
    }
}

/// Why `kind` cannot be injected into `cluster`, if it cannot.
fn unavailable(cluster: &Cluster, kind: FaultKind) -> Option<String> {
    let members = cluster.member_count();
    match kind {
        FaultKind::Delay | FaultKind::Tamper if cluster.delay_control().is_none() => {
            Some("the cluster runs without delay proxies (ClusterFeatures::delay_proxy)".to_string())
        }
        FaultKind::AuditDb if cluster.audit_db_uri().is_none() => {
            Some("the cluster runs without an audit database (ClusterFeatures::audit)".to_string())
        }
        FaultKind::AgentLink if cluster.agent_host().is_none() => {
            Some("the cluster runs without an agent site (ClusterFeatures::agent_site)".to_string())
        }
        FaultKind::Membership if members < 3 => {
            Some(format!("a membership change needs at least 3 members, not {members}"))
        }
        FaultKind::Partition | FaultKind::Loss if members < 2 => Some("one member has no links to cut".to_string()),
        _ => None,
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
        // Drawn right after a fault that took the leader away, the group may still be electing one.
        FaultKind::KillLeader | FaultKind::PauseLeader => cluster.wait_for_leader(LEADER_PATIENCE).await,
        _ => None,
    };
    match kind {
        FaultKind::Membership => return start_membership(cluster).await,
        FaultKind::KillLeader | FaultKind::PauseLeader => {
            let leader = leader.context("no member claims to lead")?;
            let name = cluster.member_name(leader).to_string();
            return if kind == FaultKind::KillLeader {
                cluster.kill(leader)?;
                Ok((Active::Killed(vec![leader]), format!("kill -9 leader {name}")))
            } else {
                cluster.pause(leader)?;
                Ok((Active::Paused(vec![leader]), format!("SIGSTOP leader {name}")))
            };
        }
        _ => {}
    }
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
        FaultKind::Delay => {
            let control = cluster
                .delay_control()
                .context("the cluster has no delay proxies (start it with ClusterFeatures::delay_proxy)")?;
            let (delay, jitter) = (cluster.features().delay, cluster.features().jitter);
            control.set(delay, jitter);
            Ok((
                Active::Delayed,
                format!(
                    "peer links delayed {} ms + up to {} ms jitter each way",
                    delay.as_millis(),
                    jitter.as_millis()
                ),
            ))
        }
        FaultKind::Tamper => {
            let control = cluster
                .delay_control()
                .context("the cluster has no peer-link proxies (start it with ClusterFeatures::delay_proxy)")?;
            control.set_tamper(TAMPER_PROBABILITY);
            Ok((
                Active::Tampered,
                format!(
                    "{}% of the chunks on the peer links altered (a byte flipped, bytes injected or the chunk replayed)",
                    TAMPER_PROBABILITY * 100.0
                ),
            ))
        }
        FaultKind::AgentLink => {
            let agent = cluster
                .agent_host()
                .context("the cluster has no agent site (start it with ClusterFeatures::agent_site)")?;
            let member = rng.gen_range(0..members);
            let grudge = complete(&[vec![agent], vec![member]]);
            cluster.network_mut().partition(&grudge)?;
            Ok((
                Active::Partition,
                format!("agent cut from {}", cluster.member_name(member)),
            ))
        }
        FaultKind::AuditDb => {
            let pid = cluster.audit_db_pid();
            cluster.kill_audit_db()?;
            Ok((
                Active::AuditDbKilled,
                format!("kill -9 audit database (pid {})", pid.unwrap_or_default()),
            ))
        }
        FaultKind::KillLeader | FaultKind::PauseLeader | FaultKind::Membership => {
            unreachable!("handled before the generator is made")
        }
    }
}

/// Remove one random member from the group. Refused unless every member is running, unpaused and a
/// member, so that the rest stays a majority of the old and of the new membership.
async fn start_membership(cluster: &mut Cluster) -> anyhow::Result<(Active, String)> {
    let members = cluster.member_count();
    if members < 3 {
        anyhow::bail!("a membership change needs at least 3 members, not {members}");
    }
    if let Some(index) = (0..members)
        .find(|index| !cluster.is_running(*index) || cluster.is_paused(*index) || cluster.is_removed(*index))
    {
        anyhow::bail!(
            "{} is not a running member; no membership change now",
            cluster.member_name(index)
        );
    }
    let chosen = rand::thread_rng().gen_range(0..members);
    let detail = cluster.remove_member(chosen).await?;
    Ok((Active::Removed(chosen), detail))
}

/// Add back every member that is removed from the group.
async fn restore_membership(cluster: &mut Cluster) -> anyhow::Result<Vec<String>> {
    let mut done = Vec::new();
    for index in 0..cluster.member_count() {
        if cluster.is_removed(index) {
            done.push(cluster.add_member_back(index).await?);
        }
    }
    Ok(done)
}

async fn stop_fault(cluster: &mut Cluster, active: Active) -> anyhow::Result<String> {
    match active {
        Active::Delayed => {
            if let Some(control) = cluster.delay_control() {
                control.clear();
            }
            Ok("delay lifted".to_string())
        }
        Active::Tampered => {
            let Some(control) = cluster.delay_control() else {
                return Ok("no proxies".to_string());
            };
            control.set_tamper(0.0);
            let counts = control.tampered();
            Ok(format!(
                "tampering stopped (so far {} chunks flipped, {} injected, {} replayed)",
                counts.flipped, counts.injected, counts.replayed
            ))
        }
        Active::Removed(index) => cluster.add_member_back(index).await,
        Active::AuditDbKilled => {
            cluster.restart_audit_db()?;
            Ok(format!(
                "audit database restarted (pid {})",
                cluster.audit_db_pid().unwrap_or_default()
            ))
        }
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
    if let Some(control) = cluster.delay_control() {
        if control.get() != (Duration::ZERO, Duration::ZERO) {
            control.clear();
            actions.push("delay lifted".to_string());
        }
        control.set_tamper(0.0);
    }
    if cluster.audit_db_uri().is_some() && !cluster.audit_db_is_up() {
        cluster.restart_audit_db()?;
        actions.push("audit database restarted".to_string());
    }
    for index in 0..cluster.member_count() {
        if cluster.is_paused(index) {
            cluster.resume(index)?;
            actions.push(format!("resumed {}", cluster.member_name(index)));
        }
        // A removed member comes back only through `restore_membership` (it must be added, not just
        // started).
        if !cluster.is_running(index) && !cluster.is_removed(index) {
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
