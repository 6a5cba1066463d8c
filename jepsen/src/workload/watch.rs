//! Workload (c): watches through the etcd v3 API.
//!
//! One watcher per member watches a prefix from the revision after the start of the run while writers
//! put unique keys under it. A watcher that loses its stream (its member killed, a timeout) watches
//! again from the revision after the last one it saw. At the end, when everything is healed, a fence
//! put marks the last revision every watcher must reach, and a linearizable range of the prefix is the
//! final history: every watcher must have seen every committed event of its window in revision order,
//! once, and every acknowledged put must be in the final range at the revision its client was told.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, GetOptions, WatchOptions};
use serde::Serialize;
use tokio::task::JoinSet;

use super::set::connect;
use super::{never_sent, Progress, Recorder, ERROR_BACKOFF, FINAL_READ_WITHIN};
use crate::checker::{check_watch, WatchEvent, WatchVerdict, WatcherLog};
use crate::history::{Op, Outcome};

/// The prefix the writers put under and the watchers watch.
pub const PREFIX: &str = "kuboard-jepsen/watch/";
/// The key of the final put every watcher must see.
const FENCE_KEY: &str = "kuboard-jepsen/watch/fence";
/// How often a watcher waiting for events checks whether it may stop.
const WATCH_TICK: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
pub struct WatchOptionsSet {
    pub writers: usize,
    pub op_timeout: Duration,
    /// Pause of a writer between two puts, so that the watchers' event streams stay readable.
    pub write_pause: Duration,
}

impl Default for WatchOptionsSet {
    fn default() -> Self {
        WatchOptionsSet {
            writers: 2,
            op_timeout: Duration::from_millis(1500),
            write_pause: Duration::from_millis(20),
        }
    }
}

/// What one watcher saw.
#[derive(Debug, Clone, Serialize)]
pub struct WatcherRecord {
    pub watcher: usize,
    pub node: String,
    pub start_revision: i64,
    /// The highest revision it saw.
    pub last_revision: i64,
    pub events: Vec<WatchEvent>,
    /// Streams it opened (1 when it never lost its stream).
    pub streams: usize,
    /// Why its streams ended, first few.
    pub stream_errors: Vec<String>,
}

/// The watch workload's history, what the watchers saw and the final state.
#[derive(Debug, Clone)]
pub struct WatchOutcome {
    /// The puts, the fence and the final range (`f` = `put` / `fence` / `read`).
    pub history: Vec<Op>,
    pub watchers: Vec<WatcherRecord>,
    pub start_revision: i64,
    /// The fence's revision: every watcher must reach it. `None` when no member took the fence put.
    pub fence_revision: Option<i64>,
    /// The final range of the prefix: key → modification revision. `None` when no member answered.
    pub final_range: Option<BTreeMap<String, i64>>,
    /// A failure before the workload could start (no start revision).
    pub error: Option<String>,
}

/// The watch verdict: the checker's and the comparison with the final range.
#[derive(Debug, Clone, Serialize)]
pub struct WatchRunVerdict {
    pub valid: bool,
    pub start_revision: i64,
    pub fence_revision: Option<i64>,
    pub puts_acknowledged: usize,
    /// Per watcher: `n1: 812 events, 3 streams`.
    pub watchers: Vec<String>,
    /// Acknowledged puts missing from the final range or found there at another revision.
    pub final_mismatches: Vec<String>,
    pub checker: WatchVerdict,
    pub error: Option<String>,
}

