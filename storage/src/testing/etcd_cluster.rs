//! A real etcd cluster for tests: N members on free loopback ports in a temporary directory.
//!
//! Every member keeps etcd's default durability (fsync of the WAL on every commit), so a test that
//! kills a member with SIGKILL sees what a real crash leaves behind. The launcher only ever signals
//! the processes it spawned, by pid, and kills them all when dropped.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Where the tests expect the etcd 3.4 server (Debian's `etcd-server` package).
pub const ETCD_BINARY: &str = "/usr/bin/etcd";

/// How long a fresh cluster, or a restarted member, may take to report healthy.
const HEALTH_DEADLINE: Duration = Duration::from_secs(30);
/// How long a member stopped with SIGTERM may take to exit before it is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(10);
/// Pause between two health probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// How many times a cluster is started on fresh ports when one was taken before etcd bound it.
const PORT_RACE_ATTEMPTS: u32 = 3;

/// TLS files the client listener of every member uses. Clients must present a certificate signed by
/// `trusted_ca_file` (`--client-cert-auth`).
#[derive(Debug, Clone)]
pub struct EtcdClientTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub trusted_ca_file: PathBuf,
}

/// How to start an [`EtcdCluster`].
#[derive(Debug, Clone)]
pub struct EtcdClusterOptions {
    /// Number of members (at least 1).
    pub members: usize,
    /// Serve clients over TLS with client certificate authentication; plain HTTP when `None`.
    pub client_tls: Option<EtcdClientTls>,
}

impl Default for EtcdClusterOptions {
    fn default() -> Self {
        EtcdClusterOptions {
            members: 3,
            client_tls: None,
        }
    }
}

struct EtcdMember {
    name: String,
    client_url: String,
    /// Plain HTTP listener for `/health`, usable whether or not the client listener uses TLS.
    metrics_url: String,
    args: Vec<String>,
    log_path: PathBuf,
    process: Option<Child>,
}

/// A running etcd cluster owned by a test. Dropping it kills its members and deletes their data.
pub struct EtcdCluster {
    members: Vec<EtcdMember>,
    // Declared last so that the members are killed before their data directory is removed.
    directory: tempfile::TempDir,
}

impl EtcdCluster {
    /// Start a cluster of `members` plain-HTTP members and wait until every member is healthy.
    pub async fn start(members: usize) -> anyhow::Result<EtcdCluster> {
        EtcdCluster::start_with(EtcdClusterOptions {
            members,
            client_tls: None,
        })
        .await
    }

