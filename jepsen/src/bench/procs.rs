//! The processes the proxy and audit phases start on loopback: one `kuboard serve` on its embedded
//! store, the fake Kubernetes apiserver of `testkit/` (as a binary, never linked) and a PostgreSQL
//! server standing in for QuestDB. Each is killed by its pid when its value drops.

use std::fs::File;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// The password `kuboard serve` gives `admin` on first start (it must be changed before other calls).
const FIRST_ADMIN_PASSWORD: &str = "Kuboard123";
/// The password the benchmark sets; the replica lives only as long as the run, on loopback.
const BENCH_ADMIN_PASSWORD: &str = "Bench-Only-Passw0rd!";

/// A free TCP port on loopback (bound and released; another process could take it in between, which
/// only makes the start fail clearly).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("bind an ephemeral port on loopback")?;
    Ok(listener.local_addr().context("read the bound address")?.port())
}

/// A child process killed (SIGKILL) and reaped on drop.
pub struct Owned {
    child: Child,
    name: String,
}

impl Owned {
    /// Fail when the process has exited (its figures would be meaningless).
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait().context("poll a child process")? {
            bail!("{} exited ({status}); its log is in the work directory", self.name);
        }
        Ok(())
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        if let Err(error) = self.child.kill() {
            tracing::debug!(name = %self.name, %error, "the process had exited already");
        }
        let _ = self.child.wait();
    }
}

fn log_file(path: &Path) -> anyhow::Result<(File, File)> {
    let file = File::create(path).with_context(|| format!("create {}", path.display()))?;
    let copy = file.try_clone().context("clone a log file handle")?;
    Ok((file, copy))
}

/// The fake apiserver of `testkit/` with `pods` seeded pods in `default`.
pub struct FakeApiserver {
    pub process: Owned,
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    /// PEM of the CA that signed its serving certificate.
    pub ca_pem: String,
    /// A bearer token of a `system:masters` user (from its `token.kubeconfig`).
    pub token: String,
    /// The kubeconfig carrying that token, for the import into Kuboard.
    pub kubeconfig: String,
}

impl FakeApiserver {
    /// Start the binary and wait for its kubeconfigs. When the binary can grant a group everything
    /// (`--admin-group`), Kuboard's administrators group is granted, so requests through the proxy
    /// (which impersonates the Kuboard user) are allowed like direct ones.
    pub async fn start(binary: &Path, dir: &Path, pods: usize) -> anyhow::Result<FakeApiserver> {
        if !binary.exists() {
            bail!(
                "{} is missing: build it with `cargo build --release -p kuboard-testkit`",
                binary.display()
            );
        }
        let help = Command::new(binary)
            .arg("--help")
            .output()
            .with_context(|| format!("run {} --help", binary.display()))?;
        let grants_kuboard_admins = String::from_utf8_lossy(&help.stdout).contains("--admin-group");
        // A kubeconfig left by an earlier run would name a port nobody listens on any more.
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("remove the old {}", dir.display()))?;
        }
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let (stdout, stderr) = log_file(&dir.join("fake-apiserver.log"))?;
        let mut command = Command::new(binary);
        command
            .arg("--dir")
            .arg(dir)
            .args(["--bind", "127.0.0.1", "--pods", &pods.to_string()])
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        if grants_kuboard_admins {
            command.args(["--admin-group", "kuboard:administrators"]);
        }
        let child = command.spawn().with_context(|| format!("start {}", binary.display()))?;
        let mut process = Owned {
            child,
            name: "the fake apiserver".to_string(),
        };
        let kubeconfig_path = dir.join("token.kubeconfig");
        let deadline = Instant::now() + Duration::from_secs(30);
        let kubeconfig = loop {
            process.check_running()?;
            if let Ok(text) = std::fs::read_to_string(&kubeconfig_path) {
                if text.contains("token:") {
                    break text;
                }
            }
            if Instant::now() >= deadline {
                bail!("the fake apiserver wrote no kubeconfig within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let field = |name: &str| {
            kubeconfig
                .lines()
                .find_map(|line| line.trim().strip_prefix(name))
                .map(|value| value.trim().trim_matches('"').to_string())
        };
        let url = field("server:").context("the kubeconfig names no server")?;
        let token = field("token:").context("the kubeconfig has no token")?;
        let ca_path = dir.join("ca.crt");
        let ca_pem = std::fs::read_to_string(&ca_path).with_context(|| format!("read {}", ca_path.display()))?;
        Ok(FakeApiserver {
            process,
            url,
            ca_pem,
            token,
            kubeconfig,
        })
    }
}

