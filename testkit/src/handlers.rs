//! Request handling: health, discovery, OpenAPI, authentication, impersonation, authorization, and the
//! REST verbs on resources and their subresources.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::auth::{RequestAttributes, UserInfo};
use crate::exec::{self, ExecRequest};
use crate::logs::{self, LogRequest};
use crate::openapi;
use crate::patch::{self, PatchType};
use crate::resources::{self, ResourceType, RESOURCES};
use crate::selector::{FieldSelector, LabelSelector};
use crate::server::{ConnectionIdentity, InstanceControls};
use crate::status::ApiError;
use crate::store::{DeleteOptions, ListOptions, SharedState};
use crate::table::{self, IncludeObject};
use crate::watch::{self as watching, WatchRequest, WatchStart};

/// What every handler of one instance shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub state: Arc<SharedState>,
    pub controls: Arc<InstanceControls>,
    pub instance_name: String,
    pub shutdown: watch::Receiver<bool>,
}

/// The largest request body accepted.
const BODY_LIMIT: usize = 8 << 20;

/// The version the fake claims to be.
const GIT_VERSION: &str = "v1.32.4";

struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: Option<&str>) -> Query {
        Query(
            form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn flag(&self, name: &str) -> bool {
        matches!(self.get(name), Some("true" | "1"))
    }
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec(value).expect("a JSON value always serializes");
    (status, [(http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub(crate) async fn handle(State(app): State<AppState>, request: Request) -> Response {
    app.controls.count_request();
    let latency = app.controls.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match route(app, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn route(app: AppState, request: Request) -> Result<Response, ApiError> {
    let path = request.uri().path().to_string();
    match path.as_str() {
        "/livez" | "/healthz" => return Ok("ok".into_response()),
        "/readyz" => {
            if app.controls.is_ready() {
                return Ok("ok".into_response());
            }
            let body = format!(
                "[-]{} not ready: reason withheld\nreadyz check failed\n",
                app.instance_name
            );
            return Ok((StatusCode::INTERNAL_SERVER_ERROR, body).into_response());
        }
        _ => {}
    }
    if let Some(code) = app.controls.failure_code() {
        return Err(ApiError::new(
            code,
            "ServiceUnavailable",
            format!("{} is failing on purpose", app.instance_name),
        ));
    }
    if path == "/version" {
        return Ok(json_response(StatusCode::OK, &version()));
    }
    let user = authenticate(&app.state, &request)?;
    let user = app.state.rbac().impersonate(user, request.headers())?;
    let segments: Vec<String> = path.trim_matches('/').split('/').map(str::to_string).collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    if let Some(response) = discovery(&segments) {
        return response;
    }
    if segments
        == [
            AUTHORIZATION_PREFIX[0],
            AUTHORIZATION_PREFIX[1],
            AUTHORIZATION_PREFIX[2],
            "selfsubjectaccessreviews",
        ]
    {
        if request.method() != Method::POST {
            return Err(ApiError::new(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            ));
        }
        return self_subject_access_review(&app.state, &user, request).await;
    }
    let target = parse_target(&segments)?;
    resource_request(app, user, target, request).await
}

fn version() -> Value {
    json!({
        "major": "1", "minor": "32", "gitVersion": GIT_VERSION, "gitCommit": "fake", "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23", "compiler": "gc", "platform": "linux/amd64",
    })
}

fn authenticate(state: &SharedState, request: &Request) -> Result<UserInfo, ApiError> {
    let token = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if let Some(token) = token {
        return state.user_for_token(token).ok_or_else(ApiError::unauthorized);
    }
    request
        .extensions()
        .get::<ConnectionIdentity>()
        .and_then(|identity| identity.0.clone())
        .ok_or_else(ApiError::unauthorized)
}

fn resource_entry(resource: &ResourceType) -> Value {
    json!({
        "name": resource.plural,
        "singularName": resource.singular,
        "namespaced": resource.namespaced,
        "kind": resource.kind,
        "verbs": resource.verbs(),
        "shortNames": resource.short_names,
        "categories": if matches!(resource.plural, "pods" | "services" | "deployments" | "replicasets") { json!(["all"]) } else { json!([]) },
        "storageVersionHash": "",
    })
}

fn resource_list(group: &str, version: &str) -> Option<Value> {
    let served: Vec<&ResourceType> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if served.is_empty() {
        return None;
    }
    let mut entries = Vec::new();
    for resource in &served {
        entries.push(resource_entry(resource));
        if resource.has_status {
            entries.push(
                json!({"name": format!("{}/status", resource.plural), "singularName": "",
                "namespaced": resource.namespaced, "kind": resource.kind, "verbs": ["get", "patch", "update"]}),
            );
        }
        if has_scale(resource) {
            entries.push(json!({"name": format!("{}/scale", resource.plural), "singularName": "",
                "namespaced": true, "group": "autoscaling", "version": "v1", "kind": "Scale",
                "verbs": ["get", "patch", "update"]}));
        }
        if resource.plural == "pods" {
            for (subresource, kind, verbs) in resources::POD_SUBRESOURCES {
                entries.push(
                    json!({"name": format!("pods/{subresource}"), "singularName": "", "namespaced": true,
                    "kind": kind, "verbs": verbs}),
                );
            }
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": entries}))
}

fn api_group(group: &str) -> Value {
    let version = RESOURCES.iter().find(|r| r.group == group).map_or("v1", |r| r.version);
    let group_version = json!({"groupVersion": format!("{group}/{version}"), "version": version});
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": [group_version.clone()],
           "preferredVersion": group_version})
}

/// `/apis/authorization.k8s.io/v1`, where the access reviews are served.
const AUTHORIZATION_PREFIX: [&str; 3] = ["apis", "authorization.k8s.io", "v1"];

fn authorization_group() -> Value {
    let group_version = json!({"groupVersion": "authorization.k8s.io/v1", "version": "v1"});
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": "authorization.k8s.io",
           "versions": [group_version.clone()], "preferredVersion": group_version})
}

/// A `SelfSubjectAccessReview`: may the caller (after impersonation) do what `spec.resourceAttributes`
/// describes? Anyone may ask about themselves, as `system:basic-user` allows on a real cluster; the
/// answer comes from the same rules that authorize requests. `nonResourceAttributes` are answered
/// "not allowed" (the fake has no rules for them).
async fn self_subject_access_review(
    state: &SharedState,
    user: &UserInfo,
    request: Request,
) -> Result<Response, ApiError> {
    let (body, _) = read_json(request).await?;
    if body.get("kind").and_then(Value::as_str) != Some("SelfSubjectAccessReview") {
        return Err(ApiError::bad_request("the body must be a SelfSubjectAccessReview"));
    }
    let text = |attributes: &Value, field: &str| {
        attributes
            .get(field)
            .and_then(Value::as_str)
            .filter(|value| !value.is_empty())
            .map(str::to_string)
    };
    let allowed = match body.pointer("/spec/resourceAttributes") {
        Some(attributes) => {
            let verb = text(attributes, "verb").ok_or_else(|| {
                ApiError::invalid(
                    "SelfSubjectAccessReview",
                    "",
                    "spec.resourceAttributes.verb: Required value",
                )
            })?;
            let plural = text(attributes, "resource").unwrap_or_default();
            let resource = match text(attributes, "subresource") {
                Some(subresource) => format!("{plural}/{subresource}"),
                None => plural,
            };
            state.rbac().allows(
                user,
                &RequestAttributes {
                    verb,
                    resource,
                    api_group: text(attributes, "group").unwrap_or_default(),
                    namespace: text(attributes, "namespace"),
                    name: text(attributes, "name"),
                },
            )
        }
        None if body.pointer("/spec/nonResourceAttributes").is_some() => false,
        None => {
            return Err(ApiError::invalid(
                "SelfSubjectAccessReview",
                "",
                "spec.resourceAttributes: Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
            ))
        }
    };
    let mut review = body;
    review["apiVersion"] = json!("authorization.k8s.io/v1");
    review["metadata"] = json!({"creationTimestamp": null});
    review["status"] = if allowed {
        json!({"allowed": true, "reason": "allowed by the fake's RBAC rules"})
    } else {
        json!({"allowed": false})
    };
    Ok(json_response(StatusCode::CREATED, &review))
}

/// Discovery and OpenAPI documents, or `None` for other paths. Legacy (unaggregated) discovery is
/// served; kubectl falls back to it when the answer is not an aggregated discovery document.
fn discovery(segments: &[&str]) -> Option<Result<Response, ApiError>> {
    let document = match segments {
        ["api"] => json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]}),
        ["apis"] => {
            let mut groups: Vec<Value> = resources::named_groups().into_iter().map(api_group).collect();
            groups.push(authorization_group());
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        }
        ["apis", "authorization.k8s.io"] => authorization_group(),
        ["apis", "authorization.k8s.io", "v1"] => json!({"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": "authorization.k8s.io/v1", "resources": [{"name": "selfsubjectaccessreviews",
            "singularName": "selfsubjectaccessreview", "namespaced": false, "kind": "SelfSubjectAccessReview",
            "verbs": ["create"]}]}),
        ["apis", group] if resources::named_groups().contains(group) => api_group(group),
        ["api", "v1"] => resource_list("", "v1")?,
        ["apis", group, version] => resource_list(group, version)?,
        ["openapi", "v3"] => openapi::root(),
        ["openapi", "v3", rest @ ..] => match openapi::group_version_document(&rest.join("/")) {
            Some(document) => document,
            None => {
                return Some(Err(ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                )))
            }
        },
        ["openapi", "v2"] => {
            return Some(Err(ApiError::new(404, "NotFound", "the fake serves only /openapi/v3")));
        }
        _ => return None,
    };
    Some(Ok(json_response(StatusCode::OK, &document)))
}

/// The resource a URL addresses.
struct Target {
    resource: &'static ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn not_found_path() -> ApiError {
    ApiError::new(404, "NotFound", "the server could not find the requested resource")
}

fn parse_target(segments: &[&str]) -> Result<Target, ApiError> {
    let (group, version, rest) = match segments {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(not_found_path()),
    };
    let find = |plural: &str| resources::find(group, version, plural).ok_or_else(not_found_path);
    match rest {
        ["namespaces", namespace, plural, tail @ ..]
            if resources::find(group, version, plural).is_some_and(|r| r.namespaced) =>
        {
            let resource = find(plural)?;
            match tail {
                [] => Ok(Target {
                    resource,
                    namespace: Some(namespace.to_string()),
                    name: None,
                    subresource: None,
                }),
                [name] => Ok(Target {
                    resource,
                    namespace: Some(namespace.to_string()),
                    name: Some(name.to_string()),
                    subresource: None,
                }),
                [name, subresource] => Ok(Target {
                    resource,
                    namespace: Some(namespace.to_string()),
                    name: Some(name.to_string()),
                    subresource: Some(subresource.to_string()),
                }),
                _ => Err(not_found_path()),
            }
        }
        [plural] => Ok(Target {
            resource: find(plural)?,
            namespace: None,
            name: None,
            subresource: None,
        }),
        [plural, name] => {
            let resource = find(plural)?;
            if resource.namespaced {
                return Err(not_found_path());
            }
            Ok(Target {
                resource,
                namespace: None,
                name: Some(name.to_string()),
                subresource: None,
            })
        }
        [plural, name, subresource] => {
            let resource = find(plural)?;
            if resource.namespaced {
                return Err(not_found_path());
            }
            Ok(Target {
                resource,
                namespace: None,
                name: Some(name.to_string()),
                subresource: Some(subresource.to_string()),
            })
        }
        _ => Err(not_found_path()),
    }
}

fn verb_of(method: &Method, target: &Target, query: &Query) -> Result<&'static str, ApiError> {
    let collection = target.name.is_none();
    if matches!(target.subresource.as_deref(), Some("exec" | "attach")) {
        return Ok("create");
    }
    Ok(match (method.clone(), collection) {
        (Method::GET, true) if query.flag("watch") => "watch",
        (Method::GET, true) => "list",
        (Method::GET, false) if query.flag("watch") => "watch",
        (Method::GET, false) => "get",
        (Method::POST, true) => "create",
        (Method::PUT, false) => "update",
        (Method::PATCH, false) => "patch",
        (Method::DELETE, false) => "delete",
        (Method::DELETE, true) => "deletecollection",
        _ => {
            return Err(ApiError::new(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            ))
        }
    })
}

