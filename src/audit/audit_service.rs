//! [`AuditService`]: the policies of DESIGN §7 in front of the audit database.
//!
//! - `disabled`: nothing is recorded.
//! - `ignore-errors`: events go through a bounded in-memory queue to a batching writer; while the
//!   database is down (or the queue is full) they are dropped and counted.
//! - `buffered`: every event is appended and fsync'd to the spool in the data dir before the
//!   request is answered; a writer replays the spool in order. When the spool is full the event is
//!   dropped, counted (`spool_full_dropped`) and logged as an error; the request is still answered,
//!   because by then its change has already happened.
//! - `strict`: the request's event is written to the database before the request runs
//!   ([`AuditService::accept`]); while it cannot be, audited requests are refused with 503
//!   `audit_unavailable`, the replica reports the pause in `/readyz` and the audit status, and a
//!   watcher ends the pause by itself once the database answers.
//!
//! Without `KUBOARD_QUEST_DB_URI` the [`LocalLog`] in the data dir takes the database's place under
//! the same policies: `ignore-errors` and `strict`'s outcome events are appended in batches (one
//! fsync per batch), `buffered` and `strict`'s gate append and fsync each event before going on
//! (no spool is needed: the log is on disk already).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, Notify};

use crate::audit::audit_event::AuditEvent;
use crate::audit::dialect::Dialect;
use crate::audit::local_log::LocalLog;
use crate::audit::pg_writer::PgWriter;
use crate::audit::spool::{Spool, SpoolError};
use crate::config::{AuditConfig, AuditPolicy};

/// Limits of batching and of the queues.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    pub policy: AuditPolicy,
    pub quest_db_uri: Option<String>,
    /// Also audit reads (GET), not only changes and denials.
    pub audit_reads: bool,
    pub batch_max_rows: usize,
    pub batch_max_delay: Duration,
    pub queue_capacity: usize,
    pub spool_max_bytes: u64,
    /// The bound of the local audit log (used when no database is configured).
    pub local_max_bytes: u64,
    /// Other replicas serve the same users (several Raft members or an external etcd): a local log
    /// then holds only this replica's events, which the start says.
    pub several_replicas: bool,
}

impl AuditSettings {
    pub fn new(policy: AuditPolicy, quest_db_uri: Option<String>) -> AuditSettings {
        AuditSettings {
            policy,
            quest_db_uri,
            audit_reads: false,
            batch_max_rows: 500,
            batch_max_delay: Duration::from_millis(200),
            queue_capacity: 10_000,
            spool_max_bytes: 256 * 1024 * 1024,
            local_max_bytes: crate::config::DEFAULT_AUDIT_LOCAL_MAX_BYTES,
            several_replicas: false,
        }
    }

    /// The defaults with the validated settings of `kuboard serve`.
    pub fn from_config(config: &AuditConfig, several_replicas: bool) -> AuditSettings {
        let mut settings = AuditSettings::new(
            config.policy,
            config.quest_db_uri.as_ref().map(|uri| uri.expose().to_string()),
        );
        settings.audit_reads = config.audit_reads;
        settings.local_max_bytes = config.local_max_bytes;
        settings.several_replicas = several_replicas;
        settings
    }
}

/// Why a strict replica refuses an audited request.
#[derive(Debug, thiserror::Error)]
#[error("the audit database does not accept events: {0}")]
pub struct AuditUnavailable(pub String);

#[derive(Default)]
struct Counters {
    /// Events taken into the in-memory queue and not yet written or dropped.
    in_flight: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
    spooled: AtomicU64,
    spool_full_dropped: AtomicU64,
    refused: AtomicU64,
}

pub struct AuditService {
    settings: AuditSettings,
    writer: Option<tokio::sync::Mutex<PgWriter>>,
    local: Option<Arc<LocalLog>>,
    queue: Option<mpsc::Sender<AuditEvent>>,
    spool: Option<Arc<Spool>>,
    spool_notify: Notify,
    counters: Counters,
    database_up: AtomicBool,
    paused: AtomicBool,
    last_error: Mutex<Option<String>>,
}

