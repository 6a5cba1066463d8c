//! The console in front of a stand-in API router (its fallback is a JSON 404 like the real one's):
//! the single-page-app fallback, what it must never shadow, caching, ETag/304 and the headers.
//! These run against whatever `build.rs` embedded: the built `web/dist`, or the placeholder page.

use axum::body::{to_bytes, Body};
use axum::http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
    REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tower::ServiceExt;

use super::console_files::{IMMUTABLE, REVALIDATE};
use super::security_headers::CONTENT_SECURITY_POLICY_VALUE;
use super::{is_console_request, with_console};

fn app() -> Router {
    let api = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/kuboard-api/auth/me",
            get(|| async { Json(serde_json::json!({"username": "x"})) }),
        )
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Json(serde_json::json!({"code": "not_found", "message": "no such resource"})),
            )
                .into_response()
        });
    with_console(api)
}

async fn send(app: &Router, method: Method, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    app.clone()
        .oneshot(request.body(Body::empty()).expect("a valid request"))
        .await
        .expect("the router is infallible")
}

async fn body_text(response: Response) -> String {
    let bytes = to_bytes(response.into_body(), 16 * 1024 * 1024)
        .await
        .expect("read the body");
    String::from_utf8_lossy(&bytes).into_owned()
}

fn header(response: &Response, name: axum::http::header::HeaderName) -> String {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().expect("an ASCII header").to_string())
        .unwrap_or_default()
}

#[test]
fn console_requests_are_gets_outside_the_api() {
    let cases = [
        (Method::GET, "/", true),
        (Method::HEAD, "/", true),
        (Method::GET, "/clusters/prod", true),
        (Method::GET, "/assets/index-abc.js", true),
        (Method::GET, "/kuboard-apis", true),
        (Method::POST, "/", false),
        (Method::DELETE, "/clusters/prod", false),
        (Method::GET, "/kuboard-api", false),
        (Method::GET, "/kuboard-api/", false),
        (Method::GET, "/kuboard-api/no-such-thing", false),
        (Method::GET, "/k8s-api/prod/api/v1/pods", false),
        (Method::GET, "/healthz", false),
        (Method::GET, "/healthz/extra", false),
        (Method::GET, "/readyz", false),
        (Method::GET, "/metrics", false),
    ];
    for (method, path, expected) in cases {
        assert_eq!(is_console_request(&method, path), expected, "{method} {path}");
    }
}

#[tokio::test]
async fn unknown_pages_get_the_app_and_the_api_keeps_its_json_404() {
    let app = app();
    let index = send(&app, Method::GET, "/index.html", &[]).await;
    assert_eq!(index.status(), StatusCode::OK);
    let index_etag = header(&index, ETAG);
    assert!(!index_etag.is_empty(), "index.html has an ETag");
    let index_body = body_text(index).await;
    assert!(index_body.contains("<html"), "index.html is a page: {index_body}");

    for path in ["/", "/clusters", "/clusters/prod/overview", "/login?redirect=%2Faudit"] {
        let response = send(&app, Method::GET, path, &[]).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(header(&response, CONTENT_TYPE).starts_with("text/html"), "{path}");
        assert_eq!(header(&response, CACHE_CONTROL), REVALIDATE, "{path}");
        assert_eq!(header(&response, ETAG), index_etag, "{path} is index.html");
        assert_eq!(body_text(response).await, index_body, "{path}");
    }

    for path in [
        "/kuboard-api",
        "/kuboard-api/no-such-thing",
        "/k8s-api",
        "/healthz/extra",
        "/readyz",
        "/metrics/x",
    ] {
        let response = send(&app, Method::GET, path, &[]).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(
            header(&response, CONTENT_TYPE).starts_with("application/json"),
            "{path}"
        );
        assert!(body_text(response).await.contains("not_found"), "{path}");
    }
    let healthz = send(&app, Method::GET, "/healthz", &[]).await;
    assert_eq!(body_text(healthz).await, "ok");
    // A change is never the console's, even on a console path.
    let post = send(&app, Method::POST, "/clusters", &[]).await;
    assert_eq!(post.status(), StatusCode::NOT_FOUND);
    assert!(body_text(post).await.contains("not_found"));
}

