//! Workload (a): linearizable registers through the etcd v3 API.
//!
//! Concurrent clients read (linearizable, or in the unsafe mode serializable from a random member),
//! write and compare-and-set small integers on a few keys at a time. After `ops_per_key` operations on
//! each key of a group, the clients move to fresh keys, which keeps every key's history small enough
//! for the linearizability search (Jepsen's "independent" keys).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, Txn, TxnOp};
use rand::Rng;
use serde::Serialize;
use tokio::task::JoinSet;

use crate::history::{Outcome, RegisterCall, RegisterOp};

/// How reads are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ReadMode {
    /// Linearizable reads through the client's own member (the safe default).
    Linearizable,
    /// Unsafe on purpose: serializable reads served by a random member's local state, which may be
    /// stale. The checker must catch it; this mode exists to prove that it does.
    SerializableAnyMember,
}

#[derive(Debug, Clone)]
pub struct RegisterOptions {
    pub clients: usize,
    /// Keys in use at any time.
    pub keys_at_once: usize,
    /// Operations per key before the clients move to fresh keys.
    pub ops_per_key: usize,
    pub read_mode: ReadMode,
    /// How long a client waits for an answer before the outcome is indeterminate.
    pub op_timeout: Duration,
}

impl Default for RegisterOptions {
    fn default() -> Self {
        RegisterOptions {
            clients: 6,
            keys_at_once: 3,
            ops_per_key: 150,
            read_mode: ReadMode::Linearizable,
            op_timeout: Duration::from_millis(1500),
        }
    }
}

/// The pause of a client after an error.
const ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Counts of completed operations, readable while the workload runs.
#[derive(Debug, Default)]
pub struct Progress {
    pub ok: AtomicU64,
    pub fail: AtomicU64,
    pub info: AtomicU64,
}

