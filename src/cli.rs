//! The command line: subcommands and the flags of `kuboard serve`, each mirrored by an environment
//! variable (`--server-port` ↔ `KUBOARD_SERVER_PORT`).
//!
//! clap only collects the raw text of every setting here; [`crate::config`] turns it into typed,
//! validated settings so that every bad value is reported the same way (one line, exit code 2).

use std::collections::BTreeMap;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "kuboard",
    version = crate::version::VERSION,
    about = "Kuboard: a highly available Kubernetes multi-cluster dashboard",
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one replica: web UI, REST API and the store (an embedded Raft member).
    Serve(Box<ServeArgs>),
    /// Print the version, the git commit and the enabled features.
    Version(VersionArgs),
    /// Operator tools: store snapshots and the members of the embedded group.
    Admin(AdminArgs),
    /// Run the agent of a cluster the replicas cannot reach: it keeps a tunnel to every replica's
    /// agent port and opens the replicas' connections to its apiserver.
    Agent(AgentArgs),
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// A kubeconfig to reach the apiserver with; without it, the pod's service account
    /// (`KUBERNETES_SERVICE_HOST`/`_PORT` and the token and CA under
    /// /var/run/secrets/kubernetes.io/serviceaccount).
    #[arg(long, env = "KUBOARD_AGENT_KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// The kubeconfig context (its current context when not given).
    #[arg(long, env = "KUBOARD_AGENT_CONTEXT")]
    pub context: Option<String>,
    /// Every replica's agent address, comma-separated (`kuboard1:10081,kuboard2:10081`); one
    /// tunnel is kept to each. Kuboard's single `KUBOARD_AGENT_HOST` + `KUBOARD_AGENT_PORT` are
    /// accepted when this is not given.
    #[arg(long, env = "KUBOARD_AGENT_ENDPOINT", value_name = "HOST:PORT,...")]
    pub endpoint: Option<String>,
    #[arg(long, env = "KUBOARD_AGENT_HOST", hide = true)]
    pub kuboard_agent_host: Option<String>,
    #[arg(long, env = "KUBOARD_AGENT_PORT", hide = true)]
    pub kuboard_agent_port: Option<String>,
    /// The cluster's name in Kuboard (also read from Kuboard's `KUBOARD_K8S_CLUSTER_NAME`).
    #[arg(long, env = "KUBOARD_AGENT_CLUSTER")]
    pub cluster: Option<String>,
    #[arg(long, env = "KUBOARD_K8S_CLUSTER_NAME", hide = true)]
    pub kuboard_cluster_name: Option<String>,
    /// The cluster's agent token, as Kuboard showed it when the cluster was created or its token
    /// rotated. Read from the environment only, so that it does not show in the process list.
    #[arg(skip)]
    pub token: Option<String>,
    /// The CA that signs the replicas' agent-port certificates (the group CA, as the manifest made
    /// by Kuboard carries it): PEM text, or the path of a PEM file. When given, every tunnel is
    /// TLS, verified against this CA only, and never plain.
    #[arg(long, env = "KUBOARD_AGENT_SERVER_CA", value_name = "PEM|FILE")]
    pub server_ca: Option<String>,
    /// Where to serve `/healthz`, `/readyz` (200 while at least one tunnel is up) and `/metrics`
    /// (`ip:port`, e.g. `0.0.0.0:10082` in a pod); not served when not given.
    #[arg(long, env = "KUBOARD_AGENT_HEALTH_LISTEN", value_name = "IP:PORT")]
    pub health_listen: Option<String>,
    /// Log format and level, as for `serve`.
    #[arg(long, env = "KUBOARD_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Save a consistent snapshot of the store to a file, or restore one into an empty store.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// List, add, remove or replace members of the embedded Raft group, through a running replica.
    #[command(subcommand)]
    Members(MembersCommand),
    /// Set a new password for USER (to be changed at the next login) and end the user's sessions.
    ///
    /// With --server, through a running replica as an administrator. Without it, offline: the store
    /// is opened from the settings of `kuboard serve` (KUBOARD_DATA_DIR of a stopped single replica,
    /// or KUBOARD_ETCD_*). A new password is generated and printed unless --new-password is given.
    ResetPassword(Box<ResetPasswordArgs>),
}

