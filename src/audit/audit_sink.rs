//! [`AuditSink`]: where audit events go. Recording never fails the request that caused it (the
//! policies of DESIGN §7 are the concern of the sink, not of the caller).

use serde::Serialize;

/// One audited action, with the fields of DESIGN §7 that apply to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    /// Seconds since the Unix epoch.
    pub ts: u64,
    pub audit_id: String,
    pub replica: u64,
    pub cluster: Option<String>,
    pub username: String,
    /// `ui` (cookie), `api` (bearer token or access key).
    pub client: &'static str,
    pub source_ip: String,
    pub user_agent: String,
    /// e.g. `login`, `logout`, `create`, `update`, `delete`.
    pub verb: String,
    pub resource: String,
    pub name: Option<String>,
    pub request_uri: String,
    pub status_code: u16,
    /// `allow` or `deny`.
    pub decision: &'static str,
    /// Why, for humans (never a secret).
    pub message: String,
}

/// A destination of audit events.
pub trait AuditSink: Send + Sync + 'static {
    fn record(&self, event: AuditEvent);

    /// Why audited requests are paused (a strict policy with its database down), if they are.
    fn paused_reason(&self) -> Option<String> {
        None
    }

    /// The pipeline's state for the system status (policy, sink, queue, counters), if it has one.
    fn audit_status(&self) -> Option<crate::audit::audit_service::AuditStatus> {
        None
    }

    /// The sink's figures in the Prometheus text format (appended to `/metrics`).
    fn prometheus_text(&self) -> String {
        String::new()
    }
}

/// Writes each event as one structured log line (target `kuboard::audit`).
#[derive(Debug, Default)]
pub struct LogAuditSink;

impl AuditSink for LogAuditSink {
    fn record(&self, event: AuditEvent) {
        tracing::info!(
            target: "kuboard::audit",
            audit_id = %event.audit_id,
            ts = event.ts,
            replica = event.replica,
            cluster = event.cluster.as_deref().unwrap_or(""),
            username = %event.username,
            client = event.client,
            source_ip = %event.source_ip,
            user_agent = %event.user_agent,
            verb = %event.verb,
            resource = %event.resource,
            name = event.name.as_deref().unwrap_or(""),
            request_uri = %event.request_uri,
            status_code = event.status_code,
            decision = event.decision,
            message = %event.message,
            "audit"
        );
    }
}
