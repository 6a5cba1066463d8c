//! The Deployment and ReplicaSet controllers, when `StateConfig::simulate_workloads` is on. They run
//! under the state lock right after the write that calls for them, so the objects they make are in
//! the history at the next resource versions, as a real controller's would be a moment later:
//!
//! - a Deployment owns one ReplicaSet per pod template, named `{deployment}-{pod-template-hash}`,
//!   labelled and selected with `pod-template-hash`; the current template's ReplicaSet gets
//!   `spec.replicas`, every older one 0 (the rollout completes at once, as if `maxSurge` were the
//!   whole Deployment: no gradual step is simulated);
//! - each ReplicaSet carries the `deployment.kubernetes.io/revision` annotation: a new one, or an
//!   older one whose template becomes current again (a rollback), gets the highest revision plus
//!   one, as the Deployment controller numbers them (`kubectl rollout history` reads them there; the
//!   Deployment's own copy of the annotation is not written);
//! - a ReplicaSet owns `spec.replicas` pods named `{replicaset}-{random}` from its template; extra
//!   pods are deleted, newest first, and a deleted pod is replaced.
//!
//! Owner references carry `controller: true`, so deleting a Deployment deletes its ReplicaSets and
//! their pods through the store's dependents' deletion.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::{meta_str, random_suffix, resource_key, Inner, ObjectKey, SharedState};
use crate::resources::{self, ResourceType};

fn replicasets() -> &'static ResourceType {
    resources::find("apps", "v1", "replicasets").expect("replicasets are served")
}

fn pods() -> &'static ResourceType {
    resources::find("", "v1", "pods").expect("pods are served")
}

/// A copy of `value` without null fields and empty objects: the apiserver hashes the decoded
/// template, in which `"creationTimestamp": null` or `"resources": {}` (as kubectl sends a template
/// back on `rollout undo`) are the same as absent.
fn without_empty(value: &Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(name, field)| (name.clone(), without_empty(field)))
                .filter(|(_, field)| !field.is_null() && field.as_object().is_none_or(|inner| !inner.is_empty()))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_empty).collect()),
        other => other.clone(),
    }
}

/// The FNV-1a hash of the template's JSON (empty fields left out) as ten lowercase characters, like
/// the `pod-template-hash` label Kubernetes computes (its exact value differs).
fn template_hash(template: &Value) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in without_empty(template).to_string().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut text = String::with_capacity(10);
    for _ in 0..10 {
        text.push(char::from(ALPHABET[(hash % ALPHABET.len() as u64) as usize]));
        hash /= ALPHABET.len() as u64;
    }
    text
}