#[derive(Debug, Args)]
pub struct ResetPasswordArgs {
    /// The user whose password is reset.
    #[arg(value_name = "USER")]
    pub username: String,

    /// The new password (else one is generated and printed).
    #[arg(long, env = "KUBOARD_NEW_PASSWORD", value_name = "PASSWORD", hide_env_values = true)]
    pub new_password: Option<String>,

    /// URL of a running replica to reset through (`http://kuboard-0:80`). Unset: offline.
    #[arg(long, value_name = "URL", help_heading = "Reset through a running replica")]
    pub server: Option<String>,

    /// Bearer token of an administrator's session or access key.
    #[arg(
        long,
        env = "KUBOARD_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        help_heading = "Reset through a running replica"
    )]
    pub token: Option<String>,

    /// Administrator to log in as when no token is given.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "admin",
        help_heading = "Reset through a running replica"
    )]
    pub admin_username: String,

    /// Password of that administrator.
    #[arg(
        long,
        env = "KUBOARD_ADMIN_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true,
        help_heading = "Reset through a running replica"
    )]
    pub admin_password: Option<String>,

    /// The store settings of `kuboard serve` (read from the same variables), for the offline reset.
    #[command(flatten)]
    pub store: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum MembersCommand {
    /// Show the members with their peer addresses, roles and health, as the replica sees them.
    List(MembersListArgs),
    /// Add member ID listening for peers at HOST:PORT; its replica must be running (started with
    /// the group's KUBOARD_RAFT_PEERS plus itself and the same KUBOARD_CLUSTER_SECRET). It catches
    /// up as a learner, then votes.
    Add(MemberChangeArgs),
    /// Remove member ID from the group (stop its replica afterwards).
    Remove(MemberRemoveArgs),
    /// Replace member ID by a fresh member at HOST:PORT (the same or a new address): the way back
    /// for a replica whose data directory was lost. Running it again finishes an interrupted replace.
    Replace(MemberChangeArgs),
}

/// Which replica to ask, and as whom.
#[derive(Debug, Args)]
#[command(next_help_heading = "Replica to ask")]
pub struct ServerArgs {
    /// URL of any running replica (`http://kuboard-0:80`).
    #[arg(long, value_name = "URL")]
    pub server: String,

    /// Bearer token of a logged-in admin session (from POST /kuboard-api/auth/login).
    #[arg(long, env = "KUBOARD_ADMIN_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// User to log in as when no token is given (only admin may change members).
    #[arg(long, value_name = "NAME", default_value = "admin")]
    pub username: String,

    /// Password to log in with when no token is given; the session is ended afterwards.
    #[arg(
        long,
        env = "KUBOARD_ADMIN_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,
}

#[derive(Debug, Args)]
pub struct MembersListArgs {
    /// Print the replica's answer as JSON.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct MemberChangeArgs {
    /// The member: `ID=HOST:PORT` (or `ID HOST:PORT`), HOST:PORT being its Raft peer address.
    #[arg(value_name = "ID=HOST:PORT", num_args = 1..=2, required = true)]
    pub member: Vec<String>,

    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct MemberRemoveArgs {
    /// The member id.
    #[arg(value_name = "ID")]
    pub id: String,

    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Write a snapshot of every key of the store (for an external etcd: under the prefix) to FILE.
    ///
    /// External etcd (KUBOARD_ETCD_ENDPOINTS set, same KUBOARD_ETCD_* settings as `serve`): read
    /// from etcd directly. Embedded store: ask a running replica with --server and the admin's
    /// token or password. The file is replaced atomically and holds password hashes: keep it safe.
    Save(Box<SnapshotSaveArgs>),
    /// Restore FILE into an empty store; a store that holds any key is refused and left unchanged.
    ///
    /// External etcd: into the empty KUBOARD_ETCD_PREFIX of KUBOARD_ETCD_ENDPOINTS. Embedded store:
    /// offline, into a KUBOARD_DATA_DIR that holds no store yet, as a one-member group of member
    /// KUBOARD_RAFT_NODE_ID (start that replica next). Login sessions are not restored.
    Restore(Box<SnapshotRestoreArgs>),
}

#[derive(Debug, Args)]
pub struct SnapshotSaveArgs {
    /// The snapshot file to write.
    #[arg(value_name = "FILE")]
    pub file: std::path::PathBuf,

