//! What a replica does on start when sled finds the state machine's files damaged
//! (`data_dir/raft/sm/`): the log and the snapshots are the source of truth, so the damaged copy is
//! set aside (`raft/sm.damaged-<ms>`), a new state machine starts from the latest snapshot, and the
//! log entries after it are applied again. Nothing acknowledged is lost and revisions are unchanged.
//!
//! sled writes its `conf` file in place without a rename, so a kill at the wrong moment can leave it
//! unreadable; a later open then fails with "Read corrupted data". The tests damage it that way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kuboard_raft::{RaftStore, RaftStoreConfig};
use kuboard_storage::*;

mod common;
use common::single_member_config;

const SNAPSHOT_THRESHOLD: u64 = 200;

fn config(data_dir: &Path) -> RaftStoreConfig {
    single_member_config(data_dir, SNAPSHOT_THRESHOLD)
}

fn key(index: u32) -> String {
    format!("sm-damage/{index:04}")
}

fn value(index: u32) -> String {
    format!("value {index}")
}

/// Writes the keys `indexes` and returns every key's (value, mod revision) and the store revision.
async fn write_keys(data_dir: &Path, indexes: std::ops::Range<u32>) -> (BTreeMap<String, (Vec<u8>, i64)>, i64) {
    let store = RaftStore::open(config(data_dir)).await.expect("open");
    for index in indexes {
        store.put(PutRequest::new(key(index), value(index))).await.expect("put");
    }
    let state = read_state(&store).await;
    store.shutdown().await.expect("shutdown");
    state
}

async fn read_state(store: &RaftStore) -> (BTreeMap<String, (Vec<u8>, i64)>, i64) {
    let response = store.range(RangeRequest::prefix("sm-damage/")).await.expect("range");
    let keys = response
        .kvs
        .into_iter()
        .map(|kv| {
            (
                String::from_utf8(kv.key).expect("utf-8 key"),
                (kv.value, kv.mod_revision),
            )
        })
        .collect();
    let revision = store.status().await.expect("status").revision;
    (keys, revision)
}

/// Makes sled refuse the state machine: its `conf` file holds a line it cannot parse.
fn damage_sled_conf(data_dir: &Path) {
    let conf = data_dir.join("raft").join("sm").join("conf");
    assert!(conf.exists(), "sled keeps its settings in {}", conf.display());
    std::fs::write(&conf, b"segment_size 524288 torn\n\x00\x00\x00\x00").expect("damage the conf file");
}

fn damaged_copies(data_dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(data_dir.join("raft"))
        .expect("list raft/")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("sm.damaged-"))
        })
        .collect()
}

fn snapshot_files(data_dir: &Path) -> usize {
    std::fs::read_dir(data_dir.join("raft").join("snapshots"))
        .expect("list snapshots/")
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|entry| entry.path().extension().is_some_and(|ext| ext == "snap"))
        })
        .count()
}

async fn assert_rebuilt(data_dir: &Path, expected: &BTreeMap<String, (Vec<u8>, i64)>, revision: i64) {
    damage_sled_conf(data_dir);
    let store = RaftStore::open(config(data_dir))
        .await
        .expect("a damaged state machine is rebuilt, not a reason to stop");
    let (found, found_revision) = read_state(&store).await;
    assert_eq!(found.len(), expected.len(), "every key is back");
    assert!(&found == expected, "every key has its value and mod revision again");
    assert!(
        found_revision >= revision,
        "revision {found_revision} went back from {revision}"
    );
    assert_eq!(damaged_copies(data_dir).len(), 1, "the damaged copy is kept aside");

    tracing::info!("--- the rebuilt store takes writes and keeps them over a restart");
    store
        .put(PutRequest::new(key(9999), value(9999)))
        .await
        .expect("put after the rebuild");
    store.shutdown().await.expect("shutdown");
    let store = RaftStore::open(config(data_dir)).await.expect("reopen");
    let (after, _) = read_state(&store).await;
    assert_eq!(after.len(), expected.len() + 1);
    assert_eq!(after[&key(9999)].0, value(9999).as_bytes());
    store.shutdown().await.expect("shutdown");
    println!(
        "rebuilt: {} keys at revision {found_revision} recovered from {} snapshot file(s) and the log",
        found.len(),
        snapshot_files(data_dir)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_state_machine_is_rebuilt_from_the_snapshot_and_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Enough writes for snapshots (and a log purged behind them), plus entries after the last one.
    let (expected, revision) = write_keys(dir.path(), 0..(SNAPSHOT_THRESHOLD as u32 * 3 + 57)).await;
    assert!(snapshot_files(dir.path()) >= 1, "a snapshot exists");
    assert_rebuilt(dir.path(), &expected, revision).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_state_machine_without_a_snapshot_is_rebuilt_from_the_whole_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (expected, revision) = write_keys(dir.path(), 0..40).await;
    assert_eq!(snapshot_files(dir.path()), 0, "no snapshot yet");
    assert_rebuilt(dir.path(), &expected, revision).await;
}
