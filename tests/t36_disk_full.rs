//! A full disk under one member of a three-member group. The member's log worker stops at the
//! first write it cannot make (fail-stop); the replica must then stop looking alive — `/healthz`
//! refuses and the process exits with an error that names the cause — so that a supervisor
//! restarts it. The other two carry on; once space is freed and the member restarted it catches up
//! with every acknowledged write.
//!
//! The member's data directory is put on a size-limited tmpfs, which needs root (as CI runs).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{free_port, Group};

/// A tmpfs mounted over a directory for the test's life; unmounted (lazily: the replica may still
/// hold files there) when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, megabytes: u32) -> Tmpfs {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(path)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mount a {megabytes} MB tmpfs on {} failed ({status}): this test needs root, as CI runs it",
            path.display()
        );
        Tmpfs {
            path: path.to_path_buf(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .expect("run cp");
    assert!(status.success(), "copy {} to {}", from.display(), to.display());
}

/// Fills the filesystem holding `path` until it refuses a write; returns the filler file.
fn fill_filesystem(directory: &Path) -> PathBuf {
    let filler = directory.join("filler");
    let mut file = std::fs::File::create(&filler).expect("create the filler file");
    let chunk = vec![0u8; 1 << 20];
    let mut written = 0usize;
    loop {
        match file.write_all(&chunk).and_then(|()| file.sync_all()) {
            Ok(()) => written += chunk.len(),
            Err(error) if error.raw_os_error() == Some(28) => break,
            Err(error) => panic!("fill {}: {error}", filler.display()),
        }
        assert!(written < 1 << 30, "the tmpfs never filled");
    }
    // Whatever fits below a whole chunk, byte blocks at a time.
    let small = vec![0u8; 4096];
    while file.write_all(&small).and_then(|()| file.sync_all()).is_ok() {}
    filler
}

/// Puts `key` through `client`, retrying while the group elects (a put that was refused or whose
/// answer was lost is sent again: the value is the same, so a repeat is harmless).
async fn put_acknowledged(client: &mut etcd_client::Client, key: &str, value: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match client.put(key, value, None).await {
            Ok(_) => return,
            Err(error) if Instant::now() < deadline => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("put {key} was not acknowledged within 20 s by the two healthy members: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_disk_fills_stops_being_alive_and_catches_up_once_space_is_freed() {
    let etcd_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut group = Group::start_with_env(3, &|index| {
        vec![("KUBOARD_ETCD_API_PORT".to_string(), etcd_ports[index].to_string())]
    });
    group.wait_all_ready(Duration::from_secs(60)).await;

    // Member 3's data moves onto a small filesystem of its own.
    let full = 2;
    group.replicas[full].stop();
    let data_dir = group.replicas[full].data_dir.clone();
    let saved = tempfile::tempdir().expect("a place to keep member 3's data");
    copy_tree(&data_dir, saved.path());
    let _tmpfs = Tmpfs::mount(&data_dir, 64);
    copy_tree(saved.path(), &data_dir);
    group.replicas[full].restart();
    group.replicas[full].wait_ready(Duration::from_secs(60)).await;

    let filler = fill_filesystem(&data_dir);
    let mut client = etcd_client::Client::connect([format!("127.0.0.1:{}", etcd_ports[0])], None)
        .await
        .expect("connect to member 1's etcd API");
    let value = vec![b'v'; 1024];
    let mut acknowledged = Vec::new();
    for index in 0..100 {
        let key = format!("/disk-full/{index:04}");
        put_acknowledged(&mut client, &key, &value).await;
        acknowledged.push(key);
    }

    // The member's log could not take those entries: it must stop looking alive, and exit.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = group.replicas[full].exited() {
            break status;
        }
        let healthz = group.replicas[full].get_anonymous("/healthz").await.0;
        assert!(
            Instant::now() < deadline,
            "member 3 still runs 20 s after its disk filled (its /healthz answers {healthz}); log:\n{}",
            group.replicas[full].log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        !status.success(),
        "member 3 exited with success after a disk error: {status}"
    );
    let log = group.replicas[full].log();
    assert!(
        log.contains("the store stopped after a disk error") && log.contains("No space left on device"),
        "member 3's log does not name the cause:\n{log}"
    );

    // The other two carry on.
    for index in 100..200 {
        let key = format!("/disk-full/{index:04}");
        put_acknowledged(&mut client, &key, &value).await;
        acknowledged.push(key);
    }

    // Space freed, member 3 restarted: it catches up with every acknowledged write.
    std::fs::remove_file(&filler).expect("remove the filler file");
    group.replicas[full].kill9();
    group.replicas[full].restart();
    group.replicas[full].wait_ready(Duration::from_secs(60)).await;
    let mut own = etcd_client::Client::connect([format!("127.0.0.1:{}", etcd_ports[full])], None)
        .await
        .expect("connect to member 3's etcd API");
    let answer = own
        .get("/disk-full/", Some(etcd_client::GetOptions::new().with_prefix()))
        .await
        .expect("a linearizable read through member 3");
    let keys: Vec<String> = answer
        .kvs()
        .iter()
        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
        .collect();
    assert_eq!(keys, acknowledged, "member 3 after its restart");
    assert!(answer.kvs().iter().all(|kv| kv.value() == value.as_slice()));
    // A serializable read answers from member 3's own state machine: caught up, not forwarded.
    let local = own
        .get(
            "/disk-full/",
            Some(
                etcd_client::GetOptions::new()
                    .with_prefix()
                    .with_count_only()
                    .with_serializable(),
            ),
        )
        .await
        .expect("a serializable read on member 3");
    assert_eq!(local.count(), 200, "member 3's own state machine after catching up");
}