    /// URL of a running replica to take the snapshot from (`http://kuboard-0:80`); needed for the
    /// embedded store.
    #[arg(long, value_name = "URL", help_heading = "Snapshot from a running replica")]
    pub server: Option<String>,

    /// Bearer token of a logged-in admin session (from POST /kuboard-api/auth/login).
    #[arg(
        long,
        env = "KUBOARD_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        help_heading = "Snapshot from a running replica"
    )]
    pub token: Option<String>,

    /// User to log in as when no token is given (only admin may take snapshots).
    #[arg(
        long,
        value_name = "NAME",
        default_value = "admin",
        help_heading = "Snapshot from a running replica"
    )]
    pub username: String,

    /// Password to log in with when no token is given; the session is ended afterwards.
    #[arg(
        long,
        env = "KUBOARD_ADMIN_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true,
        help_heading = "Snapshot from a running replica"
    )]
    pub password: Option<String>,

    /// The store settings of `kuboard serve` (read from the same variables).
    #[command(flatten)]
    pub store: ServeArgs,
}

#[derive(Debug, Args)]
pub struct SnapshotRestoreArgs {
    /// The snapshot file to restore.
    #[arg(value_name = "FILE")]
    pub file: std::path::PathBuf,

    /// The store settings of `kuboard serve` (read from the same variables).
    #[command(flatten)]
    pub store: ServeArgs,
}

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Print as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The settings of `kuboard serve`. Every field is the raw text of one setting; the environment
/// variable named in `env` is read when the flag is absent. Defaults live in [`crate::config`].
#[derive(Debug, Args)]
#[command(next_help_heading = "Kuboard settings (compatible with Kuboard v3)")]
pub struct ServeArgs {
    /// Public URL of the web service, normally the load balancer in front of the replicas
    /// (http:// or https://).
    #[arg(long, env = "KUBOARD_ENDPOINT", value_name = "URL")]
    pub endpoint: Option<String>,

    /// Web (HTTP or HTTPS) port inside the host or container. Default 80.
    #[arg(long, env = "KUBOARD_SERVER_PORT", value_name = "PORT")]
    pub server_port: Option<String>,

    /// HTTPS port beside the web port, serving the group's own certificate (or KUBOARD_TLS_CERT's);
    /// downloaded kubeconfigs point kubectl at it. Default 443; `off` turns it off.
    #[arg(long, env = "KUBOARD_SERVER_HTTPS_PORT", value_name = "PORT|off")]
    pub server_https_port: Option<String>,

    /// Address the web listener binds (and the Raft peer listener unless KUBOARD_RAFT_ADDR says
    /// otherwise). Default 0.0.0.0.
    #[arg(long, env = "KUBOARD_SERVER_ADDR", value_name = "IP")]
    pub server_addr: Option<String>,

    /// Agent port, as listened on and as published to agents. Default 10081.
    #[arg(long, env = "KUBOARD_AGENT_SERVER_TCP_PORT", value_name = "PORT")]
    pub agent_server_tcp_port: Option<String>,

    /// With several replicas: every replica's agent address, comma-separated (`ip1:10081,ip2:10081`).
    #[arg(long, env = "KUBOARD_AGENT_ENDPOINT", value_name = "HOST:PORT,...")]
    pub agent_endpoint: Option<String>,

    /// Refuse agents that do not speak TLS on the agent port (`true`); by default the port takes
    /// both TLS (the manifests Kuboard makes pin the group CA) and plain connections.
    #[arg(long, env = "KUBOARD_AGENT_SERVER_REQUIRE_TLS", value_name = "BOOL")]
    pub agent_server_require_tls: Option<String>,

    /// External etcd endpoints, comma-separated. Unset: the embedded Raft store (the default).
    #[arg(long, env = "KUBOARD_ETCD_ENDPOINTS", value_name = "URL,...")]
    pub etcd_endpoints: Option<String>,

