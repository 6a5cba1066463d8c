//! The embedded local audit log (no `KUBOARD_QUEST_DB_URI`): events of a real `kuboard serve` are
//! read back through `GET /kuboard-api/audit` with filters and cursor paging, the log stays within
//! `KUBOARD_AUDIT_LOCAL_MAX_BYTES`, `buffered` events survive a `kill -9`, `strict` gates on the
//! local disk, the status (audit and system) says sink `local`, a replica of a group warns that
//! audit is per replica, and bad audit settings stop the start with exit code 2.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{free_port, run_to_completion, Replica};
use serde_json::Value;

const NEW_PASSWORD: &str = "Local-Trail-2026!";
const BOUND: u64 = 64 * 1024;

async fn anonymous_logout(kuboard: &Replica, tag: &str) {
    let response = kuboard
        .client
        .post(kuboard.url(&format!("/kuboard-api/auth/logout?n={tag}")))
        .send()
        .await
        .expect("send logout");
    assert_eq!(response.status(), 204);
}

/// Every page of `query` (newest first), following `next_cursor`.
async fn all_pages(kuboard: &Replica, token: &str, query: &str, limit: usize) -> Vec<Value> {
    let mut events = Vec::new();
    let mut cursor = String::new();
    for _ in 0..1000 {
        let (status, page) = kuboard
            .get_json(
                &format!("/kuboard-api/audit?{query}&limit={limit}&cursor={cursor}"),
                token,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        let batch = page["events"].as_array().expect("events").clone();
        assert!(batch.len() <= limit);
        events.extend(batch);
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => return events,
        }
    }
    panic!("more than 1000 pages");
}

fn uris(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|event| event["request_uri"].as_str().unwrap_or("").to_string())
        .collect()
}

