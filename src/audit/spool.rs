//! [`Spool`]: the bounded on-disk queue of the `buffered` policy. Every event is appended as one
//! JSON line and fsync'd before the request that caused it is answered; the writer reads lines in
//! order from a committed offset and commits the offset (fsync'd, by rename) after the database
//! took them. A crash between the two replays a few lines, which the table's deduplication keys
//! absorb, so each event reaches the database exactly once.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;

use crate::audit::audit_event::AuditEvent;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the audit spool is full ({0} bytes)")]
    Full(u64),
    #[error("the audit spool cannot be written: {0}")]
    Io(#[from] std::io::Error),
}

struct SpoolFiles {
    log: File,
    /// Bytes in the log file, all of them whole lines.
    len: u64,
    /// Bytes of the log already in the database.
    committed: u64,
}

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    files: Mutex<SpoolFiles>,
}

/// Lines read from the spool and the offset to commit once they are stored.
pub struct SpoolBatch {
    pub rows: Vec<AuditEvent>,
    pub end_offset: u64,
}

const LOG_FILE: &str = "audit-spool.jsonl";
const OFFSET_FILE: &str = "audit-spool.offset";

impl Spool {
    /// Opens (or creates) the spool in `dir`; a line torn by a crash is cut off.
    pub fn open(dir: &Path, max_bytes: u64) -> anyhow::Result<Spool> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating the audit spool dir {}", dir.display()))?;
        // A rewrite interrupted before its rename; the log it was to replace is intact.
        match std::fs::remove_file(dir.join(format!("{LOG_FILE}.tmp"))) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(error).context("removing an unfinished copy of the audit spool")
            }
            _ => {}
        }
        let log_path = dir.join(LOG_FILE);
        let mut log = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut log, &mut content).context("reading the audit spool")?;
        let whole = content
            .iter()
            .rposition(|byte| *byte == b'\n')
            .map_or(0, |last| last + 1) as u64;
        if whole != content.len() as u64 {
            log.set_len(whole).context("cutting a torn line off the audit spool")?;
            log.sync_all().context("syncing the audit spool")?;
        }
        let committed = match std::fs::read_to_string(dir.join(OFFSET_FILE)) {
            Ok(text) => text.trim().parse::<u64>().unwrap_or(0).min(whole),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => 0,
            Err(error) => return Err(error).context("reading the audit spool offset"),
        };
        Ok(Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            files: Mutex::new(SpoolFiles {
                log,
                len: whole,
                committed,
            }),
        })
    }

    /// Appends one event durably. Blocking: call from `spawn_blocking`.
    pub fn append(&self, row: &AuditEvent) -> Result<(), SpoolError> {
        let mut line = serde_json::to_vec(row).map_err(|error| SpoolError::Io(error.into()))?;
        line.push(b'\n');
        let mut files = self.files.lock().expect("no panics while holding the spool lock");
        if files.len - files.committed + line.len() as u64 > self.max_bytes {
            return Err(SpoolError::Full(self.max_bytes));
        }
        files.log.write_all(&line)?;
        files.log.sync_data()?;
        files.len += line.len() as u64;
        Ok(())
    }

    /// Bytes waiting for the database.
    pub fn pending_bytes(&self) -> u64 {
        let files = self.files.lock().expect("no panics while holding the spool lock");
        files.len - files.committed
    }

    /// Up to `max_rows` events after the committed offset, in order. Blocking.
    pub fn read_batch(&self, max_rows: usize) -> anyhow::Result<SpoolBatch> {
        let (start, len) = {
            let files = self.files.lock().expect("no panics while holding the spool lock");
            (files.committed, files.len)
        };
        let mut file = File::open(self.dir.join(LOG_FILE)).context("opening the audit spool to read")?;
        file.seek(SeekFrom::Start(start))
            .context("seeking in the audit spool")?;
        // Lines appended meanwhile wait for the next batch.
        let mut reader = BufReader::new(std::io::Read::take(file, len - start));
        let mut rows = Vec::new();
        let mut offset = start;
        let mut line = String::new();
        while rows.len() < max_rows && offset < len {
            line.clear();
            let read = reader.read_line(&mut line).context("reading the audit spool")?;
            if read == 0 {
                break;
            }
            offset += read as u64;
            match serde_json::from_str::<AuditEvent>(line.trim_end()) {
                Ok(row) => rows.push(row),
                Err(error) => tracing::error!(%error, offset, "skipping an unreadable audit spool line"),
            }
        }
        Ok(SpoolBatch {
            rows,
            end_offset: offset,
        })
    }

    /// Records that everything before `offset` is in the database. An emptied spool starts over;
    /// one whose delivered part is at least half of the file (and [`REWRITE_MIN_BYTES`]) is
    /// rewritten without it, so the file stays within about twice the bound however busy the
    /// spool is.
    pub fn commit(&self, offset: u64) -> anyhow::Result<()> {
        let mut files = self.files.lock().expect("no panics while holding the spool lock");
        if offset >= files.len {
            files.log.set_len(0).context("emptying the audit spool")?;
            files.log.sync_all().context("syncing the audit spool")?;
            files.len = 0;
            files.committed = 0;
        } else {
            files.committed = offset;
            if offset >= REWRITE_MIN_BYTES && offset >= files.len / 2 {
                return self.rewrite(&mut files);
            }
        }
        self.write_offset(files.committed)
    }

    /// Durably record the committed offset.
    fn write_offset(&self, committed: u64) -> anyhow::Result<()> {
        let tmp = self.dir.join(format!("{OFFSET_FILE}.tmp"));
        let mut out = File::create(&tmp).context("writing the audit spool offset")?;
        out.write_all(committed.to_string().as_bytes())
            .context("writing the audit spool offset")?;
        out.sync_all().context("syncing the audit spool offset")?;
        std::fs::rename(&tmp, self.dir.join(OFFSET_FILE)).context("replacing the audit spool offset")?;
        sync_dir(&self.dir)
    }

    /// Replace the log with its undelivered lines. The copy is made durable first, then the offset
    /// set to 0, then the copy renamed over the log: a crash before the rename replays the old
    /// log from its start (the deduplication keys absorb the lines delivered twice), after it the
    /// new log is read from its start; no undelivered line is lost either way.
    fn rewrite(&self, files: &mut SpoolFiles) -> anyhow::Result<()> {
        let log_path = self.dir.join(LOG_FILE);
        let tmp = self.dir.join(format!("{LOG_FILE}.tmp"));
        let mut source = File::open(&log_path).context("opening the audit spool to rewrite it")?;
        source
            .seek(SeekFrom::Start(files.committed))
            .context("seeking in the audit spool")?;
        let mut copy = File::create(&tmp).context("creating the rewritten audit spool")?;
        let copied = std::io::copy(&mut std::io::Read::take(source, files.len - files.committed), &mut copy)
            .context("copying the audit spool")?;
        copy.sync_all().context("syncing the rewritten audit spool")?;
        drop(copy);
        self.write_offset(0)?;
        std::fs::rename(&tmp, &log_path).context("replacing the audit spool")?;
        sync_dir(&self.dir)?;
        files.log = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&log_path)
            .context("reopening the audit spool")?;
        files.len = copied;
        files.committed = 0;
        Ok(())
    }
}

