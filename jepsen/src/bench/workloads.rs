//! The client side of the benchmark: closed-loop workers driving the etcd v3 API of either system with
//! the same client, the watch fan-out, leases and the leader-kill failover probe.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, Txn, TxnOp, WatchOptions};

use super::measure::Latencies;

/// Bytes of every value written (a small Kubernetes-like object is a few hundred bytes).
pub const VALUE_SIZE: usize = 256;
/// Keys each put worker cycles over, so the key space stays bounded however long the run.
const KEYS_PER_WORKER: usize = 100;
/// Keys the read workloads read from.
pub const READ_KEYS: usize = 1000;
/// An operation not answered within this counts as an error.
const OP_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Put,
    GetLinearizable,
    GetSerializable,
    CompareAndSet,
}

/// What a closed-loop run saw.
#[derive(Debug, Default)]
pub struct LoadOutcome {
    pub ok: usize,
    pub errors: usize,
    pub elapsed: Duration,
    pub latencies: Latencies,
    pub first_error: Option<String>,
}

/// Connect `count` clients, each balancing over every endpoint (as an operator's client would).
pub async fn connect(endpoints: &[String], count: usize) -> anyhow::Result<Vec<Client>> {
    let mut clients = Vec::with_capacity(count);
    for _ in 0..count {
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(OP_TIMEOUT);
        let client = Client::connect(endpoints, Some(options))
            .await
            .context("connect a benchmark client")?;
        clients.push(client);
    }
    Ok(clients)
}

fn value_of(text: &str) -> Vec<u8> {
    let mut value = text.as_bytes().to_vec();
    value.resize(VALUE_SIZE, b'.');
    value
}

/// Write the keys the read workloads read.
pub async fn preload(client: &Client, prefix: &str) -> anyhow::Result<()> {
    let mut client = client.clone();
    for index in 0..READ_KEYS {
        client
            .put(format!("{prefix}/read/{index}"), value_of("preloaded"), None)
            .await
            .context("preload a read key")?;
    }
    Ok(())
}

/// `concurrency` workers, each issuing one operation at a time, for `duration` or until `max_ops`
/// operations completed in total, whichever comes first.
pub async fn closed_loop(
    clients: &[Client],
    prefix: &str,
    op: Op,
    concurrency: usize,
    duration: Duration,
    max_ops: usize,
) -> anyhow::Result<LoadOutcome> {
    if clients.is_empty() {
        bail!("no clients");
    }
    let started = Instant::now();
    let deadline = started + duration;
    let per_worker = max_ops.div_ceil(concurrency.max(1)).max(1);
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let mut client = clients[worker % clients.len()].clone();
        let prefix = prefix.to_string();
        tasks.spawn(async move {
            let mut outcome = LoadOutcome::default();
            let mut cas_value = 0_u64;
            if op == Op::CompareAndSet {
                let key = format!("{prefix}/cas/{worker}");
                if let Err(error) = client.put(key, "0", None).await {
                    outcome.errors += 1;
                    outcome.first_error = Some(error.to_string());
                    return outcome;
                }
            }
            for index in 0..per_worker {
                if Instant::now() >= deadline {
                    break;
                }
                let begin = Instant::now();
                let result = tokio::time::timeout(
                    OP_TIMEOUT,
                    one_op(&mut client, &prefix, op, worker, index, &mut cas_value),
                )
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within {OP_TIMEOUT:?}")));
                match result {
                    Ok(()) => {
                        outcome.ok += 1;
                        outcome.latencies.record(begin.elapsed());
                    }
                    Err(error) => {
                        outcome.errors += 1;
                        if outcome.first_error.is_none() {
                            outcome.first_error = Some(format!("{error:#}"));
                        }
                    }
                }
            }
            outcome
        });
    }
    let mut total = LoadOutcome::default();
    while let Some(joined) = tasks.join_next().await {
        let outcome = joined.context("a benchmark worker panicked")?;
        total.ok += outcome.ok;
        total.errors += outcome.errors;
        total.latencies.merge(outcome.latencies);
        if total.first_error.is_none() {
            total.first_error = outcome.first_error;
        }
    }
    total.elapsed = started.elapsed();
    Ok(total)
}

