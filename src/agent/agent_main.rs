//! `kuboard agent`: keeps one tunnel to every replica's agent port and, on each tunnel, serves the
//! replica's requests to open a connection to this cluster's apiserver (and nothing else).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use kuboard_raft::framing;
use rand::Rng as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use crate::agent::agent_health::{self, AgentMetrics, TunnelUp};
use crate::agent::listener::{keepalive, CONNECTION_WINDOW, STREAM_WINDOW};
use crate::cli::AgentArgs;
use crate::clusters::cluster_registry::ClusterCredentials;
use crate::kube::kubeconfig_import;
use crate::tunnel::protocol::{self, Hello, Report, Verdict, DIAL_REFUSED_HEADER};
use crate::tunnel::tunnel_stream::TunnelStream;

const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// An apiserver connection with no byte either way for this long is closed (longer than the
/// apiserver's own watch timeouts).
pub const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const BACKOFF_FIRST: Duration = Duration::from_millis(200);
/// Low enough that a replica back from a restart has its tunnels within seconds of listening; a
/// refused dial costs the replica a closed socket (or one store read for a wrong token).
const BACKOFF_MAX: Duration = Duration::from_secs(3);
/// A tunnel that stayed up this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(10);
const MAX_STREAMS: u32 = 4096;

/// Everything the agent needs, checked before any tunnel is dialled.
#[derive(Clone)]
pub struct AgentSettings {
    pub servers: Vec<String>,
    pub cluster: String,
    pub token: String,
    pub report: Report,
    /// `host:port` of every apiserver of the report: the only addresses dialled.
    pub allowed: Arc<HashSet<String>>,
    pub health_listen: Option<std::net::SocketAddr>,
    pub metrics: Arc<AgentMetrics>,
    /// `KUBOARD_AGENT_SERVER_CA` given: every tunnel is TLS, verified against that CA only.
    pub tls: Option<TlsConnector>,
}

pub fn run(mut args: AgentArgs) -> u8 {
    let filter = tracing_subscriber::EnvFilter::builder().parse_lossy(&args.log_level);
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    args.token = std::env::var("KUBOARD_AGENT_TOKEN").ok();
    let settings = match settings(&args) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: {error}");
            return 2;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: start the async runtime: {error}");
            return 1;
        }
    };
    let exit_code = runtime.block_on(async move {
        let stop = CancellationToken::new();
        if let Some(address) = settings.health_listen {
            match agent_health::bind(address).await {
                Ok(listener) => {
                    tracing::info!(%address, "serving /healthz, /readyz and /metrics");
                    tokio::spawn(agent_health::serve(listener, settings.metrics.clone(), stop.clone()));
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    return 1;
                }
            }
        }
        let tasks = settings
            .servers
            .iter()
            .map(|server| tokio::spawn(keep_tunnel(settings.clone(), server.clone(), stop.clone())))
            .collect::<Vec<_>>();
        let _ = wait_for_signal().await;
        tracing::info!("stopping: closing every tunnel");
        stop.cancel();
        for task in tasks {
            // The tunnels end on cancel without waiting on the network; bound it anyway.
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
        0
    });
    runtime.shutdown_timeout(Duration::from_millis(200));
    exit_code
}

async fn wait_for_signal() -> std::io::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = terminate.recv() => Ok(()),
    }
}

