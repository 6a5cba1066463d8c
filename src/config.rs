//! The settings of `kuboard serve`, parsed once from [`RawSettings`] into typed structs and
//! validated as a whole. A bad value becomes one [`ConfigError`]: one line naming the setting, the
//! value and what is expected, and exit code 2.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::RawSettings;

pub const DEFAULT_SERVER_PORT: u16 = 80;
pub const DEFAULT_AGENT_PORT: u16 = 10081;
pub const DEFAULT_RAFT_PORT: u16 = 10082;
pub const DEFAULT_DATA_DIR: &str = "/data";
pub const DEFAULT_ADMIN_PASSWORD: &str = "Kuboard123";
/// Fast failover on a LAN: followers campaign within 0.8 s of the leader's last heartbeat (etcd's
/// defaults, heartbeat 100 ms and election 1000 ms, campaign after 1 to 2 s).
pub const DEFAULT_RAFT_HEARTBEAT_MS: u64 = 100;
pub const DEFAULT_RAFT_ELECTION_TIMEOUT_MS: u64 = 800;
pub const DEFAULT_RAFT_SNAPSHOT_THRESHOLD: u64 = 10_000;
pub const DEFAULT_SESSION_TTL_SECONDS: u64 = 12 * 60 * 60;
/// "Stay logged in" as Kuboard offers it: seven days.
pub const DEFAULT_SESSION_REMEMBER_TTL_SECONDS: u64 = 7 * 24 * 60 * 60;
pub const DEFAULT_LOGIN_FAILURE_WINDOW_SECONDS: u64 = 5 * 60;
pub const DEFAULT_LOGIN_MAX_FAILURES: u64 = 10;
/// Higher than per user: many users may share one address behind a NAT or proxy.
pub const DEFAULT_LOGIN_MAX_FAILURES_PER_ADDRESS: u64 = 50;
pub const DEFAULT_ETCD_PREFIX: &str = "/kuboard/";
/// The etcd v3 API is reachable from this host only unless `KUBOARD_ETCD_API_ADDR` says otherwise.
pub const DEFAULT_ETCD_API_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
pub const MIN_CLUSTER_SECRET_LEN: usize = 16;

/// A value that must never be printed: `Debug` shows `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("<redacted>")
    }
}

/// Everything `kuboard serve` needs, validated.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub http: HttpConfig,
    pub agent: AgentConfig,
    pub store: StoreSelection,
    /// The etcd v3 API of the embedded store, when `KUBOARD_ETCD_API_PORT` is set.
    pub etcd_api: Option<EtcdApiSettings>,
    pub data_dir: PathBuf,
    pub audit: AuditConfig,
    pub auth: AuthConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    pub listen_addr: SocketAddr,
    /// Public URL of the service (the load balancer), when given.
    pub endpoint: Option<String>,
    pub tls: Option<TlsConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    pub tcp_port: u16,
    /// Every replica's agent address (`host:port`), empty when not given.
    pub endpoints: Vec<String>,
}

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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// The raw text of `KUBOARD_ETCD_ENDPOINTS`, kept for the error that names it.
    pub endpoints_text: String,
    pub endpoints_label: String,
    pub endpoints: Vec<String>,
    pub ca_cert: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub prefix: String,
}

/// Where and how the embedded store serves the etcd v3 API (only with the embedded store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdApiSettings {
    pub listen_addr: SocketAddr,
    pub tls: Option<EtcdApiTlsFiles>,
}

/// PEM files of the etcd API's TLS, checked at start (readable, of the right kind, key matching the
/// certificate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdApiTlsFiles {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    /// With a CA, every client must present a certificate signed by it.
    pub client_ca_path: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditPolicy {
    Disabled,
    IgnoreErrors,
    Buffered,
    Strict,
}

impl AuditPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditPolicy::Disabled => "disabled",
            AuditPolicy::IgnoreErrors => "ignore-errors",
            AuditPolicy::Buffered => "buffered",
            AuditPolicy::Strict => "strict",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    pub policy: AuditPolicy,
    pub quest_db_uri: Option<Secret>,
    /// `KUBOARD_AUDIT_READS`: reads (GET) are audited too, not only changes and denials.
    pub audit_reads: bool,
    /// `KUBOARD_AUDIT_LOCAL_MAX_BYTES`: the bound of the local audit log (no QuestDB configured).
    pub local_max_bytes: u64,
}

/// The local audit log keeps at most this much by default: 256 MiB.
pub const DEFAULT_AUDIT_LOCAL_MAX_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    pub admin_default_password: Secret,
    pub session_ttl: Duration,
    pub sso_client_secret: Option<Secret>,
    /// The lifetime of a session logged in with "stay logged in"; at least `session_ttl`.
    pub remember_ttl: Duration,
    /// Peers whose `X-Forwarded-For` is believed (load balancers, ingress controllers).
    pub trusted_proxies: Vec<IpNetwork>,
    pub login_failure_window: Duration,
    pub login_max_failures_per_user: u64,
    pub login_max_failures_per_address: u64,
}

/// An IP network in CIDR notation (`10.0.0.0/8`, `::1/128`); a bare address is a /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork {
    pub address: IpAddr,
    pub prefix_len: u8,
}

impl IpNetwork {
    pub fn parse(text: &str) -> Option<IpNetwork> {
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address.parse::<IpAddr>().ok()?, Some(prefix.parse::<u8>().ok()?)),
            None => (text.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix_len = prefix.unwrap_or(max);
        (prefix_len <= max).then_some(IpNetwork { address, prefix_len })
    }

    pub fn contains(&self, candidate: IpAddr) -> bool {
        let candidate = match candidate {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(candidate, IpAddr::V4),
            other => other,
        };
        match (self.address, candidate) {
            (IpAddr::V4(network), IpAddr::V4(candidate)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix_len)).unwrap_or(0);
                u32::from(network) & mask == u32::from(candidate) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(candidate)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix_len)).unwrap_or(0);
                u128::from(network) & mask == u128::from(candidate) & mask
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A tracing `EnvFilter` directive, already checked to parse.
    pub filter: String,
}

/// One bad setting. `Display` is the single line printed before exiting with code 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{label}{shown}: {expected}")]
pub struct ConfigError {
    /// The variable or flag as the operator wrote it.
    pub label: String,
    /// `="value"`, `=<redacted>` or ` is not set`.
    pub shown: String,
    pub expected: String,
}

impl ConfigError {
    fn bad(label: &str, value: &str, expected: impl Into<String>) -> ConfigError {
        ConfigError {
            label: label.to_string(),
            shown: format!("={value:?}"),
            expected: expected.into(),
        }
    }

    fn bad_secret(label: &str, expected: impl Into<String>) -> ConfigError {
        ConfigError {
            label: label.to_string(),
            shown: "=<redacted>".to_string(),
            expected: expected.into(),
        }
    }

    fn unset(label: &str, expected: impl Into<String>) -> ConfigError {
        ConfigError {
            label: label.to_string(),
            shown: " is not set".to_string(),
            expected: expected.into(),
        }
    }
}

