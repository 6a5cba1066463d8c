//! The three patch formats of the apiserver: JSON merge patch, JSON patch and strategic merge patch.
//!
//! The strategic merge patch covers what kubectl's client-side apply and `kubectl patch` produce for
//! the served types: lists of containers, volumes, env, ports, mounts, conditions, owner references
//! merged by their key, `$patch: delete|replace`, `$deleteFromPrimitiveList/…`, `$setElementOrder/…`
//! (applied as an order), `$retainKeys`; other lists are replaced, as the apiserver does for lists
//! without a patch strategy.

use serde_json::{Map, Value};

use crate::status::ApiError;

/// The patch content types the fake understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    Strategic,
    /// Server-side apply; approximated as "create if absent, else strategic merge of the applied object".
    Apply,
}

impl PatchType {
    pub fn from_content_type(content_type: &str) -> Option<PatchType> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        match essence {
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/json-patch+json" => Some(PatchType::Json),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Some(PatchType::Apply),
            _ => None,
        }
    }
}

/// Applies `patch` of `patch_type` to `target` and returns the patched document.
pub fn apply_patch(target: &Value, patch_type: PatchType, patch: &Value) -> Result<Value, ApiError> {
    let mut document = target.clone();
    match patch_type {
        PatchType::Merge => json_patch::merge(&mut document, patch),
        PatchType::Json => {
            let operations: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("the JSON patch is malformed: {e}")))?;
            json_patch::patch(&mut document, &operations)
                .map_err(|e| ApiError::new(422, "Invalid", format!("the JSON patch cannot be applied: {e}")))?;
        }
        PatchType::Strategic | PatchType::Apply => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("a strategic merge patch must be a JSON object"));
            }
            strategic_merge(&mut document, patch);
        }
    }
    Ok(document)
}

/// The key by which items of the list field `field` are merged, if the field has the merge strategy.
fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    match field {
        "containers" | "initContainers" | "ephemeralContainers" | "volumes" | "env" | "imagePullSecrets" => {
            Some("name")
        }
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        "hostAliases" => Some("ip"),
        "topologySpreadConstraints" => Some("topologyKey"),
        // Container ports merge by containerPort, service ports by port.
        "ports" => {
            if items.iter().any(|item| item.get("containerPort").is_some()) {
                Some("containerPort")
            } else {
                Some("port")
            }
        }
        _ => None,
    }
}

/// Fields whose primitive lists are merged as sets rather than replaced.
fn is_primitive_set(field: &str) -> bool {
    matches!(field, "finalizers")
}

fn strategic_merge(target: &mut Value, patch: &Value) {
    let Some(patch_map) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    match patch_map.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut replacement = patch_map.clone();
            replacement.remove("$patch");
            *target = Value::Object(replacement);
            return;
        }
        Some("delete") => {
            *target = Value::Null;
            return;
        }
        _ => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target_map = target.as_object_mut().expect("the target was just made an object");
    let mut orders: Vec<(String, Vec<Value>)> = Vec::new();
    for (key, value) in patch_map {
        if key == "$patch" || key == "$retainKeys" {
            continue;
        }
        if let Some(list_field) = key.strip_prefix("$setElementOrder/") {
            if let Some(order) = value.as_array() {
                orders.push((list_field.to_string(), order.clone()));
            }
            continue;
        }
        if let Some(list_field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(remove)) = (target_map.get_mut(list_field), value.as_array()) {
                list.retain(|item| !remove.contains(item));
            }
            continue;
        }
        if value.is_null() {
            target_map.remove(key);
            continue;
        }
        match value {
            Value::Object(_) => {
                let entry = target_map.entry(key.clone()).or_insert(Value::Null);
                strategic_merge(entry, value);
                if entry.is_null() {
                    target_map.remove(key);
                }
            }
            Value::Array(patch_items) => {
                let current = target_map.remove(key);
                let merged = merge_list(key, current, patch_items);
                target_map.insert(key.clone(), merged);
            }
            _ => {
                target_map.insert(key.clone(), value.clone());
            }
        }
    }
    for (list_field, order) in orders {
        if let Some(Value::Array(list)) = target_map.get_mut(&list_field) {
            reorder(&list_field, list, &order);
        }
    }
}

