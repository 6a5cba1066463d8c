//! The HTTP routes of Kubernetes access:
//!
//! - `/kuboard-api/clusters` and `/kuboard-api/clusters/{name}`: the cluster registry
//!   ([`crate::kube::cluster_routes`]);
//! - `POST /kuboard-api/cluster-imports`: import a cluster from a kubeconfig or a token
//!   (administrators); every URL is probed first unless `skip_probe`; `dry_run` only checks;
//! - `GET /kuboard-api/clusters/{name}/endpoints`: the balancer's state of every apiserver;
//! - `GET /kuboard-api/clusters/{name}/kubeconfig`: a kubeconfig for the caller through the proxy;
//! - `/k8s-api/{cluster}/{*path}`: the proxy ([`crate::kube::proxy`]).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE, HOST};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::access_keys;
use crate::clusters::cluster_registry;
use crate::http::api_error::ApiError;
use crate::http::api_json::{ApiJson, BODY_LIMIT_BYTES};
use crate::http::api_query::ApiQuery;
use crate::http::caller::{presented_token, Caller};
use crate::http::request_context::request_context;
use crate::http::AppState;
use crate::kube::apiserver_pool::EndpointStatus;
use crate::kube::apiserver_pool_registry::{ApiserverPoolRegistry, PoolLookupError};
use crate::kube::cluster_routes::{self, check_cluster_name, store_new_cluster};
use crate::kube::kubeconfig_import::{self, ImportError, ImportedCluster, ProbeReport};
use crate::kube::user_kubeconfig::{kubeconfig_target, user_kubeconfig, ServedAddresses, TargetRefusal};

const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Lifetime of the access key made for a downloaded kubeconfig unless the caller asks otherwise.
const DEFAULT_KUBECONFIG_DAYS: u64 = 30;

/// What the Kubernetes routes share beyond [`AppState`].
pub struct KubeContext {
    pub pools: Arc<ApiserverPoolRegistry>,
    /// `KUBOARD_ENDPOINT`: the public URL written into downloaded kubeconfigs.
    pub public_endpoint: Option<String>,
    /// `KUBOARD_AGENT_ENDPOINT`: every replica's agent address, written into agent manifests.
    pub agent_endpoints: Vec<String>,
    /// The web port serves TLS with the operator's certificate (`KUBOARD_TLS_CERT`).
    pub web_tls: bool,
    /// The HTTPS port beside the web port, which downloaded kubeconfigs name.
    pub https: Arc<crate::tls::https_port::HttpsStatus>,
}

/// The state of one proxied request.
#[derive(Clone)]
pub struct KubeRoutesState {
    pub app: AppState,
    pub pools: Arc<ApiserverPoolRegistry>,
}

/// The OpenAPI paths of the cluster registry, import, endpoints and kubeconfig routes (the proxy passes the
/// Kubernetes API through and is not described).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    cluster_routes::list_clusters,
    cluster_routes::get_cluster,
    cluster_routes::create_cluster,
    cluster_routes::update_cluster,
    cluster_routes::delete_cluster,
    cluster_routes::create_agent_cluster,
    cluster_routes::rotate_agent_token,
    cluster_routes::revoke_agent_token,
    cluster_routes::agent_manifest,
    import_cluster,
    cluster_endpoints,
    download_kubeconfig
))]
pub struct KubeApi;

pub fn router(app: AppState, context: Arc<KubeContext>) -> Router {
    Router::new()
        .route(
            "/kuboard-api/clusters",
            get(cluster_routes::list_clusters).post(cluster_routes::create_cluster),
        )
        .route(
            "/kuboard-api/clusters/{name}",
            get(cluster_routes::get_cluster)
                .put(cluster_routes::update_cluster)
                .delete(cluster_routes::delete_cluster),
        )
        .route("/kuboard-api/cluster-imports", post(import_cluster))
        .route(
            "/kuboard-api/agent-clusters",
            post(cluster_routes::create_agent_cluster),
        )
        .route(
            "/kuboard-api/clusters/{name}/agent-token",
            post(cluster_routes::rotate_agent_token).delete(cluster_routes::revoke_agent_token),
        )
        .route(
            "/kuboard-api/clusters/{name}/agent-manifest",
            post(cluster_routes::agent_manifest),
        )
        .route("/kuboard-api/clusters/{name}/endpoints", get(cluster_endpoints))
        .route("/kuboard-api/clusters/{name}/kubeconfig", get(download_kubeconfig))
        .route("/k8s-api/{cluster}", any(proxy_route))
        .route("/k8s-api/{cluster}/{*path}", any(proxy_route))
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(Extension(context))
        .layer(axum::middleware::from_fn_with_state(app.clone(), request_context))
        .with_state(app)
}

async fn proxy_route(
    State(app): State<AppState>,
    Extension(context): Extension<Arc<KubeContext>>,
    request: axum::extract::Request,
) -> Response {
    let state = KubeRoutesState {
        app,
        pools: context.pools.clone(),
    };
    crate::kube::proxy::proxy(State(state), request).await
}

