//! Password hashing with argon2id in PHC string form.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;

/// The shortest password the server accepts as a new password.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Bounds the hashing work one request can ask for.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Hashes a password with argon2id (the crate's default parameters) and a random salt.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let mut salt_bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt_bytes);
    let salt = SaltString::encode_b64(&salt_bytes)?;
    Ok(Argon2::default().hash_password(password.as_bytes(), &salt)?.to_string())
}

/// True when `password` matches the PHC string `phc`. A malformed stored hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// Spends the same work as a real verification, so that a login for an unknown user takes as
/// long as one with a wrong password and does not reveal which users exist.
pub fn verify_against_dummy(password: &str) {
    let _ = verify_password(password, dummy_hash());
}

/// Builds the hash [`verify_against_dummy`] checks against, so that the first unknown-user login
/// does not pay for building it (a timing difference of its own). The server calls it at start.
pub fn prepare_dummy_hash() {
    dummy_hash();
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password("no user has this password").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let hash = hash_password("Kuboard123").expect("hashing works");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("Kuboard123", &hash));
        assert!(!verify_password("kuboard123", &hash));
        assert!(!verify_password("Kuboard123", "not a phc string"));
        assert_ne!(
            hash,
            hash_password("Kuboard123").expect("hashing works"),
            "salts differ"
        );
    }

    #[test]
    fn the_dummy_hash_is_a_real_argon2id_hash_that_nobody_matches() {
        prepare_dummy_hash();
        let dummy = dummy_hash();
        assert!(dummy.starts_with("$argon2id$"), "{dummy}");
        assert!(PasswordHash::new(dummy).is_ok());
        assert!(!verify_password("", dummy));
        assert!(!verify_password("Kuboard123", dummy));
    }
}
