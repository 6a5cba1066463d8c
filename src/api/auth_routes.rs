//! `/kuboard-api/auth/...`: login, logout, the current user, password change.

use axum::extract::State;
use axum::http::header::{RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::audit::audit_layer::AuditNote;
use crate::auth::password::{self, MAX_PASSWORD_BYTES};
use crate::auth::password_policy::{check_new_password, PasswordPolicyViolation};
use crate::auth::roles::GlobalRole;
use crate::auth::sessions;
use crate::auth::throttle::{self, Attempt, ThrottleSubject};
use crate::auth::users::{self, UserRecord};
use crate::clock::format_rfc3339;
use crate::http::api_error::{ApiError, ErrorBody};
use crate::http::api_json::ApiJson;
use crate::http::caller::{presented_token, token_from_bearer, Caller, SESSION_COOKIE};
use crate::http::client_address::ClientInfo;
use crate::http::{AppState, ServedOverTls};

/// Readable by the page's scripts (not HttpOnly): the double-submit half of the CSRF token.
pub const CSRF_COOKIE: &str = "kuboard_csrf";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Any text is checked against the users (a name no user can have is refused like a wrong one).
    #[schema(max_length = 64)]
    pub username: String,
    #[schema(max_length = 1024)]
    pub password: String,
    /// "Stay logged in": the session lasts the longer remember TTL.
    #[serde(default)]
    pub remember: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    /// The session token (also set as the `kuboard_session` cookie). Shown once.
    pub token: String,
    pub token_type: String,
    /// Send it in `X-Kuboard-CSRF` with changes made with the cookie.
    pub csrf_token: String,
    pub username: String,
    /// RFC 3339, UTC.
    pub expires_at: String,
    pub must_change_password: bool,
    pub remember: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MeResponse {
    pub username: String,
    pub role: GlobalRole,
    pub groups: Vec<String>,
    pub must_change_password: bool,
    pub session_expires_at: String,
    /// True when the caller authenticated with an access key.
    pub access_key: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    #[schema(max_length = 1024)]
    pub current_password: String,
    /// 8 characters to 1024 bytes, not the first-start password.
    #[schema(min_length = 8, max_length = 1024)]
    pub new_password: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChangePasswordResponse {
    pub username: String,
    pub must_change_password: bool,
    /// How many other sessions of this user were ended by the change.
    pub other_sessions_ended: usize,
}

/// A cookie of the session; `Secure` when the web port serves HTTPS or the request came over TLS.
fn cookie(
    state: &AppState,
    over_tls: bool,
    name: &str,
    value: &str,
    http_only: bool,
    max_age_seconds: u64,
) -> HeaderValue {
    let secure = if state.secure_cookies || over_tls {
        "; Secure"
    } else {
        ""
    };
    let http_only = if http_only { "; HttpOnly" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}{http_only}; SameSite=Lax; Path=/; Max-Age={max_age_seconds}{secure}"
    ))
    .expect("base64url tokens make valid header values")
}

/// Attaches what only the handler knows of the request's audit event (the user, the client the
/// session was made for, why) to its answer; the audit layer records the event.
fn noted(mut response: Response, username: &str, client: &'static str, message: &str) -> Response {
    response.extensions_mut().insert(AuditNote {
        username: username.to_string(),
        client: Some(client),
        resource: "sessions",
        message: message.to_string(),
    });
    response
}

pub fn policy_error(violation: PasswordPolicyViolation) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        violation.code(),
        violation.to_string(),
    )
}

/// Gives back attempts counted for a login that was not tried or whose password was right.
async fn refund_attempts(state: &AppState, counted: &[&ThrottleSubject], now: u64) {
    for subject in counted {
        if let Err(error) = throttle::refund_attempt(&state.store, subject, &state.login.throttle, now).await {
            tracing::warn!(%error, "giving back a counted login attempt failed");
        }
    }
}

/// 503 with `Retry-After` when every password hashing slot stayed taken (or the hashing task
/// failed): the password was not checked, so nothing is counted against the user.
fn hashing_busy(error: password::HashingError) -> Response {
    let mut response = match error {
        password::HashingError::Busy(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!(
                "too many passwords are being checked right now; retry in {} s",
                password::HASHING_BUSY_RETRY_SECONDS
            ),
        )
        .into_response(),
        error @ password::HashingError::Task(_) => ApiError::internal(error).into_response(),
    };
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(password::HASHING_BUSY_RETRY_SECONDS));
    response
}

