//! The audit middleware: which requests are audited and what their event says.
//!
//! Audited: every change (POST, PUT, PATCH, DELETE) under `/kuboard-api/` and `/k8s-api/`, every
//! exec, attach and port-forward session through the Kubernetes proxy (whatever its method), every
//! login attempt, every request answered 401 or 403, and reads too when `KUBOARD_AUDIT_READS=true`.
//!
//! One event per request, written after the handler with its outcome — except:
//!
//! - under `strict`, a `pending` event (status 0) is written before the handler runs, and the
//!   outcome follows as a second event with the same `audit_id`. If the database fails between the
//!   two, the outcome event is dropped and counted; the `pending` event already proves the attempt;
//! - a handler that knows more than the request shows (login: the user who tried, and why it was
//!   refused; logout: the session it ended) attaches an [`AuditNote`] to its answer, and the event
//!   recorded here carries those facts; a login refused before its handler ran (a malformed body)
//!   has no note and is recorded as refused before it was checked;
//! - an exec, attach or port-forward session has an event when it opens (status 101) and a second
//!   one, with the same `audit_id` and the session's duration, when it ends ([`SessionAudit`]);
//! - requests the session guard refuses (CSRF, password change first) never reach this layer;
//!   [`audit_guard_refusals`], in front of the guard, records them from the guard's
//!   [`GuardRefusal`] mark.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::audit::audit_event::AuditEvent;
use crate::audit::audit_service::AuditService;
use crate::auth::sessions;
use crate::http::api_error::ApiError;
use crate::http::caller::presented_token;
use crate::http::client_address::{client_ip, PeerAddress};
use crate::http::session_guard::{GuardRefusal, GuardedSession};
use crate::http::AppState;

const LOGIN_PATH: &str = "/kuboard-api/auth/login";

/// The subresources of a pod whose requests open interactive sessions.
const SESSION_SUBRESOURCES: [&str; 3] = ["exec", "attach", "portforward"];

#[derive(Clone)]
pub struct AuditLayerState {
    pub app: AppState,
    pub service: Arc<AuditService>,
}

/// The facts of a request's audit event that only its handler knows, attached to its answer's
/// extensions; [`audit_layer`] records the event with them.
#[derive(Debug, Clone)]
pub struct AuditNote {
    /// The user the request acted for (a login's: the name tried, or `<invalid>`).
    pub username: String,
    /// Overrides the client the request's credentials show (a login is always `api`).
    pub client: Option<&'static str>,
    /// What the request acted on, e.g. `sessions`.
    pub resource: &'static str,
    /// Why, for humans (never a secret).
    pub message: String,
}

/// The caller as the Kubernetes proxy authenticated it (the session guard does not cover
/// `/k8s-api/`, so the middleware learns the user from the proxy through this slot).
#[derive(Debug, Clone, Default)]
pub struct AuditCaller(Arc<Mutex<Option<(String, String)>>>);

impl AuditCaller {
    /// Records the user name and groups of the request's caller.
    pub fn set(&self, username: &str, groups: &[String]) {
        *self.0.lock().expect("no panics while holding the lock") = Some((username.to_string(), groups.join(",")));
    }

    fn get(&self) -> Option<(String, String)> {
        self.0.lock().expect("no panics while holding the lock").clone()
    }
}

/// How an exec, attach or port-forward session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionOutcome {
    /// Either side closed; the bytes each way.
    Closed { from_client: u64, to_client: u64 },
    /// The upgrade did not complete, or a connection ended with an error (for example an
    /// apiserver closing its TLS stream without `close_notify`, the usual end of an exec).
    Failed(String),
}

/// The closing event of an exec, attach or port-forward session: the middleware puts it in the
/// request's extensions, the proxy takes it and calls [`SessionAudit::finish`] when the joined
/// connections end.
#[derive(Clone)]
pub struct SessionAudit {
    service: Arc<AuditService>,
    row: AuditEvent,
    caller: AuditCaller,
    started: Instant,
}

impl SessionAudit {
    /// Records the session's end: same `audit_id` as its opening event, its whole duration.
    pub async fn finish(self, outcome: SessionOutcome) {
        let mut row = self.row;
        if let Some((username, groups)) = self.caller.get() {
            row.username = username;
            row.groups = groups;
        }
        row.ts_micros = now_micros();
        row.status_code = i32::from(StatusCode::SWITCHING_PROTOCOLS.as_u16());
        row.duration_ms = self.started.elapsed().as_millis() as i64;
        row.decision = "allow".into();
        row.message = match outcome {
            SessionOutcome::Closed { from_client, to_client } => {
                format!("session ended: {from_client} bytes from the client, {to_client} bytes to it")
            }
            // A peer that closes without a TLS close_notify ends the session all the same.
            SessionOutcome::Failed(reason) => format!("session ended: {reason}"),
        };
        self.service.record(row).await;
    }
}

