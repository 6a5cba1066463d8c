//! A minimal HTTP/1.1 client for the few administrative calls the cluster makes itself (the admin
//! password change before membership changes): one request per connection, JSON in and out.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bound on one request, connect to last byte.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Answers of the calls made here are small; a larger one is an error.
const MAX_ANSWER: usize = 1 << 20;

/// Send `method path` with an optional bearer token and JSON body; returns the status and the body
/// parsed as JSON (`Value::Null` when it is not JSON).
pub async fn request(
    address: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> anyhow::Result<(u16, Value)> {
    tokio::time::timeout(REQUEST_TIMEOUT, exchange(address, method, path, token, body))
        .await
        .with_context(|| format!("{method} {path} at {address} took longer than {REQUEST_TIMEOUT:?}"))?
}

async fn exchange(
    address: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> anyhow::Result<(u16, Value)> {
    let payload = body.map(Value::to_string).unwrap_or_default();
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nAccept: application/json\r\n");
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if body.is_some() {
        head.push_str("Content-Type: application/json\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", payload.len()));
    let mut stream = TcpStream::connect(address)
        .await
        .with_context(|| format!("connect to {address}"))?;
    stream
        .write_all(head.as_bytes())
        .await
        .context("send the request head")?;
    stream
        .write_all(payload.as_bytes())
        .await
        .context("send the request body")?;
    let mut answer = Vec::new();
    (&mut stream)
        .take(MAX_ANSWER as u64 + 1)
        .read_to_end(&mut answer)
        .await
        .context("read the answer")?;
    if answer.len() > MAX_ANSWER {
        bail!("the answer of {method} {path} is larger than {MAX_ANSWER} bytes");
    }
    parse_answer(&answer)
}

fn parse_answer(answer: &[u8]) -> anyhow::Result<(u16, Value)> {
    let split = answer
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .context("the answer has no end of head")?;
    let head = String::from_utf8_lossy(&answer[..split]);
    let body = &answer[split + 4..];
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .with_context(|| format!("the answer has no status line: {head:?}"))?;
    let chunked = head.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    let body = if chunked { dechunk(body) } else { body.to_vec() };
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// The payload of a chunked body (whatever could be decoded of a malformed one).
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    while let Some(line_end) = body.windows(2).position(|window| window == b"\r\n") {
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let Ok(size) = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16) else {
            break;
        };
        let start = line_end + 2;
        if size == 0 || start + size > body.len() {
            break;
        }
        payload.extend_from_slice(&body[start..start + size]);
        body = &body[(start + size + 2).min(body.len())..];
    }
    payload
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_chunked_answers_are_parsed() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\n\r\n{\"token\":\"t\"}";
        assert_eq!(
            parse_answer(plain).expect("parse"),
            (200, serde_json::json!({"token": "t"}))
        );
        let chunked =
            b"HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n3\r\n 1}\r\n0\r\n\r\n";
        assert_eq!(
            parse_answer(chunked).expect("parse"),
            (401, serde_json::json!({"a": 1}))
        );
        assert!(parse_answer(b"garbage").is_err());
    }
}
