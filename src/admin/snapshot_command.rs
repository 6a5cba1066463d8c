//! `kuboard admin snapshot save FILE` and `kuboard admin snapshot restore FILE`.
//!
//! Which store is meant follows the settings of `kuboard serve`: with `KUBOARD_ETCD_ENDPOINTS` the
//! external etcd (under `KUBOARD_ETCD_PREFIX`), read and written directly; otherwise the embedded
//! store, saved through a running replica (`--server`) and restored offline into an empty data dir.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use kuboard_raft::RaftStore;
use kuboard_storage::etcd::EtcdStore;
use kuboard_storage::BackendKind;
use sha2::{Digest, Sha256};

use super::admin_client::{describe_error, exit_code, AdminClient, CommandError};
use super::{EXIT_FAILURE, EXIT_USAGE};
use crate::cli::{RawSettings, SnapshotRestoreArgs, SnapshotSaveArgs};
use crate::config::{self, LogConfig, RaftConfig, ServeConfig, StoreSelection};
use crate::store_admin::snapshot_file::{write_atomically, Snapshot};
use crate::store_admin::snapshot_routes::SNAPSHOT_PATH;
use crate::store_admin::snapshot_store::{restore_snapshot, take_snapshot, RestoreReport};
use crate::store_backend::etcd_backend::store_config;
use crate::store_backend::raft_store_config;

/// Bound on the whole HTTP exchange with a replica.
const HTTP_TIMEOUT: Duration = Duration::from_secs(120);

pub fn save(args: SnapshotSaveArgs, raw: &RawSettings) -> u8 {
    run(raw, |config| async move { save_snapshot(args, config).await })
}

pub fn restore(args: SnapshotRestoreArgs, raw: &RawSettings) -> u8 {
    run(raw, |config| async move { restore_snapshot_file(args, config).await })
}

/// Parses the settings, starts logging and a runtime, runs the command and turns its outcome into
/// an exit code with one `error:` line.
fn run<F, Fut>(raw: &RawSettings, command: F) -> u8
where
    F: FnOnce(ServeConfig) -> Fut,
    Fut: std::future::Future<Output = Result<String, CommandError>>,
{
    let config = match config::parse(raw, crate::hostname().as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return EXIT_USAGE;
        }
    };
    // An operator tool prints its result; only warnings and errors are logged unless asked.
    let log_asked = raw.get("KUBOARD_SERVER_LOGRUS_LEVEL").is_some() || raw.get("RUST_LOG").is_some();
    let log = if log_asked {
        config.log.clone()
    } else {
        LogConfig {
            filter: "warn".to_string(),
        }
    };
    crate::logging::init(&log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: start the async runtime: {error}");
            return EXIT_FAILURE;
        }
    };
    let outcome = runtime.block_on(command(config));
    runtime.shutdown_timeout(Duration::from_millis(500));
    exit_code(outcome)
}

async fn save_snapshot(args: SnapshotSaveArgs, config: ServeConfig) -> Result<String, CommandError> {
    let (snapshot, bytes) = match (&args.server, &config.store) {
        (Some(server), _) => {
            let bytes = fetch_from_replica(server, &args).await?;
            let snapshot = Snapshot::decode(&bytes).context("check the snapshot the replica sent")?;
            (snapshot, bytes)
        }
        (None, StoreSelection::Etcd(etcd)) => {
            let store = EtcdStore::connect(store_config(etcd))
                .await
                .context("connect to the external etcd (KUBOARD_ETCD_ENDPOINTS)")?;
            let snapshot = take_snapshot(&store, BackendKind::Etcd, &etcd.prefix, now_unix())
                .await
                .context("read the keys under the prefix")?;
            let bytes = snapshot.encode()?;
            (snapshot, bytes)
        }
        (None, StoreSelection::Raft(_)) => {
            return Err(CommandError::Usage(
                "the embedded store is saved through a running replica: give --server URL (and --token or \
                 --password), or set KUBOARD_ETCD_ENDPOINTS to save an external etcd"
                    .to_string(),
            ))
        }
    };
    write_atomically(&args.file, &bytes)?;
    Ok(format!(
        "saved {} keys of the {} store at revision {} to {} ({} bytes, sha256 {})",
        snapshot.header.key_count,
        snapshot.header.backend,
        snapshot.header.revision,
        args.file.display(),
        bytes.len(),
        hex::encode(Sha256::digest(&bytes)),
    ))
}

