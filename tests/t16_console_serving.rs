//! The web console as the real binary serves it next to the REST API: the single-page-app
//! fallback never shadows the API's own JSON 404s, and every answer (console or API) carries the
//! Content-Security-Policy and the other browser protections.

mod common;

use std::time::Duration;

use common::Replica;
use serde_json::Value;

const START_TIMEOUT: Duration = Duration::from_secs(30);

fn phase(name: &str) {
    eprintln!("--- phase: {name}");
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().expect("an ASCII header").to_string())
        .unwrap_or_default()
}

fn assert_protected(response: &reqwest::Response, what: &str) {
    let policy = header(response, "content-security-policy");
    assert!(policy.contains("script-src 'self';"), "{what}: {policy:?}");
    assert!(policy.contains("frame-ancestors 'none'"), "{what}: {policy:?}");
    assert_eq!(header(response, "x-content-type-options"), "nosniff", "{what}");
    assert!(!header(response, "referrer-policy").is_empty(), "{what}");
}

#[tokio::test]
async fn console_pages_fall_back_to_the_app_and_api_paths_keep_their_json_404() {
    let data = tempfile::tempdir().expect("create data dir");
    let logs = tempfile::tempdir().expect("create log dir");
    let mut replica = Replica::start(&data.path().join("data"), logs.path());
    replica.wait_ready(START_TIMEOUT).await;
    let client = &replica.client;

    phase("the console's pages, known or not, are index.html");
    let index = client.get(replica.url("/")).send().await.expect("GET /");
    assert_eq!(index.status(), 200);
    assert!(header(&index, "content-type").starts_with("text/html"));
    assert_eq!(header(&index, "cache-control"), "no-cache");
    assert_protected(&index, "GET /");
    let index_etag = header(&index, "etag");
    let index_body = index.text().await.expect("read index.html");
    for path in ["/clusters", "/clusters/prod", "/login?redirect=%2Fusers"] {
        let response = client.get(replica.url(path)).send().await.expect("GET a console page");
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(header(&response, "etag"), index_etag, "{path}");
        assert_protected(&response, path);
        assert_eq!(response.text().await.expect("read the page"), index_body, "{path}");
    }

    phase("API paths that do not exist answer the API's JSON 404, whatever the method");
    for path in [
        "/kuboard-api",
        "/kuboard-api/no-such-thing",
        "/k8s-api",
        "/healthz/extra",
        "/readyz/extra",
        "/metrics/extra",
    ] {
        let response = client.get(replica.url(path)).send().await.expect("GET an API path");
        assert_eq!(response.status(), 404, "{path}");
        assert!(
            header(&response, "content-type").starts_with("application/json"),
            "{path}"
        );
        assert_protected(&response, path);
        let body: Value = response.json().await.expect("a JSON body");
        assert_eq!(body["code"], "not_found", "{path}: {body}");
    }
    let post = client
        .post(replica.url("/clusters"))
        .send()
        .await
        .expect("POST a console path");
    assert_eq!(post.status(), 404);
    let body: Value = post.json().await.expect("a JSON body");
    assert_eq!(body["code"], "not_found", "{body}");

    phase("the API itself is untouched and protected too");
    let healthz = client.get(replica.url("/healthz")).send().await.expect("GET /healthz");
    assert_eq!(healthz.status(), 200);
    let me = client
        .get(replica.url("/kuboard-api/auth/me"))
        .send()
        .await
        .expect("GET me");
    assert_eq!(me.status(), 401);
    assert_protected(&me, "GET /kuboard-api/auth/me");
    let metrics = client.get(replica.url("/metrics")).send().await.expect("GET /metrics");
    assert_eq!(metrics.status(), 200);
    assert!(metrics.text().await.expect("read metrics").contains("# TYPE"));
}
