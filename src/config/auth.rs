//! Users and sessions: the first-start admin password, session lifetimes, trusted proxies, login
//! throttling, and `KUBOARD_SSO_CLIENT_SECRET` (which also keys the encryption of cluster
//! credentials, so every replica of a group must share it).

use std::net::IpAddr;
use std::time::Duration;

use crate::config::reader::Reader;
use crate::config::store::{StoreSelection, MIN_CLUSTER_SECRET_LEN};
use crate::config::values::{ConfigError, Secret};

pub const DEFAULT_ADMIN_PASSWORD: &str = "Kuboard123";
pub const DEFAULT_SESSION_TTL_SECONDS: u64 = 12 * 60 * 60;
/// "Stay logged in" as Kuboard offers it: seven days.
pub const DEFAULT_SESSION_REMEMBER_TTL_SECONDS: u64 = 7 * 24 * 60 * 60;
pub const DEFAULT_LOGIN_FAILURE_WINDOW_SECONDS: u64 = 5 * 60;
pub const DEFAULT_LOGIN_MAX_FAILURES: u64 = 10;
/// Higher than per user: many users may share one address behind a NAT or proxy.
pub const DEFAULT_LOGIN_MAX_FAILURES_PER_ADDRESS: u64 = 50;

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

pub(super) fn parse_auth(reader: &Reader<'_>, store: &StoreSelection) -> Result<AuthConfig, ConfigError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::{check, Expected};

    #[test]
    fn networks() {
        fn check(input: &str, expected: Option<(&str, u8)>) {
            let expected = expected.map(|(address, prefix_len)| IpNetwork {
                address: address.parse().expect("literal address"),
                prefix_len,
            });
            assert_eq!(IpNetwork::parse(input), expected, "{input:?}");
        }
        check("10.0.0.0/8", Some(("10.0.0.0", 8)));
        check(" 10.1.2.3 ", Some(("10.1.2.3", 32)));
        check("::1", Some(("::1", 128)));
        check("fd00::/8", Some(("fd00::", 8)));
        check("0.0.0.0/0", Some(("0.0.0.0", 0)));
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "host",
            "10.0.0.0/",
            "10.0.0.0/x",
            "",
        ] {
            check(bad, None);
        }
    }

    #[test]
    fn network_membership() {
        let network = |text: &str| IpNetwork::parse(text).expect("literal network");
        let address = |text: &str| text.parse::<IpAddr>().expect("literal address");
        for (net, candidate, expected) in [
            ("10.0.0.0/8", "10.255.0.1", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("10.0.0.0/8", "::ffff:10.0.0.1", true),
            ("0.0.0.0/0", "192.0.2.1", true),
            ("::1", "::1", true),
            ("::1", "127.0.0.1", false),
            ("fd00::/8", "fd12::1", true),
            ("fd00::/8", "fe80::1", false),
        ] {
            assert_eq!(network(net).contains(address(candidate)), expected, "{net} {candidate}");
        }
    }

    #[test]
    fn sessions_proxies_and_throttling() {
        for (env, expected) in [
            (
                &[("KUBOARD_SESSION_TTL_SECONDS", "3600")][..],
                Expected::Ok(|c| {
                    c.auth.session_ttl == Duration::from_secs(3600)
                        && c.auth.remember_ttl == Duration::from_secs(DEFAULT_SESSION_REMEMBER_TTL_SECONDS)
                }),
            ),
            (
                &[("KUBOARD_SESSION_TTL_SECONDS", "10")],
                Expected::Err(r#"KUBOARD_SESSION_TTL_SECONDS="10": expected seconds between 60 and 2592000"#),
            ),
            (
                &[
                    ("KUBOARD_SESSION_TTL_SECONDS", "7200"),
                    ("KUBOARD_SESSION_REMEMBER_TTL_SECONDS", "3600"),
                ],
                Expected::Err(
                    r#"KUBOARD_SESSION_REMEMBER_TTL_SECONDS="3600": expected at least KUBOARD_SESSION_TTL_SECONDS (7200)"#,
                ),
            ),
            (
                &[("KUBOARD_TRUSTED_PROXIES", "10.0.0.0/8, ::1,")],
                Expected::Ok(|c| c.auth.trusted_proxies.len() == 2),
            ),
            (
                &[("KUBOARD_TRUSTED_PROXIES", "10.0.0.0/8,lb.example")],
                Expected::Err(
                    r#"KUBOARD_TRUSTED_PROXIES="10.0.0.0/8,lb.example": expected IP addresses or CIDR networks, comma-separated (10.0.0.0/8,::1)"#,
                ),
            ),
            (
                &[
                    ("KUBOARD_LOGIN_MAX_FAILURES", "3"),
                    ("KUBOARD_LOGIN_FAILURE_WINDOW_SECONDS", "60"),
                ],
                Expected::Ok(|c| {
                    c.auth.login_max_failures_per_user == 3
                        && c.auth.login_failure_window == Duration::from_secs(60)
                        && c.auth.login_max_failures_per_address == DEFAULT_LOGIN_MAX_FAILURES_PER_ADDRESS
                }),
            ),
            (
                &[("KUBOARD_LOGIN_MAX_FAILURES", "0")],
                Expected::Err(r#"KUBOARD_LOGIN_MAX_FAILURES="0": expected failed logins between 1 and 1000000"#),
            ),
            (
                &[("KUBOARD_LOGIN_MAX_FAILURES_PER_ADDRESS", "many")],
                Expected::Err(
                    r#"KUBOARD_LOGIN_MAX_FAILURES_PER_ADDRESS="many": expected failed logins between 1 and 1000000"#,
                ),
            ),
            (
                &[("KUBOARD_LOGIN_FAILURE_WINDOW_SECONDS", "5")],
                Expected::Err(r#"KUBOARD_LOGIN_FAILURE_WINDOW_SECONDS="5": expected seconds between 10 and 86400"#),
            ),
            (
                &[("KUBOARD_SSO_CLIENT_SECRET", "short")],
                Expected::Err("KUBOARD_SSO_CLIENT_SECRET=<redacted>: expected a secret of at least 16 characters"),
            ),
        ] {
            check(env, None, expected);
        }
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
    }
}
