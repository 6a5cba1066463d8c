//! [`AuditEvent`]: one audit event with every field of DESIGN §7, the one shape an event has from
//! the middleware that describes it to the sinks (the database writer, the spool, the local log),
//! each of which turns it into its own form.

use serde::{Deserialize, Serialize};

// Named `AuditRow` in the OpenAPI document, as it always was there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = AuditRow)]
pub struct AuditEvent {
    /// Microseconds since the Unix epoch.
    pub ts_micros: i64,
    pub audit_id: String,
    pub replica: i64,
    pub cluster: String,
    pub username: String,
    /// Comma-separated.
    pub groups: String,
    /// `ui`, `api` or `kubectl`.
    pub client: String,
    pub source_ip: String,
    pub user_agent: String,
    pub verb: String,
    pub api_group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    pub request_uri: String,
    /// `0` on the event a strict replica writes before the request runs.
    pub status_code: i32,
    pub duration_ms: i64,
    /// `allow`, `deny` or `pending`.
    pub decision: String,
    pub message: String,
}
