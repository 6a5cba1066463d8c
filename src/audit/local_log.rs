//! [`LocalLog`]: the embedded audit log of a replica without an audit database (DESIGN §7): JSON
//! lines in segment files under `$KUBOARD_DATA_DIR/audit/local/`, bounded in bytes (the oldest
//! segment goes first), read back by the same query API as the database (filters, newest first,
//! keyset cursor on `(ts, audit_id)`).
//!
//! A query reads segments newest first and skips a segment whose time range cannot hold a result
//! (outside `from`/`to`, newer than the cursor, or older than a page already full); each segment's
//! range is learnt when it is first read (the written one's at open) and kept, since segments do
//! not change once closed. A line torn by a crash is cut off when the log opens; a line being
//! appended while a query reads it does not parse and is skipped by that query only.

use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;

use crate::audit::audit_event::AuditEvent;

const PREFIX: &str = "audit-";
const SUFFIX: &str = ".jsonl";
/// Segments are an eighth of the bound (so removing one frees at most that), within these limits.
const MIN_SEGMENT_BYTES: u64 = 16 * 1024;
const MAX_SEGMENT_BYTES: u64 = 32 * 1024 * 1024;

/// What a query keeps; every field absent matches everything.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Microseconds since the Unix epoch, inclusive.
    pub from: Option<i64>,
    /// Microseconds since the Unix epoch, exclusive.
    pub to: Option<i64>,
    pub user: Option<String>,
    pub cluster: Option<String>,
    pub namespace: Option<String>,
    pub verb: Option<String>,
    pub resource: Option<String>,
    pub status: Option<i32>,
    /// Only events strictly older than this `(ts, audit_id)` (the previous page's last).
    pub before: Option<(i64, String)>,
}

impl EventFilter {
    pub fn matches(&self, row: &AuditEvent) -> bool {
        let same = |wanted: &Option<String>, value: &str| wanted.as_deref().is_none_or(|wanted| wanted == value);
        self.from.is_none_or(|from| row.ts_micros >= from)
            && self.to.is_none_or(|to| row.ts_micros < to)
            && same(&self.user, &row.username)
            && same(&self.cluster, &row.cluster)
            && same(&self.namespace, &row.namespace)
            && same(&self.verb, &row.verb)
            && same(&self.resource, &row.resource)
            && self.status.is_none_or(|status| row.status_code == status)
            && self
                .before
                .as_ref()
                .is_none_or(|(ts, id)| (row.ts_micros, row.audit_id.as_str()) < (*ts, id.as_str()))
    }
}

/// The oldest and newest `ts_micros` of a segment's events (`min > max` while it has none).
#[derive(Debug, Clone, Copy)]
struct TimeRange {
    min: i64,
    max: i64,
}

impl TimeRange {
    const EMPTY: TimeRange = TimeRange {
        min: i64::MAX,
        max: i64::MIN,
    };

    fn add(&mut self, ts: i64) {
        self.min = self.min.min(ts);
        self.max = self.max.max(ts);
    }
}

struct Segments {
    /// Sequence number and size of every segment, oldest first; the last one is written.
    list: VecDeque<(u64, u64)>,
    /// Time ranges of the segments read whole so far (always the written one).
    ranges: HashMap<u64, TimeRange>,
    current: File,
    total_bytes: u64,
    removed_segments: u64,
}

pub struct LocalLog {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    segments: Mutex<Segments>,
}

fn segment_name(seq: u64) -> String {
    format!("{PREFIX}{seq:012}{SUFFIX}")
}

fn segment_seq(name: &str) -> Option<u64> {
    name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?.parse().ok()
}

fn open_for_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).read(true).append(true).open(path)
}