/// Reads the settings; `hostname` is this machine's host name (for deriving the Raft member id).
pub fn parse(raw: &RawSettings, hostname: Option<&str>) -> Result<ServeConfig, ConfigError> {
    let reader = Reader { raw };

    let bind_ip = match reader.get("KUBOARD_SERVER_ADDR") {
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        Some((label, value)) => value
            .trim()
            .parse::<IpAddr>()
            .map_err(|_| ConfigError::bad(label, value, "expected an IP address to bind, e.g. 0.0.0.0 or ::"))?,
    };
    let server_port = reader.port("KUBOARD_SERVER_PORT")?.unwrap_or(DEFAULT_SERVER_PORT);
    let endpoint = match reader.get("KUBOARD_ENDPOINT") {
        None => None,
        Some((label, value)) => Some(parse_url(label, value, &["http://", "https://"])?),
    };
    let tls = parse_tls(&reader)?;
    let http = HttpConfig {
        listen_addr: SocketAddr::new(bind_ip, server_port),
        endpoint,
        tls,
    };

    let agent_port = reader
        .port("KUBOARD_AGENT_SERVER_TCP_PORT")?
        .unwrap_or(DEFAULT_AGENT_PORT);
    let agent_endpoints = match reader.get("KUBOARD_AGENT_ENDPOINT") {
        None => Vec::new(),
        Some((label, value)) => parse_host_port_list(label, value)?,
    };
    let agent = AgentConfig {
        tcp_port: agent_port,
        endpoints: agent_endpoints,
    };

    let data_dir = match reader.get("KUBOARD_DATA_DIR") {
        None => PathBuf::from(DEFAULT_DATA_DIR),
        Some((label, value)) if value.trim().is_empty() => {
            return Err(ConfigError::bad(label, value, "expected a directory path"));
        }
        Some((_, value)) => PathBuf::from(value),
    };

    let store = match reader.get("KUBOARD_ETCD_ENDPOINTS") {
        Some((label, value)) => StoreSelection::Etcd(parse_etcd(&reader, label, value)?),
        None => StoreSelection::Raft(parse_raft(&reader, bind_ip, hostname)?),
    };
    if let StoreSelection::Raft(raft) = &store {
        if raft.listen_addr.port() == server_port {
            let (label, value) = reader.get("KUBOARD_RAFT_PORT").unwrap_or(("KUBOARD_RAFT_PORT", ""));
            return Err(ConfigError::bad(
                label,
                value,
                "expected a Raft peer port different from the web port",
            ));
        }
    }
    let etcd_api = parse_etcd_api(&reader, &store, server_port)?;

    let disable_audit = reader.bool("KUBOARD_DISABLE_AUDIT")?.unwrap_or(false);
    let configured_policy = match reader.get("KUBOARD_AUDIT_POLICY") {
        None => AuditPolicy::IgnoreErrors,
        Some((label, value)) => match value.trim().to_ascii_lowercase().as_str() {
            "ignore-errors" => AuditPolicy::IgnoreErrors,
            "buffered" => AuditPolicy::Buffered,
            "strict" => AuditPolicy::Strict,
            _ => {
                return Err(ConfigError::bad(
                    label,
                    value,
                    "expected one of ignore-errors, buffered, strict",
                ))
            }
        },
    };
    let quest_db_uri = match reader.get("KUBOARD_QUEST_DB_URI") {
        None => None,
        Some((label, value)) => {
            if !(value.starts_with("postgresql://") || value.starts_with("postgres://")) || value.len() < 14 {
                return Err(ConfigError::bad_secret(
                    label,
                    "expected a URI like postgresql://user:pass@host:8812/qdb",
                ));
            }
            Some(Secret::new(value))
        }
    };
    let audit_reads = reader.bool("KUBOARD_AUDIT_READS")?.unwrap_or(false);
    let local_max_bytes = reader
        .u64_in("KUBOARD_AUDIT_LOCAL_MAX_BYTES", 64 * 1024, 1 << 40, "a number of bytes")?
        .unwrap_or(DEFAULT_AUDIT_LOCAL_MAX_BYTES);
    let audit = AuditConfig {
        policy: if disable_audit {
            AuditPolicy::Disabled
        } else {
            configured_policy
        },
        quest_db_uri,
        audit_reads,
        local_max_bytes,
    };

    let auth = parse_auth(&reader, &store)?;
    let log = parse_log(&reader)?;

    Ok(ServeConfig {
        http,
        agent,
        store,
        etcd_api,
        data_dir,
        audit,
        auth,
        log,
    })
}

/// Checks that the data directory exists or can be created, and that a file can be written in it.
/// An error names the directory and says what failed.
pub fn check_data_dir(label: &str, data_dir: &Path) -> Result<(), ConfigError> {
    let shown = data_dir.display().to_string();
    std::fs::create_dir_all(data_dir).map_err(|error| {
        ConfigError::bad(
            label,
            &shown,
            format!("expected a directory that can be created ({error})"),
        )
    })?;
    let probe = data_dir.join(format!(".kuboard-write-probe-{}", std::process::id()));
    std::fs::write(&probe, b"probe").map_err(|error| {
        ConfigError::bad(
            label,
            &shown,
            format!("expected a writable directory (writing a file failed: {error})"),
        )
    })?;
    std::fs::remove_file(&probe).map_err(|error| {
        ConfigError::bad(
            label,
            &shown,
            format!("expected a writable directory (removing a file failed: {error})"),
        )
    })?;
    Ok(())
}

/// Reads raw settings by variable name and parses the common shapes.
struct Reader<'a> {
    raw: &'a RawSettings,
}

impl<'a> Reader<'a> {
    /// The label and value of a setting that is set to a non-empty value.
    fn get(&self, env_name: &'static str) -> Option<(&'a str, &'a str)> {
        self.raw
            .get(env_name)
            .filter(|raw| !raw.value.is_empty())
            .map(|raw| (raw.label.as_str(), raw.value.as_str()))
    }

    fn port(&self, env_name: &'static str) -> Result<Option<u16>, ConfigError> {
        let Some((label, value)) = self.get(env_name) else {
            return Ok(None);
        };
        parse_port(value)
            .map(Some)
            .ok_or_else(|| ConfigError::bad(label, value, "expected a TCP port number 1-65535"))
    }

    fn bool(&self, env_name: &'static str) -> Result<Option<bool>, ConfigError> {
        let Some((label, value)) = self.get(env_name) else {
            return Ok(None);
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Some(true)),
            "false" | "0" | "no" | "off" => Ok(Some(false)),
            _ => Err(ConfigError::bad(label, value, "expected true or false")),
        }
    }

    fn u64_in(&self, env_name: &'static str, min: u64, max: u64, what: &str) -> Result<Option<u64>, ConfigError> {
        let Some((label, value)) = self.get(env_name) else {
            return Ok(None);
        };
        match value.trim().parse::<u64>() {
            Ok(number) if (min..=max).contains(&number) => Ok(Some(number)),
            _ => Err(ConfigError::bad(
                label,
                value,
                format!("expected {what} between {min} and {max}"),
            )),
        }
    }
}

fn parse_port(text: &str) -> Option<u16> {
    text.trim().parse::<u16>().ok().filter(|port| *port != 0)
}

