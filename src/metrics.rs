//! Prometheus metrics of one replica: HTTP traffic, store operation latency, build info and the
//! store's state (read at scrape time).

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use kuboard_storage::StoreStatus;

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_request_duration: HistogramVec,
    pub store_op_duration: HistogramVec,
    pub store_op_errors: IntCounterVec,
    store_revision: IntGauge,
    store_raft_term: IntGauge,
    store_leader_id: IntGauge,
    store_healthy: IntGauge,
    store_members: IntGauge,
    store_status_errors: IntCounterVec,
}

impl Metrics {
    pub fn new(replica_id: u64) -> Metrics {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "kuboard_http_requests_total",
                "HTTP requests answered, by route, method and status",
            ),
            &["route", "method", "status"],
        )
        .expect("metric definition is valid");
        let http_request_duration = HistogramVec::new(
            HistogramOpts::new(
                "kuboard_http_request_duration_seconds",
                "Time to answer an HTTP request",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["route", "method"],
        )
        .expect("metric definition is valid");
        let store_op_duration = HistogramVec::new(
            HistogramOpts::new(
                "kuboard_store_op_duration_seconds",
                "Latency of store operations, by operation",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["op"],
        )
        .expect("metric definition is valid");
        let store_op_errors = IntCounterVec::new(
            Opts::new(
                "kuboard_store_op_errors_total",
                "Failed store operations, by operation and error kind",
            ),
            &["op", "kind"],
        )
        .expect("metric definition is valid");
        let build_info = IntGaugeVec::new(
            Opts::new("kuboard_build_info", "Always 1; the labels say what is running"),
            &["version", "commit", "replica"],
        )
        .expect("metric definition is valid");
        build_info
            .with_label_values(&[
                crate::version::VERSION,
                crate::version::GIT_COMMIT,
                &replica_id.to_string(),
            ])
            .set(1);
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("metric definition is valid");
        let store_revision = gauge(
            "kuboard_store_revision",
            "Current store revision as seen by this replica",
        );
        let store_raft_term = gauge("kuboard_store_raft_term", "Current Raft term as seen by this replica");
        let store_leader_id = gauge(
            "kuboard_store_leader_id",
            "Member id of the current leader, 0 when none is known",
        );
        let store_healthy = gauge(
            "kuboard_store_healthy",
            "1 when the store can serve linearizable requests",
        );
        let store_members = gauge("kuboard_store_members", "Number of members of the store group");
        let store_status_errors = IntCounterVec::new(
            Opts::new(
                "kuboard_store_status_errors_total",
                "Scrapes that could not read the store status",
            ),
            &["kind"],
        )
        .expect("metric definition is valid");

        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(http_requests.clone()),
            Box::new(http_request_duration.clone()),
            Box::new(store_op_duration.clone()),
            Box::new(store_op_errors.clone()),
            Box::new(build_info),
            Box::new(store_revision.clone()),
            Box::new(store_raft_term.clone()),
            Box::new(store_leader_id.clone()),
            Box::new(store_healthy.clone()),
            Box::new(store_members.clone()),
            Box::new(store_status_errors.clone()),
        ];
        for collector in collectors {
            registry.register(collector).expect("metric names are unique");
        }
        Metrics {
            registry,
            http_requests,
            http_request_duration,
            store_op_duration,
            store_op_errors,
            store_revision,
            store_raft_term,
            store_leader_id,
            store_healthy,
            store_members,
            store_status_errors,
        }
    }

    /// Sets the store gauges from a fresh status, or marks the store unhealthy when it gave none.
    pub fn observe_store_status(&self, status: Result<&StoreStatus, &str>) {
        match status {
            Ok(status) => {
                self.store_revision.set(status.revision);
                self.store_raft_term
                    .set(i64::try_from(status.raft_term).unwrap_or(i64::MAX));
                self.store_leader_id
                    .set(status.leader.and_then(|id| i64::try_from(id).ok()).unwrap_or(0));
                self.store_healthy.set(i64::from(status.healthy));
                self.store_members
                    .set(i64::try_from(status.members.len()).unwrap_or(i64::MAX));
            }
            Err(kind) => {
                self.store_healthy.set(0);
                self.store_status_errors.with_label_values(&[kind]).inc();
            }
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("encoding to memory cannot fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}
