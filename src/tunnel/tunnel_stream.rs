//! One HTTP/2 stream of a tunnel as a byte stream. Reading releases flow-control window only as
//! the reader consumes bytes, so a slow reader holds back its own stream and no other; writing
//! waits for window the peer granted to this stream.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::{Buf, Bytes};
use h2::{RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The largest chunk written as one DATA frame sequence at a time.
const MAX_WRITE: usize = 64 * 1024;

/// Milliseconds since a fixed start at the last read or write; shared with an idle watchdog.
#[derive(Debug, Clone)]
pub struct Activity {
    start: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Default for Activity {
    fn default() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Activity {
    fn touch(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// How long since the last read or write.
    pub fn idle_for(&self) -> std::time::Duration {
        let now = self.start.elapsed().as_millis() as u64;
        std::time::Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

pub struct TunnelStream {
    send: SendStream<Bytes>,
    recv: RecvStream,
    pending: Bytes,
    activity: Activity,
    /// Decremented when the stream is dropped (open-stream gauges).
    on_drop: Option<Box<dyn FnOnce() + Send + Sync>>,
    /// Bytes read and written, when counted (per cluster on a replica).
    counters: Option<(prometheus::IntCounter, prometheus::IntCounter)>,
}

impl TunnelStream {
    pub fn new(send: SendStream<Bytes>, recv: RecvStream) -> TunnelStream {
        TunnelStream {
            send,
            recv,
            pending: Bytes::new(),
            activity: Activity::default(),
            on_drop: None,
            counters: None,
        }
    }

    /// Counts the bytes read into `received` and the bytes written into `sent`.
    pub fn count_bytes(mut self, received: prometheus::IntCounter, sent: prometheus::IntCounter) -> TunnelStream {
        self.counters = Some((received, sent));
        self
    }

    pub fn activity(&self) -> Activity {
        self.activity.clone()
    }

    pub fn on_drop(mut self, action: impl FnOnce() + Send + Sync + 'static) -> TunnelStream {
        self.on_drop = Some(Box::new(action));
        self
    }
}

impl Drop for TunnelStream {
    fn drop(&mut self) {
        // A stream dropped before its end resets on the peer's side, which closes the peer's
        // TCP connection too: nothing stays half open.
        self.send.send_reset(h2::Reason::CANCEL);
        if let Some(action) = self.on_drop.take() {
            action();
        }
    }
}

fn h2_error(error: h2::Error) -> io::Error {
    if error.is_io() {
        return error.into_io().unwrap_or_else(|| io::Error::other("tunnel I/O failed"));
    }
    io::Error::new(io::ErrorKind::ConnectionReset, error)
}

impl AsyncRead for TunnelStream {
    fn poll_read(self: Pin<&mut Self>, context: &mut Context<'_>, buffer: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pending.is_empty() {
            match ready!(this.recv.poll_data(context)) {
                None => return Poll::Ready(Ok(())),
                Some(Err(error)) => {
                    // The peer ending its side with NO_ERROR after its data is an orderly close.
                    if error.reason() == Some(h2::Reason::NO_ERROR) {
                        return Poll::Ready(Ok(()));
                    }
                    return Poll::Ready(Err(h2_error(error)));
                }
                Some(Ok(data)) => this.pending = data,
            }
        }
        let count = this.pending.len().min(buffer.remaining());
        buffer.put_slice(&this.pending[..count]);
        this.pending.advance(count);
        let _ = this.recv.flow_control().release_capacity(count);
        if let Some((received, _)) = &this.counters {
            received.inc_by(count as u64);
        }
        this.activity.touch();
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for TunnelStream {
    fn poll_write(self: Pin<&mut Self>, context: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        this.send.reserve_capacity(data.len().min(MAX_WRITE));
        let granted = match this.send.capacity() {
            0 => match this.send.poll_capacity(context) {
                Poll::Pending => {
                    // Wake also when the peer resets the stream while no window comes.
                    if let Poll::Ready(Ok(reason)) = this.send.poll_reset(context) {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::ConnectionReset,
                            format!("the tunnel stream was reset: {reason}"),
                        )));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(None) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "the tunnel stream is closed",
                    )))
                }
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Err(h2_error(error))),
                Poll::Ready(Some(Ok(granted))) => granted,
            },
            available => available,
        };
        let count = granted.min(data.len());
        this.send
            .send_data(Bytes::copy_from_slice(&data[..count]), false)
            .map_err(h2_error)?;
        if let Some((_, sent)) = &this.counters {
            sent.inc_by(count as u64);
        }
        this.activity.touch();
        Poll::Ready(Ok(count))
    }

    fn poll_flush(self: Pin<&mut Self>, _context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // End of stream: the peer reads EOF, this side may still read.
        let _ = this.send.send_data(Bytes::new(), true);
        Poll::Ready(Ok(()))
    }
}
