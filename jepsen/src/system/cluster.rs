use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use super::agent_site::{AgentSite, AGENT_CLUSTER, AGENT_PORT};
use super::audit_db::AuditDb;
use super::http;
use super::member_layout::{embedded_members, etcd_members, peer_routes, Member};
use crate::net::{DelayControl, Network, ProxySet};

/// The etcd v3 client port of every member (each member has a host, hence an address, of its own).
pub const CLIENT_PORT: u16 = 2379;
/// The peer (Raft) port of every member.
pub(super) const PEER_PORT: u16 = 2380;
/// The web port of a `kuboard serve` replica.
pub const WEB_PORT: u16 = 8080;
/// The administrator's password once [`Cluster::ensure_admin_password`] has changed the default one
/// (a session made with the default password may do nothing but change it).
pub const ADMIN_PASSWORD: &str = "Chaos-Suite-Pass-1";
/// The default password of the `admin` user on a first start.
const DEFAULT_ADMIN_PASSWORD: &str = "Kuboard123";
/// Bound on one `kuboard admin members` or `etcdctl member` command (an added member may need a
/// snapshot transfer before it votes).
const MEMBER_COMMAND_TIMEOUT: Duration = Duration::from_secs(160);
/// How long an etcd membership change is tried, and how long each try may wait for etcd.
const ETCD_MEMBERSHIP_DEADLINE: Duration = Duration::from_secs(40);
const ETCD_MEMBERSHIP_TRY: Duration = Duration::from_secs(5);
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

/// The audit policy of the members when the cluster runs an audit database
/// (`KUBOARD_AUDIT_POLICY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum AuditPolicyChoice {
    IgnoreErrors,
    Buffered,
    Strict,
}

impl AuditPolicyChoice {
    /// The value of `KUBOARD_AUDIT_POLICY`.
    pub fn as_env(self) -> &'static str {
        match self {
            AuditPolicyChoice::IgnoreErrors => "ignore-errors",
            AuditPolicyChoice::Buffered => "buffered",
            AuditPolicyChoice::Strict => "strict",
        }
    }
}

/// Optional parts of a cluster that some faults need. Kept apart from [`ClusterOptions`] so that
/// existing constructions of it stay valid; [`Cluster::start`] uses the defaults (none of them), and
/// `crate::nemesis::features_for` gives the parts a list of faults needs.
#[derive(Debug, Clone)]
pub struct ClusterFeatures {
    /// Route every peer link through a delay proxy (the `delay` fault needs it): members are
    /// configured with alias peer addresses served by proxies in each namespace ([`crate::net::proxy`]).
    pub delay_proxy: bool,
    /// The delay the `delay` fault adds to each chunk, in each direction.
    pub delay: Duration,
    /// A uniform random extra delay of up to this much per chunk.
    pub jitter: Duration,
    /// Run a PostgreSQL audit database on a host of its own and start the members (embedded group
    /// only) with `KUBOARD_QUEST_DB_URI` pointing at it and this `KUBOARD_AUDIT_POLICY`.
    pub audit: Option<AuditPolicyChoice>,
    /// The directory with PostgreSQL's `initdb`, `postgres` and `psql`.
    pub postgres_bin: PathBuf,
    /// Extra environment of every embedded-group member (for example `KUBOARD_RAFT_HEARTBEAT_MS`),
    /// set after the suite's own variables so that it can override them; ignored for etcd.
    pub member_env: Vec<(String, String)>,
    /// Run an agent site on a host of its own (embedded group only): the fake apiserver of
    /// `testkit/` on that host's loopback and `kuboard agent` dialling every member's agent port
    /// ([`AGENT_PORT`]), imported as the agent cluster [`AGENT_CLUSTER`] (see [`super::agent_site`]).
    pub agent_site: bool,
    /// The fake apiserver binary of the agent site.
    pub fake_apiserver_binary: PathBuf,
}

