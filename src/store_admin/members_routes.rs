//! `/kuboard-api/system/members`: the members of the embedded Raft group, and changing them online.
//!
//! - `GET /kuboard-api/system/members` (any logged-in user): the members as the answering replica
//!   sees them.
//! - `POST /kuboard-api/system/members` `{"id","address"}` (administrators): add a member; the
//!   leader replicates to it as a learner until it has caught up, then makes it a voter.
//! - `DELETE /kuboard-api/system/members/{id}` (administrators): remove a member.
//! - `PUT /kuboard-api/system/members/{id}` `{"address"}` (administrators): replace a member by a fresh one
//!   with the same id, at the same or a new address (the way back for a replica whose data
//!   directory was lost). Running it again after an interrupted replace finishes it.
//!
//! Any replica takes a change: the store performs it on the leader. Every input is checked, and
//! the membership the answering replica knows is checked against it, before anything is proposed,
//! so a refused request changes nothing. An external etcd's members are etcd's business
//! (`etcdctl member …`); this API only lists them.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use kuboard_raft::RaftStore;
use kuboard_storage::{Member, MemberRole, Store, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::member_spec::{check_peer_address, parse_member_id};
use crate::auth::sessions::{self, Session};
use crate::http::api_error::ErrorBody;
use crate::http::api_json::ApiJson;
use crate::http::caller::{presented_token, Caller};
use crate::http::request_context::request_context;
use crate::http::{ApiError, AppState};
use crate::store_backend::StoreBackend;

pub const MEMBERS_PATH: &str = "/kuboard-api/system/members";
pub const MEMBER_PATH: &str = "/kuboard-api/system/members/{id}";

/// A list never waits longer than this for the store's status.
const LIST_DEADLINE: Duration = Duration::from_secs(10);

/// One member of the store's group, as the answering replica sees it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MemberView {
    pub id: u64,
    pub address: String,
    /// leader, follower, learner or unknown.
    pub role: String,
    pub healthy: bool,
    /// False when the answering replica cannot tell whether the member is alive (a follower about
    /// the other followers); `healthy` is then false for want of news.
    #[serde(default = "known")]
    pub health_known: bool,
    /// The member's Raft term, as far as the answering replica knows it (null: not known here).
    #[serde(default)]
    pub term: Option<u64>,
    /// The member's commit index, as far as the answering replica knows it.
    #[serde(default)]
    pub commit_index: Option<u64>,
    /// The member's applied index, as far as the answering replica knows it.
    #[serde(default)]
    pub applied_index: Option<u64>,
    /// The member's store revision, as far as the answering replica knows it.
    #[serde(default)]
    pub revision: Option<i64>,
    /// The last log index the leader knows the member holds (answered by the leader only).
    #[serde(default)]
    pub matched_index: Option<u64>,
}

fn known() -> bool {
    true
}

impl From<Member> for MemberView {
    fn from(member: Member) -> Self {
        MemberView {
            id: member.id,
            address: member.address,
            role: member.role.as_str().to_string(),
            healthy: member.healthy,
            health_known: member.health_known,
            term: member.progress.term,
            commit_index: member.progress.commit_index,
            applied_index: member.progress.applied_index,
            revision: member.progress.revision,
            matched_index: member.progress.matched_index,
        }
    }
}

/// What every members endpoint answers: the membership after the request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MembersView {
    /// The replica that answered.
    pub replica_id: u64,
    /// raft or etcd.
    pub backend: String,
    pub leader: Option<u64>,
    /// True when the list is the leader's view (the answering replica leads, or the list is the
    /// answer of a change, which the leader made), so that `healthy` is first-hand for every member.
    /// A follower knows only that the leader and itself are alive; `healthy: false` of another
    /// follower then means "not known here".
    pub health_seen_by_leader: bool,
    pub members: Vec<MemberView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMemberRequest {
    #[schema(minimum = 1)]
    pub id: u64,
    /// `host:port` of the new member's Raft peer listener.
    #[schema(
        pattern = r"^([A-Za-z0-9._-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]):(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})$"
    )]
    pub address: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceMemberRequest {
    /// `host:port` of the fresh member's Raft peer listener.
    #[schema(
        pattern = r"^([A-Za-z0-9._-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]):(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})$"
    )]
    pub address: String,
}

