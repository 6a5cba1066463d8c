//! The outermost middleware: gives every request an id (returned as `x-request-id`), a tracing
//! span, and HTTP metrics by route.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::http::api_error::REQUEST_ID;
use crate::http::AppState;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

pub async fn request_context(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    // Unmatched paths share one label so that scanners cannot blow up the metric's cardinality.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string();
    let method = request.method().as_str().to_string();
    let span = tracing::info_span!("request", request_id = %request_id, method = %method, route = %route);
    let started = Instant::now();

    let mut response = REQUEST_ID
        .scope(request_id.clone(), next.run(request).instrument(span.clone()))
        .await;

    let elapsed = started.elapsed();
    let status = response.status();
    response.headers_mut().insert(
        REQUEST_ID_HEADER,
        HeaderValue::from_str(&request_id).expect("a uuid is a valid header value"),
    );
    state
        .metrics
        .http_requests
        .with_label_values(&[&route, &method, status.as_str()])
        .inc();
    state
        .metrics
        .http_request_duration
        .with_label_values(&[&route, &method])
        .observe(elapsed.as_secs_f64());
    span.in_scope(|| {
        tracing::debug!(
            status = status.as_u16(),
            elapsed_ms = elapsed.as_millis() as u64,
            "answered"
        )
    });
    response
}
