//! `/kuboard-api/clusters/...`: the cluster registry. Administrators create, change and delete;
//! everybody logged in may list. Credentials go in and never come out: answers say only which
//! kinds are present.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::clock::format_rfc3339;
use crate::clusters::cluster_registry::{
    self, is_valid_cluster_name, AgentRegistration, ClusterCredentials, ClusterRecord,
};
use crate::http::api_error::{ApiError, ErrorBody};
use crate::http::api_json::ApiJson;
use crate::http::caller::Caller;
use crate::http::AppState;
use crate::kube::cluster_connection::{ClusterConnection, ConnectionError};
use crate::tunnel::protocol;

const MAX_ENDPOINTS: usize = 16;
const MAX_DESCRIPTION_CHARS: usize = 1024;
const MAX_CREDENTIAL_BYTES: usize = 64 * 1024;

/// The OpenAPI schema of the endpoint list, as [`check_settings`] accepts it.
/// The pattern asks for a host name or IPv4 address, an optional port and path: narrower than the
/// check (which takes any URL text without spaces), so that generated URLs are ones a client can
/// parse.
fn endpoint_urls() -> utoipa::openapi::Array {
    crate::http::openapi::string_list(
        r"^https?://[A-Za-z0-9.-]{1,200}(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]{0,40})?$",
        1,
        MAX_ENDPOINTS,
    )
}

/// Credentials as sent by an administrator (write-only).
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CredentialsInput {
    #[schema(max_length = 65536)]
    pub token: Option<String>,
    /// PEM; with `client_key`.
    #[schema(max_length = 65536)]
    pub client_certificate: Option<String>,
    /// PEM; with `client_certificate`.
    #[schema(max_length = 65536)]
    pub client_key: Option<String>,
    #[schema(max_length = 65536)]
    pub ca_certificate: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClusterRequest {
    /// 1-63 characters `[a-z0-9-]`, starting and ending with a letter or digit.
    #[schema(pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 1024)]
    pub description: String,
    /// 1 to 16 apiserver URLs, `https://host:port`.
    #[schema(schema_with = endpoint_urls)]
    pub endpoints: Vec<String>,
    #[serde(default)]
    pub credentials: Option<CredentialsInput>,
}

/// A full replacement of a cluster's settings; `credentials` absent keeps the stored ones.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateClusterRequest {
    #[serde(default)]
    #[schema(max_length = 1024)]
    pub description: String,
    /// 1 to 16 apiserver URLs, `https://host:port`.
    #[schema(schema_with = endpoint_urls)]
    pub endpoints: Vec<String>,
    #[serde(default)]
    pub credentials: Option<CredentialsInput>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClusterResponse {
    pub name: String,
    /// `direct` (the replicas dial its apiservers) or `agent` (reached through `kuboard agent`).
    #[schema(pattern = "^(direct|agent)$")]
    pub kind: String,
    pub description: String,
    /// For an agent cluster, the apiservers its agent reported (empty until it first connects).
    pub endpoints: Vec<String>,
    pub has_token: bool,
    pub has_client_certificate: bool,
    pub has_ca_certificate: bool,
    pub created_at: String,
    pub updated_at: String,
    /// For an agent cluster, the replicas holding its agent's tunnels now (a replica not listed
    /// serves the cluster through one of them). Filled by the list and get routes.
    #[serde(default)]
    pub agent_tunnels: Vec<crate::tunnel::presence::TunnelHolder>,
}

fn view(record: &ClusterRecord) -> ClusterResponse {
    ClusterResponse {
        name: record.name.clone(),
        kind: if record.agent.is_some() { "agent" } else { "direct" }.to_string(),
        description: record.description.clone(),
        endpoints: record.endpoints.clone(),
        has_token: record.has_token,
        has_client_certificate: record.has_client_certificate,
        has_ca_certificate: record.has_ca_certificate,
        created_at: format_rfc3339(record.created_at),
        updated_at: format_rfc3339(record.updated_at),
        agent_tunnels: Vec::new(),
    }
}

/// [`view`] with the holders of an agent cluster's tunnels among `holders`.
fn view_with_tunnels(record: &ClusterRecord, holders: &[crate::tunnel::presence::TunnelHolder]) -> ClusterResponse {
    let mut response = view(record);
    if record.agent.is_some() {
        response.agent_tunnels = holders
            .iter()
            .filter(|holder| holder.cluster == record.name)
            .cloned()
            .collect();
    }
    response
}

/// Refuses a name the registry does not accept.
pub fn check_cluster_name(name: &str) -> Result<(), ApiError> {
    if is_valid_cluster_name(name) {
        return Ok(());
    }
    Err(invalid(
        "invalid_cluster_name",
        "expected a name of 1-63 characters [a-z0-9-], starting and ending with a letter or digit",
    ))
}

/// Creates a cluster in the registry, its credentials sealed: the one way a cluster is added,
/// whether described field by field (`POST /kuboard-api/clusters`) or imported from a kubeconfig or
/// a token (`POST /kuboard-api/cluster-imports`). A cluster of the same name is never replaced.
pub async fn store_new_cluster(
    state: &AppState,
    name: &str,
    description: String,
    endpoints: Vec<String>,
    credentials: &ClusterCredentials,
) -> Result<ClusterRecord, ApiError> {
    let now = state.clock.now_unix();
    let record = cluster_registry::seal_record(&state.cipher, name, description, endpoints, credentials, now, now);
    check_connectable(&record, credentials)?;
    if !cluster_registry::write_cluster(&state.store, &record, None).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "cluster_exists",
            "a cluster with this name exists",
        ));
    }
    Ok(record)
}

