//! `kuboard serve`: the composition root of one replica. Opens the store, serves HTTP, creates the
//! first-start admin user, and shuts down in order on SIGTERM or SIGINT.

use std::future::IntoFuture;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;

use crate::app_store::AppStore;
use crate::auth::users::{self, AdminBootstrap};
use crate::clock::Clock;
use crate::config::{Secret, ServeConfig, StoreSelection};
use crate::http::tls_listener::{load_server_config, TlsListener};
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::store_backend::StoreBackend;

/// From the signal to the exit: everything must be done within this.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);
/// How long in-flight requests may take to finish before their connections are closed.
const DRAIN_DEADLINE: Duration = Duration::from_secs(3);
/// Kept free at the end of the shutdown for the runtime to stop.
const EXIT_MARGIN: Duration = Duration::from_millis(300);

/// Exit codes of `kuboard serve`.
pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_CONFIG: u8 = 2;

/// Runs one replica until a signal stops it; returns the process exit code.
pub async fn serve(config: ServeConfig) -> u8 {
    let mut signals = match StopSignals::install() {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("error: listen for SIGTERM and SIGINT: {error}");
            return EXIT_FAILURE;
        }
    };
    let replica_id = match &config.store {
        StoreSelection::Raft(raft) => raft.node_id,
        StoreSelection::Etcd(_) => 0,
    };
    let (backend_name, raft_listen, peers) = match &config.store {
        StoreSelection::Raft(raft) => ("raft", raft.listen_addr.to_string(), raft.peers.len()),
        StoreSelection::Etcd(_) => ("etcd", String::new(), 0),
    };
    tracing::info!(
        version = crate::version::VERSION,
        commit = crate::version::GIT_COMMIT,
        replica_id,
        backend = backend_name,
        http = %config.http.listen_addr,
        raft_peer_listen = %raft_listen,
        raft_members = peers,
        agent_port = config.agent.tcp_port,
        data_dir = %config.data_dir.display(),
        audit_policy = config.audit.policy.as_str(),
        "starting kuboard"
    );
    let tls_config = match config.http.tls.as_ref().map(load_server_config).transpose() {
        Ok(tls_config) => tls_config,
        Err(error) => {
            eprintln!("error: {error}");
            return EXIT_CONFIG;
        }
    };

    let backend = match StoreBackend::open(&config.store, &config.data_dir).await {
        Ok(backend) => Arc::new(backend),
        Err(error) => {
            eprintln!("error: {error}");
            return if error.is_configuration_error() {
                EXIT_CONFIG
            } else {
                EXIT_FAILURE
            };
        }
    };
    match &config.store {
        StoreSelection::Raft(_) => tracing::info!(backend = backend.kind().as_str(), "store open"),
        // The replica serves (not ready) while the connection is made; see store_backend::etcd_backend.
        StoreSelection::Etcd(etcd) => tracing::info!(
            backend = backend.kind().as_str(),
            endpoints = %etcd.endpoints.join(","),
            prefix = %etcd.prefix,
            tls = etcd.ca_cert.is_some() || etcd.cert.is_some(),
            auth = etcd.username.is_some(),
            "connecting to the external etcd in the background"
        ),
    }

    let listener = match TcpListener::bind(config.http.listen_addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!(
                "error: listen on {} (KUBOARD_SERVER_PORT): {error}",
                config.http.listen_addr
            );
            if let Err(error) = backend.shutdown().await {
                tracing::warn!(%error, "store shutdown after the failed start failed");
            }
            return EXIT_FAILURE;
        }
    };

    let metrics = Arc::new(Metrics::new(replica_id));
    if let StoreBackend::Raft(raft) = &*backend {
        let raft = raft.clone();
        metrics.register_raft_source(move || raft.metrics());
    }
    let store = AppStore::new(backend.clone(), metrics.clone());
    let admin_ready = Arc::new(AtomicBool::new(false));
    let clock = Clock::system();
    let state = AppState {
        store: store.clone(),
        metrics,
        clock: clock.clone(),
        replica_id,
        session_ttl: config.auth.session_ttl,
        secure_cookies: config.http.tls.is_some(),
        audit_policy: config.audit.policy,
        admin_ready: admin_ready.clone(),
    };

    let (shutdown_sender, shutdown_receiver) = watch::channel(false);
    let bootstrap = tokio::spawn(bootstrap_admin(
        store,
        config.auth.admin_default_password.clone(),
        clock,
        admin_ready,
        shutdown_receiver.clone(),
    ));

    let mut graceful = shutdown_receiver.clone();
    let stop_accepting = async move {
        let _ = graceful.wait_for(|stop| *stop).await;
    };
    let app = http::router(state.clone())
        .merge(crate::admin::members_http::router(state.clone(), backend.clone()))
        .merge(crate::admin::snapshot_http::router(state, backend.clone()));
    let mut server_task = match tls_config {
        None => tokio::spawn(
            axum::serve(listener, app)
                .with_graceful_shutdown(stop_accepting)
                .into_future(),
        ),
        Some(tls_config) => match TlsListener::new(listener, tls_config) {
            Ok(tls_listener) => tokio::spawn(
                axum::serve(tls_listener, app)
                    .with_graceful_shutdown(stop_accepting)
                    .into_future(),
            ),
            Err(error) => {
                eprintln!("error: listen for HTTPS on {}: {error}", config.http.listen_addr);
                return EXIT_FAILURE;
            }
        },
    };
    tracing::info!(address = %config.http.listen_addr, tls = config.http.tls.is_some(), "serving HTTP");

    let mut exit_code = EXIT_OK;
    let started_shutdown = tokio::select! {
        signal = signals.recv() => {
            tracing::info!(signal, "shutting down: no new connections, finishing requests in flight");
            Instant::now()
        }
        result = &mut server_task => {
            tracing::error!(?result, "the HTTP server stopped by itself");
            exit_code = EXIT_FAILURE;
            Instant::now()
        }
    };
    tokio::spawn(async move {
        let signal = signals.recv().await;
        tracing::warn!(signal, "second signal during shutdown: exiting at once");
        std::process::exit(i32::from(EXIT_FAILURE));
    });
    let _ = shutdown_sender.send(true);

    if exit_code == EXIT_OK {
        match tokio::time::timeout(DRAIN_DEADLINE, &mut server_task).await {
            Ok(Ok(Ok(()))) => tracing::info!("HTTP requests drained"),
            Ok(Ok(Err(error))) => tracing::error!(%error, "the HTTP server failed while draining"),
            Ok(Err(error)) => tracing::error!(%error, "the HTTP server task failed"),
            Err(_) => {
                tracing::warn!(
                    deadline_ms = DRAIN_DEADLINE.as_millis() as u64,
                    "requests still in flight at the drain deadline; closing their connections"
                );
                server_task.abort();
            }
        }
    }
    bootstrap.abort();

    let remaining = SHUTDOWN_DEADLINE
        .saturating_sub(started_shutdown.elapsed())
        .saturating_sub(EXIT_MARGIN);
    match tokio::time::timeout(remaining, backend.shutdown()).await {
        Ok(Ok(())) => tracing::info!("store flushed and closed"),
        Ok(Err(error)) => {
            tracing::error!(%error, "store shutdown failed");
            exit_code = EXIT_FAILURE;
        }
        Err(_) => {
            tracing::error!(
                budget_ms = remaining.as_millis() as u64,
                "store shutdown did not finish in time"
            );
            exit_code = EXIT_FAILURE;
        }
    }
    tracing::info!(
        elapsed_ms = started_shutdown.elapsed().as_millis() as u64,
        exit_code,
        "stopped"
    );
    exit_code
}

