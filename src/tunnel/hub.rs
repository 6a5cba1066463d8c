//! [`TunnelHub`]: the tunnels agents hold to this replica, by cluster. The apiserver connector of
//! an agent cluster dials through it: one HTTP/2 `CONNECT` stream per apiserver connection.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::client::SendRequest;
use http::{Method, Request, StatusCode};
use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts};

use crate::metrics::Metrics;
use crate::tunnel::peer::PeerForwarder;
use crate::tunnel::protocol::DIAL_REFUSED_HEADER;
use crate::tunnel::tunnel_stream::TunnelStream;

struct Tunnel {
    id: u64,
    sender: SendRequest<Bytes>,
    /// When a stream through this tunnel last went unanswered past its deadline: a tunnel cut
    /// silently (packets dropped, no reset) looks alive until the keepalive declares it dead.
    unanswered_at: Option<Instant>,
}

/// How long a tunnel that left a stream unanswered is passed over while a peer replica can serve
/// (longer than the keepalive's ping interval and timeout together, which end a dead tunnel).
const PASSED_OVER_FOR: Duration = Duration::from_secs(15);

/// The agent metrics of a replica.
pub struct AgentServerMetrics {
    pub tunnels: IntGaugeVec,
    pub tunnel_connects: IntCounterVec,
    pub handshake_failures: IntCounterVec,
    pub streams_open: IntGauge,
    pub dial_failures: IntCounterVec,
    /// Apiserver connections forwarded between replicas: `direction` is `out` (this replica had no
    /// tunnel and went through a peer) or `in` (a peer came through this replica's tunnel);
    /// `outcome` is `ok` or why it failed.
    pub peer_forwards: IntCounterVec,
    /// Bytes through this replica's tunnels, by cluster and direction (`from_cluster`: read from
    /// the apiservers, `to_cluster`: written to them).
    pub stream_bytes: IntCounterVec,
}

impl AgentServerMetrics {
    pub fn new(metrics: &Metrics) -> AgentServerMetrics {
        let agent_metrics = AgentServerMetrics::unregistered();
        metrics.register_collector(Box::new(agent_metrics.tunnels.clone()));
        metrics.register_collector(Box::new(agent_metrics.tunnel_connects.clone()));
        metrics.register_collector(Box::new(agent_metrics.handshake_failures.clone()));
        metrics.register_collector(Box::new(agent_metrics.streams_open.clone()));
        metrics.register_collector(Box::new(agent_metrics.dial_failures.clone()));
        metrics.register_collector(Box::new(agent_metrics.peer_forwards.clone()));
        metrics.register_collector(Box::new(agent_metrics.stream_bytes.clone()));
        agent_metrics
    }

    pub fn unregistered() -> AgentServerMetrics {
        let valid = "metric definition is valid";
        AgentServerMetrics {
            tunnels: IntGaugeVec::new(
                Opts::new(
                    "kuboard_agent_tunnels",
                    "Live agent tunnels to this replica, by cluster",
                ),
                &["cluster"],
            )
            .expect(valid),
            tunnel_connects: IntCounterVec::new(
                Opts::new(
                    "kuboard_agent_tunnel_connects_total",
                    "Agent tunnels accepted by this replica, by cluster (reconnects included)",
                ),
                &["cluster"],
            )
            .expect(valid),
            handshake_failures: IntCounterVec::new(
                Opts::new(
                    "kuboard_agent_handshake_failures_total",
                    "Connections to the agent port refused, by reason",
                ),
                &["reason"],
            )
            .expect(valid),
            streams_open: IntGauge::new(
                "kuboard_agent_streams_open",
                "Apiserver connections open through agent tunnels of this replica",
            )
            .expect(valid),
            dial_failures: IntCounterVec::new(
                Opts::new(
                    "kuboard_agent_dial_failures_total",
                    "Apiserver connections through a tunnel that could not be opened, by cluster",
                ),
                &["cluster"],
            )
            .expect(valid),
            peer_forwards: IntCounterVec::new(
                Opts::new(
                    "kuboard_agent_peer_forwards_total",
                    "Apiserver connections of agent clusters forwarded between replicas, by cluster, direction and outcome",
                ),
                &["cluster", "direction", "outcome"],
            )
            .expect(valid),
            stream_bytes: IntCounterVec::new(
                Opts::new(
                    "kuboard_agent_stream_bytes_total",
                    "Bytes through the agent tunnels of this replica, by cluster and direction",
                ),
                &["cluster", "direction"],
            )
            .expect(valid),
        }
    }
}

