//! etcd-style authentication of the API: the auth state every replica shares (kept in the store
//! under [`RESERVED_PREFIX`]), the stateless tokens, and the permission checks over key ranges.
//!
//! # The state
//!
//! One key, [`STATE_KEY`], holds the whole auth state as JSON: the enabled flag, the auth
//! revision, the token signing key, the users (argon2id PHC hashes, never passwords) and the roles
//! with their key-range permissions. Every change is a read of that key and a compare-and-swap on
//! its mod revision, which bumps the auth revision, so changes made on different replicas at the
//! same time are serialised by Raft and none is lost. Checks read the key with the consistency of
//! the request (linearizable but for serializable reads) and keep the parsed state while its mod
//! revision is unchanged, so a change holds on every replica once it is acknowledged.
//!
//! # Tokens
//!
//! `user.revision.expiry.mac`: the user name (base64url), the auth revision the token was made at,
//! its expiry (Unix seconds, [`TOKEN_TTL`] after it was made, etcd's simple-token TTL), and an
//! HMAC-SHA256 over the three with the signing key of the state. Any replica can check a token
//! without asking the one that made it. A token made before any change of users, roles or the
//! enabled flag is refused with etcd's "revision of auth store is old" (etcd clients then
//! authenticate again); the signing key is made anew at every `auth enable`.
//!
//! # The reserved prefix
//!
//! Keys under [`RESERVED_PREFIX`] change only through the Auth service: a put into it, a delete
//! touching it, or a transaction writing into it is refused with "permission denied" for
//! everyone, auth enabled or not. Reads of it are refused for every user but `root` while auth is
//! enabled; `root` (and, with auth disabled, everyone, who can then write any key anyway) reads it
//! like any key: the password hashes and the signing key of the current auth revision, which give
//! nothing `root` does not already have.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use kuboard_storage::{
    Compare, CompareResult, CompareTarget, PutRequest, RangeRequest, ReadConsistency, ResponseHeader, Store, TxnOp,
    TxnRequest,
};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tonic::metadata::MetadataMap;
use tonic::{Code, Status};

use super::authority::ClientInfo;
use super::errors::status_of;

/// Keys of the store that belong to the API's authentication.
pub(super) const RESERVED_PREFIX: &[u8] = b"etcd-api/";
/// The one key holding the auth state.
pub(super) const STATE_KEY: &[u8] = b"etcd-api/auth";
/// etcd's `--auth-token=simple` TTL.
pub(super) const TOKEN_TTL: Duration = Duration::from_secs(300);
/// The longest user or role name accepted.
pub(super) const MAX_NAME_BYTES: usize = 256;
/// The longest password accepted (bounds the hashing work of one request).
pub(super) const MAX_PASSWORD_BYTES: usize = 1024;
/// The role that may do anything.
pub(super) const ROOT: &str = "root";
/// How often a change of the state is retried when another change won the compare-and-swap.
pub(super) const CHANGE_ATTEMPTS: usize = 16;

// etcd's permission types (authpb.Permission.Type).
pub(super) const PERM_READ: i32 = 0;
pub(super) const PERM_WRITE: i32 = 1;
pub(super) const PERM_READWRITE: i32 = 2;

// etcd's messages (rpctypes), with their gRPC codes.
pub(super) const ROOT_USER_NOT_EXIST: &str = "etcdserver: root user does not exist";
pub(super) const ROOT_ROLE_NOT_EXIST: &str = "etcdserver: root user does not have root role";
pub(super) const USER_ALREADY_EXIST: &str = "etcdserver: user name already exists";
pub(super) const USER_EMPTY: &str = "etcdserver: user name is empty";
pub(super) const USER_NOT_FOUND: &str = "etcdserver: user name not found";
pub(super) const ROLE_ALREADY_EXIST: &str = "etcdserver: role name already exists";
pub(super) const ROLE_NOT_FOUND: &str = "etcdserver: role name not found";
pub(super) const ROLE_EMPTY: &str = "etcdserver: role name is empty";
pub(super) const AUTH_FAILED: &str = "etcdserver: authentication failed, invalid user ID or password";
pub(super) const PERMISSION_NOT_GIVEN: &str = "etcdserver: permission not given";
pub(super) const PERMISSION_DENIED: &str = "etcdserver: permission denied";
pub(super) const ROLE_NOT_GRANTED: &str = "etcdserver: role is not granted to the user";
pub(super) const PERMISSION_NOT_GRANTED: &str = "etcdserver: permission is not granted to the role";
pub(super) const AUTH_NOT_ENABLED: &str = "etcdserver: authentication is not enabled";
pub(super) const INVALID_AUTH_TOKEN: &str = "etcdserver: invalid auth token";
pub(super) const INVALID_AUTH_MGMT: &str = "etcdserver: invalid auth management";
pub(super) const AUTH_OLD_REVISION: &str = "etcdserver: revision of auth store is old";
pub(super) const TOO_MANY_REQUESTS: &str = "etcdserver: too many requests";

