//! Replicas started with no TLS variable at all: the kubeconfig a user downloads works with the
//! machine's kubectl at once (get, logs, exec), through every replica. kubectl sends a bearer token
//! only over TLS, so the kubeconfig must name the replicas' HTTPS port and carry the group CA that
//! every replica's serving certificate chains to. Where no working address can be given, the
//! download says why instead of handing out a kubeconfig that cannot work.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{free_port, Group, Replica};
use kuboard_testkit::{FakeCluster, FakeClusterOptions, PolicyRule, Rbac, StateConfig};
use serde_json::{json, Value};

const NEW_ADMIN_PASSWORD: &str = "t84-Root-Passw0rd";

async fn start_fake() -> FakeCluster {
    let cluster = FakeCluster::start_with(FakeClusterOptions {
        instances: 1,
        state: StateConfig {
            log_follow_interval: Duration::from_millis(50),
            log_follow_max_lines: 3,
            ..StateConfig::default()
        },
        ..FakeClusterOptions::default()
    })
    .await
    .expect("the fake cluster starts");
    let mut rbac = Rbac::default();
    rbac.rules.push(PolicyRule::admin_group("kuboard:administrators"));
    cluster.state.set_rbac(rbac);
    cluster
        .state
        .create_object(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "shell", "namespace": "default"},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]}}))
        .expect("the pod is created");
    cluster
}

