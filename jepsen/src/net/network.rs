//! A test network: N network namespaces joined by a Linux bridge of their own, with iptables rules
//! inside the namespaces for partitions and packet loss.
//!
//! Names all start with [`NAME_PREFIX`] so that `kuboard-jepsen cleanup` can find leftovers of a run
//! that was killed. Addresses: the bridge holds `198.18.S.254/24` (the suite's clients talk to the
//! hosts from the root namespace through it) and host `i` holds `198.18.S.(i+1)`, where the subnet
//! number `S` is unused by any other interface on this machine.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context};

use super::partition::Grudge;
use super::shell::{run, run_with_input};

/// Every namespace, link and host iptables rule of the suite starts with this.
pub const NAME_PREFIX: &str = "kjp";

/// Subnet numbers handed out by this process and not yet released.
static SUBNETS_IN_USE: Mutex<BTreeSet<u8>> = Mutex::new(BTreeSet::new());
/// Distinguishes networks created by one process.
static NETWORK_COUNTER: AtomicU32 = AtomicU32::new(0);

/// One network namespace of a [`Network`].
#[derive(Debug, Clone)]
pub struct Host {
    /// `n1`, `n2`, …
    pub name: String,
    /// The namespace name, for `ip netns exec`.
    pub namespace: String,
    pub ip: Ipv4Addr,
}

/// The hosts and their bridge. Dropping it removes everything it created.
pub struct Network {
    id: String,
    bridge: String,
    subnet: u8,
    hosts: Vec<Host>,
    /// The host FORWARD rule that lets bridged packets pass when `br_netfilter` is on.
    forward_rule: Option<Vec<String>>,
    grudge: Grudge,
    loss_probability: Option<f64>,
    /// Packet loss applies among the first this many hosts (the members); later hosts (services such
    /// as the audit database) are spared.
    loss_hosts: usize,
    torn_down: bool,
}

impl Network {
    /// Create `count` hosts (1 to 50) joined by a fresh bridge. On error, whatever was created is removed.
    pub fn create(count: usize) -> anyhow::Result<Network> {
        if !(1..=50).contains(&count) {
            bail!("a test network has 1 to 50 hosts, not {count}");
        }
        let id = format!(
            "{:04x}{:02x}",
            std::process::id() & 0xffff,
            NETWORK_COUNTER.fetch_add(1, Ordering::Relaxed) & 0xff
        );
        let subnet = allocate_subnet()?;
        let hosts = (0..count)
            .map(|index| Host {
                name: format!("n{}", index + 1),
                namespace: format!("{NAME_PREFIX}-{id}-n{}", index + 1),
                ip: Ipv4Addr::new(198, 18, subnet, index as u8 + 1),
            })
            .collect();
        let mut network = Network {
            bridge: format!("{NAME_PREFIX}{id}b"),
            id,
            subnet,
            hosts,
            forward_rule: None,
            grudge: Grudge::new(),
            loss_probability: None,
            loss_hosts: count,
            torn_down: false,
        };
        // On error `network` drops here and removes the parts already made.
        network.build().context("build the test network")?;
        tracing::info!(id = %network.id, hosts = count, subnet = %format!("198.18.{subnet}.0/24"), "test network up");
        Ok(network)
    }

