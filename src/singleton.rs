//! [`Singleton`]: background work that exactly one replica does at a time, chosen by an election
//! in the store, so it works the same on the embedded store and on an external etcd.
//!
//! A replica campaigns with one transaction: "if `election/<name>` does not exist, create it with
//! my holder id, attached to my lease". The winner keeps its lease alive (every third of the TTL)
//! and runs the job between keep-alives; it steps down as soon as a keep-alive fails or the key no
//! longer names it, and revokes its lease when it stops, so that another replica takes over at
//! once rather than after the TTL. Losers retry every third of the TTL. The job must tolerate
//! being run twice around a hand-over (a paused leader may run once more after its lease expired):
//! the election bounds concurrency in time, it does not fence writes.

use std::future::Future;
use std::time::Duration;

use kuboard_storage::{PutRequest, StoreError};
use tokio::sync::watch;

use crate::app_store::AppStore;

const ELECTION_PREFIX: &str = "election/";

/// One elected role, e.g. `throttle-purge`.
#[derive(Clone)]
pub struct Singleton {
    pub store: AppStore,
    pub name: String,
    /// Unique per process: who holds the role.
    pub holder: String,
    pub lease_ttl: Duration,
    /// How often the job runs while this replica leads.
    pub job_interval: Duration,
}

/// What the runner reports to whoever watches it (tests, metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SingletonState {
    Follower,
    Leader { lease: i64 },
}

impl Singleton {
    pub fn key(&self) -> String {
        format!("{ELECTION_PREFIX}{}", self.name)
    }

    fn tick(&self) -> Duration {
        (self.lease_ttl / 3).max(Duration::from_millis(100))
    }

    /// Tries once to become the leader; returns the lease it leads with.
    pub async fn campaign(&self) -> Result<Option<i64>, StoreError> {
        let ttl = i64::try_from(self.lease_ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let lease = self.store.lease_grant(ttl).await?.id;
        let key = self.key();
        let put = PutRequest {
            lease,
            ..PutRequest::new(key, self.holder.clone())
        };
        match self.store.create_if_absent(put).await {
            Ok(true) => Ok(Some(lease)),
            other => {
                // Lost (or failed): the lease has nothing attached and must not linger.
                let _ = self.store.lease_revoke(lease).await;
                other.map(|_| None)
            }
        }
    }

    /// True while the election key names this holder on `lease` and the lease is alive.
    async fn still_leading(&self, lease: i64) -> Result<bool, StoreError> {
        let alive = match self.store.lease_keep_alive(lease).await {
            Ok(response) => response.ttl > 0,
            Err(StoreError::LeaseNotFound(_)) => false,
            Err(error) => return Err(error),
        };
        if !alive {
            return Ok(false);
        }
        Ok(self
            .store
            .get(&self.key())
            .await?
            .is_some_and(|kv| kv.lease == lease && kv.value == self.holder.as_bytes()))
    }

    /// Campaigns, leads and runs `job` every `job_interval` while leading, until `shutdown` turns
    /// true; then gives the role up. Reports its state on `state`.
    pub async fn run<F, Fut>(
        self,
        mut job: F,
        state: watch::Sender<SingletonState>,
        mut shutdown: watch::Receiver<bool>,
    ) where
        F: FnMut(AppStore) -> Fut,
        Fut: Future<Output = ()>,
    {
        let tick = self.tick();
        loop {
            if *shutdown.borrow() {
                return;
            }
            let lease = match self.campaign().await {
                Ok(Some(lease)) => lease,
                Ok(None) => {
                    if wait_or_stop(&mut shutdown, tick).await {
                        return;
                    }
                    continue;
                }
                Err(error) => {
                    tracing::debug!(%error, singleton = %self.name, "campaign failed; retrying");
                    if wait_or_stop(&mut shutdown, tick).await {
                        return;
                    }
                    continue;
                }
            };
            tracing::info!(singleton = %self.name, holder = %self.holder, "leading");
            let _ = state.send(SingletonState::Leader { lease });
            let mut next_job = tokio::time::Instant::now();
            loop {
                if tokio::time::Instant::now() >= next_job {
                    job(self.store.clone()).await;
                    next_job = tokio::time::Instant::now() + self.job_interval;
                }
                if wait_or_stop(&mut shutdown, tick).await {
                    let _ = self.store.lease_revoke(lease).await;
                    let _ = state.send(SingletonState::Follower);
                    tracing::info!(singleton = %self.name, "stepped down at shutdown");
                    return;
                }
                match self.still_leading(lease).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(singleton = %self.name, "lost the lease; stepping down");
                        break;
                    }
                    Err(error) => {
                        // Without a store answer the lease may expire unseen: stop the work now.
                        tracing::warn!(%error, singleton = %self.name, "keep-alive failed; stepping down");
                        let _ = self.store.lease_revoke(lease).await;
                        break;
                    }
                }
            }
            let _ = state.send(SingletonState::Follower);
            // Give the others one round to take over before campaigning again: a replica that
            // just lost its lease (paused, partitioned) is the least healthy candidate.
            if wait_or_stop(&mut shutdown, tick).await {
                return;
            }
        }
    }
}

