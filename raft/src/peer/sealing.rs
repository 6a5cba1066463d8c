//! The protection of every frame that follows the handshake: AES-256-GCM with keys of this
//! connection alone and a counter nonce per direction.
//!
//! ```text
//! keys  = HKDF-SHA256(salt = Nc | Ns, ikm = cluster secret,
//!                     info = domain | direction | cluster | client id | server id)
//! frame = [u32 big-endian length][AES-256-GCM(key of the direction, nonce = 0u32 | n, aad = length,
//!                                             codec record)][16-byte tag]
//! ```
//!
//! Both handshake nonces are fresh, so every connection has keys of its own, and each direction has
//! its own key. `n` counts the frames sent in that direction, starting at 0; it is not sent, the
//! receiver counts too, so a frame that is altered, injected, dropped from the middle, replayed or
//! reordered fails to open and closes the connection. Nothing but the length travels in clear.
//!
//! Why not TLS: the members share one secret and no certificates; rustls offers no pre-shared-key
//! mode, and a certificate authority for the peer port would be a second secret to distribute and
//! rotate. The handshake already proves the secret mutually over fresh nonces, which is exactly the
//! input a key derivation needs. What this does not give is forward secrecy: someone who records
//! the traffic and later learns the cluster secret can derive the keys of the recorded connections.

use hkdf::Hkdf;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use sha2::Sha256;
use tokio::io::AsyncRead;

use super::config::ClusterSecret;
use super::wire::NONCE_BYTES;
use crate::framing::{read_frame, FrameError, LENGTH_PREFIX_BYTES};

/// Bytes the authentication tag adds to every frame.
pub(super) const TAG_BYTES: usize = 16;

/// Separates these keys from any other use of the same secret.
const KEY_DOMAIN: &[u8] = b"kuboard-peer-frames-v1";

/// Why a sealed frame could not be read.
#[derive(Debug, thiserror::Error)]
pub(super) enum OpenError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The frame is not the next one its sender sealed: altered, injected, replayed or reordered.
    #[error("a frame failed its integrity check (altered, injected, replayed or reordered on the way)")]
    Forged,
}

/// What the keys of one connection are derived from besides the secret: the handshake's transcript.
pub(super) struct Transcript<'a> {
    pub(super) cluster: &'a str,
    pub(super) client: u64,
    pub(super) server: u64,
    pub(super) client_nonce: &'a [u8; NONCE_BYTES],
    pub(super) server_nonce: &'a [u8; NONCE_BYTES],
}

/// The two keys of one connection.
#[derive(Debug)]
pub(super) struct SessionKeys {
    pub(super) client_to_server: FrameKey,
    pub(super) server_to_client: FrameKey,
}

/// The key of one direction of one connection. Its `Debug` output is redacted and it is wiped when
/// dropped.
pub(super) struct FrameKey([u8; 32]);

impl std::fmt::Debug for FrameKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FrameKey(<redacted>)")
    }
}

impl Drop for FrameKey {
    fn drop(&mut self) {
        // Volatile writes so that the wipe is not optimised away as a dead store.
        for byte in self.0.iter_mut() {
            // SAFETY: `byte` is a valid, aligned, exclusive reference to a `u8`.
            unsafe { std::ptr::write_volatile(byte, 0) };
        }
    }
}

impl SessionKeys {
    pub(super) fn derive(secret: &ClusterSecret, transcript: &Transcript<'_>) -> Self {
        let mut salt = [0u8; 2 * NONCE_BYTES];
        salt[..NONCE_BYTES].copy_from_slice(transcript.client_nonce);
        salt[NONCE_BYTES..].copy_from_slice(transcript.server_nonce);
        let hkdf = Hkdf::<Sha256>::new(Some(&salt), secret.as_bytes());
        let key = |direction: &[u8]| {
            let cluster_len = (transcript.cluster.len() as u64).to_be_bytes();
            let client = transcript.client.to_be_bytes();
            let server = transcript.server.to_be_bytes();
            let info: [&[u8]; 6] = [
                KEY_DOMAIN,
                direction,
                &cluster_len,
                transcript.cluster.as_bytes(),
                &client,
                &server,
            ];
            let mut key = [0u8; 32];
            hkdf.expand_multi_info(&info, &mut key)
                .expect("32 bytes is a valid HKDF-SHA256 output length");
            FrameKey(key)
        };
        Self {
            client_to_server: key(b"client-to-server"),
            server_to_client: key(b"server-to-client"),
        }
    }
}

