//! The OpenAPI 3 document of the REST API, served at `/kuboard-api/openapi.json`. It is generated
//! from the handlers' `#[utoipa::path]` attributes and the wire types' `ToSchema` derives, so it
//! cannot drift from the code; routes served by other modules (members, snapshot) are described
//! here by documentation-only functions with mirror types. Every `/kuboard-api/` route is in it
//! (a test holds the list of registered routes against it). The Kubernetes proxy under
//! `/k8s-api/{cluster}/…` is not: it passes the Kubernetes API through unchanged, and that API is
//! described by each cluster's own `/openapi/v2` and `/openapi/v3`.

use axum::Json;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::http::api_error::ErrorBody;
use crate::http::system_routes::MemberView;

/// The document, built once per call (cheap: a few hundred microseconds).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Kuboard REST API",
        description = "The REST API of a Kuboard replica. Any replica answers any request. Errors are always \
                       `{code, message, request_id}`. Authenticate with `Authorization: Bearer <token>` (a login \
                       token or an access key) or the `kuboard_session` cookie; changes made with the cookie \
                       must carry `X-Kuboard-CSRF`."
    ),
    paths(
        crate::http::health_routes::healthz,
        crate::http::health_routes::readyz,
        crate::http::health_routes::metrics,
        openapi_json,
        crate::http::auth_routes::login,
        crate::http::auth_routes::logout,
        crate::http::auth_routes::me,
        crate::http::auth_routes::change_password,
        crate::http::access_key_routes::list_access_keys,
        crate::http::access_key_routes::create_access_key,
        crate::http::access_key_routes::delete_access_key,
        crate::http::user_routes::list_users,
        crate::http::user_routes::get_user,
        crate::http::user_routes::create_user,
        crate::http::user_routes::update_user,
        crate::http::user_routes::delete_user,
        crate::http::user_routes::reset_password,
        crate::http::user_routes::identity,
        crate::http::role_binding_routes::list_role_bindings,
        crate::http::role_binding_routes::create_role_binding,
        crate::http::role_binding_routes::delete_role_binding,
        crate::http::cluster_routes::list_clusters,
        crate::http::cluster_routes::get_cluster,
        crate::http::cluster_routes::create_cluster,
        crate::http::cluster_routes::update_cluster,
        crate::http::cluster_routes::delete_cluster,
        crate::http::system_routes::status,
        crate::kube::kube_routes::import_cluster,
        crate::kube::kube_routes::cluster_endpoints,
        crate::kube::kube_routes::download_kubeconfig,
        crate::audit::audit_routes::list_events,
        crate::audit::audit_routes::audit_status,
        list_members,
        add_member,
        replace_member,
        remove_member,
        snapshot,
    ),
    components(schemas(ErrorBody, MembersDoc, AddMemberDoc, ReplaceMemberDoc)),
    modifiers(&BearerSecurity, &BodyErrors),
    tags(
        (name = "auth", description = "Login sessions, passwords and access keys"),
        (name = "users", description = "Built-in users (administrators)"),
        (name = "roles", description = "Role bindings per cluster and namespace"),
        (name = "clusters", description = "The cluster registry"),
        (name = "system", description = "Replicas, store membership and snapshots"),
        (name = "health", description = "Probes and metrics"),
    )
)]
pub struct ApiDoc;

struct BearerSecurity;

impl Modify for BearerSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every route that reads a JSON body may also answer 400 (malformed JSON), 413 (too large) and
/// 415 (not JSON), from the one body extractor; documented here once rather than on each handler.
struct BodyErrors;

impl Modify for BodyErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
                &mut item.get,
            ];
            for operation in operations.into_iter().flatten() {
                if operation.request_body.is_none() {
                    continue;
                }
                let responses = &mut operation.responses.responses;
                for (status, description) in [
                    ("400", "The body is not valid JSON"),
                    ("413", "The body is too large"),
                    ("415", "The body is not sent as application/json"),
                ] {
                    responses
                        .entry(status.to_string())
                        .or_insert_with(|| error(description).into());
                }
            }
        }
    }
}