async fn one_op(
    client: &mut Client,
    prefix: &str,
    op: Op,
    worker: usize,
    index: usize,
    cas_value: &mut u64,
) -> anyhow::Result<()> {
    match op {
        Op::Put => {
            let key = format!("{prefix}/put/{worker}/{}", index % KEYS_PER_WORKER);
            client.put(key, value_of("v"), None).await?;
        }
        Op::GetLinearizable | Op::GetSerializable => {
            let key = format!("{prefix}/read/{}", (worker * 7919 + index) % READ_KEYS);
            let options = (op == Op::GetSerializable).then(|| GetOptions::new().with_serializable());
            let response = client.get(key, options).await?;
            if response.kvs().is_empty() {
                bail!("a preloaded key is missing");
            }
        }
        Op::CompareAndSet => {
            let key = format!("{prefix}/cas/{worker}");
            let next = *cas_value + 1;
            let txn = Txn::new()
                .when([Compare::value(key.as_str(), CompareOp::Equal, cas_value.to_string())])
                .and_then([TxnOp::put(key.as_str(), next.to_string(), None)]);
            let response = client.txn(txn).await?;
            if !response.succeeded() {
                bail!("compare-and-set lost against no other writer");
            }
            *cas_value = next;
        }
    }
    Ok(())
}

/// What the watch fan-out saw: delivery latency from the put being sent to each watcher receiving it.
#[derive(Debug, Default)]
pub struct WatchOutcome {
    pub writes: usize,
    pub delivered: usize,
    pub expected: usize,
    pub elapsed: Duration,
    pub latencies: Latencies,
}

/// One writer puts sequentially under `prefix/watch/`; `watchers` watch streams (spread over the
/// clients) receive every event. The value carries the microsecond the put was sent at.
pub async fn watch_fan_out(
    clients: &[Client],
    prefix: &str,
    watchers: usize,
    duration: Duration,
    max_writes: usize,
) -> anyhow::Result<WatchOutcome> {
    let base = Instant::now();
    let watch_prefix = format!("{prefix}/watch/");
    let latencies = Arc::new(Mutex::new(Latencies::default()));
    let delivered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut streams = Vec::with_capacity(watchers);
    for index in 0..watchers {
        let mut client = clients[index % clients.len()].clone();
        let stream = client
            .watch(watch_prefix.as_str(), Some(WatchOptions::new().with_prefix()))
            .await
            .context("open a watch")?;
        streams.push(stream);
    }
    let (stop_sender, stop) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for mut stream in streams {
        let latencies = Arc::clone(&latencies);
        let delivered = Arc::clone(&delivered);
        let mut stop = stop.clone();
        tasks.spawn(async move {
            let mut local = Latencies::default();
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    message = stream.message() => {
                        let Ok(Some(response)) = message else { break };
                        let now = base.elapsed();
                        for event in response.events() {
                            let Some(kv) = event.kv() else { continue };
                            let sent = std::str::from_utf8(kv.value())
                                .ok()
                                .and_then(|text| text.split('.').next())
                                .and_then(|text| text.parse::<u64>().ok());
                            if let Some(sent) = sent {
                                local.record(now.saturating_sub(Duration::from_micros(sent)));
                                delivered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                        }
                    }
                }
            }
            latencies
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .merge(local);
        });
    }
    let mut writer = clients[0].clone();
    let started = Instant::now();
    let mut writes = 0;
    while started.elapsed() < duration && writes < max_writes {
        let sent = base.elapsed().as_micros();
        let key = format!("{watch_prefix}{}", writes % KEYS_PER_WORKER);
        if writer.put(key, value_of(&sent.to_string()), None).await.is_ok() {
            writes += 1;
        }
    }
    let elapsed = started.elapsed();
    // Let the last events arrive (bounded), then stop the watchers.
    let expected = writes * watchers;
    let drain_deadline = Instant::now() + Duration::from_secs(5);
    while delivered.load(std::sync::atomic::Ordering::Relaxed) < expected && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_sender.send(true);
    while tasks.join_next().await.is_some() {}
    let latencies = std::mem::take(&mut *latencies.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
    Ok(WatchOutcome {
        writes,
        delivered: delivered.load(std::sync::atomic::Ordering::Relaxed),
        expected,
        elapsed,
        latencies,
    })
}

