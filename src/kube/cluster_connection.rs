//! [`ClusterConnection`]: what the balancer needs to reach one cluster, and the rustls client
//! configuration made from it.

use std::fmt;
use std::sync::Arc;

use http::HeaderValue;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;

use crate::clusters::cluster_registry::{ClusterCredentials, ClusterRecord};
use crate::kube::apiserver_url::{ApiserverUrl, UrlError};

/// A client certificate and its key, PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub certificate_pem: String,
    pub key_pem: String,
}

/// One cluster as the balancer reaches it. Fed by the cluster registry
/// ([`ClusterConnection::from_record`]); the secrets never reach a log (`Debug` is redacted).
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterConnection {
    pub name: String,
    /// In the administrator's order; the first is preferred until it fails.
    pub endpoints: Vec<ApiserverUrl>,
    /// Verifies the apiservers; required for `https` endpoints.
    pub ca_certificate_pem: Option<String>,
    /// Sent as `Authorization: Bearer`.
    pub token: Option<String>,
    /// Presented in the TLS handshake.
    pub client_identity: Option<ClientIdentity>,
    /// Reached through its agent's tunnel rather than dialled directly.
    pub via_agent: bool,
}

impl fmt::Debug for ClusterConnection {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ClusterConnection")
            .field("name", &self.name)
            .field(
                "endpoints",
                &self.endpoints.iter().map(ToString::to_string).collect::<Vec<_>>(),
            )
            .field("ca", &self.ca_certificate_pem.is_some())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("client_identity", &self.client_identity.as_ref().map(|_| "<redacted>"))
            .field("via_agent", &self.via_agent)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("apiserver URL {url:?} {reason}")]
    Url { url: String, reason: UrlError },
    #[error("no apiserver URL")]
    NoEndpoints,
    #[error("it is reached through an agent, and agent tunnels are not served by this process")]
    NoTunnels,
    #[error("the CA certificate is not valid PEM: {0}")]
    CaCertificate(String),
    #[error("the client certificate or key is not valid PEM: {0}")]
    ClientIdentity(String),
    #[error("an https apiserver needs a CA certificate to verify it")]
    MissingCa,
    #[error("TLS set-up failed: {0}")]
    Tls(String),
    #[error("the token is not a valid HTTP header value (control characters or line breaks)")]
    Token,
}

impl ClusterConnection {
    /// The connection of a registry record whose credentials were opened.
    pub fn from_record(
        record: &ClusterRecord,
        credentials: &ClusterCredentials,
    ) -> Result<ClusterConnection, ConnectionError> {
        let endpoints = record
            .endpoints
            .iter()
            .map(|url| {
                ApiserverUrl::parse(url).map_err(|reason| ConnectionError::Url {
                    url: url.clone(),
                    reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // An agent cluster has no apiserver until its agent first connects: its pool is empty
        // (the balancer view lists nothing, the proxy answers that no apiserver is reachable).
        if endpoints.is_empty() && record.agent.is_none() {
            return Err(ConnectionError::NoEndpoints);
        }
        let client_identity = match (&credentials.client_certificate, &credentials.client_key) {
            (Some(certificate_pem), Some(key_pem)) => Some(ClientIdentity {
                certificate_pem: certificate_pem.clone(),
                key_pem: key_pem.clone(),
            }),
            _ => None,
        };
        Ok(ClusterConnection {
            name: record.name.clone(),
            endpoints,
            ca_certificate_pem: credentials.ca_certificate.clone(),
            token: credentials.token.clone(),
            client_identity,
            via_agent: record.agent.is_some(),
        })
    }

    /// The `Authorization` header sent with the cluster's token, or `None` without a token. A token
    /// that cannot be a header value (a line break pasted with it) is refused here, so that the
    /// registry can refuse it before it is stored.
    pub fn authorization_header(&self) -> Result<Option<HeaderValue>, ConnectionError> {
        let Some(token) = &self.token else {
            return Ok(None);
        };
        let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| ConnectionError::Token)?;
        value.set_sensitive(true);
        Ok(Some(value))
    }

    /// Everything a pool needs from these settings, checked without connecting: what the registry
    /// runs before it stores a cluster, so that a stored cluster can always be given a pool.
    pub fn check_usable(&self) -> Result<(), ConnectionError> {
        self.tls_client_config()?;
        self.authorization_header()?;
        Ok(())
    }

    /// The TLS client configuration for this cluster's apiservers: only its own CA is trusted
    /// (cluster CAs are private; the system's roots would only widen what is accepted), the
    /// client certificate is presented when there is one, and HTTP/1.1 is negotiated so that
    /// exec, attach and port-forward upgrades work on every connection.
    pub fn tls_client_config(&self) -> Result<Option<Arc<rustls::ClientConfig>>, ConnectionError> {
        if !self.endpoints.iter().any(|endpoint| endpoint.https) {
            return Ok(None);
        }
        let ca_pem = self.ca_certificate_pem.as_deref().ok_or(ConnectionError::MissingCa)?;
        let mut roots = rustls::RootCertStore::empty();
        let mut found = 0;
        for certificate in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            let certificate = certificate.map_err(|error| ConnectionError::CaCertificate(error.to_string()))?;
            roots
                .add(certificate)
                .map_err(|error| ConnectionError::CaCertificate(error.to_string()))?;
            found += 1;
        }
        if found == 0 {
            return Err(ConnectionError::CaCertificate("no CERTIFICATE block found".into()));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| ConnectionError::Tls(error.to_string()))?
            .with_root_certificates(roots);
        let mut config = match &self.client_identity {
            Some(identity) => {
                let chain = CertificateDer::pem_slice_iter(identity.certificate_pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|error| ConnectionError::ClientIdentity(error.to_string()))?;
                if chain.is_empty() {
                    return Err(ConnectionError::ClientIdentity("no CERTIFICATE block found".into()));
                }
                let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes())
                    .map_err(|error| ConnectionError::ClientIdentity(error.to_string()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|error| ConnectionError::ClientIdentity(error.to_string()))?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(Arc::new(config)))
    }
}
