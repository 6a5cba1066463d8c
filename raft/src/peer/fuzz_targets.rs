//! The peer transport's decoders as fuzz targets (see `crate::fuzzing`): everything a member reads
//! from another member's connection, before and after the handshake, including the application
//! messages forwarded between members and the snapshot chunks.

use std::cell::RefCell;
use std::time::Duration;

use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use tokio::io::AsyncWriteExt;

use super::config::{ClusterSecret, PeerConfig};
use super::handshake::{client_handshake, server_handshake};
use super::network::SnapshotFinish;
use super::sealing::{Opener, Sealer, SessionKeys, Transcript};
use super::wire::{
    ClientHello, ClientReply, RequestBody, RequestFrame, ResponseFrame, ServerHello, SnapshotChunk, Verdict,
    HANDSHAKE_MAX_FRAME, NONCE_BYTES, PROTOCOL_VERSION,
};
use crate::codec;
use crate::framing::{decode_payload, encode_frame, read_record};
use crate::member_messages::{AppRequest, AppResponse, MAX_APP_MESSAGE_BYTES};
use crate::types::TypeConfig;

/// The frame limit the targets read with: small enough that a lying length is refused quickly.
const LIMIT: usize = 1 << 20;
const CLUSTER: &str = "fuzz";
const SECRET: &str = "a secret of the fuzzed group";

thread_local! {
    static RUNTIME: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
}

/// Run `future` on this thread's runtime (made on first use).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    RUNTIME.with(|cell| {
        let mut slot = cell.borrow_mut();
        let runtime = slot.get_or_insert_with(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("a current-thread runtime")
        });
        runtime.block_on(future)
    })
}

fn config(node_id: u64) -> PeerConfig {
    PeerConfig::new(node_id, CLUSTER, ClusterSecret::new(SECRET).expect("non-empty"))
}

/// Every record read from a stream of frames, as each type a member reads.
pub fn peer_frames(data: &[u8]) {
    block_on(async {
        let mut stream = data;
        // A stream of requests, as the server reads them, until the first error.
        while read_record::<RequestFrame, _>(&mut stream, LIMIT).await.is_ok() {}
        let _ = read_record::<ResponseFrame, _>(&mut &data[..], LIMIT).await;
        let _ = read_record::<ClientHello, _>(&mut &data[..], HANDSHAKE_MAX_FRAME).await;
        let _ = read_record::<ServerHello, _>(&mut &data[..], HANDSHAKE_MAX_FRAME).await;
        let _ = read_record::<ClientReply, _>(&mut &data[..], HANDSHAKE_MAX_FRAME).await;
        let _ = read_record::<Verdict, _>(&mut &data[..], HANDSHAKE_MAX_FRAME).await;
    });
}

/// Seeds for [`peer_frames`]: one well-formed frame of each kind.
pub fn peer_seeds() -> Vec<Vec<u8>> {
    let frame = |record: &dyn erased::Frame| record.frame();
    vec![
        frame(&RequestFrame {
            id: 7,
            body: RequestBody::App(b"forwarded".to_vec()),
        }),
        frame(&RequestFrame {
            id: 8,
            body: RequestBody::SnapshotChunk(SnapshotChunk {
                transfer: 1,
                offset: 0,
                data: vec![1, 2, 3],
                finish: Some(vec![4, 5]),
            }),
        }),
        frame(&ResponseFrame {
            id: 7,
            body: Ok(b"answer".to_vec()),
        }),
        frame(&ResponseFrame {
            id: 9,
            body: Err(super::wire::RemoteFailure::BadRequest("no".to_string())),
        }),
        frame(&hello()),
        frame(&ServerHello::Challenge {
            node_id: 2,
            nonce: [3; NONCE_BYTES],
            proof: vec![4; 32],
        }),
        frame(&ClientReply::Proof(vec![5; 32])),
        frame(&Verdict::Accepted),
    ]
}

