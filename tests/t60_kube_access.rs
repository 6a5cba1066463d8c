//! Kubernetes access through real `kuboard serve` replicas and the fake apiserver of testkit:
//! import (with bad requests refused and nothing stored), the machine's kubectl with a downloaded
//! kubeconfig (get, apply, delete, logs -f, interactive exec) through three replicas, a viewer's
//! delete denied by the cluster's RBAC, 5,000 pods listed page by page within a bounded RSS, and
//! the failover between three apiservers behind one cluster.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Group, Replica};
use kuboard_testkit::{certs, resources, Credential, FakeCluster, FakeClusterOptions, PolicyRule, Rbac, StateConfig};
use serde_json::{json, Value};

const NEW_ADMIN_PASSWORD: &str = "t60-Root-Passw0rd";

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
";

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_test_writer()
        .try_init();
}

/// The cluster's RBAC as an administrator would set it up for Kuboard: Kuboard's groups (from
/// `auth::roles`) bound to full access and to read-only access.
fn kuboard_rbac() -> Rbac {
    let mut rbac = Rbac::default();
    rbac.rules.push(PolicyRule::admin_group("kuboard:administrators"));
    rbac.rules.push(PolicyRule::viewer_group("kuboard:viewers"));
    rbac
}

async fn start_fake(instances: usize) -> FakeCluster {
    let cluster = FakeCluster::start_with(FakeClusterOptions {
        instances,
        state: StateConfig {
            bookmark_interval: Duration::from_millis(300),
            log_follow_interval: Duration::from_millis(50),
            log_follow_max_lines: 3,
            ..StateConfig::default()
        },
        ..FakeClusterOptions::default()
    })
    .await
    .expect("the fake cluster starts");
    cluster.state.set_rbac(kuboard_rbac());
    cluster
        .state
        .create_object(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "shell", "namespace": "default"},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]}}),
        )
        .expect("the pod is created");
    cluster
}

/// One replica as the tests reach it: over HTTPS for kubectl (which sends credentials only over
/// TLS), over HTTP otherwise.
struct Endpoint {
    base: String,
    client: reqwest::Client,
    pid: u32,
    port: u16,
}

