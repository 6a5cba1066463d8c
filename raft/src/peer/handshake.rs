//! The mutual challenge-response handshake that opens every peer connection.
//!
//! ```text
//! client                                   server
//!   ClientHello{cluster, id, target, Nc} ->
//!                                        <- Challenge{id, Ns, proof_s}   (or Refused)
//!   verifies proof_s
//!   Proof(proof_c)                       ->
//!                                           verifies proof_c
//!                                        <- Accepted                     (or Refused)
//! ```
//!
//! `proof = HMAC-SHA256(secret, domain | role | cluster | prover id | verifier id | Nc | Ns)`.
//! The role label keeps a server's proof from being reflected back as a client's proof; both
//! nonces make every proof fresh; the ids bind it to the two ends. The server proves itself first
//! so that a client never hands a proof to a server that does not know the secret. Proofs are
//! compared in constant time (`Mac::verify_slice`).
//!
//! Once both proofs are verified, each side derives the connection's frame keys from the secret and
//! the same transcript (`sealing`); every later frame is sealed with them.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncWrite};

use super::config::PeerConfig;
use super::sealing::{SessionKeys, Transcript};
use super::wire::{
    ClientHello, ClientReply, Refusal, ServerHello, Verdict, HANDSHAKE_MAX_FRAME, NONCE_BYTES, PROTOCOL_VERSION,
};
use crate::framing::{read_record, write_record, FrameError};

/// Separates these proofs from any other use of the same secret.
const PROOF_DOMAIN: &[u8] = b"kuboard-peer-handshake-v1";

