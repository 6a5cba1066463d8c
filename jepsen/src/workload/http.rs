//! Workload (d): the REST API of the replicas through a round-robin balancer.
//!
//! The administrator logs in once (changing the first-start password when the replica asks for it);
//! then clients keep working with that one bearer token through a client-side round-robin balancer
//! that, like a TCP load balancer, skips a member whose connection is refused or does not open. They
//! create users and read each acknowledged creation back through the next member, and ask who they
//! are. At the end, when everything is healed, the session must still be valid on every member and
//! every acknowledged user must be in the list.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use super::{Progress, Recorder, ERROR_BACKOFF, FINAL_READ_WITHIN};
use crate::history::{Op, Outcome};
// The password the suite gives `admin`: the workload changes the first-start password to it, and logs
// in with it when the cluster has set it already.
use crate::system::ADMIN_PASSWORD;

/// The first-start password of `admin` (the members are started without `KUBOARD_ADMIN_DEFAULT_PASSWORD`).
pub const DEFAULT_ADMIN_PASSWORD: &str = "Kuboard123";
/// The prefix of the users the workload creates.
const USER_PREFIX: &str = "jepsen-u";
/// How long a TCP connection to a member may take before the balancer tries the next one.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);

#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub clients: usize,
    /// Longer than the etcd workloads' timeout: a creation hashes a password.
    pub op_timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            clients: 3,
            op_timeout: Duration::from_millis(3000),
        }
    }
}

/// Where a request went and how it ended, before it is judged.
pub(crate) enum Reply {
    /// A member answered with this status and body.
    Answered {
        member: usize,
        status: StatusCode,
        body: Value,
    },
    /// No member accepted a connection.
    Unreachable(String),
    /// The request was sent to `member` but no answer came (a timeout, a reset).
    Lost { member: usize, error: String },
}

/// A plain client-side round robin over the members' web endpoints.
pub(crate) struct Balancer {
    pub urls: Vec<String>,
    pub names: Vec<String>,
    next: AtomicUsize,
    client: reqwest::Client,
}

impl Balancer {
    pub fn new(urls: Vec<String>, names: Vec<String>, timeout: Duration) -> anyhow::Result<Balancer> {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .map_err(|error| anyhow::anyhow!("build the HTTP client: {error}"))?;
        Ok(Balancer {
            urls,
            names,
            next: AtomicUsize::new(0),
            client,
        })
    }

    /// Send through the next member in turn, skipping members that refuse the connection.
    pub async fn send(&self, method: Method, path: &str, token: Option<&str>, body: Option<&Value>) -> Reply {
        self.send_as(method, path, token, body, None).await
    }

    /// [`Self::send`] with a `User-Agent` of the caller's choice (to find the request's audit event).
    pub async fn send_as(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        agent: Option<&str>,
    ) -> Reply {
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        self.send_from(first, method, path, token, body, agent).await
    }

    /// Send to member `first` (modulo the members), or the ones after it when it refuses the
    /// connection.
    pub async fn send_from(
        &self,
        first: usize,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        agent: Option<&str>,
    ) -> Reply {
        let mut refused = Vec::new();
        for offset in 0..self.urls.len() {
            let member = (first + offset) % self.urls.len();
            match self.send_to(member, method.clone(), path, token, body, agent).await {
                Reply::Unreachable(error) => refused.push(format!("{}: {error}", self.names[member])),
                reply => return reply,
            }
        }
        Reply::Unreachable(refused.join("; "))
    }

    /// Send to one member.
    pub async fn send_to(
        &self,
        member: usize,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        agent: Option<&str>,
    ) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.urls[member]));
        if let Some(agent) = agent {
            request = request.header(reqwest::header::USER_AGENT, agent);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                match response.bytes().await {
                    Ok(bytes) => Reply::Answered {
                        member,
                        status,
                        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                    },
                    Err(error) => Reply::Lost {
                        member,
                        error: format!("read the answer: {error}"),
                    },
                }
            }
            Err(error) if error.is_connect() => Reply::Unreachable(error.to_string()),
            Err(error) => Reply::Lost {
                member,
                error: if error.is_timeout() {
                    "no answer in time".to_string()
                } else {
                    error.to_string()
                },
            },
        }
    }
}

