//! Pod logs: numbered synthetic lines per container, each with the time it was written; `tailLines`,
//! `timestamps` (RFC 3339 with nanoseconds, as the kubelet writes them), `sinceTime` (lines written at
//! or after its second), `previous` (refused while the container never restarted) and `follow` (a new line
//! every `log_follow_interval`, ended after `log_follow_max_lines` or when the pod goes).

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::resources;
use crate::status::ApiError;
use crate::store::{LogLine, SharedState};

/// The container a request names, or the pod's only (or default) one.
pub fn choose_container(pod: &Value, requested: Option<&str>) -> Result<String, ApiError> {
    let pod_name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    let containers: Vec<&str> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|c| c.iter().filter_map(|c| c.get("name").and_then(Value::as_str)).collect())
        .unwrap_or_default();
    let default = pod
        .pointer("/metadata/annotations/kubectl.kubernetes.io~1default-container")
        .and_then(Value::as_str);
    match requested.filter(|r| !r.is_empty()).or(default) {
        Some(name) if containers.contains(&name) => Ok(name.to_string()),
        Some(name) => Err(ApiError::bad_request(format!(
            "container {name} is not valid for pod {pod_name}"
        ))),
        None if containers.len() == 1 => Ok(containers[0].to_string()),
        None => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {pod_name}, choose one of: [{}]",
            containers.join(" ")
        ))),
    }
}

pub struct LogRequest {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub follow: bool,
    pub tail_lines: Option<usize>,
    pub timestamps: bool,
    /// Only lines written at or after this time.
    pub since_time: Option<time::OffsetDateTime>,
}

/// The kubelet's timestamp format: RFC 3339 in UTC with nine fractional digits.
fn kubelet_timestamp(time: time::OffsetDateTime) -> String {
    let t = time.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    )
}

/// `sinceTime` of a log request (RFC 3339, fractional seconds optional), in whole seconds: the
/// apiserver passes it on to the kubelet as a `metav1.Time`, which keeps seconds only, so a real
/// cluster sends every line of that second again.
pub fn parse_since_time(text: &str) -> Result<time::OffsetDateTime, ApiError> {
    let time = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| ApiError::bad_request(format!("invalid sinceTime {text:?}: not an RFC 3339 time")))?;
    time.replace_nanosecond(0)
        .map_err(|_| ApiError::bad_request(format!("invalid sinceTime {text:?}")))
}

/// `previous=true`: the fake's containers never restart, so there is no previous log; the kubelet's
/// answer then is this 400.
pub fn no_previous_container(pod: &str, container: &str) -> ApiError {
    ApiError::bad_request(format!(
        "previous terminated container \"{container}\" in pod \"{pod}\" not found"
    ))
}

fn format_line(line: &LogLine, timestamps: bool) -> Bytes {
    if timestamps {
        Bytes::from(format!("{} {}\n", kubelet_timestamp(line.time), line.text))
    } else {
        Bytes::from(format!("{}\n", line.text))
    }
}

pub fn respond(state: Arc<SharedState>, request: LogRequest, mut shutdown: watch::Receiver<bool>) -> Response {
    let lines = state.log_lines(&request.namespace, &request.pod, &request.container);
    let since: Vec<&LogLine> = lines
        .iter()
        .filter(|line| request.since_time.is_none_or(|since| line.time >= since))
        .collect();
    let skip = request.tail_lines.map_or(0, |tail| since.len().saturating_sub(tail));
    let initial: Vec<Bytes> = since[skip..]
        .iter()
        .map(|l| format_line(l, request.timestamps))
        .collect();
    let (sender, receiver) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(async move {
        for line in initial {
            if sender.send(Ok(line)).await.is_err() {
                return;
            }
        }
        if !request.follow {
            return;
        }
        let pods = resources::find("", "v1", "pods").expect("pods are served");
        let mut seen = lines.len();
        let mut interval = tokio::time::interval(state.config.log_follow_interval);
        interval.tick().await;
        for _ in 0..state.config.log_follow_max_lines {
            tokio::select! {
                _ = interval.tick() => {}
                _ = sender.closed() => return,
                _ = shutdown.changed() => return,
            }
            if state.get(pods, Some(&request.namespace), &request.pod).is_err() {
                return;
            }
            let mut current = state.log_lines(&request.namespace, &request.pod, &request.container);
            if current.len() <= seen {
                let line = format!("{}/{} line {}", request.pod, request.container, current.len() + 1);
                state.append_log(&request.namespace, &request.pod, &request.container, &line);
                current = state.log_lines(&request.namespace, &request.pod, &request.container);
            }
            for line in &current[seen..] {
                if sender.send(Ok(format_line(line, request.timestamps))).await.is_err() {
                    return;
                }
            }
            seen = current.len();
        }
    });
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    Response::builder()
        .header(http::header::CONTENT_TYPE, "text/plain")
        .body(Body::from_stream(stream))
        .expect("a static header always builds")
}
