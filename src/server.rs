//! `kuboard serve`: the composition root of one replica. Opens the store, serves HTTP, creates the
//! first-start admin user, and shuts down in order on SIGTERM or SIGINT.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app_store::AppStore;
use crate::auth::users::{self, FirstStartAdmin};
use crate::clock::Clock;
use crate::config::{EtcdApiSettings, Secret, ServeConfig, StoreSelection};
use crate::etcd_api::{cluster_id_from_peers, EtcdApiConfig, EtcdApiIdentity, EtcdApiTls, SnapshotSource};
use crate::http::tls_listener::{load_server_config, TlsListener};
use crate::http::AppState;
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
    let mut replica = match Replica::start(&config).await {
        Ok(replica) => replica,
        Err(exit_code) => return exit_code,
    };
    let (exit_code, started_shutdown) = replica.run_until_stopped(&mut signals).await;
    tokio::spawn(async move {
        let signal = signals.recv().await;
        tracing::warn!(signal, "second signal during shutdown: exiting at once");
        std::process::exit(i32::from(EXIT_FAILURE));
    });
    replica.shut_down(exit_code, started_shutdown).await
}

/// The parts of a running replica: built once by [`Replica::start`], run until a signal (or the
/// failure of a part) by [`Replica::run_until_stopped`], stopped in order within the deadlines by
/// [`Replica::shut_down`].
struct Replica {
    backend: Arc<StoreBackend>,
    audit: Arc<crate::audit::audit_service::AuditService>,
    /// Set to `true` at shutdown: the listeners stop accepting, the background work ends.
    shutdown_sender: watch::Sender<bool>,
    server_task: JoinHandle<std::io::Result<()>>,
    etcd_api_task: Option<JoinHandle<anyhow::Result<()>>>,
    /// The HTTPS port beside the web port, unless it is off.
    https_task: Option<JoinHandle<std::io::Result<()>>>,
    bootstrap: JoinHandle<()>,
    throttle_purge: JoinHandle<()>,
    /// The automatic compaction of the embedded store, when it is on.
    compaction: Option<JoinHandle<()>>,
}

