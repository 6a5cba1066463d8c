//! One authenticated client connection to a peer, multiplexing concurrent requests: each request
//! carries an id, a writer task sends frames in order, a reader task hands every response to the
//! request waiting for its id. Every frame is sealed by the writer and opened by the reader with
//! the connection's keys (`sealing`), so frames are sealed in the order they are written.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::sealing::{OpenError, Opener, Sealer, SessionKeys};
use super::stats::PeerStats;
use super::wire::{RemoteFailure, RequestBody, RequestFrame, ResponseFrame};
use crate::framing::{decode_payload, encode_payload, FrameError};

/// Frames queued for the writer before callers wait.
const OUTGOING_QUEUE: usize = 1024;

/// Requests in a row that may time out with no response of any kind arriving in between before the
/// connection is taken for dead. A peer host that vanished without closing the connection (power
/// loss, partition) otherwise keeps it "open" for the kernel's retransmission timeout, and every
/// request would time out instead of redialling.
const SILENT_TIMEOUTS_BEFORE_CLOSE: u32 = 3;

/// How a request on a connection failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum RequestError {
    /// The connection is gone (now or before the request could be sent); the request may or may
    /// not have reached the peer.
    #[error("{0}")]
    Lost(String),
    #[error("no response within {0:?}")]
    Timeout(Duration),
    #[error("request not sent: {0}")]
    Encode(FrameError),
}

type Responder = oneshot::Sender<Result<Result<Vec<u8>, RemoteFailure>, String>>;

/// Requests waiting for their response, and why the connection closed once it has.
#[derive(Default)]
struct Pending {
    waiting: HashMap<u64, Responder>,
    closed: Option<String>,
}

impl Pending {
    /// Mark the connection closed and fail every waiting request; later requests fail at once.
    fn close(&mut self, reason: String) {
        for (_, responder) in self.waiting.drain() {
            let _ = responder.send(Err(reason.clone()));
        }
        self.closed.get_or_insert(reason);
    }
}

pub(super) struct MuxConnection {
    target: u64,
    max_frame_bytes: usize,
    next_id: AtomicU64,
    /// Requests timed out since the last response of any kind; shared with the reader, which
    /// resets it.
    silent_timeouts: Arc<AtomicU32>,
    pending: Arc<Mutex<Pending>>,
    outgoing: mpsc::Sender<Vec<u8>>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl MuxConnection {
    /// Start the reader and writer tasks on a stream whose handshake has completed with `keys`.
    pub(super) fn start(
        stream: TcpStream,
        keys: SessionKeys,
        target: u64,
        max_frame_bytes: usize,
        stats: PeerStats,
    ) -> Self {
        let (read_half, write_half) = stream.into_split();
        let sealer = Sealer::new(&keys.client_to_server);
        let opener = Opener::new(&keys.server_to_client);
        drop(keys);
        let pending = Arc::new(Mutex::new(Pending::default()));
        let (outgoing, queue) = mpsc::channel(OUTGOING_QUEUE);
        let silent_timeouts = Arc::new(AtomicU32::new(0));
        let reader = tokio::spawn(read_responses(
            read_half,
            opener,
            target,
            max_frame_bytes,
            pending.clone(),
            silent_timeouts.clone(),
            stats,
        ));
        let writer = tokio::spawn(write_requests(write_half, sealer, queue, pending.clone()));
        Self {
            target,
            max_frame_bytes,
            next_id: AtomicU64::new(1),
            silent_timeouts,
            pending,
            outgoing,
            reader,
            writer,
        }
    }

    /// Whether the connection can still carry requests.
    pub(super) fn is_open(&self) -> bool {
        lock(&self.pending).closed.is_none()
    }

    /// Send one request and wait at most `timeout` for its response.
    pub(super) async fn request(
        &self,
        body: RequestBody,
        timeout: Duration,
    ) -> Result<Result<Vec<u8>, RemoteFailure>, RequestError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let record = encode_payload(&RequestFrame { id, body }, self.max_frame_bytes).map_err(RequestError::Encode)?;
        let (responder, response) = oneshot::channel();
        {
            let mut pending = lock(&self.pending);
            if let Some(reason) = &pending.closed {
                return Err(RequestError::Lost(reason.clone()));
            }
            pending.waiting.insert(id, responder);
        }
        let exchange = async {
            self.outgoing
                .send(record)
                .await
                .map_err(|_| RequestError::Lost("connection writer stopped".to_string()))?;
            match response.await {
                Ok(Ok(body)) => Ok(body),
                Ok(Err(reason)) => Err(RequestError::Lost(reason)),
                Err(_) => Err(RequestError::Lost("connection dropped the request".to_string())),
            }
        };
        let outcome = match tokio::time::timeout(timeout, exchange).await {
            Ok(outcome) => outcome,
            Err(_) => Err(RequestError::Timeout(timeout)),
        };
        if outcome.is_err() {
            let mut pending = lock(&self.pending);
            pending.waiting.remove(&id);
            if matches!(outcome, Err(RequestError::Timeout(_)))
                && self.silent_timeouts.fetch_add(1, Ordering::Relaxed) + 1 >= SILENT_TIMEOUTS_BEFORE_CLOSE
            {
                tracing::info!(
                    peer = self.target,
                    "closing a connection on which the peer stopped answering"
                );
                pending.close(format!("peer {} stopped answering on this connection", self.target));
                self.reader.abort();
                self.writer.abort();
            }
        }
        outcome
    }
}

