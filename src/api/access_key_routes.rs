//! `/kuboard-api/auth/access-keys/...`: long-lived keys for API clients, each user their own.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::access_keys::{self, AccessKeyRecord};
use crate::auth::roles::GlobalRole;
use crate::clock::format_rfc3339;
use crate::http::api_error::{ApiError, ErrorBody};
use crate::http::api_json::ApiJson;
use crate::http::caller::Caller;
use crate::http::AppState;

const MAX_KEYS_PER_USER: usize = 100;
/// Ten years: a key that should never expire is given no lifetime at all.
const MAX_LIFETIME_SECONDS: u64 = 10 * 365 * 24 * 3600;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccessKeyRequest {
    /// What the key is for (1-128 characters, no control characters).
    #[schema(min_length = 1, max_length = 128, pattern = r"^[^\x00-\x1f\x7f-\x9f]+$")]
    pub name: String,
    /// Absent: the key never expires.
    #[schema(minimum = 1, maximum = 315_360_000)]
    pub expires_in_seconds: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccessKeyResponse {
    pub id: String,
    pub username: String,
    pub name: String,
    pub created_at: String,
    pub expires_at: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedAccessKeyResponse {
    /// The whole key, to send as `Authorization: Bearer <key>`. Shown only now.
    pub key: String,
    pub access_key: AccessKeyResponse,
}

fn view(record: &AccessKeyRecord) -> AccessKeyResponse {
    AccessKeyResponse {
        id: record.id.clone(),
        username: record.username.clone(),
        name: record.name.clone(),
        created_at: format_rfc3339(record.created_at),
        expires_at: record.expires_at.map(format_rfc3339),
    }
}

/// The caller's access keys.
#[utoipa::path(get, path = "/kuboard-api/auth/access-keys", tag = "auth",
    responses((status = 200, body = Vec<AccessKeyResponse>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_access_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<AccessKeyResponse>>, ApiError> {
    let keys = access_keys::list_access_keys(&state.store, Some(caller.username())).await?;
    Ok(Json(keys.iter().map(view).collect()))
}

/// Creates an access key for the caller; the answer is the only time the key is shown.
#[utoipa::path(post, path = "/kuboard-api/auth/access-keys", tag = "auth", request_body = CreateAccessKeyRequest,
    responses((status = 201, body = CreatedAccessKeyResponse), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_access_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreateAccessKeyRequest>,
) -> Result<Response, ApiError> {
    caller.user(&state).await?;
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_name",
            "expected a name of 1-128 printable characters",
        ));
    }
    if request
        .expires_in_seconds
        .is_some_and(|seconds| seconds == 0 || seconds > MAX_LIFETIME_SECONDS)
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_expiry",
            format!("expected expires_in_seconds between 1 and {MAX_LIFETIME_SECONDS}, or none"),
        ));
    }
    if access_keys::list_access_keys(&state.store, Some(caller.username()))
        .await?
        .len()
        >= MAX_KEYS_PER_USER
    {
        return Err(ApiError::conflict(format!(
            "a user may hold at most {MAX_KEYS_PER_USER} access keys"
        )));
    }
    let now = state.clock.now_unix();
    let expires_at = request.expires_in_seconds.map(|seconds| now + seconds);
    let (key, record) = access_keys::create_access_key(&state.store, caller.username(), name, now, expires_at).await?;
    tracing::info!(id = %record.id, username = caller.username(), "access key created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedAccessKeyResponse {
            key,
            access_key: view(&record),
        }),
    )
        .into_response())
}

/// Revokes an access key of the caller's (administrators: anybody's).
#[utoipa::path(delete, path = "/kuboard-api/auth/access-keys/{id}", tag = "auth", params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_access_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let user = caller.user(&state).await?;
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "access_key_not_found", "no such access key");
    let record = access_keys::get_access_key(&state.store, &id)
        .await?
        .ok_or_else(not_found)?;
    let administrator = user.record.effective_role() == GlobalRole::Administrator;
    if record.username != caller.username() && !administrator {
        return Err(not_found());
    }
    if !access_keys::delete_access_key(&state.store, &id).await? {
        return Err(not_found());
    }
    tracing::info!(id = %id, by = caller.username(), "access key revoked");
    Ok(StatusCode::NO_CONTENT)
}
