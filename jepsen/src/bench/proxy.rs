//! The Kubernetes proxy phase: the same requests sent by the same client directly to the fake
//! apiserver and through `/k8s-api/{cluster}/…` of one `kuboard serve`, at 1 and 16 clients.

use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::http_load::{closed_loop, first_byte, HttpPhase, HttpRequest};
use super::measure::Percentiles;
use super::procs::{http_client, FakeApiserver, Kuboard};
use super::BenchOptions;

/// Concurrent clients of each proxy phase.
pub const PROXY_CONCURRENCY: [usize; 2] = [1, 16];
/// Pods seeded in the fake apiserver (the list answer carries all of them).
const PODS: usize = 100;
/// Name of the imported cluster.
const CLUSTER: &str = "bench";

/// One request measured both ways at one concurrency.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProxyRow {
    pub request: String,
    pub concurrency: usize,
    pub direct: HttpPhase,
    pub proxied: HttpPhase,
}

impl ProxyRow {
    /// Proxied over direct throughput.
    pub fn ratio(&self) -> f64 {
        if self.direct.per_second > 0.0 {
            self.proxied.per_second / self.direct.per_second
        } else {
            0.0
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FirstByte {
    pub request: String,
    pub samples: usize,
    pub direct: Percentiles,
    pub proxied: Percentiles,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProxyResult {
    pub started_utc: String,
    pub quick: bool,
    /// Whether the fake apiserver let Kuboard's administrators read pods: without that, the proxied
    /// pod requests would be refused (403), so discovery documents are measured instead.
    pub pod_requests: bool,
    pub rows: Vec<ProxyRow>,
    pub first_byte: Option<FirstByte>,
}

/// Start the fake apiserver and one replica, import the cluster and measure.
pub async fn run(options: &BenchOptions) -> anyhow::Result<ProxyResult> {
    let started_utc = super::report::utc_now();
    let dir = options.work_dir.join("proxy");
    println!(
        "== proxy: the fake apiserver ({PODS} pods) and one kuboard serve in {}",
        dir.display()
    );
    let mut fake = FakeApiserver::start(&options.fake_apiserver_binary, &dir.join("fake"), PODS).await?;
    let mut kuboard = Kuboard::start(&options.kuboard_binary, &dir.join("kuboard"), &[]).await?;
    let token = kuboard.admin_session().await?;
    let (status, answer) = kuboard
        .call(
            reqwest::Method::POST,
            "/kuboard-api/cluster-imports",
            &token,
            Some(&json!({"name": CLUSTER, "kubeconfig": fake.kubeconfig})),
        )
        .await?;
    if status != 201 {
        bail!("the import of the fake apiserver was refused ({status}): {answer}");
    }
    let direct_client = http_client(Some(&fake.ca_pem))?;
    let proxy_client = http_client(None)?;
    let proxied_base = kuboard.url(&format!("/k8s-api/{CLUSTER}"));
    // The proxy impersonates the Kuboard user; the fake allows that user's group only when started
    // with `--admin-group`. Probe instead of trusting the flag.
    let pod = "/api/v1/namespaces/default/pods/pod-00000";
    let probe = proxy_client
        .get(format!("{proxied_base}{pod}"))
        .bearer_auth(&token)
        .send()
        .await
        .context("probe a pod through the proxy")?;
    let pod_requests = probe.status() == 200;
    let requests: Vec<(String, String)> = if pod_requests {
        vec![
            (
                format!("list {PODS} pods"),
                "/api/v1/namespaces/default/pods".to_string(),
            ),
            ("get one pod".to_string(), pod.to_string()),
        ]
    } else {
        println!(
            "   the fake apiserver refuses Kuboard's administrators ({}; it has no --admin-group): measuring \
             documents it serves without authorization instead of pods",
            probe.status()
        );
        vec![
            ("get /openapi/v3/api/v1".to_string(), "/openapi/v3/api/v1".to_string()),
            ("get /version".to_string(), "/version".to_string()),
        ]
    };
    drop(probe);
    let duration = if options.quick {
        Duration::from_secs(3)
    } else {
        Duration::from_secs(10)
    };
    let mut rows = Vec::new();
    for (label, path) in &requests {
        for concurrency in PROXY_CONCURRENCY {
            fake.process.check_running()?;
            kuboard.process.check_running()?;
            let direct = HttpRequest::get(format!("{}{path}", fake.url), &fake.token);
            let proxied = HttpRequest::get(format!("{proxied_base}{path}"), &token);
            // Warm both connection pools so that TLS handshakes are not part of the figures.
            let _ = closed_loop(&direct_client, &direct, concurrency, Duration::from_millis(300), 1000).await;
            let _ = closed_loop(&proxy_client, &proxied, concurrency, Duration::from_millis(300), 1000).await;
            let (outcome, bytes) = closed_loop(&direct_client, &direct, concurrency, duration, 1_000_000).await;
            let direct = HttpPhase::from_outcome(concurrency, outcome, bytes);
            let (outcome, bytes) = closed_loop(&proxy_client, &proxied, concurrency, duration, 1_000_000).await;
            let proxied = HttpPhase::from_outcome(concurrency, outcome, bytes);
            let row = ProxyRow {
                request: label.clone(),
                concurrency,
                direct,
                proxied,
            };
            print_row(&row);
            rows.push(row);
        }
    }
    let first_byte = if pod_requests {
        let samples = if options.quick { 50 } else { 200 };
        let path = "/api/v1/namespaces/default/pods?watch=true";
        let direct = first_byte(
            &direct_client,
            &HttpRequest::get(format!("{}{path}", fake.url), &fake.token),
            samples,
        )
        .await;
        let proxied = first_byte(
            &proxy_client,
            &HttpRequest::get(format!("{proxied_base}{path}"), &token),
            samples,
        )
        .await;
        let errors = direct.errors + proxied.errors;
        if errors > 0 {
            println!(
                "   watch first byte: {errors} errors ({})",
                direct.first_error.or(proxied.first_error).unwrap_or_default()
            );
        }
        let result = FirstByte {
            request: "watch pods, first byte".to_string(),
            samples,
            direct: direct.latencies.summary(),
            proxied: proxied.latencies.summary(),
        };
        println!(
            "   watch first byte: direct p50 {:.2} ms p99 {:.2} ms; proxied p50 {:.2} ms p99 {:.2} ms",
            result.direct.p50_ms, result.direct.p99_ms, result.proxied.p50_ms, result.proxied.p99_ms
        );
        Some(result)
    } else {
        None
    };
    drop(kuboard);
    drop(fake);
    // The fake's kubeconfigs carry its token; nothing of the run is kept.
    if let Err(error) = std::fs::remove_dir_all(&dir) {
        tracing::warn!(%error, "cannot remove the proxy part's data");
    }
    Ok(ProxyResult {
        started_utc,
        quick: options.quick,
        pod_requests,
        rows,
        first_byte,
    })
}

fn print_row(row: &ProxyRow) {
    for (way, phase) in [("direct", &row.direct), ("proxied", &row.proxied)] {
        println!(
            "   {:<24} {:>2} clients {:<8} {:>8.0}/s  p50 {:>6.2} ms  p99 {:>6.2} ms  p99.9 {:>6.2} ms  {} B  errors {}",
            row.request,
            row.concurrency,
            way,
            phase.per_second,
            phase.latency.p50_ms,
            phase.latency.p99_ms,
            phase.latency.p999_ms,
            phase.body_bytes,
            phase.errors,
        );
        if let Some(error) = &phase.first_error {
            println!("      first error: {error}");
        }
    }
    println!(
        "   {:<24} {:>2} clients ratio {:.2}, added p50 {:.2} ms, p99 {:.2} ms",
        row.request,
        row.concurrency,
        row.ratio(),
        row.proxied.latency.p50_ms - row.direct.latency.p50_ms,
        row.proxied.latency.p99_ms - row.direct.latency.p99_ms,
    );
}