fn bytes_on_disk(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok())
                .filter_map(|entry| entry.metadata().ok())
                .map(|metadata| metadata.len())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_log_is_queried_like_the_database_and_stays_within_its_bound() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("create the data dir");
    let bound = BOUND.to_string();
    let mut kuboard = Replica::start_with(
        &data,
        dir.path(),
        &[
            ("KUBOARD_AUDIT_LOCAL_MAX_BYTES", bound.as_str()),
            ("KUBOARD_AUDIT_READS", "true"),
        ],
    );
    kuboard.wait_ready(Duration::from_secs(60)).await;
    let token = kuboard.change_admin_password(NEW_PASSWORD).await;

    let (status, audit) = kuboard.get_json("/kuboard-api/audit/status", &token).await;
    assert_eq!(status, 200, "{audit}");
    assert_eq!(
        (
            audit["policy"].as_str(),
            audit["sink"].as_str(),
            audit["state"].as_str()
        ),
        (Some("ignore-errors"), Some("local"), Some("up")),
        "{audit}"
    );
    let (status, system) = kuboard.get_json("/kuboard-api/system/status", &token).await;
    assert_eq!(status, 200, "{system}");
    assert_eq!(system["audit"]["sink"], "local", "{system}");
    assert_eq!(system["audit"]["policy"], "ignore-errors", "{system}");
    assert!(system["audit"]["queue_depth"].is_u64(), "{system}");

    // Reads are audited with KUBOARD_AUDIT_READS=true; the filters and the cursor work.
    let (status, _) = kuboard.get_json("/kuboard-api/users", &token).await;
    assert_eq!(status, 200);
    for n in 0..30 {
        anonymous_logout(&kuboard, &n.to_string()).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let logouts = loop {
        let logouts = all_pages(&kuboard, &token, "verb=logout", 7).await;
        if logouts.len() >= 30 || Instant::now() > deadline {
            break logouts;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let expected: Vec<String> = (0..30)
        .rev()
        .map(|n| format!("/kuboard-api/auth/logout?n={n}"))
        .collect();
    assert_eq!(uris(&logouts), expected, "every logout once, newest first");
    let (status, page) = kuboard.get_json("/kuboard-api/audit?verb=get&user=admin", &token).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        uris(page["events"].as_array().expect("events")).contains(&"/kuboard-api/users".to_string()),
        "{page}"
    );
    // The resource filter: the list of users is found under `users`, and only there.
    let (status, page) = kuboard.get_json("/kuboard-api/audit?resource=users", &token).await;
    assert_eq!(status, 200, "{page}");
    let events = page["events"].as_array().expect("events");
    assert!(uris(events).contains(&"/kuboard-api/users".to_string()), "{page}");
    assert!(events.iter().all(|event| event["resource"] == "users"), "{page}");
    let (status, page) = kuboard.get_json("/kuboard-api/audit?resource=clusters", &token).await;
    assert_eq!(status, 200, "{page}");
    let events = page["events"].as_array().expect("events");
    assert!(events.iter().all(|event| event["resource"] == "clusters"), "{page}");
    assert!(!uris(events).contains(&"/kuboard-api/users".to_string()), "{page}");
    let (status, page) = kuboard
        .get_json("/kuboard-api/audit?status=200&verb=login", &token)
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(!page["events"].as_array().expect("events").is_empty(), "{page}");
    let middle = logouts[10]["ts_micros"].as_i64().expect("a timestamp");
    let (status, page) = kuboard
        .get_json(&format!("/kuboard-api/audit?verb=logout&to={middle}"), &token)
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        uris(page["events"].as_array().expect("events")),
        expected[11..].to_vec()
    );
    let (status, page) = kuboard.get_json("/kuboard-api/audit?cursor=nonsense", &token).await;
    assert_eq!((status, page["code"].as_str()), (400, Some("invalid_cursor")));

    // Far more than the bound: the oldest segments go, the newest events stay.
    for n in 0..600 {
        anonymous_logout(&kuboard, &format!("flood-{n}")).await;
    }
    let local_dir = data.join("audit").join("local");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, page) = kuboard.get_json("/kuboard-api/audit?verb=logout&limit=1", &token).await;
        if page["events"][0]["request_uri"] == "/kuboard-api/auth/logout?n=flood-599" {
            break;
        }
        assert!(Instant::now() < deadline, "the newest event is not readable: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, audit) = kuboard.get_json("/kuboard-api/audit/status", &token).await;
    assert!(audit["local_bytes"].as_u64().expect("bytes") <= BOUND, "{audit}");
    assert!(audit["local_segments_removed"].as_u64().expect("count") > 0, "{audit}");
    assert!(
        bytes_on_disk(&local_dir) <= BOUND,
        "{} bytes on disk",
        bytes_on_disk(&local_dir)
    );
    let remaining = all_pages(&kuboard, &token, "verb=logout", 200).await;
    assert!(remaining.len() < 630, "old events were removed: {}", remaining.len());
    assert!(remaining.len() > 50, "recent events stay: {}", remaining.len());
    kuboard.terminate(Duration::from_secs(20));

    // Buffered: each event is on disk before the answer, so a kill -9 loses none.
    let mut kuboard = Replica::start_with(
        &data,
        dir.path(),
        &[
            ("KUBOARD_AUDIT_LOCAL_MAX_BYTES", bound.as_str()),
            ("KUBOARD_AUDIT_POLICY", "buffered"),
        ],
    );
    kuboard.wait_ready(Duration::from_secs(60)).await;
    for n in 0..20 {
        anonymous_logout(&kuboard, &format!("durable-{n}")).await;
    }
    kuboard.kill9();
    kuboard.restart();
    kuboard.wait_ready(Duration::from_secs(60)).await;
    let token = kuboard.login_token("admin", NEW_PASSWORD).await;
    let durable: Vec<String> = uris(&all_pages(&kuboard, &token, "verb=logout", 100).await)
        .into_iter()
        .filter(|uri| uri.contains("n=durable-"))
        .collect();
    let expected: Vec<String> = (0..20)
        .rev()
        .map(|n| format!("/kuboard-api/auth/logout?n=durable-{n}"))
        .collect();
    assert_eq!(durable, expected, "every buffered event survived kill -9");
    kuboard.terminate(Duration::from_secs(20));

    // Strict on the local log: the gate writes to the disk; changes go through.
    let mut kuboard = Replica::start_with(&data, dir.path(), &[("KUBOARD_AUDIT_POLICY", "strict")]);
    kuboard.wait_ready(Duration::from_secs(60)).await;
    let token = kuboard.login_token("admin", NEW_PASSWORD).await;
    anonymous_logout(&kuboard, "strict").await;
    let (status, page) = kuboard.get_json("/kuboard-api/audit?verb=logout&limit=2", &token).await;
    assert_eq!(status, 200, "{page}");
    let decisions: Vec<&str> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|event| event["request_uri"] == "/kuboard-api/auth/logout?n=strict")
        .filter_map(|event| event["decision"].as_str())
        .collect();
    assert!(decisions.contains(&"pending"), "the gate's event: {page}");
    let (_, audit) = kuboard.get_json("/kuboard-api/audit/status", &token).await;
    assert_eq!(
        (
            audit["policy"].as_str(),
            audit["sink"].as_str(),
            audit["state"].as_str()
        ),
        (Some("strict"), Some("local"), Some("up")),
        "{audit}"
    );
    kuboard.terminate(Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_of_a_group_without_a_database_warns_that_audit_is_per_replica() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("create the data dir");
    let raft_port = free_port().to_string();
    let peers = format!(
        "1=127.0.0.1:{raft_port},2=127.0.0.1:{},3=127.0.0.1:{}",
        free_port(),
        free_port()
    );
    let mut kuboard = Replica::start_with(
        &data,
        dir.path(),
        &[
            ("KUBOARD_RAFT_PORT", raft_port.as_str()),
            ("KUBOARD_RAFT_PEERS", peers.as_str()),
            ("KUBOARD_RAFT_NODE_ID", "1"),
            ("KUBOARD_CLUSTER_SECRET", "a-cluster-secret-of-the-test"),
            ("KUBOARD_SSO_CLIENT_SECRET", "an-sso-secret-of-the-test"),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kuboard.log().contains("audit is per replica") {
        assert!(
            Instant::now() < deadline,
            "no per-replica warning within 30 s:\n{}",
            kuboard.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    kuboard.kill9();
}

#[test]
fn bad_audit_settings_stop_the_start_with_exit_2() {
    for (name, value, expected) in [
        ("KUBOARD_AUDIT_READS", "sometimes", "expected true or false"),
        (
            "KUBOARD_AUDIT_LOCAL_MAX_BYTES",
            "10",
            "expected a number of bytes between 65536",
        ),
    ] {
        let data = tempfile::tempdir().expect("a data dir");
        let data_text = data.path().to_string_lossy().to_string();
        let port = free_port().to_string();
        let raft_port = free_port().to_string();
        let finished = run_to_completion(
            &["serve"],
            &[
                ("KUBOARD_SERVER_ADDR", "127.0.0.1"),
                ("KUBOARD_SERVER_PORT", port.as_str()),
                ("KUBOARD_RAFT_ADDR", "127.0.0.1"),
                ("KUBOARD_RAFT_PORT", raft_port.as_str()),
                ("KUBOARD_DATA_DIR", data_text.as_str()),
                (name, value),
            ],
            Duration::from_secs(15),
        );
        assert_eq!(finished.status.code(), Some(2), "{name}={value}: {}", finished.stderr);
        let lines: Vec<&str> = finished
            .stderr
            .lines()
            .filter(|line| line.contains(name) && line.contains(value) && line.contains(expected))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "one line naming {name}, {value:?} and the expectation: {}",
            finished.stderr
        );
    }
}
