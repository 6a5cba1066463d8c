//! `/kuboard-api/users/...`: the built-in users (administrators only), and the Kubernetes
//! identity a user reaches a cluster with.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::auth_routes::policy_error;
use crate::auth::password_policy::check_new_password;
use crate::auth::role_bindings;
use crate::auth::roles::{kubernetes_identity, GlobalRole, UserView};
use crate::auth::sessions;
use crate::auth::users::{self, UserRecord, ADMIN_USERNAME};
use crate::clock::format_rfc3339;
use crate::http::api_error::{ApiError, ErrorBody};
use crate::http::api_json::ApiJson;
use crate::http::api_query::ApiQuery;
use crate::http::caller::Caller;
use crate::http::AppState;

const MAX_GROUPS: usize = 64;

/// The OpenAPI schema of a list of group names, as [`check_groups`] accepts it.
fn group_names() -> utoipa::openapi::Array {
    crate::http::openapi::string_list(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", 0, MAX_GROUPS)
}

/// [`group_names`], or `null` (no change).
fn group_names_or_null() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{OneOfBuilder, Schema, Type};
    use utoipa::openapi::ObjectBuilder;
    Schema::OneOf(
        OneOfBuilder::new()
            .item(group_names())
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .build(),
    )
}

/// A user as the API shows it (never the password hash).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserResponse {
    pub username: String,
    pub role: GlobalRole,
    pub groups: Vec<String>,
    pub disabled: bool,
    pub must_change_password: bool,
    pub created_at: String,
    pub updated_at: String,
}

fn view(record: &UserRecord) -> UserResponse {
    UserResponse {
        username: record.username.clone(),
        role: record.effective_role(),
        groups: record.groups.clone(),
        disabled: record.disabled,
        must_change_password: record.must_change_password,
        created_at: format_rfc3339(record.created_at),
        updated_at: format_rfc3339(record.updated_at),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// 1-64 characters: letters, digits, `.`, `_`, `-`, starting with a letter or digit.
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    pub username: String,
    /// The first password (8 characters to 1024 bytes); the user must change it at first login.
    #[schema(min_length = 8, max_length = 1024)]
    pub password: String,
    #[serde(default)]
    pub role: GlobalRole,
    /// At most 64 group names, each written like a user name.
    #[serde(default)]
    #[schema(max_items = 64, schema_with = group_names)]
    pub groups: Vec<String>,
}

/// Changes to a user; absent fields stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    pub role: Option<GlobalRole>,
    /// At most 64 group names, each written like a user name.
    #[schema(schema_with = group_names_or_null)]
    pub groups: Option<Vec<String>>,
    pub disabled: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    /// The new password (8 characters to 1024 bytes); the user must change it at next login.
    #[schema(min_length = 8, max_length = 1024)]
    pub password: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ResetPasswordResponse {
    pub username: String,
    pub must_change_password: bool,
    pub sessions_ended: usize,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct IdentityQuery {
    #[param(pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub cluster: String,
    #[param(pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub namespace: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IdentityResponse {
    /// `Impersonate-User`.
    pub user: String,
    /// `Impersonate-Group`.
    pub groups: Vec<String>,
}

fn check_groups(groups: &[String]) -> Result<(), ApiError> {
    if groups.len() > MAX_GROUPS || groups.iter().any(|group| !users::is_valid_username(group)) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_groups",
            format!(
                "expected at most {MAX_GROUPS} group names, each like a user name ([A-Za-z0-9][A-Za-z0-9._-]{{0,63}})"
            ),
        ));
    }
    Ok(())
}

fn no_such_user() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "user_not_found", "no such user")
}