/// A cluster import: a kubeconfig, or `server` (comma-separated URLs) + `token` (+ `ca_certificate`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportClusterRequest {
    /// 1-63 characters `[a-z0-9-]`, starting and ending with a letter or digit.
    #[schema(pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 1024)]
    pub description: String,
    /// A kubeconfig (YAML or JSON) with inline data.
    pub kubeconfig: Option<String>,
    /// The kubeconfig context to import; its current context when absent.
    pub context: Option<String>,
    /// Apiserver URLs, comma-separated (token import).
    pub server: Option<String>,
    pub token: Option<String>,
    /// PEM, or base64 of PEM (token import).
    pub ca_certificate: Option<String>,
    /// Store without probing the apiservers (a cluster not reachable yet).
    #[serde(default)]
    pub skip_probe: bool,
    /// Check and probe only; store nothing.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ImportClusterResponse {
    pub name: String,
    pub endpoints: Vec<String>,
    pub context: Option<String>,
    pub has_token: bool,
    pub has_client_certificate: bool,
    pub has_ca_certificate: bool,
    /// How each URL answered the probe (empty with `skip_probe`).
    pub probes: Vec<ProbeReport>,
    pub stored: bool,
}

fn import_error(error: ImportError) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, error.code(), error.to_string())
}

fn parse_import(request: &ImportClusterRequest) -> Result<ImportedCluster, ImportError> {
    let token_fields = request.server.is_some() || request.token.is_some() || request.ca_certificate.is_some();
    match (&request.kubeconfig, token_fields) {
        (Some(_), true) => Err(ImportError::AmbiguousInput),
        (Some(kubeconfig), false) => kubeconfig_import::parse_kubeconfig(kubeconfig, request.context.as_deref()),
        (None, true) => kubeconfig_import::parse_token_import(
            request.server.as_deref().unwrap_or(""),
            request.token.as_deref().unwrap_or(""),
            request.ca_certificate.as_deref(),
        ),
        (None, false) => Err(ImportError::NothingToImport),
    }
}

/// Imports a cluster from a kubeconfig or a token (administrators).
#[utoipa::path(post, path = "/kuboard-api/cluster-imports", tag = "clusters", request_body = ImportClusterRequest,
    responses((status = 201, body = ImportClusterResponse), (status = 200, body = ImportClusterResponse),
        (status = 401, body = crate::http::api_error::ErrorBody), (status = 403, body = crate::http::api_error::ErrorBody),
        (status = 409, body = crate::http::api_error::ErrorBody), (status = 422, body = crate::http::api_error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn import_cluster(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<ImportClusterRequest>,
) -> Result<Response, ApiError> {
    caller.require_administrator(&state).await?;
    check_cluster_name(&request.name)?;
    if request.description.chars().count() > 1024 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_description",
            "expected a description of at most 1024 characters",
        ));
    }
    let imported = parse_import(&request).map_err(import_error)?;
    let probes = if request.skip_probe {
        Vec::new()
    } else {
        kubeconfig_import::probe(&imported, PROBE_TIMEOUT)
            .await
            .map_err(import_error)?
    };
    let credentials = &imported.credentials;
    let mut response = ImportClusterResponse {
        name: request.name.clone(),
        endpoints: imported.endpoints.iter().map(ToString::to_string).collect(),
        context: imported.context.clone(),
        has_token: credentials.token.is_some(),
        has_client_certificate: credentials.client_certificate.is_some(),
        has_ca_certificate: credentials.ca_certificate.is_some(),
        probes,
        stored: false,
    };
    if request.dry_run {
        return Ok((StatusCode::OK, Json(response)).into_response());
    }
    let record = store_new_cluster(
        &state,
        &request.name,
        request.description,
        response.endpoints.clone(),
        credentials,
    )
    .await?;
    tracing::info!(cluster = %record.name, endpoints = record.endpoints.len(), by = caller.username(), "cluster imported");
    response.stored = true;
    Ok((StatusCode::CREATED, Json(response)).into_response())
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClusterEndpointsResponse {
    pub cluster: String,
    pub endpoints: Vec<EndpointStatusView>,
}

/// [`EndpointStatus`] on the wire.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EndpointStatusView {
    pub url: String,
    /// `preferred`, `healthy`, `recovering`, `unchecked` or `failed`.
    pub state: String,
    pub open_connections: usize,
    pub consecutive_passes: u32,
    pub consecutive_failures: u32,
    pub last_check_latency_ms: Option<u64>,
    pub last_error: Option<String>,
    pub requests: u64,
}

fn endpoint_view(status: EndpointStatus) -> EndpointStatusView {
    EndpointStatusView {
        url: status.url,
        state: status.state.as_str().to_string(),
        open_connections: status.open_connections,
        consecutive_passes: status.consecutive_passes,
        consecutive_failures: status.consecutive_failures,
        last_check_latency_ms: status.last_check_latency_ms,
        last_error: status.last_error,
        requests: status.requests,
    }
}