/// What `/kuboard-api/audit/status` and the system status show.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AuditStatus {
    pub policy: String,
    /// Where events go: `questdb`, `postgresql`, `local` (the log in the data dir) or `none`.
    pub sink: String,
    /// `disabled`, `up`, `down` or `paused` (strict).
    pub state: String,
    pub queue_depth: u64,
    /// Bytes in the spool that the database has not taken yet.
    pub spooled_bytes: u64,
    pub spooled_total: u64,
    pub written: u64,
    pub dropped: u64,
    pub spool_full_dropped: u64,
    /// Requests refused with 503 while a strict replica was paused.
    pub refused: u64,
    /// Bytes in the local audit log (sink `local`).
    pub local_bytes: u64,
    /// Oldest segments of the local audit log removed to keep its bound, since the start.
    pub local_segments_removed: u64,
    /// Never holds the database's password.
    pub last_error: Option<String>,
}

impl AuditService {
    /// Builds the service and starts its writer tasks.
    pub fn start(settings: AuditSettings, data_dir: &Path) -> anyhow::Result<Arc<AuditService>> {
        let enabled = settings.policy != AuditPolicy::Disabled;
        let writer = match (&settings.quest_db_uri, enabled) {
            (Some(uri), true) => Some(tokio::sync::Mutex::new(PgWriter::new(uri))),
            _ => None,
        };
        let local = if enabled && writer.is_none() {
            let dir = data_dir.join("audit").join("local");
            let local = LocalLog::open(&dir, settings.local_max_bytes)?;
            if settings.several_replicas {
                tracing::warn!(
                    dir = %dir.display(),
                    "audit is per replica: without KUBOARD_QUEST_DB_URI every replica keeps its own local audit log, \
                     and the audit API of a replica shows only the events it recorded; set KUBOARD_QUEST_DB_URI for \
                     one log of the whole group"
                );
            } else {
                tracing::info!(dir = %dir.display(), max_bytes = settings.local_max_bytes,
                    "audit events go to the local audit log (no KUBOARD_QUEST_DB_URI)");
            }
            Some(Arc::new(local))
        } else {
            None
        };
        let spool = if writer.is_some() && settings.policy == AuditPolicy::Buffered {
            Some(Arc::new(Spool::open(
                &data_dir.join("audit"),
                settings.spool_max_bytes,
            )?))
        } else {
            None
        };
        let queued =
            (writer.is_some() && spool.is_none()) || (local.is_some() && settings.policy != AuditPolicy::Buffered);
        let (queue, receiver) = if queued {
            let (sender, receiver) = mpsc::channel(settings.queue_capacity);
            (Some(sender), Some(receiver))
        } else {
            (None, None)
        };
        let local_up = local.is_some();
        let service = Arc::new(AuditService {
            settings,
            writer,
            local,
            queue,
            spool,
            spool_notify: Notify::new(),
            counters: Counters::default(),
            // The local log opened above; a database is "down" until it has answered once.
            database_up: AtomicBool::new(local_up),
            paused: AtomicBool::new(false),
            last_error: Mutex::new(None),
        });
        if let Some(receiver) = receiver {
            tokio::spawn(run_queue_writer(Arc::downgrade(&service), receiver));
        }
        if service.spool.is_some() {
            tokio::spawn(run_spool_writer(Arc::downgrade(&service)));
        }
        if service.gates_requests() {
            tokio::spawn(run_pause_watcher(Arc::downgrade(&service)));
        }
        Ok(service)
    }

    pub fn enabled(&self) -> bool {
        self.settings.policy != AuditPolicy::Disabled
    }

    pub fn audit_reads(&self) -> bool {
        self.settings.audit_reads
    }

    /// A strict replica that gates requests on the database.
    pub fn gates_requests(&self) -> bool {
        self.settings.policy == AuditPolicy::Strict && (self.writer.is_some() || self.local.is_some())
    }

    /// The local audit log, when events go there.
    pub fn local(&self) -> Option<&Arc<LocalLog>> {
        self.local.as_ref()
    }

    /// Writes rows to the database or the local log (fsync'd there when `sync`).
    async fn store(&self, rows: &[AuditEvent], sync: bool) -> Result<(), String> {
        if let Some(writer) = &self.writer {
            return writer.lock().await.write(rows).await.map_err(|error| error.to_string());
        }
        // The local log is per replica; the same events in the process log let a log collector
        // gather those of every replica.
        rows.iter().for_each(log_row);
        let Some(local) = self.local.clone() else {
            return Ok(());
        };
        let rows = rows.to_vec();
        match tokio::task::spawn_blocking(move || local.append(&rows, sync)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(format!("the local audit log cannot be written: {error}")),
            Err(error) => Err(format!("the local audit log task failed: {error}")),
        }
    }