pub(super) fn failed_precondition(message: &str) -> Status {
    Status::new(Code::FailedPrecondition, message)
}

pub(super) fn invalid_argument(message: &str) -> Status {
    Status::new(Code::InvalidArgument, message)
}

pub(super) fn permission_denied() -> Status {
    Status::new(Code::PermissionDenied, PERMISSION_DENIED)
}

/// A change of the auth state, or a write checked against it, kept meeting newer changes.
pub(super) fn auth_state_changing() -> Status {
    Status::new(Code::Aborted, "etcdserver: the auth state kept changing; retry")
}

pub(super) fn invalid_token() -> Status {
    Status::new(Code::Unauthenticated, INVALID_AUTH_TOKEN)
}

/// A key range as etcd names it: `range_end` empty is the single key `key`, `[0]` is every key
/// from `key` on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Permission {
    pub perm_type: i32,
    #[serde(with = "hex_bytes")]
    pub key: Vec<u8>,
    #[serde(with = "hex_bytes")]
    pub range_end: Vec<u8>,
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}

#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct UserRecord {
    /// argon2id PHC string; `None` for a user added with `--no-password`, who cannot
    /// authenticate with a password.
    pub password_hash: Option<String>,
    pub roles: BTreeSet<String>,
}

/// The whole auth state. Its `Debug` names no hash and no key.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct AuthState {
    pub enabled: bool,
    pub revision: u64,
    /// The token signing key (hex).
    pub token_key: String,
    pub users: BTreeMap<String, UserRecord>,
    pub roles: BTreeMap<String, Vec<Permission>>,
}

impl std::fmt::Debug for AuthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthState")
            .field("enabled", &self.enabled)
            .field("revision", &self.revision)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("roles", &self.roles.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

pub(super) fn new_token_key() -> String {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    hex::encode(key)
}

/// Whether a request reads or writes its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Read,
    Write,
}

/// What one request needs from the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Need {
    /// Read or write the range `[key, range_end)` (etcd's conventions for `range_end`).
    Range(Op, Vec<u8>, Vec<u8>),
    /// Any authenticated user (leases).
    User,
    /// The `root` role (snapshots, defragmentation, user and role management).
    Admin,
}

/// The end of a range as a bound: `None` is "no end" (the `[0]` convention).
fn end_bound(key: &[u8], range_end: &[u8]) -> Option<Vec<u8>> {
    if range_end.is_empty() {
        // The single key: up to the next key after it.
        let mut next = key.to_vec();
        next.push(0);
        Some(next)
    } else if range_end == [0] {
        None
    } else {
        Some(range_end.to_vec())
    }
}

/// True when `[key, range_end)` and `[other_key, other_end)` share at least one key.
pub(super) fn overlaps(key: &[u8], range_end: &[u8], other_key: &[u8], other_end: &[u8]) -> bool {
    let end = end_bound(key, range_end);
    let other = end_bound(other_key, other_end);
    let starts_before_other_ends = other.as_deref().is_none_or(|other_end| key < other_end);
    let other_starts_before_end = end.as_deref().is_none_or(|end| other_key < end);
    starts_before_other_ends && other_starts_before_end
}

/// True when the range touches the reserved prefix.
pub(super) fn touches_reserved(key: &[u8], range_end: &[u8]) -> bool {
    let reserved_end = kuboard_storage::keys::prefix_end(RESERVED_PREFIX);
    overlaps(key, range_end, RESERVED_PREFIX, &reserved_end)
}

/// True when the union of `granted` ranges covers every key of `[key, range_end)`.
pub(super) fn covered(granted: &[(&[u8], &[u8])], key: &[u8], range_end: &[u8]) -> bool {
    let wanted_end = end_bound(key, range_end);
    let mut intervals: Vec<(Vec<u8>, Option<Vec<u8>>)> = granted
        .iter()
        .map(|(start, end)| (start.to_vec(), end_bound(start, end)))
        .collect();
    intervals.sort();
    // Walk from `key` on: each interval that starts at or before the point reached extends it.
    let mut reached = key.to_vec();
    loop {
        if let Some(end) = &wanted_end {
            if reached >= *end {
                return true;
            }
        }
        let mut extended = false;
        for (start, end) in &intervals {
            if *start > reached {
                continue;
            }
            match end {
                None => return true,
                Some(end) if *end > reached => {
                    reached = end.clone();
                    extended = true;
                }
                Some(_) => {}
            }
        }
        if !extended {
            return false;
        }
    }
}

/// Who the caller is, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Caller {
    /// Auth is disabled: everyone may do everything but write the reserved prefix.
    Anyone,
    /// An authenticated user with the `root` role.
    Root(String),
    User(String),
}

