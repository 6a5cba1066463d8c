//! How to reach an external etcd cluster, and what can go wrong while connecting.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

/// The key prefix every kuboard key lives under in a shared etcd.
pub const DEFAULT_PREFIX: &str = "/kuboard/";
/// How long connecting may take before the endpoints are declared unreachable.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one request may take before it fails with [`crate::StoreError::Timeout`].
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Connection settings of [`super::EtcdStore`]. `Debug` never prints the password.
#[derive(Clone)]
pub struct EtcdStoreConfig {
    /// Client URLs (`http://host:2379`, `https://host:2379`) or bare `host:port` (the scheme then
    /// follows whether TLS is configured).
    pub endpoints: Vec<String>,
    /// PEM file of the CA that signed the etcd server certificates. Setting it turns TLS on.
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate, for etcd's `--client-cert-auth`; needs `client_key`.
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// etcd user for `auth enable`d clusters; needs `password`.
    pub username: Option<String>,
    pub password: Option<String>,
    /// Every key the store reads or writes lives under this prefix, which callers never see.
    pub prefix: String,
    /// Bound on connecting (and on the first request that proves the cluster answers).
    pub connect_timeout: Duration,
    /// Bound on every later request.
    pub request_timeout: Duration,
}

impl Default for EtcdStoreConfig {
    fn default() -> Self {
        EtcdStoreConfig {
            endpoints: Vec::new(),
            ca_cert: None,
            client_cert: None,
            client_key: None,
            username: None,
            password: None,
            prefix: DEFAULT_PREFIX.to_string(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

impl EtcdStoreConfig {
    /// Plain, unauthenticated access to `endpoints` with the default prefix and timeouts.
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<String>>) -> Self {
        EtcdStoreConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }

    /// True when the client talks TLS to etcd.
    pub fn uses_tls(&self) -> bool {
        self.ca_cert.is_some() || self.client_cert.is_some()
    }
}

impl std::fmt::Debug for EtcdStoreConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("EtcdStoreConfig")
            .field("endpoints", &self.endpoints)
            .field("ca_cert", &self.ca_cert)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// Why [`super::EtcdStore::connect`] failed. Messages name the file or endpoints involved and never
/// contain the password.
#[derive(Debug, Error)]
pub enum EtcdConnectError {
    #[error("invalid etcd configuration: {0}")]
    InvalidConfig(String),
    #[error("cannot read the etcd {what} {path}: {source}")]
    ReadFile {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the etcd {what} {path} is not valid PEM: {reason}")]
    BadPem {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("no etcd endpoint of {endpoints} answered within {millis} ms: {reason}")]
    Unreachable {
        endpoints: String,
        millis: u64,
        reason: String,
    },
    #[error("etcd refused the credentials of user {username:?}: {reason}")]
    Authentication { username: String, reason: String },
    #[error("etcd client error: {0}")]
    Client(String),
}
