//! Checkers: they read a history and say whether the system kept its promises.
//!
//! - [`linearizable`]: per-key WGL search over a register model (read / write / compare-and-set).
//! - [`set`]: every acknowledged add is present at the end.
//! - [`watch`]: every watcher saw every revision of its window, in order, once.

pub mod linearizable;
pub mod set;
pub mod watch;

pub use linearizable::{check_register_history, Anomaly, KeyVerdict, RegisterVerdict, SearchLimits};
pub use set::{check_set, SetAdd, SetVerdict};
pub use watch::{check_watch, WatchEvent, WatchVerdict, WatcherLog, WatcherProblems};
