//! The etcd v3 API of the embedded store, driven by the machine's real `etcdctl` 3.4 (and by the
//! Rust etcd client for what etcdctl cannot show): outputs are asserted exactly, and one test runs
//! the same etcdctl session against a real etcd and the embedded store and compares them.

// `kuboard serve` declares the etcd API module in src/main.rs; a test cannot import from a binary crate,
// so the same source is compiled in here to drive it over a store without a whole replica
// (tests/t45_etcdctl_parity.rs drives it through `kuboard serve`).
mod common;
mod etcdctl_support;

#[path = "../src/etcd_api/mod.rs"]
mod etcd_api;

/// kuboard's snapshot file and its taking/restoring, which `etcdctl snapshot save` streams.
#[allow(dead_code)]
#[path = "../src/version.rs"]
mod version;
#[allow(dead_code)]
#[path = "../src/store_admin"]
mod store_admin {
    pub mod snapshot_file;
    pub mod snapshot_store;
}
/// The one-member store the etcd API's unit tests (compiled in here too) open.
#[path = "../src/one_member_store.rs"]
mod one_member_store;
/// The process-wide password hashing slots, which the etcd API's Authenticate shares with the login.
#[allow(dead_code)]
#[path = "../src/auth"]
mod auth {
    pub mod password;
}

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use etcd_api::{cluster_id_from_peers, serve, EtcdApiConfig, EtcdApiIdentity, EtcdApiTls, SnapshotSource};
use kuboard_raft::{RaftStore, RaftStoreConfig};
use kuboard_storage::testing::EtcdCluster;
use kuboard_storage::Store;

use etcdctl_support::{Etcdctl, Printed, COMMAND_DEADLINE};

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A one-member embedded group serving the etcd API on a loopback port.
struct EmbeddedApi {
    store: RaftStore,
    address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl EmbeddedApi {
    async fn start(tls: Option<EtcdApiTls>) -> EmbeddedApi {
        EmbeddedApi::start_with(tls, false).await
    }

    /// With `snapshots`, `Maintenance.Snapshot` streams kuboard's snapshot file of the store.
    async fn start_with(tls: Option<EtcdApiTls>, snapshots: bool) -> EmbeddedApi {
        let dir = tempfile::tempdir().expect("tempdir");
        let peers = BTreeMap::from([(1, "127.0.0.1:10082".to_owned())]);
        let store = RaftStore::open(RaftStoreConfig {
            node_id: 1,
            data_dir: dir.path().to_owned(),
            peers: peers.clone(),
            peer_listen_addr: "127.0.0.1:0".parse().expect("literal address"),
            cluster_secret: None,
            heartbeat_ms: 50,
            election_timeout_ms: 300,
            snapshot_threshold: 10_000,
        })
        .await
        .expect("open the embedded store");
        // The store refreshes the term it puts in read headers a little after the election (every
        // 250 ms); etcd never answers with term 0, so the tests start once the term is there.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let header = store
                .range(kuboard_storage::RangeRequest::key("probe"))
                .await
                .expect("read the fresh store")
                .header;
            if header.raft_term >= 1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the store reports no raft term in read headers"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let address = listener.local_addr().expect("local address");
        let config = EtcdApiConfig {
            identity: EtcdApiIdentity {
                cluster_id: cluster_id_from_peers(&peers),
                client_port: Some(address.port()),
                client_urls: BTreeMap::new(),
                data_dir: Some(dir.path().to_owned()),
            },
            tls,
            snapshot: snapshots.then(|| snapshot_source(store.clone())),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(store.clone(), listener, config, async move {
            let _ = stopped.await;
        }));
        EmbeddedApi {
            store,
            address,
            stop: Some(stop),
            server: Some(server),
            _dir: dir,
        }
    }

    fn endpoint(&self) -> String {
        self.address.to_string()
    }

    /// Stop serving the API; the store stays open.
    async fn stop_api(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let result = tokio::time::timeout(Duration::from_secs(10), server)
                .await
                .expect("the API stops within 10 s");
            result.expect("server task").expect("server ends without error");
        }
    }

    async fn stop(mut self) {
        self.stop_api().await;
        self.store.shutdown().await.expect("store shutdown");
    }
}

/// Kuboard's snapshot of `store`, as `kuboard serve` wires it.
fn snapshot_source(store: RaftStore) -> SnapshotSource {
    std::sync::Arc::new(move || {
        let store = store.clone();
        Box::pin(async move {
            let snapshot =
                store_admin::snapshot_store::take_snapshot(&store, kuboard_storage::BackendKind::Raft, "embedded", 0)
                    .await?;
            snapshot.encode()
        })
    })
}

fn json(printed: &Printed) -> serde_json::Value {
    assert!(printed.success, "{printed:?}");
    serde_json::from_str(&printed.stdout).unwrap_or_else(|e| panic!("etcdctl printed no JSON ({e}): {printed:?}"))
}

