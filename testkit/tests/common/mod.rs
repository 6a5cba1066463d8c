//! Helpers shared by the integration tests: an HTTPS client with the admin certificate, reading watch
//! streams line by line, and running the machine's kubectl.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use kuboard_testkit::FakeCluster;
use serde_json::Value;

pub const KUBECTL: &str = "/usr/bin/kubectl";

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_test_writer()
        .try_init();
}

/// An HTTPS client authenticated as `kubernetes-admin` that trusts the cluster CA.
pub fn admin_client(cluster: &FakeCluster) -> reqwest::Client {
    client_with(
        cluster,
        Some(format!("{}{}", cluster.admin.cert_pem, cluster.admin.key_pem)),
    )
}

pub fn client_with(cluster: &FakeCluster, identity_pem: Option<String>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cluster.ca.cert_pem.as_bytes()).expect("the CA parses"))
        .timeout(Duration::from_secs(30));
    if let Some(pem) = identity_pem {
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("the identity parses"));
    }
    builder.build().expect("the client builds")
}

/// Reads newline-delimited JSON from a streaming response.
pub struct LineReader {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl LineReader {
    pub fn new(response: reqwest::Response) -> LineReader {
        LineReader {
            response,
            buffer: Vec::new(),
        }
    }

    /// The next JSON line, `None` at the end of the stream; panics past `deadline`.
    pub async fn next(&mut self, deadline: Duration) -> Option<Value> {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                return Some(serde_json::from_slice(&line).expect("every watch line is JSON"));
            }
            let chunk = tokio::time::timeout_at(until, self.response.chunk())
                .await
                .expect("a watch line arrives before the deadline");
            match chunk {
                Ok(Some(bytes)) => self.buffer.extend_from_slice(&bytes),
                Ok(None) | Err(_) => return None,
            }
        }
    }
}

/// A scratch directory with an admin kubeconfig per instance and a kubectl cache directory.
pub struct KubectlHome {
    pub dir: tempfile::TempDir,
}

impl KubectlHome {
    pub fn new() -> KubectlHome {
        assert!(
            Path::new(KUBECTL).exists(),
            "{KUBECTL} is missing: install the Debian package kubectl (apt-get install kubectl)"
        );
        KubectlHome {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("the scratch directory is writable");
        path
    }

    /// Runs kubectl with `kubeconfig` and `args`, feeding `stdin`; returns (exit code, stdout, stderr).
    pub async fn run(&self, kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
        use tokio::io::AsyncWriteExt as _;
        let mut command = tokio::process::Command::new(KUBECTL);
        command
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env("HOME", self.dir.path())
            .stdin(if stdin.is_some() {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("kubectl starts");
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().expect("stdin is piped");
            pipe.write_all(text.as_bytes()).await.expect("kubectl reads its stdin");
            drop(pipe);
        }
        let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("kubectl finishes within a minute")
            .expect("kubectl runs");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).to_string(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    }
}
