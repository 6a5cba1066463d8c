//! `/k8s-api/{cluster}/{*path}`: the Kubernetes API of an imported cluster, as the logged-in
//! Kuboard user.
//!
//! What reaches the apiserver: the method, the path below `/k8s-api/{cluster}`, the query, the
//! body and the end-to-end headers of the caller, minus its credentials (`Authorization`,
//! cookies, the CSRF header) and any `Impersonate-*` header it sent; plus the cluster's own
//! credential and `Impersonate-User` / `Impersonate-Group` from
//! [`crate::auth::roles::kubernetes_identity`]. Responses stream through unbuffered (chunked
//! watches, `logs?follow=true`); exec, attach and port-forward websocket upgrades are joined
//! end to end, their subprotocols (`v4/v5.channel.k8s.io`) untouched. Request bodies are read
//! first (bounded like the apiserver's own limit) so that a request can move to another
//! apiserver when the chosen one cannot be reached.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{CONNECTION, CONTENT_LENGTH, HOST, UPGRADE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Limited};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};

use crate::audit::audit_layer::{AuditCaller, SessionAudit, SessionOutcome};
use crate::auth::role_bindings;
use crate::auth::roles::{kubernetes_identity, UserView};
use crate::auth::sessions::{self, Session};
use crate::auth::users;
use crate::http::caller::{presented_token, token_from_bearer};
use crate::http::session_guard::CSRF_HEADER;
use crate::kube::apiserver_pool::{PoolError, UpstreamRequest};
use crate::kube::apiserver_pool_registry::PoolLookupError;
use crate::kube::kube_routes::KubeRoutesState;
use crate::kube::kube_status::KubeStatus;

/// The apiserver refuses request bodies above 3 MiB; so does the proxy, before sending.
pub const MAX_REQUEST_BODY_BYTES: usize = 3 * 1024 * 1024;
pub const PROXY_PREFIX: &str = "/k8s-api/";

/// Headers that describe one hop, never forwarded (RFC 9110 §7.6.1), plus the caller's own
/// credentials and anything that could change whom the apiserver believes it serves.
fn is_stripped_request_header(name: &HeaderName) -> bool {
    let name = name.as_str();
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
            | "authorization"
            | "cookie"
            | CSRF_HEADER
    ) || name.starts_with("impersonate-")
        || name.starts_with("x-remote-")
}

fn is_hop_by_hop_response_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "proxy-connection" | "te" | "trailer" | "transfer-encoding" | "upgrade"
    )
}

/// The namespace a Kubernetes API path addresses, if any (`/api/v1/namespaces/NS/...`,
/// `/apis/GROUP/VERSION/namespaces/NS/...`, with the old `/watch/` form too).
pub fn request_namespace(path: &str) -> Option<&str> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let rest = match segments.first() {
        Some(&"api") if segments.len() > 2 => &segments[2..],
        Some(&"apis") if segments.len() > 3 => &segments[3..],
        _ => return None,
    };
    let rest = match rest.first() {
        Some(&"watch") => &rest[1..],
        _ => rest,
    };
    match rest {
        ["namespaces", namespace, ..] if !namespace.is_empty() => Some(namespace),
        _ => None,
    }
}

/// An upstream path the proxy accepted, with the namespace its permissions are judged by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JudgedPath {
    /// The namespace segment with its percent escapes decoded, as the apiserver reads it.
    pub namespace: Option<String>,
}

/// Judges the path below `/k8s-api/{cluster}` (without its query) before anything is sent.
///
/// The namespace a user's bindings are matched against must be the namespace the apiserver
/// acts on, and the path must stay below the cluster URL's prefix. Servers and proxies in
/// front of an apiserver resolve dot-segments, and some decode `%2F` before routing, so any
/// segment that is (or decodes to) `.` or `..`, that decodes to a slash, a backslash or a
/// control character, that carries a malformed escape, or that is empty (but for a trailing
/// slash) is refused rather than normalised: no Kubernetes client sends one.
pub fn judge_upstream_path(path: &str) -> Result<JudgedPath, String> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err("the Kubernetes API path must start with /".to_string());
    };
    if path.contains('\\') {
        return Err("the Kubernetes API path must not contain a backslash".to_string());
    }
    let segments: Vec<&str> = rest.split('/').collect();
    for (index, segment) in segments.iter().enumerate() {
        if segment.is_empty() {
            if index + 1 == segments.len() {
                continue;
            }
            return Err("the Kubernetes API path must not contain an empty segment (//)".to_string());
        }
        let decoded = percent_decode_segment(segment)
            .ok_or_else(|| format!("the path segment {segment:?} has a malformed percent escape"))?;
        if decoded == b"." || decoded == b".." {
            return Err(format!(
                "the path segment {segment:?} is a dot-segment; send the path without . or .."
            ));
        }
        if decoded
            .iter()
            .any(|byte| matches!(byte, b'/' | b'\\') || byte.is_ascii_control())
        {
            return Err(format!(
                "the path segment {segment:?} encodes a slash, a backslash or a control character"
            ));
        }
    }
    let namespace = match request_namespace(path) {
        Some(segment) => {
            let decoded = percent_decode_segment(segment).expect("every segment was decoded above");
            Some(
                String::from_utf8(decoded)
                    .map_err(|_| format!("the namespace segment {segment:?} is not UTF-8 once decoded"))?,
            )
        }
        None => None,
    };
    Ok(JudgedPath { namespace })
}

