//! Which replica holds tunnels of which agent cluster, in the store under
//! `agent-tunnels/<cluster>/<replica id>`: each replica writes its own keys, bound to a lease it
//! keeps alive, so that the keys of a replica that died vanish when the lease expires
//! ([`LEASE_TTL_SECONDS`]). A replica without a tunnel reads them to forward through a holder
//! ([`crate::tunnel::peer`]); the cluster API and the status page show them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kuboard_storage::{PutRequest, StoreError};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use utoipa::ToSchema;

use crate::app_store::AppStore;
use crate::clock::Clock;
use crate::tunnel::hub::TunnelHub;

const PREFIX: &str = "agent-tunnels/";
/// The lease of a replica's keys: a replica killed without a word stops being a holder this long
/// after its last keep-alive at most.
pub const LEASE_TTL_SECONDS: i64 = 10;
const KEEP_ALIVE_EVERY: Duration = Duration::from_secs(3);
/// A change not written (the store unavailable) is retried this often.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// One replica holding tunnels of one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TunnelHolder {
    pub cluster: String,
    pub replica_id: u64,
    /// The replica's agent port as its peers reach it (`host:port`).
    pub address: String,
    /// Live tunnels of the cluster to this replica (one per connected agent).
    pub tunnels: usize,
    /// Unix seconds of the last change.
    pub updated_at: u64,
}

fn key(cluster: &str, replica_id: u64) -> String {
    format!("{PREFIX}{cluster}/{replica_id}")
}

/// The holders of `cluster`'s tunnels, newest change first.
pub async fn holders(store: &AppStore, cluster: &str) -> Result<Vec<TunnelHolder>, StoreError> {
    let mut list = decode_all(store.list(&format!("{PREFIX}{cluster}/")).await?);
    list.retain(|holder| holder.cluster == cluster);
    list.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(a.replica_id.cmp(&b.replica_id)));
    Ok(list)
}

/// Every holder of every cluster, by cluster then replica.
pub async fn all_holders(store: &AppStore) -> Result<Vec<TunnelHolder>, StoreError> {
    let mut list = decode_all(store.list(PREFIX).await?);
    list.sort_by(|a, b| a.cluster.cmp(&b.cluster).then(a.replica_id.cmp(&b.replica_id)));
    Ok(list)
}

fn decode_all(entries: Vec<kuboard_storage::KeyValue>) -> Vec<TunnelHolder> {
    entries
        .into_iter()
        .filter_map(|entry| serde_json::from_slice(&entry.value).ok())
        .collect()
}

/// Publishes this replica's tunnels until `shutdown`; then removes its keys. `address` is the agent
/// port as peers reach it; without one, nothing is published (peers cannot forward to this replica).
pub async fn run(
    hub: Arc<TunnelHub>,
    store: AppStore,
    replica_id: u64,
    address: String,
    clock: Clock,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut lease: Option<i64> = None;
    let mut published: BTreeMap<String, usize> = BTreeMap::new();
    let mut last_keep_alive = Instant::now();
    let mut retry = false;
    loop {
        let wait = if retry { RETRY_EVERY } else { KEEP_ALIVE_EVERY };
        tokio::select! {
            _ = hub.changed().notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
        retry = false;
        if let Some(id) = lease {
            if last_keep_alive.elapsed() >= KEEP_ALIVE_EVERY {
                match store.lease_keep_alive(id).await {
                    Ok(response) if response.ttl > 0 => last_keep_alive = Instant::now(),
                    Ok(_) | Err(StoreError::LeaseNotFound(_)) => {
                        tracing::warn!("agent tunnel presence: the lease expired; publishing again");
                        lease = None;
                        published.clear();
                    }
                    Err(error) => {
                        tracing::debug!(%error, "agent tunnel presence: keep-alive failed");
                        retry = true;
                        continue;
                    }
                }
            }
        }
        let current = hub.clusters();
        if current == published {
            continue;
        }
        if lease.is_none() {
            match store.lease_grant(LEASE_TTL_SECONDS).await {
                Ok(granted) => {
                    lease = Some(granted.id);
                    last_keep_alive = Instant::now();
                }
                Err(error) => {
                    tracing::debug!(%error, "agent tunnel presence: no lease");
                    retry = true;
                    continue;
                }
            }
        }
        let lease_id = lease.unwrap_or_default();
        for (cluster, tunnels) in &current {
            if published.get(cluster) == Some(tunnels) {
                continue;
            }
            let holder = TunnelHolder {
                cluster: cluster.clone(),
                replica_id,
                address: address.clone(),
                tunnels: *tunnels,
                updated_at: clock.now_unix(),
            };
            let value = serde_json::to_vec(&holder).expect("a holder always serializes");
            let put = PutRequest {
                key: key(cluster, replica_id).into_bytes(),
                value,
                lease: lease_id,
                prev_kv: false,
            };
            match store.put(put).await {
                Ok(_) => {
                    published.insert(cluster.clone(), *tunnels);
                }
                Err(StoreError::LeaseNotFound(_)) => {
                    lease = None;
                    published.clear();
                    retry = true;
                    break;
                }
                Err(error) => {
                    tracing::debug!(%error, cluster, "agent tunnel presence: not written");
                    retry = true;
                }
            }
        }
        let gone: Vec<String> = published
            .keys()
            .filter(|cluster| !current.contains_key(*cluster))
            .cloned()
            .collect();
        for cluster in gone {
            match store.delete_key(&key(&cluster, replica_id)).await {
                Ok(_) => {
                    published.remove(&cluster);
                }
                Err(error) => {
                    tracing::debug!(%error, cluster, "agent tunnel presence: not removed");
                    retry = true;
                }
            }
        }
    }
    // Shutting down: the tunnels close with the replica; peers stop forwarding here at once
    // instead of at the lease's expiry.
    if let Some(id) = lease {
        let revoke = tokio::time::timeout(Duration::from_secs(1), store.lease_revoke(id)).await;
        if !matches!(revoke, Ok(Ok(_))) {
            tracing::debug!("agent tunnel presence: the lease was not revoked at shutdown");
        }
    }
}