impl Endpoint {
    fn plain(replica: &Replica) -> Endpoint {
        Endpoint {
            base: format!("http://127.0.0.1:{}", replica.port),
            client: replica.client.clone(),
            pid: replica.pid(),
            port: replica.port,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn login(&self, username: &str, password: &str) -> String {
        let (status, body) = self
            .request(
                reqwest::Method::POST,
                "/kuboard-api/auth/login",
                "",
                Some(&json!({"username": username, "password": password})),
            )
            .await;
        assert_eq!(status, 200, "login of {username}: {body}");
        body["token"].as_str().expect("a token").to_string()
    }

    /// Logs in with `first`, changes it to `second` and returns a token of a new session.
    async fn login_changing_password(&self, username: &str, first: &str, second: &str) -> String {
        let token = self.login(username, first).await;
        let (status, body) = self
            .request(
                reqwest::Method::POST,
                "/kuboard-api/auth/password",
                &token,
                Some(&json!({"current_password": first, "new_password": second})),
            )
            .await;
        assert_eq!(status, 200, "password change of {username}: {body}");
        self.login(username, second).await
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = self.client.get(self.url("/readyz")).send().await {
                if response.status() == 200 {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "{} ready within 30 s", self.base);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn request(&self, method: reqwest::Method, path: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
        request_at(&self.client, &self.url(path), method, token, body).await
    }
}

async fn request(
    replica: &Replica,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    request_at(&replica.client, &replica.url(path), method, token, body).await
}

async fn request_at(
    client: &reqwest::Client,
    url: &str,
    method: reqwest::Method,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut builder = client.request(method, url);
    if !token.is_empty() {
        builder = builder.bearer_auth(token);
    }
    if let Some(body) = body {
        builder = builder.json(body);
    }
    let response = builder.send().await.expect("the replica answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("the body is read");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Runs kubectl with `kubeconfig` (and `server` instead of the kubeconfig's, when given),
/// trusting the CA of Kuboard's certificate written at `home/kuboard-ca.pem`.
async fn kubectl(
    home: &Path,
    kubeconfig: &Path,
    server: Option<&str>,
    args: &[&str],
    stdin: Option<&str>,
) -> (i32, String, String) {
    let ca = home.join("kuboard-ca.pem");
    let mut options: Vec<&std::ffi::OsStr> = vec![std::ffi::OsStr::new("--certificate-authority"), ca.as_os_str()];
    if let Some(server) = server {
        options.extend([std::ffi::OsStr::new("--server"), std::ffi::OsStr::new(server)]);
    }
    common::kubectl(home, kubeconfig, &options, args, stdin).await
}

/// Downloads the caller's kubeconfig for `cluster` from `endpoint` into `home`.
async fn download_kubeconfig(endpoint: &Endpoint, token: &str, cluster: &str, home: &Path, file: &str) -> PathBuf {
    let response = endpoint
        .client
        .get(endpoint.url(&format!("/kuboard-api/clusters/{cluster}/kubeconfig")))
        .bearer_auth(token)
        .send()
        .await
        .expect("the replica answers");
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.expect("the kubeconfig is read");
    assert!(
        text.contains(&format!(
            "server: https://127.0.0.1:{}/k8s-api/{cluster}",
            endpoint.port
        )),
        "{text}"
    );
    let path = home.join(file);
    std::fs::write(&path, text).expect("the kubeconfig is written");
    path
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the replica's /proc status is readable");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS is present")
}

async fn import(endpoint: &Endpoint, token: &str, body: &Value) -> (u16, Value) {
    endpoint
        .request(reqwest::Method::POST, "/kuboard-api/cluster-imports", token, Some(body))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_through_three_replicas_as_the_kuboard_user() {
    init_tracing();
    let cluster = start_fake(1).await;
    let home = tempfile::tempdir().expect("a kubectl home");
    let pki = common::make_test_pki(home.path());
    std::fs::copy(&pki.ca, home.path().join("kuboard-ca.pem")).expect("the CA is copied");
    let tls_env = vec![
        (
            "KUBOARD_TLS_CERT".to_string(),
            pki.server_cert.to_string_lossy().into_owned(),
        ),
        (
            "KUBOARD_TLS_KEY".to_string(),
            pki.server_key.to_string_lossy().into_owned(),
        ),
    ];
    let group = Group::start_with_env(3, &|_| tls_env.clone());
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca).expect("the CA is read")).expect("CA PEM");
    let https = reqwest::Client::builder()
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTPS client");
    let replicas: Vec<Endpoint> = group
        .replicas
        .iter()
        .map(|replica| Endpoint {
            base: format!("https://127.0.0.1:{}", replica.port),
            client: https.clone(),
            pid: replica.pid(),
            port: replica.port,
        })
        .collect();
    for replica in &replicas {
        replica.wait_ready().await;
    }
    let admin_token = replicas[0]
        .login_changing_password("admin", common::ADMIN_PASSWORD, NEW_ADMIN_PASSWORD)
        .await;
    let first = &replicas[0];

    tracing::info!("phase: bad import requests are refused and store nothing");
    let good_kubeconfig = cluster.admin_kubeconfig(0);
    let url = cluster.servers[0].url();
    let closed_port = common::free_port();
    let exec_kubeconfig = good_kubeconfig.replace(
        "    client-certificate-data:",
        "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: aws\n    client-certificate-data:",
    );
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "bad name",
            json!({"name": "Bad_Name", "kubeconfig": good_kubeconfig}),
            422,
            "invalid_cluster_name",
        ),
        (
            "not YAML",
            json!({"name": "x", "kubeconfig": "clusters: [ {"}),
            422,
            "invalid_kubeconfig",
        ),
        (
            "exec plugin",
            json!({"name": "x", "kubeconfig": exec_kubeconfig}),
            422,
            "unsupported_authentication",
        ),
        (
            "file path",
            json!({"name": "x", "kubeconfig": good_kubeconfig.replace("certificate-authority-data:", "certificate-authority: /tmp/ca.crt\n    x:")}),
            422,
            "kubeconfig_file_path",
        ),
        (
            "both kinds",
            json!({"name": "x", "kubeconfig": good_kubeconfig, "server": url}),
            422,
            "invalid_import_request",
        ),
        ("nothing", json!({"name": "x"}), 422, "invalid_import_request"),
        (
            "https without CA",
            json!({"name": "x", "server": url, "token": "abc"}),
            422,
            "missing_ca_certificate",
        ),
        (
            "unreachable",
            json!({"name": "x", "server": format!("https://127.0.0.1:{closed_port}"), "token": "abc",
                "ca_certificate": cluster.ca.cert_pem}),
            422,
            "cluster_unreachable",
        ),
        (
            "token refused",
            json!({"name": "x", "server": url, "token": "not-a-known-token", "ca_certificate": cluster.ca.cert_pem}),
            422,
            "credential_rejected",
        ),
        (
            "unknown field",
            json!({"name": "x", "kubeconfig": good_kubeconfig, "extra": 1}),
            422,
            "",
        ),
    ];
    for (what, body, status, code) in cases {
        let (got, answer) = import(first, &admin_token, &body).await;
        assert_eq!(got, status, "{what}: {answer}");
        if !code.is_empty() {
            assert_eq!(answer["code"], code, "{what}: {answer}");
        }
        assert!(
            !answer.to_string().contains("BEGIN RSA") && !answer.to_string().contains("PRIVATE KEY"),
            "{what}: no secret in the answer"
        );
    }
    let (status, clusters) = first
        .request(reqwest::Method::GET, "/kuboard-api/clusters", &admin_token, None)
        .await;
    assert_eq!((status, clusters.clone()), (200, json!([])), "nothing was stored");

    tracing::info!("phase: import the cluster from its kubeconfig (probed first)");
    let (status, answer) = import(
        first,
        &admin_token,
        &json!({"name": "fake", "kubeconfig": good_kubeconfig}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["probes"][0]["reachable"], true, "{answer}");
    assert_eq!(answer["has_client_certificate"], true);
    let (status, answer) = import(
        first,
        &admin_token,
        &json!({"name": "fake", "kubeconfig": good_kubeconfig}),
    )
    .await;
    assert_eq!((status, answer["code"].as_str()), (409, Some("cluster_exists")));

    tracing::info!("phase: kubectl with a downloaded kubeconfig, through all three replicas");
    let admin_config = download_kubeconfig(&replicas[1], &admin_token, "fake", home.path(), "admin.yaml").await;
    let through = |index: usize| format!("https://127.0.0.1:{}/k8s-api/fake", replicas[index].port);
    let config_text = std::fs::read_to_string(&admin_config).expect("readable");
    let key = config_text
        .lines()
        .find_map(|line| line.trim().strip_prefix("token: "))
        .expect("the kubeconfig has a token");
    assert!(key.starts_with("kbak_"), "an access key: {config_text}");
    let (status, body) = replicas[2]
        .request(reqwest::Method::GET, "/k8s-api/fake/api", key, None)
        .await;
    assert_eq!(status, 200, "the access key works on another replica: {body}");
    let (code, out, err) = kubectl(home.path(), &admin_config, None, &["get", "pods"], None).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("NAME") && out.contains("shell"), "{out}");
    let manifest = home.path().join("deployment.yaml");
    std::fs::write(&manifest, DEPLOYMENT).expect("written");
    let manifest_arg = manifest.to_str().expect("UTF-8 path");
    let (code, out, err) = kubectl(
        home.path(),
        &admin_config,
        Some(&through(2)),
        &["apply", "-f", manifest_arg],
        None,
    )
    .await;
    assert_eq!((code, out.trim()), (0, "deployment.apps/web created"), "{err}");
    let deployments = resources::find("apps", "v1", "deployments").expect("served");
    let stored = cluster
        .state
        .get(deployments, Some("default"), "web")
        .expect("stored in the cluster");
    assert_eq!(stored["spec"]["replicas"], 2);
    let (code, out, err) = kubectl(
        home.path(),
        &admin_config,
        Some(&through(0)),
        &["get", "deploy", "web"],
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("web"), "{out}");
    let (code, out, err) = kubectl(
        home.path(),
        &admin_config,
        Some(&through(1)),
        &["delete", "-f", manifest_arg],
        None,
    )
    .await;
    assert_eq!((code, out.trim()), (0, "deployment.apps \"web\" deleted"), "{err}");
    assert!(cluster.state.get(deployments, Some("default"), "web").is_err());

    tracing::info!("phase: logs -f streams through the proxy");
    let started = Instant::now();
    let (code, out, err) = kubectl(
        home.path(),
        &admin_config,
        Some(&through(2)),
        &["logs", "-f", "shell", "--tail=1"],
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines().count() >= 4,
        "the last line and three followed ones: {out:?}"
    );
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "logs -f ended");

    tracing::info!("phase: interactive exec driven through stdin (websocket upgrade through the proxy)");
    let (code, out, err) = kubectl(
        home.path(),
        &admin_config,
        Some(&through(0)),
        &["exec", "-i", "shell", "--", "sh"],
        Some("hostname\necho through-kuboard\nexit 4\n"),
    )
    .await;
    assert_eq!((code, out.as_str()), (4, "shell\nthrough-kuboard\n"), "{err}");
    let (code, out, err) = kubectl(
        home.path(),
        &admin_config,
        Some(&through(1)),
        &["exec", "shell", "--", "echo", "hi"],
        None,
    )
    .await;
    assert_eq!((code, out.as_str()), (0, "hi\n"), "{err}");

    tracing::info!("phase: attach to the container's shell through another replica");
    let (code, out, err) = kubectl(
        home.path(),
        &admin_config,
        Some(&through(2)),
        &["attach", "-i", "shell"],
        Some("echo attached-through-kuboard\nexit 0\n"),
    )
    .await;
    assert!(
        out.contains("attached-through-kuboard"),
        "code {code}, out {out:?}, err {err}"
    );
    assert_eq!(code, 0, "{err}");

    tracing::info!("phase: a viewer reads but its delete is denied and changes nothing");
    let (status, answer) = first
        .request(
            reqwest::Method::POST,
            "/kuboard-api/users",
            &admin_token,
            Some(&json!({"username": "vera", "password": "first-password-1", "role": "viewer"})),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let viewer = &replicas[2];
    let viewer_token = viewer
        .login_changing_password("vera", "first-password-1", "second-password-2")
        .await;
    let viewer_config = download_kubeconfig(viewer, &viewer_token, "fake", home.path(), "viewer.yaml").await;
    let (code, out, err) = kubectl(home.path(), &viewer_config, None, &["get", "pods"], None).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("shell"), "{out}");
    let revision_before = cluster.state.resource_version();
    let (code, _, err) = kubectl(home.path(), &viewer_config, None, &["delete", "pod", "shell"], None).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("forbidden") && err.contains("kuboard:vera") && err.contains("cannot delete"),
        "{err}"
    );
    let pods = resources::find("", "v1", "pods").expect("served");
    assert!(
        cluster.state.get(pods, Some("default"), "shell").is_ok(),
        "the pod is still there"
    );
    assert_eq!(
        cluster.state.resource_version(),
        revision_before,
        "nothing changed in the cluster"
    );
    // The caller's own impersonation headers are dropped, not passed on.
    let response = viewer
        .client
        .delete(viewer.url("/k8s-api/fake/api/v1/namespaces/default/pods/shell"))
        .bearer_auth(&viewer_token)
        .header("Impersonate-User", "kubernetes-admin")
        .header("Impersonate-Group", "system:masters")
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status().as_u16(), 403);
    let body: Value = response.json().await.expect("a Status");
    assert_eq!(
        (body["kind"].as_str(), body["reason"].as_str()),
        (Some("Status"), Some("Forbidden"))
    );
    assert!(cluster.state.get(pods, Some("default"), "shell").is_ok());
    // Without a Kuboard credential: a Kubernetes 401 Status.
    let response = viewer
        .client
        .get(viewer.url("/k8s-api/fake/api/v1/pods"))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status().as_u16(), 401);
    let body: Value = response.json().await.expect("a Status");
    assert_eq!(body["reason"], "Unauthorized");
    let (status, body) = viewer
        .request(reqwest::Method::GET, "/k8s-api/nope/api/v1/pods", &viewer_token, None)
        .await;
    assert_eq!((status, body["reason"].as_str()), (404, Some("NotFound")));

    tracing::info!("phase: 5,000 pods page by page through the proxy within a bounded RSS");
    cluster
        .state
        .create_object(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bulk"}}))
        .expect("created");
    for index in 0..5000 {
        cluster
            .state
            .create_object(json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("pod-{index:05}"), "namespace": "bulk", "labels": {"app": "bulk"}},
                "spec": {"containers": [{"name": "main", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}}))
            .expect("created");
    }
    let measured = &replicas[0];
    // One page first, so that the pool and its connections exist before the baseline.
    let (status, _) = measured
        .request(
            reqwest::Method::GET,
            "/k8s-api/fake/api/v1/namespaces/bulk/pods?limit=10",
            &admin_token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let before = vm_rss_kib(measured.pid);
    let mut seen = 0usize;
    let mut pages = 0usize;
    let mut bytes = 0usize;
    let mut continue_token = String::new();
    loop {
        let mut path = "/k8s-api/fake/api/v1/namespaces/bulk/pods?limit=500".to_string();
        if !continue_token.is_empty() {
            path.push_str(&format!("&continue={continue_token}"));
        }
        let response = measured
            .client
            .get(measured.url(&path))
            .bearer_auth(&admin_token)
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status().as_u16(), 200);
        let body = response.bytes().await.expect("the page is read");
        bytes += body.len();
        let page: Value = serde_json::from_slice(&body).expect("a PodList");
        seen += page["items"].as_array().map_or(0, Vec::len);
        pages += 1;
        continue_token = page["metadata"]["continue"].as_str().unwrap_or("").to_string();
        if continue_token.is_empty() || pages > 20 {
            break;
        }
    }
    let after = vm_rss_kib(measured.pid);
    let growth_mib = after.saturating_sub(before) as f64 / 1024.0;
    println!(
        "RSS of replica 1 listing {seen} pods in {pages} pages ({:.1} MiB of JSON): {before} KiB -> {after} KiB, growth {growth_mib:.1} MiB",
        bytes as f64 / 1_048_576.0
    );
    assert_eq!(seen, 5000);
    assert!(growth_mib < 50.0, "RSS grew by {growth_mib:.1} MiB");
}

