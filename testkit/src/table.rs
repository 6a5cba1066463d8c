//! Server-side printing: `meta.k8s.io/v1` `Table`s, which `kubectl get` asks for.

use serde_json::{json, Value};

use crate::resources::ResourceType;

/// Column name, type, and whether it shows only with `-o wide` (priority 1).
fn columns(resource: &ResourceType) -> &'static [(&'static str, &'static str, u8)] {
    match resource.plural {
        "pods" => &[
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            ("Age", "string", 0),
            ("IP", "string", 1),
            ("Node", "string", 1),
        ],
        "deployments" => &[
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Age", "string", 0),
        ],
        "replicasets" => &[
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Age", "string", 0),
        ],
        "services" => &[
            ("Name", "string", 0),
            ("Type", "string", 0),
            ("Cluster-IP", "string", 0),
            ("External-IP", "string", 0),
            ("Port(s)", "string", 0),
            ("Age", "string", 0),
        ],
        "namespaces" => &[("Name", "string", 0), ("Status", "string", 0), ("Age", "string", 0)],
        "nodes" => &[
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Roles", "string", 0),
            ("Age", "string", 0),
            ("Version", "string", 0),
        ],
        "configmaps" => &[("Name", "string", 0), ("Data", "integer", 0), ("Age", "string", 0)],
        "secrets" => &[
            ("Name", "string", 0),
            ("Type", "string", 0),
            ("Data", "integer", 0),
            ("Age", "string", 0),
        ],
        "events" => &[
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Message", "string", 0),
        ],
        _ => &[("Name", "string", 0), ("Age", "string", 0)],
    }
}

/// A human age like kubectl prints: `12s`, `5m`, `3h`, `2d`.
pub fn human_age(timestamp: Option<&str>) -> String {
    let Some(parsed) =
        timestamp.and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
    else {
        return "<unknown>".to_string();
    };
    let seconds = (time::OffsetDateTime::now_utc() - parsed).whole_seconds().max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn text(object: &Value, pointer: &str) -> String {
    match object.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn number(object: &Value, pointer: &str) -> i64 {
    object.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn cells(resource: &ResourceType, object: &Value) -> Vec<Value> {
    let name = json!(text(object, "/metadata/name"));
    let age = json!(human_age(
        object.pointer("/metadata/creationTimestamp").and_then(Value::as_str)
    ));
    match resource.plural {
        "pods" => {
            let statuses = object.pointer("/status/containerStatuses").and_then(Value::as_array);
            let total = object
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let ready = statuses.map_or(0, |s| s.iter().filter(|c| c["ready"] == json!(true)).count());
            let restarts: i64 = statuses.map_or(0, |s| s.iter().filter_map(|c| c["restartCount"].as_i64()).sum());
            let phase = text(object, "/status/phase");
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(if phase.is_empty() { "Pending".to_string() } else { phase }),
                json!(restarts.to_string()),
                age,
                json!(text(object, "/status/podIP")),
                json!(text(object, "/spec/nodeName")),
            ]
        }
        "deployments" => vec![
            name,
            json!(format!(
                "{}/{}",
                number(object, "/status/readyReplicas"),
                number(object, "/spec/replicas")
            )),
            json!(number(object, "/status/updatedReplicas")),
            json!(number(object, "/status/availableReplicas")),
            age,
        ],
        "replicasets" => vec![
            name,
            json!(number(object, "/spec/replicas")),
            json!(number(object, "/status/replicas")),
            json!(number(object, "/status/readyReplicas")),
            age,
        ],
        "services" => {
            let ports = object
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map(|ports| {
                    ports
                        .iter()
                        .map(|p| format!("{}/{}", text(p, "/port"), p["protocol"].as_str().unwrap_or("TCP")))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            vec![
                name,
                json!(text(object, "/spec/type")),
                json!(text(object, "/spec/clusterIP")),
                json!("<none>"),
                json!(if ports.is_empty() { "<none>".to_string() } else { ports }),
                age,
            ]
        }
        "namespaces" => vec![name, json!(text(object, "/status/phase")), age],
        "nodes" => {
            let ready = object
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
            let roles: Vec<String> = object
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|labels| {
                    labels
                        .keys()
                        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            vec![
                name,
                json!(if ready { "Ready" } else { "NotReady" }),
                json!(if roles.is_empty() {
                    "<none>".to_string()
                } else {
                    roles.join(",")
                }),
                age,
                json!(text(object, "/status/nodeInfo/kubeletVersion")),
            ]
        }
        "configmaps" => {
            let data = object["data"].as_object().map_or(0, |d| d.len())
                + object["binaryData"].as_object().map_or(0, |d| d.len());
            vec![name, json!(data), age]
        }
        "secrets" => {
            let data = object["data"].as_object().map_or(0, |d| d.len());
            vec![name, json!(text(object, "/type")), json!(data), age]
        }
        "events" => {
            let seen = object
                .get("lastTimestamp")
                .and_then(Value::as_str)
                .or_else(|| object.pointer("/metadata/creationTimestamp").and_then(Value::as_str));
            let involved = format!(
                "{}/{}",
                text(object, "/involvedObject/kind").to_lowercase(),
                text(object, "/involvedObject/name")
            );
            vec![
                json!(human_age(seen)),
                json!(text(object, "/type")),
                json!(text(object, "/reason")),
                json!(involved),
                json!(text(object, "/message")),
            ]
        }
        _ => vec![name, age],
    }
}

fn column_definitions(resource: &ResourceType) -> Value {
    Value::Array(
        columns(resource)
            .iter()
            .map(|(name, kind, priority)| {
                let format = if *name == "Name" { "name" } else { "" };
                json!({"name": name, "type": kind, "format": format, "description": "", "priority": priority})
            })
            .collect(),
    )
}

/// `includeObject`: what each row carries besides its cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(text: Option<&str>) -> IncludeObject {
        match text {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

fn row(resource: &ResourceType, object: &Value, include: IncludeObject) -> Value {
    let mut row = json!({"cells": cells(resource, object)});
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            row["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": object.get("metadata").cloned().unwrap_or(json!({})),
            })
        }
        IncludeObject::Object => row["object"] = object.clone(),
    }
    row
}

/// A Table of `objects`, with list metadata (`resourceVersion`, `continue`, `remainingItemCount`).
pub fn table<'a>(
    resource: &ResourceType,
    objects: impl Iterator<Item = &'a Value>,
    list_metadata: Value,
    include: IncludeObject,
) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_metadata,
        "columnDefinitions": column_definitions(resource),
        "rows": objects.map(|o| row(resource, o, include)).collect::<Vec<_>>(),
    })
}