/// One `kuboard serve` on its embedded store (a single member), HTTP on loopback.
pub struct Kuboard {
    pub process: Owned,
    pub base: String,
    pub client: reqwest::Client,
}

impl Kuboard {
    /// Start a replica in a fresh `data_dir` with `env` added and wait until it is ready.
    pub async fn start(binary: &Path, data_dir: &Path, env: &[(&str, String)]) -> anyhow::Result<Kuboard> {
        if data_dir.exists() {
            std::fs::remove_dir_all(data_dir).with_context(|| format!("remove the old {}", data_dir.display()))?;
        }
        std::fs::create_dir_all(data_dir).with_context(|| format!("create {}", data_dir.display()))?;
        let port = free_port()?;
        let (stdout, stderr) = log_file(&data_dir.with_extension("log"))?;
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KUBOARD_SERVER_ADDR", "127.0.0.1")
            .env("KUBOARD_SERVER_PORT", port.to_string())
            .env("KUBOARD_RAFT_ADDR", "127.0.0.1")
            .env("KUBOARD_RAFT_PORT", free_port()?.to_string())
            .env("KUBOARD_DATA_DIR", data_dir)
            .env("KUBOARD_SERVER_LOGRUS_LEVEL", "warn")
            // Cluster credentials are encrypted with a key derived from this secret; any value serves
            // a replica that lives as long as the run.
            .env("KUBOARD_SSO_CLIENT_SECRET", uuid_like())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .with_context(|| format!("start {} serve", binary.display()))?;
        let mut kuboard = Kuboard {
            process: Owned {
                child,
                name: "kuboard serve".to_string(),
            },
            base: format!("http://127.0.0.1:{port}"),
            client: http_client(None)?,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            kuboard.process.check_running()?;
            if let Ok(response) = kuboard.client.get(kuboard.url("/readyz")).send().await {
                if response.status() == 200 {
                    return Ok(kuboard);
                }
            }
            if Instant::now() >= deadline {
                bail!("kuboard serve was not ready within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Log in as `admin`, change the first-start password and return a session token.
    pub async fn admin_session(&self) -> anyhow::Result<String> {
        let first = self.login(FIRST_ADMIN_PASSWORD).await?;
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/kuboard-api/auth/password",
                &first,
                Some(&json!({"current_password": FIRST_ADMIN_PASSWORD, "new_password": BENCH_ADMIN_PASSWORD})),
            )
            .await?;
        if status != 200 {
            bail!("the admin password change was refused ({status}): {body}");
        }
        self.login(BENCH_ADMIN_PASSWORD).await
    }

    async fn login(&self, password: &str) -> anyhow::Result<String> {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/kuboard-api/auth/login",
                "",
                Some(&json!({"username": "admin", "password": password})),
            )
            .await?;
        if status != 200 {
            bail!("the admin login was refused ({status}): {}", body["code"]);
        }
        body["token"]
            .as_str()
            .map(str::to_string)
            .context("the login answer has no token")
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self.client.request(method, self.url(path));
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.with_context(|| format!("call {path}"))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .with_context(|| format!("read the answer of {path}"))?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    /// The value of one metric (the sum over its label sets) from `/metrics`.
    pub async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let text = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .context("read /metrics")?
            .text()
            .await
            .context("read the body of /metrics")?;
        Ok(metric_value(&text, name))
    }
}

/// The sum over the label sets of metric `name` in a Prometheus text exposition (0 when absent).
pub fn metric_value(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            let metric = key.split('{').next()?;
            (metric == name).then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// The benchmark's HTTP client: keep-alive connections reused across requests (reqwest's pool),
/// trusting `ca_pem` when given.
pub fn http_client(ca_pem: Option<&str>) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(256)
        .pool_idle_timeout(Duration::from_secs(90));
    if let Some(pem) = ca_pem {
        builder = builder.add_root_certificate(
            reqwest::Certificate::from_pem(pem.as_bytes()).context("parse the apiserver CA certificate")?,
        );
    }
    builder.build().context("build an HTTP client")
}

/// 32 hex digits from the OS's random source, for throwaway secrets.
fn uuid_like() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// PostgreSQL 15 as QuestDB's PG-wire stand-in, in a directory of its own, listening on loopback,
/// with its default durability (fsync on). It runs as the `postgres` user: PostgreSQL refuses root.
pub struct Postgres {
    pub process: Owned,
    pub port: u16,
}

impl Postgres {
    pub async fn start(bin_dir: &Path, dir: &Path) -> anyhow::Result<Postgres> {
        let postgres = bin_dir.join("postgres");
        if !postgres.exists() {
            bail!(
                "{} is missing: install the Debian package postgresql (scripts/install-deps.sh test)",
                postgres.display()
            );
        }
        let uid = id_of("-u")?;
        let gid = id_of("-g")?;
        // PostgreSQL changes into its data directory, so relative paths would point elsewhere.
        let dir = &std::path::absolute(dir).with_context(|| format!("make {} absolute", dir.display()))?;
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("remove the old {}", dir.display()))?;
        }
        let socket_dir = dir.join("sock");
        std::fs::create_dir_all(&socket_dir).with_context(|| format!("create {}", socket_dir.display()))?;
        for path in [dir, socket_dir.as_path()] {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .with_context(|| format!("give {} to the postgres user", path.display()))?;
        }
        let data = dir.join("data");
        let status = Command::new(bin_dir.join("initdb"))
            .args(["-A", "trust", "-U", "kuboard", "-D"])
            .arg(&data)
            .uid(uid)
            .gid(gid)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("run initdb")?;
        if !status.success() {
            bail!("initdb failed ({status})");
        }
        let port = free_port()?;
        let (stdout, stderr) = log_file(&dir.join("postgres.log"))?;
        std::os::unix::fs::chown(dir.join("postgres.log"), Some(uid), Some(gid)).context("give the log away")?;
        let child = Command::new(&postgres)
            .arg("-D")
            .arg(&data)
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
            .arg(&socket_dir)
            .uid(uid)
            .gid(gid)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .context("start postgres")?;
        let server = Postgres {
            process: Owned {
                child,
                name: "postgres".to_string(),
            },
            port,
        };
        // Ready when it accepts a connection.
        server.client().await?;
        Ok(server)
    }