pub struct TunnelHub {
    tunnels: Mutex<HashMap<String, Vec<Tunnel>>>,
    next_id: AtomicU64,
    pub metrics: std::sync::Arc<AgentServerMetrics>,
    /// Notified when a tunnel is added or removed (the presence publisher waits on it).
    changed: tokio::sync::Notify,
    /// Set on a replica of a group: where a dial goes when this replica has no live tunnel.
    peers: OnceLock<Arc<PeerForwarder>>,
}

impl fmt::Debug for TunnelHub {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("TunnelHub").finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("no agent of cluster {0} is connected to this replica")]
    NoTunnel(String),
    #[error("the agent tunnel failed: {0}")]
    Tunnel(h2::Error),
    #[error("the agent refused or failed the connection to {authority}: {status} {reason}")]
    Refused {
        authority: String,
        status: StatusCode,
        reason: String,
    },
    #[error("the agent did not answer within {0:?}")]
    Timeout(Duration),
    #[error("no replica holds a tunnel of cluster {cluster} that works: {detail}")]
    NoPeer { cluster: String, detail: String },
}

/// A connection to an apiserver of an agent cluster: through this replica's tunnel, or through a
/// peer replica's (a TCP connection to the peer's agent port that carries the bytes after the
/// peer handshake).
pub enum HubConnection {
    Local(TunnelStream),
    Peer(tokio::net::TcpStream),
}

impl TunnelHub {
    pub fn new(metrics: std::sync::Arc<AgentServerMetrics>) -> TunnelHub {
        TunnelHub {
            tunnels: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            metrics,
            changed: tokio::sync::Notify::new(),
            peers: OnceLock::new(),
        }
    }

    /// Makes dials without a live local tunnel go through peer replicas. Set once, at start.
    pub fn set_peer_forwarder(&self, forwarder: Arc<PeerForwarder>) {
        let _ = self.peers.set(forwarder);
    }

    /// Notified on every tunnel added or removed.
    pub fn changed(&self) -> &tokio::sync::Notify {
        &self.changed
    }

    /// Clusters with live tunnels to this replica, and how many each.
    pub fn clusters(&self) -> std::collections::BTreeMap<String, usize> {
        self.lock()
            .iter()
            .map(|(cluster, list)| (cluster.clone(), list.len()))
            .collect()
    }

    /// Adds a tunnel of `cluster`; returns its id for [`TunnelHub::remove`].
    pub fn add(&self, cluster: &str, sender: SendRequest<Bytes>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut tunnels = self.lock();
        let list = tunnels.entry(cluster.to_string()).or_default();
        list.push(Tunnel {
            id,
            sender,
            unanswered_at: None,
        });
        self.metrics
            .tunnels
            .with_label_values(&[cluster])
            .set(list.len() as i64);
        drop(tunnels);
        self.changed.notify_one();
        id
    }

    pub fn remove(&self, cluster: &str, id: u64) {
        let mut tunnels = self.lock();
        if let Some(list) = tunnels.get_mut(cluster) {
            list.retain(|tunnel| tunnel.id != id);
            self.metrics
                .tunnels
                .with_label_values(&[cluster])
                .set(list.len() as i64);
            if list.is_empty() {
                tunnels.remove(cluster);
            }
        }
        drop(tunnels);
        self.changed.notify_one();
    }

    /// How many tunnels of `cluster` this replica holds.
    pub fn tunnel_count(&self, cluster: &str) -> usize {
        self.lock().get(cluster).map_or(0, Vec::len)
    }

    /// Opens a connection to `authority` (`host:port`, one of the agent's apiservers) through a
    /// tunnel of `cluster`: the newest first, then older ones when a tunnel itself fails (one that
    /// died and is not yet detected); an answer of the agent (a refusal) is final.
    pub async fn dial(&self, cluster: &str, authority: &str, timeout: Duration) -> Result<TunnelStream, DialError> {
        self.dial_tunnels(cluster, authority, timeout, false).await
    }