    /// QuestDB for audit events: `postgresql://user:pass@host:8812/qdb`.
    #[arg(long, env = "KUBOARD_QUEST_DB_URI", value_name = "URI", hide_env_values = true)]
    pub quest_db_uri: Option<String>,

    /// `true` turns audit off entirely (no QuestDB needed). Default false.
    #[arg(long, env = "KUBOARD_DISABLE_AUDIT", value_name = "BOOL")]
    pub disable_audit: Option<String>,

    /// Client secret of the built-in OIDC issuer; the same on every replica.
    #[arg(
        long,
        env = "KUBOARD_SSO_CLIENT_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub sso_client_secret: Option<String>,

    /// Password of the `admin` user created on the very first start. Default `Kuboard123`.
    /// Kuboard's spelling `KUBOARD_ADMIN_DERAULT_PASSWORD` is accepted too.
    #[arg(
        long,
        env = "KUBOARD_ADMIN_DEFAULT_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub admin_default_password: Option<String>,

    /// Kuboard's own (misspelt) name of `--admin-default-password`.
    #[arg(long, env = "KUBOARD_ADMIN_DERAULT_PASSWORD", hide = true, hide_env_values = true)]
    pub admin_derault_password: Option<String>,

    /// PEM certificate chain for HTTPS on the web port (set together with the key).
    #[arg(long, env = "KUBOARD_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<String>,

    /// PEM private key for HTTPS on the web port (set together with the certificate).
    #[arg(long, env = "KUBOARD_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<String>,

    /// Log level: trace, debug, info, warn (warning), error, fatal or panic. Default info; when
    /// unset, RUST_LOG (tracing filter syntax) is used if set.
    #[arg(long, alias = "log-level", env = "KUBOARD_SERVER_LOGRUS_LEVEL", value_name = "LEVEL")]
    pub server_logrus_level: Option<String>,

    /// A tracing filter (`info,kuboard=debug`), used when the log level is not set.
    #[arg(long, env = "RUST_LOG", hide = true)]
    pub rust_log: Option<String>,

    /// Data directory of this replica (store files). Must be writable. Default /data.
    #[arg(long, env = "KUBOARD_DATA_DIR", value_name = "DIR", help_heading = "Store settings")]
    pub data_dir: Option<String>,