fn has_scale(resource: &ResourceType) -> bool {
    matches!(resource.plural, "deployments" | "replicasets")
}

/// The `autoscaling/v1` `Scale` view of a deployment or replica set.
fn scale_of(object: &Value) -> Value {
    let selector = object
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let metadata = &object["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": metadata["name"], "namespace": metadata["namespace"], "uid": metadata["uid"],
                     "resourceVersion": metadata["resourceVersion"], "creationTimestamp": metadata["creationTimestamp"]},
        "spec": {"replicas": object.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {"replicas": object.pointer("/status/replicas").cloned().unwrap_or(json!(0)), "selector": selector},
    })
}

fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.split(',').next().is_some_and(|first| first.contains("as=Table")))
}

async fn read_json(request: Request) -> Result<(Value, String), ApiError> {
    let content_type = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    if content_type.contains("protobuf") || content_type.contains("cbor") {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the fake accepts JSON only, not {content_type}"),
        ));
    }
    let bytes = axum::body::to_bytes(request.into_body(), BODY_LIMIT)
        .await
        .map_err(|e| {
            ApiError::new(
                413,
                "RequestEntityTooLarge",
                format!("the request body cannot be read: {e}"),
            )
        })?;
    let value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "the request body is not JSON (the fake accepts JSON bodies only): {e}"
        ))
    })?;
    Ok((value, content_type))
}

