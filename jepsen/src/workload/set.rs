//! Workload (b): a set through the etcd v3 API.
//!
//! Clients, each bound to one member, add unique elements (one key per element under a prefix). After
//! the run, when the nemesis has healed everything, one linearizable read of the prefix is the final
//! state: every acknowledged add must be in it, failed adds must not, indeterminate ones may.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, GetOptions};
use tokio::task::JoinSet;

use super::{never_sent, Progress, Recorder, ERROR_BACKOFF, FINAL_READ_WITHIN};
use crate::checker::{check_set, SetAdd, SetVerdict};
use crate::history::{Op, Outcome};

/// The prefix of the set's keys; the element is the rest of the key.
pub const PREFIX: &str = "kuboard-jepsen/set/";

#[derive(Debug, Clone)]
pub struct SetOptions {
    pub clients: usize,
    pub op_timeout: Duration,
}

impl Default for SetOptions {
    fn default() -> Self {
        SetOptions {
            clients: 3,
            op_timeout: Duration::from_millis(1500),
        }
    }
}

/// The set workload's history and its final read.
#[derive(Debug, Clone)]
pub struct SetOutcome {
    /// The adds and the final read (`f` = `add` / `read`).
    pub history: Vec<Op>,
    /// The elements of the final read; `None` when no member answered it in time.
    pub final_read: Option<BTreeSet<i64>>,
}

impl SetOutcome {
    /// Check the adds against the final read. Without a final read nothing can be said: the verdict is
    /// invalid with every acknowledged add counted as lost.
    pub fn verdict(&self) -> SetVerdict {
        let adds: Vec<SetAdd> = self
            .history
            .iter()
            .filter(|op| op.f == "add")
            .filter_map(|op| {
                let element = op.value.as_deref()?.parse().ok()?;
                Some(SetAdd {
                    element,
                    outcome: op.outcome,
                })
            })
            .collect();
        check_set(&adds, self.final_read.as_ref().unwrap_or(&BTreeSet::new()))
    }
}

/// Connect to one etcd endpoint with `timeout` on the connection and every request.
pub(crate) async fn connect(endpoint: &str, timeout: Duration) -> Result<Client, String> {
    let options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(timeout)
        .with_timeout(timeout);
    Client::connect([endpoint], Some(options))
        .await
        .map_err(|error| format!("connect: {error}"))
}

/// Run the adders until `deadline`, then read the set once through any member that answers.
pub async fn run(
    options: SetOptions,
    endpoints: Vec<String>,
    names: Vec<String>,
    started: Instant,
    deadline: Instant,
    progress: Arc<Progress>,
) -> SetOutcome {
    let recorder = Arc::new(Recorder::new(started, progress));
    let next_element = Arc::new(AtomicI64::new(0));
    let endpoints = Arc::new(endpoints);
    let names = Arc::new(names);
    // Owned by this future: if the run is abandoned, dropping it aborts every client.
    let mut clients = JoinSet::new();
    for worker in 0..options.clients.max(1) {
        let (recorder, next_element, endpoints, names) = (
            Arc::clone(&recorder),
            Arc::clone(&next_element),
            Arc::clone(&endpoints),
            Arc::clone(&names),
        );
        let clients_count = options.clients.max(1) as u64;
        let timeout = options.op_timeout;
        clients.spawn(async move {
            let home = worker % endpoints.len();
            let mut connection: Option<Client> = None;
            let mut process = worker as u64;
            // Bounded by the deadline: every iteration takes at most one operation timeout.
            while Instant::now() < deadline {
                let element = next_element.fetch_add(1, Ordering::Relaxed);
                let key = format!("{PREFIX}{element:09}");
                let pending = recorder.invoke(process, &names[home], "add", &key, Some(element.to_string()));
                let attempt = async {
                    if connection.is_none() {
                        connection = Some(connect(&endpoints[home], timeout).await?);
                    }
                    let client = connection.as_mut().expect("connected just above");
                    let response = client
                        .put(key.as_str(), "1", None)
                        .await
                        .map_err(|error| error.to_string())?;
                    Ok::<_, String>(response.header().map(|header| header.revision()))
                };
                let result = tokio::time::timeout(timeout, attempt)
                    .await
                    .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")));
                match result {
                    Ok(revision) => {
                        recorder.complete(pending, Outcome::Ok, revision, None);
                    }
                    Err(error) => {
                        connection = None;
                        let outcome = if never_sent(&error) {
                            Outcome::Fail
                        } else {
                            Outcome::Info
                        };
                        recorder.complete(pending, outcome, None, Some(error));
                        if outcome == Outcome::Info {
                            process += clients_count;
                        }
                        tokio::time::sleep(ERROR_BACKOFF).await;
                    }
                }
            }
        });
    }
    while let Some(result) = clients.join_next().await {
        if let Err(error) = result {
            tracing::error!("a set client panicked: {error}");
        }
    }
    let final_read = final_read(&recorder, &endpoints, &names, options.op_timeout).await;
    let recorder = Arc::into_inner(recorder).expect("every client has finished");
    SetOutcome {
        history: recorder.into_history(),
        final_read,
    }
}

/// One linearizable read of the whole prefix, asking the members in turn until one answers.
async fn final_read(
    recorder: &Recorder,
    endpoints: &[String],
    names: &[String],
    timeout: Duration,
) -> Option<BTreeSet<i64>> {
    let give_up = Instant::now() + FINAL_READ_WITHIN;
    // Bounded by `give_up`: every attempt takes at most one timeout plus the backoff.
    for attempt in 0..1000usize {
        if Instant::now() >= give_up {
            return None;
        }
        let member = attempt % endpoints.len();
        let pending = recorder.invoke(u64::MAX, &names[member], "read", PREFIX, None);
        let read = async {
            let mut client = connect(&endpoints[member], timeout * 2).await?;
            let response = client
                .get(PREFIX, Some(GetOptions::new().with_prefix()))
                .await
                .map_err(|error| error.to_string())?;
            let revision = response.header().map(|header| header.revision());
            let mut elements = BTreeSet::new();
            for kv in response.kvs() {
                let key = String::from_utf8_lossy(kv.key());
                let element = key
                    .strip_prefix(PREFIX)
                    .and_then(|rest| rest.parse::<i64>().ok())
                    .ok_or_else(|| format!("the set holds an unexpected key {key:?}"))?;
                elements.insert(element);
            }
            Ok::<_, String>((elements, revision))
        };
        match tokio::time::timeout(timeout * 4, read).await {
            Ok(Ok((elements, revision))) => {
                let mut op = pending;
                op.value = Some(format!("{} elements", elements.len()));
                recorder.complete(op, Outcome::Ok, revision, None);
                return Some(elements);
            }
            Ok(Err(error)) => {
                recorder.complete(pending, Outcome::Fail, None, Some(error));
            }
            Err(_) => {
                recorder.complete(pending, Outcome::Fail, None, Some("no answer in time".to_string()));
            }
        }
        tokio::time::sleep(ERROR_BACKOFF * 2).await;
    }
    None
}
