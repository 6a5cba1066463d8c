//! Role bindings in the store, one record per binding under `role_bindings/<id>`.

use kuboard_storage::{PutRequest, StoreError};
use rand::RngCore;

use crate::app_store::AppStore;
use crate::auth::roles::RoleBinding;

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

/// Deletes one binding; false when there was none with that id.
pub async fn delete_role_binding(store: &AppStore, id: &str) -> Result<bool, StoreError> {
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(false);
    }
    Ok(store.delete_key(&role_binding_key(id)).await?.deleted > 0)
}
