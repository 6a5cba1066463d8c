//! `EtcdStore` keeps serving when one member of three is killed, and status tells which one.

use std::time::{Duration, Instant};

use kuboard_storage::etcd::{EtcdStore, EtcdStoreConfig};
use kuboard_storage::testing::EtcdCluster;
use kuboard_storage::{PutRequest, RangeRequest, Store};

/// Put `key` until it succeeds, retrying only retryable errors, within `within`.
async fn put_until_ok(store: &EtcdStore, key: &str, within: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        match store.put(PutRequest::new(key.as_bytes().to_vec(), b"v".to_vec())).await {
            Ok(_) => return Ok(started.elapsed()),
            Err(error) if error.is_retryable() && started.elapsed() < within => {
                tracing::info!(%error, "put failed, retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => anyhow::bail!("put {key} failed after {:?}: {error}", started.elapsed()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_survives_a_killed_member_and_status_reports_it() -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_test_writer()
        .try_init();
    let mut cluster = EtcdCluster::start(3).await?;
    let store = EtcdStore::connect(EtcdStoreConfig::new(cluster.client_endpoints())).await?;
    put_until_ok(&store, "before", Duration::from_secs(5)).await?;

    tracing::info!("kill -9 every member in turn; the store keeps writing and reading");
    for victim in 0..3 {
        cluster.kill(victim)?;
        let took = put_until_ok(&store, &format!("after-kill-{victim}"), Duration::from_secs(15)).await?;
        tracing::info!(victim, ?took, "write succeeded with one member down");
        let read = store
            .range(RangeRequest::key(format!("after-kill-{victim}").into_bytes()))
            .await?;
        assert_eq!(read.kvs.len(), 1);

        let status = store.status().await?;
        let healthy = status.members.iter().filter(|member| member.healthy).count();
        tracing::info!(victim, healthy, leader = ?status.leader, "status with one member down");
        assert_eq!(status.members.len(), 3);
        assert_eq!(healthy, 2, "status must see the killed member as unhealthy: {status:?}");
        assert!(status.healthy && status.leader.is_some(), "{status:?}");

        cluster.restart(victim).await?;
    }

    tracing::info!("after the restarts every member is healthy again");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = store.status().await?;
        if status.members.iter().all(|member| member.healthy) {
            break;
        }
        assert!(Instant::now() < deadline, "members did not all recover: {status:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
