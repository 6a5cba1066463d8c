//! Workload: registers kept as ConfigMaps of a cluster the members reach only through the agent.
//!
//! The cluster has an agent site ([`crate::system::ClusterFeatures::agent_site`]): the fake
//! apiserver listens on the loopback of a namespace of its own and `kuboard agent` there holds a
//! tunnel to every member. Clients, each bound to one member, read, write and compare-and-set small
//! integers kept in `data.value` of ConfigMaps in `default`, through that member's Kubernetes proxy
//! (`/k8s-api/{cluster}/api/v1/namespaces/default/configmaps/…`) as the administrator:
//!
//! - read: `GET`; 404 reads "no value".
//! - write: `PUT` without a `resourceVersion` (an unconditional update); when the ConfigMap does not
//!   exist yet (404), `POST` it; when a concurrent write created it first (409 `AlreadyExists`),
//!   `PUT` again. Each step before the last changed nothing, so the write has one effect at most.
//! - compare-and-set: `GET`, then, when the value is the expected one, `PUT` with the
//!   `resourceVersion` read: the apiserver applies it only if the object has not changed since, and
//!   answers 409 `Conflict` otherwise (a failed CAS, definite).
//!
//! What an answer proves about a change (a `PUT` or `POST`):
//!
//! - 2xx: done. 4xx (409 included): refused, nothing changed.
//! - 503: nothing changed. The proxy answers 503 before it forwards (the session or the store could
//!   not be read) or when no apiserver connection could be opened (`PoolError::Unreachable`, which a
//!   request that is not GET/HEAD/OPTIONS reaches only after connect failures: through a tunnel, the
//!   request is written only after the stream, the agent's dial and the TLS handshake all succeeded).
//!   The fake apiserver never answers 503. [`Classify::UnavailableIndeterminate`] treats it as
//!   indeterminate instead, for when that reasoning is doubted; the runs so far used the default, so
//!   they also test the claim (a 503 whose change took effect would show as an anomaly).
//! - 502 (`the apiserver … failed while answering`: the request may have been written), any other
//!   5xx, a timeout or a connection lost after sending: indeterminate.
//! - A connection that could not be opened to the member: nothing was sent, nothing changed.
//!
//! A read that got no usable answer is a failure (it changed nothing). The history is a register
//! history ([`RegisterOp`]) checked by the same linearizability checker as the etcd registers.
//!
//! [`CasMode::Blind`] is unsafe on purpose: its compare-and-set reads, waits a little and then
//! writes *without* the `resourceVersion`, so a write that lands in between is overwritten; the
//! checker must refuse such histories (`jepsen/tests/t18_agent_register.rs` runs it).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use super::register::{draw_call, join_clients, take_sorted, Progress};
use super::ERROR_BACKOFF;
use crate::history::{Outcome, RegisterCall, RegisterOp};
use crate::system::AGENT_CLUSTER;

/// How compare-and-set is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum CasMode {
    /// `PUT` with the `resourceVersion` read (the safe default).
    ResourceVersion,
    /// Unsafe on purpose: `PUT` without it, [`BLIND_CAS_GAP`] after the read.
    Blind,
}

/// How a 503 of a change counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Classify {
    /// 503 proves nothing changed (see the module's documentation).
    UnavailableDefinite,
    /// 503 of a change is indeterminate.
    UnavailableIndeterminate,
}

/// The pause between the read and the write of a blind compare-and-set, which widens the window
/// in which another write is lost.
pub const BLIND_CAS_GAP: Duration = Duration::from_millis(30);

#[derive(Debug, Clone)]
pub struct AgentRegisterOptions {
    pub clients: usize,
    /// ConfigMaps in use at any time.
    pub keys_at_once: usize,
    /// Operations per ConfigMap before the clients move to fresh ones.
    pub ops_per_key: usize,
    /// How long a client waits for a whole operation before its outcome is indeterminate.
    pub op_timeout: Duration,
    pub cas_mode: CasMode,
    pub classify: Classify,
}

