//! Prometheus metrics of one replica: HTTP traffic, store operation latency, build info, the
//! store's state, and with the embedded store its member's raft positions and peer counters (both
//! read at scrape time).

use std::sync::Mutex;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use kuboard_raft::RaftStoreMetrics;
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

    /// Exposes the `kuboard_raft_*` metrics of this replica's member of the embedded group, read
    /// from `read` at every scrape. Called once, and only with the embedded store.
    pub fn register_raft_source(&self, read: impl Fn() -> RaftStoreMetrics + Send + Sync + 'static) {
        self.registry
            .register(Box::new(RaftCollector::new(Box::new(read))))
            .expect("the raft metrics are registered once");
    }

    /// Registers metrics owned by another module (e.g. the apiserver balancer's). Called once per
    /// collector; a second registration of the same names is a programming error.
    pub fn register_collector(&self, collector: Box<dyn Collector>) {
        self.registry
            .register(collector)
            .expect("a module registers its metrics once");
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

/// Reads a gauge's value from a reading.
type GaugeValue = fn(&RaftStoreMetrics) -> u64;

/// The `kuboard_raft_*` metrics: one reading of the member per scrape, copied into gauges and
/// counters that are then collected.
struct RaftCollector {
    read: Box<dyn Fn() -> RaftStoreMetrics + Send + Sync>,
    gauges: Vec<(IntGauge, GaugeValue)>,
    counters: Vec<(IntCounter, GaugeValue)>,
    /// Serialises scrapes: a counter advances by the difference to its last value, which two
    /// concurrent scrapes would both add.
    scrape: Mutex<()>,
}

impl RaftCollector {
    fn new(read: Box<dyn Fn() -> RaftStoreMetrics + Send + Sync>) -> RaftCollector {
        let gauge = |name: &str, help: &str, value: GaugeValue| {
            (IntGauge::new(name, help).expect("metric definition is valid"), value)
        };
        let counter = |name: &str, help: &str, value: GaugeValue| {
            (IntCounter::new(name, help).expect("metric definition is valid"), value)
        };
        let gauges = vec![
            gauge("kuboard_raft_term", "Current Raft term of this member", |m| m.term),
            gauge(
                "kuboard_raft_leader_id",
                "Member id of the leader this member knows, 0 when none is known",
                |m| m.leader.unwrap_or(0),
            ),
            gauge("kuboard_raft_is_leader", "1 while this member leads the group", |m| {
                u64::from(m.leader == Some(m.node_id) && m.state == "leader")
            }),
            gauge(
                "kuboard_raft_commit_index",
                "Highest log index this member knows to be committed",
                |m| m.commit_index,
            ),
            gauge(
                "kuboard_raft_applied_index",
                "Highest log index applied to this member's state machine",
                |m| m.applied_index,
            ),
            gauge(
                "kuboard_raft_last_log_index",
                "Index of the last entry in this member's log",
                |m| m.last_log_index,
            ),
            gauge(
                "kuboard_raft_log_entries",
                "Entries held in this member's log (last index minus purged index)",
                |m| m.log_entries,
            ),
            gauge(
                "kuboard_raft_snapshot_index",
                "Last log index covered by this member's current snapshot, 0 without one",
                |m| m.snapshot_index,
            ),
            gauge(
                "kuboard_raft_purged_index",
                "Last log index purged from this member's log, 0 when nothing was purged",
                |m| m.purged_index,
            ),
            gauge(
                "kuboard_raft_joining",
                "1 while this member has no state and waits for the existing group to add it",
                |m| u64::from(m.joining),
            ),
            gauge(
                "kuboard_raft_admitted",
                "0 while this member refuses Raft traffic: a fresh member before it knows the group, or one whose \
                 data directory was lost (replace it with kuboard admin members replace)",
                |m| u64::from(m.admitted),
            ),
        ];
        let counters = vec![
            counter(
                "kuboard_raft_peer_rpc_errors_total",
                "Peer requests of this member that failed, as client and as server",
                |m| m.peer_rpc_errors,
            ),
            counter(
                "kuboard_raft_peer_auth_failures_total",
                "Peer handshakes refused because the cluster secret proof was wrong or missing, both directions",
                |m| m.peer_auth_failures,
            ),
            counter(
                "kuboard_raft_peer_forged_frames_total",
                "Peer frames refused after the handshake because they failed their integrity check (altered, \
                 injected or replayed on the network), both directions; each closed its connection",
                |m| m.peer_forged_frames,
            ),
            counter(
                "kuboard_raft_peer_handshakes_over_budget_total",
                "Peer connections closed on arrival because their source already had too many handshakes in progress",
                |m| m.peer_handshakes_over_budget,
            ),
            counter(
                "kuboard_raft_snapshots_installed_total",
                "Snapshots this member received from a leader and installed",
                |m| m.snapshots_installed,
            ),
            counter(
                "kuboard_raft_initialize_refusals_total",
                "Times this member, having no state, found an existing group and did not start a new one",
                |m| m.initialize_refusals,
            ),
        ];
        RaftCollector {
            read,
            gauges,
            counters,
            scrape: Mutex::new(()),
        }
    }
}

impl Collector for RaftCollector {
    fn desc(&self) -> Vec<&Desc> {
        let gauges = self.gauges.iter().flat_map(|(gauge, _)| gauge.desc());
        let counters = self.counters.iter().flat_map(|(counter, _)| counter.desc());
        gauges.chain(counters).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let _scrape = self.scrape.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let reading = (self.read)();
        let mut families = Vec::with_capacity(self.gauges.len() + self.counters.len());
        for (gauge, value) in &self.gauges {
            gauge.set(i64::try_from(value(&reading)).unwrap_or(i64::MAX));
            families.extend(gauge.collect());
        }
        for (counter, value) in &self.counters {
            // The member's counters only grow while the process lives; the difference keeps the
            // exposed counter equal to them.
            counter.inc_by(value(&reading).saturating_sub(counter.get()));
            families.extend(counter.collect());
        }
        families
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use super::*;

    fn value_of(text: &str, name: &str) -> Option<String> {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")).map(str::to_string))
    }

    #[test]
    fn raft_metrics_are_read_at_every_scrape() {
        let metrics = Metrics::new(2);
        assert!(
            value_of(&metrics.render(), "kuboard_raft_term").is_none(),
            "only with the embedded store"
        );
        let errors = Arc::new(AtomicU64::new(3));
        let source = errors.clone();
        metrics.register_raft_source(move || RaftStoreMetrics {
            node_id: 2,
            state: "leader",
            term: 7,
            leader: Some(2),
            commit_index: 40,
            applied_index: 39,
            last_log_index: 41,
            snapshot_index: 30,
            purged_index: 20,
            log_entries: 21,
            peer_rpc_errors: source.load(Ordering::SeqCst),
            peer_forged_frames: 2,
            admitted: true,
            ..Default::default()
        });
        let text = metrics.render();
        for (name, expected) in [
            ("kuboard_raft_term", "7"),
            ("kuboard_raft_leader_id", "2"),
            ("kuboard_raft_is_leader", "1"),
            ("kuboard_raft_commit_index", "40"),
            ("kuboard_raft_applied_index", "39"),
            ("kuboard_raft_last_log_index", "41"),
            ("kuboard_raft_log_entries", "21"),
            ("kuboard_raft_snapshot_index", "30"),
            ("kuboard_raft_purged_index", "20"),
            ("kuboard_raft_joining", "0"),
            ("kuboard_raft_admitted", "1"),
            ("kuboard_raft_peer_rpc_errors_total", "3"),
            ("kuboard_raft_peer_auth_failures_total", "0"),
            ("kuboard_raft_peer_forged_frames_total", "2"),
            ("kuboard_raft_peer_handshakes_over_budget_total", "0"),
        ] {
            assert_eq!(value_of(&text, name).as_deref(), Some(expected), "{name} in:\n{text}");
        }
        assert!(text.contains("# TYPE kuboard_raft_peer_rpc_errors_total counter"));
        errors.store(10, Ordering::SeqCst);
        let text = metrics.render();
        assert_eq!(
            value_of(&text, "kuboard_raft_peer_rpc_errors_total").as_deref(),
            Some("10")
        );
    }
}