fn parse_url(label: &str, value: &str, schemes: &[&str]) -> Result<String, ConfigError> {
    let trimmed = value.trim();
    let rest = schemes.iter().find_map(|scheme| trimmed.strip_prefix(scheme));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') && !trimmed.contains(char::is_whitespace) => {
            Ok(trimmed.trim_end_matches('/').to_string())
        }
        _ => Err(ConfigError::bad(
            label,
            value,
            format!("expected a URL starting with {}", schemes.join(" or ")),
        )),
    }
}

/// Checks `host:port` (host a name, an IPv4 address or a bracketed IPv6 address).
pub(crate) fn valid_host_port(text: &str) -> bool {
    let Some((host, port)) = text.rsplit_once(':') else {
        return false;
    };
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
    };
    host_ok && parse_port(port).is_some()
}

fn parse_host_port_list(label: &str, value: &str) -> Result<Vec<String>, ConfigError> {
    let entries: Vec<String> = value.split(',').map(|entry| entry.trim().to_string()).collect();
    if entries.iter().all(|entry| valid_host_port(entry)) {
        Ok(entries)
    } else {
        Err(ConfigError::bad(
            label,
            value,
            "expected comma-separated host:port entries, e.g. 10.0.0.1:10081,10.0.0.2:10081",
        ))
    }
}

fn parse_tls(reader: &Reader<'_>) -> Result<Option<TlsConfig>, ConfigError> {
    match (reader.get("KUBOARD_TLS_CERT"), reader.get("KUBOARD_TLS_KEY")) {
        (None, None) => Ok(None),
        (Some((label, value)), None) => Err(ConfigError::bad(
            label,
            value,
            "expected KUBOARD_TLS_KEY to be set too (both or neither)",
        )),
        (None, Some((label, value))) => Err(ConfigError::bad(
            label,
            value,
            "expected KUBOARD_TLS_CERT to be set too (both or neither)",
        )),
        (Some((cert_label, cert)), Some((key_label, key))) => {
            for (label, path) in [(cert_label, cert), (key_label, key)] {
                if let Err(error) = std::fs::File::open(path) {
                    return Err(ConfigError::bad(
                        label,
                        path,
                        format!("expected a readable PEM file ({error})"),
                    ));
                }
            }
            Ok(Some(TlsConfig {
                cert_path: PathBuf::from(cert),
                key_path: PathBuf::from(key),
            }))
        }
    }
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
            .map_err(|_| ConfigError::bad(label, value, "expected an IP address to bind, e.g. 0.0.0.0 or ::"))?,
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

    Ok(RaftConfig {
        node_id,
        peers,
        listen_addr: SocketAddr::new(bind_ip, listen_port),
        cluster_secret,
        heartbeat_ms,
        election_timeout_ms,
        snapshot_threshold,
    })
}

fn parse_etcd(reader: &Reader<'_>, label: &str, value: &str) -> Result<EtcdConfig, ConfigError> {
    if let Some((peers_label, peers)) = reader.get("KUBOARD_RAFT_PEERS") {
        return Err(ConfigError::bad(
            peers_label,
            peers,
            "expected KUBOARD_RAFT_PEERS unset when KUBOARD_ETCD_ENDPOINTS selects an external etcd",
        ));
    }
    let ca_cert = reader.get("KUBOARD_ETCD_CACERT");
    let cert = reader.get("KUBOARD_ETCD_CERT");
    let key = reader.get("KUBOARD_ETCD_KEY");
    // Kuboard's install guide writes bare `ip:2379` entries; with TLS files given they mean https.
    let uses_tls = ca_cert.is_some() || cert.is_some();
    let mut endpoints = Vec::new();
    for entry in value.split(',').map(str::trim) {
        let url = if entry.contains("://") {
            entry.to_string()
        } else if uses_tls {
            format!("https://{entry}")
        } else {
            format!("http://{entry}")
        };
        let url = parse_url(label, &url, &["http://", "https://"]).map_err(|_| {
            ConfigError::bad(
                label,
                value,
                "expected comma-separated etcd endpoints, e.g. https://etcd-0:2379,etcd-1:2379",
            )
        })?;
        if uses_tls && url.starts_with("http://") {
            return Err(ConfigError::bad(
                label,
                value,
                "expected https:// endpoints (or bare host:port) when KUBOARD_ETCD_CACERT or KUBOARD_ETCD_CERT is set",
            ));
        }
        if !uses_tls && url.starts_with("https://") {
            return Err(ConfigError::unset(
                "KUBOARD_ETCD_CACERT",
                format!("expected the CA certificate that signed the etcd server certificates, as {label} uses https"),
            ));
        }
        endpoints.push(url);
    }

    // Certificate problems are the operator's to fix: they stop the start (exit 2) naming the
    // variable and the file, instead of showing up later as an unreachable etcd.
    if let Some((ca_label, ca_path)) = ca_cert {
        check_pem_file(ca_label, ca_path, PemKind::Certificates)?;
    }
    match (cert, key) {
        (None, None) => {}
        (Some((cert_label, cert_path)), None) => {
            return Err(ConfigError::bad(
                cert_label,
                cert_path,
                "expected KUBOARD_ETCD_KEY to be set too (a client certificate needs its key)",
            ))
        }
        (None, Some((key_label, key_path))) => {
            return Err(ConfigError::bad(
                key_label,
                key_path,
                "expected KUBOARD_ETCD_CERT to be set too (a client key needs its certificate)",
            ))
        }
        (Some((cert_label, cert_path)), Some((key_label, key_path))) => {
            check_pem_file(cert_label, cert_path, PemKind::Certificates)?;
            check_pem_file(key_label, key_path, PemKind::PrivateKey)?;
        }
    }
    let username = reader.get("KUBOARD_ETCD_USERNAME");
    let password = reader.get("KUBOARD_ETCD_PASSWORD");
    match (username, password) {
        (Some((user_label, user)), None) => {
            return Err(ConfigError::bad(
                user_label,
                user,
                "expected KUBOARD_ETCD_PASSWORD to be set too (an etcd user needs its password)",
            ))
        }
        (None, Some((password_label, _))) => {
            return Err(ConfigError::bad_secret(
                password_label,
                "expected KUBOARD_ETCD_USERNAME to be set too (a password needs its etcd user)",
            ))
        }
        _ => {}
    }

    let prefix = match reader.get("KUBOARD_ETCD_PREFIX") {
        None => DEFAULT_ETCD_PREFIX.to_string(),
        Some((prefix_label, prefix)) if prefix.trim().is_empty() || prefix.contains(char::is_whitespace) => {
            return Err(ConfigError::bad(
                prefix_label,
                prefix,
                "expected a key prefix without spaces, e.g. /kuboard/",
            ));
        }
        Some((_, prefix)) => prefix.to_string(),
    };
    let path = |setting: Option<(&str, &str)>| setting.map(|(_, value)| PathBuf::from(value));
    Ok(EtcdConfig {
        endpoints_text: value.to_string(),
        endpoints_label: label.to_string(),
        endpoints,
        ca_cert: path(ca_cert),
        cert: path(cert),
        key: path(key),
        username: username.map(|(_, value)| value.to_string()),
        password: password.map(|(_, value)| Secret::new(value)),
        prefix,
    })
}

