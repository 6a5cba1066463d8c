//! What leaves an audit event, checked in the database (a real PostgreSQL the test starts) of a real
//! `kuboard serve` with the fake apiserver of testkit imported as a cluster: every kind of login
//! attempt (without the password anywhere), the session guard's refusals, unauthenticated and
//! role-denied changes, a logout (once), a change through the Kubernetes proxy (once, with the
//! user the proxy authenticated) and an exec websocket session (opened and ended).

mod common;
mod t7x_support;

use std::time::Duration;

use common::Replica;
use serde_json::{json, Value};
use t7x_support::{configmap, exec_session, fake_cluster, import_fake, Postgres, StoredEvent};

const NEW_PASSWORD: &str = "Coverage-Trail-2026!";
const SECRETS: [&str; 5] = [
    NEW_PASSWORD,
    "Wrong-Secret-123",
    "Unknown-Secret-456",
    "Malformed-Secret-789",
    "Throttled-Secret-000",
];

fn login_events(events: &[StoredEvent]) -> Vec<&StoredEvent> {
    events.iter().filter(|event| event.verb == "login").collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_refusals_proxy_changes_and_exec_sessions_are_audited() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let postgres = Postgres::init(dir.path());
    let cluster = fake_cluster().await;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("create the data dir");
    let uri = postgres.uri();
    let mut kuboard = Replica::start_with(
        &data,
        dir.path(),
        &[
            ("KUBOARD_QUEST_DB_URI", uri.as_str()),
            ("KUBOARD_AUDIT_POLICY", "ignore-errors"),
            ("KUBOARD_LOGIN_MAX_FAILURES", "3"),
        ],
    );
    kuboard.wait_ready(Duration::from_secs(60)).await;
    let token = kuboard.change_admin_password(NEW_PASSWORD).await;

    // Login attempts of every kind.
    assert_eq!(kuboard.login("admin", "Wrong-Secret-123").await.status(), 401);
    assert_eq!(kuboard.login("nobody", "Unknown-Secret-456").await.status(), 401);
    let malformed = kuboard
        .client
        .post(kuboard.url("/kuboard-api/auth/login?password=Malformed-Secret-789"))
        .header("content-type", "application/json")
        .body(r#"{"username": "admin", "password": "Malformed-Secret-789""#)
        .send()
        .await
        .expect("send a malformed login");
    assert_eq!(malformed.status(), 400);
    for _ in 0..3 {
        assert_eq!(kuboard.login("mallory", "Throttled-Secret-000").await.status(), 401);
    }
    assert_eq!(kuboard.login("mallory", "Throttled-Secret-000").await.status(), 429);

    let events = postgres
        .wait_events("every login attempt", |events| login_events(events).len() >= 9)
        .await;
    let logins = login_events(&events);
    let seen: Vec<(String, i32, String)> = logins
        .iter()
        .map(|event| (event.username.clone(), event.status_code, event.decision.clone()))
        .collect();
    for expected in [
        ("admin", 200, "allow"),
        ("admin", 401, "deny"),
        ("nobody", 401, "deny"),
        ("", 400, "deny"),
        ("mallory", 401, "deny"),
        ("mallory", 429, "deny"),
    ] {
        assert!(
            seen.contains(&(expected.0.to_string(), expected.1, expected.2.to_string())),
            "{expected:?} in {seen:?}"
        );
    }
    // What only the login handler knows travels with its answer and is in the event: the
    // resource it acted on and why it decided so.
    for (status, message) in [
        (200, "logged in"),
        (401, "wrong user name or password"),
        (429, "too many failed logins"),
    ] {
        let event = logins
            .iter()
            .find(|event| event.status_code == status)
            .unwrap_or_else(|| panic!("a login answered {status} in {seen:?}"));
        assert_eq!(
            (
                event.resource.as_str(),
                event.message.as_str(),
                event.request_uri.as_str()
            ),
            ("sessions", message, "/kuboard-api/auth/login"),
            "{event:?}"
        );
    }
    let malformed_event = logins
        .iter()
        .find(|event| event.status_code == 400)
        .expect("the malformed login");
    assert_eq!(malformed_event.request_uri, "/kuboard-api/auth/login");
    assert!(
        malformed_event.message.contains("before it was checked"),
        "{malformed_event:?}"
    );

    // The session guard's refusals: a cookie change without the CSRF token, and a user who must
    // change the password first.
    let cookie_change = kuboard
        .client
        .post(kuboard.url("/kuboard-api/users"))
        .header("cookie", format!("kuboard_session={token}"))
        .json(&json!({"username": "eve", "password": "Eve-Password-2026!", "role": "viewer"}))
        .send()
        .await
        .expect("send a cookie change");
    assert_eq!(cookie_change.status(), 403);
    let (status, body) = kuboard
        .post_json(
            "/kuboard-api/users",
            &token,
            &json!({"username": "vera", "password": "First-Pass-2026!", "role": "viewer"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let vera_first = kuboard.login_token("vera", "First-Pass-2026!").await;
    let (status, body) = kuboard.get_json("/kuboard-api/users", &vera_first).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("password_change_required")));
    let (status, body) = kuboard
        .post_json(
            "/kuboard-api/auth/password",
            &vera_first,
            &json!({"current_password": "First-Pass-2026!", "new_password": "Second-Pass-2026!"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let vera = kuboard.login_token("vera", "Second-Pass-2026!").await;
    // Denied by role, and not authenticated at all.
    let (status, _) = kuboard
        .post_json(
            "/kuboard-api/users",
            &vera,
            &json!({"username": "eve", "password": "Eve-Password-2026!", "role": "viewer"}),
        )
        .await;
    assert_eq!(status, 403);
    let anonymous = kuboard
        .client
        .delete(kuboard.url("/kuboard-api/users/vera"))
        .send()
        .await
        .expect("send an anonymous delete");
    assert_eq!(anonymous.status(), 401);
    // A logout with a session: recorded by its handler, once.
    let session = kuboard.login_token("admin", NEW_PASSWORD).await;
    let logout = kuboard
        .client
        .post(kuboard.url("/kuboard-api/auth/logout"))
        .bearer_auth(&session)
        .send()
        .await
        .expect("send logout");
    assert_eq!(logout.status(), 204);

    let events = postgres
        .wait_events("the refusals", |events| {
            events
                .iter()
                .any(|event| event.verb == "delete" && event.status_code == 401)
                && events.iter().any(|event| event.verb == "logout")
        })
        .await;
    let find = |what: &str, test: &dyn Fn(&StoredEvent) -> bool| -> StoredEvent {
        events
            .iter()
            .find(|event| test(event))
            .cloned()
            .unwrap_or_else(|| panic!("{what}: no such event in {events:#?}"))
    };
    let csrf = find("CSRF refusal", &|e| e.message.contains("csrf_token_invalid"));
    assert_eq!(
        (
            csrf.username.as_str(),
            csrf.status_code,
            csrf.decision.as_str(),
            csrf.verb.as_str(),
            csrf.resource.as_str()
        ),
        ("admin", 403, "deny", "create", "users")
    );
    let first = find("password change first", &|e| {
        e.message.contains("password_change_required")
    });
    assert_eq!(
        (
            first.username.as_str(),
            first.status_code,
            first.decision.as_str(),
            first.verb.as_str()
        ),
        ("vera", 403, "deny", "get")
    );
    let by_role = find("denied by role", &|e| {
        e.username == "vera" && e.verb == "create" && e.resource == "users" && e.status_code == 403
    });
    assert_eq!(by_role.decision, "deny");
    let unauthenticated = find("unauthenticated", &|e| e.verb == "delete" && e.status_code == 401);
    assert_eq!(
        (
            unauthenticated.username.as_str(),
            unauthenticated.decision.as_str(),
            unauthenticated.request_uri.as_str()
        ),
        ("", "deny", "/kuboard-api/users/vera")
    );
    let logouts: Vec<&StoredEvent> = events.iter().filter(|event| event.verb == "logout").collect();
    assert_eq!(logouts.len(), 1, "one event per logout: {logouts:#?}");
    assert_eq!(logouts[0].username, "admin");

    // A change through the Kubernetes proxy: one event, with the proxy's user and the target.
    import_fake(&kuboard, &token, &cluster).await;
    let (status, body) = kuboard
        .post_json(
            "/k8s-api/fake/api/v1/namespaces/default/configmaps",
            &token,
            &configmap("audited"),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let events = postgres
        .wait_events("the proxied change", |events| {
            events.iter().any(|event| event.resource == "configmaps")
        })
        .await;
    let proxied: Vec<&StoredEvent> = events.iter().filter(|event| event.resource == "configmaps").collect();
    assert_eq!(proxied.len(), 1, "one event per proxied change: {proxied:#?}");
    let change = proxied[0];
    assert_eq!(
        (
            change.username.as_str(),
            change.cluster.as_str(),
            change.namespace.as_str(),
            change.verb.as_str(),
            change.status_code,
            change.decision.as_str()
        ),
        ("admin", "fake", "default", "create", 201, "allow")
    );
    assert_eq!(change.request_uri, "/k8s-api/fake/api/v1/namespaces/default/configmaps");

    // An exec session: an event when it opens and one when it ends, with the same audit id.
    let status_line = exec_session(&kuboard, &token).await;
    assert!(status_line.contains(" 101 "), "{status_line}");
    let events = postgres
        .wait_events("the exec session's two events", |events| {
            events.iter().filter(|event| event.verb == "exec").count() >= 2
        })
        .await;
    let sessions: Vec<&StoredEvent> = events.iter().filter(|event| event.verb == "exec").collect();
    assert_eq!(sessions.len(), 2, "{sessions:#?}");
    assert_eq!(sessions[0].audit_id, sessions[1].audit_id);
    for event in &sessions {
        assert_eq!(
            (
                event.username.as_str(),
                event.cluster.as_str(),
                event.namespace.as_str(),
                event.resource.as_str(),
                event.subresource.as_str(),
                event.status_code,
            ),
            ("admin", "fake", "default", "pods", "exec", 101),
            "{event:?}"
        );
    }
    assert_eq!(sessions[0].message, "session opened");
    assert!(sessions[1].message.starts_with("session ended: "), "{:?}", sessions[1]);
    assert!(sessions[1].duration_ms >= sessions[0].duration_ms);

    // No event holds a password, whatever the attempt.
    let events = postgres.events().await;
    for event in &events {
        for secret in SECRETS {
            assert!(!event.all_text.contains(secret), "a password in {event:?}");
        }
    }
    let (status, page): (u16, Value) = kuboard.get_json("/kuboard-api/audit?verb=exec", &token).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["events"].as_array().map(Vec::len), Some(2), "{page}");
    kuboard.terminate(Duration::from_secs(20));
}
