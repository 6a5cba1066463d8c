//! The console's files, as `build.rs` put them into the binary (a debug build reads them from disk).
//!
//! memory-serve answers a file with its ETag (the SHA-256 of its content, the same on every replica)
//! and a 304 to a matching `If-None-Match`, brotli or gzip as the browser accepts. On top of that:
//!
//! - Vite names every file under `/assets/` after a hash of its content, so those are cached for a
//!   year and never revalidated (`immutable`); everything else (`index.html`, the favicon) is
//!   revalidated on every use (`no-cache`), so a new release is seen at once.
//! - An unknown path outside `/assets/` is a route of the single-page app: it gets `index.html`
//!   (the app's router shows the page, or its own "not found"). An unknown file under `/assets/`
//!   is a plain 404, since a stale chunk answered with HTML would fail in the browser as a script
//!   with the wrong type.

use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use memory_serve::CacheControl;
use tower::ServiceExt;

/// Hashed, never-changing files.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Revalidate on every use (an ETag makes that a 304 when nothing changed).
pub const REVALIDATE: &str = "no-cache";
pub const INDEX: &str = "/index.html";
pub const HASHED_ASSETS_PREFIX: &str = "/assets/";

pub struct ConsoleFiles {
    /// One route per embedded file, no fallback.
    files: Router,
}

impl ConsoleFiles {
    /// Loads the embedded files. Call once per process: memory-serve keeps the decompressed and
    /// gzip forms of every file for the life of the process.
    pub fn load() -> ConsoleFiles {
        let files = memory_serve::load!()
            .index_file(Some(INDEX))
            // memory-serve leaves compression off in debug builds; the tests check it there too.
            .enable_brotli(true)
            .enable_gzip(true)
            .html_cache_control(CacheControl::NoCache)
            .cache_control(CacheControl::NoCache)
            .into_router();
        ConsoleFiles { files }
    }

    /// Answers a `GET` or `HEAD` of the console.
    pub async fn serve(&self, request: Request<Body>) -> Response {
        let path = request.uri().path().to_string();
        let method = request.method().clone();
        let headers = request.headers().clone();
        let mut response = self.answer(request).await;
        if response.status() == StatusCode::NOT_FOUND {
            if path.starts_with(HASHED_ASSETS_PREFIX) {
                return (
                    StatusCode::NOT_FOUND,
                    [(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"))],
                    "no such file of the console\n",
                )
                    .into_response();
            }
            let mut index_request = Request::new(Body::empty());
            *index_request.method_mut() = method;
            *index_request.uri_mut() = INDEX.parse().expect("the index path is a valid URI");
            *index_request.headers_mut() = headers;
            response = self.answer(index_request).await;
        }
        let cache_control = if path.starts_with(HASHED_ASSETS_PREFIX) {
            IMMUTABLE
        } else {
            REVALIDATE
        };
        if response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED {
            response
                .headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static(cache_control));
        }
        response
    }

    async fn answer(&self, request: Request<Body>) -> Response {
        match self.files.clone().oneshot(request).await {
            Ok(response) => response,
            Err(infallible) => match infallible {},
        }
    }
}
