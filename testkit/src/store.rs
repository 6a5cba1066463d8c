//! The state every instance of a fake cluster shares, as real apiservers share etcd: objects, the global
//! resource version, a bounded history of changes for watches, pod logs and the RBAC rules.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::auth::{Rbac, UserInfo};
use crate::resources::{self, ResourceType};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;

mod workloads;

/// Knobs of the shared state.
#[derive(Debug, Clone)]
pub struct StateConfig {
    /// How many changes are kept for watches and continue tokens; older ones answer `410 Expired`.
    pub history_capacity: usize,
    /// Pods get a Running status and deployments a ready status when written, as if a kubelet and the
    /// controllers had acted at once.
    pub simulate_controllers: bool,
    /// How often a watch with `allowWatchBookmarks=true` receives a BOOKMARK.
    pub bookmark_interval: Duration,
    /// How often a followed log gains a synthetic line.
    pub log_follow_interval: Duration,
    /// How many lines a followed log streams before the fake ends it.
    pub log_follow_max_lines: usize,
    /// How many synthetic lines a container's log starts with.
    pub initial_log_lines: usize,
    /// Run the Deployment and ReplicaSet controllers: a Deployment keeps one ReplicaSet per pod
    /// template and a ReplicaSet keeps `spec.replicas` pods (see `workloads`). Off by default, so
    /// that tests counting pods see only the ones they made.
    pub simulate_workloads: bool,
}

impl Default for StateConfig {
    fn default() -> StateConfig {
        StateConfig {
            history_capacity: 10_000,
            simulate_controllers: true,
            bookmark_interval: Duration::from_secs(5),
            log_follow_interval: Duration::from_secs(1),
            log_follow_max_lines: 30,
            initial_log_lines: 10,
            simulate_workloads: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change in the history. Every change bumps the global resource version by exactly one, so the
/// history is a contiguous run of versions.
#[derive(Debug)]
pub struct ChangeEvent {
    pub resource_version: u64,
    pub event_type: EventType,
    pub resource: &'static ResourceType,
    pub namespace: String,
    /// The object after the change (for a deletion: the last state, carrying the deletion's version).
    pub object: Arc<Value>,
    /// The object before the change, so that watches with selectors can tell an object entering or
    /// leaving their selection.
    pub previous: Option<Arc<Value>>,
}

/// What a list returns: a page of items and where to go on.
#[derive(Debug)]
pub struct ListPage {
    pub items: Vec<Arc<Value>>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
    pub remaining_item_count: Option<u64>,
}

/// The query of a list.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub label_selector: LabelSelector,
    pub field_selector: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
}

/// How a deletion treats dependents and what it requires of the object.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    /// `Orphan` leaves dependents (by owner reference) in place; anything else deletes them too.
    pub propagation_policy: Option<String>,
}

type ObjectKey = (String, String);
type ResourceKey = (&'static str, &'static str);

struct Inner {
    resource_version: u64,
    objects: HashMap<ResourceKey, BTreeMap<ObjectKey, Arc<Value>>>,
    history: VecDeque<Arc<ChangeEvent>>,
    /// The newest version dropped from the history; watches and continuations from before it expire.
    compacted: u64,
}

/// One line of a container's log and when the container wrote it (the kubelet keeps both; a
/// `timestamps=true` log shows the time, and `sinceTime` selects by it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub time: time::OffsetDateTime,
    pub text: String,
}

/// The state several fake apiserver instances serve. Cheap to share as `Arc<SharedState>`.
pub struct SharedState {
    inner: RwLock<Inner>,
    version_sender: watch::Sender<u64>,
    logs: Mutex<HashMap<(String, String, String), Vec<LogLine>>>,
    rbac: RwLock<Rbac>,
    tokens: RwLock<HashMap<String, UserInfo>>,
    pub config: StateConfig,
}

fn resource_key(resource: &ResourceType) -> ResourceKey {
    (resource.group, resource.plural)
}

pub(crate) fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("zero nanoseconds is always valid");
    now.format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339 formats any UTC time")
}

fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object
        .get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn random_suffix() -> String {
    let alphabet = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4();
    bytes.as_bytes()[..5]
        .iter()
        .map(|b| alphabet[*b as usize % alphabet.len()] as char)
        .collect()
}