/// Logs in with a user name and password; answers a session token, sets the session and CSRF
/// cookies. Failed attempts are counted per user and per client address in the store.
#[utoipa::path(
    post,
    path = "/kuboard-api/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Wrong user name or password", body = ErrorBody),
        (status = 403, description = "The user is disabled", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Wrong fields", body = ErrorBody),
        (status = 429, description = "Too many failed logins; see Retry-After", body = ErrorBody),
        (status = 503, description = "Store unavailable, or every password hashing slot taken; see Retry-After", body = ErrorBody),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    over_tls: Option<Extension<ServedOverTls>>,
    client: ClientInfo,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let over_tls = over_tls.is_some();
    let now = state.clock.now_unix();
    let valid_name = users::is_valid_username(&request.username);
    let shown_name = if valid_name {
        request.username.as_str()
    } else {
        "<invalid>"
    };
    let limits = state.login.throttle;
    let mut subjects = vec![ThrottleSubject::Address(client.ip.clone())];
    if valid_name {
        subjects.push(ThrottleSubject::User(request.username.clone()));
    }

    // Each attempt is counted before its password is verified, so parallel attempts cannot all
    // pass the limit; a correct password gives it back below.
    let mut counted: Vec<&ThrottleSubject> = Vec::new();
    let mut wait = None;
    for subject in &subjects {
        match throttle::reserve_attempt(&state.store, subject, &limits, now).await {
            Ok(Attempt::Allowed) => counted.push(subject),
            Ok(Attempt::Refused { retry_after }) => {
                wait = Some(retry_after);
                break;
            }
            Err(error) => {
                refund_attempts(&state, &counted, now).await;
                return Err(error.into());
            }
        }
    }
    if let Some(seconds) = wait {
        refund_attempts(&state, &counted, now).await;
        tracing::info!(username = shown_name, source_ip = %client.ip, retry_after = seconds, "login refused: too many failed attempts");
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!("too many failed logins for this user or from this address; retry in {seconds} s"),
        )
        .into_response();
        response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds));
        return Ok(noted(response, shown_name, "api", "too many failed logins"));
    }

    let user = if request.password.len() > MAX_PASSWORD_BYTES {
        None
    } else {
        let user = match users::get_user(&state.store, &request.username).await {
            Ok(user) => user,
            Err(error) => {
                refund_attempts(&state, &counted, now).await;
                return Err(error.into());
            }
        };
        let stored_hash = user.as_ref().map(|user| user.record.password_hash.clone());
        match password::verify_bounded(request.password, stored_hash, password::HASHING_QUEUE_WAIT).await {
            Ok(matches) => user.filter(|_| matches),
            Err(error) => {
                refund_attempts(&state, &counted, now).await;
                tracing::warn!(%error, username = shown_name, source_ip = %client.ip, "login refused: password hashing is saturated");
                return Ok(noted(hashing_busy(error), shown_name, "api", "password hashing busy"));
            }
        }
    };
    let Some(user) = user else {
        tracing::info!(username = shown_name, source_ip = %client.ip, "login refused: wrong user name or password");
        return Ok(noted(
            ApiError::invalid_credentials().into_response(),
            shown_name,
            "api",
            "wrong user name or password",
        ));
    };
    // A correct password: the attempt is not a failure.
    if let Err(error) = throttle::reset(&state.store, &ThrottleSubject::User(user.record.username.clone())).await {
        tracing::warn!(%error, "resetting the failed-login counter failed");
    }
    let address_counted: Vec<&ThrottleSubject> = counted
        .into_iter()
        .filter(|subject| matches!(subject, ThrottleSubject::Address(_)))
        .collect();
    refund_attempts(&state, &address_counted, now).await;
    if user.record.disabled {
        return Ok(noted(
            ApiError::new(StatusCode::FORBIDDEN, "user_disabled", "this user is disabled").into_response(),
            shown_name,
            "api",
            "user disabled",
        ));
    }
    let ttl = if request.remember {
        state.login.remember_ttl.as_secs()
    } else {
        state.session_ttl.as_secs()
    };
    let csrf_token = sessions::new_token();
    let csrf_hash = hex::encode(Sha256::digest(csrf_token.as_bytes()));
    let (token, session) = sessions::create_session_with(
        &state.store,
        &user.record.username,
        ttl,
        now,
        user.record.must_change_password,
        &csrf_hash,
    )
    .await?;
    tracing::info!(username = %user.record.username, source_ip = %client.ip, remember = request.remember, "login");
    let body = LoginResponse {
        token: token.clone(),
        token_type: "Bearer".to_string(),
        csrf_token: csrf_token.clone(),
        username: user.record.username,
        expires_at: format_rfc3339(session.expires_at),
        must_change_password: user.record.must_change_password,
        remember: request.remember,
    };
    let mut response = Json(body).into_response();
    let headers = response.headers_mut();
    headers.append(SET_COOKIE, cookie(&state, over_tls, SESSION_COOKIE, &token, true, ttl));
    headers.append(
        SET_COOKIE,
        cookie(&state, over_tls, CSRF_COOKIE, &csrf_token, false, ttl),
    );
    Ok(noted(response, shown_name, "api", "logged in"))
}

