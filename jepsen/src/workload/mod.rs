//! Workloads: concurrent clients that record what they did and saw.
//!
//! - [`register`]: read / write / compare-and-set on registers through the etcd v3 API.
//! - [`set`]: unique adds through the etcd v3 API and a final read after healing.
//! - [`watch`]: watchers on every member resuming after disconnects while writers put.
//! - [`http`]: one login, then work through a round-robin balancer over the members' REST API.
//! - [`audit`]: strict audit: every change that happened has its audit event.
//! - [`agent_register`]: registers as ConfigMaps of a cluster reached only through `kuboard agent`,
//!   read and changed through the members' Kubernetes proxy.

pub mod agent_register;
pub mod audit;
pub mod http;
pub mod register;
pub mod set;
pub mod watch;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::history::{Op, Outcome};
pub use register::Progress;

/// The workloads `kuboard-jepsen test --workload` can run (several at once, on disjoint keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    /// Read / write / compare-and-set registers, checked for linearizability.
    Register,
    /// Unique adds; every acknowledged add must be in the final read.
    Set,
    /// Watchers on every member must see every revision of a prefix in order, once.
    Watch,
    /// REST API sessions and users through a round-robin balancer (embedded group only).
    Http,
    /// Strict audit with a PostgreSQL audit database: no change without its audit event (embedded
    /// group only; needs PostgreSQL's binaries).
    StrictAudit,
    /// Registers as ConfigMaps of a cluster behind `kuboard agent`, through the members' Kubernetes
    /// proxy, checked for linearizability (embedded group only; needs the fake apiserver binary).
    AgentRegister,
}

impl WorkloadKind {
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Register => "register",
            WorkloadKind::Set => "set",
            WorkloadKind::Watch => "watch",
            WorkloadKind::Http => "http",
            WorkloadKind::StrictAudit => "strict-audit",
            WorkloadKind::AgentRegister => "agent-register",
        }
    }
}

/// The pause of a client after an error, so that a member that is down does not flood the history.
pub(crate) const ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// How long the end-of-run checks (final reads after healing) may keep retrying.
pub(crate) const FINAL_READ_WITHIN: Duration = Duration::from_secs(30);

/// Where the clients of one workload record their operations.
pub(crate) struct Recorder {
    started: Instant,
    next: AtomicUsize,
    ops: Mutex<Vec<Op>>,
    progress: Arc<Progress>,
}

/// An operation in flight: created at invoke, completed with its outcome.
pub(crate) struct Pending {
    pub process: u64,
    pub node: String,
    pub f: String,
    pub key: String,
    pub value: Option<String>,
    invoke_ns: u64,
}

impl Recorder {
    pub fn new(started: Instant, progress: Arc<Progress>) -> Recorder {
        Recorder {
            started,
            next: AtomicUsize::new(0),
            ops: Mutex::new(Vec::new()),
            progress,
        }
    }

    pub fn now_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    pub fn invoke(&self, process: u64, node: &str, f: &str, key: &str, value: Option<String>) -> Pending {
        Pending {
            process,
            node: node.to_string(),
            f: f.to_string(),
            key: key.to_string(),
            value,
            invoke_ns: self.now_ns(),
        }
    }

    /// Record the completion of `pending`; returns a copy of the record.
    pub fn complete(&self, pending: Pending, outcome: Outcome, revision: Option<i64>, error: Option<String>) -> Op {
        let op = Op {
            index: self.next.fetch_add(1, Ordering::Relaxed),
            process: pending.process,
            node: pending.node,
            f: pending.f,
            key: pending.key,
            value: pending.value,
            revision,
            outcome,
            invoke_ns: pending.invoke_ns,
            complete_ns: self.now_ns(),
            error,
        };
        self.progress.count(outcome);
        self.ops
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(op.clone());
        op
    }

    /// The history sorted by invoke time, renumbered in that order.
    pub fn into_history(self) -> Vec<Op> {
        let mut ops = self.ops.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
        ops.sort_by_key(|op| (op.invoke_ns, op.index));
        for (index, op) in ops.iter_mut().enumerate() {
            op.index = index;
        }
        ops
    }
}

/// Whether an etcd client error says the request never reached a member (its connection was refused),
/// so that it certainly took no effect.
pub(crate) fn never_sent(error: &str) -> bool {
    error.contains("tcp connect error") || error.contains("Connection refused")
}
