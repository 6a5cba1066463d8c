//! The secret a replica generates for sealing cluster credentials (no `KUBOARD_SSO_CLIENT_SECRET`)
//! must survive a power loss once the replica has used it: the file is written and fsynced under
//! a temporary name, renamed into place, and then the data directory itself is fsynced, or the
//! rename may be lost and the next start generate another secret that opens none of the stored
//! credentials. Observed with strace on a real `kuboard serve`.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, kuboard_binary};

const STRACE: &str = "/usr/bin/strace";

/// The traced process's own pid: the first child of strace.
fn traced_pid(strace_pid: u32) -> Option<u32> {
    let children = std::fs::read_to_string(format!("/proc/{strace_pid}/task/{strace_pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

/// The syscalls of thread `tid` in the trace, in order.
fn calls_of<'a>(trace: &'a str, tid: &str) -> Vec<&'a str> {
    trace
        .lines()
        .filter_map(|line| line.split_once(' '))
        .filter(|(pid, _)| *pid == tid)
        .map(|(_, call)| call.trim_start())
        .collect()
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_test_writer()
        .try_init();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_secret_is_renamed_then_its_directory_fsynced() {
    init_tracing();
    assert!(
        Path::new(STRACE).exists(),
        "{STRACE} is missing: run scripts/install-deps.sh test (Debian package strace)"
    );
    let data = tempfile::tempdir().expect("a data dir");
    let data_dir = data.path().canonicalize().expect("the data dir resolves");
    let logs = tempfile::tempdir().expect("a log dir");
    let trace_path = logs.path().join("strace.txt");
    let port = free_port();
    let log = std::fs::File::create(logs.path().join("kuboard.log")).expect("a log file");
    let mut strace = Command::new(STRACE)
        .args([
            "-f",
            "-qq",
            "-y",
            "-e",
            "trace=openat,rename,renameat,renameat2,fsync,fdatasync",
            "-o",
        ])
        .arg(&trace_path)
        .arg(kuboard_binary())
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KUBOARD_SERVER_ADDR", "127.0.0.1")
        .env("KUBOARD_SERVER_PORT", port.to_string())
        .env("KUBOARD_RAFT_ADDR", "127.0.0.1")
        .env("KUBOARD_RAFT_PORT", free_port().to_string())
        .env("KUBOARD_DATA_DIR", &data_dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("the log handle is cloned"))
        .stderr(log)
        .spawn()
        .expect("strace starts");

    tracing::info!("phase: the replica starts under strace and becomes ready");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = client.get(format!("http://127.0.0.1:{port}/readyz")).send().await {
            if response.status() == 200 {
                break;
            }
        }
        if let Some(status) = strace.try_wait().expect("strace is polled") {
            panic!(
                "the traced replica exited with {status}; log:\n{}",
                std::fs::read_to_string(logs.path().join("kuboard.log")).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "the traced replica is ready within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(data_dir.join("sso_client_secret").exists(), "the secret was generated");

    tracing::info!("phase: the replica is stopped, and strace ends with it");
    let kuboard = traced_pid(strace.id()).expect("strace has the replica as its child");
    let sent = Command::new("kill")
        .args(["-TERM", &kuboard.to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while strace.try_wait().expect("strace is polled").is_none() {
        if Instant::now() > deadline {
            let _ = Command::new("kill").args(["-KILL", &kuboard.to_string()]).status();
            let _ = strace.wait();
            panic!("the traced replica did not stop within 30 s of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    tracing::info!(
        "phase: the thread that renamed the secret into place fsynced the file before and the directory after"
    );
    let trace = std::fs::read_to_string(&trace_path).expect("the trace is read");
    let secret = data_dir.join("sso_client_secret");
    let temporary = data_dir.join("sso_client_secret.tmp");
    let rename = trace
        .lines()
        .find(|line| line.contains("rename") && line.contains(&format!("\"{}\"", secret.display())))
        .unwrap_or_else(|| panic!("no rename into {} in the trace:\n{trace}", secret.display()));
    let tid = rename.split_whitespace().next().expect("a thread id");
    let calls = calls_of(&trace, tid);
    let at = calls
        .iter()
        .position(|call| *call == rename.split_once(' ').expect("a call").1.trim_start())
        .expect("the rename is among its thread's calls");
    let temporary_tag = format!("<{}>", temporary.display());
    assert!(
        calls[..at]
            .iter()
            .any(|call| (call.starts_with("fsync(") || call.starts_with("fdatasync(")) && call.contains(&temporary_tag)),
        "the temporary file was not fsynced before the rename:\n{}",
        calls.join("\n")
    );
    let directory_tag = format!("<{}>", data_dir.display());
    let after: Vec<&str> = calls[at + 1..].iter().take(2).copied().collect();
    assert!(
        after.len() == 2
            && after[0].starts_with("openat(")
            && after[0].contains(&format!("\"{}\"", data_dir.display()))
            && (after[1].starts_with("fsync(") || after[1].starts_with("fdatasync("))
            && after[1].contains(&directory_tag),
        "the data directory was not opened and fsynced right after the rename; the calls after it:\n{}",
        after.join("\n")
    );
}
