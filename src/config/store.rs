//! The store backend: the embedded Raft group (`KUBOARD_RAFT_*`, `KUBOARD_CLUSTER_SECRET`) unless
//! `KUBOARD_ETCD_ENDPOINTS` selects an external etcd (read by [`crate::config::etcd`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::config::etcd::{parse_etcd, EtcdConfig};
use crate::config::http::BIND_IP_EXPECTED;
use crate::config::reader::Reader;
use crate::config::values::{parse_port, valid_host_port, ConfigError, Secret};

pub const DEFAULT_RAFT_PORT: u16 = 10082;
/// Fast failover on a LAN: followers campaign within 0.8 s of the leader's last heartbeat (etcd's
/// defaults, heartbeat 100 ms and election 1000 ms, campaign after 1 to 2 s).
pub const DEFAULT_RAFT_HEARTBEAT_MS: u64 = 100;
pub const DEFAULT_RAFT_ELECTION_TIMEOUT_MS: u64 = 800;
pub const DEFAULT_RAFT_SNAPSHOT_THRESHOLD: u64 = 10_000;
/// History of the embedded store kept by default, like etcd's `--auto-compaction-retention=1h`.
pub const DEFAULT_RAFT_COMPACTION_RETENTION_SECONDS: u64 = 3600;
/// The longest retention accepted (30 days).
const MAX_RAFT_COMPACTION_RETENTION_SECONDS: u64 = 30 * 24 * 3600;
pub const MIN_CLUSTER_SECRET_LEN: usize = 16;

/// Which store backend this replica uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSelection {
    Raft(RaftConfig),
    Etcd(EtcdConfig),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftConfig {
    pub node_id: u64,
    /// Every member of the initial group, this one included: id -> `host:port`.
    pub peers: BTreeMap<u64, String>,
    pub listen_addr: SocketAddr,
    pub cluster_secret: Option<Secret>,
    pub heartbeat_ms: u64,
    pub election_timeout_ms: u64,
    pub snapshot_threshold: u64,
    /// How much history the automatic compaction keeps; `None`: no automatic compaction.
    pub compaction_retention: Option<Duration>,
}

/// Reads the backend; `server_listen` is the web listener (its address is the Raft default, its
/// port must differ from the Raft port).
pub(super) fn parse_store(
    reader: &Reader<'_>,
    server_listen: SocketAddr,
    hostname: Option<&str>,
) -> Result<StoreSelection, ConfigError> {
    let store = match reader.get("KUBOARD_ETCD_ENDPOINTS") {
        Some((label, value)) => StoreSelection::Etcd(parse_etcd(reader, label, value)?),
        None => StoreSelection::Raft(parse_raft(reader, server_listen.ip(), hostname)?),
    };
    if let StoreSelection::Raft(raft) = &store {
        if raft.listen_addr.port() == server_listen.port() {
            let (label, value) = reader.get("KUBOARD_RAFT_PORT").unwrap_or(("KUBOARD_RAFT_PORT", ""));
            return Err(ConfigError::bad(
                label,
                value,
                "expected a Raft peer port different from the web port",
            ));
        }
    }
    Ok(store)
}

const PEERS_EXPECTED: &str =
    "expected comma-separated id=host:port entries with distinct ids >= 1, e.g. 1=kuboard-0:10082,2=kuboard-1:10082";

fn parse_peers(label: &str, value: &str) -> Result<BTreeMap<u64, String>, ConfigError> {
    let mut peers = BTreeMap::new();
    for entry in value.split(',') {
        let entry = entry.trim();
        let parsed = entry.split_once('=').and_then(|(id, address)| {
            let id = id.trim().parse::<u64>().ok().filter(|id| *id >= 1)?;
            let address = address.trim();
            valid_host_port(address).then(|| (id, address.to_string()))
        });
        let Some((id, address)) = parsed else {
            return Err(ConfigError::bad(label, value, PEERS_EXPECTED));
        };
        if peers.insert(id, address).is_some() {
            return Err(ConfigError::bad(label, value, PEERS_EXPECTED));
        }
    }
    Ok(peers)
}