impl Replica {
    /// Opens the store, binds the listeners, starts the audit service, the background work and the
    /// servers. On failure, returns the exit code after printing why.
    async fn start(config: &ServeConfig) -> Result<Replica, u8> {
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
        // Off the runtime's threads, while the store opens.
        tokio::task::spawn_blocking(crate::auth::password::prepare_dummy_hash);
        let tls_config = match config.http.tls.as_ref().map(load_server_config).transpose() {
            Ok(tls_config) => tls_config,
            Err(error) => {
                eprintln!("error: {error}");
                return Err(EXIT_CONFIG);
            }
        };

        // Before the store opens: a replica that cannot seal cluster credentials must not start.
        let credential_secret = resolve_credential_secret(config)?;

        let backend = match StoreBackend::open(&config.store, &config.data_dir).await {
            Ok(backend) => Arc::new(backend),
            Err(error) => {
                eprintln!("error: {error}");
                return Err(if error.is_configuration_error() {
                    EXIT_CONFIG
                } else {
                    EXIT_FAILURE
                });
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
                return Err(EXIT_FAILURE);
            }
        };

        // Bound before anything is served, so that a taken port stops the start with a clear error.
        let etcd_api = match bind_etcd_api(config, &backend).await {
            Ok(etcd_api) => etcd_api,
            Err(error) => {
                eprintln!("error: {error}");
                if let Err(error) = backend.shutdown().await {
                    tracing::warn!(%error, "store shutdown after the failed start failed");
                }
                return Err(error.exit_code());
            }
        };

        let https_port = match crate::tls::https_port::bind(&config.http).await {
            Ok(https_port) => https_port,
            Err(error) => {
                eprintln!("error: {error}");
                if let Err(error) = backend.shutdown().await {
                    tracing::warn!(%error, "store shutdown after the failed start failed");
                }
                return Err(EXIT_FAILURE);
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
        let audit = match crate::audit::audit_service::AuditService::start(
            crate::audit::audit_service::AuditSettings::from_config(
                &config.audit,
                match &config.store {
                    StoreSelection::Raft(raft) => raft.peers.len() > 1,
                    StoreSelection::Etcd(_) => true,
                },
            ),
            &config.data_dir,
        ) {
            Ok(audit) => audit,
            Err(error) => {
                eprintln!("error: audit: {error:#}");
                return Err(EXIT_FAILURE);
            }
        };
        let state = AppState {
            store: store.clone(),
            metrics,
            clock: clock.clone(),
            replica_id,
            session_ttl: config.auth.session_ttl,
            secure_cookies: config.http.tls.is_some(),
            audit_policy: config.audit.policy,
            admin_ready: admin_ready.clone(),
            login: Arc::new(crate::http::LoginSettings {
                remember_ttl: config.auth.remember_ttl,
                throttle: crate::auth::throttle::ThrottleLimits {
                    window_seconds: config.auth.login_failure_window.as_secs(),
                    max_failures_per_user: config.auth.login_max_failures_per_user,
                    max_failures_per_address: config.auth.login_max_failures_per_address,
                },
                default_password: config.auth.admin_default_password.clone(),
            }),
            trusted_proxies: Arc::from(config.auth.trusted_proxies.clone()),
            cipher: crate::clusters::credential_cipher::CredentialCipher::from_secret(credential_secret.expose()),
        };

        let (shutdown_sender, shutdown_receiver) = watch::channel(false);
        let throttle_purge = tokio::spawn(run_throttle_purge(
            store.clone(),
            replica_id,
            config.auth.login_failure_window.as_secs(),
            clock.clone(),
            shutdown_receiver.clone(),
        ));
        let compaction = match &config.store {
            StoreSelection::Raft(raft) => raft.compaction_retention.map(|retention| {
                let (state, _) = watch::channel(crate::singleton::SingletonState::Follower);
                tokio::spawn(crate::auto_compaction::AutoCompaction::new(retention).run(
                    store.clone(),
                    replica_id,
                    state,
                    shutdown_receiver.clone(),
                ))
            }),
            // An external etcd compacts itself (its own --auto-compaction-retention).
            StoreSelection::Etcd(_) => None,
        };
        let bootstrap = tokio::spawn(bootstrap_admin(
            store,
            state.cipher.clone(),
            config.auth.admin_default_password.clone(),
            clock,
            admin_ready,
            shutdown_receiver.clone(),
        ));

        let mut graceful = shutdown_receiver.clone();
        let stop_accepting = async move {
            let _ = graceful.wait_for(|stop| *stop).await;
        };
        let tunnels = start_agent_server(config, &state, credential_secret.expose(), shutdown_receiver.clone()).await;
        let kube = Arc::new(crate::kube::kube_routes::KubeContext {
            pools: Arc::new(crate::kube::apiserver_pool_registry::ApiserverPoolRegistry::new(
                Arc::new(crate::kube::kube_metrics::KubeMetrics::new(&state.metrics)),
                crate::kube::apiserver_pool::PoolSettings {
                    tunnels: Some(tunnels),
                    ..crate::kube::apiserver_pool::PoolSettings::default()
                },
            )),
            public_endpoint: config.http.endpoint.clone(),
            agent_endpoints: config.agent.endpoints.clone(),
            web_tls: config.http.tls.is_some(),
            https: https_port.status.clone(),
        });
        let https_certificates = crate::tls::https_port::CertificateSource {
            operator: tls_config.clone(),
            store: state.store.clone(),
            cipher: state.cipher.clone(),
            clock: state.clock.clone(),
            names: crate::tls::https_port::serving_names(&config.http),
        };
        // The console answers its own GET/HEAD paths in front of the API (static files need no
        // session and are not audited) and adds the security headers to every response.
        let router = crate::console::with_console(crate::api::router(crate::api::ApiParts {
            state,
            audit: audit.clone(),
            backend: backend.clone(),
            kube,
        }));
        let https_app = router
            .clone()
            .layer(axum::Extension(crate::http::ServedOverTls))
            .into_make_service_with_connect_info::<crate::http::client_address::PeerAddress>();
        let app = router.into_make_service_with_connect_info::<crate::http::client_address::PeerAddress>();
        let https_task = https_port.serve(https_app, https_certificates, shutdown_receiver.clone());
        let server_task = match tls_config {
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
                    return Err(EXIT_FAILURE);
                }
            },
        };
        tracing::info!(address = %config.http.listen_addr, tls = config.http.tls.is_some(), "serving HTTP");
        let etcd_api_task: Option<JoinHandle<anyhow::Result<()>>> = etcd_api.map(|etcd_api| {
            let mut stop = shutdown_receiver.clone();
            tokio::spawn(crate::etcd_api::serve(
                etcd_api.store,
                etcd_api.listener,
                etcd_api.config,
                async move {
                    let _ = stop.wait_for(|stop| *stop).await;
                },
            ))
        });
        Ok(Replica {
            backend,
            audit,
            shutdown_sender,
            server_task,
            etcd_api_task,
            https_task,
            bootstrap,
            throttle_purge,
            compaction,
        })
    }

