//! Tests of the peer transport (area t15): two endpoints on loopback, a fake raft core behind the
//! server, and raw sockets playing misbehaving peers.

use std::io::Cursor;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::errors::{Fatal, RPCError, ReplicationClosed};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::type_config::alias::{SnapshotMetaOf, SnapshotOf, VoteOf};
use openraft::{BasicNode, Snapshot, StoredMembership};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::handshake::{client_handshake, server_handshake};
use super::wire::{
    ClientHello, ClientReply, Refusal, RequestBody, RequestFrame, ResponseFrame, ServerHello, Verdict,
    HANDSHAKE_MAX_FRAME, PROTOCOL_VERSION,
};
use super::*;
use crate::framing::{encode_frame, read_record, FrameError};

openraft::declare_raft_types!(
    pub(crate) TestConfig:
        D = String,
        R = String,
        NodeId = u64,
        Node = BasicNode,
);

type TestVote = VoteOf<TestConfig>;
type Factory = PeerNetworkFactory<TestConfig, Cursor<Vec<u8>>>;
type Network = PeerConnection<TestConfig, Cursor<Vec<u8>>>;

const CLUSTER: &str = "t15";
pub(super) const SECRET: &str = "correct horse battery staple";
pub(super) const CLIENT_NODE: u64 = 1;
pub(super) const SERVER_NODE: u64 = 2;
const DEADLINE: Duration = Duration::from_secs(10);

/// A snapshot the fake raft core installed: the sender's vote, the meta and the data.
type InstalledSnapshot = (TestVote, SnapshotMetaOf<TestConfig>, Vec<u8>);

/// The raft core behind the server: it records what arrives and answers predictably.
#[derive(Clone, Default)]
pub(super) struct FakeRaft {
    pub(super) appended_entries: Arc<AtomicUsize>,
    installed: Arc<Mutex<Vec<InstalledSnapshot>>>,
    stopped: Arc<AtomicBool>,
    slow_appends: Arc<AtomicBool>,
}

impl FakeRaft {
    fn check_running(&self) -> Result<(), Fatal<TestConfig>> {
        if self.stopped.load(Ordering::SeqCst) {
            return Err(Fatal::Stopped);
        }
        Ok(())
    }
}

impl RaftRpcHandler for FakeRaft {
    type Config = TestConfig;
    type SnapshotData = Cursor<Vec<u8>>;

    async fn append_entries(
        &self,
        rpc: AppendEntriesRequest<TestConfig>,
    ) -> Result<AppendEntriesResponse<TestConfig>, Fatal<TestConfig>> {
        self.check_running()?;
        if self.slow_appends.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        self.appended_entries.fetch_add(rpc.entries.len(), Ordering::SeqCst);
        Ok(AppendEntriesResponse::Success)
    }

    async fn vote(&self, rpc: VoteRequest<TestConfig>) -> Result<VoteResponse<TestConfig>, Fatal<TestConfig>> {
        self.check_running()?;
        Ok(VoteResponse::new(rpc.vote, rpc.last_log_id, true))
    }

    async fn pre_vote(&self, rpc: VoteRequest<TestConfig>) -> Result<VoteResponse<TestConfig>, Fatal<TestConfig>> {
        self.check_running()?;
        // Refusing tells a transported answer apart from openraft's default local grant.
        Ok(VoteResponse::new(rpc.vote, rpc.last_log_id, false))
    }

    async fn install_full_snapshot(
        &self,
        vote: TestVote,
        snapshot: SnapshotOf<TestConfig, Cursor<Vec<u8>>>,
    ) -> Result<SnapshotResponse<TestConfig>, Fatal<TestConfig>> {
        self.check_running()?;
        self.installed
            .lock()
            .expect("test lock")
            .push((vote, snapshot.meta, snapshot.snapshot.into_inner()));
        Ok(SnapshotResponse::new(vote))
    }
}

/// Echoes the request with the caller's id in front; `fail` is answered with an error.
struct EchoHandler;

impl AppRequestHandler for EchoHandler {
    async fn handle(&self, from: u64, request: Vec<u8>) -> Result<Vec<u8>, String> {
        if request == b"fail" {
            return Err("asked to fail".to_string());
        }
        let mut answer = format!("{from}:").into_bytes();
        answer.extend_from_slice(&request);
        Ok(answer)
    }
}

