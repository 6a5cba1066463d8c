//! The agent handshake, spoken over `kuboard_raft::framing` frames before the connection turns
//! into HTTP/2 (the agent is the HTTP/2 server, the replica the client that opens streams):
//!
//! 1. agent → replica: [`Hello`] (protocol magic and version, the cluster's name, the agent token);
//! 2. replica → agent: [`Verdict`] (accepted, or the reason it was refused; then the replica closes);
//! 3. agent → replica: [`Report`] (the apiserver URLs the agent reaches and the credentials the
//!    replica authenticates with, end to end through the tunnel).
//!
//! An HTTP request or any other bytes do not form a valid first frame, so the replica closes
//! without answering (`curl` prints "Empty reply from server").

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clusters::cluster_registry::ClusterCredentials;

/// First bytes of the hello: not the start of any HTTP method.
pub const MAGIC: &str = "kuboard-agent";
pub const VERSION: u32 = 1;
/// The hello and verdict are small; a larger first frame is refused before it is read.
pub const HELLO_LIMIT: usize = 4 * 1024;
/// The report carries a CA and possibly a client certificate and key.
pub const REPORT_LIMIT: usize = 256 * 1024;
/// Bytes of randomness in an agent token.
pub const TOKEN_BYTES: usize = 32;
/// The name an agent checks the replica's agent-port certificate against, whatever address it
/// dialled: every replica's certificate is issued by the group CA with this name among its own, so
/// the pin is "a certificate of this group", not "of this host name" (see `docs/agent.md`). Under
/// `.invalid`, which no public CA certifies and no resolver answers.
pub const TLS_SERVER_NAME: &str = "agent-server.kuboard.invalid";
/// The first byte of a TLS record carrying a handshake message (a ClientHello): what tells a TLS
/// agent from a plain one on the same port. A plain hello starts with a frame length of at most
/// [`HELLO_LIMIT`], so its first byte is 0.
pub const TLS_HANDSHAKE_BYTE: u8 = 0x16;
/// The response header that says why the agent refused or failed a dial.
pub const DIAL_REFUSED_HEADER: &str = "kuboard-dial-error";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Hello {
    pub magic: String,
    pub version: u32,
    pub cluster: String,
    pub token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Verdict {
    Accepted { replica: String },
    Refused { reason: String },
}

#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Report {
    /// Apiserver URLs as the agent reaches them (`https://10.96.0.1:443`); the replica dials these
    /// through the tunnel and the agent dials nothing else.
    pub endpoints: Vec<String>,
    pub credentials: ClusterCredentials,
    /// The agent's own version, for the cluster's status.
    pub agent_version: String,
}

impl std::fmt::Debug for Report {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Report")
            .field("endpoints", &self.endpoints)
            .field("credentials", &self.credentials)
            .field("agent_version", &self.agent_version)
            .finish()
    }
}

/// A new random agent token: 256 bits, URL-safe base64.
pub fn new_token() -> String {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored of a token: a SHA-256 bound to the cluster's name. The token is 256 random bits,
/// so the digest cannot be reversed or guessed from; a slow password hash would add nothing but
/// cost on every tunnel handshake.
pub fn token_digest(cluster: &str, token: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"kuboard agent token v1\0");
    hasher.update(cluster.as_bytes());
    hasher.update(b"\0");
    hasher.update(token.as_bytes());
    hex::encode(hasher.finalize())
}

/// Whether `token` matches the stored digest, compared in constant time.
pub fn token_matches(cluster: &str, token: &str, stored_digest: &str) -> bool {
    let computed = token_digest(cluster, token);
    let (a, b) = (computed.as_bytes(), stored_digest.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_their_digest_binds_the_cluster() {
        let first = new_token();
        let second = new_token();
        assert_ne!(first, second);
        assert_eq!(first.len(), 43);
        let digest = token_digest("prod", &first);
        assert!(token_matches("prod", &first, &digest));
        assert!(!token_matches("prod", &second, &digest));
        assert!(
            !token_matches("test", &first, &digest),
            "a digest does not move to another cluster"
        );
        assert!(!token_matches("prod", &first, ""));
        assert!(!digest.contains(&first));
    }

    #[test]
    fn http_is_not_a_hello() {
        // "GET " read as a length prefix is far above the limit: refused before reading on.
        let length = u32::from_be_bytes(*b"GET ") as usize;
        assert!(length > HELLO_LIMIT);
        let length = u32::from_be_bytes(*b"POST") as usize;
        assert!(length > HELLO_LIMIT);
    }
}
