//! A compressed-time soak: three replicas under a steady mix of logins, failed logins, UI-like
//! reads, sessions and short leases expiring, with a short compaction retention and frequent
//! snapshots, so that an hour of use stands for weeks. Every five seconds it prints, per member,
//! the size of the state machine (sled), of the raft log and of the snapshots, the RSS, and the
//! longest write (a put through the etcd API, which waits for its apply) of the interval; at the
//! end, the time every snapshot took.
//!
//! Asserts, after the first third of the run (the first compaction cycles): the state machine and
//! the RSS stay flat (the last third's largest no more than the middle third's plus a margin),
//! snapshot time stays flat, and no write took longer than the election timeout.
//!
//! `KUBOARD_SOAK_SECONDS` sets the length (default 120, the CI run); `KUBOARD_SOAK_CSV` names a
//! file for the samples (plotted by `scripts/plot-soak.py`); `KUBOARD_TEST_BINARY` runs another
//! build (the release one for the hour `docs/operations.md` reports: `scripts/soak.sh`).

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

/// The default election timeout (`KUBOARD_RAFT_ELECTION_TIMEOUT_MS`).
const ELECTION_TIMEOUT: Duration = Duration::from_millis(800);
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
const RETENTION_SECONDS: &str = "10";
/// The admin's password after the first login's forced change (the default one may only change it).
const SOAK_PASSWORD: &str = "Soak-Steady-Password-7";

fn soak_seconds() -> u64 {
    std::env::var("KUBOARD_SOAK_SECONDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .filter(|seconds| (30..=24 * 3600).contains(seconds))
        .unwrap_or(120)
}

/// Bytes under `dir` by part of the store: (state machine, raft log, snapshots).
fn store_sizes(dir: &Path) -> (u64, u64, u64) {
    let mut sizes = (0, 0, 0);
    let mut stack = vec![(dir.to_path_buf(), "")];
    while let Some((path, part)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            if meta.is_dir() {
                let part = match name.as_str() {
                    "sm" => "sm",
                    "wal" => "wal",
                    "snapshots" => "snapshots",
                    _ => part,
                };
                stack.push((entry.path(), part));
            } else {
                match part {
                    "sm" => sizes.0 += meta.len(),
                    "wal" => sizes.1 += meta.len(),
                    "snapshots" => sizes.2 += meta.len(),
                    _ => {}
                }
            }
        }
    }
    sizes
}

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// The `duration_ms` of every "snapshot built" line of `log`.
fn snapshot_durations(log: &str) -> Vec<u64> {
    log.lines()
        .filter(|line| line.contains("snapshot built"))
        .filter_map(|line| {
            // `duration_ms=12` in text logs, `"duration_ms":12` in JSON ones.
            let rest = &line[line.find("duration_ms")? + "duration_ms".len()..];
            let rest = rest.trim_start_matches(|c: char| !c.is_ascii_digit());
            rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
        })
        .collect()
}

struct Sample {
    at: Duration,
    state_machine: Vec<u64>,
    wal: Vec<u64>,
    snapshots: Vec<u64>,
    rss: Vec<u64>,
    longest_write: Duration,
}

/// The samples as CSV at `path` (for `scripts/plot-soak.py`), and the snapshot times beside it
/// (`path` with `.snapshots.csv`).
fn write_csv(path: &Path, samples: &[Sample], durations: &[u64]) {
    let mut text = String::from("seconds");
    for part in ["state_machine", "raft_log", "snapshots", "rss"] {
        for member in 1..=3 {
            text.push_str(&format!(",{part}_bytes_{member}"));
        }
    }
    text.push_str(",longest_write_ms\n");
    for sample in samples {
        text.push_str(&format!("{:.0}", sample.at.as_secs_f64()));
        for part in [&sample.state_machine, &sample.wal, &sample.snapshots, &sample.rss] {
            for value in part {
                text.push_str(&format!(",{value}"));
            }
        }
        text.push_str(&format!(",{:.1}\n", sample.longest_write.as_secs_f64() * 1000.0));
    }
    std::fs::write(path, text).expect("write the soak's CSV");
    let snapshots: String = std::iter::once("snapshot,duration_ms\n".to_string())
        .chain(
            durations
                .iter()
                .enumerate()
                .map(|(index, ms)| format!("{},{ms}\n", index + 1)),
        )
        .collect();
    std::fs::write(path.with_extension("snapshots.csv"), snapshots).expect("write the snapshot times");
}