pub(super) fn config(node_id: u64, secret: &str) -> PeerConfig {
    let mut config = PeerConfig::new(node_id, CLUSTER, ClusterSecret::new(secret).expect("non-empty secret"));
    config.handshake_timeout = Duration::from_millis(500);
    config.snapshot_chunk_bytes = 64 * 1024;
    config
}

pub(super) async fn start_server(secret: &str, addr: SocketAddr) -> (PeerServerHandle, FakeRaft) {
    let raft = FakeRaft::default();
    let server = PeerServer::new(
        config(SERVER_NODE, secret),
        raft.clone(),
        InMemorySnapshotReceiver,
        EchoHandler,
    );
    let handle = server.start(addr).await.expect("bind the peer listener");
    (handle, raft)
}

pub(super) async fn network(client: &PeerClient, addr: SocketAddr) -> Network {
    let mut factory = Factory::new(CLIENT_NODE, Some(client.clone()), BlockedPeers::default());
    factory.new_client(SERVER_NODE, &BasicNode::new(addr.to_string())).await
}

pub(super) fn option() -> RPCOption {
    RPCOption::new(Duration::from_secs(2))
}

pub(super) fn heartbeat() -> AppendEntriesRequest<TestConfig> {
    AppendEntriesRequest {
        vote: TestVote::new(1, CLIENT_NODE),
        prev_log_id: None,
        entries: vec![],
        leader_commit: None,
    }
}

fn vote_request() -> VoteRequest<TestConfig> {
    VoteRequest::new(
        TestVote::new(3, CLIENT_NODE),
        Some(openraft::testing::log_id::<TestConfig>(1, 1, 5)),
    )
}

/// Wait until `condition` holds, failing the test after [`DEADLINE`].
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether the server closed `stream`: a read returns end-of-file or a reset within the deadline.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        match tokio::time::timeout(DEADLINE, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // Handshake answers may arrive before the close.
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
    false
}

pub(super) fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().expect("loopback address")
}