#[derive(Clone)]
struct MembersRouteState {
    app: AppState,
    backend: Arc<StoreBackend>,
}

/// The members routes, with the same request-context layer as the rest of the API.
/// The OpenAPI paths of the members routes.
#[derive(OpenApi)]
#[openapi(paths(list_members, add_member, replace_member, remove_member))]
pub struct MembersApi;

pub fn router(app: AppState, backend: Arc<StoreBackend>) -> Router {
    Router::new()
        .route(MEMBERS_PATH, get(list_members).post(add_member))
        .route(MEMBER_PATH, put(replace_member).delete(remove_member))
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(axum::middleware::from_fn_with_state(app.clone(), request_context))
        .with_state(MembersRouteState { app, backend })
}

/// The logged-in caller. Extracted before the body, so that a caller without a session learns
/// nothing about what its request would have done.
struct Authenticated(Session);

impl FromRequestParts<MembersRouteState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &MembersRouteState) -> Result<Self, Self::Rejection> {
        let token = presented_token(&parts.headers).ok_or_else(ApiError::unauthenticated)?;
        sessions::find_session(&state.app.store, &token, state.app.clock.now_unix())
            .await?
            .map(Authenticated)
            .ok_or_else(ApiError::unauthenticated)
    }
}

/// The embedded store whose membership may change, if the caller is an enabled administrator
/// (the same role check as every other administrative route, not a user name).
async fn authorize_change<'a>(state: &'a MembersRouteState, session: &Session) -> Result<&'a RaftStore, ApiError> {
    let caller = Caller {
        session: session.clone(),
    };
    caller.require_administrator(&state.app).await.map_err(|error| {
        if error.status == StatusCode::FORBIDDEN {
            ApiError::forbidden("only administrators may change the members of the store group")
        } else {
            error
        }
    })?;
    match &*state.backend {
        StoreBackend::Raft(store) => Ok(store),
        _ => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_supported",
            "this replica stores its data in an external etcd (KUBOARD_ETCD_ENDPOINTS), whose members are \
             managed with etcd's own tools: etcdctl member list | add | remove | update",
        )),
    }
}

fn invalid_member_id(text: &str) -> ApiError {
    let message = parse_member_id(text).err().unwrap_or_default();
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_member_id", message)
}

fn invalid_address(message: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_address", message)
}

fn is_voter(member: &Member) -> bool {
    matches!(member.role, MemberRole::Leader | MemberRole::Follower)
}

/// Adding a member needs the peer transport, which a replica runs only with a cluster secret.
fn require_peer_listener(store: &RaftStore) -> Result<(), ApiError> {
    if store.peer_listen_addr().is_some() {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "no_cluster_secret",
        "this group runs without KUBOARD_CLUSTER_SECRET, so its members cannot talk to new ones: restart its \
         replica with a cluster secret (and KUBOARD_RAFT_PEERS naming it), then add members",
    ))
}

/// Another member already using `address` (a new member must have its own peer listener).
fn check_address_free(members: &[Member], id: u64, address: &str) -> Result<(), ApiError> {
    match members
        .iter()
        .find(|member| member.id != id && member.address == address)
    {
        Some(other) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "address_in_use",
            format!("member {} already listens at {address}", other.id),
        )),
        None => Ok(()),
    }
}

fn only_voter(members: &[Member], id: u64) -> bool {
    let voters: Vec<u64> = members.iter().filter(|m| is_voter(m)).map(|m| m.id).collect();
    voters == [id]
}

fn last_voter(id: u64, doing: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "last_voter",
        format!("member {id} is the only voting member; {doing} it would leave no group to hold the data"),
    )
}