fn cipher(key: &FrameKey) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key.0).expect("a 32-byte key is an AES-256 key"))
}

/// The nonce of the `counter`th frame of a direction; each key seals at most one frame per counter.
fn nonce(counter: u64) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(nonce)
}

/// Seals the frames of one direction, in the order they are written.
pub(super) struct Sealer {
    cipher: LessSafeKey,
    sent: u64,
}

impl Sealer {
    pub(super) fn new(key: &FrameKey) -> Self {
        Self {
            cipher: cipher(key),
            sent: 0,
        }
    }

    /// Seal one encoded record (already checked against the frame limit) into a complete frame.
    /// Frames must be written in the order they are sealed.
    pub(super) fn seal(&mut self, record: &[u8]) -> Result<Vec<u8>, FrameError> {
        let sealed_len = record.len() + TAG_BYTES;
        let Ok(prefix) = u32::try_from(sealed_len).map(u32::to_be_bytes) else {
            return Err(FrameError::TooLarge {
                len: sealed_len,
                limit: u32::MAX as usize,
            });
        };
        // After 2^64 frames the nonce would repeat; the connection has to end first.
        let counter = self.sent;
        self.sent = self.sent.checked_add(1).ok_or_else(exhausted)?;
        let mut frame = Vec::with_capacity(LENGTH_PREFIX_BYTES + sealed_len);
        frame.extend_from_slice(&prefix);
        frame.extend_from_slice(record);
        let tag = self
            .cipher
            .seal_in_place_separate_tag(nonce(counter), Aad::from(prefix), &mut frame[LENGTH_PREFIX_BYTES..])
            .map_err(|_| FrameError::TooLarge {
                len: sealed_len,
                limit: u32::MAX as usize,
            })?;
        frame.extend_from_slice(tag.as_ref());
        Ok(frame)
    }
}

fn exhausted() -> FrameError {
    FrameError::Io(std::io::Error::other(
        "the frame counter of this connection is exhausted",
    ))
}

/// Opens the frames of one direction, in the order they arrive.
pub(super) struct Opener {
    cipher: LessSafeKey,
    received: u64,
}

impl Opener {
    pub(super) fn new(key: &FrameKey) -> Self {
        Self {
            cipher: cipher(key),
            received: 0,
        }
    }