/// The balancer's view of a cluster's apiservers on this replica. Any logged-in user.
#[utoipa::path(get, path = "/kuboard-api/clusters/{name}/endpoints", tag = "clusters", params(("name" = String, Path, pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")),
    responses((status = 200, body = ClusterEndpointsResponse), (status = 401, body = crate::http::api_error::ErrorBody),
        (status = 404, body = crate::http::api_error::ErrorBody),
        (status = 502, description = "The cluster's settings are not usable", body = crate::http::api_error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn cluster_endpoints(
    State(state): State<AppState>,
    Extension(context): Extension<Arc<KubeContext>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<ClusterEndpointsResponse>, ApiError> {
    caller.user(&state).await?;
    let pool = match context.pools.pool_for(&state.store, &state.cipher, &name).await {
        Ok(Some(pool)) => pool,
        Ok(None) => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "cluster_not_found",
                "no such cluster",
            ))
        }
        Err(PoolLookupError::Registry(error)) => return Err(error.into()),
        Err(error @ PoolLookupError::Connection { .. }) => {
            // As the proxy answers: the registered settings (a CA or client certificate that does
            // not parse) are the cluster's fault, not the server's.
            tracing::error!(%error, "a registered cluster cannot be connected");
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "cluster_not_usable",
                "this cluster's connection settings are not usable; an administrator must fix them",
            ));
        }
    };
    Ok(Json(ClusterEndpointsResponse {
        cluster: name,
        endpoints: pool.status().into_iter().map(endpoint_view).collect(),
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KubeconfigQuery {
    /// `access-key` (default): a new access key of the caller, valid `days` days; `session`: the
    /// token the caller presented, valid as long as its session.
    #[param(pattern = "^(access-key|session)$")]
    pub credential: Option<String>,
    #[param(minimum = 1, maximum = 365)]
    pub days: Option<u64>,
}

/// A kubeconfig for the caller to use kubectl on this cluster through Kuboard: an `https://`
/// address (the HTTPS port, or an https `KUBOARD_ENDPOINT`) and, when replicas serve the group's own
/// certificate, the group CA. 409 when only plain HTTP is on offer (kubectl would not send the
/// token), 503 while the HTTPS port's certificate is being made.
#[utoipa::path(get, path = "/kuboard-api/clusters/{name}/kubeconfig", tag = "clusters",
    params(("name" = String, Path, pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"), KubeconfigQuery),
    responses((status = 200, description = "A kubeconfig", content_type = "application/yaml", body = Object),
        (status = 400, body = crate::http::api_error::ErrorBody), (status = 401, body = crate::http::api_error::ErrorBody), (status = 404, body = crate::http::api_error::ErrorBody),
        (status = 409, body = crate::http::api_error::ErrorBody), (status = 422, body = crate::http::api_error::ErrorBody),
        (status = 503, body = crate::http::api_error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn download_kubeconfig(
    State(state): State<AppState>,
    Extension(context): Extension<Arc<KubeContext>>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<KubeconfigQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let user = caller.user(&state).await?;
    let target = kubeconfig_target(&ServedAddresses {
        endpoint: context.public_endpoint.as_deref(),
        host: headers.get(HOST).and_then(|value| value.to_str().ok()),
        web_tls: context.web_tls,
        https_port: context.https.port,
        https: context.https.availability(),
    })
    .map_err(|refusal| match refusal {
        TargetRefusal::NoAddress => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_public_endpoint",
            "set KUBOARD_ENDPOINT (or send a Host header) so the kubeconfig can name Kuboard's address",
        ),
        TargetRefusal::NeedsHttps(message) => ApiError::new(StatusCode::CONFLICT, "kubeconfig_needs_https", message),
        TargetRefusal::HttpsStarting => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "https_starting",
            "the HTTPS port's certificate is not ready yet (the store is not reachable yet); try again shortly",
        ),
    })?;
    if cluster_registry::get_cluster(&state.store, &name).await?.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "cluster_not_found",
            "no such cluster",
        ));
    }
    let now = state.clock.now_unix();
    let token = match query.credential.as_deref().unwrap_or("access-key") {
        "access-key" => {
            let days = query.days.unwrap_or(DEFAULT_KUBECONFIG_DAYS);
            if !(1..=365).contains(&days) {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_days",
                    "expected days between 1 and 365",
                ));
            }
            let (key, record) = access_keys::create_access_key(
                &state.store,
                &user.record.username,
                &format!("kubeconfig {name}"),
                now,
                Some(now + days * 86_400),
            )
            .await?;
            tracing::info!(cluster = %name, username = %user.record.username, key_id = %record.id,
                "access key made for a downloaded kubeconfig");
            key
        }
        "session" => presented_token(&headers).ok_or_else(ApiError::unauthenticated)?,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_credential_kind",
                "expected credential=access-key or credential=session",
            ))
        }
    };
    let text = user_kubeconfig(&target, &name, &user.record.username, &token);
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/yaml"));
    if let Ok(disposition) = HeaderValue::from_str(&format!("attachment; filename=\"kubeconfig-{name}.yaml\"")) {
        response.headers_mut().insert(CONTENT_DISPOSITION, disposition);
    }
    response
        .headers_mut()
        .insert(axum::http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
