//! `kuboard admin members` against real `kuboard serve` replicas: listing, adding a fourth replica
//! (which joins, never initialises) and removing it, bringing back a replica whose data dir was
//! wiped (it refuses to form a second group until it is replaced), refusals of bad input and of
//! callers without rights, and the raft metrics on `/metrics`.

mod common;

use std::time::{Duration, Instant};

use common::{free_port, run_to_completion, Finished, Group, Replica, ADMIN_PASSWORD};
use serde_json::{json, Value};

const START_TIMEOUT: Duration = Duration::from_secs(60);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(180);
/// The admin's password after the first-start change (a session with the default password may do
/// nothing but change it).
const PASSWORD: &str = "Group-Membership-Pass-1";
const NEW_PASSWORD: &str = "changed-While-Wiped-7";

fn phase(name: &str) {
    eprintln!("--- phase: {name}");
}

/// `kuboard admin members <args>` to completion.
fn members(args: &[&str]) -> Finished {
    let mut full = vec!["admin", "members"];
    full.extend_from_slice(args);
    let finished = run_to_completion(&full, &[], COMMAND_TIMEOUT);
    eprintln!(
        "$ kuboard admin members {}\n-> {}\n{}{}",
        args.join(" "),
        finished.status,
        finished.stdout,
        finished.stderr
    );
    finished
}

/// `kuboard admin members <words> --server URL --password PASSWORD`.
fn members_via(url: &str, password: &str, words: &[&str]) -> Finished {
    let mut args = words.to_vec();
    args.extend_from_slice(&["--server", url, "--password", password]);
    members(&args)
}

fn assert_exit(finished: &Finished, code: i32, fragment: &str) {
    assert_eq!(
        finished.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        finished.stdout,
        finished.stderr
    );
    let output = format!("{}{}", finished.stdout, finished.stderr);
    assert!(output.contains(fragment), "{fragment:?} not in:\n{output}");
}

/// Log in as admin on any running replica, retrying while the group is still electing (bounded).
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

/// The member ids in a status or members answer, sorted.
fn member_ids(answer: &Value) -> Vec<u64> {
    let mut ids: Vec<u64> = answer["members"]
        .as_array()
        .map(|members| members.iter().filter_map(|m| m["id"].as_u64()).collect())
        .unwrap_or_default();
    ids.sort_unstable();
    ids
}