impl Default for AgentRegisterOptions {
    fn default() -> Self {
        AgentRegisterOptions {
            clients: 4,
            keys_at_once: 3,
            ops_per_key: 100,
            // A tunnel cut off is detected by the keepalive within 10 s; a request on it waits.
            op_timeout: Duration::from_secs(3),
            cas_mode: CasMode::ResourceVersion,
            classify: Classify::UnavailableDefinite,
        }
    }
}

/// Shared by the clients of one run.
struct Shared {
    options: AgentRegisterOptions,
    web_urls: Vec<String>,
    node_names: Vec<String>,
    token: String,
    started: Instant,
    deadline: Instant,
    stop: AtomicBool,
    next_op: AtomicUsize,
    history: Mutex<Vec<RegisterOp>>,
    progress: Arc<Progress>,
}

/// Run the clients until `deadline` and return the history sorted by invoke time. `web_urls[i]` is
/// member `node_names[i]`'s web address; `token` an administrator's bearer token.
pub async fn run(
    options: AgentRegisterOptions,
    web_urls: Vec<String>,
    node_names: Vec<String>,
    token: String,
    started: Instant,
    deadline: Instant,
    progress: Arc<Progress>,
) -> Vec<RegisterOp> {
    let shared = Arc::new(Shared {
        options: options.clone(),
        web_urls,
        node_names,
        token,
        started,
        deadline,
        stop: AtomicBool::new(false),
        next_op: AtomicUsize::new(0),
        history: Mutex::new(Vec::new()),
        progress,
    });
    // Owned by this future: if the run is abandoned (Ctrl-C), dropping it aborts every client.
    let mut clients = JoinSet::new();
    for worker in 0..options.clients.max(1) {
        clients.spawn(client_loop(Arc::clone(&shared), worker));
    }
    join_clients(clients, &shared.stop, "agent-register").await;
    take_sorted(&shared.history)
}

async fn client_loop(shared: Arc<Shared>, worker: usize) {
    let options = &shared.options;
    let node = worker % shared.web_urls.len().max(1);
    let client = match reqwest::Client::builder()
        .connect_timeout(options.op_timeout)
        .pool_max_idle_per_host(2)
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!("build an HTTP client: {error}");
            return;
        }
    };
    let mut process = worker as u64;
    // Bounded by the deadline: every iteration takes at most one operation timeout (and a backoff).
    while Instant::now() < shared.deadline && !shared.stop.load(Ordering::Relaxed) {
        let op_number = shared.next_op.fetch_add(1, Ordering::Relaxed);
        let group = op_number / (options.ops_per_key.max(1) * options.keys_at_once.max(1));
        let (key, call) = {
            let mut rng = rand::thread_rng();
            let key_index = group * options.keys_at_once.max(1) + rng.gen_range(0..options.keys_at_once.max(1));
            (format!("jepsen-agent-register-{key_index}"), draw_call(&mut rng))
        };
        let invoke_ns = shared.started.elapsed().as_nanos() as u64;
        let (call, outcome, error) = {
            let target = Target {
                client: &client,
                base: format!(
                    "{}/k8s-api/{AGENT_CLUSTER}/api/v1/namespaces/default/configmaps",
                    shared.web_urls[node]
                ),
                token: &shared.token,
                name: &key,
            };
            match tokio::time::timeout(options.op_timeout, perform(&target, call, options)).await {
                Ok(done) => done,
                Err(_) => {
                    let outcome = match call {
                        RegisterCall::Read { .. } => Outcome::Fail,
                        _ => Outcome::Info,
                    };
                    (
                        call,
                        outcome,
                        Some(format!("no answer within {:?}", options.op_timeout)),
                    )
                }
            }
        };
        let complete_ns = shared.started.elapsed().as_nanos() as u64;
        shared.progress.count(outcome);
        // A compare-and-set that lost a race (409) is no sign of trouble; anything else that went
        // wrong makes the client pause so that a member that is down does not flood the history.
        let failed = error.as_deref().is_some_and(|error| !error.starts_with("409 "));
        shared
            .history
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(RegisterOp {
                index: op_number,
                process,
                node: shared.node_names[node].clone(),
                key,
                call,
                outcome,
                invoke_ns,
                complete_ns,
                error,
            });
        if outcome == Outcome::Info {
            // The indeterminate operation stays pending forever; the client goes on as a new process.
            process += options.clients.max(1) as u64;
        }
        if failed {
            tokio::time::sleep(ERROR_BACKOFF).await;
        }
    }
}