fn non_empty(value: &Option<String>) -> Option<String> {
    value.as_ref().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// The settings from the flags and environment, or what is wrong with them.
pub fn settings(args: &AgentArgs) -> Result<AgentSettings, String> {
    let servers = match (non_empty(&args.endpoint), non_empty(&args.kuboard_agent_host)) {
        (Some(list), _) => list
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| check_host_port(entry).map(|()| entry.to_string()))
            .collect::<Result<Vec<_>, _>>()?,
        (None, Some(host)) => {
            let port = non_empty(&args.kuboard_agent_port).unwrap_or_else(|| "10081".into());
            let entry = format!("{host}:{port}");
            check_host_port(&entry)?;
            vec![entry]
        }
        (None, None) => {
            return Err("KUBOARD_AGENT_ENDPOINT is required: every replica's agent address, host:port,...".into())
        }
    };
    if servers.is_empty() {
        return Err("KUBOARD_AGENT_ENDPOINT lists no address".into());
    }
    let cluster = non_empty(&args.cluster)
        .or_else(|| non_empty(&args.kuboard_cluster_name))
        .ok_or("KUBOARD_AGENT_CLUSTER is required: the cluster's name in Kuboard")?;
    if !crate::clusters::cluster_registry::is_valid_cluster_name(&cluster) {
        return Err(format!("KUBOARD_AGENT_CLUSTER={cluster:?}: not a valid cluster name"));
    }
    let token = non_empty(&args.token).ok_or("KUBOARD_AGENT_TOKEN is required: the cluster's agent token")?;
    let (endpoints, credentials) = match &args.kubeconfig {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|error| format!("read {}: {error}", path.display()))?;
            let imported = kubeconfig_import::parse_kubeconfig(&text, args.context.as_deref())
                .map_err(|error| format!("{}: {error}", path.display()))?;
            (imported.endpoints, imported.credentials)
        }
        None => in_cluster()?,
    };
    let allowed = endpoints.iter().map(|url| url.authority()).collect::<HashSet<_>>();
    let health_listen = match non_empty(&args.health_listen) {
        None => None,
        Some(text) => Some(
            text.parse()
                .map_err(|_| format!("KUBOARD_AGENT_HEALTH_LISTEN={text:?}: expected ip:port, e.g. 0.0.0.0:10082"))?,
        ),
    };
    let tls = match non_empty(&args.server_ca) {
        None => None,
        Some(value) => Some(pinned_connector(&value)?),
    };
    let report = Report {
        endpoints: endpoints.iter().map(ToString::to_string).collect(),
        credentials,
        agent_version: crate::version::VERSION.to_string(),
    };
    Ok(AgentSettings {
        servers,
        cluster,
        token,
        report,
        allowed: Arc::new(allowed),
        health_listen,
        metrics: Arc::new(AgentMetrics::new()),
        tls,
    })
}

/// The TLS client for `KUBOARD_AGENT_SERVER_CA` (PEM text, or the path of a PEM file): trusts the
/// certificates given there and nothing else (not the system's roots).
pub fn pinned_connector(value: &str) -> Result<TlsConnector, String> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::CertificateDer;
    let text = if value.starts_with("-----BEGIN") {
        value.to_string()
    } else {
        std::fs::read_to_string(value).map_err(|error| format!("KUBOARD_AGENT_SERVER_CA: read {value}: {error}"))?
    };
    let certificates = CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("KUBOARD_AGENT_SERVER_CA: not PEM certificates: {error}"))?;
    if certificates.is_empty() {
        return Err("KUBOARD_AGENT_SERVER_CA: no certificate in it (expected the group CA's PEM)".into());
    }
    let mut roots = RootCertStore::empty();
    for certificate in certificates {
        roots
            .add(certificate)
            .map_err(|error| format!("KUBOARD_AGENT_SERVER_CA: not a usable CA certificate: {error}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("TLS set-up: {error}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Why a TLS handshake with a replica failed: a metric label and words for the log.
fn tls_failure(error: &std::io::Error) -> (&'static str, String) {
    use rustls::CertificateError;
    let rustls_error = error.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        )) => (
            "wrong_name",
            format!(
                "the server's certificate does not carry the agent server name {}: {error}",
                protocol::TLS_SERVER_NAME
            ),
        ),
        Some(rustls::Error::InvalidCertificate(
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. },
        )) => (
            "expired",
            format!("the server's certificate is out of its validity: {error}"),
        ),
        Some(rustls::Error::InvalidCertificate(_)) => (
            "untrusted_certificate",
            format!(
                "the server's certificate is not signed by KUBOARD_AGENT_SERVER_CA (another group, or its CA \
                 was replaced: make a new manifest): {error}"
            ),
        ),
        Some(other) => ("handshake", format!("{other}")),
        None => (
            "closed",
            format!(
                "the server closed the connection during the TLS handshake (no TLS on this port yet, or \
                 not a Kuboard agent port): {error}"
            ),
        ),
    }
}

