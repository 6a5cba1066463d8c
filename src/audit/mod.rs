//! Audit events (DESIGN §7).
//!
//! # Layout
//!
//! - [`audit_event`]: [`audit_event::AuditEvent`], one event with every field of DESIGN §7: the
//!   one shape of an event, from the middleware to every sink.
//! - [`audit_service`]: the four policies (disabled, ignore-errors, buffered, strict), batching
//!   writers, status and metrics.
//! - [`audit_layer`]: the middleware deciding which requests are audited (and gating them under
//!   `strict`); it records every event. A handler that knows more than the request shows (who
//!   tried to log in) attaches an [`audit_layer::AuditNote`] to its answer.
//! - [`audit_routes`]: `GET /kuboard-api/audit` and `/kuboard-api/audit/status`.
//! - [`pg_writer`]: the reconnecting PG-wire connection; [`dialect`]: QuestDB vs PostgreSQL SQL;
//!   [`pg_timestamp`]: the `TIMESTAMP` (OID 1114) type; [`spool`]: the on-disk queue of `buffered`.
//! - [`local_log`]: the bounded audit log in the data dir, used when no database is configured.

pub mod audit_event;
pub mod audit_layer;
pub mod audit_routes;
pub mod audit_service;
pub mod dialect;
pub mod local_log;
pub mod pg_timestamp;
pub mod pg_writer;
pub mod spool;