impl WatchOutcome {
    pub fn verdict(&self) -> WatchRunVerdict {
        let final_range = self.final_range.clone().unwrap_or_default();
        let mut acknowledged: Vec<WatchEvent> = Vec::new();
        let mut final_mismatches = Vec::new();
        let mut puts_acknowledged = 0;
        for op in self.history.iter().filter(|op| op.outcome == Outcome::Ok) {
            let Some(revision) = op.revision else { continue };
            if op.f != "put" && op.f != "fence" {
                continue;
            }
            puts_acknowledged += usize::from(op.f == "put");
            acknowledged.push(WatchEvent {
                revision,
                key: op.key.clone(),
            });
            if self.final_range.is_some() && final_range.get(&op.key) != Some(&revision) {
                final_mismatches.push(format!(
                    "{} acknowledged at revision {revision}, final range has {:?}",
                    op.key,
                    final_range.get(&op.key)
                ));
            }
        }
        // Everything in the final range inside the window is committed: the watchers must have it too.
        acknowledged.extend(
            final_range
                .iter()
                .filter(|(_, revision)| **revision >= self.start_revision)
                .map(|(key, revision)| WatchEvent {
                    revision: *revision,
                    key: key.clone(),
                }),
        );
        let end_revision = self
            .fence_revision
            .unwrap_or_else(|| acknowledged.iter().map(|event| event.revision).max().unwrap_or(0));
        let logs: Vec<WatcherLog> = self
            .watchers
            .iter()
            .map(|watcher| WatcherLog {
                watcher: watcher.watcher,
                start_revision: self.start_revision,
                end_revision,
                events: watcher.events.clone(),
            })
            .collect();
        let checker = check_watch(&logs, &acknowledged);
        let error = self.error.clone().or_else(|| {
            if self.fence_revision.is_none() {
                Some("no member took the fence put after healing".to_string())
            } else if self.final_range.is_none() {
                Some("no member answered the final range after healing".to_string())
            } else {
                None
            }
        });
        final_mismatches.truncate(20);
        WatchRunVerdict {
            valid: checker.valid && final_mismatches.is_empty() && error.is_none(),
            start_revision: self.start_revision,
            fence_revision: self.fence_revision,
            puts_acknowledged,
            watchers: self
                .watchers
                .iter()
                .map(|watcher| {
                    format!(
                        "{}: {} events, {} streams, last revision {}",
                        watcher.node,
                        watcher.events.len(),
                        watcher.streams,
                        watcher.last_revision
                    )
                })
                .collect(),
            final_mismatches,
            checker,
            error,
        }
    }
}