/// The errors of a membership change, with the store's explanation where it helps the operator.
fn change_error(error: StoreError, what: &str) -> ApiError {
    match error {
        StoreError::InvalidArgument(message) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_member_change", message)
        }
        StoreError::Timeout { .. } => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "member_change_timeout",
            format!(
                "{what} did not complete in time. A member being added must be running, reachable at its address and \
                 started with the same KUBOARD_CLUSTER_SECRET; until it has caught up it stays a learner (see the \
                 member list), and the change can be run again"
            ),
        ),
        StoreError::Unavailable(message) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            format!("{what} did not complete: {message}"),
        ),
        other => ApiError::from(other),
    }
}

/// The answer: `from_leader` is the member list a change answered (the leader's view), else the
/// answering replica's own view is read.
async fn view(state: &MembersRouteState, from_leader: Option<Vec<Member>>) -> Result<MembersView, ApiError> {
    let status = tokio::time::timeout(LIST_DEADLINE, state.backend.status())
        .await
        .map_err(|_| {
            ApiError::from(StoreError::Timeout {
                millis: LIST_DEADLINE.as_millis() as u64,
            })
        })??;
    let raft = matches!(&*state.backend, StoreBackend::Raft(_));
    let (members, health_seen_by_leader) = match from_leader {
        Some(members) => (members, raft),
        None => (status.members, raft && status.leader == Some(status.member_id)),
    };
    Ok(MembersView {
        replica_id: state.app.replica_id,
        backend: status.backend.as_str().to_string(),
        leader: status.leader,
        health_seen_by_leader,
        members: members.into_iter().map(MemberView::from).collect(),
    })
}

/// The members of the embedded store's group, as this replica sees them.
#[utoipa::path(get, path = "/kuboard-api/system/members", tag = "system",
    responses((status = 200, body = MembersView), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_members(
    State(state): State<MembersRouteState>,
    _caller: Authenticated,
) -> Result<Json<MembersView>, ApiError> {
    Ok(Json(view(&state, None).await?))
}

/// Adds a member (administrators); it catches up as a learner, then votes.
#[utoipa::path(post, path = "/kuboard-api/system/members", tag = "system", request_body = AddMemberRequest,
    responses((status = 200, body = MembersView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
async fn add_member(
    State(state): State<MembersRouteState>,
    Authenticated(session): Authenticated,
    ApiJson(request): ApiJson<AddMemberRequest>,
) -> Result<Json<MembersView>, ApiError> {
    let store = authorize_change(&state, &session).await?;
    if request.id == 0 {
        return Err(invalid_member_id("0"));
    }
    let address = check_peer_address(&request.address).map_err(invalid_address)?;
    require_peer_listener(store)?;
    let members = store.members().await?;
    if let Some(existing) = members.iter().find(|member| member.id == request.id) {
        if existing.address != address {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "member_exists",
                format!(
                    "member {} is already known at {}; to move it, or to bring it back after its data was lost, \
                     replace it (PUT {MEMBERS_PATH}/{}, `kuboard admin members replace`)",
                    request.id, existing.address, request.id
                ),
            ));
        }
    }
    check_address_free(&members, request.id, &address)?;
    tracing::info!(
        by = %session.record.username,
        member = request.id,
        %address,
        "adding a member to the store group"
    );
    let members = store
        .add_member(request.id, address)
        .await
        .map_err(|error| change_error(error, "adding the member"))?;
    Ok(Json(view(&state, Some(members)).await?))
}

/// Removes a member (administrators).
#[utoipa::path(delete, path = "/kuboard-api/system/members/{id}", tag = "system", params(("id" = u64, Path, minimum = 1)),
    responses((status = 200, body = MembersView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
async fn remove_member(
    State(state): State<MembersRouteState>,
    Path(id): Path<String>,
    Authenticated(session): Authenticated,
) -> Result<Json<MembersView>, ApiError> {
    let store = authorize_change(&state, &session).await?;
    let id = parse_member_id(&id).map_err(|_| invalid_member_id(&id))?;
    let members = store.members().await?;
    if !members.iter().any(|member| member.id == id) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "member_not_found",
            format!("there is no member {id}"),
        ));
    }
    if only_voter(&members, id) {
        return Err(last_voter(id, "removing"));
    }
    tracing::info!(by = %session.record.username, member = id, "removing a member from the store group");
    let members = store
        .remove_member(id)
        .await
        .map_err(|error| change_error(error, "removing the member"))?;
    Ok(Json(view(&state, Some(members)).await?))
}

