//! Audit events (DESIGN §7).
//!
//! # Layout
//!
//! - [`audit_sink`]: [`AuditEvent`], the [`AuditSink`] trait the server writes through, and
//!   [`LogAuditSink`], which writes events to the log until the QuestDB writer replaces it.

pub mod audit_sink;

pub use audit_sink::{AuditEvent, AuditSink, LogAuditSink};
