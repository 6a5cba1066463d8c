//! Delay on the peer links without netem: userspace TCP proxies inside the hosts' namespaces.
//!
//! Every host gets one alias address per member on its loopback device ([`super::Network::peer_alias`],
//! `198.19.S.(j+1)`), the same set in every namespace. The members are configured with the aliases
//! as their peers' addresses, so the peer list is identical on every member, yet in each namespace
//! the alias of member `j` is served by a proxy of that namespace which forwards to member `j`'s real
//! address. The forwarded connection leaves from the host's own address, so partitions and packet
//! loss (iptables rules on the real addresses) still cut exactly the links they name.
//!
//! Each proxy forwards every chunk in each direction after [`DelayControl`]'s delay plus a uniform
//! random jitter; chunks keep their order and stay pipelined (a chunk's delay does not hold back the
//! reading of the next one), so the delay is latency and not a bandwidth cap. With delay 0 a chunk is
//! written as soon as it is read.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context};
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// How long a proxy waits for the real peer to accept a forwarded connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Chunks read but not yet written, per direction of one connection.
const CHUNKS_IN_FLIGHT: usize = 256;
const CHUNK_SIZE: usize = 64 * 1024;

/// The delay the proxies add, changed at run time; shared by every proxy of a cluster.
#[derive(Debug, Default)]
pub struct DelayControl {
    delay_us: AtomicU64,
    jitter_us: AtomicU64,
}

impl DelayControl {
    /// Add `delay` plus a uniform random `0..=jitter` to every chunk from now on.
    pub fn set(&self, delay: Duration, jitter: Duration) {
        self.delay_us.store(delay.as_micros() as u64, Ordering::Relaxed);
        self.jitter_us.store(jitter.as_micros() as u64, Ordering::Relaxed);
    }

    /// Forward chunks at once again.
    pub fn clear(&self) {
        self.set(Duration::ZERO, Duration::ZERO);
    }

    /// The configured delay and jitter.
    pub fn get(&self) -> (Duration, Duration) {
        (
            Duration::from_micros(self.delay_us.load(Ordering::Relaxed)),
            Duration::from_micros(self.jitter_us.load(Ordering::Relaxed)),
        )
    }

    fn sample(&self) -> Duration {
        let delay = self.delay_us.load(Ordering::Relaxed);
        let jitter = self.jitter_us.load(Ordering::Relaxed);
        let extra = if jitter == 0 {
            0
        } else {
            rand::thread_rng().gen_range(0..=jitter)
        };
        Duration::from_micros(delay + extra)
    }
}

/// One forwarding rule: inside namespace `namespace`, connections to `listen` go on to `target`.
#[derive(Debug, Clone)]
pub struct Route {
    pub namespace: String,
    pub listen: SocketAddr,
    pub target: SocketAddr,
}

/// The proxies of one network: one thread per namespace, each running its own runtime inside that
/// namespace. Dropping it stops them all (and with them every forwarded connection).
pub struct ProxySet {
    control: Arc<DelayControl>,
    threads: Vec<(Option<oneshot::Sender<()>>, JoinHandle<()>)>,
}

impl ProxySet {
    /// Start the proxies of `routes` (grouped by namespace). Returns once every listener is bound.
    pub fn start(routes: &[Route], control: Arc<DelayControl>) -> anyhow::Result<ProxySet> {
        let mut by_namespace: std::collections::BTreeMap<&str, Vec<Route>> = Default::default();
        for route in routes {
            by_namespace
                .entry(route.namespace.as_str())
                .or_default()
                .push(route.clone());
        }
        let mut set = ProxySet {
            control,
            threads: Vec::new(),
        };
        for (namespace, routes) in by_namespace {
            let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<()>>();
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            let control = Arc::clone(&set.control);
            let namespace_owned = namespace.to_string();
            let thread = std::thread::Builder::new()
                .name(format!("proxy-{namespace}"))
                .spawn(move || serve_namespace(&namespace_owned, routes, control, ready_tx, stop_rx))
                .context("start a proxy thread")?;
            set.threads.push((Some(stop_tx), thread));
            // On error `set` drops here and stops the threads already started.
            match ready_rx.recv_timeout(Duration::from_secs(10)) {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return Err(error.context(format!("start the proxies of {namespace}"))),
                Err(_) => bail!("the proxies of {namespace} did not start within 10 s"),
            }
        }
        Ok(set)
    }