/// Replaces a member by a fresh one at an address (administrators).
#[utoipa::path(put, path = "/kuboard-api/system/members/{id}", tag = "system", request_body = ReplaceMemberRequest,
    params(("id" = u64, Path, minimum = 1)),
    responses((status = 200, body = MembersView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
async fn replace_member(
    State(state): State<MembersRouteState>,
    Path(id): Path<String>,
    Authenticated(session): Authenticated,
    ApiJson(request): ApiJson<ReplaceMemberRequest>,
) -> Result<Json<MembersView>, ApiError> {
    let store = authorize_change(&state, &session).await?;
    let id = parse_member_id(&id).map_err(|_| invalid_member_id(&id))?;
    let address = check_peer_address(&request.address).map_err(invalid_address)?;
    require_peer_listener(store)?;
    let members = store.members().await?;
    if only_voter(&members, id) {
        return Err(last_voter(id, "replacing"));
    }
    check_address_free(&members, id, &address)?;
    tracing::info!(
        by = %session.record.username,
        member = id,
        %address,
        known = members.iter().any(|member| member.id == id),
        "replacing a member of the store group (remove, then add as a fresh member)"
    );
    let members = store
        .replace_member(id, address)
        .await
        .map_err(|error| change_error(error, "replacing the member"))?;
    Ok(Json(view(&state, Some(members)).await?))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicBool;

    use axum::body::Body;
    use axum::http::Request;
    use kuboard_raft::RaftStoreConfig;
    use serde_json::{json, Value};
    use tower::ServiceExt;

    use super::*;
    use crate::app_store::AppStore;
    use crate::auth::roles::GlobalRole;
    use crate::auth::users::{self, UserRecord, ADMIN_USERNAME};
    use crate::clock::Clock;
    use crate::config::AuditPolicy;
    use crate::memory_store::MemoryStore;
    use crate::metrics::Metrics;

    const NOW: u64 = 1_700_000_000;

    struct Harness {
        app: Router,
        admin: String,
        viewer: String,
        /// An administrator by role whose name is not `admin`.
        operator: String,
    }

    /// Stores a user with `role`; the password hash is never checked by these routes.
    async fn store_user(store: &AppStore, username: &str, role: GlobalRole) {
        let record = UserRecord {
            username: username.to_string(),
            password_hash: "$argon2id$unused".to_string(),
            must_change_password: false,
            created_at: NOW,
            updated_at: NOW,
            role,
            groups: Vec::new(),
            disabled: false,
        };
        assert!(users::create_user(store, &record).await.expect("store the user"));
    }

    /// Sessions live in an in-memory store; the membership is `backend`'s.
    async fn harness(backend: StoreBackend) -> Harness {
        let metrics = Arc::new(Metrics::new(1));
        let sessions_store = AppStore::new(Arc::new(StoreBackend::Memory(MemoryStore::default())), metrics.clone());
        let (admin, _) = sessions::create_session(&sessions_store, ADMIN_USERNAME, 3600, NOW)
            .await
            .expect("admin session");
        let (viewer, _) = sessions::create_session(&sessions_store, "viewer", 3600, NOW)
            .await
            .expect("viewer session");
        let (operator, _) = sessions::create_session(&sessions_store, "operator", 3600, NOW)
            .await
            .expect("operator session");
        store_user(&sessions_store, ADMIN_USERNAME, GlobalRole::Administrator).await;
        store_user(&sessions_store, "viewer", GlobalRole::Viewer).await;
        store_user(&sessions_store, "operator", GlobalRole::Administrator).await;
        let state = AppState {
            store: sessions_store,
            metrics,
            clock: Clock::fixed(NOW),
            replica_id: 1,
            session_ttl: Duration::from_secs(3600),
            secure_cookies: false,
            audit_policy: AuditPolicy::IgnoreErrors,
            admin_ready: Arc::new(AtomicBool::new(true)),
            login: crate::http::LoginSettings::for_tests(),
            trusted_proxies: Arc::from(Vec::new()),
            cipher: crate::clusters::credential_cipher::CredentialCipher::from_secret("handler tests"),
        };
        Harness {
            app: router(state, Arc::new(backend)),
            admin,
            viewer,
            operator,
        }
    }

    impl Harness {
        async fn call(
            &self,
            method: &str,
            path: &str,
            token: Option<&str>,
            body: Option<Value>,
        ) -> (StatusCode, Value) {
            let mut builder = Request::builder().method(method).uri(path);
            if let Some(token) = token {
                builder = builder.header("authorization", format!("Bearer {token}"));
            }
            let body = match body {
                Some(body) => {
                    builder = builder.header("content-type", "application/json");
                    Body::from(body.to_string())
                }
                None => Body::empty(),
            };
            let response = self
                .app
                .clone()
                .oneshot(builder.body(body).expect("valid request"))
                .await
                .expect("the router never fails");
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("read body");
            (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
        }
    }

    fn assert_code(answer: &(StatusCode, Value), status: StatusCode, code: &str) {
        assert_eq!(answer.0, status, "{}", answer.1);
        assert_eq!(answer.1["code"], code, "{}", answer.1);
        assert!(answer.1["request_id"].as_str().is_some_and(|id| !id.is_empty()));
    }

    #[tokio::test]
    async fn callers_without_a_session_or_admin_rights_are_refused() {
        let h = harness(StoreBackend::Memory(MemoryStore::default())).await;
        let add = Some(json!({ "id": 4, "address": "127.0.0.1:7" }));
        let replace = Some(json!({ "address": "127.0.0.1:7" }));
        for (method, path, body) in [
            ("GET", MEMBERS_PATH, None),
            ("POST", MEMBERS_PATH, add.clone()),
            ("DELETE", "/kuboard-api/system/members/2", None),
            ("PUT", "/kuboard-api/system/members/2", replace.clone()),
        ] {
            assert_code(
                &h.call(method, path, None, body.clone()).await,
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
            );
            let forged = "A".repeat(43);
            assert_code(
                &h.call(method, path, Some(&forged), body).await,
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
            );
        }
        for (method, path, body) in [
            ("POST", MEMBERS_PATH, add),
            ("DELETE", "/kuboard-api/system/members/2", None),
            ("PUT", "/kuboard-api/system/members/2", replace),
        ] {
            assert_code(
                &h.call(method, path, Some(&h.viewer), body).await,
                StatusCode::FORBIDDEN,
                "forbidden",
            );
        }
        // The session is checked before the body is read.
        assert_code(
            &h.call("POST", MEMBERS_PATH, None, Some(json!({ "nonsense": true })))
                .await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        );
        let listed = h.call("GET", MEMBERS_PATH, Some(&h.viewer), None).await;
        assert_eq!(listed.0, StatusCode::OK, "{}", listed.1);
        assert_code(
            &h.call("GET", "/kuboard-api/system/members/2", Some(&h.admin), None)
                .await,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        );
    }

    #[tokio::test]
    async fn a_store_other_than_the_embedded_group_does_not_change_members_here() {
        let h = harness(StoreBackend::Memory(MemoryStore::default())).await;
        let answer = h
            .call(
                "POST",
                MEMBERS_PATH,
                Some(&h.admin),
                Some(json!({ "id": 4, "address": "127.0.0.1:7" })),
            )
            .await;
        assert_code(&answer, StatusCode::CONFLICT, "not_supported");
        assert!(answer.1["message"]
            .as_str()
            .is_some_and(|m| m.contains("etcdctl member")));
        // Authorization goes by role: another administrator gets past it just as `admin` does.
        let answer = h
            .call("DELETE", "/kuboard-api/system/members/2", Some(&h.operator), None)
            .await;
        assert_code(&answer, StatusCode::CONFLICT, "not_supported");
    }

    /// A one-member group without a cluster secret: every bad request is refused with its own code
    /// and the membership stays as it was.
    #[tokio::test]
    async fn bad_changes_are_refused_and_change_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = RaftStore::open(RaftStoreConfig {
            node_id: 1,
            data_dir: dir.path().to_path_buf(),
            peers: BTreeMap::from([(1, "127.0.0.1:1".to_string())]),
            peer_listen_addr: "127.0.0.1:0".parse().expect("address"),
            cluster_secret: None,
            heartbeat_ms: 50,
            election_timeout_ms: 300,
            snapshot_threshold: 1000,
        })
        .await
        .expect("open a one-member store");
        let h = harness(StoreBackend::Raft(store.clone())).await;
        let listed = h.call("GET", MEMBERS_PATH, Some(&h.admin), None).await;
        assert_eq!(listed.0, StatusCode::OK, "{}", listed.1);
        assert_eq!(listed.1["leader"], 1);
        assert_eq!(listed.1["health_seen_by_leader"], true);
        let members = listed.1["members"].as_array().expect("members");
        assert_eq!(members.len(), 1, "{}", listed.1);
        for (field, expected) in [
            ("id", json!(1)),
            ("address", json!("127.0.0.1:1")),
            ("role", json!("leader")),
            ("healthy", json!(true)),
            ("health_known", json!(true)),
            ("term", json!(1)),
            ("matched_index", json!(null)),
        ] {
            assert_eq!(members[0][field], expected, "{field}: {}", listed.1);
        }

        let cases: Vec<(&str, String, Option<Value>, StatusCode, &str)> = vec![
            (
                "POST",
                MEMBERS_PATH.into(),
                Some(json!({ "id": 0, "address": "127.0.0.1:7" })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_member_id",
            ),
            (
                "POST",
                MEMBERS_PATH.into(),
                Some(json!({ "id": -3, "address": "127.0.0.1:7" })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
            ),
            (
                "POST",
                MEMBERS_PATH.into(),
                Some(json!({ "id": 2, "address": "127.0.0.1" })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_address",
            ),
            (
                "POST",
                MEMBERS_PATH.into(),
                Some(json!({ "id": 2, "address": "http://127.0.0.1:7" })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_address",
            ),
            (
                "POST",
                MEMBERS_PATH.into(),
                Some(json!({ "id": 2, "address": "127.0.0.1:7", "x": 1 })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
            ),
            (
                "POST",
                MEMBERS_PATH.into(),
                Some(json!({ "id": 2, "address": "127.0.0.1:7" })),
                StatusCode::CONFLICT,
                "no_cluster_secret",
            ),
            (
                "DELETE",
                "/kuboard-api/system/members/abc".into(),
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_member_id",
            ),
            (
                "DELETE",
                "/kuboard-api/system/members/0".into(),
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_member_id",
            ),
            (
                "DELETE",
                "/kuboard-api/system/members/9".into(),
                None,
                StatusCode::NOT_FOUND,
                "member_not_found",
            ),
            (
                "DELETE",
                "/kuboard-api/system/members/1".into(),
                None,
                StatusCode::CONFLICT,
                "last_voter",
            ),
            (
                "PUT",
                "/kuboard-api/system/members/1".into(),
                Some(json!({ "address": "nonsense" })),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_address",
            ),
            (
                "PUT",
                "/kuboard-api/system/members/1".into(),
                Some(json!({ "address": "127.0.0.1:9" })),
                StatusCode::CONFLICT,
                "no_cluster_secret",
            ),
        ];
        for (method, path, body, status, code) in cases {
            let answer = h.call(method, &path, Some(&h.admin), body).await;
            assert_code(&answer, status, code);
            assert!(!answer.1["message"].as_str().unwrap_or("").is_empty());
        }
        let after = h.call("GET", MEMBERS_PATH, Some(&h.admin), None).await;
        assert_eq!(after.1["members"], listed.1["members"], "nothing changed");
        store.shutdown().await.expect("shut down");
    }
}
