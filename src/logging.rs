//! Process-wide logging through `tracing`, filtered as configured.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogConfig;

/// Installs the global subscriber. The filter was checked when the configuration was parsed.
pub fn init(config: &LogConfig) {
    let filter = EnvFilter::builder().parse_lossy(&config.filter);
    // Colour codes help a person at a terminal; in files and log collectors they are noise.
    let ansi = std::io::stderr().is_terminal();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}
