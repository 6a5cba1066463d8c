//! The test network: hosts in network namespaces on a bridge, partitions and packet loss.
//!
//! Requires root, iproute2 and iptables (`scripts/install-deps.sh test` installs them).
//!
//! - [`network`]: [`Network`] creates the hosts and removes them again on drop; [`cleanup`] removes
//!   leftovers of runs that were killed.
//! - [`partition`]: partition shapes as grudges.
//! - [`proxy`]: userspace TCP proxies on the peer links that add delay (this kernel has no netem).

pub mod network;
pub mod partition;
pub mod proxy;
mod shell;

pub use network::{cleanup, Cleaned, Host, Network, NAME_PREFIX};
pub use partition::{Grudge, PartitionKind};
pub use proxy::{DelayControl, ProxySet, Route, TamperCounts};
