//! The REST API, assembled in one place: [`router`] merges the routes of every feature and puts
//! the audit and session-guard layers around them; [`openapi`] merges every feature's OpenAPI paths
//! into the one document served at `/kuboard-api/openapi.json`. A new feature (the web console's
//! `crate::console` router, for one) is merged in [`router`], next to the others.
//!
//! # Layout
//!
//! This folder also holds the routes of the resources whose domain lives below `crate::http` (the
//! session guard needs users and sessions, so `auth/` and `clusters/` cannot import `http/`):
//!
//! - [`auth_routes`]: login, logout, the current user, password change (`/kuboard-api/auth/…`).
//! - [`access_key_routes`]: the caller's access keys.
//! - [`user_routes`]: built-in users, their passwords and Kubernetes identity.
//! - [`role_binding_routes`]: role bindings per cluster and namespace.
//! - [`system_routes`]: this replica's and the store's state.
//! - [`health_routes`]: `/healthz`, `/readyz`, `/metrics`.
//!
//! The other features own their routes and OpenAPI paths in their folders: `crate::kube`
//! (the cluster registry and imports, endpoints, kubeconfig download, the proxy `/k8s-api/…`), `crate::audit`
//! (the event list and status) and `crate::store_admin` (members and snapshots).

pub mod access_key_routes;
pub mod auth_routes;
pub mod health_routes;
#[cfg(test)]
mod openapi_tests;
pub mod role_binding_routes;
pub mod system_routes;
#[cfg(test)]
mod tests;
pub mod user_routes;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use utoipa::{Modify, OpenApi};

use crate::audit::audit_layer::{audit_guard_refusals, audit_layer, AuditLayerState};
use crate::audit::audit_service::AuditService;
use crate::http::openapi::{BodyErrors, SharedDocument};
use crate::http::{api_json, request_context, ApiError, AppState};
use crate::kube::kube_routes::KubeContext;
use crate::store_backend::StoreBackend;

/// What assembling the API needs besides the shared state.
pub struct ApiParts {
    pub state: AppState,
    pub audit: Arc<AuditService>,
    pub backend: Arc<StoreBackend>,
    pub kube: Arc<KubeContext>,
}

/// The whole HTTP application of a replica: every feature's routes, the audit layer inside the
/// session guard (so it knows the caller), and in front of the guard the auditing of its refusals.
pub fn router(parts: ApiParts) -> Router {
    let ApiParts {
        state,
        audit,
        backend,
        kube,
    } = parts;
    let audit_state = AuditLayerState {
        app: state.clone(),
        service: audit.clone(),
    };
    let app = resource_routes(state.clone(), audit.clone())
        .merge(crate::kube::kube_routes::router(state.clone(), kube))
        .merge(crate::store_admin::members_routes::router(
            state.clone(),
            backend.clone(),
        ))
        .merge(crate::store_admin::snapshot_routes::router(state.clone(), backend))
        .merge(crate::audit::audit_routes::router(audit).with_state(state.clone()))
        .layer(axum::middleware::from_fn_with_state(audit_state.clone(), audit_layer));
    crate::http::with_session_guard(app, state)
        .layer(axum::middleware::from_fn_with_state(audit_state, audit_guard_refusals))
}

/// The routes of this folder's resources, with the OpenAPI document itself.
pub fn resource_routes(state: AppState, audit: Arc<AuditService>) -> Router {
    Router::new()
        .route("/healthz", get(health_routes::healthz))
        .route("/readyz", get(health_routes::readyz))
        .route("/metrics", get(health_routes::metrics))
        .route("/kuboard-api/auth/login", post(auth_routes::login))
        .route("/kuboard-api/auth/logout", post(auth_routes::logout))
        .route("/kuboard-api/auth/me", get(auth_routes::me))
        .route("/kuboard-api/auth/password", post(auth_routes::change_password))
        .route("/kuboard-api/system/status", get(system_routes::status))
        .route("/kuboard-api/openapi.json", get(openapi_json))
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
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(Extension(audit))
        .layer(DefaultBodyLimit::max(api_json::BODY_LIMIT_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_context::request_context,
        ))
        .with_state(state)
}

/// The OpenAPI paths of this folder's handlers.
#[derive(OpenApi)]
#[openapi(paths(
    health_routes::healthz,
    health_routes::readyz,
    health_routes::metrics,
    openapi_json,
    auth_routes::login,
    auth_routes::logout,
    auth_routes::me,
    auth_routes::change_password,
    access_key_routes::list_access_keys,
    access_key_routes::create_access_key,
    access_key_routes::delete_access_key,
    user_routes::list_users,
    user_routes::get_user,
    user_routes::create_user,
    user_routes::update_user,
    user_routes::delete_user,
    user_routes::reset_password,
    user_routes::identity,
    role_binding_routes::list_role_bindings,
    role_binding_routes::create_role_binding,
    role_binding_routes::delete_role_binding,
    system_routes::status,
))]
struct ResourceApi;

/// The OpenAPI 3 document of the REST API: the shared parts, then every feature's paths, each
/// generated from its handlers' `#[utoipa::path]` attributes and its wire types' `ToSchema`
/// derives. The Kubernetes proxy under `/k8s-api/{cluster}/…` is not in it: it passes the
/// Kubernetes API through unchanged, described by each cluster's own `/openapi/v2` and `/openapi/v3`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut document = SharedDocument::openapi();
    document.merge(ResourceApi::openapi());
    document.merge(crate::kube::kube_routes::KubeApi::openapi());
    document.merge(crate::audit::audit_routes::AuditApi::openapi());
    document.merge(crate::store_admin::members_routes::MembersApi::openapi());
    document.merge(crate::store_admin::snapshot_routes::SnapshotApi::openapi());
    // After the merge: it adds the body extractor's errors to every feature's operations.
    BodyErrors.modify(&mut document);
    document
}

/// This document.
#[utoipa::path(get, path = "/kuboard-api/openapi.json", tag = "system",
    responses((status = 200, description = "The OpenAPI 3 document", content_type = "application/json", body = Object)))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}