impl Drop for MuxConnection {
    fn drop(&mut self) {
        lock(&self.pending).close(format!("connection to peer {} closed", self.target));
        self.reader.abort();
        self.writer.abort();
    }
}

fn lock(pending: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    // A panic while holding this lock leaves the map consistent (every operation is one insert,
    // remove or drain), so a poisoned lock is still safe to use.
    pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Seals the queued records in order and writes them.
async fn write_requests(
    write_half: OwnedWriteHalf,
    sealer: Sealer,
    queue: mpsc::Receiver<Vec<u8>>,
    pending: Arc<Mutex<Pending>>,
) {
    if let Err(e) = write_sealed(write_half, sealer, queue).await {
        lock(&pending).close(format!("write to peer: {e}"));
    }
}

/// Seal every record of `queue` in order and write it; records already queued go out in the same
/// write, and the flush waits for an idle queue. Ends when the queue closes or a write fails.
pub(super) async fn write_sealed<W: tokio::io::AsyncWrite + Unpin>(
    write_half: W,
    mut sealer: Sealer,
    mut queue: mpsc::Receiver<Vec<u8>>,
) -> Result<(), FrameError> {
    let mut writer = BufWriter::new(write_half);
    while let Some(record) = queue.recv().await {
        writer.write_all(&sealer.seal(&record)?).await?;
        while let Ok(record) = queue.try_recv() {
            writer.write_all(&sealer.seal(&record)?).await?;
        }
        writer.flush().await?;
    }
    Ok(())
}

async fn read_responses(
    mut read_half: OwnedReadHalf,
    mut opener: Opener,
    target: u64,
    max_frame_bytes: usize,
    pending: Arc<Mutex<Pending>>,
    silent_timeouts: Arc<AtomicU32>,
    stats: PeerStats,
) {
    let reason = loop {
        let response = match opener.read(&mut read_half, max_frame_bytes).await {
            Ok(payload) => decode_payload::<ResponseFrame>(&payload, max_frame_bytes),
            Err(OpenError::Frame(e)) => Err(e),
            Err(OpenError::Forged) => {
                stats.forged_frame();
                tracing::warn!(
                    peer = target,
                    "closing the connection to a peer: a frame failed its integrity check (altered, injected or \
                     replayed on the way)"
                );
                break format!("a frame from peer {target} failed its integrity check");
            }
        };
        match response {
            Ok(ResponseFrame { id, body }) => {
                silent_timeouts.store(0, Ordering::Relaxed);
                let responder = lock(&pending).waiting.remove(&id);
                // A response without a waiter belongs to a request that timed out; drop it.
                if let Some(responder) = responder {
                    let _ = responder.send(Ok(body));
                }
            }
            Err(FrameError::Closed) => break format!("peer {target} closed the connection"),
            Err(e) => {
                if e.is_malformed() {
                    stats.frame_error();
                    tracing::warn!(peer = target, error = %e, "closing the connection to a peer that sent a bad frame");
                }
                break format!("read from peer {target}: {e}");
            }
        }
    };
    tracing::debug!(peer = target, %reason, "peer connection closed");
    lock(&pending).close(reason);
}
