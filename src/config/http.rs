//! The web listener: `KUBOARD_SERVER_ADDR`, `KUBOARD_SERVER_PORT`, `KUBOARD_ENDPOINT` and the TLS
//! files `KUBOARD_TLS_CERT` / `KUBOARD_TLS_KEY`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use crate::config::reader::Reader;
use crate::config::values::{parse_url, ConfigError};

pub const DEFAULT_SERVER_PORT: u16 = 80;

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
    Ok(HttpConfig {
        listen_addr: SocketAddr::new(bind_ip, server_port),
        endpoint,
        tls,
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
