//! [`EtcdBackend`]: the external etcd as this replica's store, connected in the background.
//!
//! A replica must never hang at start because etcd is down: the web port comes up at once, store
//! calls answer `Unavailable` (HTTP 503 `store_unavailable`, `/readyz` not ready) and a task keeps
//! connecting with a bounded backoff until etcd answers. Once connected, etcd-client's channel
//! reconnects and fails over between endpoints by itself, so the connection is made only once.
//!
//! Settings that can never work (unreadable or malformed certificate files) are refused earlier,
//! when the settings are parsed, and stop the process with exit code 2.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use kuboard_storage::etcd::{EtcdStore, EtcdStoreConfig};
use kuboard_storage::StoreError;
use tokio::sync::watch;

use crate::config::EtcdConfig;

/// First pause after a failed connection attempt; it doubles up to [`RETRY_DELAY_MAX`].
const RETRY_DELAY_MIN: Duration = Duration::from_millis(500);
/// Longest pause between two connection attempts, so that a replica becomes ready within a few
/// seconds of etcd coming back.
const RETRY_DELAY_MAX: Duration = Duration::from_secs(4);
/// While etcd stays unreachable, the ERROR line is repeated this often (other failures are DEBUG).
const ERROR_REPEAT: Duration = Duration::from_secs(60);

/// The external etcd store of this replica, or the reason it is not connected yet.
pub struct EtcdBackend {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    connector: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

struct Shared {
    store: OnceLock<EtcdStore>,
    /// Why the last connection attempt failed; shown in `Unavailable` errors.
    last_error: Mutex<String>,
    endpoints: String,
    prefix: String,
}

impl EtcdBackend {
    /// Starts connecting in the background and returns at once.
    pub fn start(config: &EtcdConfig) -> EtcdBackend {
        let shared = Arc::new(Shared {
            store: OnceLock::new(),
            last_error: Mutex::new("not connected yet".to_string()),
            endpoints: config.endpoints.join(","),
            prefix: config.prefix.clone(),
        });
        let (stop, stop_receiver) = watch::channel(false);
        let connector = tokio::spawn(connect_until_stopped(
            shared.clone(),
            store_config(config),
            stop_receiver,
        ));
        EtcdBackend {
            shared,
            stop,
            connector: Mutex::new(Some(connector)),
        }
    }

    /// The connected store, or `Unavailable` naming the endpoints and the last failure.
    pub fn store(&self) -> Result<&EtcdStore, StoreError> {
        self.shared.store.get().ok_or_else(|| {
            let reason = self
                .shared
                .last_error
                .lock()
                .map(|reason| reason.clone())
                .unwrap_or_else(|_| "unknown".to_string());
            StoreError::Unavailable(format!("not connected to etcd at {}: {reason}", self.shared.endpoints))
        })
    }

    /// The key prefix every key of this store lives under.
    pub fn prefix(&self) -> &str {
        &self.shared.prefix
    }

    /// Stops the background connection attempts. The etcd client itself needs no flush.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
        if let Ok(mut connector) = self.connector.lock() {
            if let Some(task) = connector.take() {
                task.abort();
            }
        }
    }
}

/// The storage crate's connection settings for the parsed `KUBOARD_ETCD_*` settings.
pub fn store_config(config: &EtcdConfig) -> EtcdStoreConfig {
    EtcdStoreConfig {
        ca_cert: config.ca_cert.clone(),
        client_cert: config.cert.clone(),
        client_key: config.key.clone(),
        username: config.username.clone(),
        password: config.password.as_ref().map(|password| password.expose().to_string()),
        prefix: config.prefix.clone(),
        ..EtcdStoreConfig::new(config.endpoints.clone())
    }
}

async fn connect_until_stopped(shared: Arc<Shared>, config: EtcdStoreConfig, mut stop: watch::Receiver<bool>) {
    let mut delay = RETRY_DELAY_MIN;
    let mut attempts: u64 = 0;
    let mut last_error_logged: Option<(tokio::time::Instant, String)> = None;
    loop {
        attempts += 1;
        let attempt = tokio::select! {
            result = EtcdStore::connect(config.clone()) => result,
            _ = stop.wait_for(|stop| *stop) => return,
        };
        match attempt {
            Ok(store) => {
                if shared.store.set(store).is_err() {
                    tracing::warn!("etcd store connected twice; keeping the first connection");
                }
                tracing::info!(
                    endpoints = %shared.endpoints,
                    prefix = %config.prefix,
                    attempts,
                    "store ready: connected to the external etcd"
                );
                return;
            }
            Err(error) => {
                // The storage crate's connect errors name the endpoints or file and never the password.
                let cause = error.to_string();
                if let Ok(mut last_error) = shared.last_error.lock() {
                    last_error.clone_from(&cause);
                }
                let repeat_due = match &last_error_logged {
                    None => true,
                    Some((at, previous)) => *previous != cause || at.elapsed() >= ERROR_REPEAT,
                };
                if repeat_due {
                    tracing::error!(
                        endpoints = %shared.endpoints,
                        attempts,
                        retry_in_ms = delay.as_millis() as u64,
                        "cannot connect to the external etcd (KUBOARD_ETCD_ENDPOINTS): {cause}; the replica is not \
                         ready and keeps trying"
                    );
                    last_error_logged = Some((tokio::time::Instant::now(), cause));
                } else {
                    tracing::debug!(attempts, "etcd still unreachable: {cause}");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        delay = (delay * 2).min(RETRY_DELAY_MAX);
    }
}