/// Run the writers and one watcher per member until `deadline`, then fence, read the final range and
/// let the watchers catch up with the fence.
pub async fn run(
    options: WatchOptionsSet,
    endpoints: Vec<String>,
    names: Vec<String>,
    started: Instant,
    deadline: Instant,
    progress: Arc<Progress>,
) -> WatchOutcome {
    let recorder = Arc::new(Recorder::new(started, progress));
    let Some(start_revision) = current_revision(&endpoints, options.op_timeout, deadline).await else {
        return WatchOutcome {
            history: Vec::new(),
            watchers: Vec::new(),
            start_revision: 0,
            fence_revision: None,
            final_range: None,
            error: Some("no member told its revision before the deadline".to_string()),
        };
    };
    let start_revision = start_revision + 1;
    let endpoints = Arc::new(endpoints);
    let names = Arc::new(names);
    // 0 until the fence is known; the watchers stop once they reach it (or give up).
    let fence = Arc::new(AtomicI64::new(0));
    let give_up = Arc::new(AtomicBool::new(false));
    let mut watchers = JoinSet::new();
    for member in 0..endpoints.len() {
        watchers.spawn(watcher_loop(
            member,
            endpoints[member].clone(),
            names[member].clone(),
            start_revision,
            Arc::clone(&fence),
            Arc::clone(&give_up),
            options.op_timeout,
        ));
    }
    let mut writers = JoinSet::new();
    let next_key = Arc::new(AtomicI64::new(0));
    for worker in 0..options.writers.max(1) {
        let (recorder, endpoints, names, next_key) = (
            Arc::clone(&recorder),
            Arc::clone(&endpoints),
            Arc::clone(&names),
            Arc::clone(&next_key),
        );
        let options = options.clone();
        writers.spawn(async move {
            let home = worker % endpoints.len();
            let mut connection: Option<Client> = None;
            let mut process = worker as u64;
            // Bounded by the deadline: every iteration takes at most one operation timeout.
            while Instant::now() < deadline {
                let key = format!("{PREFIX}{:09}", next_key.fetch_add(1, Ordering::Relaxed));
                let pending = recorder.invoke(process, &names[home], "put", &key, None);
                let (outcome, revision, error) = put(&mut connection, &endpoints[home], &key, options.op_timeout).await;
                recorder.complete(pending, outcome, revision, error);
                if outcome != Outcome::Ok {
                    connection = None;
                    if outcome == Outcome::Info {
                        process += options.writers.max(1) as u64;
                    }
                    tokio::time::sleep(ERROR_BACKOFF).await;
                } else {
                    tokio::time::sleep(options.write_pause).await;
                }
            }
        });
    }
    while let Some(result) = writers.join_next().await {
        if let Err(error) = result {
            tracing::error!("a watch writer panicked: {error}");
        }
    }
    // The fence and the final range, after healing, through whichever member answers.
    let finish_by = Instant::now() + FINAL_READ_WITHIN;
    let mut fence_revision = None;
    for attempt in 0..1000usize {
        if Instant::now() >= finish_by {
            break;
        }
        let member = attempt % endpoints.len();
        let pending = recorder.invoke(u64::MAX, &names[member], "fence", FENCE_KEY, None);
        let mut connection = None;
        let (outcome, revision, error) =
            put(&mut connection, &endpoints[member], FENCE_KEY, options.op_timeout * 2).await;
        recorder.complete(pending, outcome, revision, error);
        if outcome == Outcome::Ok {
            fence_revision = revision;
            break;
        }
        tokio::time::sleep(ERROR_BACKOFF * 2).await;
    }
    let mut final_range = None;
    for attempt in 0..1000usize {
        if Instant::now() >= finish_by {
            break;
        }
        let member = attempt % endpoints.len();
        let pending = recorder.invoke(u64::MAX, &names[member], "read", PREFIX, None);
        match read_prefix(&endpoints[member], options.op_timeout * 2).await {
            Ok((range, revision)) => {
                recorder.complete(pending, Outcome::Ok, revision, None);
                final_range = Some(range);
                break;
            }
            Err(error) => {
                recorder.complete(pending, Outcome::Fail, None, Some(error));
                tokio::time::sleep(ERROR_BACKOFF * 2).await;
            }
        }
    }
    match fence_revision {
        Some(revision) => fence.store(revision, Ordering::Relaxed),
        None => give_up.store(true, Ordering::Relaxed),
    }
    // The watchers stop at the fence; the ones that cannot reach it give up at `finish_by`.
    let stop_waiting = finish_by.max(Instant::now() + Duration::from_secs(5));
    let mut records = Vec::new();
    loop {
        let next = tokio::time::timeout_at(stop_waiting.into(), watchers.join_next()).await;
        match next {
            Ok(Some(Ok(record))) => records.push(record),
            Ok(Some(Err(error))) => tracing::error!("a watcher panicked: {error}"),
            Ok(None) => break,
            Err(_) => {
                // Late watchers are told to stop and report what they saw.
                give_up.store(true, Ordering::Relaxed);
                while let Some(result) = watchers.join_next().await {
                    if let Ok(record) = result {
                        records.push(record);
                    }
                }
                break;
            }
        }
    }
    records.sort_by_key(|record| record.watcher);
    let recorder = Arc::into_inner(recorder).expect("every writer has finished");
    WatchOutcome {
        history: recorder.into_history(),
        watchers: records,
        start_revision,
        fence_revision,
        final_range,
        error: None,
    }
}