#[tokio::test]
async fn t15_rpcs_round_trip_over_an_authenticated_connection() {
    tracing::info!("--- a server and a client with the same secret");
    let (server, raft) = start_server(SECRET, loopback()).await;
    let client = PeerClient::new(config(CLIENT_NODE, SECRET));
    let mut net = network(&client, server.local_addr()).await;

    tracing::info!("--- append_entries carries the entries");
    let mut request = heartbeat();
    request.entries = (1..=3)
        .map(|i| openraft::testing::blank_ent::<TestConfig>(1, CLIENT_NODE, i))
        .collect();
    let response = net.append_entries(request, option()).await.expect("append_entries");
    assert_eq!(response, AppendEntriesResponse::Success);
    assert_eq!(raft.appended_entries.load(Ordering::SeqCst), 3);

    tracing::info!("--- vote and pre_vote reach the server's raft core");
    let vote = net.vote(vote_request(), option()).await.expect("vote");
    assert!(vote.vote_granted);
    assert_eq!(vote.vote, TestVote::new(3, CLIENT_NODE));
    let pre_vote = net.pre_vote(vote_request(), option()).await.expect("pre_vote");
    assert!(!pre_vote.vote_granted);

    tracing::info!("--- application requests carry the caller's id and the handler's errors");
    let answer = client
        .app_request(SERVER_NODE, b"ping".to_vec(), Duration::from_secs(2))
        .await
        .expect("app request");
    assert_eq!(answer, b"1:ping");
    let failure = client
        .app_request(SERVER_NODE, b"fail".to_vec(), Duration::from_secs(2))
        .await;
    assert!(
        matches!(&failure, Err(PeerError::Remote { failure: RemoteFailure::Handler(m), .. }) if m == "asked to fail"),
        "{failure:?}"
    );

    let served = server.stats().counters();
    assert_eq!(served.connections_authenticated, 1);
    assert_eq!(served.auth_failures, 0);
    assert_eq!(served.requests_served, 5);
    assert_eq!(served.rpc_errors, 1);
    assert_eq!(client.stats().counters().rpc_errors, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn t15_wrong_secret_is_refused_and_counted_on_both_sides() {
    let (server, raft) = start_server(SECRET, loopback()).await;
    let client = PeerClient::new(config(CLIENT_NODE, "another secret"));
    let mut net = network(&client, server.local_addr()).await;

    let outcome = net.append_entries(heartbeat(), option()).await;
    assert!(matches!(outcome, Err(RPCError::Unreachable(_))), "{outcome:?}");
    assert_eq!(client.stats().counters().auth_failures, 1);
    eventually("the server counts the refusal", || {
        server.stats().counters().auth_failures == 1
    })
    .await;
    assert_eq!(server.stats().counters().connections_authenticated, 0);
    assert_eq!(raft.appended_entries.load(Ordering::SeqCst), 0);

    tracing::info!("--- the failed peer backs off instead of redialling at once");
    let again = client
        .app_request(SERVER_NODE, b"x".to_vec(), Duration::from_secs(1))
        .await;
    assert!(matches!(again, Err(PeerError::BackingOff { .. })), "{again:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn t15_missing_proof_and_silent_peers_are_refused_and_counted() {
    let (server, _raft) = start_server(SECRET, loopback()).await;

    tracing::info!("--- a peer without the secret answers the challenge with an empty proof");
    let mut stream = TcpStream::connect(server.local_addr()).await.expect("connect");
    let hello = ClientHello {
        protocol: PROTOCOL_VERSION,
        cluster: CLUSTER.to_string(),
        node_id: 9,
        target: SERVER_NODE,
        nonce: [7; 32],
    };
    stream
        .write_all(&encode_frame(&hello, HANDSHAKE_MAX_FRAME).expect("encode"))
        .await
        .expect("send hello");
    let challenge: ServerHello = read_record(&mut stream, HANDSHAKE_MAX_FRAME).await.expect("challenge");
    assert!(matches!(
        challenge,
        ServerHello::Challenge {
            node_id: SERVER_NODE,
            ..
        }
    ));
    stream
        .write_all(&encode_frame(&ClientReply::Proof(Vec::new()), HANDSHAKE_MAX_FRAME).expect("encode"))
        .await
        .expect("send proof");
    let verdict: Verdict = read_record(&mut stream, HANDSHAKE_MAX_FRAME).await.expect("verdict");
    assert_eq!(verdict, Verdict::Refused(Refusal::Auth));
    assert!(closed_by_server(&mut stream).await);
    eventually("the server counts the refusal", || {
        server.stats().counters().auth_failures == 1
    })
    .await;

    tracing::info!("--- a peer that says nothing is dropped at the handshake deadline");
    let mut silent = TcpStream::connect(server.local_addr()).await.expect("connect");
    assert!(closed_by_server(&mut silent).await);
    eventually("the server counts the timeout", || {
        server.stats().counters().handshake_failures == 1
    })
    .await;
    assert_eq!(server.stats().counters().connections_authenticated, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn t15_garbage_and_oversized_frames_close_the_connection() {
    let (server, _raft) = start_server(SECRET, loopback()).await;
    let addr = server.local_addr();

    tracing::info!("--- before authentication");
    let mut garbage = TcpStream::connect(addr).await.expect("connect");
    garbage
        .write_all(&[0, 0, 0, 12, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8])
        .await
        .expect("send");
    assert!(closed_by_server(&mut garbage).await);
    let mut oversized = TcpStream::connect(addr).await.expect("connect");
    oversized.write_all(&[0xff, 0xff, 0xff, 0xff]).await.expect("send");
    assert!(closed_by_server(&mut oversized).await);
    eventually("both count as bad frames", || {
        server.stats().counters().frame_errors == 2
    })
    .await;

    tracing::info!("--- after authentication the frame limit is larger but still enforced");
    let client_config = config(CLIENT_NODE, SECRET);
    for bad in [vec![0xff, 0xff, 0xff, 0xff], vec![0, 0, 0, 3, 1, 0xff, 0xff]] {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        client_handshake(&mut stream, &client_config, SERVER_NODE)
            .await
            .expect("handshake");
        stream.write_all(&bad).await.expect("send");
        assert!(closed_by_server(&mut stream).await);
    }
    eventually("the server counts both", || server.stats().counters().frame_errors == 4).await;

    tracing::info!("--- the server still serves well-behaved peers");
    let client = PeerClient::new(client_config);
    let mut net = network(&client, addr).await;
    net.append_entries(heartbeat(), option())
        .await
        .expect("append_entries after garbage");
    server.shutdown().await;
}

#[tokio::test]
async fn t15_requests_share_one_connection() {
    let (server, _raft) = start_server(SECRET, loopback()).await;
    let client = PeerClient::new(config(CLIENT_NODE, SECRET));

    tracing::info!("--- sequential requests through new handles, then concurrent ones");
    for _ in 0..20 {
        let mut net = network(&client, server.local_addr()).await;
        net.append_entries(heartbeat(), option()).await.expect("append_entries");
    }
    let concurrent = (0..30).map(|_| {
        let client = client.clone();
        let addr = server.local_addr();
        tokio::spawn(async move {
            let mut net = network(&client, addr).await;
            net.vote(vote_request(), option()).await.map(|r| r.vote_granted)
        })
    });
    for outcome in futures::future::join_all(concurrent).await {
        assert!(outcome.expect("task").expect("vote"));
    }
    let counters = server.stats().counters();
    assert_eq!(counters.connections_accepted, 1);
    assert_eq!(counters.requests_served, 50);
    assert_eq!(client.stats().counters().connections_dialed, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn t15_client_reconnects_after_the_server_restarts() {
    let (server, _raft) = start_server(SECRET, loopback()).await;
    let addr = server.local_addr();
    let mut client_config = config(CLIENT_NODE, SECRET);
    client_config.reconnect_backoff_max = Duration::from_millis(200);
    let client = PeerClient::new(client_config);
    let mut net = network(&client, addr).await;
    net.append_entries(heartbeat(), option()).await.expect("first append");

    tracing::info!("--- the server goes away: requests fail as openraft expects");
    server.shutdown().await;
    let outcome = net.append_entries(heartbeat(), option()).await;
    assert!(
        matches!(outcome, Err(RPCError::Unreachable(_)) | Err(RPCError::Network(_))),
        "{outcome:?}"
    );

    tracing::info!("--- the server comes back on the same port: the client redials");
    let (server, raft) = start_server(SECRET, addr).await;
    let start = Instant::now();
    loop {
        match net
            .append_entries(heartbeat(), RPCOption::new(Duration::from_millis(500)))
            .await
        {
            Ok(response) => {
                assert_eq!(response, AppendEntriesResponse::Success);
                break;
            }
            Err(e) => assert!(start.elapsed() < DEADLINE, "no reconnect within the deadline: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(client.stats().counters().connections_dialed, 2);
    assert_eq!(server.stats().counters().connections_authenticated, 1);
    drop(raft);
    server.shutdown().await;
}

#[tokio::test]
async fn t15_snapshots_stream_in_chunks_and_install() {
    let (server, raft) = start_server(SECRET, loopback()).await;
    let client = PeerClient::new(config(CLIENT_NODE, SECRET));
    let mut factory = Factory::new(CLIENT_NODE, Some(client.clone()), BlockedPeers::default());
    let node = BasicNode::new(server.local_addr().to_string());
    let mut net = factory.new_snapshot_client(SERVER_NODE, &node).await;

    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let meta = SnapshotMetaOf::<TestConfig> {
        last_log_id: Some(openraft::testing::log_id::<TestConfig>(2, CLIENT_NODE, 40)),
        last_membership: StoredMembership::default(),
    };
    let snapshot = Snapshot {
        meta: meta.clone(),
        snapshot: Cursor::new(data.clone()),
    };
    let vote = TestVote::new(2, CLIENT_NODE);
    let cancel = std::future::pending::<ReplicationClosed>();
    let response = net
        .full_snapshot(vote, snapshot, cancel, option())
        .await
        .expect("full_snapshot");
    assert_eq!(response.vote, vote);

    let installed = raft.installed.lock().expect("test lock").clone();
    assert_eq!(installed.len(), 1);
    assert_eq!(installed[0].0, vote);
    assert_eq!(installed[0].1, meta);
    assert_eq!(installed[0].2, data);
    let counters = server.stats().counters();
    assert_eq!(counters.snapshots_received, 1);
    // 300,000 bytes in 64 KiB chunks: four full chunks and a last partial one.
    assert_eq!(counters.requests_served, 5);
    server.shutdown().await;
}

#[tokio::test]
async fn t15_snapshot_chunks_out_of_order_are_refused() {
    let (server, raft) = start_server(SECRET, loopback()).await;
    let client = PeerClient::new(config(CLIENT_NODE, SECRET));
    client.set_peer_address(SERVER_NODE, server.local_addr().to_string());
    let chunk = |transfer, offset| {
        RequestBody::SnapshotChunk(super::wire::SnapshotChunk {
            transfer,
            offset,
            data: vec![1; 10],
            finish: None,
        })
    };
    let timeout = Duration::from_secs(2);
    let call = |body| client.call(SERVER_NODE, client::Lane::Snapshot, body, timeout);
    call(chunk(1, 0)).await.expect("first chunk");
    let skipped = call(chunk(1, 20)).await;
    assert!(
        matches!(
            skipped,
            Err(PeerError::Remote {
                failure: RemoteFailure::BadRequest(_),
                ..
            })
        ),
        "{skipped:?}"
    );
    // The broken transfer is dropped: even the right offset no longer continues it.
    let resumed = call(chunk(1, 10)).await;
    assert!(matches!(resumed, Err(PeerError::Remote { .. })), "{resumed:?}");
    assert!(raft.installed.lock().expect("test lock").is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn t15_stopped_raft_is_unreachable_and_slow_raft_times_out() {
    let (server, raft) = start_server(SECRET, loopback()).await;
    let client = PeerClient::new(config(CLIENT_NODE, SECRET));
    let mut net = network(&client, server.local_addr()).await;

    raft.stopped.store(true, Ordering::SeqCst);
    let outcome = net.vote(vote_request(), option()).await;
    assert!(matches!(outcome, Err(RPCError::Unreachable(_))), "{outcome:?}");
    raft.stopped.store(false, Ordering::SeqCst);

    raft.slow_appends.store(true, Ordering::SeqCst);
    let outcome = net
        .append_entries(heartbeat(), RPCOption::new(Duration::from_millis(100)))
        .await;
    assert!(matches!(outcome, Err(RPCError::Timeout(_))), "{outcome:?}");
    raft.slow_appends.store(false, Ordering::SeqCst);

    tracing::info!("--- the late answer is dropped; the connection carries on");
    net.vote(vote_request(), option()).await.expect("vote after a timeout");
    assert_eq!(client.stats().counters().connections_dialed, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn t15_a_peer_that_stops_answering_is_redialled() {
    let (server, raft) = start_server(SECRET, loopback()).await;
    let client = PeerClient::new(config(CLIENT_NODE, SECRET));
    let mut net = network(&client, server.local_addr()).await;
    net.append_entries(heartbeat(), option()).await.expect("first append");

    tracing::info!("--- three requests in a row time out with nothing coming back");
    raft.slow_appends.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        let outcome = net
            .append_entries(heartbeat(), RPCOption::new(Duration::from_millis(50)))
            .await;
        assert!(matches!(outcome, Err(RPCError::Timeout(_))), "{outcome:?}");
    }
    raft.slow_appends.store(false, Ordering::SeqCst);

    tracing::info!("--- the next request goes over a new connection");
    net.vote(vote_request(), option())
        .await
        .expect("vote on a new connection");
    assert_eq!(client.stats().counters().connections_dialed, 2);
    server.shutdown().await;
}

#[tokio::test]
async fn t15_handshake_refuses_another_cluster_and_another_node() {
    let (server, _raft) = start_server(SECRET, loopback()).await;
    let addr = server.local_addr();

    let mut other_cluster = config(CLIENT_NODE, SECRET);
    other_cluster.cluster = "another".to_string();
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let refused = client_handshake(&mut stream, &other_cluster, SERVER_NODE).await;
    assert!(
        matches!(refused, Err(handshake::HandshakeError::RefusedByPeer(Refusal::Cluster))),
        "{refused:?}"
    );

    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let refused = client_handshake(&mut stream, &config(CLIENT_NODE, SECRET), 7).await;
    assert!(
        matches!(
            refused,
            Err(handshake::HandshakeError::RefusedByPeer(Refusal::WrongNode {
                expected: 7,
                actual: SERVER_NODE
            }))
        ),
        "{refused:?}"
    );
    eventually("both count as handshake failures", || {
        server.stats().counters().handshake_failures == 2
    })
    .await;
    assert_eq!(server.stats().counters().auth_failures, 0);
    server.shutdown().await;
}

#[test]
fn t15_secret_is_never_in_debug_output() {
    let config = config(CLIENT_NODE, SECRET);
    let printed = format!("{config:?}");
    assert!(!printed.contains(SECRET), "{printed}");
    assert!(matches!(ClusterSecret::new(""), Err(EmptySecret)));
}

/// Round-trip latency of an empty append_entries (a heartbeat) on loopback, printed for the
/// record; the assertion only catches a transport that stalls (for example Nagle's delay).
#[tokio::test]
async fn t15_heartbeat_round_trip_latency() {
    let (server, _raft) = start_server(SECRET, loopback()).await;
    let client = PeerClient::new(config(CLIENT_NODE, SECRET));
    let mut net = network(&client, server.local_addr()).await;
    net.append_entries(heartbeat(), option()).await.expect("warm up");
    let mut samples = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let start = Instant::now();
        net.append_entries(heartbeat(), option()).await.expect("append_entries");
        samples.push(start.elapsed());
    }
    samples.sort();
    let median = samples[samples.len() / 2];
    let p99 = samples[samples.len() * 99 / 100];
    eprintln!("append_entries round trip on loopback: median {median:?}, p99 {p99:?}");
    assert!(median < Duration::from_millis(20), "median {median:?}");
    server.shutdown().await;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random bytes never panic the frame decoders, whatever record they are read as.
    #[test]
    fn t15_random_bytes_never_panic_the_frame_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        runtime.block_on(async {
            let _ = read_record::<RequestFrame, _>(&mut &bytes[..], 1 << 20).await;
            let _ = read_record::<ResponseFrame, _>(&mut &bytes[..], 1 << 20).await;
            let _ = read_record::<ClientHello, _>(&mut &bytes[..], HANDSHAKE_MAX_FRAME).await;
            let _ = read_record::<ServerHello, _>(&mut &bytes[..], HANDSHAKE_MAX_FRAME).await;
            let _ = read_record::<ClientReply, _>(&mut &bytes[..], HANDSHAKE_MAX_FRAME).await;
            let _ = read_record::<Verdict, _>(&mut &bytes[..], HANDSHAKE_MAX_FRAME).await;
            let _ = crate::codec::decode::<AppendEntriesRequest<TestConfig>>(&bytes);
        });
    }

    /// Random bytes, with or without a well-formed length prefix, never authenticate and never
    /// panic the server's handshake.
    #[test]
    fn t15_random_bytes_never_pass_the_handshake(
        body in proptest::collection::vec(any::<u8>(), 0..300),
        framed in any::<bool>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
        let outcome = runtime.block_on(async {
            let (mut ours, mut theirs) = tokio::io::duplex(4096);
            let mut input = Vec::new();
            if framed {
                input.extend_from_slice(&(body.len() as u32).to_be_bytes());
            }
            input.extend_from_slice(&body);
            theirs.write_all(&input).await.expect("write to duplex");
            theirs.shutdown().await.expect("close duplex");
            let server_config = config(SERVER_NODE, SECRET);
            tokio::time::timeout(Duration::from_secs(1), server_handshake(&mut ours, &server_config)).await
        });
        prop_assert!(matches!(outcome, Ok(Err(_))), "{:?}", outcome);
    }
}

/// The transport plugs into the crate's own type configuration, state machine and snapshot
/// files: this only has to compile.
#[test]
fn t15_transport_fits_the_crate_raft_types() {
    use openraft::network::NetSnapshot;

    use crate::state_machine::{SnapshotData, StateMachineStore};
    use crate::types::TypeConfig;

    fn factory<N>()
    where
        N: RaftNetworkFactory<TypeConfig>,
        N::Network: NetSnapshot<TypeConfig, SnapshotData = SnapshotData>,
    {
    }
    fn handler<H: RaftRpcHandler<Config = TypeConfig, SnapshotData = SnapshotData>>() {}
    fn receiver<R: SnapshotReceive<SnapshotData>>() {}

    factory::<PeerNetworkFactory<TypeConfig, SnapshotData>>();
    handler::<openraft::Raft<TypeConfig, StateMachineStore>>();
    receiver::<FileSnapshotReceiver>();
}

#[tokio::test]
async fn t15_frame_error_kinds() {
    let result = read_record::<RequestFrame, _>(&mut &[0u8, 0, 0, 2, 9, 9][..], 16).await;
    assert!(matches!(result, Err(FrameError::Decode(_))), "{result:?}");
}

/// A member of a real openraft group built from the crate's own log store and state machine, with
/// this transport between the members.
struct RealMember {
    raft: openraft::Raft<crate::types::TypeConfig, crate::state_machine::StateMachineStore>,
    server: PeerServerHandle,
}

async fn start_real_member(id: u64, dir: &std::path::Path) -> RealMember {
    use crate::state_machine::{SnapshotData, StateMachineStore};
    use crate::types::TypeConfig;

    let log = crate::log_store::LogStore::open(&dir.join("wal")).expect("open the raft log");
    let kv = crate::mvcc::KvStateMachine::open(&dir.join("sm")).expect("open the state machine");
    let sm = StateMachineStore::open(kv, &dir.join("snapshots"), id).expect("open the snapshot store");
    let mut raft_config = openraft::Config {
        heartbeat_interval: 50,
        election_timeout_min: 300,
        election_timeout_max: 600,
        ..Default::default()
    };
    // Purging right behind a snapshot makes a new member need the snapshot, not the log.
    raft_config.max_in_snapshot_log_to_keep = 0;
    let raft_config = Arc::new(raft_config.validate().expect("valid raft config"));
    let network = PeerNetworkFactory::<TypeConfig, SnapshotData>::new(
        id,
        Some(PeerClient::new(config(id, SECRET))),
        BlockedPeers::default(),
    );
    let raft = openraft::Raft::new(id, raft_config, network, log, sm)
        .await
        .expect("start raft");
    let receiver = FileSnapshotReceiver {
        dir: dir.join("incoming"),
    };
    let server = PeerServer::new(config(id, SECRET), raft.clone(), receiver, NoAppRequests)
        .start(loopback())
        .await
        .expect("bind the peer listener");
    RealMember { raft, server }
}

fn peer_node(member: &RealMember) -> crate::types::PeerNode {
    crate::types::PeerNode {
        addr: member.server.local_addr().to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t15_real_raft_members_elect_replicate_and_ship_snapshots_over_the_transport() {
    use crate::command::Command;

    let dir = tempfile::tempdir().expect("temp dir");
    tracing::info!("--- three members form a group over the transport");
    let mut members = Vec::new();
    for id in 1..=3u64 {
        members.push(start_real_member(id, &dir.path().join(format!("m{id}"))).await);
    }
    let initial: std::collections::BTreeMap<u64, crate::types::PeerNode> = members
        .iter()
        .zip(1..)
        .map(|(member, id)| (id, peer_node(member)))
        .collect();
    members[0].raft.initialize(initial).await.expect("initialize");
    let metrics = members[0]
        .raft
        .wait(Some(DEADLINE))
        .metrics(|m| m.current_leader.is_some(), "a leader is elected")
        .await
        .expect("leader");
    let leader_id = metrics.current_leader.expect("checked by the wait");
    let leader = &members[(leader_id - 1) as usize].raft;

    tracing::info!("--- a write on the leader is applied on every member");
    let mut last_index = 0;
    for i in 0..20 {
        let start = Instant::now();
        // A newly elected leader refuses writes until a quorum has acknowledged it.
        last_index = loop {
            let put = kuboard_storage::PutRequest::new(format!("k{i}"), "v");
            match leader.client_write(Command::Put(put)).await {
                Ok(response) => break response.log_id.index,
                Err(e) => assert!(start.elapsed() < DEADLINE, "write not accepted in time: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
    }
    for member in &members {
        member
            .raft
            .wait(Some(DEADLINE))
            .applied_index_at_least(Some(last_index), "the writes are applied")
            .await
            .expect("applied on every member");
    }

    tracing::info!("--- after a snapshot and a purge, a new member catches up from the snapshot");
    leader.trigger().snapshot().await.expect("trigger snapshot");
    leader
        .wait(Some(DEADLINE))
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= last_index),
            "the snapshot is built",
        )
        .await
        .expect("snapshot");
    leader.trigger().purge_log(last_index).await.expect("trigger purge");
    leader
        .wait(Some(DEADLINE))
        .metrics(|m| m.purged.is_some_and(|p| p.index >= last_index), "the log is purged")
        .await
        .expect("purge");
    let learner = start_real_member(4, &dir.path().join("m4")).await;
    leader
        .add_learner(4, peer_node(&learner), true)
        .await
        .expect("add learner");
    learner
        .raft
        .wait(Some(DEADLINE))
        .applied_index_at_least(Some(last_index), "the learner caught up")
        .await
        .expect("learner applied");
    // The counter moves once install_full_snapshot has returned, which may be just after the
    // learner's metrics show the installed state.
    eventually("the learner counts the snapshot", || {
        learner.server.stats().counters().snapshots_received == 1
    })
    .await;
    assert_eq!(learner.server.stats().counters().auth_failures, 0);

    for member in members.into_iter().chain([learner]) {
        member.raft.shutdown().await.expect("raft shutdown");
        member.server.shutdown().await;
    }
}

/// A batch of entries whose request exceeds the frame limit used to fail to encode on every
/// attempt, and openraft resent the same batch forever. It must go out as a prefix that fits,
/// reported as a partial success, so that each call makes progress.
#[tokio::test]
async fn t15_append_batch_over_the_frame_limit_is_not_resent_forever() {
    use openraft::entry::RaftEntry;

    const LIMIT: usize = 64 * 1024;
    const ENTRIES: u64 = 40;
    let small = |node| {
        let mut config = config(node, SECRET);
        config.max_frame_bytes = LIMIT;
        config
    };
    let raft = FakeRaft::default();
    let server = PeerServer::new(small(SERVER_NODE), raft.clone(), InMemorySnapshotReceiver, EchoHandler)
        .start(loopback())
        .await
        .expect("bind the peer listener");
    let client = PeerClient::new(small(CLIENT_NODE));
    let mut net = network(&client, server.local_addr()).await;

    // 40 entries of 4 KiB each: 160 KiB in one batch, more than twice the frame limit.
    let all: Vec<_> = (1..=ENTRIES)
        .map(|i| {
            let log_id = openraft::testing::log_id::<TestConfig>(1, CLIENT_NODE, i);
            <TestConfig as openraft::RaftTypeConfig>::Entry::new_normal(log_id, "x".repeat(4096))
        })
        .collect();
    let mut prev_log_id = None;
    let mut calls = 0;
    while raft.appended_entries.load(Ordering::SeqCst) < ENTRIES as usize {
        calls += 1;
        assert!(calls <= ENTRIES, "no progress after {ENTRIES} calls");
        let sent = raft.appended_entries.load(Ordering::SeqCst);
        let request = AppendEntriesRequest {
            vote: TestVote::new(1, CLIENT_NODE),
            prev_log_id,
            entries: all[sent..].to_vec(),
            leader_commit: None,
        };
        let response = net
            .append_entries(request, option())
            .await
            .unwrap_or_else(|e| panic!("call {calls} with {} entries failed: {e}", ENTRIES as usize - sent));
        let delivered = raft.appended_entries.load(Ordering::SeqCst);
        assert!(delivered > sent, "call {calls} delivered nothing: {response:?}");
        let expected_last = all[delivered - 1].log_id();
        match response {
            AppendEntriesResponse::Success => assert_eq!(delivered, ENTRIES as usize, "success before the end"),
            AppendEntriesResponse::PartialSuccess(Some(last)) => assert_eq!(last, expected_last),
            other => panic!("unexpected answer {other:?}"),
        }
        prev_log_id = Some(expected_last);
    }
    assert!(
        calls > 2,
        "the batch cannot fit in fewer than 3 frames, yet took {calls} calls"
    );
    server.shutdown().await;
}
