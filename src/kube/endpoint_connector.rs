//! Connections to one apiserver endpoint: TCP (+ TLS), each tied to the endpoint's
//! [`KillSwitch`] so that a failover can close every connection to a failed server at once, the
//! ones carrying in-flight watches, log streams and exec sessions included.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::kube::apiserver_url::ApiserverUrl;
use crate::tunnel::hub::{DialError, HubConnection, TunnelHub};
use crate::tunnel::tunnel_stream::TunnelStream;

/// Where the connections of an agent cluster are opened: through a tunnel of its agent.
#[derive(Clone, Debug)]
pub struct TunnelRoute {
    pub hub: Arc<TunnelHub>,
    pub cluster: String,
}

/// Closes every open connection of one endpoint on demand. Connections opened afterwards are
/// unaffected.
#[derive(Debug, Default)]
pub struct KillSwitch {
    current: Mutex<CancellationToken>,
    open: AtomicUsize,
}

impl KillSwitch {
    /// Closes every connection open now; returns how many there were.
    pub fn close_all(&self) -> usize {
        let mut current = self.current.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let old = std::mem::take(&mut *current);
        old.cancel();
        self.open.load(Ordering::SeqCst)
    }

    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    fn token(&self) -> CancellationToken {
        self.current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// The hyper connector of one endpoint: whatever URI hyper asks for, it dials this endpoint
/// (the pool has one client per endpoint).
#[derive(Clone)]
pub struct EndpointConnector {
    pub endpoint: ApiserverUrl,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub kill_switch: Arc<KillSwitch>,
    pub connect_timeout: Duration,
    /// Set for an agent cluster: dial through its tunnel instead of over TCP.
    pub tunnel: Option<TunnelRoute>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect to {endpoint}: {source}")]
    Tcp { endpoint: String, source: io::Error },
    #[error("connect to {endpoint}: timed out after {timeout_ms} ms")]
    Timeout { endpoint: String, timeout_ms: u64 },
    #[error("TLS handshake with {endpoint}: {source}")]
    Tls { endpoint: String, source: io::Error },
    #[error("connect to {endpoint} through the agent: {source}")]
    Tunnel { endpoint: String, source: DialError },
    #[error("{endpoint} is https but no TLS configuration was made")]
    NoTls { endpoint: String },
}

impl EndpointConnector {
    pub async fn connect(&self) -> Result<KillableStream, ConnectError> {
        let endpoint = self.endpoint.to_string();
        let dial = async {
            let tcp = if let Some(route) = &self.tunnel {
                let connection = route
                    .hub
                    .dial_any(&route.cluster, &self.endpoint.authority(), self.connect_timeout)
                    .await
                    .map_err(|source| ConnectError::Tunnel {
                        endpoint: endpoint.clone(),
                        source,
                    })?;
                match connection {
                    HubConnection::Local(tunnelled) => {
                        if !self.endpoint.https {
                            return Ok(EndpointStream::Tunnel(tunnelled));
                        }
                        let tls = self.tls_over(tunnelled, &endpoint).await?;
                        return Ok(EndpointStream::TunnelTls(Box::new(tls)));
                    }
                    // Through a peer replica's tunnel: a TCP connection carrying the apiserver's bytes.
                    HubConnection::Peer(tcp) => tcp,
                }
            } else {
                TcpStream::connect(self.endpoint.authority())
                    .await
                    .map_err(|source| ConnectError::Tcp {
                        endpoint: endpoint.clone(),
                        source,
                    })?
            };
            // Interactive exec sessions send keystrokes one by one.
            let _ = tcp.set_nodelay(true);
            if !self.endpoint.https {
                return Ok(EndpointStream::Plain(tcp));
            }
            let tls = self.tls_over(tcp, &endpoint).await?;
            Ok(EndpointStream::Tls(Box::new(tls)))
        };
        let stream = tokio::time::timeout(self.connect_timeout, dial)
            .await
            .map_err(|_| ConnectError::Timeout {
                endpoint: endpoint.clone(),
                timeout_ms: self.connect_timeout.as_millis() as u64,
            })??;
        Ok(KillableStream::new(stream, &self.kill_switch))
    }
}

impl EndpointConnector {
    /// The TLS handshake with the endpoint over `io` (a TCP connection or a tunnel stream).
    async fn tls_over<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        io: IO,
        endpoint: &str,
    ) -> Result<tokio_rustls::client::TlsStream<IO>, ConnectError> {
        let config = self.tls.clone().ok_or_else(|| ConnectError::NoTls {
            endpoint: endpoint.to_string(),
        })?;
        let server_name = ServerName::try_from(self.endpoint.host.clone()).map_err(|error| ConnectError::Tls {
            endpoint: endpoint.to_string(),
            source: io::Error::new(io::ErrorKind::InvalidInput, error),
        })?;
        tokio_rustls::TlsConnector::from(config)
            .connect(server_name, io)
            .await
            .map_err(|source| ConnectError::Tls {
                endpoint: endpoint.to_string(),
                source,
            })
    }
}

impl tower::Service<http::Uri> for EndpointConnector {
    type Response = TokioIo<KillableStream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: http::Uri) -> Self::Future {
        let connector = self.clone();
        Box::pin(async move { connector.connect().await.map(TokioIo::new) })
    }
}

