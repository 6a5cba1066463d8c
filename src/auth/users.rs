//! User records under `users/<name>`, stored as JSON.

use std::fmt;

use kuboard_storage::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, KeyValue, PutRequest, StoreError, TxnOp, TxnRequest,
};
use serde::{Deserialize, Serialize};

use crate::app_store::AppStore;
use crate::auth::roles::GlobalRole;
use crate::auth::{access_keys, password, role_bindings, sessions};

pub const ADMIN_USERNAME: &str = "admin";
const USERS_PREFIX: &str = "users/";

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// True until the user replaces a password someone else chose (the first-start default).
    pub must_change_password: bool,
    pub created_at: u64,
    pub updated_at: u64,
    /// Records written before roles existed have none: see [`UserRecord::effective_role`].
    #[serde(default)]
    pub role: GlobalRole,
    /// Group names, used by role bindings and passed to Kubernetes.
    #[serde(default)]
    pub groups: Vec<String>,
    /// A disabled user cannot log in and has no sessions or access keys that work.
    #[serde(default)]
    pub disabled: bool,
}

impl UserRecord {
    /// The first-start `admin` is always an administrator, so that nobody can lock everyone out.
    pub fn effective_role(&self) -> GlobalRole {
        if self.username == ADMIN_USERNAME {
            GlobalRole::Administrator
        } else {
            self.role
        }
    }
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("UserRecord")
            .field("username", &self.username)
            .field("password_hash", &"<redacted>")
            .field("must_change_password", &self.must_change_password)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("role", &self.role)
            .field("groups", &self.groups)
            .field("disabled", &self.disabled)
            .finish()
    }
}

/// A stored user together with the revision it was read at, for compare-and-swap updates.
#[derive(Debug, Clone)]
pub struct StoredUser {
    pub record: UserRecord,
    pub mod_revision: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored user record {key} is not valid: {message}")]
    Corrupt { key: String, message: String },
    #[error("hash password: {0}")]
    Hash(String),
    #[error("password hashing task failed: {0}")]
    Task(String),
}

pub fn user_key(username: &str) -> String {
    format!("{USERS_PREFIX}{username}")
}

/// True for names that may exist: `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`. Other names never reach the
/// store, so a name cannot spell another key.
pub fn is_valid_username(username: &str) -> bool {
    let mut chars = username.chars();
    matches!(chars.next(), Some(first) if first.is_ascii_alphanumeric())
        && username.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn decode(kv: &KeyValue) -> Result<UserRecord, UserError> {
    serde_json::from_slice(&kv.value).map_err(|error| UserError::Corrupt {
        key: String::from_utf8_lossy(&kv.key).into_owned(),
        message: error.to_string(),
    })
}

pub async fn get_user(store: &AppStore, username: &str) -> Result<Option<StoredUser>, UserError> {
    if !is_valid_username(username) {
        return Ok(None);
    }
    match store.get(&user_key(username)).await? {
        None => Ok(None),
        Some(kv) => Ok(Some(StoredUser {
            record: decode(&kv)?,
            mod_revision: kv.mod_revision,
        })),
    }
}

/// Hashes on a blocking thread: argon2 takes tens of milliseconds of CPU.
pub async fn hash_password_blocking(password: String) -> Result<String, UserError> {
    // A hashing slot bounds the memory of concurrent hashes (see `password::hashing_limit`).
    let slot = password::hashing_slot().await;
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        password::hash_password(&password)
    })
    .await
    .map_err(|error| UserError::Task(error.to_string()))?
    .map_err(|error| UserError::Hash(error.to_string()))
}

/// What [`ensure_admin`] found on start: the first-start `admin` user created now, or already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstStartAdmin {
    Created,
    AlreadyPresent,
}

/// Creates the `admin` user with the default password unless it already exists. The create is
/// [`AppStore::create_if_absent`], so replicas starting together cannot overwrite each other and a
/// restart never resets a changed password.
pub async fn ensure_admin(store: &AppStore, default_password: &str, now: u64) -> Result<FirstStartAdmin, UserError> {
    let key = user_key(ADMIN_USERNAME);
    if store.get(&key).await?.is_some() {
        return Ok(FirstStartAdmin::AlreadyPresent);
    }
    let record = UserRecord {
        username: ADMIN_USERNAME.to_string(),
        password_hash: hash_password_blocking(default_password.to_string()).await?,
        must_change_password: true,
        created_at: now,
        updated_at: now,
        role: GlobalRole::Administrator,
        groups: Vec::new(),
        disabled: false,
    };
    let value = serde_json::to_vec(&record).expect("a user record always serializes");
    Ok(if store.create_if_absent(PutRequest::new(key, value)).await? {
        FirstStartAdmin::Created
    } else {
        FirstStartAdmin::AlreadyPresent
    })
}

/// Replaces the user's record if nobody changed it since it was read. Returns false when someone did.
pub async fn replace_user(store: &AppStore, read: &StoredUser, record: &UserRecord) -> Result<bool, UserError> {
    let key = user_key(&record.username);
    let value = serde_json::to_vec(record).expect("a user record always serializes");
    Ok(store
        .replace_if_unchanged(read.mod_revision, PutRequest::new(key, value))
        .await?)
}