fn encode_continue(resource_version: u64, namespace: &str, name: &str) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": resource_version, "ns": namespace, "name": name});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(u64, ObjectKey), ApiError> {
    let bad = || ApiError::bad_request("continue key is not valid: the token is malformed");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let resource_version = value.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
    let namespace = value.get("ns").and_then(Value::as_str).ok_or_else(bad)?;
    let name = value.get("name").and_then(Value::as_str).ok_or_else(bad)?;
    Ok((resource_version, (namespace.to_string(), name.to_string())))
}

fn parse_resource_version(text: &str) -> Result<u64, ApiError> {
    text.parse::<u64>()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version {text:?}: expected a number")))
}

impl SharedState {
    /// A state holding the namespaces `default`, `kube-system`, `kube-public`, `kube-node-lease` and one
    /// Ready node `fake-node-1`.
    pub fn new(config: StateConfig) -> Arc<SharedState> {
        let (version_sender, _) = watch::channel(0);
        let state = SharedState {
            inner: RwLock::new(Inner {
                resource_version: 0,
                objects: HashMap::new(),
                history: VecDeque::new(),
                compacted: 0,
            }),
            version_sender,
            logs: Mutex::new(HashMap::new()),
            rbac: RwLock::new(Rbac::default()),
            tokens: RwLock::new(HashMap::new()),
            config,
        };
        for namespace in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            state
                .create_object(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}))
                .expect("a fresh state accepts the built-in namespaces");
        }
        state
            .create_object(
                json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "fake-node-1",
                "labels": {"kubernetes.io/hostname": "fake-node-1", "node-role.kubernetes.io/control-plane": ""}}}),
            )
            .expect("a fresh state accepts its node");
        Arc::new(state)
    }

    /// The newest resource version.
    pub fn resource_version(&self) -> u64 {
        self.read().resource_version
    }

    /// The newest version dropped from the history.
    pub fn compacted_resource_version(&self) -> u64 {
        self.read().compacted
    }

    /// Drops the whole change history, as an etcd compaction does: watches and continue tokens from
    /// before now answer `410 Expired`.
    pub fn compact(&self) {
        let mut inner = self.write();
        inner.history.clear();
        inner.compacted = inner.resource_version;
    }

    /// A receiver that changes whenever the resource version does.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version_sender.subscribe()
    }

    pub fn rbac(&self) -> Rbac {
        self.rbac.read().expect("the RBAC lock is never poisoned").clone()
    }

    /// Replaces the RBAC rules of the whole cluster (every instance sees them).
    pub fn set_rbac(&self, rbac: Rbac) {
        *self.rbac.write().expect("the RBAC lock is never poisoned") = rbac;
    }

    /// Lets bearer `token` authenticate as `user` on every instance (a static token file, shared).
    pub fn add_token(&self, token: &str, user: UserInfo) {
        self.tokens
            .write()
            .expect("the token lock is never poisoned")
            .insert(token.to_string(), user.authenticated());
    }

    pub fn user_for_token(&self, token: &str) -> Option<UserInfo> {
        self.tokens
            .read()
            .expect("the token lock is never poisoned")
            .get(token)
            .cloned()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().expect("no code panics while holding the state lock")
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().expect("no code panics while holding the state lock")
    }

    /// Creates an object given with its `apiVersion`, `kind` and (if namespaced) `metadata.namespace`
    /// (default `default`). For test set-up.
    pub fn create_object(&self, object: Value) -> Result<Arc<Value>, ApiError> {
        let resource = Self::resource_of(&object)?;
        let namespace = resource
            .namespaced
            .then(|| meta_str(&object, "namespace").unwrap_or("default").to_string());
        self.create(resource, namespace.as_deref(), object, false)
    }

    /// Creates the object or, if it exists, replaces it unconditionally. For test set-up.
    pub fn apply_object(&self, mut object: Value) -> Result<Arc<Value>, ApiError> {
        let resource = Self::resource_of(&object)?;
        let namespace = resource
            .namespaced
            .then(|| meta_str(&object, "namespace").unwrap_or("default").to_string());
        let name = meta_str(&object, "name").unwrap_or("").to_string();
        match self.get(resource, namespace.as_deref(), &name) {
            Ok(_) => {
                if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                    metadata.remove("resourceVersion");
                }
                self.update(resource, namespace.as_deref(), &name, object, None, false)
            }
            Err(_) => self.create(resource, namespace.as_deref(), object, false),
        }
    }

    fn resource_of(object: &Value) -> Result<&'static ResourceType, ApiError> {
        let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
        resources::find_kind(api_version, kind)
            .ok_or_else(|| ApiError::bad_request(format!("no resource of apiVersion {api_version:?} kind {kind:?}")))
    }

    pub fn get(
        &self,
        resource: &'static ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Arc<Value>, ApiError> {
        let inner = self.read();
        inner
            .objects
            .get(&resource_key(resource))
            .and_then(|objects| objects.get(&(namespace.unwrap_or("").to_string(), name.to_string())))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&resource.qualified_name(), name))
    }

    /// Counts the objects of a resource type (in a namespace, or all).
    pub fn count(&self, resource: &'static ResourceType, namespace: Option<&str>) -> usize {
        let inner = self.read();
        inner
            .objects
            .get(&resource_key(resource))
            .map_or(0, |objects| match namespace {
                None => objects.len(),
                Some(namespace) => objects.keys().filter(|(ns, _)| ns == namespace).count(),
            })
    }

    pub fn create(
        &self,
        resource: &'static ResourceType,
        namespace: Option<&str>,
        object: Value,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let mut inner = self.write();
        self.create_locked(&mut inner, resource, namespace, object, dry_run)
    }

    fn create_locked(
        &self,
        inner: &mut Inner,
        resource: &'static ResourceType,
        namespace: Option<&str>,
        mut object: Value,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        check_type_meta(resource, &mut object)?;
        let namespace = if resource.namespaced {
            let namespace = namespace.ok_or_else(|| ApiError::bad_request("a namespaced object needs a namespace"))?;
            if let Some(body_namespace) = meta_str(&object, "namespace") {
                if body_namespace != namespace {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
            }
            let namespaces = resources::find("", "v1", "namespaces").expect("namespaces are served");
            let exists = inner
                .objects
                .get(&resource_key(namespaces))
                .is_some_and(|all| all.contains_key(&(String::new(), namespace.to_string())));
            if !exists {
                return Err(ApiError::not_found("namespaces", namespace));
            }
            namespace.to_string()
        } else {
            String::new()
        };
        let name = match (meta_str(&object, "name"), meta_str(&object, "generateName")) {
            (Some(name), _) if !name.is_empty() => name.to_string(),
            (_, Some(prefix)) if !prefix.is_empty() => format!("{prefix}{}", random_suffix()),
            _ => {
                return Err(ApiError::invalid(
                    resource.kind,
                    "",
                    "metadata.name: Required value: name or generateName is required",
                ))
            }
        };
        if !is_dns_subdomain(&name) {
            return Err(ApiError::invalid(
                resource.kind,
                &name,
                &format!(
                    "metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower \
                     case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
                ),
            ));
        }
        let key = (namespace.clone(), name.clone());
        if inner
            .objects
            .get(&resource_key(resource))
            .is_some_and(|objects| objects.contains_key(&key))
        {
            return Err(ApiError::already_exists(&resource.qualified_name(), &name));
        }
        let resource_version = inner.resource_version + 1;
        {
            let metadata = object
                .as_object_mut()
                .expect("check_type_meta ensured an object")
                .entry("metadata")
                .or_insert_with(|| json!({}));
            let metadata = metadata
                .as_object_mut()
                .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
            metadata.insert("name".into(), json!(name));
            if resource.namespaced {
                metadata.insert("namespace".into(), json!(namespace));
            }
            metadata.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            metadata.insert("resourceVersion".into(), json!(resource_version.to_string()));
            metadata.insert("creationTimestamp".into(), json!(now_rfc3339()));
            metadata.remove("deletionTimestamp");
            if resource.has_generation {
                metadata.insert("generation".into(), json!(1));
            } else {
                metadata.remove("generation");
            }
        }
        apply_defaults(resource, &mut object, self.config.simulate_controllers, None);
        if dry_run {
            // Nothing is written, so the object has no version yet (as a real dry-run create answers).
            if let Some(metadata) = object["metadata"].as_object_mut() {
                metadata.remove("resourceVersion");
            }
        }
        let object = Arc::new(object);
        if !dry_run {
            self.commit(
                inner,
                resource,
                key.clone(),
                EventType::Added,
                Some(object.clone()),
                None,
            );
            self.reconcile_workload(inner, resource, &key);
        }
        Ok(object)
    }

    /// Replaces an object (`subresource` `status` replaces only its status). A non-empty
    /// `metadata.resourceVersion` in the body must equal the stored one (409 Conflict otherwise).
    pub fn update(
        &self,
        resource: &'static ResourceType,
        namespace: Option<&str>,
        name: &str,
        object: Value,
        subresource: Option<&str>,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let mut inner = self.write();
        self.update_locked(&mut inner, resource, namespace, name, object, subresource, dry_run)
    }

    /// Reads the object, lets `change` compute its new state and stores that, all under one lock.
    /// `create_if_missing` creates the object from `change(None)`'s result when absent (server-side apply).
    #[allow(clippy::too_many_arguments)]
    pub fn modify(
        &self,
        resource: &'static ResourceType,
        namespace: Option<&str>,
        name: &str,
        subresource: Option<&str>,
        dry_run: bool,
        create_if_missing: bool,
        change: impl FnOnce(Option<&Value>) -> Result<Value, ApiError>,
    ) -> Result<Arc<Value>, ApiError> {
        let mut inner = self.write();
        let key = (namespace.unwrap_or("").to_string(), name.to_string());
        let current = inner
            .objects
            .get(&resource_key(resource))
            .and_then(|objects| objects.get(&key))
            .cloned();
        match current {
            Some(current) => {
                let updated = change(Some(&current))?;
                self.update_locked(&mut inner, resource, namespace, name, updated, subresource, dry_run)
            }
            None if create_if_missing => {
                let created = change(None)?;
                drop(inner);
                self.create(resource, namespace, created, dry_run)
            }
            None => Err(ApiError::not_found(&resource.qualified_name(), name)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn update_locked(
        &self,
        inner: &mut Inner,
        resource: &'static ResourceType,
        namespace: Option<&str>,
        name: &str,
        mut object: Value,
        subresource: Option<&str>,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        check_type_meta(resource, &mut object)?;
        let key = (namespace.unwrap_or("").to_string(), name.to_string());
        let current = inner
            .objects
            .get(&resource_key(resource))
            .and_then(|objects| objects.get(&key))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&resource.qualified_name(), name))?;
        match meta_str(&object, "name") {
            Some(body_name) if body_name != name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                )))
            }
            _ => {}
        }
        if let Some(body_namespace) = meta_str(&object, "namespace") {
            if resource.namespaced && Some(body_namespace) != namespace {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
        let current_version = meta_str(&current, "resourceVersion").unwrap_or("").to_string();
        match meta_str(&object, "resourceVersion") {
            Some(wanted) if !wanted.is_empty() && wanted != current_version => {
                return Err(ApiError::conflict(&resource.qualified_name(), name));
            }
            _ => {}
        }
        let mut updated = match subresource {
            Some("status") => {
                let mut updated = (*current).clone();
                match object.get("status") {
                    Some(status) => updated["status"] = status.clone(),
                    None => {
                        updated
                            .as_object_mut()
                            .expect("stored objects are objects")
                            .remove("status");
                    }
                }
                updated
            }
            Some(other) => {
                return Err(ApiError::new(
                    404,
                    "NotFound",
                    format!("the server could not find the requested resource ({other})"),
                ))
            }
            None => {
                if resource.has_status {
                    match current.get("status") {
                        Some(status) => object["status"] = status.clone(),
                        None => {
                            object
                                .as_object_mut()
                                .expect("check_type_meta ensured an object")
                                .remove("status");
                        }
                    }
                }
                object
            }
        };
        // The server owns these fields; a client's copy of them is ignored.
        for field in ["uid", "creationTimestamp", "generation", "resourceVersion"] {
            match current["metadata"].get(field) {
                Some(value) => updated["metadata"][field] = value.clone(),
                None => {
                    if let Some(metadata) = updated["metadata"].as_object_mut() {
                        metadata.remove(field);
                    }
                }
            }
        }
        updated["metadata"]["name"] = json!(name);
        if resource.namespaced {
            updated["metadata"]["namespace"] = json!(key.0);
        }
        if resource.has_generation && spec_changed(&current, &updated) {
            let generation = current["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            updated["metadata"]["generation"] = json!(generation);
        }
        apply_defaults(resource, &mut updated, self.config.simulate_controllers, Some(&current));
        if updated == *current {
            // Kubernetes does not write (nor bump the version) when nothing changed.
            return Ok(current);
        }
        if !dry_run {
            // A dry run writes nothing: the answer keeps the stored version, as the real apiserver's does.
            let resource_version = inner.resource_version + 1;
            updated["metadata"]["resourceVersion"] = json!(resource_version.to_string());
        }
        let updated = Arc::new(updated);
        if !dry_run {
            self.commit(
                inner,
                resource,
                key.clone(),
                EventType::Modified,
                Some(updated.clone()),
                Some(current),
            );
            self.reconcile_workload(inner, resource, &key);
        }
        Ok(updated)
    }

    /// Deletes an object and (unless the propagation policy is `Orphan`) its dependents; deleting a
    /// namespace deletes everything in it. Returns the deleted object.
    pub fn delete(
        &self,
        resource: &'static ResourceType,
        namespace: Option<&str>,
        name: &str,
        options: &DeleteOptions,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let mut inner = self.write();
        let key = (namespace.unwrap_or("").to_string(), name.to_string());
        let current = inner
            .objects
            .get(&resource_key(resource))
            .and_then(|objects| objects.get(&key))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&resource.qualified_name(), name))?;
        let uid = meta_str(&current, "uid").unwrap_or("").to_string();
        if options.precondition_uid.as_deref().is_some_and(|wanted| wanted != uid) {
            return Err(ApiError::conflict(&resource.qualified_name(), name));
        }
        if let Some(wanted) = &options.precondition_resource_version {
            if Some(wanted.as_str()) != meta_str(&current, "resourceVersion") {
                return Err(ApiError::conflict(&resource.qualified_name(), name));
            }
        }
        if dry_run {
            return Ok(current);
        }
        let deleted = self.delete_locked(&mut inner, resource, key);
        if resource.plural == "namespaces" {
            for other in resources::RESOURCES.iter().filter(|r| r.namespaced) {
                let keys: Vec<ObjectKey> = inner
                    .objects
                    .get(&resource_key(other))
                    .map(|objects| objects.keys().filter(|(ns, _)| *ns == name).cloned().collect())
                    .unwrap_or_default();
                for key in keys {
                    self.delete_locked(&mut inner, other, key);
                }
            }
        }
        if options.propagation_policy.as_deref() != Some("Orphan") {
            self.delete_dependents(&mut inner, &uid, 0);
        }
        self.replace_deleted_pod(&mut inner, resource, &deleted);
        Ok(deleted)
    }

    fn delete_dependents(&self, inner: &mut Inner, owner_uid: &str, depth: usize) {
        // Owner chains here are deployment → replicaset → pod; the bound guards against cycles.
        if depth > 8 || owner_uid.is_empty() {
            return;
        }
        let mut dependents = Vec::new();
        for resource in resources::RESOURCES {
            if let Some(objects) = inner.objects.get(&resource_key(resource)) {
                for (key, object) in objects {
                    let owned = object
                        .pointer("/metadata/ownerReferences")
                        .and_then(Value::as_array)
                        .is_some_and(|owners| {
                            owners
                                .iter()
                                .any(|o| o.get("uid").and_then(Value::as_str) == Some(owner_uid))
                        });
                    if owned {
                        dependents.push((resource, key.clone(), meta_str(object, "uid").unwrap_or("").to_string()));
                    }
                }
            }
        }
        for (resource, key, uid) in dependents {
            self.delete_locked(inner, resource, key);
            self.delete_dependents(inner, &uid, depth + 1);
        }
    }

    fn delete_locked(&self, inner: &mut Inner, resource: &'static ResourceType, key: ObjectKey) -> Arc<Value> {
        let current = inner
            .objects
            .get(&resource_key(resource))
            .and_then(|objects| objects.get(&key))
            .cloned()
            .expect("callers delete only keys they found under the same lock");
        let mut last = (*current).clone();
        last["metadata"]["resourceVersion"] = json!((inner.resource_version + 1).to_string());
        let last = Arc::new(last);
        if resource.plural == "pods" {
            self.logs
                .lock()
                .expect("the log lock is never poisoned")
                .retain(|(ns, pod, _), _| !(ns == &key.0 && pod == &key.1));
        }
        self.commit(inner, resource, key, EventType::Deleted, None, Some(current));
        last
    }

    /// Stores the new state of one object, records the change and wakes the watches.
    fn commit(
        &self,
        inner: &mut Inner,
        resource: &'static ResourceType,
        key: ObjectKey,
        event_type: EventType,
        object: Option<Arc<Value>>,
        previous: Option<Arc<Value>>,
    ) {
        inner.resource_version += 1;
        let resource_version = inner.resource_version;
        let objects = inner.objects.entry(resource_key(resource)).or_default();
        let event_object = match &object {
            Some(object) => {
                objects.insert(key.clone(), object.clone());
                object.clone()
            }
            None => {
                objects.remove(&key);
                let mut last = (**previous.as_ref().expect("a deletion has a previous object")).clone();
                last["metadata"]["resourceVersion"] = json!(resource_version.to_string());
                Arc::new(last)
            }
        };
        inner.history.push_back(Arc::new(ChangeEvent {
            resource_version,
            event_type,
            resource,
            namespace: key.0,
            object: event_object,
            previous,
        }));
        while inner.history.len() > self.config.history_capacity.max(1) {
            if let Some(dropped) = inner.history.pop_front() {
                inner.compacted = dropped.resource_version;
            }
        }
        self.version_sender.send_replace(resource_version);
    }

    /// Lists objects of a resource type, a page at a time.
    pub fn list(
        &self,
        resource: &'static ResourceType,
        namespace: Option<&str>,
        options: &ListOptions,
    ) -> Result<ListPage, ApiError> {
        let inner = self.read();
        let (list_version, start) = match &options.continue_token {
            Some(token) => {
                let (list_version, start) = decode_continue(token)?;
                if list_version < inner.compacted {
                    let mut error = ApiError::expired(
                        "The provided continue parameter is too old to display a consistent list result. You can \
                         start a new list without the continue parameter, or use the continue token in this response \
                         to retrieve the remainder of the results. Continuing with the provided token results in an \
                         inconsistent list - objects that were created, modified, or deleted between the time the \
                         first chunk was returned and now may show up in the list.",
                    );
                    error.continue_token = Some(encode_continue(inner.resource_version, &start.0, &start.1));
                    return Err(error);
                }
                (list_version, Some(start))
            }
            None => {
                if let Some(text) = options
                    .resource_version
                    .as_deref()
                    .filter(|t| !t.is_empty() && *t != "0")
                {
                    let wanted = parse_resource_version(text)?;
                    if options.resource_version_match.as_deref() == Some("Exact") && wanted < inner.compacted {
                        return Err(ApiError::too_old_resource_version(wanted, inner.compacted + 1));
                    }
                    if wanted > inner.resource_version {
                        return Err(ApiError::new(
                            504,
                            "Timeout",
                            format!(
                                "Too large resource version: {wanted}, current: {}",
                                inner.resource_version
                            ),
                        ));
                    }
                }
                (inner.resource_version, None)
            }
        };
        let empty = BTreeMap::new();
        let objects = inner.objects.get(&resource_key(resource)).unwrap_or(&empty);
        let lower = match (&start, namespace) {
            (Some(start), _) => Bound::Excluded(start.clone()),
            (None, Some(namespace)) => Bound::Included((namespace.to_string(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        let in_scope = |key: &ObjectKey| namespace.is_none_or(|namespace| key.0 == namespace);
        let matches = |object: &Value| options.label_selector.matches(object) && options.field_selector.matches(object);
        let limit = options.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let mut items = Vec::new();
        let mut range = objects
            .range((lower, Bound::Unbounded))
            .take_while(|(key, _)| in_scope(key));
        let mut last_key = None;
        for (key, object) in range.by_ref() {
            if matches(object) {
                items.push(object.clone());
                if items.len() == limit {
                    last_key = Some(key.clone());
                    break;
                }
            }
        }
        let (continue_token, remaining_item_count) = match last_key {
            Some(last_key) => {
                let selectors_empty = options.label_selector.is_empty() && options.field_selector.is_empty();
                let remaining = range.filter(|(_, object)| matches(object)).count() as u64;
                if remaining == 0 {
                    (None, None)
                } else {
                    let token = encode_continue(list_version, &last_key.0, &last_key.1);
                    (Some(token), selectors_empty.then_some(remaining))
                }
            }
            None => (None, None),
        };
        Ok(ListPage {
            items,
            resource_version: list_version,
            continue_token,
            remaining_item_count,
        })
    }

    /// The changes after `after` (at most `max`), and the newest version examined. `Err(410 Expired)`
    /// when changes after `after` were already dropped from the history.
    pub fn changes_since(&self, after: u64, max: usize) -> Result<(Vec<Arc<ChangeEvent>>, u64), ApiError> {
        let inner = self.read();
        if after < inner.compacted {
            return Err(ApiError::too_old_resource_version(after, inner.compacted + 1));
        }
        let first = match inner.history.front() {
            Some(first) => first.resource_version,
            None => return Ok((Vec::new(), inner.resource_version.max(after))),
        };
        let start = (after + 1).saturating_sub(first) as usize;
        let changes: Vec<Arc<ChangeEvent>> = inner.history.iter().skip(start).take(max).cloned().collect();
        let examined = changes
            .last()
            .map_or(inner.resource_version.max(after), |c| c.resource_version);
        Ok((changes, examined))
    }

    /// Snapshot of the objects of a type (in a namespace or all) and the version they were read at, for
    /// the synthetic ADDED events a watch starts with.
    pub fn snapshot(&self, resource: &'static ResourceType, namespace: Option<&str>) -> (Vec<Arc<Value>>, u64) {
        let inner = self.read();
        let items = inner
            .objects
            .get(&resource_key(resource))
            .map(|objects| {
                objects
                    .iter()
                    .filter(|(key, _)| namespace.is_none_or(|namespace| key.0 == namespace))
                    .map(|(_, object)| object.clone())
                    .collect()
            })
            .unwrap_or_default();
        (items, inner.resource_version)
    }

    /// The log of a container: its synthetic first lines (`{pod}/{container} line {n}`, a millisecond
    /// apart, ending now) plus any appended since.
    pub fn log_lines(&self, namespace: &str, pod: &str, container: &str) -> Vec<LogLine> {
        let mut logs = self.logs.lock().expect("the log lock is never poisoned");
        logs.entry((namespace.to_string(), pod.to_string(), container.to_string()))
            .or_insert_with(|| {
                let now = time::OffsetDateTime::now_utc();
                let count = self.config.initial_log_lines;
                (1..=count)
                    .map(|n| LogLine {
                        time: now - time::Duration::milliseconds(i64::try_from(count - n).unwrap_or(0)),
                        text: format!("{pod}/{container} line {n}"),
                    })
                    .collect()
            })
            .clone()
    }

    /// Appends a line to a container's log (a followed log streams it), written now, or a nanosecond
    /// after the last line when the clock has not moved on since.
    pub fn append_log(&self, namespace: &str, pod: &str, container: &str, line: &str) {
        self.log_lines(namespace, pod, container);
        let mut logs = self.logs.lock().expect("the log lock is never poisoned");
        if let Some(lines) = logs.get_mut(&(namespace.to_string(), pod.to_string(), container.to_string())) {
            let now = time::OffsetDateTime::now_utc();
            let time = match lines.last() {
                Some(last) if last.time >= now => last.time + time::Duration::nanoseconds(1),
                _ => now,
            };
            lines.push(LogLine {
                time,
                text: line.to_string(),
            });
        }
    }
}

fn check_type_meta(resource: &ResourceType, object: &mut Value) -> Result<(), ApiError> {
    let Some(map) = object.as_object_mut() else {
        return Err(ApiError::bad_request("the request body must be a JSON object"));
    };
    let api_version = resource.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        Some(given) if given != api_version => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({given}) does not match the expected API version ({api_version})"
            )))
        }
        _ => {}
    }
    match map.get("kind").and_then(Value::as_str) {
        Some(given) if given != resource.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({given}) does not match the expected kind ({})",
                resource.kind
            )))
        }
        _ => {}
    }
    // Later steps index into these fields; a body of another shape is refused here, before any lock.
    for field in ["metadata", "spec", "status"] {
        if map
            .get(field)
            .is_some_and(|value| !value.is_object() && !value.is_null())
        {
            return Err(ApiError::bad_request(format!("{field} must be an object")));
        }
        if map.get(field).is_some_and(Value::is_null) {
            map.remove(field);
        }
    }
    map.insert("apiVersion".into(), json!(api_version));
    map.insert("kind".into(), json!(resource.kind));
    map.entry("metadata").or_insert_with(|| json!({}));
    Ok(())
}