fn list_options(query: &Query) -> Result<ListOptions, ApiError> {
    Ok(ListOptions {
        label_selector: LabelSelector::parse(query.get("labelSelector").unwrap_or(""))?,
        field_selector: FieldSelector::parse(query.get("fieldSelector").unwrap_or(""))?,
        limit: query.get("limit").and_then(|l| l.parse().ok()),
        continue_token: query.get("continue").filter(|c| !c.is_empty()).map(str::to_string),
        resource_version: query.get("resourceVersion").map(str::to_string),
        resource_version_match: query.get("resourceVersionMatch").map(str::to_string),
    })
}

async fn resource_request(
    app: AppState,
    user: UserInfo,
    target: Target,
    request: Request,
) -> Result<Response, ApiError> {
    let query = Query::parse(request.uri().query());
    let method = request.method().clone();
    let verb = verb_of(&method, &target, &query)?;
    let resource_name = match &target.subresource {
        Some(subresource) => format!("{}/{subresource}", target.resource.plural),
        None => target.resource.plural.to_string(),
    };
    app.state.rbac().authorize(
        &user,
        &RequestAttributes {
            verb: verb.to_string(),
            resource: resource_name,
            api_group: target.resource.group.to_string(),
            namespace: target.namespace.clone(),
            name: target.name.clone(),
        },
    )?;
    let state = app.state.clone();
    let resource = target.resource;
    let namespace = target.namespace.as_deref();
    let dry_run = query.get("dryRun") == Some("All");
    let table = wants_table(request.headers()).then(|| IncludeObject::parse(query.get("includeObject")));
    match (verb, target.name.as_deref(), target.subresource.as_deref()) {
        ("watch", name, None) => {
            let mut field_selector = query.get("fieldSelector").unwrap_or("").to_string();
            if let Some(name) = name {
                field_selector = format!("metadata.name={name}");
            }
            let start = match query.get("resourceVersion").filter(|v| !v.is_empty() && *v != "0") {
                None => WatchStart::WithInitialState,
                Some(text) => WatchStart::After(
                    text.parse()
                        .map_err(|_| ApiError::bad_request(format!("invalid resource version {text:?}")))?,
                ),
            };
            let watch_request = WatchRequest {
                resource,
                namespace: target.namespace.clone(),
                label_selector: LabelSelector::parse(query.get("labelSelector").unwrap_or(""))?,
                field_selector: FieldSelector::parse(&field_selector)?,
                start,
                bookmarks: query.flag("allowWatchBookmarks"),
                send_initial_events: query.flag("sendInitialEvents"),
                timeout: query
                    .get("timeoutSeconds")
                    .and_then(|t| t.parse().ok())
                    .map(Duration::from_secs),
                table,
            };
            Ok(watching::respond(state, watch_request, app.shutdown.clone()))
        }
        ("list", None, None) => list(&state, resource, namespace, &query, table),
        ("get", Some(name), None) => {
            let object = state.get(resource, namespace, name)?;
            Ok(single(resource, &object, table))
        }
        (verb @ ("get" | "update" | "patch"), Some(name), Some("scale")) if has_scale(resource) => {
            let body = if verb == "get" {
                None
            } else {
                Some(read_json(request).await?)
            };
            let scaled = state.modify(
                resource,
                namespace,
                name,
                None,
                dry_run || verb == "get",
                false,
                |current| {
                    let mut updated = current.expect("modify passes the object when it must exist").clone();
                    let wanted = match &body {
                        None => return Ok(updated),
                        Some((body, content_type)) => {
                            let scale = scale_of(current.expect("present"));
                            let changed = if verb == "update" {
                                body.clone()
                            } else {
                                let patch_type = PatchType::from_content_type(content_type)
                                    .ok_or_else(|| ApiError::new(415, "UnsupportedMediaType", "unknown patch type"))?;
                                patch::apply_patch(&scale, patch_type, body)?
                            };
                            changed
                                .pointer("/spec/replicas")
                                .and_then(Value::as_i64)
                                .ok_or_else(|| ApiError::invalid("Scale", name, "spec.replicas: Required value"))?
                        }
                    };
                    updated["spec"]["replicas"] = json!(wanted);
                    Ok(updated)
                },
            )?;
            Ok(json_response(StatusCode::OK, &scale_of(&scaled)))
        }
        ("get", Some(name), Some("status")) if resource.has_status => {
            Ok(single(resource, state.get(resource, namespace, name)?.as_ref(), table))
        }
        ("get", Some(name), Some("log")) if resource.plural == "pods" => {
            let pod = state.get(resource, namespace, name)?;
            let container = logs::choose_container(&pod, query.get("container"))?;
            if query.flag("previous") {
                return Err(logs::no_previous_container(name, &container));
            }
            let since_time = query.get("sinceTime").map(logs::parse_since_time).transpose()?;
            let log_request = LogRequest {
                namespace: namespace.unwrap_or("default").to_string(),
                pod: name.to_string(),
                container,
                follow: query.flag("follow"),
                tail_lines: query.get("tailLines").and_then(|t| t.parse().ok()),
                timestamps: query.flag("timestamps"),
                since_time,
            };
            Ok(logs::respond(state, log_request, app.shutdown.clone()))
        }
        ("create", Some(name), Some(subresource @ ("exec" | "attach"))) if resource.plural == "pods" => {
            let pod = state.get(resource, namespace, name)?;
            // The container must exist even though every container runs the same shell.
            logs::choose_container(&pod, query.get("container"))?;
            let phase = pod
                .pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("Running");
            if phase == "Succeeded" || phase == "Failed" {
                return Err(ApiError::bad_request(format!(
                    "cannot exec into a container in a completed pod; current phase is {phase}"
                )));
            }
            let argv = if subresource == "attach" {
                vec!["sh".to_string()]
            } else {
                query.all("command")
            };
            if argv.is_empty() {
                return Err(ApiError::bad_request("you must specify at least 1 command"));
            }
            let headers = request.headers().clone();
            let (mut parts, _body) = request.into_parts();
            let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &()).await.map_err(|rejection| {
                ApiError::bad_request(format!(
                    "exec and attach are served over websockets only (v5.channel.k8s.io, v4.channel.k8s.io): {rejection}"
                ))
            })?;
            let exec_request = ExecRequest {
                argv,
                hostname: name.to_string(),
                tty: query.flag("tty"),
                stdin: query.flag("stdin"),
            };
            exec::upgrade(upgrade, &headers, exec_request, app.shutdown.clone())
        }
        ("create", None, None) => {
            let (body, _) = read_json(request).await?;
            let created = state.create(resource, namespace, body, dry_run)?;
            Ok(json_response(StatusCode::CREATED, &created))
        }
        ("update", Some(name), subresource @ (None | Some("status"))) => {
            let (body, _) = read_json(request).await?;
            let updated = state.update(resource, namespace, name, body, subresource, dry_run)?;
            Ok(json_response(StatusCode::OK, &updated))
        }
        ("patch", Some(name), subresource @ (None | Some("status"))) => {
            let (body, content_type) = read_json(request).await?;
            let patch_type = PatchType::from_content_type(&content_type).ok_or_else(|| {
                ApiError::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type})"))
            })?;
            let apply = patch_type == PatchType::Apply;
            if apply && query.get("fieldManager").is_none_or(str::is_empty) {
                return Err(ApiError::bad_request(
                    "PATCH requests with apply content type require fieldManager",
                ));
            }
            let existed = state.get(resource, namespace, name).is_ok();
            let patched = state.modify(
                resource,
                namespace,
                name,
                subresource,
                dry_run,
                apply,
                |current| match current {
                    Some(current) => patch::apply_patch(current, patch_type, &body),
                    None => Ok(body.clone()),
                },
            )?;
            let code = if apply && !existed {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(json_response(code, &patched))
        }
        ("delete", Some(name), None) => {
            let options = delete_options(request, &query).await?;
            let deleted = state.delete(resource, namespace, name, &options, dry_run)?;
            Ok(json_response(StatusCode::OK, &deleted))
        }
        ("deletecollection", None, None) => {
            let options = delete_options(request, &query).await?;
            let mut list_options = list_options(&query)?;
            list_options.limit = None;
            let page = state.list(resource, namespace, &list_options)?;
            let mut deleted = Vec::new();
            for object in page.items {
                let object_namespace = object.pointer("/metadata/namespace").and_then(Value::as_str);
                let object_name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
                // An object already deleted by a cascade is simply skipped.
                if let Ok(gone) = state.delete(resource, object_namespace, object_name, &options, dry_run) {
                    deleted.push(gone);
                }
            }
            let items: Vec<&Value> = deleted.iter().map(|o| o.as_ref()).collect();
            Ok(json_response(
                StatusCode::OK,
                &json!({
                    "kind": format!("{}List", resource.kind), "apiVersion": resource.api_version(),
                    "metadata": {"resourceVersion": state.resource_version().to_string()}, "items": items,
                }),
            ))
        }
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("the fake does not serve {method} on this path"),
        )),
    }
}

