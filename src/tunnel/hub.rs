//! [`TunnelHub`]: the tunnels agents hold to this replica, by cluster. The apiserver connector of
//! an agent cluster dials through it: one HTTP/2 `CONNECT` stream per apiserver connection.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use http::{Method, Request, StatusCode};
use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts};

use crate::metrics::Metrics;
use crate::tunnel::protocol::DIAL_REFUSED_HEADER;
use crate::tunnel::tunnel_stream::TunnelStream;

struct Tunnel {
    id: u64,
    sender: SendRequest<Bytes>,
}

/// The agent metrics of a replica.
pub struct AgentServerMetrics {
    pub tunnels: IntGaugeVec,
    pub tunnel_connects: IntCounterVec,
    pub handshake_failures: IntCounterVec,
    pub streams_open: IntGauge,
    pub dial_failures: IntCounterVec,
}

impl AgentServerMetrics {
    pub fn new(metrics: &Metrics) -> AgentServerMetrics {
        let agent_metrics = AgentServerMetrics::unregistered();
        metrics.register_collector(Box::new(agent_metrics.tunnels.clone()));
        metrics.register_collector(Box::new(agent_metrics.tunnel_connects.clone()));
        metrics.register_collector(Box::new(agent_metrics.handshake_failures.clone()));
        metrics.register_collector(Box::new(agent_metrics.streams_open.clone()));
        metrics.register_collector(Box::new(agent_metrics.dial_failures.clone()));
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
        }
    }
}

pub struct TunnelHub {
    tunnels: Mutex<HashMap<String, Vec<Tunnel>>>,
    next_id: AtomicU64,
    pub metrics: std::sync::Arc<AgentServerMetrics>,
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
}

impl TunnelHub {
    pub fn new(metrics: std::sync::Arc<AgentServerMetrics>) -> TunnelHub {
        TunnelHub {
            tunnels: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            metrics,
        }
    }

    /// Adds a tunnel of `cluster`; returns its id for [`TunnelHub::remove`].
    pub fn add(&self, cluster: &str, sender: SendRequest<Bytes>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut tunnels = self.lock();
        let list = tunnels.entry(cluster.to_string()).or_default();
        list.push(Tunnel { id, sender });
        self.metrics
            .tunnels
            .with_label_values(&[cluster])
            .set(list.len() as i64);
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
    }

    /// How many tunnels of `cluster` this replica holds.
    pub fn tunnel_count(&self, cluster: &str) -> usize {
        self.lock().get(cluster).map_or(0, Vec::len)
    }

    /// Opens a connection to `authority` (`host:port`, one of the agent's apiservers) through a
    /// tunnel of `cluster`: the newest first, then older ones when a tunnel itself fails (one that
    /// died and is not yet detected); an answer of the agent (a refusal) is final.
    pub async fn dial(&self, cluster: &str, authority: &str, timeout: Duration) -> Result<TunnelStream, DialError> {
        let senders: Vec<SendRequest<Bytes>> = self
            .lock()
            .get(cluster)
            .map(|list| list.iter().rev().map(|tunnel| tunnel.sender.clone()).collect())
            .unwrap_or_default();
        let attempts = async {
            let mut last = DialError::NoTunnel(cluster.to_string());
            for sender in senders {
                match open_stream(sender, authority).await {
                    Err(error @ DialError::Tunnel(_)) => last = error,
                    other => return other,
                }
            }
            Err(last)
        };
        let result = tokio::time::timeout(timeout, attempts)
            .await
            .unwrap_or(Err(DialError::Timeout(timeout)));
        match result {
            Ok(stream) => {
                let gauge = self.metrics.streams_open.clone();
                gauge.inc();
                Ok(stream.on_drop(move || gauge.dec()))
            }
            Err(error) => {
                self.metrics.dial_failures.with_label_values(&[cluster]).inc();
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
