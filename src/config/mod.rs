//! The settings of `kuboard serve`, parsed once from [`RawSettings`] into typed structs and
//! validated as a whole. A bad value becomes one [`ConfigError`]: one line naming the setting, the
//! value and what is expected, and exit code 2.
//!
//! # Layout
//!
//! - [`reader`]: the settings as given, read by variable name (the flags of `kuboard serve` carry the
//!   same names) into ports, booleans and bounded numbers.
//! - [`values`]: the shared value shapes: [`Secret`], [`ConfigError`], URLs, `host:port` lists, PEM
//!   files.
//! - One file per part, each reading its own variables: [`http`] (the web listener), [`agent`],
//!   [`store`] (the embedded Raft group, or the external etcd of [`etcd`]), [`etcd_api`] (the etcd v3
//!   API of the embedded store), [`audit`], [`auth`] (users, sessions, login throttling), [`log`].
//! - This file: [`ServeConfig`], the data directory, and [`parse`], which reads the parts in a fixed
//!   order so that the first bad setting is the one reported.
//!
//! Architecture Invariant: the settings of `serve` are interpreted only here. `cli.rs` gathers the
//! raw values (flag or variable) into [`RawSettings`]; every other part gets its typed struct.
//! Every secret is a [`Secret`], whose `Debug` prints `<redacted>`, so no configuration type can
//! print one.

use std::path::{Path, PathBuf};

use crate::cli::RawSettings;

pub mod agent;
pub mod audit;
pub mod auth;
pub mod etcd;
pub mod etcd_api;
pub mod http;
pub mod log;
pub mod reader;
pub mod store;
pub mod values;

pub use agent::AgentConfig;
pub use audit::{AuditConfig, AuditPolicy, DEFAULT_AUDIT_LOCAL_MAX_BYTES};
pub use auth::{AuthConfig, IpNetwork, DEFAULT_ADMIN_PASSWORD};
pub use etcd::EtcdConfig;
pub use etcd_api::EtcdApiSettings;
pub use http::{HttpConfig, TlsConfig};
pub use log::LogConfig;
pub use store::{RaftConfig, StoreSelection};
pub(crate) use values::valid_host_port;
pub use values::{ConfigError, Secret};

use reader::Reader;

pub const DEFAULT_DATA_DIR: &str = "/data";

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

/// Reads the settings; `hostname` is this machine's host name (for deriving the Raft member id).
pub fn parse(raw: &RawSettings, hostname: Option<&str>) -> Result<ServeConfig, ConfigError> {
    let reader = Reader::new(raw);
    let http = http::parse_http(&reader)?;
    let agent = agent::parse_agent(&reader)?;
    let data_dir = parse_data_dir(&reader)?;
    let store = store::parse_store(&reader, http.listen_addr, hostname)?;
    let etcd_api = etcd_api::parse_etcd_api(&reader, &store, http.listen_addr.port())?;
    let audit = audit::parse_audit(&reader)?;
    let auth = auth::parse_auth(&reader, &store)?;
    let log = log::parse_log(&reader)?;
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

fn parse_data_dir(reader: &Reader<'_>) -> Result<PathBuf, ConfigError> {
    match reader.get("KUBOARD_DATA_DIR") {
        None => Ok(PathBuf::from(DEFAULT_DATA_DIR)),
        Some((label, value)) if value.trim().is_empty() => {
            Err(ConfigError::bad(label, value, "expected a directory path"))
        }
        Some((_, value)) => Ok(PathBuf::from(value)),
    }
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

/// The case helper every part's tests share: parse a set of variables and compare the result.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// What a case expects: a config satisfying a predicate, or exactly this error line.
    pub enum Expected {
        Ok(fn(&ServeConfig) -> bool),
        Err(&'static str),
    }

    pub fn check(env: &[(&str, &str)], hostname: Option<&str>, expected: Expected) {
        let raw = RawSettings::from_env_pairs(env);
        let result = parse(&raw, hostname);
        match (expected, result) {
            (Expected::Ok(predicate), Ok(config)) => assert!(predicate(&config), "env {env:?}: got {config:?}"),
            (Expected::Ok(_), Err(error)) => panic!("env {env:?}: unexpected error {error}"),
            (Expected::Err(line), Ok(config)) => panic!("env {env:?}: expected error {line:?}, got {config:?}"),
            (Expected::Err(line), Err(error)) => assert_eq!(error.to_string(), line, "env {env:?}"),
        }
    }

    pub fn raft(config: &ServeConfig) -> &RaftConfig {
        match &config.store {
            StoreSelection::Raft(raft) => raft,
            StoreSelection::Etcd(_) => panic!("expected the raft backend"),
        }
    }

    pub const SECRET: (&str, &str) = ("KUBOARD_CLUSTER_SECRET", "0123456789abcdef");
    pub const SSO_SECRET: (&str, &str) = ("KUBOARD_SSO_CLIENT_SECRET", "7e5514b1a1c70c779c7a32b9");
    pub const THREE_PEERS: (&str, &str) = (
        "KUBOARD_RAFT_PEERS",
        "1=kuboard-0:10082,2=kuboard-1:10082,3=kuboard-2:10082",
    );
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::test_support::{check, raft, Expected};
    use super::*;

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
                    && raft(c).election_timeout_ms == store::DEFAULT_RAFT_ELECTION_TIMEOUT_MS
                    && raft(c).snapshot_threshold == 10_000
                    && raft(c).compaction_retention == Some(Duration::from_secs(3600))
                    && c.audit.policy == AuditPolicy::IgnoreErrors
                    && c.auth.admin_default_password.expose() == "Kuboard123"
                    && c.auth.session_ttl == Duration::from_secs(43200)
                    && c.log.filter.starts_with("info")
            }),
        );
    }

    #[test]
    fn data_dir() {
        check(
            &[("KUBOARD_DATA_DIR", "/var/lib/kuboard")],
            None,
            Expected::Ok(|c| c.data_dir == Path::new("/var/lib/kuboard")),
        );
        check(
            &[("KUBOARD_DATA_DIR", "  ")],
            None,
            Expected::Err(r#"KUBOARD_DATA_DIR="  ": expected a directory path"#),
        );
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
    fn etcd_credentials_never_reach_debug_or_errors() {
        let secrets = ["EtcdUrlSecret", "EtcdPasswordSecret", "DbSecretValue"];
        for endpoints in [
            "http://root:EtcdUrlSecret@127.0.0.1:2379",
            "root:EtcdUrlSecret@127.0.0.1:2379",
            "http://127.0.0.1:2379,http://root:EtcdUrlSecret@127.0.0.1:2380",
            "http://root:EtcdUrlSecret@127.0.0.1:2379,not a url",
        ] {
            let raw = RawSettings::from_env_pairs(&[
                ("KUBOARD_ETCD_ENDPOINTS", endpoints),
                ("KUBOARD_ETCD_USERNAME", "root"),
                ("KUBOARD_ETCD_PASSWORD", "EtcdPasswordSecret"),
                ("KUBOARD_QUEST_DB_URI", "postgresql://user:DbSecretValue@db:8812/qdb"),
            ]);
            let shown = match parse(&raw, None) {
                Ok(config) => format!("{config:?}"),
                Err(error) => format!("{error} {error:?}"),
            };
            for secret in secrets {
                assert!(!shown.contains(secret), "{secret} leaked from {endpoints}: {shown}");
            }
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
}
