//! The `kuboard_apiserver_*` metrics: per cluster and endpoint, the balancer's state, requests,
//! errors, latency and open connections.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};

use crate::metrics::Metrics;

pub struct KubeMetrics {
    /// 0 failed, 1 unchecked, 2 recovering, 3 healthy, 4 preferred.
    pub endpoint_state: IntGaugeVec,
    pub requests: IntCounterVec,
    pub errors: IntCounterVec,
    pub request_duration: HistogramVec,
    pub open_connections: IntGaugeVec,
    pub failovers: IntCounterVec,
}

impl KubeMetrics {
    /// The metrics, registered with the replica's registry.
    pub fn new(metrics: &Metrics) -> KubeMetrics {
        let kube_metrics = KubeMetrics::unregistered();
        for collector in kube_metrics.collectors() {
            metrics.register_collector(collector);
        }
        kube_metrics
    }

    /// The metrics without a registry (unit tests).
    pub fn unregistered() -> KubeMetrics {
        let labels = &["cluster", "endpoint"];
        KubeMetrics {
            endpoint_state: IntGaugeVec::new(
                Opts::new(
                    "kuboard_apiserver_endpoint_state",
                    "Balancer state of an apiserver endpoint: 0 failed, 1 unchecked, 2 recovering, 3 healthy, 4 preferred",
                ),
                labels,
            )
            .expect("metric definition is valid"),
            requests: IntCounterVec::new(
                Opts::new(
                    "kuboard_apiserver_requests_total",
                    "Requests sent to an apiserver endpoint (proxied requests and retries, not health checks)",
                ),
                labels,
            )
            .expect("metric definition is valid"),
            errors: IntCounterVec::new(
                Opts::new(
                    "kuboard_apiserver_errors_total",
                    "Failures talking to an apiserver endpoint, by kind (connect, transport, health_check)",
                ),
                &["cluster", "endpoint", "kind"],
            )
            .expect("metric definition is valid"),
            request_duration: HistogramVec::new(
                HistogramOpts::new(
                    "kuboard_apiserver_request_duration_seconds",
                    "Time from sending a request to an apiserver endpoint to its response headers",
                )
                .buckets(vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
                labels,
            )
            .expect("metric definition is valid"),
            open_connections: IntGaugeVec::new(
                Opts::new(
                    "kuboard_apiserver_open_connections",
                    "Connections open to an apiserver endpoint (pooled, streaming and upgraded)",
                ),
                labels,
            )
            .expect("metric definition is valid"),
            failovers: IntCounterVec::new(
                Opts::new(
                    "kuboard_apiserver_failovers_total",
                    "Times the preferred apiserver of a cluster changed because it failed",
                ),
                &["cluster"],
            )
            .expect("metric definition is valid"),
        }
    }

    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.endpoint_state.clone()),
            Box::new(self.requests.clone()),
            Box::new(self.errors.clone()),
            Box::new(self.request_duration.clone()),
            Box::new(self.open_connections.clone()),
            Box::new(self.failovers.clone()),
        ]
    }
}
