//! One authenticated client connection to a peer, multiplexing concurrent requests: each request
//! carries an id, a writer task sends frames in order, a reader task hands every response to the
//! request waiting for its id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::stats::PeerStats;
use super::wire::{RemoteFailure, RequestBody, RequestFrame, ResponseFrame};
use crate::framing::{decode_payload, encode_frame, read_frame, FrameError};

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
    /// Start the reader and writer tasks on a stream whose handshake has completed.
    pub(super) fn start(stream: TcpStream, target: u64, max_frame_bytes: usize, stats: PeerStats) -> Self {
        let (read_half, write_half) = stream.into_split();
        let pending = Arc::new(Mutex::new(Pending::default()));
        let (outgoing, queue) = mpsc::channel(OUTGOING_QUEUE);
        let silent_timeouts = Arc::new(AtomicU32::new(0));
        let reader = tokio::spawn(read_responses(
            read_half,
            target,
            max_frame_bytes,
            pending.clone(),
            silent_timeouts.clone(),
            stats,
        ));
        let writer = tokio::spawn(write_requests(write_half, queue, pending.clone()));
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
        let frame = encode_frame(&RequestFrame { id, body }, self.max_frame_bytes).map_err(RequestError::Encode)?;
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
                .send(frame)
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

async fn write_requests(write_half: OwnedWriteHalf, mut queue: mpsc::Receiver<Vec<u8>>, pending: Arc<Mutex<Pending>>) {
    let mut writer = BufWriter::new(write_half);
    let failure = loop {
        let Some(frame) = queue.recv().await else {
            break None;
        };
        if let Err(e) = writer.write_all(&frame).await {
            break Some(e);
        }
        // Frames already queued go out in the same write; the flush waits for an idle queue.
        let mut failed = None;
        while let Ok(frame) = queue.try_recv() {
            if let Err(e) = writer.write_all(&frame).await {
                failed = Some(e);
                break;
            }
        }
        if let Some(e) = failed {
            break Some(e);
        }
        if let Err(e) = writer.flush().await {
            break Some(e);
        }
    };
    if let Some(e) = failure {
        lock(&pending).close(format!("write to peer: {e}"));
    }
}

async fn read_responses(
    mut read_half: OwnedReadHalf,
    target: u64,
    max_frame_bytes: usize,
    pending: Arc<Mutex<Pending>>,
    silent_timeouts: Arc<AtomicU32>,
    stats: PeerStats,
) {
    let reason = loop {
        let response = match read_frame(&mut read_half, max_frame_bytes).await {
            Ok(payload) => decode_payload::<ResponseFrame>(&payload, max_frame_bytes),
            Err(e) => Err(e),
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