mod erased {
    /// A record that can be framed, for a list of records of different types.
    pub(super) trait Frame {
        fn frame(&self) -> Vec<u8>;
    }

    impl<T: serde::Serialize> Frame for T {
        fn frame(&self) -> Vec<u8> {
            crate::framing::encode_frame(self, super::LIMIT).expect("a seed encodes")
        }
    }
}

fn hello() -> ClientHello {
    ClientHello {
        protocol: PROTOCOL_VERSION,
        cluster: CLUSTER.to_string(),
        node_id: 1,
        target: 2,
        nonce: [1; NONCE_BYTES],
    }
}

/// One end of a pipe whose other end sent `data` and closed, as a peer that sends `data` and hangs
/// up. What does not fit the pipe is dropped: a handshake reads at most a few small frames.
async fn peer_that_sent(data: &[u8]) -> tokio::io::DuplexStream {
    let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
    let _ = theirs.write_all(&data[..data.len().min(60 * 1024)]).await;
    let _ = theirs.shutdown().await;
    ours
}

/// The accepting side of the handshake reading `data` from a peer that then closes.
pub fn peer_server_handshake(data: &[u8]) {
    let server = config(2);
    let outcome = block_on(async {
        let mut stream = peer_that_sent(data).await;
        tokio::time::timeout(Duration::from_secs(1), server_handshake(&mut stream, &server)).await
    });
    // Nothing but the secret authenticates: random bytes never pass.
    assert!(
        !matches!(outcome, Ok(Ok(_))),
        "bytes without the secret passed the server handshake"
    );
}

/// The dialling side of the handshake reading `data` from a server that then closes.
pub fn peer_client_handshake(data: &[u8]) {
    let client = config(1);
    let outcome = block_on(async {
        let mut stream = peer_that_sent(data).await;
        tokio::time::timeout(Duration::from_secs(1), client_handshake(&mut stream, &client, 2)).await
    });
    assert!(
        !matches!(outcome, Ok(Ok(_))),
        "bytes without the secret passed the client handshake"
    );
}

/// Seeds for the handshake targets: a hello then a proof (as a client sends), and a challenge then
/// a verdict (as a server sends).
pub fn handshake_seeds() -> Vec<Vec<u8>> {
    let mut from_client = encode_frame(&hello(), HANDSHAKE_MAX_FRAME).expect("encode");
    from_client.extend(encode_frame(&ClientReply::Proof(vec![9; 32]), HANDSHAKE_MAX_FRAME).expect("encode"));
    let mut from_server = encode_frame(
        &ServerHello::Challenge {
            node_id: 2,
            nonce: [3; NONCE_BYTES],
            proof: vec![4; 32],
        },
        HANDSHAKE_MAX_FRAME,
    )
    .expect("encode");
    from_server.extend(encode_frame(&Verdict::Accepted, HANDSHAKE_MAX_FRAME).expect("encode"));
    vec![from_client, from_server]
}

fn fuzz_keys() -> SessionKeys {
    SessionKeys::derive(
        &ClusterSecret::new(SECRET).expect("non-empty"),
        &Transcript {
            cluster: CLUSTER,
            client: 1,
            server: 2,
            client_nonce: &[1; NONCE_BYTES],
            server_nonce: &[2; NONCE_BYTES],
        },
    )
}

/// A stream of sealed frames, opened and decoded as the server does after the handshake. Only the
/// frames sealed with the connection's key open; the rest must be refused without a panic.
pub fn sealed_frames(data: &[u8]) {
    let keys = fuzz_keys();
    let mut opener = Opener::new(&keys.client_to_server);
    block_on(async {
        let mut stream = data;
        while let Ok(record) = opener.read(&mut stream, LIMIT).await {
            let _ = decode_payload::<RequestFrame>(&record, LIMIT);
        }
    });
}

