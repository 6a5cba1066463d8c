//! Concurrent writers on a three-member group, with the state machine applying each batch of
//! committed entries in one sled transaction (the default) and, alternately, one transaction per
//! entry. Both must acknowledge every write with its own revision, gap-free, and converge to the
//! same data; the figures (puts per second and CPU time per put of the process) are printed for
//! the benchmark notes: `cargo test --release -p kuboard-raft --test t70_apply_groups -- --nocapture`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use kuboard_storage::*;

const WRITERS: usize = 64;
const PHASE: Duration = Duration::from_millis(2500);

/// CPU time (user + system) of this process so far, from `/proc/self/stat`.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    // The command name (field 2) is in parentheses and may contain spaces; count after it.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).expect("a stat line");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // The kernel reports in clock ticks of 1/100 s (USER_HZ) on Linux.
    Duration::from_millis(ticks * 10)
}

/// Put distinct keys from `WRITERS` tasks for `PHASE`; the acknowledged revisions.
async fn write_phase(store: &kuboard_raft::RaftStore, label: &str) -> Vec<i64> {
    let deadline = Instant::now() + PHASE;
    let writers = (0..WRITERS).map(|writer| {
        let store = store.clone();
        let label = label.to_owned();
        tokio::spawn(async move {
            let mut revisions = Vec::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                let key = format!("t70/{label}/{writer}/{n}");
                let response = store
                    .put(PutRequest::new(key, vec![7u8; 256]))
                    .await
                    .expect("put on a stable group");
                revisions.push(response.header.revision);
                n += 1;
            }
            revisions
        })
    });
    let mut revisions = Vec::new();
    for writer in futures::future::join_all(writers).await {
        revisions.extend(writer.expect("writer task"));
    }
    revisions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouped_and_one_by_one_applies_acknowledge_every_write() {
    init_tracing();
    let cluster = Cluster::start(3, 1_000_000).await;
    let leader = cluster.leader().await;
    put_retrying(cluster.store(leader), "t70/warm-up", "v").await;
    let store = cluster.store(leader).clone();
    let mut all = Vec::new();
    for (round, limit) in [1usize, 512, 1, 512].into_iter().enumerate() {
        kuboard_raft::testing::set_apply_group_limit(limit);
        let cpu = process_cpu();
        let started = Instant::now();
        let revisions = write_phase(&store, &format!("{round}-{limit}")).await;
        let (elapsed, cpu) = (started.elapsed(), process_cpu() - cpu);
        println!(
            "apply group limit {limit:>3}: {:>6.0} puts/s, {:>5.0} µs CPU per put (3 members, {WRITERS} writers)",
            revisions.len() as f64 / elapsed.as_secs_f64(),
            cpu.as_micros() as f64 / revisions.len().max(1) as f64,
        );
        assert!(!revisions.is_empty(), "round {round} acknowledged no write");
        all.extend(revisions);
    }
    kuboard_raft::testing::set_apply_group_limit(512);
    // Every acknowledged put made a revision of its own, and no revision is missing between them.
    all.sort_unstable();
    let distinct = all.len();
    all.dedup();
    assert_eq!(all.len(), distinct, "two puts acknowledged with one revision");
    assert_eq!(
        all.last().expect("some revisions") - all.first().expect("some revisions") + 1,
        all.len() as i64,
        "the acknowledged revisions have gaps"
    );
    let kvs = cluster.wait_converged("t70/").await;
    assert_eq!(kvs.len(), distinct + 1, "every acknowledged key is on every member");
    cluster.shutdown().await;
}