    /// The tunnels of `cluster`, newest first; without those that left a stream unanswered
    /// lately when `pass_over_unanswered`.
    fn senders(&self, cluster: &str, pass_over_unanswered: bool) -> Vec<(u64, SendRequest<Bytes>)> {
        self.lock()
            .get(cluster)
            .map(|list| {
                list.iter()
                    .rev()
                    .filter(|tunnel| {
                        !pass_over_unanswered || tunnel.unanswered_at.is_none_or(|at| at.elapsed() >= PASSED_OVER_FOR)
                    })
                    .map(|tunnel| (tunnel.id, tunnel.sender.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn mark_unanswered(&self, cluster: &str, id: u64) {
        if let Some(tunnel) = self
            .lock()
            .get_mut(cluster)
            .and_then(|list| list.iter_mut().find(|tunnel| tunnel.id == id))
        {
            tunnel.unanswered_at = Some(Instant::now());
        }
    }

    async fn dial_tunnels(
        &self,
        cluster: &str,
        authority: &str,
        timeout: Duration,
        pass_over_unanswered: bool,
    ) -> Result<TunnelStream, DialError> {
        let senders = self.senders(cluster, pass_over_unanswered);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut result = Err(DialError::NoTunnel(cluster.to_string()));
        for (id, sender) in senders {
            result = match tokio::time::timeout_at(deadline, open_stream(sender, authority)).await {
                Ok(Err(error @ DialError::Tunnel(_))) => Err(error),
                Ok(other) => other,
                Err(_) => {
                    self.mark_unanswered(cluster, id);
                    Err(DialError::Timeout(timeout))
                }
            };
            if !matches!(result, Err(DialError::Tunnel(_))) {
                break;
            }
        }
        match result {
            Ok(stream) => {
                let gauge = self.metrics.streams_open.clone();
                gauge.inc();
                let bytes = &self.metrics.stream_bytes;
                Ok(stream.on_drop(move || gauge.dec()).count_bytes(
                    bytes.with_label_values(&[cluster, "from_cluster"]),
                    bytes.with_label_values(&[cluster, "to_cluster"]),
                ))
            }
            Err(error) => {
                self.metrics.dial_failures.with_label_values(&[cluster]).inc();
                Err(error)
            }
        }
    }

    /// Opens a connection to `authority` of `cluster`: through this replica's tunnels first; when it
    /// has none that works, through a peer replica that holds one (when a forwarder is set). An
    /// answer of the agent (a refusal) is final.
    pub async fn dial_any(
        &self,
        cluster: &str,
        authority: &str,
        timeout: Duration,
    ) -> Result<HubConnection, DialError> {
        let started = Instant::now();
        // With peers to fall back on, a tunnel that went silent must not take the whole budget:
        // it gets half, and after leaving a stream unanswered it is passed over for a while.
        let has_peers = self.peers.get().is_some();
        let local_tried = !self.senders(cluster, has_peers).is_empty();
        let local_budget = if has_peers { timeout / 2 } else { timeout };
        let local_error = if local_tried {
            match self.dial_tunnels(cluster, authority, local_budget, has_peers).await {
                Ok(stream) => return Ok(HubConnection::Local(stream)),
                Err(error @ DialError::Refused { .. }) => return Err(error),
                Err(error) => error,
            }
        } else {
            DialError::NoTunnel(cluster.to_string())
        };
        let Some(peers) = self.peers.get() else {
            if !local_tried {
                self.metrics.dial_failures.with_label_values(&[cluster]).inc();
            }
            return Err(local_error);
        };
        let remaining = timeout.saturating_sub(started.elapsed());
        let result = peers.dial(cluster, authority, remaining).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(DialError::Refused { .. }) => "refused",
            Err(_) => "failed",
        };
        self.metrics
            .peer_forwards
            .with_label_values(&[cluster, "out", outcome])
            .inc();
        match result {
            Ok(socket) => Ok(HubConnection::Peer(socket)),
            Err(error) => {
                if !local_tried {
                    self.metrics.dial_failures.with_label_values(&[cluster]).inc();
                }
                Err(error)
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Tunnel>>> {
        self.tunnels.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

async fn open_stream(sender: SendRequest<Bytes>, authority: &str) -> Result<TunnelStream, DialError> {
    let mut sender = sender.ready().await.map_err(DialError::Tunnel)?;
    let request = Request::builder()
        .method(Method::CONNECT)
        .uri(authority)
        .body(())
        .map_err(|error| DialError::Refused {
            authority: authority.to_string(),
            status: StatusCode::BAD_REQUEST,
            reason: error.to_string(),
        })?;
    let (response, send) = sender.send_request(request, false).map_err(DialError::Tunnel)?;
    let response = response.await.map_err(DialError::Tunnel)?;
    if response.status() != StatusCode::OK {
        let reason = response
            .headers()
            .get(DIAL_REFUSED_HEADER)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_string();
        return Err(DialError::Refused {
            authority: authority.to_string(),
            status: response.status(),
            reason,
        });
    }
    Ok(TunnelStream::new(send, response.into_body()))
}
