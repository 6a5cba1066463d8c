//! Three `kuboard serve` replicas on loopback forming their own Raft group: one group, shared
//! state, and a leader killed with `kill -9` during a stream of writes.

mod common;

use std::time::{Duration, Instant};

use common::{Group, ADMIN_PASSWORD};
use serde_json::{json, Value};

const START_TIMEOUT: Duration = Duration::from_secs(60);

fn phase(name: &str) {
    eprintln!("--- phase: {name}");
}

/// Log in as admin on any replica, retrying while the group is still electing (bounded).
async fn login_anywhere(group: &Group, password: &str) -> String {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        for index in group.running() {
            let response = group.replicas[index].login("admin", password).await;
            if response.status() == 200 {
                let body: Value = response.json().await.expect("login answers JSON");
                return body["token"].as_str().expect("token").to_string();
            }
        }
        assert!(
            Instant::now() < deadline,
            "admin could not log in anywhere; logs:\n{}",
            group.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn three_replicas_form_one_group_and_share_state() {
    let mut group = Group::start(3);
    group.wait_all_ready(START_TIMEOUT).await;
    let token = login_anywhere(&group, ADMIN_PASSWORD).await;
    let leader = group.wait_for_leader(&token, START_TIMEOUT).await;

    phase("every replica shows the same three members and one leader");
    for replica in &group.replicas {
        let (code, status) = replica.get_json("/kuboard-api/system/status", &token).await;
        assert_eq!(code, 200, "status: {status}");
        assert_eq!(status["backend"], "raft");
        let members = status["members"].as_array().expect("members list");
        let mut ids: Vec<u64> = members.iter().map(|m| m["id"].as_u64().expect("member id")).collect();
        ids.sort_unstable();
        assert_eq!(ids, [1, 2, 3], "members: {status}");
        let leaders: Vec<&Value> = members.iter().filter(|m| m["role"] == "leader").collect();
        assert_eq!(leaders.len(), 1, "exactly one leader: {status}");
        assert_eq!(
            leaders[0]["id"].as_u64(),
            Some(leader as u64 + 1),
            "same leader everywhere: {status}"
        );
        assert_eq!(status["leader"].as_u64(), Some(leader as u64 + 1));
    }

    phase("a session created on one replica is accepted by the others");
    for replica in &group.replicas {
        let (code, me) = replica.get_json("/kuboard-api/auth/me", &token).await;
        assert_eq!(code, 200, "session on replica {}: {me}", replica.port);
        assert_eq!(me["username"], "admin");
    }

    phase("a password change written through a follower is read at once on the others");
    let follower = (leader + 1) % 3;
    let new_password = "changed-On-A-Follower-1";
    let (code, body) = group.replicas[follower]
        .post_json(
            "/kuboard-api/auth/password",
            &token,
            &json!({ "current_password": ADMIN_PASSWORD, "new_password": new_password }),
        )
        .await;
    assert_eq!(code, 200, "password change through follower {}: {body}", follower + 1);
    for (index, replica) in group.replicas.iter().enumerate() {
        assert_eq!(
            replica.login("admin", ADMIN_PASSWORD).await.status(),
            401,
            "old password still accepted on replica {}",
            index + 1
        );
        assert_eq!(
            replica.login("admin", new_password).await.status(),
            200,
            "new password on replica {}",
            index + 1
        );
    }
}

#[tokio::test]
async fn leader_killed_during_writes_fails_over_and_loses_nothing() {
    let mut group = Group::start(3);
    group.wait_all_ready(START_TIMEOUT).await;
    let token = login_anywhere(&group, ADMIN_PASSWORD).await;
    let leader = group.wait_for_leader(&token, START_TIMEOUT).await;
    let survivors: Vec<usize> = (0..3).filter(|index| *index != leader).collect();
    eprintln!("leader is replica {}", leader + 1);

    // Each login is a write (a new session in the store); an acknowledged login is a token that
    // must stay valid. Writes go to the survivors, which forward to whoever leads.
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .expect("HTTP client");
    let login_urls: Vec<String> = group
        .replicas
        .iter()
        .map(|r| r.url("/kuboard-api/auth/login"))
        .collect();
    let login_once = |index: usize| {
        let client = quick.clone();
        let url = login_urls[index].clone();
        async move {
            let response = client
                .post(url)
                .json(&json!({ "username": "admin", "password": ADMIN_PASSWORD }))
                .send()
                .await
                .ok()?;
            if response.status() != 200 {
                return None;
            }
            let body: Value = response.json().await.ok()?;
            body["token"].as_str().map(str::to_string)
        }
    };

    phase("writes flow before the kill");
    let mut acknowledged = Vec::new();
    for round in 0..10 {
        let token = login_once(survivors[round % 2]).await.expect("login before the kill");
        acknowledged.push(token);
    }

    phase("kill -9 the leader and keep writing");
    group.replicas[leader].kill9();
    let killed_at = Instant::now();
    let mut first_write_after_kill = None;
    let mut attempts = 0;
    while killed_at.elapsed() < Duration::from_secs(20) && acknowledged.len() < 60 {
        attempts += 1;
        if let Some(token) = login_once(survivors[attempts % 2]).await {
            if first_write_after_kill.is_none() {
                first_write_after_kill = Some(killed_at.elapsed());
            }
            acknowledged.push(token);
        } else {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let failover = first_write_after_kill.expect("no write succeeded within 20 s of killing the leader");
    eprintln!(
        "failover: first acknowledged write {} ms after kill -9 of the leader ({} writes acknowledged in all)",
        failover.as_millis(),
        acknowledged.len()
    );
    assert!(
        failover < Duration::from_secs(2),
        "failover took {failover:?}; logs:\n{}",
        group.logs()
    );

    phase("every acknowledged write is present on the survivors");
    for index in &survivors {
        for token in &acknowledged {
            let (code, _) = group.replicas[*index].get_json("/kuboard-api/auth/me", token).await;
            assert_eq!(code, 200, "an acknowledged session is missing on replica {}", index + 1);
        }
    }

    phase("the killed replica restarts, rejoins and catches up");
    group.replicas[leader].restart();
    group.replicas[leader].wait_ready(START_TIMEOUT).await;
    group.wait_for_leader(&token, START_TIMEOUT).await;
    let (_, survivor_status) = group.replicas[survivors[0]]
        .get_json("/kuboard-api/system/status", &token)
        .await;
    let target_revision = survivor_status["revision"].as_i64().expect("revision");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, status) = group.replicas[leader]
            .get_json("/kuboard-api/system/status", &token)
            .await;
        if code == 200 && status["revision"].as_i64().unwrap_or(0) >= target_revision {
            break;
        }
        assert!(Instant::now() < deadline, "rejoined replica did not catch up: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for token in &acknowledged {
        let (code, _) = group.replicas[leader].get_json("/kuboard-api/auth/me", token).await;
        assert_eq!(code, 200, "an acknowledged session is missing on the rejoined replica");
    }
}
