//! Password hashing with argon2id in PHC string form.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The shortest password the server accepts as a new password.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Bounds the hashing work one request can ask for.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Memory one argon2id computation takes with the crate's default parameters (m = 19 MiB).
const HASH_MEMORY_BYTES: u64 = 19 * 1024 * 1024;
/// How long a login waits for a hashing slot before it is answered "busy".
pub const HASHING_QUEUE_WAIT: Duration = Duration::from_secs(1);
/// The `Retry-After` of a login refused because every hashing slot stayed taken.
pub const HASHING_BUSY_RETRY_SECONDS: u64 = 1;

/// Why a bounded verification did not run.
#[derive(Debug, thiserror::Error)]
pub enum HashingError {
    #[error("every password hashing slot stayed taken for {0:?}")]
    Busy(Duration),
    #[error("password hashing task failed: {0}")]
    Task(String),
}

/// How many argon2id computations may run at once in this process: one per core (more only
/// queue for the CPU while each holds 19 MiB), and no more than a 32nd of the memory can hold.
/// Process-wide on purpose: the memory and cores it protects are the process's, whichever route
/// or command asks for a hash.
pub fn hashing_limit() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let by_memory = total_memory_bytes().map_or(usize::MAX, |total| {
        usize::try_from(total / (32 * HASH_MEMORY_BYTES)).unwrap_or(usize::MAX)
    });
    cores.min(by_memory).clamp(1, 16)
}

fn total_memory_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn hashing_slots() -> Arc<Semaphore> {
    static SLOTS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    SLOTS.get_or_init(|| Arc::new(Semaphore::new(hashing_limit()))).clone()
}

/// Waits for a hashing slot as long as it takes (for work an administrator asked for).
pub async fn hashing_slot() -> OwnedSemaphorePermit {
    hashing_slots()
        .acquire_owned()
        .await
        .expect("the hashing semaphore is never closed")
}

/// Verifies `password` against `phc` (or spends the same work against the dummy hash when there
/// is no user) on a blocking thread holding a hashing slot, waiting at most `wait` for one. The
/// slot is held by the blocking work itself, so a caller that goes away does not free it early.
pub async fn verify_bounded(password: String, phc: Option<String>, wait: Duration) -> Result<bool, HashingError> {
    let slot = tokio::time::timeout(wait, hashing_slots().acquire_owned())
        .await
        .map_err(|_| HashingError::Busy(wait))?
        .expect("the hashing semaphore is never closed");
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        match phc {
            Some(phc) => verify_password(&password, &phc),
            None => {
                verify_against_dummy(&password);
                false
            }
        }
    })
    .await
    .map_err(|error| HashingError::Task(error.to_string()))
}

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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_verification_waits_no_longer_than_asked_for_a_slot() {
        let held: Vec<_> = futures::future::join_all((0..hashing_limit()).map(|_| hashing_slot())).await;
        let started = std::time::Instant::now();
        let refused = verify_bounded("x".into(), None, Duration::from_millis(200)).await;
        assert!(matches!(refused, Err(HashingError::Busy(_))), "{refused:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(held);
        assert!(!verify_bounded("x".into(), None, Duration::from_secs(60))
            .await
            .expect("a slot"));
    }

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
