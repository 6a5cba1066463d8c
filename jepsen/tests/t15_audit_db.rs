//! The audit database as a host and the `audit-db` fault: the members log into a PostgreSQL on a host
//! of the test network; `kill -9` takes it down (the members keep running), healing starts it again
//! on its data, and events made while it was down (policy `buffered`) arrive after it is back.
//!
//! Needs root, iproute2, iptables, PostgreSQL 15 and the `kuboard` binary (`cargo build -p kuboard`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kuboard_jepsen::nemesis::{self, FaultKind, NemesisOptions};
use kuboard_jepsen::system::{AuditPolicyChoice, Cluster, ClusterFeatures, ClusterOptions, SystemKind};

mod common;
use common::kuboard_binary;

fn login_events(cluster: &Cluster) -> Option<u64> {
    let rows = cluster
        .audit_db_query("SELECT count(*) FROM kuboard_audit WHERE verb = 'login'")
        .ok()?;
    rows.first()?.first()?.parse().ok()
}

/// Wait until the audit table holds at least `count` login events; returns how many it holds.
async fn wait_login_events(cluster: &Cluster, count: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = login_events(cluster).unwrap_or(0);
        if seen >= count {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{seen} login events in the audit table after 30 s, expected {count}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_database_is_killed_and_restarted_and_buffered_events_arrive() {
    let dir = tempfile::tempdir().expect("create a work dir");
    let options = ClusterOptions {
        kind: SystemKind::Embedded,
        members: 3,
        kuboard_binary: kuboard_binary(),
        etcd_binary: PathBuf::from("/usr/bin/etcd"),
        work_dir: dir.path().join("members"),
    };
    let features = ClusterFeatures {
        audit: Some(AuditPolicyChoice::Buffered),
        ..ClusterFeatures::default()
    };
    let mut cluster = Cluster::start_with(&options, &features)
        .await
        .expect("the group forms with its audit database");
    assert!(cluster.audit_db_is_up());
    let first_pid = cluster.audit_db_pid().expect("a pid");
    let uri = cluster.audit_db_uri().expect("a connection string");
    assert!(uri.starts_with("postgresql://kuboard@198.18."), "{uri}");
    assert_eq!(cluster.network().hosts().len(), 4, "the database has a host of its own");

    // Logins are audited: the password change's two logins and this one.
    cluster.admin_token().await.expect("log in as admin");
    let before = wait_login_events(&cluster, 3).await;

    // One fault round: the database killed for the hold, restarted at its end.
    let started = Instant::now();
    let quiet = Duration::from_millis(200);
    let hold = Duration::from_secs(4);
    let nemesis_options = NemesisOptions {
        faults: vec![FaultKind::AuditDb],
        quiet,
        hold,
    };
    let current = Arc::new(Mutex::new(String::new()));
    let timeline = nemesis::run(&mut cluster, &nemesis_options, started, started + quiet + hold, current)
        .await
        .expect("the nemesis heals");
    let start = timeline
        .iter()
        .find(|event| event.fault == "audit-db" && event.action == "start")
        .unwrap_or_else(|| panic!("no audit-db start in {timeline:#?}"));
    assert_eq!(start.detail, format!("kill -9 audit database (pid {first_pid})"));
    assert!(timeline
        .iter()
        .any(|event| event.fault == "audit-db" && event.action == "stop"));
    assert!(cluster.audit_db_is_up());
    assert_ne!(
        cluster.audit_db_pid(),
        Some(first_pid),
        "the database was not restarted"
    );
    assert!(cluster.crashed_members().is_empty(), "a member died with its database");

    // The database kept its data across the crash, and new events reach it.
    assert!(
        login_events(&cluster).unwrap_or(0) >= before,
        "events were lost in the crash"
    );
    cluster.admin_token().await.expect("log in as admin after the restart");
    let after = wait_login_events(&cluster, before + 1).await;
    eprintln!("login events: {before} before the crash, {after} after the restart");

    // Killed by hand: a login while it is down is still accepted (policy buffered) and its event
    // arrives once the database is back.
    cluster.kill_audit_db().expect("kill the database");
    assert!(!cluster.audit_db_is_up());
    assert!(
        cluster.audit_db_query("SELECT 1").is_err(),
        "a killed database answered"
    );
    cluster
        .admin_token()
        .await
        .expect("a login while the audit database is down (buffered)");
    let restart = Instant::now();
    cluster.restart_audit_db().expect("restart the database");
    eprintln!("restart after kill -9 took {} ms", restart.elapsed().as_millis());
    let last = wait_login_events(&cluster, after + 1).await;
    eprintln!("login events: {last} after the login made while the database was down");
}
