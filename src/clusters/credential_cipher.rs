//! [`CredentialCipher`]: seals cluster credentials for the store. The key is derived from the
//! shared `KUBOARD_SSO_CLIENT_SECRET` with HKDF-SHA256, so every replica with the same secret can
//! open what any replica sealed. Each record gets a fresh random 96-bit nonce; the record's name is
//! authenticated data, so a sealed box moved to another record does not open.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use hkdf::Hkdf;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The format of [`SealedBox`] this build writes. Older versions stay readable when it changes.
pub const SEALED_BOX_VERSION: u32 = 1;
const HKDF_SALT: &[u8] = b"kuboard-rs/cluster-credentials";
const HKDF_INFO: &[u8] = b"aes-256-gcm key v1";

/// Ciphertext as stored: version, nonce and ciphertext with its tag (both base64).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedBox {
    pub version: u32,
    pub nonce: String,
    pub ciphertext: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("sealed with format version {0}, which this build does not know")]
    UnknownVersion(u32),
    #[error("the sealed box is malformed")]
    Malformed,
    /// Wrong key (another `KUBOARD_SSO_CLIENT_SECRET`), another record, or tampering.
    #[error("the sealed box does not open with this key (is KUBOARD_SSO_CLIENT_SECRET the same on every replica?)")]
    Rejected,
}

#[derive(Clone)]
pub struct CredentialCipher {
    cipher: Aes256Gcm,
}

impl fmt::Debug for CredentialCipher {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("CredentialCipher(<redacted>)")
    }
}

impl CredentialCipher {
    pub fn from_secret(secret: &str) -> CredentialCipher {
        let hkdf = Hkdf::<Sha256>::new(Some(HKDF_SALT), secret.as_bytes());
        let mut key = [0u8; 32];
        hkdf.expand(HKDF_INFO, &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        CredentialCipher {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)),
        }
    }

    /// Encrypts `plaintext` bound to `context` (e.g. the record's key).
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> SealedBox {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .expect("AES-GCM encrypts any message shorter than 64 GiB");
        let b64 = base64::engine::general_purpose::STANDARD;
        SealedBox {
            version: SEALED_BOX_VERSION,
            nonce: b64.encode(nonce),
            ciphertext: b64.encode(ciphertext),
        }
    }

    pub fn open(&self, context: &[u8], sealed: &SealedBox) -> Result<Vec<u8>, OpenError> {
        if sealed.version != SEALED_BOX_VERSION {
            return Err(OpenError::UnknownVersion(sealed.version));
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let nonce = b64.decode(&sealed.nonce).map_err(|_| OpenError::Malformed)?;
        let ciphertext = b64.decode(&sealed.ciphertext).map_err(|_| OpenError::Malformed)?;
        if nonce.len() != 12 {
            return Err(OpenError::Malformed);
        }
        self.cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: context,
                },
            )
            .map_err(|_| OpenError::Rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open() {
        let cipher = CredentialCipher::from_secret("shared secret");
        let first = cipher.seal(b"clusters/prod", b"token-value");
        let second = cipher.seal(b"clusters/prod", b"token-value");
        assert_ne!(first.nonce, second.nonce, "every seal has its own nonce");
        assert_ne!(first.ciphertext, second.ciphertext);
        assert!(!first.ciphertext.contains("token-value"));
        assert_eq!(
            cipher.open(b"clusters/prod", &first).as_deref(),
            Ok(&b"token-value"[..])
        );
        // Another record, another key, a tampered box or an unknown version do not open.
        assert_eq!(cipher.open(b"clusters/test", &first), Err(OpenError::Rejected));
        let other = CredentialCipher::from_secret("another secret");
        assert_eq!(other.open(b"clusters/prod", &first), Err(OpenError::Rejected));
        let mut tampered = first.clone();
        tampered.ciphertext = base64::engine::general_purpose::STANDARD.encode(b"xxxxxxxxxxxxxxxxxxxxxxxxxxx");
        assert_eq!(cipher.open(b"clusters/prod", &tampered), Err(OpenError::Rejected));
        let future = SealedBox {
            version: 2,
            ..first.clone()
        };
        assert_eq!(
            cipher.open(b"clusters/prod", &future),
            Err(OpenError::UnknownVersion(2))
        );
        assert!(!format!("{cipher:?}").contains("shared"));
    }
}