/// Downloads a snapshot from a running replica, logging in first when no token is given (and
/// ending that session afterwards).
async fn fetch_from_replica(server: &str, args: &SnapshotSaveArgs) -> Result<Vec<u8>, CommandError> {
    let client = AdminClient::connect(
        server,
        args.token.as_deref(),
        &args.username,
        args.password.as_deref(),
        HTTP_TIMEOUT,
    )
    .await?;
    let base = client.base.clone();
    let fetched = async {
        let response = client
            .request(reqwest::Method::GET, SNAPSHOT_PATH)
            .send()
            .await
            .with_context(|| format!("ask {base} for a snapshot"))?;
        let status = response.status();
        if !status.is_success() {
            bail!("{base} refused the snapshot: {}", describe_error(response).await);
        }
        let bytes = response
            .bytes()
            .await
            .with_context(|| format!("read the snapshot from {base}"))?;
        anyhow::Ok(bytes.to_vec())
    }
    .await;
    client.finish().await;
    Ok(fetched?)
}

async fn restore_snapshot_file(args: SnapshotRestoreArgs, config: ServeConfig) -> Result<String, CommandError> {
    let snapshot = Snapshot::read_file(&args.file)?;
    let (target, report) = match &config.store {
        StoreSelection::Etcd(etcd) => {
            let store = EtcdStore::connect(store_config(etcd))
                .await
                .context("connect to the external etcd (KUBOARD_ETCD_ENDPOINTS)")?;
            let report = restore_snapshot(&store, &snapshot)
                .await
                .with_context(|| format!("restore into prefix {:?} of {}", etcd.prefix, etcd.endpoints.join(",")))?;
            (
                format!("prefix {:?} of {}", etcd.prefix, etcd.endpoints.join(",")),
                report,
            )
        }
        StoreSelection::Raft(raft) => {
            let report = restore_embedded(&snapshot, raft, &config.data_dir).await?;
            (
                format!(
                    "the embedded store in {} (member {}, a one-member group)",
                    config.data_dir.display(),
                    raft.node_id
                ),
                report,
            )
        }
    };
    Ok(format!(
        "restored {} keys from {} (taken from the {} store at revision {}) into {}; {} keys attached to leases \
         (login sessions) were left out; the store's revision is now {}",
        report.restored,
        args.file.display(),
        snapshot.header.backend,
        snapshot.header.revision,
        target,
        report.skipped_leased,
        report.revision,
    ))
}

/// Restores into a data dir that holds no store yet: the store is built in a staging directory
/// beside it as a one-member group and moved into place only when complete, so a failed restore
/// leaves the data dir as it was.
async fn restore_embedded(
    snapshot: &Snapshot,
    raft: &RaftConfig,
    data_dir: &Path,
) -> Result<RestoreReport, CommandError> {
    config::check_data_dir("KUBOARD_DATA_DIR", data_dir).map_err(|error| CommandError::Usage(error.to_string()))?;
    let store_dir = data_dir.join("raft");
    if directory_has_entries(&store_dir)? {
        return Err(CommandError::Failed(anyhow::anyhow!(
            "{} already holds a store; a snapshot is restored only into an empty data dir (nothing was changed)",
            store_dir.display()
        )));
    }
    let staging = data_dir.join(format!(".kuboard-restore-{}", std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).with_context(|| format!("remove the stale {}", staging.display()))?;
    }
    let outcome = restore_into_staging(snapshot, raft, &staging).await;
    let report = match outcome {
        Ok(report) => report,
        Err(error) => {
            // Best effort: the staging directory is ours and useless after a failure.
            let _ = std::fs::remove_dir_all(&staging);
            return Err(error.into());
        }
    };
    std::fs::rename(staging.join("raft"), &store_dir)
        .with_context(|| format!("move the restored store into {}", store_dir.display()))?;
    std::fs::File::open(data_dir)
        .and_then(|directory| directory.sync_all())
        .with_context(|| format!("fsync {}", data_dir.display()))?;
    std::fs::remove_dir_all(&staging).with_context(|| format!("remove {}", staging.display()))?;
    Ok(report)
}

async fn restore_into_staging(snapshot: &Snapshot, raft: &RaftConfig, staging: &Path) -> anyhow::Result<RestoreReport> {
    let own_address = raft
        .peers
        .get(&raft.node_id)
        .cloned()
        .context("the peer list names this member")?;
    let mut store_config = raft_store_config(raft, staging);
    // A one-member group that talks to nobody while the keys are written: no peer listener.
    store_config.peers = BTreeMap::from([(raft.node_id, own_address)]);
    store_config.cluster_secret = None;
    let store = RaftStore::open(store_config)
        .await
        .context("open a new embedded store for the restore")?;
    let restored = restore_snapshot(&store, snapshot)
        .await
        .context("write the snapshot's keys");
    let closed = store.shutdown().await.context("flush and close the restored store");
    let report = restored?;
    closed?;
    Ok(report)
}

fn directory_has_entries(path: &PathBuf) -> anyhow::Result<bool> {
    match std::fs::read_dir(path) {
        Ok(mut entries) => Ok(entries.next().is_some()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error).with_context(|| format!("list {}", path.display())),
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}