/// Refuses settings the balancer could not connect with (a URL it cannot read, an https apiserver
/// without a CA, a certificate or key that does not parse, a token that cannot be a header value), as a cluster import does: a stored
/// cluster can always be reached through the proxy.
fn check_connectable(record: &ClusterRecord, credentials: &ClusterCredentials) -> Result<(), ApiError> {
    let checked = ClusterConnection::from_record(record, credentials).and_then(|connection| connection.check_usable());
    checked.map_err(|error| match error {
        ConnectionError::MissingCa => invalid(
            "missing_ca_certificate",
            "an https apiserver needs credentials.ca_certificate to verify it",
        ),
        other => invalid(
            "invalid_cluster_settings",
            &format!("the cluster cannot be connected with these settings: {other}"),
        ),
    })
}

fn invalid(code: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

fn check_settings(description: &str, endpoints: &[String]) -> Result<(), ApiError> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(invalid(
            "invalid_description",
            "expected a description of at most 1024 characters",
        ));
    }
    let url_ok = |url: &str| {
        url.strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .is_some_and(|rest| !rest.is_empty() && rest.len() < 256 && !rest.contains(char::is_whitespace))
    };
    if endpoints.is_empty() || endpoints.len() > MAX_ENDPOINTS || !endpoints.iter().all(|url| url_ok(url)) {
        return Err(invalid(
            "invalid_endpoints",
            "expected 1 to 16 apiserver URLs like https://10.0.0.1:6443",
        ));
    }
    Ok(())
}

fn credentials(input: CredentialsInput) -> Result<ClusterCredentials, ApiError> {
    let fields = [
        &input.token,
        &input.client_certificate,
        &input.client_key,
        &input.ca_certificate,
    ];
    if fields
        .iter()
        .any(|field| field.as_ref().is_some_and(|value| value.len() > MAX_CREDENTIAL_BYTES))
    {
        return Err(invalid(
            "invalid_credentials_input",
            "expected each credential to be at most 64 KiB",
        ));
    }
    if input.client_certificate.is_some() != input.client_key.is_some() {
        return Err(invalid(
            "invalid_credentials_input",
            "expected client_certificate and client_key together (both or neither)",
        ));
    }
    Ok(ClusterCredentials {
        token: input.token,
        client_certificate: input.client_certificate,
        client_key: input.client_key,
        ca_certificate: input.ca_certificate,
    })
}