impl Progress {
    pub fn count(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Ok => &self.ok,
            Outcome::Fail => &self.fail,
            Outcome::Info => &self.info,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Shared by the clients of one run.
struct Shared {
    options: RegisterOptions,
    endpoints: Vec<String>,
    node_names: Vec<String>,
    started: Instant,
    deadline: Instant,
    stop: AtomicBool,
    next_op: AtomicUsize,
    history: Mutex<Vec<RegisterOp>>,
    progress: Arc<Progress>,
}

/// Run the clients until `deadline` (measured on `started`'s clock) and return the history sorted
/// by invoke time. `endpoints[i]` is member `node_names[i]`'s etcd endpoint.
pub async fn run(
    options: RegisterOptions,
    endpoints: Vec<String>,
    node_names: Vec<String>,
    started: Instant,
    deadline: Instant,
    progress: Arc<Progress>,
) -> Vec<RegisterOp> {
    let shared = Arc::new(Shared {
        options: options.clone(),
        endpoints,
        node_names,
        started,
        deadline,
        stop: AtomicBool::new(false),
        next_op: AtomicUsize::new(0),
        history: Mutex::new(Vec::new()),
        progress,
    });
    // Owned by this future: if the run is abandoned (Ctrl-C), dropping it aborts every client.
    let mut clients = JoinSet::new();
    for worker in 0..options.clients {
        clients.spawn(client_loop(Arc::clone(&shared), worker));
    }
    join_clients(clients, &shared.stop, "register").await;
    take_sorted(&shared.history)
}

/// Wait for every client; a client that panicked stops the others (they check `stop`).
pub(crate) async fn join_clients(mut clients: JoinSet<()>, stop: &AtomicBool, workload: &str) {
    while let Some(result) = clients.join_next().await {
        if let Err(error) = result {
            tracing::error!("a {workload} client panicked: {error}");
            stop.store(true, Ordering::Relaxed);
        }
    }
}

/// The recorded operations sorted by invoke time and renumbered in that order.
pub(crate) fn take_sorted(history: &Mutex<Vec<RegisterOp>>) -> Vec<RegisterOp> {
    let mut history = std::mem::take(&mut *history.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
    history.sort_by_key(|op| (op.invoke_ns, op.index));
    for (index, op) in history.iter_mut().enumerate() {
        op.index = index;
    }
    history
}

async fn client_loop(shared: Arc<Shared>, worker: usize) {
    let members = shared.endpoints.len();
    let home = worker % members;
    let mut connections: Vec<Option<Client>> = (0..members).map(|_| None).collect();
    let mut process = worker as u64;
    // Bounded by the deadline: every iteration takes at most one operation timeout.
    while Instant::now() < shared.deadline && !shared.stop.load(Ordering::Relaxed) {
        let op_number = shared.next_op.fetch_add(1, Ordering::Relaxed);
        let options = &shared.options;
        let group = op_number / (options.ops_per_key * options.keys_at_once);
        let (key_index, call, node) = {
            let mut rng = rand::thread_rng();
            let key_index = group * options.keys_at_once + rng.gen_range(0..options.keys_at_once);
            let call = draw_call(&mut rng);
            let node = match (call, options.read_mode) {
                (RegisterCall::Read { .. }, ReadMode::SerializableAnyMember) => rng.gen_range(0..members),
                _ => home,
            };
            (key_index, call, node)
        };
        let key = format!("kuboard-jepsen/register/{key_index}");
        let invoke_ns = shared.started.elapsed().as_nanos() as u64;
        let result = tokio::time::timeout(
            options.op_timeout,
            perform(&shared, &mut connections[node], node, &key, call),
        )
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {:?}", options.op_timeout)));
        let complete_ns = shared.started.elapsed().as_nanos() as u64;
        let failed = result.is_err();
        let (call, outcome, error) = match result {
            Ok((call, outcome)) => (call, outcome, None),
            Err(error) => {
                // The connection may be wedged (a member that was killed or paused): start afresh.
                connections[node] = None;
                // Reads change nothing, so a read without an answer certainly had no effect; neither
                // had a request that never got a connection.
                let outcome = match call {
                    RegisterCall::Read { .. } => Outcome::Fail,
                    _ if never_sent(&error) => Outcome::Fail,
                    _ => Outcome::Info,
                };
                (call, outcome, Some(error))
            }
        };
        shared.progress.count(outcome);
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
            // The indeterminate operation stays pending forever; this client continues as a new
            // process, as a Jepsen client would.
            process += options.clients as u64;
        }
        if failed {
            // A member that is down refuses at once; without a pause the client would spin and flood
            // the history.
            tokio::time::sleep(ERROR_BACKOFF).await;
        }
    }
}

/// A read, a write or a compare-and-set of values 0 to 4, a third of each.
pub(crate) fn draw_call(rng: &mut impl Rng) -> RegisterCall {
    match rng.gen_range(0..3) {
        0 => RegisterCall::Read { value: None },
        1 => RegisterCall::Write {
            value: rng.gen_range(0..5),
        },
        _ => RegisterCall::Cas {
            from: rng.gen_range(0..5),
            to: rng.gen_range(0..5),
        },
    }
}

/// Perform `call` on `key` through member `node`; `Err` carries the reason the outcome is unknown.
async fn perform(
    shared: &Shared,
    connection: &mut Option<Client>,
    node: usize,
    key: &str,
    call: RegisterCall,
) -> Result<(RegisterCall, Outcome), String> {
    if connection.is_none() {
        let options = ConnectOptions::new()
            .with_connect_timeout(shared.options.op_timeout)
            .with_timeout(shared.options.op_timeout);
        let client = Client::connect([shared.endpoints[node].as_str()], Some(options))
            .await
            .map_err(|error| format!("connect: {error}"))?;
        *connection = Some(client);
    }
    let client = connection.as_mut().expect("connected just above");
    match call {
        RegisterCall::Read { .. } => {
            let options = match shared.options.read_mode {
                ReadMode::Linearizable => None,
                ReadMode::SerializableAnyMember => Some(GetOptions::new().with_serializable()),
            };
            let response = client.get(key, options).await.map_err(|error| error.to_string())?;
            let value = match response.kvs().first() {
                None => None,
                Some(kv) => Some(parse_value(kv.value())?),
            };
            Ok((RegisterCall::Read { value }, Outcome::Ok))
        }
        RegisterCall::Write { value } => {
            client
                .put(key, value.to_string(), None)
                .await
                .map_err(|error| error.to_string())?;
            Ok((call, Outcome::Ok))
        }
        RegisterCall::Cas { from, to } => {
            let txn = Txn::new()
                .when([Compare::value(key, CompareOp::Equal, from.to_string())])
                .and_then([TxnOp::put(key, to.to_string(), None)]);
            let response = client.txn(txn).await.map_err(|error| error.to_string())?;
            let outcome = if response.succeeded() {
                Outcome::Ok
            } else {
                Outcome::Fail
            };
            Ok((call, outcome))
        }
    }
}

/// Whether an error says the request never reached a member (its connection was refused), so that it
/// certainly took no effect.
fn never_sent(error: &str) -> bool {
    error.contains("tcp connect error") || error.contains("Connection refused")
}

fn parse_value(bytes: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| {
            format!(
                "the register holds {:?}, not an integer",
                String::from_utf8_lossy(bytes)
            )
        })
}
