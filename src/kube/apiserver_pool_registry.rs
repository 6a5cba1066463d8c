//! [`ApiserverPoolRegistry`]: every apiserver pool of this replica, one per cluster, made on first
//! use from the cluster registry and remade when the cluster's record changes (its mod revision moves).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::app_store::AppStore;
use crate::clusters::cluster_registry::{self, ClusterError};
use crate::clusters::credential_cipher::CredentialCipher;
use crate::kube::apiserver_pool::{ApiserverPool, PoolSettings};
use crate::kube::cluster_connection::{ClusterConnection, ConnectionError};
use crate::kube::kube_metrics::KubeMetrics;

struct CachedPool {
    mod_revision: i64,
    pool: Arc<ApiserverPool>,
}

pub struct ApiserverPoolRegistry {
    pools: Mutex<HashMap<String, CachedPool>>,
    pub metrics: Arc<KubeMetrics>,
    pub settings: PoolSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum PoolLookupError {
    #[error(transparent)]
    Registry(#[from] ClusterError),
    #[error("cluster {name} cannot be connected: {source}")]
    Connection { name: String, source: ConnectionError },
}

impl ApiserverPoolRegistry {
    pub fn new(metrics: Arc<KubeMetrics>, settings: PoolSettings) -> ApiserverPoolRegistry {
        ApiserverPoolRegistry {
            pools: Mutex::new(HashMap::new()),
            metrics,
            settings,
        }
    }

    /// The pool of cluster `name`, or `None` when the registry has no such cluster.
    pub async fn pool_for(
        &self,
        store: &AppStore,
        cipher: &CredentialCipher,
        name: &str,
    ) -> Result<Option<Arc<ApiserverPool>>, PoolLookupError> {
        let Some(stored) = cluster_registry::get_cluster(store, name).await? else {
            if let Some(gone) = self.lock().remove(name) {
                gone.pool.shutdown();
            }
            return Ok(None);
        };
        if let Some(cached) = self.lock().get(name) {
            if cached.mod_revision == stored.mod_revision {
                return Ok(Some(cached.pool.clone()));
            }
        }
        let credentials = cluster_registry::open_credentials(cipher, &stored.record)?;
        let connection = ClusterConnection::from_record(&stored.record, &credentials).map_err(|source| {
            PoolLookupError::Connection {
                name: name.to_string(),
                source,
            }
        })?;
        let pool =
            ApiserverPool::start(&connection, self.settings.clone(), self.metrics.clone()).map_err(|source| {
                PoolLookupError::Connection {
                    name: name.to_string(),
                    source,
                }
            })?;
        let mut pools = self.lock();
        // Another request may have built the same revision meanwhile: keep one.
        if let Some(cached) = pools.get(name) {
            if cached.mod_revision == stored.mod_revision {
                pool.shutdown();
                return Ok(Some(cached.pool.clone()));
            }
        }
        tracing::info!(cluster = %name, endpoints = connection.endpoints.len(), "apiserver pool started");
        if let Some(replaced) = pools.insert(
            name.to_string(),
            CachedPool {
                mod_revision: stored.mod_revision,
                pool: pool.clone(),
            },
        ) {
            replaced.pool.shutdown();
        }
        Ok(Some(pool))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CachedPool>> {
        self.pools.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