fn no_such_cluster() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "cluster_not_found", "no such cluster")
}

/// Every cluster (no credentials). Any logged-in user.
#[utoipa::path(get, path = "/kuboard-api/clusters", tag = "clusters",
    responses((status = 200, body = Vec<ClusterResponse>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_clusters(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<ClusterResponse>>, ApiError> {
    caller.user(&state).await?;
    let clusters = cluster_registry::list_clusters(&state.store).await?;
    let holders = if clusters.iter().any(|record| record.agent.is_some()) {
        crate::tunnel::presence::all_holders(&state.store).await?
    } else {
        Vec::new()
    };
    Ok(Json(
        clusters
            .iter()
            .map(|record| view_with_tunnels(record, &holders))
            .collect(),
    ))
}

/// One cluster (no credentials). Any logged-in user.
#[utoipa::path(get, path = "/kuboard-api/clusters/{name}", tag = "clusters", params(("name" = String, Path, pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")),
    responses((status = 200, body = ClusterResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_cluster(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<ClusterResponse>, ApiError> {
    caller.user(&state).await?;
    let cluster = cluster_registry::get_cluster(&state.store, &name)
        .await?
        .ok_or_else(no_such_cluster)?;
    let holders = if cluster.record.agent.is_some() {
        crate::tunnel::presence::holders(&state.store, &name).await?
    } else {
        Vec::new()
    };
    Ok(Json(view_with_tunnels(&cluster.record, &holders)))
}

/// Imports a cluster.
#[utoipa::path(post, path = "/kuboard-api/clusters", tag = "clusters", request_body = CreateClusterRequest,
    responses((status = 201, body = ClusterResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_cluster(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreateClusterRequest>,
) -> Result<Response, ApiError> {
    caller.require_administrator(&state).await?;
    check_cluster_name(&request.name)?;
    check_settings(&request.description, &request.endpoints)?;
    let credentials = credentials(request.credentials.unwrap_or_default())?;
    let record = store_new_cluster(
        &state,
        &request.name,
        request.description,
        request.endpoints,
        &credentials,
    )
    .await?;
    tracing::info!(cluster = %record.name, by = caller.username(), "cluster created");
    Ok((StatusCode::CREATED, Json(view(&record))).into_response())
}

/// Changes a cluster's description, endpoints and (when given) credentials.
#[utoipa::path(put, path = "/kuboard-api/clusters/{name}", tag = "clusters", request_body = UpdateClusterRequest,
    params(("name" = String, Path, pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")),
    responses((status = 200, body = ClusterResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_cluster(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<UpdateClusterRequest>,
) -> Result<Json<ClusterResponse>, ApiError> {
    caller.require_administrator(&state).await?;
    let stored = cluster_registry::get_cluster(&state.store, &name)
        .await?
        .ok_or_else(no_such_cluster)?;
    check_settings(&request.description, &request.endpoints)?;
    let now = state.clock.now_unix();
    let record = match request.credentials {
        Some(input) => cluster_registry::seal_record(
            &state.cipher,
            &name,
            request.description,
            request.endpoints,
            &credentials(input)?,
            stored.record.created_at,
            now,
        ),
        // The credentials are bound to the endpoints: reseal them for the new ones.
        None => cluster_registry::seal_record(
            &state.cipher,
            &name,
            request.description,
            request.endpoints,
            &cluster_registry::open_credentials(&state.cipher, &stored.record)?,
            stored.record.created_at,
            now,
        ),
    };
    if stored.record.agent.is_some() {
        return Err(invalid(
            "agent_cluster",
            "an agent cluster's apiservers and credentials are the ones its agent reports; rotate its token instead",
        ));
    }
    let opened = cluster_registry::open_credentials(&state.cipher, &record)?;
    check_connectable(&record, &opened)?;
    if !cluster_registry::write_cluster(&state.store, &record, Some(stored.mod_revision)).await? {
        return Err(ApiError::conflict(
            "the cluster was changed by another request meanwhile; retry",
        ));
    }
    tracing::info!(cluster = %record.name, by = caller.username(), "cluster changed");
    Ok(Json(view(&record)))
}

/// Removes a cluster from the registry.
#[utoipa::path(delete, path = "/kuboard-api/clusters/{name}", tag = "clusters", params(("name" = String, Path, pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_cluster(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_administrator(&state).await?;
    if !cluster_registry::delete_cluster(&state.store, &name).await? {
        return Err(no_such_cluster());
    }
    tracing::info!(cluster = %name, by = caller.username(), "cluster deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgentClusterRequest {
    /// 1-63 characters `[a-z0-9-]`, starting and ending with a letter or digit.
    #[schema(pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 1024)]
    pub description: String,
}

/// The agent token, shown this once: only its digest is stored.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentTokenResponse {
    pub cluster: ClusterResponse,
    /// Given to `kuboard agent` as `KUBOARD_AGENT_TOKEN`.
    pub agent_token: String,
}

/// Creates a cluster reached through `kuboard agent`; answers its agent token, once.
#[utoipa::path(post, path = "/kuboard-api/agent-clusters", tag = "clusters", request_body = CreateAgentClusterRequest,
    responses((status = 201, body = AgentTokenResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_agent_cluster(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreateAgentClusterRequest>,
) -> Result<Response, ApiError> {
    caller.require_administrator(&state).await?;
    check_cluster_name(&request.name)?;
    check_settings(&request.description, &["https://agent".to_string()])?;
    let now = state.clock.now_unix();
    let token = protocol::new_token();
    let mut record = cluster_registry::seal_record(
        &state.cipher,
        &request.name,
        request.description,
        Vec::new(),
        &ClusterCredentials::default(),
        now,
        now,
    );
    record.agent = Some(AgentRegistration {
        token_digest: protocol::token_digest(&request.name, &token),
        token_created_at: now,
    });
    if !cluster_registry::write_cluster(&state.store, &record, None).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "cluster_exists",
            "a cluster with this name exists",
        ));
    }
    tracing::info!(cluster = %record.name, by = caller.username(), "agent cluster created");
    let body = AgentTokenResponse {
        cluster: view(&record),
        agent_token: token,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Replaces an agent cluster's token: the old one stops working, and the tunnels opened with it
/// are closed within seconds on every replica.
#[utoipa::path(post, path = "/kuboard-api/clusters/{name}/agent-token", tag = "clusters",
    params(("name" = String, Path, pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")),
    responses((status = 200, body = AgentTokenResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn rotate_agent_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<AgentTokenResponse>, ApiError> {
    caller.require_administrator(&state).await?;
    let (record, token) = replace_agent_token(&state, &name, caller.username()).await?;
    Ok(Json(AgentTokenResponse {
        cluster: view(&record),
        agent_token: token,
    }))
}

/// Gives an agent cluster a new token; returns the record written and the token.
async fn replace_agent_token(state: &AppState, name: &str, by: &str) -> Result<(ClusterRecord, String), ApiError> {
    let token = protocol::new_token();
    let digest = protocol::token_digest(name, &token);
    let record = set_agent_token_digest(state, name, digest).await?;
    tracing::info!(cluster = %name, by, "agent token rotated");
    Ok((record, token))
}

/// Stores `digest` as an agent cluster's token digest (an empty one matches no token).
async fn set_agent_token_digest(state: &AppState, name: &str, digest: String) -> Result<ClusterRecord, ApiError> {
    let stored = cluster_registry::get_cluster(&state.store, name)
        .await?
        .ok_or_else(no_such_cluster)?;
    if stored.record.agent.is_none() {
        return Err(invalid(
            "not_an_agent_cluster",
            "this cluster is reached directly and has no agent token",
        ));
    }
    let now = state.clock.now_unix();
    let record = ClusterRecord {
        agent: Some(AgentRegistration {
            token_digest: digest,
            token_created_at: now,
        }),
        updated_at: now,
        ..stored.record
    };
    if !cluster_registry::write_cluster(&state.store, &record, Some(stored.mod_revision)).await? {
        return Err(ApiError::conflict(
            "the cluster was changed by another request meanwhile; retry",
        ));
    }
    Ok(record)
}

/// Revokes an agent cluster's token: no token works until a new one is made, and the tunnels
/// opened with the old one close within seconds on every replica.
#[utoipa::path(delete, path = "/kuboard-api/clusters/{name}/agent-token", tag = "clusters",
    params(("name" = String, Path, pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")),
    responses((status = 200, body = ClusterResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_agent_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<ClusterResponse>, ApiError> {
    caller.require_administrator(&state).await?;
    let record = set_agent_token_digest(&state, &name, String::new()).await?;
    tracing::info!(cluster = %name, by = caller.username(), "agent token revoked");
    Ok(Json(view(&record)))
}

/// What the agent manifest is made for; both default to the replicas' settings.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct AgentManifestRequest {
    /// Every replica's agent address (`host:port`) as the cluster's nodes reach it; the replicas'
    /// `KUBOARD_AGENT_ENDPOINT` when absent.
    pub endpoints: Option<Vec<String>>,
    /// The image that runs `kuboard agent`; `eipwork/kuboard:v3` when absent.
    pub image: Option<String>,
}

/// The agent manifest, with a new token in it (shown this once).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentManifestResponse {
    pub cluster: ClusterResponse,
    /// Multi-document YAML: namespace, service account, cluster role and binding, secret, Deployment.
    pub manifest: String,
    /// The file name the console saves the manifest as.
    pub file_name: String,
    /// The command to run with that file.
    pub command: String,
    pub agent_token: String,
}

/// Makes the manifest that runs the agent in the cluster (`kubectl apply -f`), with a new agent
/// token: the previous token stops working, as with a rotation.
#[utoipa::path(post, path = "/kuboard-api/clusters/{name}/agent-manifest", tag = "clusters",
    params(("name" = String, Path, pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")),
    request_body = AgentManifestRequest,
    responses((status = 200, body = AgentManifestResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn agent_manifest(
    State(state): State<AppState>,
    axum::Extension(context): axum::Extension<std::sync::Arc<crate::kube::kube_routes::KubeContext>>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<AgentManifestRequest>,
) -> Result<Json<AgentManifestResponse>, ApiError> {
    use crate::kube::agent_manifest as manifest;
    caller.require_administrator(&state).await?;
    let endpoints = request.endpoints.unwrap_or_else(|| context.agent_endpoints.clone());
    if endpoints.is_empty() || endpoints.len() > 16 {
        return Err(invalid(
            "agent_endpoints",
            "give 1 to 16 agent addresses (host:port), or set KUBOARD_AGENT_ENDPOINT on the replicas",
        ));
    }
    for endpoint in &endpoints {
        manifest::check_endpoint(endpoint).map_err(|message| invalid("agent_endpoints", &message))?;
    }
    let image = request.image.unwrap_or_else(|| manifest::DEFAULT_IMAGE.to_string());
    manifest::check_image(&image).map_err(|message| invalid("agent_image", &message))?;
    // The CA before the token: a store that cannot give it leaves the old token working.
    let group_ca = crate::tls::group_ca::GroupCa::load_or_create(&state.store, &state.cipher, state.clock.now_unix())
        .await
        .map_err(|error| {
            tracing::error!(%error, "agent manifest: the group CA cannot be read");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "group_ca_unavailable",
                "the group CA, which the agent pins, cannot be read right now; try again",
            )
        })?;
    let (record, token) = replace_agent_token(&state, &name, caller.username()).await?;
    let text = manifest::render(&manifest::ManifestParams {
        cluster: &name,
        token: &token,
        endpoints: &endpoints,
        image: &image,
        server_ca_pem: &group_ca.certificate_pem,
    });
    let file_name = format!("kuboard-agent-{name}.yaml");
    Ok(Json(AgentManifestResponse {
        cluster: view(&record),
        manifest: text,
        command: format!("kubectl apply -f {file_name}"),
        file_name,
        agent_token: token,
    }))
}
