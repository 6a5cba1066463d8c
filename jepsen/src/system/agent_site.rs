//! The agent site: a host of the test network standing for a Kubernetes cluster behind NAT. The
//! fake apiserver of `testkit/` listens on the loopback address of that host's namespace, so no
//! member can reach it; `kuboard agent` runs in the same namespace, reads its kubeconfig and dials
//! the agent port of every member. The members reach the cluster only through the agent's tunnels
//! (or through a peer that holds one).
//!
//! Both run as child processes (`ip netns exec` replaces itself with the program, so the pids are
//! theirs) and are killed with SIGKILL on drop, before the network goes. The fake's directory (its
//! CA and kubeconfigs) lives under the system temp dir and is removed on drop; the logs stay in the
//! run's `members/`.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::net::Host;

/// The agent port of every member (`KUBOARD_AGENT_SERVER_TCP_PORT`).
pub const AGENT_PORT: u16 = 10081;
/// The name of the agent cluster in Kuboard.
pub const AGENT_CLUSTER: &str = "chaos-agent";
/// The group the fake apiserver grants everything: the proxy impersonates Kuboard's administrators
/// with it.
const ADMIN_GROUP: &str = "kuboard:administrators";

/// A child process killed (SIGKILL) and reaped on drop.
struct Process {
    name: &'static str,
    child: Child,
}

impl Process {
    fn spawn(name: &'static str, mut command: Command, log_path: &Path) -> anyhow::Result<Process> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(log_path)
            .with_context(|| format!("open {}", log_path.display()))?;
        let log_for_stdout = log.try_clone().context("clone a log handle")?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log_for_stdout)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {name}"))?;
        Ok(Process { name, child })
    }

    fn check_running(&mut self, log_path: &Path) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait().with_context(|| format!("poll {}", self.name))? {
            bail!(
                "{} exited ({status}); log tail:\n{}",
                self.name,
                super::cluster::log_tail(log_path)
            );
        }
        Ok(())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Err(error) = self.child.kill() {
            tracing::debug!(name = self.name, %error, "the process had exited already");
        }
        let _ = self.child.wait();
    }
}

/// The fake apiserver and, once [`AgentSite::start_agent`] ran, the agent.
pub struct AgentSite {
    /// Index of the site's host in the network.
    host_index: usize,
    namespace: String,
    /// The fake's `--dir` (CA, kubeconfigs), removed on drop.
    fake_dir: PathBuf,
    fake_log: PathBuf,
    agent_log: PathBuf,
    // Declared in this order: the agent goes before the apiserver it serves.
    agent: Option<Process>,
    fake: Option<Process>,
}

impl AgentSite {
    /// Start the fake apiserver on the loopback address of `host`'s namespace and wait until it has
    /// written its kubeconfigs.
    pub async fn start(
        fake_binary: &Path,
        host_index: usize,
        host: &Host,
        network_id: &str,
        work_dir: &Path,
    ) -> anyhow::Result<AgentSite> {
        if !fake_binary.is_file() {
            bail!(
                "{} is missing: build it with `cargo build -p kuboard-testkit --bins` (`cargo test --workspace` \
                 builds it) or pass --fake-apiserver-binary",
                fake_binary.display()
            );
        }
        let fake_dir = std::env::temp_dir().join(format!("kjp-{network_id}-agentsite"));
        if fake_dir.exists() {
            std::fs::remove_dir_all(&fake_dir).with_context(|| format!("remove the stale {}", fake_dir.display()))?;
        }
        std::fs::create_dir_all(&fake_dir).with_context(|| format!("create {}", fake_dir.display()))?;
        let mut site = AgentSite {
            host_index,
            namespace: host.namespace.clone(),
            fake_dir,
            fake_log: work_dir.join("fake-apiserver.log"),
            agent_log: work_dir.join("agent.log"),
            agent: None,
            fake: None,
        };
        // From here on, dropping `site` kills what it started and removes the directory.
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &site.namespace])
            .arg(fake_binary)
            .arg("--dir")
            .arg(&site.fake_dir)
            .args(["--bind", "127.0.0.1", "--admin-group", ADMIN_GROUP])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        site.fake = Some(Process::spawn("the fake apiserver", command, &site.fake_log)?);
        // `token.kubeconfig` is the last file the fake writes.
        let last_file = site.fake_dir.join("token.kubeconfig");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !last_file.is_file() {
            if let Some(fake) = site.fake.as_mut() {
                fake.check_running(&site.fake_log)?;
            }
            if Instant::now() >= deadline {
                bail!("the fake apiserver wrote no kubeconfig within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(site)
    }

    /// Start `kuboard agent` in the site's namespace with the fake's administrator kubeconfig, the
    /// agent token of [`AGENT_CLUSTER`] and `endpoints` (every member's agent port). The token is
    /// passed in the environment only.
    pub fn start_agent(&mut self, kuboard_binary: &Path, endpoints: &[SocketAddr], token: &str) -> anyhow::Result<()> {
        if self.agent.is_some() {
            bail!("the agent runs already");
        }
        let endpoints = endpoints
            .iter()
            .map(SocketAddr::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.namespace])
            .arg(kuboard_binary)
            .arg("agent")
            .arg("--kubeconfig")
            .arg(self.fake_dir.join("admin.kubeconfig"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KUBOARD_AGENT_ENDPOINT", endpoints)
            .env("KUBOARD_AGENT_CLUSTER", AGENT_CLUSTER)
            .env("KUBOARD_AGENT_TOKEN", token);
        self.agent = Some(Process::spawn("kuboard agent", command, &self.agent_log)?);
        Ok(())
    }

    /// Fail when the fake apiserver or the agent has exited by itself.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(fake) = self.fake.as_mut() {
            fake.check_running(&self.fake_log)?;
        }
        if let Some(agent) = self.agent.as_mut() {
            agent.check_running(&self.agent_log)?;
        }
        Ok(())
    }

    /// The index of the site's host in the network (partitions name hosts by index).
    pub fn host_index(&self) -> usize {
        self.host_index
    }
}

impl Drop for AgentSite {
    fn drop(&mut self) {
        self.agent.take();
        self.fake.take();
        if let Err(error) = std::fs::remove_dir_all(&self.fake_dir) {
            tracing::warn!(dir = %self.fake_dir.display(), %error, "cannot remove the agent site's directory");
        }
    }
}
