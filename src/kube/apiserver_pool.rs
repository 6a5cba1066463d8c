//! [`ApiserverPool`]: the embedded balancer of one cluster's apiservers (DESIGN §8).
//!
//! One pooled HTTP/1.1 client per endpoint (so that connections are counted and closed per
//! endpoint), active health checks on `/readyz` every [`PoolSettings::check_interval`], the state
//! machine of [`crate::kube::endpoint_state`] deciding the try order, and the failover: when an
//! endpoint fails, every connection to it is closed at once, so in-flight watches, log streams
//! and exec sessions end and their clients reconnect — through the pool, to another server.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue, Method, Request, Response};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::kube::cluster_connection::{ClusterConnection, ConnectionError};
use crate::kube::endpoint_connector::{EndpointConnector, KillSwitch};
use crate::kube::endpoint_state::{EndpointState, EndpointStates, Transition};
use crate::kube::kube_metrics::KubeMetrics;

/// Timing and thresholds of the balancer.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub check_interval: Duration,
    /// A `/readyz` answer slower than this is a failed check.
    pub check_timeout: Duration,
    pub connect_timeout: Duration,
    /// Consecutive passed checks a failed server needs before it is used again.
    pub recover_after: u32,
    /// Consecutive failed checks that fail a server (a failed connect on the request path fails
    /// it at once).
    pub fail_after: u32,
    /// This replica's agent tunnels, through which agent clusters are reached (`None` where no
    /// agent server runs).
    pub tunnels: Option<Arc<crate::tunnel::hub::TunnelHub>>,
}

impl Default for PoolSettings {
    fn default() -> PoolSettings {
        PoolSettings {
            check_interval: Duration::from_secs(1),
            check_timeout: Duration::from_millis(800),
            connect_timeout: Duration::from_secs(2),
            recover_after: 3,
            fail_after: 2,
            tunnels: None,
        }
    }
}

