//! The HTTP surface of one replica.
//!
//! # Layout
//!
//! - [`api_error`]: [`ApiError`], the JSON error of every failed request.
//! - [`api_json`]: the JSON body extractor mapping every rejection to an `ApiError`.
//! - [`request_context`]: request ids, tracing spans and HTTP metrics.
//! - [`caller`]: the authenticated user of a request.
//! - [`auth_routes`], [`system_routes`], [`health_routes`]: the handlers.
//! - [`tls_listener`]: HTTPS on the web port.
//!
//! Architecture Invariant: handlers keep nothing between requests that another replica would need;
//! everything lives in the store.

pub mod api_error;
pub mod api_json;
pub mod auth_routes;
pub mod caller;
pub mod health_routes;
pub mod request_context;
pub mod system_routes;
#[cfg(test)]
mod tests;
pub mod tls_listener;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use crate::app_store::AppStore;
use crate::clock::Clock;
use crate::config::AuditPolicy;
use crate::metrics::Metrics;
pub use api_error::ApiError;

/// What every handler may use. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: AppStore,
    pub metrics: Arc<Metrics>,
    pub clock: Clock,
    pub replica_id: u64,
    pub session_ttl: Duration,
    /// Mark the session cookie `Secure` (the web port serves HTTPS).
    pub secure_cookies: bool,
    pub audit_policy: AuditPolicy,
    /// Set once the first-start `admin` user is known to exist.
    pub admin_ready: Arc<AtomicBool>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health_routes::healthz))
        .route("/readyz", get(health_routes::readyz))
        .route("/metrics", get(health_routes::metrics))
        .route("/kuboard-api/auth/login", post(auth_routes::login))
        .route("/kuboard-api/auth/logout", post(auth_routes::logout))
        .route("/kuboard-api/auth/me", get(auth_routes::me))
        .route("/kuboard-api/auth/password", post(auth_routes::change_password))
        .route("/kuboard-api/system/status", get(system_routes::status))
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(DefaultBodyLimit::max(api_json::BODY_LIMIT_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_context::request_context,
        ))
        .with_state(state)
}
