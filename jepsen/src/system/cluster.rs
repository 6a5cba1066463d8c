use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use crate::net::Network;

/// The etcd v3 client port of every member (each member has a host, hence an address, of its own).
pub const CLIENT_PORT: u16 = 2379;
/// The peer (Raft) port of every member.
const PEER_PORT: u16 = 2380;
/// The web port of a `kuboard serve` replica.
const WEB_PORT: u16 = 8080;
/// How long one readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SystemKind {
    /// `kuboard serve` replicas forming an embedded Raft group, with the etcd v3 API enabled.
    Embedded,
    /// Real etcd members.
    Etcd,
}

#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub kind: SystemKind,
    pub members: usize,
    /// The `kuboard` binary (for [`SystemKind::Embedded`]).
    pub kuboard_binary: PathBuf,
    /// The `etcd` binary (for [`SystemKind::Etcd`]).
    pub etcd_binary: PathBuf,
    /// Data directories and logs of the members go here.
    pub work_dir: PathBuf,
}

struct Member {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log_path: PathBuf,
    process: Option<Child>,
    paused: bool,
}

/// A running cluster on its own network. Dropping it kills every member (by pid) and then removes the
/// network.
pub struct Cluster {
    // Declared before `network`: members die before their namespaces are removed.
    members: Vec<Member>,
    network: Network,
    kind: SystemKind,
}

impl Cluster {
    /// Create the network, start every member and wait until each answers a linearizable read.
    pub async fn start(options: &ClusterOptions) -> anyhow::Result<Cluster> {
        if options.members == 0 {
            bail!("a cluster needs at least one member");
        }
        let program = match options.kind {
            SystemKind::Embedded => &options.kuboard_binary,
            SystemKind::Etcd => &options.etcd_binary,
        };
        if !program.is_file() {
            bail!(
                "{} is missing: {}",
                program.display(),
                match options.kind {
                    SystemKind::Embedded => "build it with `cargo build -p kuboard` or pass --kuboard-binary",
                    SystemKind::Etcd => "install etcd 3.4 (Debian package etcd-server) or pass --etcd-binary",
                }
            );
        }
        std::fs::create_dir_all(&options.work_dir).with_context(|| format!("create {}", options.work_dir.display()))?;
        let network = Network::create(options.members)?;
        let members = match options.kind {
            SystemKind::Embedded => embedded_members(&network, options),
            SystemKind::Etcd => etcd_members(&network, options),
        };
        let mut cluster = Cluster {
            members,
            network,
            kind: options.kind,
        };
        for index in 0..cluster.members.len() {
            cluster.spawn(index)?;
        }
        cluster.wait_ready(Duration::from_secs(60)).await?;
        Ok(cluster)
    }

    pub fn kind(&self) -> SystemKind {
        self.kind
    }

    pub fn network(&self) -> &Network {
        &self.network
    }

    pub fn network_mut(&mut self) -> &mut Network {
        &mut self.network
    }

    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    pub fn member_name(&self, index: usize) -> &str {
        &self.members[index].name
    }

    /// `http://<host address>:2379` of a member.
    pub fn endpoint(&self, index: usize) -> String {
        format!("http://{}:{CLIENT_PORT}", self.network.hosts()[index].ip)
    }

    pub fn log_path(&self, index: usize) -> &Path {
        &self.members[index].log_path
    }

    pub fn is_running(&self, index: usize) -> bool {
        self.members[index].process.is_some()
    }

    pub fn is_paused(&self, index: usize) -> bool {
        self.members[index].paused
    }

    pub fn pid(&self, index: usize) -> Option<u32> {
        self.members[index].process.as_ref().map(Child::id)
    }