impl LocalLog {
    /// Opens (or creates) the log in `dir`, bounded by `max_bytes`.
    pub fn open(dir: &Path, max_bytes: u64) -> anyhow::Result<LocalLog> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating the local audit log dir {}", dir.display()))?;
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
            let entry = entry.context("listing the local audit log")?;
            if let Some(seq) = entry.file_name().to_str().and_then(segment_seq) {
                let len = entry.metadata().context("reading a segment's size")?.len();
                found.push((seq, len));
            }
        }
        found.sort_unstable();
        if found.is_empty() {
            found.push((1, 0));
        }
        let (last_seq, _) = *found.last().expect("at least one segment");
        let last_path = dir.join(segment_name(last_seq));
        let mut current = open_for_append(&last_path).with_context(|| format!("opening {}", last_path.display()))?;
        let mut content = Vec::new();
        current
            .read_to_end(&mut content)
            .with_context(|| format!("reading {}", last_path.display()))?;
        let whole = content
            .iter()
            .rposition(|byte| *byte == b'\n')
            .map_or(0, |last| last + 1) as u64;
        if whole != content.len() as u64 {
            current
                .set_len(whole)
                .context("cutting a torn line off the local audit log")?;
            current.sync_all().context("syncing the local audit log")?;
        }
        if let Some(last) = found.last_mut() {
            last.1 = whole;
        }
        let mut current_range = TimeRange::EMPTY;
        for line in content[..whole as usize].split(|byte| *byte == b'\n') {
            if let Ok(row) = serde_json::from_slice::<AuditEvent>(line) {
                current_range.add(row.ts_micros);
            }
        }
        let total_bytes = found.iter().map(|(_, len)| len).sum();
        let log = LocalLog {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes: (max_bytes / 8).clamp(MIN_SEGMENT_BYTES, MAX_SEGMENT_BYTES),
            segments: Mutex::new(Segments {
                list: found.into(),
                ranges: HashMap::from([(last_seq, current_range)]),
                current,
                total_bytes,
                removed_segments: 0,
            }),
        };
        {
            let mut segments = log.segments.lock().expect("no panics while holding the lock");
            log.enforce_bound(&mut segments);
        }
        Ok(log)
    }

    /// Appends the rows (one JSON line each); with `sync` they are on disk when this returns. A
    /// batch larger than a segment is spread over several, so that every segment but one holding a
    /// single oversized line stays within the segment size and the bound holds.
    pub fn append(&self, rows: &[AuditEvent], sync: bool) -> std::io::Result<()> {
        let mut segments = self.segments.lock().expect("no panics while holding the lock");
        let mut pending: Vec<u8> = Vec::new();
        let mut pending_ts: Vec<i64> = Vec::new();
        for row in rows {
            let mut line = serde_json::to_vec(row).map_err(std::io::Error::other)?;
            line.push(b'\n');
            let current_len = segments.list.back().map_or(0, |(_, len)| *len) + pending.len() as u64;
            if current_len > 0 && current_len + line.len() as u64 > self.segment_bytes {
                self.write_pending(&mut segments, &mut pending, &mut pending_ts, false)?;
                segments.current.sync_all()?;
                let seq = segments.list.back().map_or(0, |(seq, _)| *seq) + 1;
                segments.current = open_for_append(&self.dir.join(segment_name(seq)))?;
                segments.list.push_back((seq, 0));
                segments.ranges.insert(seq, TimeRange::EMPTY);
                // The new file's name must survive a crash as well as its lines.
                File::open(&self.dir)?.sync_all()?;
                self.enforce_bound(&mut segments);
            }
            pending.extend_from_slice(&line);
            pending_ts.push(row.ts_micros);
        }
        self.write_pending(&mut segments, &mut pending, &mut pending_ts, sync)?;
        self.enforce_bound(&mut segments);
        Ok(())
    }

    /// Writes the lines gathered for the current segment and accounts for them.
    fn write_pending(
        &self,
        segments: &mut Segments,
        pending: &mut Vec<u8>,
        pending_ts: &mut Vec<i64>,
        sync: bool,
    ) -> std::io::Result<()> {
        if !pending.is_empty() {
            segments.current.write_all(pending)?;
        }
        if sync {
            segments.current.sync_data()?;
        }
        if let Some(&(seq, _)) = segments.list.back() {
            if let Some(range) = segments.ranges.get_mut(&seq) {
                pending_ts.iter().for_each(|ts| range.add(*ts));
            }
        }
        if let Some(last) = segments.list.back_mut() {
            last.1 += pending.len() as u64;
        }
        segments.total_bytes += pending.len() as u64;
        pending.clear();
        pending_ts.clear();
        Ok(())
    }

    /// Removes the oldest segments while the log is over its bound (never the one written).
    fn enforce_bound(&self, segments: &mut Segments) {
        while segments.total_bytes > self.max_bytes && segments.list.len() > 1 {
            let Some((seq, len)) = segments.list.pop_front() else {
                break;
            };
            match std::fs::remove_file(self.dir.join(segment_name(seq))) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    tracing::error!(%error, seq, "removing the oldest local audit segment failed");
                    segments.list.push_front((seq, len));
                    return;
                }
            }
            segments.total_bytes = segments.total_bytes.saturating_sub(len);
            segments.ranges.remove(&seq);
            segments.removed_segments += 1;
            tracing::info!(
                seq,
                bytes = len,
                "oldest local audit segment removed (KUBOARD_AUDIT_LOCAL_MAX_BYTES)"
            );
        }
    }

    /// Bytes the log holds now.
    pub fn bytes(&self) -> u64 {
        self.segments
            .lock()
            .expect("no panics while holding the lock")
            .total_bytes
    }

    /// Segments removed to keep the bound since the start.
    pub fn removed_segments(&self) -> u64 {
        self.segments
            .lock()
            .expect("no panics while holding the lock")
            .removed_segments
    }

    /// The newest `limit` events matching `filter`, newest first, and whether older ones remain.
    pub fn query(&self, filter: &EventFilter, limit: usize) -> std::io::Result<(Vec<AuditEvent>, bool)> {
        let seqs: Vec<(u64, Option<TimeRange>)> = {
            let segments = self.segments.lock().expect("no panics while holding the lock");
            segments
                .list
                .iter()
                .map(|(seq, _)| (*seq, segments.ranges.get(seq).copied()))
                .collect()
        };
        // A min-heap of the newest `limit + 1` matches (the extra one tells whether a page follows).
        let mut newest: BinaryHeap<std::cmp::Reverse<Newest>> = BinaryHeap::new();
        for (seq, range) in seqs.iter().rev() {
            if let Some(range) = range {
                let page_full_and_newer = newest.len() > limit
                    && newest
                        .peek()
                        .is_some_and(|oldest_kept| range.max < oldest_kept.0 .0.ts_micros);
                let outside = filter.from.is_some_and(|from| range.max < from)
                    || filter.to.is_some_and(|to| range.min >= to)
                    || filter.before.as_ref().is_some_and(|(ts, _)| range.min > *ts);
                if range.min > range.max || page_full_and_newer || outside {
                    continue;
                }
            }
            let mut seen = TimeRange::EMPTY;
            let file = match File::open(self.dir.join(segment_name(*seq))) {
                Ok(file) => file,
                // Removed by the bound meanwhile: its events are gone.
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => return Err(error),
            };
            for line in BufReader::new(file).split(b'\n') {
                let line = line?;
                let Ok(row) = serde_json::from_slice::<AuditEvent>(&line) else {
                    continue;
                };
                seen.add(row.ts_micros);
                if !filter.matches(&row) {
                    continue;
                }
                newest.push(std::cmp::Reverse(Newest(row)));
                if newest.len() > limit + 1 {
                    newest.pop();
                }
            }
            if range.is_none() {
                // A closed segment does not change: its range, once read, holds.
                let mut segments = self.segments.lock().expect("no panics while holding the lock");
                let written = segments.list.back().map(|(last, _)| *last);
                if written != Some(*seq) && segments.list.iter().any(|(kept, _)| kept == seq) {
                    segments.ranges.insert(*seq, seen);
                }
            }
        }
        let mut rows: Vec<AuditEvent> = newest.into_iter().map(|entry| entry.0 .0).collect();
        rows.sort_unstable_by(|a, b| (b.ts_micros, &b.audit_id).cmp(&(a.ts_micros, &a.audit_id)));
        let more = rows.len() > limit;
        rows.truncate(limit);
        Ok((rows, more))
    }
}