/// Grant `count` leases with `concurrency` workers, then send one keep-alive for each (a stream per
/// lease, as a client keeping one lease does). Returns the two outcomes and the granted ids.
pub async fn leases(
    clients: &[Client],
    count: usize,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<(LoadOutcome, LoadOutcome)> {
    let started = Instant::now();
    let deadline = started + duration;
    let ids = Arc::new(Mutex::new(Vec::with_capacity(count)));
    let per_worker = count.div_ceil(concurrency.max(1));
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let mut client = clients[worker % clients.len()].clone();
        let ids = Arc::clone(&ids);
        tasks.spawn(async move {
            let mut outcome = LoadOutcome::default();
            for _ in 0..per_worker {
                if Instant::now() >= deadline {
                    break;
                }
                let begin = Instant::now();
                match tokio::time::timeout(OP_TIMEOUT, client.lease_grant(120, None)).await {
                    Ok(Ok(response)) => {
                        outcome.ok += 1;
                        outcome.latencies.record(begin.elapsed());
                        ids.lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner())
                            .push(response.id());
                    }
                    Ok(Err(error)) => {
                        outcome.errors += 1;
                        outcome.first_error.get_or_insert(error.to_string());
                    }
                    Err(_) => {
                        outcome.errors += 1;
                        outcome.first_error.get_or_insert("timeout".to_string());
                    }
                }
            }
            outcome
        });
    }
    let grants = gather(&mut tasks, started).await?;
    let ids = std::mem::take(&mut *ids.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
    let started = Instant::now();
    let deadline = started + duration;
    let shares: Vec<Vec<i64>> = (0..concurrency)
        .map(|worker| ids.iter().copied().skip(worker).step_by(concurrency).collect())
        .collect();
    for (worker, share) in shares.into_iter().enumerate() {
        let mut client = clients[worker % clients.len()].clone();
        tasks.spawn(async move {
            let mut outcome = LoadOutcome::default();
            for id in share {
                if Instant::now() >= deadline {
                    break;
                }
                let begin = Instant::now();
                let attempt = async {
                    let (mut keeper, mut stream) = client.lease_keep_alive(id).await?;
                    keeper.keep_alive().await?;
                    match stream.message().await? {
                        Some(response) if response.ttl() > 0 => Ok(()),
                        _ => Err(etcd_client::Error::InvalidArgs("the lease is gone".to_string())),
                    }
                };
                match tokio::time::timeout(OP_TIMEOUT, attempt).await {
                    Ok(Ok(())) => {
                        outcome.ok += 1;
                        outcome.latencies.record(begin.elapsed());
                    }
                    Ok(Err(error)) => {
                        outcome.errors += 1;
                        outcome.first_error.get_or_insert(error.to_string());
                    }
                    Err(_) => {
                        outcome.errors += 1;
                        outcome.first_error.get_or_insert("timeout".to_string());
                    }
                }
            }
            outcome
        });
    }
    let keep_alives = gather(&mut tasks, started).await?;
    Ok((grants, keep_alives))
}

async fn gather(tasks: &mut tokio::task::JoinSet<LoadOutcome>, started: Instant) -> anyhow::Result<LoadOutcome> {
    let mut total = LoadOutcome::default();
    while let Some(joined) = tasks.join_next().await {
        let outcome = joined.context("a lease worker panicked")?;
        total.ok += outcome.ok;
        total.errors += outcome.errors;
        total.latencies.merge(outcome.latencies);
        if total.first_error.is_none() {
            total.first_error = outcome.first_error;
        }
    }
    total.elapsed = started.elapsed();
    Ok(total)
}

/// Writers on every endpoint, each on a client of its own (one endpoint each, so a dead member only
/// stops its own writers), putting in a loop and recording when each successful put started and ended.
pub struct SteadyWriters {
    successes: Arc<Mutex<Vec<(Instant, Instant)>>>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: tokio::task::JoinSet<()>,
}

impl SteadyWriters {
    pub async fn start(endpoints: &[String], prefix: &str, per_endpoint: usize) -> anyhow::Result<SteadyWriters> {
        let successes = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        for (member, endpoint) in endpoints.iter().enumerate() {
            for writer in 0..per_endpoint {
                let options = ConnectOptions::new()
                    .with_connect_timeout(Duration::from_millis(300))
                    .with_timeout(Duration::from_secs(1));
                let client = Client::connect([endpoint.as_str()], Some(options))
                    .await
                    .context("connect a failover writer")?;
                let successes = Arc::clone(&successes);
                let stopped = stopped.clone();
                let key = format!("{prefix}/failover/{member}/{writer}");
                tasks.spawn(steady_writer(client, key, successes, stopped));
            }
        }
        Ok(SteadyWriters { successes, stop, tasks })
    }

    /// The end of the first successful put that started at or after `since`.
    pub fn first_success_since(&self, since: Instant) -> Option<Instant> {
        self.successes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .filter(|(begin, _)| *begin >= since)
            .map(|(_, end)| *end)
            .min()
    }

    pub fn clear(&self) {
        self.successes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
    }

    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn steady_writer(
    mut client: Client,
    key: String,
    successes: Arc<Mutex<Vec<(Instant, Instant)>>>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    // Bounded by the stop signal; a failed put is retried after a short pause so a dead endpoint does
    // not spin the CPU the survivors need.
    loop {
        if *stopped.borrow() {
            break;
        }
        let begin = Instant::now();
        let put = tokio::time::timeout(Duration::from_secs(1), client.put(key.as_str(), value_of("f"), None));
        let succeeded = tokio::select! {
            _ = stopped.changed() => break,
            result = put => matches!(result, Ok(Ok(_))),
        };
        if succeeded {
            successes
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push((begin, Instant::now()));
        } else {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
