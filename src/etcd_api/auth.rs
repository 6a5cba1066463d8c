//! etcd's Auth service: AuthEnable / AuthDisable / AuthStatus, Authenticate, and the management of
//! users and roles, with etcd's rules and messages over the shared state of [`super::access`].
//!
//! The etcd crate's generated server trait names message types it does not export (AuthStatus),
//! so the service is routed here by hand: the messages below are etcd's `rpc.proto` / `auth.proto`
//! messages with the same field numbers (several responses that are only a header share one type;
//! on the wire they are the same).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use etcd_client::proto::PbResponseHeader;
use kuboard_storage::{ReadConsistency, Store};
use tonic::codegen::{Body, StdError};
use tonic::{Code, Status};

use super::access::{
    self, check_name, check_permission, failed_precondition, invalid_argument, AuthState, Credentials, Need,
    Permission, UserRecord, AUTH_FAILED, AUTH_NOT_ENABLED, INVALID_AUTH_MGMT, MAX_PASSWORD_BYTES, PERMISSION_NOT_GIVEN,
    PERMISSION_NOT_GRANTED, ROLE_ALREADY_EXIST, ROLE_EMPTY, ROLE_NOT_FOUND, ROLE_NOT_GRANTED, ROOT,
    ROOT_ROLE_NOT_EXIST, ROOT_USER_NOT_EXIST, TOO_MANY_REQUESTS, USER_ALREADY_EXIST, USER_EMPTY, USER_NOT_FOUND,
};
use super::context::ApiContext;
use crate::auth::password::{self as login_password, HashingError};

/// How long an Authenticate waits for a hashing slot before it is refused as "too many requests"
/// (as long as a login waits for one).
const HASHING_WAIT: Duration = login_password::HASHING_QUEUE_WAIT;
/// Largest Auth request accepted (names and passwords are bounded far below this).
const MAX_AUTH_MESSAGE_BYTES: usize = 64 * 1024;

/// `AuthEnable`, `AuthDisable`, `AuthStatus`, `UserList`, `RoleList`: no fields.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct Empty {}

/// Every response that is only a header.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct HeaderOnly {
    #[prost(message, optional, tag = "1")]
    pub header: Option<PbResponseHeader>,
}

/// `UserGet`, `UserDelete`, `RoleAdd`, `RoleGet`, `RoleDelete`: one name.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct NameRequest {
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `Authenticate`.
#[derive(Clone, PartialEq, prost::Message)]
#[prost(skip_debug)]
pub(super) struct AuthenticateRequest {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub password: String,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub(super) struct UserAddOptions {
    #[prost(bool, tag = "1")]
    pub no_password: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
#[prost(skip_debug)]
pub(super) struct UserAddRequest {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub password: String,
    #[prost(message, optional, tag = "3")]
    pub options: Option<UserAddOptions>,
    #[prost(string, tag = "4")]
    pub hashed_password: String,
}

#[derive(Clone, PartialEq, prost::Message)]
#[prost(skip_debug)]
pub(super) struct ChangePasswordRequest {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub password: String,
    #[prost(string, tag = "3")]
    pub hashed_password: String,
}

macro_rules! debug_without_passwords {
    ($($message:ty),*) => {$(
        impl std::fmt::Debug for $message {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($message)).field("name", &self.name).finish_non_exhaustive()
            }
        }
    )*};
}
debug_without_passwords!(AuthenticateRequest, UserAddRequest, ChangePasswordRequest);

/// `UserGrantRole` (`user`) and `UserRevokeRole` (`name`): field 1 is the user either way.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct UserRoleRequest {
    #[prost(string, tag = "1")]
    pub user: String,
    #[prost(string, tag = "2")]
    pub role: String,
}

