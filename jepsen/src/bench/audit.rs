//! The audit phase: one `kuboard serve` writing its audit events to a real PostgreSQL (QuestDB's
//! PG-wire stand-in) started by the benchmark, once per policy. It measures how many events per second
//! land in the table with batching, and the latency the strict policy adds to an audited change.
//!
//! The audited change is an anonymous `POST /kuboard-api/auth/logout` (204, nothing to end): it is
//! audited like any other change but touches neither the store nor a cluster, so the figures are the
//! audit path's own.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use super::http_load::{closed_loop, HttpPhase, HttpRequest};
use super::procs::{Kuboard, Postgres};
use super::BenchOptions;

/// The policies, in the order they are measured; `disabled` is the baseline.
pub const POLICIES: [&str; 4] = ["disabled", "ignore-errors", "buffered", "strict"];
/// Concurrent clients of the throughput phase.
pub const AUDIT_CONCURRENCY: usize = 16;
/// How long the events of a throughput phase may take to land after its last request.
const LANDING_BOUND: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyResult {
    pub policy: String,
    /// One client, one change at a time.
    pub latency: HttpPhase,
    /// `AUDIT_CONCURRENCY` clients as fast as they can.
    pub throughput: HttpPhase,
    /// Rows of the throughput phase found in the table (0 for `disabled`).
    pub events_landed: u64,
    /// Seconds from the first request of the throughput phase to the last of its rows landing.
    pub landing_seconds: f64,
    /// `events_landed / landing_seconds`.
    pub events_per_second: f64,
    /// Deltas of the replica's counters over the throughput phase.
    pub written_total: f64,
    pub dropped_total: f64,
    pub refused_total: f64,
    /// The largest `kuboard_audit_queue_depth` sampled during the throughput phase.
    pub max_queue_depth: f64,
    /// The data disk's rate of 4 KiB appends with fdatasync, sampled for 1 s just before the
    /// throughput phase: every figure that waits for a flush moves with it, and on a shared machine it
    /// varies several-fold from minute to minute.
    #[serde(default)]
    pub fdatasync_per_second: f64,
    /// WAL flushes (`pg_stat_wal.wal_sync`) PostgreSQL made while the phase's events landed: one per
    /// commit, so events per flush is the batching the database actually saw.
    #[serde(default)]
    pub wal_syncs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditResult {
    pub started_utc: String,
    pub quick: bool,
    pub postgres: String,
    pub policies: Vec<PolicyResult>,
}

impl AuditResult {
    pub fn policy(&self, name: &str) -> Option<&PolicyResult> {
        self.policies.iter().find(|policy| policy.policy == name)
    }
}

pub async fn run(options: &BenchOptions) -> anyhow::Result<AuditResult> {
    let started_utc = super::report::utc_now();
    let dir = options.work_dir.join("audit");
    println!(
        "== audit: PostgreSQL ({}) and one kuboard serve per policy in {}",
        options.postgres_bin_dir.display(),
        dir.display()
    );
    let mut postgres = Postgres::start(&options.postgres_bin_dir, &dir.join("pg")).await?;
    let version = postgres_version(&postgres).await?;
    let (samples, duration) = if options.quick {
        (2000, Duration::from_secs(4))
    } else {
        (5000, Duration::from_secs(15))
    };
    let mut policies = Vec::new();
    for policy in POLICIES {
        postgres.process.check_running()?;
        policies.push(run_policy(options, &postgres, policy, samples, duration).await?);
    }
    if let Some(strict) = policies.iter().find(|result| result.policy == "strict") {
        if let Some(disabled) = policies.iter().find(|result| result.policy == "disabled") {
            println!(
                "   strict adds p50 {:.2} ms, p99 {:.2} ms to an audited change (against disabled)",
                strict.latency.latency.p50_ms - disabled.latency.latency.p50_ms,
                strict.latency.latency.p99_ms - disabled.latency.latency.p99_ms
            );
        }
    }
    drop(postgres);
    if let Err(error) = std::fs::remove_dir_all(&dir) {
        tracing::warn!(%error, "cannot remove the audit phase's data");
    }
    Ok(AuditResult {
        started_utc,
        quick: options.quick,
        postgres: version,
        policies,
    })
}

async fn postgres_version(postgres: &Postgres) -> anyhow::Result<String> {
    let client = postgres.client().await?;
    let row = client
        .query_one("SHOW server_version", &[])
        .await
        .context("read the PostgreSQL version")?;
    Ok(format!("PostgreSQL {}", row.get::<_, String>(0)))
}

/// PostgreSQL's count of WAL flushes so far (its statistics are flushed by backends about once a
/// second, so the caller waits before reading an end value).
async fn wal_syncs(client: &tokio_postgres::Client) -> u64 {
    match client.query_one("SELECT wal_sync FROM pg_stat_wal", &[]).await {
        Ok(row) => u64::try_from(row.get::<_, i64>(0)).unwrap_or(0),
        Err(_) => 0,
    }
}

/// Rows of anonymous logouts in the table (0 while it does not exist yet).
async fn logout_rows(client: &tokio_postgres::Client) -> u64 {
    match client
        .query_one("SELECT count(*) FROM kuboard_audit WHERE verb = 'logout'", &[])
        .await
    {
        Ok(row) => u64::try_from(row.get::<_, i64>(0)).unwrap_or(0),
        Err(_) => 0,
    }
}

async fn run_policy(
    options: &BenchOptions,
    postgres: &Postgres,
    policy: &str,
    samples: usize,
    duration: Duration,
) -> anyhow::Result<PolicyResult> {
    let data = options.work_dir.join("audit").join(format!("kuboard-{policy}"));
    let env: Vec<(&str, String)> = if policy == "disabled" {
        vec![("KUBOARD_DISABLE_AUDIT", "true".to_string())]
    } else {
        vec![
            ("KUBOARD_QUEST_DB_URI", postgres.uri()),
            ("KUBOARD_AUDIT_POLICY", policy.to_string()),
        ]
    };
    let mut kuboard = Kuboard::start(&options.kuboard_binary, &data, &env).await?;
    let client = kuboard.client.clone();
    let database = postgres.client().await?;
    let logout = HttpRequest {
        method: reqwest::Method::POST,
        url: kuboard.url("/kuboard-api/auth/logout"),
        token: String::new(),
        expect: 204,
        numbered: true,
    };
    // Warm up: the audit writer connects and creates its table; wait until an event has landed so
    // that neither is part of the figures.
    let _ = closed_loop(&client, &logout, 1, Duration::from_millis(500), 50).await;
    if policy != "disabled" {
        let deadline = Instant::now() + Duration::from_secs(30);
        while logout_rows(&database).await == 0 {
            if Instant::now() >= deadline {
                bail!("no audit event of the {policy} policy reached PostgreSQL within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let (outcome, bytes) = closed_loop(&client, &logout, 1, duration, samples).await;
    let latency = HttpPhase::from_outcome(1, outcome, bytes);
    kuboard.process.check_running()?;

    // Let the latency phase's events land so that the count below is the throughput phase's alone.
    let before_rows = settle(&database, policy).await;
    let before = Counters::read(&kuboard).await?;
    let floor = super::measure::fdatasync_floor(&options.work_dir, Duration::from_secs(1), 100_000)?;
    let syncs_before = wal_syncs(&database).await;
    let started = Instant::now();
    let load = {
        let client = client.clone();
        let logout = logout.clone();
        tokio::spawn(async move { closed_loop(&client, &logout, AUDIT_CONCURRENCY, duration, 1_000_000).await })
    };
    let mut max_queue_depth: f64 = 0.0;
    while !load.is_finished() {
        max_queue_depth = max_queue_depth.max(kuboard.metric("kuboard_audit_queue_depth").await.unwrap_or(0.0));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (outcome, bytes) = load.await.context("the throughput workers")?;
    let throughput = HttpPhase::from_outcome(AUDIT_CONCURRENCY, outcome, bytes);
    // Events dropped by `ignore-errors` (its queue full) never land; the others must.
    let dropped = kuboard.metric("kuboard_audit_dropped_total").await? - before.dropped;
    let expected = (throughput.ok as u64).saturating_sub(dropped.max(0.0) as u64);
    let mut landed = 0;
    let mut landing = started.elapsed();
    if policy != "disabled" {
        // Wait until every expected row is there, or the count has stopped growing for a while;
        // the rate is taken at the last growth, so a stalled writer does not dilute it with idle time.
        let deadline = Instant::now() + LANDING_BOUND;
        let mut last_growth = Instant::now();
        loop {
            let now = logout_rows(&database).await.saturating_sub(before_rows);
            if now > landed {
                landed = now;
                landing = started.elapsed();
                last_growth = Instant::now();
            }
            // A policy may write more than one row per change (strict: the gate's and the outcome's),
            // so the replica's own count of written events is waited for as well.
            let written = kuboard.metric("kuboard_audit_written_total").await? - before.written;
            let complete = landed >= expected && landed as f64 >= written;
            if complete || last_growth.elapsed() > Duration::from_secs(10) || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if landed < expected {
            println!("   {policy}: only {landed} of {expected} expected events landed");
        }
    }
    let after = Counters::read(&kuboard).await?;
    kuboard.process.check_running()?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let syncs = wal_syncs(&database).await.saturating_sub(syncs_before);
    let result = PolicyResult {
        policy: policy.to_string(),
        latency,
        events_landed: landed,
        landing_seconds: landing.as_secs_f64(),
        events_per_second: landed as f64 / landing.as_secs_f64().max(1e-9),
        written_total: after.written - before.written,
        dropped_total: after.dropped - before.dropped,
        refused_total: after.refused - before.refused,
        max_queue_depth,
        wal_syncs: syncs,
        fdatasync_per_second: floor.per_second,
        throughput,
    };
    print_policy(&result);
    drop(kuboard);
    if let Err(error) = std::fs::remove_dir_all(&data) {
        tracing::warn!(%error, "cannot remove the replica's data");
    }
    Ok(result)
}

/// Wait (bounded) until the row count stops growing; returns it.
async fn settle(database: &tokio_postgres::Client, policy: &str) -> u64 {
    if policy == "disabled" {
        return 0;
    }
    let mut last = logout_rows(database).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = logout_rows(database).await;
        if now == last {
            break;
        }
        last = now;
    }
    last
}

struct Counters {
    written: f64,
    dropped: f64,
    refused: f64,
}

impl Counters {
    async fn read(kuboard: &Kuboard) -> anyhow::Result<Counters> {
        Ok(Counters {
            written: kuboard.metric("kuboard_audit_written_total").await?,
            dropped: kuboard.metric("kuboard_audit_dropped_total").await?,
            refused: kuboard.metric("kuboard_audit_refused_total").await?,
        })
    }
}

fn print_policy(result: &PolicyResult) {
    let latency = &result.latency;
    println!(
        "   {:<14} 1 client: {:>6.0}/s  p50 {:>6.2} ms  p99 {:>6.2} ms  p99.9 {:>6.2} ms  errors {}",
        result.policy,
        latency.per_second,
        latency.latency.p50_ms,
        latency.latency.p99_ms,
        latency.latency.p999_ms,
        latency.errors
    );
    let throughput = &result.throughput;
    println!(
        "   {:<14} {AUDIT_CONCURRENCY} clients: {:>6.0} changes/s  p50 {:>6.2} ms  p99 {:>6.2} ms  errors {}; \
         {} events landed in {:.2} s = {:.0} events/s (written {:.0}, dropped {:.0}, refused {:.0}, max queue {:.0}, \
         WAL flushes {}, disk {:.0} fdatasync/s)",
        result.policy,
        throughput.per_second,
        throughput.latency.p50_ms,
        throughput.latency.p99_ms,
        throughput.errors,
        result.events_landed,
        result.landing_seconds,
        result.events_per_second,
        result.written_total,
        result.dropped_total,
        result.refused_total,
        result.max_queue_depth,
        result.wal_syncs,
        result.fdatasync_per_second,
    );
    for error in [&latency.first_error, &throughput.first_error].into_iter().flatten() {
        println!("      first error: {error}");
    }
}