/// Seeds for [`sealed_frames`]: two requests sealed with the target's key.
pub fn sealed_seeds() -> Vec<Vec<u8>> {
    let keys = fuzz_keys();
    let mut sealer = Sealer::new(&keys.client_to_server);
    let mut stream = Vec::new();
    for (id, body) in [
        (1, RequestBody::App(b"forwarded write".to_vec())),
        (2, RequestBody::Vote(vec![0; 24])),
    ] {
        let record = codec::encode(&RequestFrame { id, body }).expect("encode");
        stream.extend(sealer.seal(&record).expect("seal"));
    }
    vec![stream]
}

/// The typed records inside request and response bodies: openraft's RPCs with the crate's types,
/// the snapshot's closing record, and the application messages forwarded between members.
pub fn raft_rpcs(data: &[u8]) {
    let _ = codec::decode_with_limit::<AppendEntriesRequest<TypeConfig>>(data, LIMIT);
    let _ = codec::decode_with_limit::<AppendEntriesResponse<TypeConfig>>(data, LIMIT);
    let _ = codec::decode_with_limit::<VoteRequest<TypeConfig>>(data, LIMIT);
    let _ = codec::decode_with_limit::<VoteResponse<TypeConfig>>(data, LIMIT);
    let _ = codec::decode_with_limit::<SnapshotResponse<TypeConfig>>(data, LIMIT);
    let _ = codec::decode_with_limit::<AppRequest>(data, MAX_APP_MESSAGE_BYTES);
    let _ = codec::decode_with_limit::<AppResponse>(data, MAX_APP_MESSAGE_BYTES);
}

/// Seeds for [`raft_rpcs`].
pub fn raft_rpc_seeds() -> Vec<Vec<u8>> {
    use crate::command::Command;
    use kuboard_storage::PutRequest;
    let vote = openraft::type_config::alias::VoteOf::<TypeConfig>::new(3, 1);
    let entries = vec![openraft::testing::blank_ent::<TypeConfig>(1, 1, 1)];
    vec![
        codec::encode(&AppendEntriesRequest::<TypeConfig> {
            vote,
            prev_log_id: None,
            entries,
            leader_commit: None,
        })
        .expect("encode"),
        codec::encode(&VoteRequest::<TypeConfig>::new(vote, None)).expect("encode"),
        codec::encode(&AppRequest::Leader {
            op: crate::member_messages::LeaderOp::Write(Command::Put(PutRequest::new("k", "v"))),
            timeout_ms: 1000,
        })
        .expect("encode"),
        codec::encode(&AppRequest::Probe).expect("encode"),
    ]
}

/// A snapshot chunk as the receiver decodes it: the chunk, then its closing record.
pub fn snapshot_chunks(data: &[u8]) {
    if let Ok(RequestBody::SnapshotChunk(chunk)) = codec::decode_with_limit::<RequestBody>(data, LIMIT) {
        if let Some(finish) = chunk.finish {
            let _ = codec::decode_with_limit::<SnapshotFinish<TypeConfig>>(&finish, LIMIT);
        }
    }
    let _ = codec::decode_with_limit::<SnapshotFinish<TypeConfig>>(data, LIMIT);
}

/// Seeds for [`snapshot_chunks`]: a first chunk, and a last one carrying a vote and meta.
pub fn snapshot_chunk_seeds() -> Vec<Vec<u8>> {
    let finish = SnapshotFinish::<TypeConfig> {
        vote: openraft::type_config::alias::VoteOf::<TypeConfig>::new(2, 1),
        meta: Default::default(),
    };
    let finish = codec::encode(&finish).expect("encode");
    vec![
        codec::encode(&RequestBody::SnapshotChunk(SnapshotChunk {
            transfer: 5,
            offset: 0,
            data: vec![7; 64],
            finish: None,
        }))
        .expect("encode"),
        codec::encode(&RequestBody::SnapshotChunk(SnapshotChunk {
            transfer: 5,
            offset: 64,
            data: vec![8; 16],
            finish: Some(finish.clone()),
        }))
        .expect("encode"),
        finish,
    ]
}