    /// Serves until a signal, or until the HTTP server or the etcd API stops by itself (a failure);
    /// returns the exit code so far and when the shutdown began.
    async fn run_until_stopped(&mut self, signals: &mut StopSignals) -> (u8, Instant) {
        let mut exit_code = EXIT_OK;
        let mut etcd_api_ended = false;
        let started_shutdown = tokio::select! {
            signal = signals.recv() => {
                tracing::info!(signal, "shutting down: no new connections, finishing requests in flight");
                Instant::now()
            }
            reason = self.backend.stopped_by_failure() => {
                // Nothing acknowledged is lost: a write is acknowledged only once its log entry is
                // on disk, and the entry that failed was not. A restart replays the log.
                tracing::error!(
                    error = %reason,
                    "the store stopped after a disk error (full disk or failed fsync); exiting so that a supervisor restarts this replica"
                );
                exit_code = EXIT_FAILURE;
                Instant::now()
            }
            result = &mut self.server_task => {
                tracing::error!(?result, "the HTTP server stopped by itself");
                exit_code = EXIT_FAILURE;
                Instant::now()
            }
            result = task_end(&mut self.etcd_api_task) => {
                match result {
                    Ok(Err(error)) => tracing::error!(error = format!("{error:#}"), "the etcd v3 API stopped by itself"),
                    other => tracing::error!(result = ?other, "the etcd v3 API stopped by itself"),
                }
                etcd_api_ended = true;
                exit_code = EXIT_FAILURE;
                Instant::now()
            }
        };
        if etcd_api_ended {
            // Its handle has completed and must not be awaited again.
            self.etcd_api_task = None;
        }
        (exit_code, started_shutdown)
    }

    /// Stops accepting, drains requests in flight, flushes the audit queue, stops the background
    /// work and closes the store, within [`SHUTDOWN_DEADLINE`] of `started_shutdown`.
    async fn shut_down(self, exit_code: u8, started_shutdown: Instant) -> u8 {
        let _ = self.shutdown_sender.send(true);
        let mut server_task = self.server_task;
        let mut exit_code = exit_code;

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
        if let Some(mut task) = self.https_task {
            let budget = DRAIN_DEADLINE
                .saturating_sub(started_shutdown.elapsed())
                .max(Duration::from_millis(200));
            match tokio::time::timeout(budget, &mut task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(error))) => tracing::error!(%error, "the HTTPS port failed while draining"),
                Ok(Err(error)) => tracing::error!(%error, "the HTTPS port's task failed"),
                Err(_) => {
                    tracing::warn!("HTTPS requests still in flight at the drain deadline; closing their connections");
                    task.abort();
                }
            }
        }
        if let Some(mut task) = self.etcd_api_task {
            // The API ends its watch and keep-alive streams itself at the shutdown signal, so clients
            // move to another replica; what remains gets what is left of the drain deadline.
            let budget = DRAIN_DEADLINE
                .saturating_sub(started_shutdown.elapsed())
                .max(Duration::from_millis(200));
            match tokio::time::timeout(budget, &mut task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(error))) => {
                    tracing::error!(error = format!("{error:#}"), "the etcd v3 API failed while stopping")
                }
                Ok(Err(error)) => tracing::error!(%error, "the etcd v3 API task failed"),
                Err(_) => {
                    tracing::warn!("etcd v3 API calls still open at the drain deadline; closing their connections");
                    task.abort();
                }
            }
        }
        // Events queued in memory (ignore-errors, strict's outcome events) get a moment to be written.
        self.audit.flush(Duration::from_secs(2)).await;
        self.bootstrap.abort();
        // It saw the shutdown signal and gives up its election lease on its own; bounded all the same.
        if tokio::time::timeout(Duration::from_millis(500), self.throttle_purge)
            .await
            .is_err()
        {
            tracing::debug!("the throttle purge did not stop in time");
        }
        if let Some(compaction) = self.compaction {
            if tokio::time::timeout(Duration::from_millis(500), compaction)
                .await
                .is_err()
            {
                tracing::debug!("the store compaction did not stop in time");
            }
        }

        let remaining = SHUTDOWN_DEADLINE
            .saturating_sub(started_shutdown.elapsed())
            .saturating_sub(EXIT_MARGIN);
        match tokio::time::timeout(remaining, self.backend.shutdown()).await {
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
}