/// The first `/assets/…` file that index.html references.
fn first_asset(index_body: &str) -> String {
    let start = index_body
        .find("/assets/")
        .unwrap_or_else(|| panic!("index.html references no file under /assets/: {index_body}"));
    let rest = &index_body[start..];
    let end = rest.find(['"', '\'']).expect("the asset reference is quoted");
    rest[..end].to_string()
}

#[tokio::test]
async fn hashed_assets_are_immutable_and_missing_ones_are_plain_404s() {
    let app = app();
    let index_body = body_text(send(&app, Method::GET, "/", &[]).await).await;
    let asset = first_asset(&index_body);
    let response = send(&app, Method::GET, &asset, &[]).await;
    assert_eq!(response.status(), StatusCode::OK, "{asset}");
    assert_eq!(header(&response, CACHE_CONTROL), IMMUTABLE, "{asset}");
    assert!(!header(&response, ETAG).is_empty(), "{asset}");

    let missing = send(&app, Method::GET, "/assets/no-such-chunk-0123.js", &[]).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(header(&missing, CONTENT_TYPE).starts_with("text/plain"));
    assert!(
        header(&missing, CACHE_CONTROL).is_empty(),
        "a 404 is not cached for a year"
    );
}

#[tokio::test]
async fn a_matching_etag_gets_304_and_the_page_is_compressed() {
    let app = app();
    let first = send(&app, Method::GET, "/", &[]).await;
    let etag = header(&first, ETAG);
    let revalidated = send(&app, Method::GET, "/", &[(IF_NONE_MATCH.as_str(), &etag)]).await;
    assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header(&revalidated, ETAG), etag);
    assert_eq!(header(&revalidated, CACHE_CONTROL), REVALIDATE);
    assert!(body_text(revalidated).await.is_empty());
    // The fallback revalidates like index.html itself.
    let deep = send(&app, Method::GET, "/users", &[(IF_NONE_MATCH.as_str(), &etag)]).await;
    assert_eq!(deep.status(), StatusCode::NOT_MODIFIED);
    let changed = send(&app, Method::GET, "/", &[(IF_NONE_MATCH.as_str(), "\"another\"")]).await;
    assert_eq!(changed.status(), StatusCode::OK);

    let gzip = send(&app, Method::GET, "/", &[(ACCEPT_ENCODING.as_str(), "gzip")]).await;
    assert_eq!(header(&gzip, CONTENT_ENCODING), "gzip");
    let brotli = send(&app, Method::GET, "/", &[(ACCEPT_ENCODING.as_str(), "br, gzip")]).await;
    assert_eq!(header(&brotli, CONTENT_ENCODING), "br");
    let plain = send(&app, Method::GET, "/", &[]).await;
    assert!(header(&plain, CONTENT_ENCODING).is_empty());
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = app();
    for (method, path) in [
        (Method::GET, "/"),
        (Method::GET, "/clusters"),
        (Method::GET, "/assets/no-such-chunk.js"),
        (Method::GET, "/kuboard-api/auth/me"),
        (Method::GET, "/kuboard-api/nope"),
        (Method::POST, "/"),
    ] {
        let response = send(&app, method.clone(), path, &[]).await;
        let policy = header(&response, CONTENT_SECURITY_POLICY);
        assert_eq!(policy, CONTENT_SECURITY_POLICY_VALUE, "{method} {path}");
        assert!(policy.contains("script-src 'self';"), "no inline script: {policy}");
        assert!(!policy.contains("unsafe-eval"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert_eq!(header(&response, X_CONTENT_TYPE_OPTIONS), "nosniff", "{method} {path}");
        assert_eq!(header(&response, REFERRER_POLICY), "same-origin", "{method} {path}");
    }
}