fn merge_list(field: &str, current: Option<Value>, patch_items: &[Value]) -> Value {
    let mut current_items = match current {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    if patch_items
        .iter()
        .any(|item| item.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Value::Array(
            patch_items
                .iter()
                .filter(|item| item.get("$patch").is_none())
                .cloned()
                .collect(),
        );
    }
    if is_primitive_set(field) {
        for item in patch_items {
            if !current_items.contains(item) {
                current_items.push(item.clone());
            }
        }
        return Value::Array(current_items);
    }
    let Some(key) = merge_key(field, patch_items) else {
        return Value::Array(patch_items.to_vec());
    };
    for patch_item in patch_items {
        let Some(id) = patch_item.get(key) else {
            current_items.push(patch_item.clone());
            continue;
        };
        let position = current_items.iter().position(|item| item.get(key) == Some(id));
        let deleting = patch_item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, deleting) {
            (Some(index), true) => {
                current_items.remove(index);
            }
            (None, true) => {}
            (Some(index), false) => strategic_merge(&mut current_items[index], patch_item),
            (None, false) => {
                let mut added = Value::Null;
                strategic_merge(&mut added, patch_item);
                current_items.push(added);
            }
        }
    }
    Value::Array(current_items)
}

/// Orders `list` as `$setElementOrder` says; items it does not name keep their place after the named ones.
fn reorder(field: &str, list: &mut Vec<Value>, order: &[Value]) {
    let Some(key) = merge_key(field, order) else {
        return;
    };
    let mut ordered = Vec::with_capacity(list.len());
    for wanted in order {
        if let Some(index) = list.iter().position(|item| item.get(key) == wanted.get(key)) {
            ordered.push(list.remove(index));
        }
    }
    ordered.append(list);
    *list = ordered;
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(target: Value, patch: Value, expected: Value) {
        let patched = apply_patch(&target, PatchType::Strategic, &patch).expect("the patch applies");
        assert_eq!(patched, expected);
    }

    #[test]
    fn containers_merge_by_name_and_other_lists_replace() {
        check(
            json!({"spec": {"containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:1"}],
                            "tolerations": [{"key": "k"}]}}),
            json!({"spec": {"containers": [{"name": "b", "image": "y:2"}], "tolerations": []}}),
            json!({"spec": {"containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:2"}],
                            "tolerations": []}}),
        );
    }

    #[test]
    fn directives_delete_replace_and_order() {
        check(
            json!({"metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["f1", "f2"]},
                   "spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
            json!({"metadata": {"labels": {"a": null}, "$deleteFromPrimitiveList/finalizers": ["f1"]},
                   "spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "b"}],
                            "containers": [{"name": "a", "$patch": "delete"}, {"name": "c"}]}}),
            json!({"metadata": {"labels": {"b": "2"}, "finalizers": ["f2"]},
                   "spec": {"containers": [{"name": "c"}, {"name": "b"}]}}),
        );
        check(
            json!({"data": {"a": "1"}}),
            json!({"data": {"$patch": "replace", "b": "2"}}),
            json!({"data": {"b": "2"}}),
        );
    }

    #[test]
    fn merge_and_json_patches() {
        let target = json!({"a": {"b": 1, "c": 2}});
        let merged = apply_patch(&target, PatchType::Merge, &json!({"a": {"b": null, "d": 3}})).expect("applies");
        assert_eq!(merged, json!({"a": {"c": 2, "d": 3}}));
        let patched = apply_patch(
            &target,
            PatchType::Json,
            &json!([{"op": "replace", "path": "/a/b", "value": 5}]),
        )
        .expect("applies");
        assert_eq!(patched, json!({"a": {"b": 5, "c": 2}}));
        let failed = apply_patch(
            &target,
            PatchType::Json,
            &json!([{"op": "test", "path": "/a/b", "value": 9}]),
        );
        assert_eq!(failed.map_err(|e| e.code), Err(422));
    }
}
