//! `/kuboard-api/auth/...`: login, logout, the current user, and password change.

use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::auth::password::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS};
use crate::auth::sessions;
use crate::auth::users::{self, UserRecord};
use crate::clock::format_rfc3339;
use crate::http::api_error::ApiError;
use crate::http::api_json::ApiJson;
use crate::http::caller::{presented_token, Caller, SESSION_COOKIE};
use crate::http::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LoginResponse {
    pub token: String,
    pub token_type: String,
    pub username: String,
    /// RFC 3339, UTC.
    pub expires_at: String,
    pub must_change_password: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct MeResponse {
    pub username: String,
    pub must_change_password: bool,
    pub session_expires_at: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ChangePasswordResponse {
    pub username: String,
    pub must_change_password: bool,
    /// How many other sessions of this user were ended by the change.
    pub other_sessions_ended: usize,
}

fn session_cookie(state: &AppState, token: &str, max_age_seconds: u64) -> HeaderValue {
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age_seconds}{secure}"
    ))
    .expect("a base64url token is a valid header value")
}

pub async fn login(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let shown_name = if users::is_valid_username(&request.username) {
        request.username.as_str()
    } else {
        "<invalid>"
    };
    if request.password.len() > MAX_PASSWORD_BYTES {
        tracing::info!(username = shown_name, "login refused: password too long");
        return Err(ApiError::invalid_credentials());
    }
    let user = users::get_user(&state.store, &request.username).await?;
    let stored_hash = user.as_ref().map(|user| user.record.password_hash.clone());
    let matches = users::verify_password_blocking(request.password, stored_hash).await?;
    let Some(user) = user.filter(|_| matches) else {
        tracing::info!(username = shown_name, "login refused: wrong user name or password");
        return Err(ApiError::invalid_credentials());
    };
    let now = state.clock.now_unix();
    let ttl = state.session_ttl.as_secs();
    let (token, session) = sessions::create_session(&state.store, &user.record.username, ttl, now).await?;
    tracing::info!(username = %user.record.username, "login");
    let body = LoginResponse {
        token: token.clone(),
        token_type: "Bearer".to_string(),
        username: user.record.username,
        expires_at: format_rfc3339(session.expires_at),
        must_change_password: user.record.must_change_password,
    };
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(SET_COOKIE, session_cookie(&state, &token, ttl));
    Ok(response)
}

/// Ends the presented session everywhere. Idempotent: without a live session it still answers 204
/// and clears the cookie.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = presented_token(&headers) {
        if let Some(session) = sessions::find_session(&state.store, &token, state.clock.now_unix()).await? {
            sessions::delete_session(&state.store, &session.token_hash, session.record.lease).await?;
            tracing::info!(username = %session.record.username, "logout");
        }
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let clear = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0{secure}");
    response.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_str(&clear).expect("a constant cookie is valid"),
    );
    Ok(response)
}

pub async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<MeResponse>, ApiError> {
    let user = users::get_user(&state.store, caller.username())
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    Ok(Json(MeResponse {
        username: user.record.username,
        must_change_password: user.record.must_change_password,
        session_expires_at: format_rfc3339(caller.session.record.expires_at),
    }))
}

pub async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<ChangePasswordRequest>,
) -> Result<Json<ChangePasswordResponse>, ApiError> {
    if request.new_password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "password_too_short",
            format!("the new password must have at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if request.new_password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "password_too_long",
            format!("the new password must have at most {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    if request.new_password == request.current_password {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "password_unchanged",
            "the new password must differ from the current one",
        ));
    }
    let user = users::get_user(&state.store, caller.username())
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    let current_matches =
        users::verify_password_blocking(request.current_password, Some(user.record.password_hash.clone())).await?;
    if !current_matches {
        tracing::info!(username = %user.record.username, "password change refused: wrong current password");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_password",
            "the current password is wrong",
        ));
    }
    let now = state.clock.now_unix();
    let record = UserRecord {
        password_hash: users::hash_password_blocking(request.new_password).await?,
        must_change_password: false,
        updated_at: now,
        ..user.record.clone()
    };
    if !users::replace_user(&state.store, &user, &record).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "the user was changed by another request meanwhile; retry",
        ));
    }
    tracing::info!(username = %record.username, "password changed");
    // The change has happened; failing to end the other sessions must not report it as failed.
    let other_sessions_ended =
        match sessions::delete_other_sessions(&state.store, &record.username, &caller.session.token_hash).await {
            Ok(ended) => ended,
            Err(error) => {
                tracing::warn!(%error, username = %record.username, "ending the user's other sessions failed");
                0
            }
        };
    Ok(Json(ChangePasswordResponse {
        username: record.username,
        must_change_password: false,
        other_sessions_ended,
    }))
}