/// Waits until `predicate` holds for the endpoint states of `cluster` on `replica`.
async fn wait_for_endpoints(
    replica: &Replica,
    token: &str,
    cluster: &str,
    what: &str,
    predicate: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = request(
            replica,
            reqwest::Method::GET,
            &format!("/kuboard-api/clusters/{cluster}/endpoints"),
            token,
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let endpoints = body["endpoints"].as_array().cloned().unwrap_or_default();
        if predicate(&endpoints) {
            return endpoints;
        }
        assert!(Instant::now() < deadline, "{what}: endpoints still {endpoints:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn state_of(endpoints: &[Value], url: &str) -> String {
    endpoints
        .iter()
        .find(|endpoint| endpoint["url"] == url)
        .and_then(|endpoint| endpoint["state"].as_str())
        .unwrap_or("absent")
        .to_string()
}

/// Reads a watch stream line by line; `Ok(None)` is a clean end, `Err` an aborted one.
struct WatchReader {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl WatchReader {
    async fn next(&mut self, timeout: Duration) -> Result<Option<Value>, String> {
        let until = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(end) = self.buffer.iter().position(|byte| *byte == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                return Ok(Some(serde_json::from_slice(&line).expect("every watch line is JSON")));
            }
            match tokio::time::timeout_at(until, self.response.chunk()).await {
                Err(_) => return Err("no watch event before the deadline".into()),
                Ok(Ok(Some(bytes))) => self.buffer.extend_from_slice(&bytes),
                Ok(Ok(None)) => return Ok(None),
                Ok(Err(error)) => return Err(format!("the watch was aborted: {error}")),
            }
        }
    }

    /// The next event that is not a bookmark.
    async fn next_change(&mut self, timeout: Duration) -> Result<Option<Value>, String> {
        loop {
            match self.next(timeout).await? {
                Some(event) if event["type"] == "BOOKMARK" => continue,
                other => return Ok(other),
            }
        }
    }
}

async fn open_watch(replica: &Replica, token: &str, resource_version: &str) -> WatchReader {
    let response = replica
        .client
        .get(replica.url(&format!(
            "/k8s-api/fake/api/v1/namespaces/default/configmaps?watch=true&allowWatchBookmarks=true&resourceVersion={resource_version}"
        )))
        .bearer_auth(token)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .expect("the watch opens");
    assert_eq!(response.status().as_u16(), 200);
    WatchReader {
        response,
        buffer: Vec::new(),
    }
}

fn configmap(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}, "data": {"k": name}})
}

