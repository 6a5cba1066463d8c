//! Partitions through the fault switch of the peer network: a leader cut off in a minority cannot
//! commit (its writes time out and its linearizable reads fail), the majority elects a leader and
//! commits, and after healing every member converges on the same revision and data.

mod common;

use std::time::Instant;

use common::*;
use kuboard_storage::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minority_cannot_commit_the_majority_can_and_healing_converges() {
    init_tracing();
    let cluster = Cluster::start(3, 1000).await;
    let old_leader = cluster.leader().await;
    let majority = cluster.followers_of(old_leader);
    put_retrying(cluster.store(majority[0]), "t56/before", "v").await;

    tracing::info!("--- the leader is cut off from both followers");
    cluster.partition(&[old_leader], &majority);
    let minority_store = cluster.store(old_leader).clone();
    let minority_write = tokio::spawn(async move {
        let started = Instant::now();
        let result = minority_store.put(PutRequest::new("t56/minority", "lost")).await;
        (result, started.elapsed())
    });
    let minority_store = cluster.store(old_leader).clone();
    let minority_read = tokio::spawn(async move { minority_store.range(RangeRequest::key("t56/before")).await });

    tracing::info!("--- the majority elects a leader of its own and commits");
    let new_leader = cluster.leader_among(&majority).await;
    assert_ne!(new_leader, old_leader);
    for (i, id) in majority.iter().enumerate() {
        put_retrying(cluster.store(*id), &format!("t56/majority-{i}"), "v").await;
    }
    let kv = get(cluster.store(majority[1]), "t56/majority-0").await;
    assert!(kv.is_some(), "a majority member reads the majority's write");

    tracing::info!("--- the minority's write times out and its linearizable read fails");
    let (result, took) = minority_write.await.expect("minority write task");
    match result {
        Err(StoreError::Timeout { .. }) | Err(StoreError::Unavailable(_)) => {}
        other => panic!("a write in the minority must not succeed: {other:?}"),
    }
    println!("the minority write failed after {took:?}");
    let read = minority_read.await.expect("minority read task");
    assert!(
        read.is_err(),
        "a linearizable read in the minority must not answer: {read:?}"
    );
    let minority_metrics = cluster.store(old_leader).metrics();
    assert!(
        minority_metrics.commit_index < cluster.store(new_leader).metrics().commit_index,
        "the minority committed nothing new: {minority_metrics:?}"
    );

    tracing::info!("--- healing: the old leader steps down and every member converges");
    let healed_at = Instant::now();
    cluster.heal();
    assert_eq!(
        cluster.leader().await,
        new_leader,
        "the returning minority does not depose the leader"
    );
    put_retrying(cluster.store(old_leader), "t56/after", "v").await;
    let data = cluster.wait_converged("t56/").await;
    println!("converged {:?} after healing", healed_at.elapsed());
    let keys: Vec<String> = data
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect();
    assert_eq!(
        keys,
        ["t56/after", "t56/before", "t56/majority-0", "t56/majority-1"],
        "the write the minority could not commit is gone, everything else is everywhere"
    );
    let statuses = futures::future::join_all(cluster.running().into_iter().map(|id| {
        let store = cluster.store(id).clone();
        async move { store.status().await.expect("status") }
    }))
    .await;
    assert!(statuses.windows(2).all(|pair| pair[0].revision == pair[1].revision));
    assert!(statuses.iter().all(|status| status.leader == Some(new_leader)));
    cluster.shutdown().await;
}
