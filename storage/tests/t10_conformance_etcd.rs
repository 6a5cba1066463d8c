//! The conformance suite against real etcd 3.4 through `EtcdStore`, and the store's confinement to
//! its key prefix. A check that fails here is a wrong check: etcd is the reference.

use std::time::{Duration, Instant};

use kuboard_storage::conformance;
use kuboard_storage::etcd::{EtcdConnectError, EtcdStore, EtcdStoreConfig};
use kuboard_storage::testing::EtcdCluster;

/// Keys outside the store's prefix `/kuboard/`, including the ones that sort right next to it.
const OUTSIDE_KEYS: &[&[u8]] = &[
    b"/kuboard",
    b"/kuboard0",
    b"/kuboard.x",
    b"/kubo",
    b"/outside/a",
    b"/registry/pods/x",
    b"zzz",
    b"\x00",
    b"\xff\xff",
];

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_test_writer()
        .try_init();
}

/// Every key outside the prefix, as plain etcd-client sees it (key, value, mod revision).
async fn outside_state(client: &mut etcd_client::Client) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>, i64)>> {
    let everything = client
        .get(vec![0], Some(etcd_client::GetOptions::new().with_from_key()))
        .await?;
    Ok(everything
        .kvs()
        .iter()
        .filter(|kv| !kv.key().starts_with(b"/kuboard/"))
        .map(|kv| (kv.key().to_vec(), kv.value().to_vec(), kv.mod_revision()))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_on_etcd_and_stays_inside_the_prefix() -> anyhow::Result<()> {
    init_tracing();
    let cluster = EtcdCluster::start(3).await?;
    let endpoints = cluster.client_endpoints();

    tracing::info!("write keys outside the prefix with plain etcd-client");
    let mut plain = etcd_client::Client::connect(&endpoints, None).await?;
    for key in OUTSIDE_KEYS {
        plain.put(key.to_vec(), b"outside".to_vec(), None).await?;
    }
    let before = outside_state(&mut plain).await?;
    assert_eq!(before.len(), OUTSIDE_KEYS.len());

    tracing::info!("run every check, verifying after each that nothing outside the prefix changed");
    let store = EtcdStore::connect(EtcdStoreConfig::new(endpoints.clone())).await?;
    let suite_started = Instant::now();
    for check in conformance::CHECKS {
        let started = Instant::now();
        conformance::run_check(&store, check).await;
        tracing::info!(
            check,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "check passed on etcd"
        );
        assert_eq!(
            outside_state(&mut plain).await?,
            before,
            "check {check} touched keys outside the prefix"
        );
    }
    tracing::info!(
        elapsed_ms = suite_started.elapsed().as_millis() as u64,
        "the whole suite passed on etcd"
    );

    tracing::info!("the prefix holds every key the suite wrote, under /kuboard/");
    let inside = plain
        .get(
            b"/kuboard/".to_vec(),
            Some(etcd_client::GetOptions::new().with_prefix().with_count_only()),
        )
        .await?;
    assert!(inside.count() > 0, "the suite wrote nothing under the prefix");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_of_a_deleting_range_stays_inside_the_prefix() -> anyhow::Result<()> {
    init_tracing();
    let cluster = EtcdCluster::start(1).await?;
    let endpoints = cluster.client_endpoints();
    let mut plain = etcd_client::Client::connect(&endpoints, None).await?;
    for key in OUTSIDE_KEYS {
        plain.put(key.to_vec(), b"outside".to_vec(), None).await?;
    }
    let before = outside_state(&mut plain).await?;
    let store = EtcdStore::connect(EtcdStoreConfig::new(endpoints)).await?;
    use kuboard_storage::*;

    tracing::info!("the widest requests a caller can make: every key, from the empty key to [0]");
    store.put(PutRequest::new(b"inside".to_vec(), b"v".to_vec())).await?;
    let everything = RangeRequest {
        key: Vec::new(),
        range_end: vec![0],
        ..Default::default()
    };
    let all = store.range(everything.clone()).await?;
    assert_eq!(
        all.kvs.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>(),
        vec![b"inside".to_vec()]
    );
    let mut watch = store
        .watch(WatchRequest {
            key: Vec::new(),
            range_end: vec![0],
            start_revision: 1,
            ..Default::default()
        })
        .await?;
    let first = tokio::time::timeout(Duration::from_secs(5), futures::StreamExt::next(&mut watch)).await?;
    let events = first.expect("the watch delivers the replayed put")?.events;
    assert_eq!(
        events.len(),
        1,
        "the watch of every key saw only the key inside the prefix: {events:?}"
    );
    assert_eq!(events[0].kv.key, b"inside");
    let deleted = store
        .delete_range(DeleteRangeRequest {
            key: Vec::new(),
            range_end: vec![0],
            prev_kv: true,
        })
        .await?;
    assert_eq!(deleted.deleted, 1);
    let txn = TxnRequest {
        compare: vec![Compare {
            key: Vec::new(),
            range_end: vec![0],
            result: CompareResult::Equal,
            target: CompareTarget::Version(0),
        }],
        success: vec![TxnOp::DeleteRange(DeleteRangeRequest {
            key: b"a".to_vec(),
            range_end: vec![0],
            prev_kv: false,
        })],
        failure: vec![],
    };
    assert!(store.txn(txn).await?.succeeded, "no key is left inside the prefix");
    assert_eq!(outside_state(&mut plain).await?, before);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoints_fail_clearly_within_the_connect_timeout() -> anyhow::Result<()> {
    init_tracing();
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.local_addr()?.port()
    };
    // A listener that accepts connections and never answers: the worst case for a client.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let silent_port = silent.local_addr()?.port();
    let silent_task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });

    for endpoint in [
        format!("http://127.0.0.1:{closed_port}"),
        format!("http://127.0.0.1:{silent_port}"),
    ] {
        let config = EtcdStoreConfig {
            connect_timeout: Duration::from_secs(1),
            ..EtcdStoreConfig::new([endpoint.clone()])
        };
        let started = Instant::now();
        let error = EtcdStore::connect(config).await.expect_err("nothing serves etcd there");
        let elapsed = started.elapsed();
        tracing::info!(%endpoint, ?elapsed, %error, "connect failed as expected");
        assert!(
            elapsed < Duration::from_secs(3),
            "connect to {endpoint} took {elapsed:?}"
        );
        assert!(matches!(error, EtcdConnectError::Unreachable { .. }), "{error:?}");
        assert!(
            error.to_string().contains(&endpoint),
            "the error names the endpoint: {error}"
        );
    }
    silent_task.abort();
    Ok(())
}

#[tokio::test]
async fn missing_or_bad_tls_files_are_named_in_the_error() -> anyhow::Result<()> {
    let directory = tempfile::tempdir()?;
    let missing = directory.path().join("missing-ca.pem");
    let garbage = directory.path().join("garbage.pem");
    std::fs::write(&garbage, "this is not a certificate\n")?;

    for (ca, expected) in [
        (&missing, "cannot read the etcd CA certificate"),
        (&garbage, "is not valid PEM"),
    ] {
        let config = EtcdStoreConfig {
            ca_cert: Some(ca.clone()),
            ..EtcdStoreConfig::new(["https://127.0.0.1:1"])
        };
        let error = EtcdStore::connect(config).await.expect_err("the CA file is unusable");
        let message = error.to_string();
        assert!(message.contains(expected), "{message}");
        assert!(
            message.contains(&ca.display().to_string()),
            "the error names the file: {message}"
        );
    }
    Ok(())
}

#[test]
fn the_password_never_appears_in_debug_output() {
    let config = EtcdStoreConfig {
        username: Some("kuboard".into()),
        password: Some("s3cret-Pa55".into()),
        ..EtcdStoreConfig::new(["http://127.0.0.1:2379"])
    };
    let printed = format!("{config:?}");
    assert!(!printed.contains("s3cret-Pa55"), "{printed}");
    assert!(printed.contains("<redacted>"), "{printed}");
}