/// authpb.Permission.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct PermissionMessage {
    #[prost(int32, tag = "1")]
    pub perm_type: i32,
    #[prost(bytes = "vec", tag = "2")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub range_end: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct GrantPermissionRequest {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub perm: Option<PermissionMessage>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct RevokePermissionRequest {
    #[prost(string, tag = "1")]
    pub role: String,
    #[prost(bytes = "vec", tag = "2")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub range_end: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct StatusResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<PbResponseHeader>,
    #[prost(bool, tag = "2")]
    pub enabled: bool,
    #[prost(uint64, tag = "3")]
    pub auth_revision: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
#[prost(skip_debug)]
pub(super) struct TokenResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<PbResponseHeader>,
    #[prost(string, tag = "2")]
    pub token: String,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse").finish_non_exhaustive()
    }
}

/// `UserGet` (roles), `UserList` (users), `RoleList` (roles): a header and names.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct NamesResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<PbResponseHeader>,
    #[prost(string, repeated, tag = "2")]
    pub names: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct RoleGetResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<PbResponseHeader>,
    #[prost(message, repeated, tag = "2")]
    pub perm: Vec<PermissionMessage>,
}

/// Verify a password (or spend the same work on a dummy hash when there is no such user) in one
/// of the process-wide argon2id slots Kuboard's own login uses, waiting at most [`HASHING_WAIT`]
/// for one: a flood of Authenticate requests is refused, not queued, and it shares one bound on
/// memory and cores with the logins instead of adding its own.
async fn verify_bounded(password: String, phc: Option<String>) -> Result<bool, Status> {
    login_password::verify_bounded(password, phc, HASHING_WAIT)
        .await
        .map_err(hashing_status)
}

/// Hash a new password in one of the same slots, with the same wait.
async fn hash_bounded(new_password: String) -> Result<String, Status> {
    let slot = tokio::time::timeout(HASHING_WAIT, login_password::hashing_slot())
        .await
        .map_err(|_| hashing_status(HashingError::Busy(HASHING_WAIT)))?;
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        login_password::hash_password(&new_password)
    })
    .await
    .map_err(|error| hashing_status(HashingError::Task(error.to_string())))?
    .map_err(|error| Status::internal(format!("etcdserver: password hashing failed: {error}")))
}

fn hashing_status(error: HashingError) -> Status {
    match error {
        HashingError::Busy(_) => Status::new(Code::ResourceExhausted, TOO_MANY_REQUESTS),
        HashingError::Task(error) => Status::internal(format!("etcdserver: password hashing failed: {error}")),
    }
}

