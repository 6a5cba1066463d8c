//! The web listener: `KUBOARD_SERVER_ADDR`, `KUBOARD_SERVER_PORT`, `KUBOARD_ENDPOINT`, the TLS
//! files `KUBOARD_TLS_CERT` / `KUBOARD_TLS_KEY`, and the HTTPS port beside the web port
//! `KUBOARD_SERVER_HTTPS_PORT` (default 443, `off` to turn it off).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use crate::config::reader::Reader;
use crate::config::values::{parse_url, ConfigError};

pub const DEFAULT_SERVER_PORT: u16 = 80;
pub const DEFAULT_HTTPS_PORT: u16 = 443;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    pub listen_addr: SocketAddr,
    /// Public URL of the service (the load balancer), when given.
    pub endpoint: Option<String>,
    pub tls: Option<TlsConfig>,
    /// The HTTPS listener beside the web port; `None` when `KUBOARD_SERVER_HTTPS_PORT=off`.
    pub https: Option<HttpsListen>,
}

/// Where the HTTPS port listens (same IP as the web port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpsListen {
    pub listen_addr: SocketAddr,
    /// Set by the operator: failing to bind it stops the start. The default port (443) that
    /// cannot be bound (taken, or no privilege) only turns HTTPS off with a warning.
    pub explicit: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

/// What a bind address must look like, for every listener that takes one.
pub(super) const BIND_IP_EXPECTED: &str = "expected an IP address to bind, e.g. 0.0.0.0 or ::";

pub(super) fn parse_http(reader: &Reader<'_>) -> Result<HttpConfig, ConfigError> {
    let bind_ip = match reader.get("KUBOARD_SERVER_ADDR") {
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        Some((label, value)) => value
            .trim()
            .parse::<IpAddr>()
            .map_err(|_| ConfigError::bad(label, value, BIND_IP_EXPECTED))?,
    };
    let server_port = reader.port("KUBOARD_SERVER_PORT")?.unwrap_or(DEFAULT_SERVER_PORT);
    let endpoint = match reader.get("KUBOARD_ENDPOINT") {
        None => None,
        Some((label, value)) => Some(parse_url(label, value, &["http://", "https://"])?),
    };
    let tls = parse_tls(reader)?;
    let https = match reader.get("KUBOARD_SERVER_HTTPS_PORT") {
        None => Some(HttpsListen {
            listen_addr: SocketAddr::new(bind_ip, DEFAULT_HTTPS_PORT),
            explicit: false,
        }),
        Some((_, value)) if matches!(value.trim().to_ascii_lowercase().as_str(), "off" | "false" | "no") => None,
        Some((label, value)) => {
            let port = reader
                .port("KUBOARD_SERVER_HTTPS_PORT")?
                .ok_or_else(|| ConfigError::bad(label, value, "expected a TCP port number 1-65535 or off"))?;
            if port == server_port {
                return Err(ConfigError::bad(
                    label,
                    value,
                    "expected a port other than KUBOARD_SERVER_PORT (or off)",
                ));
            }
            Some(HttpsListen {
                listen_addr: SocketAddr::new(bind_ip, port),
                explicit: true,
            })
        }
    };
    // The default HTTPS port never collides with a web port moved to 443: it is then off.
    let https = https.filter(|https| https.explicit || https.listen_addr.port() != server_port);
    Ok(HttpConfig {
        listen_addr: SocketAddr::new(bind_ip, server_port),
        endpoint,
        tls,
        https,
    })
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

#[cfg(test)]
mod tests {
    use crate::cli::RawSettings;
    use crate::config::parse;
    use crate::config::test_support::{check, Expected};

    #[test]
    fn listener() {
        for (env, expected) in [
            (
                &[("KUBOARD_SERVER_PORT", "8080")][..],
                Expected::Ok(|c| c.http.listen_addr.port() == 8080),
            ),
            (
                &[("KUBOARD_SERVER_ADDR", "::")],
                Expected::Ok(|c| c.http.listen_addr == "[::]:80".parse().expect("literal address")),
            ),
            (
                &[("KUBOARD_SERVER_PORT", "abc")],
                Expected::Err(r#"KUBOARD_SERVER_PORT="abc": expected a TCP port number 1-65535"#),
            ),
            (
                &[("KUBOARD_SERVER_PORT", "0")],
                Expected::Err(r#"KUBOARD_SERVER_PORT="0": expected a TCP port number 1-65535"#),
            ),
            (
                &[("KUBOARD_SERVER_ADDR", "localhost")],
                Expected::Err(r#"KUBOARD_SERVER_ADDR="localhost": expected an IP address to bind, e.g. 0.0.0.0 or ::"#),
            ),
            (
                &[("KUBOARD_ENDPOINT", "kuboard.example")],
                Expected::Err(
                    r#"KUBOARD_ENDPOINT="kuboard.example": expected a URL starting with http:// or https://"#,
                ),
            ),
            (
                &[("KUBOARD_ENDPOINT", "https://kuboard.example/")],
                Expected::Ok(|c| c.http.endpoint.as_deref() == Some("https://kuboard.example")),
            ),
            (
                &[],
                Expected::Ok(|c| {
                    c.http.https
                        == Some(crate::config::http::HttpsListen {
                            listen_addr: "0.0.0.0:443".parse().expect("literal address"),
                            explicit: false,
                        })
                }),
            ),
            (
                &[
                    ("KUBOARD_SERVER_HTTPS_PORT", "8443"),
                    ("KUBOARD_SERVER_ADDR", "127.0.0.1"),
                ],
                Expected::Ok(|c| {
                    c.http
                        .https
                        .map(|https| (https.listen_addr.to_string(), https.explicit))
                        == Some(("127.0.0.1:8443".to_string(), true))
                }),
            ),
            (
                &[("KUBOARD_SERVER_HTTPS_PORT", "off")],
                Expected::Ok(|c| c.http.https.is_none()),
            ),
            (
                &[("KUBOARD_SERVER_PORT", "443")],
                Expected::Ok(|c| c.http.https.is_none()),
            ),
            (
                &[("KUBOARD_SERVER_HTTPS_PORT", "80")],
                Expected::Err(
                    r#"KUBOARD_SERVER_HTTPS_PORT="80": expected a port other than KUBOARD_SERVER_PORT (or off)"#,
                ),
            ),
            (
                &[("KUBOARD_SERVER_HTTPS_PORT", "https")],
                Expected::Err(r#"KUBOARD_SERVER_HTTPS_PORT="https": expected a TCP port number 1-65535"#),
            ),
            (
                &[("KUBOARD_TLS_KEY", "/etc/key.pem")],
                Expected::Err(
                    r#"KUBOARD_TLS_KEY="/etc/key.pem": expected KUBOARD_TLS_CERT to be set too (both or neither)"#,
                ),
            ),
        ] {
            check(env, None, expected);
        }
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
}