/// Whether `user`'s roles allow everything in `needs`.
pub(super) fn permitted(state: &AuthState, user: &str, needs: &[Need]) -> Result<Caller, Status> {
    let Some(record) = state.users.get(user) else {
        return Err(invalid_token());
    };
    if record.roles.contains(ROOT) {
        return Ok(Caller::Root(user.to_string()));
    }
    let perms: Vec<&Permission> = record
        .roles
        .iter()
        .filter_map(|role| state.roles.get(role))
        .flatten()
        .collect();
    let granted = |op: Op| -> Vec<(&[u8], &[u8])> {
        perms
            .iter()
            .filter(|perm| match op {
                Op::Read => perm.perm_type == PERM_READ || perm.perm_type == PERM_READWRITE,
                Op::Write => perm.perm_type == PERM_WRITE || perm.perm_type == PERM_READWRITE,
            })
            .map(|perm| (perm.key.as_slice(), perm.range_end.as_slice()))
            .collect()
    };
    for need in needs {
        match need {
            Need::User => {}
            Need::Admin => return Err(permission_denied()),
            Need::Range(op, key, range_end) => {
                if touches_reserved(key, range_end) || !covered(&granted(*op), key, range_end) {
                    return Err(permission_denied());
                }
            }
        }
    }
    Ok(Caller::User(user.to_string()))
}

/// As etcd with client certificate authentication: a request without a token is made as the user
/// its client certificate's common name names, at the current auth revision; a name that is no
/// user may do nothing, and without a certificate the request has no user at all.
pub(super) fn permitted_by_certificate(
    state: &AuthState,
    common_name: Option<&str>,
    needs: &[Need],
) -> Result<Caller, Status> {
    let Some(user) = common_name else {
        return Err(invalid_argument(USER_EMPTY));
    };
    if !state.users.contains_key(user) {
        return Err(permission_denied());
    }
    permitted(state, user, needs)
}

/// A write into the reserved prefix is refused for everyone: the state changes only through the
/// Auth service, which keeps its rules.
pub(super) fn refuse_reserved_writes(needs: &[Need]) -> Result<(), Status> {
    for need in needs {
        if let Need::Range(Op::Write, key, range_end) = need {
            if touches_reserved(key, range_end) {
                return Err(permission_denied());
            }
        }
    }
    Ok(())
}

type HmacSha256 = Hmac<Sha256>;

fn token_mac(key_hex: &str, body: &str) -> Option<HmacSha256> {
    let key = hex::decode(key_hex).ok()?;
    let mut mac = HmacSha256::new_from_slice(&key).ok()?;
    mac.update(body.as_bytes());
    Some(mac)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// A token for `user` at the state's revision, valid for [`TOKEN_TTL`].
pub(super) fn make_token(state: &AuthState, user: &str) -> Result<String, Status> {
    let name = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(user.as_bytes());
    let body = format!("{name}.{}.{}", state.revision, now_secs() + TOKEN_TTL.as_secs());
    let mac = token_mac(&state.token_key, &body).ok_or_else(|| Status::internal("etcdserver: no token signing key"))?;
    let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    Ok(format!("{body}.{tag}"))
}

/// What a token that checked out says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TokenClaims {
    pub user: String,
    pub revision: u64,
}

/// Check a token's form, signature and expiry (not its revision: the caller compares it with the
/// state's). Anything wrong is etcd's "invalid auth token".
pub(super) fn check_token(state: &AuthState, token: &str) -> Result<TokenClaims, Status> {
    if token.len() > 4 * MAX_NAME_BYTES + 128 {
        return Err(invalid_token());
    }
    let (body, tag) = token.rsplit_once('.').ok_or_else(invalid_token)?;
    let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| invalid_token())?;
    let mac = token_mac(&state.token_key, body).ok_or_else(invalid_token)?;
    mac.verify_slice(&tag).map_err(|_| invalid_token())?;
    let mut parts = body.split('.');
    let (Some(name), Some(revision), Some(expiry), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid_token());
    };
    let user = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(name)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(invalid_token)?;
    let revision: u64 = revision.parse().map_err(|_| invalid_token())?;
    let expiry: u64 = expiry.parse().map_err(|_| invalid_token())?;
    if expiry <= now_secs() {
        return Err(invalid_token());
    }
    Ok(TokenClaims { user, revision })
}

/// Who a request says it comes from: the token etcd clients send in the `token` metadata (newer
/// clients and gateways: `authorization`), and the common name of the client certificate the
/// connection presented (TLS with `KUBOARD_ETCD_API_CLIENT_CA`). Its `Debug` shows whether a token
/// came, never the token.
#[derive(Clone)]
pub(super) struct Credentials {
    /// `Err`: a token that is not text, which is a malformed token.
    token: Result<Option<String>, ()>,
    common_name: Option<String>,
    /// The client's address, for the log.
    pub peer: Option<SocketAddr>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("token", &matches!(self.token, Ok(Some(_))))
            .field("common_name", &self.common_name)
            .field("peer", &self.peer)
            .finish()
    }
}

