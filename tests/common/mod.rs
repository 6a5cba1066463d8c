//! Test harness: spawns the real `kuboard` binary as a child process and talks to it over HTTP on
//! loopback. Every process started here is ended by its pid when the harness value drops.

#![allow(dead_code)] // Each test binary uses a different part of the harness.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const ADMIN_PASSWORD: &str = "Kuboard123";

/// A free TCP port on loopback (bound and released; the tiny race is acceptable in tests).
/// A loopback port free right now, and never handed out before in this test process: the kernel
/// may give a just-released port out again, and two servers of one test told the same port (a
/// replica's web and peer ports, say) would refuse to start.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port on loopback");
        let port = listener.local_addr().expect("local address of a bound listener").port();
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
}

/// The binary the tests start: the one cargo built for this test run, or the one
/// `KUBOARD_TEST_BINARY` names (the soak's long runs use the release build this way).
pub fn kuboard_binary() -> PathBuf {
    match std::env::var_os("KUBOARD_TEST_BINARY") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_kuboard")),
    }
}

/// The outcome of a process that was expected to stop by itself.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Run `kuboard <args>` with `env` to completion (bounded by `timeout`).
pub fn run_to_completion(args: &[&str], env: &[(&str, &str)], timeout: Duration) -> Finished {
    let dir = tempfile::tempdir().expect("create a temp dir for captured output");
    let stdout_path = dir.path().join("stdout");
    let stderr_path = dir.path().join("stderr");
    let mut command = Command::new(kuboard_binary());
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).expect("create stdout file"))
        .stderr(File::create(&stderr_path).expect("create stderr file"));
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("spawn the kuboard binary");
    let status = wait_with_deadline(&mut child, timeout)
        .unwrap_or_else(|| panic!("kuboard {args:?} did not exit within {timeout:?}"));
    Finished {
        status,
        stdout: std::fs::read_to_string(&stdout_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
    }
}