/// The lease id in etcdctl's "lease <hex> granted with TTL(..)".
fn granted_lease(printed: &Printed) -> String {
    assert!(printed.success, "{printed:?}");
    let mut words = printed.stdout.split_whitespace();
    assert_eq!(words.next(), Some("lease"), "{printed:?}");
    let id = words.next().expect("lease id").to_string();
    assert_eq!(words.next(), Some("granted"), "{printed:?}");
    id
}

async fn wait_until<F, Fut>(what: &str, within: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if condition().await {
            return;
        }
        assert!(Instant::now() < deadline, "{what} did not happen within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_reads_and_writes_keys_as_on_etcd() {
    init_tracing();
    let api = EmbeddedApi::start(None).await;
    let etcdctl = Etcdctl::new(vec![api.endpoint()]);

    tracing::info!("--- put and get: single key, prefix, limit, older revision, keys only");
    etcdctl.check(&["put", "foo", "bar"], "OK\n").await;
    etcdctl.check(&["put", "foo2", "bar2"], "OK\n").await;
    etcdctl.check(&["put", "foo3", "bar3"], "OK\n").await;
    etcdctl.check(&["put", "foo", "bar-new"], "OK\n").await;
    etcdctl
        .check(&["get", "foo", "--prefix"], "foo\nbar-new\nfoo2\nbar2\nfoo3\nbar3\n")
        .await;
    etcdctl
        .check(
            &["get", "foo", "--prefix", "--limit", "2"],
            "foo\nbar-new\nfoo2\nbar2\n",
        )
        .await;
    etcdctl.check(&["get", "foo", "--rev=2"], "foo\nbar\n").await;
    etcdctl
        .check(&["get", "foo", "--prefix", "--keys-only"], "foo\n\nfoo2\n\nfoo3\n\n")
        .await;
    etcdctl
        .check(
            &[
                "get",
                "foo",
                "--prefix",
                "--sort-by=MODIFY",
                "--order=DESCEND",
                "--print-value-only",
            ],
            "bar-new\nbar3\nbar2\n",
        )
        .await;
    etcdctl
        .check(&["get", "--from-key", "foo2"], "foo2\nbar2\nfoo3\nbar3\n")
        .await;
    etcdctl.check(&["get", "nothing"], "").await;

    tracing::info!("--- JSON output carries the full header");
    let got = json(&etcdctl.run(&["get", "foo", "-w", "json"]).await);
    let header = &got["header"];
    assert_eq!(header["revision"], 5);
    assert_eq!(header["member_id"], 1);
    assert!(header["cluster_id"].as_u64().is_some_and(|id| id != 0), "{got}");
    assert!(header["raft_term"].as_u64().is_some_and(|term| term >= 1), "{got}");
    let kv = &got["kvs"][0];
    assert_eq!(kv["key"], "Zm9v", "base64 of foo");
    assert_eq!(kv["value"], "YmFyLW5ldw==", "base64 of bar-new");
    assert_eq!(
        (&kv["create_revision"], &kv["mod_revision"], &kv["version"]),
        (&2.into(), &5.into(), &2.into())
    );
    assert_eq!(got["count"], 1);

    tracing::info!("--- put keeping the value; errors read as etcd's");
    etcdctl.check(&["put", "foo3", "--ignore-value"], "OK\n").await;
    etcdctl.check(&["get", "foo3"], "foo3\nbar3\n").await;
    etcdctl
        .check_error(
            &["put", "missing", "--ignore-value"],
            "Error: etcdserver: key not found\n",
        )
        .await;
    etcdctl
        .check_error(&["put", "", "x"], "Error: etcdserver: key is not provided\n")
        .await;
    etcdctl
        .check_error(
            &["get", "foo", "--rev=100"],
            "Error: etcdserver: mvcc: required revision is a future revision\n",
        )
        .await;

    tracing::info!("--- delete a key, a prefix, nothing");
    etcdctl.check(&["del", "foo2"], "1\n").await;
    etcdctl.check(&["del", "foo", "--prefix"], "2\n").await;
    etcdctl.check(&["del", "nothing"], "0\n").await;
    etcdctl.check(&["get", "foo", "--prefix"], "").await;

    tracing::info!("--- txn from stdin: success, failure, interactive, JSON");
    etcdctl.check(&["put", "a", "1"], "OK\n").await;
    let printed = etcdctl
        .run_with_input(
            &["txn"],
            "value(\"a\") = \"1\"\n\nput b 2\nput c 3\n\nput d 4\n\n",
            COMMAND_DEADLINE,
        )
        .await;
    assert_eq!(printed.stdout, "SUCCESS\n\nOK\n\nOK\n", "{printed:?}");
    let printed = etcdctl
        .run_with_input(
            &["txn"],
            "value(\"a\") = \"9\"\n\nput b 2\n\nput d 4\n\n",
            COMMAND_DEADLINE,
        )
        .await;
    assert_eq!(printed.stdout, "FAILURE\n\nOK\n", "{printed:?}");
    let printed = etcdctl
        .run_with_input(
            &["txn", "-i"],
            "version(\"d\") > \"0\"\n\nget d\n\n\n",
            COMMAND_DEADLINE,
        )
        .await;
    assert_eq!(
        printed.stdout,
        "compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\nSUCCESS\n\nd\n4\n",
        "{printed:?}"
    );
    let printed = etcdctl
        .run_with_input(
            &["txn", "-w", "json"],
            "mod(\"a\") > \"0\"\n\nget a\ndel c\n\n\n",
            COMMAND_DEADLINE,
        )
        .await;
    let txn = json(&printed);
    assert_eq!(txn["succeeded"], true, "{txn}");
    let revision = txn["header"]["revision"].as_i64().expect("txn revision");
    let range = &txn["responses"][0]["Response"]["ResponseRange"];
    assert_eq!(range["kvs"][0]["value"], "MQ==", "{txn}");
    assert_eq!(
        range["header"]["revision"],
        revision - 1,
        "a txn reads the state before it"
    );
    let deleted = &txn["responses"][1]["Response"]["ResponseDeleteRange"];
    assert_eq!(deleted["deleted"], 1, "{txn}");
    assert_eq!(deleted["header"]["revision"], revision, "{txn}");

    tracing::info!("--- compaction: old revisions are gone with etcd's error");
    let compact_to = revision.to_string();
    etcdctl
        .check(&["compact", &compact_to], &format!("compacted revision {revision}\n"))
        .await;
    etcdctl
        .check_error(
            &["get", "a", "--rev=3"],
            "Error: etcdserver: mvcc: required revision has been compacted\n",
        )
        .await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_watches_from_a_revision() {
    init_tracing();
    let api = EmbeddedApi::start(None).await;
    let etcdctl = Etcdctl::new(vec![api.endpoint()]);

    tracing::info!("--- history: puts and a delete under a prefix, one key outside");
    etcdctl.check(&["put", "w/a", "1"], "OK\n").await; // revision 2
    etcdctl.check(&["put", "other", "x"], "OK\n").await; // 3
    etcdctl.check(&["put", "w/b", "2"], "OK\n").await; // 4
    etcdctl.check(&["put", "w/a", "3"], "OK\n").await; // 5
    etcdctl.check(&["del", "w/b"], "1\n").await; // 6

    tracing::info!("--- a watch from revision 2 replays the history in order");
    let lines = etcdctl.stream(&["watch", "w/", "--prefix", "--rev=2"], 11).await;
    assert_eq!(
        lines,
        ["PUT", "w/a", "1", "PUT", "w/b", "2", "PUT", "w/a", "3", "DELETE", "w/b"],
        "the delete's empty value line is not awaited"
    );

    tracing::info!("--- with previous values, from revision 5");
    let lines = etcdctl
        .stream(&["watch", "w/", "--prefix", "--rev=5", "--prev-kv"], 10)
        .await;
    assert_eq!(lines, ["PUT", "w/a", "1", "w/a", "3", "DELETE", "w/b", "2", "w/b", ""]);

    tracing::info!("--- a live watch sees new writes after the replay");
    let watcher = etcdctl.clone();
    let live = tokio::spawn(async move { watcher.stream(&["watch", "w/c", "--rev=6"], 3).await });
    // The watch may start before or after this put; from revision 6 it sees it either way.
    etcdctl.check(&["put", "w/c", "live"], "OK\n").await;
    let lines = live.await.expect("watch task");
    assert_eq!(lines, ["PUT", "w/c", "live"]);

    tracing::info!("--- a compacted start revision cancels the watch as etcd does");
    etcdctl.check(&["compact", "5"], "compacted revision 5\n").await;
    let printed = etcdctl.run(&["watch", "w/", "--prefix", "--rev=2"]).await;
    assert!(!printed.success, "{printed:?}");
    assert_eq!(
        printed.stderr,
        "watch was canceled (etcdserver: mvcc: required revision has been compacted)\n\
         Error: watch is canceled by the server\n"
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_leases_expire_keep_alive_and_list() {
    init_tracing();
    let api = EmbeddedApi::start(None).await;
    let etcdctl = Etcdctl::new(vec![api.endpoint()]);

    tracing::info!("--- grant, attach keys, time to live with keys");
    let long = granted_lease(&etcdctl.run(&["lease", "grant", "100"]).await);
    assert_eq!(long.len(), 16, "etcdctl prints lease ids as 16 hex digits");
    let short = granted_lease(&etcdctl.run(&["lease", "grant", "2"]).await);
    etcdctl
        .check(&["put", "--lease", &short, "leased/1", "v"], "OK\n")
        .await;
    etcdctl
        .check(&["put", "--lease", &short, "leased/2", "v"], "OK\n")
        .await;
    let printed = etcdctl.run(&["lease", "timetolive", &long, "--keys"]).await;
    assert_eq!(
        printed.stdout,
        format!("lease {long} granted with TTL(100s), remaining(100s), attached keys([])\n")
    );
    let printed = etcdctl.run(&["lease", "timetolive", &short, "--keys"]).await;
    assert!(
        printed
            .stdout
            .starts_with(&format!("lease {short} granted with TTL(2s), remaining(")),
        "{printed:?}"
    );
    assert!(
        printed.stdout.ends_with("attached keys([leased/1 leased/2])\n"),
        "{printed:?}"
    );

    tracing::info!("--- keep-alive once, list");
    etcdctl
        .check(
            &["lease", "keep-alive", "--once", &long],
            &format!("lease {long} keepalived with TTL(100)\n"),
        )
        .await;
    let printed = etcdctl.run(&["lease", "list"]).await;
    let mut lines: Vec<&str> = printed.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"found 2 leases"), "{printed:?}");
    lines.remove(0);
    lines.sort_unstable();
    let mut expected = vec![long.as_str(), short.as_str()];
    expected.sort_unstable();
    assert_eq!(lines, expected);

    tracing::info!("--- the short lease expires and takes its keys");
    let watcher = etcdctl.clone();
    wait_until("expiry of the 2 s lease", Duration::from_secs(15), || {
        let watcher = watcher.clone();
        async move { watcher.run(&["get", "leased/", "--prefix"]).await.stdout.is_empty() }
    })
    .await;
    etcdctl
        .check(
            &["lease", "timetolive", &short],
            &format!("lease {short} already expired\n"),
        )
        .await;

    tracing::info!("--- unknown leases: etcd's errors");
    etcdctl
        .check_error(
            &["lease", "revoke", "1234"],
            "Error: failed to revoke lease (etcdserver: requested lease not found)\n",
        )
        .await;
    etcdctl
        .check_error(
            &["put", "--lease", "1234", "k", "v"],
            "Error: etcdserver: requested lease not found\n",
        )
        .await;
    etcdctl
        .check(&["lease", "revoke", &long], &format!("lease {long} revoked\n"))
        .await;
    etcdctl.check(&["lease", "list"], "found 0 leases\n").await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_member_list_endpoint_status_and_health() {
    init_tracing();
    let api = EmbeddedApi::start(None).await;
    let etcdctl = Etcdctl::new(vec![api.endpoint()]);
    let port = api.address.port();

    tracing::info!("--- member list: the group's members with peer and client URLs");
    etcdctl
        .check(
            &["member", "list"],
            &format!("1, started, kuboard-1, http://127.0.0.1:10082, http://127.0.0.1:{port}, false\n"),
        )
        .await;

    tracing::info!("--- endpoint status: leader, version, raft term and index");
    let status = json(&etcdctl.run(&["endpoint", "status", "-w", "json"]).await);
    let status = &status[0]["Status"];
    assert_eq!(status["leader"], 1, "{status}");
    assert_eq!(status["header"]["member_id"], 1, "{status}");
    assert!(
        status["version"].as_str().is_some_and(|v| v.starts_with("3.4.")),
        "{status}"
    );
    assert!(status["dbSize"].as_i64().is_some_and(|size| size > 0), "{status}");
    assert!(status["raftIndex"].as_i64().is_some_and(|index| index >= 1), "{status}");
    assert!(status["raftTerm"].as_i64().is_some_and(|term| term >= 1), "{status}");
    let table = etcdctl.run(&["endpoint", "status"]).await;
    let fields: Vec<&str> = table.stdout.trim_end().split(", ").collect();
    assert_eq!(
        fields[..3],
        [
            api.endpoint().as_str(),
            "1",
            status["version"].as_str().expect("version")
        ]
    );
    assert_eq!(fields[4..6], ["true", "false"], "leader, not learner: {table:?}");

    tracing::info!("--- endpoint health");
    let health = etcdctl.run(&["endpoint", "health"]).await;
    assert!(health.success, "{health:?}");
    let expected = format!(
        "{} is healthy: successfully committed proposal: took = ",
        api.endpoint()
    );
    assert!(
        health.stderr.starts_with(&expected),
        "etcdctl prints health on stderr: {health:?}"
    );

    tracing::info!("--- snapshot save is refused with a reason, membership changes too");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("snapshot.db");
    let printed = etcdctl
        .run(&["snapshot", "save", file.to_str().expect("utf-8 path")])
        .await;
    assert!(!printed.success);
    assert!(
        printed.stderr.contains("kuboard admin snapshot save"),
        "the refusal names the tool that does it: {printed:?}"
    );
    let printed = etcdctl.run(&["member", "remove", "1"]).await;
    assert!(!printed.success);
    assert!(printed.stderr.contains("kuboard admin members"), "{printed:?}");
    api.stop().await;
}

/// One step of the comparison session.
enum Step {
    Run(&'static [&'static str]),
    Input(&'static [&'static str], &'static str),
    /// Read this many lines of a streaming command, then stop it.
    Stream(&'static [&'static str], usize),
    /// `lease grant`, remembering the id as `{lease}` for later steps.
    Grant(&'static [&'static str]),
    WithLease(&'static [&'static str]),
}