    /// Read the next frame and return the record inside; `limit` bounds the record.
    pub(super) async fn read<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
        limit: usize,
    ) -> Result<Vec<u8>, OpenError> {
        let mut payload = read_frame(reader, limit.saturating_add(TAG_BYTES)).await?;
        self.open(&mut payload)?;
        Ok(payload)
    }

    /// Open one frame's payload (what follows its length prefix) in place, leaving the record.
    /// A payload that fails leaves this opener unusable: every later frame fails too.
    pub(super) fn open(&mut self, payload: &mut Vec<u8>) -> Result<(), OpenError> {
        if payload.len() < TAG_BYTES {
            self.received = u64::MAX;
            return Err(OpenError::Forged);
        }
        let Ok(prefix) = u32::try_from(payload.len()).map(u32::to_be_bytes) else {
            self.received = u64::MAX;
            return Err(OpenError::Forged);
        };
        let counter = self.received;
        // u64::MAX is never a valid counter: it marks an opener that has failed (or, unreachably,
        // one that has opened 2^64 - 1 frames).
        if counter == u64::MAX {
            return Err(OpenError::Forged);
        }
        let body_len = payload.len() - TAG_BYTES;
        let opened = self
            .cipher
            .open_in_place(nonce(counter), Aad::from(prefix), &mut payload[..]);
        if opened.is_err() {
            self.received = u64::MAX;
            return Err(OpenError::Forged);
        }
        payload.truncate(body_len);
        self.received = counter + 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str, client_nonce: u8) -> SessionKeys {
        let secret = ClusterSecret::new(secret).expect("non-empty");
        SessionKeys::derive(
            &secret,
            &Transcript {
                cluster: "c",
                client: 1,
                server: 2,
                client_nonce: &[client_nonce; NONCE_BYTES],
                server_nonce: &[9; NONCE_BYTES],
            },
        )
    }

    fn open_frame(opener: &mut Opener, frame: &[u8]) -> Result<Vec<u8>, OpenError> {
        let mut payload = frame[LENGTH_PREFIX_BYTES..].to_vec();
        opener.open(&mut payload).map(|()| payload)
    }

    #[test]
    fn frames_open_in_order_and_nothing_else_does() {
        let keys = keys("s", 1);
        let mut sealer = Sealer::new(&keys.client_to_server);
        let first = sealer.seal(b"first record").expect("seal");
        let second = sealer.seal(b"second record").expect("seal");
        assert_eq!(&first[..4], &((12 + TAG_BYTES) as u32).to_be_bytes());
        assert!(!first.windows(5).any(|w| w == b"first"), "the record is not in clear");

        let mut opener = Opener::new(&keys.client_to_server);
        assert_eq!(open_frame(&mut opener, &first).expect("first"), b"first record");
        assert_eq!(open_frame(&mut opener, &second).expect("second"), b"second record");

        // Replayed, reordered, flipped, truncated, the other direction's key, another connection.
        let mut replay = Opener::new(&keys.client_to_server);
        open_frame(&mut replay, &first).expect("first");
        assert!(matches!(open_frame(&mut replay, &first), Err(OpenError::Forged)));
        let mut reordered = Opener::new(&keys.client_to_server);
        assert!(matches!(open_frame(&mut reordered, &second), Err(OpenError::Forged)));
        assert!(
            matches!(open_frame(&mut reordered, &first), Err(OpenError::Forged)),
            "an opener that failed stays failed"
        );
        for position in [4, first.len() / 2, first.len() - 1] {
            let mut flipped = first.clone();
            flipped[position] ^= 0x80;
            let mut opener = Opener::new(&keys.client_to_server);
            assert!(matches!(open_frame(&mut opener, &flipped), Err(OpenError::Forged)));
        }
        let mut opener = Opener::new(&keys.client_to_server);
        assert!(matches!(open_frame(&mut opener, &first[..10]), Err(OpenError::Forged)));
        let mut opener = Opener::new(&keys.server_to_client);
        assert!(matches!(open_frame(&mut opener, &first), Err(OpenError::Forged)));
        let other = self::keys("s", 2);
        let mut opener = Opener::new(&other.client_to_server);
        assert!(matches!(open_frame(&mut opener, &first), Err(OpenError::Forged)));
        let other_secret = self::keys("t", 1);
        let mut opener = Opener::new(&other_secret.client_to_server);
        assert!(matches!(open_frame(&mut opener, &first), Err(OpenError::Forged)));
    }

    #[tokio::test]
    async fn the_reader_bounds_the_record_and_not_the_tag() {
        let keys = keys("s", 1);
        let mut sealer = Sealer::new(&keys.server_to_client);
        let frame = sealer.seal(&[7u8; 64]).expect("seal");
        let mut opener = Opener::new(&keys.server_to_client);
        assert_eq!(
            opener.read(&mut &frame[..], 64).await.expect("at the limit"),
            vec![7u8; 64]
        );
        let frame = sealer.seal(&[7u8; 65]).expect("seal");
        assert!(matches!(
            opener.read(&mut &frame[..], 64).await,
            Err(OpenError::Frame(FrameError::TooLarge { .. }))
        ));
        assert!(format!("{:?}", keys.client_to_server).contains("redacted"));
    }
}