pub async fn audit_layer(State(layer): State<AuditLayerState>, mut request: Request, next: Next) -> Response {
    let service = &layer.service;
    let path = request.uri().path().to_string();
    let audited_path =
        (path.starts_with("/kuboard-api/") || path.starts_with("/k8s-api/")) && !path.starts_with("/kuboard-api/audit");
    if !service.enabled() || !audited_path {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let started = Instant::now();
    let mut row = describe(&layer.app, &request);
    let session = is_session(&row);
    let changes = session || !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    let is_login = path == LOGIN_PATH;

    let gated = service.gates_requests() && (changes || service.audit_reads());
    if gated {
        if row.username.is_empty() && path.starts_with("/k8s-api/") {
            // The proxy authenticates after the gate; the gate's event names the user all the same.
            if let Some(token) = presented_token(request.headers()) {
                let now = layer.app.clock.now_unix();
                if let Ok(Some(session)) = sessions::find_session(&layer.app.store, &token, now).await {
                    row.username = session.record.username;
                }
            }
        }
        let mut pending = row.clone();
        pending.status_code = 0;
        pending.decision = "pending".into();
        pending.message = "request started".into();
        if let Err(error) = service.accept(pending).await {
            tracing::debug!(%error, "audited request refused");
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "audit_unavailable",
                "audit is paused: the audit database does not accept events, so audited requests are refused until \
                 it does",
            )
            .into_response();
        }
    }

    let caller = path.starts_with("/k8s-api/").then(AuditCaller::default);
    if let Some(caller) = &caller {
        request.extensions_mut().insert(caller.clone());
        if session {
            request.extensions_mut().insert(SessionAudit {
                service: service.clone(),
                row: row.clone(),
                caller: caller.clone(),
                started,
            });
        }
    }
    let response = next.run(request).await;
    let status = response.status();
    let denied = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
    let note = response.extensions().get::<AuditNote>().cloned();
    if note.is_none() && !(changes || denied || is_login || service.audit_reads()) {
        return response;
    }
    if let Some((username, groups)) = caller.and_then(|caller| caller.get()) {
        row.username = username;
        row.groups = groups;
    }
    row.ts_micros = now_micros();
    row.status_code = i32::from(status.as_u16());
    row.duration_ms = started.elapsed().as_millis() as i64;
    row.decision = if denied || (is_login && !status.is_success()) {
        "deny"
    } else {
        "allow"
    }
    .into();
    if is_login {
        // The query could carry anything a client typed; a login's event keeps the path only.
        row.request_uri = LOGIN_PATH.into();
    }
    row.message = if let Some(note) = note {
        row.username = note.username;
        if let Some(client) = note.client {
            row.client = client.into();
        }
        row.resource = note.resource.into();
        row.name = String::new();
        row.subresource = String::new();
        note.message
    } else if session && status == StatusCode::SWITCHING_PROTOCOLS {
        "session opened".into()
    } else if is_login {
        format!(
            "login refused before it was checked: {}",
            status.canonical_reason().unwrap_or("")
        )
    } else {
        status.canonical_reason().unwrap_or("").into()
    };
    service.record(row).await;
    response
}

/// In front of the session guard: records the requests it refuses (CSRF token missing, password
/// change first), which never reach [`audit_layer`].
pub async fn audit_guard_refusals(State(layer): State<AuditLayerState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    // The guard refuses only requests under the API that present a credential.
    if !layer.service.enabled()
        || !path.starts_with("/kuboard-api/")
        || path == LOGIN_PATH
        || presented_token(request.headers()).is_none()
    {
        return next.run(request).await;
    }
    let started = Instant::now();
    let mut row = describe(&layer.app, &request);
    let response = next.run(request).await;
    let Some(refusal) = response.extensions().get::<GuardRefusal>() else {
        return response;
    };
    row.username = refusal.username.clone();
    row.ts_micros = now_micros();
    row.status_code = i32::from(response.status().as_u16());
    row.duration_ms = started.elapsed().as_millis() as i64;
    row.decision = "deny".into();
    row.message = format!("refused by the session guard: {}", refusal.code);
    layer.service.record(row).await;
    response
}

/// An exec, attach or port-forward request of a pod through the Kubernetes proxy.
fn is_session(row: &AuditEvent) -> bool {
    !row.cluster.is_empty() && row.resource == "pods" && SESSION_SUBRESOURCES.contains(&row.subresource.as_str())
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_micros() as i64)
        .unwrap_or(0)
}