/// A StatefulSet pod is named `name-N` (N from 0); its member id is N+1.
fn node_id_from_hostname(hostname: &str) -> Option<u64> {
    let (_, ordinal) = hostname.trim().rsplit_once('-')?;
    if ordinal.is_empty() || !ordinal.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    ordinal.parse::<u64>().ok()?.checked_add(1)
}

fn parse_raft(reader: &Reader<'_>, server_ip: IpAddr, hostname: Option<&str>) -> Result<RaftConfig, ConfigError> {
    let bind_ip = match reader.get("KUBOARD_RAFT_ADDR") {
        None => server_ip,
        Some((label, value)) => value
            .trim()
            .parse::<IpAddr>()
            .map_err(|_| ConfigError::bad(label, value, BIND_IP_EXPECTED))?,
    };
    let peers_setting = reader.get("KUBOARD_RAFT_PEERS");
    let peers_given = match peers_setting {
        None => None,
        Some((label, value)) => Some(parse_peers(label, value)?),
    };

    let node_id = match reader.get("KUBOARD_RAFT_NODE_ID") {
        Some((label, value)) => value
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|id| *id >= 1)
            .ok_or_else(|| ConfigError::bad(label, value, "expected a member id, an integer >= 1"))?,
        // A one-member group keeps id 1 whatever the host is called, so that renaming the host
        // never makes the store on disk belong to another member.
        None if peers_given.is_none() => 1,
        None => match hostname.and_then(node_id_from_hostname) {
            Some(id) => id,
            None => {
                return Err(ConfigError::unset(
                    "KUBOARD_RAFT_NODE_ID",
                    format!(
                        "expected a member id when KUBOARD_RAFT_PEERS is set and the hostname {:?} is not of the \
                         StatefulSet form name-N",
                        hostname.unwrap_or("")
                    ),
                ));
            }
        },
    };

    let explicit_port = reader.port("KUBOARD_RAFT_PORT")?;
    let peers = match peers_given {
        Some(peers) => {
            if !peers.contains_key(&node_id) {
                let (label, value) = reader
                    .get("KUBOARD_RAFT_NODE_ID")
                    .map(|(label, value)| (label.to_string(), value.to_string()))
                    .unwrap_or_else(|| {
                        (
                            "KUBOARD_RAFT_NODE_ID (derived from the hostname)".into(),
                            node_id.to_string(),
                        )
                    });
                let ids: Vec<String> = peers.keys().map(u64::to_string).collect();
                return Err(ConfigError::bad(
                    &label,
                    &value,
                    format!("expected one of the ids in KUBOARD_RAFT_PEERS ({})", ids.join(", ")),
                ));
            }
            peers
        }
        None => {
            // A lone member only ever talks to itself: loopback unless bound to one address.
            let port = explicit_port.unwrap_or(DEFAULT_RAFT_PORT);
            let address = match bind_ip {
                ip if ip.is_unspecified() => format!("127.0.0.1:{port}"),
                IpAddr::V4(ip) => format!("{ip}:{port}"),
                IpAddr::V6(ip) => format!("[{ip}]:{port}"),
            };
            BTreeMap::from([(node_id, address)])
        }
    };
    let own_port = peers
        .get(&node_id)
        .and_then(|address| address.rsplit_once(':'))
        .and_then(|(_, p)| parse_port(p));
    let listen_port = explicit_port.or(own_port).unwrap_or(DEFAULT_RAFT_PORT);

    let cluster_secret = match reader.get("KUBOARD_CLUSTER_SECRET") {
        None if peers.len() > 1 => {
            return Err(ConfigError::unset(
                "KUBOARD_CLUSTER_SECRET",
                "expected a shared secret of at least 16 characters when KUBOARD_RAFT_PEERS has more than one member",
            ));
        }
        None => None,
        Some((label, value)) if value.chars().count() < MIN_CLUSTER_SECRET_LEN => {
            return Err(ConfigError::bad_secret(
                label,
                "expected a shared secret of at least 16 characters",
            ));
        }
        Some((_, value)) => Some(Secret::new(value)),
    };

    let heartbeat_ms = reader
        .u64_in("KUBOARD_RAFT_HEARTBEAT_MS", 10, 10_000, "milliseconds")?
        .unwrap_or(DEFAULT_RAFT_HEARTBEAT_MS);
    let election_timeout_ms = reader
        .u64_in("KUBOARD_RAFT_ELECTION_TIMEOUT_MS", 30, 60_000, "milliseconds")?
        .unwrap_or(DEFAULT_RAFT_ELECTION_TIMEOUT_MS);
    if election_timeout_ms < 3 * heartbeat_ms {
        let (label, value) = reader
            .get("KUBOARD_RAFT_ELECTION_TIMEOUT_MS")
            .map(|(label, value)| (label.to_string(), value.to_string()))
            .unwrap_or_else(|| {
                (
                    "KUBOARD_RAFT_ELECTION_TIMEOUT_MS".into(),
                    election_timeout_ms.to_string(),
                )
            });
        return Err(ConfigError::bad(
            &label,
            &value,
            format!(
                "expected at least 3 times KUBOARD_RAFT_HEARTBEAT_MS ({heartbeat_ms} ms), i.e. >= {}",
                3 * heartbeat_ms
            ),
        ));
    }
    let snapshot_threshold = reader
        .u64_in(
            "KUBOARD_RAFT_SNAPSHOT_THRESHOLD",
            100,
            10_000_000,
            "a number of log entries",
        )?
        .unwrap_or(DEFAULT_RAFT_SNAPSHOT_THRESHOLD);
    let compaction_retention_seconds = reader
        .u64_in(
            "KUBOARD_RAFT_COMPACTION_RETENTION_SECONDS",
            0,
            MAX_RAFT_COMPACTION_RETENTION_SECONDS,
            "seconds",
        )?
        .unwrap_or(DEFAULT_RAFT_COMPACTION_RETENTION_SECONDS);
    let compaction_retention =
        (compaction_retention_seconds > 0).then(|| Duration::from_secs(compaction_retention_seconds));

    Ok(RaftConfig {
        node_id,
        peers,
        listen_addr: SocketAddr::new(bind_ip, listen_port),
        cluster_secret,
        heartbeat_ms,
        election_timeout_ms,
        snapshot_threshold,
        compaction_retention,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::RawSettings;
    use crate::config::parse;
    use crate::config::test_support::{check, raft, Expected, SECRET, SSO_SECRET, THREE_PEERS};

    #[test]
    fn addresses_and_ports() {
        for (env, expected) in [
            (
                &[("KUBOARD_SERVER_PORT", "10082")][..],
                Expected::Err(r#"KUBOARD_RAFT_PORT="": expected a Raft peer port different from the web port"#),
            ),
            (
                &[("KUBOARD_SERVER_PORT", "8080"), ("KUBOARD_RAFT_PORT", "8080")],
                Expected::Err(r#"KUBOARD_RAFT_PORT="8080": expected a Raft peer port different from the web port"#),
            ),
            (
                &[("KUBOARD_RAFT_PORT", "0")],
                Expected::Err(r#"KUBOARD_RAFT_PORT="0": expected a TCP port number 1-65535"#),
            ),
            (
                &[("KUBOARD_RAFT_ADDR", "kuboard-0")],
                Expected::Err(r#"KUBOARD_RAFT_ADDR="kuboard-0": expected an IP address to bind, e.g. 0.0.0.0 or ::"#),
            ),
            (
                &[("KUBOARD_SERVER_ADDR", "127.0.0.2"), ("KUBOARD_RAFT_PORT", "20082")],
                Expected::Ok(|c| {
                    c.http.listen_addr == "127.0.0.2:80".parse().expect("literal address")
                        && raft(c).listen_addr == "127.0.0.2:20082".parse().expect("literal address")
                        && raft(c).peers[&1] == "127.0.0.2:20082"
                }),
            ),
            (
                &[("KUBOARD_RAFT_ADDR", "::1")],
                Expected::Ok(|c| {
                    c.http.listen_addr.ip().is_unspecified()
                        && raft(c).listen_addr == "[::1]:10082".parse().expect("literal address")
                        && raft(c).peers[&1] == "[::1]:10082"
                }),
            ),
        ] {
            check(env, None, expected);
        }
    }

    #[test]
    fn compaction_retention() {
        for (env, expected) in [
            (
                &[("KUBOARD_RAFT_COMPACTION_RETENTION_SECONDS", "0")][..],
                Expected::Ok(|c| raft(c).compaction_retention.is_none()),
            ),
            (
                &[("KUBOARD_RAFT_COMPACTION_RETENTION_SECONDS", "600")],
                Expected::Ok(|c| raft(c).compaction_retention == Some(Duration::from_secs(600))),
            ),
            (
                &[("KUBOARD_RAFT_COMPACTION_RETENTION_SECONDS", "1h")],
                Expected::Err(
                    r#"KUBOARD_RAFT_COMPACTION_RETENTION_SECONDS="1h": expected seconds between 0 and 2592000"#,
                ),
            ),
            (
                &[("KUBOARD_RAFT_COMPACTION_RETENTION_SECONDS", "2592001")],
                Expected::Err(
                    r#"KUBOARD_RAFT_COMPACTION_RETENTION_SECONDS="2592001": expected seconds between 0 and 2592000"#,
                ),
            ),
        ] {
            check(env, None, expected);
        }
    }

    #[test]
    fn hostnames() {
        fn check(hostname: &str, expected: Option<u64>) {
            assert_eq!(node_id_from_hostname(hostname), expected, "{hostname:?}");
        }
        check("kuboard-0", Some(1));
        check("kuboard-ha-2", Some(3));
        for bad in [
            "kuboard",
            "kuboard-",
            "kuboard-x",
            "kuboard-1a",
            "-",
            "kuboard-18446744073709551615",
        ] {
            check(bad, None);
        }
    }

    #[test]
    fn raft_peers_and_node_id() {
        check(
            &[THREE_PEERS, SECRET, SSO_SECRET, ("KUBOARD_RAFT_NODE_ID", "2")],
            None,
            Expected::Ok(|c| raft(c).node_id == 2),
        );
        check(
            &[THREE_PEERS, SECRET, SSO_SECRET],
            Some("kuboard-2"),
            Expected::Ok(|c| raft(c).node_id == 3),
        );
        check(
            &[THREE_PEERS, SECRET, SSO_SECRET],
            Some("laptop"),
            Expected::Err(
                "KUBOARD_RAFT_NODE_ID is not set: expected a member id when KUBOARD_RAFT_PEERS is set and the \
                 hostname \"laptop\" is not of the StatefulSet form name-N",
            ),
        );
        check(
            &[THREE_PEERS, SECRET, SSO_SECRET],
            Some("kuboard-5"),
            Expected::Err(
                r#"KUBOARD_RAFT_NODE_ID (derived from the hostname)="6": expected one of the ids in KUBOARD_RAFT_PEERS (1, 2, 3)"#,
            ),
        );
        check(
            &[THREE_PEERS, SECRET, SSO_SECRET, ("KUBOARD_RAFT_NODE_ID", "4")],
            None,
            Expected::Err(r#"KUBOARD_RAFT_NODE_ID="4": expected one of the ids in KUBOARD_RAFT_PEERS (1, 2, 3)"#),
        );
        check(
            &[("KUBOARD_RAFT_NODE_ID", "0")],
            None,
            Expected::Err(r#"KUBOARD_RAFT_NODE_ID="0": expected a member id, an integer >= 1"#),
        );
        // Without peers the hostname is ignored: a one-member group keeps id 1.
        check(&[], Some("kuboard-4"), Expected::Ok(|c| raft(c).node_id == 1));
        // The peer port of this member's own entry is its listen port unless KUBOARD_RAFT_PORT says otherwise.
        check(
            &[
                ("KUBOARD_RAFT_PEERS", "1=127.0.0.1:21001,2=127.0.0.1:21002"),
                ("KUBOARD_RAFT_NODE_ID", "2"),
                SSO_SECRET,
                SECRET,
            ],
            None,
            Expected::Ok(|c| raft(c).listen_addr.port() == 21002),
        );
        for garbage in [
            "garbage",
            "1=host",
            "0=host:1",
            "1=host:1,1=other:2",
            "x=host:1",
            "1=:10082",
            "1=host:99999",
            "",
        ] {
            let env = [("KUBOARD_RAFT_PEERS", garbage), ("KUBOARD_RAFT_NODE_ID", "1")];
            let raw = RawSettings::from_env_pairs(&env);
            match parse(&raw, None) {
                // An empty value counts as unset.
                Ok(config) => assert!(garbage.is_empty() && raft(&config).peers.len() == 1, "{garbage:?}"),
                Err(error) => assert_eq!(
                    error.to_string(),
                    format!("KUBOARD_RAFT_PEERS={garbage:?}: {PEERS_EXPECTED}")
                ),
            }
        }
        check(
            &[("KUBOARD_RAFT_PEERS", "1=[::1]:10082"), ("KUBOARD_RAFT_NODE_ID", "1")],
            None,
            Expected::Ok(|c| raft(c).peers[&1] == "[::1]:10082"),
        );
    }

    #[test]
    fn cluster_secret() {
        check(
            &[THREE_PEERS, SECRET, ("KUBOARD_RAFT_NODE_ID", "1")],
            None,
            Expected::Err(
                "KUBOARD_SSO_CLIENT_SECRET is not set: expected the same secret on every replica when KUBOARD_RAFT_PEERS \
                 has more than one member (it encrypts cluster credentials in the shared store; a single replica \
                 generates its own)",
            ),
        );
        check(
            &[THREE_PEERS, ("KUBOARD_RAFT_NODE_ID", "1")],
            None,
            Expected::Err(
                "KUBOARD_CLUSTER_SECRET is not set: expected a shared secret of at least 16 characters when \
                 KUBOARD_RAFT_PEERS has more than one member",
            ),
        );
        check(
            &[
                THREE_PEERS,
                ("KUBOARD_RAFT_NODE_ID", "1"),
                ("KUBOARD_CLUSTER_SECRET", "short"),
            ],
            None,
            Expected::Err("KUBOARD_CLUSTER_SECRET=<redacted>: expected a shared secret of at least 16 characters"),
        );
        check(
            &[("KUBOARD_RAFT_PEERS", "1=a:1"), ("KUBOARD_RAFT_NODE_ID", "1")],
            None,
            Expected::Ok(|c| raft(c).cluster_secret.is_none()),
        );
    }

    #[test]
    fn raft_timing() {
        check(
            &[
                ("KUBOARD_RAFT_HEARTBEAT_MS", "50"),
                ("KUBOARD_RAFT_ELECTION_TIMEOUT_MS", "150"),
            ],
            None,
            Expected::Ok(|c| raft(c).heartbeat_ms == 50 && raft(c).election_timeout_ms == 150),
        );
        check(
            &[("KUBOARD_RAFT_HEARTBEAT_MS", "500")],
            None,
            Expected::Err(
                r#"KUBOARD_RAFT_ELECTION_TIMEOUT_MS="800": expected at least 3 times KUBOARD_RAFT_HEARTBEAT_MS (500 ms), i.e. >= 1500"#,
            ),
        );
        check(
            &[("KUBOARD_RAFT_ELECTION_TIMEOUT_MS", "200")],
            None,
            Expected::Err(
                r#"KUBOARD_RAFT_ELECTION_TIMEOUT_MS="200": expected at least 3 times KUBOARD_RAFT_HEARTBEAT_MS (100 ms), i.e. >= 300"#,
            ),
        );
        check(
            &[("KUBOARD_RAFT_HEARTBEAT_MS", "fast")],
            None,
            Expected::Err(r#"KUBOARD_RAFT_HEARTBEAT_MS="fast": expected milliseconds between 10 and 10000"#),
        );
        check(
            &[("KUBOARD_RAFT_SNAPSHOT_THRESHOLD", "5")],
            None,
            Expected::Err(
                r#"KUBOARD_RAFT_SNAPSHOT_THRESHOLD="5": expected a number of log entries between 100 and 10000000"#,
            ),
        );
    }
}