    /// Start a cluster as described by `options` and wait until every member is healthy.
    ///
    /// The ports are chosen free and then handed to etcd, so a test running beside this one can
    /// take one in between; etcd then exits with "address already in use" and the whole cluster
    /// is started again on new ports (a few times at most).
    pub async fn start_with(options: EtcdClusterOptions) -> anyhow::Result<EtcdCluster> {
        let mut attempt = 1;
        loop {
            match EtcdCluster::try_start(&options).await {
                Err(error)
                    if attempt < PORT_RACE_ATTEMPTS && format!("{error:#}").contains("address already in use") =>
                {
                    tracing::warn!(
                        attempt,
                        "an etcd port was taken after it was chosen; starting the cluster again on new ports"
                    );
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    async fn try_start(options: &EtcdClusterOptions) -> anyhow::Result<EtcdCluster> {
        if options.members == 0 {
            bail!("an etcd cluster needs at least one member");
        }
        if !Path::new(ETCD_BINARY).exists() {
            bail!(
                "{ETCD_BINARY} is missing: these tests need the etcd 3.4 server \
                 (Debian package `etcd-server`, installed by .ci/run)"
            );
        }
        let directory = tempfile::Builder::new()
            .prefix("kuboard-etcd-")
            .tempdir()
            .context("create the etcd test directory")?;
        let ports = free_loopback_ports(options.members * 3)?;
        let client_scheme = if options.client_tls.is_some() { "https" } else { "http" };
        let peer_urls: Vec<String> = (0..options.members)
            .map(|index| format!("http://127.0.0.1:{}", ports[index * 3 + 1]))
            .collect();
        let initial_cluster = (0..options.members)
            .map(|index| format!("member{index}={}", peer_urls[index]))
            .collect::<Vec<_>>()
            .join(",");
        let token = format!("kuboard-test-{}", ports[0]);

        let mut cluster_members = Vec::with_capacity(options.members);
        for (index, peer_url) in peer_urls.iter().enumerate() {
            let name = format!("member{index}");
            let client_url = format!("{client_scheme}://127.0.0.1:{}", ports[index * 3]);
            let metrics_url = format!("http://127.0.0.1:{}", ports[index * 3 + 2]);
            let data_dir = directory.path().join(&name);
            let mut args = vec![
                format!("--name={name}"),
                format!("--data-dir={}", data_dir.display()),
                format!("--listen-client-urls={client_url}"),
                format!("--advertise-client-urls={client_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--listen-metrics-urls={metrics_url}"),
                format!("--initial-cluster={initial_cluster}"),
                format!("--initial-cluster-token={token}"),
                "--initial-cluster-state=new".to_string(),
                "--logger=zap".to_string(),
                "--log-outputs=stderr".to_string(),
            ];
            if let Some(tls) = &options.client_tls {
                args.push(format!("--cert-file={}", tls.cert_file.display()));
                args.push(format!("--key-file={}", tls.key_file.display()));
                args.push(format!("--trusted-ca-file={}", tls.trusted_ca_file.display()));
                args.push("--client-cert-auth".to_string());
            }
            let log_path = directory.path().join(format!("{name}.log"));
            cluster_members.push(EtcdMember {
                name,
                client_url,
                metrics_url,
                args,
                log_path,
                process: None,
            });
        }

        let mut cluster = EtcdCluster {
            members: cluster_members,
            directory,
        };
        for index in 0..cluster.members.len() {
            cluster.spawn(index)?;
        }
        cluster.wait_healthy(HEALTH_DEADLINE).await?;
        tracing::info!(members = cluster.members.len(), endpoints = ?cluster.client_endpoints(), "etcd cluster is healthy");
        Ok(cluster)
    }

    /// The client URLs of every member (`http://127.0.0.1:port` or `https://...`), in member order.
    pub fn client_endpoints(&self) -> Vec<String> {
        self.members.iter().map(|member| member.client_url.clone()).collect()
    }

    /// The client URL of one member.
    pub fn client_endpoint(&self, index: usize) -> &str {
        &self.members[index].client_url
    }

    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// The directory holding every member's data and log.
    pub fn directory(&self) -> &Path {
        self.directory.path()
    }

    /// The process id of a running member, `None` when it is stopped.
    pub fn pid(&self, index: usize) -> Option<u32> {
        self.members[index].process.as_ref().map(Child::id)
    }

    /// Kill one member with SIGKILL (a crash) and reap it.
    pub fn kill(&mut self, index: usize) -> anyhow::Result<()> {
        let member = &mut self.members[index];
        let Some(mut process) = member.process.take() else {
            bail!("etcd {} is not running", member.name);
        };
        process.kill().with_context(|| format!("kill etcd {}", member.name))?;
        process.wait().with_context(|| format!("reap etcd {}", member.name))?;
        tracing::info!(member = %member.name, "etcd member killed");
        Ok(())
    }

    /// Stop one member with SIGTERM and wait for it to exit (SIGKILL after a deadline).
    pub async fn stop(&mut self, index: usize) -> anyhow::Result<()> {
        let member = &mut self.members[index];
        let Some(mut process) = member.process.take() else {
            bail!("etcd {} is not running", member.name);
        };
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(process.id().to_string())
            .status()
            .context("run kill -TERM")?;
        if !status.success() {
            bail!("kill -TERM {} failed for etcd {}", process.id(), member.name);
        }
        let deadline = Instant::now() + STOP_DEADLINE;
        loop {
            if process.try_wait().context("wait for etcd to exit")?.is_some() {
                tracing::info!(member = %member.name, "etcd member stopped");
                return Ok(());
            }
            if Instant::now() >= deadline {
                process.kill().context("kill etcd after the stop deadline")?;
                process.wait().context("reap etcd")?;
                bail!(
                    "etcd {} did not exit within {STOP_DEADLINE:?} of SIGTERM and was killed",
                    member.name
                );
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }

    /// Start a stopped or killed member again on its data and wait until it is healthy.
    pub async fn restart(&mut self, index: usize) -> anyhow::Result<()> {
        if self.members[index].process.is_some() {
            bail!("etcd {} is already running", self.members[index].name);
        }
        self.spawn(index)?;
        let deadline = Instant::now() + HEALTH_DEADLINE;
        self.wait_member_healthy(index, deadline).await
    }

    /// Wait until every running member reports healthy (it has a leader and no alarm).
    pub async fn wait_healthy(&mut self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        for index in 0..self.members.len() {
            if self.members[index].process.is_some() {
                self.wait_member_healthy(index, deadline).await?;
            }
        }
        Ok(())
    }

    fn spawn(&mut self, index: usize) -> anyhow::Result<()> {
        let member = &mut self.members[index];
        let log = File::options()
            .create(true)
            .append(true)
            .open(&member.log_path)
            .with_context(|| format!("open {}", member.log_path.display()))?;
        let log_for_stdout = log.try_clone().context("clone the etcd log handle")?;
        let process = Command::new(ETCD_BINARY)
            .args(&member.args)
            .stdin(Stdio::null())
            .stdout(log_for_stdout)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawn {ETCD_BINARY} for {}", member.name))?;
        tracing::info!(member = %member.name, pid = process.id(), url = %member.client_url, "etcd member started");
        member.process = Some(process);
        Ok(())
    }

    async fn wait_member_healthy(&mut self, index: usize, deadline: Instant) -> anyhow::Result<()> {
        let health_url = format!("{}/health", self.members[index].metrics_url);
        loop {
            let member = &mut self.members[index];
            if let Some(process) = member.process.as_mut() {
                if let Some(status) = process.try_wait().context("check the etcd process")? {
                    member.process = None;
                    bail!(
                        "etcd {} exited with {status} before becoming healthy; log tail:\n{}",
                        member.name,
                        log_tail(&member.log_path)
                    );
                }
            }
            let last_answer = match http_get(&health_url).await {
                Ok(body) if body.contains("\"health\":\"true\"") => return Ok(()),
                Ok(body) => body,
                Err(error) => format!("{error:#}"),
            };
            if Instant::now() >= deadline {
                let member = &self.members[index];
                bail!(
                    "etcd {} was not healthy in time (last answer of {health_url}: {last_answer}); log tail:\n{}",
                    member.name,
                    log_tail(&member.log_path)
                );
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for member in &mut self.members {
            if let Some(mut process) = member.process.take() {
                // Errors are ignored on purpose: the process may already have exited on its own.
                let _ = process.kill();
                let _ = process.wait();
            }
        }
    }
}

/// Reserve `count` distinct free loopback ports. The listeners are closed before etcd binds, so
/// another process could take a port in between; on this test machine that race is rare and shows
/// as a clear "address in use" in the member log.
fn free_loopback_ports(count: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").context("bind a free loopback port"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|listener| Ok(listener.local_addr().context("read a bound port")?.port()))
        .collect()
}

/// A minimal HTTP/1.0 GET on loopback, enough for etcd's `/health`; returns the body.
async fn http_get(url: &str) -> anyhow::Result<String> {
    let rest = url.strip_prefix("http://").context("health URL must be plain http")?;
    let (address, path) = rest
        .split_once('/')
        .map(|(a, p)| (a, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(address).await.context("connect")?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes())
            .await
            .context("send the request")?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.context("read the response")?;
        anyhow::Ok(String::from_utf8_lossy(&response).into_owned())
    };
    let response = tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .context("health probe timed out")??;
    Ok(response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or(response))
}

fn log_tail(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(20)..].join("\n")
        }
        Err(error) => format!("(cannot read {}: {error})", path.display()),
    }
}