/// The secret cluster credentials are sealed with: `KUBOARD_SSO_CLIENT_SECRET`, or one kept in the
/// data directory. Resolved before the store opens: a replica that cannot seal cluster credentials
/// must not start.
fn resolve_credential_secret(config: &ServeConfig) -> Result<Secret, u8> {
    match crate::clusters::credential_secret::resolve(config.auth.sso_client_secret.as_ref(), &config.data_dir) {
        Ok((secret, source)) => {
            use crate::clusters::credential_secret::SecretSource;
            match source {
                SecretSource::Setting => {
                    tracing::info!("cluster credentials are sealed with KUBOARD_SSO_CLIENT_SECRET")
                }
                SecretSource::DataDirFile | SecretSource::Generated => {
                    if matches!(config.store, StoreSelection::Etcd(_)) {
                        tracing::warn!(
                            "KUBOARD_SSO_CLIENT_SECRET is not set: cluster credentials are sealed with a secret kept in \
                             this replica's data directory; other replicas sharing this etcd cannot open them. Set the \
                             same KUBOARD_SSO_CLIENT_SECRET on every replica"
                        );
                    } else {
                        tracing::info!(
                            generated = source == SecretSource::Generated,
                            "cluster credentials are sealed with a secret kept in the data directory"
                        );
                    }
                }
            }
            Ok(secret)
        }
        Err(error) => {
            eprintln!(
                "error: KUBOARD_SSO_CLIENT_SECRET is not set and the data directory's secret is unusable: {error:#}"
            );
            Err(EXIT_FAILURE)
        }
    }
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
    cipher: crate::clusters::credential_cipher::CredentialCipher,
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
            Ok(FirstStartAdmin::Created) => {
                tracing::info!("created user admin with the default password; it must be changed at first login");
                ready.store(true, Ordering::Release);
                check_cluster_credentials(&store, &cipher).await;
                return;
            }
            Ok(FirstStartAdmin::AlreadyPresent) => {
                tracing::debug!("user admin exists");
                ready.store(true, Ordering::Release);
                check_cluster_credentials(&store, &cipher).await;
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

/// Opens every stored cluster's credentials once at start, so that a replica whose
/// `KUBOARD_SSO_CLIENT_SECRET` differs from the one that sealed them says so at once.
async fn check_cluster_credentials(store: &AppStore, cipher: &crate::clusters::credential_cipher::CredentialCipher) {
    use crate::clusters::cluster_registry;
    if let Err(error) = cluster_registry::bind_endpoints_of_old_records(store, cipher).await {
        tracing::warn!(%error, "resealing cluster credentials bound to their endpoints failed");
    }
    match cluster_registry::list_clusters(store).await {
        Ok(clusters) => {
            let unreadable: Vec<String> = clusters
                .iter()
                .filter(|record| cluster_registry::open_credentials(cipher, record).is_err())
                .map(|record| record.name.clone())
                .collect();
            if !unreadable.is_empty() {
                tracing::error!(
                    clusters = %unreadable.join(","),
                    "the credentials of these clusters do not open with this replica's key: \
                     KUBOARD_SSO_CLIENT_SECRET must be the same on every replica"
                );
            }
        }
        Err(error) => tracing::warn!(%error, "checking the clusters' credentials at start failed"),
    }
}

/// Purges stale failed-login counters once a minute, on one replica of the group at a time.
async fn run_throttle_purge(
    store: AppStore,
    replica_id: u64,
    window_seconds: u64,
    clock: Clock,
    shutdown: watch::Receiver<bool>,
) {
    let singleton = crate::singleton::Singleton {
        store,
        name: "throttle-purge".to_string(),
        holder: format!("replica-{replica_id}-{}", uuid::Uuid::new_v4()),
        lease_ttl: Duration::from_secs(10),
        job_interval: Duration::from_secs(60),
    };
    let (state, _) = watch::channel(crate::singleton::SingletonState::Follower);
    singleton
        .run(
            move |store| {
                let now = clock.now_unix();
                async move {
                    match crate::auth::throttle::purge_stale_counters(&store, window_seconds, now).await {
                        Ok(0) => {}
                        Ok(purged) => tracing::info!(purged, "purged stale failed-login counters"),
                        Err(error) => tracing::warn!(%error, "purging failed-login counters failed"),
                    }
                }
            },
            state,
            shutdown,
        )
        .await;
}

/// The etcd v3 API, bound and configured, ready to be served.
struct EtcdApiStart {
    store: kuboard_raft::RaftStore,
    listener: TcpListener,
    config: EtcdApiConfig,
}

/// Why the etcd v3 API cannot start.
#[derive(Debug, thiserror::Error)]
enum EtcdApiStartError {
    /// The settings passed validation, but the files changed since or the backend is not the
    /// embedded store: the operator's to fix.
    #[error("{0:#}")]
    Config(anyhow::Error),
    #[error("listen on {address} (KUBOARD_ETCD_API_PORT, KUBOARD_ETCD_API_ADDR) for the etcd v3 API: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
}

impl EtcdApiStartError {
    fn exit_code(&self) -> u8 {
        match self {
            EtcdApiStartError::Config(_) => EXIT_CONFIG,
            EtcdApiStartError::Bind { .. } => EXIT_FAILURE,
        }
    }
}

/// The agent server on `KUBOARD_AGENT_SERVER_TCP_PORT` (the web port's address). A port that
/// cannot be bound is logged as an error and the replica serves on without it: agent clusters are
/// then reached through the replicas that have their tunnels. Dials of a cluster without a live
/// tunnel here go through a peer replica that holds one, proving the key derived from the
/// credential secret (the same on every replica); this replica publishes its own tunnels for its
/// peers when its agent port has an address they reach ([`agent_peer_address`]).
async fn start_agent_server(
    config: &ServeConfig,
    state: &AppState,
    group_secret: &str,
    shutdown: watch::Receiver<bool>,
) -> Arc<crate::tunnel::hub::TunnelHub> {
    let hub = Arc::new(crate::tunnel::hub::TunnelHub::new(Arc::new(
        crate::tunnel::hub::AgentServerMetrics::new(&state.metrics),
    )));
    let peer_key = crate::tunnel::peer::PeerKey::derive(group_secret);
    hub.set_peer_forwarder(Arc::new(crate::tunnel::peer::PeerForwarder {
        store: state.store.clone(),
        key: peer_key.clone(),
        replica_id: state.replica_id,
    }));
    let address = SocketAddr::new(config.http.listen_addr.ip(), config.agent.tcp_port);
    match TcpListener::bind(address).await {
        Ok(listener) => {
            tracing::info!(%address, require_tls = config.agent.require_tls, "agent server listening (KUBOARD_AGENT_SERVER_TCP_PORT)");
            let tls = Arc::new(crate::agent::listener::AgentTls::new(config.agent.require_tls));
            let mut names = vec![crate::tunnel::protocol::TLS_SERVER_NAME.to_string()];
            names.extend(crate::tls::https_port::serving_names(&config.http));
            tokio::spawn(crate::agent::listener::serve_tls_when_ready(
                tls.clone(),
                crate::tls::https_port::CertificateSource {
                    operator: None,
                    store: state.store.clone(),
                    cipher: state.cipher.clone(),
                    clock: state.clock.clone(),
                    names,
                },
                shutdown.clone(),
            ));
            let server = crate::agent::listener::AgentServer {
                hub: hub.clone(),
                store: state.store.clone(),
                cipher: state.cipher.clone(),
                clock: state.clock.clone(),
                replica_id: state.replica_id,
                peer_key: Some(peer_key),
                tls,
            };
            tokio::spawn(server.run(listener, shutdown.clone()));
            match agent_peer_address(config) {
                Some(peer_address) => {
                    tracing::info!(%peer_address, "agent tunnels of this replica are published for its peers");
                    tokio::spawn(crate::tunnel::presence::run(
                        hub.clone(),
                        state.store.clone(),
                        state.replica_id,
                        peer_address,
                        state.clock.clone(),
                        shutdown,
                    ));
                }
                None => tracing::warn!(
                    "the agent port listens on every address and this replica has no peer address: peers \
                     cannot forward through its tunnels (agents must then reach every replica)"
                ),
            }
        }
        Err(error) => {
            tracing::error!(%address, %error, "agent server: cannot listen (KUBOARD_AGENT_SERVER_TCP_PORT); agents cannot connect to this replica")
        }
    }
    hub
}

/// The agent port as peer replicas reach it: the host of this member's Raft peer address (the one
/// its peers already use) with the agent port; with an external etcd, the web listener's address
/// when it is a specific one.
fn agent_peer_address(config: &ServeConfig) -> Option<String> {
    let port = config.agent.tcp_port;
    if let StoreSelection::Raft(raft) = &config.store {
        if let Some((host, _)) = raft.peers.get(&raft.node_id).and_then(|peer| peer.rsplit_once(':')) {
            return Some(format!("{host}:{port}"));
        }
    }
    let ip = config.http.listen_addr.ip();
    (!ip.is_unspecified()).then(|| SocketAddr::new(ip, port).to_string())
}

/// Binds the etcd v3 API's listener when `KUBOARD_ETCD_API_PORT` is set. Its identity follows the
/// Raft group: the cluster id derives from the initial peers (alike on every replica), member ids
/// are Raft member ids, and each member's client URL is its peer host with this replica's API
/// port (hence every replica should use the same port).
async fn bind_etcd_api(
    config: &ServeConfig,
    backend: &StoreBackend,
) -> Result<Option<EtcdApiStart>, EtcdApiStartError> {
    let Some(settings) = &config.etcd_api else {
        return Ok(None);
    };
    let (StoreSelection::Raft(raft), StoreBackend::Raft(store)) = (&config.store, backend) else {
        return Err(EtcdApiStartError::Config(anyhow::anyhow!(
            "KUBOARD_ETCD_API_PORT: the etcd v3 API is served by the embedded store only"
        )));
    };
    let tls = etcd_api_tls(settings).map_err(EtcdApiStartError::Config)?;
    if tls.is_none() && !settings.listen_addr.ip().is_loopback() {
        tracing::warn!(
            address = %settings.listen_addr,
            "the etcd v3 API is served without TLS beyond loopback (KUBOARD_ETCD_API_INSECURE_BIND): whoever reaches it can read and write every \
             key, password hashes included; set KUBOARD_ETCD_API_CERT, KUBOARD_ETCD_API_KEY and \
             KUBOARD_ETCD_API_CLIENT_CA"
        );
    }
    let listener = TcpListener::bind(settings.listen_addr)
        .await
        .map_err(|source| EtcdApiStartError::Bind {
            address: settings.listen_addr,
            source,
        })?;
    let config = EtcdApiConfig {
        identity: EtcdApiIdentity {
            cluster_id: cluster_id_from_peers(&raft.peers),
            client_port: Some(settings.listen_addr.port()),
            client_urls: Default::default(),
            data_dir: Some(config.data_dir.clone()),
        },
        tls,
        snapshot: Some(snapshot_source(store.clone())),
    };
    Ok(Some(EtcdApiStart {
        store: store.clone(),
        listener,
        config,
    }))
}

fn etcd_api_tls(settings: &EtcdApiSettings) -> anyhow::Result<Option<EtcdApiTls>> {
    settings
        .tls
        .as_ref()
        .map(|files| EtcdApiTls::from_files(&files.cert_path, &files.key_path, files.client_ca_path.as_deref()))
        .transpose()
}

/// `etcdctl snapshot save` receives the same file as `kuboard admin snapshot save`, which
/// `kuboard admin snapshot restore` reads.
fn snapshot_source(store: kuboard_raft::RaftStore) -> SnapshotSource {
    Arc::new(move || {
        let store = store.clone();
        Box::pin(async move {
            let now = Clock::system().now_unix();
            let snapshot = crate::store_admin::snapshot_store::take_snapshot(
                &store,
                kuboard_storage::BackendKind::Raft,
                "embedded",
                now,
            )
            .await?;
            tracing::info!(
                keys = snapshot.header.key_count,
                revision = snapshot.header.revision,
                "store snapshot taken through the etcd v3 API"
            );
            snapshot.encode()
        })
    })
}

/// Completes when the task ends; never when there is none.
async fn task_end<T>(task: &mut Option<JoinHandle<T>>) -> Result<T, tokio::task::JoinError> {
    match task {
        Some(task) => task.await,
        None => std::future::pending().await,
    }
}