    fn build(&mut self) -> anyhow::Result<()> {
        let gateway = format!("{}/24", self.gateway());
        run("ip", &["link", "add", &self.bridge, "type", "bridge"])?;
        run("ip", &["addr", "add", &gateway, "dev", &self.bridge])?;
        run("ip", &["link", "set", &self.bridge, "up"])?;
        if bridged_packets_pass_iptables() {
            let rule: Vec<String> = [
                "FORWARD",
                "-i",
                &self.bridge,
                "-o",
                &self.bridge,
                "-m",
                "comment",
                "--comment",
                &format!("{NAME_PREFIX}-{}", self.id),
                "-j",
                "ACCEPT",
            ]
            .iter()
            .map(|part| part.to_string())
            .collect();
            let mut insert = vec!["-I"];
            insert.extend(rule.iter().map(String::as_str));
            run("iptables", &insert)?;
            self.forward_rule = Some(rule);
        }
        for (index, host) in self.hosts.iter().enumerate() {
            let outside = format!("{NAME_PREFIX}{}h{}", self.id, index + 1);
            let inside = format!("{NAME_PREFIX}{}p{}", self.id, index + 1);
            let address = format!("{}/24", host.ip);
            let ns = host.namespace.as_str();
            run("ip", &["netns", "add", ns])?;
            run(
                "ip",
                &[
                    "link", "add", &outside, "type", "veth", "peer", "name", &inside, "netns", ns,
                ],
            )?;
            run("ip", &["link", "set", &outside, "master", &self.bridge, "up"])?;
            run("ip", &["-n", ns, "link", "set", &inside, "name", "eth0"])?;
            run("ip", &["-n", ns, "addr", "add", &address, "dev", "eth0"])?;
            run("ip", &["-n", ns, "link", "set", "eth0", "up"])?;
            run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// The run-unique part of every name.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The bridge's own address: where the suite's clients come from.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, self.subnet, 254)
    }

    /// A command that runs `program` inside host `index`'s namespace.
    pub fn command(&self, index: usize, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.hosts[index].namespace, program]);
        command
    }

    /// Replace the current partition: each host drops packets from and to the hosts `grudge` names.
    pub fn partition(&mut self, grudge: &Grudge) -> anyhow::Result<()> {
        self.grudge = grudge.clone();
        self.apply_rules()
    }

    /// Drop each packet between hosts with `probability` (0 to 1), on top of any partition.
    pub fn lose_packets(&mut self, probability: f64) -> anyhow::Result<()> {
        if !(0.0..=1.0).contains(&probability) {
            bail!("a loss probability lies between 0 and 1, not {probability}");
        }
        self.loss_probability = Some(probability);
        self.apply_rules()
    }

    /// Limit packet loss to the links among the first `count` hosts (hosts after them run services
    /// that are faulted otherwise, such as the audit database).
    pub fn limit_loss_to(&mut self, count: usize) {
        self.loss_hosts = count.min(self.hosts.len());
    }

    /// The alias address of host `index` for peer traffic through the delay proxies:
    /// `198.19.S.(index+1)`, present on the loopback device of every host after
    /// [`Self::add_peer_aliases`] (see [`super::proxy`]).
    pub fn peer_alias(&self, index: usize) -> Ipv4Addr {
        Ipv4Addr::new(198, 19, self.subnet, index as u8 + 1)
    }

    /// Put the alias addresses of the first `count` hosts on the loopback device of every host, so that
    /// a proxy in each namespace can listen on them.
    pub fn add_peer_aliases(&self, count: usize) -> anyhow::Result<()> {
        for host in &self.hosts {
            for index in 0..count.min(self.hosts.len()) {
                let alias = format!("{}/32", self.peer_alias(index));
                run("ip", &["-n", &host.namespace, "addr", "add", &alias, "dev", "lo"])
                    .with_context(|| format!("add the peer alias {alias} in {}", host.name))?;
            }
        }
        Ok(())
    }

    /// Remove every partition and loss rule.
    pub fn heal(&mut self) -> anyhow::Result<()> {
        self.grudge.clear();
        self.loss_probability = None;
        self.apply_rules()
    }

    /// Write each namespace's whole filter table at once with `iptables-restore`, so that a host never
    /// runs with half of a partition.
    fn apply_rules(&self) -> anyhow::Result<()> {
        for (index, host) in self.hosts.iter().enumerate() {
            let mut table = String::from("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
            if let Some(dropped) = self.grudge.get(&index) {
                for other in dropped {
                    let ip = self.hosts[*other].ip;
                    table.push_str(&format!("-A INPUT -s {ip}/32 -j DROP\n-A OUTPUT -d {ip}/32 -j DROP\n"));
                }
            }
            if let Some(probability) = self.loss_probability.filter(|_| index < self.loss_hosts) {
                for (other_index, other) in self.hosts.iter().enumerate().take(self.loss_hosts) {
                    if other_index != index {
                        table.push_str(&format!(
                            "-A INPUT -s {}/32 -m statistic --mode random --probability {probability:.4} -j DROP\n",
                            other.ip
                        ));
                    }
                }
            }
            table.push_str("COMMIT\n");
            run_with_input(
                "ip",
                &["netns", "exec", &host.namespace, "iptables-restore"],
                Some(&table),
            )
            .with_context(|| format!("set the packet filter of {}", host.name))?;
        }
        Ok(())
    }

    /// Remove the namespaces, links and host rule. Processes still running inside a namespace keep it
    /// alive (unnamed) until they exit, so callers stop their processes first.
    pub fn teardown(&mut self) -> anyhow::Result<()> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        let mut failures = Vec::new();
        for (index, host) in self.hosts.iter().enumerate() {
            let outside = format!("{NAME_PREFIX}{}h{}", self.id, index + 1);
            if link_exists(&outside) {
                if let Err(error) = run("ip", &["link", "del", &outside]) {
                    if link_exists(&outside) {
                        failures.push(format!("{error:#}"));
                    }
                }
            }
            if namespace_exists(&host.namespace) {
                if let Err(error) = run("ip", &["netns", "del", &host.namespace]) {
                    failures.push(format!("{error:#}"));
                }
            }
        }
        if link_exists(&self.bridge) {
            if let Err(error) = run("ip", &["link", "del", &self.bridge]) {
                failures.push(format!("{error:#}"));
            }
        }
        if let Some(rule) = self.forward_rule.take() {
            let mut delete = vec!["-D"];
            delete.extend(rule.iter().map(String::as_str));
            if let Err(error) = run("iptables", &delete) {
                failures.push(format!("{error:#}"));
            }
        }
        SUBNETS_IN_USE
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&self.subnet);
        if failures.is_empty() {
            tracing::info!(id = %self.id, "test network removed");
            Ok(())
        } else {
            bail!("removing test network {}: {}", self.id, failures.join("; "))
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if let Err(error) = self.teardown() {
            tracing::error!("{error:#} (run `kuboard-jepsen cleanup`)");
        }
    }
}

