//! The agent tunnel with real processes: a `kuboard serve` replica, `kuboard agent` as its own
//! process, and a fake apiserver whose address only the agent is given. Requests through the
//! replica's `/k8s-api/` proxy reach the cluster through the tunnel (get, create, watch, logs);
//! a killed agent's tunnel comes back when it restarts; a rotated token closes the old tunnel and
//! refuses the old token; garbage, HTTP, oversize frames, a wrong token, silent clients and a
//! flood of 1,000 half-open connections on the agent port are refused, counted, and leave the live
//! tunnel serving.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, kuboard_binary, vm_rss_kib, Replica};
use kuboard_testkit::{certs, resources, Credential, FakeCluster, FakeClusterOptions, PolicyRule, Rbac, StateConfig};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

const NEW_ADMIN_PASSWORD: &str = "t70-Agent-Passw0rd";
const CLUSTER: &str = "edge";

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_test_writer()
        .try_init();
}

/// One apiserver with Kuboard's administrators granted everything, and a pod whose log ends after
/// three followed lines.
async fn start_fake() -> FakeCluster {
    start_fake_instances(1).await
}

async fn start_fake_instances(instances: usize) -> FakeCluster {
    let state = StateConfig {
        log_follow_interval: Duration::from_millis(50),
        log_follow_max_lines: 3,
        ..StateConfig::default()
    };
    let options = FakeClusterOptions {
        state,
        instances,
        ..FakeClusterOptions::default()
    };
    let cluster = FakeCluster::start_with(options).await.expect("the fake cluster starts");
    let mut rbac = Rbac::default();
    rbac.rules.push(PolicyRule::admin_group("kuboard:administrators"));
    cluster.state.set_rbac(rbac);
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "shell", "namespace": "default"},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]}});
    cluster.state.create_object(pod).expect("the pod is created");
    cluster
}

/// `kuboard agent` as a child process, killed when dropped.
struct Agent {
    child: Child,
    log_path: PathBuf,
}

impl Agent {
    fn start(kubeconfig: &Path, endpoints: &str, token: &str, log_path: &Path) -> Agent {
        Agent::start_with(kubeconfig, endpoints, token, log_path, &[])
    }

    fn start_with(kubeconfig: &Path, endpoints: &str, token: &str, log_path: &Path, extra: &[(&str, &str)]) -> Agent {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .expect("open the agent log");
        let child = Command::new(kuboard_binary())
            .arg("agent")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KUBOARD_AGENT_ENDPOINT", endpoints)
            .env("KUBOARD_AGENT_CLUSTER", CLUSTER)
            .env("KUBOARD_AGENT_TOKEN", token)
            .envs(extra.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect("kuboard agent starts");
        Agent {
            child,
            log_path: log_path.to_path_buf(),
        }
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    async fn wait_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "the agent logs {needle:?} within {timeout:?}; its log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
    }
}

async fn send(
    replica: &Replica,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    send_at(&replica.client, &replica.url(path), method, token, body).await
}

async fn send_at(
    client: &reqwest::Client,
    url: &str,
    method: reqwest::Method,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut builder = client.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        builder = builder.json(body);
    }
    match builder.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
        }
        Err(error) => (0, Value::String(error.to_string())),
    }
}

const PODS: &str = "/k8s-api/edge/api/v1/namespaces/default/pods";

