//! Closed-loop HTTP workers for the proxy and audit phases: each worker sends one request at a time
//! over the shared client's keep-alive connections and reads the whole answer before the next.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::measure::{Latencies, Percentiles};
use super::workloads::LoadOutcome;

/// One kind of request a phase repeats.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: reqwest::Method,
    pub url: String,
    /// Sent as `Authorization: Bearer` when not empty.
    pub token: String,
    /// The status every answer must have; anything else counts as an error.
    pub expect: u16,
    /// When set, `?n=<sequence>` (or `&n=`) is appended so that every request is distinguishable.
    pub numbered: bool,
}

impl HttpRequest {
    pub fn get(url: String, token: &str) -> HttpRequest {
        HttpRequest {
            method: reqwest::Method::GET,
            url,
            token: token.to_string(),
            expect: 200,
            numbered: false,
        }
    }
}

/// Throughput and latency of one HTTP phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HttpPhase {
    pub concurrency: usize,
    pub ok: usize,
    pub errors: usize,
    pub seconds: f64,
    pub per_second: f64,
    pub latency: Percentiles,
    /// Bytes of one answer body (the last one read).
    pub body_bytes: usize,
    pub first_error: Option<String>,
}

impl HttpPhase {
    pub fn from_outcome(concurrency: usize, outcome: LoadOutcome, body_bytes: usize) -> HttpPhase {
        let seconds = outcome.elapsed.as_secs_f64();
        HttpPhase {
            concurrency,
            ok: outcome.ok,
            errors: outcome.errors,
            seconds,
            per_second: outcome.ok as f64 / seconds.max(1e-9),
            latency: outcome.latencies.summary(),
            body_bytes,
            first_error: outcome.first_error,
        }
    }
}

/// Send one request and read its body; returns the body length.
async fn send_one(client: &reqwest::Client, request: &HttpRequest, sequence: usize) -> Result<usize, String> {
    let url = if request.numbered {
        let separator = if request.url.contains('?') { '&' } else { '?' };
        format!("{}{separator}n={sequence}", request.url)
    } else {
        request.url.clone()
    };
    let mut builder = client.request(request.method.clone(), url);
    if !request.token.is_empty() {
        builder = builder.bearer_auth(&request.token);
    }
    let response = builder.send().await.map_err(|error| format!("send: {error}"))?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map_err(|error| format!("read the body: {error}"))?;
    if status != request.expect {
        let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        return Err(format!("status {status} (expected {}): {text}", request.expect));
    }
    Ok(body.len())
}

/// `concurrency` workers repeat `request` for `duration` or `max_ops` requests in all, whichever
/// comes first. Returns the outcome and the length of the last body read.
pub async fn closed_loop(
    client: &reqwest::Client,
    request: &HttpRequest,
    concurrency: usize,
    duration: Duration,
    max_ops: usize,
) -> (LoadOutcome, usize) {
    let issued = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.max(1) {
        let client = client.clone();
        let request = request.clone();
        let issued = issued.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Latencies::default();
            let (mut ok, mut errors, mut body_bytes, mut first_error) = (0, 0, 0, None);
            while Instant::now() < deadline {
                let sequence = issued.fetch_add(1, Ordering::Relaxed);
                if sequence >= max_ops {
                    break;
                }
                let sent = Instant::now();
                match send_one(&client, &request, sequence).await {
                    Ok(bytes) => {
                        latencies.record(sent.elapsed());
                        ok += 1;
                        body_bytes = bytes;
                    }
                    Err(error) => {
                        errors += 1;
                        first_error.get_or_insert(error);
                    }
                }
            }
            (ok, errors, latencies, body_bytes, first_error)
        }));
    }
    let mut outcome = LoadOutcome::default();
    let mut body_bytes = 0;
    for worker in workers {
        match worker.await {
            Ok((ok, errors, latencies, bytes, first_error)) => {
                outcome.ok += ok;
                outcome.errors += errors;
                outcome.latencies.merge(latencies);
                body_bytes = body_bytes.max(bytes);
                if outcome.first_error.is_none() {
                    outcome.first_error = first_error;
                }
            }
            Err(error) => {
                outcome.errors += 1;
                outcome.first_error.get_or_insert(format!("a worker failed: {error}"));
            }
        }
    }
    outcome.elapsed = started.elapsed();
    (outcome, body_bytes)
}

/// Time from sending `request` to the first chunk of its answer body, `samples` times in a row (each
/// answer is dropped after its first chunk, closing a streaming answer such as a watch).
pub async fn first_byte(client: &reqwest::Client, request: &HttpRequest, samples: usize) -> LoadOutcome {
    let mut outcome = LoadOutcome::default();
    let started = Instant::now();
    for _ in 0..samples {
        let sent = Instant::now();
        let mut builder = client.request(request.method.clone(), &request.url);
        if !request.token.is_empty() {
            builder = builder.bearer_auth(&request.token);
        }
        let result = async {
            let mut response = builder.send().await.map_err(|error| format!("send: {error}"))?;
            if response.status().as_u16() != request.expect {
                return Err(format!("status {}", response.status()));
            }
            match tokio::time::timeout(Duration::from_secs(5), response.chunk()).await {
                Ok(Ok(Some(_))) => Ok(()),
                Ok(Ok(None)) => Err("the answer ended without a body".to_string()),
                Ok(Err(error)) => Err(format!("read: {error}")),
                Err(_) => Err("no first byte within 5 s".to_string()),
            }
        }
        .await;
        match result {
            Ok(()) => {
                outcome.latencies.record(sent.elapsed());
                outcome.ok += 1;
            }
            Err(error) => {
                outcome.errors += 1;
                outcome.first_error.get_or_insert(error);
            }
        }
    }
    outcome.elapsed = started.elapsed();
    outcome
}