    pub fn writer(&self) -> Option<&tokio::sync::Mutex<PgWriter>> {
        self.writer.as_ref()
    }

    fn note_error(&self, error: &str) {
        self.database_up.store(false, Ordering::Release);
        *self.last_error.lock().expect("no panics while holding the lock") = Some(self.redact(error));
    }

    /// Errors are shown in the status; the database's password must never be among them.
    fn redact(&self, text: &str) -> String {
        let password = self
            .settings
            .quest_db_uri
            .as_deref()
            .and_then(|uri| uri.split_once("://"))
            .and_then(|(_, rest)| rest.split_once('@'))
            .and_then(|(credentials, _)| credentials.split_once(':'))
            .map(|(_, password)| password)
            .filter(|password| !password.is_empty());
        match password {
            Some(password) => text.replace(password, "<redacted>"),
            None => text.to_string(),
        }
    }

    fn note_written(&self, rows: usize) {
        self.database_up.store(true, Ordering::Release);
        self.counters.written.fetch_add(rows as u64, Ordering::Relaxed);
    }

    /// Strict: writes the event now; an error pauses the replica and refuses the request.
    pub async fn accept(&self, row: AuditEvent) -> Result<(), AuditUnavailable> {
        if self.paused.load(Ordering::Acquire) {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            return Err(AuditUnavailable(self.last_error().unwrap_or_default()));
        }
        let result = self.store(std::slice::from_ref(&row), true).await;
        match result {
            Ok(()) => {
                self.note_written(1);
                Ok(())
            }
            Err(error) => {
                let message = self.redact(&error);
                if !self.paused.swap(true, Ordering::AcqRel) {
                    tracing::error!(error = %message, "audit database unavailable: pausing audited requests");
                }
                self.note_error(&message);
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                Err(AuditUnavailable(message))
            }
        }
    }

    /// Records an event under the policy; for `buffered` it is on disk when this returns.
    pub async fn record(self: &Arc<Self>, row: AuditEvent) {
        if self.local_buffered() {
            match self.store(std::slice::from_ref(&row), true).await {
                Ok(()) => self.note_written(1),
                Err(error) => {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(%error, audit_id = %row.audit_id, "audit event dropped");
                    self.note_error(&error);
                }
            }
        } else if self.spool.is_some() {
            let service = self.clone();
            if let Err(error) = tokio::task::spawn_blocking(move || service.spool_row(&row)).await {
                tracing::error!(%error, "the audit spool task failed");
            }
        } else {
            self.enqueue(row);
        }
    }

    /// `buffered` on the local log: each event is appended and fsync'd before the caller goes on.
    fn local_buffered(&self) -> bool {
        self.local.is_some() && self.queue.is_none() && self.enabled()
    }

