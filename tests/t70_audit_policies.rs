//! Audit to a PG-wire database under the `ignore-errors`, `buffered` and `strict` policies, against a
//! real PostgreSQL that the tests start, stop and start again (QuestDB cannot be installed here;
//! PostgreSQL speaks the same wire protocol and the dialect module holds the differences).

mod common;
mod t7x_support;

use std::path::Path;
use std::time::{Duration, Instant};

use common::Replica;
use serde_json::Value;
use t7x_support::{configmap, exec_session, fake_cluster, import_fake, wait_for, Postgres};

const NEW_PASSWORD: &str = "Audit-Trail-2026!";

fn start_kuboard(dir: &Path, postgres: &Postgres, policy: &str) -> Replica {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("create the data dir");
    let uri = postgres.uri();
    Replica::start_with(
        &data,
        dir,
        &[("KUBOARD_QUEST_DB_URI", uri.as_str()), ("KUBOARD_AUDIT_POLICY", policy)],
    )
}

/// A logout without a session: a cheap change (204, nothing to end), audited like any other.
async fn anonymous_logout(kuboard: &Replica, tag: &str) -> u16 {
    kuboard
        .client
        .post(kuboard.url(&format!("/kuboard-api/auth/logout?n={tag}")))
        .send()
        .await
        .expect("send logout")
        .status()
        .as_u16()
}

