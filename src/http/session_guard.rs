//! The session guard, in front of every route of the REST API (the members and snapshot routes
//! included). For a request that presents a live session it enforces, before any handler runs:
//!
//! - **password change first**: a session whose user must change the password (the first-start
//!   admin) may only read `me` and the system status, change the password and log out; anything
//!   else is refused with 403 `password_change_required`;
//! - **CSRF**: a change (`POST`, `PUT`, `PATCH`, `DELETE`) authenticated by the session cookie must
//!   carry the session's token in `X-Kuboard-CSRF`, else 403 `csrf_token_invalid`. Bearer tokens
//!   and access keys are exempt: a browser never adds them by itself.
//!
//! The session it found travels on in the request's extensions, so that [`super::caller::Caller`]
//! need not read it again.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::auth::sessions::{self, Session};
use crate::http::api_error::{ApiError, REQUEST_ID};
use crate::http::caller::{presented_token, token_from_bearer};
use crate::http::request_context::REQUEST_ID_HEADER;
use crate::http::AppState;

pub const CSRF_HEADER: &str = "x-kuboard-csrf";
pub const LOGIN_PATH: &str = "/kuboard-api/auth/login";
/// What a session that must change its password may still do. The replica's status is
/// read-only and shows no data, only the health of the group, which an operator needs on a fresh
/// install before anything else (and the UI's HA page shows before the password is changed).
const ALLOWED_BEFORE_PASSWORD_CHANGE: [&str; 4] = [
    "/kuboard-api/auth/me",
    "/kuboard-api/auth/password",
    "/kuboard-api/auth/logout",
    "/kuboard-api/system/status",
];

/// A session found by the guard for this request.
#[derive(Debug, Clone)]
pub struct GuardedSession(pub Session);

/// Marks a refusal of the guard, so the audit layer in front of it records the request as denied.
#[derive(Debug, Clone)]
pub struct GuardRefusal {
    pub username: String,
    /// The machine code of the refusal.
    pub code: &'static str,
}

pub async fn session_guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if !path.starts_with("/kuboard-api/") || path == LOGIN_PATH {
        return next.run(request).await;
    }
    let Some(token) = presented_token(request.headers()) else {
        return next.run(request).await;
    };
    // A store failure or an unknown session is the handler's to report (503 or 401).
    let Ok(Some(session)) = sessions::find_session(&state.store, &token, state.clock.now_unix()).await else {
        return next.run(request).await;
    };
    let by_cookie = token_from_bearer(request.headers()).is_none();
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if by_cookie && changes && !csrf_token_matches(&request, &session) {
        return refuse(
            &session,
            ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf_token_invalid",
                "a change made with the session cookie must carry the session's CSRF token (from the login answer or \
             the kuboard_csrf cookie) in the X-Kuboard-CSRF header",
            ),
        );
    }
    let allowed = ALLOWED_BEFORE_PASSWORD_CHANGE.contains(&path)
        && (path != "/kuboard-api/system/status" || *request.method() == Method::GET);
    if session.record.must_change_password && !allowed {
        return refuse(
            &session,
            ApiError::new(
                StatusCode::FORBIDDEN,
                "password_change_required",
                "change the password first (POST /kuboard-api/auth/password): it is still the one set for you",
            ),
        );
    }
    request.extensions_mut().insert(GuardedSession(session));
    next.run(request).await
}

fn csrf_token_matches(request: &Request, session: &Session) -> bool {
    let Some(presented) = request.headers().get(CSRF_HEADER).and_then(|value| value.to_str().ok()) else {
        return false;
    };
    // Both sides are digests; comparing them says nothing about the token.
    !session.record.csrf_hash.is_empty()
        && hex::encode(Sha256::digest(presented.trim().as_bytes())) == session.record.csrf_hash
}

/// The guard runs outside the routers' request-context layer, so it gives its refusals a request
/// id of their own.
fn refuse(session: &Session, error: ApiError) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let code = error.code;
    let mut response = REQUEST_ID.sync_scope(request_id.clone(), || error.into_response());
    response.headers_mut().insert(
        REQUEST_ID_HEADER,
        HeaderValue::from_str(&request_id).expect("a uuid is a valid header value"),
    );
    response.extensions_mut().insert(GuardRefusal {
        username: session.record.username.clone(),
        code,
    });
    response
}
