//! `GET /kuboard-api/system/snapshot`: a consistent snapshot of the running replica's store, in the
//! snapshot file format, for `kuboard admin snapshot save --server URL`. Only administrators (by
//! role, the check every administrative route makes) may take one: the file holds every password hash.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use kuboard_storage::BackendKind;

use super::snapshot_store::{take_snapshot, SnapshotError};
use crate::auth::sessions;
use crate::http::api_error::ErrorBody;
use crate::http::caller::{presented_token, Caller};
use crate::http::request_context::request_context;
use crate::http::{ApiError, AppState};
use crate::store_backend::StoreBackend;

pub const SNAPSHOT_PATH: &str = "/kuboard-api/system/snapshot";
/// The revision the snapshot was read at, also inside the file's header.
pub const REVISION_HEADER: &str = "x-kuboard-snapshot-revision";

#[derive(Clone)]
struct SnapshotRouteState {
    app: AppState,
    backend: Arc<StoreBackend>,
}

/// The snapshot route, with the same request-context layer as the rest of the API.
/// The OpenAPI path of the snapshot route.
#[derive(utoipa::OpenApi)]
#[openapi(paths(snapshot))]
pub struct SnapshotApi;

pub fn router(app: AppState, backend: Arc<StoreBackend>) -> Router {
    Router::new()
        .route(SNAPSHOT_PATH, get(snapshot))
        .layer(axum::middleware::from_fn_with_state(app.clone(), request_context))
        .with_state(SnapshotRouteState { app, backend })
}

/// A consistent snapshot of the store, in kuboard's snapshot file format (administrators).
#[utoipa::path(get, path = "/kuboard-api/system/snapshot", tag = "system",
    responses((status = 200, description = "The snapshot file", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
async fn snapshot(State(state): State<SnapshotRouteState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let now = state.app.clock.now_unix();
    let token = presented_token(&headers).ok_or_else(ApiError::unauthenticated)?;
    let session = sessions::find_session(&state.app.store, &token, now)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    let caller = Caller { session };
    caller.require_administrator(&state.app).await.map_err(|error| {
        if error.status == StatusCode::FORBIDDEN {
            ApiError::forbidden("only administrators may take a store snapshot")
        } else {
            error
        }
    })?;
    let kind = state.backend.kind();
    let source = match &*state.backend {
        StoreBackend::Etcd(etcd) => etcd.prefix().to_string(),
        _ => "embedded".to_string(),
    };
    let snapshot = match take_snapshot(&*state.backend, kind, &source, now).await {
        Ok(snapshot) => snapshot,
        Err(SnapshotError::Store(error)) => return Err(error.into()),
        Err(error) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "snapshot_failed",
                error.to_string(),
            ))
        }
    };
    let bytes = snapshot.encode().map_err(ApiError::internal)?;
    tracing::info!(
        keys = snapshot.header.key_count,
        revision = snapshot.header.revision,
        bytes = bytes.len(),
        backend = kind.as_str(),
        by = %caller.username(),
        "store snapshot taken"
    );
    let file_name = match kind {
        BackendKind::Raft => "kuboard-embedded.snapshot",
        BackendKind::Etcd => "kuboard-etcd.snapshot",
    };
    Ok((
        [
            (CONTENT_TYPE, "application/octet-stream".to_string()),
            (CONTENT_DISPOSITION, format!("attachment; filename=\"{file_name}\"")),
            (CACHE_CONTROL, "no-store".to_string()),
        ],
        [(REVISION_HEADER, snapshot.header.revision.to_string())],
        bytes,
    )
        .into_response())
}
