//! Durability across real crashes (after sled's `test_crash_recovery`): a child process writes
//! keys from several tasks and reports each acknowledged write on stdout; the parent kills it with
//! SIGKILL after a random delay (while it opens and recovers, while it writes, while it builds a
//! snapshot and purges the log behind it), reopens the store and checks that every acknowledged
//! write is there with its value and revision, and that the revisions have no gap. Fifty rounds
//! run one after the other on the same data directory, so every round also recovers from the
//! damage of all the rounds before it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kuboard_raft::{RaftStore, RaftStoreConfig};
use kuboard_storage::*;

mod common;
use common::single_member_config;

/// Set in the child's environment: the data directory it writes to.
const CHILD_DIR_VAR: &str = "KUBOARD_RAFT_CRASH_CHILD_DIR";
/// Set in the child's environment: the round, which names the keys it writes.
const CHILD_ROUND_VAR: &str = "KUBOARD_RAFT_CRASH_CHILD_ROUND";
/// Kills, one after the other, on the same data directory.
const ROUNDS: u32 = 50;
/// Concurrent writer tasks in the child (several writes share one fsync).
const WRITERS: u32 = 4;
/// Writes each writer attempts at most (the child is killed long before).
const WRITES_PER_WRITER: u32 = 100_000;
/// The kill comes after a uniformly random delay below this, counted from the child's start.
/// Opening takes about a third of it, so about a third of the kills land in open and recovery.
const MAX_KILL_DELAY_MS: u64 = 600;
/// Entries between snapshots: small, so that snapshots and log purges happen all the time.
const SNAPSHOT_THRESHOLD: u64 = 20;

/// A one-member group elects itself after one election timeout; the short timers of
/// `single_member_config` keep the many opens of these tests quick.
fn config(data_dir: &Path) -> RaftStoreConfig {
    single_member_config(data_dir, SNAPSHOT_THRESHOLD)
}

fn key(round: u32, writer: u32, index: u32) -> String {
    format!("crash/{round:02}/{writer}/{index:06}")
}

/// Values big enough that snapshots are more than a few bytes, and tied to their key.
fn value(round: u32, writer: u32, index: u32) -> String {
    format!("round {round} writer {writer} write {index} {}", "x".repeat(64))
}

/// The child's side: only does something when started by the parent test below.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child_writer() {
    let (Ok(dir), Ok(round)) = (std::env::var(CHILD_DIR_VAR), std::env::var(CHILD_ROUND_VAR)) else {
        return;
    };
    let round: u32 = round.parse().expect("round number from the parent");
    let store = RaftStore::open(config(Path::new(&dir)))
        .await
        .expect("child opens the store");
    println!("OPENED");
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for index in 0..WRITES_PER_WRITER {
                let response = store
                    .put(PutRequest::new(key(round, writer, index), value(round, writer, index)))
                    .await;
                let revision = response.expect("child write").header.revision;
                // One line per acknowledged write; stdout is line-buffered, so the line leaves
                // the process before the next write starts.
                println!("ACK {writer} {index} {revision}");
            }
        }));
    }
    for writer in writers {
        writer.await.expect("writer task");
    }
}

/// What the parent learnt from one child before killing it.
#[derive(Default)]
struct ChildReport {
    pid: u32,
    opened: bool,
    /// `(writer, index, revision)` of each acknowledged write.
    acks: Vec<(u32, u32, i64)>,
}

fn spawn_child(dir: &Path, round: u32) -> (Child, mpsc::Receiver<String>, std::thread::JoinHandle<()>) {
    let exe = std::env::current_exe().expect("test binary path");
    let stderr = std::fs::File::create(dir.join(format!("child-{round}.stderr"))).expect("child stderr file");
    let mut child = Command::new(exe)
        .args(["--exact", "crash_child_writer", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_VAR, dir.join("data"))
        .env(CHILD_ROUND_VAR, round.to_string())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("start the child writer");
    let stdout = child.stdout.take().expect("child stdout is piped");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx, reader)
}

fn parse_line(line: &str, report: &mut ChildReport) {
    // The test harness writes its own words before the child's first line, so the marker is
    // looked for anywhere in the line.
    let mut tokens = line.split_whitespace().skip_while(|t| *t != "OPENED" && *t != "ACK");
    match tokens.next() {
        Some("OPENED") => report.opened = true,
        Some("ACK") => {
            let mut number = || tokens.next().and_then(|p| p.parse::<i64>().ok()).expect("ack field");
            let (writer, index, revision) = (number() as u32, number() as u32, number());
            report.acks.push((writer, index, revision));
        }
        _ => {}
    }
}

/// Start a child, kill it after `delay`, and collect what it acknowledged.
fn run_and_kill(dir: &Path, round: u32, delay: Duration) -> ChildReport {
    let (mut child, lines, reader) = spawn_child(dir, round);
    std::thread::sleep(delay);
    if let Some(status) = child.try_wait().expect("poll the child") {
        panic!(
            "round {round}: the child ended by itself ({status}) before the kill; stderr: {}",
            child_stderr(dir, round)
        );
    }
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    reader.join().expect("stdout reader");
    // Lines written before the kill but read only now still count: they were acknowledged.
    let mut report = ChildReport {
        pid: child.id(),
        ..ChildReport::default()
    };
    for line in lines.try_iter() {
        parse_line(&line, &mut report);
    }
    report
}

fn child_stderr(dir: &Path, round: u32) -> String {
    std::fs::read_to_string(dir.join(format!("child-{round}.stderr"))).unwrap_or_default()
}

