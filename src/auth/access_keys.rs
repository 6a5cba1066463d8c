//! Long-lived access keys for API clients. A key reads `kbak_<id>_<secret>`: the id names the
//! record `access_keys/<id>`, which keeps only the SHA-256 of the secret. The whole key is shown
//! once, at creation. A key is presented as a bearer token and works until revoked, expired, or
//! its user is disabled or deleted.

use base64::Engine;
use kuboard_storage::{DeleteRangeRequest, PutRequest, StoreError, TxnOp};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::app_store::AppStore;
use crate::auth::sessions::{Session, SessionRecord};
use crate::auth::users;

const ACCESS_KEYS_PREFIX: &str = "access_keys/";
const KEY_MARKER: &str = "kbak_";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKeyRecord {
    pub id: String,
    pub username: String,
    /// What the key is for, as its owner named it.
    pub name: String,
    /// SHA-256 (hex) of the secret part.
    pub secret_hash: String,
    pub created_at: u64,
    /// Seconds since the Unix epoch after which the key is refused; `None` for never.
    pub expires_at: Option<u64>,
}

pub fn access_key_key(id: &str) -> String {
    format!("{ACCESS_KEYS_PREFIX}{id}")
}

/// True when `token` has the shape of an access key (it is then never looked up as a session).
pub fn looks_like_access_key(token: &str) -> bool {
    token.starts_with(KEY_MARKER)
}

/// Splits `kbak_<16 hex>_<43 base64url>` into id and secret.
fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(KEY_MARKER)?;
    let (id, secret) = rest.split_once('_')?;
    let id_ok = id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    (id_ok && crate::auth::sessions::is_well_formed_token(secret)).then_some((id, secret))
}

fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Creates a key for `username`; returns the whole key (to be shown once) and its record.
pub async fn create_access_key(
    store: &AppStore,
    username: &str,
    name: &str,
    now: u64,
    expires_at: Option<u64>,
) -> Result<(String, AccessKeyRecord), StoreError> {
    let mut id_bytes = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut id_bytes);
    let id = hex::encode(id_bytes);
    let mut secret_bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret_bytes);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret_bytes);
    let record = AccessKeyRecord {
        id: id.clone(),
        username: username.to_string(),
        name: name.to_string(),
        secret_hash: secret_hash(&secret),
        created_at: now,
        expires_at,
    };
    let value = serde_json::to_vec(&record).expect("an access key record always serializes");
    store.put(PutRequest::new(access_key_key(&id), value)).await?;
    Ok((format!("{KEY_MARKER}{id}_{secret}"), record))
}

/// Every access key, or those of one user.
pub async fn list_access_keys(store: &AppStore, username: Option<&str>) -> Result<Vec<AccessKeyRecord>, StoreError> {
    let mut keys = Vec::new();
    for kv in store.list(ACCESS_KEYS_PREFIX).await? {
        match serde_json::from_slice::<AccessKeyRecord>(&kv.value) {
            Ok(record) if username.is_none_or(|username| record.username == username) => keys.push(record),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "skipping an access key record that is not valid"),
        }
    }
    Ok(keys)
}

pub async fn get_access_key(store: &AppStore, id: &str) -> Result<Option<AccessKeyRecord>, StoreError> {
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    Ok(store
        .get(&access_key_key(id))
        .await?
        .and_then(|kv| serde_json::from_slice(&kv.value).ok()))
}

pub async fn delete_access_key(store: &AppStore, id: &str) -> Result<bool, StoreError> {
    Ok(store.delete_key(&access_key_key(id)).await?.deleted > 0)
}

/// The deletions of every key of `username`, for the transaction that deletes the user.
pub async fn user_access_key_deletions(store: &AppStore, username: &str) -> Result<Vec<TxnOp>, StoreError> {
    Ok(list_access_keys(store, Some(username))
        .await?
        .into_iter()
        .map(|record| TxnOp::DeleteRange(DeleteRangeRequest::key(access_key_key(&record.id))))
        .collect())
}

/// The session an access key stands for, if the key is live and its user enabled.
pub async fn find_access_key_session(store: &AppStore, token: &str, now: u64) -> Result<Option<Session>, StoreError> {
    let Some((id, secret)) = parse(token) else {
        return Ok(None);
    };
    let Some(record) = get_access_key(store, id).await? else {
        return Ok(None);
    };
    // Both sides are SHA-256 digests of secrets: comparing them leaks nothing usable.
    if record.secret_hash != secret_hash(secret) || record.expires_at.is_some_and(|expires| expires <= now) {
        return Ok(None);
    }
    let user = match users::get_user(store, &record.username).await {
        Ok(Some(user)) if !user.record.disabled => user,
        Ok(_) => return Ok(None),
        Err(users::UserError::Store(error)) => return Err(error),
        Err(error) => {
            tracing::warn!(%error, "the user of an access key cannot be read; refusing the key");
            return Ok(None);
        }
    };
    Ok(Some(Session {
        token_hash: format!("access-key:{id}"),
        record: SessionRecord {
            username: user.record.username,
            created_at: record.created_at,
            expires_at: record.expires_at.unwrap_or(u64::MAX),
            lease: 0,
            must_change_password: false,
            csrf_hash: String::new(),
            access_key: true,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_shape() {
        let secret = crate::auth::sessions::new_token();
        let key = format!("kbak_0123456789abcdef_{secret}");
        assert_eq!(parse(&key), Some(("0123456789abcdef", secret.as_str())));
        assert!(looks_like_access_key(&key));
        assert_eq!(parse("kbak_0123456789abcdef_short"), None);
        assert_eq!(parse(&format!("kbak_0123456789ABCDEF_{secret}")), None);
        assert_eq!(parse(&format!("kbak_../x_{secret}")), None);
        assert!(!looks_like_access_key(&secret));
    }
}