/// Wait until `/kuboard-api/system/status` on every replica of `indexes` shows exactly the members
/// `ids` and the same single leader; returns that leader's id.
async fn wait_for_membership(group: &Group, indexes: &[usize], ids: &[u64], token: &str) -> u64 {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let mut seen = Vec::new();
        for index in indexes {
            let (code, status) = group.replicas[*index]
                .get_json("/kuboard-api/system/status", token)
                .await;
            let leaders = status["members"]
                .as_array()
                .map(|members| members.iter().filter(|m| m["role"] == "leader").count())
                .unwrap_or(0);
            seen.push((code, member_ids(&status), status["leader"].as_u64(), leaders));
        }
        let leader = seen[0].2;
        let settled = seen.iter().all(|(code, seen_ids, seen_leader, leaders)| {
            *code == 200 && seen_ids == ids && *seen_leader == leader && *leaders == 1
        });
        if settled {
            if let Some(leader) = leader {
                return leader;
            }
        }
        assert!(
            Instant::now() < deadline,
            "replicas {indexes:?} did not agree on members {ids:?} and one leader (seen {seen:?}); logs:\n{}",
            group.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Wait until `text` appears in the replica's log.
async fn wait_for_log(replica: &Replica, text: &str) {
    let deadline = Instant::now() + START_TIMEOUT;
    while !replica.log().contains(text) {
        assert!(
            Instant::now() < deadline,
            "{text:?} never appeared in the log:\n{}",
            replica.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The samples of `/metrics` without labels, by name.
async fn scrape(replica: &Replica) -> std::collections::BTreeMap<String, f64> {
    let text = replica
        .client
        .get(replica.url("/metrics"))
        .send()
        .await
        .expect("scrape /metrics")
        .text()
        .await
        .expect("read /metrics");
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (name, value) = line.split_once(' ')?;
            Some((name.to_string(), value.trim().parse::<f64>().ok()?))
        })
        .collect()
}

fn metric(samples: &std::collections::BTreeMap<String, f64>, name: &str) -> f64 {
    *samples
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing from /metrics: {samples:?}"))
}

#[tokio::test]
async fn members_are_listed_added_removed_and_replaced_through_any_replica() {
    let mut group = Group::start(3);
    group.wait_all_ready(START_TIMEOUT).await;
    login_anywhere(&group, ADMIN_PASSWORD).await;
    let token = group.replicas[0].change_admin_password(PASSWORD).await;
    let leader = group.wait_for_leader(&token, START_TIMEOUT).await;
    let follower = (leader + 1) % 3;
    let follower_url = group.replicas[follower].url("");

    phase("list through a follower shows the three members and the leader");
    let listed = members_via(&follower_url, PASSWORD, &["list"]);
    assert_exit(&listed, 0, "ID  ADDRESS");
    let rows: Vec<&str> = listed
        .stdout
        .lines()
        .skip(1)
        .take_while(|line| !line.contains("members ("))
        .collect();
    assert_eq!(rows.len(), 3, "{}", listed.stdout);
    assert_eq!(
        rows.iter().filter(|row| row.contains(" leader ")).count(),
        1,
        "{}",
        listed.stdout
    );
    assert!(
        listed.stdout.contains(&format!("leader: {}", leader + 1)),
        "{}",
        listed.stdout
    );
    let as_json = members_via(&follower_url, PASSWORD, &["list", "--json"]);
    assert_exit(&as_json, 0, "\"members\"");
    let view: Value = serde_json::from_str(&as_json.stdout).expect("--json prints JSON");
    assert_eq!(member_ids(&view), [1, 2, 3]);
    assert_eq!(view["replica_id"], follower as u64 + 1);
    // The membership (who, where, which role); each member's log position moves on its own.
    let membership = |members: &serde_json::Value| -> Vec<(serde_json::Value, serde_json::Value, serde_json::Value)> {
        members
            .as_array()
            .expect("members")
            .iter()
            .map(|member| (member["id"].clone(), member["address"].clone(), member["role"].clone()))
            .collect()
    };
    let before = membership(&view["members"]);

    phase("callers without credentials are refused");
    let no_credentials = members(&["list", "--server", &follower_url]);
    assert_exit(&no_credentials, 2, "--password");
    let wrong_password = members(&["list", "--server", &follower_url, "--password", "not-the-password"]);
    assert_exit(&wrong_password, 1, "invalid_credentials");
    let forged = members(&["remove", "2", "--server", &follower_url, "--token", &"A".repeat(43)]);
    assert_exit(&forged, 1, "401 Unauthorized unauthenticated");
    let replica = &group.replicas[follower];
    for (method, path) in [
        (reqwest::Method::GET, "/kuboard-api/system/members"),
        (reqwest::Method::POST, "/kuboard-api/system/members"),
        (reqwest::Method::DELETE, "/kuboard-api/system/members/2"),
        (reqwest::Method::PUT, "/kuboard-api/system/members/2"),
    ] {
        let response = replica
            .client
            .request(method.clone(), replica.url(path))
            .json(&json!({ "id": 9, "address": "127.0.0.1:9" }))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 401, "{method} {path}");
        let body: Value = response.json().await.expect("error JSON");
        assert_eq!(body["code"], "unauthenticated");
    }

    phase("bad input is refused with a clear error and changes nothing");
    let taken_5 = format!("5=127.0.0.1:{}", group.replicas[0].raft_port);
    let taken_2 = format!("2=127.0.0.1:{}", group.replicas[0].raft_port);
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["add", "garbage"], 2, "expected ID=HOST:PORT"),
        (vec!["add", "4=127.0.0.1"], 2, "not a peer address"),
        (vec!["add", "0=127.0.0.1:9"], 2, "not a member id"),
        (vec!["add", "4=http://127.0.0.1:9"], 2, "is a URL"),
        (vec!["remove", "x"], 2, "not a member id"),
        (vec!["remove", "42"], 1, "member_not_found"),
        (vec!["add", "2=127.0.0.1:9"], 1, "member_exists"),
        (vec!["add", &taken_5], 1, "address_in_use"),
        (vec!["replace", &taken_2], 1, "address_in_use"),
    ];
    for (words, code, fragment) in &cases {
        assert_exit(&members_via(&follower_url, PASSWORD, words), *code, fragment);
    }
    let (code, answer) = replica
        .post_json(
            "/kuboard-api/system/members",
            &token,
            &json!({ "id": 0, "address": "127.0.0.1:9" }),
        )
        .await;
    assert_eq!(
        (code, answer["code"].as_str()),
        (422, Some("invalid_member_id")),
        "{answer}"
    );
    let (code, answer) = replica
        .post_json(
            "/kuboard-api/system/members",
            &token,
            &json!({ "id": 7, "address": "nowhere" }),
        )
        .await;
    assert_eq!(
        (code, answer["code"].as_str()),
        (422, Some("invalid_address")),
        "{answer}"
    );
    let (code, after) = replica.get_json("/kuboard-api/system/members", &token).await;
    assert_eq!(code, 200);
    assert_eq!(
        membership(&after["members"]),
        before,
        "membership changed by refused requests"
    );

    phase("a fourth replica started with the peer list plus itself waits to be added");
    let fourth_port = free_port();
    let peers = format!("{},4=127.0.0.1:{fourth_port}", group.peer_list());
    let fourth = group.start_extra_member(fourth_port, &peers);
    group.replicas[fourth].wait_healthy(START_TIMEOUT).await;
    wait_for_log(&group.replicas[fourth], "the group already exists").await;
    let samples = scrape(&group.replicas[fourth]).await;
    assert_eq!(metric(&samples, "kuboard_raft_joining"), 1.0);
    assert_eq!(
        metric(&samples, "kuboard_raft_last_log_index"),
        0.0,
        "it initialised a log of its own"
    );

    phase("admin members add 4 (through replica 1) makes it a voting member on every replica");
    let started = Instant::now();
    let fourth_spec = format!("4=127.0.0.1:{fourth_port}");
    let added = members_via(&group.replicas[0].url(""), PASSWORD, &["add", &fourth_spec]);
    assert_exit(&added, 0, "member 4 at");
    eprintln!("add took {} ms", started.elapsed().as_millis());
    group.replicas[fourth].wait_ready(START_TIMEOUT).await;
    wait_for_membership(&group, &[0, 1, 2, 3], &[1, 2, 3, 4], &token).await;
    let (code, me) = group.replicas[fourth].get_json("/kuboard-api/auth/me", &token).await;
    assert_eq!(
        (code, me["username"].as_str()),
        (200, Some("admin")),
        "the session is known to the new member"
    );

    phase("admin members remove 4 (through replica 2) takes it out again");
    let removed = members_via(&group.replicas[1].url(""), PASSWORD, &["remove", "4"]);
    assert_exit(&removed, 0, "member 4 was removed");
    wait_for_membership(&group, &[0, 1, 2], &[1, 2, 3], &token).await;
    group.replicas[fourth].stop();

    phase("a follower whose data dir is wiped refuses to form a second group");
    let leader_id = wait_for_membership(&group, &[0, 1, 2], &[1, 2, 3], &token).await;
    let wiped = (0..3).find(|index| *index as u64 + 1 != leader_id).expect("a follower");
    let survivors: Vec<usize> = (0..3).filter(|index| *index != wiped).collect();
    let term_before = scrape(&group.replicas[survivors[0]]).await["kuboard_raft_term"];
    group.replicas[wiped].stop();
    group.replicas[wiped].wipe_data();
    group.replicas[wiped].restart();
    group.replicas[wiped].wait_healthy(START_TIMEOUT).await;
    wait_for_log(&group.replicas[wiped], "data directory was lost while it was a member").await;
    assert!(
        group.replicas[wiped].log().contains("kuboard admin members replace"),
        "the log tells the operator what to do:\n{}",
        group.replicas[wiped].log()
    );
    let samples = scrape(&group.replicas[wiped]).await;
    assert_eq!(metric(&samples, "kuboard_raft_admitted"), 0.0);
    assert_eq!(
        metric(&samples, "kuboard_raft_term"),
        0.0,
        "the wiped replica campaigned"
    );
    assert_eq!(
        metric(&samples, "kuboard_raft_last_log_index"),
        0.0,
        "the wiped replica wrote a log"
    );
    assert!(metric(&samples, "kuboard_raft_initialize_refusals_total") >= 1.0);
    let (code, _) = group.replicas[wiped].get_anonymous("/readyz").await;
    assert_eq!(code, 503, "a refused member is not ready");
    let leader_now = wait_for_membership(&group, &survivors, &[1, 2, 3], &token).await;
    assert_eq!(leader_now, leader_id, "the leader was not disturbed");
    let term_now = scrape(&group.replicas[survivors[0]]).await["kuboard_raft_term"];
    assert_eq!(term_now, term_before, "one group, no new election");

    phase("the password changes while the wiped replica is away");
    let (code, body) = group.replicas[survivors[0]]
        .post_json(
            "/kuboard-api/auth/password",
            &token,
            &json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD }),
        )
        .await;
    assert_eq!(code, 200, "password change: {body}");

    phase("admin members replace brings it back and it catches up");
    let started = Instant::now();
    let wiped_spec = format!("{}=127.0.0.1:{}", wiped + 1, group.replicas[wiped].raft_port);
    let replaced = members_via(
        &group.replicas[survivors[1]].url(""),
        NEW_PASSWORD,
        &["replace", &wiped_spec],
    );
    assert_exit(&replaced, 0, "was replaced by a fresh member");
    eprintln!("replace took {} ms", started.elapsed().as_millis());
    group.replicas[wiped].wait_ready(START_TIMEOUT).await;
    let token = group.replicas[wiped].login_token("admin", NEW_PASSWORD).await;
    assert_eq!(group.replicas[wiped].login("admin", PASSWORD).await.status(), 401);
    wait_for_membership(&group, &[0, 1, 2], &[1, 2, 3], &token).await;

    phase("every replica exposes plausible raft metrics, exactly one of them as leader");
    let mut leaders = 0;
    for replica in &group.replicas[..3] {
        let samples = scrape(replica).await;
        assert!(metric(&samples, "kuboard_raft_term") >= 1.0, "{samples:?}");
        let applied = metric(&samples, "kuboard_raft_applied_index");
        assert!(applied > 0.0, "{samples:?}");
        assert!(
            metric(&samples, "kuboard_raft_last_log_index") >= applied,
            "{samples:?}"
        );
        assert!(metric(&samples, "kuboard_raft_log_entries") > 0.0, "{samples:?}");
        assert!(metric(&samples, "kuboard_raft_leader_id") >= 1.0, "{samples:?}");
        assert_eq!(metric(&samples, "kuboard_raft_admitted"), 1.0, "{samples:?}");
        assert_eq!(
            metric(&samples, "kuboard_raft_peer_auth_failures_total"),
            0.0,
            "{samples:?}"
        );
        metric(&samples, "kuboard_raft_snapshot_index");
        metric(&samples, "kuboard_raft_commit_index");
        metric(&samples, "kuboard_raft_peer_rpc_errors_total");
        leaders += metric(&samples, "kuboard_raft_is_leader") as u32;
    }
    assert_eq!(leaders, 1, "exactly one replica reports kuboard_raft_is_leader 1");
}

