//! Logins against a real `kuboard serve` replica: parallel wrong passwords cannot get past the
//! failure limit (each attempt is counted before its password is verified), and a flood of
//! logins from many addresses is answered 503 with `Retry-After` beyond the password hashing
//! bound instead of running every argon2id computation (19 MiB each) at once.

mod common;

use std::time::Duration;

use common::Replica;
use serde_json::json;

const MAX_FAILURES_PER_USER: usize = 3;

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_test_writer()
        .try_init();
}

/// A field of `/proc/<pid>/status` in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the replica's status is readable");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in the status of {pid}"))
}

async fn start_replica(data: &std::path::Path, logs: &std::path::Path) -> Replica {
    let max_failures = MAX_FAILURES_PER_USER.to_string();
    let mut replica = Replica::start_with(
        data,
        logs,
        &[
            ("KUBOARD_LOGIN_MAX_FAILURES", max_failures.as_str()),
            ("KUBOARD_LOGIN_MAX_FAILURES_PER_ADDRESS", "1000000"),
            // The flood comes from many addresses, as the test's X-Forwarded-For says.
            ("KUBOARD_TRUSTED_PROXIES", "127.0.0.1"),
        ],
    );
    replica.wait_ready(Duration::from_secs(30)).await;
    replica
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_wrong_passwords_cannot_all_pass_the_failure_limit() {
    init_tracing();
    let data = tempfile::tempdir().expect("a data dir");
    let logs = tempfile::tempdir().expect("a log dir");
    let replica = start_replica(data.path(), logs.path()).await;

    tracing::info!("phase: 16 parallel logins of admin with a wrong password");
    let attempts: Vec<_> = (0..16)
        .map(|_| {
            let client = replica.client.clone();
            let url = replica.url("/kuboard-api/auth/login");
            tokio::spawn(async move {
                let response = client
                    .post(url)
                    .json(&json!({"username": "admin", "password": "wrong-password-1"}))
                    .send()
                    .await
                    .expect("the replica answers");
                let retry_after = response.headers().get("retry-after").is_some();
                (response.status().as_u16(), retry_after)
            })
        })
        .collect();
    let mut verified = 0;
    let mut throttled = 0;
    for attempt in attempts {
        match attempt.await.expect("joined") {
            (401, _) => verified += 1,
            (429, true) => throttled += 1,
            other => panic!("a wrong password answered {other:?}"),
        }
    }
    tracing::info!(verified, throttled, "parallel wrong passwords");
    assert!(
        verified <= MAX_FAILURES_PER_USER,
        "{verified} wrong passwords were verified with a limit of {MAX_FAILURES_PER_USER} ({throttled} throttled)"
    );
    assert_eq!(verified + throttled, 16);

    tracing::info!("phase: the user is now locked, even with the right password");
    let response = replica.login("admin", common::ADMIN_PASSWORD).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().get("retry-after").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_is_refused_beyond_the_hashing_bound_with_bounded_memory() {
    init_tracing();
    let data = tempfile::tempdir().expect("a data dir");
    let logs = tempfile::tempdir().expect("a log dir");
    let replica = start_replica(data.path(), logs.path()).await;
    let pid = replica.pid();
    // One login first, so that the baseline includes a hash's memory and a warmed-up server.
    let response = replica.login("admin", "wrong-password-0").await;
    assert_eq!(response.status(), 401);
    let baseline_kib = status_kib(pid, "VmHWM:");

    // The replica hashes in one slot per core (at most 16), each hash taking tens of milliseconds,
    // and a login waits at most 1 s for a slot: 80 logins per core at once are more than any
    // machine verifies in that second.
    let slots = std::thread::available_parallelism().map_or(2, usize::from).clamp(1, 16);
    let flood = u32::try_from((slots * 80).clamp(160, 640)).expect("a small count");
    tracing::info!(
        flood,
        slots,
        "phase: logins at once, each from its own address, for names no user can have"
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(0)
        .build()
        .expect("an HTTP client");
    let floods: Vec<_> = (0..flood)
        .map(|index| {
            let client = client.clone();
            let url = replica.url("/kuboard-api/auth/login");
            tokio::spawn(async move {
                let response = client
                    .post(url)
                    .header("x-forwarded-for", format!("198.18.{}.{}", index / 200, index % 200 + 1))
                    // A name no user can have (a space) is verified against the dummy hash like an
                    // unknown user, and counts only against its address.
                    .json(&json!({"username": format!("nobody {index}"), "password": "flood-password-1"}))
                    .send()
                    .await
                    .expect("the replica answers");
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.parse::<u64>().ok());
                (response.status().as_u16(), retry_after)
            })
        })
        .collect();
    let mut verified = 0;
    let mut busy = 0;
    for flood in floods {
        match flood.await.expect("joined") {
            (401, _) => verified += 1,
            (503, Some(seconds)) if seconds >= 1 => busy += 1,
            other => panic!("a flooded login answered {other:?} (status, Retry-After)"),
        }
    }
    let peak_kib = status_kib(pid, "VmHWM:");
    let growth_mib = peak_kib.saturating_sub(baseline_kib) / 1024;
    tracing::info!(
        verified,
        busy,
        baseline_mib = baseline_kib / 1024,
        peak_mib = peak_kib / 1024,
        growth_mib,
        "login flood"
    );
    assert!(busy > 0, "no login was refused as busy ({verified} verified)");
    assert!(verified > 0, "no login was verified during the flood");
    // At most one 19 MiB hash per slot runs at once (plus room for the connections); unbounded,
    // the flood would take 19 MiB per login at once (over 2 GiB for 120 before the bound).
    let allowed_mib = (slots as u64) * 19 + 128;
    assert!(
        growth_mib < allowed_mib,
        "peak RSS grew by {growth_mib} MiB (allowed {allowed_mib}) during the flood ({} -> {} MiB)",
        baseline_kib / 1024,
        peak_kib / 1024
    );

    tracing::info!("phase: after the flood a login is verified again");
    let response = replica.login("admin", common::ADMIN_PASSWORD).await;
    assert_eq!(response.status(), 200);
}