/// One ConfigMap through one member's proxy.
struct Target<'a> {
    client: &'a reqwest::Client,
    /// `http://member/k8s-api/{cluster}/api/v1/namespaces/default/configmaps`.
    base: String,
    token: &'a str,
    name: &'a str,
}

/// What one HTTP exchange came to.
#[derive(Debug)]
pub(crate) enum Answer {
    /// A status and the body (`Value::Null` when it is not JSON).
    Status(u16, Value),
    /// The connection to the member could not be opened: nothing was sent.
    NotSent(String),
    /// Sent (or possibly sent), and no complete answer came back.
    Lost(String),
}

impl Target<'_> {
    async fn send(&self, method: Method, with_name: bool, body: Option<Value>) -> Answer {
        let url = if with_name {
            format!("{}/{}", self.base, self.name)
        } else {
            self.base.clone()
        };
        let mut request = self.client.request(method, url).bearer_auth(self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.bytes().await {
                    Ok(bytes) => Answer::Status(status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)),
                    Err(error) => Answer::Lost(format!("{status}, then the body was lost: {error}")),
                }
            }
            Err(error) if error.is_connect() => Answer::NotSent(format!("connect: {error}")),
            Err(error) => Answer::Lost(error.to_string()),
        }
    }

    fn config_map(&self, value: i64, resource_version: Option<&str>) -> Value {
        let mut metadata = json!({ "name": self.name, "namespace": "default" });
        if let Some(version) = resource_version {
            metadata["resourceVersion"] = json!(version);
        }
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata,
            "data": { "value": value.to_string() },
        })
    }
}

/// The outcome of a change from its answer (see the module's documentation); `None` for a 2xx.
pub(crate) fn change_outcome(answer: &Answer, classify: Classify) -> Option<Outcome> {
    match answer {
        Answer::Status(status, _) if (200..300).contains(status) => None,
        Answer::Status(503, _) if classify == Classify::UnavailableDefinite => Some(Outcome::Fail),
        Answer::Status(status, _) if *status >= 500 => Some(Outcome::Info),
        Answer::Status(_, _) | Answer::NotSent(_) => Some(Outcome::Fail),
        Answer::Lost(_) => Some(Outcome::Info),
    }
}

/// `503 ServiceUnavailable: message` for the history.
pub(crate) fn describe(answer: &Answer) -> String {
    match answer {
        Answer::Status(status, body) => format!(
            "{status} {}: {}",
            body["reason"].as_str().unwrap_or(""),
            body["message"].as_str().unwrap_or("")
        ),
        Answer::NotSent(error) => format!("not sent: {error}"),
        Answer::Lost(error) => format!("lost: {error}"),
    }
}

/// The register value in a ConfigMap.
fn value_of(config_map: &Value) -> Result<i64, String> {
    config_map["data"]["value"]
        .as_str()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| format!("the ConfigMap holds no integer value: {}", config_map["data"]))
}

/// A read's result: the value (`None`: no ConfigMap) and its `resourceVersion`, or why it failed.
async fn read(target: &Target<'_>) -> Result<(Option<i64>, Option<String>), String> {
    match target.send(Method::GET, true, None).await {
        Answer::Status(200, body) => {
            let value = value_of(&body)?;
            let version = body["metadata"]["resourceVersion"].as_str().map(str::to_string);
            Ok((Some(value), version))
        }
        Answer::Status(404, body) if body["reason"] == "NotFound" && body["details"]["name"] == json!(target.name) => {
            Ok((None, None))
        }
        other => Err(describe(&other)),
    }
}

