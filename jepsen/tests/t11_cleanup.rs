//! `kuboard-jepsen cleanup` removes what a killed run leaves behind: namespaces (and the processes in
//! them), links and the host FORWARD rule. The test scopes the cleanup to its own network (`--id`) so
//! that suites running at the same time keep theirs.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kuboard_jepsen::net::Network;

const JEPSEN_BINARY: &str = env!("CARGO_BIN_EXE_kuboard-jepsen");

#[test]
fn cleanup_removes_a_leaked_network_and_kills_its_processes() {
    let network = Network::create(2).expect("create two hosts (the suite needs root, iproute2, iptables)");
    let id = network.id().to_string();
    let namespace = network.hosts()[0].namespace.clone();
    let listen = format!("{}:7008", network.hosts()[0].ip);
    let mut server = network
        .command(0, JEPSEN_BINARY)
        .args(["echo-server", "--listen", &listen])
        .stdout(Stdio::null())
        .spawn()
        .expect("start an echo server in n1");
    // A run killed with SIGKILL never drops its network.
    std::mem::forget(network);

    // Only this test's network: other suites (or a benchmark) may be running on the machine.
    let output = Command::new(JEPSEN_BINARY)
        .args(["cleanup", "--id", &id])
        .output()
        .expect("run cleanup");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(report.contains("killed 1 processes"), "{report}");

    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = server.try_wait().expect("poll the echo server") {
            break status;
        }
        assert!(Instant::now() < deadline, "the echo server survived cleanup");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    let namespaces = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("list namespaces");
    assert!(!String::from_utf8_lossy(&namespaces.stdout).contains(&namespace));
    let links = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("list links");
    assert!(!String::from_utf8_lossy(&links.stdout).contains(&format!("kjp{id}")));
    let forward = Command::new("iptables")
        .args(["-S", "FORWARD"])
        .output()
        .expect("list FORWARD");
    assert!(!String::from_utf8_lossy(&forward.stdout).contains(&format!("kjp-{id}")));
}

#[test]
fn cleanup_removes_the_audit_database_directory_of_a_killed_run() {
    let network = Network::create(1).expect("create a host (the suite needs root, iproute2, iptables)");
    let id = network.id().to_string();
    // What a killed run with an audit database leaves under the temp dir.
    let leftover = std::env::temp_dir().join(format!("kjp-{id}-auditdb"));
    std::fs::create_dir_all(leftover.join("data")).expect("create the leftover directory");
    std::fs::write(leftover.join("data").join("PG_VERSION"), "15\n").expect("write a file in it");
    std::mem::forget(network);

    let output = Command::new(JEPSEN_BINARY)
        .args(["cleanup", "--id", &id])
        .output()
        .expect("run cleanup");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(!leftover.exists(), "{} survived cleanup", leftover.display());
}