    /// This replica's Raft member id (>= 1). Unset: derived from a StatefulSet-style hostname
    /// `name-N` as N+1 when peers are given, 1 otherwise.
    #[arg(
        long,
        env = "KUBOARD_RAFT_NODE_ID",
        value_name = "ID",
        help_heading = "Store settings"
    )]
    pub raft_node_id: Option<String>,

    /// Every member of the Raft group, this one included: `1=host1:10082,2=host2:10082,3=host3:10082`.
    /// Unset: a one-member group on this replica.
    #[arg(
        long,
        env = "KUBOARD_RAFT_PEERS",
        value_name = "ID=HOST:PORT,...",
        help_heading = "Store settings"
    )]
    pub raft_peers: Option<String>,

    /// Port of the Raft peer listener. Default: the port of this member's entry in the peers, else 10082.
    #[arg(
        long,
        env = "KUBOARD_RAFT_PORT",
        value_name = "PORT",
        help_heading = "Store settings"
    )]
    pub raft_port: Option<String>,

    /// Address the Raft peer listener binds. Default: the web bind address (KUBOARD_SERVER_ADDR).
    #[arg(long, env = "KUBOARD_RAFT_ADDR", value_name = "IP", help_heading = "Store settings")]
    pub raft_addr: Option<String>,

    /// Shared secret authenticating Raft peers (at least 16 characters); required with more than one peer.
    #[arg(
        long,
        env = "KUBOARD_CLUSTER_SECRET",
        value_name = "SECRET",
        hide_env_values = true,
        help_heading = "Store settings"
    )]
    pub cluster_secret: Option<String>,

    /// Raft heartbeat interval in milliseconds (10-10000). Default 100.
    #[arg(
        long,
        env = "KUBOARD_RAFT_HEARTBEAT_MS",
        value_name = "MS",
        help_heading = "Store settings"
    )]
    pub raft_heartbeat_ms: Option<String>,

    /// Raft election timeout in milliseconds: the longest a follower waits after the leader's last
    /// heartbeat before it campaigns. At least 3x the heartbeat (up to 60000). Default 800.
    #[arg(
        long,
        env = "KUBOARD_RAFT_ELECTION_TIMEOUT_MS",
        value_name = "MS",
        help_heading = "Store settings"
    )]
    pub raft_election_timeout_ms: Option<String>,

    /// Build a store snapshot every this many applied log entries (100-10000000). Default 10000.
    #[arg(
        long,
        env = "KUBOARD_RAFT_SNAPSHOT_THRESHOLD",
        value_name = "ENTRIES",
        help_heading = "Store settings"
    )]
    pub raft_snapshot_threshold: Option<String>,

    /// Keep this many seconds of the embedded store's history (older revisions of keys, for
    /// watches and reads at a revision); older history is compacted away by one replica at a time,
    /// like etcd's --auto-compaction-retention. 0 turns compaction off (the history then grows
    /// without bound). Up to 2592000 (30 days). Default 3600. Not used with
    /// KUBOARD_ETCD_ENDPOINTS: an external etcd compacts itself.
    #[arg(
        long,
        env = "KUBOARD_RAFT_COMPACTION_RETENTION_SECONDS",
        value_name = "SECONDS",
        help_heading = "Store settings"
    )]
    pub raft_compaction_retention_seconds: Option<String>,

    /// Serve the etcd v3 gRPC API of the embedded store on this port (etcdctl works against it).
    /// Use the same port on every replica: `member list` reports each member at its peer host and
    /// this port. Unset: not served. Not allowed with KUBOARD_ETCD_ENDPOINTS.
    #[arg(
        long,
        env = "KUBOARD_ETCD_API_PORT",
        value_name = "PORT",
        help_heading = "Store settings"
    )]
    pub etcd_api_port: Option<String>,

    /// Address the etcd v3 API binds. Default 127.0.0.1 (this host only).
    #[arg(
        long,
        env = "KUBOARD_ETCD_API_ADDR",
        value_name = "IP",
        help_heading = "Store settings"
    )]
    pub etcd_api_addr: Option<String>,

    /// PEM certificate chain: the etcd v3 API is served over TLS (set together with the key).
    #[arg(
        long,
        env = "KUBOARD_ETCD_API_CERT",
        value_name = "FILE",
        help_heading = "Store settings"
    )]
    pub etcd_api_cert: Option<String>,

    /// PEM private key of the etcd v3 API's certificate.
    #[arg(
        long,
        env = "KUBOARD_ETCD_API_KEY",
        value_name = "FILE",
        help_heading = "Store settings"
    )]
    pub etcd_api_key: Option<String>,

    /// PEM CA certificate: etcd v3 API clients must present a certificate signed by it (needs the
    /// certificate and key).
    #[arg(
        long,
        env = "KUBOARD_ETCD_API_CLIENT_CA",
        value_name = "FILE",
        help_heading = "Store settings"
    )]
    pub etcd_api_client_ca: Option<String>,

    /// true: serve the etcd v3 API on a non-loopback address without client certificates. Only for
    /// isolated test networks (every client that reaches it can read and write every key).
    #[arg(
        long,
        env = "KUBOARD_ETCD_API_INSECURE_BIND",
        value_name = "BOOL",
        help_heading = "Store settings"
    )]
    pub etcd_api_insecure_bind: Option<String>,

    /// CA certificate (PEM) to verify an external etcd.
    #[arg(
        long,
        env = "KUBOARD_ETCD_CACERT",
        value_name = "FILE",
        help_heading = "Store settings"
    )]
    pub etcd_cacert: Option<String>,

    /// Client certificate (PEM) for an external etcd.
    #[arg(
        long,
        env = "KUBOARD_ETCD_CERT",
        value_name = "FILE",
        help_heading = "Store settings"
    )]
    pub etcd_cert: Option<String>,

    /// Client key (PEM) for an external etcd.
    #[arg(long, env = "KUBOARD_ETCD_KEY", value_name = "FILE", help_heading = "Store settings")]
    pub etcd_key: Option<String>,

    /// User name for an external etcd.
    #[arg(
        long,
        env = "KUBOARD_ETCD_USERNAME",
        value_name = "NAME",
        help_heading = "Store settings"
    )]
    pub etcd_username: Option<String>,

    /// Password for an external etcd.
    #[arg(
        long,
        env = "KUBOARD_ETCD_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true,
        help_heading = "Store settings"
    )]
    pub etcd_password: Option<String>,

    /// Key prefix of Kuboard's data in an external etcd. Default /kuboard/.
    #[arg(
        long,
        env = "KUBOARD_ETCD_PREFIX",
        value_name = "PREFIX",
        help_heading = "Store settings"
    )]
    pub etcd_prefix: Option<String>,

    /// Audit policy: ignore-errors (default), buffered or strict. KUBOARD_DISABLE_AUDIT=true wins.
    #[arg(
        long,
        env = "KUBOARD_AUDIT_POLICY",
        value_name = "POLICY",
        help_heading = "Audit and sessions"
    )]
    pub audit_policy: Option<String>,

    /// `true`: reads (GET) are audited as well as changes, logins, sessions and denials. Default false.
    #[arg(
        long,
        env = "KUBOARD_AUDIT_READS",
        value_name = "BOOL",
        help_heading = "Audit and sessions"
    )]
    pub audit_reads: Option<String>,

    /// Bound in bytes of the local audit log kept in the data dir when no KUBOARD_QUEST_DB_URI is
    /// set; the oldest segment is removed beyond it. Default 268435456 (256 MiB).
    #[arg(
        long,
        env = "KUBOARD_AUDIT_LOCAL_MAX_BYTES",
        value_name = "BYTES",
        help_heading = "Audit and sessions"
    )]
    pub audit_local_max_bytes: Option<String>,

    /// Lifetime of a login session in seconds (60-2592000). Default 43200 (12 hours).
    #[arg(
        long,
        env = "KUBOARD_SESSION_TTL_SECONDS",
        value_name = "SECONDS",
        help_heading = "Audit and sessions"
    )]
    pub session_ttl_seconds: Option<String>,

    /// Lifetime in seconds of a session logged in with "stay logged in" (60-7776000, at least the
    /// session TTL). Default 604800 (7 days).
    #[arg(
        long,
        env = "KUBOARD_SESSION_REMEMBER_TTL_SECONDS",
        value_name = "SECONDS",
        help_heading = "Audit and sessions"
    )]
    pub session_remember_ttl_seconds: Option<String>,

    /// Load balancers or proxies whose X-Forwarded-For names the client: IP addresses or CIDR
    /// networks, comma-separated. Unset: the peer address is the client.
    #[arg(
        long,
        env = "KUBOARD_TRUSTED_PROXIES",
        value_name = "CIDR,...",
        help_heading = "Audit and sessions"
    )]
    pub trusted_proxies: Option<String>,

    /// Failed logins of one user within the window after which its logins are refused (429) until
    /// the window ends. Default 10.
    #[arg(
        long,
        env = "KUBOARD_LOGIN_MAX_FAILURES",
        value_name = "COUNT",
        help_heading = "Audit and sessions"
    )]
    pub login_max_failures: Option<String>,

    /// Failed logins from one client address within the window after which its logins are refused.
    /// Default 50.
    #[arg(
        long,
        env = "KUBOARD_LOGIN_MAX_FAILURES_PER_ADDRESS",
        value_name = "COUNT",
        help_heading = "Audit and sessions"
    )]
    pub login_max_failures_per_address: Option<String>,

    /// The window of the failed-login counters in seconds (10-86400). Default 300.
    #[arg(
        long,
        env = "KUBOARD_LOGIN_FAILURE_WINDOW_SECONDS",
        value_name = "SECONDS",
        help_heading = "Audit and sessions"
    )]
    pub login_failure_window_seconds: Option<String>,
}