impl Credentials {
    pub fn new(metadata: &MetadataMap, extensions: &tonic::Extensions) -> Credentials {
        let mut token = Ok(None);
        for name in ["token", "authorization"] {
            if let Some(value) = metadata.get(name) {
                token = value
                    .to_str()
                    .map(|text| Some(text.trim_start_matches("Bearer ").to_string()))
                    .map_err(|_| ());
                break;
            }
        }
        let client = extensions.get::<ClientInfo>();
        Credentials {
            token,
            common_name: client.and_then(|client| client.common_name.clone()),
            peer: client.and_then(|client| client.tcp.remote_addr()),
        }
    }

    pub fn of<T>(request: &tonic::Request<T>) -> Credentials {
        Credentials::new(request.metadata(), request.extensions())
    }
}

/// The parsed state of one mod revision of [`STATE_KEY`], shared by every check.
#[derive(Default)]
pub(super) struct AuthCache {
    current: Mutex<Option<(i64, Arc<AuthState>)>>,
}

/// The state as read, with the mod revision to compare-and-swap on (0: the key does not exist).
pub(super) struct ReadState {
    pub mod_revision: i64,
    pub state: Arc<AuthState>,
    pub header: ResponseHeader,
}

impl AuthCache {
    /// Read the state key (`Serializable`: this member's applied state; `Linearizable`: the
    /// group's latest), parsing it only when it changed.
    pub async fn read<S: Store>(&self, store: &S, consistency: ReadConsistency) -> Result<ReadState, Status> {
        let request = RangeRequest {
            key: STATE_KEY.to_vec(),
            consistency,
            ..Default::default()
        };
        let response = store.range(request).await.map_err(|e| status_of(&e))?;
        let header = response.header;
        let Some(kv) = response.kvs.into_iter().next() else {
            return Ok(ReadState {
                mod_revision: 0,
                state: Arc::new(AuthState::default()),
                header,
            });
        };
        if let Ok(cached) = self.current.lock() {
            if let Some((mod_revision, state)) = cached.as_ref() {
                if *mod_revision == kv.mod_revision {
                    return Ok(ReadState {
                        mod_revision: kv.mod_revision,
                        state: state.clone(),
                        header,
                    });
                }
            }
        }
        let state: AuthState = serde_json::from_slice(&kv.value).map_err(|error| {
            // Only the Auth service writes the key; the text of the state never reaches the log.
            tracing::error!(%error, "the etcd API auth state in the store cannot be read; every request is refused");
            Status::internal("etcdserver: the auth state cannot be read (see the kuboard server log)")
        })?;
        let state = Arc::new(state);
        if let Ok(mut cached) = self.current.lock() {
            *cached = Some((kv.mod_revision, state.clone()));
        }
        Ok(ReadState {
            mod_revision: kv.mod_revision,
            state,
            header,
        })
    }

    /// Apply `change` to the latest state and store it with the next auth revision, retrying when
    /// another change landed in between. `change` may run more than once; it answers whether it
    /// changed anything (nothing is written when not). Returns the header of the write.
    pub async fn change<S, F>(&self, store: &S, change: F) -> Result<ResponseHeader, Status>
    where
        S: Store,
        F: Fn(&mut AuthState) -> Result<bool, Status>,
    {
        for _ in 0..CHANGE_ATTEMPTS {
            let read = self.read(store, ReadConsistency::Linearizable).await?;
            let mut state = (*read.state).clone();
            if state.token_key.is_empty() {
                state.token_key = new_token_key();
            }
            if !change(&mut state)? {
                return Ok(read.header);
            }
            state.revision += 1;
            let value = serde_json::to_vec(&state).map_err(|error| Status::internal(error.to_string()))?;
            let put = TxnOp::Put(PutRequest {
                key: STATE_KEY.to_vec(),
                value,
                lease: 0,
                prev_kv: false,
            });
            let txn = guarded(put, read.mod_revision);
            let response = store.txn(txn).await.map_err(|e| status_of(&e))?;
            if response.succeeded {
                // Bring this member up to the write, so that its next checks see it.
                self.read(store, ReadConsistency::Linearizable).await?;
                return Ok(response.header);
            }
        }
        Err(auth_state_changing())
    }

