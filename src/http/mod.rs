//! The HTTP plumbing of one replica: the state every handler shares, errors, extractors, the
//! session guard and the listener. No handler lives here: the routes are in their feature folders
//! and are assembled in `crate::api`.
//!
//! # Layout
//!
//! - [`AppState`] (this file): what every handler may use, with the settings of logins.
//! - [`api_error`]: [`ApiError`], the JSON error of every failed request.
//! - [`api_json`]: the JSON body extractor mapping every rejection to an `ApiError`.
//! - [`request_context`]: request ids, tracing spans and HTTP metrics.
//! - [`caller`]: the authenticated user of a request.
//! - [`session_guard`]: in front of every API route: password change first, CSRF for cookies.
//! - [`client_address`]: the client's address (peer, or `X-Forwarded-For` of trusted proxies).
//! - [`openapi`]: the parts of the OpenAPI document every feature shares (title, tags, security,
//!   the errors of the body extractor).
//! - [`tls_listener`]: HTTPS on the web port.
//!
//! Architecture Invariant: `http` imports no feature folder (`api`, `audit`, `kube`,
//! `store_admin`); they import it. It depends only on the domain below it (`auth`, `clusters`,
//! `app_store`, `config`).
//!
//! Architecture Invariant: handlers keep nothing between requests that another replica would need;
//! everything lives in the store.

pub mod api_error;
pub mod api_json;
pub mod api_query;
pub mod caller;
pub mod client_address;
pub mod openapi;
pub mod request_context;
pub mod session_guard;
pub mod tls_listener;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;

use crate::app_store::AppStore;
use crate::auth::throttle::ThrottleLimits;
use crate::clock::Clock;
use crate::clusters::credential_cipher::CredentialCipher;
use crate::config::{AuditPolicy, IpNetwork, Secret};
use crate::metrics::Metrics;
pub use api_error::ApiError;

/// Marks the requests that arrived over TLS the replica terminated itself (the HTTPS port), whose
/// cookies are then `Secure` even when the web port serves plain HTTP.
#[derive(Debug, Clone, Copy)]
pub struct ServedOverTls;

/// What every handler may use. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: AppStore,
    pub metrics: Arc<Metrics>,
    pub clock: Clock,
    pub replica_id: u64,
    pub session_ttl: Duration,
    /// Mark the session cookie `Secure` on every port (the web port serves HTTPS); on the HTTPS
    /// port beside it, requests carry [`ServedOverTls`] instead.
    pub secure_cookies: bool,
    pub audit_policy: AuditPolicy,
    /// Set once the first-start `admin` user is known to exist.
    pub admin_ready: Arc<AtomicBool>,
    pub login: Arc<LoginSettings>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<[IpNetwork]>,
    /// Seals and opens cluster credentials.
    pub cipher: CredentialCipher,
}

/// The settings of logins and passwords.
pub struct LoginSettings {
    /// Lifetime of a session logged in with `"remember": true`.
    pub remember_ttl: Duration,
    pub throttle: ThrottleLimits,
    /// The first-start admin password, which the password policy refuses as a new password.
    pub default_password: Secret,
}

impl LoginSettings {
    /// Settings for handler tests: the defaults.
    #[cfg(test)]
    pub fn for_tests() -> Arc<LoginSettings> {
        Arc::new(LoginSettings {
            remember_ttl: Duration::from_secs(7 * 24 * 3600),
            throttle: ThrottleLimits {
                window_seconds: 300,
                max_failures_per_user: 10,
                max_failures_per_address: 50,
            },
            default_password: Secret::new(crate::config::DEFAULT_ADMIN_PASSWORD),
        })
    }
}

/// Puts the session guard in front of `app` (the whole API, every module's routes merged).
pub fn with_session_guard(app: Router, state: AppState) -> Router {
    app.layer(axum::middleware::from_fn_with_state(
        state,
        session_guard::session_guard,
    ))
}
