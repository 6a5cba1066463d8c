//! The value shapes shared by every part: [`Secret`], the one-line [`ConfigError`], ports, URLs,
//! `host:port` lists and the PEM files named by settings.

use std::fmt;

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
    pub(super) fn bad(label: &str, value: &str, expected: impl Into<String>) -> ConfigError {
        ConfigError {
            label: label.to_string(),
            shown: format!("={value:?}"),
            expected: expected.into(),
        }
    }

    pub(super) fn bad_secret(label: &str, expected: impl Into<String>) -> ConfigError {
        ConfigError {
            label: label.to_string(),
            shown: "=<redacted>".to_string(),
            expected: expected.into(),
        }
    }

    pub(super) fn unset(label: &str, expected: impl Into<String>) -> ConfigError {
        ConfigError {
            label: label.to_string(),
            shown: " is not set".to_string(),
            expected: expected.into(),
        }
    }
}

/// A TCP port number 1-65535.
pub(super) fn parse_port(text: &str) -> Option<u16> {
    text.trim().parse::<u16>().ok().filter(|port| *port != 0)
}

/// A URL with one of `schemes`, trimmed of a trailing `/`.
pub(super) fn parse_url(label: &str, value: &str, schemes: &[&str]) -> Result<String, ConfigError> {
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

pub(super) fn parse_host_port_list(label: &str, value: &str) -> Result<Vec<String>, ConfigError> {
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

/// Checks that the private key at `key_path` belongs to the first certificate at `cert_path` (both
/// already checked to parse), so that a mismatched pair stops the start instead of failing every
/// handshake later. The error names the key's setting.
pub(super) fn check_key_matches_certificate(
    key_label: &str,
    key_path: &str,
    cert_path: &str,
) -> Result<(), ConfigError> {
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

/// What a PEM file named by a setting must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PemKind {
    /// At least one certificate, and nothing malformed.
    Certificates,
    /// A private key (PKCS#8, PKCS#1 or SEC1).
    PrivateKey,
}

/// Reads a PEM file named by a setting and checks that it holds what it must. The error names the
/// setting and the file.
pub(super) fn check_pem_file(label: &str, path: &str, kind: PemKind) -> Result<(), ConfigError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        fn check(input: &str, expected: Option<u16>) {
            assert_eq!(parse_port(input), expected, "{input:?}");
        }
        check("1", Some(1));
        check(" 8080 ", Some(8080));
        check("65535", Some(65535));
        for bad in ["0", "65536", "-1", "", "http", "80a", "8 0"] {
            check(bad, None);
        }
    }

    #[test]
    fn host_ports() {
        fn check(input: &str, expected: bool) {
            assert_eq!(valid_host_port(input), expected, "{input:?}");
        }
        for good in ["kuboard-0:10082", "10.0.0.1:1", "[::1]:2379", "a_b.c-d:65535"] {
            check(good, true);
        }
        for bad in [
            "host",
            ":80",
            "host:",
            "host:0",
            "host:65536",
            "[::1:80",
            "[nothost]:80",
            "::1:80",
            "ho st:80",
            "host/x:80",
        ] {
            check(bad, false);
        }
    }

    #[test]
    fn urls() {
        fn check(input: &str, expected: Result<&str, &str>) {
            let got = parse_url("KUBOARD_ENDPOINT", input, &["http://", "https://"]);
            match expected {
                Ok(url) => assert_eq!(got, Ok(url.to_string()), "{input:?}"),
                Err(line) => assert_eq!(
                    got.map_err(|error| error.to_string()),
                    Err(line.to_string()),
                    "{input:?}"
                ),
            }
        }
        check("https://kuboard.example/", Ok("https://kuboard.example"));
        check(" http://10.0.0.1:8080 ", Ok("http://10.0.0.1:8080"));
        for bad in ["kuboard.example", "https://", "https:///x", "ftp://host", "https://a b"] {
            check(
                bad,
                Err(&format!(
                    "KUBOARD_ENDPOINT={bad:?}: expected a URL starting with http:// or https://"
                )),
            );
        }
    }

    #[test]
    fn host_port_lists() {
        fn check(input: &str, expected: Result<&[&str], ()>) {
            let got = parse_host_port_list("KUBOARD_AGENT_ENDPOINT", input);
            match expected {
                Ok(entries) => assert_eq!(got.expect("a valid list"), entries, "{input:?}"),
                Err(()) => assert_eq!(
                    got.expect_err("an invalid list").to_string(),
                    format!(
                        "KUBOARD_AGENT_ENDPOINT={input:?}: expected comma-separated host:port entries, e.g. \
                         10.0.0.1:10081,10.0.0.2:10081"
                    )
                ),
            }
        }
        check("a:1", Ok(&["a:1"]));
        check("a:1, b:2", Ok(&["a:1", "b:2"]));
        check("a:1,b", Err(()));
        check("a:1,,b:2", Err(()));
    }

    #[test]
    fn secret_debug_is_redacted() {
        let secret = Secret::new("hunter2-hunter2");
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert_eq!(secret.expose(), "hunter2-hunter2");
    }

    #[test]
    fn error_lines() {
        assert_eq!(
            ConfigError::bad("X", "v", "expected y").to_string(),
            r#"X="v": expected y"#
        );
        assert_eq!(
            ConfigError::bad_secret("X", "expected y").to_string(),
            "X=<redacted>: expected y"
        );
        assert_eq!(
            ConfigError::unset("X", "expected y").to_string(),
            "X is not set: expected y"
        );
    }
}
