//! The etcd v3 API of the embedded store (`KUBOARD_ETCD_API_*`): off unless a port is given, and
//! then only with the embedded store; its TLS files are checked at start.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use crate::config::reader::Reader;
use crate::config::store::StoreSelection;
use crate::config::values::{check_key_matches_certificate, check_pem_file, ConfigError, PemKind};

/// The etcd v3 API is reachable from this host only unless `KUBOARD_ETCD_API_ADDR` says otherwise
/// (which needs client certificates: `KUBOARD_ETCD_API_CLIENT_CA`).
pub const DEFAULT_ETCD_API_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

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

/// The etcd v3 API settings: none unless `KUBOARD_ETCD_API_PORT` is set, and then only with the
/// embedded store (an external etcd already serves that API itself).
pub(super) fn parse_etcd_api(
    reader: &Reader<'_>,
    store: &StoreSelection,
    server_port: u16,
) -> Result<Option<EtcdApiSettings>, ConfigError> {
    const RELATED: [&str; 5] = [
        "KUBOARD_ETCD_API_ADDR",
        "KUBOARD_ETCD_API_INSECURE_BIND",
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
    // Whoever reaches the API can read and write every key, forged sessions included; etcd-style
    // users are not served. Beyond this host only clients with a certificate the configured CA
    // signed may reach it (on loopback every local process can: see docs/etcd-api.md).
    let verifies_clients = tls.as_ref().is_some_and(|tls| tls.client_ca_path.is_some());
    let insecure_bind = reader.bool("KUBOARD_ETCD_API_INSECURE_BIND")?.unwrap_or(false);
    // With KUBOARD_ETCD_API_INSECURE_BIND the server warns at start (server.rs, bind_etcd_api).
    if !bind_ip.is_loopback() && !verifies_clients && !insecure_bind {
        if let Some((label, value)) = reader.get("KUBOARD_ETCD_API_ADDR") {
            return Err(ConfigError::bad(
                label,
                value,
                "expected a loopback address (127.0.0.1, ::1) unless etcd clients must present certificates: \
                 set KUBOARD_ETCD_API_CERT, KUBOARD_ETCD_API_KEY and KUBOARD_ETCD_API_CLIENT_CA (any client \
                 reaching the etcd v3 API can read and write every key)",
            ));
        }
    }
    Ok(Some(EtcdApiSettings {
        listen_addr: SocketAddr::new(bind_ip, port),
        tls,
    }))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::cli::RawSettings;
    use crate::config::test_support::{check, Expected};
    use crate::config::{parse, ServeConfig};

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
            &[("KUBOARD_ETCD_API_PORT", "2379"), ("KUBOARD_ETCD_API_ADDR", "::1")],
            None,
            Expected::Ok(|c| api(c).listen_addr == "[::1]:2379".parse().expect("literal address")),
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

    /// A self-signed certificate for 127.0.0.1 and its key, written as `api.pem` and `api-key.pem`
    /// in `dir`; returns their paths.
    fn write_self_signed(dir: &Path) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("generate a key");
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .expect("certificate parameters")
            .self_signed(&key)
            .expect("self-sign");
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write test file");
            path.display().to_string()
        };
        (write("api.pem", cert.pem()), write("api-key.pem", key.serialize_pem()))
    }

    /// Any client reaching the etcd API can read and write every key, sessions included: beyond
    /// loopback it must verify client certificates.
    #[test]
    fn a_non_loopback_etcd_api_without_client_certificates_is_refused() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (cert_path, key_path) = write_self_signed(dir.path());
        let settings = |addr: &str, tls: bool, client_ca: bool| {
            let mut env = vec![("KUBOARD_ETCD_API_PORT", "2379"), ("KUBOARD_ETCD_API_ADDR", addr)];
            if tls {
                env.push(("KUBOARD_ETCD_API_CERT", cert_path.as_str()));
                env.push(("KUBOARD_ETCD_API_KEY", key_path.as_str()));
            }
            if client_ca {
                env.push(("KUBOARD_ETCD_API_CLIENT_CA", cert_path.as_str()));
            }
            parse(&RawSettings::from_env_pairs(&env), None)
        };
        for (addr, tls) in [("0.0.0.0", false), ("0.0.0.0", true), ("10.0.0.1", true), ("::", false)] {
            let error = settings(addr, tls, false)
                .expect_err("a reachable etcd API without client certificates is refused")
                .to_string();
            assert!(
                error.starts_with(&format!("KUBOARD_ETCD_API_ADDR={addr:?}: expected a loopback address")),
                "{addr} (TLS {tls}): {error}"
            );
            assert!(error.contains("KUBOARD_ETCD_API_CLIENT_CA"), "{error}");
        }
        for (addr, tls, client_ca) in [
            ("127.0.0.1", false, false),
            ("127.0.0.2", true, false),
            ("::1", false, false),
            ("0.0.0.0", true, true),
            ("10.0.0.1", true, true),
        ] {
            let config = settings(addr, tls, client_ca).unwrap_or_else(|error| panic!("{addr}: {error}"));
            let api = config.etcd_api.expect("the etcd API is configured");
            assert_eq!(api.listen_addr.ip(), addr.parse::<IpAddr>().expect("an address"));
        }
    }

    /// The explicit opt-out for isolated test networks (the chaos suite's namespaces) lets a plain
    /// non-loopback bind start; anything but a boolean is refused.
    #[test]
    fn an_insecure_bind_is_allowed_only_when_asked_for() {
        let settings = |insecure: &str| {
            parse(
                &RawSettings::from_env_pairs(&[
                    ("KUBOARD_ETCD_API_PORT", "2379"),
                    ("KUBOARD_ETCD_API_ADDR", "198.18.0.1"),
                    ("KUBOARD_ETCD_API_INSECURE_BIND", insecure),
                ]),
                None,
            )
        };
        let config = settings("true").expect("an insecure bind asked for");
        let api = config.etcd_api.expect("the etcd API is configured");
        assert_eq!(api.listen_addr, "198.18.0.1:2379".parse().expect("literal address"));
        assert!(api.tls.is_none());
        let refused = settings("false")
            .expect_err("an insecure bind not asked for")
            .to_string();
        assert!(
            refused.starts_with("KUBOARD_ETCD_API_ADDR=\"198.18.0.1\": expected a loopback address"),
            "{refused}"
        );
        let bad = settings("perhaps").expect_err("not a boolean").to_string();
        assert_eq!(
            bad,
            "KUBOARD_ETCD_API_INSECURE_BIND=\"perhaps\": expected true or false"
        );
    }

    /// The etcd API's TLS files are read at start; a bad one stops it naming the variable and file.
    #[test]
    fn etcd_api_tls_files_are_checked_at_start() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (cert_path, key_path) = write_self_signed(dir.path());
        let other_key_path = dir.path().join("other-key.pem");
        std::fs::write(
            &other_key_path,
            rcgen::KeyPair::generate().expect("generate a key").serialize_pem(),
        )
        .expect("write test file");
        let other_key_path = other_key_path.display().to_string();
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
}
