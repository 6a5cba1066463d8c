//! The OpenAPI 3 document of the REST API, served at `/kuboard-api/openapi.json`. It is generated
//! from the handlers' `#[utoipa::path]` attributes and the wire types' `ToSchema` derives, so it
//! cannot drift from the code; routes served by other modules (members, snapshot) are described
//! here by documentation-only functions with mirror types.

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