async fn put(
    connection: &mut Option<Client>,
    endpoint: &str,
    key: &str,
    timeout: Duration,
) -> (Outcome, Option<i64>, Option<String>) {
    let attempt = async {
        if connection.is_none() {
            *connection = Some(connect(endpoint, timeout).await?);
        }
        let client = connection.as_mut().expect("connected just above");
        let response = client.put(key, "1", None).await.map_err(|error| error.to_string())?;
        response
            .header()
            .map(|header| header.revision())
            .ok_or_else(|| "a put answer without a header".to_string())
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(revision)) => (Outcome::Ok, Some(revision), None),
        Ok(Err(error)) if never_sent(&error) => (Outcome::Fail, None, Some(error)),
        Ok(Err(error)) => (Outcome::Info, None, Some(error)),
        Err(_) => (Outcome::Info, None, Some(format!("no answer within {timeout:?}"))),
    }
}

/// A linearizable range of the prefix: key → modification revision, and the store's revision.
async fn read_prefix(endpoint: &str, timeout: Duration) -> Result<(BTreeMap<String, i64>, Option<i64>), String> {
    let read = async {
        let mut client = connect(endpoint, timeout).await?;
        let response = client
            .get(PREFIX, Some(GetOptions::new().with_prefix()))
            .await
            .map_err(|error| error.to_string())?;
        let range = response
            .kvs()
            .iter()
            .map(|kv| (String::from_utf8_lossy(kv.key()).into_owned(), kv.mod_revision()))
            .collect();
        Ok((range, response.header().map(|header| header.revision())))
    };
    tokio::time::timeout(timeout * 2, read)
        .await
        .unwrap_or_else(|_| Err("no answer in time".to_string()))
}

/// The store's current revision, asking the members in turn until one answers or `deadline`.
async fn current_revision(endpoints: &[String], timeout: Duration, deadline: Instant) -> Option<i64> {
    for attempt in 0..1000usize {
        if Instant::now() >= deadline {
            return None;
        }
        if let Ok((_, Some(revision))) = read_prefix(&endpoints[attempt % endpoints.len()], timeout).await {
            return Some(revision);
        }
        tokio::time::sleep(ERROR_BACKOFF).await;
    }
    None
}

