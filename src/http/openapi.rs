//! The parts of the OpenAPI document every feature shares: title and description, tags, the
//! bearer security scheme, the error body, and the errors of the JSON body extractor. The
//! document itself is assembled in `crate::api::openapi` from every feature's paths.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::http::api_error::ErrorBody;

/// The shared parts of the document; the paths come from the features.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Kuboard REST API",
        description = "The REST API of a Kuboard replica. Any replica answers any request. Errors are always \
                       `{code, message, request_id}`. Authenticate with `Authorization: Bearer <token>` (a login \
                       token or an access key) or the `kuboard_session` cookie; changes made with the cookie \
                       must carry `X-Kuboard-CSRF`."
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerSecurity),
    tags(
        (name = "auth", description = "Login sessions, passwords and access keys"),
        (name = "users", description = "Built-in users (administrators)"),
        (name = "roles", description = "Role bindings per cluster and namespace"),
        (name = "clusters", description = "The cluster registry"),
        (name = "system", description = "Replicas, store membership and snapshots"),
        (name = "health", description = "Probes and metrics"),
    )
)]
pub struct SharedDocument;

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
pub struct BodyErrors;

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

/// The schema of a list of strings that each match `pattern`, with `min_items..=max_items` of them:
/// for the handlers' list fields, whose items `#[schema(...)]` cannot constrain.
pub fn string_list(pattern: &str, min_items: usize, max_items: usize) -> utoipa::openapi::Array {
    use utoipa::openapi::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(ObjectBuilder::new().schema_type(Type::String).pattern(Some(pattern)))
        .min_items((min_items > 0).then_some(min_items))
        .max_items(Some(max_items))
        .build()
}
