//! The web console: the single-page app of `web/`, embedded in the binary by `build.rs` and served
//! next to the REST API by every replica.
//!
//! # Layout
//!
//! - [`console_files`]: the embedded files (memory-serve: brotli/gzip, ETag and `If-None-Match`),
//!   their caching rules and the single-page-app fallback to `index.html`.
//! - [`security_headers`]: the Content-Security-Policy and the other browser protections, put on
//!   every response of the console and of the API.
//!
//! **Architecture Invariant:** the console never shadows the API: a path whose first segment is one
//! of [`API_PREFIXES`] always reaches the API routes (and their JSON 404), whatever the method.
//! The console keeps no state; every replica serves the same bytes under the same ETags, so a
//! browser moved to another replica by the load balancer revalidates and keeps its cache.

pub mod console_files;
pub mod security_headers;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;

use console_files::ConsoleFiles;

/// First path segments that belong to the API, never to the console.
pub const API_PREFIXES: [&str; 5] = ["kuboard-api", "k8s-api", "healthz", "readyz", "metrics"];

/// Serves the console in front of `app` (the API): `GET`/`HEAD` of any path outside
/// [`API_PREFIXES`] is the console's; everything else goes on to `app`. Adds the security headers
/// to every response.
pub fn with_console(app: Router) -> Router {
    let files = Arc::new(ConsoleFiles::load());
    app.layer(axum::middleware::from_fn_with_state(files, console_or_api))
}

async fn console_or_api(State(files): State<Arc<ConsoleFiles>>, request: Request, next: Next) -> Response {
    let mut response = if is_console_request(request.method(), request.uri().path()) {
        files.serve(request).await
    } else {
        next.run(request).await
    };
    security_headers::add_security_headers(response.headers_mut());
    response
}

/// Whether a request is the console's to answer.
pub fn is_console_request(method: &Method, path: &str) -> bool {
    if method != Method::GET && method != Method::HEAD {
        return false;
    }
    let first_segment = path.trim_start_matches('/').split('/').next().unwrap_or_default();
    !API_PREFIXES.contains(&first_segment)
}
