//! A replica serving HTTPS (certificate made with rcgen) with Secure cookies and CSRF checks;
//! `kuboard admin reset-password` offline and through a replica; several replicas without
//! `KUBOARD_SSO_CLIENT_SECRET` refused.

mod common;

use std::time::{Duration, Instant};

use common::{free_port, make_test_pki, run_to_completion, Replica, ADMIN_PASSWORD, TEST_CLUSTER_SECRET};
use serde_json::{json, Value};

const START_TIMEOUT: Duration = Duration::from_secs(30);
const NEW_PASSWORD: &str = "Https-Pass-2024";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_login_sets_secure_cookies_and_cookie_changes_need_the_csrf_token() {
    let data = tempfile::tempdir().expect("data dir");
    let logs = tempfile::tempdir().expect("log dir");
    let pki = make_test_pki(logs.path());
    let cert = pki.server_cert.to_string_lossy().into_owned();
    let key = pki.server_key.to_string_lossy().into_owned();
    let replica = Replica::start_with(
        data.path(),
        logs.path(),
        &[("KUBOARD_TLS_CERT", &cert), ("KUBOARD_TLS_KEY", &key)],
    );
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca).expect("read CA")).expect("CA PEM");
    let client = reqwest::Client::builder()
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTPS client");
    let url = |path: &str| format!("https://127.0.0.1:{}{path}", replica.port);

    let started = Instant::now();
    loop {
        if let Ok(response) = client.get(url("/readyz")).send().await {
            if response.status() == 200 {
                break;
            }
        }
        assert!(
            started.elapsed() < START_TIMEOUT,
            "ready over HTTPS; log:\n{}",
            replica.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        replica.client.get(replica.url("/healthz")).send().await.is_err(),
        "plain HTTP is not served on the HTTPS port"
    );

    let login = |password: &'static str, remember: bool| {
        client
            .post(url("/kuboard-api/auth/login"))
            .json(&json!({ "username": "admin", "password": password, "remember": remember }))
            .send()
    };
    let response = login(ADMIN_PASSWORD, false).await.expect("login over HTTPS");
    assert_eq!(response.status(), 200);
    let cookies: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().expect("ascii cookie").to_string())
        .collect();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    for cookie in &cookies {
        assert!(
            cookie.contains("; Secure") && cookie.contains("SameSite=Lax"),
            "{cookie}"
        );
    }
    assert!(cookies[0].starts_with("kuboard_session=") && cookies[0].contains("HttpOnly"));
    assert!(cookies[1].starts_with("kuboard_csrf=") && !cookies[1].contains("HttpOnly"));
    let body: Value = response.json().await.expect("JSON");
    let (token, csrf) = (
        body["token"].as_str().expect("token").to_string(),
        body["csrf_token"].as_str().expect("csrf").to_string(),
    );

    // The password change is a change made with the cookie: refused without the CSRF token.
    let change = json!({ "current_password": ADMIN_PASSWORD, "new_password": NEW_PASSWORD });
    let refused = client
        .post(url("/kuboard-api/auth/password"))
        .header("cookie", format!("kuboard_session={token}"))
        .json(&change)
        .send()
        .await
        .expect("send");
    assert_eq!(refused.status(), 403);
    let accepted = client
        .post(url("/kuboard-api/auth/password"))
        .header("cookie", format!("kuboard_session={token}"))
        .header("x-kuboard-csrf", &csrf)
        .json(&change)
        .send()
        .await
        .expect("send");
    assert_eq!(accepted.status(), 200, "{:?}", accepted.text().await);

    // "Stay logged in" gives the longer lifetime (7 days by default).
    let response = login(NEW_PASSWORD, true).await.expect("login");
    let cookie = response.headers()["set-cookie"].to_str().expect("ascii").to_string();
    assert!(cookie.contains("Max-Age=604800"), "{cookie}");
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["remember"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_password_offline_and_through_a_replica() {
    let data = tempfile::tempdir().expect("data dir");
    let logs = tempfile::tempdir().expect("log dir");
    let mut replica = Replica::start(data.path(), logs.path());
    replica.wait_ready(START_TIMEOUT).await;
    let token = replica.change_admin_password(NEW_PASSWORD).await;
    let (code, body) = replica
        .post_json(
            "/kuboard-api/users",
            &token,
            &json!({ "username": "alice", "password": "first-pass-1", "groups": ["ops"] }),
        )
        .await;
    assert_eq!(code, 201, "{body}");

    // Through the replica, as the admin.
    let server = replica.url("");
    let through = run_to_completion(
        &[
            "admin",
            "reset-password",
            "alice",
            "--new-password",
            "second-pass-2",
            "--server",
            &server,
        ],
        &[("KUBOARD_ADMIN_PASSWORD", NEW_PASSWORD)],
        Duration::from_secs(30),
    );
    assert!(through.status.success(), "{}{}", through.stdout, through.stderr);
    assert_eq!(replica.login("alice", "first-pass-1").await.status(), 401);
    let response = replica.login("alice", "second-pass-2").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["must_change_password"], true);

    // Offline, with the replica stopped: the admin's forgotten password is replaced.
    replica.stop();
    let data_dir = data.path().to_string_lossy().into_owned();
    let offline = run_to_completion(
        &["admin", "reset-password", "admin"],
        &[("KUBOARD_DATA_DIR", &data_dir)],
        Duration::from_secs(60),
    );
    assert!(offline.status.success(), "{}{}", offline.stdout, offline.stderr);
    let generated = offline
        .stdout
        .rsplit("the new password is: ")
        .next()
        .expect("the generated password is printed")
        .trim()
        .to_string();
    replica.restart();
    replica.wait_ready(START_TIMEOUT).await;
    assert_eq!(replica.login("admin", NEW_PASSWORD).await.status(), 401);
    let response = replica.login("admin", &generated).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["must_change_password"], true);
    replica.stop();
}

#[test]
fn several_replicas_without_the_sso_secret_are_refused() {
    let peers = format!("1=127.0.0.1:{},2=127.0.0.1:{}", free_port(), free_port());
    let data = tempfile::tempdir().expect("data dir");
    let data_dir = data.path().to_string_lossy().into_owned();
    let finished = run_to_completion(
        &["serve"],
        &[
            ("KUBOARD_RAFT_PEERS", &peers),
            ("KUBOARD_RAFT_NODE_ID", "1"),
            ("KUBOARD_CLUSTER_SECRET", TEST_CLUSTER_SECRET),
            ("KUBOARD_DATA_DIR", &data_dir),
        ],
        Duration::from_secs(20),
    );
    assert_eq!(finished.status.code(), Some(2), "{}", finished.stderr);
    assert!(
        finished.stderr.contains("KUBOARD_SSO_CLIENT_SECRET is not set"),
        "{}",
        finished.stderr
    );
}