/// One replica with a fake cluster of `instances` apiservers imported as `fake` (every URL in the
/// kubeconfig's server field). Holds the directories the replica runs in.
struct ImportedFake {
    cluster: FakeCluster,
    replica: Replica,
    token: String,
    urls: Vec<String>,
    /// The import's answer (endpoints and probes).
    imported: Value,
    _data: tempfile::TempDir,
    _logs: tempfile::TempDir,
}

async fn replica_with_fake_imported(instances: usize) -> ImportedFake {
    let cluster = start_fake(instances).await;
    let data = tempfile::tempdir().expect("a data dir");
    let logs = tempfile::tempdir().expect("a log dir");
    let mut replica = Replica::start(data.path(), logs.path());
    replica.wait_ready(Duration::from_secs(30)).await;
    let token = replica.change_admin_password(NEW_ADMIN_PASSWORD).await;
    let urls = cluster.urls();
    let kubeconfig = certs::kubeconfig(
        &urls.join(","),
        &cluster.ca.cert_pem,
        &Credential::ClientCertificate(cluster.admin.clone()),
        None,
    );
    let (status, imported) = import(
        &Endpoint::plain(&replica),
        &token,
        &json!({"name": "fake", "kubeconfig": kubeconfig}),
    )
    .await;
    assert_eq!(status, 201, "{imported}");
    ImportedFake {
        cluster,
        replica,
        token,
        urls,
        imported,
        _data: data,
        _logs: logs,
    }
}

