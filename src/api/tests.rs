//! Handler tests against the in-process store: this folder's routes and the cluster routes behind
//! the session guard, called as a tower service.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::api::resource_routes;
use crate::app_store::AppStore;
use crate::auth::users::{self, FirstStartAdmin};
use crate::clock::Clock;
use crate::config::AuditPolicy;
use crate::http::AppState;
use crate::memory_store::MemoryStore;
use crate::metrics::Metrics;
use crate::store_backend::StoreBackend;

const DEFAULT_PASSWORD: &str = "Kuboard123";
const NOW: u64 = 1_700_000_000;

struct Harness {
    app: Router,
    state: AppState,
    memory: MemoryStore,
}

/// What a call returned, with the body parsed as JSON when it is JSON.
struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    json: Value,
    text: String,
}

async fn harness() -> Harness {
    let memory = MemoryStore::default();
    let metrics = Arc::new(Metrics::new(1));
    let store = AppStore::new(Arc::new(StoreBackend::Memory(memory.clone())), metrics.clone());
    let outcome = users::ensure_admin(&store, DEFAULT_PASSWORD, NOW)
        .await
        .expect("admin bootstrap");
    assert_eq!(outcome, FirstStartAdmin::Created);
    let state = AppState {
        store,
        metrics,
        clock: Clock::fixed(NOW),
        replica_id: 1,
        session_ttl: Duration::from_secs(3600),
        secure_cookies: false,
        audit_policy: AuditPolicy::IgnoreErrors,
        admin_ready: Arc::new(AtomicBool::new(true)),
        login: crate::http::LoginSettings::for_tests(),
        trusted_proxies: Arc::from(Vec::new()),
        cipher: crate::clusters::credential_cipher::CredentialCipher::from_secret("handler tests"),
    };
    // Audit disabled: the layer that records events is not part of these routes.
    let audit = crate::audit::audit_service::AuditService::start(
        crate::audit::audit_service::AuditSettings::new(AuditPolicy::Disabled, None),
        std::path::Path::new("/nonexistent"),
    )
    .expect("a disabled audit service starts without touching the disk");
    let kube = Arc::new(crate::kube::kube_routes::KubeContext {
        pools: Arc::new(crate::kube::apiserver_pool_registry::ApiserverPoolRegistry::new(
            Arc::new(crate::kube::kube_metrics::KubeMetrics::new(&state.metrics)),
            crate::kube::apiserver_pool::PoolSettings::default(),
        )),
        public_endpoint: None,
        web_tls: false,
        https: Arc::new(crate::tls::https_port::HttpsStatus::new(
            443,
            crate::tls::https_port::HttpsAvailability::Off("the HTTPS port is off (handler tests)".into()),
        )),
    });
    Harness {
        app: crate::http::with_session_guard(
            resource_routes(state.clone(), audit).merge(crate::kube::kube_routes::router(state.clone(), kube)),
            state.clone(),
        ),
        state,
        memory,
    }
}