async fn request(
    replica: &Replica,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut builder = replica.client.request(method, replica.url(path));
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

async fn wait_ready(replica: &Replica) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = replica.client.get(replica.url("/readyz")).send().await {
            if response.status() == 200 {
                return;
            }
        }
        assert!(Instant::now() < deadline, "ready within 30 s; log:\n{}", replica.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn login_changing_password(replica: &Replica) -> String {
    let login = |password: &str| {
        let body = json!({"username": "admin", "password": password});
        async move {
            request(
                replica,
                reqwest::Method::POST,
                "/kuboard-api/auth/login",
                "",
                Some(&body),
            )
            .await
        }
    };
    let (status, body) = login(common::ADMIN_PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().expect("a token").to_string();
    let (status, body) = request(
        replica,
        reqwest::Method::POST,
        "/kuboard-api/auth/password",
        &token,
        Some(&json!({"current_password": common::ADMIN_PASSWORD, "new_password": NEW_ADMIN_PASSWORD})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = login(NEW_ADMIN_PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().expect("a token").to_string()
}

/// Runs kubectl with nothing but the kubeconfig (and `server` instead of its address, when given).
async fn kubectl(
    home: &Path,
    kubeconfig: &Path,
    server: Option<&str>,
    args: &[&str],
    stdin: Option<&str>,
) -> (i32, String, String) {
    let mut options: Vec<&std::ffi::OsStr> = Vec::new();
    if let Some(server) = server {
        options.extend([std::ffi::OsStr::new("--server"), std::ffi::OsStr::new(server)]);
    }
    common::kubectl(home, kubeconfig, &options, args, stdin).await
}

/// Downloads the admin's kubeconfig for `cluster` over plain HTTP, as the console does behind the
/// install guide's `http://<lb>:80`.
async fn download(replica: &Replica, token: &str, cluster: &str, home: &Path, file: &str) -> (PathBuf, String) {
    let response = replica
        .client
        .get(replica.url(&format!("/kuboard-api/clusters/{cluster}/kubeconfig")))
        .bearer_auth(token)
        .send()
        .await
        .expect("the replica answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("the kubeconfig is read");
    assert_eq!(status, 200, "{text}");
    let path = home.join(file);
    std::fs::write(&path, &text).expect("the kubeconfig is written");
    (path, text)
}

fn field<'a>(kubeconfig: &'a str, name: &str) -> Option<&'a str> {
    kubeconfig
        .lines()
        .find_map(|line| line.trim().strip_prefix(name)?.strip_prefix(": "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubeconfig_downloaded_from_replicas_without_tls_variables_works_with_kubectl() {
    let cluster = start_fake().await;
    let home = tempfile::tempdir().expect("a kubectl home");
    let https_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let group = Group::start_with_env(3, &|index| {
        vec![("KUBOARD_SERVER_HTTPS_PORT".to_string(), https_ports[index].to_string())]
    });
    for replica in &group.replicas {
        wait_ready(replica).await;
    }
    let first = &group.replicas[0];
    let token = login_changing_password(first).await;
    let (status, answer) = request(
        first,
        reqwest::Method::POST,
        "/kuboard-api/cluster-imports",
        &token,
        Some(&json!({"name": "fake", "kubeconfig": cluster.admin_kubeconfig(0)})),
    )
    .await;
    assert_eq!(status, 201, "{answer}");

    let mut authorities = Vec::new();
    for (index, replica) in group.replicas.iter().enumerate() {
        let (config, text) = download(
            replica,
            &token,
            "fake",
            home.path(),
            &format!("kubeconfig-{index}.yaml"),
        )
        .await;
        // What a new user does first: kubectl with the downloaded file and nothing else.
        let (code, out, err) = kubectl(home.path(), &config, None, &["get", "pods"], None).await;
        assert_eq!(
            code, 0,
            "kubectl get through replica {index}: {err}\nkubeconfig:\n{text}"
        );
        assert!(out.starts_with("NAME") && out.contains("shell"), "{out}");
        assert_eq!(
            field(&text, "server"),
            Some(format!("https://127.0.0.1:{}/k8s-api/fake", https_ports[index]).as_str()),
            "{text}"
        );
        authorities.push(
            field(&text, "certificate-authority-data")
                .expect("the kubeconfig carries the group CA")
                .to_string(),
        );
    }
    assert!(
        authorities.iter().all(|ca| *ca == authorities[0]),
        "every replica hands out the same CA"
    );

    // One kubeconfig, every replica's HTTPS address: the same CA verifies them all.
    let (config, _) = download(&group.replicas[1], &token, "fake", home.path(), "kubeconfig.yaml").await;
    for (index, port) in https_ports.iter().enumerate() {
        let server = format!("https://127.0.0.1:{port}/k8s-api/fake");
        let (code, out, err) = kubectl(
            home.path(),
            &config,
            Some(&server),
            &["get", "pods", "-o", "name"],
            None,
        )
        .await;
        assert_eq!(
            (code, out.trim()),
            (0, "pod/shell"),
            "get through replica {index}: {err}"
        );
        let (code, out, err) = kubectl(
            home.path(),
            &config,
            Some(&server),
            &["logs", "shell", "--tail=1"],
            None,
        )
        .await;
        assert_eq!(code, 0, "logs through replica {index}: {err}");
        assert_eq!(out.lines().count(), 1, "{out:?}");
        let (code, out, err) = kubectl(
            home.path(),
            &config,
            Some(&server),
            &["exec", "-i", "shell", "--", "sh"],
            Some("echo through-replica-https\nexit 3\n"),
        )
        .await;
        assert_eq!(
            (code, out.as_str()),
            (3, "through-replica-https\n"),
            "exec through replica {index}: {err}"
        );
    }

    // The console's download (a session token rather than a new access key) names the same address.
    let response = group.replicas[2]
        .client
        .get(group.replicas[2].url("/kuboard-api/clusters/fake/kubeconfig?credential=session"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("the replica answers");
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.expect("read");
    assert_eq!(
        field(&text, "server"),
        Some(format!("https://127.0.0.1:{}/k8s-api/fake", https_ports[2]).as_str())
    );
    assert_eq!(
        field(&text, "certificate-authority-data"),
        Some(authorities[0].as_str())
    );
}

/// With the HTTPS port off and only plain HTTP to offer, the download refuses with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubeconfig_that_cannot_work_is_refused_with_the_reason() {
    let data = tempfile::tempdir().expect("data dir");
    let logs = tempfile::tempdir().expect("log dir");
    let replica = Replica::start_with(
        data.path(),
        logs.path(),
        &[
            ("KUBOARD_SERVER_HTTPS_PORT", "off"),
            ("KUBOARD_ENDPOINT", "http://kuboard.example"),
        ],
    );
    wait_ready(&replica).await;
    let token = login_changing_password(&replica).await;
    let (status, body) = request(
        &replica,
        reqwest::Method::GET,
        "/kuboard-api/clusters/fake/kubeconfig",
        &token,
        None,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "kubeconfig_needs_https", "{body}");
    let message = body["message"].as_str().expect("a message");
    assert!(
        message.contains("KUBOARD_SERVER_HTTPS_PORT") && message.contains("plain HTTP"),
        "{message}"
    );
    let (status, keys) = request(
        &replica,
        reqwest::Method::GET,
        "/kuboard-api/auth/access-keys",
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200, "{keys}");
    assert_eq!(keys, json!([]), "no access key was made for the refused download");
}

/// On external etcd too, replicas starting together make one group CA (a compare-and-swap on an
/// absent key), keep its key sealed, and serve certificates that chain to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_external_etcd_serve_certificates_of_one_stored_ca() {
    let etcd = kuboard_storage::testing::EtcdCluster::start(1)
        .await
        .expect("start etcd");
    let endpoints = etcd.client_endpoints().join(",");
    let data = tempfile::tempdir().expect("data dir");
    let logs = tempfile::tempdir().expect("log dir");
    let https_ports = [free_port(), free_port()];
    let mut replicas: Vec<Replica> = https_ports
        .iter()
        .enumerate()
        .map(|(index, port)| {
            Replica::start_with(
                &data.path().join(format!("replica-{index}")),
                logs.path(),
                &[
                    ("KUBOARD_ETCD_ENDPOINTS", endpoints.as_str()),
                    ("KUBOARD_SSO_CLIENT_SECRET", common::TEST_SSO_CLIENT_SECRET),
                    ("KUBOARD_SERVER_HTTPS_PORT", &port.to_string()),
                ],
            )
        })
        .collect();
    for replica in &mut replicas {
        replica.wait_ready_within(Duration::from_secs(30)).await;
    }

    let mut client = etcd_client::Client::connect(etcd.client_endpoints(), None)
        .await
        .expect("connect to etcd");
    let deadline = Instant::now() + Duration::from_secs(30);
    let record: Value = loop {
        let response = client.get("/kuboard/tls/group-ca", None).await.expect("read etcd");
        if let Some(kv) = response.kvs().first() {
            let text = kv.value_str().expect("UTF-8");
            assert!(!text.contains("PRIVATE KEY"), "the CA key is sealed: {text}");
            break serde_json::from_str(text).expect("a JSON record");
        }
        assert!(Instant::now() < deadline, "the group CA is stored within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ca_pem = record["certificate_pem"].as_str().expect("the CA certificate");
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("CA PEM"))
        .tls_built_in_root_certs(false)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTPS client");
    for (index, port) in https_ports.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match https.get(format!("https://127.0.0.1:{port}/healthz")).send().await {
                Ok(response) => {
                    assert_eq!(response.status().as_u16(), 200, "replica {index}");
                    break;
                }
                Err(error) => assert!(
                    Instant::now() < deadline,
                    "replica {index} serves HTTPS with a certificate of the stored CA: {error:?}\n{}",
                    replicas[index].log()
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