fn spec_changed(before: &Value, after: &Value) -> bool {
    let strip = |object: &Value| {
        let mut copy = object.clone();
        if let Some(map) = copy.as_object_mut() {
            map.remove("metadata");
            map.remove("status");
        }
        copy
    };
    strip(before) != strip(after)
}

/// What the apiserver's defaulting and (when simulated) the kubelet and controllers would write.
fn apply_defaults(resource: &ResourceType, object: &mut Value, simulate: bool, previous: Option<&Value>) {
    match resource.plural {
        "secrets" => {
            if let Some(Value::Object(string_data)) = object.as_object_mut().and_then(|m| m.remove("stringData")) {
                let data = object["data"].as_object_mut().map(std::mem::take).unwrap_or_default();
                let mut data = data;
                for (key, value) in string_data {
                    let text = value.as_str().unwrap_or("").as_bytes().to_vec();
                    data.insert(key, json!(base64::engine::general_purpose::STANDARD.encode(text)));
                }
                object["data"] = Value::Object(data);
            }
            if object.get("type").is_none() {
                object["type"] = json!("Opaque");
            }
        }
        "namespaces" => {
            object["status"] = json!({"phase": "Active"});
        }
        "nodes" if object.get("status").is_none() => {
            object["status"] = json!({
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                "nodeInfo": {"kubeletVersion": "v1.32.4"},
                "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
            });
        }
        "services" => {
            if object["spec"].get("type").is_none() {
                object["spec"]["type"] = json!("ClusterIP");
            }
            if object["spec"].get("clusterIP").is_none() {
                let n = uuid::Uuid::new_v4().as_bytes()[0];
                object["spec"]["clusterIP"] = json!(format!("10.96.0.{}", n.max(2)));
            }
        }
        "pods" if simulate && object.pointer("/status/phase").is_none() => {
            if object["spec"].get("nodeName").is_none() {
                object["spec"]["nodeName"] = json!("fake-node-1");
            }
            let containers = object
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let statuses: Vec<Value> = containers
                .iter()
                .map(|c| {
                    json!({"name": c["name"], "image": c["image"], "ready": true, "restartCount": 0, "started": true,
                           "state": {"running": {"startedAt": now_rfc3339()}}})
                })
                .collect();
            let n = uuid::Uuid::new_v4().as_bytes()[0];
            object["status"] = json!({
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
                "containerStatuses": statuses,
                "podIP": format!("10.244.0.{}", n.max(2)),
                "hostIP": "10.0.0.1",
                "startTime": now_rfc3339(),
            });
        }
        "deployments" | "replicasets" if simulate => {
            let spec_differs = previous.is_none_or(|previous| spec_changed(previous, object));
            if spec_differs || object.get("status").is_none() {
                let replicas = object.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
                if object["spec"].get("replicas").is_none() {
                    object["spec"]["replicas"] = json!(1);
                }
                let generation = object.pointer("/metadata/generation").cloned().unwrap_or(json!(1));
                object["status"] = json!({
                    "observedGeneration": generation,
                    "replicas": replicas,
                    "readyReplicas": replicas,
                    "availableReplicas": replicas,
                    "updatedReplicas": replicas,
                    "fullyLabeledReplicas": replicas,
                });
            }
        }
        _ => {}
    }
}