impl Harness {
    async fn call(&self, request: Request<Body>) -> Answer {
        let response = self.app.clone().oneshot(request).await.expect("the router never fails");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("read body");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Answer {
            status,
            headers,
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Answer {
        let mut builder = Request::post(path).header("content-type", "application/json");
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        self.call(builder.body(Body::from(body.to_string())).expect("valid request"))
            .await
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let mut builder = Request::get(path);
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        self.call(builder.body(Body::empty()).expect("valid request")).await
    }

    async fn login(&self, username: &str, password: &str) -> Answer {
        self.post(
            "/kuboard-api/auth/login",
            None,
            &json!({ "username": username, "password": password }),
        )
        .await
    }

    async fn token(&self, password: &str) -> String {
        let answer = self.login("admin", password).await;
        assert_eq!(answer.status, StatusCode::OK, "login: {}", answer.text);
        answer.json["token"].as_str().expect("token").to_string()
    }
}

/// An error answer: the status, the code, and a request id both in the body and the header.
fn assert_error(answer: &Answer, status: StatusCode, code: &str) {
    assert_eq!(answer.status, status, "body: {}", answer.text);
    assert_eq!(answer.json["code"], code, "body: {}", answer.text);
    assert!(
        answer.json["message"].as_str().is_some_and(|m| !m.is_empty()),
        "body: {}",
        answer.text
    );
    let header = answer
        .headers
        .get("x-request-id")
        .expect("x-request-id header")
        .to_str()
        .expect("ascii");
    assert_eq!(
        answer.json["request_id"], header,
        "the body names the request id of the header"
    );
}

#[tokio::test]
async fn login_sets_cookie_and_token_that_authenticate() {
    let h = harness().await;
    let answer = h.login("admin", DEFAULT_PASSWORD).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let token = answer.json["token"].as_str().expect("token").to_string();
    assert_eq!(token.len(), 43);
    assert_eq!(answer.json["token_type"], "Bearer");
    assert_eq!(answer.json["username"], "admin");
    assert_eq!(answer.json["must_change_password"], true);
    assert_eq!(answer.json["expires_at"], "2023-11-14T23:13:20Z");
    let cookie = answer
        .headers
        .get("set-cookie")
        .expect("cookie")
        .to_str()
        .expect("ascii");
    assert_eq!(
        cookie,
        format!("kuboard_session={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age=3600")
    );
    assert!(answer.headers.contains_key("x-request-id"));

    // Only the token's hash is stored.
    let keys = h.memory.keys();
    assert!(
        keys.iter()
            .any(|key| key.starts_with("sessions/") && key.len() == "sessions/".len() + 64),
        "{keys:?}"
    );
    assert!(!keys.iter().any(|key| key.contains(&token)));

    let me = h.get("/kuboard-api/auth/me", Some(&token)).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(
        me.json,
        json!({"username": "admin", "role": "administrator", "groups": [], "must_change_password": true,
               "session_expires_at": "2023-11-14T23:13:20Z", "access_key": false})
    );

    // Until the default password is changed, the session may do nothing else.
    let users = h.get("/kuboard-api/users", Some(&token)).await;
    assert_error(&users, StatusCode::FORBIDDEN, "password_change_required");
    let changed = h
        .post(
            "/kuboard-api/auth/password",
            Some(&token),
            &json!({"current_password": DEFAULT_PASSWORD, "new_password": "Changed-Pass-1"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    let by_cookie = h
        .call(
            Request::get("/kuboard-api/system/status")
                .header("cookie", format!("theme=dark; kuboard_session={token}"))
                .body(Body::empty())
                .expect("valid request"),
        )
        .await;
    assert_eq!(by_cookie.status, StatusCode::OK, "{}", by_cookie.text);
    assert_eq!(by_cookie.json["backend"], "raft");
    assert_eq!(by_cookie.json["replica_id"], 1);
    assert_eq!(by_cookie.json["leader"], 1);
    assert_eq!(by_cookie.json["healthy"], true);
    assert_eq!(by_cookie.json["audit_policy"], "ignore-errors");
    let members = by_cookie.json["members"].as_array().expect("members");
    assert_eq!(members.len(), 1, "{}", by_cookie.text);
    let member = &members[0];
    for (field, expected) in [
        ("id", json!(1)),
        ("address", json!("127.0.0.1:10082")),
        ("role", json!("leader")),
        ("healthy", json!(true)),
        ("health_known", json!(true)),
        ("term", json!(1)),
        ("matched_index", json!(null)),
    ] {
        assert_eq!(member[field], expected, "{field}: {member}");
    }
    // The answering member's own position: its revision, and indexes that hold it.
    assert_eq!(member["revision"], by_cookie.json["revision"], "{member}");
    let applied = member["applied_index"].as_u64().expect("applied index");
    assert!(
        member["commit_index"].as_u64().expect("commit index") >= applied,
        "{member}"
    );
    assert!(by_cookie.json["revision"].as_i64().expect("revision") >= 2);
}

#[tokio::test]
async fn wrong_credentials_and_missing_sessions_are_refused() {
    let h = harness().await;
    assert_error(
        &h.login("admin", "wrong").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
    assert_error(
        &h.login("nobody", DEFAULT_PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
    assert_error(
        &h.login("../admin", DEFAULT_PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
    assert_error(
        &h.get("/kuboard-api/system/status", None).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    assert_error(
        &h.get("/kuboard-api/auth/me", Some("forged")).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    let well_formed_unknown = "A".repeat(43);
    assert_error(
        &h.get("/kuboard-api/auth/me", Some(&well_formed_unknown)).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
}

/// Guessing a different user name each time stays under every per-user limit, so only the counter of
/// the source address stops it: after its limit even the right password is refused from there.
#[tokio::test]
async fn failures_from_one_address_throttle_every_user_name() {
    let h = harness().await;
    let limit = h.state.login.throttle.max_failures_per_address;
    assert!(limit > h.state.login.throttle.max_failures_per_user);
    for guess in 0..limit {
        assert_error(
            &h.login(&format!("guess-{guess}"), "wrong").await,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        );
    }
    let keys = h.memory.keys();
    let refused = h.login("admin", DEFAULT_PASSWORD).await;
    assert_error(&refused, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    assert!(refused.headers.contains_key("retry-after"), "{:?}", refused.headers);
    assert_eq!(h.memory.keys(), keys, "a refused login creates no session");
}

#[tokio::test]
async fn bad_bodies_get_4xx_codes() {
    let h = harness().await;
    let no_type = h
        .call(
            Request::post("/kuboard-api/auth/login")
                .body(Body::from(r#"{"username":"a","password":"b"}"#))
                .expect("valid"),
        )
        .await;
    assert_error(&no_type, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");

    let malformed = h
        .call(
            Request::post("/kuboard-api/auth/login")
                .header("content-type", "application/json")
                .body(Body::from("{not json"))
                .expect("valid"),
        )
        .await;
    assert_error(&malformed, StatusCode::BAD_REQUEST, "malformed_json");

    let unknown_field = h
        .post(
            "/kuboard-api/auth/login",
            None,
            &json!({"username": "admin", "password": "x", "remember_me": true}),
        )
        .await;
    assert_error(&unknown_field, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    let missing_field = h
        .post("/kuboard-api/auth/login", None, &json!({"username": "admin"}))
        .await;
    assert_error(&missing_field, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");

    let huge = json!({"username": "admin", "password": "x".repeat(2 * 1024 * 1024)});
    assert_error(
        &h.post("/kuboard-api/auth/login", None, &huge).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
    );

    assert_error(
        &h.get("/kuboard-api/nothing-here", None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &h.get("/kuboard-api/auth/login", None).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}

#[tokio::test]
async fn password_change_rules_and_effects() {
    let h = harness().await;
    let token = h.token(DEFAULT_PASSWORD).await;
    let other_session = h.token(DEFAULT_PASSWORD).await;
    let change = |current: &str, new: &str| json!({"current_password": current, "new_password": new});

    assert_error(
        &h.post(
            "/kuboard-api/auth/password",
            None,
            &change(DEFAULT_PASSWORD, "long-enough-1"),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    assert_error(
        &h.post(
            "/kuboard-api/auth/password",
            Some(&token),
            &change(DEFAULT_PASSWORD, "short"),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "password_too_short",
    );
    assert_error(
        &h.post(
            "/kuboard-api/auth/password",
            Some(&token),
            &change("not-the-password", "long-enough-1"),
        )
        .await,
        StatusCode::FORBIDDEN,
        "wrong_password",
    );
    assert_error(
        &h.post(
            "/kuboard-api/auth/password",
            Some(&token),
            &change(DEFAULT_PASSWORD, DEFAULT_PASSWORD),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "password_is_default",
    );
    assert_error(
        &h.post(
            "/kuboard-api/auth/password",
            Some(&token),
            &change(DEFAULT_PASSWORD, "my-admin-password"),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "password_contains_username",
    );
    // None of the refused changes changed anything.
    h.token(DEFAULT_PASSWORD).await;

    let answer = h
        .post(
            "/kuboard-api/auth/password",
            Some(&token),
            &change(DEFAULT_PASSWORD, "long-enough-1"),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["must_change_password"], false);
    assert_eq!(answer.json["other_sessions_ended"], 2);

    assert_error(
        &h.login("admin", DEFAULT_PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
    let fresh = h.token("long-enough-1").await;
    let me = h.get("/kuboard-api/auth/me", Some(&fresh)).await;
    assert_eq!(me.json["must_change_password"], false);
    assert_eq!(
        h.get("/kuboard-api/auth/me", Some(&token)).await.status,
        StatusCode::OK,
        "the caller stays logged in"
    );
    assert_error(
        &h.get("/kuboard-api/auth/me", Some(&other_session)).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );

    // A restart runs the bootstrap again: it must not reset the changed password.
    assert_eq!(
        users::ensure_admin(&h.state.store, DEFAULT_PASSWORD, NOW)
            .await
            .expect("bootstrap"),
        FirstStartAdmin::AlreadyPresent
    );
    h.token("long-enough-1").await;
}

#[tokio::test]
async fn logout_ends_the_session_and_expiry_is_enforced() {
    let h = harness().await;
    let token = h.token(DEFAULT_PASSWORD).await;
    let logout = h.post("/kuboard-api/auth/logout", Some(&token), &json!({})).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    let cleared = logout
        .headers
        .get("set-cookie")
        .expect("cookie cleared")
        .to_str()
        .expect("ascii");
    assert!(
        cleared.starts_with("kuboard_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    assert_error(
        &h.get("/kuboard-api/auth/me", Some(&token)).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    assert!(
        !h.memory.keys().iter().any(|key| key.starts_with("sessions/")),
        "{:?}",
        h.memory.keys()
    );
    // Logging out again is harmless.
    assert_eq!(
        h.post("/kuboard-api/auth/logout", Some(&token), &json!({}))
            .await
            .status,
        StatusCode::NO_CONTENT
    );

    let token = h.token(DEFAULT_PASSWORD).await;
    h.state.clock.advance(3599);
    assert_eq!(h.get("/kuboard-api/auth/me", Some(&token)).await.status, StatusCode::OK);
    h.state.clock.advance(1);
    assert_error(
        &h.get("/kuboard-api/auth/me", Some(&token)).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    assert!(
        !h.memory.keys().iter().any(|key| key.starts_with("sessions/")),
        "the expired session was removed"
    );
}

#[tokio::test]
async fn store_outage_is_503_and_not_ready() {
    let h = harness().await;
    assert_eq!(h.get("/readyz", None).await.status, StatusCode::OK);
    assert_eq!(h.get("/healthz", None).await.text, "ok");
    let token = h.token(DEFAULT_PASSWORD).await;

    h.memory.set_unavailable(true);
    assert_error(
        &h.login("admin", DEFAULT_PASSWORD).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
    );
    assert_error(
        &h.get("/kuboard-api/system/status", Some(&token)).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
    );
    assert_error(
        &h.get("/readyz", None).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
    );
    assert_eq!(
        h.get("/healthz", None).await.status,
        StatusCode::OK,
        "alive even without a store"
    );
    let metrics = h.get("/metrics", None).await;
    assert!(metrics.text.contains("kuboard_store_healthy 0"), "{}", metrics.text);

    h.memory.set_unavailable(false);
    h.state.admin_ready.store(false, Ordering::SeqCst);
    assert_error(
        &h.get("/readyz", None).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "starting",
    );
}

#[tokio::test]
async fn metrics_count_requests_by_route() {
    let h = harness().await;
    h.login("admin", "wrong").await;
    h.get("/no/such/path", None).await;
    let metrics = h.get("/metrics", None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = metrics.text;
    assert!(
        text.contains(r#"kuboard_http_requests_total{method="POST",route="/kuboard-api/auth/login",status="401"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"route="unmatched",status="404""#), "{text}");
    assert!(text.contains("kuboard_http_request_duration_seconds_bucket"), "{text}");
    assert!(
        text.contains(r#"kuboard_store_op_duration_seconds_count{op="txn"}"#),
        "{text}"
    );
    assert!(text.contains("kuboard_build_info{"), "{text}");
    assert!(text.contains("kuboard_store_leader_id 1"), "{text}");
    assert!(text.contains("kuboard_store_healthy 1"), "{text}");
}

#[tokio::test]
async fn the_openapi_document_describes_every_api_route() {
    let h = harness().await;
    let answer = h.get("/kuboard-api/openapi.json", None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert!(answer.json["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    let paths = answer.json["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/kuboard-api/auth/login", "post"),
        ("/kuboard-api/auth/logout", "post"),
        ("/kuboard-api/auth/me", "get"),
        ("/kuboard-api/auth/password", "post"),
        ("/kuboard-api/auth/access-keys", "post"),
        ("/kuboard-api/auth/access-keys/{id}", "delete"),
        ("/kuboard-api/users", "post"),
        ("/kuboard-api/users/{username}", "patch"),
        ("/kuboard-api/users/{username}/password", "post"),
        ("/kuboard-api/users/{username}/identity", "get"),
        ("/kuboard-api/role-bindings", "post"),
        ("/kuboard-api/role-bindings/{id}", "delete"),
        ("/kuboard-api/clusters", "get"),
        ("/kuboard-api/clusters/{name}", "put"),
        ("/kuboard-api/system/status", "get"),
        ("/kuboard-api/system/members", "post"),
        ("/kuboard-api/system/members/{id}", "delete"),
        ("/kuboard-api/system/snapshot", "get"),
        ("/kuboard-api/openapi.json", "get"),
        ("/healthz", "get"),
    ] {
        let operation = &paths.get(path).unwrap_or_else(|| panic!("{path} documented"))[method];
        assert!(operation.is_object(), "{method} {path} documented");
        if operation.get("requestBody").is_some() {
            for status in ["400", "413", "415", "422"] {
                assert!(
                    operation["responses"].get(status).is_some(),
                    "{method} {path} documents {status}"
                );
            }
        }
    }
    // Wire types only: no stored record (hashes, sealed credentials) is part of the document.
    assert!(!answer.text.contains("password_hash") && !answer.text.contains("secret_hash"));
    assert!(!answer.text.contains("ciphertext"));
}

#[tokio::test]
async fn roles_bindings_and_identity_through_the_api() {
    let h = harness().await;
    let first = h.token(DEFAULT_PASSWORD).await;
    let changed = h
        .post(
            "/kuboard-api/auth/password",
            Some(&first),
            &json!({"current_password": DEFAULT_PASSWORD, "new_password": "Changed-Pass-1"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    let admin = h.token("Changed-Pass-1").await;
    let created = h
        .post(
            "/kuboard-api/users",
            Some(&admin),
            &json!({"username": "alice", "password": "wonderland-1", "groups": ["ops"]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.json["role"], "viewer");
    let binding = h
        .post(
            "/kuboard-api/role-bindings",
            Some(&admin),
            &json!({"subject": {"kind": "group", "name": "ops"}, "cluster": "prod", "namespace": "shop", "role": "edit"}),
        )
        .await;
    assert_eq!(binding.status, StatusCode::CREATED, "{}", binding.text);
    let identity = h
        .get(
            "/kuboard-api/users/alice/identity?cluster=prod&namespace=shop",
            Some(&admin),
        )
        .await;
    assert_eq!(identity.status, StatusCode::OK, "{}", identity.text);
    assert_eq!(
        identity.json,
        json!({"user": "kuboard:alice", "groups": ["kuboard:group:ops", "kuboard:namespace:edit", "kuboard:viewers"]})
    );

    // A viewer may list clusters but not change anything; disabling ends their sessions.
    let alice = h.login("alice", "wonderland-1").await.json["token"]
        .as_str()
        .expect("token")
        .to_string();
    let changed = h
        .post(
            "/kuboard-api/auth/password",
            Some(&alice),
            &json!({"current_password": "wonderland-1", "new_password": "second-pass-2"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    assert_eq!(
        h.get("/kuboard-api/clusters", Some(&alice)).await.status,
        StatusCode::OK
    );
    assert_error(
        &h.get("/kuboard-api/users", Some(&alice)).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let disabled = h
        .call(
            Request::patch("/kuboard-api/users/alice")
                .header("authorization", format!("Bearer {admin}"))
                .header("content-type", "application/json")
                .body(Body::from(r#"{"disabled": true}"#))
                .expect("valid"),
        )
        .await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.text);
    assert_error(
        &h.get("/kuboard-api/clusters", Some(&alice)).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    assert_error(
        &h.login("alice", "second-pass-2").await,
        StatusCode::FORBIDDEN,
        "user_disabled",
    );
}

#[tokio::test]
async fn a_cluster_that_cannot_be_connected_is_refused_and_not_stored() {
    let h = harness().await;
    let first = h.token(DEFAULT_PASSWORD).await;
    let changed = h
        .post(
            "/kuboard-api/auth/password",
            Some(&first),
            &json!({"current_password": DEFAULT_PASSWORD, "new_password": "Changed-Pass-1"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    let admin = h.token("Changed-Pass-1").await;
    for (body, code) in [
        (
            json!({"name": "no-ca", "endpoints": ["https://10.0.0.1:6443"], "credentials": {"token": "t"}}),
            "missing_ca_certificate",
        ),
        (
            json!({"name": "bad-ca", "endpoints": ["https://10.0.0.1:6443"],
                "credentials": {"token": "t", "ca_certificate": "not a certificate"}}),
            "invalid_cluster_settings",
        ),
        (
            json!({"name": "bad-token", "endpoints": ["http://10.0.0.1:8080"],
                "credentials": {"token": "line\nbreak"}}),
            "invalid_cluster_settings",
        ),
    ] {
        let answer = h.post("/kuboard-api/clusters", Some(&admin), &body).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", answer.text);
        assert_eq!(answer.json["code"], code, "{}", answer.text);
        let name = body["name"].as_str().expect("a name");
        let stored = h.get(&format!("/kuboard-api/clusters/{name}"), Some(&admin)).await;
        assert_eq!(stored.status, StatusCode::NOT_FOUND, "{}", stored.text);
    }
    let plain = h
        .post(
            "/kuboard-api/clusters",
            Some(&admin),
            &json!({"name": "plain", "endpoints": ["http://10.0.0.1:8080"], "credentials": {"token": "t"}}),
        )
        .await;
    assert_eq!(plain.status, StatusCode::CREATED, "{}", plain.text);
}