fn check_host_port(entry: &str) -> Result<(), String> {
    match entry.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|port| port > 0) => Ok(()),
        _ => Err(format!("KUBOARD_AGENT_ENDPOINT entry {entry:?}: expected host:port")),
    }
}

fn in_cluster() -> Result<(Vec<crate::kube::apiserver_url::ApiserverUrl>, ClusterCredentials), String> {
    let host = std::env::var("KUBERNETES_SERVICE_HOST")
        .map_err(|_| "neither --kubeconfig nor KUBERNETES_SERVICE_HOST (in-cluster) is given".to_string())?;
    let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
    let host = if host.contains(':') { format!("[{host}]") } else { host };
    let url = crate::kube::apiserver_url::ApiserverUrl::parse(&format!("https://{host}:{port}"))
        .map_err(|error| format!("KUBERNETES_SERVICE_HOST/PORT: {error}"))?;
    let read = |name: &str| {
        let path = format!("{SERVICE_ACCOUNT_DIR}/{name}");
        std::fs::read_to_string(&path).map_err(|error| format!("read {path}: {error}"))
    };
    let credentials = ClusterCredentials {
        token: Some(read("token")?.trim().to_string()),
        client_certificate: None,
        client_key: None,
        ca_certificate: Some(read("ca.crt")?),
    };
    Ok((vec![url], credentials))
}

/// Keeps one tunnel to `server` until `stop`: redials with jittered exponential backoff.
async fn keep_tunnel(settings: AgentSettings, server: String, stop: CancellationToken) {
    let mut backoff = BACKOFF_FIRST;
    loop {
        let started = tokio::time::Instant::now();
        let outcome = tokio::select! {
            outcome = tunnel(&settings, &server) => outcome,
            _ = stop.cancelled() => return,
        };
        if started.elapsed() >= STABLE_AFTER {
            backoff = BACKOFF_FIRST;
        }
        // Full jitter over the upper half: agents restarted together do not redial in step.
        let wait = backoff.mul_f64(rand::thread_rng().gen_range(0.5..1.0));
        settings.metrics.tunnel_failures.with_label_values(&[&server]).inc();
        match outcome {
            Ok(why) => tracing::warn!(server, why, retry_in_ms = wait.as_millis() as u64, "tunnel down"),
            Err(error) => tracing::warn!(server, %error, retry_in_ms = wait.as_millis() as u64, "tunnel failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One tunnel's life: dial, handshake, serve streams until it fails. Returns why it ended.
async fn tunnel(settings: &AgentSettings, server: &str) -> Result<String, String> {
    let socket = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(server))
        .await
        .map_err(|_| format!("connect: no answer within {CONNECT_TIMEOUT:?}"))?
        .map_err(|error| format!("connect: {error}"))?;
    let _ = socket.set_nodelay(true);
    let Some(connector) = &settings.tls else {
        return speak(settings, server, socket).await;
    };
    let name =
        rustls_pki_types::ServerName::try_from(protocol::TLS_SERVER_NAME).map_err(|error| format!("TLS: {error}"))?;
    let failures = &settings.metrics.tls_failures;
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(name, socket)).await {
        Ok(Ok(stream)) => speak(settings, server, stream).await,
        Ok(Err(error)) => {
            let (reason, message) = tls_failure(&error);
            failures.with_label_values(&[server, reason]).inc();
            Err(format!("TLS refused ({reason}): {message}"))
        }
        Err(_) => {
            failures.with_label_values(&[server, "timeout"]).inc();
            Err(format!("TLS: no handshake within {HANDSHAKE_TIMEOUT:?}"))
        }
    }
}

/// The agent handshake on a connected socket (plain or TLS), then the tunnel.
async fn speak<IO>(settings: &AgentSettings, server: &str, mut socket: IO) -> Result<String, String>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let handshake = async {
        let hello = Hello {
            magic: protocol::MAGIC.into(),
            version: protocol::VERSION,
            cluster: settings.cluster.clone(),
            token: settings.token.clone(),
        };
        framing::write_record(&mut socket, &hello, protocol::HELLO_LIMIT)
            .await
            .map_err(|error| format!("send the hello: {error}"))?;
        let verdict: Verdict = framing::read_record(&mut socket, protocol::HELLO_LIMIT)
            .await
            .map_err(|error| format!("read the verdict (is this a Kuboard agent port?): {error}"))?;
        let replica = match verdict {
            Verdict::Accepted { replica } => replica,
            Verdict::Refused { reason } => return Err(format!("refused by the server: {reason}")),
        };
        framing::write_record(&mut socket, &settings.report, protocol::REPORT_LIMIT)
            .await
            .map_err(|error| format!("send the report: {error}"))?;
        Ok(replica)
    };
    let replica = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| format!("handshake: no answer within {HANDSHAKE_TIMEOUT:?}"))??;
    tracing::info!(server, replica, "tunnel up");
    let _up = TunnelUp::new(&settings.metrics, server);
    serve_tunnel(settings, socket).await
}

