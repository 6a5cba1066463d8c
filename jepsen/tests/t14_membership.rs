//! The `membership` fault: one member is removed from the group (its data wiped) while the rest keeps
//! serving, and added back as a fresh member when the fault ends; afterwards it holds every value
//! written before and during its absence. Against the embedded group (`kuboard admin members`) and
//! etcd (`etcdctl member remove/add`, restart with `--initial-cluster-state=existing`).
//!
//! Needs root, iproute2, iptables, the `kuboard` binary (`cargo build -p kuboard`), etcd and etcdctl.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kuboard_jepsen::nemesis::{self, FaultKind, NemesisOptions, TimelineEvent};
use kuboard_jepsen::system::{Cluster, ClusterOptions, SystemKind};

mod common;
use common::kuboard_binary;

const HOLD: Duration = Duration::from_secs(4);

async fn client(endpoint: &str) -> Result<etcd_client::Client, etcd_client::Error> {
    let options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_millis(500))
        .with_timeout(Duration::from_secs(2));
    etcd_client::Client::connect([endpoint], Some(options)).await
}

/// Write `membership-N` keys through every endpoint in turn until `until`; returns the keys whose
/// write was acknowledged.
async fn write_keys(endpoints: Vec<String>, until: Instant) -> Vec<String> {
    let mut acknowledged = Vec::new();
    let mut round = 0usize;
    while Instant::now() < until {
        round += 1;
        let key = format!("membership-{round}");
        let endpoint = endpoints[round % endpoints.len()].clone();
        let attempt = async {
            let mut client = client(&endpoint).await?;
            client.put(key.clone(), "v", None).await
        };
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(3), attempt).await {
            acknowledged.push(key);
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    acknowledged
}

fn event<'a>(timeline: &'a [TimelineEvent], action: &str) -> &'a TimelineEvent {
    timeline
        .iter()
        .find(|event| event.fault == "membership" && event.action == action)
        .unwrap_or_else(|| panic!("no membership {action} in {timeline:#?}"))
}

async fn remove_and_add_back(kind: SystemKind) {
    let dir = tempfile::tempdir().expect("create a work dir");
    let options = ClusterOptions {
        kind,
        members: 3,
        kuboard_binary: kuboard_binary(),
        etcd_binary: PathBuf::from("/usr/bin/etcd"),
        work_dir: dir.path().join("members"),
    };
    let mut cluster = Cluster::start(&options).await.expect("the group forms");
    let endpoints: Vec<String> = (0..3).map(|index| cluster.endpoint(index)).collect();

    let started = Instant::now();
    let quiet = Duration::from_millis(500);
    let until = started + quiet + HOLD;
    let nemesis_options = NemesisOptions {
        faults: vec![FaultKind::Membership],
        quiet,
        hold: HOLD,
    };
    let current = Arc::new(Mutex::new(String::new()));
    let (timeline, acknowledged) = tokio::join!(
        nemesis::run(&mut cluster, &nemesis_options, started, until, current),
        write_keys(endpoints, until + Duration::from_secs(1))
    );
    let timeline = timeline.expect("the nemesis heals");
    let start = event(&timeline, "start");
    let stop = event(&timeline, "stop");
    eprintln!(
        "{kind:?}: {} / {}; {} writes acknowledged",
        start.detail,
        stop.detail,
        acknowledged.len()
    );
    let removed = (0..3)
        .find(|index| {
            start
                .detail
                .starts_with(&format!("removed {} ", cluster.member_name(*index)))
        })
        .unwrap_or_else(|| panic!("which member was removed? {}", start.detail));
    assert!(
        stop.detail
            .starts_with(&format!("added {} back", cluster.member_name(removed))),
        "{}",
        stop.detail
    );
    assert!(!cluster.is_removed(removed) && cluster.is_running(removed));
    assert!(
        acknowledged.len() > 20,
        "the group stopped taking writes: {}",
        acknowledged.len()
    );

    // The re-added member started empty: it must have caught up with everything acknowledged.
    cluster
        .wait_ready(Duration::from_secs(60))
        .await
        .expect("every member answers after the change");
    let mut removed_client = client(&cluster.endpoint(removed))
        .await
        .expect("connect to the re-added member");
    let listed = removed_client.member_list().await.expect("list the members");
    assert_eq!(listed.members().len(), 3, "{:?}", listed.members());
    let read = removed_client
        .get("membership-", Some(etcd_client::GetOptions::new().with_prefix()))
        .await
        .expect("a linearizable read through the re-added member");
    let present: std::collections::BTreeSet<String> = read
        .kvs()
        .iter()
        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
        .collect();
    let missing: Vec<&String> = acknowledged.iter().filter(|key| !present.contains(*key)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged writes missing on the re-added member: {missing:?}"
    );
    assert!(cluster.crashed_members().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_of_the_embedded_group_is_removed_and_added_back_fresh() {
    remove_and_add_back(SystemKind::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_member_is_removed_and_added_back_fresh() {
    remove_and_add_back(SystemKind::Etcd).await;
}