/// The event's fields known before the handler runs.
fn describe(app: &AppState, request: &Request) -> AuditEvent {
    let headers = request.headers();
    let peer = request
        .extensions()
        .get::<ConnectInfo<PeerAddress>>()
        .map(|info| info.0 .0);
    let session = request.extensions().get::<GuardedSession>();
    let via_api = headers.contains_key(axum::http::header::AUTHORIZATION);
    let path = request.uri().path();
    let target = parse_target(path);
    let session_verb = (path.starts_with("/k8s-api/")
        && target.resource == "pods"
        && SESSION_SUBRESOURCES.contains(&target.subresource.as_str()))
    .then(|| target.subresource.clone());
    let verb = match (request.method(), path) {
        _ if session_verb.is_some() => session_verb.as_deref().unwrap_or("exec"),
        (_, LOGIN_PATH) => "login",
        (_, "/kuboard-api/auth/logout") => "logout",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, _) => "delete",
        _ => "get",
    };
    AuditEvent {
        ts_micros: now_micros(),
        audit_id: uuid::Uuid::new_v4().to_string(),
        replica: app.replica_id as i64,
        cluster: target.cluster,
        username: session.map(|s| s.0.record.username.clone()).unwrap_or_default(),
        groups: String::new(),
        client: if path.starts_with("/k8s-api/") && via_api {
            "kubectl"
        } else if via_api {
            "api"
        } else {
            "ui"
        }
        .into(),
        source_ip: client_ip(headers, peer, &app.trusted_proxies),
        user_agent: headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .chars()
            .take(256)
            .collect(),
        verb: verb.to_string(),
        api_group: target.api_group,
        resource: target.resource,
        subresource: target.subresource,
        namespace: target.namespace,
        name: target.name,
        request_uri: request
            .uri()
            .path_and_query()
            .map_or_else(|| path.to_string(), |pq| pq.as_str().chars().take(2048).collect()),
        status_code: 0,
        duration_ms: 0,
        decision: String::new(),
        message: String::new(),
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Target {
    cluster: String,
    api_group: String,
    namespace: String,
    resource: String,
    name: String,
    subresource: String,
}

/// What a path acts on: `/kuboard-api/users/alice/password` is resource `users`, name `alice`,
/// subresource `password`; `/kuboard-api/auth/password` is resource `auth/password`; a Kubernetes
/// path under `/k8s-api/{cluster}/` is read the way the apiserver reads it.
fn parse_target(path: &str) -> Target {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut target = Target::default();
    match segments.as_slice() {
        ["kuboard-api", "auth", rest @ ..] => {
            target.resource = format!("auth/{}", rest.first().copied().unwrap_or(""));
            target.name = rest.get(1).copied().unwrap_or("").into();
        }
        ["kuboard-api", resource, rest @ ..] => {
            target.resource = (*resource).into();
            target.name = rest.first().copied().unwrap_or("").into();
            target.subresource = rest.get(1).copied().unwrap_or("").into();
        }
        ["k8s-api", cluster, rest @ ..] => {
            target.cluster = (*cluster).into();
            let rest = match rest {
                ["api", _version, rest @ ..] => rest,
                ["apis", group, _version, rest @ ..] => {
                    target.api_group = (*group).into();
                    rest
                }
                _ => &[][..],
            };
            let rest = match rest {
                ["namespaces", namespace, rest @ ..] if !rest.is_empty() => {
                    target.namespace = (*namespace).into();
                    rest
                }
                other => other,
            };
            target.resource = rest.first().copied().unwrap_or("").into();
            target.name = rest.get(1).copied().unwrap_or("").into();
            target.subresource = rest.get(2).copied().unwrap_or("").into();
        }
        _ => {}
    }
    target
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_of_api_and_kubernetes_paths() {
        let t = parse_target("/kuboard-api/users/alice/password");
        assert_eq!(
            (t.resource.as_str(), t.name.as_str(), t.subresource.as_str()),
            ("users", "alice", "password")
        );
        assert_eq!(parse_target("/kuboard-api/auth/password").resource, "auth/password");
        let t = parse_target("/k8s-api/prod/apis/apps/v1/namespaces/web/deployments/front/scale");
        assert_eq!(
            t,
            Target {
                cluster: "prod".into(),
                api_group: "apps".into(),
                namespace: "web".into(),
                resource: "deployments".into(),
                name: "front".into(),
                subresource: "scale".into(),
            }
        );
        for sub in SESSION_SUBRESOURCES {
            let t = parse_target(&format!("/k8s-api/prod/api/v1/namespaces/web/pods/shell/{sub}"));
            let row = AuditEvent {
                cluster: t.cluster,
                resource: t.resource,
                subresource: t.subresource,
                ..AuditEvent {
                    ts_micros: 0,
                    audit_id: String::new(),
                    replica: 1,
                    cluster: String::new(),
                    username: String::new(),
                    groups: String::new(),
                    client: "api".into(),
                    source_ip: String::new(),
                    user_agent: String::new(),
                    verb: String::new(),
                    api_group: String::new(),
                    resource: String::new(),
                    subresource: String::new(),
                    namespace: String::new(),
                    name: String::new(),
                    request_uri: String::new(),
                    status_code: 0,
                    duration_ms: 0,
                    decision: "allow".into(),
                    message: String::new(),
                }
            };
            assert!(is_session(&row), "{sub}");
        }
        let t = parse_target("/k8s-api/prod/api/v1/namespaces/web/pods/shell/log");
        assert_eq!(t.subresource, "log");
        let t = parse_target("/k8s-api/prod/api/v1/namespaces/web");
        assert_eq!(
            (t.resource.as_str(), t.name.as_str(), t.namespace.as_str()),
            ("namespaces", "web", "")
        );
    }
}
