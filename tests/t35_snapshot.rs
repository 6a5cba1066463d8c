//! `kuboard admin snapshot save|restore` through the real binary, on both backends: a snapshot taken
//! from a running replica (embedded) or from etcd directly, restored into an empty store that a new
//! replica then serves; a restore into a store that holds keys is refused and changes nothing.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{etcd_entries, run_to_completion, Finished, Replica, ADMIN_PASSWORD};
use kuboard_storage::testing::EtcdCluster;

const START_TIMEOUT: Duration = Duration::from_secs(30);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
const NEW_PASSWORD: &str = "Snapshot-kept-Pa55word";

fn phase(name: &str) {
    eprintln!("--- phase: {name}");
}

fn admin(args: &[&str], env: &[(&str, &str)]) -> Finished {
    let mut full = vec!["admin", "snapshot"];
    full.extend_from_slice(args);
    run_to_completion(&full, env, COMMAND_TIMEOUT)
}

fn assert_success(finished: &Finished, what: &str) {
    assert!(
        finished.status.success(),
        "{what} failed with {}: stdout {} stderr {}",
        finished.status,
        finished.stdout,
        finished.stderr
    );
}

fn path_text(path: &Path) -> String {
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_round_trip() {
    let root = tempfile::tempdir().expect("create temp dir");
    let logs = tempfile::tempdir().expect("create log dir");
    let snapshot_file = root.path().join("backup").join("kuboard.snapshot");
    std::fs::create_dir_all(snapshot_file.parent().expect("has a parent")).expect("create backup dir");
    let snapshot_text = path_text(&snapshot_file);

    let mut source = Replica::start(&root.path().join("source"), logs.path());
    source.wait_ready_within(START_TIMEOUT).await;
    phase("admin changes the password on the source replica");
    let old_session = source.change_admin_password(NEW_PASSWORD).await;

    phase("a wrong password and an anonymous request are refused, and no file is written");
    let server = source.url("");
    let refused = admin(
        &[
            "save",
            &snapshot_text,
            "--server",
            &server,
            "--password",
            "wrong-password",
        ],
        &[],
    );
    assert_eq!(refused.status.code(), Some(1), "{}", refused.stderr);
    assert!(refused.stderr.contains("refused the login"), "{}", refused.stderr);
    let (code, _) = source.get_anonymous("/kuboard-api/system/snapshot").await;
    assert_eq!(code, 401);
    assert!(!snapshot_file.exists());

    phase("save through the running replica with the admin password");
    let saved = admin(
        &["save", &snapshot_text, "--server", &server],
        &[("KUBOARD_ADMIN_PASSWORD", NEW_PASSWORD)],
    );
    assert_success(&saved, "save");
    eprintln!("{}", saved.stdout.trim());
    assert!(saved.stdout.contains("of the raft store"), "{}", saved.stdout);
    let bytes = std::fs::read(&snapshot_file).expect("read the snapshot");
    assert_eq!(&bytes[..8], b"KBDSNAP\0");

    phase("save again with a bearer token replaces the file atomically");
    let saved = admin(
        &["save", &snapshot_text, "--server", &server, "--token", &old_session],
        &[],
    );
    assert_success(&saved, "save with a token");
    let leftovers = std::fs::read_dir(snapshot_file.parent().expect("has a parent"))
        .expect("list backup dir")
        .count();
    assert_eq!(leftovers, 1, "no temporary file is left behind");
    source.stop();

    phase("restore into an empty data dir, offline");
    let target_dir = root.path().join("target");
    let target_text = path_text(&target_dir);
    let restored = admin(&["restore", &snapshot_text], &[("KUBOARD_DATA_DIR", &target_text)]);
    assert_success(&restored, "restore");
    eprintln!("{}", restored.stdout.trim());
    assert!(restored.stdout.contains("were left out"), "{}", restored.stdout);

    phase("a replica on the restored data dir: the changed password works, sessions are gone");
    let mut target = Replica::start(&target_dir, logs.path());
    target.wait_ready_within(START_TIMEOUT).await;
    assert_eq!(target.login("admin", ADMIN_PASSWORD).await.status(), 401);
    let token = target.login_token("admin", NEW_PASSWORD).await;
    let (code, me) = target.get_json("/kuboard-api/auth/me", &token).await;
    assert_eq!(code, 200, "{me}");
    assert_eq!(me["must_change_password"], false, "{me}");
    let (code, _) = target.get_json("/kuboard-api/auth/me", &old_session).await;
    assert_eq!(code, 401, "a session of the source store is not restored");

    phase("restore into a data dir that holds a store is refused and changes nothing");
    let listing_before = list_tree(&target_dir.join("raft"));
    let refused = admin(&["restore", &snapshot_text], &[("KUBOARD_DATA_DIR", &target_text)]);
    assert_eq!(refused.status.code(), Some(1), "{}", refused.stderr);
    assert!(refused.stderr.contains("already holds a store"), "{}", refused.stderr);
    assert_eq!(list_tree(&target_dir.join("raft")), listing_before);
    assert_eq!(target.get_json("/kuboard-api/auth/me", &token).await.0, 200);

    phase("a damaged file is refused before anything is written");
    let mut damaged = bytes.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x01;
    let damaged_file = root.path().join("damaged.snapshot");
    std::fs::write(&damaged_file, &damaged).expect("write damaged file");
    let empty_dir = root.path().join("empty");
    let refused = admin(
        &["restore", &path_text(&damaged_file)],
        &[("KUBOARD_DATA_DIR", &path_text(&empty_dir))],
    );
    assert_eq!(refused.status.code(), Some(1), "{}", refused.stderr);
    assert!(refused.stderr.contains("checksum does not match"), "{}", refused.stderr);
    assert!(!empty_dir.join("raft").exists());

    phase("save of the embedded store without --server is a usage error");
    let usage = admin(&["save", &snapshot_text], &[("KUBOARD_DATA_DIR", &target_text)]);
    assert_eq!(usage.status.code(), Some(2), "{}", usage.stderr);
    assert!(usage.stderr.contains("--server"), "{}", usage.stderr);
    target.stop();
}

/// Every file below `directory` with its size, for "nothing changed" checks.
fn list_tree(directory: &Path) -> Vec<(String, u64)> {
    let mut files = Vec::new();
    let mut pending = vec![directory.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).expect("list directory") {
            let entry = entry.expect("directory entry");
            let metadata = entry.metadata().expect("metadata");
            if metadata.is_dir() {
                pending.push(entry.path());
            } else {
                files.push((path_text(&entry.path()), metadata.len()));
            }
        }
    }
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_etcd_round_trip() {
    let source_etcd = EtcdCluster::start(1).await.expect("start the source etcd");
    let target_etcd = EtcdCluster::start(1).await.expect("start the target etcd");
    let source_endpoint = source_etcd.client_endpoint(0).to_string();
    let target_endpoint = target_etcd.client_endpoint(0).to_string();
    let root = tempfile::tempdir().expect("create temp dir");
    let logs = tempfile::tempdir().expect("create log dir");
    let snapshot_text = path_text(&root.path().join("etcd.snapshot"));

    phase("a replica on the source etcd; admin changes the password");
    let mut source = Replica::start_with(
        &root.path().join("source"),
        logs.path(),
        &[("KUBOARD_ETCD_ENDPOINTS", source_endpoint.as_str())],
    );
    source.wait_ready_within(START_TIMEOUT).await;
    source.change_admin_password(NEW_PASSWORD).await;

    phase("save from etcd directly, with the same settings as serve");
    let saved = admin(
        &["save", &snapshot_text],
        &[("KUBOARD_ETCD_ENDPOINTS", source_endpoint.as_str())],
    );
    assert_success(&saved, "save from etcd");
    eprintln!("{}", saved.stdout.trim());
    assert!(saved.stdout.contains("of the etcd store"), "{}", saved.stdout);
    source.stop();

    phase("restore into an empty prefix of another etcd that holds other keys");
    let mut target_client = etcd_client::Client::connect([target_endpoint.as_str()], None)
        .await
        .expect("connect to the target etcd");
    target_client
        .put("/kuboard/users/admin", "another kuboard's admin", None)
        .await
        .expect("write a key under the default prefix");
    let target_env = [
        ("KUBOARD_ETCD_ENDPOINTS", target_endpoint.as_str()),
        ("KUBOARD_ETCD_PREFIX", "/restored/"),
    ];
    let restored = admin(&["restore", &snapshot_text], &target_env);
    assert_success(&restored, "restore into etcd");
    eprintln!("{}", restored.stdout.trim());

    phase("a replica on the restored prefix: the changed password works");
    let mut target = Replica::start_with(&root.path().join("target"), logs.path(), &target_env);
    target.wait_ready_within(START_TIMEOUT).await;
    assert_eq!(target.login("admin", ADMIN_PASSWORD).await.status(), 401);
    target.login_token("admin", NEW_PASSWORD).await;
    target.stop();

    phase("restore into the non-empty prefix is refused and changes nothing");
    let before = etcd_entries(&mut target_client, b"").await;
    let revision_before = target_client
        .get("/", None)
        .await
        .expect("read the revision")
        .header()
        .expect("a header")
        .revision();
    let refused = admin(&["restore", &snapshot_text], &target_env);
    assert_eq!(refused.status.code(), Some(1), "{}", refused.stderr);
    assert!(refused.stderr.contains("not empty"), "{}", refused.stderr);
    assert_eq!(etcd_entries(&mut target_client, b"").await, before);
    let revision_after = target_client
        .get("/", None)
        .await
        .expect("read the revision")
        .header()
        .expect("a header")
        .revision();
    assert_eq!(revision_after, revision_before, "no write reached etcd");
    let foreign = etcd_entries(&mut target_client, b"/kuboard/").await;
    assert_eq!(foreign.len(), 1);
    assert_eq!(foreign[0].1, b"another kuboard's admin");
}