    /// Check the caller of a request against `needs`, with the auth state read at `consistency`:
    /// linearizable for every request but serializable reads, so that a change of users, roles
    /// or the enabled flag holds on every replica from the moment it was acknowledged (the cost
    /// is one quorum read per request); a serializable read is checked against this member's
    /// applied state, as etcd checks it. The caller is the token's user, or without a token the
    /// client certificate's common name. With auth disabled everything but a write into the
    /// reserved prefix is allowed.
    pub async fn authorize<S: Store>(
        &self,
        store: &S,
        credentials: &Credentials,
        needs: &[Need],
        consistency: ReadConsistency,
    ) -> Result<Caller, Status> {
        self.check(store, credentials, needs, consistency)
            .await
            .map(|(caller, _)| caller)
    }

    /// Check a write against this member's applied auth state (no quorum round trip), answering
    /// the mod revision of [`STATE_KEY`] it was checked at: the caller makes the write conditional
    /// on that key being unchanged ([`guarded`]), so that the check holds at the moment the write
    /// is applied, as etcd checks writes when it applies them. A refusal is confirmed against the
    /// group's latest state first, so that a grant acknowledged through another member holds here
    /// at once.
    pub async fn authorize_write<S: Store>(
        &self,
        store: &S,
        credentials: &Credentials,
        needs: &[Need],
        consistency: ReadConsistency,
    ) -> Result<i64, Status> {
        let checked = match self.check(store, credentials, needs, consistency).await {
            Err(_) if consistency == ReadConsistency::Serializable => {
                self.check(store, credentials, needs, ReadConsistency::Linearizable)
                    .await
            }
            checked => checked,
        };
        checked.map(|(_, mod_revision)| mod_revision)
    }

    /// [`Self::authorize`], with the mod revision of [`STATE_KEY`] the check was made at.
    async fn check<S: Store>(
        &self,
        store: &S,
        credentials: &Credentials,
        needs: &[Need],
        consistency: ReadConsistency,
    ) -> Result<(Caller, i64), Status> {
        refuse_reserved_writes(needs)?;
        let mut read = self.read(store, consistency).await?;
        if !read.state.enabled {
            return Ok((Caller::Anyone, read.mod_revision));
        }
        let token = match &credentials.token {
            Err(()) => return Err(invalid_token()),
            Ok(Some(token)) => token.clone(),
            Ok(None) => {
                return permitted_by_certificate(&read.state, credentials.common_name.as_deref(), needs)
                    .map(|caller| (caller, read.mod_revision))
            }
        };
        let mut claims = check_token(&read.state, &token);
        let ahead = claims
            .as_ref()
            .is_ok_and(|claims| claims.revision > read.state.revision);
        if consistency == ReadConsistency::Serializable && (ahead || claims.is_err()) {
            // Made on a member that is ahead of this one (or with a key this member has not
            // applied yet): catch up once and look again.
            read = self.read(store, ReadConsistency::Linearizable).await?;
            if !read.state.enabled {
                return Ok((Caller::Anyone, read.mod_revision));
            }
            claims = check_token(&read.state, &token);
        }
        let claims = claims?;
        if claims.revision < read.state.revision {
            return Err(invalid_argument(AUTH_OLD_REVISION));
        }
        if claims.revision > read.state.revision {
            return Err(invalid_token());
        }
        permitted(&read.state, &claims.user, needs).map(|caller| (caller, read.mod_revision))
    }
}

/// `op` as a transaction that runs only while [`STATE_KEY`] is still at `mod_revision` (0: absent),
/// the auth state a write was checked against.
pub(super) fn guarded(op: TxnOp, mod_revision: i64) -> TxnRequest {
    TxnRequest {
        compare: vec![Compare::new(
            STATE_KEY.to_vec(),
            CompareResult::Equal,
            CompareTarget::ModRevision(mod_revision),
        )],
        success: vec![op],
        failure: Vec::new(),
    }
}

/// Checks a user name or role name as etcd does, plus a length bound.
pub(super) fn check_name(name: &str, empty: &'static str, what: &str) -> Result<(), Status> {
    if name.is_empty() {
        return Err(invalid_argument(empty));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(invalid_argument(&format!(
            "etcdserver: {what} name is longer than {MAX_NAME_BYTES} bytes"
        )));
    }
    Ok(())
}

