//! [`AuditRow`]: one audit event with every field of DESIGN §7, as stored and as spooled.

use serde::{Deserialize, Serialize};

use crate::audit::audit_sink::AuditEvent;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditRow {
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

impl From<AuditEvent> for AuditRow {
    fn from(event: AuditEvent) -> AuditRow {
        AuditRow {
            ts_micros: micros_of(event.ts),
            audit_id: event.audit_id,
            replica: event.replica as i64,
            cluster: event.cluster.unwrap_or_default(),
            username: event.username,
            groups: String::new(),
            client: event.client.to_string(),
            source_ip: event.source_ip,
            user_agent: event.user_agent,
            verb: event.verb,
            api_group: String::new(),
            resource: event.resource,
            subresource: String::new(),
            namespace: String::new(),
            name: event.name.unwrap_or_default(),
            request_uri: event.request_uri,
            status_code: i32::from(event.status_code),
            duration_ms: 0,
            decision: event.decision.to_string(),
            message: event.message,
        }
    }
}

/// Handlers give seconds; an event of the current second gets the current microsecond, so it sorts
/// among the middleware's events in the order it happened.
fn micros_of(seconds: u64) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_micros() as i64)
        .unwrap_or(0);
    let given = (seconds as i64).saturating_mul(1_000_000);
    if now / 1_000_000 == seconds as i64 {
        now
    } else {
        given
    }
}
