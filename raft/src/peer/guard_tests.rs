//! Tests of what protects the peer port after and around the handshake (area t16): a relay on the
//! path that reads, flips or replays frames, and a source that floods the port with handshakes it
//! never finishes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::network::RaftNetworkV2;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

use super::tests::{config, heartbeat, loopback, network, option, start_server, CLIENT_NODE, SECRET, SERVER_NODE};
use super::*;

const DEADLINE: Duration = Duration::from_secs(10);

/// What the relay does to the first frame a client sends after the two frames of its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tamper {
    Nothing,
    /// Flip the lowest bit of the frame's last byte.
    FlipLastByte,
    /// Send the frame twice.
    Replay,
}

/// A TCP relay between a client and a server that records what passes and can tamper with one
/// frame (once over all the connections it carries).
struct Relay {
    addr: SocketAddr,
    /// Every byte that passed, in both directions.
    seen: Arc<Mutex<Vec<u8>>>,
    tampered: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(upstream: SocketAddr, tamper: Tamper) -> Relay {
    let listener = TcpListener::bind(loopback()).await.expect("bind the relay");
    let addr = listener.local_addr().expect("relay address");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let tampered = Arc::new(AtomicBool::new(false));
    let task = {
        let seen = seen.clone();
        let tampered = tampered.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump_frames(
                    client_read,
                    server_write,
                    seen.clone(),
                    tamper,
                    tampered.clone(),
                ));
                tokio::spawn(pump_bytes(server_read, client_write, seen.clone()));
            }
        })
    };
    Relay {
        addr,
        seen,
        tampered,
        task,
    }
}

/// Client to server: frame by frame, tampering with the first frame after the handshake.
async fn pump_frames(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    seen: Arc<Mutex<Vec<u8>>>,
    tamper: Tamper,
    tampered: Arc<AtomicBool>,
) {
    let mut frames = 0u64;
    loop {
        let mut prefix = [0u8; 4];
        if from.read_exact(&mut prefix).await.is_err() {
            break;
        }
        let len = u32::from_be_bytes(prefix) as usize;
        if len > 64 << 20 {
            break;
        }
        let mut frame = prefix.to_vec();
        frame.resize(4 + len, 0);
        if from.read_exact(&mut frame[4..]).await.is_err() {
            break;
        }
        seen.lock().expect("relay lock").extend_from_slice(&frame);
        frames += 1;
        let mut copies = 1;
        // Frames 1 and 2 are the client's hello and proof.
        if frames >= 3 && tamper != Tamper::Nothing && !tampered.swap(true, Ordering::SeqCst) {
            match tamper {
                Tamper::FlipLastByte => {
                    if let Some(last) = frame.last_mut() {
                        *last ^= 1;
                    }
                }
                Tamper::Replay => copies = 2,
                Tamper::Nothing => {}
            }
        }
        for _ in 0..copies {
            if to.write_all(&frame).await.is_err() {
                return;
            }
        }
    }
    let _ = to.shutdown().await;
}

