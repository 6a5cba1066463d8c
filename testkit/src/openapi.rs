//! A minimal OpenAPI v3 document: just enough for kubectl's checks.
//!
//! kubectl reads `/openapi/v3` to learn whether the server validates fields itself (a PATCH operation
//! of the kind with a `fieldValidation` query parameter); if so it sends `fieldValidation=Strict` and
//! skips client-side schema validation, which would need the full schemas. The PATCH operations do not
//! list the strategic-merge content type, so kubectl computes strategic merge patches from its
//! compiled-in types, which are exact for the served resources.

use serde_json::{json, Map, Value};

use crate::resources::{ResourceType, RESOURCES};

/// The group versions served, as OpenAPI v3 paths (`api/v1`, `apis/apps/v1`).
fn group_version_paths() -> Vec<String> {
    let mut paths: Vec<String> = RESOURCES
        .iter()
        .map(url_prefix)
        .map(|p| p.trim_start_matches('/').to_string())
        .collect();
    paths.dedup();
    paths
}

fn url_prefix(resource: &ResourceType) -> String {
    if resource.group.is_empty() {
        format!("/api/{}", resource.version)
    } else {
        format!("/apis/{}/{}", resource.group, resource.version)
    }
}

/// `/openapi/v3`: where each group version's document lives.
pub fn root() -> Value {
    let mut paths = Map::new();
    for path in group_version_paths() {
        let url = format!("/openapi/v3/{path}?hash={}", document_hash(&path));
        paths.insert(path, json!({"serverRelativeURL": url}));
    }
    json!({"paths": paths})
}

fn document_hash(path: &str) -> String {
    // The documents never change while a fake runs; a stable digest lets kubectl cache them.
    let digest = path.bytes().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{digest:016X}")
}

/// `/openapi/v3/{group version path}`, or `None` for a group version not served.
pub fn group_version_document(path: &str) -> Option<Value> {
    let served: Vec<&ResourceType> = RESOURCES
        .iter()
        .filter(|r| url_prefix(r).trim_start_matches('/') == path)
        .collect();
    if served.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    for resource in served {
        let item_path = if resource.namespaced {
            format!(
                "{}/namespaces/{{namespace}}/{}/{{name}}",
                url_prefix(resource),
                resource.plural
            )
        } else {
            format!("{}/{}/{{name}}", url_prefix(resource), resource.plural)
        };
        let patch = json!({
            "description": format!("partially update the specified {}", resource.kind),
            "operationId": format!("patch{}", resource.kind),
            "parameters": [
                {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}},
            ],
            "requestBody": {"content": {
                "application/json-patch+json": {"schema": {"type": "object"}},
                "application/merge-patch+json": {"schema": {"type": "object"}},
                "application/apply-patch+yaml": {"schema": {"type": "object"}},
            }, "required": true},
            "responses": {"200": {"description": "OK"}},
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": {"group": resource.group, "version": resource.version, "kind": resource.kind},
        });
        paths.insert(item_path, json!({"patch": patch}));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.4"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}