/// One request to forward, with its body already read (request bodies are small in Kubernetes:
/// the apiserver refuses more than 3 MiB; responses are streamed).
pub struct UpstreamRequest {
    pub method: Method,
    /// Starts with `/`; joined under the endpoint's path prefix.
    pub path_and_query: String,
    /// Without `Authorization`: the pool adds the cluster's credential.
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A response and the endpoint that gave it.
pub struct UpstreamResponse {
    pub response: Response<Incoming>,
    pub endpoint: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// No endpoint could be reached: `attempts` says why for each one tried.
    #[error("no apiserver of the cluster could be reached: {}", describe(.attempts))]
    Unreachable { attempts: Vec<(String, String)> },
    /// The request reached an apiserver but failed before its answer, and is not safe to repeat.
    #[error("the apiserver {endpoint} failed while answering: {message}")]
    Failed { endpoint: String, message: String },
    #[error("the request cannot be sent: {0}")]
    Build(String),
}

fn describe(attempts: &[(String, String)]) -> String {
    attempts
        .iter()
        .map(|(endpoint, error)| format!("{endpoint}: {error}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The state of one endpoint, for the API and the UI.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EndpointStatus {
    pub url: String,
    pub state: EndpointState,
    pub open_connections: usize,
    pub consecutive_passes: u32,
    pub consecutive_failures: u32,
    /// Latency of the last health check, when it answered.
    pub last_check_latency_ms: Option<u64>,
    /// Why the last failed check or connect failed.
    pub last_error: Option<String>,
    pub requests: u64,
}

struct PoolEndpoint {
    url: crate::kube::apiserver_url::ApiserverUrl,
    label: String,
    client: Client<EndpointConnector, Full<Bytes>>,
    kill_switch: Arc<KillSwitch>,
    last_check: Mutex<LastCheck>,
}

#[derive(Default, Clone)]
struct LastCheck {
    latency: Option<Duration>,
    error: Option<String>,
}

pub struct ApiserverPool {
    pub cluster: String,
    endpoints: Vec<PoolEndpoint>,
    authorization: Option<HeaderValue>,
    states: Mutex<EndpointStates>,
    settings: PoolSettings,
    metrics: Arc<KubeMetrics>,
    stop: CancellationToken,
    /// Reached through agent tunnels: a connection that failed may have ridden a tunnel that went
    /// silent, and a new one to the same apiserver can go another way (through a peer replica).
    via_agent: bool,
}

impl ApiserverPool {
    /// A pool for `connection` with its health checks running (they stop when the pool drops).
    pub fn start(
        connection: &ClusterConnection,
        settings: PoolSettings,
        metrics: Arc<KubeMetrics>,
    ) -> Result<Arc<ApiserverPool>, ConnectionError> {
        let tls = connection.tls_client_config()?;
        let authorization = connection.authorization_header()?;
        let tunnel = match (connection.via_agent, &settings.tunnels) {
            (false, _) => None,
            (true, Some(hub)) => Some(crate::kube::endpoint_connector::TunnelRoute {
                hub: hub.clone(),
                cluster: connection.name.clone(),
            }),
            (true, None) => return Err(ConnectionError::NoTunnels),
        };
        let endpoints = connection
            .endpoints
            .iter()
            .map(|url| {
                let kill_switch = Arc::new(KillSwitch::default());
                let connector = EndpointConnector {
                    endpoint: url.clone(),
                    tls: tls.clone(),
                    kill_switch: kill_switch.clone(),
                    connect_timeout: settings.connect_timeout,
                    tunnel: tunnel.clone(),
                };
                let client = Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(90))
                    .pool_max_idle_per_host(32)
                    .build(connector);
                PoolEndpoint {
                    url: url.clone(),
                    label: url.to_string(),
                    client,
                    kill_switch,
                    last_check: Mutex::new(LastCheck::default()),
                }
            })
            .collect::<Vec<_>>();
        let pool = Arc::new(ApiserverPool {
            cluster: connection.name.clone(),
            states: Mutex::new(EndpointStates::new(
                endpoints.len(),
                settings.recover_after,
                settings.fail_after,
            )),
            endpoints,
            authorization,
            settings,
            metrics,
            stop: CancellationToken::new(),
            via_agent: connection.via_agent,
        });
        pool.publish_states();
        tokio::spawn(run_health_checks(Arc::downgrade(&pool), pool.stop.clone()));
        Ok(pool)
    }

    /// Sends `request` to the best endpoint, moving on to the next when one cannot be reached.
    /// A request that fails after it was sent is repeated elsewhere only when it is safe to
    /// (GET, HEAD, OPTIONS); any request is repeated when the connect failed, since nothing was
    /// sent.
    pub async fn send(&self, request: UpstreamRequest) -> Result<UpstreamResponse, PoolError> {
        let mut order: std::collections::VecDeque<usize> = self.lock_states().try_order().into();
        let idempotent = matches!(request.method, Method::GET | Method::HEAD | Method::OPTIONS);
        let mut attempts = Vec::new();
        let mut repeated_on_a_new_connection = false;
        while let Some(index) = order.pop_front() {
            let endpoint = &self.endpoints[index];
            let uri = endpoint
                .url
                .join(&request.path_and_query)
                .map_err(|error| PoolError::Build(error.to_string()))?;
            let mut builder = Request::builder().method(request.method.clone()).uri(uri);
            if let Some(headers) = builder.headers_mut() {
                headers.extend(request.headers.clone());
                if let Some(authorization) = &self.authorization {
                    headers.insert(AUTHORIZATION, authorization.clone());
                }
            }
            let upstream = builder
                .body(Full::new(request.body.clone()))
                .map_err(|error| PoolError::Build(error.to_string()))?;
            let labels = [self.cluster.as_str(), endpoint.label.as_str()];
            self.metrics.requests.with_label_values(&labels).inc();
            let started = Instant::now();
            match endpoint.client.request(upstream).await {
                Ok(response) => {
                    self.metrics
                        .request_duration
                        .with_label_values(&labels)
                        .observe(started.elapsed().as_secs_f64());
                    return Ok(UpstreamResponse {
                        response,
                        endpoint: endpoint.label.clone(),
                    });
                }
                Err(error) if error.is_connect() => {
                    let message = error_chain(&error);
                    self.metrics
                        .errors
                        .with_label_values(&[labels[0], labels[1], "connect"])
                        .inc();
                    tracing::warn!(cluster = %self.cluster, endpoint = %endpoint.label, error = %message,
                        "apiserver unreachable; trying the next one");
                    endpoint
                        .last_check
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .error = Some(message.clone());
                    let transitions = self.lock_states().record_connect_failure(index);
                    self.apply(transitions);
                    attempts.push((endpoint.label.clone(), message));
                }
                Err(error) => {
                    let message = error_chain(&error);
                    self.metrics
                        .errors
                        .with_label_values(&[labels[0], labels[1], "transport"])
                        .inc();
                    if !idempotent {
                        return Err(PoolError::Failed {
                            endpoint: endpoint.label.clone(),
                            message,
                        });
                    }
                    attempts.push((endpoint.label.clone(), message.clone()));
                    if self.via_agent && !repeated_on_a_new_connection {
                        // The failed connection's pooled siblings were closed with it when the
                        // endpoint failed; a new connection dials through whichever tunnel works.
                        repeated_on_a_new_connection = true;
                        order.push_front(index);
                        tracing::warn!(cluster = %self.cluster, endpoint = %endpoint.label, error = %message,
                            "a request that is safe to repeat failed through the agent; trying it once more on a new connection");
                        continue;
                    }
                    tracing::warn!(cluster = %self.cluster, endpoint = %endpoint.label, error = %message,
                        "apiserver failed a request that is safe to repeat; trying the next one");
                }
            }
        }
        Err(PoolError::Unreachable { attempts })
    }

    /// Every endpoint's state, in the configured order.
    pub fn status(&self) -> Vec<EndpointStatus> {
        let states = self.lock_states();
        self.endpoints
            .iter()
            .enumerate()
            .map(|(index, endpoint)| {
                let health = states.health(index);
                let last = endpoint
                    .last_check
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .clone();
                EndpointStatus {
                    url: endpoint.label.clone(),
                    state: states.state(index),
                    open_connections: endpoint.kill_switch.open_connections(),
                    consecutive_passes: health.consecutive_passes,
                    consecutive_failures: health.consecutive_failures,
                    last_check_latency_ms: last.latency.map(|latency| latency.as_millis() as u64),
                    last_error: last.error,
                    requests: self
                        .metrics
                        .requests
                        .with_label_values(&[self.cluster.as_str(), endpoint.label.as_str()])
                        .get(),
                }
            })
            .collect()
    }

    /// Stops the health checks and closes every connection (the cluster was changed or removed).
    pub fn shutdown(&self) {
        self.stop.cancel();
        for endpoint in &self.endpoints {
            endpoint.kill_switch.close_all();
        }
    }

    fn lock_states(&self) -> std::sync::MutexGuard<'_, EndpointStates> {
        self.states.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Acts on what the state machine decided: closes the connections of failed servers.
    fn apply(&self, transitions: Vec<Transition>) {
        for transition in transitions {
            match transition {
                Transition::Failed { index } => {
                    let endpoint = &self.endpoints[index];
                    let closed = endpoint.kill_switch.close_all();
                    tracing::warn!(cluster = %self.cluster, endpoint = %endpoint.label, closed_connections = closed,
                        "apiserver failed; closed its connections");
                }
                Transition::PreferredChanged { from, to } => {
                    let name =
                        |index: Option<usize>| index.map_or("none".to_string(), |i| self.endpoints[i].label.clone());
                    if from.is_some() {
                        self.metrics.failovers.with_label_values(&[self.cluster.as_str()]).inc();
                    }
                    tracing::warn!(cluster = %self.cluster, from = %name(from), to = %name(to), "preferred apiserver changed");
                }
                Transition::Recovered { index } => {
                    tracing::info!(cluster = %self.cluster, endpoint = %self.endpoints[index].label,
                        "apiserver recovered and is used again");
                }
            }
        }
        self.publish_states();
    }

    fn publish_states(&self) {
        let states = self.lock_states();
        for (index, endpoint) in self.endpoints.iter().enumerate() {
            let labels = [self.cluster.as_str(), endpoint.label.as_str()];
            self.metrics
                .endpoint_state
                .with_label_values(&labels)
                .set(states.state(index).metric_value());
            self.metrics
                .open_connections
                .with_label_values(&labels)
                .set(endpoint.kill_switch.open_connections() as i64);
        }
    }

    /// One round of health checks, all endpoints at once.
    async fn check_all(&self) {
        let checks = self.endpoints.iter().map(|endpoint| self.check(endpoint));
        let results = futures::future::join_all(checks).await;
        let mut transitions = Vec::new();
        {
            let mut states = self.lock_states();
            for (index, result) in results.into_iter().enumerate() {
                let endpoint = &self.endpoints[index];
                let mut last = endpoint
                    .last_check
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                match result {
                    Ok(latency) => {
                        *last = LastCheck {
                            latency: Some(latency),
                            error: None,
                        };
                        transitions.extend(states.record_check(index, true));
                    }
                    Err(message) => {
                        self.metrics
                            .errors
                            .with_label_values(&[self.cluster.as_str(), endpoint.label.as_str(), "health_check"])
                            .inc();
                        tracing::debug!(cluster = %self.cluster, endpoint = %endpoint.label, error = %message, "health check failed");
                        *last = LastCheck {
                            latency: None,
                            error: Some(message),
                        };
                        transitions.extend(states.record_check(index, false));
                    }
                }
            }
        }
        self.apply(transitions);
    }

    /// `GET /readyz` within the check timeout; a 200 passes.
    async fn check(&self, endpoint: &PoolEndpoint) -> Result<Duration, String> {
        let uri = endpoint.url.join("/readyz").map_err(|error| error.to_string())?;
        let mut builder = Request::builder().method(Method::GET).uri(uri);
        if let Some(authorization) = &self.authorization {
            builder = builder.header(AUTHORIZATION, authorization.clone());
        }
        let request = builder
            .body(Full::new(Bytes::new()))
            .map_err(|error| error.to_string())?;
        let started = Instant::now();
        let exchange = async {
            let response = endpoint
                .client
                .request(request)
                .await
                .map_err(|error| error_chain(&error))?;
            let status = response.status();
            // Read the short body so that the connection goes back to the pool.
            let _ = response.into_body().collect().await;
            if status.is_success() {
                Ok(started.elapsed())
            } else {
                Err(format!("/readyz answered {status}"))
            }
        };
        match tokio::time::timeout(self.settings.check_timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "/readyz did not answer within {} ms",
                self.settings.check_timeout.as_millis()
            )),
        }
    }
}

impl Drop for ApiserverPool {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn run_health_checks(pool: Weak<ApiserverPool>, stop: CancellationToken) {
    let Some(interval) = pool.upgrade().map(|pool| pool.settings.check_interval) else {
        return;
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let Some(pool) = pool.upgrade() else {
            return;
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = pool.check_all() => {}
        }
    }
}

/// The error and its causes on one line (hyper's own message is only "client error (Connect)").
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
