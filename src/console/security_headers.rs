//! Browser protections on every response.
//!
//! The policy allows scripts from this origin only (no inline script, no `eval`): Vite emits the
//! app as module files under `/assets/`, and the placeholder page has no script at all. Styles
//! may be inline because Element Plus sets `style` attributes and injects style elements at run
//! time (positions of popovers, virtual table rows); an inline style cannot run code. The console
//! is never framed (`frame-ancestors 'none'`, and `X-Frame-Options` for older browsers), which
//! rules out click-jacking of the membership and delete buttons.

use axum::http::header::{
    HeaderName, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue};

pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
     object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

const HEADERS: [(HeaderName, &str); 4] = [
    (CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY_VALUE),
    (X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (REFERRER_POLICY, "same-origin"),
    (X_FRAME_OPTIONS, "DENY"),
];

/// Adds the headers a response does not already carry (a handler that sets its own keeps it).
pub fn add_security_headers(headers: &mut HeaderMap) {
    for (name, value) in HEADERS {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    }
}
