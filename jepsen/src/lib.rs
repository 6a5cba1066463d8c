//! kuboard-jepsen: the chaos/partition suite of kuboard. It runs real processes (`kuboard serve`
//! replicas or etcd members) in network namespaces of their own, injects faults, records what clients
//! saw and checks it.
//!
//! # Layout
//!
//! - [`history`]: the operation records a workload writes (JSON lines) and a checker reads.
//! - [`checker`]: linearizability (per-key WGL over a register), set and watch checkers.
//! - [`net`]: hosts in network namespaces on a bridge, partitions, packet loss, cleanup.
//! - [`echo`]: a TCP echo server and probe for reachability checks.
//! - [`system`]: the system under test (embedded group or etcd), one member per host, signals; the
//!   optional hosts beside it (an audit database, an agent site: a fake apiserver behind
//!   `kuboard agent`).
//! - [`workload`]: clients recording histories (registers, set and watch through the etcd v3 API,
//!   sessions and users through the REST API, registers as ConfigMaps through the Kubernetes proxy
//!   and the agent).
//! - [`nemesis`]: faults on a random schedule and their timeline.
//! - [`run`]: one test run end to end, writing the run directory.
//! - [`report`]: the run directory's plots (SVG) and HTML summary.
//! - [`bench`]: the embedded group and etcd side by side (throughput, latency, failover, memory).
//!
//! Architecture Invariant: this crate talks to the system under test over the network and through
//! process signals only; it links no server code.

pub mod bench;
pub mod checker;
pub mod echo;
pub mod history;
pub mod nemesis;
pub mod net;
pub mod report;
pub mod run;
pub mod system;
pub mod workload;