#[tokio::test]
async fn a_single_replica_keeps_its_only_voter_and_needs_a_secret_to_grow() {
    let data = tempfile::tempdir().expect("data dir");
    let logs = tempfile::tempdir().expect("log dir");
    let mut replica = Replica::start(data.path(), logs.path());
    replica.wait_ready(START_TIMEOUT).await;
    replica.change_admin_password(PASSWORD).await;
    let url = replica.url("");
    assert_exit(&members_via(&url, PASSWORD, &["remove", "1"]), 1, "last_voter");
    assert_exit(
        &members_via(&url, PASSWORD, &["replace", "1=127.0.0.1:9"]),
        1,
        "no_cluster_secret",
    );
    assert_exit(
        &members_via(&url, PASSWORD, &["add", "2", "127.0.0.1:9"]),
        1,
        "no_cluster_secret",
    );
    let listed = members_via(&url, PASSWORD, &["list"]);
    assert_exit(&listed, 0, "leader  yes");
    assert!(
        listed
            .stdout
            .contains("1 members (raft backend), leader: 1; answered by replica 1"),
        "{}",
        listed.stdout
    );

    let samples = scrape(&replica).await;
    assert_eq!(metric(&samples, "kuboard_raft_is_leader"), 1.0);
    assert_eq!(metric(&samples, "kuboard_raft_leader_id"), 1.0);
    assert!(metric(&samples, "kuboard_raft_applied_index") > 0.0);
    replica.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_an_external_etcd_members_are_listed_but_changed_with_etcdctl() {
    let etcd = kuboard_storage::testing::EtcdCluster::start(1)
        .await
        .expect("start etcd (the etcd-server package provides it)");
    let endpoint = etcd.client_endpoint(0).to_string();
    let data = tempfile::tempdir().expect("data dir");
    let logs = tempfile::tempdir().expect("log dir");
    let mut replica = Replica::start_with(data.path(), logs.path(), &[("KUBOARD_ETCD_ENDPOINTS", &endpoint)]);
    replica.wait_ready_within(START_TIMEOUT).await;
    replica.change_admin_password(PASSWORD).await;
    let url = replica.url("");

    let listed = members_via(&url, PASSWORD, &["list", "--json"]);
    assert_exit(&listed, 0, "\"backend\": \"etcd\"");
    let view: Value = serde_json::from_str(&listed.stdout).expect("--json prints JSON");
    assert_eq!(view["members"].as_array().map(Vec::len), Some(1), "{view}");
    for words in [
        &["add", "2=127.0.0.1:9"][..],
        &["remove", "2"],
        &["replace", "2=127.0.0.1:9"],
    ] {
        let refused = members_via(&url, PASSWORD, words);
        assert_exit(&refused, 1, "not_supported");
        assert!(refused.stderr.contains("etcdctl member"), "{}", refused.stderr);
    }
    assert!(
        scrape(&replica)
            .await
            .keys()
            .all(|name| !name.starts_with("kuboard_raft_")),
        "raft metrics only with the embedded store"
    );
    replica.stop();
}
