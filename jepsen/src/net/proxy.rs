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
//!
//! The same proxies tamper with the traffic for the `tamper` fault ([`DelayControl::set_tamper`]):
//! each chunk is, with the configured probability, altered in one of three ways (a random byte
//! flipped, random bytes inserted, or the chunk sent twice) before it is forwarded, as a hostile
//! host or a broken middlebox on the path would.

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
    /// Probability, in parts per million, that a chunk is tampered with.
    tamper_ppm: AtomicU64,
    /// Chunks tampered with so far, by kind.
    flipped: AtomicU64,
    injected: AtomicU64,
    replayed: AtomicU64,
}

/// How many chunks the proxies have tampered with, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TamperCounts {
    /// Chunks forwarded with one random byte flipped.
    pub flipped: u64,
    /// Chunks forwarded with 1 to 16 random bytes inserted at a random place.
    pub injected: u64,
    /// Chunks forwarded twice.
    pub replayed: u64,
}

impl TamperCounts {
    pub fn total(&self) -> u64 {
        self.flipped + self.injected + self.replayed
    }
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

    /// Tamper with each chunk, in either direction, with probability `probability` (0 to 1) from
    /// now on; 0 stops it.
    pub fn set_tamper(&self, probability: f64) {
        let ppm = (probability.clamp(0.0, 1.0) * 1_000_000.0).round() as u64;
        self.tamper_ppm.store(ppm, Ordering::Relaxed);
    }

    /// The chunks tampered with so far.
    pub fn tampered(&self) -> TamperCounts {
        TamperCounts {
            flipped: self.flipped.load(Ordering::Relaxed),
            injected: self.injected.load(Ordering::Relaxed),
            replayed: self.replayed.load(Ordering::Relaxed),
        }
    }

    /// The chunks to forward for `chunk`: the chunk itself, or an altered version, or it twice.
    fn tamper(&self, chunk: Vec<u8>) -> Vec<Vec<u8>> {
        let ppm = self.tamper_ppm.load(Ordering::Relaxed);
        if ppm == 0 || chunk.is_empty() {
            return vec![chunk];
        }
        let mut rng = rand::thread_rng();
        if rng.gen_range(0..1_000_000) >= ppm {
            return vec![chunk];
        }
        let mut chunk = chunk;
        match rng.gen_range(0..3) {
            0 => {
                let at = rng.gen_range(0..chunk.len());
                chunk[at] ^= 1 << rng.gen_range(0..8);
                self.flipped.fetch_add(1, Ordering::Relaxed);
                vec![chunk]
            }
            1 => {
                let at = rng.gen_range(0..=chunk.len());
                let junk: Vec<u8> = (0..rng.gen_range(1..=16)).map(|_| rng.gen()).collect();
                chunk.splice(at..at, junk);
                self.injected.fetch_add(1, Ordering::Relaxed);
                vec![chunk]
            }
            _ => {
                self.replayed.fetch_add(1, Ordering::Relaxed);
                vec![chunk.clone(), chunk]
            }
        }
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
                    for chunk in control.tamper(buffer[..read].to_vec()) {
                        if chunks_tx.send((due, chunk)).await.is_err() {
                            return;
                        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tampering_alters_chunks_only_while_it_is_on() {
        let control = DelayControl::default();
        let chunk = vec![0x5au8; 100];
        assert_eq!(control.tamper(chunk.clone()), vec![chunk.clone()], "off by default");

        control.set_tamper(1.0);
        for _ in 0..300 {
            let out = control.tamper(chunk.clone());
            match out.len() {
                // A replay: the chunk twice, unchanged.
                2 => assert!(out.iter().all(|copy| *copy == chunk)),
                // A flip keeps the length and changes one byte; an injection makes it longer.
                1 if out[0].len() == chunk.len() => {
                    assert_eq!(out[0].iter().zip(&chunk).filter(|(a, b)| a != b).count(), 1)
                }
                1 => assert!(out[0].len() > chunk.len() && out[0].len() <= chunk.len() + 16),
                n => panic!("{n} chunks out of one"),
            }
        }
        let counts = control.tampered();
        assert_eq!(counts.total(), 300);
        assert!(
            counts.flipped > 0 && counts.injected > 0 && counts.replayed > 0,
            "{counts:?}"
        );

        control.set_tamper(0.0);
        assert_eq!(control.tamper(chunk.clone()), vec![chunk]);
        assert_eq!(control.tampered().total(), 300);
    }
}