    fn spawn(&mut self, index: usize) -> anyhow::Result<()> {
        let namespace = self.network.hosts()[index].namespace.clone();
        let member = &mut self.members[index];
        // `ip netns exec <ns> <program>` replaces itself with the program, so the child's pid is the
        // member's own pid and signals reach it directly.
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &namespace])
            .arg(&member.program)
            .args(&member.args);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&member.log_path)
            .with_context(|| format!("open {}", member.log_path.display()))?;
        let log_for_stdout = log.try_clone().context("clone a log handle")?;
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(member.env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(log_for_stdout)
            .stderr(log);
        let process = command
            .spawn()
            .with_context(|| format!("start {} in its namespace", member.name))?;
        tracing::debug!(member = %member.name, pid = process.id(), "member started");
        member.process = Some(process);
        member.paused = false;
        Ok(())
    }

    /// Kill a member with SIGKILL (a crash) and reap it.
    pub fn kill(&mut self, index: usize) -> anyhow::Result<()> {
        let member = &mut self.members[index];
        let Some(mut process) = member.process.take() else {
            bail!("{} is not running", member.name);
        };
        process.kill().with_context(|| format!("kill {}", member.name))?;
        process.wait().with_context(|| format!("reap {}", member.name))?;
        member.paused = false;
        Ok(())
    }

    /// Start a killed member again on its data.
    pub fn restart(&mut self, index: usize) -> anyhow::Result<()> {
        if self.members[index].process.is_some() {
            bail!("{} is already running", self.members[index].name);
        }
        self.spawn(index)
    }

    /// Freeze a member with SIGSTOP.
    pub fn pause(&mut self, index: usize) -> anyhow::Result<()> {
        self.signal(index, "-STOP")?;
        self.members[index].paused = true;
        Ok(())
    }

    /// Thaw a member frozen by [`Self::pause`] with SIGCONT.
    pub fn resume(&mut self, index: usize) -> anyhow::Result<()> {
        self.signal(index, "-CONT")?;
        self.members[index].paused = false;
        Ok(())
    }

    fn signal(&self, index: usize, signal: &str) -> anyhow::Result<()> {
        let member = &self.members[index];
        let Some(process) = member.process.as_ref() else {
            bail!("{} is not running", member.name);
        };
        let status = Command::new("kill")
            .args([signal, &process.id().to_string()])
            .status()
            .context("run kill")?;
        if !status.success() {
            bail!("kill {signal} {} ({}) failed", process.id(), member.name);
        }
        Ok(())
    }

    /// Members that exited by themselves (not killed by the suite), with their exit status.
    pub fn crashed_members(&mut self) -> Vec<(String, String)> {
        let mut crashed = Vec::new();
        for member in &mut self.members {
            if let Some(process) = member.process.as_mut() {
                if let Ok(Some(status)) = process.try_wait() {
                    crashed.push((member.name.clone(), status.to_string()));
                    member.process = None;
                }
            }
        }
        crashed
    }

    /// The member that says it leads (its own id is the leader id in its status), asking every running,
    /// unpaused member; with two claimants (an old leader cut off), the one of the higher term.
    pub async fn find_leader(&self) -> Option<usize> {
        let mut claimants = Vec::new();
        for index in 0..self.members.len() {
            if !self.is_running(index) || self.is_paused(index) {
                continue;
            }
            let endpoint = self.endpoint(index);
            let options = etcd_client::ConnectOptions::new()
                .with_connect_timeout(PROBE_TIMEOUT)
                .with_timeout(PROBE_TIMEOUT);
            let ask = async {
                let mut client = etcd_client::Client::connect([endpoint.as_str()], Some(options)).await?;
                client.status().await
            };
            if let Ok(Ok(status)) = tokio::time::timeout(PROBE_TIMEOUT * 2, ask).await {
                if let Some(header) = status.header() {
                    if status.leader() != 0 && header.member_id() == status.leader() {
                        claimants.push((status.raft_term(), index));
                    }
                }
            }
        }
        claimants.into_iter().max().map(|(_, index)| index)
    }

    /// Wait until every running member answers a linearizable read through its own endpoint.
    pub async fn wait_ready(&mut self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        for index in 0..self.members.len() {
            if !self.is_running(index) {
                continue;
            }
            let endpoint = self.endpoint(index);
            loop {
                if let Some((name, status)) = self.crashed_members().into_iter().next() {
                    bail!(
                        "{name} exited with {status} while starting; log tail:\n{}",
                        log_tail(&self.members[index].log_path)
                    );
                }
                let error = match probe(&endpoint).await {
                    Ok(()) => break,
                    Err(error) => error,
                };
                if Instant::now() >= deadline {
                    bail!(
                        "{} did not answer a linearizable read within {within:?} (last error: {error:#}); log tail:\n{}",
                        self.members[index].name,
                        log_tail(&self.members[index].log_path)
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for member in &mut self.members {
            if let Some(mut process) = member.process.take() {
                // SIGKILL also ends a stopped process; errors mean it already exited.
                let _ = process.kill();
                let _ = process.wait();
            }
        }
    }
}

/// One linearizable read of a key nobody writes.
async fn probe(endpoint: &str) -> anyhow::Result<()> {
    let options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(PROBE_TIMEOUT)
        .with_timeout(PROBE_TIMEOUT);
    let attempt = async {
        let mut client = etcd_client::Client::connect([endpoint], Some(options)).await?;
        client.get("kuboard-jepsen/ready", None).await?;
        Ok::<(), etcd_client::Error>(())
    };
    match tokio::time::timeout(PROBE_TIMEOUT * 2, attempt).await {
        Ok(result) => result.with_context(|| format!("read through {endpoint}")),
        Err(_) => bail!("no answer from {endpoint} within {:?}", PROBE_TIMEOUT * 2),
    }
}

fn embedded_members(network: &Network, options: &ClusterOptions) -> Vec<Member> {
    let hosts = network.hosts();
    let peers = hosts
        .iter()
        .enumerate()
        .map(|(index, host)| format!("{}={}:{PEER_PORT}", index + 1, host.ip))
        .collect::<Vec<_>>()
        .join(",");
    // The secrets only have to be shared by the members of this run.
    let secret = format!("kuboard-jepsen-{}-{:016x}", network.id(), rand::random::<u64>());
    let sso_secret = format!("kuboard-jepsen-sso-{:016x}", rand::random::<u64>());
    hosts
        .iter()
        .enumerate()
        .map(|(index, host)| {
            let ip = host.ip.to_string();
            let env = [
                ("KUBOARD_SERVER_ADDR", ip.clone()),
                ("KUBOARD_SERVER_PORT", WEB_PORT.to_string()),
                ("KUBOARD_RAFT_ADDR", ip.clone()),
                ("KUBOARD_RAFT_PORT", PEER_PORT.to_string()),
                ("KUBOARD_RAFT_NODE_ID", (index + 1).to_string()),
                ("KUBOARD_RAFT_PEERS", peers.clone()),
                ("KUBOARD_CLUSTER_SECRET", secret.clone()),
                ("KUBOARD_SSO_CLIENT_SECRET", sso_secret.clone()),
                (
                    "KUBOARD_DATA_DIR",
                    options.work_dir.join(&host.name).display().to_string(),
                ),
                ("KUBOARD_ETCD_API_ADDR", ip.clone()),
                ("KUBOARD_ETCD_API_PORT", CLIENT_PORT.to_string()),
                ("KUBOARD_SERVER_LOGRUS_LEVEL", "info".to_string()),
            ];
            Member {
                name: host.name.clone(),
                program: options.kuboard_binary.clone(),
                args: vec!["serve".to_string()],
                env: env
                    .iter()
                    .map(|(key, value)| (key.to_string(), value.clone()))
                    .collect(),
                log_path: options.work_dir.join(format!("{}.log", host.name)),
                process: None,
                paused: false,
            }
        })
        .collect()
}

fn etcd_members(network: &Network, options: &ClusterOptions) -> Vec<Member> {
    let hosts = network.hosts();
    let initial_cluster = hosts
        .iter()
        .map(|host| format!("{}=http://{}:{PEER_PORT}", host.name, host.ip))
        .collect::<Vec<_>>()
        .join(",");
    hosts
        .iter()
        .map(|host| {
            let client_url = format!("http://{}:{CLIENT_PORT}", host.ip);
            let peer_url = format!("http://{}:{PEER_PORT}", host.ip);
            let args = vec![
                format!("--name={}", host.name),
                format!("--data-dir={}", options.work_dir.join(&host.name).display()),
                format!("--listen-client-urls={client_url}"),
                format!("--advertise-client-urls={client_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster={initial_cluster}"),
                format!("--initial-cluster-token=kuboard-jepsen-{}", network.id()),
                "--initial-cluster-state=new".to_string(),
                "--logger=zap".to_string(),
                "--log-outputs=stderr".to_string(),
            ];
            Member {
                name: host.name.clone(),
                program: options.etcd_binary.clone(),
                args,
                env: Vec::new(),
                log_path: options.work_dir.join(format!("{}.log", host.name)),
                process: None,
                paused: false,
            }
        })
        .collect()
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