/// Where a raw setting came from, so that an error names what the operator actually wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawValue {
    pub value: String,
    /// `KUBOARD_SERVER_PORT` when read from the environment, `--server-port` when given as a flag.
    pub label: String,
}

/// The raw text of every setting given, keyed by its environment variable name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawSettings {
    pub values: BTreeMap<&'static str, RawValue>,
}

impl RawSettings {
    /// Collects the settings of `kuboard serve` from clap's matches of its subcommand (or of any
    /// subcommand that flattens [`ServeArgs`]).
    pub fn from_serve_matches(matches: &ArgMatches) -> RawSettings {
        let command = ServeArgs::augment_args(clap::Command::new("serve"));
        let mut values = BTreeMap::new();
        for arg in command.get_arguments() {
            let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) else {
                continue;
            };
            let id = arg.get_id().as_str();
            let Some(value) = matches.get_one::<String>(id) else {
                continue;
            };
            let label = match matches.value_source(id) {
                Some(ValueSource::CommandLine) => format!("--{long}"),
                _ => env.to_string_lossy().into_owned(),
            };
            let env_name = env_name_static(&env.to_string_lossy());
            values.insert(
                env_name,
                RawValue {
                    value: value.clone(),
                    label,
                },
            );
        }
        RawSettings { values }
    }

    /// Builds raw settings as if the given environment variables were set.
    #[cfg(test)]
    pub fn from_env_pairs(pairs: &[(&str, &str)]) -> RawSettings {
        let values = pairs
            .iter()
            .map(|(name, value)| {
                let env_name = env_name_static(name);
                (
                    env_name,
                    RawValue {
                        value: value.to_string(),
                        label: env_name.to_string(),
                    },
                )
            })
            .collect();
        RawSettings { values }
    }

    pub fn get(&self, env_name: &str) -> Option<&RawValue> {
        self.values.get(env_name)
    }
}

