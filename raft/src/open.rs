//! What opening a member takes: [`RaftStoreConfig`] and its validation, [`OpenError`], the data
//! directory's folders, the state machine (set aside and rebuilt from the latest snapshot when
//! sled finds it damaged), and the settings handed to openraft and to the peer transport.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use openraft::SnapshotPolicy;

use crate::mvcc::{KvStateMachine, MvccError};
use crate::peer::{ClusterSecret, PeerConfig};

/// How long `open` retries while a previous handle of the same state machine (in this process)
/// still holds its file lock.
const SM_LOCK_RETRY_DEADLINE: Duration = Duration::from_secs(10);
/// The name both ends of a peer connection must agree on.
const CLUSTER_NAME: &str = "kuboard";

/// Everything needed to open this replica's member of the group.
#[derive(Debug, Clone)]
pub struct RaftStoreConfig {
    /// This member's id (>= 1).
    pub node_id: u64,
    /// Root of the store's files (the store uses `data_dir/raft/...`).
    pub data_dir: PathBuf,
    /// Every member of the initial group, this one included: id -> `host:port` of its peer listener.
    /// A single entry means a one-member group.
    pub peers: BTreeMap<u64, String>,
    /// Where this member's peer listener binds.
    pub peer_listen_addr: SocketAddr,
    /// Shared secret authenticating peers; required with more than one peer.
    pub cluster_secret: Option<String>,
    pub heartbeat_ms: u64,
    pub election_timeout_ms: u64,
    /// Build a snapshot (and allow purging the log behind it) every this many applied entries.
    pub snapshot_threshold: u64,
}

/// Why the store could not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data directory cannot be created, locked, read or written.
    #[error("data directory {path}: {message}")]
    DataDir { path: PathBuf, message: String },
    /// The files on disk are damaged beyond automatic repair.
    #[error("corrupt store data in {path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    /// The configuration contradicts itself or what is on disk.
    #[error("invalid store configuration: {0}")]
    Config(String),
    /// The peer listener cannot bind its address.
    #[error("peer listener on {addr}: {message}")]
    Listen { addr: SocketAddr, message: String },
    #[error("open raft store: {0}")]
    Other(String),
}