/// With `br_netfilter` loaded, bridged packets traverse the host's FORWARD chain, whose policy may be
/// DROP (Docker sets it so).
fn bridged_packets_pass_iptables() -> bool {
    std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables").is_ok_and(|value| value.trim() == "1")
}

fn link_exists(name: &str) -> bool {
    run("ip", &["link", "show", "dev", name]).is_ok()
}

fn namespace_exists(name: &str) -> bool {
    run("ip", &["netns", "list"])
        .map(|list| list.lines().any(|line| line.split_whitespace().next() == Some(name)))
        .unwrap_or(false)
}

/// A subnet number S such that no interface holds an address in 198.18.S.0/24 and no other network of
/// this process uses it. Starting from a number derived from the process id makes two suites started
/// at the same moment unlikely to pick the same one.
fn allocate_subnet() -> anyhow::Result<u8> {
    let addresses = run("ip", &["-o", "-4", "addr", "show"]).context("list the addresses in use")?;
    let taken_on_machine: BTreeSet<u8> = addresses
        .split_whitespace()
        .filter_map(|word| word.strip_prefix("198.18."))
        .filter_map(|rest| rest.split('.').next()?.parse().ok())
        .collect();
    let mut in_use = SUBNETS_IN_USE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let start = (std::process::id() % 250) as u8;
    for offset in 0..250u8 {
        let subnet = 1 + (start + offset) % 250;
        if !taken_on_machine.contains(&subnet) && in_use.insert(subnet) {
            return Ok(subnet);
        }
    }
    bail!("every subnet 198.18.1-250.0/24 is in use; run `kuboard-jepsen cleanup`")
}

/// What [`cleanup`] removed.
#[derive(Debug, Default)]
pub struct Cleaned {
    pub namespaces: Vec<String>,
    pub links: Vec<String>,
    pub forward_rules: usize,
    pub killed_processes: Vec<u32>,
    /// Service directories (the audit database's `/tmp/kjp-<id>-auditdb`) that were removed.
    pub directories: Vec<String>,
}

/// Remove every namespace, link and host FORWARD rule whose name starts with [`NAME_PREFIX`] (followed
/// by `only_id` when given: one network's leftovers), killing the processes left inside those
/// namespaces (the suite's replicas of a run that was killed).
pub fn cleanup(only_id: Option<&str>) -> anyhow::Result<Cleaned> {
    let namespace_prefix = format!("{NAME_PREFIX}-{}", only_id.unwrap_or_default());
    let link_prefix = format!("{NAME_PREFIX}{}", only_id.unwrap_or_default());
    let rule_marker = format!("--comment {NAME_PREFIX}-{}", only_id.unwrap_or_default());
    let mut cleaned = Cleaned::default();
    let namespaces = run("ip", &["netns", "list"]).context("list network namespaces")?;
    for namespace in namespaces.lines().filter_map(|line| line.split_whitespace().next()) {
        if !namespace.starts_with(&namespace_prefix) {
            continue;
        }
        let pids = run("ip", &["netns", "pids", namespace]).unwrap_or_default();
        for pid in pids.split_whitespace().filter_map(|pid| pid.parse::<u32>().ok()) {
            if run("kill", &["-KILL", &pid.to_string()]).is_ok() {
                cleaned.killed_processes.push(pid);
            }
        }
        run("ip", &["netns", "del", namespace])?;
        cleaned.namespaces.push(namespace.to_string());
    }
    let links = run("ip", &["-o", "link", "show"]).context("list links")?;
    for link in links.lines().filter_map(|line| line.split(": ").nth(1)) {
        let name = link.split('@').next().unwrap_or(link);
        if name.starts_with(&link_prefix) && link_exists(name) {
            // The outer end of a veth goes away by itself shortly after its namespace is deleted
            // (the kernel frees namespaces asynchronously): gone by the time of the delete is fine.
            if let Err(error) = run("ip", &["link", "del", name]) {
                if link_exists(name) {
                    return Err(error);
                }
            }
            cleaned.links.push(name.to_string());
        }
    }
    // Services of a host keep their data under the system temp dir, named after the network.
    let temp = std::env::temp_dir();
    if let Ok(entries) = std::fs::read_dir(&temp) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&namespace_prefix) && (name.ends_with("-auditdb") || name.ends_with("-agentsite")) {
                std::fs::remove_dir_all(entry.path()).with_context(|| format!("remove {}", entry.path().display()))?;
                cleaned.directories.push(entry.path().display().to_string());
            }
        }
    }
    let rules = run("iptables", &["-S", "FORWARD"]).context("list the host FORWARD rules")?;
    for rule in rules.lines() {
        if rule.starts_with("-A FORWARD") && rule.contains(&rule_marker) {
            let mut delete = vec!["-D"];
            delete.extend(rule.split_whitespace().skip(1));
            run("iptables", &delete)?;
            cleaned.forward_rules += 1;
        }
    }
    Ok(cleaned)
}
