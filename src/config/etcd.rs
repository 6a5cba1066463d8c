//! The external etcd (`KUBOARD_ETCD_*`): endpoints, TLS files checked at start, user and password,
//! key prefix.

use std::path::PathBuf;

use crate::config::reader::Reader;
use crate::config::values::{check_pem_file, parse_url, ConfigError, PemKind, Secret};

pub const DEFAULT_ETCD_PREFIX: &str = "/kuboard/";

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

pub(super) fn parse_etcd(reader: &Reader<'_>, label: &str, value: &str) -> Result<EtcdConfig, ConfigError> {
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
    // Credentials written into an endpoint (`http://user:password@host:2379`) would be kept in the
    // settings and echoed by every message that names the endpoints; etcd clients take them from
    // the user and password settings only, so they are refused without showing the value.
    if value.contains('@') {
        return Err(ConfigError::bad_secret(
            label,
            "expected endpoints without user or password (user@host): set KUBOARD_ETCD_USERNAME and \
             KUBOARD_ETCD_PASSWORD instead",
        ));
    }
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

#[cfg(test)]
mod tests {
    use crate::cli::RawSettings;
    use crate::config::parse;
    use crate::config::test_support::{check, Expected};
    use crate::config::StoreSelection;

    #[test]
    fn endpoints_and_prefix() {
        fn etcd(config: &crate::config::ServeConfig) -> &super::EtcdConfig {
            match &config.store {
                StoreSelection::Etcd(etcd) => etcd,
                StoreSelection::Raft(_) => panic!("expected the etcd backend"),
            }
        }
        for (env, expected) in [
            (
                &[("KUBOARD_ETCD_ENDPOINTS", "etcd-0:2379,http://etcd-1:2379")][..],
                Expected::Ok(|c| {
                    etcd(c).endpoints == ["http://etcd-0:2379", "http://etcd-1:2379"] && etcd(c).prefix == "/kuboard/"
                }),
            ),
            (
                &[
                    ("KUBOARD_ETCD_ENDPOINTS", "etcd-0:2379"),
                    ("KUBOARD_ETCD_PREFIX", "/k/"),
                ],
                Expected::Ok(|c| etcd(c).prefix == "/k/"),
            ),
            (
                &[
                    ("KUBOARD_ETCD_ENDPOINTS", "etcd-0:2379"),
                    ("KUBOARD_ETCD_PREFIX", "/a b/"),
                ],
                Expected::Err(r#"KUBOARD_ETCD_PREFIX="/a b/": expected a key prefix without spaces, e.g. /kuboard/"#),
            ),
            (
                &[("KUBOARD_ETCD_ENDPOINTS", "etcd-0:2379,")],
                Expected::Err(
                    r#"KUBOARD_ETCD_ENDPOINTS="etcd-0:2379,": expected comma-separated etcd endpoints, e.g. https://etcd-0:2379,etcd-1:2379"#,
                ),
            ),
            (
                &[
                    ("KUBOARD_ETCD_ENDPOINTS", "etcd-0:2379"),
                    ("KUBOARD_RAFT_PEERS", "1=a:1"),
                ],
                Expected::Err(
                    r#"KUBOARD_RAFT_PEERS="1=a:1": expected KUBOARD_RAFT_PEERS unset when KUBOARD_ETCD_ENDPOINTS selects an external etcd"#,
                ),
            ),
            (
                &[
                    ("KUBOARD_ETCD_ENDPOINTS", "etcd-0:2379"),
                    ("KUBOARD_ETCD_USERNAME", "kuboard"),
                    ("KUBOARD_ETCD_PASSWORD", "pw"),
                ],
                Expected::Ok(|c| {
                    etcd(c).username.as_deref() == Some("kuboard")
                        && etcd(c).password.as_ref().map(|password| password.expose()) == Some("pw")
                }),
            ),
        ] {
            check(env, None, expected);
        }
    }

    #[test]
    fn https_and_tls_files_go_together() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let key = rcgen::KeyPair::generate().expect("generate a key");
        let cert = rcgen::CertificateParams::new(vec!["etcd-0".to_string()])
            .expect("certificate parameters")
            .self_signed(&key)
            .expect("self-sign");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, cert.pem()).expect("write test file");
        let ca = ca.display().to_string();
        let config = parse(
            &RawSettings::from_env_pairs(&[("KUBOARD_ETCD_ENDPOINTS", "etcd-0:2379"), ("KUBOARD_ETCD_CACERT", &ca)]),
            None,
        )
        .expect("a bare endpoint with a CA means https");
        match config.store {
            StoreSelection::Etcd(etcd) => assert_eq!(etcd.endpoints, ["https://etcd-0:2379"]),
            StoreSelection::Raft(_) => panic!("expected the etcd backend"),
        }
        let error = parse(
            &RawSettings::from_env_pairs(&[
                ("KUBOARD_ETCD_ENDPOINTS", "http://etcd-0:2379"),
                ("KUBOARD_ETCD_CACERT", &ca),
            ]),
            None,
        )
        .expect_err("http with a CA is refused");
        assert_eq!(
            error.to_string(),
            "KUBOARD_ETCD_ENDPOINTS=\"http://etcd-0:2379\": expected https:// endpoints (or bare host:port) when \
             KUBOARD_ETCD_CACERT or KUBOARD_ETCD_CERT is set"
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
