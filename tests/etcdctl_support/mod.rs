//! etcdctl driven from tests, and a three-replica group serving the etcd v3 API; shared by the
//! etcd API tests (t40), the parity test (t45) and the `check perf` measurement (t46).

#![allow(dead_code)] // Each test binary uses a different part.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::common::{free_port, Group};

pub const ETCDCTL: &str = "/usr/bin/etcdctl";
/// Upper bound of one etcdctl command (`check perf` has its own).
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(30);
/// How long a fresh group may take until every replica is ready and the etcd API answers.
pub const START_DEADLINE: Duration = Duration::from_secs(60);

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_test_writer()
        .try_init();
}

/// What an etcdctl run printed; `stderr` keeps etcdctl's own lines, not the client library's JSON
/// log lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Printed {
    pub stdout: String,
    pub stderr: String,
    pub success: bool,
}

/// etcdctl pointed at some endpoints (`127.0.0.1:port` or a URL).
#[derive(Clone)]
pub struct Etcdctl {
    pub endpoints: Vec<String>,
    /// More flags before the command (TLS files).
    pub extra: Vec<String>,
}

impl Etcdctl {
    pub fn new(endpoints: Vec<String>) -> Etcdctl {
        assert!(
            Path::new(ETCDCTL).exists(),
            "{ETCDCTL} is missing: these tests need etcdctl 3.4 (Debian package `etcd-client`)"
        );
        Etcdctl {
            endpoints,
            extra: Vec::new(),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(ETCDCTL);
        command
            .env_clear()
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoints.join(",")))
            .arg("--dial-timeout=5s")
            .arg("--command-timeout=20s")
            .args(&self.extra)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    pub async fn run_with_input(&self, args: &[&str], input: &str, deadline: Duration) -> Printed {
        let mut child = self.command(args).spawn().expect("start etcdctl");
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(input.as_bytes()).await.expect("write etcdctl input");
        drop(stdin);
        // On a timeout the child is dropped, and so killed (kill_on_drop): it is ours.
        let output = tokio::time::timeout(deadline, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("etcdctl {args:?} did not finish within {deadline:?}"))
            .expect("etcdctl output");
        Printed {
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr)
                .lines()
                .filter(|line| !line.starts_with('{'))
                .map(|line| format!("{line}\n"))
                .collect(),
            success: output.status.success(),
        }
    }

    pub async fn run(&self, args: &[&str]) -> Printed {
        self.run_with_input(args, "", COMMAND_DEADLINE).await
    }

    /// Run and expect success with exactly `expected` on stdout.
    pub async fn check(&self, args: &[&str], expected: &str) {
        let printed = self.run(args).await;
        assert!(printed.success, "etcdctl {args:?} failed: {printed:?}");
        assert_eq!(printed.stdout, expected, "etcdctl {args:?}");
    }

    /// Run and expect failure with exactly `expected` as etcdctl's error line.
    pub async fn check_error(&self, args: &[&str], expected: &str) {
        let printed = self.run(args).await;
        assert!(!printed.success, "etcdctl {args:?} should fail: {printed:?}");
        assert_eq!(printed.stderr, expected, "etcdctl {args:?}");
    }

    /// Start a long-running etcdctl (watch, keep-alive), read `lines` lines, then kill it.
    pub async fn stream(&self, args: &[&str], lines: usize) -> Vec<String> {
        let mut child = self.command(args).spawn().expect("start etcdctl");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut reader = BufReader::new(stdout).lines();
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + COMMAND_DEADLINE;
        while seen.len() < lines {
            match tokio::time::timeout_at(deadline, reader.next_line()).await {
                Ok(Ok(Some(line))) => seen.push(line),
                Ok(Ok(None)) => panic!("etcdctl {args:?} ended after {seen:?}"),
                Ok(Err(error)) => panic!("read etcdctl {args:?}: {error}"),
                Err(_) => panic!("etcdctl {args:?} printed only {seen:?} within {COMMAND_DEADLINE:?}"),
            }
        }
        // Killed by its handle (this test started it); waiting reaps it.
        child.kill().await.expect("kill etcdctl");
        seen
    }
}

/// One step of the script. Arguments may name `{rev:N}` (the revision of the script's N-th write)
/// and `{lease:NAME}` (a lease granted earlier, in etcdctl's hex).
pub enum Step {
    /// A write, or anything not worth repeating on every member.
    Run(&'static [&'static str]),
    /// A read: on the embedded group also run against each replica alone, which must print the same.
    Read(&'static [&'static str]),
    /// With this text on stdin (`txn`).
    Input(&'static [&'static str], &'static str),
    /// Read this many lines of a streaming command, then stop it; on the group, also on each replica.
    Stream(&'static [&'static str], usize),
    /// `lease grant`, remembering the id under a name.
    Grant(&'static str, &'static [&'static str]),
    /// Repeat until stdout is empty (a leased key expiring), then keep that output.
    UntilEmpty(&'static [&'static str]),
    /// Cluster-wide output with one line per member or endpoint, in no fixed order: sorted after
    /// normalising.
    Cluster(&'static [&'static str]),
}

/// A three-replica group, each replica serving the etcd API on its own loopback port (one host
/// cannot give three replicas one port; in production every replica uses the same port).
pub struct EmbeddedGroup {
    pub group: Group,
    pub api_ports: Vec<u16>,
}

impl EmbeddedGroup {
    pub async fn start() -> EmbeddedGroup {
        let api_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let ports = api_ports.clone();
        let mut group = Group::start_with_env(3, &move |index| {
            vec![("KUBOARD_ETCD_API_PORT".to_string(), ports[index].to_string())]
        });
        group.wait_all_ready(START_DEADLINE).await;
        let embedded = EmbeddedGroup { group, api_ports };
        // A fresh group writes at start: the admin user, and the holder of its background jobs'
        // election. The script's revisions are counted after those writes.
        let etcdctl = embedded.etcdctl();
        let deadline = Instant::now() + START_DEADLINE;
        for first_write in ["users/admin", "election/"] {
            loop {
                let printed = etcdctl.run(&["get", first_write, "--prefix", "--keys-only"]).await;
                if printed.success && !printed.stdout.trim().is_empty() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{first_write} was not written within {START_DEADLINE:?} ({printed:?}); logs:\n{}",
                    embedded.group.logs()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        embedded
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.api_ports.iter().map(|port| format!("127.0.0.1:{port}")).collect()
    }

    pub fn etcdctl(&self) -> Etcdctl {
        Etcdctl::new(self.endpoints())
    }

    pub fn stop(mut self) {
        for replica in &mut self.group.replicas {
            replica.stop();
        }
    }
}