/// The etcd v3 API settings: none unless `KUBOARD_ETCD_API_PORT` is set, and then only with the
/// embedded store (an external etcd already serves that API itself).
fn parse_etcd_api(
    reader: &Reader<'_>,
    store: &StoreSelection,
    server_port: u16,
) -> Result<Option<EtcdApiSettings>, ConfigError> {
    const RELATED: [&str; 4] = [
        "KUBOARD_ETCD_API_ADDR",
        "KUBOARD_ETCD_API_CERT",
        "KUBOARD_ETCD_API_KEY",
        "KUBOARD_ETCD_API_CLIENT_CA",
    ];
    let Some(port) = reader.port("KUBOARD_ETCD_API_PORT")? else {
        // A setting of an API that is not served is a mistake worth stopping for: the operator
        // believes in TLS, or in a bind address, that does not exist.
        if let Some((label, value)) = RELATED.iter().find_map(|name| reader.get(name)) {
            return Err(ConfigError::bad(
                label,
                value,
                "expected KUBOARD_ETCD_API_PORT to be set too (the etcd v3 API is served only on that port)",
            ));
        }
        return Ok(None);
    };
    let (port_label, port_text) = reader.get("KUBOARD_ETCD_API_PORT").expect("the port was just read");
    let raft = match store {
        StoreSelection::Raft(raft) => raft,
        StoreSelection::Etcd(etcd) => {
            return Err(ConfigError::bad(
                port_label,
                port_text,
                format!(
                    "expected it unset when {} selects an external etcd: only the embedded store serves the etcd \
                     v3 API; point etcd clients at the external etcd itself",
                    etcd.endpoints_label
                ),
            ));
        }
    };
    if port == server_port || port == raft.listen_addr.port() {
        return Err(ConfigError::bad(
            port_label,
            port_text,
            "expected a port different from the web port and the Raft peer port",
        ));
    }
    let bind_ip = match reader.get("KUBOARD_ETCD_API_ADDR") {
        None => DEFAULT_ETCD_API_ADDR,
        Some((label, value)) => value.trim().parse::<IpAddr>().map_err(|_| {
            ConfigError::bad(
                label,
                value,
                "expected an IP address to bind the etcd v3 API, e.g. 127.0.0.1 or 0.0.0.0",
            )
        })?,
    };
    let cert = reader.get("KUBOARD_ETCD_API_CERT");
    let key = reader.get("KUBOARD_ETCD_API_KEY");
    let client_ca = reader.get("KUBOARD_ETCD_API_CLIENT_CA");
    let tls = match (cert, key) {
        (None, None) => {
            if let Some((label, value)) = client_ca {
                return Err(ConfigError::bad(
                    label,
                    value,
                    "expected KUBOARD_ETCD_API_CERT and KUBOARD_ETCD_API_KEY to be set too (client certificates \
                     are checked only over TLS)",
                ));
            }
            None
        }
        (Some((label, value)), None) => {
            return Err(ConfigError::bad(
                label,
                value,
                "expected KUBOARD_ETCD_API_KEY to be set too (both or neither)",
            ))
        }
        (None, Some((label, value))) => {
            return Err(ConfigError::bad(
                label,
                value,
                "expected KUBOARD_ETCD_API_CERT to be set too (both or neither)",
            ))
        }
        (Some((cert_label, cert_path)), Some((key_label, key_path))) => {
            check_pem_file(cert_label, cert_path, PemKind::Certificates)?;
            check_pem_file(key_label, key_path, PemKind::PrivateKey)?;
            check_key_matches_certificate(key_label, key_path, cert_path)?;
            if let Some((ca_label, ca_path)) = client_ca {
                check_pem_file(ca_label, ca_path, PemKind::Certificates)?;
            }
            Some(EtcdApiTlsFiles {
                cert_path: PathBuf::from(cert_path),
                key_path: PathBuf::from(key_path),
                client_ca_path: client_ca.map(|(_, path)| PathBuf::from(path)),
            })
        }
    };
    Ok(Some(EtcdApiSettings {
        listen_addr: SocketAddr::new(bind_ip, port),
        tls,
    }))
}

/// Checks that the private key at `key_path` belongs to the first certificate at `cert_path` (both
/// already checked to parse), so that a mismatched pair stops the start instead of failing every
/// handshake later. The error names the key's setting.
fn check_key_matches_certificate(key_label: &str, key_path: &str, cert_path: &str) -> Result<(), ConfigError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls::crypto::ring::default_provider;
    use tokio_rustls::rustls::sign::CertifiedKey;

    let bad = |reason: String| ConfigError::bad(key_label, key_path, format!("expected a PEM private key {reason}"));
    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .and_then(|certificates| certificates.collect())
        .map_err(|error| bad(format!("beside a readable certificate ({error})")))?;
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|error| bad(format!("that can be read ({error})")))?;
    CertifiedKey::from_der(certificates, key, &default_provider())
        .map_err(|error| bad(format!("matching the certificate {cert_path:?} ({error})")))?;
    Ok(())
}

/// What a PEM file given for the external etcd must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PemKind {
    /// At least one certificate, and nothing malformed.
    Certificates,
    /// A private key (PKCS#8, PKCS#1 or SEC1).
    PrivateKey,
}

/// Reads a PEM file named by a setting and checks that it holds what it must. The error names the
/// setting and the file.
fn check_pem_file(label: &str, path: &str, kind: PemKind) -> Result<(), ConfigError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    let what = match kind {
        PemKind::Certificates => "a PEM certificate file",
        PemKind::PrivateKey => "a PEM private key file",
    };
    let bytes = std::fs::read(path)
        .map_err(|error| ConfigError::bad(label, path, format!("expected {what} that can be read ({error})")))?;
    let bad = |reason: String| ConfigError::bad(label, path, format!("expected {what}: {reason}"));
    match kind {
        PemKind::Certificates => {
            let mut count = 0usize;
            for certificate in CertificateDer::pem_slice_iter(&bytes) {
                certificate.map_err(|error| bad(format!("the file is not valid PEM ({error})")))?;
                count += 1;
            }
            if count == 0 {
                return Err(bad("the file holds no certificate".into()));
            }
        }
        PemKind::PrivateKey => {
            PrivateKeyDer::from_pem_slice(&bytes).map_err(|error| bad(format!("no private key found ({error})")))?;
        }
    }
    Ok(())
}