/// Sleeps `delay`; true when shutdown came first.
async fn wait_or_stop(shutdown: &mut watch::Receiver<bool>, delay: Duration) -> bool {
    let stopped = tokio::select! {
        _ = tokio::time::sleep(delay) => false,
        _ = shutdown.wait_for(|stop| *stop) => true,
    };
    stopped || *shutdown.borrow()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    use super::*;
    use crate::metrics::Metrics;
    use crate::store_backend::StoreBackend;

    struct Runner {
        state: watch::Receiver<SingletonState>,
        stop: watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
        runs: Arc<AtomicUsize>,
    }

    fn start(store: &AppStore, holder: &str) -> Runner {
        let singleton = Singleton {
            store: store.clone(),
            name: "test-job".into(),
            holder: holder.into(),
            lease_ttl: Duration::from_secs(2),
            job_interval: Duration::from_millis(100),
        };
        let (state_sender, state) = watch::channel(SingletonState::Follower);
        let (stop, stop_receiver) = watch::channel(false);
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = runs.clone();
        let task = tokio::spawn(singleton.run(
            move |_| {
                counter.fetch_add(1, Ordering::SeqCst);
                async {}
            },
            state_sender,
            stop_receiver,
        ));
        Runner {
            state,
            stop,
            task,
            runs,
        }
    }

    fn leaders(runners: &[&Runner]) -> usize {
        runners
            .iter()
            .filter(|runner| matches!(*runner.state.borrow(), SingletonState::Leader { .. }))
            .count()
    }

    async fn wait_for(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) -> Duration {
        let started = Instant::now();
        while !condition() {
            assert!(started.elapsed() < deadline, "{what} within {deadline:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        started.elapsed()
    }

    /// Two replicas' runners on one store: one leads, the other takes over when it stops or
    /// loses its lease.
    async fn election_behaviour(store: AppStore) {
        let first = start(&store, "replica-1");
        wait_for("first leads", Duration::from_secs(10), || leaders(&[&first]) == 1).await;
        let second = start(&store, "replica-2");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(leaders(&[&first, &second]), 1, "exactly one leader");
        assert!(matches!(*second.state.borrow(), SingletonState::Follower));
        assert!(first.runs.load(Ordering::SeqCst) > 0 && second.runs.load(Ordering::SeqCst) == 0);

        // The leader loses its lease (as after a long pause): it steps down, the other leads.
        let SingletonState::Leader { lease } = *first.state.borrow() else {
            panic!("first leads")
        };
        store.lease_revoke(lease).await.expect("revoke the leader's lease");
        wait_for("second leads", Duration::from_secs(10), || {
            matches!(*second.state.borrow(), SingletonState::Leader { .. })
        })
        .await;
        wait_for("first stepped down", Duration::from_secs(10), || {
            matches!(*first.state.borrow(), SingletonState::Follower)
        })
        .await;

        // Stopping the leader hands over at once (the lease is revoked, not left to expire).
        first.stop.send(true).expect("runner listens");
        first.task.await.expect("runner ends");
        second.stop.send(true).expect("runner listens");
        second.task.await.expect("runner ends");
        let third = start(&store, "replica-3");
        let took = wait_for("third leads", Duration::from_secs(10), || leaders(&[&third]) == 1).await;
        assert!(
            took < Duration::from_secs(2),
            "hand-over took {took:?}, the lease TTL is 2 s"
        );
        third.stop.send(true).expect("runner listens");
        third.task.await.expect("runner ends");
        assert!(
            store.get("election/test-job").await.expect("read").is_none(),
            "the key went with the lease"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_the_embedded_store() {
        let dir = tempfile::tempdir().expect("temp dir");
        let raft = crate::one_member_store::one_member_embedded_store(dir.path()).await;
        let backend = Arc::new(StoreBackend::Raft(raft));
        let store = AppStore::new(backend.clone(), Arc::new(Metrics::new(1)));
        election_behaviour(store).await;
        backend.shutdown().await.expect("store shuts down");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_etcd() {
        let etcd = kuboard_storage::testing::EtcdCluster::start(1)
            .await
            .expect("start etcd (the etcd-server package provides it)");
        let config = crate::config::EtcdConfig {
            endpoints_text: etcd.client_endpoint(0).to_string(),
            endpoints_label: "KUBOARD_ETCD_ENDPOINTS".into(),
            endpoints: vec![etcd.client_endpoint(0).to_string()],
            ca_cert: None,
            cert: None,
            key: None,
            username: None,
            password: None,
            prefix: "/kuboard/".into(),
        };
        let backend = Arc::new(StoreBackend::Etcd(
            crate::store_backend::etcd_backend::EtcdBackend::start(&config),
        ));
        let store = AppStore::new(backend.clone(), Arc::new(Metrics::new(1)));
        wait_for_store(&store).await;
        election_behaviour(store).await;
        backend.shutdown().await.expect("backend shuts down");
    }

    async fn wait_for_store(store: &AppStore) {
        let started = Instant::now();
        while store.status().await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "etcd reachable within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