/// A watch of configmaps through the proxy from the current list version, shown to deliver the
/// creation of `name`; returns it and the version of that event.
async fn watch_seeing(replica: &Replica, token: &str, cluster: &FakeCluster, name: &str) -> (WatchReader, String) {
    let (status, list) = request(
        replica,
        reqwest::Method::GET,
        "/k8s-api/fake/api/v1/namespaces/default/configmaps",
        token,
        None,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    let list_version = list["metadata"]["resourceVersion"]
        .as_str()
        .expect("a list version")
        .to_string();
    let mut watch = open_watch(replica, token, &list_version).await;
    cluster.state.create_object(configmap(name)).expect("created");
    let event = watch
        .next_change(Duration::from_secs(5))
        .await
        .expect("an event")
        .expect("not ended");
    assert_eq!(
        (event["type"].as_str(), event["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some(name))
    );
    let version = event["object"]["metadata"]["resourceVersion"]
        .as_str()
        .expect("a version")
        .to_string();
    (watch, version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_between_three_apiservers() {
    init_tracing();
    let ImportedFake {
        cluster,
        mut replica,
        token,
        urls,
        imported: answer,
        // Bound, not dropped: the replica runs in these directories until the test ends.
        _data,
        _logs,
    } = replica_with_fake_imported(3).await;

    tracing::info!("phase: one cluster with three apiservers in its server field");
    assert_eq!(answer["endpoints"].as_array().map(Vec::len), Some(3), "{answer}");
    assert!(answer["probes"]
        .as_array()
        .is_some_and(|probes| probes.iter().all(|probe| probe["reachable"] == true)));
    wait_for_endpoints(&replica, &token, "fake", "all checked", |endpoints| {
        state_of(endpoints, &urls[0]) == "preferred"
            && state_of(endpoints, &urls[1]) == "healthy"
            && state_of(endpoints, &urls[2]) == "healthy"
    })
    .await;

    tracing::info!("phase: a watch through the preferred apiserver");
    let (mut watch, last_version) = watch_seeing(&replica, &token, &cluster, "before-stop").await;
    let served_before = [cluster.servers[1].request_count(), cluster.servers[2].request_count()];

    tracing::info!("phase: stop the preferred apiserver");
    let stopped_at = Instant::now();
    cluster.servers[0].stop().await;
    let ended = watch.next_change(Duration::from_secs(5)).await;
    assert_eq!(ended, Ok(None), "the in-flight watch ends cleanly");
    let watch_end = stopped_at.elapsed();
    let mut attempts = 0;
    let failover = loop {
        attempts += 1;
        let (status, _) = request(
            &replica,
            reqwest::Method::GET,
            "/k8s-api/fake/api/v1/namespaces/default/pods",
            &token,
            None,
        )
        .await;
        if status == 200 {
            break stopped_at.elapsed();
        }
        assert!(
            stopped_at.elapsed() < Duration::from_secs(2),
            "no success within 2 s of the stop (last status {status})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!(
        "failover: the watch ended {} ms after the stop; the first request succeeded through another apiserver {} ms after the stop (attempt {attempts})",
        watch_end.as_millis(),
        failover.as_millis()
    );
    assert!(failover < Duration::from_secs(2));
    assert!(
        cluster.servers[1].request_count() + cluster.servers[2].request_count() > served_before[0] + served_before[1],
        "another apiserver served"
    );

    tracing::info!("phase: the re-established watch continues from its resource version");
    cluster.state.create_object(configmap("while-away")).expect("created");
    let mut watch = open_watch(&replica, &token, &last_version).await;
    let event = watch
        .next_change(Duration::from_secs(5))
        .await
        .expect("an event")
        .expect("not ended");
    assert_eq!(
        (event["type"].as_str(), event["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("while-away")),
        "the change made while no watch was open is delivered, nothing before it again"
    );
    cluster.state.create_object(configmap("after")).expect("created");
    let event = watch
        .next_change(Duration::from_secs(5))
        .await
        .expect("an event")
        .expect("not ended");
    assert_eq!(event["object"]["metadata"]["name"], "after");
    let endpoints = wait_for_endpoints(&replica, &token, "fake", "the stopped one failed", |endpoints| {
        state_of(endpoints, &urls[0]) == "failed"
    })
    .await;
    assert!(
        endpoints
            .iter()
            .filter(|endpoint| endpoint["state"] == "preferred")
            .count()
            == 1,
        "{endpoints:?}"
    );

    tracing::info!("phase: the stopped apiserver rejoins after passing its checks");
    cluster.servers[0].restart().await.expect("it restarts");
    let restarted_at = Instant::now();
    wait_for_endpoints(&replica, &token, "fake", "recovering", |endpoints| {
        state_of(endpoints, &urls[0]) == "recovering" || state_of(endpoints, &urls[0]) == "healthy"
    })
    .await;
    wait_for_endpoints(&replica, &token, "fake", "rejoined", |endpoints| {
        state_of(endpoints, &urls[0]) == "healthy"
    })
    .await;
    println!(
        "rejoin: the restarted apiserver was healthy again {} ms after its restart",
        restarted_at.elapsed().as_millis()
    );

    tracing::info!("phase: the metrics show every endpoint");
    let metrics = replica
        .client
        .get(replica.url("/metrics"))
        .send()
        .await
        .expect("answered")
        .text()
        .await
        .expect("read");
    for url in &urls {
        assert!(
            metrics.contains(&format!(
                "kuboard_apiserver_endpoint_state{{cluster=\"fake\",endpoint=\"{url}\"}}"
            )),
            "{url} in the metrics"
        );
    }
    // At least the one failover of the stop; a health check that timed out on a loaded machine may
    // add another, which is the balancer doing its work, not a fault.
    let failovers = metric_value(&metrics, "kuboard_apiserver_failovers_total{cluster=\"fake\"}");
    assert!(
        failovers.is_some_and(|count| count >= 1.0),
        "failover counted: {failovers:?}"
    );
    assert!(
        metrics.contains("kuboard_apiserver_errors_total{cluster=\"fake\""),
        "errors counted"
    );
    drop(watch);
    replica.terminate(Duration::from_secs(10));
}

/// The value of the sample `series` (name and labels exactly as exposed) in Prometheus text.
fn metric_value(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// An apiserver that keeps serving but fails `/readyz` is failed by the balancer, which closes every
/// connection to it: the fake never ends the watch itself, so the watch ending proves the close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unready_apiserver_loses_its_connections_while_it_still_serves() {
    init_tracing();
    let ImportedFake {
        cluster,
        mut replica,
        token,
        urls,
        imported: _,
        _data,
        _logs,
    } = replica_with_fake_imported(2).await;
    wait_for_endpoints(&replica, &token, "fake", "all checked", |endpoints| {
        state_of(endpoints, &urls[0]) == "preferred" && state_of(endpoints, &urls[1]) == "healthy"
    })
    .await;

    tracing::info!("phase: a watch through the preferred apiserver");
    let (mut watch, _) = watch_seeing(&replica, &token, &cluster, "before").await;

    tracing::info!("phase: the preferred apiserver fails /readyz but keeps serving");
    let unready_at = Instant::now();
    cluster.servers[0].set_ready(false);
    let ended = watch.next_change(Duration::from_secs(15)).await;
    let watch_end = unready_at.elapsed();
    assert_eq!(ended, Ok(None), "the balancer closed the watch's connection");
    assert!(
        cluster.servers[0].is_running().await,
        "the apiserver itself never stopped"
    );
    let endpoints = wait_for_endpoints(&replica, &token, "fake", "failed over", |endpoints| {
        state_of(endpoints, &urls[0]) == "failed" && state_of(endpoints, &urls[1]) == "preferred"
    })
    .await;
    println!(
        "unready apiserver: its watch was closed {} ms after /readyz began to fail; endpoints {endpoints:?}",
        watch_end.as_millis()
    );

    tracing::info!("phase: requests go to the other apiserver");
    let served_before = cluster.servers[1].request_count();
    let (status, _) = request(
        &replica,
        reqwest::Method::GET,
        "/k8s-api/fake/api/v1/namespaces/default/pods",
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        cluster.servers[1].request_count() > served_before,
        "the healthy apiserver served it"
    );

    tracing::info!("phase: ready again, it rejoins");
    cluster.servers[0].set_ready(true);
    wait_for_endpoints(&replica, &token, "fake", "rejoined", |endpoints| {
        state_of(endpoints, &urls[0]) == "healthy"
    })
    .await;
    drop(watch);
    replica.terminate(Duration::from_secs(10));
}