/// Orders events by `(ts, audit_id)`, the order of the cursor.
struct Newest(AuditEvent);

impl PartialEq for Newest {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}

impl Eq for Newest {}

impl PartialOrd for Newest {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Newest {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.0.ts_micros, &self.0.audit_id).cmp(&(other.0.ts_micros, &other.0.audit_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ts: i64, verb: &str) -> AuditEvent {
        AuditEvent {
            ts_micros: ts,
            audit_id: format!("id-{ts:08}"),
            replica: 1,
            cluster: String::new(),
            username: "admin".into(),
            groups: String::new(),
            client: "api".into(),
            source_ip: "127.0.0.1".into(),
            user_agent: String::new(),
            verb: verb.into(),
            api_group: String::new(),
            resource: "users".into(),
            subresource: String::new(),
            namespace: String::new(),
            name: String::new(),
            request_uri: format!("/kuboard-api/users?n={ts}"),
            status_code: 201,
            duration_ms: 1,
            decision: "allow".into(),
            message: "Created".into(),
        }
    }

    /// One batch far larger than the bound (ignore-errors writes up to 500 events at once) is spread
    /// over segments, and the oldest go: the log stays within its bound and keeps the newest events.
    #[test]
    fn a_batch_larger_than_the_bound_keeps_the_bound() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let bound = 64 * 1024;
        let log = LocalLog::open(dir.path(), bound).expect("open");
        let rows: Vec<AuditEvent> = (1..=600).map(|ts| row(ts, "create")).collect();
        log.append(&rows, false).expect("append");
        assert!(log.bytes() <= bound, "{} bytes held", log.bytes());
        let on_disk: u64 = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").metadata().expect("metadata").len())
            .sum();
        assert!(on_disk <= bound, "{on_disk} bytes on disk");
        let (events, _) = log.query(&EventFilter::default(), 1).expect("query");
        assert_eq!(events[0].ts_micros, 600, "the newest event stays");
    }

