//! Audit events (DESIGN §7).
//!
//! # Layout
//!
//! - [`audit_sink`]: [`AuditEvent`], the [`AuditSink`] trait the handlers write through, and
//!   [`LogAuditSink`], which writes events to the log.
//! - [`audit_row`]: [`audit_row::AuditRow`], an event with every field of DESIGN §7.
//! - [`audit_service`]: the four policies (disabled, ignore-errors, buffered, strict), batching
//!   writers, status and metrics; it is the [`AuditSink`] of a running server.
//! - [`audit_layer`]: the middleware deciding which requests are audited (and gating them under
//!   `strict`).
//! - [`audit_routes`]: `GET /kuboard-api/audit` and `/kuboard-api/audit/status`.
//! - [`pg_writer`]: the reconnecting PG-wire connection; [`dialect`]: QuestDB vs PostgreSQL SQL;
//!   [`pg_timestamp`]: the `TIMESTAMP` (OID 1114) type; [`spool`]: the on-disk queue of `buffered`.
//! - [`local_log`]: the bounded audit log in the data dir, used when no database is configured.

pub mod audit_layer;
pub mod audit_routes;
pub mod audit_row;
pub mod audit_service;
pub mod audit_sink;
pub mod dialect;
pub mod local_log;
pub mod pg_timestamp;
pub mod pg_writer;
pub mod spool;

pub use audit_sink::LogAuditSink;
