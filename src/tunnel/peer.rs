//! Forwarding between replicas: a replica without a live tunnel to an agent cluster opens the
//! apiserver connection through a peer replica that holds one ([`crate::tunnel::presence`] says
//! which). It connects to the peer's agent port and, instead of an agent's hello, opens with a
//! peer hello; both sides then prove they know the group's key (derived from the credential secret
//! every replica shares) before the peer dials through its own tunnel:
//!
//! ```text
//! forwarding replica                         holder of the tunnel
//!   Hello{magic: kuboard-peer, version,
//!         cluster: own replica id,
//!         token: hex client nonce}         ->
//!                                          <- PeerChallenge{replica, server nonce, server proof}
//!   verifies the server proof
//!   PeerDial{client proof, cluster,
//!            host:port}                    ->
//!                                             verifies the client proof, dials its own tunnel
//!                                          <- Verdict (Accepted or Refused with the reason)
//!   raw bytes both ways: the apiserver connection (TLS end to end)
//! ```
//!
//! The peer hello has the agent hello's layout so that the agent port reads one kind of first
//! frame. `proof = HMAC-SHA256(key, domain | role | prover | verifier | client nonce | server
//! nonce)`: the role keeps one side's proof from being reflected as the other's, the nonces make
//! every proof fresh, and the holder proves itself first so that nothing is asked of a port that
//! does not know the key. A holder only dials its own tunnels: a forwarded connection is never
//! forwarded again.

use std::time::Duration;

use hmac::{Hmac, Mac};
use kuboard_raft::framing::{self, FrameError};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::net::TcpStream;

use crate::app_store::AppStore;
use crate::tunnel::hub::DialError;
use crate::tunnel::presence;
use crate::tunnel::protocol::{Hello, Verdict, HELLO_LIMIT, VERSION};

/// The first field of a peer hello; an agent's hello has [`crate::tunnel::protocol::MAGIC`].
pub const PEER_MAGIC: &str = "kuboard-peer";
const NONCE_BYTES: usize = 32;
const KEY_DOMAIN: &[u8] = b"kuboard agent peer forwarding key v1";
const PROOF_DOMAIN: &[u8] = b"kuboard agent peer proof v1";

/// The key replicas prove to each other, derived from the credential secret (the same on every
/// replica of a group).
#[derive(Clone)]
pub struct PeerKey([u8; 32]);

impl std::fmt::Debug for PeerKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("PeerKey(<redacted>)")
    }
}

impl PeerKey {
    pub fn derive(group_secret: &str) -> PeerKey {
        let mut mac = Hmac::<Sha256>::new_from_slice(group_secret.as_bytes()).expect("HMAC accepts keys of any length");
        mac.update(KEY_DOMAIN);
        PeerKey(mac.finalize().into_bytes().into())
    }

    fn mac(&self, role: &[u8], prover: &str, verifier: &str, client_nonce: &[u8], server_nonce: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        mac.update(PROOF_DOMAIN);
        mac.update(role);
        for field in [prover.as_bytes(), verifier.as_bytes(), client_nonce, server_nonce] {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field);
        }
        mac
    }

    fn prove(&self, role: &[u8], prover: &str, verifier: &str, client_nonce: &[u8], server_nonce: &[u8]) -> String {
        hex::encode(
            self.mac(role, prover, verifier, client_nonce, server_nonce)
                .finalize()
                .into_bytes(),
        )
    }

    fn verify(
        &self,
        role: &[u8],
        prover: &str,
        verifier: &str,
        client_nonce: &[u8],
        server_nonce: &[u8],
        proof: &str,
    ) -> bool {
        let Ok(proof) = hex::decode(proof) else {
            return false;
        };
        self.mac(role, prover, verifier, client_nonce, server_nonce)
            .verify_slice(&proof)
            .is_ok()
    }
}

const SERVER_ROLE: &[u8] = b"holder";
const CLIENT_ROLE: &[u8] = b"forwarder";

/// The holder's answer to a peer hello.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerChallenge {
    pub replica: String,
    pub nonce: String,
    pub proof: String,
}