/// Perform `call`; returns the call as observed (a read's value), its outcome and the reason when it
/// is not `ok`.
async fn perform(
    target: &Target<'_>,
    call: RegisterCall,
    options: &AgentRegisterOptions,
) -> (RegisterCall, Outcome, Option<String>) {
    match call {
        RegisterCall::Read { .. } => match read(target).await {
            Ok((value, _)) => (RegisterCall::Read { value }, Outcome::Ok, None),
            Err(error) => (call, Outcome::Fail, Some(error)),
        },
        RegisterCall::Write { value } => {
            let (outcome, error) = write(target, value, options.classify).await;
            (call, outcome, error)
        }
        RegisterCall::Cas { from, to } => {
            let (version, found) = match read(target).await {
                Ok((found, version)) => (version, found),
                // Nothing was written yet.
                Err(error) => return (call, Outcome::Fail, Some(format!("read: {error}"))),
            };
            if found != Some(from) {
                // A comparison that fails is an answer, not an error (as in the etcd registers).
                return (call, Outcome::Fail, None);
            }
            let version = match options.cas_mode {
                // Without it the PUT would be unconditional: nothing is sent.
                CasMode::ResourceVersion if version.is_none() => {
                    return (
                        call,
                        Outcome::Fail,
                        Some("the ConfigMap read has no resourceVersion".to_string()),
                    )
                }
                CasMode::ResourceVersion => version,
                CasMode::Blind => {
                    tokio::time::sleep(BLIND_CAS_GAP).await;
                    None
                }
            };
            let answer = target
                .send(Method::PUT, true, Some(target.config_map(to, version.as_deref())))
                .await;
            match change_outcome(&answer, options.classify) {
                None => (call, Outcome::Ok, None),
                Some(outcome) => (call, outcome, Some(describe(&answer))),
            }
        }
    }
}

