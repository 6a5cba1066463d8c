//! What a replica does on start with a damaged WAL (`data_dir/raft/wal/r-*.wal`):
//!
//! - the last record cut short, as a crash in the middle of its write leaves it (before its
//!   fsync, so before anything was acknowledged from it): cut off, with a WARN line naming the
//!   file and the bytes dropped, and every earlier write is kept;
//! - garbage bytes or a flipped bit under acknowledged records: the start stops with
//!   `OpenError::Corrupt` naming the chunk file and the byte offset, and the files are left as
//!   they were (raft-log on its own would silently cut the log at the damage).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use kuboard_raft::{OpenError, RaftStore, RaftStoreConfig};
use kuboard_storage::*;

mod common;
use common::single_member_config;

fn config(data_dir: &Path) -> RaftStoreConfig {
    single_member_config(data_dir, 1000)
}

/// Every log line of this test binary (the store logs from blocking threads, so a thread-local
/// subscriber would miss them). Tests tell their lines apart by their own temporary paths.
fn captured_log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || LogWriter(writer.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("first subscriber of this test binary");
        log
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_lines_mentioning(needle: &str) -> Vec<String> {
    let log = captured_log();
    let text = String::from_utf8_lossy(&log.lock().expect("log buffer lock")).into_owned();
    text.lines().filter(|l| l.contains(needle)).map(str::to_owned).collect()
}

fn key(index: u32) -> String {
    format!("damage/{index:04}")
}

fn value(index: u32) -> String {
    format!("value {index}")
}

async fn write_keys(data_dir: &Path, indexes: std::ops::Range<u32>) {
    let store = RaftStore::open(config(data_dir)).await.expect("open");
    for index in indexes {
        store.put(PutRequest::new(key(index), value(index))).await.expect("put");
    }
    store.shutdown().await.expect("shutdown");
}

async fn assert_keys(store: &RaftStore, indexes: std::ops::Range<u32>) {
    for index in indexes {
        let response = store.range(RangeRequest::key(key(index))).await.expect("range");
        assert_eq!(response.kvs.len(), 1, "{} is lost", key(index));
        assert_eq!(response.kvs[0].value, value(index).as_bytes());
    }
}

/// The one WAL chunk file of a data directory.
fn wal_chunk(data_dir: &Path) -> PathBuf {
    let chunks: Vec<PathBuf> = std::fs::read_dir(data_dir.join("raft").join("wal"))
        .expect("list the WAL")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    assert_eq!(chunks.len(), 1, "one chunk expected: {chunks:?}");
    chunks[0].clone()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_last_wal_record_is_repaired_on_start() {
    captured_log();
    let base = tempfile::tempdir().expect("tempdir");
    let live = base.path().join("live");
    let crashed = base.path().join("crashed");

    tracing::info!("--- ten acknowledged writes; the state at that point is the crashed replica's");
    write_keys(&live, 0..10).await;
    copy_dir(&live, &crashed);

    tracing::info!("--- more log records reach the WAL; the crash tears the last one");
    write_keys(&live, 10..11).await;
    let full_wal = std::fs::read(wal_chunk(&live)).expect("read the WAL");
    let crashed_chunk = wal_chunk(&crashed);
    let torn_len = full_wal.len() - 3;
    std::fs::write(&crashed_chunk, &full_wal[..torn_len]).expect("write the torn WAL");

    tracing::info!("--- the start repairs the tail and logs it; every earlier write is there");
    let store = RaftStore::open(config(&crashed))
        .await
        .expect("a torn last record does not stop the start");
    assert_keys(&store, 0..10).await;
    let lines = log_lines_mentioning(&crashed_chunk.display().to_string());
    assert_eq!(lines.len(), 1, "one log line about the repair: {lines:?}");
    assert!(
        lines[0].contains("WARN") && lines[0].contains("torn record"),
        "{}",
        lines[0]
    );
    // The line says where the torn record started and how many bytes were dropped: together the
    // length of the torn file.
    let field = |name: &str| -> usize {
        lines[0]
            .split(&format!("{name}="))
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("the line has {name}: {}", lines[0]))
    };
    let (offset, dropped) = (field("offset"), field("dropped_bytes"));
    assert!(dropped > 3 && offset > 0, "{}", lines[0]);
    assert_eq!(offset + dropped, torn_len, "{}", lines[0]);

    tracing::info!("--- the repaired replica takes writes and keeps them over a restart");
    store
        .put(PutRequest::new(key(20), value(20)))
        .await
        .expect("put after repair");
    store.shutdown().await.expect("shutdown");
    let store = RaftStore::open(config(&crashed)).await.expect("reopen");
    assert_keys(&store, 0..10).await;
    assert_keys(&store, 20..21).await;
    store.shutdown().await.expect("shutdown");
}

/// Damage the WAL of a replica with 30 acknowledged writes by `damage(bytes)` and check that the
/// start stops with a clear error, changing nothing.
async fn assert_start_refused(damage: impl FnOnce(&mut Vec<u8>) -> usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    write_keys(dir.path(), 0..30).await;
    let chunk = wal_chunk(dir.path());
    let mut bytes = std::fs::read(&chunk).expect("read the WAL");
    let damaged_at = damage(&mut bytes);
    std::fs::write(&chunk, &bytes).expect("write the damaged WAL");

    let error = RaftStore::open(config(dir.path()))
        .await
        .err()
        .expect("a WAL damaged under acknowledged records stops the start");
    let OpenError::Corrupt { path, message } = &error else {
        panic!("expected OpenError::Corrupt, got {error:?}");
    };
    assert!(path.starts_with(dir.path()), "{path:?}");
    assert!(
        message.contains(&chunk.display().to_string()),
        "names the file: {message}"
    );
    let offset: usize = message
        .split("byte offset ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("names the offset: {message}"));
    assert!(
        offset <= damaged_at && damaged_at - offset < 512,
        "offset {offset} is that of the record holding byte {damaged_at}"
    );
    assert_eq!(
        std::fs::read(&chunk).expect("read the WAL"),
        bytes,
        "a refused WAL is left as it was"
    );
    println!("refused start: {error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_in_the_middle_of_the_wal_stops_the_start() {
    assert_start_refused(|bytes| {
        let at = bytes.len() / 2;
        let garbage = b"\xde\xad\xbe\xef garbage, not a record";
        bytes[at..at + garbage.len()].copy_from_slice(garbage);
        at
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_bit_in_an_earlier_wal_record_stops_the_start() {
    assert_start_refused(|bytes| {
        let at = bytes.len() / 3;
        bytes[at] ^= 0x04;
        at
    })
    .await;
}