/// Maps an environment variable name to the static name of a known setting. Unknown names are a
/// programming error in this crate, so this panics with the name.
fn env_name_static(name: &str) -> &'static str {
    known_env_names()
        .iter()
        .copied()
        .find(|known| *known == name)
        .unwrap_or_else(|| panic!("{name} is not a setting of kuboard serve"))
}

/// Every environment variable that `kuboard serve` reads.
pub fn known_env_names() -> &'static [&'static str] {
    static NAMES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        let command = ServeArgs::augment_args(clap::Command::new("serve"));
        command
            .get_arguments()
            .filter_map(|arg| arg.get_env())
            .map(|env| &*Box::leak(env.to_string_lossy().into_owned().into_boxed_str()))
            .collect()
    })
}

/// Parses the process arguments; clap prints help or a usage error and exits (code 2) by itself.
pub fn parse() -> (Cli, ArgMatches) {
    let matches = Cli::command().get_matches();
    let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    (cli, matches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every flag mirrors its variable mechanically (`KUBOARD_SERVER_PORT` ↔ `--server-port`).
    #[test]
    fn every_flag_mirrors_its_variable() {
        let command = ServeArgs::augment_args(clap::Command::new("serve"));
        for arg in command.get_arguments() {
            let env = arg
                .get_env()
                .expect("every serve setting has a variable")
                .to_string_lossy()
                .into_owned();
            let long = arg.get_long().expect("every serve setting has a flag");
            let expected = env.trim_start_matches("KUBOARD_").to_lowercase().replace('_', "-");
            assert_eq!(long, expected, "flag of {env}");
        }
    }

    #[test]
    fn flag_values_are_labelled_with_the_flag() {
        let matches = Cli::command()
            .try_get_matches_from(["kuboard", "serve", "--server-port", "abc", "--raft-peers", "1=a:1"])
            .expect("arguments parse");
        let (_, serve_matches) = matches.subcommand().expect("serve subcommand");
        let raw = RawSettings::from_serve_matches(serve_matches);
        assert_eq!(
            raw.get("KUBOARD_SERVER_PORT"),
            Some(&RawValue {
                value: "abc".into(),
                label: "--server-port".into()
            })
        );
        assert_eq!(raw.get("KUBOARD_RAFT_PEERS").map(|v| v.value.as_str()), Some("1=a:1"));
    }
}