/// An unconditional write, creating the ConfigMap when it does not exist.
async fn write(target: &Target<'_>, value: i64, classify: Classify) -> (Outcome, Option<String>) {
    let body = target.config_map(value, None);
    // Bounded: a write ends at its third attempt (nothing deletes ConfigMaps, so a PUT after a 409
    // on create finds the object).
    for _ in 0..3 {
        let answer = target.send(Method::PUT, true, Some(body.clone())).await;
        let missing = matches!(&answer, Answer::Status(404, body) if body["reason"] == "NotFound"
            && body["details"]["name"] == json!(target.name));
        if !missing {
            return match change_outcome(&answer, classify) {
                None => (Outcome::Ok, None),
                Some(outcome) => (outcome, Some(describe(&answer))),
            };
        }
        let answer = target.send(Method::POST, false, Some(body.clone())).await;
        let exists = matches!(&answer, Answer::Status(409, body) if body["reason"] == "AlreadyExists");
        if !exists {
            return match change_outcome(&answer, classify) {
                None => (Outcome::Ok, None),
                Some(outcome) => (outcome, Some(describe(&answer))),
            };
        }
    }
    (
        Outcome::Fail,
        Some("the ConfigMap was missing for the update and present for the create, three times".to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::{check_register_history, SearchLimits};

    fn status(code: u16) -> Answer {
        Answer::Status(code, json!({"reason": "x", "message": "y"}))
    }

    #[test]
    fn what_an_answer_proves_about_a_change() {
        let definite = Classify::UnavailableDefinite;
        assert_eq!(change_outcome(&status(200), definite), None);
        assert_eq!(change_outcome(&status(201), definite), None);
        assert_eq!(change_outcome(&status(409), definite), Some(Outcome::Fail));
        assert_eq!(change_outcome(&status(403), definite), Some(Outcome::Fail));
        assert_eq!(change_outcome(&status(503), definite), Some(Outcome::Fail));
        assert_eq!(change_outcome(&status(502), definite), Some(Outcome::Info));
        assert_eq!(change_outcome(&status(500), definite), Some(Outcome::Info));
        assert_eq!(change_outcome(&status(504), definite), Some(Outcome::Info));
        assert_eq!(
            change_outcome(&Answer::NotSent("refused".into()), definite),
            Some(Outcome::Fail)
        );
        assert_eq!(
            change_outcome(&Answer::Lost("reset".into()), definite),
            Some(Outcome::Info)
        );
        let doubtful = Classify::UnavailableIndeterminate;
        assert_eq!(change_outcome(&status(503), doubtful), Some(Outcome::Info));
        assert_eq!(change_outcome(&status(409), doubtful), Some(Outcome::Fail));
        assert!(describe(&status(503)).starts_with("503 x: y"));
    }

    fn op(index: usize, process: u64, call: RegisterCall, outcome: Outcome, span: (u64, u64)) -> RegisterOp {
        RegisterOp {
            index,
            process,
            node: "n1".into(),
            key: "jepsen-agent-register-0".into(),
            call,
            outcome,
            invoke_ns: span.0,
            complete_ns: span.1,
            error: None,
        }
    }

    /// The histories this workload records, with the outcomes its rules give: the checker accepts
    /// what a correct proxy can produce and refuses what a wrong one (a write replayed after a 503,
    /// a lost update of a blind compare-and-set) does.
    #[test]
    fn the_checker_refuses_wrong_histories_of_this_workload() {
        let limits = SearchLimits::default();
        let write = |value| RegisterCall::Write { value };
        let read = |value| RegisterCall::Read { value: Some(value) };
        let cas = |from, to| RegisterCall::Cas { from, to };
        let fail_503 = change_outcome(&status(503), Classify::UnavailableDefinite).expect("an outcome");
        let lost = change_outcome(&Answer::Lost("reset".into()), Classify::UnavailableDefinite).expect("an outcome");
        // A write answered 503 is a failure: a later read of its value cannot be explained.
        let replayed = vec![
            op(0, 0, write(1), Outcome::Ok, (0, 10)),
            op(1, 1, write(2), fail_503, (20, 30)),
            op(2, 0, read(2), Outcome::Ok, (40, 50)),
        ];
        let verdict = check_register_history(&replayed, limits);
        assert!(verdict.anomaly && !verdict.valid, "{verdict:?}");
        // The same write lost after sending is indeterminate: the read may have seen it.
        let mut indeterminate = replayed.clone();
        indeterminate[1].outcome = lost;
        let verdict = check_register_history(&indeterminate, limits);
        assert!(verdict.valid, "{verdict:?}");
        // A compare-and-set answered 409 changed nothing, so a read of its new value is refused.
        let conflicted = vec![
            op(0, 0, write(1), Outcome::Ok, (0, 10)),
            op(1, 1, cas(1, 3), Outcome::Fail, (20, 30)),
            op(2, 0, read(3), Outcome::Ok, (40, 50)),
        ];
        assert!(check_register_history(&conflicted, limits).anomaly);
        // A blind compare-and-set overwrote a write that came between its read and its write: both
        // acknowledged, in this order, then a read of the CAS's value is not linearizable.
        let lost_update = vec![
            op(0, 0, write(1), Outcome::Ok, (0, 10)),
            op(1, 1, cas(1, 3), Outcome::Ok, (20, 60)),
            op(2, 2, write(2), Outcome::Ok, (30, 40)),
            op(3, 0, read(2), Outcome::Ok, (45, 50)),
            op(4, 0, read(3), Outcome::Ok, (70, 80)),
        ];
        let verdict = check_register_history(&lost_update, limits);
        assert!(verdict.anomaly, "{verdict:?}");
        // With the CAS applied before the write, as the resourceVersion makes it, all is well.
        let mut ordered = lost_update.clone();
        ordered[4].call = read(2);
        assert!(check_register_history(&ordered, limits).valid);
    }
}