    #[test]
    fn pages_newest_first_with_filters_and_a_cursor() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let log = LocalLog::open(dir.path(), 1 << 20).expect("open");
        for ts in 1..=25 {
            log.append(&[row(ts, if ts % 2 == 0 { "create" } else { "delete" })], ts % 5 == 0)
                .expect("append");
        }
        let mut filter = EventFilter {
            verb: Some("create".into()),
            ..EventFilter::default()
        };
        let mut seen = Vec::new();
        for _ in 0..10 {
            let (rows, more) = log.query(&filter, 5).expect("query");
            seen.extend(rows.iter().map(|row| row.ts_micros));
            if !more {
                break;
            }
            let last = rows.last().expect("a full page");
            filter.before = Some((last.ts_micros, last.audit_id.clone()));
        }
        assert_eq!(seen, (1..=12).rev().map(|n| n * 2).collect::<Vec<i64>>());
        let range = EventFilter {
            from: Some(10),
            to: Some(13),
            ..EventFilter::default()
        };
        let (rows, more) = log.query(&range, 100).expect("query");
        assert_eq!(
            rows.iter().map(|row| row.ts_micros).collect::<Vec<_>>(),
            vec![12, 11, 10]
        );
        assert!(!more);
        let mut cluster_row = row(26, "create");
        cluster_row.resource = "clusters".into();
        log.append(&[cluster_row], false).expect("append");
        let by_resource = |resource: &str| {
            let filter = EventFilter {
                resource: Some(resource.into()),
                ..EventFilter::default()
            };
            let (rows, _) = log.query(&filter, 100).expect("query");
            rows.iter().map(|row| row.ts_micros).collect::<Vec<_>>()
        };
        assert_eq!(by_resource("clusters"), vec![26]);
        assert_eq!(by_resource("users"), (1..=25).rev().collect::<Vec<i64>>());
        assert!(by_resource("pods").is_empty());
    }

    /// Every page, following the cursor.
    fn all_pages(log: &LocalLog, mut filter: EventFilter, limit: usize) -> Vec<i64> {
        let mut seen = Vec::new();
        for _ in 0..10_000 {
            let (rows, more) = log.query(&filter, limit).expect("query");
            seen.extend(rows.iter().map(|row| row.ts_micros));
            if !more {
                return seen;
            }
            let last = rows.last().expect("a full page");
            filter.before = Some((last.ts_micros, last.audit_id.clone()));
        }
        panic!("too many pages");
    }

    #[test]
    fn pages_across_segments_skip_none_before_and_after_a_reopen() {
        let dir = tempfile::tempdir().expect("a temp dir");
        // Segments of 256 KiB; the 3,000 events take about 1.2 MB, within the bound.
        let bound = 2 << 20;
        let expected: Vec<i64> = (1..=3000).rev().collect();
        {
            let log = LocalLog::open(dir.path(), bound).expect("open");
            for ts in 1..=3000 {
                log.append(&[row(ts, "create")], false).expect("append");
            }
            assert!(log.segments.lock().expect("lock").list.len() > 4, "several segments");
            assert_eq!(all_pages(&log, EventFilter::default(), 100), expected);
            // The ranges learnt by the first walk give the same answer.
            assert_eq!(all_pages(&log, EventFilter::default(), 77), expected);
        }
        let log = LocalLog::open(dir.path(), bound).expect("reopen");
        assert_eq!(all_pages(&log, EventFilter::default(), 250), expected);
        let window = EventFilter {
            from: Some(1000),
            to: Some(1010),
            ..EventFilter::default()
        };
        assert_eq!(all_pages(&log, window, 3), (1000..1010).rev().collect::<Vec<i64>>());
    }

    #[test]
    fn the_oldest_segments_go_beyond_the_bound_and_a_torn_line_is_cut_at_open() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let bound = 64 * 1024;
        {
            let log = LocalLog::open(dir.path(), bound).expect("open");
            for ts in 1..=2000 {
                log.append(&[row(ts, "create")], false).expect("append");
            }
            assert!(log.bytes() <= bound, "{} bytes", log.bytes());
            assert!(log.removed_segments() > 0);
            let (rows, _) = log.query(&EventFilter::default(), 1).expect("query");
            assert_eq!(rows[0].ts_micros, 2000, "the newest events stay");
        }
        let on_disk: u64 = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|entry| entry.expect("entry").metadata().expect("size").len())
            .sum();
        assert!(on_disk <= bound, "{on_disk} bytes on disk");
        // A crash in the middle of a line.
        let newest = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.path())
            .max()
            .expect("a segment");
        let mut file = OpenOptions::new().append(true).open(&newest).expect("open");
        file.write_all(b"{\"ts_micros\": 99").expect("write a torn line");
        drop(file);
        let log = LocalLog::open(dir.path(), bound).expect("reopen");
        log.append(&[row(2001, "create")], true)
            .expect("append after the crash");
        let (rows, _) = log.query(&EventFilter::default(), 2).expect("query");
        assert_eq!(
            rows.iter().map(|row| row.ts_micros).collect::<Vec<_>>(),
            vec![2001, 2000]
        );
    }
}
