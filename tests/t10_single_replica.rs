//! A single replica on the embedded store, end to end through the real binary: health, login,
//! status, metrics, graceful shutdown, and data that survives SIGTERM and `kill -9`.

mod common;

use std::time::Duration;

use common::{Replica, ADMIN_PASSWORD};
use serde_json::{json, Value};

const START_TIMEOUT: Duration = Duration::from_secs(30);

fn phase(name: &str) {
    eprintln!("--- phase: {name}");
}

#[tokio::test]
async fn fresh_replica_serves_login_status_and_metrics() {
    let data = tempfile::tempdir().expect("create data dir");
    let logs = tempfile::tempdir().expect("create log dir");
    let mut replica = Replica::start(&data.path().join("data"), logs.path());

    phase("healthz answers 200 on a fresh data dir");
    let took = replica.wait_healthy(START_TIMEOUT).await;
    eprintln!("healthy after {} ms", took.as_millis());
    replica.wait_ready(START_TIMEOUT).await;

    phase("admin logs in with the default password");
    let response = replica.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(response.status(), 200);
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with("kuboard_session="))
        .expect("login sets the kuboard_session cookie")
        .to_string();
    assert!(cookie.contains("HttpOnly"), "session cookie must be HttpOnly: {cookie}");
    assert!(
        cookie.contains("SameSite=Lax"),
        "session cookie must be SameSite=Lax: {cookie}"
    );
    let body: Value = response.json().await.expect("login answers JSON");
    let token = body["token"].as_str().expect("token in login answer").to_string();
    assert!(
        token.len() >= 40,
        "a 256-bit token encodes to at least 43 characters: {}",
        token.len()
    );
    assert_eq!(body["username"], "admin");
    assert_eq!(
        body["must_change_password"], true,
        "the default password must be changed"
    );

    phase("the cookie alone also authenticates");
    let cookie_pair = cookie
        .split(';')
        .next()
        .expect("cookie has a name=value pair")
        .to_string();
    let by_cookie = replica
        .client
        .get(replica.url("/kuboard-api/system/status"))
        .header("cookie", cookie_pair)
        .send()
        .await
        .expect("send status request with cookie");
    assert_eq!(by_cookie.status(), 200);

    phase("a wrong password and an unknown user get 401 with a JSON error");
    for (username, password) in [("admin", "wrong-password"), ("nobody", ADMIN_PASSWORD)] {
        let response = replica.login(username, password).await;
        assert_eq!(response.status(), 401, "login {username}/{password}");
        assert!(response.headers().contains_key("x-request-id"));
        let error: Value = response.json().await.expect("error is JSON");
        assert!(error["code"].is_string(), "error has a machine code: {error}");
        assert!(error["message"].is_string(), "error has a message: {error}");
        assert!(error["request_id"].is_string(), "error has a request id: {error}");
    }

    phase("status needs authentication");
    let (status_code, _) = replica.get_json("/kuboard-api/system/status", "not-a-token").await;
    assert_eq!(status_code, 401);
    let anonymous = replica
        .client
        .get(replica.url("/kuboard-api/system/status"))
        .send()
        .await
        .expect("send");
    assert_eq!(anonymous.status(), 401);

    phase("status reports the raft backend with one member, itself the leader");
    let (status_code, status) = replica.get_json("/kuboard-api/system/status", &token).await;
    assert_eq!(status_code, 200, "status: {status}");
    assert_eq!(status["backend"], "raft", "status: {status}");
    let members = status["members"].as_array().expect("members is a list");
    assert_eq!(members.len(), 1, "one member: {status}");
    let replica_id = status["replica_id"].as_u64().expect("replica_id is a number");
    assert_eq!(
        status["leader"].as_u64(),
        Some(replica_id),
        "itself the leader: {status}"
    );
    assert_eq!(members[0]["id"].as_u64(), Some(replica_id));
    assert_eq!(members[0]["role"], "leader");
    assert_eq!(members[0]["healthy"], true);
    assert!(
        status["revision"].as_i64().expect("revision is a number") >= 2,
        "admin was written: {status}"
    );

    phase("metrics are Prometheus text");
    let metrics = replica
        .client
        .get(replica.url("/metrics"))
        .send()
        .await
        .expect("send metrics request");
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.expect("metrics body");
    assert!(text.contains("# TYPE"), "Prometheus exposition format: {text}");
    assert!(
        text.contains("kuboard_http_requests_total"),
        "request counter present: {text}"
    );

    phase("SIGTERM stops the replica with exit code 0 within 5 s");
    let (exit, took) = replica.terminate(Duration::from_secs(10));
    eprintln!("stopped after {} ms", took.as_millis());
    assert!(exit.success(), "exit status after SIGTERM: {exit}");
    assert!(took < Duration::from_secs(5), "graceful stop took {took:?}");

    phase("no log line holds the admin password or the session token");
    let log = replica.log();
    assert!(!log.contains(ADMIN_PASSWORD), "the admin password appears in the log");
    assert!(!log.contains(&token), "a session token appears in the log");
}