/// Waits until a pod list through the proxy answers `wanted` (200: the tunnel works; anything
/// else: it does not); returns how long it took.
async fn wait_proxy(replica: &Replica, token: &str, working: bool, timeout: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (status, body) = send(replica, reqwest::Method::GET, PODS, token, None).await;
        if (status == 200) == working {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < timeout,
            "the proxy {} within {timeout:?}; last answer {status} {body}; replica log:\n{}",
            if working { "works" } else { "stops working" },
            replica.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn metrics(replica: &Replica) -> String {
    replica
        .client
        .get(replica.url("/metrics"))
        .send()
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics body")
}

fn metric_value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A replica with an agent cluster, and its agent connected and serving.
struct Setup {
    cluster: FakeCluster,
    replica: Replica,
    token: String,
    agent_port: u16,
    /// The agent's `KUBOARD_AGENT_ENDPOINT`.
    endpoints: String,
    agent_token: String,
    agent: Agent,
    kubeconfig: PathBuf,
    /// The group CA the agent pins, when it runs over TLS.
    server_ca: Option<String>,
    dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    setup_with(&[], false).await
}

/// The token and the group CA from an answer of the manifest route, as the Deployment reads them
/// from its secret.
fn manifest_secret(made: &Value) -> (String, String) {
    let manifest = made["manifest"].as_str().expect("the manifest");
    let secret: Value = manifest
        .split("\n---\n")
        .map(|part| serde_norway::from_str::<Value>(part).expect("YAML"))
        .find(|document| document["kind"] == "Secret")
        .expect("a secret in the manifest");
    let field = |name: &str| {
        secret["stringData"][name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} in the secret: {secret}"))
            .to_string()
    };
    (field("token"), field("server-ca.pem"))
}

/// Makes the agent manifest for `endpoints` (`host:port,…`; a new token: the previous one stops
/// working) and returns its token and the group CA it pins.
async fn manifest_token_and_ca(replica: &Replica, token: &str, endpoints: &str) -> (String, String) {
    let (status, made) = send(
        replica,
        reqwest::Method::POST,
        "/kuboard-api/clusters/edge/agent-manifest",
        token,
        Some(&json!({"endpoints": endpoints.split(',').collect::<Vec<_>>()})),
    )
    .await;
    assert_eq!(status, 200, "{made}");
    manifest_secret(&made)
}

/// `setup` with more settings for the replica; with `tls`, the agent runs as the manifest makes
/// it: with the manifest's token and `KUBOARD_AGENT_SERVER_CA`.
async fn setup_with(replica_env: &[(&str, &str)], tls: bool) -> Setup {
    let cluster = start_fake().await;
    let dir = tempfile::tempdir().expect("a test dir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("the data dir");
    let agent_port = free_port();
    let agent_port_text = agent_port.to_string();
    let mut env = vec![("KUBOARD_AGENT_SERVER_TCP_PORT", agent_port_text.as_str())];
    env.extend_from_slice(replica_env);
    let mut replica = Replica::start_with(&data, dir.path(), &env);
    replica.wait_ready(Duration::from_secs(30)).await;
    let token = replica.change_admin_password(NEW_ADMIN_PASSWORD).await;

    // Only the agent is given the apiserver: its kubeconfig is a file the replica never sees.
    let kubeconfig = dir.path().join("agent.kubeconfig");
    std::fs::write(
        &kubeconfig,
        certs::kubeconfig(
            &cluster.urls().join(","),
            &cluster.ca.cert_pem,
            &Credential::ClientCertificate(cluster.admin.clone()),
            None,
        ),
    )
    .expect("write the agent's kubeconfig");

    let (status, created) = send(
        &replica,
        reqwest::Method::POST,
        "/kuboard-api/agent-clusters",
        &token,
        Some(&json!({"name": CLUSTER, "description": "behind NAT"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["cluster"]["kind"], "agent", "{created}");
    assert_eq!(created["cluster"]["endpoints"], json!([]), "{created}");
    let agent_token = created["agent_token"].as_str().expect("the token, once").to_string();
    assert!(agent_token.len() >= 43, "a 256-bit token");
    let (status, again) = send(
        &replica,
        reqwest::Method::POST,
        "/kuboard-api/agent-clusters",
        &token,
        Some(&json!({"name": CLUSTER})),
    )
    .await;
    assert_eq!(status, 409, "the same name twice: {again}");

    // Before any agent connects, the cluster is listed but cannot be proxied.
    let (status, body) = send(&replica, reqwest::Method::GET, PODS, &token, None).await;
    assert_eq!(status, 503, "no agent yet: {body}");
    let (status, body) = send(
        &replica,
        reqwest::Method::GET,
        "/kuboard-api/clusters/edge/endpoints",
        &token,
        None,
    )
    .await;
    assert_eq!(
        (status, &body["endpoints"]),
        (200, &json!([])),
        "no apiserver yet: {body}"
    );

    let endpoints = format!("127.0.0.1:{agent_port}");
    let (agent_token, server_ca) = if tls {
        let (manifest_token, server_ca) = manifest_token_and_ca(&replica, &token, &endpoints).await;
        (manifest_token, Some(server_ca))
    } else {
        (agent_token, None)
    };
    let agent_env: Vec<(&str, &str)> = server_ca
        .iter()
        .map(|ca| ("KUBOARD_AGENT_SERVER_CA", ca.as_str()))
        .collect();
    let agent = Agent::start_with(
        &kubeconfig,
        &endpoints,
        &agent_token,
        &dir.path().join("agent-1.log"),
        &agent_env,
    );
    let took = wait_proxy(&replica, &token, true, Duration::from_secs(20)).await;
    tracing::info!(ms = took.as_millis() as u64, "first tunnel up and serving");
    agent.wait_log("tunnel up", Duration::from_secs(5)).await;
    Setup {
        cluster,
        replica,
        token,
        agent_port,
        endpoints,
        agent_token,
        agent,
        kubeconfig,
        server_ca,
        dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_behind_an_agent_is_served_through_the_proxy() {
    init_tracing();
    let Setup {
        cluster,
        mut replica,
        token,
        endpoints,
        agent_token,
        mut agent,
        kubeconfig,
        dir,
        ..
    } = setup().await;

    let (status, view) = send(
        &replica,
        reqwest::Method::GET,
        "/kuboard-api/clusters/edge",
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        view["endpoints"],
        json!(cluster.urls()),
        "the apiservers the agent reported: {view}"
    );
    assert_eq!(view["has_client_certificate"], true, "{view}");

    tracing::info!("phase: get, create, watch and logs through the tunnel");
    let (status, pods) = send(&replica, reqwest::Method::GET, PODS, &token, None).await;
    assert_eq!(status, 200, "{pods}");
    assert_eq!(pods["items"][0]["metadata"]["name"], "shell", "{pods}");
    let configmaps = "/k8s-api/edge/api/v1/namespaces/default/configmaps";
    let (status, list) = send(&replica, reqwest::Method::GET, configmaps, &token, None).await;
    assert_eq!(status, 200, "{list}");
    let version = list["metadata"]["resourceVersion"]
        .as_str()
        .expect("a version")
        .to_string();
    let mut watch = replica
        .client
        .get(replica.url(&format!("{configmaps}?watch=true&resourceVersion={version}")))
        .bearer_auth(&token)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("the watch opens");
    assert_eq!(watch.status().as_u16(), 200);
    let (status, created) = send(
        &replica,
        reqwest::Method::POST,
        configmaps,
        &token,
        Some(&json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "through-the-agent"}, "data": {"k": "v"}})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains("\"ADDED\"") || !seen.contains("through-the-agent") {
        match tokio::time::timeout_at(deadline, watch.chunk()).await {
            Ok(Ok(Some(bytes))) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            other => panic!("the watch delivers the creation within 10 s: {other:?}; seen {seen}"),
        }
    }
    assert!(
        cluster
            .state
            .get(
                resources::find("", "v1", "configmaps").expect("configmaps are served"),
                Some("default"),
                "through-the-agent"
            )
            .is_ok(),
        "the object is in the cluster behind the agent"
    );
    let logs = replica
        .client
        .get(replica.url(&format!("{PODS}/shell/log?follow=true")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("logs answer");
    assert_eq!(logs.status().as_u16(), 200);
    let text = tokio::time::timeout(Duration::from_secs(10), logs.text())
        .await
        .expect("a followed log ends (the fake ends it after 3 lines)")
        .expect("the log body");
    assert!(text.lines().count() >= 3, "log lines through the tunnel: {text:?}");
    drop(watch);

    tracing::info!("phase: the agent killed with SIGKILL and restarted");
    agent.kill9();
    let lost = wait_proxy(&replica, &token, false, Duration::from_secs(15)).await;
    tracing::info!(ms = lost.as_millis() as u64, "the replica noticed the dead tunnel");
    let restarted = Instant::now();
    let mut agent = Agent::start(&kubeconfig, &endpoints, &agent_token, &dir.path().join("agent-2.log"));
    let back = wait_proxy(&replica, &token, true, Duration::from_secs(15)).await;
    tracing::info!(
        ms = back.as_millis() as u64,
        since_restart_ms = restarted.elapsed().as_millis() as u64,
        "serving again through the restarted agent"
    );
    assert!(
        back < Duration::from_secs(10),
        "the tunnel is back within 10 s, took {back:?}"
    );

    tracing::info!("phase: the replica restarted under the agent: the agent redials");
    replica.kill9();
    replica.restart();
    replica.wait_ready(Duration::from_secs(30)).await;
    let back = wait_proxy(&replica, &token, true, Duration::from_secs(20)).await;
    tracing::info!(
        ms = back.as_millis() as u64,
        "serving again after the replica's restart"
    );

    tracing::info!("phase: the token rotated: the old tunnel closes and the old token is refused");
    let (status, rotated) = send(
        &replica,
        reqwest::Method::POST,
        "/kuboard-api/clusters/edge/agent-token",
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let new_token = rotated["agent_token"].as_str().expect("a new token").to_string();
    assert_ne!(new_token, agent_token);
    let closed = wait_proxy(&replica, &token, false, Duration::from_secs(10)).await;
    tracing::info!(ms = closed.as_millis() as u64, "the tunnel of the old token closed");
    agent.wait_log("wrong agent token", Duration::from_secs(20)).await;
    agent.kill9();
    let _agent = Agent::start(&kubeconfig, &endpoints, &new_token, &dir.path().join("agent-3.log"));
    wait_proxy(&replica, &token, true, Duration::from_secs(15)).await;

    let (status, not_agent) = send(
        &replica,
        reqwest::Method::PUT,
        "/kuboard-api/clusters/edge",
        &token,
        Some(&json!({"endpoints": ["https://10.0.0.1:6443"]})),
    )
    .await;
    assert_eq!(status, 422, "an agent cluster's endpoints are its agent's: {not_agent}");

    let log = replica.log();
    for secret in [&agent_token, &new_token] {
        assert!(!log.contains(secret.as_str()), "an agent token in the replica's log");
    }
    let metrics = metrics(&replica).await;
    assert_eq!(
        metric_value(&metrics, "kuboard_agent_tunnels{cluster=\"edge\"}"),
        1.0,
        "{metrics}"
    );
}

/// Writes `bytes` to the agent port and expects the connection closed without one byte answered.
async fn expect_closed_silently(port: u16, bytes: &[u8], within: Duration) {
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the agent port accepts");
    let _ = socket.write_all(bytes).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(within, socket.read_to_end(&mut answer)).await;
    match read {
        Ok(Ok(_)) | Ok(Err(_)) => assert!(
            answer.is_empty(),
            "nothing is answered to {:?}: got {:?}",
            String::from_utf8_lossy(bytes),
            String::from_utf8_lossy(&answer)
        ),
        Err(_) => panic!(
            "the connection sending {:?} is closed within {within:?}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_on_the_agent_port_is_refused_counted_and_harmless() {
    init_tracing();
    let setup = setup().await;
    let (replica, token, agent_port) = (&setup.replica, &setup.token, setup.agent_port);
    let (_, before) = send(replica, reqwest::Method::GET, "/kuboard-api/clusters/edge", token, None).await;

    let cases: &[(&str, &[u8], &str)] = &[
        (
            "HTTP, as curl sends it",
            b"GET / HTTP/1.1\r\nHost: kuboard\r\nUser-Agent: curl/8\r\n\r\n",
            "oversize_frame",
        ),
        (
            "garbage in a small frame",
            b"\x00\x00\x00\x08\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8",
            "malformed",
        ),
        ("a frame over the limit", b"\x00\x10\x00\x00", "oversize_frame"),
        ("an empty frame", b"\x00\x00\x00\x00", "malformed"),
    ];
    for (name, bytes, reason) in cases {
        let series = format!("kuboard_agent_handshake_failures_total{{reason=\"{reason}\"}}");
        let counted_before = metric_value(&metrics(replica).await, &series);
        tracing::info!(name, "bad input");
        expect_closed_silently(agent_port, bytes, Duration::from_secs(3)).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while metric_value(&metrics(replica).await, &series) <= counted_before {
            assert!(Instant::now() < deadline, "{name} is counted as {reason}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    tracing::info!("a client that says nothing is closed at the handshake deadline");
    let started = Instant::now();
    expect_closed_silently(agent_port, b"", Duration::from_secs(10)).await;
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "closed at the deadline, not before"
    );

    tracing::info!("a wrong token is refused with a verdict and opens no tunnel");
    let wrong = Agent::start(
        &setup.kubeconfig,
        &setup.endpoints,
        "not-the-token-of-this-cluster",
        &setup.dir.path().join("wrong.log"),
    );
    wrong
        .wait_log("unknown cluster or wrong agent token", Duration::from_secs(10))
        .await;
    drop(wrong);
    let counted = metric_value(
        &metrics(replica).await,
        "kuboard_agent_handshake_failures_total{reason=\"wrong_token\"}",
    );
    assert!(counted >= 1.0, "wrong tokens are counted");

    tracing::info!("a peer hello with a wrong proof of the group key is refused and counted");
    let peer_proof = "kuboard_agent_handshake_failures_total{reason=\"peer_proof\"}";
    let counted_before = metric_value(&metrics(replica).await, peer_proof);
    let mut peer = tokio::net::TcpStream::connect(("127.0.0.1", agent_port))
        .await
        .expect("connect");
    let hello = ("kuboard-peer".to_string(), 1u32, "9".to_string(), "ab".repeat(32));
    let frame = kuboard_raft::framing::encode_frame(&hello, 4096).expect("a frame");
    peer.write_all(&frame).await.expect("the hello is sent");
    let challenge: (String, String, String) = kuboard_raft::framing::read_record(&mut peer, 4096)
        .await
        .expect("the holder answers a peer hello with its challenge");
    assert_eq!(challenge.0, "1", "the holder names itself");
    let dial = ("00".repeat(32), "edge".to_string(), "127.0.0.1:1".to_string());
    let frame = kuboard_raft::framing::encode_frame(&dial, 4096).expect("a frame");
    peer.write_all(&frame).await.expect("the dial is sent");
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), peer.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "closed without an answer: {read:?} {rest:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric_value(&metrics(replica).await, peer_proof) <= counted_before {
        assert!(Instant::now() < deadline, "the wrong proof is counted as peer_proof");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    const HALF_OPEN: usize = 1000;
    raise_open_file_limit(HALF_OPEN as u64 + 1024);
    let rss_before = vm_rss_kib(replica.pid());
    tracing::info!("{HALF_OPEN} half-open connections: bounded, and the live tunnel serves on");
    let mut idle = Vec::new();
    for _ in 0..HALF_OPEN {
        match tokio::net::TcpStream::connect(("127.0.0.1", agent_port)).await {
            Ok(socket) => idle.push(socket),
            Err(error) => panic!("connection {} of {HALF_OPEN}: {error}", idle.len() + 1),
        }
    }
    let rss_during = vm_rss_kib(replica.pid());
    println!(
        "{HALF_OPEN} half-open connections on the agent port: replica RSS {rss_before} KiB before, {rss_during} KiB with them open"
    );
    assert!(
        rss_during < rss_before + 64 * 1024,
        "the replica's memory stays bounded: {rss_before} KiB -> {rss_during} KiB"
    );
    let started = Instant::now();
    for _ in 0..20 {
        let (status, body) = send(replica, reqwest::Method::GET, PODS, token, None).await;
        assert_eq!(
            status, 200,
            "a request through the live tunnel during the flood: {body}"
        );
    }
    tracing::info!(
        ms = started.elapsed().as_millis() as u64,
        "20 requests during the flood"
    );
    let metrics_now = metrics(replica).await;
    assert!(
        metric_value(
            &metrics_now,
            "kuboard_agent_handshake_failures_total{reason=\"too_many_handshakes\"}"
        ) >= 1.0,
        "connections beyond the handshake limit are refused at once: {metrics_now}"
    );
    drop(idle);

    let (_, after) = send(replica, reqwest::Method::GET, "/kuboard-api/clusters/edge", token, None).await;
    assert_eq!(before, after, "bad input changed the cluster");
    assert_eq!(
        metric_value(&metrics(replica).await, "kuboard_agent_tunnels{cluster=\"edge\"}"),
        1.0
    );
}

/// Raises this process's soft limit of open files to `wanted` (or the hard limit), so that a
/// flood of connections is not cut short by the default of 1,024.
fn raise_open_file_limit(wanted: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < wanted {
            limit.rlim_cur = wanted.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Three replicas (plain HTTP), each with its agent port; an agent cluster created and the agent's
/// kubeconfig of the fake cluster written (the agent not started).
struct GroupSetup {
    cluster: FakeCluster,
    agent_ports: [u16; 3],
    group: common::Group,
    token: String,
    agent_token: String,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

async fn group_with_agent_cluster(require_tls: bool) -> GroupSetup {
    let cluster = start_fake().await;
    let agent_ports = [free_port(), free_port(), free_port()];
    let mut group = common::Group::start_with_env(3, &|index| {
        let mut env = vec![(
            "KUBOARD_AGENT_SERVER_TCP_PORT".to_string(),
            agent_ports[index].to_string(),
        )];
        if require_tls {
            env.push(("KUBOARD_AGENT_SERVER_REQUIRE_TLS".to_string(), "true".to_string()));
        }
        env
    });
    group.wait_all_ready(Duration::from_secs(60)).await;
    let token = group.replicas[0].change_admin_password(NEW_ADMIN_PASSWORD).await;
    let (status, created) = send(
        &group.replicas[1],
        reqwest::Method::POST,
        "/kuboard-api/agent-clusters",
        &token,
        Some(&json!({"name": CLUSTER})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let agent_token = created["agent_token"].as_str().expect("a token").to_string();
    let dir = tempfile::tempdir().expect("a test dir");
    let kubeconfig = dir.path().join("agent.kubeconfig");
    let admin = Credential::ClientCertificate(cluster.admin.clone());
    let text = certs::kubeconfig(&cluster.urls().join(","), &cluster.ca.cert_pem, &admin, None);
    std::fs::write(&kubeconfig, text).expect("write the agent's kubeconfig");
    GroupSetup {
        cluster,
        agent_ports,
        group,
        token,
        agent_token,
        dir,
        kubeconfig,
    }
}

/// One agent, three replicas: it holds a tunnel to each, every replica serves the cluster through
/// its own, a killed replica does not disturb the others, and the restarted one has its tunnel back
/// within 5 s of being ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_holds_a_tunnel_to_every_replica() {
    init_tracing();
    let GroupSetup {
        cluster: _cluster,
        agent_ports,
        mut group,
        token,
        agent_token,
        dir,
        kubeconfig,
    } = group_with_agent_cluster(false).await;
    let endpoints = agent_ports
        .iter()
        .map(|port| format!("127.0.0.1:{port}"))
        .collect::<Vec<_>>()
        .join(",");
    let health = format!("127.0.0.1:{}", free_port());
    let agent = Agent::start_with(
        &kubeconfig,
        &endpoints,
        &agent_token,
        &dir.path().join("agent.log"),
        &[("KUBOARD_AGENT_HEALTH_LISTEN", &health)],
    );

    let tunnels = "kuboard_agent_tunnels{cluster=\"edge\"}";
    for replica in &group.replicas {
        wait_proxy(replica, &token, true, Duration::from_secs(20)).await;
        assert_eq!(
            metric_value(&metrics(replica).await, tunnels),
            1.0,
            "one tunnel per replica"
        );
    }
    let health_client = group.replicas[0].client.clone();
    let agent_health = |path: &str| {
        let url = format!("http://{health}{path}");
        let client = health_client.clone();
        async move {
            let response = client.get(url).send().await.expect("the agent's health port answers");
            (response.status().as_u16(), response.text().await.unwrap_or_default())
        }
    };
    assert_eq!(agent_health("/healthz").await.0, 200);
    assert_eq!(agent_health("/readyz").await.0, 200);
    let agent_metrics = agent_health("/metrics").await.1;
    assert_eq!(
        metric_value(&agent_metrics, "kuboard_agent_tunnels_up"),
        3.0,
        "{agent_metrics}"
    );

    tracing::info!("phase: replica 2 killed; the others serve on");
    group.replicas[1].kill9();
    for index in [0, 2] {
        for _ in 0..10 {
            let (status, body) = send(&group.replicas[index], reqwest::Method::GET, PODS, &token, None).await;
            assert_eq!(status, 200, "replica {} with replica 2 down: {body}", index + 1);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while metric_value(&agent_health("/metrics").await.1, "kuboard_agent_tunnels_up") != 2.0 {
        assert!(
            Instant::now() < deadline,
            "the agent counts 2 tunnels up within 15 s of the kill"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The agent's redials of the dead replica back off; let them grow before the restart.
    tokio::time::sleep_until(tokio::time::Instant::now() + Duration::from_secs(4)).await;
    group.replicas[1].restart();
    group.replicas[1].wait_ready(Duration::from_secs(60)).await;
    let ready = Instant::now();
    let deadline = ready + Duration::from_secs(5);
    while metric_value(&metrics(&group.replicas[1]).await, tunnels) < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the restarted replica has its tunnel within 5 s of being ready; agent log:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::info!(
        ms = ready.elapsed().as_millis() as u64,
        "tunnel back after the replica was ready"
    );
    wait_proxy(&group.replicas[1], &token, true, Duration::from_secs(10)).await;
}

/// The replicas holding tunnels of `edge`, as the cluster's API reports them (replica ids).
async fn tunnel_holders(replica: &Replica, token: &str) -> Vec<u64> {
    let (status, view) = send(replica, reqwest::Method::GET, "/kuboard-api/clusters/edge", token, None).await;
    assert_eq!(status, 200, "{view}");
    let mut ids: Vec<u64> = view["agent_tunnels"]
        .as_array()
        .unwrap_or_else(|| panic!("agent_tunnels is a list: {view}"))
        .iter()
        .filter_map(|holder| holder["replica_id"].as_u64())
        .collect();
    ids.sort_unstable();
    ids
}

/// Three replicas; the agent is given only the first two (the third is cut off from it). The third
/// serves the cluster through a peer that holds a tunnel; the cluster's API and the status page
/// say which replicas hold tunnels; a holder killed with SIGKILL leaves the third forwarding
/// through the other holder, and its entry goes when its lease expires. The replicas require TLS
/// of agents (the agent pins the group CA); the peers' plain forwarding is not refused for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_without_a_tunnel_forwards_through_a_peer() {
    init_tracing();
    // Every replica requires TLS of agents; forwarding between replicas is plain TCP on the same
    // port and must still be taken.
    let mut setup = group_with_agent_cluster(true).await;
    let (group, token) = (&mut setup.group, setup.token.as_str());
    let endpoints = format!("127.0.0.1:{},127.0.0.1:{}", setup.agent_ports[0], setup.agent_ports[1]);
    let (agent_token, server_ca) = manifest_token_and_ca(&group.replicas[0], token, &endpoints).await;
    let _agent = Agent::start_with(
        &setup.kubeconfig,
        &endpoints,
        &agent_token,
        &setup.dir.path().join("agent.log"),
        &[("KUBOARD_AGENT_SERVER_CA", server_ca.as_str())],
    );

    for replica in &group.replicas {
        wait_proxy(replica, token, true, Duration::from_secs(20)).await;
    }
    let tunnels = "kuboard_agent_tunnels{cluster=\"edge\"}";
    assert_eq!(metric_value(&metrics(&group.replicas[2]).await, tunnels), 0.0);
    for _ in 0..20 {
        let (status, body) = send(&group.replicas[2], reqwest::Method::GET, PODS, token, None).await;
        assert_eq!(status, 200, "through a peer: {body}");
        assert_eq!(body["items"][0]["metadata"]["name"], "shell", "{body}");
    }
    let forwarded_out = "kuboard_agent_peer_forwards_total{cluster=\"edge\",direction=\"out\",outcome=\"ok\"}";
    let out = metric_value(&metrics(&group.replicas[2]).await, forwarded_out);
    assert!(out >= 1.0, "replica 3 counts its forwarded connections: {out}");
    let forwarded_in = "kuboard_agent_peer_forwards_total{cluster=\"edge\",direction=\"in\",outcome=\"ok\"}";
    let mut into_holders = 0.0;
    for replica in &group.replicas[..2] {
        into_holders += metric_value(&metrics(replica).await, forwarded_in);
    }
    assert_eq!(into_holders, out, "every forwarded connection went into a holder");
    for replica in &group.replicas {
        let refused = "kuboard_agent_handshake_failures_total{reason=\"tls_required\"}";
        assert_eq!(
            metric_value(&metrics(replica).await, refused),
            0.0,
            "peers are not refused for speaking plain TCP"
        );
    }
    let bytes =
        |direction: &str| format!("kuboard_agent_stream_bytes_total{{cluster=\"edge\",direction=\"{direction}\"}}");
    let mut holder_bytes = (0.0, 0.0);
    for replica in &group.replicas[..2] {
        let text = metrics(replica).await;
        holder_bytes.0 += metric_value(&text, &bytes("from_cluster"));
        holder_bytes.1 += metric_value(&text, &bytes("to_cluster"));
    }
    assert!(
        holder_bytes.0 > 0.0 && holder_bytes.1 > 0.0,
        "the holders count the bytes through their tunnels: {holder_bytes:?}"
    );
    let text = metrics(&group.replicas[2]).await;
    assert_eq!(
        metric_value(&text, &bytes("from_cluster")),
        0.0,
        "replica 3 has no tunnel of its own"
    );

    // Which replica holds which tunnel: the same answer from every replica, and on the status page.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut answers = Vec::new();
        for replica in &group.replicas {
            answers.push(tunnel_holders(replica, token).await);
        }
        if answers.iter().all(|ids| ids == &[1, 2]) {
            break;
        }
        assert!(Instant::now() < deadline, "replicas 1 and 2 hold tunnels: {answers:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, system) = group.replicas[2].get_json("/kuboard-api/system/status", token).await;
    assert_eq!(status, 200, "{system}");
    let listed: Vec<(String, u64, u64)> = system["agent_tunnels"]
        .as_array()
        .unwrap_or_else(|| panic!("the status lists tunnels: {system}"))
        .iter()
        .map(|holder| {
            (
                holder["cluster"].as_str().unwrap_or_default().to_string(),
                holder["replica_id"].as_u64().unwrap_or_default(),
                holder["tunnels"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![("edge".to_string(), 1, 1), ("edge".to_string(), 2, 1)],
        "{system}"
    );

    tracing::info!("phase: holder 1 killed; replica 3 forwards through replica 2");
    group.replicas[0].kill9();
    let killed = Instant::now();
    let mut failures = 0;
    for _ in 0..30 {
        let (status, body) = send(&group.replicas[2], reqwest::Method::GET, PODS, token, None).await;
        if status != 200 {
            failures += 1;
            tracing::info!(status, %body, "a request through replica 3 failed right after the kill");
        }
    }
    tracing::info!(
        failures,
        "requests through replica 3 after the kill of holder 1 (30 sent)"
    );
    assert_eq!(failures, 0, "requests through replica 3 go on with holder 1 killed");
    let deadline = killed + Duration::from_secs(25);
    while tunnel_holders(&group.replicas[2], token).await != [2] {
        assert!(
            Instant::now() < deadline,
            "the killed holder's entry goes with its lease"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tracing::info!(
        ms = killed.elapsed().as_millis() as u64,
        "the killed holder's entry expired"
    );
    wait_proxy(&group.replicas[2], token, true, Duration::from_secs(5)).await;
}

const KUBECTL: &str = "/usr/bin/kubectl";
const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx
";

/// A kubeconfig that reaches `edge` through the proxy of the replica on `port` (HTTPS, Kuboard's
/// certificate checked against `ca`) with a Kuboard bearer token.
fn proxy_kubeconfig(home: &Path, port: u16, ca: &Path, token: &str) -> PathBuf {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: edge\n  cluster:\n    server: https://127.0.0.1:{port}/k8s-api/edge\n    certificate-authority: {}\nusers:\n- name: admin\n  user:\n    token: {token}\ncontexts:\n- name: edge\n  context: {{cluster: edge, user: admin, namespace: default}}\ncurrent-context: edge\n",
        ca.display()
    );
    let path = home.join(format!("replica-{port}.kubeconfig"));
    std::fs::write(&path, text).expect("write a kubeconfig");
    path
}

/// kubectl with `kubeconfig`, `stdin` written then closed; bounded to 40 s.
async fn kubectl(home: &Path, kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    use tokio::io::AsyncWriteExt as _;
    assert!(
        Path::new(KUBECTL).exists(),
        "{KUBECTL} is needed by this test (scripts/install-deps.sh installs it)"
    );
    let mut child = kubectl_command(home, kubeconfig, args)
        .stdin(Stdio::piped())
        .spawn()
        .expect("kubectl starts");
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

fn kubectl_command(home: &Path, kubeconfig: &Path, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(KUBECTL);
    command
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(home.join("cache"))
        .arg("--request-timeout=20s")
        .args(args)
        .env_clear()
        .env("HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Waits until `url` answers 200 (a replica over HTTPS being ready).
async fn wait_ok(client: &reqwest::Client, url: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(response) = client.get(url).send().await {
            if response.status() == 200 {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{url} answers 200 within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The Acceptance through the agent with real kubectl: three replicas over HTTPS, one agent with a
/// tunnel to each, a fake cluster of two apiservers that only the agent is given. get, apply,
/// delete, logs -f, exec -i and a watch through the three proxies; a replica killed with SIGKILL
/// while the others serve, its tunnel back within 5 s of it being ready; the apiserver in use
/// stopped: the open watch ends cleanly and requests go on through the other apiserver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_through_three_replicas_via_the_agent() {
    init_tracing();
    let cluster = start_fake_instances(2).await;
    let home = tempfile::tempdir().expect("a kubectl home");
    let pki = common::make_test_pki(home.path());
    let agent_ports = [free_port(), free_port(), free_port()];
    let mut group = common::Group::start_with_env(3, &|index| {
        vec![
            (
                "KUBOARD_AGENT_SERVER_TCP_PORT".to_string(),
                agent_ports[index].to_string(),
            ),
            (
                "KUBOARD_TLS_CERT".to_string(),
                pki.server_cert.to_string_lossy().into_owned(),
            ),
            (
                "KUBOARD_TLS_KEY".to_string(),
                pki.server_key.to_string_lossy().into_owned(),
            ),
        ]
    });
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca).expect("the CA is read")).expect("CA PEM");
    let https = reqwest::Client::builder()
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTPS client");
    let web_ports: Vec<u16> = group.replicas.iter().map(|replica| replica.port).collect();
    let base = |index: usize| format!("https://127.0.0.1:{}", web_ports[index]);
    for index in 0..3 {
        wait_ok(&https, &format!("{}/readyz", base(index)), Duration::from_secs(60)).await;
    }
    let login = |password: &'static str| {
        let https = https.clone();
        let url = format!("{}/kuboard-api/auth/login", base(0));
        async move {
            let (status, body) = send_at(
                &https,
                &url,
                reqwest::Method::POST,
                "",
                Some(&json!({"username": "admin", "password": password})),
            )
            .await;
            assert_eq!(status, 200, "login: {body}");
            body["token"].as_str().expect("a session token").to_string()
        }
    };
    let first = login(common::ADMIN_PASSWORD).await;
    let (status, body) = send_at(
        &https,
        &format!("{}/kuboard-api/auth/password", base(0)),
        reqwest::Method::POST,
        &first,
        Some(&json!({"current_password": common::ADMIN_PASSWORD, "new_password": NEW_ADMIN_PASSWORD})),
    )
    .await;
    assert_eq!(status, 200, "password change: {body}");
    let token = login(NEW_ADMIN_PASSWORD).await;
    let (status, created) = send_at(
        &https,
        &format!("{}/kuboard-api/agent-clusters", base(1)),
        reqwest::Method::POST,
        &token,
        Some(&json!({"name": CLUSTER})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let agent_kubeconfig = home.path().join("agent.kubeconfig");
    let admin = Credential::ClientCertificate(cluster.admin.clone());
    let text = certs::kubeconfig(&cluster.urls().join(","), &cluster.ca.cert_pem, &admin, None);
    std::fs::write(&agent_kubeconfig, text).expect("write the agent's kubeconfig");
    let endpoints = agent_ports
        .iter()
        .map(|port| format!("127.0.0.1:{port}"))
        .collect::<Vec<_>>()
        .join(",");
    // As the generated Deployment runs it: the manifest's token, TLS pinned to the group CA (the
    // web ports serve the operator's certificate; the agent ports the group's).
    let (status, made) = send_at(
        &https,
        &format!("{}/kuboard-api/clusters/edge/agent-manifest", base(2)),
        reqwest::Method::POST,
        &token,
        Some(&json!({"endpoints": endpoints.split(',').collect::<Vec<_>>()})),
    )
    .await;
    assert_eq!(status, 200, "{made}");
    let (agent_token, server_ca) = manifest_secret(&made);
    let agent = Agent::start_with(
        &agent_kubeconfig,
        &endpoints,
        &agent_token,
        &home.path().join("agent.log"),
        &[("KUBOARD_AGENT_SERVER_CA", &server_ca)],
    );
    let configs: Vec<PathBuf> = group
        .replicas
        .iter()
        .map(|replica| proxy_kubeconfig(home.path(), replica.port, &pki.ca, &token))
        .collect();
    let pods = |index: usize| format!("{}{PODS}", base(index));
    for index in 0..3 {
        let deadline = Instant::now() + Duration::from_secs(20);
        while send_at(&https, &pods(index), reqwest::Method::GET, &token, None)
            .await
            .0
            != 200
        {
            assert!(
                Instant::now() < deadline,
                "replica {} serves edge within 20 s; agent log:\n{}",
                index + 1,
                agent.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    tracing::info!("phase: kubectl get, apply, delete through the three replicas");
    for config in &configs {
        let (code, out, err) = kubectl(home.path(), config, &["get", "pods"], None).await;
        assert_eq!(code, 0, "{err}");
        assert!(out.starts_with("NAME") && out.contains("shell"), "{out}");
    }
    let manifest = home.path().join("deployment.yaml");
    std::fs::write(&manifest, DEPLOYMENT).expect("written");
    let manifest_arg = manifest.to_str().expect("UTF-8 path");
    let (code, out, err) = kubectl(home.path(), &configs[2], &["apply", "-f", manifest_arg], None).await;
    assert_eq!((code, out.trim()), (0, "deployment.apps/web created"), "{err}");
    let deployments = resources::find("apps", "v1", "deployments").expect("served");
    let stored = cluster
        .state
        .get(deployments, Some("default"), "web")
        .expect("stored in the cluster");
    assert_eq!(stored["spec"]["replicas"], 2);
    let (code, out, err) = kubectl(home.path(), &configs[0], &["get", "deploy", "web"], None).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("web"), "{out}");
    let (code, out, err) = kubectl(home.path(), &configs[1], &["delete", "-f", manifest_arg], None).await;
    assert_eq!((code, out.trim()), (0, "deployment.apps \"web\" deleted"), "{err}");
    assert!(cluster.state.get(deployments, Some("default"), "web").is_err());

    tracing::info!("phase: logs -f and exec -i");
    let (code, out, err) = kubectl(home.path(), &configs[2], &["logs", "-f", "shell", "--tail=1"], None).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines().count() >= 4,
        "the last line and three followed ones: {out:?}"
    );
    let (code, out, err) = kubectl(
        home.path(),
        &configs[0],
        &["exec", "-i", "shell", "--", "sh"],
        Some("hostname\necho through-the-agent\nexit 4\n"),
    )
    .await;
    assert_eq!((code, out.as_str()), (4, "shell\nthrough-the-agent\n"), "{err}");

    tracing::info!("phase: a watch through replica 3 sees a config map made through replica 2");
    let mut watch = kubectl_command(
        home.path(),
        &configs[2],
        &["get", "configmaps", "--watch", "-o", "name"],
    )
    .spawn()
    .expect("kubectl watch starts");
    let mut watch_lines = tokio::io::BufReader::new(watch.stdout.take().expect("piped")).lines();
    // The watch is open once the list before it has been served; a config map made before that
    // is seen in the list, after it in the watch: either way the line comes.
    let (code, out, err) = kubectl(
        home.path(),
        &configs[1],
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: seen-by-watch, namespace: default}\ndata: {a: b}\n"),
    )
    .await;
    assert_eq!((code, out.trim()), (0, "configmap/seen-by-watch created"), "{err}");
    let seen = tokio::time::timeout(Duration::from_secs(15), async {
        while let Ok(Some(line)) = watch_lines.next_line().await {
            if line.trim() == "configmap/seen-by-watch" {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(seen, Ok(true), "the watch prints the config map");

    tracing::info!("phase: replica 1 killed with SIGKILL; requests through the others go on");
    let tunnels = "kuboard_agent_tunnels{cluster=\"edge\"}";
    group.replicas[0].kill9();
    let mut failures = Vec::new();
    for round in 0..15 {
        for index in [1, 2] {
            let (status, body) = send_at(&https, &pods(index), reqwest::Method::GET, &token, None).await;
            if status != 200 {
                failures.push(format!("round {round}, replica {}: {status} {body}", index + 1));
            }
        }
    }
    assert!(failures.is_empty(), "with replica 1 down: {failures:?}");
    let (code, _, err) = kubectl(home.path(), &configs[1], &["get", "pods"], None).await;
    assert_eq!(code, 0, "kubectl through replica 2 with replica 1 down: {err}");
    // Replica 1 stays down 4 s, so that the agent's redials of it have backed off.
    tokio::time::sleep_until(tokio::time::Instant::now() + Duration::from_secs(4)).await;
    group.replicas[0].restart();
    wait_ok(&https, &format!("{}/readyz", base(0)), Duration::from_secs(60)).await;
    let ready = Instant::now();
    loop {
        let text = https
            .get(format!("{}/metrics", base(0)))
            .send()
            .await
            .expect("metrics answer")
            .text()
            .await
            .expect("metrics body");
        if metric_value(&text, tunnels) >= 1.0 {
            break;
        }
        assert!(
            ready.elapsed() < Duration::from_secs(5),
            "the restarted replica has its tunnel within 5 s of being ready; agent log:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let back_ms = ready.elapsed().as_millis() as u64;
    println!("restarted replica 1: tunnel back {back_ms} ms after it was ready");
    tracing::info!(ms = back_ms, "tunnel back after the restart");
    let (code, _, err) = kubectl(home.path(), &configs[0], &["get", "pods"], None).await;
    assert_eq!(code, 0, "kubectl through the restarted replica: {err}");

    tracing::info!("phase: the apiserver in use stops; the watch ends cleanly, the other apiserver serves");
    let in_use = if cluster.servers[0].request_count() >= cluster.servers[1].request_count() {
        0
    } else {
        1
    };
    let other = 1 - in_use;
    let before_other = cluster.servers[other].request_count();
    cluster.servers[in_use].stop().await;
    let stopped = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(20), watch.wait()).await;
    assert!(
        ended.is_ok(),
        "the watch through the stopped apiserver ends within 20 s instead of hanging"
    );
    tracing::info!(
        ms = stopped.elapsed().as_millis() as u64,
        status = ?ended,
        "the watch ended after the apiserver stopped"
    );
    for (index, config) in configs.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (code, out, err) = kubectl(home.path(), config, &["get", "pods"], None).await;
            if code == 0 && out.contains("shell") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "replica {} serves through the other apiserver within 20 s: {err}",
                index + 1
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let recovered_ms = stopped.elapsed().as_millis() as u64;
    println!("apiserver {in_use} stopped: kubectl through all three replicas served again after {recovered_ms} ms");
    assert!(
        cluster.servers[other].request_count() > before_other,
        "the other apiserver served the requests"
    );
}

/// The agent manifest from the API: refused without agent addresses or with a bad one (nothing
/// changes: the live tunnel serves on); made with a new token, which closes the old tunnel; an
/// agent run with the manifest's token and endpoints connects; revoking the token closes its
/// tunnel and refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_manifest_is_generated_regenerated_and_revoked() {
    init_tracing();
    let setup = setup().await;
    let path = "/kuboard-api/clusters/edge/agent-manifest";
    let post = |body: Value| {
        let replica = &setup.replica;
        let token = setup.token.clone();
        async move { send(replica, reqwest::Method::POST, path, &token, Some(&body)).await }
    };
    let (status, body) = post(json!({})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("agent_endpoints")),
        "the replica has no KUBOARD_AGENT_ENDPOINT: {body}"
    );
    for bad in [
        json!({"endpoints": ["a b:1"]}),
        json!({"endpoints": ["host"]}),
        json!({"endpoints": []}),
        json!({"endpoints": [setup.endpoints], "image": "x\nkind: Pod"}),
        json!({"endpoints": [setup.endpoints], "extra": 1}),
    ] {
        let (status, answer) = post(bad.clone()).await;
        assert!(status == 422 || status == 400, "{bad} is refused: {status} {answer}");
    }
    let (status, body) = send(&setup.replica, reqwest::Method::POST, path, "", Some(&json!({}))).await;
    assert_eq!(status, 401, "{body}");
    for _ in 0..5 {
        let (status, body) = send(&setup.replica, reqwest::Method::GET, PODS, &setup.token, None).await;
        assert_eq!(status, 200, "the refused requests changed nothing: {body}");
    }

    let (status, made) = post(json!({"endpoints": [setup.endpoints], "image": "registry.example/kuboard:v3"})).await;
    assert_eq!(status, 200, "{made}");
    assert_eq!(made["command"], "kubectl apply -f kuboard-agent-edge.yaml");
    let manifest = made["manifest"].as_str().expect("the manifest");
    let documents: Vec<Value> = manifest
        .split("\n---\n")
        .map(|part| serde_norway::from_str(part).expect("YAML"))
        .collect();
    assert_eq!(documents.len(), 6, "{manifest}");
    assert_eq!(
        (documents[4]["kind"].as_str(), documents[5]["kind"].as_str()),
        (Some("Secret"), Some("Deployment"))
    );
    let new_token = documents[4]["stringData"]["token"]
        .as_str()
        .expect("the token")
        .to_string();
    assert_eq!(made["agent_token"], new_token.as_str());
    assert_ne!(new_token, setup.agent_token);
    let container = &documents[5]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["env"][0]["value"], setup.endpoints.as_str());
    assert_eq!(documents[5]["spec"]["replicas"], 2);
    // The old token stopped working: its tunnel closes.
    wait_proxy(&setup.replica, &setup.token, false, Duration::from_secs(10)).await;

    let server_ca = documents[4]["stringData"]["server-ca.pem"]
        .as_str()
        .expect("the group CA in the secret");
    assert!(server_ca.starts_with("-----BEGIN CERTIFICATE-----"), "{server_ca}");
    assert!(
        !manifest.contains("PRIVATE KEY"),
        "only the CA's certificate: {manifest}"
    );
    assert_eq!(
        container["env"][3],
        json!({"name": "KUBOARD_AGENT_SERVER_CA",
            "valueFrom": {"secretKeyRef": {"name": "kuboard-agent-edge", "key": "server-ca.pem"}}})
    );
    let agent = Agent::start_with(
        &setup.kubeconfig,
        &setup.endpoints,
        &new_token,
        &setup.dir.path().join("agent-manifest.log"),
        &[("KUBOARD_AGENT_SERVER_CA", server_ca)],
    );
    wait_proxy(&setup.replica, &setup.token, true, Duration::from_secs(20)).await;

    let (status, body) = send(
        &setup.replica,
        reqwest::Method::DELETE,
        "/kuboard-api/clusters/edge/agent-token",
        &setup.token,
        None,
    )
    .await;
    assert_eq!((status, body["kind"].as_str()), (200, Some("agent")), "{body}");
    let took = wait_proxy(&setup.replica, &setup.token, false, Duration::from_secs(10)).await;
    tracing::info!(ms = took.as_millis() as u64, "the revoked token's tunnel closed");
    agent
        .wait_log("unknown cluster or wrong agent token", Duration::from_secs(10))
        .await;
}

/// A TCP relay on loopback in front of a replica's agent port that keeps every byte the agents
/// send through it: what anyone on the path between agent and replica reads.
struct Relay {
    port: u16,
    sent: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(target: u16) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the relay binds");
        let port = listener.local_addr().expect("the relay's address").port();
        let sent = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = sent.clone();
        let task = tokio::spawn(async move {
            // Dropped with the task: every relayed connection ends with the relay.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((agent, _)) = listener.accept().await {
                let recorded = recorded.clone();
                connections.spawn(async move {
                    let Ok(replica) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
                        return;
                    };
                    let (mut agent_read, mut agent_write) = agent.into_split();
                    let (mut replica_read, mut replica_write) = replica.into_split();
                    let upstream = async {
                        let mut buffer = vec![0u8; 16 * 1024];
                        loop {
                            match agent_read.read(&mut buffer).await {
                                Ok(0) | Err(_) => break,
                                Ok(count) => {
                                    recorded.lock().expect("the record").extend_from_slice(&buffer[..count]);
                                    if replica_write.write_all(&buffer[..count]).await.is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                    };
                    let downstream = tokio::io::copy(&mut replica_read, &mut agent_write);
                    tokio::select! {
                        _ = upstream => {}
                        _ = downstream => {}
                    }
                });
            }
        });
        Relay { port, sent, task }
    }

    fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn sent(&self) -> Vec<u8> {
        self.sent.lock().expect("the record").clone()
    }

    fn clear(&self) {
        self.sent.lock().expect("the record").clear();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|window| window == needle)
}

/// The longest line of a PEM block's body: base64 that appears on a wire only if the PEM does.
fn pem_body_line(pem: &str) -> String {
    pem.lines()
        .filter(|line| !line.starts_with("-----"))
        .max_by_key(|line| line.len())
        .expect("a PEM body")
        .to_string()
}

/// HTTP through the proxy via the tunnel: a list, a creation, the object read back and a followed
/// log. Returns nothing; every answer is checked.
async fn requests_through_the_proxy(replica: &Replica, token: &str, name: &str) {
    let (status, pods) = send(replica, reqwest::Method::GET, PODS, token, None).await;
    assert_eq!(status, 200, "{pods}");
    assert_eq!(pods["items"][0]["metadata"]["name"], "shell", "{pods}");
    let configmaps = "/k8s-api/edge/api/v1/namespaces/default/configmaps";
    let (status, created) = send(
        replica,
        reqwest::Method::POST,
        configmaps,
        token,
        Some(&json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name}, "data": {"k": "v"}})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (status, read) = send(
        replica,
        reqwest::Method::GET,
        &format!("{configmaps}/{name}"),
        token,
        None,
    )
    .await;
    assert_eq!((status, &read["data"]["k"]), (200, &json!("v")), "{read}");
    let log = replica
        .client
        .get(replica.url(&format!("{PODS}/shell/log?follow=true")))
        .bearer_auth(token)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .expect("the log opens");
    assert_eq!(log.status().as_u16(), 200);
    let text = log.text().await.expect("the followed log ends after its lines");
    assert!(text.lines().count() >= 3, "three followed lines: {text:?}");
}

async fn agent_metrics(port: u16) -> String {
    match reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// What broke: the handshake crossed the network in clear, so anyone on the path read the agent
/// token and the credentials the agent reports. A relay between agent and replica records what
/// it carries: with a plain agent (the control) the token and the client key are there; with the
/// agent pinned to the group CA neither is, nor the handshake's magic, and the proxy works through
/// the TLS tunnel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_token_crossed_the_network_in_clear() {
    init_tracing();
    let setup = setup().await;
    let (replica, token) = (&setup.replica, &setup.token);
    let relay = Relay::start(setup.agent_port).await;
    let (agent_token, server_ca) = manifest_token_and_ca(replica, token, &relay.endpoint()).await;
    // The manifest made a new token: the plain agent of the set-up is closed out.
    wait_proxy(replica, token, false, Duration::from_secs(10)).await;
    let key_line = pem_body_line(&setup.cluster.admin.key_pem);

    tracing::info!("control: a plain agent through the relay shows its token on the wire");
    let mut plain = Agent::start(
        &setup.kubeconfig,
        &relay.endpoint(),
        &agent_token,
        &setup.dir.path().join("relay-plain.log"),
    );
    wait_proxy(replica, token, true, Duration::from_secs(20)).await;
    let wire = relay.sent();
    assert!(
        contains(&wire, agent_token.as_bytes()),
        "the relay sees a plain agent's token"
    );
    assert!(contains(&wire, key_line.as_bytes()), "and its reported client key");
    assert!(contains(&wire, b"kuboard-agent"), "and its handshake");
    plain.kill9();
    wait_proxy(replica, token, false, Duration::from_secs(15)).await;
    relay.clear();

    tracing::info!("an agent pinned to the group CA (a file path) through the same relay");
    let ca_file = setup.dir.path().join("server-ca.pem");
    std::fs::write(&ca_file, &server_ca).expect("write the CA");
    let health = free_port();
    let health_listen = format!("127.0.0.1:{health}");
    let ca_path = ca_file.to_string_lossy().into_owned();
    let pinned = Agent::start_with(
        &setup.kubeconfig,
        &relay.endpoint(),
        &agent_token,
        &setup.dir.path().join("relay-tls.log"),
        &[
            ("KUBOARD_AGENT_SERVER_CA", ca_path.as_str()),
            ("KUBOARD_AGENT_HEALTH_LISTEN", health_listen.as_str()),
        ],
    );
    let took = wait_proxy(replica, token, true, Duration::from_secs(20)).await;
    tracing::info!(ms = took.as_millis() as u64, "the TLS tunnel serves");
    pinned.wait_log("tunnel up", Duration::from_secs(5)).await;
    requests_through_the_proxy(replica, token, "through-tls").await;
    let wire = relay.sent();
    println!("the relay carried {} bytes from the TLS agent", wire.len());
    assert!(
        wire.len() > 4096,
        "the traffic went through the relay: {} bytes",
        wire.len()
    );
    assert_eq!(wire[0], 0x16, "the agent opened with a TLS handshake record");
    assert!(!contains(&wire, agent_token.as_bytes()), "the token is not on the wire");
    assert!(
        !contains(&wire, key_line.as_bytes()),
        "the reported client key is not on the wire"
    );
    assert!(!contains(&wire, b"kuboard-agent"), "the handshake itself is encrypted");
    let metrics_now = agent_metrics(health).await;
    assert_eq!(
        metric_value(&metrics_now, "kuboard_agent_tunnels_up"),
        1.0,
        "{metrics_now}"
    );
    assert!(
        !metrics_now.contains("kuboard_agent_tls_failures_total{"),
        "no TLS failure: {metrics_now}"
    );
    assert!(!replica.log().contains(&agent_token), "no token in the replica's log");
}

/// What broke: an agent that pins a CA must refuse a server whose certificate that CA did not
/// issue (another group, or a machine posing as a replica), say why, count it and retry, and never
/// speak plain text instead. Also a server that does not answer TLS at all: the agent sends it
/// nothing but its TLS hello.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_pinned_to_another_ca_refuses_the_replica_and_says_why() {
    init_tracing();
    let setup = setup_with(&[], true).await;
    let (replica, token) = (&setup.replica, &setup.token);
    assert_eq!(
        metric_value(&metrics(replica).await, "kuboard_agent_tunnels{cluster=\"edge\"}"),
        1.0
    );

    // Another CA: the fake cluster's, PEM text in the variable.
    let health = free_port();
    let health_listen = format!("127.0.0.1:{health}");
    let other = Agent::start_with(
        &setup.kubeconfig,
        &setup.endpoints,
        &setup.agent_token,
        &setup.dir.path().join("other-ca.log"),
        &[
            ("KUBOARD_AGENT_SERVER_CA", setup.cluster.ca.cert_pem.as_str()),
            ("KUBOARD_AGENT_HEALTH_LISTEN", health_listen.as_str()),
        ],
    );
    other
        .wait_log("TLS refused (untrusted_certificate)", Duration::from_secs(10))
        .await;
    assert!(
        other.log().contains("not signed by KUBOARD_AGENT_SERVER_CA"),
        "the log says why: {}",
        other.log()
    );
    let series = format!(
        "kuboard_agent_tls_failures_total{{reason=\"untrusted_certificate\",server=\"{}\"}}",
        setup.endpoints
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics_now = agent_metrics(health).await;
        if metric_value(&metrics_now, &series) >= 3.0 {
            assert_eq!(
                metric_value(&metrics_now, "kuboard_agent_tunnels_up"),
                0.0,
                "{metrics_now}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "refused, counted and retried 3 times within 10 s: {metrics_now}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ready = reqwest::get(format!("http://127.0.0.1:{health}/readyz"))
        .await
        .expect("readyz answers");
    assert_eq!(ready.status().as_u16(), 503, "not ready without a tunnel");
    assert!(!other.log().contains("tunnel up"), "never connected: {}", other.log());
    let replica_metrics = metrics(replica).await;
    assert_eq!(
        metric_value(&replica_metrics, "kuboard_agent_tunnels{cluster=\"edge\"}"),
        1.0,
        "only the pinned agent's tunnel: {replica_metrics}"
    );
    assert!(
        metric_value(
            &replica_metrics,
            "kuboard_agent_handshake_failures_total{reason=\"tls_handshake\"}"
        ) >= 1.0,
        "the replica counts the aborted TLS handshakes: {replica_metrics}"
    );
    requests_through_the_proxy(replica, token, "beside-a-refused-agent").await;
    drop(other);

    // A server that takes the connection but speaks no TLS (a plain-only agent port, or something
    // else on that address): the agent sends its TLS hello only, and says so.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let plain_server = listener.local_addr().expect("address").to_string();
    let received = tokio::spawn(async move {
        let mut all = Vec::new();
        for _ in 0..2 {
            let Ok((mut socket, _)) = listener.accept().await else {
                break;
            };
            let mut buffer = vec![0u8; 64 * 1024];
            if let Ok(Ok(count)) = tokio::time::timeout(Duration::from_secs(2), socket.read(&mut buffer)).await {
                all.extend_from_slice(&buffer[..count]);
            }
        }
        all
    });
    let server_ca = setup.server_ca.clone().expect("the TLS set-up's CA");
    let no_tls = Agent::start_with(
        &setup.kubeconfig,
        &plain_server,
        &setup.agent_token,
        &setup.dir.path().join("no-tls.log"),
        &[("KUBOARD_AGENT_SERVER_CA", server_ca.as_str())],
    );
    let received = tokio::time::timeout(Duration::from_secs(15), received)
        .await
        .expect("two dials within 15 s")
        .expect("the listener task");
    no_tls.wait_log("TLS refused (closed)", Duration::from_secs(5)).await;
    assert!(!received.is_empty(), "the agent dialled");
    assert_eq!(received[0], 0x16, "a TLS record");
    assert!(
        !contains(&received, setup.agent_token.as_bytes()) && !contains(&received, b"kuboard-agent"),
        "no plain hello after a failed TLS handshake"
    );

    tracing::info!("a KUBOARD_AGENT_SERVER_CA that is not a certificate stops the agent at start");
    let status = Command::new(kuboard_binary())
        .args(["agent", "--kubeconfig"])
        .arg(&setup.kubeconfig)
        .env_clear()
        .env("KUBOARD_AGENT_ENDPOINT", &setup.endpoints)
        .env("KUBOARD_AGENT_CLUSTER", CLUSTER)
        .env("KUBOARD_AGENT_TOKEN", &setup.agent_token)
        .env("KUBOARD_AGENT_SERVER_CA", "/nonexistent/ca.pem")
        .stdin(Stdio::null())
        .output()
        .expect("the agent runs");
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert_eq!(status.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("KUBOARD_AGENT_SERVER_CA"), "{stderr}");
}

/// Waits up to 5 s until the replica has counted `reason` at least `at_least` times.
async fn wait_refusals(replica: &Replica, reason: &str, at_least: f64) {
    let series = format!("kuboard_agent_handshake_failures_total{{reason=\"{reason}\"}}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let counted = metric_value(&metrics(replica).await, &series);
        if counted >= at_least {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} reaches {at_least} within 5 s: {counted}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What broke: with `KUBOARD_AGENT_SERVER_REQUIRE_TLS` the port still took plain agents. Now a
/// plain agent is refused with a reason and counted while the TLS agent serves; and the TLS
/// handshake counts against the handshake's deadline and budget: a TLS client that stalls is cut
/// off at the deadline, a flood of stalled TLS clients is bounded, a TLS record that is not a hello
/// is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_agent_was_served_when_tls_was_required() {
    init_tracing();
    let setup = setup_with(&[("KUBOARD_AGENT_SERVER_REQUIRE_TLS", "true")], true).await;
    let (replica, token, agent_port) = (&setup.replica, &setup.token, setup.agent_port);
    requests_through_the_proxy(replica, token, "tls-required").await;
    let (_, before) = send(replica, reqwest::Method::GET, "/kuboard-api/clusters/edge", token, None).await;

    let plain = Agent::start(
        &setup.kubeconfig,
        &setup.endpoints,
        &setup.agent_token,
        &setup.dir.path().join("plain.log"),
    );
    plain
        .wait_log("takes agents over TLS only", Duration::from_secs(10))
        .await;
    drop(plain);
    let replica_metrics = metrics(replica).await;
    assert!(
        metric_value(
            &replica_metrics,
            "kuboard_agent_handshake_failures_total{reason=\"tls_required\"}"
        ) >= 1.0,
        "{replica_metrics}"
    );
    assert_eq!(
        metric_value(&replica_metrics, "kuboard_agent_tunnels{cluster=\"edge\"}"),
        1.0,
        "{replica_metrics}"
    );

    let count = |reason: &'static str| async move {
        metric_value(
            &metrics(replica).await,
            &format!("kuboard_agent_handshake_failures_total{{reason=\"{reason}\"}}"),
        )
    };
    tracing::info!("a TLS client hello that does not decode is refused and counted");
    let counted_before = count("tls_handshake").await;
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", agent_port))
        .await
        .expect("connect");
    socket
        .write_all(b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00")
        .await
        .expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), socket.read_to_end(&mut answer))
        .await
        .expect("closed within 3 s")
        .ok();
    wait_refusals(replica, "tls_handshake", counted_before + 1.0).await;

    tracing::info!("a TLS client that stalls in its hello is cut off at the handshake deadline");
    let timeouts_before = count("timeout").await;
    let started = Instant::now();
    let stalled_hello: &[u8] = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    expect_closed_silently(agent_port, stalled_hello, Duration::from_secs(10)).await;
    let took = started.elapsed();
    println!("a stalled TLS client was closed after {took:?}");
    assert!(took >= Duration::from_secs(4), "at the deadline, not before: {took:?}");
    wait_refusals(replica, "timeout", timeouts_before + 1.0).await;

    tracing::info!("300 stalled TLS clients: over the budget of 256 handshakes, refused at once");
    let budget_before = count("too_many_handshakes").await;
    let mut stalled = Vec::new();
    for _ in 0..300 {
        let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", agent_port))
            .await
            .expect("connect");
        socket.write_all(stalled_hello).await.expect("write");
        stalled.push(socket);
    }
    // The first 256 hold the budget until their deadline; the other 44 are refused at once.
    wait_refusals(replica, "too_many_handshakes", budget_before + 44.0).await;
    for _ in 0..10 {
        let (status, body) = send(replica, reqwest::Method::GET, PODS, token, None).await;
        assert_eq!(status, 200, "the live TLS tunnel serves during the flood: {body}");
    }
    drop(stalled);

    let (_, after) = send(replica, reqwest::Method::GET, "/kuboard-api/clusters/edge", token, None).await;
    assert_eq!(before, after, "refused connections changed nothing");
}
