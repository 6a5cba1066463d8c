//! The HTTP surface of one replica.
//!
//! # Layout
//!
//! - [`api_error`]: [`ApiError`], the JSON error of every failed request.
//! - [`api_json`]: the JSON body extractor mapping every rejection to an `ApiError`.
//! - [`request_context`]: request ids, tracing spans and HTTP metrics.
//! - [`caller`]: the authenticated user of a request.
//! - [`session_guard`]: in front of every API route: password change first, CSRF for cookies.
//! - [`client_address`]: the client's address (peer, or `X-Forwarded-For` of trusted proxies).
//! - [`api_services`]: settings and collaborators of the handlers (audit sink, cipher, limits).
//! - [`auth_routes`], [`access_key_routes`], [`user_routes`], [`role_binding_routes`],
//!   [`cluster_routes`], [`system_routes`], [`health_routes`]: the handlers.
//! - [`openapi`]: the OpenAPI document generated from the handlers and wire types.
//! - [`tls_listener`]: HTTPS on the web port.
//!
//! Architecture Invariant: handlers keep nothing between requests that another replica would need;
//! everything lives in the store.

pub mod access_key_routes;
pub mod api_error;
pub mod api_json;
pub mod api_services;
pub mod auth_routes;
pub mod caller;
pub mod client_address;
pub mod cluster_routes;
pub mod health_routes;
pub mod openapi;
pub mod request_context;
pub mod role_binding_routes;
pub mod session_guard;
pub mod system_routes;
#[cfg(test)]
mod tests;
pub mod tls_listener;
pub mod user_routes;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
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
    pub api: Arc<api_services::ApiServices>,
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
        .route("/kuboard-api/openapi.json", get(openapi::openapi_json))
        .route(
            "/kuboard-api/auth/access-keys",
            get(access_key_routes::list_access_keys).post(access_key_routes::create_access_key),
        )
        .route(
            "/kuboard-api/auth/access-keys/{id}",
            delete(access_key_routes::delete_access_key),
        )
        .route(
            "/kuboard-api/users",
            get(user_routes::list_users).post(user_routes::create_user),
        )
        .route(
            "/kuboard-api/users/{username}",
            get(user_routes::get_user)
                .patch(user_routes::update_user)
                .delete(user_routes::delete_user),
        )
        .route(
            "/kuboard-api/users/{username}/password",
            post(user_routes::reset_password),
        )
        .route("/kuboard-api/users/{username}/identity", get(user_routes::identity))
        .route(
            "/kuboard-api/role-bindings",
            get(role_binding_routes::list_role_bindings).post(role_binding_routes::create_role_binding),
        )
        .route(
            "/kuboard-api/role-bindings/{id}",
            delete(role_binding_routes::delete_role_binding),
        )
        .route(
            "/kuboard-api/clusters",
            get(cluster_routes::list_clusters).post(cluster_routes::create_cluster),
        )
        .route(
            "/kuboard-api/clusters/{name}",
            get(cluster_routes::get_cluster)
                .put(cluster_routes::update_cluster)
                .delete(cluster_routes::delete_cluster),
        )
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(DefaultBodyLimit::max(api_json::BODY_LIMIT_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_context::request_context,
        ))
        .with_state(state)
}

/// Puts the session guard in front of `app` (the whole API, every module's routes merged).
pub fn with_session_guard(app: Router, state: AppState) -> Router {
    app.layer(axum::middleware::from_fn_with_state(
        state,
        session_guard::session_guard,
    ))
}
