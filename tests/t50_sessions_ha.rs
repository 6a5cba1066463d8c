//! Acceptance of the server core on real replicas: sessions shared by three replicas and ended
//! everywhere at once, login throttling kept in the store, bad input refused without a write, and
//! no credential in any log line.

mod common;

use std::time::{Duration, Instant};

use common::{Group, ADMIN_PASSWORD, TEST_CLUSTER_SECRET, TEST_SSO_CLIENT_SECRET};
use serde_json::{json, Value};

const START_TIMEOUT: Duration = Duration::from_secs(60);
const NEW_PASSWORD: &str = "Acceptance-Pass-42";
const CLUSTER_TOKEN: &str = "cluster-bearer-token-0123456789-secret";

fn phase(name: &str) {
    eprintln!("--- phase: {name}");
}

/// Retries `attempt` until it yields, bounded by `timeout`.
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(started.elapsed() < timeout, "{what} within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn revision(group: &Group, index: usize, token: &str) -> i64 {
    let (code, status) = group.replicas[index]
        .get_json("/kuboard-api/system/status", token)
        .await;
    assert_eq!(code, 200, "status: {status}");
    status["revision"].as_i64().expect("revision")
}

async fn send_raw(group: &Group, index: usize, token: &str, body: Vec<u8>, content_type: &str) -> (u16, Value) {
    let response = group.replicas[index]
        .client
        .post(group.replicas[index].url("/kuboard-api/users"))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("send request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_sessions_throttle_together_and_leak_nothing() {
    let mut group = Group::start(3);
    group.wait_all_ready(START_TIMEOUT).await;
    let (a, b, c) = (0, 1, 2);

    phase("the default password must be changed before anything else");
    let first = group.replicas[a].login_token("admin", ADMIN_PASSWORD).await;
    let (code, body) = group.replicas[b].get_json("/kuboard-api/users", &first).await;
    assert_eq!(
        (code, body["code"].as_str()),
        (403, Some("password_change_required")),
        "{body}"
    );
    let (code, body) = group.replicas[c]
        .post_json(
            "/kuboard-api/auth/password",
            &first,
            &json!({ "current_password": ADMIN_PASSWORD, "new_password": NEW_PASSWORD }),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let (code, _) = group.replicas[a].get_json("/kuboard-api/users", &first).await;
    assert_eq!(code, 200, "the session that changed the password may now do everything");

    phase("a session made on A works on B and C");
    let token = group.replicas[a].login_token("admin", NEW_PASSWORD).await;
    for index in [b, c] {
        let (code, users) = group.replicas[index].get_json("/kuboard-api/users", &token).await;
        assert_eq!(code, 200, "{users}");
        assert_eq!(users[0]["username"], "admin");
    }

    phase("credentials go in, never out");
    // A real identity, since a cluster is stored only with settings it can be connected with; its
    // certificate doubles as the CA. The endpoints are closed loopback ports: nothing is reached.
    let identity = rcgen::generate_simple_self_signed(vec!["kuboard-t50-apiserver".to_string()])
        .expect("generate a test certificate");
    let client_certificate = identity.cert.pem();
    let client_key = identity.key_pair.serialize_pem();
    // A line from the middle of the key: secret material that must never be echoed or logged.
    let key_fragment = client_key.lines().nth(1).expect("a PEM body line").to_string();
    let (code, cluster) = group.replicas[b]
        .post_json(
            "/kuboard-api/clusters",
            &token,
            &json!({
                "name": "prod",
                "endpoints": ["https://127.0.0.1:9", "https://127.0.0.2:9"],
                "credentials": {
                    "token": CLUSTER_TOKEN,
                    "client_certificate": client_certificate,
                    "client_key": client_key,
                    "ca_certificate": client_certificate
                }
            }),
        )
        .await;
    assert_eq!(code, 201, "{cluster}");
    let (code, key) = group.replicas[c]
        .post_json("/kuboard-api/auth/access-keys", &token, &json!({ "name": "ci" }))
        .await;
    assert_eq!(code, 201, "{key}");
    let access_key = key["key"].as_str().expect("the key is shown once").to_string();
    let (code, listed) = group.replicas[a].get_json("/kuboard-api/clusters", &access_key).await;
    assert_eq!(code, 200, "an access key authenticates: {listed}");
    let text = listed.to_string();
    assert!(!text.contains(CLUSTER_TOKEN) && !text.contains(&key_fragment), "{text}");
    assert_eq!(listed[0]["has_token"], true);

    phase("kill -9 A: the session keeps working on B");
    group.replicas[a].kill9();
    let started = Instant::now();
    eventually("the session works on B after A died", Duration::from_secs(20), || {
        let replica = &group.replicas[b];
        let token = token.clone();
        async move { (replica.get_json("/kuboard-api/users", &token).await.0 == 200).then_some(()) }
    })
    .await;
    eprintln!("session usable on B {:?} after the kill", started.elapsed());

    phase("bad input on B: 4xx with a code, and the store's revision unchanged");
    let before = revision(&group, b, &token).await;
    let oversized = format!(r#"{{"username":"x","password":"{}"}}"#, "p".repeat(1024 * 1024 + 10));
    let cases: Vec<(Vec<u8>, &str, u16, &str)> = vec![
        (b"{not json".to_vec(), "application/json", 400, "malformed_json"),
        (
            br#"{"username":"x","password":"long-enough-1","admin":true}"#.to_vec(),
            "application/json",
            422,
            "invalid_body",
        ),
        (
            br#"{"username":42,"password":"long-enough-1"}"#.to_vec(),
            "application/json",
            422,
            "invalid_body",
        ),
        (
            br#"{"username":"x","password":"long-enough-1","role":"root"}"#.to_vec(),
            "application/json",
            422,
            "invalid_body",
        ),
        (oversized.into_bytes(), "application/json", 413, "body_too_large"),
        (
            br#"{"username":"x","password":"p"}"#.to_vec(),
            "text/plain",
            415,
            "unsupported_media_type",
        ),
        (
            br#"{"username":"../x","password":"long-enough-1"}"#.to_vec(),
            "application/json",
            422,
            "invalid_username",
        ),
        (
            br#"{"username":"bob","password":"short"}"#.to_vec(),
            "application/json",
            422,
            "password_too_short",
        ),
    ];
    for (body, content_type, status, code) in cases {
        let (got, answer) = send_raw(&group, b, &token, body, content_type).await;
        assert_eq!((got, answer["code"].as_str()), (status, Some(code)), "{answer}");
        assert!(
            answer["request_id"].as_str().is_some_and(|id| !id.is_empty()),
            "{answer}"
        );
    }
    // A cookie-authenticated change without the CSRF token is refused too.
    let response = group.replicas[b]
        .client
        .post(group.replicas[b].url("/kuboard-api/users"))
        .header("cookie", format!("kuboard_session={token}"))
        .json(&json!({ "username": "eve", "password": "long-enough-1" }))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.expect("JSON error");
    assert_eq!(body["code"], "csrf_token_invalid");
    assert_eq!(
        revision(&group, c, &token).await,
        before,
        "refused requests wrote nothing"
    );

    phase("ten wrong passwords spread over B and C: the next attempt is refused everywhere");
    for attempt in 0..10 {
        let index = if attempt % 2 == 0 { b } else { c };
        let response = group.replicas[index].login("admin", "not-the-password").await;
        assert_eq!(response.status(), 401, "attempt {attempt}");
    }
    for index in [b, c] {
        let response = group.replicas[index].login("admin", NEW_PASSWORD).await;
        assert_eq!(response.status(), 429, "replica {}", index + 1);
        let retry_after: u64 = response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok())
            .expect("Retry-After seconds");
        assert!((1..=300).contains(&retry_after), "{retry_after}");
        let body: Value = response.json().await.expect("JSON error");
        assert_eq!(body["code"], "too_many_attempts");
    }

    phase("logout on B is refused on C at once");
    let response = group.replicas[b]
        .client
        .post(group.replicas[b].url("/kuboard-api/auth/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("logout");
    assert_eq!(response.status(), 204);
    let (code, body) = group.replicas[c].get_json("/kuboard-api/users", &token).await;
    assert_eq!((code, body["code"].as_str()), (401, Some("unauthenticated")), "{body}");

    phase("no credential in any log line");
    group.replicas[b].stop();
    group.replicas[c].stop();
    let logs = group.logs();
    assert!(
        logs.contains("kuboard::audit") && logs.contains("verb=login"),
        "login attempts are audited"
    );
    for secret in [
        ADMIN_PASSWORD,
        NEW_PASSWORD,
        "not-the-password",
        first.as_str(),
        token.as_str(),
        access_key.as_str(),
        CLUSTER_TOKEN,
        key_fragment.as_str(),
        TEST_SSO_CLIENT_SECRET,
        TEST_CLUSTER_SECRET,
    ] {
        assert!(!logs.contains(secret), "a credential appears in the logs: {secret}");
    }
}
