//! The HTTPS listener beside the web port (`KUBOARD_SERVER_HTTPS_PORT`, default 443, `off` to turn
//! it off) and [`HttpsStatus`], what the kubeconfig download needs to know of it.
//!
//! The port is bound at start, with the other listeners. Its certificate is the operator's
//! (`KUBOARD_TLS_CERT` / `KUBOARD_TLS_KEY`) when given; otherwise this replica's own, issued by the
//! group CA (see [`crate::tls::group_ca`]) for its names once the store answers. Until then the
//! port accepts nothing and the kubeconfig download answers 503.

use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::connect_info::IntoMakeServiceWithConnectInfo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::rustls::ServerConfig;

use crate::app_store::AppStore;
use crate::clock::Clock;
use crate::clusters::credential_cipher::CredentialCipher;
use crate::config::HttpConfig;
use crate::http::client_address::PeerAddress;
use crate::http::tls_listener::{server_config, TlsListener};
use crate::tls::group_ca::GroupCa;

/// How long to wait between attempts to read or make the group CA while the store does not answer.
const CA_RETRY: Duration = Duration::from_secs(1);

/// What the HTTPS port offers right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpsAvailability {
    /// Not served; the reason, in words for the operator.
    Off(String),
    /// Bound, but its certificate is not made yet (the store does not answer yet).
    Starting,
    /// Served. `group_ca_pem` is the CA to trust when the group's own certificate is served; `None`
    /// when the operator's certificate is (clients trust it as they already do).
    Serving { group_ca_pem: Option<String> },
}

/// The HTTPS port and what it offers, shared with the routes.
#[derive(Debug)]
pub struct HttpsStatus {
    /// The port as configured (and, as for the agent port, as published to clients).
    pub port: u16,
    availability: RwLock<HttpsAvailability>,
}

impl HttpsStatus {
    pub fn new(port: u16, availability: HttpsAvailability) -> HttpsStatus {
        HttpsStatus {
            port,
            availability: RwLock::new(availability),
        }
    }

    pub fn availability(&self) -> HttpsAvailability {
        match self.availability.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set(&self, availability: HttpsAvailability) {
        match self.availability.write() {
            Ok(mut guard) => *guard = availability,
            Err(poisoned) => *poisoned.into_inner() = availability,
        }
    }
}

/// The bound HTTPS port, not serving yet.
pub struct HttpsPort {
    pub status: Arc<HttpsStatus>,
    listener: Option<TcpListener>,
}

/// Binds the HTTPS port. A port the operator set that cannot be bound is an error (the start
/// stops); the default port that cannot be bound (taken, or no privilege for 443) turns HTTPS off
/// with a warning, and the kubeconfig download then says why.
pub async fn bind(http: &HttpConfig) -> Result<HttpsPort, String> {
    let Some(https) = http.https else {
        return Ok(HttpsPort {
            status: Arc::new(HttpsStatus::new(
                0,
                HttpsAvailability::Off("the HTTPS port is off (KUBOARD_SERVER_HTTPS_PORT=off)".into()),
            )),
            listener: None,
        });
    };
    let port = https.listen_addr.port();
    match TcpListener::bind(https.listen_addr).await {
        Ok(listener) => Ok(HttpsPort {
            status: Arc::new(HttpsStatus::new(port, HttpsAvailability::Starting)),
            listener: Some(listener),
        }),
        Err(error) if https.explicit => Err(format!(
            "listen on {} (KUBOARD_SERVER_HTTPS_PORT): {error}",
            https.listen_addr
        )),
        Err(error) => {
            tracing::warn!(address = %https.listen_addr, %error,
                "HTTPS is off: the default HTTPS port cannot be bound; set KUBOARD_SERVER_HTTPS_PORT to a free port (or off)");
            Ok(HttpsPort {
                status: Arc::new(HttpsStatus::new(
                    port,
                    HttpsAvailability::Off(format!(
                        "the HTTPS port {} could not be bound ({error}); set KUBOARD_SERVER_HTTPS_PORT to a free port",
                        https.listen_addr
                    )),
                )),
                listener: None,
            })
        }
    }
}

/// What the HTTPS port needs to make its certificate.
pub struct CertificateSource {
    /// The operator's certificate (`KUBOARD_TLS_CERT`), which wins over the group's.
    pub operator: Option<Arc<ServerConfig>>,
    pub store: AppStore,
    pub cipher: CredentialCipher,
    pub clock: Clock,
    /// The names the serving certificate is issued for.
    pub names: Vec<String>,
}

impl HttpsPort {
    /// Serves `app` on the port once its certificate is ready; `None` when the port is off. The task
    /// ends at `shutdown` after the requests in flight.
    pub fn serve(
        self,
        app: IntoMakeServiceWithConnectInfo<axum::Router, PeerAddress>,
        source: CertificateSource,
        mut shutdown: watch::Receiver<bool>,
    ) -> Option<JoinHandle<std::io::Result<()>>> {
        let listener = self.listener?;
        let status = self.status;
        Some(tokio::spawn(async move {
            let (config, group_ca_pem) = match source.operator.clone() {
                Some(config) => (config, None),
                None => match group_certificate(&source, &mut shutdown).await {
                    Ok(Some(ready)) => ready,
                    Ok(None) => return Ok(()),
                    Err(reason) => {
                        tracing::error!(reason = %reason, "HTTPS is off");
                        status.set(HttpsAvailability::Off(reason));
                        return Ok(());
                    }
                },
            };
            let address = listener.local_addr()?;
            let listener = TlsListener::new(listener, config)?;
            status.set(HttpsAvailability::Serving { group_ca_pem });
            tracing::info!(%address, operator_certificate = source.operator.is_some(), "serving HTTPS (KUBOARD_SERVER_HTTPS_PORT)");
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = shutdown.wait_for(|stop| *stop).await;
                })
                .await
        }))
    }
}

