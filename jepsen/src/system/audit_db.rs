//! The audit database as a host of the test network: a PostgreSQL server (it speaks QuestDB's
//! PG-wire protocol; the replicas' dialect module covers the differences) in a namespace of its own,
//! which the `audit-db` fault kills with SIGKILL and starts again.
//!
//! PostgreSQL refuses to run as root, so `initdb` and `postgres` run as the `postgres` user through
//! `setpriv` (which execs, so the child's pid is the server's). Its data lives in a directory under
//! the system temp dir (the run directory may not be traversable by that user), removed on drop.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::net::{Host, Network};

/// The server's port on its host.
pub const AUDIT_DB_PORT: u16 = 5432;

pub struct AuditDb {
    bin: PathBuf,
    namespace: String,
    ip: std::net::Ipv4Addr,
    dir: PathBuf,
    log_path: PathBuf,
    uid: String,
    gid: String,
    process: Option<Child>,
}

impl AuditDb {
    /// Create the database cluster (`initdb`) for a server on `host`; [`Self::start`] starts it.
    pub fn init(bin: &Path, host: &Host, network: &Network, log_path: PathBuf) -> anyhow::Result<AuditDb> {
        for program in ["initdb", "postgres", "psql"] {
            if !bin.join(program).is_file() {
                bail!(
                    "{} is missing: install PostgreSQL (Debian package postgresql) or point postgres_bin at it",
                    bin.join(program).display()
                );
            }
        }
        let uid = id_of("-u")?;
        let gid = id_of("-g")?;
        let dir = std::env::temp_dir().join(format!("kjp-{}-auditdb", network.id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("remove the stale {}", dir.display()))?;
        }
        std::fs::create_dir_all(dir.join("sock")).with_context(|| format!("create {}", dir.display()))?;
        let db = AuditDb {
            bin: bin.to_path_buf(),
            namespace: host.namespace.clone(),
            ip: host.ip,
            dir,
            log_path,
            uid,
            gid,
            process: None,
        };
        // From here on, dropping `db` removes the directory.
        let chown = Command::new("chown")
            .args(["-R", &format!("{}:{}", db.uid, db.gid)])
            .arg(&db.dir)
            .status()
            .context("run chown")?;
        if !chown.success() {
            bail!("chown of {} to postgres failed", db.dir.display());
        }
        let output = Command::new("setpriv")
            .args(db.as_postgres())
            .arg(db.bin.join("initdb"))
            .args(["-A", "trust", "-U", "kuboard", "--no-sync", "-D"])
            .arg(db.dir.join("data"))
            .stdin(Stdio::null())
            .output()
            .context("run initdb")?;
        if !output.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&output.stderr).trim());
        }
        // The members and the suite's clients (the bridge address) come over the test network.
        let hba = db.dir.join("data").join("pg_hba.conf");
        let mut rules = std::fs::read_to_string(&hba).with_context(|| format!("read {}", hba.display()))?;
        rules.push_str("\n# The chaos suite's test network.\nhost all all 198.18.0.0/15 trust\n");
        std::fs::write(&hba, rules).with_context(|| format!("write {}", hba.display()))?;
        Ok(db)
    }

    fn as_postgres(&self) -> Vec<String> {
        vec![
            format!("--reuid={}", self.uid),
            format!("--regid={}", self.gid),
            "--clear-groups".to_string(),
            "--".to_string(),
        ]
    }

    /// `postgresql://kuboard@<host address>:5432/postgres`: no password (trust authentication on the
    /// test network).
    pub fn uri(&self) -> String {
        format!("postgresql://kuboard@{}:{AUDIT_DB_PORT}/postgres", self.ip)
    }

    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Child::id)
    }

    /// Start the server in its namespace. After a SIGKILL the old server's backends notice the
    /// postmaster's death and exit by themselves; until they have, a new server would refuse to start
    /// (their shared memory is still attached), so this waits for the namespace to be empty first.
    pub fn start(&mut self) -> anyhow::Result<()> {
        if self.process.is_some() {
            bail!("the audit database is running already");
        }
        self.wait_namespace_empty(Duration::from_secs(15))?;
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("open {}", self.log_path.display()))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.namespace, "setpriv"])
            .args(self.as_postgres())
            .arg(self.bin.join("postgres"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-h", &self.ip.to_string(), "-p", &AUDIT_DB_PORT.to_string(), "-k"])
            .arg(self.dir.join("sock"))
            .args(["-c", "fsync=off"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("clone a log handle")?)
            .stderr(log)
            .spawn()
            .context("start postgres in its namespace")?;
        tracing::debug!(pid = child.id(), "audit database started");
        self.process = Some(child);
        Ok(())
    }

    /// SIGKILL the server (a crash) and reap it.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        let Some(mut process) = self.process.take() else {
            bail!("the audit database is not running");
        };
        process.kill().context("kill the audit database")?;
        process.wait().context("reap the audit database")?;
        Ok(())
    }

    fn wait_namespace_empty(&self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let output = Command::new("ip")
                .args(["netns", "pids", &self.namespace])
                .output()
                .context("list the processes of the audit database's namespace")?;
            if String::from_utf8_lossy(&output.stdout).trim().is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("the audit database's old processes did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait until the server answers a query (or exited, which is an error with its log tail).
    pub fn wait_ready(&mut self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(process) = self.process.as_mut() {
                if let Ok(Some(status)) = process.try_wait() {
                    self.process = None;
                    bail!(
                        "the audit database exited with {status}; log tail:\n{}",
                        tail(&self.log_path)
                    );
                }
            }
            let error = match self.query("SELECT 1") {
                Ok(_) => return Ok(()),
                Err(error) => error,
            };
            if Instant::now() >= deadline {
                bail!("the audit database did not answer within {within:?}: {error:#}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One statement through `psql` from the root namespace; rows of text columns.
    pub fn query(&self, sql: &str) -> anyhow::Result<Vec<Vec<String>>> {
        let output = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-A",
                "-t",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-F",
                "\t",
                "-d",
                &self.uri(),
                "-c",
                sql,
            ])
            .env("PGCONNECT_TIMEOUT", "3")
            .stdin(Stdio::null())
            .output()
            .context("run psql")?;
        if !output.status.success() {
            bail!("psql: {}", String::from_utf8_lossy(&output.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|line| !line.is_empty())
            .map(|line| line.split('\t').map(str::to_string).collect())
            .collect())
    }
}

impl Drop for AuditDb {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
        // The backends end by themselves once the postmaster is gone; give them a moment so that the
        // directory can be removed.
        let _ = self.wait_namespace_empty(Duration::from_secs(5));
        if let Err(error) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), %error, "the audit database's directory stays");
        }
    }
}

fn id_of(flag: &str) -> anyhow::Result<String> {
    let output = Command::new("id").args([flag, "postgres"]).output().context("run id")?;
    if !output.status.success() {
        bail!("there is no postgres user (install PostgreSQL)");
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
