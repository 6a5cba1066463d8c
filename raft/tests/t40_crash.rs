//! Durability across a real crash: a child process writes keys one after the other and reports each
//! acknowledged write; the parent kills it with SIGKILL in the middle, reopens the store and checks
//! that every acknowledged write is there (and that the revision counts them exactly).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kuboard_raft::{RaftStore, RaftStoreConfig};
use kuboard_storage::*;

/// Set in the child's environment: the data directory it writes to.
const CHILD_DIR_VAR: &str = "KUBOARD_RAFT_CRASH_CHILD_DIR";
/// How many writes the parent waits for before killing the child.
const KILL_AFTER_ACKS: u64 = 40;
/// How many writes the child attempts at most (it is killed long before).
const CHILD_WRITES: u64 = 100_000;

fn config(data_dir: &Path) -> RaftStoreConfig {
    RaftStoreConfig {
        node_id: 1,
        data_dir: data_dir.to_owned(),
        peers: BTreeMap::from([(1, "127.0.0.1:10082".to_owned())]),
        peer_listen_addr: "127.0.0.1:0".parse().expect("literal address"),
        cluster_secret: None,
        heartbeat_ms: 50,
        election_timeout_ms: 300,
        snapshot_threshold: 25,
    }
}

/// The child's side: only does something when started by the parent test below.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_DIR_VAR) else {
        return;
    };
    let store = RaftStore::open(config(Path::new(&dir)))
        .await
        .expect("child opens the store");
    for index in 0..CHILD_WRITES {
        let response = store
            .put(PutRequest::new(format!("crash/{index:08}"), format!("{index}")))
            .await;
        let revision = response.expect("child write").header.revision;
        // One line per acknowledged write; the parent reads them as they come.
        println!("ACK {index} {revision}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary path");

    tracing::info!("--- the child writes until it is killed");
    let mut child = Command::new(exe)
        .args(["--exact", "crash_child_writer", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_VAR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the child writer");
    let stdout = child.stdout.take().expect("child stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel::<(u64, i64)>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut parts = line.split_whitespace();
            if parts.next() != Some("ACK") {
                continue;
            }
            let index = parts.next().and_then(|p| p.parse().ok()).expect("ack index");
            let revision = parts.next().and_then(|p| p.parse().ok()).expect("ack revision");
            if tx.send((index, revision)).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last_ack = None;
    while last_ack.is_none_or(|(index, _)| index + 1 < KILL_AFTER_ACKS) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(remaining) {
            Ok(ack) => last_ack = Some(ack),
            Err(e) => {
                let _ = child.kill();
                panic!("the child stopped acknowledging writes ({e}) after {last_ack:?}");
            }
        }
    }
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    reader.join().expect("stdout reader");
    // Acks printed before the kill but not yet read still count: they were acknowledged.
    while let Ok(ack) = rx.try_recv() {
        last_ack = Some(ack);
    }
    let (last_index, last_revision) = last_ack.expect("at least one ack");

    tracing::info!("--- after the crash, every acknowledged write is there");
    let store = RaftStore::open(config(dir.path())).await.expect("reopen after SIGKILL");
    let response = store.range(RangeRequest::prefix("crash/")).await.expect("range");
    assert!(
        response.count as u64 > last_index,
        "{} keys found, but write #{last_index} was acknowledged",
        response.count
    );
    for (position, kv) in response.kvs.iter().enumerate() {
        assert_eq!(
            kv.key,
            format!("crash/{position:08}").into_bytes(),
            "no gap in the written keys"
        );
    }
    let status = store.status().await.expect("status");
    assert!(
        status.revision >= last_revision,
        "revision {} went back from {last_revision}",
        status.revision
    );
    assert_eq!(status.revision, 1 + response.count, "one revision per surviving write");
    store.shutdown().await.expect("shutdown");
}