    fn spool_row(&self, row: &AuditEvent) {
        let Some(spool) = &self.spool else { return };
        match spool.append(row) {
            Ok(()) => {
                self.counters.spooled.fetch_add(1, Ordering::Relaxed);
                self.spool_notify.notify_one();
            }
            Err(SpoolError::Full(max)) => {
                self.counters.spool_full_dropped.fetch_add(1, Ordering::Relaxed);
                tracing::error!(audit_id = %row.audit_id, max_bytes = max, "audit spool full: event dropped");
            }
            Err(error) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%error, audit_id = %row.audit_id, "audit spool write failed: event dropped");
            }
        }
    }

    fn enqueue(&self, row: AuditEvent) {
        if !self.enabled() {
            return;
        }
        match &self.queue {
            None => log_row(&row),
            Some(queue) => {
                self.counters.in_flight.fetch_add(1, Ordering::AcqRel);
                if queue.try_send(row).is_err() {
                    self.counters.in_flight.fetch_sub(1, Ordering::AcqRel);
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Waits, at most `deadline`, until the events queued in memory are written (or given up), so a
    /// graceful shutdown does not lose them.
    pub async fn flush(&self, deadline: Duration) {
        let until = Instant::now() + deadline;
        loop {
            let in_flight = self.counters.in_flight.load(Ordering::Acquire);
            if in_flight == 0 {
                return;
            }
            if Instant::now() >= until {
                tracing::warn!(in_flight, "audit events still queued at shutdown are lost");
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .expect("no panics while holding the lock")
            .clone()
    }

    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    pub fn status(&self) -> AuditStatus {
        let state = if !self.enabled() {
            "disabled"
        } else if self.writer.is_none() && self.local.is_none() {
            "log-only"
        } else if self.paused() {
            "paused"
        } else if self.database_up.load(Ordering::Acquire) {
            "up"
        } else {
            "down"
        };
        let queue_depth = self
            .queue
            .as_ref()
            .map_or(0, |queue| (queue.max_capacity() - queue.capacity()) as u64);
        let sink = match (&self.writer, &self.local) {
            (Some(writer), _) => match writer.try_lock().map(|writer| writer.dialect()) {
                Ok(Dialect::Postgres) => "postgresql",
                // Busy writing; the URI tells the dialect just as well.
                _ if Dialect::from_uri(self.settings.quest_db_uri.as_deref().unwrap_or("")).0 == Dialect::Postgres => {
                    "postgresql"
                }
                _ => "questdb",
            },
            (None, Some(_)) => "local",
            (None, None) => "none",
        };
        AuditStatus {
            policy: self.settings.policy.as_str().to_string(),
            sink: sink.to_string(),
            state: state.to_string(),
            queue_depth,
            spooled_bytes: self.spool.as_ref().map_or(0, |spool| spool.pending_bytes()),
            spooled_total: self.counters.spooled.load(Ordering::Relaxed),
            written: self.counters.written.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
            spool_full_dropped: self.counters.spool_full_dropped.load(Ordering::Relaxed),
            refused: self.counters.refused.load(Ordering::Relaxed),
            local_bytes: self.local.as_ref().map_or(0, |local| local.bytes()),
            local_segments_removed: self.local.as_ref().map_or(0, |local| local.removed_segments()),
            last_error: self.last_error(),
        }
    }

    /// The status as Prometheus text.
    fn metrics_text(&self) -> String {
        let status = self.status();
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, value: u64| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"));
        };
        gauge(
            "kuboard_audit_queue_depth",
            "Audit events waiting in memory.",
            status.queue_depth,
        );
        gauge(
            "kuboard_audit_spooled_bytes",
            "Audit spool bytes not yet in the database.",
            status.spooled_bytes,
        );
        gauge(
            "kuboard_audit_written_total",
            "Audit events written to the database.",
            status.written,
        );
        gauge(
            "kuboard_audit_dropped_total",
            "Audit events dropped.",
            status.dropped + status.spool_full_dropped,
        );
        gauge(
            "kuboard_audit_refused_total",
            "Requests refused while audit was paused.",
            status.refused,
        );
        gauge(
            "kuboard_audit_paused",
            "1 while a strict replica pauses audited requests.",
            u64::from(self.paused()),
        );
        out
    }
}

/// What the health, status and metrics routes read of the pipeline.
impl AuditService {
    /// Why audited requests are paused (a strict policy with its database down), if they are.
    pub fn paused_reason(&self) -> Option<String> {
        self.paused().then(|| {
            self.last_error()
                .unwrap_or_else(|| "the audit database does not answer".into())
        })
    }

    /// The pipeline's figures in the Prometheus text format (appended to `/metrics`).
    pub fn prometheus_text(&self) -> String {
        if self.enabled() {
            self.metrics_text()
        } else {
            String::new()
        }
    }
}

/// One event as a structured log line (target `kuboard::audit`).
fn log_row(row: &AuditEvent) {
    tracing::info!(
        target: "kuboard::audit",
        audit_id = %row.audit_id,
        ts_micros = row.ts_micros,
        replica = row.replica,
        cluster = %row.cluster,
        username = %row.username,
        client = %row.client,
        source_ip = %row.source_ip,
        verb = %row.verb,
        resource = %row.resource,
        subresource = %row.subresource,
        namespace = %row.namespace,
        name = %row.name,
        request_uri = %row.request_uri,
        status_code = row.status_code,
        duration_ms = row.duration_ms,
        decision = %row.decision,
        message = %row.message,
        "audit"
    );
}

/// Takes events off the queue in batches (bounded by count and by time) and writes them.
async fn run_queue_writer(service: std::sync::Weak<AuditService>, mut receiver: mpsc::Receiver<AuditEvent>) {
    let mut retry_after: Option<Instant> = None;
    while let Some(first) = receiver.recv().await {
        let Some(service) = service.upgrade() else { return };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + service.settings.batch_max_delay;
        while batch.len() < service.settings.batch_max_rows {
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(Some(row)) => batch.push(row),
                Ok(None) | Err(_) => break,
            }
        }
        // After a failure the database is not asked again for a second: events are dropped. Unless
        // it answered meanwhile (a strict gate's write or its watcher's check).
        if retry_after.is_some_and(|at| Instant::now() < at) && !service.database_up.load(Ordering::Acquire) {
            service
                .counters
                .dropped
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            service
                .counters
                .in_flight
                .fetch_sub(batch.len() as u64, Ordering::AcqRel);
            continue;
        }
        let result = service.store(&batch, true).await;
        match result {
            Ok(()) => {
                retry_after = None;
                service.note_written(batch.len());
            }
            Err(error) => {
                retry_after = Some(Instant::now() + Duration::from_secs(1));
                service
                    .counters
                    .dropped
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                tracing::warn!(%error, dropped = batch.len(), "audit events dropped");
                service.note_error(&error.to_string());
            }
        }
        service
            .counters
            .in_flight
            .fetch_sub(batch.len() as u64, Ordering::AcqRel);
    }
}

/// Replays the spool in order; a batch is committed only after the database took it.
async fn run_spool_writer(service: std::sync::Weak<AuditService>) {
    loop {
        let Some(this) = service.upgrade() else { return };
        let Some(spool) = this.spool.clone() else { return };
        let max_rows = this.settings.batch_max_rows;
        let batch = match tokio::task::spawn_blocking(move || spool.read_batch(max_rows)).await {
            Ok(Ok(batch)) => batch,
            Ok(Err(error)) => {
                this.note_error(&format!("{error:#}"));
                drop(this);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(error) => {
                tracing::error!(%error, "the audit spool reader failed");
                return;
            }
        };
        if batch.rows.is_empty() {
            // Wait for new events, or look again after a while.
            let _ = tokio::time::timeout(Duration::from_secs(1), this.spool_notify.notified()).await;
            let delay = this.settings.batch_max_delay;
            drop(this);
            tokio::time::sleep(delay.min(Duration::from_millis(20))).await;
            continue;
        }
        let Some(writer) = this.writer() else { return };
        let result = writer.lock().await.write(&batch.rows).await;
        match result {
            Ok(()) => {
                this.note_written(batch.rows.len());
                let spool = this.spool.clone();
                let end = batch.end_offset;
                let committed = tokio::task::spawn_blocking(move || spool.map(|spool| spool.commit(end))).await;
                if let Ok(Some(Err(error))) = committed {
                    tracing::error!(error = %format!("{error:#}"), "committing the audit spool offset failed");
                }
            }
            Err(error) => {
                this.note_error(&error.to_string());
                drop(this);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Ends a strict pause once the database answers again.
async fn run_pause_watcher(service: std::sync::Weak<AuditService>) {
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let Some(this) = service.upgrade() else { return };
        if !this.paused() {
            continue;
        }
        // The local log has nothing to ask: the next event tries the disk again.
        let result = match this.writer() {
            Some(writer) => writer.lock().await.ping().await.map_err(|error| error.to_string()),
            None => Ok(()),
        };
        if result.is_ok() {
            this.database_up.store(true, Ordering::Release);
            this.paused.store(false, Ordering::Release);
            tracing::info!("audit database answers again: audited requests resume");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_database_password_never_reaches_the_status() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let settings = AuditSettings::new(
            AuditPolicy::IgnoreErrors,
            Some("postgresql://kuboard:s3cret-Pass@127.0.0.1:9/qdb".into()),
        );
        let service = AuditService::start(settings, dir.path()).expect("start");
        service.note_error("password authentication failed: s3cret-Pass rejected");
        let status = service.status();
        assert_eq!(status.sink, "postgresql");
        let shown = status.last_error.expect("an error");
        assert!(
            !shown.contains("s3cret-Pass") && shown.contains("<redacted>"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn without_a_database_the_sink_is_the_local_log() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let service = AuditService::start(AuditSettings::new(AuditPolicy::Buffered, None), dir.path()).expect("start");
        let status = service.status();
        assert_eq!((status.sink.as_str(), status.state.as_str()), ("local", "up"));
        assert!(dir.path().join("audit").join("local").is_dir());
        let disabled = AuditService::start(AuditSettings::new(AuditPolicy::Disabled, None), dir.path()).expect("start");
        assert_eq!(disabled.status().sink, "none");
    }
}
