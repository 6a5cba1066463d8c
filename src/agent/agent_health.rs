//! The agent's own `/healthz`, `/readyz` and `/metrics` (on `KUBOARD_AGENT_HEALTH_LISTEN`, for the
//! kubelet's probes and a Prometheus scrape): alive, at least one tunnel up, and its tunnels and
//! streams.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use prometheus::{Encoder, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};
use tokio_util::sync::CancellationToken;

pub struct AgentMetrics {
    registry: Registry,
    /// 1 while the tunnel to a replica's agent address is up.
    pub tunnel_up: IntGaugeVec,
    /// Tunnels up now, all addresses together.
    pub tunnels_up: IntGauge,
    pub tunnel_connects: IntCounterVec,
    pub tunnel_failures: IntCounterVec,
    pub streams_open: IntGauge,
    /// Streams refused or failed, by reason (`not_allowed`, `connect`, `timeout`, `method`).
    pub stream_refusals: IntCounterVec,
    /// TLS handshakes with a replica that failed, by replica address and reason
    /// (`untrusted_certificate`, `wrong_name`, `expired`, `closed`, `handshake`, `timeout`).
    pub tls_failures: IntCounterVec,
}

impl AgentMetrics {
    pub fn new() -> AgentMetrics {
        let valid = "metric definition is valid";
        let metrics = AgentMetrics {
            registry: Registry::new(),
            tunnel_up: IntGaugeVec::new(
                Opts::new(
                    "kuboard_agent_tunnel_up",
                    "1 while the tunnel to this replica address is up",
                ),
                &["server"],
            )
            .expect(valid),
            tunnels_up: IntGauge::new("kuboard_agent_tunnels_up", "Tunnels up now, to all replica addresses")
                .expect(valid),
            tunnel_connects: IntCounterVec::new(
                Opts::new(
                    "kuboard_agent_tunnel_connects_total",
                    "Tunnels established, by replica address",
                ),
                &["server"],
            )
            .expect(valid),
            tunnel_failures: IntCounterVec::new(
                Opts::new(
                    "kuboard_agent_tunnel_failures_total",
                    "Dials or handshakes that failed and tunnels that ended, by replica address",
                ),
                &["server"],
            )
            .expect(valid),
            streams_open: IntGauge::new(
                "kuboard_agent_streams_open",
                "Apiserver connections open for the replicas",
            )
            .expect(valid),
            stream_refusals: IntCounterVec::new(
                Opts::new(
                    "kuboard_agent_stream_refusals_total",
                    "Apiserver connections asked for and not opened, by reason",
                ),
                &["reason"],
            )
            .expect(valid),
            tls_failures: IntCounterVec::new(
                Opts::new(
                    "kuboard_agent_tls_failures_total",
                    "TLS handshakes with a replica that failed (the agent does not fall back to plain text), by replica address and reason",
                ),
                &["server", "reason"],
            )
            .expect(valid),
        };
        for collector in [
            Box::new(metrics.tunnel_up.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(metrics.tunnels_up.clone()),
            Box::new(metrics.tunnel_connects.clone()),
            Box::new(metrics.tunnel_failures.clone()),
            Box::new(metrics.streams_open.clone()),
            Box::new(metrics.stream_refusals.clone()),
            Box::new(metrics.tls_failures.clone()),
        ] {
            metrics.registry.register(collector).expect(valid);
        }
        metrics
    }

    fn render(&self) -> String {
        let mut buffer = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8_lossy(&buffer).into_owned()
    }
}

impl Default for AgentMetrics {
    fn default() -> AgentMetrics {
        AgentMetrics::new()
    }
}

/// Serves the health endpoints on `listener` until `stop`.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<AgentMetrics>, stop: CancellationToken) {
    let router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(render))
        .with_state(metrics);
    let _ = axum::serve(listener, router)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
}

async fn ready(State(metrics): State<Arc<AgentMetrics>>) -> (StatusCode, &'static str) {
    if metrics.tunnels_up.get() > 0 {
        (StatusCode::OK, "ok: at least one tunnel is up\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "no tunnel is up\n")
    }
}

async fn render(State(metrics): State<Arc<AgentMetrics>>) -> String {
    metrics.render()
}

/// Binds the health address; an address that cannot be bound stops the agent at start.
pub async fn bind(address: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|error| format!("KUBOARD_AGENT_HEALTH_LISTEN={address}: cannot listen: {error}"))
}

/// Marks a tunnel up for as long as it lives (whatever way it ends, cancellation included).
pub struct TunnelUp {
    metrics: Arc<AgentMetrics>,
    server: String,
}

impl TunnelUp {
    pub fn new(metrics: &Arc<AgentMetrics>, server: &str) -> TunnelUp {
        metrics.tunnel_up.with_label_values(&[server]).set(1);
        metrics.tunnels_up.inc();
        metrics.tunnel_connects.with_label_values(&[server]).inc();
        TunnelUp {
            metrics: metrics.clone(),
            server: server.to_string(),
        }
    }
}

impl Drop for TunnelUp {
    fn drop(&mut self) {
        self.metrics.tunnel_up.with_label_values(&[&self.server]).set(0);
        self.metrics.tunnels_up.dec();
    }
}