/// Decodes the `%XX` escapes of one path segment; `None` when an escape is malformed.
/// The namespace a SelfSubjectAccessReview (`spec.resourceAttributes.namespace`) or
/// SelfSubjectRulesReview (`spec.namespace`) asks about, for a POST to their collection; `None` for
/// any other request. A review whose body is not JSON, or names no valid namespace, is judged
/// without one (`Some(None)`), as its cluster-scoped path would be.
fn review_namespace(method: &Method, path: &str, body: &[u8]) -> Option<Option<String>> {
    let kind = match path.trim_end_matches('/').split('/').collect::<Vec<_>>().as_slice() {
        ["", "apis", "authorization.k8s.io", "v1" | "v1beta1", kind] => *kind,
        _ => return None,
    };
    if *method != Method::POST {
        return None;
    }
    let review: serde_json::Value = match serde_json::from_slice(body) {
        Ok(review) => review,
        Err(_) => return Some(None),
    };
    let namespace = match kind {
        "selfsubjectaccessreviews" => review.pointer("/spec/resourceAttributes/namespace"),
        "selfsubjectrulesreviews" => review.pointer("/spec/namespace"),
        _ => return None,
    };
    Some(
        namespace
            .and_then(serde_json::Value::as_str)
            .filter(|name| is_namespace_name(name))
            .map(str::to_owned),
    )
}

/// A Kubernetes namespace name: a DNS label (RFC 1123), at most 63 characters.
fn is_namespace_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn percent_decode_segment(segment: &str) -> Option<Vec<u8>> {
    let bytes = segment.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let high = (*bytes.get(index + 1)? as char).to_digit(16)?;
            let low = (*bytes.get(index + 2)? as char).to_digit(16)?;
            decoded.push((high * 16 + low) as u8);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    Some(decoded)
}

/// Splits `/k8s-api/{cluster}/{rest}?query` into the cluster and the upstream path and query.
fn split_proxy_path(path_and_query: &str) -> Option<(&str, String)> {
    let rest = path_and_query.strip_prefix(PROXY_PREFIX)?;
    let (cluster, upstream) = match rest.find(['/', '?']) {
        Some(index) => rest.split_at(index),
        None => (rest, ""),
    };
    let upstream = if upstream.is_empty() || upstream.starts_with('?') {
        format!("/{upstream}")
    } else {
        upstream.to_string()
    };
    Some((cluster, upstream))
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    let connection_upgrade = headers.get_all(CONNECTION).iter().any(|value| {
        value.to_str().is_ok_and(|text| {
            text.split(',')
                .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
        })
    });
    connection_upgrade && headers.contains_key(UPGRADE)
}

/// Requests whose streamed answer may end early without harm: when the apiserver behind a
/// watch or a followed log fails, the stream ends like a normal end, and the client opens it
/// again from its last resource version (or line).
fn streams_may_end_early(path_and_query: &str) -> bool {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let query_flag = |name: &str| {
        query
            .split('&')
            .any(|pair| pair == format!("{name}=true") || pair == format!("{name}=1"))
    };
    query_flag("watch") || query_flag("follow") || path.contains("/watch/")
}