/// Ends the presented session on every replica. Idempotent: without a live session it still
/// answers 204 and clears the cookies.
#[utoipa::path(
    post,
    path = "/kuboard-api/auth/logout",
    tag = "auth",
    responses(
        (status = 204, description = "Logged out"),
        (status = 403, description = "Cookie without the CSRF token", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub async fn logout(
    State(state): State<AppState>,
    over_tls: Option<Extension<ServedOverTls>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let over_tls = over_tls.is_some();
    let mut ended = None;
    if let Some(token) = presented_token(&headers) {
        let now = state.clock.now_unix();
        if let Some(session) = sessions::find_session(&state.store, &token, now).await? {
            sessions::delete_session(&state.store, &session.token_hash, session.record.lease).await?;
            tracing::info!(username = %session.record.username, "logout");
            ended = Some(session.record.username);
        }
    }
    let via_api = token_from_bearer(&headers).is_some();
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.append(SET_COOKIE, cookie(&state, over_tls, SESSION_COOKIE, "", true, 0));
    headers.append(SET_COOKIE, cookie(&state, over_tls, CSRF_COOKIE, "", false, 0));
    if let Some(username) = ended {
        response = noted(response, &username, if via_api { "api" } else { "ui" }, "logged out");
    }
    Ok(response)
}

/// The logged-in user.
#[utoipa::path(
    get,
    path = "/kuboard-api/auth/me",
    tag = "auth",
    responses(
        (status = 200, description = "The caller", body = MeResponse),
        (status = 401, description = "No valid session", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<MeResponse>, ApiError> {
    let user = users::get_user(&state.store, caller.username())
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    Ok(Json(MeResponse {
        role: user.record.effective_role(),
        groups: user.record.groups.clone(),
        username: user.record.username,
        must_change_password: caller.session.record.must_change_password,
        session_expires_at: format_rfc3339(caller.session.record.expires_at),
        access_key: caller.session.record.access_key,
    }))
}

/// Changes the caller's password; ends the user's other sessions.
#[utoipa::path(
    post,
    path = "/kuboard-api/auth/password",
    tag = "auth",
    request_body = ChangePasswordRequest,
    responses(
        (status = 200, description = "Changed", body = ChangePasswordResponse),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 403, description = "Wrong current password", body = ErrorBody),
        (status = 409, description = "Changed meanwhile", body = ErrorBody),
        (status = 422, description = "The new password breaks the policy", body = ErrorBody),
        (status = 503, description = "Every password hashing slot taken; see Retry-After", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<ChangePasswordRequest>,
) -> Result<Response, ApiError> {
    check_new_password(
        caller.username(),
        &request.new_password,
        state.login.default_password.expose(),
    )
    .map_err(policy_error)?;
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
    let current_matches = match password::verify_bounded(
        request.current_password,
        Some(user.record.password_hash.clone()),
        password::HASHING_QUEUE_WAIT,
    )
    .await
    {
        Ok(matches) => matches,
        Err(error) => {
            tracing::warn!(%error, username = %user.record.username, "password change refused: password hashing is saturated");
            return Ok(hashing_busy(error));
        }
    };
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
    // The change has happened; failing to update the sessions must not report it as failed.
    if let Err(error) = sessions::clear_must_change_password(&state.store, &caller.session).await {
        tracing::warn!(%error, username = %record.username, "clearing the session's password-change mark failed");
    }
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
    })
    .into_response())
}
