//! Exec and attach over websockets with the `v5.channel.k8s.io` and `v4.channel.k8s.io` subprotocols.
//!
//! Every binary frame starts with a channel byte: 0 stdin, 1 stdout, 2 stderr, 3 the final `Status`,
//! 4 terminal resize; v5 adds 255, a client's "close this channel" (`[255, 0]` ends stdin).

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use http::HeaderMap;
use serde_json::json;
use tokio::sync::{mpsc, watch};

use crate::shell::{self, ShellIo};
use crate::status::ApiError;

pub const SUPPORTED_PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

const CHANNEL_STDIN: u8 = 0;
const CHANNEL_ERROR: u8 = 3;
const CHANNEL_RESIZE: u8 = 4;
const CHANNEL_CLOSE: u8 = 255;

/// What the session runs and how.
pub struct ExecRequest {
    pub argv: Vec<String>,
    pub hostname: String,
    pub tty: bool,
    pub stdin: bool,
}

/// Checks that the client offers a supported subprotocol (else 400, which makes kubectl report an
/// upgrade failure) and upgrades.
pub fn upgrade(
    upgrade: WebSocketUpgrade,
    headers: &HeaderMap,
    request: ExecRequest,
    shutdown: watch::Receiver<bool>,
) -> Result<Response, ApiError> {
    let offered: Vec<String> = headers
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_string()).collect::<Vec<_>>())
        .collect();
    if !SUPPORTED_PROTOCOLS.iter().any(|p| offered.iter().any(|o| o == p)) {
        return Err(ApiError::bad_request(format!(
            "none of the offered websocket subprotocols {offered:?} is supported; use one of {SUPPORTED_PROTOCOLS:?}"
        )));
    }
    Ok(upgrade
        .protocols(SUPPORTED_PROTOCOLS)
        .on_upgrade(move |socket| session(socket, request, shutdown))
        .into_response())
}

fn exit_status(argv: &[String], code: i32) -> serde_json::Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("command terminated with non-zero exit code: error executing command {argv:?}, exit code {code}"),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

async fn session(socket: WebSocket, request: ExecRequest, mut shutdown: watch::Receiver<bool>) {
    let (mut sink, mut incoming) = socket.split();
    let (stdin_sender, stdin_receiver) = mpsc::channel::<Vec<u8>>(64);
    let (output_sender, mut output_receiver) = mpsc::channel::<(u8, Vec<u8>)>(64);
    let mut stdin_sender = if request.stdin { Some(stdin_sender) } else { None };
    let argv = request.argv.clone();
    let mut io = ShellIo::new(stdin_receiver, output_sender, request.hostname, request.tty);
    let mut process = tokio::spawn(async move { shell::run(&argv, &mut io).await });
    loop {
        tokio::select! {
            frame = incoming.next() => match frame {
                Some(Ok(Message::Binary(data))) if !data.is_empty() => match data[0] {
                    CHANNEL_STDIN => {
                        if let Some(sender) = &stdin_sender {
                            let _ = sender.send(data[1..].to_vec()).await;
                        }
                    }
                    CHANNEL_CLOSE if data.get(1) == Some(&CHANNEL_STDIN) => stdin_sender = None,
                    CHANNEL_RESIZE => {}
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    // The client left: the process goes with it.
                    process.abort();
                    return;
                }
                Some(Ok(_)) => {}
            },
            output = output_receiver.recv() => match output {
                Some((channel, bytes)) => {
                    let mut frame = Vec::with_capacity(bytes.len() + 1);
                    frame.push(channel);
                    frame.extend_from_slice(&bytes);
                    if sink.send(Message::Binary(frame.into())).await.is_err() {
                        process.abort();
                        return;
                    }
                }
                None => break,
            },
            _ = shutdown.changed() => {
                process.abort();
                return;
            }
        }
    }
    let code = (&mut process).await.unwrap_or(1);
    let mut frame = vec![CHANNEL_ERROR];
    frame.extend_from_slice(exit_status(&request.argv, code).to_string().as_bytes());
    let _ = sink.send(Message::Binary(frame.into())).await;
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code: 1000,
            reason: "".into(),
        })))
        .await;
}
