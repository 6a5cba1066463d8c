//! Login sessions. A session token is 256 random bits (base64url); the store keeps only its SHA-256
//! under `sessions/<hex>`, attached to a store lease so that expired sessions vanish by themselves.
//! Every request checks its session in the store, so any replica accepts a session made by another
//! and a logout takes effect everywhere at once.

use base64::Engine;
use kuboard_storage::{PutRequest, StoreError};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::app_store::AppStore;

const SESSIONS_PREFIX: &str = "sessions/";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub username: String,
    pub created_at: u64,
    /// Seconds since the Unix epoch after which the session is refused, whatever the lease says.
    pub expires_at: u64,
    /// The store lease the key is attached to, `0` for none.
    #[serde(default)]
    pub lease: i64,
    /// Copied from the user at login and cleared by a password change made with this session:
    /// while set, the session may only read `me`, change the password and log out.
    #[serde(default)]
    pub must_change_password: bool,
    /// SHA-256 (hex) of the CSRF token handed out at login; cookie-authenticated changes must
    /// present the token. Empty for sessions that cannot be used with a cookie (access keys).
    #[serde(default)]
    pub csrf_hash: String,
    /// True when the caller presented a long-lived access key rather than a login session.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub access_key: bool,
}

/// A live session found for a presented token.
#[derive(Debug, Clone)]
pub struct Session {
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    pub record: SessionRecord,
}

/// A new random token: 32 bytes from the OS, base64url without padding (43 characters).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub fn session_key(token_hash: &str) -> String {
    format!("{SESSIONS_PREFIX}{token_hash}")
}

/// True when `token` could have been made by [`new_token`]; anything else is refused unread.
pub fn is_well_formed_token(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Creates a session for `username` lasting `ttl_seconds`; returns the token (shown once) and the record.
#[cfg(test)]
pub async fn create_session(
    store: &AppStore,
    username: &str,
    ttl_seconds: u64,
    now: u64,
) -> Result<(String, SessionRecord), StoreError> {
    create_session_with(store, username, ttl_seconds, now, false, "").await
}

/// A new session as [`create_session`], carrying the user's must-change-password flag and the
/// hash of the session's CSRF token.
pub async fn create_session_with(
    store: &AppStore,
    username: &str,
    ttl_seconds: u64,
    now: u64,
    must_change_password: bool,
    csrf_hash: &str,
) -> Result<(String, SessionRecord), StoreError> {
    let ttl = i64::try_from(ttl_seconds).map_err(|_| StoreError::InvalidArgument("session ttl too large".into()))?;
    let lease = store.lease_grant(ttl).await?.id;
    let token = new_token();
    let record = SessionRecord {
        username: username.to_string(),
        created_at: now,
        expires_at: now + ttl_seconds,
        lease,
        must_change_password,
        csrf_hash: csrf_hash.to_string(),
        access_key: false,
    };
    let value = serde_json::to_vec(&record).expect("a session record always serializes");
    store
        .put(PutRequest {
            key: session_key(&token_hash(&token)).into_bytes(),
            value,
            lease,
            prev_kv: false,
        })
        .await?;
    Ok((token, record))
}

/// The live session of `token`, if any. An expired session found in the store is removed. An
/// access key (`kbak_…`) is accepted too, as a session that never needs a password change.
pub async fn find_session(store: &AppStore, token: &str, now: u64) -> Result<Option<Session>, StoreError> {
    if crate::auth::access_keys::looks_like_access_key(token) {
        return crate::auth::access_keys::find_access_key_session(store, token, now).await;
    }
    if !is_well_formed_token(token) {
        return Ok(None);
    }
    let token_hash = token_hash(token);
    let Some(kv) = store.get(&session_key(&token_hash)).await? else {
        return Ok(None);
    };
    let record: SessionRecord = match serde_json::from_slice(&kv.value) {
        Ok(record) => record,
        Err(error) => {
            tracing::warn!(%error, "a stored session record is not valid; treating it as absent");
            return Ok(None);
        }
    };
    if record.expires_at <= now {
        delete_session(store, &token_hash, record.lease).await?;
        return Ok(None);
    }
    Ok(Some(Session { token_hash, record }))
}

/// Ends a session: deletes its key and revokes its lease (a lease already gone is fine).
pub async fn delete_session(store: &AppStore, token_hash: &str, lease: i64) -> Result<(), StoreError> {
    store.delete_key(&session_key(token_hash)).await?;
    if lease != 0 {
        match store.lease_revoke(lease).await {
            Ok(_) | Err(StoreError::LeaseNotFound(_)) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Clears the must-change-password flag of a session after its user chose a new password. A
/// session that vanished or changed since it was read is left alone.
pub async fn clear_must_change_password(store: &AppStore, session: &Session) -> Result<(), StoreError> {
    if session.record.access_key {
        return Ok(());
    }
    let key = session_key(&session.token_hash);
    let Some(kv) = store.get(&key).await? else {
        return Ok(());
    };
    let Ok(mut record) = serde_json::from_slice::<SessionRecord>(&kv.value) else {
        return Ok(());
    };
    record.must_change_password = false;
    let value = serde_json::to_vec(&record).expect("a session record always serializes");
    let put = PutRequest {
        lease: record.lease,
        ..PutRequest::new(key, value)
    };
    store.replace_if_unchanged(kv.mod_revision, put).await?;
    Ok(())
}

/// Every session of `username`: its token hash and lease.
pub async fn user_sessions(store: &AppStore, username: &str) -> Result<Vec<(String, i64)>, StoreError> {
    let mut found = Vec::new();
    for kv in store.list(SESSIONS_PREFIX).await? {
        let Ok(record) = serde_json::from_slice::<SessionRecord>(&kv.value) else {
            continue;
        };
        let key = String::from_utf8_lossy(&kv.key);
        if let Some(hash) = key.strip_prefix(SESSIONS_PREFIX) {
            if record.username == username {
                found.push((hash.to_string(), record.lease));
            }
        }
    }
    Ok(found)
}

/// Ends every session of `username` except the one with `keep_token_hash`. Returns how many ended.
pub async fn delete_other_sessions(
    store: &AppStore,
    username: &str,
    keep_token_hash: &str,
) -> Result<usize, StoreError> {
    let mut ended = 0;
    for (hash, lease) in user_sessions(store, username).await? {
        if hash != keep_token_hash {
            delete_session(store, &hash, lease).await?;
            ended += 1;
        }
    }
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_well_formed() {
        let first = new_token();
        let second = new_token();
        assert_ne!(first, second);
        assert!(is_well_formed_token(&first), "{first}");
        assert!(!is_well_formed_token("short"));
        assert!(!is_well_formed_token(&format!("{}!", &first[..42])));
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(session_key("ab"), "sessions/ab");
    }
}
