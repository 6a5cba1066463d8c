//! `/healthz`, `/readyz` and `/metrics`: for load balancers, orchestrators and Prometheus.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};

use crate::app_store::error_kind;
use crate::audit::audit_service::AuditService;
use crate::http::api_error::ApiError;
use crate::http::AppState;

/// A scrape or probe never waits longer than this for the store's status.
const STATUS_DEADLINE: Duration = Duration::from_secs(2);

/// Alive: the process answers and its store has not stopped by itself. A replica whose embedded
/// member could not write its log (a full disk, an fsync error) answers 503 here until it exits,
/// so that a supervisor restarts it rather than keep a replica that looks alive and is not.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "Alive", content_type = "text/plain", body = String),
        (status = 503, description = "The store stopped by itself; the replica is exiting", body = crate::http::api_error::ErrorBody)))]
pub async fn healthz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    match state.store.failure() {
        None => Ok("ok"),
        Some(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_failed",
            "the store stopped after a disk error; this replica is exiting so that it can be restarted",
        )),
    }
}

/// Ready: the store has a leader with a quorum and the first-start setup is done.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "Ready", body = Object), (status = 503, description = "Not ready", body = crate::http::api_error::ErrorBody)))]
pub async fn readyz(
    State(state): State<AppState>,
    Extension(audit): Extension<Arc<AuditService>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let not_ready = |code, message: &str| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message);
    let status = match tokio::time::timeout(STATUS_DEADLINE, state.store.status()).await {
        Ok(Ok(status)) => status,
        Ok(Err(error)) => {
            tracing::debug!(%error, "readiness: store status failed");
            return Err(not_ready("store_unavailable", "the store does not answer"));
        }
        Err(_) => return Err(not_ready("store_unavailable", "the store did not answer in time")),
    };
    if !status.healthy {
        return Err(not_ready("store_unhealthy", "the store has no leader with a quorum"));
    }
    if let Some(reason) = audit.paused_reason() {
        tracing::debug!(%reason, "readiness: audit paused");
        return Err(not_ready(
            "audit_paused",
            "audit is paused: the audit database does not accept events",
        ));
    }
    if !state.admin_ready.load(Ordering::Acquire) {
        return Err(not_ready(
            "starting",
            "the first-start setup (admin user) is not done yet",
        ));
    }
    Ok(Json(
        serde_json::json!({ "status": "ready", "leader": status.leader, "revision": status.revision }),
    ))
}

/// Prometheus metrics of this replica.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn metrics(
    State(state): State<AppState>,
    Extension(audit): Extension<Arc<AuditService>>,
) -> impl IntoResponse {
    match tokio::time::timeout(STATUS_DEADLINE, state.store.status()).await {
        Ok(Ok(status)) => state.metrics.observe_store_status(Ok(&status)),
        Ok(Err(error)) => state.metrics.observe_store_status(Err(error_kind(&error))),
        Err(_) => state.metrics.observe_store_status(Err("timeout")),
    }
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render() + &audit.prometheus_text(),
    )
}