fn parse_auth(reader: &Reader<'_>, store: &StoreSelection) -> Result<AuthConfig, ConfigError> {
    let password = match (
        reader.get("KUBOARD_ADMIN_DERAULT_PASSWORD"),
        reader.get("KUBOARD_ADMIN_DEFAULT_PASSWORD"),
    ) {
        (Some((_, kuboard)), Some((_, ours))) if kuboard != ours => {
            return Err(ConfigError::bad_secret(
                "KUBOARD_ADMIN_DEFAULT_PASSWORD",
                "expected the same value as KUBOARD_ADMIN_DERAULT_PASSWORD when both are set",
            ));
        }
        (Some((_, value)), _) | (None, Some((_, value))) => value,
        (None, None) => DEFAULT_ADMIN_PASSWORD,
    };
    let session_ttl_seconds = reader
        .u64_in("KUBOARD_SESSION_TTL_SECONDS", 60, 30 * 24 * 3600, "seconds")?
        .unwrap_or(DEFAULT_SESSION_TTL_SECONDS);
    let remember_ttl_seconds = reader
        .u64_in("KUBOARD_SESSION_REMEMBER_TTL_SECONDS", 60, 90 * 24 * 3600, "seconds")?
        .unwrap_or(DEFAULT_SESSION_REMEMBER_TTL_SECONDS.max(session_ttl_seconds));
    if remember_ttl_seconds < session_ttl_seconds {
        let (label, value) = reader
            .get("KUBOARD_SESSION_REMEMBER_TTL_SECONDS")
            .expect("a value below the session ttl was read from the setting");
        return Err(ConfigError::bad(
            label,
            value,
            format!("expected at least KUBOARD_SESSION_TTL_SECONDS ({session_ttl_seconds})"),
        ));
    }
    let trusted_proxies = match reader.get("KUBOARD_TRUSTED_PROXIES") {
        None => Vec::new(),
        Some((label, value)) => value
            .split(',')
            .filter(|item| !item.trim().is_empty())
            .map(|item| {
                IpNetwork::parse(item).ok_or_else(|| {
                    ConfigError::bad(
                        label,
                        value,
                        "expected IP addresses or CIDR networks, comma-separated (10.0.0.0/8,::1)",
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let window_seconds = reader
        .u64_in("KUBOARD_LOGIN_FAILURE_WINDOW_SECONDS", 10, 24 * 3600, "seconds")?
        .unwrap_or(DEFAULT_LOGIN_FAILURE_WINDOW_SECONDS);
    let max_per_user = reader
        .u64_in("KUBOARD_LOGIN_MAX_FAILURES", 1, 1_000_000, "failed logins")?
        .unwrap_or(DEFAULT_LOGIN_MAX_FAILURES);
    let max_per_address = reader
        .u64_in("KUBOARD_LOGIN_MAX_FAILURES_PER_ADDRESS", 1, 1_000_000, "failed logins")?
        .unwrap_or(DEFAULT_LOGIN_MAX_FAILURES_PER_ADDRESS);
    let sso_client_secret = match reader.get("KUBOARD_SSO_CLIENT_SECRET") {
        Some((label, value)) if value.trim().len() < MIN_CLUSTER_SECRET_LEN => {
            return Err(ConfigError::bad_secret(
                label,
                format!("expected a secret of at least {MIN_CLUSTER_SECRET_LEN} characters"),
            ));
        }
        Some((_, value)) => Some(Secret::new(value)),
        None => None,
    };
    if let (StoreSelection::Raft(raft), None) = (store, &sso_client_secret) {
        if raft.peers.len() > 1 {
            return Err(ConfigError::unset(
                "KUBOARD_SSO_CLIENT_SECRET",
                "expected the same secret on every replica when KUBOARD_RAFT_PEERS has more than one member (it \
                 encrypts cluster credentials in the shared store; a single replica generates its own)",
            ));
        }
    }
    Ok(AuthConfig {
        admin_default_password: Secret::new(password),
        session_ttl: Duration::from_secs(session_ttl_seconds),
        sso_client_secret,
        remember_ttl: Duration::from_secs(remember_ttl_seconds),
        trusted_proxies,
        login_failure_window: Duration::from_secs(window_seconds),
        login_max_failures_per_user: max_per_user,
        login_max_failures_per_address: max_per_address,
    })
}

fn parse_log(reader: &Reader<'_>) -> Result<LogConfig, ConfigError> {
    if let Some((label, value)) = reader.get("KUBOARD_SERVER_LOGRUS_LEVEL") {
        let level = match value.trim().to_ascii_lowercase().as_str() {
            "trace" => "trace",
            "debug" => "debug",
            "info" => "info",
            "warn" | "warning" => "warn",
            // logrus' fatal and panic levels have no tracing counterpart: errors are the closest.
            "error" | "fatal" | "panic" => "error",
            _ => {
                return Err(ConfigError::bad(
                    label,
                    value,
                    "expected one of trace, debug, info, warn, warning, error, fatal, panic",
                ));
            }
        };
        return Ok(LogConfig {
            filter: quiet_dependencies(level),
        });
    }
    if let Some((label, value)) = reader.get("RUST_LOG") {
        if tracing_subscriber::EnvFilter::builder().parse(value).is_err() {
            return Err(ConfigError::bad(
                label,
                value,
                "expected a tracing filter, e.g. info or info,kuboard=debug",
            ));
        }
        return Ok(LogConfig {
            filter: value.to_string(),
        });
    }
    Ok(LogConfig {
        filter: quiet_dependencies("info"),
    })
}

/// At info and below the store's libraries log every election step; an operator wants those only
/// when debugging, so they start at warn unless the level asks for more.
/// The filter for a plain level. openraft warns on every failed heartbeat (many lines a second
/// while a peer is down); our peer transport already logs each peer's reachability changes, so at
/// the everyday levels openraft only reports errors.
fn quiet_dependencies(level: &str) -> String {
    match level {
        "info" => "info,openraft=error,sled=warn,raft_log=warn".to_string(),
        "warn" => "warn,openraft=error".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a case expects: a config satisfying a predicate, or exactly this error line.
    enum Expected {
        Ok(fn(&ServeConfig) -> bool),
        Err(&'static str),
    }

    fn check(env: &[(&str, &str)], hostname: Option<&str>, expected: Expected) {
        let raw = RawSettings::from_env_pairs(env);
        let result = parse(&raw, hostname);
        match (expected, result) {
            (Expected::Ok(predicate), Ok(config)) => assert!(predicate(&config), "env {env:?}: got {config:?}"),
            (Expected::Ok(_), Err(error)) => panic!("env {env:?}: unexpected error {error}"),
            (Expected::Err(line), Ok(config)) => panic!("env {env:?}: expected error {line:?}, got {config:?}"),
            (Expected::Err(line), Err(error)) => assert_eq!(error.to_string(), line, "env {env:?}"),
        }
    }

    fn raft(config: &ServeConfig) -> &RaftConfig {
        match &config.store {
            StoreSelection::Raft(raft) => raft,
            StoreSelection::Etcd(_) => panic!("expected the raft backend"),
        }
    }

    const SECRET: (&str, &str) = ("KUBOARD_CLUSTER_SECRET", "0123456789abcdef");
    const SSO_SECRET: (&str, &str) = ("KUBOARD_SSO_CLIENT_SECRET", "7e5514b1a1c70c779c7a32b9");
    const THREE_PEERS: (&str, &str) = (
        "KUBOARD_RAFT_PEERS",
        "1=kuboard-0:10082,2=kuboard-1:10082,3=kuboard-2:10082",
    );

    #[test]
    fn defaults() {
        check(
            &[],
            None,
            Expected::Ok(|c| {
                c.http.listen_addr == "0.0.0.0:80".parse().expect("literal address")
                    && c.http.tls.is_none()
                    && c.agent.tcp_port == 10081
                    && c.data_dir == Path::new("/data")
                    && raft(c).node_id == 1
                    && raft(c).peers == BTreeMap::from([(1, "127.0.0.1:10082".to_string())])
                    && raft(c).listen_addr.port() == 10082
                    && raft(c).heartbeat_ms == 100
                    && raft(c).election_timeout_ms == DEFAULT_RAFT_ELECTION_TIMEOUT_MS
                    && raft(c).snapshot_threshold == 10_000
                    && c.audit.policy == AuditPolicy::IgnoreErrors
                    && c.auth.admin_default_password.expose() == "Kuboard123"
                    && c.auth.session_ttl == Duration::from_secs(43200)
                    && c.log.filter.starts_with("info")
            }),
        );
    }

    #[test]
    fn ports() {
        check(
            &[("KUBOARD_SERVER_PORT", "8080")],
            None,
            Expected::Ok(|c| c.http.listen_addr.port() == 8080),
        );
        check(
            &[("KUBOARD_SERVER_PORT", "abc")],
            None,
            Expected::Err(r#"KUBOARD_SERVER_PORT="abc": expected a TCP port number 1-65535"#),
        );
        check(
            &[("KUBOARD_SERVER_PORT", "0")],
            None,
            Expected::Err(r#"KUBOARD_SERVER_PORT="0": expected a TCP port number 1-65535"#),
        );
        check(
            &[("KUBOARD_AGENT_SERVER_TCP_PORT", "70000")],
            None,
            Expected::Err(r#"KUBOARD_AGENT_SERVER_TCP_PORT="70000": expected a TCP port number 1-65535"#),
        );
        check(
            &[("KUBOARD_SERVER_PORT", "10082")],
            None,
            Expected::Err(r#"KUBOARD_RAFT_PORT="": expected a Raft peer port different from the web port"#),
        );
        check(
            &[("KUBOARD_SERVER_ADDR", "localhost")],
            None,
            Expected::Err(r#"KUBOARD_SERVER_ADDR="localhost": expected an IP address to bind, e.g. 0.0.0.0 or ::"#),
        );
        check(
            &[("KUBOARD_SERVER_ADDR", "127.0.0.2"), ("KUBOARD_RAFT_PORT", "20082")],
            None,
            Expected::Ok(|c| {
                c.http.listen_addr == "127.0.0.2:80".parse().expect("literal address")
                    && raft(c).listen_addr == "127.0.0.2:20082".parse().expect("literal address")
                    && raft(c).peers[&1] == "127.0.0.2:20082"
            }),
        );
        check(
            &[("KUBOARD_RAFT_ADDR", "::1")],
            None,
            Expected::Ok(|c| {
                c.http.listen_addr.ip().is_unspecified()
                    && raft(c).listen_addr == "[::1]:10082".parse().expect("literal address")
                    && raft(c).peers[&1] == "[::1]:10082"
            }),
        );
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

    #[test]
    fn audit() {
        check(
            &[("KUBOARD_AUDIT_POLICY", "strict")],
            None,
            Expected::Ok(|c| c.audit.policy == AuditPolicy::Strict),
        );
        check(
            &[("KUBOARD_AUDIT_POLICY", "Buffered")],
            None,
            Expected::Ok(|c| c.audit.policy == AuditPolicy::Buffered),
        );
        check(
            &[("KUBOARD_AUDIT_POLICY", "strict"), ("KUBOARD_DISABLE_AUDIT", "true")],
            None,
            Expected::Ok(|c| c.audit.policy == AuditPolicy::Disabled),
        );
        check(
            &[("KUBOARD_AUDIT_POLICY", "sometimes")],
            None,
            Expected::Err(r#"KUBOARD_AUDIT_POLICY="sometimes": expected one of ignore-errors, buffered, strict"#),
        );
        check(
            &[("KUBOARD_DISABLE_AUDIT", "maybe")],
            None,
            Expected::Err(r#"KUBOARD_DISABLE_AUDIT="maybe": expected true or false"#),
        );
        check(
            &[("KUBOARD_AUDIT_READS", "true")],
            None,
            Expected::Ok(|c| c.audit.audit_reads && c.audit.local_max_bytes == DEFAULT_AUDIT_LOCAL_MAX_BYTES),
        );
        check(&[], None, Expected::Ok(|c| !c.audit.audit_reads));
        check(
            &[("KUBOARD_AUDIT_READS", "sometimes")],
            None,
            Expected::Err(r#"KUBOARD_AUDIT_READS="sometimes": expected true or false"#),
        );
        check(
            &[("KUBOARD_AUDIT_LOCAL_MAX_BYTES", "1048576")],
            None,
            Expected::Ok(|c| c.audit.local_max_bytes == 1_048_576),
        );
        check(
            &[("KUBOARD_AUDIT_LOCAL_MAX_BYTES", "10")],
            None,
            Expected::Err(
                r#"KUBOARD_AUDIT_LOCAL_MAX_BYTES="10": expected a number of bytes between 65536 and 1099511627776"#,
            ),
        );
        check(
            &[("KUBOARD_QUEST_DB_URI", "mysql://user:secret@db/x")],
            None,
            Expected::Err("KUBOARD_QUEST_DB_URI=<redacted>: expected a URI like postgresql://user:pass@host:8812/qdb"),
        );
    }

    #[test]
    fn tls_needs_both_files() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, "pem").expect("write test file");
        let cert = cert.to_str().expect("utf-8 path").to_string();
        let raw = RawSettings::from_env_pairs(&[("KUBOARD_TLS_CERT", &cert)]);
        let error = parse(&raw, None).expect_err("a certificate without a key is refused");
        assert_eq!(
            error.to_string(),
            format!("KUBOARD_TLS_CERT={cert:?}: expected KUBOARD_TLS_KEY to be set too (both or neither)")
        );
        let raw = RawSettings::from_env_pairs(&[("KUBOARD_TLS_CERT", &cert), ("KUBOARD_TLS_KEY", "/nonexistent/key")]);
        let error = parse(&raw, None).expect_err("a missing key file is refused");
        assert!(error
            .to_string()
            .starts_with(r#"KUBOARD_TLS_KEY="/nonexistent/key": expected a readable PEM file"#));
        let raw = RawSettings::from_env_pairs(&[("KUBOARD_TLS_CERT", &cert), ("KUBOARD_TLS_KEY", &cert)]);
        assert!(parse(&raw, None).expect("both files given").http.tls.is_some());
    }

    #[test]
    fn admin_password_accepts_both_spellings() {
        check(
            &[("KUBOARD_ADMIN_DERAULT_PASSWORD", "FromKuboard1")],
            None,
            Expected::Ok(|c| c.auth.admin_default_password.expose() == "FromKuboard1"),
        );
        check(
            &[("KUBOARD_ADMIN_DEFAULT_PASSWORD", "Corrected1")],
            None,
            Expected::Ok(|c| c.auth.admin_default_password.expose() == "Corrected1"),
        );
        check(
            &[
                ("KUBOARD_ADMIN_DERAULT_PASSWORD", "one"),
                ("KUBOARD_ADMIN_DEFAULT_PASSWORD", "two"),
            ],
            None,
            Expected::Err(
                "KUBOARD_ADMIN_DEFAULT_PASSWORD=<redacted>: expected the same value as KUBOARD_ADMIN_DERAULT_PASSWORD \
                 when both are set",
            ),
        );
        check(
            &[("KUBOARD_SESSION_TTL_SECONDS", "10")],
            None,
            Expected::Err(r#"KUBOARD_SESSION_TTL_SECONDS="10": expected seconds between 60 and 2592000"#),
        );
    }

    #[test]
    fn log_levels() {
        for (given, filter) in [
            ("warning", "warn,openraft=error"),
            ("fatal", "error"),
            ("panic", "error"),
            ("DEBUG", "debug"),
        ] {
            let raw = RawSettings::from_env_pairs(&[("KUBOARD_SERVER_LOGRUS_LEVEL", given)]);
            assert_eq!(parse(&raw, None).expect("valid level").log.filter, filter, "{given}");
        }
        check(
            &[("KUBOARD_SERVER_LOGRUS_LEVEL", "loud")],
            None,
            Expected::Err(
                r#"KUBOARD_SERVER_LOGRUS_LEVEL="loud": expected one of trace, debug, info, warn, warning, error, fatal, panic"#,
            ),
        );
        check(
            &[("RUST_LOG", "info,kuboard=debug")],
            None,
            Expected::Ok(|c| c.log.filter == "info,kuboard=debug"),
        );
        check(
            &[("RUST_LOG", "info,kuboard=loud")],
            None,
            Expected::Err(
                r#"RUST_LOG="info,kuboard=loud": expected a tracing filter, e.g. info or info,kuboard=debug"#,
            ),
        );
        check(
            &[("RUST_LOG", "trace"), ("KUBOARD_SERVER_LOGRUS_LEVEL", "error")],
            None,
            Expected::Ok(|c| c.log.filter == "error"),
        );
    }

    #[test]
    fn endpoints_and_etcd() {
        check(
            &[("KUBOARD_ENDPOINT", "kuboard.example")],
            None,
            Expected::Err(r#"KUBOARD_ENDPOINT="kuboard.example": expected a URL starting with http:// or https://"#),
        );
        check(
            &[("KUBOARD_ENDPOINT", "https://kuboard.example/")],
            None,
            Expected::Ok(|c| c.http.endpoint.as_deref() == Some("https://kuboard.example")),
        );
        check(
            &[("KUBOARD_AGENT_ENDPOINT", "10.0.0.1:10081,10.0.0.2")],
            None,
            Expected::Err(
                r#"KUBOARD_AGENT_ENDPOINT="10.0.0.1:10081,10.0.0.2": expected comma-separated host:port entries, e.g. 10.0.0.1:10081,10.0.0.2:10081"#,
            ),
        );
        check(
            &[("KUBOARD_ETCD_ENDPOINTS", "etcd-0:2379,http://etcd-1:2379")],
            None,
            Expected::Ok(|c| match &c.store {
                StoreSelection::Etcd(etcd) => {
                    etcd.endpoints == ["http://etcd-0:2379", "http://etcd-1:2379"] && etcd.prefix == "/kuboard/"
                }
                StoreSelection::Raft(_) => false,
            }),
        );
    }

    #[test]
    fn etcd_api() {
        fn api(config: &ServeConfig) -> EtcdApiSettings {
            config.etcd_api.clone().expect("the etcd API is configured")
        }
        check(&[], None, Expected::Ok(|c| c.etcd_api.is_none()));
        check(
            &[("KUBOARD_ETCD_API_PORT", "2379")],
            None,
            Expected::Ok(|c| {
                api(c).listen_addr == "127.0.0.1:2379".parse().expect("literal address") && api(c).tls.is_none()
            }),
        );
        check(
            &[("KUBOARD_ETCD_API_PORT", "2379"), ("KUBOARD_ETCD_API_ADDR", "0.0.0.0")],
            None,
            Expected::Ok(|c| api(c).listen_addr == "0.0.0.0:2379".parse().expect("literal address")),
        );
        for (env, line) in [
            (
                &[("KUBOARD_ETCD_API_PORT", "etcd")][..],
                r#"KUBOARD_ETCD_API_PORT="etcd": expected a TCP port number 1-65535"#,
            ),
            (
                &[
                    ("KUBOARD_ETCD_API_PORT", "2379"),
                    ("KUBOARD_ETCD_API_ADDR", "localhost"),
                ],
                r#"KUBOARD_ETCD_API_ADDR="localhost": expected an IP address to bind the etcd v3 API, e.g. 127.0.0.1 or 0.0.0.0"#,
            ),
            (
                &[("KUBOARD_ETCD_API_ADDR", "0.0.0.0")],
                r#"KUBOARD_ETCD_API_ADDR="0.0.0.0": expected KUBOARD_ETCD_API_PORT to be set too (the etcd v3 API is served only on that port)"#,
            ),
            (
                &[("KUBOARD_ETCD_API_CLIENT_CA", "/etc/ca.pem")],
                r#"KUBOARD_ETCD_API_CLIENT_CA="/etc/ca.pem": expected KUBOARD_ETCD_API_PORT to be set too (the etcd v3 API is served only on that port)"#,
            ),
            (
                &[
                    ("KUBOARD_ETCD_API_PORT", "2379"),
                    ("KUBOARD_ETCD_ENDPOINTS", "etcd-0:2379"),
                ],
                "KUBOARD_ETCD_API_PORT=\"2379\": expected it unset when KUBOARD_ETCD_ENDPOINTS selects an external \
                 etcd: only the embedded store serves the etcd v3 API; point etcd clients at the external etcd itself",
            ),
            (
                &[("KUBOARD_ETCD_API_PORT", "8080"), ("KUBOARD_SERVER_PORT", "8080")],
                r#"KUBOARD_ETCD_API_PORT="8080": expected a port different from the web port and the Raft peer port"#,
            ),
            (
                &[("KUBOARD_ETCD_API_PORT", "10082")],
                r#"KUBOARD_ETCD_API_PORT="10082": expected a port different from the web port and the Raft peer port"#,
            ),
            (
                &[
                    ("KUBOARD_ETCD_API_PORT", "2379"),
                    ("KUBOARD_ETCD_API_CERT", "/etc/api.pem"),
                ],
                r#"KUBOARD_ETCD_API_CERT="/etc/api.pem": expected KUBOARD_ETCD_API_KEY to be set too (both or neither)"#,
            ),
            (
                &[
                    ("KUBOARD_ETCD_API_PORT", "2379"),
                    ("KUBOARD_ETCD_API_KEY", "/etc/api-key.pem"),
                ],
                r#"KUBOARD_ETCD_API_KEY="/etc/api-key.pem": expected KUBOARD_ETCD_API_CERT to be set too (both or neither)"#,
            ),
            (
                &[
                    ("KUBOARD_ETCD_API_PORT", "2379"),
                    ("KUBOARD_ETCD_API_CLIENT_CA", "/etc/ca.pem"),
                ],
                "KUBOARD_ETCD_API_CLIENT_CA=\"/etc/ca.pem\": expected KUBOARD_ETCD_API_CERT and KUBOARD_ETCD_API_KEY \
                 to be set too (client certificates are checked only over TLS)",
            ),
        ] {
            let raw = RawSettings::from_env_pairs(env);
            let error = parse(&raw, None).expect_err("the settings are refused");
            assert_eq!(error.to_string(), line, "env {env:?}");
        }
    }

    /// The etcd API's TLS files are read at start; a bad one stops it naming the variable and file.
    #[test]
    fn etcd_api_tls_files_are_checked_at_start() {
        use rcgen::{CertificateParams, KeyPair};
        let dir = tempfile::tempdir().expect("temporary directory");
        let write = |name: &str, text: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write test file");
            path.display().to_string()
        };
        let key = KeyPair::generate().expect("generate a key");
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .expect("certificate parameters")
            .self_signed(&key)
            .expect("self-sign");
        let cert_path = write("api.pem", cert.pem());
        let key_path = write("api-key.pem", key.serialize_pem());
        let other_key_path = write(
            "other-key.pem",
            KeyPair::generate().expect("generate a key").serialize_pem(),
        );
        let missing = dir.path().join("missing.pem").display().to_string();
        let settings = |cert: &str, key: &str, ca: Option<&str>| {
            let mut env = vec![
                ("KUBOARD_ETCD_API_PORT", "2379".to_string()),
                ("KUBOARD_ETCD_API_CERT", cert.to_string()),
                ("KUBOARD_ETCD_API_KEY", key.to_string()),
            ];
            if let Some(ca) = ca {
                env.push(("KUBOARD_ETCD_API_CLIENT_CA", ca.to_string()));
            }
            let pairs: Vec<(&str, &str)> = env.iter().map(|(name, value)| (*name, value.as_str())).collect();
            parse(&RawSettings::from_env_pairs(&pairs), None)
        };

        let config = settings(&cert_path, &key_path, Some(&cert_path)).expect("a matching pair and a CA");
        let tls = config.etcd_api.and_then(|api| api.tls).expect("TLS is configured");
        assert_eq!(tls.client_ca_path.as_deref(), Some(Path::new(&cert_path)));
        assert!(settings(&cert_path, &key_path, None)
            .expect("TLS without client certificates")
            .etcd_api
            .and_then(|api| api.tls)
            .is_some_and(|tls| tls.client_ca_path.is_none()));

        for (cert, key, ca, starts_with) in [
            (
                missing.as_str(),
                key_path.as_str(),
                None,
                format!("KUBOARD_ETCD_API_CERT={missing:?}: expected a PEM certificate file that can be read"),
            ),
            (
                cert_path.as_str(),
                cert_path.as_str(),
                None,
                format!("KUBOARD_ETCD_API_KEY={cert_path:?}: expected a PEM private key file: no private key found"),
            ),
            (
                cert_path.as_str(),
                other_key_path.as_str(),
                None,
                format!(
                    "KUBOARD_ETCD_API_KEY={other_key_path:?}: expected a PEM private key matching the certificate \
                     {cert_path:?}"
                ),
            ),
            (
                cert_path.as_str(),
                key_path.as_str(),
                Some(missing.as_str()),
                format!("KUBOARD_ETCD_API_CLIENT_CA={missing:?}: expected a PEM certificate file that can be read"),
            ),
        ] {
            let error = settings(cert, key, ca).expect_err("a bad file is refused").to_string();
            assert!(
                error.starts_with(&starts_with),
                "{error}\nexpected to start with {starts_with}"
            );
        }
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let raw = RawSettings::from_env_pairs(&[
            ("KUBOARD_ADMIN_DEFAULT_PASSWORD", "AdminSecretValue"),
            ("KUBOARD_SSO_CLIENT_SECRET", "SsoSecretValue-long-enough"),
            ("KUBOARD_CLUSTER_SECRET", "ClusterSecretValue"),
            ("KUBOARD_QUEST_DB_URI", "postgresql://user:DbSecretValue@db:8812/qdb"),
        ]);
        let debug = format!("{:?}", parse(&raw, None).expect("valid settings"));
        for secret in [
            "AdminSecretValue",
            "SsoSecretValue",
            "ClusterSecretValue",
            "DbSecretValue",
        ] {
            assert!(!debug.contains(secret), "{secret} leaked into {debug}");
        }
    }

    #[test]
    fn data_dir_must_be_writable() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let nested = dir.path().join("a/b");
        check_data_dir("KUBOARD_DATA_DIR", &nested).expect("a creatable directory is accepted");
        assert!(nested.is_dir());
        assert_eq!(
            std::fs::read_dir(&nested).expect("list directory").count(),
            0,
            "the probe file is removed"
        );

        // A path below a regular file can never be created, even by root.
        let file = dir.path().join("file");
        std::fs::write(&file, "x").expect("write test file");
        let error = check_data_dir("KUBOARD_DATA_DIR", &file.join("data")).expect_err("not creatable");
        let line = error.to_string();
        assert!(
            line.starts_with(&format!(
                "KUBOARD_DATA_DIR={:?}: expected a directory that can be created",
                file.join("data").display().to_string()
            )),
            "{line}"
        );
    }

    #[test]
    fn etcd_settings_are_checked_at_start() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let missing = dir.path().join("missing.pem").display().to_string();
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
        )
        .expect("write test file");
        let garbage = garbage.display().to_string();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").expect("write test file");
        let empty = empty.display().to_string();

        let error = parse(
            &RawSettings::from_env_pairs(&[
                ("KUBOARD_ETCD_ENDPOINTS", "etcd-0:2379"),
                ("KUBOARD_ETCD_CACERT", &missing),
            ]),
            None,
        )
        .expect_err("a missing CA file is refused")
        .to_string();
        assert!(
            error.starts_with(&format!(
                "KUBOARD_ETCD_CACERT={missing:?}: expected a PEM certificate file that can be read"
            )),
            "{error}"
        );
        for (file, reason) in [(&garbage, "not valid PEM"), (&empty, "holds no certificate")] {
            let error = parse(
                &RawSettings::from_env_pairs(&[
                    ("KUBOARD_ETCD_ENDPOINTS", "etcd-0:2379"),
                    ("KUBOARD_ETCD_CACERT", file),
                ]),
                None,
            )
            .expect_err("a bad CA file is refused")
            .to_string();
            assert!(error.starts_with(&format!("KUBOARD_ETCD_CACERT={file:?}: ")), "{error}");
            assert!(error.contains(reason), "{error}");
        }
        check(
            &[("KUBOARD_ETCD_ENDPOINTS", "https://etcd-0:2379")],
            None,
            Expected::Err(
                "KUBOARD_ETCD_CACERT is not set: expected the CA certificate that signed the etcd server certificates, \
                 as KUBOARD_ETCD_ENDPOINTS uses https",
            ),
        );
        check(
            &[
                ("KUBOARD_ETCD_ENDPOINTS", "etcd-0:2379"),
                ("KUBOARD_ETCD_USERNAME", "kuboard"),
            ],
            None,
            Expected::Err(
                r#"KUBOARD_ETCD_USERNAME="kuboard": expected KUBOARD_ETCD_PASSWORD to be set too (an etcd user needs its password)"#,
            ),
        );
        check(
            &[("KUBOARD_ETCD_ENDPOINTS", "etcd-0:2379"), ("KUBOARD_ETCD_PASSWORD", "hunter2-secret")],
            None,
            Expected::Err(
                "KUBOARD_ETCD_PASSWORD=<redacted>: expected KUBOARD_ETCD_USERNAME to be set too (a password needs its etcd user)",
            ),
        );
        check(
            &[
                ("KUBOARD_ETCD_ENDPOINTS", "etcd-0:2379"),
                ("KUBOARD_ETCD_CERT", "/nonexistent/client.pem"),
            ],
            None,
            Expected::Err(
                r#"KUBOARD_ETCD_CERT="/nonexistent/client.pem": expected KUBOARD_ETCD_KEY to be set too (a client certificate needs its key)"#,
            ),
        );
    }
}