#[tokio::test]
async fn password_change_survives_sigterm_and_kill9() {
    let data = tempfile::tempdir().expect("create data dir");
    let logs = tempfile::tempdir().expect("create log dir");
    let mut replica = Replica::start(&data.path().join("data"), logs.path());
    replica.wait_ready(START_TIMEOUT).await;

    phase("change the admin password through the API");
    let token = replica.login_token("admin", ADMIN_PASSWORD).await;
    let first_password = "first-Changed-9";
    let (code, body) = replica
        .post_json(
            "/kuboard-api/auth/password",
            &token,
            &json!({ "current_password": ADMIN_PASSWORD, "new_password": first_password }),
        )
        .await;
    assert_eq!(code, 200, "password change: {body}");
    assert_eq!(
        replica.login("admin", ADMIN_PASSWORD).await.status(),
        401,
        "old password refused at once"
    );
    let token = replica.login_token("admin", first_password).await;

    phase("a wrong current password changes nothing");
    let (code, body) = replica
        .post_json(
            "/kuboard-api/auth/password",
            &token,
            &json!({ "current_password": "not-it-at-all", "new_password": "another-Password-1" }),
        )
        .await;
    assert!(
        (400..500).contains(&code),
        "wrong current password answered {code}: {body}"
    );
    assert_eq!(replica.login("admin", "another-Password-1").await.status(), 401);

    phase("SIGTERM, start again: the change is still there, the default was not re-created");
    let (exit, _) = replica.terminate(Duration::from_secs(10));
    assert!(exit.success(), "exit after SIGTERM: {exit}");
    replica.restart();
    replica.wait_ready(START_TIMEOUT).await;
    assert_eq!(replica.login("admin", ADMIN_PASSWORD).await.status(), 401);
    let token = replica.login_token("admin", first_password).await;
    let (code, status) = replica.get_json("/kuboard-api/system/status", &token).await;
    assert_eq!(code, 200);
    let revision_before_kill = status["revision"].as_i64().expect("revision");

    phase("a second change acknowledged just before kill -9 survives");
    let second_password = "second-Changed-9";
    let (code, body) = replica
        .post_json(
            "/kuboard-api/auth/password",
            &token,
            &json!({ "current_password": first_password, "new_password": second_password }),
        )
        .await;
    assert_eq!(code, 200, "second password change: {body}");
    replica.kill9();
    replica.restart();
    replica.wait_ready(START_TIMEOUT).await;
    assert_eq!(replica.login("admin", first_password).await.status(), 401);
    let token = replica.login_token("admin", second_password).await;
    let (code, status) = replica.get_json("/kuboard-api/system/status", &token).await;
    assert_eq!(code, 200);
    assert!(
        status["revision"].as_i64().expect("revision") > revision_before_kill,
        "revision moved forward across the kill: {status}"
    );
    assert_eq!(
        status["leader"], status["replica_id"],
        "the restarted member leads again: {status}"
    );
}