async fn authenticate(state: &KubeRoutesState, headers: &HeaderMap) -> Result<Session, KubeStatus> {
    let token = presented_token(headers)
        .ok_or_else(|| KubeStatus::unauthorized("log in to Kuboard first: no session or access key was presented"))?;
    match sessions::find_session(&state.app.store, &token, state.app.clock.now_unix()).await {
        Ok(Some(session)) => Ok(session),
        Ok(None) => Err(KubeStatus::unauthorized(
            "the Kuboard session or access key is not valid (expired, logged out or revoked)",
        )),
        Err(error) => {
            tracing::warn!(%error, "the store cannot check a session for the Kubernetes proxy");
            Err(KubeStatus::service_unavailable(
                "Kuboard's store cannot serve requests right now; retry shortly",
            ))
        }
    }
}

/// A session cookie may change nothing without the session's CSRF token, and may open a
/// websocket only from this site's own pages.
fn check_cookie_use(session: &Session, headers: &HeaderMap, method: &Method, upgrade: bool) -> Result<(), KubeStatus> {
    if token_from_bearer(headers).is_some() {
        return Ok(());
    }
    if upgrade {
        let origin = headers.get("origin").and_then(|value| value.to_str().ok());
        let host = headers.get(HOST).and_then(|value| value.to_str().ok());
        let same_site = match (origin, host) {
            (None, _) => true,
            (Some(origin), Some(host)) => origin.split_once("://").is_some_and(|(_, rest)| rest == host),
            (Some(_), None) => false,
        };
        if !same_site {
            return Err(KubeStatus::forbidden(
                "a websocket opened with the session cookie must come from Kuboard's own pages",
            ));
        }
        return Ok(());
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let presented = headers.get(CSRF_HEADER).and_then(|value| value.to_str().ok());
    let matches = presented.is_some_and(|token| {
        !session.record.csrf_hash.is_empty()
            && hex::encode(Sha256::digest(token.trim().as_bytes())) == session.record.csrf_hash
    });
    if matches {
        Ok(())
    } else {
        Err(KubeStatus::forbidden(
            "a change made with the session cookie must carry the session's CSRF token in X-Kuboard-CSRF",
        ))
    }
}

/// The proxy handler, for every method.
pub async fn proxy(State(state): State<KubeRoutesState>, request: Request) -> Response {
    match forward(state, request).await {
        Ok(response) => response,
        Err(status) => status.into_response(),
    }
}

async fn forward(state: KubeRoutesState, mut request: Request) -> Result<Response, KubeStatus> {
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or_else(|| request.uri().path().to_string(), |value| value.as_str().to_string());
    let (cluster, upstream_path) =
        split_proxy_path(&path_and_query).ok_or_else(|| KubeStatus::not_found("not a Kubernetes proxy path"))?;
    let cluster = cluster.to_string();
    let upgrade = is_upgrade(request.headers());
    let method = request.method().clone();

    let session = authenticate(&state, request.headers()).await?;
    let audit_caller = request.extensions().get::<AuditCaller>().cloned();
    if let Some(caller) = &audit_caller {
        caller.set(&session.record.username, &[]);
    }
    if session.record.must_change_password {
        return Err(KubeStatus::forbidden(
            "change the Kuboard password first (POST /kuboard-api/auth/password): it is still the one set for you",
        ));
    }
    check_cookie_use(&session, request.headers(), &method, upgrade)?;
    let store_unavailable = |error: &dyn std::fmt::Display| {
        tracing::warn!(%error, "the store cannot serve the Kubernetes proxy");
        KubeStatus::service_unavailable("Kuboard's store cannot serve requests right now; retry shortly")
    };
    let user = match users::get_user(&state.app.store, &session.record.username).await {
        Ok(Some(user)) => user,
        Ok(None) => return Err(KubeStatus::unauthorized("the Kuboard user no longer exists")),
        Err(error) => return Err(store_unavailable(&error)),
    };
    let bindings = role_bindings::list_role_bindings(&state.app.store)
        .await
        .map_err(|error| store_unavailable(&error))?;
    let path_only = upstream_path.split('?').next().unwrap_or("/");
    let judged = judge_upstream_path(path_only).map_err(KubeStatus::bad_request)?;
    let view = UserView {
        username: &user.record.username,
        role: user.record.effective_role(),
        groups: &user.record.groups,
        disabled: user.record.disabled,
    };
    if view.disabled {
        return Err(KubeStatus::forbidden("this Kuboard user is disabled"));
    }
    if let Some(caller) = &audit_caller {
        caller.set(&user.record.username, &user.record.groups);
    }

    let pool = match state
        .pools
        .pool_for(&state.app.store, &state.app.cipher, &cluster)
        .await
    {
        Ok(Some(pool)) => pool,
        Ok(None) => {
            return Err(KubeStatus::not_found(format!(
                "Kuboard has no cluster named {cluster:?}"
            )))
        }
        Err(PoolLookupError::Registry(error)) => {
            tracing::warn!(%error, cluster = %cluster, "the cluster registry cannot be read for the proxy");
            return Err(KubeStatus::service_unavailable(
                "Kuboard cannot read this cluster's settings right now; retry shortly",
            ));
        }
        Err(error @ PoolLookupError::Connection { .. }) => {
            tracing::error!(%error, "a registered cluster cannot be connected");
            return Err(KubeStatus::bad_gateway(
                "this cluster's connection settings are not usable; an administrator must fix them",
            ));
        }
    };

    let mut headers = HeaderMap::new();
    for (name, value) in request.headers() {
        if !is_stripped_request_header(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    if upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Some(protocol) = request.headers().get(UPGRADE) {
            headers.insert(UPGRADE, protocol.clone());
        }
    }
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    // The audit layer's closing event of an exec, attach or port-forward session.
    let session_audit = request.extensions_mut().remove::<SessionAudit>();
    let body = if upgrade {
        Bytes::new()
    } else {
        match Limited::new(request.into_body(), MAX_REQUEST_BODY_BYTES)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(error) if error.is::<http_body_util::LengthLimitError>() => {
                return Err(KubeStatus::too_large("the request body is larger than 3 MiB"))
            }
            Err(_) => return Err(KubeStatus::bad_request("the request body could not be read")),
        }
    };
    // A review performs nothing and asks about the namespace in its body: it is answered with the
    // groups the user holds there, as the request it asks about would be.
    let namespace = match review_namespace(&method, path_only, &body) {
        Some(namespace) => namespace,
        None => judged.namespace,
    };
    let identity = kubernetes_identity(&view, &bindings, &cluster, namespace.as_deref())
        .ok_or_else(|| KubeStatus::forbidden("this Kuboard user is disabled"))?;
    headers.insert(
        "impersonate-user",
        HeaderValue::from_str(&identity.user)
            .map_err(|_| KubeStatus::bad_request("the user name cannot be sent as a header"))?,
    );
    for group in &identity.groups {
        headers.append(
            "impersonate-group",
            HeaderValue::from_str(group)
                .map_err(|_| KubeStatus::bad_request("a group name cannot be sent as a header"))?,
        );
    }

    let clean_end = streams_may_end_early(&upstream_path);
    let upstream = pool
        .send(UpstreamRequest {
            method,
            path_and_query: upstream_path,
            headers,
            body,
        })
        .await
        .map_err(|error| {
            tracing::warn!(cluster = %cluster, error = %error, "proxied request failed");
            match error {
                PoolError::Unreachable { .. } => KubeStatus::service_unavailable(format!(
                    "no apiserver of cluster {cluster:?} can be reached right now"
                )),
                PoolError::Failed { .. } => {
                    KubeStatus::bad_gateway(format!("the apiserver of cluster {cluster:?} failed while answering"))
                }
                PoolError::Build(message) => KubeStatus::bad_request(message),
            }
        })?;
    let mut upstream_response = upstream.response;

    if let Some(client_upgrade) = client_upgrade {
        if upstream_response.status() == StatusCode::SWITCHING_PROTOCOLS {
            let upstream_upgrade = hyper::upgrade::on(&mut upstream_response);
            let mut response = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
            if let Some(response_headers) = response.headers_mut() {
                for (name, value) in upstream_response.headers() {
                    response_headers.append(name.clone(), value.clone());
                }
            }
            let endpoint = upstream.endpoint.clone();
            tokio::spawn(async move {
                let (client, server) = match tokio::join!(client_upgrade, upstream_upgrade) {
                    (Ok(client), Ok(server)) => (client, server),
                    (client, server) => {
                        tracing::warn!(client_ok = client.is_ok(), upstream_ok = server.is_ok(), %endpoint,
                            "a websocket upgrade did not complete");
                        if let Some(audit) = session_audit {
                            audit
                                .finish(SessionOutcome::Failed("the upgrade did not complete".into()))
                                .await;
                        }
                        return;
                    }
                };
                let mut client = TokioIo::new(client);
                let mut server = TokioIo::new(server);
                // Either side closing (or the endpoint failing) ends the session for both.
                let copied = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                if let Some(audit) = session_audit {
                    let outcome = match copied {
                        Ok((from_client, to_client)) => SessionOutcome::Closed { from_client, to_client },
                        Err(error) => SessionOutcome::Failed(error.to_string()),
                    };
                    audit.finish(outcome).await;
                }
            });
            return response
                .body(Body::empty())
                .map_err(|_| KubeStatus::bad_gateway("the upgrade answer could not be built"));
        }
    }

    let (parts, incoming) = upstream_response.into_parts();
    let mut response = Response::builder().status(parts.status);
    if let Some(response_headers) = response.headers_mut() {
        for (name, value) in &parts.headers {
            if !(is_hop_by_hop_response_header(name) || (clean_end && name == CONTENT_LENGTH)) {
                response_headers.append(name.clone(), value.clone());
            }
        }
    }
    response
        .body(Body::new(StreamedBody {
            inner: incoming,
            clean_end,
            ended: false,
        }))
        .map_err(|_| KubeStatus::bad_gateway("the answer could not be built"))
}

/// The apiserver's answer, passed on frame by frame. For watches and followed logs a failure of
/// the apiserver ends the stream normally (see [`streams_may_end_early`]); for anything else it
/// aborts the answer, so that a truncated list is never mistaken for a whole one.
struct StreamedBody {
    inner: Incoming,
    clean_end: bool,
    ended: bool,
}

impl HttpBody for StreamedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(context) {
            Poll::Ready(Some(Err(error))) if this.clean_end => {
                tracing::debug!(%error, "a streamed answer ended because its apiserver went away");
                this.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(None) => {
                this.ended = true;
                Poll::Ready(None)
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.clean_end {
            SizeHint::default()
        } else {
            self.inner.size_hint()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_of_paths() {
        for (path, expected) in [
            ("/api/v1/namespaces/shop/pods", Some("shop")),
            ("/api/v1/namespaces/shop", Some("shop")),
            ("/api/v1/watch/namespaces/shop/pods", Some("shop")),
            ("/apis/apps/v1/namespaces/web/deployments/x", Some("web")),
            ("/api/v1/pods", None),
            ("/api/v1/namespaces", None),
            ("/apis/apps/v1", None),
            ("/version", None),
            ("/api", None),
        ] {
            assert_eq!(request_namespace(path), expected, "{path}");
        }
    }

    /// The path judgement: what a namespaced user's request is judged as, or why it is refused.
    fn check_judgement(path: &str, expected: Result<Option<&str>, ()>) {
        let judged = judge_upstream_path(path);
        match expected {
            Ok(namespace) => {
                let judged = judged.unwrap_or_else(|refusal| panic!("{path} refused: {refusal}"));
                assert_eq!(judged.namespace.as_deref(), namespace, "{path}");
            }
            Err(()) => assert!(judged.is_err(), "{path} must be refused, was judged {judged:?}"),
        }
    }

    #[test]
    fn traversal_out_of_the_judged_namespace_is_refused() {
        for path in [
            "/api/v1/namespaces/dev/../../../api/v1/namespaces/prod/secrets",
            "/api/v1/namespaces/dev/../prod/secrets",
            "/api/v1/namespaces/dev/./../prod/secrets",
            "/api/v1/namespaces/dev/%2e%2e/%2E%2E/%2e%2e/api/v1/namespaces/prod/secrets",
            "/api/v1/namespaces/dev/.%2e/prod/secrets",
            "/api/v1/namespaces/dev/%2e/secrets",
            "/api/v1/namespaces/dev%2f..%2f..%2f..%2fapi%2fv1%2fnamespaces%2fprod/secrets",
            "/api/v1/namespaces/dev%2F..%2Fprod/secrets",
            "/api/v1/namespaces/dev%5c..%5cprod/secrets",
            "/api/v1/namespaces/dev\\..\\prod/secrets",
            "/api/v1/namespaces//prod/secrets",
            "//api/v1/namespaces/prod/secrets",
            "/api/v1/namespaces/dev//secrets",
            "/apis/apps/v1/namespaces/dev/../../../../api/v1/secrets",
            "/api/v1/namespaces/dev/secrets/..",
            "/api/v1/namespaces/dev/secrets/%zz",
            "/api/v1/namespaces/dev/secrets/%2",
            "/api/v1/namespaces/dev/secrets/a%00b",
            "api/v1/namespaces/dev/secrets",
        ] {
            check_judgement(path, Err(()));
        }
    }

    #[test]
    fn plain_paths_are_judged_by_their_namespace() {
        for (path, namespace) in [
            ("/", None),
            ("/api", None),
            ("/apis/", None),
            ("/api/v1/namespaces/dev/secrets", Some("dev")),
            ("/api/v1/namespaces/dev/secrets/", Some("dev")),
            ("/api/v1/namespaces/de%76/secrets", Some("dev")),
            ("/api/v1/namespaces/dev/pods/p/log", Some("dev")),
            ("/api/v1/namespaces/dev/services/s:80/proxy/a%20b/c.d", Some("dev")),
            ("/api/v1/namespaces/dev/pods/p..q", Some("dev")),
            ("/api/v1/watch/namespaces/dev/pods", Some("dev")),
            ("/apis/apps/v1/namespaces/web/deployments/x", Some("web")),
            ("/api/v1/pods", None),
        ] {
            check_judgement(path, Ok(namespace));
        }
    }

    #[test]
    fn reviews_are_judged_by_the_namespace_they_ask_about() {
        let access = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
        let rules = "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews";
        let ask = |method: Method, path: &str, body: &str| review_namespace(&method, path, body.as_bytes());
        let about_dev = r#"{"kind":"SelfSubjectAccessReview","spec":{"resourceAttributes":{"verb":"list","resource":"pods","namespace":"dev"}}}"#;
        assert_eq!(ask(Method::POST, access, about_dev), Some(Some("dev".to_string())));
        assert_eq!(
            ask(Method::POST, &format!("{access}/"), about_dev),
            Some(Some("dev".to_string()))
        );
        assert_eq!(
            ask(
                Method::POST,
                rules,
                r#"{"kind":"SelfSubjectRulesReview","spec":{"namespace":"web"}}"#
            ),
            Some(Some("web".to_string()))
        );
        // Asked about no namespace, an invalid one, or in a body that is not JSON: no namespace.
        for body in [
            r#"{"spec":{"resourceAttributes":{"verb":"list","resource":"nodes"}}}"#,
            r#"{"spec":{"resourceAttributes":{"namespace":"Dev_1"}}}"#,
            r#"{"spec":{"resourceAttributes":{"namespace":"-dev"}}}"#,
            r#"{"spec":{"resourceAttributes":{"namespace":""}}}"#,
            r#"{"spec":{"resourceAttributes":{"namespace":7}}}"#,
            r#"{"spec":{"nonResourceAttributes":{"path":"/healthz","verb":"get"}}}"#,
            "\x0a\x02k8s",
        ] {
            assert_eq!(ask(Method::POST, access, body), Some(None), "{body}");
        }
        // Anything else keeps the path's judgement.
        assert_eq!(ask(Method::GET, access, about_dev), None);
        assert_eq!(
            ask(
                Method::POST,
                "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                about_dev
            ),
            None
        );
        assert_eq!(ask(Method::POST, "/api/v1/namespaces/dev/pods", about_dev), None);
        assert_eq!(
            ask(
                Method::POST,
                "/apis/authorization.k8s.io/v2/selfsubjectaccessreviews",
                about_dev
            ),
            None
        );
    }

    #[test]
    fn proxy_paths() {
        assert_eq!(
            split_proxy_path("/k8s-api/prod/api/v1/pods?limit=5"),
            Some(("prod", "/api/v1/pods?limit=5".to_string()))
        );
        assert_eq!(split_proxy_path("/k8s-api/prod"), Some(("prod", "/".to_string())));
        assert_eq!(
            split_proxy_path("/k8s-api/prod?x=1"),
            Some(("prod", "/?x=1".to_string()))
        );
        assert_eq!(split_proxy_path("/other"), None);
    }

    #[test]
    fn caller_credentials_and_impersonation_are_never_forwarded() {
        for name in [
            "authorization",
            "cookie",
            "impersonate-user",
            "impersonate-group",
            "impersonate-extra-scopes",
            "x-kuboard-csrf",
            "connection",
            "host",
        ] {
            assert!(is_stripped_request_header(&HeaderName::from_static(name)), "{name}");
        }
        for name in [
            "accept",
            "content-type",
            "user-agent",
            "sec-websocket-protocol",
            "sec-websocket-key",
        ] {
            assert!(!is_stripped_request_header(&HeaderName::from_static(name)), "{name}");
        }
    }

    #[test]
    fn which_streams_end_cleanly() {
        assert!(streams_may_end_early("/api/v1/pods?watch=true&resourceVersion=5"));
        assert!(streams_may_end_early("/api/v1/namespaces/a/pods/p/log?follow=true"));
        assert!(streams_may_end_early("/api/v1/watch/pods"));
        assert!(!streams_may_end_early("/api/v1/pods?limit=500"));
    }
}
