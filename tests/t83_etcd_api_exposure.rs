//! The etcd v3 API lets any client that reaches it read and write every key (forged sessions
//! included): `kuboard serve` refuses to bind it beyond loopback unless clients must present a
//! certificate, stopping with exit code 2 and one line naming the setting, like any other
//! configuration error, before anything is bound.

mod common;

use std::time::Duration;

use common::{free_port, run_to_completion};

#[test]
fn an_etcd_api_beyond_loopback_without_client_certificates_stops_the_start_with_exit_2() {
    let data = tempfile::tempdir().expect("a data dir");
    let data_dir = data.path().display().to_string();
    let port = free_port().to_string();
    let raft_port = free_port().to_string();
    let api_port = free_port().to_string();
    let finished = run_to_completion(
        &["serve"],
        &[
            ("KUBOARD_SERVER_ADDR", "127.0.0.1"),
            ("KUBOARD_SERVER_PORT", &port),
            ("KUBOARD_RAFT_ADDR", "127.0.0.1"),
            ("KUBOARD_RAFT_PORT", &raft_port),
            ("KUBOARD_DATA_DIR", &data_dir),
            ("KUBOARD_ETCD_API_PORT", &api_port),
            // An address of the benchmarking range, which no test network here has: a build that
            // does not refuse it fails to bind it (exit 1) and so never listens beyond loopback.
            ("KUBOARD_ETCD_API_ADDR", "198.18.0.1"),
        ],
        Duration::from_secs(15),
    );
    assert_eq!(
        finished.status.code(),
        Some(2),
        "an etcd API on 198.18.0.1 without client certificates must stop the start with exit code 2; stderr:\n{}",
        finished.stderr
    );
    let line = finished
        .stderr
        .lines()
        .find(|line| line.contains("KUBOARD_ETCD_API_ADDR"))
        .unwrap_or_else(|| panic!("no line names KUBOARD_ETCD_API_ADDR; stderr:\n{}", finished.stderr));
    assert!(
        line.contains("198.18.0.1") && line.contains("loopback") && line.contains("KUBOARD_ETCD_API_CLIENT_CA"),
        "{line}"
    );
    assert_eq!(
        std::fs::read_dir(data.path())
            .map(|entries| entries.count())
            .unwrap_or(0),
        0,
        "nothing was written to the data dir before the refusal"
    );
}
