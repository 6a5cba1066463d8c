//! Process-wide logging through `tracing`, filtered as configured.

use tracing_subscriber::EnvFilter;

use crate::config::LogConfig;

/// Installs the global subscriber. The filter was checked when the configuration was parsed.
pub fn init(config: &LogConfig) {
    let filter = EnvFilter::builder().parse_lossy(&config.filter);
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_writer(std::io::stderr)
        .init();
}