pub(crate) fn data_dir_error(path: &Path, e: impl std::fmt::Display) -> OpenError {
    OpenError::DataDir {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

pub(crate) fn validate(config: &RaftStoreConfig) -> Result<(), OpenError> {
    if config.node_id == 0 {
        return Err(OpenError::Config("node id must be at least 1".into()));
    }
    if !config.peers.contains_key(&config.node_id) {
        return Err(OpenError::Config(format!(
            "the peer list does not name this member ({})",
            config.node_id
        )));
    }
    if config.peers.contains_key(&0) {
        return Err(OpenError::Config("member ids must be at least 1".into()));
    }
    if config.peers.len() > 1 && config.cluster_secret.as_deref().is_none_or(str::is_empty) {
        return Err(OpenError::Config(
            "a cluster secret is required with more than one peer".into(),
        ));
    }
    if config.heartbeat_ms == 0 || config.election_timeout_ms < config.heartbeat_ms * 3 {
        return Err(OpenError::Config(format!(
            "election timeout ({} ms) must be at least three times the heartbeat interval ({} ms), which must be positive",
            config.election_timeout_ms, config.heartbeat_ms
        )));
    }
    if config.snapshot_threshold == 0 {
        return Err(OpenError::Config("snapshot threshold must be at least 1".into()));
    }
    Ok(())
}

/// Create `dir` and prove it is writable, so that a read-only or misowned data directory is
/// reported as such and not as an obscure error of the WAL or sled.
pub(crate) fn prepare_dir(dir: &Path) -> Result<(), OpenError> {
    std::fs::create_dir_all(dir).map_err(|e| data_dir_error(dir, format!("cannot create: {e}")))?;
    let probe = dir.join(".write-probe");
    std::fs::write(&probe, b"ok").map_err(|e| data_dir_error(dir, format!("not writable: {e}")))?;
    std::fs::remove_file(&probe).map_err(|e| data_dir_error(dir, format!("not writable: {e}")))?;
    Ok(())
}

/// Why the state machine could not be opened.
enum OpenKvError {
    /// sled found its own files damaged (or our records in them undecodable).
    Damaged(String),
    Other(String),
}

async fn open_kv(path: &Path) -> Result<KvStateMachine, OpenKvError> {
    let deadline = Instant::now() + SM_LOCK_RETRY_DEADLINE;
    loop {
        let owned = path.to_owned();
        let opened = tokio::task::spawn_blocking(move || {
            KvStateMachine::open(&owned).map_err(|e| match e {
                MvccError::Sled(sled::Error::Corruption { .. }) | MvccError::Codec { .. } | MvccError::Corrupt(_) => {
                    OpenKvError::Damaged(e.to_string())
                }
                other => OpenKvError::Other(other.to_string()),
            })
        })
        .await
        .map_err(|e| OpenKvError::Other(format!("open state machine task: {e}")))?;
        match opened {
            Ok(kv) => return Ok(kv),
            Err(OpenKvError::Other(message)) => {
                // sled holds an exclusive lock on its files; a handle being dropped on another
                // thread releases it shortly.
                let locked = message.contains("lock") || message.contains("WouldBlock");
                if locked && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                return Err(OpenKvError::Other(message));
            }
            Err(damaged) => return Err(damaged),
        }
    }
}

/// Open the state machine in `sm_dir`. The log and the snapshots are the source of truth and the
/// state machine only a derived copy: when sled finds its files damaged, they are set aside (kept
/// for a human to look at), and a fresh state machine starts from the latest snapshot; openraft
/// then applies the log entries after it again, which the log keeps (it is purged only behind a
/// durable snapshot).
pub(crate) async fn open_state_machine(sm_dir: &Path, snapshot_dir: &Path) -> Result<KvStateMachine, OpenError> {
    let damage = match open_kv(sm_dir).await {
        Ok(kv) => return Ok(kv),
        Err(OpenKvError::Other(message)) => {
            return Err(data_dir_error(sm_dir, format!("open state machine: {message}")));
        }
        Err(OpenKvError::Damaged(message)) => message,
    };
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis())
        .unwrap_or_default();
    let aside = sm_dir.with_file_name(format!("sm.damaged-{stamp}"));
    std::fs::rename(sm_dir, &aside)
        .and_then(|()| std::fs::File::open(sm_dir.parent().unwrap_or(sm_dir))?.sync_all())
        .map_err(|e| data_dir_error(sm_dir, format!("set the damaged state machine aside: {e}")))?;
    tracing::error!(path = %sm_dir.display(), damaged_copy = %aside.display(), damage = %damage,
        "the state machine is damaged; rebuilding it from the latest snapshot and the raft log");
    prepare_dir(sm_dir)?;
    let kv = match open_kv(sm_dir).await {
        Ok(kv) => kv,
        Err(OpenKvError::Damaged(message) | OpenKvError::Other(message)) => {
            return Err(data_dir_error(sm_dir, format!("create a new state machine: {message}")));
        }
    };
    let restore_kv = kv.clone();
    let snapshots = snapshot_dir.to_owned();
    let restored =
        tokio::task::spawn_blocking(move || crate::state_machine::restore_latest_snapshot(&restore_kv, &snapshots))
            .await
            .map_err(|e| OpenError::Other(format!("restore snapshot task: {e}")))?
            .map_err(|e| OpenError::Corrupt {
                path: snapshot_dir.to_owned(),
                message: format!("rebuild the state machine from the latest snapshot: {e}"),
            })?;
    tracing::warn!(path = %sm_dir.display(), snapshot_last_log_id = ?restored,
        "state machine rebuilt from the snapshot; the log entries after it are applied again");
    Ok(kv)
}

pub(crate) fn raft_config(config: &RaftStoreConfig) -> Result<openraft::Config, OpenError> {
    let raft_config = openraft::Config {
        cluster_name: CLUSTER_NAME.to_owned(),
        heartbeat_interval: config.heartbeat_ms,
        // The configured election timeout is the longest a follower waits after the leader's last
        // heartbeat before it campaigns, as in etcd. openraft makes a follower wait for its leader
        // lease (`election_timeout_max`) plus a timer drawn from [min, max), so both are cut to fit
        // that budget: a campaign starts between 0.9 and 1.0 of the election timeout after the last
        // heartbeat. With `max = 1.5 x min` instead, failover took 2.5 to 3 election timeouts.
        election_timeout_min: config.election_timeout_ms * 2 / 5,
        election_timeout_max: config.election_timeout_ms / 2,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_threshold),
        // openraft purges only up to its latest snapshot, which the state machine has fsynced
        // before reporting it built, and never entries a replication stream still reads. Keeping a
        // snapshot's worth of log behind it lets a briefly lagging follower catch up from the log
        // instead of a full snapshot transfer.
        max_in_snapshot_log_to_keep: config.snapshot_threshold,
        // A member that cannot win (partitioned, stale log) asks before it raises its term, so
        // that it does not depose a healthy leader when it comes back. The peer transport carries
        // the pre-vote round.
        enable_pre_vote: Some(true),
        ..Default::default()
    };
    raft_config.validate().map_err(|e| OpenError::Config(e.to_string()))
}

pub(crate) fn peer_config(config: &RaftStoreConfig, secret: ClusterSecret) -> PeerConfig {
    let mut peer = PeerConfig::new(config.node_id, CLUSTER_NAME, secret);
    // A peer that is down must not hold up a caller for longer than an election takes.
    let election = Duration::from_millis(config.election_timeout_ms);
    peer.connect_timeout = peer.connect_timeout.min(election.max(Duration::from_millis(200)));
    peer
}