pub enum EndpointStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Tunnel(TunnelStream),
    TunnelTls(Box<tokio_rustls::client::TlsStream<TunnelStream>>),
}

/// Runs `$body` with `$stream` bound to the pinned inner stream of whichever kind `$inner` is.
macro_rules! with_inner {
    ($inner:expr, $stream:ident => $body:expr) => {
        match $inner {
            EndpointStream::Plain(s) => {
                let $stream = Pin::new(s);
                $body
            }
            EndpointStream::Tls(s) => {
                let $stream = Pin::new(s.as_mut());
                $body
            }
            EndpointStream::Tunnel(s) => {
                let $stream = Pin::new(s);
                $body
            }
            EndpointStream::TunnelTls(s) => {
                let $stream = Pin::new(s.as_mut());
                $body
            }
        }
    };
}

/// A connection that fails every read and write once its endpoint's kill switch fired, which
/// makes hyper drop it (and end the responses streaming over it).
pub struct KillableStream {
    inner: EndpointStream,
    killed: Pin<Box<WaitForCancellationFutureOwned>>,
    open: Arc<KillSwitch>,
}

impl KillableStream {
    fn new(inner: EndpointStream, kill_switch: &Arc<KillSwitch>) -> KillableStream {
        kill_switch.open.fetch_add(1, Ordering::SeqCst);
        KillableStream {
            inner,
            killed: Box::pin(kill_switch.token().cancelled_owned()),
            open: kill_switch.clone(),
        }
    }

    fn check_killed(&mut self, context: &mut Context<'_>) -> Result<(), io::Error> {
        match self.killed.as_mut().poll(context) {
            Poll::Ready(()) => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the apiserver endpoint failed; its connections are closed",
            )),
            Poll::Pending => Ok(()),
        }
    }
}

impl Drop for KillableStream {
    fn drop(&mut self) {
        self.open.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Connection for KillableStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for KillableStream {
    fn poll_read(self: Pin<&mut Self>, context: &mut Context<'_>, buffer: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check_killed(context)?;
        with_inner!(&mut this.inner, stream => stream.poll_read(context, buffer))
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(self: Pin<&mut Self>, context: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_killed(context)?;
        with_inner!(&mut this.inner, stream => stream.poll_write(context, data))
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check_killed(context)?;
        with_inner!(&mut this.inner, stream => stream.poll_flush(context))
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        with_inner!(&mut self.get_mut().inner, stream => stream.poll_shutdown(context))
    }
}
