//! Exec over a plain-HTTP instance with a bearer token and the `v4.channel.k8s.io` subprotocol, which
//! the machine's kubectl (v5) does not exercise: stdout on channel 1, the exit Status on channel 3.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt as _;
use kuboard_testkit::{FakeApiServer, InstanceConfig, SharedState, StateConfig, UserInfo};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn exec_speaks_v4_channels_with_an_exit_status() {
    common::init_tracing();
    let state = SharedState::new(StateConfig::default());
    state.add_token("token-for-exec-test", UserInfo::new("admin", &["system:masters"]));
    state
        .create_object(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]}}),
        )
        .expect("created");
    let bind: SocketAddr = "127.0.0.1:0".parse().expect("an address");
    let server = FakeApiServer::start(
        state,
        InstanceConfig {
            name: "plain".into(),
            bind,
            tls: None,
        },
    )
    .await
    .expect("starts");
    let url = format!(
        "ws://{}/api/v1/namespaces/default/pods/p/exec?command=sh&command=-c&command=echo%20hi%3B%20exit%207&stdout=true&stderr=true",
        server.address()
    );
    let mut request = url.into_client_request().expect("a request");
    request
        .headers_mut()
        .insert("authorization", "Bearer token-for-exec-test".parse().expect("a header"));
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "v4.channel.k8s.io".parse().expect("a header"));
    let (mut socket, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("the upgrade succeeds");
    assert_eq!(response.headers()["sec-websocket-protocol"], "v4.channel.k8s.io");
    let mut stdout = Vec::new();
    let mut status = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Some(message) = tokio::time::timeout_at(deadline, socket.next())
        .await
        .expect("frames arrive in time")
    {
        match message.expect("a frame") {
            Message::Binary(data) if data.first() == Some(&1) => stdout.extend_from_slice(&data[1..]),
            Message::Binary(data) if data.first() == Some(&3) => {
                status = Some(serde_json::from_slice::<Value>(&data[1..]).expect("a Status"))
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    let _ = socket.close(None).await;
    assert_eq!(String::from_utf8_lossy(&stdout), "hi\n");
    let status = status.expect("an exit status on channel 3");
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "7");

    tracing::info!("phase: a client offering no supported subprotocol is refused before the upgrade");
    let url = format!(
        "ws://{}/api/v1/namespaces/default/pods/p/exec?command=true",
        server.address()
    );
    let mut request = url.into_client_request().expect("a request");
    request
        .headers_mut()
        .insert("authorization", "Bearer token-for-exec-test".parse().expect("a header"));
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "base64.channel.k8s.io".parse().expect("a header"),
    );
    assert!(tokio_tungstenite::connect_async(request).await.is_err());
}