/// Watch the prefix through one member until the fence is reached or the workload gives up, resuming
/// after the last revision seen whenever the stream ends.
async fn watcher_loop(
    watcher: usize,
    endpoint: String,
    node: String,
    start_revision: i64,
    fence: Arc<AtomicI64>,
    give_up: Arc<AtomicBool>,
    timeout: Duration,
) -> WatcherRecord {
    let mut record = WatcherRecord {
        watcher,
        node,
        start_revision,
        last_revision: start_revision - 1,
        events: Vec::new(),
        streams: 0,
        stream_errors: Vec::new(),
    };
    let done = |record: &WatcherRecord| {
        let fence = fence.load(Ordering::Relaxed);
        give_up.load(Ordering::Relaxed) || (fence > 0 && record.last_revision >= fence)
    };
    let note_error = |record: &mut WatcherRecord, error: String| {
        if record.stream_errors.len() < 10 {
            record.stream_errors.push(error);
        }
    };
    // Bounded: the workload sets `give_up` at its end, and every iteration waits at most a few ticks.
    while !done(&record) {
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(record.last_revision + 1);
        let opened = tokio::time::timeout(timeout, async {
            let mut client = connect(&endpoint, timeout).await?;
            client
                .watch(PREFIX, Some(options))
                .await
                .map_err(|error| format!("watch: {error}"))
        })
        .await
        .unwrap_or_else(|_| Err(format!("no watch stream within {timeout:?}")));
        let mut stream = match opened {
            Ok(stream) => stream,
            Err(error) => {
                note_error(&mut record, error);
                tokio::time::sleep(ERROR_BACKOFF).await;
                continue;
            }
        };
        record.streams += 1;
        // One stream until it ends or the watcher is done.
        while !done(&record) {
            let message = match tokio::time::timeout(WATCH_TICK, stream.message()).await {
                Err(_) => continue,
                Ok(message) => message,
            };
            match message {
                Ok(Some(response)) => {
                    for event in response.events() {
                        if let Some(kv) = event.kv() {
                            record.last_revision = record.last_revision.max(kv.mod_revision());
                            record.events.push(WatchEvent {
                                revision: kv.mod_revision(),
                                key: String::from_utf8_lossy(kv.key()).into_owned(),
                            });
                        }
                    }
                    if response.canceled() {
                        note_error(
                            &mut record,
                            format!(
                                "canceled: {} (compact revision {})",
                                response.cancel_reason(),
                                response.compact_revision()
                            ),
                        );
                        break;
                    }
                }
                Ok(None) => {
                    note_error(&mut record, "the stream ended".to_string());
                    break;
                }
                Err(error) => {
                    note_error(&mut record, error.to_string());
                    break;
                }
            }
        }
        if !done(&record) {
            tokio::time::sleep(ERROR_BACKOFF).await;
        }
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, revision: Option<i64>, outcome: Outcome) -> Op {
        Op {
            index: 0,
            process: 0,
            node: "n1".into(),
            f: "put".into(),
            key: key.into(),
            value: None,
            revision,
            outcome,
            invoke_ns: 0,
            complete_ns: 1,
            error: None,
        }
    }

    fn watcher(watcher: usize, seen: &[(i64, &str)]) -> WatcherRecord {
        WatcherRecord {
            watcher,
            node: format!("n{}", watcher + 1),
            start_revision: 10,
            last_revision: seen.iter().map(|(revision, _)| *revision).max().unwrap_or(9),
            events: seen
                .iter()
                .map(|(revision, key)| WatchEvent {
                    revision: *revision,
                    key: key.to_string(),
                })
                .collect(),
            streams: 1,
            stream_errors: Vec::new(),
        }
    }

    fn outcome(watchers: Vec<WatcherRecord>, final_range: &[(&str, i64)]) -> WatchOutcome {
        let mut history = vec![
            put("w/a", Some(10), Outcome::Ok),
            put("w/b", Some(11), Outcome::Ok),
            put("w/c", None, Outcome::Info),
        ];
        history.push(Op {
            f: "fence".into(),
            ..put(FENCE_KEY, Some(13), Outcome::Ok)
        });
        WatchOutcome {
            history,
            watchers,
            start_revision: 10,
            fence_revision: Some(13),
            final_range: Some(
                final_range
                    .iter()
                    .map(|(key, revision)| (key.to_string(), *revision))
                    .collect(),
            ),
            error: None,
        }
    }

    #[test]
    fn watchers_must_agree_with_the_final_range_and_each_other() {
        let all = [(10, "w/a"), (11, "w/b"), (12, "w/c"), (13, FENCE_KEY)];
        let range = [("w/a", 10), ("w/b", 11), ("w/c", 12), (FENCE_KEY, 13)];
        let good = outcome(vec![watcher(0, &all), watcher(1, &all)], &range);
        let verdict = good.verdict();
        assert!(verdict.valid, "{verdict:?}");
        assert_eq!(verdict.puts_acknowledged, 2);

        // The indeterminate put took effect (it is in the final range): a watcher without it has a gap.
        let gap = outcome(
            vec![
                watcher(0, &all),
                watcher(1, &[(10, "w/a"), (11, "w/b"), (13, FENCE_KEY)]),
            ],
            &range,
        );
        let verdict = gap.verdict();
        assert!(!verdict.valid);
        assert_eq!(verdict.checker.problems[0].watcher, 1);
        assert_eq!(verdict.checker.problems[0].missing[0].revision, 12);

        // An acknowledged put missing from the final range, or at another revision, is a mismatch.
        let lost = outcome(
            vec![watcher(0, &all)],
            &[("w/a", 10), ("w/b", 14), ("w/c", 12), (FENCE_KEY, 13)],
        );
        let verdict = lost.verdict();
        assert!(!verdict.valid);
        assert_eq!(verdict.final_mismatches.len(), 1, "{verdict:?}");

        // Without the fence nothing can be vouched for.
        let mut no_fence = outcome(vec![watcher(0, &all)], &range);
        no_fence.fence_revision = None;
        assert!(!no_fence.verdict().valid);
    }
}
