//! The test network: hosts in network namespaces on a bridge, partitions and packet loss.
//!
//! Requires root, iproute2 and iptables (`scripts/install-deps.sh test` installs them).
//!
//! - [`network`]: [`Network`] creates the hosts and removes them again on drop; [`cleanup`] removes
//!   leftovers of runs that were killed.
//! - [`partition`]: partition shapes as grudges.

pub mod network;
pub mod partition;
mod shell;

pub use network::{cleanup, Cleaned, Host, Network, NAME_PREFIX};
pub use partition::{Grudge, PartitionKind};
