//! The Kubernetes proxy judges a request by the namespace the apiserver will act on: a user
//! bound to one namespace, going through a real `kuboard serve` replica to the fake apiserver
//! of testkit, reads that namespace and cannot reach another one by dot-segments, encoded
//! slashes, backslashes or empty segments in the path. Those paths are refused with 400 and a
//! Kubernetes `Status` body before anything is sent upstream.

mod common;

use std::time::Duration;

use common::Replica;
use kuboard_testkit::{certs, Credential, FakeCluster, PolicyRule, Rbac};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const NEW_ADMIN_PASSWORD: &str = "t80-Root-Passw0rd";

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_test_writer()
        .try_init();
}

/// Sends one GET with `target` exactly as written (an HTTP client library would resolve the
/// dot-segments itself) and returns the status and the body.
async fn raw_get(port: u16, target: &str, token: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the replica accepts a connection");
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("the request is written");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
        .await
        .expect("the replica answers within 20 s")
        .expect("the answer is read");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("an HTTP status line in {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespaced_user_cannot_leave_its_namespace_through_the_path() {
    init_tracing();
    tracing::info!("phase: a fake cluster whose RBAC grants the namespace view group, with a secret in dev and prod");
    let cluster = FakeCluster::start(1).await.expect("the fake cluster starts");
    let mut rbac = Rbac::default();
    rbac.rules.push(PolicyRule::admin_group("kuboard:administrators"));
    // What an administrator binds for Kuboard: the namespace group is granted everywhere, since
    // Kuboard adds it only to requests in a namespace the user is bound to.
    rbac.rules.push(PolicyRule {
        namespaces: vec!["*".to_string()],
        ..PolicyRule::viewer_group("kuboard:namespace:view")
    });
    cluster.state.set_rbac(rbac);
    for namespace in ["dev", "prod"] {
        cluster
            .state
            .create_object(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}))
            .expect("the namespace is created");
        cluster
            .state
            .create_object(json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": format!("{namespace}-secret"), "namespace": namespace},
                "data": {"password": "c2VjcmV0"}}))
            .expect("the secret is created");
    }

    tracing::info!("phase: a replica with the cluster imported and a user bound to dev only");
    let data = tempfile::tempdir().expect("a data dir");
    let logs = tempfile::tempdir().expect("a log dir");
    let mut replica = Replica::start(data.path(), logs.path());
    replica.wait_ready(Duration::from_secs(30)).await;
    let admin = replica.change_admin_password(NEW_ADMIN_PASSWORD).await;
    let kubeconfig = certs::kubeconfig(
        &cluster.urls().join(","),
        &cluster.ca.cert_pem,
        &Credential::ClientCertificate(cluster.admin.clone()),
        None,
    );
    let (status, body) = replica
        .post_json(
            "/kuboard-api/cluster-imports",
            &admin,
            &json!({"name": "c", "kubeconfig": kubeconfig}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = replica
        .post_json(
            "/kuboard-api/users",
            &admin,
            &json!({"username": "dana", "password": "first-password-1", "role": "viewer"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = replica
        .post_json(
            "/kuboard-api/role-bindings",
            &admin,
            &json!({"subject": {"kind": "user", "name": "dana"}, "cluster": "c", "namespace": "dev", "role": "view"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let first = replica.login_token("dana", "first-password-1").await;
    let (status, body) = replica
        .post_json(
            "/kuboard-api/auth/password",
            &first,
            &json!({"current_password": "first-password-1", "new_password": "second-password-2"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let token = replica.login_token("dana", "second-password-2").await;

    tracing::info!("phase: the user reads dev and is denied prod by the cluster");
    let (status, body) = raw_get(replica.port, "/k8s-api/c/api/v1/namespaces/dev/secrets", &token).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("dev-secret"), "{body}");
    let (status, body) = raw_get(replica.port, "/k8s-api/c/api/v1/namespaces/prod/secrets", &token).await;
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("c2VjcmV0"), "{body}");

    tracing::info!("phase: every path that leaves dev by its spelling is refused with a clear 400");
    for target in [
        "/k8s-api/c/api/v1/namespaces/dev/../../../api/v1/namespaces/prod/secrets",
        "/k8s-api/c/api/v1/namespaces/dev/../prod/secrets",
        "/k8s-api/c/api/v1/namespaces/dev/%2e%2e/%2e%2e/%2e%2e/api/v1/namespaces/prod/secrets",
        "/k8s-api/c/api/v1/namespaces/dev/%2E%2E/prod/secrets",
        "/k8s-api/c/api/v1/namespaces/dev%2f..%2fprod/secrets",
        "/k8s-api/c/api/v1/namespaces/dev%5C..%5Cprod/secrets",
        "/k8s-api/c/api/v1/namespaces//prod/secrets",
        "/k8s-api/c/api/v1/namespaces/dev/./../prod/secrets?limit=5",
    ] {
        let (status, body) = raw_get(replica.port, target, &token).await;
        assert_eq!(status, 400, "{target}: {body}");
        let status_object: Value =
            serde_json::from_str(&body).unwrap_or_else(|error| panic!("{target}: a JSON Status ({error}): {body}"));
        assert_eq!(status_object["kind"], "Status", "{target}: {body}");
        assert_eq!(status_object["reason"], "BadRequest", "{target}: {body}");
        let message = status_object["message"].as_str().unwrap_or_default();
        assert!(message.contains("path"), "{target}: the message names the path: {body}");
        assert!(!body.contains("prod-secret"), "{target}: {body}");
    }
    tracing::info!("phase: a SelfSubjectAccessReview is judged by the namespace it asks about");
    // The review's path is cluster-scoped; the console asks with it before enabling a button.
    let review = |namespace: Option<&str>, verb: &str| {
        let mut attributes = json!({"verb": verb, "resource": "secrets"});
        if let Some(namespace) = namespace {
            attributes["namespace"] = json!(namespace);
        }
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes}})
    };
    for (namespace, verb, allowed) in [
        (Some("dev"), "list", true),
        (Some("dev"), "delete", false),
        (Some("prod"), "list", false),
        (None, "list", false),
        (Some("Not_A_Namespace"), "list", false),
    ] {
        let (status, body) = replica
            .post_json(
                "/k8s-api/c/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                &token,
                &review(namespace, verb),
            )
            .await;
        assert_eq!(status, 201, "{namespace:?} {verb}: {body}");
        assert_eq!(
            body["status"]["allowed"],
            json!(allowed),
            "may dana {verb} secrets in {namespace:?}: {body}"
        );
    }

    // A raw backslash is not a valid request target: the HTTP layer refuses it before the proxy.
    let (status, body) = raw_get(
        replica.port,
        "/k8s-api/c/api/v1/namespaces/dev\\..\\prod/secrets",
        &token,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(!body.contains("prod-secret"), "{body}");
}