/// Interrupted snapshot files left in the snapshot directory by the killed child (the state
/// machine names them `tmp-<pid>-<random>`).
fn interrupted_snapshots(data_dir: &Path, pid: u32) -> usize {
    let prefix = format!("tmp-{pid}-");
    std::fs::read_dir(data_dir.join("raft").join("snapshots"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_sigkills_lose_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    // Every acknowledged write of every round: key -> (value, revision).
    let mut acknowledged: BTreeMap<String, (String, i64)> = BTreeMap::new();
    let mut last_revision = 0i64;
    let (mut killed_opening, mut killed_in_snapshot) = (0, 0);
    let started = Instant::now();

    for round in 0..ROUNDS {
        let round_started = Instant::now();
        let delay = Duration::from_millis(rand::random::<u64>() % MAX_KILL_DELAY_MS);
        tracing::info!(round, ?delay, "--- a child writes until it is killed");
        let report = run_and_kill(dir.path(), round, delay);
        let stderr = child_stderr(dir.path(), round);
        assert!(
            !stderr.contains("panicked"),
            "round {round}: the child panicked: {stderr}"
        );
        if !report.opened {
            killed_opening += 1;
        }
        let mid_snapshot = interrupted_snapshots(&data_dir, report.pid) > 0;
        if mid_snapshot {
            killed_in_snapshot += 1;
        }
        let mut max_acked = last_revision;
        for &(writer, index, revision) in &report.acks {
            assert!(
                revision > last_revision,
                "round {round}: write {writer}/{index} acknowledged at revision {revision}, not above the \
                 {last_revision} recovered before it"
            );
            max_acked = max_acked.max(revision);
            acknowledged.insert(key(round, writer, index), (value(round, writer, index), revision));
        }

        tracing::info!(
            round,
            "--- after the kill, the store recovers with every acknowledged write"
        );
        let reopen_started = Instant::now();
        let store = RaftStore::open(config(&data_dir))
            .await
            .unwrap_or_else(|e| panic!("round {round}: reopen after SIGKILL: {e}"));
        let recovery = reopen_started.elapsed();
        let response = store.range(RangeRequest::prefix("crash/")).await.expect("range");
        let found: BTreeMap<String, &KeyValue> = response
            .kvs
            .iter()
            .map(|kv| (String::from_utf8(kv.key.clone()).expect("utf-8 key"), kv))
            .collect();
        for (key, (value, revision)) in &acknowledged {
            let kv = found
                .get(key)
                .unwrap_or_else(|| panic!("round {round}: acknowledged write {key} is lost"));
            assert_eq!(kv.value, value.as_bytes(), "round {round}: value of {key}");
            assert_eq!(kv.mod_revision, *revision, "round {round}: revision of {key}");
        }
        // Each key is written once, so the revisions of the keys are exactly 2..=revision: no
        // gap, no revision given twice.
        let status = store.status().await.expect("status");
        let revisions: BTreeSet<i64> = response.kvs.iter().map(|kv| kv.mod_revision).collect();
        assert_eq!(
            revisions.len(),
            response.kvs.len(),
            "round {round}: a revision was given twice"
        );
        assert_eq!(
            revisions.iter().copied().collect::<Vec<_>>(),
            (2..=status.revision).collect::<Vec<_>>(),
            "round {round}: the revisions have a gap"
        );
        assert!(
            status.revision >= max_acked && status.revision >= last_revision,
            "round {round}: revision {} went back (acknowledged up to {max_acked}, {last_revision} before)",
            status.revision
        );
        // A writer writes its keys one after the other: the survivors of a round are a prefix.
        for writer in 0..WRITERS {
            let prefix = format!("crash/{round:02}/{writer}/");
            let indexes: Vec<u32> = found
                .keys()
                .filter_map(|k| k.strip_prefix(&prefix))
                .map(|i| i.parse().expect("index"))
                .collect();
            assert_eq!(
                indexes,
                (0..indexes.len() as u32).collect::<Vec<_>>(),
                "round {round}: writer {writer} lost a write before a later one"
            );
        }
        last_revision = status.revision;
        store.shutdown().await.expect("shutdown");
        println!(
            "round {round:2}: killed after {:3} ms ({}{}), {:3} acks, {:5} keys, recovery {:4} ms, round {:4} ms",
            delay.as_millis(),
            if report.opened { "writing" } else { "opening" },
            if mid_snapshot { ", mid-snapshot" } else { "" },
            report.acks.len(),
            found.len(),
            recovery.as_millis(),
            round_started.elapsed().as_millis(),
        );
    }

    // A kill can leave sled's own files unreadable (its `conf` is rewritten in place); the store then
    // rebuilds the state machine from the snapshot and the log, keeping the damaged copy aside.
    let rebuilds = std::fs::read_dir(data_dir.join("raft"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|entry| entry.file_name().to_string_lossy().starts_with("sm.damaged-"))
                .count()
        })
        .unwrap_or(0);
    println!(
        "{ROUNDS} SIGKILL rounds in {:.1} s: {} acknowledged writes all recovered, final revision {last_revision}; \
         {killed_opening} kills during open/recovery, {killed_in_snapshot} during a snapshot, \
         {rebuilds} state machine rebuild(s) from snapshot + log",
        started.elapsed().as_secs_f64(),
        acknowledged.len(),
    );
    assert!(!acknowledged.is_empty(), "no write was ever acknowledged");
}