/// Delivered bytes below which the spool is not rewritten (the rewrite copies what is pending).
const REWRITE_MIN_BYTES: u64 = 16 * 1024;

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .context("syncing the audit spool dir")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: i64) -> AuditEvent {
        AuditEvent {
            ts_micros: n,
            audit_id: format!("id-{n}"),
            replica: 1,
            cluster: String::new(),
            username: "admin".into(),
            groups: String::new(),
            client: "api".into(),
            source_ip: "127.0.0.1".into(),
            user_agent: String::new(),
            verb: "create".into(),
            api_group: String::new(),
            resource: "users".into(),
            subresource: String::new(),
            namespace: String::new(),
            name: String::new(),
            request_uri: "/".into(),
            status_code: 200,
            duration_ms: 1,
            decision: "allow".into(),
            message: String::new(),
        }
    }

    #[test]
    fn appends_survive_reopen_in_order_and_commits_are_kept() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let spool = Spool::open(dir.path(), 1 << 20).expect("open");
        for n in 0..10 {
            spool.append(&row(n)).expect("append");
        }
        let batch = spool.read_batch(4).expect("read");
        assert_eq!(
            batch.rows.iter().map(|r| r.ts_micros).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        spool.commit(batch.end_offset).expect("commit");
        drop(spool);
        // A torn last line (a crash in the middle of an append) is cut off.
        let mut log = OpenOptions::new()
            .append(true)
            .open(dir.path().join(LOG_FILE))
            .expect("log");
        log.write_all(b"{\"ts_mic").expect("write");
        let spool = Spool::open(dir.path(), 1 << 20).expect("reopen");
        let batch = spool.read_batch(100).expect("read");
        assert_eq!(
            batch.rows.iter().map(|r| r.ts_micros).collect::<Vec<_>>(),
            (4..10).collect::<Vec<_>>()
        );
        spool.commit(batch.end_offset).expect("commit");
        assert_eq!(spool.pending_bytes(), 0);
    }

    /// Under steady traffic new lines arrive while the writer stores what it took, so the spool
    /// is never empty at a commit, and its file was only emptied when it was: it grew without
    /// bound (1.3 MB here with a 64 KiB bound) while little was pending.
    #[test]
    fn a_spool_that_is_never_empty_stays_bounded_on_disk() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let max_bytes = 64 * 1024;
        let spool = Spool::open(dir.path(), max_bytes).expect("open");
        let mut next = 0;
        let mut delivered = Vec::new();
        let mut largest = 0;
        // One line always waits: each round adds two, and the writer takes all but the newest.
        spool.append(&row(next)).expect("append");
        next += 1;
        for _ in 0..2_000 {
            for _ in 0..2 {
                spool.append(&row(next)).expect("append");
                next += 1;
            }
            let batch = spool.read_batch(2).expect("read");
            delivered.extend(batch.rows.iter().map(|r| r.ts_micros));
            spool.commit(batch.end_offset).expect("commit");
            let on_disk = std::fs::metadata(dir.path().join(LOG_FILE)).expect("spool file").len();
            largest = largest.max(on_disk);
        }
        assert!(
            largest <= 2 * max_bytes,
            "the spool file reached {largest} bytes with a bound of {max_bytes} (pending {} bytes)",
            spool.pending_bytes()
        );
        // Nothing lost or repeated, across a reopen too.
        drop(spool);
        let spool = Spool::open(dir.path(), max_bytes).expect("reopen");
        let batch = spool.read_batch(usize::MAX).expect("read");
        delivered.extend(batch.rows.iter().map(|r| r.ts_micros));
        assert_eq!(delivered, (0..next).collect::<Vec<_>>());
    }

    #[test]
    fn a_full_spool_refuses() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let spool = Spool::open(dir.path(), 600).expect("open");
        let mut accepted = 0;
        for n in 0..10 {
            if spool.append(&row(n)).is_ok() {
                accepted += 1;
            }
        }
        assert!(accepted > 0 && accepted < 10, "accepted {accepted}");
        assert!(matches!(spool.append(&row(99)), Err(SpoolError::Full(600))));
    }
}