/// Server to client: bytes as they come.
async fn pump_bytes(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    seen: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                seen.lock().expect("relay lock").extend_from_slice(&buf[..n]);
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// Wait until `condition` holds, failing the test after [`DEADLINE`].
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn t16_replicated_data_and_forwarded_writes_are_unreadable_on_the_path() {
    let (server, _raft) = start_server(SECRET, loopback()).await;
    let relay = relay(server.local_addr(), Tamper::Nothing).await;
    let client = PeerClient::new(config(CLIENT_NODE, SECRET));
    client.set_peer_address(SERVER_NODE, relay.addr.to_string());

    let marker = b"forwarded-write:/registry/secrets/prod/db-password=hunter2";
    let answer = client
        .app_request(SERVER_NODE, marker.to_vec(), Duration::from_secs(2))
        .await
        .expect("app request through the relay");
    assert_eq!(&answer[..2], b"1:");
    assert_eq!(&answer[2..], &marker[..]);

    let seen = relay.seen.lock().expect("relay lock").clone();
    assert!(
        seen.len() > marker.len(),
        "the relay carried the request ({} bytes)",
        seen.len()
    );
    assert!(
        !contains(&seen, b"hunter2"),
        "the request and its answer crossed the path in clear: the relay read them"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn t16_a_tampered_frame_closes_the_connection_and_is_counted() {
    let (server, _raft) = start_server(SECRET, loopback()).await;
    let relay = relay(server.local_addr(), Tamper::FlipLastByte).await;
    let client = PeerClient::new(config(CLIENT_NODE, SECRET));
    client.set_peer_address(SERVER_NODE, relay.addr.to_string());

    let tampered = client
        .app_request(SERVER_NODE, b"put quota=100".to_vec(), Duration::from_secs(2))
        .await;
    assert!(relay.tampered.load(Ordering::SeqCst), "the relay flipped a byte");
    assert!(
        !matches!(&tampered, Ok(answer) if answer != b"1:put quota=100"),
        "the server acted on a tampered request: {:?}",
        tampered
            .as_ref()
            .map(|answer| String::from_utf8_lossy(answer).into_owned())
    );
    assert!(
        matches!(tampered, Err(PeerError::ConnectionLost { .. })),
        "{tampered:?}"
    );
    eventually("the server counts the forged frame", || {
        server.stats().counters().forged_frames == 1
    })
    .await;

    tracing::info!("--- the client redials and the next request is served unchanged");
    let start = Instant::now();
    let answer = loop {
        match client
            .app_request(SERVER_NODE, b"put quota=100".to_vec(), Duration::from_secs(2))
            .await
        {
            Ok(answer) => break answer,
            Err(PeerError::BackingOff { retry_in, .. }) if start.elapsed() < DEADLINE => {
                tokio::time::sleep(retry_in).await
            }
            Err(e) => panic!("request after the tampered one: {e}"),
        }
    };
    assert_eq!(answer, b"1:put quota=100");
    assert_eq!(server.stats().counters().forged_frames, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn t16_a_replayed_frame_is_refused() {
    let (server, raft) = start_server(SECRET, loopback()).await;
    let relay = relay(server.local_addr(), Tamper::Replay).await;
    let client = PeerClient::new(config(CLIENT_NODE, SECRET));
    let mut net = network(&client, relay.addr).await;

    let mut request = heartbeat();
    request.entries = (1..=3)
        .map(|i| openraft::testing::blank_ent::<super::tests::TestConfig>(1, CLIENT_NODE, i))
        .collect();
    // The original may be answered or lost with the connection; the copy must not be applied.
    let _ = net.append_entries(request, option()).await;
    assert!(relay.tampered.load(Ordering::SeqCst), "the relay replayed a frame");
    eventually("the server refuses the replayed frame", || {
        server.stats().counters().forged_frames == 1
    })
    .await;
    let appended = raft.appended_entries.load(Ordering::SeqCst);
    assert!(appended <= 3, "the replayed append was applied: {appended} entries");
    server.shutdown().await;
}

/// A connection from `source` (a loopback address other than 127.0.0.1) to `server`.
async fn connect_from(source: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{source}:0").parse().expect("source address"))
        .expect("bind the source address");
    socket.connect(server).await.expect("connect")
}

#[tokio::test]
async fn t16_half_open_handshakes_from_one_source_do_not_lock_members_out() {
    let raft = super::tests::FakeRaft::default();
    let mut server_config = config(SERVER_NODE, SECRET);
    server_config.max_connections = 16;
    // Long enough that the flood is still holding its connections when the member dials.
    server_config.handshake_timeout = Duration::from_secs(20);
    let server = PeerServer::new(server_config, raft.clone(), InMemorySnapshotReceiver, NoAppRequests)
        .start(loopback())
        .await
        .expect("bind the peer listener");

    tracing::info!("--- one source opens many connections and never finishes a handshake");
    let mut flood = Vec::new();
    for i in 0..40 {
        let mut stream = connect_from("127.0.0.2", server.local_addr()).await;
        // Half of them send a partial hello, the rest nothing at all.
        if i % 2 == 0 {
            stream.write_all(&[0, 0, 0, 40, 1]).await.expect("send a partial hello");
        }
        flood.push(stream);
    }
    eventually("the server accepted the flood", || {
        server.stats().counters().connections_accepted >= 40
    })
    .await;

    tracing::info!("--- a member still gets through");
    let client = PeerClient::new(config(CLIENT_NODE, SECRET));
    let mut net = network(&client, server.local_addr()).await;
    net.append_entries(heartbeat(), option())
        .await
        .expect("a member connects while the flood holds its connections");
    let counters = server.stats().counters();
    assert_eq!(counters.connections_authenticated, 1);
    let budget = PeerConfig::new(0, "c", ClusterSecret::new("s").expect("non-empty")).max_handshakes_per_source;
    assert_eq!(
        counters.handshakes_over_budget,
        40 - budget as u64,
        "every connection of the flood beyond the source's budget is closed on arrival"
    );
    drop(flood);
    server.shutdown().await;
}