/// SIGTERM and SIGINT, listened for from the start of `serve` so that a signal arriving while the
/// store opens is not fatal but starts an orderly shutdown.
struct StopSignals {
    terminate: Signal,
    interrupt: Signal,
}

impl StopSignals {
    fn install() -> std::io::Result<StopSignals> {
        Ok(StopSignals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for the next SIGTERM or SIGINT and names it.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

/// Creates the `admin` user if absent, retrying while the store has no quorum yet (the other
/// replicas of a new group may still be starting). Stops at shutdown.
async fn bootstrap_admin(
    store: AppStore,
    default_password: Secret,
    clock: Clock,
    ready: Arc<AtomicBool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut delay = Duration::from_millis(200);
    let mut attempts: u64 = 0;
    loop {
        attempts += 1;
        match users::ensure_admin(&store, default_password.expose(), clock.now_unix()).await {
            Ok(AdminBootstrap::Created) => {
                tracing::info!("created user admin with the default password; it must be changed at first login");
                ready.store(true, Ordering::Release);
                return;
            }
            Ok(AdminBootstrap::AlreadyPresent) => {
                tracing::debug!("user admin exists");
                ready.store(true, Ordering::Release);
                return;
            }
            Err(error) if attempts == 1 || attempts % 10 == 0 => {
                tracing::warn!(%error, attempts, "creating user admin failed; retrying");
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}
