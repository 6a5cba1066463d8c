//! The client side: one multiplexed connection per peer and lane, dialled on first use, redialled
//! with an exponential backoff after it fails.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use super::config::PeerConfig;
use super::connection::{MuxConnection, RequestError};
use super::handshake::client_handshake;
use super::stats::PeerStats;
use super::wire::{RemoteFailure, RequestBody};

/// Connections are kept per peer and per lane, so that a snapshot being streamed does not delay
/// heartbeats and log replication behind its chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Lane {
    Raft,
    Snapshot,
}

/// Why a request to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("no address is known for peer {target}")]
    UnknownPeer { target: u64 },
    #[error("connect to peer {target} at {addr}: {source}")]
    Connect {
        target: u64,
        addr: String,
        source: std::io::Error,
    },
    /// The handshake did not complete: a wrong secret on either side, another cluster, another node
    /// at that address, or a deadline.
    #[error("handshake with peer {target} at {addr}: {message}")]
    Handshake {
        target: u64,
        addr: String,
        message: String,
        auth: bool,
    },
    #[error("peer {target} is unreachable; the next connection attempt is in {retry_in:?}")]
    BackingOff { target: u64, retry_in: Duration },
    /// The connection failed while the request was in flight: the peer may or may not have
    /// processed it.
    #[error("connection to peer {target} lost: {message}")]
    ConnectionLost { target: u64, message: String },
    #[error("peer {target} did not answer within {timeout:?}")]
    Timeout { target: u64, timeout: Duration },
    #[error("request to peer {target} not sent: {message}")]
    RequestTooLarge { target: u64, message: String },
    #[error("peer {target}: {failure}")]
    Remote { target: u64, failure: RemoteFailure },
}

impl PeerError {
    /// Whether the peer cannot be talked to at all right now (down, refusing us, or backing off),
    /// as opposed to one request having gone wrong.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            PeerError::UnknownPeer { .. }
                | PeerError::Connect { .. }
                | PeerError::Handshake { .. }
                | PeerError::BackingOff { .. }
                | PeerError::Remote {
                    failure: RemoteFailure::Stopped(_),
                    ..
                }
        )
    }
}

/// Client of the peer transport of one replica: an address book of the other members and one
/// reused connection per member. Cloning shares the connections.
#[derive(Clone)]
pub struct PeerClient {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    config: PeerConfig,
    stats: PeerStats,
    addresses: RwLock<HashMap<u64, String>>,
    slots: Mutex<HashMap<(u64, Lane), Arc<Slot>>>,
}

/// The connection to one peer on one lane; the async lock makes concurrent callers share one dial.
#[derive(Default)]
struct Slot {
    state: tokio::sync::Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    connection: Option<Arc<MuxConnection>>,
    /// Address the connection was dialled at; a changed address forces a new connection.
    addr: String,
    consecutive_failures: u32,
    retry_at: Option<Instant>,
}