async fn audit_status(kuboard: &Replica, token: &str) -> Value {
    let (status, body) = kuboard.get_json("/kuboard-api/audit/status", token).await;
    assert_eq!(status, 200, "audit status: {body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignore_errors_drops_while_the_database_is_down_and_writes_again_after() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut postgres = Postgres::init(dir.path());
    let mut kuboard = start_kuboard(dir.path(), &postgres, "ignore-errors");
    kuboard.wait_ready(Duration::from_secs(60)).await;
    let token = kuboard.change_admin_password(NEW_PASSWORD).await;

    assert_eq!(anonymous_logout(&kuboard, "before").await, 204);
    wait_for(|| async {
        postgres
            .uris("logout")
            .await
            .contains(&"/kuboard-api/auth/logout?n=before".into())
    })
    .await;
    // A denied read is audited too; the query API reads the rows back.
    let denied = kuboard
        .client
        .get(kuboard.url("/kuboard-api/users"))
        .send()
        .await
        .expect("send GET");
    assert_eq!(denied.status(), 401);
    wait_for(|| async { !postgres.uris("get").await.is_empty() }).await;
    let (status, page) = kuboard.get_json("/kuboard-api/audit?verb=get&status=401", &token).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["events"][0]["request_uri"], "/kuboard-api/users", "{page}");
    assert_eq!(page["events"][0]["decision"], "deny");
    let future = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is past 1970")
        .as_micros()
        + 3_600_000_000;
    let (status, page) = kuboard
        .get_json(&format!("/kuboard-api/audit?from={future}"), &token)
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        page["events"],
        serde_json::json!([]),
        "nothing is newer than an hour from now"
    );
    let (status, page) = kuboard.get_json("/kuboard-api/audit?verb=logout&limit=1", &token).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        page["events"][0]["request_uri"], "/kuboard-api/auth/logout?n=before",
        "{page}"
    );
    assert_eq!(page["events"][0]["status_code"], 204);

    postgres.stop();
    for n in 0..5 {
        // Logging in is a change that must keep working.
        let response = kuboard.login("admin", NEW_PASSWORD).await;
        assert_eq!(response.status(), 200, "login {n} while the database is down");
        assert_eq!(anonymous_logout(&kuboard, &format!("down-{n}")).await, 204);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let status = audit_status(&kuboard, &token).await;
        if status["dropped"].as_u64().unwrap_or(0) >= 10 || Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        status["dropped"].as_u64().unwrap_or(0) >= 10,
        "drops are counted: {status}"
    );
    assert_eq!(status["state"], "down", "{status}");
    assert!(status["last_error"].is_string(), "{status}");

    postgres.start();
    // New events reach the database without a restart of kuboard.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 0;
    loop {
        assert_eq!(anonymous_logout(&kuboard, &format!("after-{n}")).await, 204);
        let uris = postgres.uris("logout").await;
        if uris.iter().any(|uri| uri.contains("n=after-")) {
            assert!(
                !uris.iter().any(|uri| uri.contains("n=down-")),
                "events of the outage were dropped"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no event written after the database came back"
        );
        n += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let status = audit_status(&kuboard, &token).await;
    assert_eq!(status["state"], "up", "{status}");

    // Cursor paging walks every logout event once, newest first.
    let mut paged = Vec::new();
    let mut cursor = String::new();
    for _ in 0..100 {
        let (status, page) = kuboard
            .get_json(
                &format!("/kuboard-api/audit?verb=logout&limit=2&cursor={cursor}"),
                &token,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        let events = page["events"].as_array().expect("events").clone();
        assert!(events.len() <= 2);
        paged.extend(
            events
                .iter()
                .map(|event| event["request_uri"].as_str().unwrap_or("").to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
    }
    let mut stored = postgres.uris("logout").await;
    stored.reverse();
    assert_eq!(paged, stored);

    // A graceful shutdown writes what is still queued in memory.
    for n in 0..50 {
        assert_eq!(anonymous_logout(&kuboard, &format!("final-{n}")).await, 204);
    }
    let (status, _) = kuboard.terminate(Duration::from_secs(20));
    assert!(status.success(), "{status}");
    let finals = postgres
        .uris("logout")
        .await
        .into_iter()
        .filter(|uri| uri.contains("n=final-"))
        .count();
    assert_eq!(finals, 50, "events queued at SIGTERM are written before the exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batching_throughput_of_ignore_errors() {
    const EVENTS: usize = 3000;
    const CONCURRENCY: usize = 16;
    let dir = tempfile::tempdir().expect("a temp dir");
    let postgres = Postgres::init(dir.path());
    let mut kuboard = start_kuboard(dir.path(), &postgres, "ignore-errors");
    kuboard.wait_ready(Duration::from_secs(60)).await;
    let kuboard = std::sync::Arc::new(kuboard);

    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..CONCURRENCY {
        let kuboard = kuboard.clone();
        tasks.push(tokio::spawn(async move {
            for n in (worker..EVENTS).step_by(CONCURRENCY) {
                assert_eq!(anonymous_logout(&kuboard, &format!("bench-{n}")).await, 204);
            }
        }));
    }
    for task in tasks {
        task.await.expect("a request worker");
    }
    let requests_done = started.elapsed();
    let client = postgres.client().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let row = client
            .query_one("SELECT count(*) FROM kuboard_audit WHERE verb = 'logout'", &[])
            .await
            .expect("count the events");
        let count: i64 = row.get(0);
        if count as usize >= EVENTS {
            assert_eq!(count as usize, EVENTS, "each event once");
            break;
        }
        assert!(Instant::now() < deadline, "only {count} of {EVENTS} events written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_written = started.elapsed();
    println!(
        "ignore-errors: {EVENTS} audited requests ({CONCURRENCY} concurrent) in {requests_done:?}, all events \
         written after {all_written:?}: {:.0} events/s end to end",
        EVENTS as f64 / all_written.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_replays_a_thousand_events_exactly_once_in_order_after_kill_9() {
    const EVENTS: usize = 1000;
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut postgres = Postgres::init(dir.path());
    let mut kuboard = start_kuboard(dir.path(), &postgres, "buffered");
    kuboard.wait_ready(Duration::from_secs(60)).await;
    let token = kuboard.change_admin_password(NEW_PASSWORD).await;

    // Real changes: each request creates a role binding in the store; the query string only tags
    // its audit event (the route ignores it).
    postgres.stop();
    let started = Instant::now();
    for n in 0..EVENTS {
        let (status, body) = kuboard
            .post_json(
                &format!("/kuboard-api/role-bindings?n={n}"),
                &token,
                &serde_json::json!({
                    "subject": {"kind": "group", "name": format!("buffered-{n}")},
                    "cluster": "prod",
                    "role": "view"
                }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let spooling = started.elapsed();
    let status = audit_status(&kuboard, &token).await;
    assert!(status["spooled_bytes"].as_u64().unwrap_or(0) > 0, "{status}");
    // The logins and the password change before the outage are in the count too.
    assert!(
        status["spooled_total"].as_u64().unwrap_or(0) >= EVENTS as u64,
        "{status}"
    );
    kuboard.kill9();

    postgres.start();
    kuboard.restart();
    kuboard.wait_ready(Duration::from_secs(60)).await;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    let uris = loop {
        let uris: Vec<String> = postgres
            .uris_in_arrival_order()
            .await
            .into_iter()
            .filter(|uri| uri.starts_with("/kuboard-api/role-bindings?n="))
            .collect();
        if uris.len() >= EVENTS || Instant::now() > deadline {
            break uris;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let expected: Vec<String> = (0..EVENTS)
        .map(|n| format!("/kuboard-api/role-bindings?n={n}"))
        .collect();
    assert_eq!(
        uris, expected,
        "every event once, inserted in the order of the requests"
    );
    let (status, bindings) = kuboard.get_json("/kuboard-api/role-bindings", &token).await;
    assert_eq!(status, 200, "{bindings}");
    let created = bindings.as_array().map(|bindings| {
        bindings
            .iter()
            .filter(|binding| {
                binding["subject"]["name"]
                    .as_str()
                    .is_some_and(|name| name.starts_with("buffered-"))
            })
            .count()
    });
    assert_eq!(created, Some(EVENTS), "every change is in the store");
    println!(
        "buffered: {EVENTS} changes and their events spooled (fsync each) in {spooling:?}, replayed within {:?}",
        started.elapsed()
    );
    kuboard.terminate(Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_refuses_audited_changes_while_the_database_is_down_and_resumes_by_itself() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut postgres = Postgres::init(dir.path());
    let mut kuboard = start_kuboard(dir.path(), &postgres, "strict");
    kuboard.wait_ready(Duration::from_secs(60)).await;
    let token = kuboard.change_admin_password(NEW_PASSWORD).await;

    // The added latency of the strict policy: a cheap change (gated: its event is written before
    // it runs) against a cheap request that is not gated (an anonymous read, answered 401 and
    // audited afterwards without waiting).
    let mut gated = Vec::new();
    let mut ungated = Vec::new();
    for n in 0..200 {
        let sent = Instant::now();
        assert_eq!(anonymous_logout(&kuboard, &format!("lat-{n}")).await, 204);
        gated.push(sent.elapsed());
        let sent = Instant::now();
        let response = kuboard
            .client
            .get(kuboard.url("/kuboard-api/auth/me"))
            .send()
            .await
            .expect("send GET");
        assert_eq!(response.status(), 401);
        ungated.push(sent.elapsed());
    }
    gated.sort();
    ungated.sort();
    let percentile = |samples: &[Duration], p: usize| samples[samples.len() * p / 100];
    println!(
        "strict: gated change p50 {:?} p99 {:?}; ungated request p50 {:?} p99 {:?}; added p50 {:?}",
        percentile(&gated, 50),
        percentile(&gated, 99),
        percentile(&ungated, 50),
        percentile(&ungated, 99),
        percentile(&gated, 50).saturating_sub(percentile(&ungated, 50)),
    );

    postgres.stop();
    let (status, body) = kuboard
        .post_json(
            "/kuboard-api/auth/password",
            &token,
            &serde_json::json!({ "current_password": NEW_PASSWORD, "new_password": "Never-Applied-2026!" }),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "audit_unavailable", "{body}");
    let response = kuboard
        .client
        .get(kuboard.url("/readyz"))
        .send()
        .await
        .expect("send readyz");
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.expect("readyz answers JSON");
    assert_eq!(body["code"], "audit_paused", "{body}");
    let status = audit_status(&kuboard, &token).await;
    assert_eq!(status["state"], "paused", "{status}");
    assert!(status["refused"].as_u64().unwrap_or(0) >= 1, "{status}");

    postgres.start();
    let restarted = Instant::now();
    loop {
        // A login is audited too; it succeeds with the old password, so the change did not happen.
        let response = kuboard.login("admin", NEW_PASSWORD).await;
        if response.status() == 200 {
            break;
        }
        assert_eq!(response.status(), 503);
        assert!(restarted.elapsed() < Duration::from_secs(5), "not resumed within 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("strict: resumed {:?} after the database started", restarted.elapsed());
    assert_eq!(kuboard.login("admin", "Never-Applied-2026!").await.status(), 401);
    kuboard.wait_ready(Duration::from_secs(5)).await;
    // The first password change left its pending and its outcome events; the refused one none.
    let password_changes = || async {
        postgres
            .uris("create")
            .await
            .into_iter()
            .filter(|uri| uri == "/kuboard-api/auth/password")
            .count()
    };
    wait_for(|| async { password_changes().await >= 2 }).await;
    assert_eq!(password_changes().await, 2);
    kuboard.terminate(Duration::from_secs(20));
}

/// The acceptance of the strict policy through the Kubernetes proxy: while the database is down a
/// change and an exec session get 503 `audit_unavailable` and the fake apiserver sees nothing;
/// once it is back, changes succeed again within 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_keeps_changes_away_from_the_apiserver_while_the_database_is_down() {
    const CONFIGMAPS: &str = "/k8s-api/fake/api/v1/namespaces/default/configmaps";
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut postgres = Postgres::init(dir.path());
    let cluster = fake_cluster().await;
    let mut kuboard = start_kuboard(dir.path(), &postgres, "strict");
    kuboard.wait_ready(Duration::from_secs(60)).await;
    let token = kuboard.change_admin_password(NEW_PASSWORD).await;
    import_fake(&kuboard, &token, &cluster).await;
    let (status, body) = kuboard.post_json(CONFIGMAPS, &token, &configmap("before")).await;
    assert_eq!(status, 201, "{body}");
    // Its outcome event is written after the answer; the outage must not race it.
    postgres
        .wait_events("the first change", |events| {
            events.iter().filter(|event| event.resource == "configmaps").count() >= 2
        })
        .await;

    postgres.stop();
    let version_before = cluster.state.resource_version();
    let (status, body) = kuboard.post_json(CONFIGMAPS, &token, &configmap("refused")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("audit_unavailable")),
        "{body}"
    );
    let status_line = exec_session(&kuboard, &token).await;
    assert!(
        status_line.contains(" 503 "),
        "an exec session is refused too: {status_line}"
    );
    assert_eq!(
        cluster.state.resource_version(),
        version_before,
        "the apiserver saw no change"
    );
    let response = kuboard
        .client
        .get(kuboard.url("/readyz"))
        .send()
        .await
        .expect("send readyz");
    assert_eq!(response.status(), 503, "not ready while paused");
    let (status, system) = kuboard.get_json("/kuboard-api/system/status", &token).await;
    assert_eq!(status, 200, "{system}");
    assert_eq!(system["audit"]["state"], "paused", "{system}");
    assert!(!system.to_string().contains("postgresql://"), "{system}");

    postgres.start();
    let restarted = Instant::now();
    loop {
        let (status, body) = kuboard.post_json(CONFIGMAPS, &token, &configmap("after")).await;
        if status == 201 {
            break;
        }
        assert_eq!(
            (status, body["code"].as_str()),
            (503, Some("audit_unavailable")),
            "{body}"
        );
        assert!(restarted.elapsed() < Duration::from_secs(5), "not resumed within 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "strict through the proxy: changes resumed {:?} after the database started",
        restarted.elapsed()
    );
    kuboard.wait_ready(Duration::from_secs(5)).await;
    let configmaps = kuboard_testkit::resources::find("", "v1", "configmaps").expect("served");
    assert!(cluster.state.get(configmaps, Some("default"), "refused").is_err());
    assert!(cluster.state.get(configmaps, Some("default"), "after").is_ok());
    // Two events (pending and outcome) for each change that ran; none for the refused one.
    let events = postgres
        .wait_events("the proxied changes", |events| {
            events.iter().filter(|event| event.resource == "configmaps").count() >= 4
        })
        .await;
    let proxied: Vec<_> = events.iter().filter(|event| event.resource == "configmaps").collect();
    assert_eq!(proxied.len(), 4, "{proxied:#?}");
    assert!(
        proxied.iter().all(|event| event.username == "admin"),
        "the gate's events name the user too: {proxied:#?}"
    );
    assert_eq!(
        proxied.iter().filter(|event| event.decision == "pending").count(),
        2,
        "{proxied:#?}"
    );
    kuboard.terminate(Duration::from_secs(20));
}