/// A response's status, or the error that stood in for one.
fn outcome(response: reqwest::Result<reqwest::Response>) -> String {
    match response {
        Ok(response) => response.status().to_string(),
        Err(error) => error.to_string(),
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1_048_576.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_stay_flat_under_a_compressed_month() {
    let seconds = soak_seconds();
    let etcd_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut group = Group::start_with_env(3, &|index| {
        [
            ("KUBOARD_ETCD_API_PORT", etcd_ports[index].to_string()),
            (
                "KUBOARD_RAFT_COMPACTION_RETENTION_SECONDS",
                RETENTION_SECONDS.to_string(),
            ),
            ("KUBOARD_RAFT_SNAPSHOT_THRESHOLD", "500".to_string()),
            ("KUBOARD_SESSION_TTL_SECONDS", "60".to_string()),
            ("KUBOARD_SESSION_REMEMBER_TTL_SECONDS", "60".to_string()),
            ("KUBOARD_LOGIN_FAILURE_WINDOW_SECONDS", "10".to_string()),
            ("KUBOARD_LOGIN_MAX_FAILURES_PER_ADDRESS", "1000000".to_string()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect()
    });
    group.wait_all_ready(Duration::from_secs(90)).await;
    // With the default password every page but the password change answers 403, as for a new
    // install; the users below read the pages an administrator opens.
    group.replicas[0].change_admin_password(SOAK_PASSWORD).await;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let stop = Arc::new(AtomicBool::new(false));
    let longest_write_micros = Arc::new(AtomicU64::new(0));

    // Writes through the etcd API, each timed: plain puts and keys on 2 s leases that expire.
    let writer = tokio::spawn({
        let stop = stop.clone();
        let longest = longest_write_micros.clone();
        let endpoints: Vec<String> = etcd_ports.iter().map(|port| format!("127.0.0.1:{port}")).collect();
        async move {
            let mut client = etcd_client::Client::connect(endpoints, None)
                .await
                .expect("connect to the etcd API");
            let mut count = 0u64;
            while !stop.load(Ordering::Relaxed) && count < 10_000_000 {
                let began = Instant::now();
                if count % 10 == 0 {
                    let lease = client.lease_grant(2, None).await.expect("grant a 2 s lease").id();
                    let options = etcd_client::PutOptions::new().with_lease(lease);
                    client
                        .put(format!("/soak/leased/{count}"), "v", Some(options))
                        .await
                        .expect("put on a lease");
                } else {
                    client
                        .put(format!("/soak/ui/{}", count % 200), vec![b'v'; 256], None)
                        .await
                        .expect("put");
                }
                longest.fetch_max(began.elapsed().as_micros() as u64, Ordering::Relaxed);
                count += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            count
        }
    });

    // Logins (each a session on a 60 s lease), failed logins and UI-like reads, over the replicas.
    let users = tokio::spawn({
        let stop = stop.clone();
        let replicas: Vec<(String, reqwest::Client)> = group
            .replicas
            .iter()
            .map(|replica| (replica.url(""), replica.client.clone()))
            .collect();
        async move {
            let (mut logins, mut failed, mut reads) = (0u64, 0u64, 0u64);
            // Requests answered otherwise than expected: nothing is killed, so there should be none.
            let mut refused: Vec<String> = Vec::new();
            let mut round = 0usize;
            while !stop.load(Ordering::Relaxed) && round < 1_000_000 {
                let (base, client) = &replicas[round % replicas.len()];
                round += 1;
                let login = client
                    .post(format!("{base}/kuboard-api/auth/login"))
                    .json(&serde_json::json!({ "username": "admin", "password": SOAK_PASSWORD }))
                    .send()
                    .await;
                let token = match login {
                    Ok(response) if response.status() == 200 => {
                        logins += 1;
                        let body: serde_json::Value = response.json().await.unwrap_or_default();
                        body["token"].as_str().map(str::to_owned)
                    }
                    other => {
                        refused.push(format!("login: {}", outcome(other)));
                        None
                    }
                };
                let wrong = client
                    .post(format!("{base}/kuboard-api/auth/login"))
                    .json(&serde_json::json!({ "username": format!("ghost-{round}"), "password": "wrong" }))
                    .send()
                    .await;
                match wrong {
                    Ok(response) if response.status() == 401 => failed += 1,
                    other => refused.push(format!("wrong password: {}", outcome(other))),
                }
                if let Some(token) = token {
                    for path in [
                        "/kuboard-api/users",
                        "/kuboard-api/clusters",
                        "/kuboard-api/system/status",
                    ] {
                        let read = client.get(format!("{base}{path}")).bearer_auth(&token).send().await;
                        match read {
                            Ok(response) if response.status() == 200 => reads += 1,
                            other => refused.push(format!("GET {path}: {}", outcome(other))),
                        }
                    }
                }
            }
            (logins, failed, reads, refused)
        }
    });

    let mut samples: Vec<Sample> = Vec::new();
    println!("   t(s)  state machine MB (3 members)   raft log MB        snapshots MB       RSS MB              longest write");
    while Instant::now() < deadline {
        tokio::time::sleep(SAMPLE_EVERY.min(deadline.saturating_duration_since(Instant::now()))).await;
        let exited = group.replicas.iter_mut().any(|replica| replica.exited().is_some());
        assert!(!exited, "a replica exited during the soak:\n{}", group.logs());
        let sizes: Vec<(u64, u64, u64)> = group.replicas.iter().map(|r| store_sizes(&r.data_dir)).collect();
        let sample = Sample {
            at: started.elapsed(),
            state_machine: sizes.iter().map(|s| s.0).collect(),
            wal: sizes.iter().map(|s| s.1).collect(),
            snapshots: sizes.iter().map(|s| s.2).collect(),
            rss: group.replicas.iter().map(|r| rss(r.pid())).collect(),
            longest_write: Duration::from_micros(longest_write_micros.swap(0, Ordering::Relaxed)),
        };
        let list = |values: &[u64]| values.iter().map(|v| mb(*v)).collect::<Vec<_>>().join(" / ");
        println!(
            "{:>7.0}  {:<28} {:<18} {:<18} {:<19} {:?}",
            sample.at.as_secs_f64(),
            list(&sample.state_machine),
            list(&sample.wal),
            list(&sample.snapshots),
            list(&sample.rss),
            sample.longest_write
        );
        samples.push(sample);
    }
    stop.store(true, Ordering::Relaxed);
    let writes = writer.await.expect("writer");
    let (logins, failed, reads, refused) = users.await.expect("users");
    let logs = group.logs();
    let durations = snapshot_durations(&logs);
    println!(
        "{seconds} s: {writes} etcd writes, {logins} logins, {failed} failed logins, {reads} reads; \
         {} snapshots built, ms: {durations:?}",
        durations.len()
    );

    if let Some(path) = std::env::var_os("KUBOARD_SOAK_CSV") {
        write_csv(Path::new(&path), &samples, &durations);
    }
    assert!(
        refused.is_empty(),
        "{} of the users' requests were not answered as expected, first: {:?}",
        refused.len(),
        &refused[..refused.len().min(5)]
    );

    // Compacted: a read at revision 1 is refused.
    let mut client = etcd_client::Client::connect([format!("127.0.0.1:{}", etcd_ports[0])], None)
        .await
        .expect("connect");
    let old = client
        .get("/soak/ui/0", Some(etcd_client::GetOptions::new().with_revision(1)))
        .await;
    assert!(
        old.as_ref().is_err_and(|error| error.to_string().contains("compacted")),
        "a read at revision 1 after {seconds} s with a {RETENTION_SECONDS} s retention: {old:?}"
    );

    let third = samples.len() / 3;
    assert!(third >= 2, "at least six samples");
    let (middle, last) = (&samples[third..2 * third], &samples[2 * third..]);
    // The last third's peak within a quarter (plus `slack` bytes) of the middle third's.
    let flat = |what: &str, member: usize, slack: u64, of: &dyn Fn(&Sample) -> u64| {
        let before = middle.iter().map(of).max().unwrap_or(0);
        let after = last.iter().map(of).max().unwrap_or(0);
        assert!(
            after <= before + before / 4 + slack,
            "member {}'s {what} grew from {} MB to {} MB after the first compactions",
            member + 1,
            mb(before),
            mb(after)
        );
    };
    for member in 0..3 {
        flat("state machine", member, 4 * 1_048_576, &|s| s.state_machine[member]);
        flat("RSS", member, 8 * 1_048_576, &|s| s.rss[member]);
    }
    if durations.len() >= 6 {
        let third = durations.len() / 3;
        let before = durations[third..2 * third].iter().max().copied().unwrap_or(0);
        let after = durations[2 * third..].iter().max().copied().unwrap_or(0);
        assert!(
            after <= 2 * before + 100,
            "snapshot time grew from {before} ms to {after} ms: {durations:?}"
        );
    }
    let longest = samples.iter().map(|s| s.longest_write).max().unwrap_or_default();
    assert!(
        longest < ELECTION_TIMEOUT,
        "a write took {longest:?}, longer than the election timeout {ELECTION_TIMEOUT:?}"
    );
    for replica in &mut group.replicas {
        replica.stop();
    }
}
