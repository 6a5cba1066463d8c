//! Role bindings in the store, one record per binding under `role_bindings/<id>`.

use kuboard_storage::{DeleteRangeRequest, PutRequest, StoreError, TxnOp};
use rand::RngCore;

use crate::app_store::AppStore;
use crate::auth::roles::{RoleBinding, Subject};

const ROLE_BINDINGS_PREFIX: &str = "role_bindings/";

pub fn role_binding_key(id: &str) -> String {
    format!("{ROLE_BINDINGS_PREFIX}{id}")
}

/// A new random binding id (16 hex characters).
pub fn new_binding_id() -> String {
    let mut bytes = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

pub async fn put_role_binding(store: &AppStore, binding: &RoleBinding) -> Result<(), StoreError> {
    let value = serde_json::to_vec(binding).expect("a role binding always serializes");
    store.put(PutRequest::new(role_binding_key(&binding.id), value)).await?;
    Ok(())
}

pub async fn list_role_bindings(store: &AppStore) -> Result<Vec<RoleBinding>, StoreError> {
    let mut bindings = Vec::new();
    for kv in store.list(ROLE_BINDINGS_PREFIX).await? {
        match serde_json::from_slice::<RoleBinding>(&kv.value) {
            Ok(binding) => bindings.push(binding),
            Err(error) => tracing::warn!(%error, "skipping a role binding record that is not valid"),
        }
    }
    Ok(bindings)
}

/// The deletions of every binding whose subject is the user `username` (not its groups), for the
/// transaction that deletes the user. A binding made while that transaction runs is kept, as one
/// made for a user that does not exist yet is.
pub async fn user_binding_deletions(store: &AppStore, username: &str) -> Result<Vec<TxnOp>, StoreError> {
    Ok(list_role_bindings(store)
        .await?
        .into_iter()
        .filter(|binding| matches!(&binding.subject, Subject::User(name) if name == username))
        .map(|binding| TxnOp::DeleteRange(DeleteRangeRequest::key(role_binding_key(&binding.id))))
        .collect())
}

/// Deletes one binding; false when there was none with that id.
pub async fn delete_role_binding(store: &AppStore, id: &str) -> Result<bool, StoreError> {
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(false);
    }
    Ok(store.delete_key(&role_binding_key(id)).await?.deleted > 0)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::auth::roles::{kubernetes_identity, ClusterRole, GlobalRole, UserView};
    use crate::auth::users::{self, UserRecord};
    use crate::memory_store::MemoryStore;
    use crate::metrics::Metrics;
    use crate::store_backend::StoreBackend;

    fn user(name: &str) -> UserRecord {
        UserRecord {
            username: name.into(),
            password_hash: "$argon2id$not-checked-here".into(),
            must_change_password: false,
            created_at: 1,
            updated_at: 1,
            role: GlobalRole::Viewer,
            groups: vec![],
            disabled: false,
        }
    }

    fn binding(subject: Subject) -> RoleBinding {
        RoleBinding {
            id: new_binding_id(),
            subject,
            cluster: "c".into(),
            namespace: Some("dev".into()),
            role: ClusterRole::Admin,
            created_at: 1,
        }
    }

    #[tokio::test]
    async fn a_deleted_users_bindings_are_not_inherited_by_a_new_user_of_the_same_name() {
        let store = AppStore::new(
            Arc::new(StoreBackend::Memory(MemoryStore::default())),
            Arc::new(Metrics::new(1)),
        );
        assert!(users::create_user(&store, &user("bob")).await.expect("stored"));
        let bobs = binding(Subject::User("bob".into()));
        let alices = binding(Subject::User("alice".into()));
        let group = binding(Subject::Group("bob".into()));
        for binding in [&bobs, &alices, &group] {
            put_role_binding(&store, binding).await.expect("stored");
        }

        let read = users::get_user(&store, "bob").await.expect("read").expect("bob exists");
        assert!(users::delete_user(&store, &read).await.expect("deleted"));
        assert!(users::create_user(&store, &user("bob")).await.expect("stored again"));

        let left: Vec<String> = list_role_bindings(&store)
            .await
            .expect("listed")
            .into_iter()
            .map(|binding| binding.id)
            .collect();
        assert!(!left.contains(&bobs.id), "the deleted bob's binding survived: {left:?}");
        assert!(left.contains(&alices.id) && left.contains(&group.id), "{left:?}");
        let bindings = list_role_bindings(&store).await.expect("listed");
        let identity = kubernetes_identity(
            &UserView {
                username: "bob",
                role: GlobalRole::Viewer,
                groups: &[],
                disabled: false,
            },
            &bindings,
            "c",
            Some("dev"),
        )
        .expect("an identity");
        assert!(
            !identity
                .groups
                .iter()
                .any(|group| group.starts_with("kuboard:namespace:")),
            "the new bob inherited {identity:?}"
        );
    }

    #[tokio::test]
    async fn a_user_changed_since_it_was_read_keeps_its_bindings() {
        let store = AppStore::new(
            Arc::new(StoreBackend::Memory(MemoryStore::default())),
            Arc::new(Metrics::new(1)),
        );
        assert!(users::create_user(&store, &user("bob")).await.expect("stored"));
        let bobs = binding(Subject::User("bob".into()));
        put_role_binding(&store, &bobs).await.expect("stored");
        let read = users::get_user(&store, "bob").await.expect("read").expect("bob exists");
        let changed = UserRecord {
            disabled: true,
            ..read.record.clone()
        };
        assert!(users::replace_user(&store, &read, &changed).await.expect("replaced"));
        assert!(!users::delete_user(&store, &read).await.expect("refused"));
        let left = list_role_bindings(&store).await.expect("listed");
        assert_eq!(left.len(), 1, "nothing is deleted when the user changed meanwhile");
    }
}