/// Identical revision numbers are expected (both stores start at 1 and count writes alike); ids,
/// terms and timings differ by nature.
fn normalise(text: &str, lease: Option<&str>) -> String {
    let mut text = text.to_string();
    if let Some(lease) = lease {
        text = text.replace(lease, "<lease>");
    }
    let mut out = String::new();
    for line in text.lines() {
        let line = match line.find(" took = ") {
            Some(at) => format!("{}<took>", &line[..at + 8]),
            None => line.to_string(),
        };
        out.push_str(&normalise_json(&line));
        out.push('\n');
    }
    out
}

fn normalise_json(line: &str) -> String {
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(line) else {
        return line.to_string();
    };
    fn walk(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, field) in map.iter_mut() {
                    if ["cluster_id", "member_id", "raft_term", "ID"].contains(&key.as_str()) {
                        *field = "<id>".into();
                    } else if key == "ttl" {
                        // The remaining time depends on when the command ran. (etcd truncates the
                        // remaining seconds, the embedded store rounds them up.)
                        *field = "<remaining>".into();
                    } else {
                        walk(field);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut value);
    value.to_string()
}

const SESSION: &[Step] = &[
    Step::Run(&["put", "foo", "bar"]),
    Step::Run(&["put", "foo2", "bar2"]),
    Step::Run(&["put", "foo3", "bar3"]),
    Step::Run(&["put", "foo", "bar-new"]),
    Step::Run(&["get", "foo", "--prefix"]),
    Step::Run(&["get", "foo", "--prefix", "--limit", "2", "-w", "json"]),
    Step::Run(&["get", "foo", "--rev=2", "-w", "json"]),
    Step::Run(&["get", "foo", "--prefix", "--keys-only"]),
    Step::Run(&["get", "foo", "--prefix", "--sort-by=VALUE", "--order=DESCEND"]),
    Step::Run(&["get", "--from-key", "foo2"]),
    Step::Run(&["get", "foo", "--rev=100"]),
    Step::Run(&["put", "", "x"]),
    Step::Run(&["put", "foo3", "--ignore-value"]),
    Step::Run(&["put", "missing", "--ignore-value"]),
    Step::Stream(&["watch", "foo", "--prefix", "--rev=2", "--prev-kv"], 16),
    Step::Run(&["del", "foo2"]),
    Step::Run(&["del", "foo", "--prefix", "--prev-kv", "-w", "json"]),
    Step::Run(&["del", "nothing"]),
    Step::Run(&["put", "a", "1"]),
    Step::Input(&["txn"], "value(\"a\") = \"1\"\n\nput b 2\nput c 3\n\nput d 4\n\n"),
    Step::Input(&["txn"], "value(\"a\") = \"9\"\n\nput b 2\n\nput d 4\n\n"),
    Step::Input(&["txn", "-w", "json"], "mod(\"a\") > \"0\"\n\nget a\ndel c\n\n\n"),
    Step::Input(&["txn", "-i"], "create(\"zz\") = \"0\"\n\nput zz 1\n\n\n"),
    Step::Run(&["compact", "5"]),
    Step::Run(&["get", "foo", "--rev=3"]),
    Step::Run(&["watch", "foo", "--rev=2"]),
    Step::Grant(&["lease", "grant", "100"]),
    Step::WithLease(&["put", "--lease", "{lease}", "leased", "v"]),
    Step::WithLease(&["lease", "timetolive", "{lease}", "--keys", "-w", "json"]),
    Step::WithLease(&["lease", "keep-alive", "--once", "{lease}"]),
    Step::Run(&["lease", "list"]),
    Step::WithLease(&["lease", "revoke", "{lease}"]),
    Step::Run(&["get", "leased"]),
    Step::Run(&["lease", "timetolive", "1234"]),
    Step::Run(&["lease", "revoke", "1234"]),
    Step::Run(&["put", "--lease", "1234", "k", "v"]),
    Step::Run(&["get", "--from-key", "a", "-w", "json"]),
    Step::Run(&["endpoint", "health"]),
];

async fn run_session(etcdctl: &Etcdctl) -> Vec<(String, String)> {
    let mut lease: Option<String> = None;
    let mut transcript = Vec::new();
    for step in SESSION {
        let (label, printed) = match step {
            Step::Run(args) => (args.join(" "), etcdctl.run(args).await),
            Step::Input(args, input) => (
                format!("{} <<< {input:?}", args.join(" ")),
                etcdctl.run_with_input(args, input, COMMAND_DEADLINE).await,
            ),
            Step::Stream(args, lines) => {
                let lines = etcdctl.stream(args, *lines).await;
                let printed = Printed {
                    stdout: lines.iter().map(|line| format!("{line}\n")).collect(),
                    stderr: String::new(),
                    success: true,
                };
                (args.join(" "), printed)
            }
            Step::Grant(args) => {
                let printed = etcdctl.run(args).await;
                lease = Some(granted_lease(&printed));
                (args.join(" "), printed)
            }
            Step::WithLease(args) => {
                let id = lease.as_deref().expect("a lease was granted before");
                let decimal = i64::from_str_radix(id, 16).expect("hex lease id").to_string();
                let args: Vec<String> = args.iter().map(|arg| arg.replace("{lease}", id)).collect();
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let mut printed = etcdctl.run(&args).await;
                // JSON prints the lease id in decimal.
                printed.stdout = printed.stdout.replace(&decimal, "\"<lease>\"");
                (args.join(" "), printed)
            }
        };
        let outcome = format!(
            "{}{}exit {}",
            normalise(&printed.stdout, lease.as_deref()),
            normalise(&printed.stderr, lease.as_deref()),
            if printed.success { "ok" } else { "failed" }
        );
        transcript.push((label, outcome));
    }
    transcript
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_session_prints_the_same_as_real_etcd() {
    init_tracing();
    tracing::info!("--- the session against a real one-member etcd 3.4");
    let etcd = EtcdCluster::start(1).await.expect("start a real etcd");
    let real_endpoint = etcd.client_endpoint(0).trim_start_matches("http://").to_string();
    let real = run_session(&Etcdctl::new(vec![real_endpoint.clone()])).await;

    tracing::info!("--- the same session against the embedded store");
    let api = EmbeddedApi::start(None).await;
    let ours = run_session(&Etcdctl::new(vec![api.endpoint()])).await;

    let mut differences = Vec::new();
    for ((label, etcd_output), (_, our_output)) in real.iter().zip(&ours) {
        let etcd_output = etcd_output.replace(&real_endpoint, "<endpoint>");
        let our_output = our_output.replace(&api.endpoint(), "<endpoint>");
        if etcd_output != our_output {
            differences.push(format!(
                "etcdctl {label}\n--- etcd:\n{etcd_output}\n--- kuboard:\n{our_output}\n"
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} steps differ:\n{}",
        differences.len(),
        SESSION.len(),
        differences.join("\n")
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_check_perf_small_load_passes() {
    init_tracing();
    let api = EmbeddedApi::start(None).await;
    let etcdctl = Etcdctl::new(vec![api.endpoint()]);
    tracing::info!("--- etcdctl check perf --load=s (about 60 s)");
    let printed = etcdctl
        .run_with_input(&["check", "perf", "--load=s"], "", Duration::from_secs(180))
        .await;
    // The progress bar is left out; the verdict lines are the figures worth keeping.
    let verdict: Vec<&str> = printed
        .stdout
        .lines()
        .filter(|line| line.starts_with("PASS") || line.starts_with("FAIL"))
        .collect();
    println!(
        "etcdctl check perf --load=s:\n{}\n{}",
        verdict.join("\n"),
        printed.stderr
    );
    assert!(printed.success, "{printed:?}");
    assert!(printed.stdout.contains("PASS: Throughput"), "{printed:?}");
    assert!(printed.stdout.contains("PASS: Slowest request"), "{printed:?}");
    assert!(printed.stdout.contains("PASS: Stddev"), "{printed:?}");
    assert!(printed.stdout.ends_with("PASS\n"), "{printed:?}");
    tracing::info!("--- check perf leaves no key behind");
    etcdctl
        .check(&["get", "/etcdctl-check-perf/", "--prefix", "--keys-only"], "")
        .await;
    api.stop().await;
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, written as PEM files.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn generate() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "kuboard test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key).expect("ca certificate");
        let write = |name: &str, pem: String| std::fs::write(dir.path().join(name), pem).expect("write pem");
        write("ca.pem", ca.pem());
        for (name, sans) in [
            ("server", vec!["127.0.0.1".to_string(), "localhost".to_string()]),
            ("client", vec!["client".to_string()]),
        ] {
            let key = KeyPair::generate().expect("key");
            let mut params = CertificateParams::new(sans).expect("params");
            params.distinguished_name.push(DnType::CommonName, name);
            let cert = params.signed_by(&key, &ca, &ca_key).expect("sign");
            write(&format!("{name}.pem"), cert.pem());
            write(&format!("{name}-key.pem"), key.serialize_pem());
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificates() {
    init_tracing();
    let pki = Pki::generate();
    let tls = EtcdApiTls::from_files(
        &pki.path("server.pem"),
        &pki.path("server-key.pem"),
        Some(&pki.path("ca.pem")),
    )
    .expect("read the TLS files");
    let api = EmbeddedApi::start(Some(tls)).await;
    let path = |name: &str| pki.path(name).to_str().expect("utf-8 path").to_string();

    tracing::info!("--- with a client certificate signed by the CA: served");
    let mut etcdctl = Etcdctl::new(vec![format!("https://{}", api.endpoint())]);
    etcdctl.extra = vec![
        format!("--cacert={}", path("ca.pem")),
        format!("--cert={}", path("client.pem")),
        format!("--key={}", path("client-key.pem")),
    ];
    etcdctl.check(&["put", "secure", "yes"], "OK\n").await;
    etcdctl.check(&["get", "secure"], "secure\nyes\n").await;
    let port = api.address.port();
    etcdctl
        .check(
            &["member", "list"],
            &format!("1, started, kuboard-1, http://127.0.0.1:10082, https://127.0.0.1:{port}, false\n"),
        )
        .await;

    tracing::info!("--- without a client certificate: refused");
    let mut anonymous = Etcdctl::new(vec![format!("https://{}", api.endpoint())]);
    anonymous.extra = vec![format!("--cacert={}", path("ca.pem")), "--dial-timeout=2s".to_string()];
    let printed = anonymous.run(&["get", "secure"]).await;
    assert!(
        !printed.success,
        "a client without a certificate must be refused: {printed:?}"
    );
    assert_eq!(printed.stdout, "");

    tracing::info!("--- a missing file is named in the error");
    let error = EtcdApiTls::from_files(Path::new("/nonexistent/cert.pem"), &pki.path("server-key.pem"), None)
        .expect_err("missing file");
    assert!(format!("{error:#}").contains("/nonexistent/cert.pem"), "{error:#}");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_client_sees_ordered_watches_and_compaction_errors() {
    use etcd_client::{Client, EventType, GetOptions, WatchOptions};
    init_tracing();
    let api = EmbeddedApi::start(None).await;
    let mut client = Client::connect([format!("http://{}", api.endpoint())], None)
        .await
        .expect("connect the etcd client");

    tracing::info!("--- two watches on one stream, then 50 writes alternating between them");
    let (mut watcher, mut stream) = client
        .watch("x/", Some(WatchOptions::new().with_prefix().with_prev_key()))
        .await
        .expect("watch x/")
        .split();
    let first = stream.message().await.expect("created").expect("created response");
    assert!(first.created());
    let x_watch = first.watch_id();
    watcher
        .watch("y/", Some(WatchOptions::new().with_prefix()))
        .await
        .expect("watch y/ on the same stream");
    let second = stream.message().await.expect("created").expect("created response");
    assert!(second.created());
    let y_watch = second.watch_id();
    assert_ne!(x_watch, y_watch);
    for i in 0..50 {
        let prefix = if i % 2 == 0 { "x/" } else { "y/" };
        client
            .put(format!("{prefix}{}", i % 4), i.to_string(), None)
            .await
            .expect("put");
    }
    let mut seen: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen.values().map(Vec::len).sum::<usize>() < 50 {
        let response = tokio::time::timeout_at(deadline, stream.message())
            .await
            .expect("events within 20 s")
            .expect("watch stream")
            .expect("a response");
        assert!(
            response.header().is_some_and(|h| h.revision() > 0),
            "every response has a header"
        );
        for event in response.events() {
            assert_eq!(event.event_type(), EventType::Put);
            let kv = event.kv().expect("kv");
            if response.watch_id() == x_watch && kv.version() > 1 {
                assert!(event.prev_kv().is_some(), "x/ asked for previous values");
            }
            seen.entry(response.watch_id()).or_default().push(kv.mod_revision());
        }
    }
    for (watch_id, revisions) in &seen {
        assert_eq!(revisions.len(), 25, "watch {watch_id}");
        assert!(
            revisions.windows(2).all(|w| w[0] < w[1]),
            "watch {watch_id}: {revisions:?}"
        );
    }

    tracing::info!("--- a progress request answers with a revision both watches delivered");
    // Watch x/ last delivered revision 50 and cannot know yet that 51 (a y/ key) is not its
    // own; the promise covers every watch of the stream, so it is the smaller one.
    watcher.request_progress().await.expect("progress request");
    let progress = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("progress within 10 s")
        .expect("watch stream")
        .expect("a response");
    assert!(progress.events().is_empty());
    let current = client
        .get("x/0", None)
        .await
        .expect("get")
        .header()
        .expect("header")
        .revision();
    assert_eq!(current, 51);
    assert_eq!(progress.header().expect("header").revision(), 50);

    tracing::info!("--- cancel one watch: a canceled response, then only the other's events");
    watcher.cancel(x_watch).await.expect("cancel");
    let canceled = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("cancel answered")
        .expect("watch stream")
        .expect("a response");
    assert!(canceled.canceled());
    assert_eq!(canceled.watch_id(), x_watch);
    client.put("x/after", "1", None).await.expect("put");
    client.put("y/after", "1", None).await.expect("put");
    let next = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("event")
        .expect("watch stream")
        .expect("a response");
    assert_eq!(next.watch_id(), y_watch);
    assert_eq!(next.events()[0].kv().expect("kv").key(), b"y/after");

    tracing::info!("--- compaction: reads and watches below it fail with etcd's error");
    client.compact(current, None).await.expect("compact");
    let error = client
        .get("x/0", Some(GetOptions::new().with_revision(current - 10)))
        .await
        .expect_err("compacted read");
    assert!(
        error
            .to_string()
            .contains("etcdserver: mvcc: required revision has been compacted"),
        "{error}"
    );
    let mut old = client
        .watch("x/", Some(WatchOptions::new().with_prefix().with_start_revision(2)))
        .await
        .expect("watch below the compaction");
    let created = old.message().await.expect("stream").expect("created");
    assert!(created.created(), "etcd sends created first");
    let compacted = old.message().await.expect("stream").expect("compacted");
    assert!(compacted.canceled());
    assert_eq!(compacted.compact_revision(), current);

    tracing::info!("--- count-only reads (etcdctl 3.4 cannot ask for them)");
    let count = client
        .get("x/", Some(GetOptions::new().with_prefix().with_count_only()))
        .await
        .expect("count");
    assert_eq!(count.count(), 3, "x/0, x/2 and x/after");
    assert!(count.kvs().is_empty());
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_stops_on_shutdown_and_the_store_keeps_serving() {
    init_tracing();
    let mut api = EmbeddedApi::start(None).await;
    let etcdctl = Etcdctl::new(vec![api.endpoint()]);
    etcdctl.check(&["put", "k", "v"], "OK\n").await;
    api.stop_api().await;
    assert!(
        tokio::net::TcpStream::connect(api.address).await.is_err(),
        "the port is closed after shutdown"
    );
    let response = api
        .store
        .range(kuboard_storage::RangeRequest::key("k"))
        .await
        .expect("the store still serves");
    assert_eq!(response.kvs[0].value, b"v");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_snapshot_save_writes_a_kuboard_snapshot_that_restores() {
    init_tracing();
    let api = EmbeddedApi::start_with(None, true).await;
    let etcdctl = Etcdctl::new(vec![api.endpoint()]);

    tracing::info!("--- 300 keys of 1 KiB (several 32 KiB chunks), then etcdctl snapshot save");
    let value = "v".repeat(1024);
    for i in 0..300 {
        let put = kuboard_storage::PutRequest::new(format!("snap/{i:03}"), value.clone());
        api.store.put(put).await.expect("put");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("kuboard.snapshot");
    let path = file.to_str().expect("utf-8 path");
    let printed = etcdctl.run(&["snapshot", "save", path]).await;
    assert!(printed.success, "{printed:?}");
    assert_eq!(printed.stdout, format!("Snapshot saved at {path}\n"));

    tracing::info!("--- inside etcd's checksum envelope, the file is a checked kuboard snapshot");
    let saved = std::fs::read(&file).expect("read the saved snapshot");
    assert_eq!(
        saved.len() % 512,
        32,
        "etcd's envelope: bbolt-page length plus a SHA-256"
    );
    let body = &saved[..saved.len() - 32];
    // The kuboard file ends with its own SHA-256; the zero padding follows it.
    let end = body.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    let snapshot = (end.saturating_sub(32)..=end)
        .rev()
        .find_map(|candidate| store_admin::snapshot_file::Snapshot::decode(&body[..candidate]).ok())
        .expect("a valid kuboard snapshot before the padding");
    assert_eq!(snapshot.header.revision, 301);
    assert_eq!(snapshot.entries.len(), 300);
    assert_eq!(snapshot.entries[299].key, b"snap/299");

    tracing::info!("--- it restores into an empty store");
    let target = EmbeddedApi::start(None).await;
    let report = store_admin::snapshot_store::restore_snapshot(&target.store, &snapshot)
        .await
        .expect("restore");
    assert_eq!(report.restored, 300);
    Etcdctl::new(vec![target.endpoint()])
        .check(&["get", "snap/299", "--print-value-only"], &format!("{value}\n"))
        .await;
    target.stop().await;
    api.stop().await;
}