/// Creates a user unless the name is taken. Returns false when it is.
pub async fn create_user(store: &AppStore, record: &UserRecord) -> Result<bool, UserError> {
    let key = user_key(&record.username);
    let value = serde_json::to_vec(record).expect("a user record always serializes");
    Ok(store.create_if_absent(PutRequest::new(key, value)).await?)
}

/// Every user, by name. A record that does not decode is skipped with a warning.
pub async fn list_users(store: &AppStore) -> Result<Vec<UserRecord>, UserError> {
    let mut users = Vec::new();
    for kv in store.list(USERS_PREFIX).await? {
        match decode(&kv) {
            Ok(record) => users.push(record),
            Err(error) => tracing::warn!(%error, "skipping a user record that is not valid"),
        }
    }
    Ok(users)
}

/// Deletes the user if nobody changed it since it was read, and in the same transaction its
/// sessions, its access keys and the role bindings naming it, so that a later user of the same
/// name starts with none of them even if the replica dies right after. The sessions' leases are
/// revoked afterwards (a lease left behind only expires). Returns false, deleting nothing, when
/// someone changed the user.
pub async fn delete_user(store: &AppStore, read: &StoredUser) -> Result<bool, UserError> {
    let username = &read.record.username;
    let key = user_key(username);
    let user_sessions = sessions::user_sessions(store, username).await?;
    let mut deletions = vec![TxnOp::DeleteRange(DeleteRangeRequest::key(key.as_str()))];
    deletions.extend(
        user_sessions
            .iter()
            .map(|(hash, _)| TxnOp::DeleteRange(DeleteRangeRequest::key(sessions::session_key(hash)))),
    );
    deletions.extend(access_keys::user_access_key_deletions(store, username).await?);
    deletions.extend(role_bindings::user_binding_deletions(store, username).await?);
    let request = TxnRequest {
        // The user's key is unchanged since it was read (as `AppStore::delete_if_unchanged`).
        compare: vec![Compare::new(
            key.into_bytes(),
            CompareResult::Equal,
            CompareTarget::ModRevision(read.mod_revision),
        )],
        success: deletions,
        failure: vec![],
    };
    if !store.txn(request).await?.succeeded {
        return Ok(false);
    }
    for (_, lease) in user_sessions {
        if lease != 0 {
            if let Err(error) = store.lease_revoke(lease).await {
                tracing::debug!(%error, "the lease of a deleted user's session was not revoked; it will expire");
            }
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_rules() {
        for good in ["admin", "a", "ops.team-1_x", &"a".repeat(64)] {
            assert!(is_valid_username(good), "{good}");
        }
        for bad in ["", "-admin", "../admin", "admin/x", "ad min", "é", &"a".repeat(65)] {
            assert!(!is_valid_username(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_deleted_users_sessions_and_access_keys_go_in_the_same_transaction() {
        use std::sync::Arc;

        use crate::memory_store::MemoryStore;
        use crate::metrics::Metrics;
        use crate::store_backend::StoreBackend;

        let store = AppStore::new(
            Arc::new(StoreBackend::Memory(MemoryStore::default())),
            Arc::new(Metrics::new(1)),
        );
        let bob = UserRecord {
            username: "bob".into(),
            password_hash: "$argon2id$not-checked-here".into(),
            must_change_password: false,
            created_at: 1,
            updated_at: 1,
            role: GlobalRole::Viewer,
            groups: vec![],
            disabled: false,
        };
        assert!(create_user(&store, &bob).await.expect("stored"));
        let (session, _) = sessions::create_session(&store, "bob", 3600, 10)
            .await
            .expect("session");
        let (key, _) = access_keys::create_access_key(&store, "bob", "ci", 10, None)
            .await
            .expect("access key");
        let (alices, _) = sessions::create_session(&store, "alice", 3600, 10)
            .await
            .expect("session");

        let read = get_user(&store, "bob").await.expect("read").expect("bob exists");
        assert!(delete_user(&store, &read).await.expect("deleted"));
        // A new bob must not find the old bob's session or key working for him.
        assert!(create_user(&store, &bob).await.expect("stored again"));
        assert!(
            sessions::find_session(&store, &session, 11)
                .await
                .expect("looked up")
                .is_none(),
            "the deleted bob's session works for the new bob"
        );
        assert!(
            sessions::find_session(&store, &key, 11)
                .await
                .expect("looked up")
                .is_none(),
            "the deleted bob's access key works for the new bob"
        );
        assert!(sessions::find_session(&store, &alices, 11)
            .await
            .expect("looked up")
            .is_some());
    }

    #[test]
    fn debug_hides_the_hash() {
        let record = UserRecord {
            username: "admin".into(),
            password_hash: "$argon2id$secret".into(),
            must_change_password: true,
            created_at: 1,
            updated_at: 1,
            role: GlobalRole::Administrator,
            groups: vec![],
            disabled: false,
        };
        assert!(!format!("{record:?}").contains("argon2id"));
    }
}