impl PeerClient {
    pub fn new(config: PeerConfig) -> Self {
        Self {
            inner: Arc::new(ClientInner {
                config,
                stats: PeerStats::default(),
                addresses: RwLock::new(HashMap::new()),
                slots: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn config(&self) -> &PeerConfig {
        &self.inner.config
    }

    pub fn stats(&self) -> &PeerStats {
        &self.inner.stats
    }

    /// Record where peer `target` listens (`host:port`). openraft's membership records addresses
    /// too and the network factory keeps this book up to date from them; this is for peers known
    /// from the configuration before membership is.
    pub fn set_peer_address(&self, target: u64, addr: impl Into<String>) {
        let addr = addr.into();
        let mut addresses = self
            .inner
            .addresses
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if addresses.get(&target) != Some(&addr) {
            addresses.insert(target, addr);
        }
    }

    pub fn peer_address(&self, target: u64) -> Option<String> {
        let addresses = self
            .inner
            .addresses
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        addresses.get(&target).cloned()
    }

    /// Send opaque application bytes to peer `target`'s [`AppRequestHandler`] and wait at most
    /// `timeout` for its answer. A [`PeerError::ConnectionLost`] or [`PeerError::Timeout`] leaves it
    /// open whether the peer acted on the request.
    ///
    /// [`AppRequestHandler`]: super::AppRequestHandler
    pub async fn app_request(&self, target: u64, request: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, PeerError> {
        self.call(target, Lane::Raft, RequestBody::App(request), timeout).await
    }

    /// Send one request on a lane, dialling first if needed; `timeout` bounds the whole call.
    pub(super) async fn call(
        &self,
        target: u64,
        lane: Lane,
        body: RequestBody,
        timeout: Duration,
    ) -> Result<Vec<u8>, PeerError> {
        let kind = body.kind();
        let outcome = self.call_inner(target, lane, body, timeout).await;
        if let Err(e) = &outcome {
            self.inner.stats.rpc_error();
            tracing::debug!(peer = target, request = kind, error = %e, "peer request failed");
        }
        outcome
    }

    async fn call_inner(
        &self,
        target: u64,
        lane: Lane,
        body: RequestBody,
        timeout: Duration,
    ) -> Result<Vec<u8>, PeerError> {
        let deadline = Instant::now() + timeout;
        let connection = match tokio::time::timeout_at(deadline, self.connection(target, lane, deadline)).await {
            Ok(connection) => connection?,
            Err(_) => return Err(PeerError::Timeout { target, timeout }),
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        match connection.request(body, remaining).await {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(failure)) => Err(PeerError::Remote { target, failure }),
            Err(RequestError::Timeout(_)) => Err(PeerError::Timeout { target, timeout }),
            Err(RequestError::Lost(message)) => Err(PeerError::ConnectionLost { target, message }),
            Err(RequestError::Encode(e)) => Err(PeerError::RequestTooLarge {
                target,
                message: e.to_string(),
            }),
        }
    }

    fn slot(&self, target: u64, lane: Lane) -> Arc<Slot> {
        let mut slots = self.inner.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        slots.entry((target, lane)).or_default().clone()
    }

    /// The open connection to `target` on `lane`, dialled now if there is none and the backoff
    /// allows it.
    async fn connection(&self, target: u64, lane: Lane, deadline: Instant) -> Result<Arc<MuxConnection>, PeerError> {
        let addr = self.peer_address(target).ok_or(PeerError::UnknownPeer { target })?;
        let slot = self.slot(target, lane);
        let mut state = slot.state.lock().await;
        if let Some(connection) = &state.connection {
            if connection.is_open() && state.addr == addr {
                return Ok(connection.clone());
            }
            state.connection = None;
        }
        if let Some(retry_at) = state.retry_at {
            let now = Instant::now();
            if now < retry_at {
                return Err(PeerError::BackingOff {
                    target,
                    retry_in: retry_at - now,
                });
            }
        }
        match self.dial(target, &addr, deadline).await {
            Ok(connection) => {
                let connection = Arc::new(connection);
                state.connection = Some(connection.clone());
                state.addr = addr;
                state.consecutive_failures = 0;
                state.retry_at = None;
                Ok(connection)
            }
            Err(e) => {
                state.consecutive_failures = state.consecutive_failures.saturating_add(1);
                let backoff = reconnect_backoff(&self.inner.config, state.consecutive_failures);
                state.retry_at = Some(Instant::now() + backoff);
                if state.consecutive_failures == 1 {
                    tracing::info!(peer = target, %addr, error = %e, "cannot reach peer; retrying with backoff");
                }
                Err(e)
            }
        }
    }

    async fn dial(&self, target: u64, addr: &str, deadline: Instant) -> Result<MuxConnection, PeerError> {
        let config = &self.inner.config;
        let stats = &self.inner.stats;
        let connect_deadline = deadline.min(Instant::now() + config.connect_timeout);
        let mut stream = match tokio::time::timeout_at(connect_deadline, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => {
                return Err(PeerError::Connect {
                    target,
                    addr: addr.to_string(),
                    source,
                })
            }
            Err(_) => {
                return Err(PeerError::Connect {
                    target,
                    addr: addr.to_string(),
                    source: std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"),
                })
            }
        };
        stats.connection_dialed();
        // Raft messages are small and latency-bound; Nagle's delay would only add to them.
        let _ = stream.set_nodelay(true);
        let handshake_deadline = deadline.min(Instant::now() + config.handshake_timeout);
        let handshake =
            tokio::time::timeout_at(handshake_deadline, client_handshake(&mut stream, config, target)).await;
        let failure = match handshake {
            Ok(Ok(keys)) => Ok(keys),
            Ok(Err(e)) => Err((e.to_string(), e.is_auth_failure())),
            Err(_) => Err(("no answer before the handshake deadline".to_string(), false)),
        };
        let keys = match failure {
            Ok(keys) => keys,
            Err((message, auth)) => {
                if auth {
                    stats.auth_failure();
                    tracing::warn!(peer = target, %addr, %message, "peer authentication failed");
                } else {
                    stats.handshake_failure();
                }
                return Err(PeerError::Handshake {
                    target,
                    addr: addr.to_string(),
                    message,
                    auth,
                });
            }
        };
        stats.connection_authenticated();
        Ok(MuxConnection::start(
            stream,
            keys,
            target,
            config.max_frame_bytes,
            stats.clone(),
        ))
    }
}

fn reconnect_backoff(config: &PeerConfig, consecutive_failures: u32) -> Duration {
    let doublings = consecutive_failures.saturating_sub(1).min(16);
    config
        .reconnect_backoff_min
        .saturating_mul(1u32 << doublings)
        .min(config.reconnect_backoff_max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::ClusterSecret;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let config = PeerConfig::new(1, "c", ClusterSecret::new("s").expect("non-empty"));
        let delays: Vec<_> = (1..=8).map(|n| reconnect_backoff(&config, n).as_millis()).collect();
        assert_eq!(delays, vec![50, 100, 200, 400, 800, 1000, 1000, 1000]);
    }

    // Keeps the error classification honest: openraft backs off longer on "unreachable".
    #[test]
    fn unreachable_classification() {
        assert!(PeerError::UnknownPeer { target: 1 }.is_unreachable());
        assert!(!PeerError::Timeout {
            target: 1,
            timeout: Duration::from_secs(1)
        }
        .is_unreachable());
    }
}