/// What the forwarding replica asks for, with its proof.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerDial {
    pub proof: String,
    pub cluster: String,
    pub authority: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("handshake: {0}")]
    Frame(#[from] FrameError),
    #[error("the peer's proof of the group key is wrong")]
    WrongProof,
    #[error("the peer refused: {0}")]
    Refused(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

fn fresh_nonce() -> [u8; NONCE_BYTES] {
    let mut nonce = [0u8; NONCE_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    nonce
}

/// Opens a connection to `authority` of `cluster` through the tunnel that the replica at
/// `address` holds. On success the returned socket carries the apiserver connection.
pub async fn connect_through_peer(
    address: &str,
    key: &PeerKey,
    own_replica: &str,
    cluster: &str,
    authority: &str,
    timeout: Duration,
) -> Result<TcpStream, PeerError> {
    let attempt = async {
        let mut socket = TcpStream::connect(address).await.map_err(PeerError::Connect)?;
        let _ = socket.set_nodelay(true);
        let client_nonce = fresh_nonce();
        let hello = Hello {
            magic: PEER_MAGIC.to_string(),
            version: VERSION,
            cluster: own_replica.to_string(),
            token: hex::encode(client_nonce),
        };
        framing::write_record(&mut socket, &hello, HELLO_LIMIT).await?;
        let challenge: PeerChallenge = framing::read_record(&mut socket, HELLO_LIMIT).await?;
        let server_nonce = hex::decode(&challenge.nonce).map_err(|_| PeerError::WrongProof)?;
        if !key.verify(
            SERVER_ROLE,
            &challenge.replica,
            own_replica,
            &client_nonce,
            &server_nonce,
            &challenge.proof,
        ) {
            return Err(PeerError::WrongProof);
        }
        let dial = PeerDial {
            proof: key.prove(
                CLIENT_ROLE,
                own_replica,
                &challenge.replica,
                &client_nonce,
                &server_nonce,
            ),
            cluster: cluster.to_string(),
            authority: authority.to_string(),
        };
        framing::write_record(&mut socket, &dial, HELLO_LIMIT).await?;
        match framing::read_record::<Verdict, _>(&mut socket, HELLO_LIMIT).await? {
            Verdict::Accepted { .. } => Ok(socket),
            Verdict::Refused { reason } => Err(PeerError::Refused(reason)),
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or(Err(PeerError::Timeout(timeout)))
}

/// The holder's side, after it read a hello with [`PEER_MAGIC`]: challenges the forwarding replica
/// and reads what it asks for. Returns the request once the forwarder proved the key; the caller
/// dials and answers with a [`Verdict`].
pub async fn accept_peer<S>(
    socket: &mut S,
    hello: &Hello,
    key: &PeerKey,
    own_replica: &str,
) -> Result<PeerDial, PeerAcceptError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if hello.version != VERSION {
        return Err(PeerAcceptError::Version);
    }
    let client_nonce = hex::decode(&hello.token).map_err(|_| PeerAcceptError::Malformed)?;
    if client_nonce.len() != NONCE_BYTES {
        return Err(PeerAcceptError::Malformed);
    }
    let server_nonce = fresh_nonce();
    let challenge = PeerChallenge {
        replica: own_replica.to_string(),
        nonce: hex::encode(server_nonce),
        proof: key.prove(SERVER_ROLE, own_replica, &hello.cluster, &client_nonce, &server_nonce),
    };
    framing::write_record(socket, &challenge, HELLO_LIMIT)
        .await
        .map_err(PeerAcceptError::Frame)?;
    let dial: PeerDial = framing::read_record(socket, HELLO_LIMIT)
        .await
        .map_err(PeerAcceptError::Frame)?;
    if !key.verify(
        CLIENT_ROLE,
        &hello.cluster,
        own_replica,
        &client_nonce,
        &server_nonce,
        &dial.proof,
    ) {
        return Err(PeerAcceptError::WrongProof);
    }
    Ok(dial)
}

#[derive(Debug)]
pub enum PeerAcceptError {
    Version,
    Malformed,
    WrongProof,
    Frame(FrameError),
}

/// Where a replica without a live tunnel sends its dials: the replicas that hold one.
pub struct PeerForwarder {
    pub store: AppStore,
    pub key: PeerKey,
    pub replica_id: u64,
}

impl std::fmt::Debug for PeerForwarder {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PeerForwarder")
            .field("replica_id", &self.replica_id)
            .finish_non_exhaustive()
    }
}

impl PeerForwarder {
    /// Tries every other holder of `cluster`'s tunnels, the most recently changed first, within
    /// `timeout` in all.
    pub async fn dial(&self, cluster: &str, authority: &str, timeout: Duration) -> Result<TcpStream, DialError> {
        let started = std::time::Instant::now();
        let no_peer = |detail: String| DialError::NoPeer {
            cluster: cluster.to_string(),
            detail,
        };
        let holders = match tokio::time::timeout(timeout, presence::holders(&self.store, cluster)).await {
            Ok(Ok(holders)) => holders,
            Ok(Err(error)) => return Err(no_peer(format!("the holders cannot be read: {error}"))),
            Err(_) => return Err(DialError::Timeout(timeout)),
        };
        let own = self.replica_id.to_string();
        let mut failures = Vec::new();
        for holder in holders.iter().filter(|holder| holder.replica_id != self.replica_id) {
            let remaining = timeout.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                failures.push("out of time".to_string());
                break;
            }
            match connect_through_peer(&holder.address, &self.key, &own, cluster, authority, remaining).await {
                Ok(socket) => return Ok(socket),
                Err(error) => {
                    tracing::debug!(cluster, replica = holder.replica_id, address = %holder.address, %error, "forwarding through a peer failed");
                    failures.push(format!("replica {} ({}): {error}", holder.replica_id, holder.address));
                }
            }
        }
        if failures.is_empty() {
            return Err(DialError::NoTunnel(cluster.to_string()));
        }
        Err(no_peer(failures.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_bind_the_key_the_role_and_both_nonces() {
        let key = PeerKey::derive("a shared secret of the group");
        let other = PeerKey::derive("another group's secret");
        let (client, server) = (fresh_nonce(), fresh_nonce());
        let proof = key.prove(SERVER_ROLE, "1", "2", &client, &server);
        assert!(key.verify(SERVER_ROLE, "1", "2", &client, &server, &proof));
        assert!(!other.verify(SERVER_ROLE, "1", "2", &client, &server, &proof));
        assert!(
            !key.verify(CLIENT_ROLE, "1", "2", &client, &server, &proof),
            "a holder's proof is not a forwarder's"
        );
        assert!(!key.verify(SERVER_ROLE, "2", "1", &client, &server, &proof));
        assert!(!key.verify(SERVER_ROLE, "1", "2", &server, &client, &proof));
        assert!(!key.verify(SERVER_ROLE, "1", "2", &client, &server, "not hex"));
        assert!(!format!("{key:?}").contains(&hex::encode(key.0)));
    }

    /// Runs the holder's side with `holder_key` on a loopback port; returns what it read or why
    /// it refused.
    async fn holder(holder_key: PeerKey) -> (String, tokio::task::JoinHandle<Result<PeerDial, String>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.map_err(|error| error.to_string())?;
            let hello: Hello = framing::read_record(&mut socket, HELLO_LIMIT)
                .await
                .map_err(|error| error.to_string())?;
            assert_eq!(hello.magic, PEER_MAGIC);
            let dial = accept_peer(&mut socket, &hello, &holder_key, "1")
                .await
                .map_err(|error| format!("{error:?}"))?;
            framing::write_record(&mut socket, &Verdict::Accepted { replica: "1".into() }, HELLO_LIMIT)
                .await
                .map_err(|error| error.to_string())?;
            Ok(dial)
        });
        (address, task)
    }

    #[tokio::test]
    async fn the_handshake_needs_the_same_key_on_both_sides() {
        let key = PeerKey::derive("a shared secret of the group");
        let wait = Duration::from_secs(5);

        let (address, task) = holder(key.clone()).await;
        connect_through_peer(&address, &key, "2", "edge", "10.0.0.1:6443", wait)
            .await
            .expect("the same key: accepted");
        let dial = task.await.expect("the holder runs").expect("the holder accepts");
        assert_eq!(
            (dial.cluster.as_str(), dial.authority.as_str()),
            ("edge", "10.0.0.1:6443")
        );

        // A forwarder with another key sees a holder proof it cannot verify and asks nothing.
        let (address, task) = holder(key.clone()).await;
        let other = PeerKey::derive("another group's secret");
        let refused = connect_through_peer(&address, &other, "2", "edge", "10.0.0.1:6443", wait).await;
        assert!(matches!(refused, Err(PeerError::WrongProof)), "{refused:?}");
        let holder_saw = task.await.expect("the holder runs");
        assert!(holder_saw.is_err(), "the holder reads no request: {holder_saw:?}");

        // A holder with another key: the forwarder refuses its proof first.
        let (address, task) = holder(other).await;
        let refused = connect_through_peer(&address, &key, "2", "edge", "10.0.0.1:6443", wait).await;
        assert!(matches!(refused, Err(PeerError::WrongProof)), "{refused:?}");
        assert!(task.await.expect("the holder runs").is_err());
    }
}