    pub fn control(&self) -> &Arc<DelayControl> {
        &self.control
    }
}

impl Drop for ProxySet {
    fn drop(&mut self) {
        for (stop, _) in &mut self.threads {
            // A thread that already ended dropped its receiver; nothing to stop then.
            if let Some(stop) = stop.take() {
                let _ = stop.send(());
            }
        }
        for (_, thread) in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// The body of one proxy thread: enter `namespace`, bind every route's listener, report, serve until
/// told to stop.
fn serve_namespace(
    namespace: &str,
    routes: Vec<Route>,
    control: Arc<DelayControl>,
    ready: std::sync::mpsc::Sender<anyhow::Result<()>>,
    stop: oneshot::Receiver<()>,
) {
    if let Err(error) = enter_namespace(namespace) {
        let _ = ready.send(Err(error));
        return;
    }
    // A current-thread runtime: every socket is created by this thread, hence in this namespace.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = ready.send(Err(anyhow::Error::new(error).context("build the proxy runtime")));
            return;
        }
    };
    runtime.block_on(async move {
        let mut listeners = Vec::new();
        for route in &routes {
            match TcpListener::bind(route.listen).await {
                Ok(listener) => listeners.push((listener, route.target)),
                Err(error) => {
                    let _ = ready.send(Err(anyhow::Error::new(error).context(format!("bind {}", route.listen))));
                    return;
                }
            }
        }
        let _ = ready.send(Ok(()));
        let mut accepting = tokio::task::JoinSet::new();
        for (listener, target) in listeners {
            accepting.spawn(accept_loop(listener, target, Arc::clone(&control)));
        }
        // The accept loops never end by themselves; the stop signal (or its sender dropped) ends all.
        let _ = stop.await;
    });
    // Dropping the runtime cancels every connection task of this namespace.
}

/// Move the calling thread into the named network namespace (made by `ip netns add`).
fn enter_namespace(namespace: &str) -> anyhow::Result<()> {
    let path = format!("/run/netns/{namespace}");
    let file = std::fs::File::open(&path).with_context(|| format!("open {path}"))?;
    // SAFETY: setns only reads the descriptor, which `file` keeps open for the call; it changes the
    // network namespace of this thread alone.
    let result = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if result != 0 {
        bail!(
            "enter network namespace {namespace}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, control: Arc<DelayControl>) {
    loop {
        match listener.accept().await {
            Ok((inbound, _)) => {
                tokio::spawn(forward(inbound, target, Arc::clone(&control)));
            }
            Err(error) => {
                tracing::debug!(%error, "proxy accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Forward one connection both ways; when the peer cannot be reached the inbound side is closed,
/// which the member sees as a refused peer.
async fn forward(inbound: TcpStream, target: SocketAddr, control: Arc<DelayControl>) {
    let outbound = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
        Ok(Ok(stream)) => stream,
        _ => return,
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    let there = pump(in_read, out_write, Arc::clone(&control));
    let back = pump(out_read, in_write, control);
    tokio::join!(there, back);
}

/// Copy one direction, each chunk delayed from the moment it was read.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    control: Arc<DelayControl>,
) {
    let (chunks_tx, mut chunks_rx) = mpsc::channel::<(Instant, Vec<u8>)>(CHUNKS_IN_FLIGHT);
    let reader = async move {
        let mut buffer = vec![0u8; CHUNK_SIZE];
        loop {
            match from.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => {
                    let due = Instant::now() + control.sample();
                    if chunks_tx.send((due, buffer[..read].to_vec())).await.is_err() {
                        break;
                    }
                }
            }
        }
        // Dropping the sender tells the writer that the stream ended.
    };
    let writer = async move {
        // Deliveries never overtake each other: with jitter a chunk waits at least for its predecessor.
        let mut last_due = Instant::now();
        while let Some((due, chunk)) = chunks_rx.recv().await {
            last_due = last_due.max(due);
            tokio::time::sleep_until(last_due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
