//! `/kuboard-api/system/...`: the replica's and the store's state, for operators and the UI.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use crate::audit::audit_service::AuditService;
use crate::http::api_error::ApiError;
use crate::http::caller::Caller;
use crate::http::AppState;
use crate::store_admin::members_routes::MemberView;

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SystemStatus {
    pub replica_id: u64,
    pub version: String,
    pub commit: String,
    /// raft or etcd.
    pub backend: String,
    pub members: Vec<MemberView>,
    pub leader: Option<u64>,
    pub revision: i64,
    pub raft_term: u64,
    /// The applied index of the member that answered (0 when the backend does not say).
    pub applied_index: u64,
    pub healthy: bool,
    /// disabled, ignore-errors, buffered or strict.
    pub audit_policy: String,
    /// The audit pipeline of this replica: sink, state, queue, spool, counters, last error.
    pub audit: Option<crate::audit::audit_service::AuditStatus>,
    /// Which replica holds tunnels of which agent cluster.
    #[serde(default)]
    pub agent_tunnels: Vec<crate::tunnel::presence::TunnelHolder>,
}

/// This replica, the store's members, leader and revision, and the audit policy and state.
#[utoipa::path(get, path = "/kuboard-api/system/status", tag = "system",
    responses((status = 200, body = SystemStatus), (status = 401, body = crate::http::api_error::ErrorBody),
        (status = 403, body = crate::http::api_error::ErrorBody), (status = 503, body = crate::http::api_error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn status(
    State(state): State<AppState>,
    Extension(audit): Extension<Arc<AuditService>>,
    _caller: Caller,
) -> Result<Json<SystemStatus>, ApiError> {
    let status = state.store.status().await?;
    let agent_tunnels = crate::tunnel::presence::all_holders(&state.store).await?;
    Ok(Json(SystemStatus {
        replica_id: state.replica_id,
        version: crate::version::VERSION.to_string(),
        commit: crate::version::GIT_COMMIT.to_string(),
        backend: status.backend.as_str().to_string(),
        members: status.members.into_iter().map(MemberView::from).collect(),
        leader: status.leader,
        revision: status.revision,
        raft_term: status.raft_term,
        applied_index: status.applied_index,
        healthy: status.healthy,
        audit_policy: state.audit_policy.as_str().to_string(),
        audit: Some(audit.status()),
        agent_tunnels,
    }))
}