#[derive(Debug, thiserror::Error)]
pub(super) enum HandshakeError {
    #[error("handshake: {0}")]
    Frame(#[from] FrameError),
    #[error("the peer refused the connection: {0}")]
    RefusedByPeer(Refusal),
    #[error("refused the peer: {0}")]
    RefusedPeer(Refusal),
    #[error("the peer's proof of the cluster secret is wrong")]
    PeerProofWrong,
    #[error("handshake: {0}")]
    Io(#[from] std::io::Error),
}

impl HandshakeError {
    /// Whether the handshake failed because one side could not prove the secret.
    pub(super) fn is_auth_failure(&self) -> bool {
        matches!(
            self,
            HandshakeError::PeerProofWrong
                | HandshakeError::RefusedByPeer(Refusal::Auth)
                | HandshakeError::RefusedPeer(Refusal::Auth)
        )
    }
}

#[derive(Clone, Copy)]
enum Role {
    Client,
    Server,
}

/// What a proof is computed over, besides the secret.
struct ProofInput<'a> {
    role: Role,
    cluster: &'a str,
    prover: u64,
    verifier: u64,
    client_nonce: &'a [u8; NONCE_BYTES],
    server_nonce: &'a [u8; NONCE_BYTES],
}

fn proof_mac(config: &PeerConfig, input: &ProofInput<'_>) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(config.secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(PROOF_DOMAIN);
    mac.update(match input.role {
        Role::Client => b"client",
        Role::Server => b"server",
    });
    // Length-prefixing the only variable-length field keeps two different inputs from hashing the
    // same byte string.
    mac.update(&(input.cluster.len() as u64).to_be_bytes());
    mac.update(input.cluster.as_bytes());
    mac.update(&input.prover.to_be_bytes());
    mac.update(&input.verifier.to_be_bytes());
    mac.update(input.client_nonce);
    mac.update(input.server_nonce);
    mac
}

fn prove(config: &PeerConfig, input: &ProofInput<'_>) -> Vec<u8> {
    proof_mac(config, input).finalize().into_bytes().to_vec()
}

fn verify(config: &PeerConfig, input: &ProofInput<'_>, proof: &[u8]) -> bool {
    proof_mac(config, input).verify_slice(proof).is_ok()
}

fn fresh_nonce() -> [u8; NONCE_BYTES] {
    let mut nonce = [0u8; NONCE_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    nonce
}

async fn send<T: serde::Serialize, S: AsyncWrite + Unpin>(stream: &mut S, value: &T) -> Result<(), HandshakeError> {
    Ok(write_record(stream, value, HANDSHAKE_MAX_FRAME).await?)
}

/// Run the dialling side of the handshake with the server that should be node `target`; returns
/// the connection's frame keys. The caller bounds it with the handshake deadline.
pub(super) async fn client_handshake<S>(
    stream: &mut S,
    config: &PeerConfig,
    target: u64,
) -> Result<SessionKeys, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let client_nonce = fresh_nonce();
    let hello = ClientHello {
        protocol: PROTOCOL_VERSION,
        cluster: config.cluster.clone(),
        node_id: config.node_id,
        target,
        nonce: client_nonce,
    };
    send(stream, &hello).await?;

    let (server_id, server_nonce, server_proof) = match read_record(stream, HANDSHAKE_MAX_FRAME).await? {
        ServerHello::Challenge { node_id, nonce, proof } => (node_id, nonce, proof),
        ServerHello::Refused(refusal) => return Err(HandshakeError::RefusedByPeer(refusal)),
    };
    if server_id != target {
        return Err(HandshakeError::RefusedPeer(Refusal::WrongNode {
            expected: target,
            actual: server_id,
        }));
    }
    let server_input = ProofInput {
        role: Role::Server,
        cluster: &config.cluster,
        prover: server_id,
        verifier: config.node_id,
        client_nonce: &client_nonce,
        server_nonce: &server_nonce,
    };
    if !verify(config, &server_input, &server_proof) {
        // Telling the server lets it count the failure too; the connection closes either way.
        let _ = send(stream, &ClientReply::Refused(Refusal::Auth)).await;
        return Err(HandshakeError::PeerProofWrong);
    }

    let client_input = ProofInput {
        role: Role::Client,
        cluster: &config.cluster,
        prover: config.node_id,
        verifier: server_id,
        client_nonce: &client_nonce,
        server_nonce: &server_nonce,
    };
    send(stream, &ClientReply::Proof(prove(config, &client_input))).await?;
    match read_record(stream, HANDSHAKE_MAX_FRAME).await? {
        Verdict::Accepted => Ok(SessionKeys::derive(
            &config.secret,
            &Transcript {
                cluster: &config.cluster,
                client: config.node_id,
                server: server_id,
                client_nonce: &client_nonce,
                server_nonce: &server_nonce,
            },
        )),
        Verdict::Refused(refusal) => Err(HandshakeError::RefusedByPeer(refusal)),
    }
}

/// Run the accepting side of the handshake; returns the node id the peer proved to be and the
/// connection's frame keys. The caller bounds it with the handshake deadline.
pub(super) async fn server_handshake<S>(
    stream: &mut S,
    config: &PeerConfig,
) -> Result<(u64, SessionKeys), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let hello: ClientHello = read_record(stream, HANDSHAKE_MAX_FRAME).await?;
    let refusal = if hello.protocol != PROTOCOL_VERSION {
        Some(Refusal::Protocol {
            ours: PROTOCOL_VERSION,
            theirs: hello.protocol,
        })
    } else if hello.cluster != config.cluster {
        Some(Refusal::Cluster)
    } else if hello.target != config.node_id {
        Some(Refusal::WrongNode {
            expected: hello.target,
            actual: config.node_id,
        })
    } else {
        None
    };
    if let Some(refusal) = refusal {
        // The refusal is a courtesy for diagnosis; the connection closes either way.
        let _ = send(stream, &ServerHello::Refused(refusal)).await;
        return Err(HandshakeError::RefusedPeer(refusal));
    }

    let server_nonce = fresh_nonce();
    let server_input = ProofInput {
        role: Role::Server,
        cluster: &config.cluster,
        prover: config.node_id,
        verifier: hello.node_id,
        client_nonce: &hello.nonce,
        server_nonce: &server_nonce,
    };
    let challenge = ServerHello::Challenge {
        node_id: config.node_id,
        nonce: server_nonce,
        proof: prove(config, &server_input),
    };
    send(stream, &challenge).await?;

    let client_proof = match read_record(stream, HANDSHAKE_MAX_FRAME).await? {
        ClientReply::Proof(proof) => proof,
        ClientReply::Refused(refusal) => return Err(HandshakeError::RefusedByPeer(refusal)),
    };
    let client_input = ProofInput {
        role: Role::Client,
        cluster: &config.cluster,
        prover: hello.node_id,
        verifier: config.node_id,
        client_nonce: &hello.nonce,
        server_nonce: &server_nonce,
    };
    if !verify(config, &client_input, &client_proof) {
        let _ = send(stream, &Verdict::Refused(Refusal::Auth)).await;
        return Err(HandshakeError::RefusedPeer(Refusal::Auth));
    }
    send(stream, &Verdict::Accepted).await?;
    let keys = SessionKeys::derive(
        &config.secret,
        &Transcript {
            cluster: &config.cluster,
            client: hello.node_id,
            server: config.node_id,
            client_nonce: &hello.nonce,
            server_nonce: &server_nonce,
        },
    );
    Ok((hello.node_id, keys))
}