/// Every user.
#[utoipa::path(get, path = "/kuboard-api/users", tag = "users",
    responses((status = 200, body = Vec<UserResponse>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_users(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<UserResponse>>, ApiError> {
    caller.require_administrator(&state).await?;
    Ok(Json(users::list_users(&state.store).await?.iter().map(view).collect()))
}

/// One user.
#[utoipa::path(get, path = "/kuboard-api/users/{username}", tag = "users",
    params(("username" = String, Path, pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")),
    responses((status = 200, body = UserResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
) -> Result<Json<UserResponse>, ApiError> {
    caller.require_administrator(&state).await?;
    let user = users::get_user(&state.store, &username)
        .await?
        .ok_or_else(no_such_user)?;
    Ok(Json(view(&user.record)))
}

/// Creates a user, who must change the password at first login.
#[utoipa::path(post, path = "/kuboard-api/users", tag = "users", request_body = CreateUserRequest,
    responses((status = 201, body = UserResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreateUserRequest>,
) -> Result<Response, ApiError> {
    caller.require_administrator(&state).await?;
    if !users::is_valid_username(&request.username) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_username",
            "expected a user name of 1-64 characters [A-Za-z0-9._-], starting with a letter or digit",
        ));
    }
    check_groups(&request.groups)?;
    check_new_password(
        &request.username,
        &request.password,
        state.login.default_password.expose(),
    )
    .map_err(policy_error)?;
    let now = state.clock.now_unix();
    let record = UserRecord {
        username: request.username,
        password_hash: users::hash_password_blocking(request.password).await?,
        must_change_password: true,
        created_at: now,
        updated_at: now,
        role: request.role,
        groups: request.groups,
        disabled: false,
    };
    if !users::create_user(&state.store, &record).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "user_exists",
            "a user with this name exists",
        ));
    }
    tracing::info!(username = %record.username, by = caller.username(), "user created");
    Ok((StatusCode::CREATED, Json(view(&record))).into_response())
}

/// Changes a user's role, groups or enabled state. Disabling ends the user's sessions.
#[utoipa::path(patch, path = "/kuboard-api/users/{username}", tag = "users", request_body = UpdateUserRequest,
    params(("username" = String, Path, pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")),
    responses((status = 200, body = UserResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
    ApiJson(request): ApiJson<UpdateUserRequest>,
) -> Result<Json<UserResponse>, ApiError> {
    caller.require_administrator(&state).await?;
    let user = users::get_user(&state.store, &username)
        .await?
        .ok_or_else(no_such_user)?;
    if let Some(groups) = &request.groups {
        check_groups(groups)?;
    }
    if user.record.username == ADMIN_USERNAME
        && (request.disabled == Some(true) || request.role == Some(GlobalRole::Viewer))
    {
        return Err(ApiError::forbidden("the admin user cannot be disabled or demoted"));
    }
    let record = UserRecord {
        role: request.role.unwrap_or(user.record.role),
        groups: request.groups.unwrap_or_else(|| user.record.groups.clone()),
        disabled: request.disabled.unwrap_or(user.record.disabled),
        updated_at: state.clock.now_unix(),
        ..user.record.clone()
    };
    if !users::replace_user(&state.store, &user, &record).await? {
        return Err(ApiError::conflict(
            "the user was changed by another request meanwhile; retry",
        ));
    }
    if record.disabled && !user.record.disabled {
        let ended = sessions::delete_other_sessions(&state.store, &record.username, "").await?;
        tracing::info!(username = %record.username, sessions_ended = ended, by = caller.username(), "user disabled");
    }
    Ok(Json(view(&record)))
}

/// Deletes a user with their sessions and access keys.
#[utoipa::path(delete, path = "/kuboard-api/users/{username}", tag = "users",
    params(("username" = String, Path, pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_administrator(&state).await?;
    if username == ADMIN_USERNAME {
        return Err(ApiError::forbidden("the admin user cannot be deleted"));
    }
    let user = users::get_user(&state.store, &username)
        .await?
        .ok_or_else(no_such_user)?;
    if !users::delete_user(&state.store, &user).await? {
        return Err(ApiError::conflict(
            "the user was changed by another request meanwhile; retry",
        ));
    }
    tracing::info!(username = %username, by = caller.username(), "user deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Sets a new password for a user (who must change it at next login) and ends their sessions.
#[utoipa::path(post, path = "/kuboard-api/users/{username}/password", tag = "users", request_body = ResetPasswordRequest,
    params(("username" = String, Path, pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")),
    responses((status = 200, body = ResetPasswordResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn reset_password(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
    ApiJson(request): ApiJson<ResetPasswordRequest>,
) -> Result<Json<ResetPasswordResponse>, ApiError> {
    caller.require_administrator(&state).await?;
    let user = users::get_user(&state.store, &username)
        .await?
        .ok_or_else(no_such_user)?;
    check_new_password(&username, &request.password, state.login.default_password.expose()).map_err(policy_error)?;
    let record = UserRecord {
        password_hash: users::hash_password_blocking(request.password).await?,
        must_change_password: true,
        updated_at: state.clock.now_unix(),
        ..user.record.clone()
    };
    if !users::replace_user(&state.store, &user, &record).await? {
        return Err(ApiError::conflict(
            "the user was changed by another request meanwhile; retry",
        ));
    }
    let keep = if username == caller.username() {
        caller.session.token_hash.as_str()
    } else {
        ""
    };
    let sessions_ended = sessions::delete_other_sessions(&state.store, &username, keep).await?;
    tracing::info!(username = %username, by = caller.username(), sessions_ended, "password reset");
    Ok(Json(ResetPasswordResponse {
        username,
        must_change_password: true,
        sessions_ended,
    }))
}

/// The Kubernetes identity (impersonated user and groups) a user reaches a cluster with.
#[utoipa::path(get, path = "/kuboard-api/users/{username}/identity", tag = "users",
    params(("username" = String, Path, pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"), IdentityQuery),
    responses((status = 200, body = IdentityResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn identity(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
    ApiQuery(query): ApiQuery<IdentityQuery>,
) -> Result<Json<IdentityResponse>, ApiError> {
    if username != caller.username() {
        caller.require_administrator(&state).await?;
    }
    let user = users::get_user(&state.store, &username)
        .await?
        .ok_or_else(no_such_user)?;
    let bindings = role_bindings::list_role_bindings(&state.store).await?;
    let user_view = UserView {
        username: &user.record.username,
        role: user.record.effective_role(),
        groups: &user.record.groups,
        disabled: user.record.disabled,
    };
    let identity = kubernetes_identity(&user_view, &bindings, &query.cluster, query.namespace.as_deref())
        .ok_or_else(|| ApiError::forbidden("this user is disabled and reaches no cluster"))?;
    Ok(Json(IdentityResponse {
        user: identity.user,
        groups: identity.groups,
    }))
}