impl Default for ClusterFeatures {
    fn default() -> ClusterFeatures {
        ClusterFeatures {
            delay_proxy: false,
            delay: Duration::from_millis(50),
            jitter: Duration::from_millis(10),
            audit: None,
            postgres_bin: PathBuf::from("/usr/lib/postgresql/15/bin"),
            member_env: Vec::new(),
            agent_site: false,
            fake_apiserver_binary: PathBuf::from("target/debug/kuboard-fake-apiserver"),
        }
    }
}

/// A running cluster on its own network. Dropping it kills every member (by pid) and then removes the
/// network.
pub struct Cluster {
    // Declared before `network`: members, proxies and the audit database end before their
    // namespaces are removed.
    members: Vec<Member>,
    proxies: Option<ProxySet>,
    audit_db: Option<AuditDb>,
    agent_site: Option<AgentSite>,
    network: Network,
    kind: SystemKind,
    features: ClusterFeatures,
    /// Whether the admin's password is [`ADMIN_PASSWORD`] already.
    admin_password_set: bool,
}

impl Cluster {
    /// Create the network, start every member and wait until each answers a linearizable read.
    pub async fn start(options: &ClusterOptions) -> anyhow::Result<Cluster> {
        Cluster::start_with(options, &ClusterFeatures::default()).await
    }

    /// Like [`Self::start`], with the optional parts in `features`: delay proxies on the peer links
    /// and an audit database host (started before the members, which log to it).
    pub async fn start_with(options: &ClusterOptions, features: &ClusterFeatures) -> anyhow::Result<Cluster> {
        if features.audit.is_some() && options.kind != SystemKind::Embedded {
            bail!("an audit database is for the embedded group (kuboard serve) only");
        }
        if features.agent_site && options.kind != SystemKind::Embedded {
            bail!("an agent site is for the embedded group (kuboard serve) only");
        }
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
        // The audit database, when there is one, is the host after the members; the agent site, when
        // there is one, the host after those.
        let agent_host = options.members + usize::from(features.audit.is_some());
        let hosts = agent_host + usize::from(features.agent_site);
        let mut network = Network::create(hosts)?;
        network.limit_loss_to(options.members);
        let proxies = if features.delay_proxy {
            network.add_peer_aliases(options.members)?;
            let routes = peer_routes(&network, options.members);
            Some(ProxySet::start(&routes, Arc::new(DelayControl::default()))?)
        } else {
            None
        };
        let audit_db = match features.audit {
            Some(_) => {
                let host = &network.hosts()[options.members];
                let log_path = options.work_dir.join("audit-db.log");
                let mut db = AuditDb::init(&features.postgres_bin, host, &network, log_path)?;
                db.start()?;
                db.wait_ready(Duration::from_secs(30))?;
                Some(db)
            }
            None => None,
        };
        let mut members = match options.kind {
            SystemKind::Embedded => embedded_members(&network, options, features.delay_proxy),
            SystemKind::Etcd => etcd_members(&network, options, features.delay_proxy),
        };
        if let (Some(policy), Some(db)) = (features.audit, audit_db.as_ref()) {
            for member in &mut members {
                member.env.push(("KUBOARD_QUEST_DB_URI".to_string(), db.uri()));
                member
                    .env
                    .push(("KUBOARD_AUDIT_POLICY".to_string(), policy.as_env().to_string()));
            }
        }
        if features.agent_site {
            for member in &mut members {
                member
                    .env
                    .push(("KUBOARD_AGENT_SERVER_TCP_PORT".to_string(), AGENT_PORT.to_string()));
            }
        }
        if options.kind == SystemKind::Embedded {
            for member in &mut members {
                member.env.extend(features.member_env.iter().cloned());
            }
        }
        let agent_site = match features.agent_site {
            true => Some(
                AgentSite::start(
                    &features.fake_apiserver_binary,
                    agent_host,
                    &network.hosts()[agent_host],
                    network.id(),
                    &options.work_dir,
                )
                .await?,
            ),
            false => None,
        };
        let mut cluster = Cluster {
            members,
            proxies,
            audit_db,
            agent_site,
            network,
            kind: options.kind,
            features: features.clone(),
            admin_password_set: false,
        };
        for index in 0..cluster.members.len() {
            cluster.spawn(index)?;
        }
        cluster.wait_ready(Duration::from_secs(60)).await?;
        if cluster.agent_site.is_some() {
            cluster
                .connect_agent(&options.kuboard_binary)
                .await
                .context("import the agent site's cluster")?;
        }
        Ok(cluster)
    }