/// Serves the replica's streams on one accepted connection until it fails or a keepalive ping goes
/// unanswered. Returns why it ended; every stream of the tunnel ends with it.
async fn serve_tunnel<IO>(settings: &AgentSettings, io: IO) -> Result<String, String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut connection = h2::server::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_concurrent_streams(MAX_STREAMS)
        .handshake::<_, Bytes>(io)
        .await
        .map_err(|error| format!("HTTP/2 set-up: {error}"))?;
    let ping_pong = connection.ping_pong();
    let streams = CancellationToken::new();
    let _streams_end = streams.clone().drop_guard();
    let accept = async {
        while let Some(accepted) = connection.accept().await {
            match accepted {
                Ok((request, respond)) => {
                    let settings = settings.clone();
                    let streams = streams.clone();
                    tokio::spawn(async move {
                        tokio::select! {
                            _ = serve_stream(&settings, request, respond) => {}
                            _ = streams.cancelled() => {}
                        }
                    });
                }
                Err(error) => return format!("tunnel failed: {error}"),
            }
        }
        "closed by the server".to_string()
    };
    // Ending here drops the connection and cancels every stream of this tunnel.
    Ok(tokio::select! {
        why = accept => why,
        why = keepalive(ping_pong) => why,
    })
}

async fn serve_stream(
    settings: &AgentSettings,
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
) {
    let refusals = &settings.metrics.stream_refusals;
    let refuse = |respond: &mut h2::server::SendResponse<Bytes>, status: StatusCode, reason: &str| {
        let label = match status {
            StatusCode::FORBIDDEN => "not_allowed",
            StatusCode::METHOD_NOT_ALLOWED => "method",
            StatusCode::GATEWAY_TIMEOUT => "timeout",
            _ => "connect",
        };
        refusals.with_label_values(&[label]).inc();
        let mut response = Response::builder().status(status);
        if let Ok(value) = http::HeaderValue::from_str(reason) {
            response = response.header(DIAL_REFUSED_HEADER, value);
        }
        if let Ok(response) = response.body(()) {
            let _ = respond.send_response(response, true);
        }
    };
    let authority = request
        .uri()
        .authority()
        .map(|authority| authority.as_str().to_string());
    let authority = match (request.method(), authority) {
        (&Method::CONNECT, Some(authority)) => authority,
        _ => return refuse(&mut respond, StatusCode::METHOD_NOT_ALLOWED, "only CONNECT host:port"),
    };
    if !settings.allowed.contains(&authority) {
        tracing::warn!(
            authority,
            "refused a connection to an address that is not an apiserver of this agent"
        );
        return refuse(&mut respond, StatusCode::FORBIDDEN, "not an apiserver of this agent");
    }
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&authority)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(error)) => return refuse(&mut respond, StatusCode::BAD_GATEWAY, &format!("connect: {error}")),
        Err(_) => return refuse(&mut respond, StatusCode::GATEWAY_TIMEOUT, "connect: timed out"),
    };
    let _ = tcp.set_nodelay(true);
    let send = match Response::builder().status(StatusCode::OK).body(()) {
        Ok(response) => match respond.send_response(response, false) {
            Ok(send) => send,
            Err(_) => return,
        },
        Err(_) => return,
    };
    let gauge = settings.metrics.streams_open.clone();
    gauge.inc();
    let mut stream = TunnelStream::new(send, request.into_body()).on_drop(move || gauge.dec());
    let activity = stream.activity();
    let mut tcp = tcp;
    let idle = async {
        loop {
            tokio::time::sleep(STREAM_IDLE_TIMEOUT / 4).await;
            if activity.idle_for() >= STREAM_IDLE_TIMEOUT {
                return;
            }
        }
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut tcp, &mut stream) => {}
        _ = idle => tracing::debug!(authority, "idle apiserver connection closed"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::tunnel::hub::{AgentServerMetrics, DialError, TunnelHub};

    /// A replica's hub with one tunnel to an agent serving `allowed`, over an in-memory pipe.
    async fn tunnel_to(allowed: &[String]) -> Arc<TunnelHub> {
        let hub = Arc::new(TunnelHub::new(Arc::new(AgentServerMetrics::unregistered())));
        add_tunnel(&hub, allowed).await;
        hub
    }

    /// Adds a tunnel to an agent serving `allowed`; returns the agent's task (abort it to kill
    /// the agent's end).
    async fn add_tunnel(hub: &TunnelHub, allowed: &[String]) -> tokio::task::JoinHandle<Result<String, String>> {
        let settings = test_settings(allowed, None);
        let (replica_side, agent_side) = tokio::io::duplex(64 * 1024);
        let agent = tokio::spawn(async move { serve_tunnel(&settings, agent_side).await });
        let (sender, connection) = crate::agent::listener::tunnel_client()
            .handshake::<_, Bytes>(replica_side)
            .await
            .expect("HTTP/2 over the pipe");
        tokio::spawn(connection);
        hub.add("edge", sender);
        agent
    }

    /// An agent's settings for cluster `edge` with the token `t`, serving `allowed`.
    fn test_settings(allowed: &[String], tls: Option<TlsConnector>) -> AgentSettings {
        AgentSettings {
            servers: vec!["unused:1".into()],
            cluster: "edge".into(),
            token: "t".into(),
            report: Report {
                endpoints: Vec::new(),
                credentials: ClusterCredentials::default(),
                agent_version: "test".into(),
            },
            allowed: Arc::new(allowed.iter().cloned().collect()),
            health_listen: None,
            tls,
            metrics: Arc::new(AgentMetrics::new()),
        }
    }

    /// A TCP server on loopback echoing what it reads; sends on `closed` when a connection ends.
    async fn echo_server() -> (String, tokio::sync::mpsc::UnboundedReceiver<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let (closed, closures) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let closed = closed.clone();
                tokio::spawn(async move {
                    let mut buffer = [0u8; 4096];
                    while let Ok(count) = socket.read(&mut buffer).await {
                        if count == 0 || socket.write_all(&buffer[..count]).await.is_err() {
                            break;
                        }
                    }
                    let _ = closed.send(());
                });
            }
        });
        (address, closures)
    }

    /// A TCP server that writes up to 64 MiB to whoever connects, as fast as it is read.
    async fn flood_server() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let chunk = vec![b'x'; 64 * 1024];
                    for _ in 0..1024 {
                        if socket.write_all(&chunk).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        address
    }

    const WAIT: Duration = Duration::from_secs(5);

    #[test]
    fn the_server_ca_is_pem_text_or_a_file_and_anything_else_stops_the_agent() {
        let ca = rcgen::CertificateParams::default()
            .self_signed(&rcgen::KeyPair::generate().expect("a key"))
            .expect("a certificate")
            .pem();
        assert!(pinned_connector(&ca).is_ok(), "PEM text");
        let dir = tempfile::tempdir().expect("a dir");
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, &ca).expect("write");
        assert!(pinned_connector(&path.to_string_lossy()).is_ok(), "a file");
        for (value, expected) in [
            ("/nonexistent/ca.pem", "read /nonexistent/ca.pem"),
            (
                "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
                "not PEM",
            ),
            (
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "no certificate",
            ),
        ] {
            match pinned_connector(value) {
                Ok(_) => panic!("{value:?} is refused"),
                Err(message) => assert!(
                    message.starts_with("KUBOARD_AGENT_SERVER_CA") && message.contains(expected),
                    "{value:?}: {message}"
                ),
            }
        }
    }

    #[tokio::test]
    async fn streams_reach_allowed_apiservers_only_and_close_with_their_end() {
        let (echo, mut closures) = echo_server().await;
        let hub = tunnel_to(std::slice::from_ref(&echo)).await;

        let mut stream = hub.dial("edge", &echo, WAIT).await.expect("an allowed address");
        assert_eq!(hub.metrics.streams_open.get(), 1);
        stream.write_all(b"through the tunnel").await.expect("write");
        let mut answer = [0u8; 18];
        tokio::time::timeout(WAIT, stream.read_exact(&mut answer))
            .await
            .expect("the echo within 5 s")
            .expect("read");
        assert_eq!(&answer, b"through the tunnel");

        // Dropping the stream on the replica's side closes the agent's connection to the apiserver.
        drop(stream);
        assert_eq!(hub.metrics.streams_open.get(), 0);
        tokio::time::timeout(WAIT, closures.recv())
            .await
            .expect("the agent closes its TCP connection within 5 s");

        for refused in ["127.0.0.1:1", "example.org:443", "10.0.0.1:6443"] {
            match hub.dial("edge", refused, WAIT).await {
                Err(DialError::Refused { status, .. }) => assert_eq!(status, StatusCode::FORBIDDEN, "{refused}"),
                Err(other) => panic!("{refused}: refused with 403, got {other}"),
                Ok(_) => panic!("{refused} is not an apiserver of the agent and must not be dialled"),
            }
        }
        assert!(matches!(
            hub.dial("other", &echo, WAIT).await,
            Err(DialError::NoTunnel(_))
        ));
        assert_eq!(hub.metrics.streams_open.get(), 0);
    }

    #[tokio::test]
    async fn a_stream_nobody_reads_does_not_stall_the_others() {
        let (echo, _closures) = echo_server().await;
        let flood = flood_server().await;
        let hub = tunnel_to(&[echo.clone(), flood.clone()]).await;

        // More streams than the tunnel's window would hold if it were only a multiple of the
        // stream window: each fills its own window and is never read again.
        let mut stalled = Vec::new();
        for _ in 0..24 {
            let mut stream = hub.dial("edge", &flood, WAIT).await.expect("the flood");
            let mut first = [0u8; 1024];
            stream.read_exact(&mut first).await.expect("the flood starts");
            stalled.push(stream);
        }

        let mut interactive = hub.dial("edge", &echo, WAIT).await.expect("the echo");
        for round in 0..50u32 {
            let message = format!("keystroke {round:04}");
            interactive.write_all(message.as_bytes()).await.expect("write");
            let mut answer = vec![0u8; message.len()];
            tokio::time::timeout(Duration::from_secs(2), interactive.read_exact(&mut answer))
                .await
                .unwrap_or_else(|_| panic!("round {round} answered within 2 s while another stream is full"))
                .expect("read");
            assert_eq!(answer, message.as_bytes());
        }
        drop(stalled);
    }

    #[tokio::test]
    async fn a_dead_newest_tunnel_falls_back_to_an_older_one() {
        let (echo, _closures) = echo_server().await;
        let hub = tunnel_to(std::slice::from_ref(&echo)).await;
        let newest = add_tunnel(&hub, std::slice::from_ref(&echo)).await;
        assert_eq!(hub.tunnel_count("edge"), 2);
        newest.abort();
        let _ = newest.await;
        let mut stream = hub
            .dial("edge", &echo, WAIT)
            .await
            .expect("the older tunnel serves when the newest is dead");
        stream.write_all(b"ping").await.expect("write");
        let mut answer = [0u8; 4];
        tokio::time::timeout(WAIT, stream.read_exact(&mut answer))
            .await
            .expect("the echo within 5 s")
            .expect("read");
        assert_eq!(&answer, b"ping");
    }

    /// A CA (certificate and key) made with `rcgen`, as the group CA is.
    fn test_ca() -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().expect("a key");
        let mut params = rcgen::CertificateParams::default();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        (params.self_signed(&key).expect("a CA"), key)
    }

    /// A loopback TLS server presenting a certificate for `name` issued by `ca`, valid until
    /// `not_after`. After a TLS handshake it reads one hello frame and sends it on the channel.
    async fn tls_server(
        ca: &(rcgen::Certificate, rcgen::KeyPair),
        name: &str,
        not_after: (i32, u8, u8),
    ) -> (String, tokio::sync::mpsc::UnboundedReceiver<Hello>) {
        let key = rcgen::KeyPair::generate().expect("a key");
        let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).expect("params");
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let leaf = params.signed_by(&key, &ca.0, &ca.1).expect("a leaf");
        let private = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone(), ca.0.der().clone()], private)
            .expect("a server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let (hellos, received) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let Ok(mut stream) = acceptor.accept(socket).await else {
                    continue;
                };
                if let Ok(hello) = framing::read_record::<Hello, _>(&mut stream, protocol::HELLO_LIMIT).await {
                    let _ = hellos.send(hello);
                }
            }
        });
        (address, received)
    }

    /// What broke: rustls reports a wrong name and an expired certificate with its `…Context`
    /// variants, which the agent logged and counted as `untrusted_certificate` ("not signed by
    /// KUBOARD_AGENT_SERVER_CA"), sending the operator after the wrong cause. Each reason is told
    /// apart now (log and `kuboard_agent_tls_failures_total`); the control: the pinned CA's
    /// certificate for the agent server name gets the hello, inside TLS, and counts nothing.
    #[tokio::test]
    async fn a_wrong_name_or_an_expired_certificate_was_reported_as_untrusted() {
        let pinned = test_ca();
        let other = test_ca();
        let settings = test_settings(&[], Some(pinned_connector(&pinned.0.pem()).expect("the pin")));
        let name = protocol::TLS_SERVER_NAME;
        for (what, ca, server_name, not_after, reason) in [
            ("another CA", &other, name, (4000, 1, 1), "untrusted_certificate"),
            (
                "the pinned CA, another name",
                &pinned,
                "kuboard1",
                (4000, 1, 1),
                "wrong_name",
            ),
            ("the pinned CA, expired", &pinned, name, (2020, 1, 1), "expired"),
        ] {
            let (address, mut hellos) = tls_server(ca, server_name, not_after).await;
            let error = tunnel(&settings, &address)
                .await
                .expect_err(&format!("{what}: refused"));
            assert!(error.starts_with(&format!("TLS refused ({reason})")), "{what}: {error}");
            assert_eq!(
                settings
                    .metrics
                    .tls_failures
                    .with_label_values(&[&address, reason])
                    .get(),
                1,
                "{what}: counted once"
            );
            assert!(hellos.try_recv().is_err(), "{what}: no hello sent");
        }

        let (address, mut hellos) = tls_server(&pinned, name, (4000, 1, 1)).await;
        let error = tunnel(&settings, &address)
            .await
            .expect_err("the server closes after the hello");
        assert!(!error.starts_with("TLS"), "the TLS handshake passed: {error}");
        let hello = tokio::time::timeout(WAIT, hellos.recv())
            .await
            .expect("the hello within 5 s")
            .expect("a hello");
        assert_eq!((hello.cluster.as_str(), hello.token.as_str()), ("edge", "t"));
        for reason in [
            "untrusted_certificate",
            "wrong_name",
            "expired",
            "closed",
            "handshake",
            "timeout",
        ] {
            let counted = settings
                .metrics
                .tls_failures
                .with_label_values(&[&address, reason])
                .get();
            assert_eq!(counted, 0, "no {reason} failure counted for the good server");
        }
    }
}