/// The HTTP workload's history and end-of-run checks.
#[derive(Debug, Clone)]
pub struct HttpOutcome {
    /// `login`, `change-password`, `create-user`, `get-user`, `me`, `final-me`, `final-list`.
    pub history: Vec<Op>,
    pub logged_in: bool,
    pub password_changed: bool,
    /// Members on which the session answered `auth/me` after healing.
    pub session_valid_on: Vec<String>,
    /// Members on which it did not, with the last answer.
    pub session_invalid_on: Vec<String>,
    /// The users of the final list; `None` when no member answered it.
    pub final_users: Option<BTreeSet<String>>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HttpVerdict {
    pub valid: bool,
    pub logged_in: bool,
    pub password_changed: bool,
    pub creates_attempted: usize,
    pub creates_acknowledged: usize,
    pub creates_indeterminate: usize,
    /// Acknowledged users missing from the final list.
    pub lost_users: Vec<String>,
    /// Indeterminate creations that took effect.
    pub recovered_users: usize,
    /// Reads that started after a creation was acknowledged and did not find the user (404).
    pub stale_reads: Vec<String>,
    /// Requests refused with 401 (the session not recognised) while the session should be valid.
    pub session_rejected: Vec<String>,
    pub session_valid_on: Vec<String>,
    pub session_invalid_on: Vec<String>,
    pub error: Option<String>,
}

impl HttpOutcome {
    pub fn verdict(&self) -> HttpVerdict {
        let creates: Vec<&Op> = self.history.iter().filter(|op| op.f == "create-user").collect();
        let acknowledged: Vec<&str> = creates
            .iter()
            .filter(|op| op.outcome == Outcome::Ok)
            .map(|op| op.key.as_str())
            .collect();
        let indeterminate: Vec<&str> = creates
            .iter()
            .filter(|op| op.outcome == Outcome::Info)
            .map(|op| op.key.as_str())
            .collect();
        let empty = BTreeSet::new();
        let final_users = self.final_users.as_ref().unwrap_or(&empty);
        let lost_users: Vec<String> = acknowledged
            .iter()
            .filter(|user| !final_users.contains(**user))
            .map(|user| user.to_string())
            .collect();
        let recovered_users = indeterminate.iter().filter(|user| final_users.contains(**user)).count();
        let problem = |op: &&Op| {
            format!(
                "{} {} on {}: {}",
                op.f,
                op.key,
                op.node,
                op.error.as_deref().unwrap_or("")
            )
        };
        let stale_reads: Vec<String> = self
            .history
            .iter()
            .filter(|op| op.f == "get-user" && op.error.as_deref().is_some_and(|e| e.starts_with("404")))
            .map(|op| problem(&op))
            .collect();
        let session_rejected: Vec<String> = self
            .history
            .iter()
            // A login refused with the first-start password (the cluster had set the suite's) is not a
            // session problem.
            .filter(|op| op.f != "login" && op.error.as_deref().is_some_and(|e| e.starts_with("401")))
            .map(|op| problem(&op))
            .collect();
        let error = self.error.clone().or_else(|| {
            self.final_users
                .is_none()
                .then(|| "no member answered the final list of users after healing".to_string())
        });
        HttpVerdict {
            valid: self.logged_in
                && lost_users.is_empty()
                && stale_reads.is_empty()
                && session_rejected.is_empty()
                && self.session_invalid_on.is_empty()
                && error.is_none(),
            logged_in: self.logged_in,
            password_changed: self.password_changed,
            creates_attempted: creates.len(),
            creates_acknowledged: acknowledged.len(),
            creates_indeterminate: indeterminate.len(),
            lost_users,
            recovered_users,
            stale_reads,
            session_rejected,
            session_valid_on: self.session_valid_on.clone(),
            session_invalid_on: self.session_invalid_on.clone(),
            error,
        }
    }
}

/// Log in once, then run the clients until `deadline`, then check the session on every member and
/// list the users. `urls[i]` is member `names[i]`'s web endpoint (`http://<address>:<port>`).
pub async fn run(
    options: HttpOptions,
    urls: Vec<String>,
    names: Vec<String>,
    started: Instant,
    deadline: Instant,
    progress: Arc<Progress>,
) -> HttpOutcome {
    let recorder = Arc::new(Recorder::new(started, progress));
    let mut outcome = HttpOutcome {
        history: Vec::new(),
        logged_in: false,
        password_changed: false,
        session_valid_on: Vec::new(),
        session_invalid_on: Vec::new(),
        final_users: None,
        error: None,
    };
    let balancer = match Balancer::new(urls, names, options.op_timeout) {
        Ok(balancer) => Arc::new(balancer),
        Err(error) => {
            outcome.error = Some(format!("{error:#}"));
            return outcome;
        }
    };
    let token = match log_in(&balancer, &recorder, deadline, &mut outcome).await {
        Ok(token) => Arc::new(token),
        Err(error) => {
            outcome.error = Some(error);
            outcome.history = take_history(recorder);
            return outcome;
        }
    };
    let next_user = Arc::new(AtomicU64::new(0));
    let run_tag = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
    let mut clients = JoinSet::new();
    for worker in 0..options.clients.max(1) {
        let (balancer, recorder, token, next_user, run_tag) = (
            Arc::clone(&balancer),
            Arc::clone(&recorder),
            Arc::clone(&token),
            Arc::clone(&next_user),
            run_tag.clone(),
        );
        let clients_count = options.clients.max(1) as u64;
        clients.spawn(async move {
            let mut process = worker as u64;
            // Bounded by the deadline: every iteration takes at most two request timeouts.
            while Instant::now() < deadline {
                let create = rand::thread_rng().gen_bool(0.7);
                let (outcome, created) = if create {
                    let user = format!("{USER_PREFIX}{run_tag}-{}", next_user.fetch_add(1, Ordering::Relaxed));
                    let (outcome, member) = create_user(&balancer, &recorder, process, &token, &user).await;
                    (
                        outcome,
                        member.filter(|_| outcome == Outcome::Ok).map(|member| (user, member)),
                    )
                } else {
                    (who_am_i(&balancer, &recorder, process, &token).await, None)
                };
                if let Some((user, created_on)) = created {
                    // Read back through another member than the one that created it (the next one
                    // that takes a connection).
                    let pending = recorder.invoke(process, "", "get-user", &user, None);
                    let path = format!("/kuboard-api/users/{user}");
                    let reply = balancer
                        .send_from(created_on + 1, Method::GET, &path, Some(&token), None, None)
                        .await;
                    complete(&balancer, &recorder, pending, reply, true);
                }
                if outcome == Outcome::Info {
                    process += clients_count;
                }
                if outcome != Outcome::Ok {
                    tokio::time::sleep(ERROR_BACKOFF).await;
                }
            }
        });
    }
    while let Some(result) = clients.join_next().await {
        if let Err(error) = result {
            tracing::error!("an HTTP client panicked: {error}");
        }
    }
    final_checks(&balancer, &recorder, &token, &mut outcome).await;
    outcome.history = take_history(recorder);
    outcome
}

pub(crate) fn take_history(recorder: Arc<Recorder>) -> Vec<Op> {
    Arc::into_inner(recorder)
        .expect("every client has finished")
        .into_history()
}

/// Record the end of `pending` from `reply`; a read (`read_only`) without an answer changed nothing and
/// is a failure, a change without an answer is indeterminate. Returns the outcome.
pub(crate) fn complete(
    balancer: &Balancer,
    recorder: &Recorder,
    mut pending: super::Pending,
    reply: Reply,
    read_only: bool,
) -> Outcome {
    let (member, outcome, error) = match reply {
        Reply::Answered { member, status, .. } if status.is_success() => (Some(member), Outcome::Ok, None),
        Reply::Answered { member, status, body } => {
            let code = body.get("code").and_then(Value::as_str).unwrap_or("").to_string();
            // A 5xx of a change may come after the change was proposed (a lost quorum, a timeout
            // inside the replica): it may still take effect.
            // A change refused with `audit_unavailable` (strict audit, database down) is refused
            // before it runs: a definite failure, which the strict-audit checker verifies.
            let outcome = if status.is_server_error() && !read_only && code != "audit_unavailable" {
                Outcome::Info
            } else {
                Outcome::Fail
            };
            (Some(member), outcome, Some(format!("{} {code}", status.as_u16())))
        }
        Reply::Unreachable(error) => (None, Outcome::Fail, Some(format!("unreachable: {error}"))),
        Reply::Lost { member, error } => (
            Some(member),
            if read_only { Outcome::Fail } else { Outcome::Info },
            Some(error),
        ),
    };
    if let Some(member) = member {
        pending.node = balancer.names[member].clone();
    }
    recorder.complete(pending, outcome, None, error);
    outcome
}

/// Create `user`; returns the outcome and the member that answered.
async fn create_user(
    balancer: &Balancer,
    recorder: &Recorder,
    process: u64,
    token: &str,
    user: &str,
) -> (Outcome, Option<usize>) {
    let pending = recorder.invoke(process, "", "create-user", user, None);
    let password = format!("Jepsen-{:016x}", rand::random::<u64>());
    let body = json!({ "username": user, "password": password });
    let reply = balancer
        .send(Method::POST, "/kuboard-api/users", Some(token), Some(&body))
        .await;
    let member = match &reply {
        Reply::Answered { member, .. } | Reply::Lost { member, .. } => Some(*member),
        Reply::Unreachable(_) => None,
    };
    (complete(balancer, recorder, pending, reply, false), member)
}

async fn who_am_i(balancer: &Balancer, recorder: &Recorder, process: u64, token: &str) -> Outcome {
    let pending = recorder.invoke(process, "", "me", "admin", None);
    let reply = balancer
        .send(Method::GET, "/kuboard-api/auth/me", Some(token), None)
        .await;
    complete(balancer, recorder, pending, reply, true)
}

/// Log in as `admin` once (retrying only attempts that got no answer), and change the first-start
/// password when the replica demands it. The login uses the first-start password, or the suite's when
/// the cluster has set it already (the membership fault needs it). Returns the bearer token.
pub(crate) async fn log_in(
    balancer: &Balancer,
    recorder: &Recorder,
    deadline: Instant,
    outcome: &mut HttpOutcome,
) -> Result<String, String> {
    let mut password = DEFAULT_ADMIN_PASSWORD;
    let mut answer = None;
    // Bounded by the deadline: every attempt takes at most one request timeout plus the backoff.
    for _ in 0..1000 {
        if Instant::now() >= deadline {
            break;
        }
        let body = json!({ "username": "admin", "password": password });
        let pending = recorder.invoke(0, "", "login", "admin", None);
        let reply = balancer
            .send(Method::POST, "/kuboard-api/auth/login", None, Some(&body))
            .await;
        let body = match &reply {
            Reply::Answered { status, body, .. } if status.is_success() => Some(body.clone()),
            _ => None,
        };
        let definite_refusal = matches!(&reply, Reply::Answered { status, .. } if status.is_client_error());
        complete(balancer, recorder, pending, reply, true);
        if let Some(body) = body {
            answer = Some(body);
            break;
        }
        if definite_refusal {
            if password == ADMIN_PASSWORD {
                return Err("the administrator's login was refused with both passwords".to_string());
            }
            password = ADMIN_PASSWORD;
            continue;
        }
        tokio::time::sleep(ERROR_BACKOFF * 3).await;
    }
    let answer = answer.ok_or_else(|| "no member answered the login before the deadline".to_string())?;
    let token = answer
        .get("token")
        .and_then(Value::as_str)
        .ok_or_else(|| "the login answer has no token".to_string())?
        .to_string();
    outcome.logged_in = true;
    if answer.get("must_change_password").and_then(Value::as_bool) == Some(true) {
        let body = json!({ "current_password": DEFAULT_ADMIN_PASSWORD, "new_password": ADMIN_PASSWORD });
        for _ in 0..1000 {
            if Instant::now() >= deadline {
                break;
            }
            let pending = recorder.invoke(0, "", "change-password", "admin", None);
            let reply = balancer
                .send(Method::POST, "/kuboard-api/auth/password", Some(&token), Some(&body))
                .await;
            let done = matches!(&reply, Reply::Answered { status, .. } if status.is_success());
            let refused = matches!(&reply, Reply::Answered { status, .. } if status.is_client_error());
            complete(balancer, recorder, pending, reply, false);
            if done {
                outcome.password_changed = true;
                break;
            }
            if refused {
                return Err("the first-start password change was refused".to_string());
            }
            tokio::time::sleep(ERROR_BACKOFF * 3).await;
        }
        if !outcome.password_changed {
            return Err("no member took the first-start password change before the deadline".to_string());
        }
    }
    Ok(token)
}

/// After healing: `auth/me` on every member directly, then the list of users through the balancer.
async fn final_checks(balancer: &Balancer, recorder: &Recorder, token: &str, outcome: &mut HttpOutcome) {
    let give_up = Instant::now() + FINAL_READ_WITHIN;
    for member in 0..balancer.urls.len() {
        let mut last = String::new();
        let mut valid = false;
        // Bounded by `give_up`: a member that never answers is reported with its last answer.
        for _ in 0..1000 {
            let pending = recorder.invoke(u64::MAX, &balancer.names[member], "final-me", "admin", None);
            let reply = balancer
                .send_to(member, Method::GET, "/kuboard-api/auth/me", Some(token), None, None)
                .await;
            let status = match &reply {
                Reply::Answered { status, .. } => Some(*status),
                _ => None,
            };
            complete(balancer, recorder, pending, reply, true);
            match status {
                Some(status) if status.is_success() => {
                    valid = true;
                    break;
                }
                // The member answered that the session does not exist: no point in asking again.
                Some(StatusCode::UNAUTHORIZED) => {
                    last = "401".to_string();
                    break;
                }
                Some(status) => last = status.as_u16().to_string(),
                None => last = "no answer".to_string(),
            }
            if Instant::now() >= give_up {
                break;
            }
            tokio::time::sleep(ERROR_BACKOFF * 2).await;
        }
        let name = balancer.names[member].clone();
        if valid {
            outcome.session_valid_on.push(name);
        } else {
            outcome.session_invalid_on.push(format!("{name} ({last})"));
        }
    }
    outcome.final_users = final_user_list(balancer, recorder, token, give_up).await;
}

/// The list of users through the balancer, retried until `give_up`; `None` when no member answered.
pub(crate) async fn final_user_list(
    balancer: &Balancer,
    recorder: &Recorder,
    token: &str,
    give_up: Instant,
) -> Option<BTreeSet<String>> {
    for _ in 0..1000 {
        let pending = recorder.invoke(u64::MAX, "", "final-list", "users", None);
        let reply = balancer
            .send(Method::GET, "/kuboard-api/users", Some(token), None)
            .await;
        let users: Option<BTreeSet<String>> = match &reply {
            Reply::Answered { status, body, .. } if status.is_success() => body.as_array().map(|users| {
                users
                    .iter()
                    .filter_map(|user| user.get("username").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            }),
            _ => None,
        };
        complete(balancer, recorder, pending, reply, true);
        if users.is_some() {
            return users;
        }
        if Instant::now() >= give_up {
            return None;
        }
        tokio::time::sleep(ERROR_BACKOFF * 2).await;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(f: &str, key: &str, outcome: Outcome, error: Option<&str>) -> Op {
        Op {
            index: 0,
            process: 0,
            node: "n1".into(),
            f: f.into(),
            key: key.into(),
            value: None,
            revision: None,
            outcome,
            invoke_ns: 0,
            complete_ns: 1,
            error: error.map(str::to_string),
        }
    }

    fn outcome(history: Vec<Op>, users: &[&str], invalid_on: &[&str]) -> HttpOutcome {
        HttpOutcome {
            history,
            logged_in: true,
            password_changed: true,
            session_valid_on: vec!["n1".into(), "n2".into()],
            session_invalid_on: invalid_on.iter().map(|member| member.to_string()).collect(),
            final_users: Some(users.iter().map(|user| user.to_string()).collect()),
            error: None,
        }
    }

    #[test]
    fn sessions_and_acknowledged_users_must_survive() {
        let history = vec![
            op("create-user", "u1", Outcome::Ok, None),
            op("get-user", "u1", Outcome::Ok, None),
            op("create-user", "u2", Outcome::Info, Some("no answer in time")),
            op("create-user", "u3", Outcome::Fail, Some("503 unavailable")),
            op("me", "admin", Outcome::Fail, Some("503 no_quorum")),
        ];
        let verdict = outcome(history.clone(), &["admin", "u1", "u2"], &[]).verdict();
        assert!(verdict.valid, "{verdict:?}");
        assert_eq!(
            (
                verdict.creates_acknowledged,
                verdict.creates_indeterminate,
                verdict.recovered_users
            ),
            (1, 1, 1)
        );
        assert_eq!(
            outcome(history.clone(), &["admin"], &[]).verdict().lost_users,
            vec!["u1"]
        );
        assert!(
            !outcome(history.clone(), &["admin", "u1"], &["n3 (401)"])
                .verdict()
                .valid
        );

        let mut rejected = history.clone();
        rejected.push(op("login", "admin", Outcome::Fail, Some("401 invalid_credentials")));
        rejected.push(op("me", "admin", Outcome::Fail, Some("401 unauthenticated")));
        assert_eq!(
            outcome(rejected, &["admin", "u1"], &[])
                .verdict()
                .session_rejected
                .len(),
            1
        );

        let mut stale = history;
        stale.push(op("get-user", "u1", Outcome::Fail, Some("404 not_found")));
        assert_eq!(outcome(stale, &["admin", "u1"], &[]).verdict().stale_reads.len(), 1);
    }
}
