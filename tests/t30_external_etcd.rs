//! `kuboard serve` on an external etcd (KUBOARD_ETCD_*), end to end through the real binary and
//! real etcd 3.4 members on loopback: a plain 3-member cluster shared with unrelated keys, TLS client
//! certificates with password auth, unreachable endpoints, and certificate files that cannot work.

mod common;

use std::time::{Duration, Instant};

use common::{etcd_entries, make_test_pki, run_to_completion, Replica, ADMIN_PASSWORD};
use kuboard_storage::testing::{EtcdClientTls, EtcdCluster, EtcdClusterOptions};

const START_TIMEOUT: Duration = Duration::from_secs(30);
const NEW_PASSWORD: &str = "Etcd-backed-Pa55word";
const ETCD_ROOT_PASSWORD: &str = "etcd-root-Pa55-for-tests";

fn phase(name: &str) {
    eprintln!("--- phase: {name}");
}

/// Keys another user of a shared etcd keeps, chosen to sit right beside the prefix `/kuboard/`.
fn unrelated_keys() -> Vec<(Vec<u8>, Vec<u8>)> {
    vec![
        (b"/kuboard".to_vec(), b"the prefix without its slash".to_vec()),
        (b"/kuboard0".to_vec(), b"the first key after the prefix range".to_vec()),
        (b"/kuboard.".to_vec(), b"a key just before the prefix range".to_vec()),
        (b"/kuboardx/users/admin".to_vec(), b"not ours".to_vec()),
        (b"/registry/pods/default/web-0".to_vec(), vec![0, 159, 146, 150, 255]),
        (b"kuboard/users/admin".to_vec(), b"no leading slash".to_vec()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_member_etcd_shared_with_other_keys() {
    let etcd = EtcdCluster::start(3).await.expect("start a 3-member etcd");
    let endpoints = etcd.client_endpoints().join(",");
    let mut client = etcd_client::Client::connect(etcd.client_endpoints(), None)
        .await
        .expect("connect to etcd");

    phase("another user's keys outside the prefix, written before kuboard starts");
    for (key, value) in unrelated_keys() {
        client.put(key, value, None).await.expect("write an unrelated key");
    }
    let before = etcd_entries(&mut client, b"").await;
    assert_eq!(before.len(), unrelated_keys().len());

    let data = tempfile::tempdir().expect("create data dir");
    let logs = tempfile::tempdir().expect("create log dir");
    let env = [("KUBOARD_ETCD_ENDPOINTS", endpoints.as_str())];
    let mut replica = Replica::start_with(&data.path().join("data"), logs.path(), &env);
    replica.wait_healthy(START_TIMEOUT).await;
    let ready_after = replica.wait_ready_within(START_TIMEOUT).await;
    eprintln!("ready after {} ms", ready_after.as_millis());

    phase("admin logs in with the default password and changes it");
    let token = replica.change_admin_password(NEW_PASSWORD).await;

    phase("status says etcd with 3 members, a leader and a revision");
    let (code, status) = replica.get_json("/kuboard-api/system/status", &token).await;
    assert_eq!(code, 200, "{status}");
    assert_eq!(status["backend"], "etcd", "{status}");
    let members = status["members"].as_array().expect("members is a list");
    assert_eq!(members.len(), 3, "{status}");
    assert!(members.iter().all(|member| member["healthy"] == true), "{status}");
    let leader = status["leader"].as_u64().expect("a leader");
    assert!(
        members
            .iter()
            .any(|member| member["id"].as_u64() == Some(leader) && member["role"] == "leader"),
        "{status}"
    );
    assert!(status["revision"].as_i64().expect("a revision") > 0, "{status}");

    phase("kuboard's keys live under /kuboard/ only");
    let ours = etcd_entries(&mut client, b"/kuboard/").await;
    assert!(
        ours.iter().any(|(key, ..)| key == b"/kuboard/users/admin"),
        "admin is stored under the prefix: {:?}",
        ours.iter()
            .map(|(key, ..)| String::from_utf8_lossy(key))
            .collect::<Vec<_>>()
    );

    phase("logout ends the session");
    let (code, body) = replica
        .post_json("/kuboard-api/auth/logout", &token, &serde_json::json!({}))
        .await;
    assert!(code == 200 || code == 204, "logout: {code} {body}");
    let (code, _) = replica.get_json("/kuboard-api/auth/me", &token).await;
    assert_eq!(code, 401, "the session ended with the logout");

    phase("the password change survives a restart of the replica");
    replica.stop();
    replica.restart();
    replica.wait_ready_within(START_TIMEOUT).await;
    assert_eq!(replica.login("admin", ADMIN_PASSWORD).await.status(), 401);
    let token = replica.login_token("admin", NEW_PASSWORD).await;
    let (code, status) = replica.get_json("/kuboard-api/system/status", &token).await;
    assert_eq!(code, 200);
    assert_eq!(status["backend"], "etcd");

    phase("the keys outside the prefix are untouched, byte for byte and revision for revision");
    let outside: Vec<_> = etcd_entries(&mut client, b"")
        .await
        .into_iter()
        .filter(|(key, ..)| !key.starts_with(b"/kuboard/"))
        .collect();
    assert_eq!(outside, before);
    replica.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_with_client_certificates_and_auth() {
    let pki_dir = tempfile::tempdir().expect("create PKI dir");
    let pki = make_test_pki(pki_dir.path());
    let etcd = EtcdCluster::start_with(EtcdClusterOptions {
        members: 1,
        client_tls: Some(EtcdClientTls {
            cert_file: pki.server_cert.clone(),
            key_file: pki.server_key.clone(),
            trusted_ca_file: pki.ca.clone(),
        }),
    })
    .await
    .expect("start a TLS etcd");
    let endpoints = etcd.client_endpoints();
    assert!(endpoints[0].starts_with("https://"));

    phase("enable etcd auth with a root user");
    let tls = || {
        etcd_client::TlsOptions::new()
            .ca_certificate(etcd_client::Certificate::from_pem(
                std::fs::read(&pki.ca).expect("read CA"),
            ))
            .identity(etcd_client::Identity::from_pem(
                std::fs::read(&pki.client_cert).expect("read client cert"),
                std::fs::read(&pki.client_key).expect("read client key"),
            ))
    };
    let mut admin = etcd_client::Client::connect(&endpoints, Some(etcd_client::ConnectOptions::new().with_tls(tls())))
        .await
        .expect("connect to the TLS etcd");
    admin
        .user_add("root", ETCD_ROOT_PASSWORD, None)
        .await
        .expect("add root");
    admin.role_add("root").await.expect("add role root");
    admin.user_grant_role("root", "root").await.expect("grant root");
    admin.auth_enable().await.expect("enable auth");

    let data = tempfile::tempdir().expect("create data dir");
    let logs = tempfile::tempdir().expect("create log dir");
    // Bare host:port entries, as Kuboard's install guide writes them: with TLS files they mean https.
    let bare = endpoints[0].trim_start_matches("https://").to_string();
    let (ca, cert, key) = (
        pki.ca.display().to_string(),
        pki.client_cert.display().to_string(),
        pki.client_key.display().to_string(),
    );
    let env = [
        ("KUBOARD_ETCD_ENDPOINTS", bare.as_str()),
        ("KUBOARD_ETCD_CACERT", ca.as_str()),
        ("KUBOARD_ETCD_CERT", cert.as_str()),
        ("KUBOARD_ETCD_KEY", key.as_str()),
        ("KUBOARD_ETCD_USERNAME", "root"),
        ("KUBOARD_ETCD_PASSWORD", ETCD_ROOT_PASSWORD),
        ("KUBOARD_ETCD_PREFIX", "/apps/kuboard/"),
    ];
    let mut replica = Replica::start_with(&data.path().join("data"), logs.path(), &env);
    replica.wait_healthy(START_TIMEOUT).await;
    replica.wait_ready_within(START_TIMEOUT).await;

    phase("admin logs in, changes the password, and status says etcd");
    let token = replica.change_admin_password(NEW_PASSWORD).await;
    let (code, status) = replica.get_json("/kuboard-api/system/status", &token).await;
    assert_eq!(code, 200, "{status}");
    assert_eq!(status["backend"], "etcd");
    assert_eq!(status["members"].as_array().map(Vec::len), Some(1), "{status}");

    phase("the keys are under the configured prefix");
    let mut root = etcd_client::Client::connect(
        &endpoints,
        Some(
            etcd_client::ConnectOptions::new()
                .with_tls(tls())
                .with_user("root", ETCD_ROOT_PASSWORD),
        ),
    )
    .await
    .expect("connect to the TLS etcd as root");
    let ours = etcd_entries(&mut root, b"/apps/kuboard/").await;
    assert!(ours.iter().any(|(key, ..)| key == b"/apps/kuboard/users/admin"));

    phase("the etcd password never appears in the replica's log");
    replica.stop();
    let log = replica.log();
    assert!(!log.contains(ETCD_ROOT_PASSWORD), "the etcd password is in the log");
    assert!(!log.contains(NEW_PASSWORD), "the admin password is in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_etcd_is_not_ready_and_recovers_by_itself() {
    let mut etcd = EtcdCluster::start(1).await.expect("start etcd");
    let endpoint = etcd.client_endpoint(0).to_string();
    etcd.stop(0).await.expect("stop etcd");

    phase("with etcd down the replica still comes up within seconds");
    let data = tempfile::tempdir().expect("create data dir");
    let logs = tempfile::tempdir().expect("create log dir");
    let started = Instant::now();
    let mut replica = Replica::start_with(
        &data.path().join("data"),
        logs.path(),
        &[("KUBOARD_ETCD_ENDPOINTS", endpoint.as_str())],
    );
    let healthy_after = replica.wait_healthy(Duration::from_secs(5)).await;
    eprintln!("healthy after {} ms with etcd down", healthy_after.as_millis());
    assert!(started.elapsed() < Duration::from_secs(5));

    phase("/readyz is 503 with a reason, a login is 503 store_unavailable");
    let (code, body) = replica.get_anonymous("/readyz").await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["code"], "store_unavailable", "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    let response = replica.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.expect("error body");
    assert_eq!(body["code"], "store_unavailable", "{body}");

    phase("the log has an ERROR line naming the endpoint and the cause");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let log = replica.log();
        if log
            .lines()
            .any(|line| line.contains("ERROR") && line.contains(&endpoint) && line.contains("cannot connect"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no ERROR line naming {endpoint}; log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(replica.exited().is_none(), "the replica keeps running");

    phase("etcd comes back on the same port: the replica becomes ready by itself");
    etcd.restart(0).await.expect("restart etcd");
    let ready_after = replica.wait_ready_within(Duration::from_secs(30)).await;
    eprintln!("ready {} ms after etcd came back", ready_after.as_millis());
    replica.change_admin_password(NEW_PASSWORD).await;
    replica.stop();
}

#[test]
fn certificate_files_that_cannot_work_stop_the_start_naming_the_file() {
    let dir = tempfile::tempdir().expect("create temp dir");
    let pki = make_test_pki(dir.path());
    let missing = dir.path().join("no-such-client.pem").display().to_string();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\n%%% not base64 %%%\n-----END CERTIFICATE-----\n",
    )
    .expect("write garbage PEM");
    let garbage = garbage.display().to_string();
    let not_a_key = pki.ca.display().to_string();
    let (ca, cert, key) = (
        pki.ca.display().to_string(),
        pki.client_cert.display().to_string(),
        pki.client_key.display().to_string(),
    );
    let data_dir = dir.path().join("data").display().to_string();
    let cases: [(&str, &str, &str, &str, &str); 4] = [
        (
            "a missing client certificate",
            "KUBOARD_ETCD_CERT",
            ca.as_str(),
            missing.as_str(),
            key.as_str(),
        ),
        (
            "a garbage CA certificate",
            "KUBOARD_ETCD_CACERT",
            garbage.as_str(),
            cert.as_str(),
            key.as_str(),
        ),
        (
            "a garbage client certificate",
            "KUBOARD_ETCD_CERT",
            ca.as_str(),
            garbage.as_str(),
            key.as_str(),
        ),
        (
            "a key file without a key",
            "KUBOARD_ETCD_KEY",
            ca.as_str(),
            cert.as_str(),
            not_a_key.as_str(),
        ),
    ];
    for (what, variable, ca, cert, key) in cases {
        phase(what);
        let started = Instant::now();
        let finished = run_to_completion(
            &["serve"],
            &[
                ("KUBOARD_SERVER_ADDR", "127.0.0.1"),
                ("KUBOARD_SERVER_PORT", &common::free_port().to_string()),
                ("KUBOARD_DATA_DIR", &data_dir),
                // A port nobody listens on: the start must fail on the files, before any network.
                ("KUBOARD_ETCD_ENDPOINTS", "127.0.0.1:9"),
                ("KUBOARD_ETCD_CACERT", ca),
                ("KUBOARD_ETCD_CERT", cert),
                ("KUBOARD_ETCD_KEY", key),
            ],
            Duration::from_secs(10),
        );
        assert_eq!(finished.status.code(), Some(2), "{what}: {}", finished.stderr);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: took {:?}",
            started.elapsed()
        );
        let lines: Vec<&str> = finished.stderr.lines().filter(|line| !line.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{what}: one line expected: {}", finished.stderr);
        let file = match variable {
            "KUBOARD_ETCD_CACERT" => ca,
            "KUBOARD_ETCD_CERT" => cert,
            _ => key,
        };
        assert!(lines[0].starts_with("error: "), "{what}: {}", lines[0]);
        assert!(
            lines[0].contains(variable),
            "{what}: the line names {variable}: {}",
            lines[0]
        );
        assert!(lines[0].contains(file), "{what}: the line names {file}: {}", lines[0]);
    }
}