/// etcd's rule for a permission's range: a single key, every key from `key` on, or a non-empty
/// range with `key < range_end`; the type one of READ, WRITE, READWRITE.
pub(super) fn check_permission(perm: &Permission) -> Result<(), Status> {
    if !(PERM_READ..=PERM_READWRITE).contains(&perm.perm_type) {
        return Err(invalid_argument(&format!(
            "etcdserver: unknown permission type {}",
            perm.perm_type
        )));
    }
    if perm.key.len() > 64 * 1024 || perm.range_end.len() > 64 * 1024 {
        return Err(invalid_argument(INVALID_AUTH_MGMT));
    }
    let valid = if perm.range_end.is_empty() {
        !perm.key.is_empty()
    } else if perm.range_end == [0] {
        true
    } else {
        perm.key < perm.range_end
    };
    if valid {
        Ok(())
    } else {
        Err(invalid_argument(INVALID_AUTH_MGMT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_with(perms: Vec<Permission>) -> AuthState {
        let mut state = AuthState {
            enabled: true,
            revision: 3,
            token_key: new_token_key(),
            ..Default::default()
        };
        state.roles.insert("app".into(), perms);
        state.roles.insert(ROOT.into(), Vec::new());
        state.users.insert(
            "alice".into(),
            UserRecord {
                password_hash: None,
                roles: ["app".to_string()].into(),
            },
        );
        state.users.insert(
            "root".into(),
            UserRecord {
                password_hash: None,
                roles: [ROOT.to_string()].into(),
            },
        );
        state
    }

    fn perm(perm_type: i32, key: &[u8], range_end: &[u8]) -> Permission {
        Permission {
            perm_type,
            key: key.to_vec(),
            range_end: range_end.to_vec(),
        }
    }

    fn read(key: &[u8], range_end: &[u8]) -> Need {
        Need::Range(Op::Read, key.to_vec(), range_end.to_vec())
    }

    fn write(key: &[u8], range_end: &[u8]) -> Need {
        Need::Range(Op::Write, key.to_vec(), range_end.to_vec())
    }

    fn allowed(state: &AuthState, needs: &[Need]) -> bool {
        match permitted(state, "alice", needs) {
            Ok(_) => true,
            Err(status) => {
                assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
                assert_eq!(status.message(), PERMISSION_DENIED);
                false
            }
        }
    }

    #[test]
    fn a_prefix_grant_covers_its_keys_and_ranges_inside_it_only() {
        let state = state_with(vec![perm(PERM_READWRITE, b"app/", b"app0")]);
        assert!(allowed(&state, &[write(b"app/x", b"")]));
        assert!(allowed(&state, &[read(b"app/", b"app0")]));
        assert!(allowed(&state, &[read(b"app/a", b"app/b")]));
        assert!(!allowed(&state, &[write(b"sessions/x", b"")]));
        assert!(
            !allowed(&state, &[read(b"app/", b"app1")]),
            "a range reaching past the prefix"
        );
        assert!(
            !allowed(&state, &[read(b"app", b"app0")]),
            "a range starting before the prefix"
        );
        assert!(!allowed(&state, &[read(b"app/", &[0])]), "an open-ended range");
        assert!(
            !allowed(&state, &[read(b"app0", b"")]),
            "the prefix's end is outside it"
        );
    }

    #[test]
    fn a_single_key_grant_is_that_key_only() {
        let state = state_with(vec![perm(PERM_READ, b"config", b"")]);
        assert!(allowed(&state, &[read(b"config", b"")]));
        assert!(!allowed(&state, &[write(b"config", b"")]), "read only");
        assert!(!allowed(&state, &[read(b"config0", b"")]));
        assert!(
            !allowed(&state, &[read(b"config", b"configa")]),
            "a range with more keys"
        );
        let mut exact_end = b"config".to_vec();
        exact_end.push(0);
        assert!(
            allowed(&state, &[read(b"config", &exact_end)]),
            "the range holding only that key"
        );
    }

    #[test]
    fn an_open_ended_grant_covers_everything_from_its_key() {
        let state = state_with(vec![perm(PERM_WRITE, b"m", &[0])]);
        assert!(allowed(&state, &[write(b"m", &[0])]));
        assert!(allowed(&state, &[write(b"zzz", b"")]));
        assert!(allowed(&state, &[write(b"n", b"p")]));
        assert!(!allowed(&state, &[write(b"l", b"")]));
        assert!(!allowed(&state, &[read(b"m", b"")]), "write only");
        let everything = state_with(vec![perm(PERM_READWRITE, b"", &[0])]);
        assert!(allowed(&everything, &[read(b"\0", RESERVED_PREFIX)]));
        assert!(allowed(&everything, &[read(b"etcd-api0", &[0])]));
        assert!(allowed(&everything, &[write(b"anything", b"")]));
    }

    #[test]
    fn adjacent_grants_cover_a_range_together_and_a_gap_breaks_it() {
        let joined = state_with(vec![perm(PERM_READ, b"a", b"c"), perm(PERM_READ, b"c", b"e")]);
        assert!(allowed(&joined, &[read(b"b", b"d")]));
        assert!(allowed(&joined, &[read(b"a", b"e")]));
        let gap = state_with(vec![perm(PERM_READ, b"a", b"c"), perm(PERM_READ, b"d", b"e")]);
        assert!(!allowed(&gap, &[read(b"b", b"d")]));
        assert!(allowed(&gap, &[read(b"d", b"")]));
    }

    #[test]
    fn a_txn_needs_every_compare_and_op_granted() {
        let state = state_with(vec![
            perm(PERM_READ, b"app/", b"app0"),
            perm(PERM_WRITE, b"out/", b"out0"),
        ]);
        // Compare on app/x (read), put out/y (write): both granted.
        assert!(allowed(&state, &[read(b"app/x", b""), write(b"out/y", b"")]));
        // One op outside the grants refuses the whole txn.
        assert!(!allowed(
            &state,
            &[read(b"app/x", b""), write(b"out/y", b""), write(b"app/x", b"")]
        ));
        assert!(!allowed(
            &state,
            &[read(b"app/x", b""), read(b"sessions/", b"sessions0")]
        ));
    }

    #[test]
    fn the_reserved_prefix_is_refused_to_users_whatever_they_were_granted_and_to_every_writer() {
        let state = state_with(vec![perm(PERM_READWRITE, b"", &[0])]);
        assert!(!allowed(&state, &[read(STATE_KEY, b"")]));
        assert!(
            !allowed(&state, &[read(b"\0", &[0])]),
            "a range over everything includes it"
        );
        assert!(allowed(&state, &[read(b"a", b"e")]));
        assert_eq!(
            permitted(&state, "root", &[read(STATE_KEY, b"")]).ok(),
            Some(Caller::Root("root".into()))
        );
        assert!(refuse_reserved_writes(&[write(STATE_KEY, b"")]).is_err());
        assert!(refuse_reserved_writes(&[write(b"\0", &[0])]).is_err());
        assert!(refuse_reserved_writes(&[write(b"etcd-api0", b"")]).is_ok());
        assert!(refuse_reserved_writes(&[read(STATE_KEY, b"")]).is_ok());
    }

    #[test]
    fn only_root_passes_admin_and_an_unknown_user_is_an_invalid_token() {
        let state = state_with(Vec::new());
        assert!(!allowed(&state, &[Need::Admin]));
        assert!(allowed(&state, &[Need::User]));
        assert!(permitted(&state, "root", &[Need::Admin]).is_ok());
        let unknown = permitted(&state, "mallory", &[Need::User]).unwrap_err();
        assert_eq!(unknown.message(), INVALID_AUTH_TOKEN);
    }

    #[test]
    fn a_certificate_acts_as_the_user_it_names_and_no_further() {
        let state = state_with(vec![perm(PERM_READWRITE, b"app/", b"app0")]);
        let by_certificate = |name: Option<&str>, needs: &[Need]| permitted_by_certificate(&state, name, needs);
        assert!(by_certificate(Some("alice"), &[write(b"app/x", b"")]).is_ok());
        let outside = by_certificate(Some("alice"), &[write(b"sessions/x", b"")]).unwrap_err();
        assert_eq!(outside.message(), PERMISSION_DENIED);
        let admin = by_certificate(Some("alice"), &[Need::Admin]).unwrap_err();
        assert_eq!(admin.message(), PERMISSION_DENIED);
        assert!(matches!(
            by_certificate(Some("root"), &[Need::Admin]),
            Ok(Caller::Root(user)) if user == "root"
        ));
        // A name that is no user may do nothing, not even what needs no grant.
        let stranger = by_certificate(Some("mallory"), &[Need::User]).unwrap_err();
        assert_eq!(stranger.code(), Code::PermissionDenied);
        // No certificate and no token: no user at all.
        let nobody = by_certificate(None, &[read(b"app/x", b"")]).unwrap_err();
        assert_eq!((nobody.code(), nobody.message()), (Code::InvalidArgument, USER_EMPTY));
    }

    /// A one-member embedded store that has elected itself (its first write went through).
    async fn one_member_store(dir: &std::path::Path) -> kuboard_raft::RaftStore {
        let store = crate::one_member_store::one_member_embedded_store(dir).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while let Err(error) = store.put(PutRequest::new("probe", "1")).await {
            assert!(std::time::Instant::now() < deadline, "the store took no write: {error}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        store
    }

    fn with_token(token: &str) -> Credentials {
        let mut metadata = MetadataMap::new();
        metadata.insert("token", token.parse().expect("a token is ASCII"));
        Credentials::new(&metadata, &tonic::Extensions::default())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_checked_against_an_older_auth_state_is_not_applied() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = one_member_store(dir.path()).await;
        let cache = AuthCache::default();
        let granted = AuthState {
            enabled: true,
            ..state_with(vec![perm(PERM_READWRITE, b"app/", b"app0")])
        };
        cache
            .change(&store, |state| {
                *state = granted.clone();
                Ok(true)
            })
            .await
            .expect("enable auth");
        let read = cache.read(&store, ReadConsistency::Linearizable).await.expect("read");
        let alice = with_token(&make_token(&read.state, "alice").expect("a token"));
        let needs = [write(b"app/x", b"")];
        let checked_at = cache
            .authorize_write(&store, &alice, &needs, ReadConsistency::Serializable)
            .await
            .expect("alice may write app/x");
        assert_eq!(checked_at, read.mod_revision);

        // alice loses the role between the check and the write: the write is not applied.
        cache
            .change(&store, |state| {
                Ok(state
                    .users
                    .get_mut("alice")
                    .is_some_and(|alice| alice.roles.remove("app")))
            })
            .await
            .expect("revoke alice's role");
        let put = TxnOp::Put(PutRequest::new("app/x", "late"));
        let late = store.txn(guarded(put.clone(), checked_at)).await.expect("txn");
        assert!(!late.succeeded, "a write checked against an older state was applied");
        let written = store.range(RangeRequest::key("app/x")).await.expect("read app/x");
        assert!(written.kvs.is_empty(), "{:?}", written.kvs);
        // Checked again, it is refused: the token is older than the state.
        let again = cache
            .authorize_write(&store, &alice, &needs, ReadConsistency::Serializable)
            .await
            .unwrap_err();
        assert_eq!(again.message(), AUTH_OLD_REVISION);

        // Checked against the current state, a permitted write goes through.
        let read = cache.read(&store, ReadConsistency::Linearizable).await.expect("read");
        let root = with_token(&make_token(&read.state, "root").expect("a token"));
        let checked_at = cache
            .authorize_write(&store, &root, &needs, ReadConsistency::Serializable)
            .await
            .expect("root may write app/x");
        let applied = store.txn(guarded(put, checked_at)).await.expect("txn");
        assert!(applied.succeeded);
        let written = store.range(RangeRequest::key("app/x")).await.expect("read app/x");
        assert_eq!(written.kvs.len(), 1);
        store.shutdown().await.expect("shut the store down");
    }

    #[test]
    fn tokens_check_out_only_unaltered_and_with_the_key_they_were_made_with() {
        let state = state_with(Vec::new());
        let token = make_token(&state, "alice").expect("a token");
        assert_eq!(
            check_token(&state, &token).ok(),
            Some(TokenClaims {
                user: "alice".into(),
                revision: 3
            })
        );
        let other_key = AuthState {
            token_key: new_token_key(),
            ..state.clone()
        };
        assert_eq!(
            check_token(&other_key, &token).unwrap_err().message(),
            INVALID_AUTH_TOKEN
        );
        // Another user's name, a later revision or a later expiry under the same tag.
        let (body, tag) = token.rsplit_once('.').expect("a tag");
        let mut parts: Vec<String> = body.split('.').map(str::to_string).collect();
        parts[0] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("root");
        let forged = format!("{}.{tag}", parts.join("."));
        assert_eq!(check_token(&state, &forged).unwrap_err().message(), INVALID_AUTH_TOKEN);
        for malformed in ["", ".", "a.b.c.d", "a.b.c.d.e", "....", &"x".repeat(100_000)] {
            assert_eq!(
                check_token(&state, malformed).unwrap_err().message(),
                INVALID_AUTH_TOKEN,
                "{malformed:.20}"
            );
        }
        // An expired token with a valid tag.
        let name = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("alice");
        let body = format!("{name}.3.{}", now_secs() - 1);
        let mac = token_mac(&state.token_key, &body).expect("a key");
        let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        assert_eq!(
            check_token(&state, &format!("{body}.{tag}")).unwrap_err().message(),
            INVALID_AUTH_TOKEN
        );
    }

    #[test]
    fn permissions_and_names_are_checked_as_etcd_does() {
        assert!(check_permission(&perm(PERM_READ, b"a", b"")).is_ok());
        assert!(check_permission(&perm(PERM_READ, b"", &[0])).is_ok());
        assert!(check_permission(&perm(PERM_READ, b"a", b"b")).is_ok());
        assert!(check_permission(&perm(PERM_READ, b"b", b"a")).is_err());
        assert!(check_permission(&perm(PERM_READ, b"", b"")).is_err());
        assert_eq!(
            check_permission(&perm(7, b"a", b"")).unwrap_err().message(),
            "etcdserver: unknown permission type 7"
        );
        assert_eq!(check_name("", USER_EMPTY, "user").unwrap_err().message(), USER_EMPTY);
        assert!(check_name(&"u".repeat(MAX_NAME_BYTES + 1), USER_EMPTY, "user").is_err());
        assert!(check_name("alice", USER_EMPTY, "user").is_ok());
    }

    #[test]
    fn the_state_debug_names_no_hash_and_no_key() {
        let mut state = state_with(Vec::new());
        state.users.get_mut("alice").expect("alice").password_hash = Some("$argon2id$secret-hash".into());
        let printed = format!("{state:?}");
        assert!(
            !printed.contains("secret-hash") && !printed.contains(&state.token_key),
            "{printed}"
        );
    }
}
