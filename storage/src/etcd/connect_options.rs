//! Checking an [`EtcdStoreConfig`] and turning its files into etcd-client's TLS options.

use std::path::Path;

use etcd_client as etcd;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::config::{EtcdConnectError, EtcdStoreConfig};

/// Check the configuration and return the endpoints to dial.
pub(super) fn validate(config: &EtcdStoreConfig) -> Result<Vec<String>, EtcdConnectError> {
    let invalid = |message: String| Err(EtcdConnectError::InvalidConfig(message));
    let endpoints: Vec<String> = config
        .endpoints
        .iter()
        .map(|endpoint| endpoint.trim().to_string())
        .filter(|endpoint| !endpoint.is_empty())
        .collect();
    if endpoints.is_empty() {
        return invalid("no endpoint given".into());
    }
    for endpoint in &endpoints {
        if config.uses_tls() && endpoint.starts_with("http://") {
            return invalid(format!(
                "endpoint {endpoint} is plain http but TLS files are configured"
            ));
        }
        if !config.uses_tls() && endpoint.starts_with("https://") {
            return invalid(format!(
                "endpoint {endpoint} is https but no CA certificate is configured"
            ));
        }
    }
    if config.client_cert.is_some() != config.client_key.is_some() {
        return invalid("a client certificate and its key go together".into());
    }
    if config.username.is_some() != config.password.is_some() {
        return invalid("a user name and its password go together".into());
    }
    if config.connect_timeout.is_zero() || config.request_timeout.is_zero() {
        return invalid("timeouts must be above zero".into());
    }
    Ok(endpoints)
}

pub(super) fn tls_options(config: &EtcdStoreConfig) -> Result<etcd::TlsOptions, EtcdConnectError> {
    let mut tls = etcd::TlsOptions::new();
    if let Some(path) = &config.ca_cert {
        let pem = read_certificates(path, "CA certificate")?;
        tls = tls.ca_certificate(etcd::Certificate::from_pem(pem));
    }
    if let (Some(cert_path), Some(key_path)) = (&config.client_cert, &config.client_key) {
        let cert = read_certificates(cert_path, "client certificate")?;
        let key = read_file(key_path, "client key")?;
        if let Err(error) = PrivateKeyDer::from_pem_slice(&key) {
            return Err(EtcdConnectError::BadPem {
                what: "client key",
                path: key_path.clone(),
                reason: error.to_string(),
            });
        }
        tls = tls.identity(etcd::Identity::from_pem(cert, key));
    }
    Ok(tls)
}

fn read_file(path: &Path, what: &'static str) -> Result<Vec<u8>, EtcdConnectError> {
    std::fs::read(path).map_err(|source| EtcdConnectError::ReadFile {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Read a PEM file and check that it holds at least one well-formed certificate.
fn read_certificates(path: &Path, what: &'static str) -> Result<Vec<u8>, EtcdConnectError> {
    let pem = read_file(path, what)?;
    let bad = |reason: String| EtcdConnectError::BadPem {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let mut count = 0;
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        certificate.map_err(|error| bad(error.to_string()))?;
        count += 1;
    }
    if count == 0 {
        return Err(bad("no CERTIFICATE block found".into()));
    }
    Ok(pem)
}