/// Reads (or makes) the group CA, retrying while the store does not answer, and issues this
/// replica's certificate for `source.names` (the operator's certificate is not looked at). `None`
/// when shutdown came first; the reason when the certificate cannot be made. The agent port uses
/// it too, with its own names.
pub async fn group_certificate(
    source: &CertificateSource,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Option<(Arc<ServerConfig>, Option<String>)>, String> {
    let mut attempts: u64 = 0;
    let ca = loop {
        if *shutdown.borrow() {
            return Ok(None);
        }
        match GroupCa::load_or_create(&source.store, &source.cipher, source.clock.now_unix()).await {
            Ok(ca) => break ca,
            // The store is not reachable yet (no leader, etcd connecting): try again.
            Err(crate::tls::group_ca::GroupCaError::Store(error)) => {
                attempts += 1;
                if attempts == 1 || attempts % 30 == 0 {
                    tracing::info!(%error, attempts, "HTTPS waits for the store to read the group CA");
                }
            }
            Err(error) => return Err(format!("the group CA cannot be used: {error}")),
        }
        tokio::select! {
            _ = tokio::time::sleep(CA_RETRY) => {}
            _ = shutdown.changed() => {}
        }
    };
    let serving = ca
        .issue_serving(&source.names)
        .map_err(|error| format!("the serving certificate cannot be made: {error}"))?;
    let config = server_config(serving.chain, serving.key)
        .map_err(|error| format!("the serving certificate is not usable: {error}"))?;
    tracing::info!(names = ?source.names, "serving certificate issued by the group CA");
    Ok(Some((config, Some(ca.certificate_pem))))
}

/// The names this replica's serving certificate is issued for: the public endpoint's host, the
/// listen address (every local interface address when it is unspecified), the hostname,
/// `localhost`, 127.0.0.1 and ::1.
pub fn serving_names(http: &HttpConfig) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(host) = http.endpoint.as_deref().and_then(url_host) {
        names.push(host);
    }
    if let Some(host) = hostname() {
        names.push(host);
    }
    names.extend(["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()]);
    let listen_ip = http.listen_addr.ip();
    if listen_ip.is_unspecified() {
        names.extend(interface_addresses().iter().map(IpAddr::to_string));
    } else {
        names.push(listen_ip.to_string());
    }
    let mut unique = Vec::new();
    for name in names {
        if !unique.contains(&name) {
            unique.push(name);
        }
    }
    unique
}

/// The host of `http://host:port/path` (brackets of an IPv6 literal removed).
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split_once(']')?.0
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

fn hostname() -> Option<String> {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length, which is what is passed.
    let result = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if result != 0 {
        return None;
    }
    let end = buffer.iter().position(|byte| *byte == 0)?;
    let name = std::str::from_utf8(&buffer[..end]).ok()?.trim().to_ascii_lowercase();
    (!name.is_empty()).then_some(name)
}

/// Every IPv4 and IPv6 address of the machine's interfaces.
fn interface_addresses() -> Vec<IpAddr> {
    let mut addresses = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list that is freed below with freeifaddrs;
    // each entry and its address are read only while the list is alive.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return addresses;
        }
        let mut entry = list;
        while !entry.is_null() {
            let address = (*entry).ifa_addr;
            if !address.is_null() {
                match i32::from((*address).sa_family) {
                    libc::AF_INET => {
                        let v4 = &*(address as *const libc::sockaddr_in);
                        addresses.push(IpAddr::from(u32::from_be(v4.sin_addr.s_addr).to_be_bytes()));
                    }
                    libc::AF_INET6 => {
                        let v6 = &*(address as *const libc::sockaddr_in6);
                        let ip = std::net::Ipv6Addr::from(v6.sin6_addr.s6_addr);
                        // Link-local addresses need a zone, which a URL host cannot carry usefully.
                        if (ip.segments()[0] & 0xffc0) != 0xfe80 {
                            addresses.push(IpAddr::V6(ip));
                        }
                    }
                    _ => {}
                }
            }
            entry = (*entry).ifa_next;
        }
        libc::freeifaddrs(list);
    }
    addresses
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_urls() {
        for (url, host) in [
            ("http://kuboard.example", Some("kuboard.example")),
            ("https://Kuboard.Example:8443/base", Some("kuboard.example")),
            ("http://10.0.0.5:80", Some("10.0.0.5")),
            ("http://[fd00::5]:80/", Some("fd00::5")),
            ("http://user@host:1", Some("host")),
            ("http://", None),
        ] {
            assert_eq!(url_host(url).as_deref(), host, "{url}");
        }
    }

    #[test]
    fn names_cover_the_endpoint_loopback_and_the_listen_address() {
        let http = HttpConfig {
            listen_addr: "10.9.8.7:80".parse().expect("literal"),
            endpoint: Some("http://kuboard.example".into()),
            tls: None,
            https: None,
        };
        let names = serving_names(&http);
        for name in ["kuboard.example", "localhost", "127.0.0.1", "::1", "10.9.8.7"] {
            assert!(names.contains(&name.to_string()), "{name} in {names:?}");
        }
        let http = HttpConfig {
            listen_addr: "0.0.0.0:80".parse().expect("literal"),
            ..http
        };
        let names = serving_names(&http);
        assert!(
            names.contains(&"127.0.0.1".to_string()) && names.len() > 4,
            "every interface address: {names:?}"
        );
    }
}