fn check_password(password: &str) -> Result<(), Status> {
    if password.is_empty() {
        return Err(invalid_argument("etcdserver: password is empty"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(invalid_argument(&format!(
            "etcdserver: password is longer than {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

fn no_hashed_passwords(hashed_password: &str) -> Result<(), Status> {
    if hashed_password.is_empty() {
        Ok(())
    } else {
        Err(invalid_argument(
            "etcdserver: hashed passwords are not accepted by this server; send the password",
        ))
    }
}

pub(super) struct AuthService<S> {
    pub ctx: ApiContext<S>,
}

impl<S: Clone> Clone for AuthService<S> {
    fn clone(&self) -> Self {
        AuthService { ctx: self.ctx.clone() }
    }
}

impl<S: Store + Clone> AuthService<S> {
    async fn admin(&self, credentials: &Credentials) -> Result<(), Status> {
        self.ctx.authorize(credentials, &[Need::Admin]).await.map(|_| ())
    }

    /// Change the state (as an administrator) and answer with the header of the write.
    async fn change<F>(&self, credentials: &Credentials, change: F) -> Result<HeaderOnly, Status>
    where
        F: Fn(&mut AuthState) -> Result<bool, Status>,
    {
        self.admin(credentials).await?;
        let header = self.ctx.auth.change(&self.ctx.store, change).await?;
        Ok(HeaderOnly {
            header: self.ctx.header(header),
        })
    }

    /// The latest state, for an administrator's read.
    async fn admin_read(&self, credentials: &Credentials) -> Result<access::ReadState, Status> {
        self.admin(credentials).await?;
        self.ctx.auth.read(&self.ctx.store, ReadConsistency::Linearizable).await
    }

    async fn auth_enable(&self, credentials: Credentials, _request: Empty) -> Result<HeaderOnly, Status> {
        self.change(&credentials, |state| {
            if state.enabled {
                return Ok(false);
            }
            let root = state
                .users
                .get(ROOT)
                .ok_or_else(|| failed_precondition(ROOT_USER_NOT_EXIST))?;
            if !root.roles.contains(ROOT) {
                return Err(failed_precondition(ROOT_ROLE_NOT_EXIST));
            }
            state.enabled = true;
            // Tokens of an earlier enabled period, or of a key read while auth was off, die here.
            state.token_key = access::new_token_key();
            Ok(true)
        })
        .await
        .inspect(|_| tracing::info!("etcd API authentication enabled"))
    }

    async fn auth_disable(&self, credentials: Credentials, _request: Empty) -> Result<HeaderOnly, Status> {
        self.change(&credentials, |state| {
            let was_enabled = state.enabled;
            state.enabled = false;
            Ok(was_enabled)
        })
        .await
        .inspect(|_| tracing::info!("etcd API authentication disabled"))
    }

    async fn auth_status(&self, _credentials: Credentials, _request: Empty) -> Result<StatusResponse, Status> {
        let read = self
            .ctx
            .auth
            .read(&self.ctx.store, ReadConsistency::Linearizable)
            .await?;
        Ok(StatusResponse {
            header: self.ctx.header(read.header),
            enabled: read.state.enabled,
            auth_revision: read.state.revision,
        })
    }

    async fn authenticate(
        &self,
        credentials: Credentials,
        request: AuthenticateRequest,
    ) -> Result<TokenResponse, Status> {
        let read = self
            .ctx
            .auth
            .read(&self.ctx.store, ReadConsistency::Linearizable)
            .await?;
        if !read.state.enabled {
            return Err(failed_precondition(AUTH_NOT_ENABLED));
        }
        if request.name.is_empty()
            || request.name.len() > access::MAX_NAME_BYTES
            || request.password.len() > MAX_PASSWORD_BYTES
        {
            return Err(invalid_argument(AUTH_FAILED));
        }
        let phc = read
            .state
            .users
            .get(&request.name)
            .and_then(|user| user.password_hash.clone());
        let matched = verify_bounded(request.password, phc).await?;
        if !matched {
            tracing::debug!(
                user = %request.name.escape_debug(),
                peer = ?credentials.peer,
                "etcd API authentication failed"
            );
            return Err(invalid_argument(AUTH_FAILED));
        }
        let token = access::make_token(&read.state, &request.name)?;
        Ok(TokenResponse {
            header: self.ctx.header(read.header),
            token,
        })
    }

    async fn user_add(&self, credentials: Credentials, request: UserAddRequest) -> Result<HeaderOnly, Status> {
        check_name(&request.name, USER_EMPTY, "user")?;
        no_hashed_passwords(&request.hashed_password)?;
        let no_password = request.options.is_some_and(|options| options.no_password);
        // Refuse a name in use before paying for a hash.
        if self
            .admin_read(&credentials)
            .await?
            .state
            .users
            .contains_key(&request.name)
        {
            return Err(failed_precondition(USER_ALREADY_EXIST));
        }
        let password_hash = if no_password {
            None
        } else {
            check_password(&request.password)?;
            let password = request.password;
            Some(hash_bounded(password).await?)
        };
        let name = request.name;
        self.change(&credentials, |state| {
            if state.users.contains_key(&name) {
                return Err(failed_precondition(USER_ALREADY_EXIST));
            }
            state.users.insert(
                name.clone(),
                UserRecord {
                    password_hash: password_hash.clone(),
                    roles: Default::default(),
                },
            );
            Ok(true)
        })
        .await
    }

    async fn user_get(&self, credentials: Credentials, request: NameRequest) -> Result<NamesResponse, Status> {
        check_name(&request.name, USER_EMPTY, "user")?;
        let read = self.admin_read(&credentials).await?;
        let user = read
            .state
            .users
            .get(&request.name)
            .ok_or_else(|| failed_precondition(USER_NOT_FOUND))?;
        Ok(NamesResponse {
            header: self.ctx.header(read.header),
            names: user.roles.iter().cloned().collect(),
        })
    }

    async fn user_list(&self, credentials: Credentials, _request: Empty) -> Result<NamesResponse, Status> {
        let read = self.admin_read(&credentials).await?;
        Ok(NamesResponse {
            header: self.ctx.header(read.header),
            names: read.state.users.keys().cloned().collect(),
        })
    }

    async fn user_delete(&self, credentials: Credentials, request: NameRequest) -> Result<HeaderOnly, Status> {
        check_name(&request.name, USER_EMPTY, "user")?;
        self.change(&credentials, |state| {
            if state.enabled && request.name == ROOT {
                return Err(invalid_argument(INVALID_AUTH_MGMT));
            }
            state
                .users
                .remove(&request.name)
                .ok_or_else(|| failed_precondition(USER_NOT_FOUND))?;
            Ok(true)
        })
        .await
    }

    async fn user_change_password(
        &self,
        credentials: Credentials,
        request: ChangePasswordRequest,
    ) -> Result<HeaderOnly, Status> {
        check_name(&request.name, USER_EMPTY, "user")?;
        no_hashed_passwords(&request.hashed_password)?;
        check_password(&request.password)?;
        if !self
            .admin_read(&credentials)
            .await?
            .state
            .users
            .contains_key(&request.name)
        {
            return Err(failed_precondition(USER_NOT_FOUND));
        }
        let password = request.password;
        let hash = hash_bounded(password).await?;
        let name = request.name;
        self.change(&credentials, |state| {
            let user = state
                .users
                .get_mut(&name)
                .ok_or_else(|| failed_precondition(USER_NOT_FOUND))?;
            user.password_hash = Some(hash.clone());
            Ok(true)
        })
        .await
    }

    async fn user_grant_role(&self, credentials: Credentials, request: UserRoleRequest) -> Result<HeaderOnly, Status> {
        check_name(&request.user, USER_EMPTY, "user")?;
        check_name(&request.role, ROLE_EMPTY, "role")?;
        self.change(&credentials, |state| {
            if !state.users.contains_key(&request.user) {
                return Err(failed_precondition(USER_NOT_FOUND));
            }
            // As etcd: the root role may be granted before it was added.
            if request.role != ROOT && !state.roles.contains_key(&request.role) {
                return Err(failed_precondition(ROLE_NOT_FOUND));
            }
            let user = state
                .users
                .get_mut(&request.user)
                .ok_or_else(|| failed_precondition(USER_NOT_FOUND))?;
            Ok(user.roles.insert(request.role.clone()))
        })
        .await
    }

    async fn user_revoke_role(&self, credentials: Credentials, request: UserRoleRequest) -> Result<HeaderOnly, Status> {
        check_name(&request.user, USER_EMPTY, "user")?;
        check_name(&request.role, ROLE_EMPTY, "role")?;
        self.change(&credentials, |state| {
            if state.enabled && request.user == ROOT && request.role == ROOT {
                return Err(invalid_argument(INVALID_AUTH_MGMT));
            }
            let user = state
                .users
                .get_mut(&request.user)
                .ok_or_else(|| failed_precondition(USER_NOT_FOUND))?;
            if !user.roles.remove(&request.role) {
                return Err(failed_precondition(ROLE_NOT_GRANTED));
            }
            Ok(true)
        })
        .await
    }

    async fn role_add(&self, credentials: Credentials, request: NameRequest) -> Result<HeaderOnly, Status> {
        check_name(&request.name, ROLE_EMPTY, "role")?;
        self.change(&credentials, |state| {
            if state.roles.contains_key(&request.name) {
                return Err(failed_precondition(ROLE_ALREADY_EXIST));
            }
            state.roles.insert(request.name.clone(), Vec::new());
            Ok(true)
        })
        .await
    }

    async fn role_get(&self, credentials: Credentials, request: NameRequest) -> Result<RoleGetResponse, Status> {
        check_name(&request.name, ROLE_EMPTY, "role")?;
        let read = self.admin_read(&credentials).await?;
        let perms = read
            .state
            .roles
            .get(&request.name)
            .ok_or_else(|| failed_precondition(ROLE_NOT_FOUND))?;
        Ok(RoleGetResponse {
            header: self.ctx.header(read.header),
            perm: perms
                .iter()
                .map(|perm| PermissionMessage {
                    perm_type: perm.perm_type,
                    key: perm.key.clone(),
                    range_end: perm.range_end.clone(),
                })
                .collect(),
        })
    }

    async fn role_list(&self, credentials: Credentials, _request: Empty) -> Result<NamesResponse, Status> {
        let read = self.admin_read(&credentials).await?;
        Ok(NamesResponse {
            header: self.ctx.header(read.header),
            names: read.state.roles.keys().cloned().collect(),
        })
    }

    async fn role_delete(&self, credentials: Credentials, request: NameRequest) -> Result<HeaderOnly, Status> {
        check_name(&request.name, ROLE_EMPTY, "role")?;
        self.change(&credentials, |state| {
            if state.enabled && request.name == ROOT {
                return Err(invalid_argument(INVALID_AUTH_MGMT));
            }
            state
                .roles
                .remove(&request.name)
                .ok_or_else(|| failed_precondition(ROLE_NOT_FOUND))?;
            // Nobody keeps a deleted role: a role of the same name added later starts with nobody.
            for user in state.users.values_mut() {
                user.roles.remove(&request.name);
            }
            Ok(true)
        })
        .await
    }

    async fn role_grant_permission(
        &self,
        credentials: Credentials,
        request: GrantPermissionRequest,
    ) -> Result<HeaderOnly, Status> {
        check_name(&request.name, ROLE_EMPTY, "role")?;
        let perm = request.perm.ok_or_else(|| invalid_argument(PERMISSION_NOT_GIVEN))?;
        let perm = Permission {
            perm_type: perm.perm_type,
            key: perm.key,
            range_end: perm.range_end,
        };
        check_permission(&perm)?;
        self.change(&credentials, |state| {
            let perms = state
                .roles
                .get_mut(&request.name)
                .ok_or_else(|| failed_precondition(ROLE_NOT_FOUND))?;
            // As etcd: granting a range the role already has replaces its type.
            match perms
                .iter_mut()
                .find(|granted| granted.key == perm.key && granted.range_end == perm.range_end)
            {
                Some(granted) => granted.perm_type = perm.perm_type,
                None => {
                    perms.push(perm.clone());
                    perms.sort_by(|a, b| (&a.key, &a.range_end).cmp(&(&b.key, &b.range_end)));
                }
            }
            Ok(true)
        })
        .await
    }

    async fn role_revoke_permission(
        &self,
        credentials: Credentials,
        request: RevokePermissionRequest,
    ) -> Result<HeaderOnly, Status> {
        check_name(&request.role, ROLE_EMPTY, "role")?;
        self.change(&credentials, |state| {
            let perms = state
                .roles
                .get_mut(&request.role)
                .ok_or_else(|| failed_precondition(ROLE_NOT_FOUND))?;
            let before = perms.len();
            perms.retain(|granted| !(granted.key == request.key && granted.range_end == request.range_end));
            if perms.len() == before {
                return Err(failed_precondition(PERMISSION_NOT_GRANTED));
            }
            Ok(true)
        })
        .await
    }
}

type BoxedResponse = Pin<Box<dyn Future<Output = Result<http::Response<tonic::body::Body>, Infallible>> + Send>>;

/// Decode one unary request with `Req`, answer it with `handler`, encode `Resp`.
fn unary<S, B, Req, Resp, Fut>(
    service: AuthService<S>,
    request: http::Request<B>,
    handler: fn(AuthService<S>, Credentials, Req) -> Fut,
) -> BoxedResponse
where
    S: Store + Clone + Send + Sync + 'static,
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
    Req: prost::Message + Default + Send + 'static,
    Resp: prost::Message + Send + 'static,
    Fut: Future<Output = Result<Resp, Status>> + Send + 'static,
{
    let method = tower::service_fn(move |request: tonic::Request<Req>| {
        let service = service.clone();
        let (metadata, extensions, message) = request.into_parts();
        let answer = handler(service, Credentials::new(&metadata, &extensions), message);
        async move { answer.await.map(tonic::Response::new) }
    });
    Box::pin(async move {
        let codec = tonic_prost::ProstCodec::<Resp, Req>::default();
        let mut grpc =
            tonic::server::Grpc::new(codec).apply_max_message_size_config(Some(MAX_AUTH_MESSAGE_BYTES), None);
        Ok(grpc.unary(method, request).await)
    })
}

/// Each method as a plain function, so that [`unary`] can take it by pointer.
macro_rules! method {
    ($name:ident, $request:ty, $response:ty) => {
        pub(super) fn $name<S: Store + Clone + Send + Sync + 'static>(
            service: AuthService<S>,
            credentials: Credentials,
            request: $request,
        ) -> Pin<Box<dyn Future<Output = Result<$response, Status>> + Send>> {
            Box::pin(async move { service.$name(credentials, request).await })
        }
    };
}

mod methods {
    use super::*;

    method!(auth_enable, Empty, HeaderOnly);
    method!(auth_disable, Empty, HeaderOnly);
    method!(auth_status, Empty, StatusResponse);
    method!(authenticate, AuthenticateRequest, TokenResponse);
    method!(user_add, UserAddRequest, HeaderOnly);
    method!(user_get, NameRequest, NamesResponse);
    method!(user_list, Empty, NamesResponse);
    method!(user_delete, NameRequest, HeaderOnly);
    method!(user_change_password, ChangePasswordRequest, HeaderOnly);
    method!(user_grant_role, UserRoleRequest, HeaderOnly);
    method!(user_revoke_role, UserRoleRequest, HeaderOnly);
    method!(role_add, NameRequest, HeaderOnly);
    method!(role_get, NameRequest, RoleGetResponse);
    method!(role_list, Empty, NamesResponse);
    method!(role_delete, NameRequest, HeaderOnly);
    method!(role_grant_permission, GrantPermissionRequest, HeaderOnly);
    method!(role_revoke_permission, RevokePermissionRequest, HeaderOnly);
}

impl<S> tonic::server::NamedService for AuthService<S> {
    const NAME: &'static str = "etcdserverpb.Auth";
}

impl<S, B> tower::Service<http::Request<B>> for AuthService<S>
where
    S: Store + Clone + Send + Sync + 'static,
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxedResponse;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> BoxedResponse {
        let service = self.clone();
        let method = request
            .uri()
            .path()
            .strip_prefix("/etcdserverpb.Auth/")
            .unwrap_or_default()
            .to_string();
        match method.as_str() {
            "AuthEnable" => unary(service, request, methods::auth_enable),
            "AuthDisable" => unary(service, request, methods::auth_disable),
            "AuthStatus" => unary(service, request, methods::auth_status),
            "Authenticate" => unary(service, request, methods::authenticate),
            "UserAdd" => unary(service, request, methods::user_add),
            "UserGet" => unary(service, request, methods::user_get),
            "UserList" => unary(service, request, methods::user_list),
            "UserDelete" => unary(service, request, methods::user_delete),
            "UserChangePassword" => unary(service, request, methods::user_change_password),
            "UserGrantRole" => unary(service, request, methods::user_grant_role),
            "UserRevokeRole" => unary(service, request, methods::user_revoke_role),
            "RoleAdd" => unary(service, request, methods::role_add),
            "RoleGet" => unary(service, request, methods::role_get),
            "RoleList" => unary(service, request, methods::role_list),
            "RoleDelete" => unary(service, request, methods::role_delete),
            "RoleGrantPermission" => unary(service, request, methods::role_grant_permission),
            "RoleRevokePermission" => unary(service, request, methods::role_revoke_permission),
            _ => Box::pin(async move { Ok(Status::unimplemented(format!("unknown method {method}")).into_http()) }),
        }
    }
}
