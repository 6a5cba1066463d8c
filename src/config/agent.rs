//! The agent listener: `KUBOARD_AGENT_SERVER_TCP_PORT`, `KUBOARD_AGENT_ENDPOINT` (the address of
//! every replica that agents tunnel to) and `KUBOARD_AGENT_SERVER_REQUIRE_TLS`.

use crate::config::reader::Reader;
use crate::config::values::{parse_host_port_list, ConfigError};

pub const DEFAULT_AGENT_PORT: u16 = 10081;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    pub tcp_port: u16,
    /// Every replica's agent address (`host:port`), empty when not given.
    pub endpoints: Vec<String>,
    /// Plain (non-TLS) agent connections are refused.
    pub require_tls: bool,
}

pub(super) fn parse_agent(reader: &Reader<'_>) -> Result<AgentConfig, ConfigError> {
    let tcp_port = reader
        .port("KUBOARD_AGENT_SERVER_TCP_PORT")?
        .unwrap_or(DEFAULT_AGENT_PORT);
    let endpoints = match reader.get("KUBOARD_AGENT_ENDPOINT") {
        None => Vec::new(),
        Some((label, value)) => parse_host_port_list(label, value)?,
    };
    let require_tls = reader.bool("KUBOARD_AGENT_SERVER_REQUIRE_TLS")?.unwrap_or(false);
    Ok(AgentConfig {
        tcp_port,
        endpoints,
        require_tls,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::test_support::{check, Expected};

    #[test]
    fn agent() {
        for (env, expected) in [
            (
                &[][..],
                Expected::Ok(|c| c.agent.tcp_port == 10081 && c.agent.endpoints.is_empty() && !c.agent.require_tls),
            ),
            (
                &[("KUBOARD_AGENT_SERVER_TCP_PORT", "20081")],
                Expected::Ok(|c| c.agent.tcp_port == 20081),
            ),
            (
                &[("KUBOARD_AGENT_ENDPOINT", "10.0.0.1:10081, 10.0.0.2:10081")],
                Expected::Ok(|c| c.agent.endpoints == ["10.0.0.1:10081", "10.0.0.2:10081"]),
            ),
            (
                &[("KUBOARD_AGENT_SERVER_REQUIRE_TLS", "true")],
                Expected::Ok(|c| c.agent.require_tls),
            ),
            (
                &[("KUBOARD_AGENT_SERVER_REQUIRE_TLS", "sometimes")],
                Expected::Err(r#"KUBOARD_AGENT_SERVER_REQUIRE_TLS="sometimes": expected true or false"#),
            ),
            (
                &[("KUBOARD_AGENT_SERVER_TCP_PORT", "70000")],
                Expected::Err(r#"KUBOARD_AGENT_SERVER_TCP_PORT="70000": expected a TCP port number 1-65535"#),
            ),
            (
                &[("KUBOARD_AGENT_ENDPOINT", "10.0.0.1:10081,10.0.0.2")],
                Expected::Err(
                    r#"KUBOARD_AGENT_ENDPOINT="10.0.0.1:10081,10.0.0.2": expected comma-separated host:port entries, e.g. 10.0.0.1:10081,10.0.0.2:10081"#,
                ),
            ),
        ] {
            check(env, None, expected);
        }
    }
}
