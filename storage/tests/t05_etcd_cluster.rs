//! The etcd test launcher: a 3-member cluster survives the crash and restart of one member.

use std::time::Duration;

use kuboard_storage::testing::EtcdCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_starts_survives_a_killed_member_and_restarts_it() -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut cluster = EtcdCluster::start(3).await?;
    tracing::info!(elapsed = ?started.elapsed(), "cluster started");
    assert_eq!(cluster.client_endpoints().len(), 3);
    let pid = cluster.pid(1).expect("member 1 was just started");
    assert!(pid > 0);

    tracing::info!("kill -9 one member: the other two stay healthy");
    cluster.kill(1)?;
    assert_eq!(cluster.pid(1), None);
    cluster.wait_healthy(Duration::from_secs(15)).await?;

    tracing::info!("restart the killed member on its data");
    cluster.restart(1).await?;
    assert!(cluster.pid(1).is_some());

    tracing::info!("stop one member gracefully and restart it");
    cluster.stop(2).await?;
    cluster.restart(2).await?;
    cluster.wait_healthy(Duration::from_secs(15)).await?;
    Ok(())
}