    /// Create the agent cluster [`AGENT_CLUSTER`] through the REST API, start the agent with its
    /// token, and wait until every member serves the cluster through its proxy.
    async fn connect_agent(&mut self, kuboard_binary: &Path) -> anyhow::Result<()> {
        let token = self.admin_token().await?;
        let address = SocketAddr::from((self.network.hosts()[0].ip, WEB_PORT));
        let (status, answer) = http::request(
            address,
            "POST",
            "/kuboard-api/agent-clusters",
            Some(&token),
            Some(&serde_json::json!({ "name": AGENT_CLUSTER, "description": "the chaos suite's agent site" })),
        )
        .await
        .context("create the agent cluster")?;
        let agent_token = answer["agent_token"]
            .as_str()
            .with_context(|| format!("creating the agent cluster answered {status}: {}", answer["code"]))?
            .to_string();
        let endpoints: Vec<SocketAddr> = (0..self.members.len())
            .map(|index| SocketAddr::from((self.network.hosts()[index].ip, AGENT_PORT)))
            .collect();
        let site = self.agent_site.as_mut().context("the cluster has no agent site")?;
        site.start_agent(kuboard_binary, &endpoints, &agent_token)?;
        let path = format!("/k8s-api/{AGENT_CLUSTER}/api/v1/namespaces/default/configmaps");
        let deadline = Instant::now() + Duration::from_secs(30);
        for index in 0..self.members.len() {
            let address = SocketAddr::from((self.network.hosts()[index].ip, WEB_PORT));
            loop {
                if let Some(site) = self.agent_site.as_mut() {
                    site.check_running()?;
                }
                let answer = http::request(address, "GET", &path, Some(&token), None).await;
                if matches!(answer, Ok((200, _))) {
                    break;
                }
                if Instant::now() >= deadline {
                    bail!(
                        "{} did not serve the agent cluster within 30 s (last answer: {})",
                        self.members[index].name,
                        match answer {
                            Ok((status, body)) => format!("{status} {}", body["message"]),
                            Err(error) => format!("{error:#}"),
                        }
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }

    /// The agent site's host index, when the cluster has an agent site.
    pub fn agent_host(&self) -> Option<usize> {
        self.agent_site.as_ref().map(AgentSite::host_index)
    }

    /// Fail when the agent site's apiserver or agent exited by itself.
    pub fn check_agent_site(&mut self) -> anyhow::Result<()> {
        match self.agent_site.as_mut() {
            Some(site) => site.check_running(),
            None => Ok(()),
        }
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

    pub fn features(&self) -> &ClusterFeatures {
        &self.features
    }

    /// The Raft peer address of a member as the members know it (`HOST:PORT`): the alias served by
    /// the delay proxies when they run, else the member's own address.
    pub fn peer_address(&self, index: usize) -> String {
        let ip = if self.proxies.is_some() {
            self.network.peer_alias(index)
        } else {
            self.network.hosts()[index].ip
        };
        format!("{ip}:{PEER_PORT}")
    }

    /// `http://<host address>:8080`, the web port of an embedded-group replica.
    pub fn web_url(&self, index: usize) -> String {
        format!("http://{}:{WEB_PORT}", self.network.hosts()[index].ip)
    }

    /// The delay control of the peer proxies, when the cluster has them.
    pub fn delay_control(&self) -> Option<&Arc<DelayControl>> {
        self.proxies.as_ref().map(ProxySet::control)
    }

    /// Whether the member was removed from the group by [`Self::remove_member`] and not added back.
    pub fn is_removed(&self, index: usize) -> bool {
        self.members[index].removed
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
        if self.members[index].removed {
            bail!(
                "{} was removed from the group; add it back instead",
                self.members[index].name
            );
        }
        self.spawn(index)
    }

    /// A running, unpaused member other than `except` to send administrative commands to.
    fn other_member(&self, except: usize) -> anyhow::Result<usize> {
        (0..self.members.len())
            .find(|index| {
                *index != except && self.is_running(*index) && !self.is_paused(*index) && !self.is_removed(*index)
            })
            .with_context(|| format!("no running member besides {} to ask", self.members[except].name))
    }

    /// Remove a member from the group through another member (`kuboard admin members remove`, or
    /// `etcdctl member remove`), then stop it and wipe its data directory: it may only come back as a
    /// fresh member ([`Self::add_member_back`]). The caller keeps a majority of the rest running.
    pub async fn remove_member(&mut self, index: usize) -> anyhow::Result<String> {
        if self.members[index].removed {
            bail!("{} is removed already", self.members[index].name);
        }
        let via = self.other_member(index)?;
        let outcome = match self.kind {
            SystemKind::Embedded => {
                self.ensure_admin_password().await?;
                let id = (index + 1).to_string();
                let server = self.web_url(via);
                self.kuboard_admin(&["members", "remove", &id, "--server", &server])
                    .await
            }
            SystemKind::Etcd => match self.etcd_member_id(via, index).await? {
                Some(id) => {
                    self.etcd_membership_change(via, index, &["member", "remove", &id], false)
                        .await
                }
                None => bail!("{} is not in the member list", self.members[index].name),
            },
        };
        // A command that failed (a timeout, a lost answer) may still have changed the membership:
        // what counts is whether the member is still listed.
        let said = match outcome {
            Ok(said) => said,
            Err(error) => match self.is_listed(via, index).await {
                Ok(false) => format!("the member list no longer holds it (the command said: {error:#})"),
                _ => return Err(error),
            },
        };
        if self.is_running(index) {
            self.kill(index)?;
        }
        let member = &mut self.members[index];
        member.removed = true;
        if member.data_dir.exists() {
            std::fs::remove_dir_all(&member.data_dir)
                .with_context(|| format!("wipe the data dir of {}", member.name))?;
        }
        Ok(format!(
            "removed {} through {}: {}",
            self.members[index].name,
            self.members[via].name,
            said.lines().next().unwrap_or_default()
        ))
    }

    /// Start a member removed by [`Self::remove_member`] on an empty data directory and add it to the
    /// group again through another member; returns once the group has accepted it (for the embedded
    /// group: once it caught up and votes).
    pub async fn add_member_back(&mut self, index: usize) -> anyhow::Result<String> {
        if !self.members[index].removed {
            bail!("{} is a member already", self.members[index].name);
        }
        let via = self.other_member(index)?;
        let peer = self.peer_address(index);
        let started = Instant::now();
        // An earlier attempt that failed may have left the process running, or (etcd) the member
        // listed already: each step is skipped when it is done.
        let listed = self.is_listed(via, index).await?;
        let outcome = match self.kind {
            SystemKind::Embedded => {
                // A fresh replica whose peers hold state never initialises; it waits to be added.
                if !self.is_running(index) {
                    self.spawn(index)?;
                }
                let spec = format!("{}={peer}", index + 1);
                let server = self.web_url(via);
                self.kuboard_admin(&["members", "add", &spec, "--server", &server])
                    .await
            }
            SystemKind::Etcd => {
                let name = self.members[index].name.clone();
                let said = if listed {
                    Ok("listed already".to_string())
                } else {
                    let peer_urls = format!("--peer-urls=http://{peer}");
                    self.etcd_membership_change(via, index, &["member", "add", &name, &peer_urls], true)
                        .await
                };
                if said.is_ok() {
                    // It joins the existing cluster; its original --initial-cluster names the same
                    // members.
                    for arg in &mut self.members[index].args {
                        if arg == "--initial-cluster-state=new" {
                            *arg = "--initial-cluster-state=existing".to_string();
                        }
                    }
                    if !self.is_running(index) {
                        self.spawn(index)?;
                    }
                }
                said
            }
        };
        let said = match outcome {
            Ok(said) => said,
            // For the embedded group, listed means a voter: `members add` returns when it votes.
            Err(error) => match self.is_listed(via, index).await {
                Ok(true) if self.kind == SystemKind::Embedded => {
                    format!("the member list holds it (the command said: {error:#})")
                }
                _ => return Err(error),
            },
        };
        self.members[index].removed = false;
        Ok(format!(
            "added {} back through {} in {} ms: {}",
            self.members[index].name,
            self.members[via].name,
            started.elapsed().as_millis(),
            said.lines().next().unwrap_or_default()
        ))
    }

    /// Run an etcd membership change (`etcdctl member add|remove …` through member `via`) until the
    /// member list shows member `index` listed (`listed`) or not, for up to
    /// [`ETCD_MEMBERSHIP_DEADLINE`]. etcd refuses a change as "unhealthy cluster" until the members
    /// that stay have been connected for 5 s, and its raft drops a change proposed while the previous
    /// one is not applied yet (the command then waits for its deadline): both are tried again. Each
    /// try is bounded by [`ETCD_MEMBERSHIP_TRY`]; a try that failed but took effect counts as done.
    async fn etcd_membership_change(
        &self,
        via: usize,
        index: usize,
        args: &[&str],
        listed: bool,
    ) -> anyhow::Result<String> {
        let endpoint = self.endpoint(via);
        let deadline = Instant::now() + ETCD_MEMBERSHIP_DEADLINE;
        let timeout = format!("--command-timeout={}s", ETCD_MEMBERSHIP_TRY.as_secs());
        let with_timeout: Vec<&str> = std::iter::once(timeout.as_str()).chain(args.iter().copied()).collect();
        loop {
            let error = match etcdctl(&endpoint, &with_timeout).await {
                Ok(said) => return Ok(said),
                Err(error) => error,
            };
            let text = format!("{error:#}");
            let retryable = ["unhealthy cluster", "deadline exceeded", "request timed out"]
                .iter()
                .any(|reason| text.contains(reason));
            if retryable && self.is_listed(via, index).await.ok() == Some(listed) {
                return Ok(format!("the member list shows the change (the command said: {text})"));
            }
            if !retryable || Instant::now() >= deadline {
                return Err(error);
            }
            tracing::debug!(error = %text, "etcd membership change not taken yet; trying again");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Whether member `index` is in the group's member list, asking member `via`.
    async fn is_listed(&self, via: usize, index: usize) -> anyhow::Result<bool> {
        match self.kind {
            SystemKind::Embedded => {
                let server = self.web_url(via);
                let listed = self
                    .kuboard_admin(&["members", "list", "--json", "--server", &server])
                    .await?;
                let view: serde_json::Value = serde_json::from_str(&listed).context("read the member list as JSON")?;
                let id = index as u64 + 1;
                Ok(view["members"]
                    .as_array()
                    .is_some_and(|members| members.iter().any(|member| member["id"].as_u64() == Some(id))))
            }
            SystemKind::Etcd => Ok(self.etcd_member_id(via, index).await?.is_some()),
        }
    }

    /// The hexadecimal etcd member id of member `index`, if it is listed, asking member `via`.
    async fn etcd_member_id(&self, via: usize, index: usize) -> anyhow::Result<Option<String>> {
        let list = etcdctl(&self.endpoint(via), &["member", "list"]).await?;
        let name = &self.members[index].name;
        let peer = format!("http://{}", self.peer_address(index));
        // `etcdctl member list` (simple format): `ID, status, name, peer URLs, client URLs, learner`.
        // A member added but not started yet has no name; its peer URL tells it apart.
        Ok(list
            .lines()
            .map(|line| line.split(", ").collect::<Vec<_>>())
            .find(|fields| fields.get(2) == Some(&name.as_str()) || fields.get(3) == Some(&peer.as_str()))
            .and_then(|fields| fields.first().map(|id| id.to_string())))
    }

    /// Run `kuboard admin <args> --password <ADMIN_PASSWORD>` from the root namespace.
    async fn kuboard_admin(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut command = tokio::process::Command::new(&self.members[0].program);
        command
            .arg("admin")
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KUBOARD_ADMIN_PASSWORD", ADMIN_PASSWORD);
        let line = format!("kuboard admin {}", args.join(" "));
        run_bounded(command, &line).await
    }

    /// Make sure the `admin` user's password is [`ADMIN_PASSWORD`] (embedded group only): on a first
    /// start it logs in with the default password and changes it. Workloads that log in as admin use
    /// [`ADMIN_PASSWORD`] afterwards.
    pub async fn ensure_admin_password(&mut self) -> anyhow::Result<()> {
        if self.admin_password_set {
            return Ok(());
        }
        if self.kind != SystemKind::Embedded {
            bail!("only the embedded group has an admin user");
        }
        let index = (0..self.members.len())
            .find(|index| self.is_running(*index) && !self.is_paused(*index) && !self.is_removed(*index))
            .context("no running member to log in to")?;
        let address = SocketAddr::from((self.network.hosts()[index].ip, WEB_PORT));
        let login = |password: &str| serde_json::json!({ "username": "admin", "password": password });
        let (status, _) = http::request(
            address,
            "POST",
            "/kuboard-api/auth/login",
            None,
            Some(&login(ADMIN_PASSWORD)),
        )
        .await
        .context("log in as admin")?;
        if status == 200 {
            self.admin_password_set = true;
            return Ok(());
        }
        let (status, answer) = http::request(
            address,
            "POST",
            "/kuboard-api/auth/login",
            None,
            Some(&login(DEFAULT_ADMIN_PASSWORD)),
        )
        .await
        .context("log in as admin with the default password")?;
        let token = answer["token"]
            .as_str()
            .with_context(|| format!("login with the default password answered {status}: {answer}"))?
            .to_string();
        let change = serde_json::json!({ "current_password": DEFAULT_ADMIN_PASSWORD, "new_password": ADMIN_PASSWORD });
        let (status, answer) = http::request(
            address,
            "POST",
            "/kuboard-api/auth/password",
            Some(&token),
            Some(&change),
        )
        .await
        .context("change the admin password")?;
        if status != 200 {
            bail!("changing the admin password answered {status}: {answer}");
        }
        self.admin_password_set = true;
        Ok(())
    }

    /// Log in as `admin` with [`ADMIN_PASSWORD`] (changing the default password first when needed)
    /// through the first running member and return the session's bearer token. A login is an
    /// audited action, so this also makes one audit event.
    pub async fn admin_token(&mut self) -> anyhow::Result<String> {
        self.ensure_admin_password().await?;
        let index = (0..self.members.len())
            .find(|index| self.is_running(*index) && !self.is_paused(*index) && !self.is_removed(*index))
            .context("no running member to log in to")?;
        let address = SocketAddr::from((self.network.hosts()[index].ip, WEB_PORT));
        let body = serde_json::json!({ "username": "admin", "password": ADMIN_PASSWORD });
        let (status, answer) = http::request(address, "POST", "/kuboard-api/auth/login", None, Some(&body))
            .await
            .context("log in as admin")?;
        answer["token"]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("login answered {status} without a token"))
    }

    /// Whether the cluster has an audit database and it is running (not killed by the `audit-db`
    /// fault).
    pub fn audit_db_is_up(&self) -> bool {
        self.audit_db.as_ref().is_some_and(AuditDb::is_running)
    }

    /// The audit database's process id while it runs.
    pub fn audit_db_pid(&self) -> Option<u32> {
        self.audit_db.as_ref().and_then(AuditDb::pid)
    }

    /// The connection string of the audit database (`postgresql://kuboard@198.18.S.H:5432/postgres`,
    /// no password), the same the members use; it is reachable from the root namespace as well.
    /// The members write their events into the table `kuboard_audit`.
    pub fn audit_db_uri(&self) -> Option<String> {
        self.audit_db.as_ref().map(AuditDb::uri)
    }

    /// Run one SQL statement against the audit database with `psql` and return its rows, each a
    /// `Vec` of the columns as text (NULL as an empty string). For example
    /// `cluster.audit_db_query("SELECT audit_id, action FROM kuboard_audit")`.
    pub fn audit_db_query(&self, sql: &str) -> anyhow::Result<Vec<Vec<String>>> {
        self.audit_db
            .as_ref()
            .context("the cluster has no audit database")?
            .query(sql)
    }

    /// `kill -9` the audit database.
    pub fn kill_audit_db(&mut self) -> anyhow::Result<()> {
        self.audit_db
            .as_mut()
            .context("the cluster has no audit database")?
            .kill()
    }

    /// Start the audit database again on its data after [`Self::kill_audit_db`] and wait until it
    /// answers.
    pub fn restart_audit_db(&mut self) -> anyhow::Result<()> {
        let db = self.audit_db.as_mut().context("the cluster has no audit database")?;
        db.start()?;
        db.wait_ready(Duration::from_secs(30))
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

    /// [`Cluster::find_leader`], asked again every 200 ms until a member claims to lead or `patience`
    /// runs out. Right after a fault that took the leader away the group needs an election timeout or
    /// two to choose another; a fault aimed at the leader waits for it as an operator would.
    pub async fn wait_for_leader(&self, patience: Duration) -> Option<usize> {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(leader) = self.find_leader().await {
                return Some(leader);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `GET /readyz` of an embedded-group replica answers 200: besides the store, the replica's
    /// first-start work (the admin user) is done, so a workload that logs in right away cannot race it.
    async fn web_ready(&self, index: usize) -> anyhow::Result<()> {
        let address = SocketAddr::from((self.network.hosts()[index].ip, WEB_PORT));
        let (status, body) = http::request(address, "GET", "/readyz", None, None).await?;
        if status != 200 {
            bail!("/readyz answered {status}: {body}");
        }
        Ok(())
    }

    /// Wait until every running member answers a linearizable read through its own endpoint (and,
    /// for the embedded group, reports ready on `/readyz`).
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
                    Ok(()) if self.kind == SystemKind::Embedded => match self.web_ready(index).await {
                        Ok(()) => break,
                        Err(error) => error,
                    },
                    Ok(()) => break,
                    Err(error) => error,
                };
                if Instant::now() >= deadline {
                    bail!(
                        "{} was not ready within {within:?} (last error: {error:#}); log tail:\n{}",
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
        // The audit database, the agent site and the proxies end when their fields drop, before the
        // network's.
    }
}

/// Run `etcdctl --endpoints=<endpoint> <args>` from the root namespace.
async fn etcdctl(endpoint: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut command = tokio::process::Command::new("etcdctl");
    command
        .arg(format!("--endpoints={endpoint}"))
        .arg("--command-timeout=30s")
        .args(args)
        .env("ETCDCTL_API", "3");
    let line = format!("etcdctl {}", args.join(" "));
    run_bounded(command, &line).await
}

/// Run a command to completion within [`MEMBER_COMMAND_TIMEOUT`]; its standard output, or an error
/// with its standard error.
async fn run_bounded(mut command: tokio::process::Command, line: &str) -> anyhow::Result<String> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().with_context(|| format!("start `{line}`"))?;
    let output = tokio::time::timeout(MEMBER_COMMAND_TIMEOUT, child.wait_with_output())
        .await
        .with_context(|| format!("`{line}` did not finish within {MEMBER_COMMAND_TIMEOUT:?}"))?
        .with_context(|| format!("wait for `{line}`"))?;
    if !output.status.success() {
        bail!(
            "`{line}` exited with {}: {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
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

pub(super) fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
