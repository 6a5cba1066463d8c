//! [`AuditSink`]: where audit events go. Recording never fails the request that caused it (the
//! policies of DESIGN §7 are the concern of the sink, not of the caller).

use std::sync::Arc;

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

/// The audit sink as the handlers that use it receive it: an axum `Extension` installed by the
/// router that serves them.
pub type SharedAuditSink = Arc<dyn AuditSink>;

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

/// What one audited action was, as the handler that records it knows it.
pub struct AuditRecord<'a> {
    pub username: &'a str,
    pub via_api: bool,
    pub verb: &'a str,
    pub resource: &'a str,
    pub name: Option<&'a str>,
    pub request_uri: &'a str,
    pub status_code: u16,
    pub allowed: bool,
    pub message: &'a str,
}

/// Hands one event a handler describes to the audit sink.
pub fn record_from_handler(
    sink: &dyn AuditSink,
    replica: u64,
    now: u64,
    client: &crate::http::client_address::ClientInfo,
    record: AuditRecord<'_>,
) {
    sink.record(AuditEvent {
        ts: now,
        audit_id: uuid::Uuid::new_v4().to_string(),
        replica,
        cluster: None,
        username: record.username.to_string(),
        client: if record.via_api { "api" } else { "ui" },
        source_ip: client.ip.clone(),
        user_agent: client.user_agent.clone(),
        verb: record.verb.to_string(),
        resource: record.resource.to_string(),
        name: record.name.map(str::to_string),
        request_uri: record.request_uri.to_string(),
        status_code: record.status_code,
        decision: if record.allowed { "allow" } else { "deny" },
        message: record.message.to_string(),
    });
}
