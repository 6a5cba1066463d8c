//! Where a request comes from: the TCP peer, or, when the peer is a trusted proxy, the address it
//! names in `X-Forwarded-For` (walking the list from the right past every trusted hop, so that a
//! client cannot choose its own address by sending the header itself).

use std::net::{IpAddr, SocketAddr};

use axum::extract::connect_info::Connected;
use axum::http::HeaderMap;
use axum::serve::IncomingStream;
use tokio::net::TcpListener;

use crate::config::IpNetwork;
use crate::http::tls_listener::TlsListener;

/// The TCP peer of a connection, recorded by the server for every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddress(pub SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for PeerAddress {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> PeerAddress {
        PeerAddress(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for PeerAddress {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> PeerAddress {
        PeerAddress(*stream.remote_addr())
    }
}

/// The client's address as text; `unknown` when the server recorded no peer (handler tests).
pub fn client_ip(headers: &HeaderMap, peer: Option<SocketAddr>, trusted: &[IpNetwork]) -> String {
    let Some(peer) = peer else {
        return "unknown".to_string();
    };
    let is_trusted = |address: IpAddr| trusted.iter().any(|network| network.contains(address));
    let mut client = canonical(peer.ip());
    if !is_trusted(client) {
        return client.to_string();
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(address) => {
                client = canonical(address);
                if !is_trusted(client) {
                    break;
                }
            }
            // A hop that is no address ends what can be believed.
            Err(_) => break,
        }
    }
    client.to_string()
}

fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(peer: &str, forwarded: Option<&str>, trusted: &[&str], expected: &str) {
        let mut headers = HeaderMap::new();
        if let Some(forwarded) = forwarded {
            headers.insert("x-forwarded-for", forwarded.parse().expect("valid header"));
        }
        let trusted: Vec<IpNetwork> = trusted
            .iter()
            .map(|text| IpNetwork::parse(text).expect("valid network"))
            .collect();
        let peer: SocketAddr = peer.parse().expect("valid socket address");
        assert_eq!(
            client_ip(&headers, Some(peer), &trusted),
            expected,
            "{peer} {forwarded:?}"
        );
    }

    #[test]
    fn client_addresses() {
        // Without trusted proxies the header is ignored.
        check("10.0.0.5:1000", Some("1.2.3.4"), &[], "10.0.0.5");
        // A trusted proxy's header is believed, from the right.
        check("10.0.0.5:1000", Some("1.2.3.4"), &["10.0.0.0/8"], "1.2.3.4");
        check(
            "10.0.0.5:1000",
            Some("6.6.6.6, 1.2.3.4, 10.0.0.9"),
            &["10.0.0.0/8"],
            "1.2.3.4",
        );
        // An untrusted peer cannot forge it.
        check("8.8.8.8:1000", Some("1.2.3.4"), &["10.0.0.0/8"], "8.8.8.8");
        // Garbage ends the walk at the last believed hop.
        check("10.0.0.5:1000", Some("1.2.3.4, junk"), &["10.0.0.0/8"], "10.0.0.5");
        check("[::ffff:10.0.0.5]:1000", None, &["10.0.0.5"], "10.0.0.5");
        check("[::1]:1000", Some("2001:db8::1"), &["::1"], "2001:db8::1");
        assert_eq!(client_ip(&HeaderMap::new(), None, &[]), "unknown");
    }

    #[test]
    fn networks() {
        let network = IpNetwork::parse("192.168.0.0/16").expect("valid");
        assert!(network.contains("192.168.4.1".parse().expect("ip")));
        assert!(!network.contains("192.169.0.1".parse().expect("ip")));
        assert!(IpNetwork::parse("0.0.0.0/0")
            .expect("valid")
            .contains("1.1.1.1".parse().expect("ip")));
        assert!(IpNetwork::parse("10.0.0.0/33").is_none());
        assert!(IpNetwork::parse("nonsense").is_none());
    }
}

/// Who is calling, for login throttling: the client address.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub ip: String,
}

impl axum::extract::FromRequestParts<crate::http::AppState> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &crate::http::AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<PeerAddress>>()
            .map(|info| info.0 .0);
        Ok(ClientInfo {
            ip: client_ip(&parts.headers, peer, &state.trusted_proxies),
        })
    }
}
