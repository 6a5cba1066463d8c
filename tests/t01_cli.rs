//! The command line: `kuboard version`, and configuration errors that must stop `kuboard serve`
//! with exit code 2 and one line naming the variable, the value and what is expected.

mod common;

use std::time::Duration;

use common::{free_port, run_to_completion};

#[test]
fn version_prints_version_and_commit() {
    tracing_phase("kuboard version");
    let finished = run_to_completion(&["version"], &[], Duration::from_secs(10));
    assert!(finished.status.success(), "kuboard version failed: {}", finished.stderr);
    assert!(
        finished.stdout.contains(env!("CARGO_PKG_VERSION")),
        "version output should name version {}: {}",
        env!("CARGO_PKG_VERSION"),
        finished.stdout
    );
}

/// Run `kuboard serve` with `env` and check that it stops with exit code 2 and an error line that
/// mentions every string of `expected_in_error`.
fn check_config_error(env: &[(&str, &str)], expected_in_error: &[&str]) {
    let data_dir = tempfile::tempdir().expect("create data dir");
    let data_dir_text = data_dir.path().to_string_lossy().to_string();
    let port = free_port().to_string();
    let raft_port = free_port().to_string();
    let mut full_env: Vec<(&str, &str)> = vec![
        ("KUBOARD_SERVER_ADDR", "127.0.0.1"),
        ("KUBOARD_SERVER_PORT", &port),
        ("KUBOARD_RAFT_ADDR", "127.0.0.1"),
        ("KUBOARD_RAFT_PORT", &raft_port),
        ("KUBOARD_DATA_DIR", &data_dir_text),
    ];
    // Later entries win: the case under test overrides the defaults above.
    full_env.retain(|(key, _)| !env.iter().any(|(k, _)| k == key));
    full_env.extend_from_slice(env);

    let finished = run_to_completion(&["serve"], &full_env, Duration::from_secs(15));
    assert_eq!(
        finished.status.code(),
        Some(2),
        "env {env:?} should stop with exit code 2; stderr:\n{}",
        finished.stderr
    );
    let error_lines: Vec<&str> = finished.stderr.lines().filter(|line| line.contains("error")).collect();
    assert!(
        !error_lines.is_empty(),
        "env {env:?}: no error line in stderr:\n{}",
        finished.stderr
    );
    let line = error_lines
        .iter()
        .find(|line| expected_in_error.iter().all(|expected| line.contains(expected)))
        .unwrap_or_else(|| {
            panic!(
                "env {env:?}: no single error line mentions all of {expected_in_error:?}; stderr:\n{}",
                finished.stderr
            )
        });
    assert!(!line.is_empty());
}

#[test]
fn bad_server_port_stops_with_exit_2() {
    tracing_phase("KUBOARD_SERVER_PORT=abc");
    check_config_error(&[("KUBOARD_SERVER_PORT", "abc")], &["KUBOARD_SERVER_PORT", "abc"]);
    check_config_error(&[("KUBOARD_SERVER_PORT", "70000")], &["KUBOARD_SERVER_PORT", "70000"]);
}

#[test]
fn garbage_raft_peers_stop_with_exit_2() {
    tracing_phase("KUBOARD_RAFT_PEERS=garbage");
    check_config_error(&[("KUBOARD_RAFT_PEERS", "garbage")], &["KUBOARD_RAFT_PEERS", "garbage"]);
    check_config_error(&[("KUBOARD_RAFT_PEERS", "1=a:1,x=b:2")], &["KUBOARD_RAFT_PEERS"]);
}

#[test]
fn unwritable_data_dir_stops_with_exit_2() {
    tracing_phase("unwritable KUBOARD_DATA_DIR");
    // A path below a regular file can be neither created nor written, even by root (CI runs as root,
    // so permission bits alone would not stop it).
    let dir = tempfile::tempdir().expect("create temp dir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").expect("write a plain file");
    let data_dir = file.join("data");
    let data_dir_text = data_dir.to_string_lossy().to_string();
    check_config_error(
        &[("KUBOARD_DATA_DIR", &data_dir_text)],
        &["KUBOARD_DATA_DIR", &data_dir_text],
    );
    assert!(!data_dir.exists(), "nothing may be created for a rejected data dir");
}

#[test]
fn other_bad_values_stop_with_exit_2() {
    tracing_phase("other invalid variables");
    check_config_error(&[("KUBOARD_RAFT_PORT", "-1")], &["KUBOARD_RAFT_PORT", "-1"]);
    check_config_error(
        &[("KUBOARD_AUDIT_POLICY", "sometimes")],
        &["KUBOARD_AUDIT_POLICY", "sometimes"],
    );
    check_config_error(
        &[("KUBOARD_SERVER_LOGRUS_LEVEL", "loud")],
        &["KUBOARD_SERVER_LOGRUS_LEVEL", "loud"],
    );
    check_config_error(
        &[
            ("KUBOARD_RAFT_PEERS", "1=127.0.0.1:1,2=127.0.0.1:2,3=127.0.0.1:3"),
            ("KUBOARD_RAFT_NODE_ID", "1"),
        ],
        &["KUBOARD_CLUSTER_SECRET"],
    );
    check_config_error(&[("KUBOARD_RAFT_NODE_ID", "0")], &["KUBOARD_RAFT_NODE_ID", "0"]);
}

fn tracing_phase(phase: &str) {
    eprintln!("--- phase: {phase}");
}