/// This document.
#[utoipa::path(get, path = "/kuboard-api/openapi.json", tag = "system",
    responses((status = 200, description = "The OpenAPI 3 document", content_type = "application/json", body = Object)))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// Mirror of the members answer (`admin::members_http::MembersView`).
#[derive(Serialize, ToSchema)]
#[schema(as = MembersView)]
pub struct MembersDoc {
    pub replica_id: u64,
    /// raft or etcd.
    pub backend: String,
    pub leader: Option<u64>,
    pub health_seen_by_leader: bool,
    pub members: Vec<MemberView>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = AddMemberRequest)]
pub struct AddMemberDoc {
    pub id: u64,
    /// `host:port` of the new member's Raft peer listener.
    pub address: String,
}

#[derive(Serialize, ToSchema)]
#[schema(as = ReplaceMemberRequest)]
pub struct ReplaceMemberDoc {
    pub address: String,
}

/// The members of the embedded store's group, as this replica sees them.
#[utoipa::path(get, path = "/kuboard-api/system/members", tag = "system",
    responses((status = 200, body = MembersDoc), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn list_members() {}

/// Adds a member (administrators); it catches up as a learner, then votes.
#[utoipa::path(post, path = "/kuboard-api/system/members", tag = "system", request_body = AddMemberDoc,
    responses((status = 200, body = MembersDoc), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn add_member() {}

/// Replaces a member by a fresh one at an address (administrators).
#[utoipa::path(put, path = "/kuboard-api/system/members/{id}", tag = "system", request_body = ReplaceMemberDoc,
    params(("id" = u64, Path)),
    responses((status = 200, body = MembersDoc), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn replace_member() {}

/// Removes a member (administrators).
#[utoipa::path(delete, path = "/kuboard-api/system/members/{id}", tag = "system", params(("id" = u64, Path)),
    responses((status = 200, body = MembersDoc), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn remove_member() {}

/// A consistent snapshot of the store, in kuboard's snapshot file format (administrators).
#[utoipa::path(get, path = "/kuboard-api/system/snapshot", tag = "system",
    responses((status = 200, description = "The snapshot file", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
#[allow(dead_code)]
fn snapshot() {}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    use super::*;

    /// The HTTP methods the routers use, as the `axum::routing` functions are named.
    const METHODS: [&str; 6] = ["get", "post", "put", "patch", "delete", "any"];

    /// The part of a source file before its unit tests, so that routes a test builds for itself
    /// are not taken for the product's.
    fn product_code(text: &str) -> &str {
        text.find("#[cfg(test)]\nmod tests {").map_or(text, |end| &text[..end])
    }

    fn source_files(dir: &Path, files: &mut Vec<(String, String)>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|error| panic!("read {}: {error}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                source_files(&path, files);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let text =
                    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
                files.push((path.display().to_string(), product_code(&text).to_string()));
            }
        }
    }

    /// The text of the call whose arguments start at `open` (just after its `(`), up to the
    /// matching `)`.
    fn call_arguments(text: &str, open: usize) -> &str {
        let mut depth = 1usize;
        for (offset, character) in text[open..].char_indices() {
            match character {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        return &text[open..open + offset];
                    }
                }
                _ => {}
            }
        }
        panic!("unbalanced .route( call");
    }

    /// Every `(method, path)` registered with `.route(…)` anywhere in the server's source, with
    /// path constants (`const X_PATH: &str = "…"`) resolved, and the file each came from.
    fn registered_routes() -> BTreeMap<(String, String), String> {
        let mut files = Vec::new();
        source_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
        let mut constants = BTreeMap::new();
        for (_, text) in &files {
            for line in text.lines() {
                let Some((name, value)) = line.trim().split_once(": &str = \"") else {
                    continue;
                };
                let name = name.rsplit(' ').next().expect("a constant has a name");
                let value = value.trim_end_matches("\";");
                constants.insert(name.to_string(), value.to_string());
            }
        }
        let mut routes = BTreeMap::new();
        for (file, text) in &files {
            for (start, _) in text.match_indices(".route(") {
                let arguments = call_arguments(text, start + ".route(".len());
                let (path, handlers) = arguments.split_once(',').expect("a route has a path and handlers");
                let path = path.trim();
                let path = match path.strip_prefix('"') {
                    Some(literal) => literal.trim_end_matches('"').to_string(),
                    None => constants
                        .get(path)
                        .unwrap_or_else(|| panic!("{file}: route path constant {path} not found"))
                        .clone(),
                };
                for method in METHODS {
                    let call = format!("{method}(");
                    for (at, _) in handlers.match_indices(&call) {
                        let before = handlers[..at].chars().next_back();
                        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                            continue;
                        }
                        routes.insert((method.to_string(), path.clone()), file.clone());
                    }
                }
            }
        }
        routes
    }

    fn documented_operations() -> BTreeSet<(String, String)> {
        let document = ApiDoc::openapi();
        let mut operations = BTreeSet::new();
        for (path, item) in &document.paths.paths {
            for (method, operation) in [
                ("get", &item.get),
                ("post", &item.post),
                ("put", &item.put),
                ("patch", &item.patch),
                ("delete", &item.delete),
            ] {
                if operation.is_some() {
                    operations.insert((method.to_string(), path.clone()));
                }
            }
        }
        operations
    }

    #[test]
    fn every_kuboard_api_route_is_documented_and_every_documented_route_exists() {
        let registered = registered_routes();
        // The scan must see every module that serves part of the API, or the comparison below
        // would pass for a scan that found nothing.
        for (method, path) in [
            ("post", "/kuboard-api/auth/login"),
            ("post", "/kuboard-api/cluster-imports"),
            ("get", "/kuboard-api/audit/status"),
            ("put", "/kuboard-api/system/members/{id}"),
            ("get", "/kuboard-api/system/snapshot"),
            ("any", "/k8s-api/{cluster}/{*path}"),
        ] {
            assert!(
                registered.contains_key(&(method.to_string(), path.to_string())),
                "the route scan finds {method} {path}: {registered:?}"
            );
        }
        let api: BTreeSet<(String, String)> = registered
            .keys()
            .filter(|(_, path)| path.starts_with("/kuboard-api/"))
            .cloned()
            .collect();
        let documented: BTreeSet<(String, String)> = documented_operations()
            .into_iter()
            .filter(|(_, path)| path.starts_with("/kuboard-api/"))
            .collect();
        let undocumented: Vec<String> = api
            .difference(&documented)
            .map(|route| format!("{} {} ({})", route.0, route.1, registered[route]))
            .collect();
        assert!(
            undocumented.is_empty(),
            "routes missing from the OpenAPI document: {undocumented:?}"
        );
        let unserved: Vec<_> = documented.difference(&api).collect();
        assert!(
            unserved.is_empty(),
            "documented operations no router serves: {unserved:?}"
        );
    }

    /// The document lists exactly the operations of `tests/fixtures/openapi-operations.txt`, the
    /// list captured from the document before the HTTP code was reorganised: moving handlers
    /// between modules must neither drop nor add an operation.
    #[test]
    fn the_document_lists_the_recorded_operations() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openapi-operations.txt");
        let text =
            std::fs::read_to_string(&fixture).unwrap_or_else(|error| panic!("read {}: {error}", fixture.display()));
        let expected: Vec<String> = text
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(str::to_string)
            .collect();
        assert!(expected.len() > 30, "the fixture lists the operations: {expected:?}");
        let mut actual: Vec<String> = documented_operations()
            .into_iter()
            .map(|(method, path)| format!("{} {path}", method.to_uppercase()))
            .collect();
        actual.sort();
        assert_eq!(
            actual,
            expected,
            "the OpenAPI operations differ from {}",
            fixture.display()
        );
    }

    #[test]
    fn the_kubernetes_proxy_is_not_part_of_the_document() {
        assert!(documented_operations()
            .iter()
            .all(|(_, path)| !path.starts_with("/k8s-api")));
    }
}