async fn delete_options(request: Request, query: &Query) -> Result<DeleteOptions, ApiError> {
    let bytes = axum::body::to_bytes(request.into_body(), BODY_LIMIT)
        .await
        .map_err(|e| ApiError::bad_request(format!("the request body cannot be read: {e}")))?;
    let body: Value = if bytes.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("DeleteOptions are not JSON: {e}")))?
    };
    let text = |pointer: &str| body.pointer(pointer).and_then(Value::as_str).map(str::to_string);
    Ok(DeleteOptions {
        precondition_uid: text("/preconditions/uid"),
        precondition_resource_version: text("/preconditions/resourceVersion"),
        propagation_policy: text("/propagationPolicy").or_else(|| query.get("propagationPolicy").map(str::to_string)),
    })
}

fn single(resource: &ResourceType, object: &Value, table: Option<IncludeObject>) -> Response {
    match table {
        Some(include) => {
            let metadata = json!({"resourceVersion": object.pointer("/metadata/resourceVersion").cloned()});
            json_response(
                StatusCode::OK,
                &table::table(resource, std::iter::once(object), metadata, include),
            )
        }
        None => json_response(StatusCode::OK, object),
    }
}

fn list(
    state: &SharedState,
    resource: &'static ResourceType,
    namespace: Option<&str>,
    query: &Query,
    table: Option<IncludeObject>,
) -> Result<Response, ApiError> {
    let options = list_options(query)?;
    let page = state.list(resource, namespace, &options)?;
    let mut metadata = json!({"resourceVersion": page.resource_version.to_string()});
    if let Some(token) = &page.continue_token {
        metadata["continue"] = json!(token);
    }
    if let Some(remaining) = page.remaining_item_count {
        metadata["remainingItemCount"] = json!(remaining);
    }
    if let Some(include) = table {
        let document = table::table(resource, page.items.iter().map(|o| o.as_ref()), metadata, include);
        return Ok(json_response(StatusCode::OK, &document));
    }
    // Written item by item, so a page never costs a deep copy of its objects.
    let mut body = Vec::with_capacity(256 + page.items.len() * 1024);
    let header =
        json!({"kind": format!("{}List", resource.kind), "apiVersion": resource.api_version(), "metadata": metadata});
    let header = serde_json::to_string(&header).expect("a JSON value always serializes");
    body.extend_from_slice(&header.as_bytes()[..header.len() - 1]);
    body.extend_from_slice(b",\"items\":[");
    for (index, item) in page.items.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        serde_json::to_writer(&mut body, item.as_ref()).expect("a JSON value always serializes");
    }
    body.extend_from_slice(b"]}");
    Ok((StatusCode::OK, [(http::header::CONTENT_TYPE, "application/json")], body).into_response())
}
