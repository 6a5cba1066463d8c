//! Watches: a stream of JSON lines `{"type": ..., "object": ...}`, read from the shared change history.
//!
//! A watch keeps only its position (a resource version) and reads the history after it, so a slow
//! watcher costs no memory; one whose position falls out of the bounded history receives an `ERROR`
//! event with a `410 Expired` Status and ends, as with a real apiserver after an etcd compaction.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use crate::resources::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{ChangeEvent, EventType, SharedState};
use crate::table::{self, IncludeObject};

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchStart {
    /// Synthetic ADDED events for every existing object, then changes (resourceVersion unset or "0").
    WithInitialState,
    /// Changes after this version only.
    After(u64),
}

pub struct WatchRequest {
    pub resource: &'static ResourceType,
    pub namespace: Option<String>,
    pub label_selector: LabelSelector,
    pub field_selector: FieldSelector,
    pub start: WatchStart,
    pub bookmarks: bool,
    /// `sendInitialEvents=true`: a BOOKMARK annotated `k8s.io/initial-events-end` follows the initial state.
    pub send_initial_events: bool,
    pub timeout: Option<Duration>,
    /// Objects sent as single-row Tables (kubectl get --watch asks for that).
    pub table: Option<IncludeObject>,
}

impl WatchRequest {
    fn matches(&self, object: &Value) -> bool {
        self.label_selector.matches(object) && self.field_selector.matches(object)
    }

    fn in_scope(&self, change: &ChangeEvent) -> bool {
        std::ptr::eq(change.resource, self.resource)
            && self
                .namespace
                .as_deref()
                .is_none_or(|namespace| change.namespace == namespace)
    }

    /// The event type this watcher sees for a change, if any: an object entering the selection is
    /// ADDED, one leaving it DELETED.
    fn event_type(&self, change: &ChangeEvent) -> Option<EventType> {
        if !self.in_scope(change) {
            return None;
        }
        let now = self.matches(&change.object);
        let before = change
            .previous
            .as_deref()
            .is_some_and(|previous| self.matches(previous));
        match change.event_type {
            EventType::Added => now.then_some(EventType::Added),
            EventType::Deleted => before.then_some(EventType::Deleted),
            EventType::Modified => match (before, now) {
                (true, true) => Some(EventType::Modified),
                (false, true) => Some(EventType::Added),
                (true, false) => Some(EventType::Deleted),
                (false, false) => None,
            },
        }
    }

    fn encode(&self, event_type: &str, object: &Value) -> Bytes {
        let object = match (self.table, event_type) {
            (Some(include), "ADDED" | "MODIFIED" | "DELETED") => {
                let metadata = json!({"resourceVersion": object.pointer("/metadata/resourceVersion").cloned()});
                table::table(self.resource, std::iter::once(object), metadata, include)
            }
            _ => object.clone(),
        };
        let mut line =
            serde_json::to_vec(&json!({"type": event_type, "object": object})).expect("a JSON value always serializes");
        line.push(b'\n');
        Bytes::from(line)
    }

    fn bookmark(&self, resource_version: u64, initial_events_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": resource_version.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object =
            json!({"kind": self.resource.kind, "apiVersion": self.resource.api_version(), "metadata": metadata});
        self.encode("BOOKMARK", &object)
    }
}

type Sender = mpsc::Sender<Result<Bytes, std::io::Error>>;

/// Starts a watch and returns the streaming response.
pub fn respond(state: Arc<SharedState>, request: WatchRequest, shutdown: watch::Receiver<bool>) -> Response {
    let (sender, receiver) = mpsc::channel(64);
    tokio::spawn(run(state, request, sender, shutdown));
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    Response::builder()
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .expect("a static header always builds")
}

async fn send(sender: &Sender, line: Bytes) -> bool {
    sender.send(Ok(line)).await.is_ok()
}

async fn run(state: Arc<SharedState>, request: WatchRequest, sender: Sender, mut shutdown: watch::Receiver<bool>) {
    let mut versions = state.subscribe();
    let mut position = match request.start {
        WatchStart::After(version) => version,
        WatchStart::WithInitialState => {
            let (objects, version) = state.snapshot(request.resource, request.namespace.as_deref());
            for object in objects.iter().filter(|o| request.matches(o)) {
                if !send(&sender, request.encode("ADDED", object)).await {
                    return;
                }
            }
            version
        }
    };
    if request.send_initial_events && !send(&sender, request.bookmark(position, true)).await {
        return;
    }
    let deadline = tokio::time::Instant::now() + request.timeout.unwrap_or(Duration::from_secs(3600));
    let mut bookmark_timer = tokio::time::interval(state.config.bookmark_interval);
    bookmark_timer.tick().await;
    loop {
        versions.borrow_and_update();
        // Drains the history after the position in batches, so that one watch never holds many events.
        for _ in 0..1_000_000 {
            let (changes, examined) = match state.changes_since(position, 256) {
                Ok(found) => found,
                Err(expired) => {
                    send(&sender, error_event(&expired)).await;
                    return;
                }
            };
            for change in &changes {
                if let Some(event_type) = request.event_type(change) {
                    if !send(&sender, request.encode(event_type.as_str(), &change.object)).await {
                        return;
                    }
                }
            }
            position = examined;
            if changes.len() < 256 {
                break;
            }
        }
        tokio::select! {
            changed = versions.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = bookmark_timer.tick(), if request.bookmarks => {
                if !send(&sender, request.bookmark(position, false)).await {
                    return;
                }
            }
            _ = tokio::time::sleep_until(deadline) => return,
            _ = sender.closed() => return,
            _ = shutdown.changed() => return,
        }
    }
}

fn error_event(error: &ApiError) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": "ERROR", "object": error.to_status()}))
        .expect("a JSON value always serializes");
    line.push(b'\n');
    Bytes::from(line)
}