    pub fn uri(&self) -> String {
        format!("postgresql://kuboard@127.0.0.1:{}/postgres", self.port)
    }

    pub async fn client(&self) -> anyhow::Result<tokio_postgres::Client> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match tokio_postgres::connect(&self.uri(), tokio_postgres::NoTls).await {
                Ok((client, connection)) => {
                    tokio::spawn(async move {
                        if let Err(error) = connection.await {
                            tracing::debug!(%error, "the PostgreSQL connection ended");
                        }
                    });
                    return Ok(client);
                }
                Err(error) if Instant::now() >= deadline => {
                    return Err(error).context("connect to PostgreSQL within 30 s");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

fn id_of(flag: &str) -> anyhow::Result<u32> {
    let output = Command::new("id").args([flag, "postgres"]).output().context("run id")?;
    if !output.status.success() {
        bail!("the postgres user is missing (Debian package postgresql)");
    }
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .context("id prints a number")
}

/// The newest `/usr/lib/postgresql/<version>/bin`.
pub fn default_postgres_bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, path)| path)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metric_is_summed_over_its_label_sets() {
        let text = "# HELP kuboard_audit_written_total events written\n\
                    # TYPE kuboard_audit_written_total counter\n\
                    kuboard_audit_written_total{policy=\"strict\"} 12\n\
                    kuboard_audit_written_total{policy=\"other\"} 3\n\
                    kuboard_audit_written_totals 100\n\
                    kuboard_audit_queue_depth 7\n";
        assert_eq!(metric_value(text, "kuboard_audit_written_total"), 15.0);
        assert_eq!(metric_value(text, "kuboard_audit_queue_depth"), 7.0);
        assert_eq!(metric_value(text, "kuboard_audit_dropped_total"), 0.0);
    }

    #[test]
    fn free_ports_are_on_loopback_and_bindable() {
        let port = free_port().expect("a free port");
        TcpListener::bind(("127.0.0.1", port)).expect("the port can be bound again");
    }
}
