//! [`Caller`]: the authenticated user of a request, from `Authorization: Bearer <token>` or the
//! `kuboard_session` cookie, checked against the store on every request.

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::http::HeaderMap;

use crate::auth::roles::GlobalRole;
use crate::auth::sessions::{self, Session};
use crate::auth::users::{self, StoredUser};
use crate::http::api_error::ApiError;
use crate::http::session_guard::GuardedSession;
use crate::http::AppState;

pub const SESSION_COOKIE: &str = "kuboard_session";

#[derive(Debug, Clone)]
pub struct Caller {
    pub session: Session,
}

impl Caller {
    pub fn username(&self) -> &str {
        &self.session.record.username
    }

    /// The caller's user record, if the caller is an enabled administrator; else 403.
    pub async fn require_administrator(&self, state: &AppState) -> Result<StoredUser, ApiError> {
        match users::get_user(&state.store, self.username()).await? {
            Some(user) if !user.record.disabled && user.record.effective_role() == GlobalRole::Administrator => {
                Ok(user)
            }
            Some(_) => Err(ApiError::forbidden("only administrators may do this")),
            None => Err(ApiError::unauthenticated()),
        }
    }

    /// The caller's user record; 401 when the user is gone or disabled.
    pub async fn user(&self, state: &AppState) -> Result<StoredUser, ApiError> {
        match users::get_user(&state.store, self.username()).await? {
            Some(user) if !user.record.disabled => Ok(user),
            _ => Err(ApiError::unauthenticated()),
        }
    }
}

/// The bearer token of `Authorization`, if any.
pub fn token_from_bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string())
        })
}

/// The token the client presented: the bearer token if there is one, else the session cookie.
pub fn presented_token(headers: &HeaderMap) -> Option<String> {
    let bearer = token_from_bearer(headers);
    bearer.or_else(|| {
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == SESSION_COOKIE)
            .map(|(_, token)| token.trim().to_string())
    })
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(GuardedSession(session)) = parts.extensions.get::<GuardedSession>() {
            return Ok(Caller {
                session: session.clone(),
            });
        }
        let token = presented_token(&parts.headers).ok_or_else(ApiError::unauthenticated)?;
        let session = sessions::find_session(&state.store, &token, state.clock.now_unix())
            .await?
            .ok_or_else(ApiError::unauthenticated)?;
        Ok(Caller { session })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().expect("valid header value"));
        }
        map
    }

    #[test]
    fn token_sources() {
        assert_eq!(
            presented_token(&headers(&[("authorization", "Bearer abc")])),
            Some("abc".into())
        );
        assert_eq!(
            presented_token(&headers(&[("authorization", "bearer  abc ")])),
            Some("abc".into())
        );
        assert_eq!(
            presented_token(&headers(&[("cookie", "a=1; kuboard_session=xyz; b=2")])),
            Some("xyz".into())
        );
        assert_eq!(
            presented_token(&headers(&[
                ("authorization", "Bearer abc"),
                ("cookie", "kuboard_session=xyz")
            ])),
            Some("abc".into())
        );
        assert_eq!(presented_token(&headers(&[("authorization", "Basic abc")])), None);
        assert_eq!(presented_token(&headers(&[("cookie", "other=1")])), None);
    }
}
