//! `/kuboard-api/role-bindings/...`: who holds which role on which cluster or namespace.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::role_bindings;
use crate::auth::roles::{ClusterRole, RoleBinding, Subject};
use crate::auth::users;
use crate::clock::format_rfc3339;
use crate::clusters::cluster_registry::is_valid_cluster_name;
use crate::http::api_error::{ApiError, ErrorBody};
use crate::http::api_json::ApiJson;
use crate::http::caller::Caller;
use crate::http::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoleBindingRequest {
    pub subject: Subject,
    /// A cluster name, or `*` for every cluster.
    #[schema(pattern = r"^(\*|[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)$")]
    pub cluster: String,
    /// Absent: the whole cluster.
    #[schema(pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub namespace: Option<String>,
    pub role: ClusterRole,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RoleBindingResponse {
    pub id: String,
    pub subject: Subject,
    pub cluster: String,
    pub namespace: Option<String>,
    pub role: ClusterRole,
    pub created_at: String,
}

fn view(binding: RoleBinding) -> RoleBindingResponse {
    RoleBindingResponse {
        id: binding.id,
        subject: binding.subject,
        cluster: binding.cluster,
        namespace: binding.namespace,
        role: binding.role,
        created_at: format_rfc3339(binding.created_at),
    }
}

/// Every role binding.
#[utoipa::path(get, path = "/kuboard-api/role-bindings", tag = "roles",
    responses((status = 200, body = Vec<RoleBindingResponse>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_role_bindings(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<RoleBindingResponse>>, ApiError> {
    caller.require_administrator(&state).await?;
    let bindings = role_bindings::list_role_bindings(&state.store).await?;
    Ok(Json(bindings.into_iter().map(view).collect()))
}

/// Grants a role on a cluster or namespace to a user or group.
#[utoipa::path(post, path = "/kuboard-api/role-bindings", tag = "roles", request_body = CreateRoleBindingRequest,
    responses((status = 201, body = RoleBindingResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_role_binding(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreateRoleBindingRequest>,
) -> Result<Response, ApiError> {
    caller.require_administrator(&state).await?;
    let subject_name = match &request.subject {
        Subject::User(name) | Subject::Group(name) => name,
    };
    if !users::is_valid_username(subject_name) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_subject",
            "expected a user or group name",
        ));
    }
    if request.cluster != "*" && !is_valid_cluster_name(&request.cluster) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_cluster",
            "expected a cluster name or *",
        ));
    }
    if request
        .namespace
        .as_deref()
        .is_some_and(|namespace| !is_valid_cluster_name(namespace))
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_namespace",
            "expected a Kubernetes namespace name",
        ));
    }
    let binding = RoleBinding {
        id: role_bindings::new_binding_id(),
        subject: request.subject,
        cluster: request.cluster,
        namespace: request.namespace,
        role: request.role,
        created_at: state.clock.now_unix(),
    };
    role_bindings::put_role_binding(&state.store, &binding).await?;
    tracing::info!(id = %binding.id, by = caller.username(), "role binding created");
    Ok((StatusCode::CREATED, Json(view(binding))).into_response())
}

/// Removes a role binding.
#[utoipa::path(delete, path = "/kuboard-api/role-bindings/{id}", tag = "roles", params(("id" = String, Path, pattern = "^[0-9a-f]{16}$")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_role_binding(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_administrator(&state).await?;
    if !role_bindings::delete_role_binding(&state.store, &id).await? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "role_binding_not_found",
            "no such role binding",
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}