fn owner_reference(owner: &Value) -> Value {
    json!({
        "apiVersion": owner.get("apiVersion").cloned().unwrap_or(Value::Null),
        "kind": owner.get("kind").cloned().unwrap_or(Value::Null),
        "name": meta_str(owner, "name").unwrap_or(""),
        "uid": meta_str(owner, "uid").unwrap_or(""),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The uid of the object's controlling owner, if any.
fn controller_uid(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|owner| owner.get("controller").and_then(Value::as_bool) == Some(true))
        .and_then(|owner| owner.get("uid").and_then(Value::as_str))
}

/// The annotation the Deployment controller numbers a Deployment's ReplicaSets with.
const REVISION: &str = "deployment.kubernetes.io/revision";

/// A ReplicaSet's revision (0 when it has none).
fn revision_of(object: &Value) -> u64 {
    object
        .pointer("/metadata/annotations")
        .and_then(|annotations| annotations.get(REVISION))
        .and_then(Value::as_str)
        .and_then(|text| text.parse().ok())
        .unwrap_or(0)
}

fn replicas_of(object: &Value) -> i64 {
    object
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
        .max(0)
}

/// A copy of `labels` (an object or absent) with `pod-template-hash` set.
fn with_hash(labels: Option<&Value>, hash: &str) -> Value {
    let mut labels: Map<String, Value> = labels.and_then(Value::as_object).cloned().unwrap_or_default();
    labels.insert("pod-template-hash".into(), json!(hash));
    Value::Object(labels)
}

impl SharedState {
    /// Runs the controller of a Deployment or ReplicaSet just written.
    pub(super) fn reconcile_workload(&self, inner: &mut Inner, resource: &'static ResourceType, key: &ObjectKey) {
        if !self.config.simulate_workloads {
            return;
        }
        let Some(object) = inner
            .objects
            .get(&resource_key(resource))
            .and_then(|objects| objects.get(key))
            .cloned()
        else {
            return;
        };
        match resource.plural {
            "deployments" => self.sync_deployment(inner, &key.0, &object),
            "replicasets" => self.sync_replicaset(inner, &key.0, &object),
            _ => {}
        }
    }

    /// The objects of `resource` in `namespace` whose controlling owner has `owner_uid`.
    fn owned(
        inner: &Inner,
        resource: &'static ResourceType,
        namespace: &str,
        owner_uid: &str,
    ) -> Vec<(ObjectKey, Arc<Value>)> {
        inner
            .objects
            .get(&resource_key(resource))
            .map(|objects| {
                objects
                    .iter()
                    .filter(|((ns, _), object)| ns == namespace && controller_uid(object) == Some(owner_uid))
                    .map(|(key, object)| (key.clone(), object.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn sync_deployment(&self, inner: &mut Inner, namespace: &str, deployment: &Arc<Value>) {
        let uid = meta_str(deployment, "uid").unwrap_or("").to_string();
        let name = meta_str(deployment, "name").unwrap_or("").to_string();
        let template = deployment.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let hash = template_hash(&template);
        let current_name = format!("{name}-{hash}");
        let desired = replicas_of(deployment);
        let owned = Self::owned(inner, replicasets(), namespace, &uid);
        let newest = owned
            .iter()
            .map(|(_, replicaset)| revision_of(replicaset))
            .max()
            .unwrap_or(0);
        let mut changed = Vec::new();
        for (key, replicaset) in &owned {
            let current = key.1 == current_name;
            let wanted = if current { desired } else { 0 };
            // The current template's ReplicaSet is the newest revision (an older one again after a rollback).
            let renumber = current && (revision_of(replicaset) < newest || revision_of(replicaset) == 0);
            if replicas_of(replicaset) != wanted || renumber {
                let mut updated = (**replicaset).clone();
                updated["spec"]["replicas"] = json!(wanted);
                if renumber {
                    updated["metadata"]["annotations"][REVISION] = json!((newest + 1).to_string());
                }
                changed.push((key.clone(), updated));
            }
        }
        for (key, updated) in changed {
            // The controller's own write: no resourceVersion precondition, nothing that can fail but a
            // vanished object, which the next write of the Deployment repairs.
            let _ = self.update_locked(inner, replicasets(), Some(namespace), &key.1, updated, None, false);
        }
        if !owned.iter().any(|(key, _)| key.1 == current_name) {
            let mut pod_template = template;
            pod_template["metadata"]["labels"] = with_hash(pod_template.pointer("/metadata/labels"), &hash);
            let selector = deployment.pointer("/spec/selector").cloned().unwrap_or(json!({}));
            let match_labels = with_hash(selector.get("matchLabels"), &hash);
            let mut replicaset_selector = selector;
            replicaset_selector["matchLabels"] = match_labels;
            let replicaset = json!({
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": current_name,
                    "namespace": namespace,
                    "labels": with_hash(pod_template.pointer("/metadata/labels"), &hash),
                    "annotations": {
                        "deployment.kubernetes.io/desired-replicas": desired.to_string(),
                        REVISION: (newest + 1).to_string(),
                    },
                    "ownerReferences": [owner_reference(deployment)],
                },
                "spec": {"replicas": desired, "selector": replicaset_selector, "template": pod_template},
            });
            // Creating the ReplicaSet runs its controller through `create_locked`.
            let _ = self.create_locked(inner, replicasets(), Some(namespace), replicaset, false);
        }
    }

    fn sync_replicaset(&self, inner: &mut Inner, namespace: &str, replicaset: &Arc<Value>) {
        let uid = meta_str(replicaset, "uid").unwrap_or("").to_string();
        let name = meta_str(replicaset, "name").unwrap_or("").to_string();
        let desired = usize::try_from(replicas_of(replicaset)).unwrap_or(0);
        let mut owned = Self::owned(inner, pods(), namespace, &uid);
        if owned.len() > desired {
            // Newest first, as the ReplicaSet controller prefers to delete the youngest pods.
            owned.sort_by(|a, b| {
                let version = |object: &Value| {
                    meta_str(object, "resourceVersion")
                        .and_then(|text| text.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                version(&b.1).cmp(&version(&a.1))
            });
            let excess = owned.len() - desired;
            for (key, _) in owned.into_iter().take(excess) {
                self.delete_locked(inner, pods(), key);
            }
            return;
        }
        let template = replicaset.pointer("/spec/template").cloned().unwrap_or(json!({}));
        for _ in owned.len()..desired {
            let mut metadata = template.get("metadata").cloned().unwrap_or(json!({}));
            metadata["name"] = json!(format!("{name}-{}", random_suffix()));
            metadata["namespace"] = json!(namespace);
            metadata["ownerReferences"] = json!([owner_reference(replicaset)]);
            let pod = json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": metadata,
                "spec": template.get("spec").cloned().unwrap_or(json!({})),
            });
            let _ = self.create_locked(inner, pods(), Some(namespace), pod, false);
        }
    }

    /// After a pod was deleted: its ReplicaSet (if it still exists) makes a replacement.
    pub(super) fn replace_deleted_pod(&self, inner: &mut Inner, resource: &'static ResourceType, deleted: &Value) {
        if !self.config.simulate_workloads || resource.plural != "pods" {
            return;
        }
        let Some(owner_uid) = controller_uid(deleted) else {
            return;
        };
        let namespace = meta_str(deleted, "namespace").unwrap_or("").to_string();
        let owner = inner.objects.get(&resource_key(replicasets())).and_then(|objects| {
            objects
                .iter()
                .find(|((ns, _), object)| *ns == namespace && meta_str(object, "uid") == Some(owner_uid))
                .map(|(key, _)| key.clone())
        });
        if let Some(key) = owner {
            self.reconcile_workload(inner, replicasets(), &key);
        }
    }
}