fn wait_with_deadline(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("poll child status") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One `kuboard serve` replica on loopback with its own data dir.
pub struct Replica {
    child: Option<Child>,
    pub port: u16,
    pub raft_port: u16,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    pub extra_env: Vec<(String, String)>,
    pub client: reqwest::Client,
}

impl Replica {
    /// Start a single replica on the embedded store, with a fresh port pair, in `data_dir`.
    pub fn start(data_dir: &Path, log_dir: &Path) -> Replica {
        Replica::start_with(data_dir, log_dir, &[])
    }

    pub fn start_with(data_dir: &Path, log_dir: &Path, extra_env: &[(&str, &str)]) -> Replica {
        let mut replica = Replica {
            child: None,
            port: free_port(),
            raft_port: free_port(),
            data_dir: data_dir.to_path_buf(),
            log_path: log_dir.join(format!("kuboard-{}.log", free_port())),
            extra_env: extra_env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("build an HTTP client"),
        };
        replica.spawn();
        replica
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open the replica log file");
        let mut command = Command::new(kuboard_binary());
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KUBOARD_SERVER_ADDR", "127.0.0.1")
            .env("KUBOARD_SERVER_PORT", self.port.to_string())
            .env("KUBOARD_RAFT_ADDR", "127.0.0.1")
            .env("KUBOARD_RAFT_PORT", self.raft_port.to_string())
            .env("KUBOARD_DATA_DIR", &self.data_dir)
            .env("KUBOARD_SERVER_LOGRUS_LEVEL", "info")
            // Replicas on one machine cannot share the default HTTPS port 443; a test that wants
            // HTTPS gives each replica its own port in its settings.
            .env("KUBOARD_SERVER_HTTPS_PORT", "off")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log file handle"))
            .stderr(log);
        for (key, value) in &self.extra_env {
            command.env(key, value);
        }
        self.child = Some(command.spawn().expect("spawn kuboard serve"));
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("replica is running").id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Wait until `path` answers 200, returning how long it took; panic with the replica's log if
    /// the process exits first or `timeout` passes.
    async fn wait_for_200(&mut self, path: &str, state: &str, timeout: Duration) -> Duration {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Some(status) = self.exited() {
                panic!(
                    "replica exited with {status} before becoming {state}; log:\n{}",
                    self.log()
                );
            }
            if let Ok(response) = self.client.get(self.url(path)).send().await {
                if response.status() == 200 {
                    return started.elapsed();
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("replica not {state} within {timeout:?}; log:\n{}", self.log());
    }

    /// Wait until `/healthz` answers 200, or panic with the replica's log.
    pub async fn wait_healthy(&mut self, timeout: Duration) -> Duration {
        self.wait_for_200("/healthz", "healthy", timeout).await
    }

    /// Wait until `/readyz` answers 200 (the store has a leader and can serve).
    pub async fn wait_ready(&mut self, timeout: Duration) {
        self.wait_for_200("/readyz", "ready", timeout).await;
    }

    /// Send SIGTERM and wait for the exit (bounded by `timeout`); returns the exit status and how long it took.
    pub fn terminate(&mut self, timeout: Duration) -> (ExitStatus, Duration) {
        let mut child = self.child.take().expect("replica is running");
        let started = Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(sent.success(), "kill -TERM failed");
        match wait_with_deadline(&mut child, timeout) {
            Some(status) => (status, started.elapsed()),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "replica did not exit within {timeout:?} of SIGTERM; log:\n{}",
                    self.log()
                );
            }
        }
    }

    /// `kill -9` the replica and reap it.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("replica is running");
        child.kill().expect("send SIGKILL to the replica");
        child.wait().expect("reap the killed replica");
    }

    /// Start again on the same ports and data dir.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart of a running replica");
        self.spawn();
    }

    pub async fn login(&self, username: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.url("/kuboard-api/auth/login"))
            .json(&serde_json::json!({ "username": username, "password": password }))
            .send()
            .await
            .expect("send login request")
    }

    /// Log in and return the bearer token, asserting success.
    pub async fn login_token(&self, username: &str, password: &str) -> String {
        let response = self.login(username, password).await;
        assert_eq!(response.status(), 200, "login of {username} should succeed");
        let body: Value = response.json().await.expect("login answers JSON");
        body["token"].as_str().expect("login answer has a token").to_string()
    }

    pub async fn get_json(&self, path: &str, token: &str) -> (u16, Value) {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("send GET request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_json(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("send POST request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A group of `kuboard serve` replicas on loopback forming one embedded Raft group.
pub struct Group {
    pub replicas: Vec<Replica>,
    _data: tempfile::TempDir,
    pub logs: tempfile::TempDir,
}

pub const TEST_CLUSTER_SECRET: &str = "test-cluster-secret-0123456789abcdef";
/// Seals cluster credentials; several replicas must share it.
pub const TEST_SSO_CLIENT_SECRET: &str = "test-sso-client-secret-0123456789";

impl Group {
    /// Start `size` replicas with ids 1..=size, all given the same peer list.
    pub fn start(size: usize) -> Group {
        let data = tempfile::tempdir().expect("create data root");
        let logs = tempfile::tempdir().expect("create log dir");
        let raft_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let peers = raft_ports
            .iter()
            .enumerate()
            .map(|(index, port)| format!("{}=127.0.0.1:{}", index + 1, port))
            .collect::<Vec<_>>()
            .join(",");
        let mut replicas = Vec::with_capacity(size);
        for (index, raft_port) in raft_ports.iter().enumerate() {
            let node_id = (index + 1).to_string();
            let env = [
                ("KUBOARD_RAFT_NODE_ID", node_id.as_str()),
                ("KUBOARD_RAFT_PEERS", peers.as_str()),
                ("KUBOARD_CLUSTER_SECRET", TEST_CLUSTER_SECRET),
                ("KUBOARD_SSO_CLIENT_SECRET", TEST_SSO_CLIENT_SECRET),
            ];
            let mut replica = Replica {
                child: None,
                port: free_port(),
                raft_port: *raft_port,
                data_dir: data.path().join(format!("replica-{}", index + 1)),
                log_path: logs.path().join(format!("replica-{}.log", index + 1)),
                extra_env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                client: reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .expect("build an HTTP client"),
            };
            replica.spawn();
            replicas.push(replica);
        }
        Group {
            replicas,
            _data: data,
            logs,
        }
    }

    /// Indexes of the replicas that are running.
    pub fn running(&self) -> Vec<usize> {
        (0..self.replicas.len())
            .filter(|index| self.replicas[*index].child.is_some())
            .collect()
    }

    /// Wait until every running replica is ready and all agree on one leader among the members;
    /// returns the leader's index in `replicas` (member id - 1).
    pub async fn wait_for_leader(&mut self, token: &str, timeout: Duration) -> usize {
        let started = Instant::now();
        loop {
            let mut leaders = Vec::new();
            for index in self.running() {
                let (code, status) = self.replicas[index].get_json("/kuboard-api/system/status", token).await;
                if code == 200 && status["healthy"] == true {
                    leaders.push(status["leader"].as_u64());
                }
            }
            let all_answered = leaders.len() == self.running().len();
            if all_answered {
                if let Some(Some(leader)) = leaders.first().copied() {
                    if leaders.iter().all(|other| *other == Some(leader)) {
                        return (leader - 1) as usize;
                    }
                }
            }
            if started.elapsed() > timeout {
                panic!(
                    "no common leader within {timeout:?} (seen {leaders:?}); logs:\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait until every running replica's `/readyz` answers 200.
    pub async fn wait_all_ready(&mut self, timeout: Duration) {
        for index in self.running() {
            self.replicas[index].wait_ready(timeout).await;
        }
    }

    pub fn logs(&self) -> String {
        self.replicas
            .iter()
            .enumerate()
            .map(|(index, replica)| format!("===== replica {} =====\n{}", index + 1, replica.log()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn first_running(&self) -> usize {
        self.replicas
            .iter()
            .position(|r| r.child.is_some())
            .expect("a running replica")
    }
}

// ---- Helpers for the external-etcd and snapshot tests (t30, t35). ----

impl Replica {
    /// The exit status if the replica has stopped by itself, `None` while it runs.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|child| child.try_wait().expect("poll child status"))
    }

    /// Stop the replica with SIGTERM, asserting a clean exit within 10 seconds.
    pub fn stop(&mut self) {
        let (status, _) = self.terminate(Duration::from_secs(10));
        assert!(status.success(), "replica exited with {status}; log:\n{}", self.log());
    }

    /// GET `path` without credentials: the status code and the JSON body (or null).
    pub async fn get_anonymous(&self, path: &str) -> (u16, Value) {
        let response = self.client.get(self.url(path)).send().await.expect("send GET request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Wait until `/readyz` answers 200, returning how long it took, or panic with the log.
    pub async fn wait_ready_within(&mut self, timeout: Duration) -> Duration {
        self.wait_for_200("/readyz", "ready", timeout).await
    }

    /// Log in as admin with the default password and change it to `new_password`; returns a token
    /// of a session made with the new password.
    pub async fn change_admin_password(&self, new_password: &str) -> String {
        let token = self.login_token("admin", ADMIN_PASSWORD).await;
        let (status, body) = self
            .post_json(
                "/kuboard-api/auth/password",
                &token,
                &serde_json::json!({ "current_password": ADMIN_PASSWORD, "new_password": new_password }),
            )
            .await;
        assert_eq!(status, 200, "password change: {body}");
        self.login_token("admin", new_password).await
    }
}

/// Files of a test PKI: a CA, a server certificate for 127.0.0.1 and a client certificate whose
/// common name is no etcd user (so etcd needs the password as well).
pub struct TestPki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

pub fn make_test_pki(directory: &Path) -> TestPki {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };

    let ca_key = KeyPair::generate().expect("generate the CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.distinguished_name = DistinguishedName::new();
    ca_params.distinguished_name.push(DnType::CommonName, "kuboard test CA");
    let ca = ca_params.self_signed(&ca_key).expect("self-sign the CA");

    let server_key = KeyPair::generate().expect("generate the server key");
    let mut server_params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).expect("server parameters");
    server_params.distinguished_name.push(DnType::CommonName, "etcd");
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let server = server_params
        .signed_by(&server_key, &ca, &ca_key)
        .expect("sign the server certificate");

    let client_key = KeyPair::generate().expect("generate the client key");
    let mut client_params = CertificateParams::new(Vec::<String>::new()).expect("client parameters");
    client_params
        .distinguished_name
        .push(DnType::CommonName, "kuboard-client");
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = client_params
        .signed_by(&client_key, &ca, &ca_key)
        .expect("sign the client certificate");

    let write = |name: &str, pem: String| {
        let path = directory.join(name);
        std::fs::write(&path, pem).expect("write a PEM file");
        path
    };
    TestPki {
        ca: write("ca.pem", ca.pem()),
        server_cert: write("server.pem", server.pem()),
        server_key: write("server-key.pem", server_key.serialize_pem()),
        client_cert: write("client.pem", client.pem()),
        client_key: write("client-key.pem", client_key.serialize_pem()),
    }
}

/// Every key-value of an etcd (whole keyspace) as (key, value, create_revision, mod_revision,
/// version, lease), for byte-for-byte comparisons.
pub type EtcdEntry = (Vec<u8>, Vec<u8>, i64, i64, i64, i64);

pub async fn etcd_entries(client: &mut etcd_client::Client, prefix: &[u8]) -> Vec<EtcdEntry> {
    let options = if prefix.is_empty() {
        etcd_client::GetOptions::new().with_range(vec![0])
    } else {
        etcd_client::GetOptions::new().with_prefix()
    };
    let key = if prefix.is_empty() { vec![0] } else { prefix.to_vec() };
    let response = client.get(key, Some(options)).await.expect("read etcd keys");
    response
        .kvs()
        .iter()
        .map(|kv| {
            (
                kv.key().to_vec(),
                kv.value().to_vec(),
                kv.create_revision(),
                kv.mod_revision(),
                kv.version(),
                kv.lease(),
            )
        })
        .collect()
}

// ---- Helpers for the etcd v3 API tests (t45). ----

impl Group {
    /// Start `size` replicas like [`Group::start`], each also given the settings `extra_env(index)`
    /// returns (index from 0), e.g. its own `KUBOARD_ETCD_API_PORT`.
    pub fn start_with_env(size: usize, extra_env: &dyn Fn(usize) -> Vec<(String, String)>) -> Group {
        let data = tempfile::tempdir().expect("create data root");
        let logs = tempfile::tempdir().expect("create log dir");
        let raft_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let peers = raft_ports
            .iter()
            .enumerate()
            .map(|(index, port)| format!("{}=127.0.0.1:{}", index + 1, port))
            .collect::<Vec<_>>()
            .join(",");
        let mut replicas = Vec::with_capacity(size);
        for (index, raft_port) in raft_ports.iter().enumerate() {
            let mut env = vec![
                ("KUBOARD_RAFT_NODE_ID".to_string(), (index + 1).to_string()),
                ("KUBOARD_RAFT_PEERS".to_string(), peers.clone()),
                ("KUBOARD_CLUSTER_SECRET".to_string(), TEST_CLUSTER_SECRET.to_string()),
                (
                    "KUBOARD_SSO_CLIENT_SECRET".to_string(),
                    TEST_SSO_CLIENT_SECRET.to_string(),
                ),
            ];
            env.extend(extra_env(index));
            let mut replica = Replica {
                child: None,
                port: free_port(),
                raft_port: *raft_port,
                data_dir: data.path().join(format!("replica-{}", index + 1)),
                log_path: logs.path().join(format!("replica-{}.log", index + 1)),
                extra_env: env,
                client: reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .expect("build an HTTP client"),
            };
            replica.spawn();
            replicas.push(replica);
        }
        Group {
            replicas,
            _data: data,
            logs,
        }
    }
}

// ---- Helpers for the membership tests (t25). ----

impl Group {
    /// The group's `KUBOARD_RAFT_PEERS` as its replicas were started with it (ids 1..=n).
    pub fn peer_list(&self) -> String {
        self.replicas
            .iter()
            .enumerate()
            .map(|(index, replica)| format!("{}=127.0.0.1:{}", index + 1, replica.raft_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Start one more replica, member `node_id` (the next index + 1) on `raft_port`, with
    /// `KUBOARD_RAFT_PEERS=peers` and the group's cluster secret; returns its index in `replicas`.
    pub fn start_extra_member(&mut self, raft_port: u16, peers: &str) -> usize {
        let index = self.replicas.len();
        let node_id = (index + 1).to_string();
        let env = [
            ("KUBOARD_RAFT_NODE_ID", node_id.as_str()),
            ("KUBOARD_RAFT_PEERS", peers),
            ("KUBOARD_CLUSTER_SECRET", TEST_CLUSTER_SECRET),
            ("KUBOARD_SSO_CLIENT_SECRET", TEST_SSO_CLIENT_SECRET),
        ];
        let data_dir = self
            .replicas
            .first()
            .and_then(|first| first.data_dir.parent())
            .expect("the group has a data root")
            .join(format!("replica-{}", index + 1));
        let mut replica = Replica {
            child: None,
            port: free_port(),
            raft_port,
            data_dir,
            log_path: self.logs.path().join(format!("replica-{}.log", index + 1)),
            extra_env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("build an HTTP client"),
        };
        replica.spawn();
        self.replicas.push(replica);
        index
    }
}

impl Replica {
    /// Delete everything in the data dir, as a lost disk would; the replica must be stopped.
    pub fn wipe_data(&self) {
        assert!(self.child.is_none(), "wipe of a running replica's data dir");
        std::fs::remove_dir_all(&self.data_dir).expect("remove the data dir");
    }
}

// ---- kubectl (t60, t84). ----

pub const KUBECTL: &str = "/usr/bin/kubectl";

/// Runs the machine's kubectl with `kubeconfig`, a cache in `home`, a 20 s request timeout and
/// `options` (e.g. `--server`) before `args`, feeding it `stdin`; returns its exit code, stdout and
/// stderr. Fails the test when kubectl is missing or runs over 40 s.
pub async fn kubectl(
    home: &Path,
    kubeconfig: &Path,
    options: &[&std::ffi::OsStr],
    args: &[&str],
    stdin: Option<&str>,
) -> (i32, String, String) {
    use tokio::io::AsyncWriteExt as _;
    assert!(
        Path::new(KUBECTL).exists(),
        "{KUBECTL} is needed by this test; install kubectl"
    );
    let mut command = tokio::process::Command::new(KUBECTL);
    command
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(home.join("cache"))
        .arg("--request-timeout=20s")
        .args(options)
        .args(args)
        .env("HOME", home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("kubectl starts");
    let mut input = child.stdin.take().expect("piped");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.expect("kubectl reads stdin");
    }
    drop(input);
    let output = tokio::time::timeout(Duration::from_secs(40), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("kubectl {args:?} finishes within 40 s"))
        .expect("kubectl runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Resident memory of process `pid`, in KiB.
pub fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the /proc status is readable");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS is present")
}
