//! etcd's Maintenance service: Status, Alarm (never any alarm), Defragment (nothing to do),
//! Snapshot (kuboard's snapshot file in etcd's checksum envelope, when configured). Hash, HashKV,
//! MoveLeader and Downgrade are refused with a reason.

use std::path::PathBuf;
use std::pin::Pin;

use etcd_client::proto::{
    PbAlarmRequest, PbAlarmResponse, PbDefragmentRequest, PbDefragmentResponse, PbDowngradeRequest,
    PbDowngradeResponse, PbHashKvRequest, PbHashKvResponse, PbHashRequest, PbHashResponse, PbMaintenanceService,
    PbMoveLeaderRequest, PbMoveLeaderResponse, PbSnapshotRequest, PbSnapshotResponse, PbStatusRequest,
    PbStatusResponse,
};
use futures::Stream;
use kuboard_storage::{MemberRole, ResponseHeader, Store};
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};

use super::access::{Credentials, Need};
use super::context::ApiContext;
use super::errors::{status_of, NO_LEADER};
use super::SnapshotSource;

/// Files counted for the database size, at most; a data directory holds a few dozen.
const MAX_DATA_FILES: usize = 100_000;

const NO_SNAPSHOT: &str = "etcdserver: snapshots are not served by this etcd API; \
     use `kuboard admin snapshot save FILE` for a consistent snapshot";

pub(super) struct MaintenanceService<S> {
    pub ctx: ApiContext<S>,
    pub snapshot: Option<SnapshotSource>,
}

/// Bytes per snapshot message (etcd sends 32 KiB chunks).
const SNAPSHOT_CHUNK_BYTES: usize = 32 * 1024;

/// The version reported to clients: the etcd API level this server speaks, with kuboard's own
/// version as semver build metadata (clients that parse the version see 3.4.x).
pub(super) fn api_version() -> String {
    format!("3.4.0+kuboard.{}", env!("CARGO_PKG_VERSION"))
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<PbSnapshotResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl<S: Store + Clone> PbMaintenanceService for MaintenanceService<S> {
    async fn alarm(&self, _request: Request<PbAlarmRequest>) -> Result<Response<PbAlarmResponse>, Status> {
        // The store raises no alarm (it has no space quota and checks its own corruption on open),
        // so every action answers with an empty list.
        Ok(Response::new(PbAlarmResponse {
            header: self.ctx.current_header().await,
            alarms: Vec::new(),
        }))
    }

    async fn status(&self, _request: Request<PbStatusRequest>) -> Result<Response<PbStatusResponse>, Status> {
        let status = self.ctx.store.status().await.map_err(|e| status_of(&e))?;
        let db_size = match &self.ctx.identity.data_dir {
            Some(dir) => data_dir_size(dir.clone()).await,
            None => 0,
        };
        let is_learner = status
            .members
            .iter()
            .any(|member| member.id == status.member_id && member.role == MemberRole::Learner);
        let mut errors = Vec::new();
        if status.leader.is_none() {
            errors.push(NO_LEADER.to_string());
        }
        Ok(Response::new(PbStatusResponse {
            header: self.ctx.header(ResponseHeader {
                revision: status.revision,
                member_id: status.member_id,
                raft_term: status.raft_term,
            }),
            version: api_version(),
            db_size,
            leader: status.leader.unwrap_or(0),
            // The store reports its applied index only; it stands for the committed index too.
            raft_index: status.applied_index,
            raft_term: status.raft_term,
            raft_applied_index: status.applied_index,
            errors,
            db_size_in_use: db_size,
            is_learner,
            ..Default::default()
        }))
    }

    async fn defragment(
        &self,
        request: Request<PbDefragmentRequest>,
    ) -> Result<Response<PbDefragmentResponse>, Status> {
        self.ctx.authorize(&Credentials::of(&request), &[Need::Admin]).await?;
        // The store's files reclaim space by themselves; there is nothing to defragment.
        Ok(Response::new(PbDefragmentResponse {
            header: self.ctx.current_header().await,
        }))
    }

    async fn hash(&self, _request: Request<PbHashRequest>) -> Result<Response<PbHashResponse>, Status> {
        Err(Status::unimplemented(
            "etcdserver: hash is not served by the kuboard embedded store",
        ))
    }

    async fn hash_kv(&self, _request: Request<PbHashKvRequest>) -> Result<Response<PbHashKvResponse>, Status> {
        Err(Status::unimplemented(
            "etcdserver: hashkv is not served by the kuboard embedded store",
        ))
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(&self, request: Request<PbSnapshotRequest>) -> Result<Response<SnapshotStream>, Status> {
        // The whole store, the auth state included: administrators only, as in etcd.
        self.ctx.authorize(&Credentials::of(&request), &[Need::Admin]).await?;
        let Some(take_snapshot) = &self.snapshot else {
            return Err(Status::unimplemented(NO_SNAPSHOT));
        };
        let bytes = take_snapshot().await.map_err(|e| {
            tracing::warn!(error = format!("{e:#}"), "etcd API snapshot failed");
            Status::unavailable(format!("etcdserver: snapshot failed: {e:#}"))
        })?;
        let bytes = etcd_snapshot_envelope(bytes);
        let header = self.ctx.current_header().await;
        let version = api_version();
        let total = bytes.len();
        // As etcd: every message says how many bytes follow it, the last one says 0.
        let messages: Vec<Result<PbSnapshotResponse, Status>> = bytes
            .chunks(SNAPSHOT_CHUNK_BYTES)
            .scan(0usize, |sent, chunk| {
                *sent += chunk.len();
                Some(Ok(PbSnapshotResponse {
                    header,
                    remaining_bytes: (total - *sent) as u64,
                    blob: chunk.to_vec(),
                    version: version.clone(),
                }))
            })
            .collect();
        tracing::info!(bytes = total, "etcd API streams a snapshot");
        Ok(Response::new(Box::pin(futures::stream::iter(messages))))
    }

    async fn move_leader(
        &self,
        _request: Request<PbMoveLeaderRequest>,
    ) -> Result<Response<PbMoveLeaderResponse>, Status> {
        Err(Status::unimplemented(
            "etcdserver: move-leader is not served by the kuboard embedded store",
        ))
    }

    async fn downgrade(&self, _request: Request<PbDowngradeRequest>) -> Result<Response<PbDowngradeResponse>, Status> {
        Err(Status::unimplemented(
            "etcdserver: downgrade is not served by the kuboard embedded store",
        ))
    }
}

/// etcd's clients (3.4.22 on) accept a snapshot only if its length is 32 more than a multiple of
/// 512 (bbolt pages) and its last 32 bytes are the SHA-256 of everything before. The snapshot
/// file is padded with zeros to that length and the digest appended; the file is found again by
/// dropping the last 32 bytes and the zero padding after its own end.
pub(super) fn etcd_snapshot_envelope(mut bytes: Vec<u8>) -> Vec<u8> {
    let padding = (512 - bytes.len() % 512) % 512;
    bytes.resize(bytes.len() + padding, 0);
    let digest = Sha256::digest(&bytes);
    bytes.extend_from_slice(&digest);
    bytes
}

/// Bytes of the files under `dir`: the store's size on disk, etcd's "DB SIZE".
async fn data_dir_size(dir: PathBuf) -> i64 {
    tokio::task::spawn_blocking(move || {
        let mut total: u64 = 0;
        let mut seen = 0usize;
        let mut pending = vec![dir];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                seen += 1;
                if seen > MAX_DATA_FILES {
                    return total;
                }
                let Ok(metadata) = entry.metadata() else {
                    continue;
                };
                if metadata.is_dir() {
                    pending.push(entry.path());
                } else {
                    total += metadata.len();
                }
            }
        }
        total
    })
    .await
    .map_or(0, |total| i64::try_from(total).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_envelope_has_the_length_and_digest_etcd_clients_check() {
        for len in [0usize, 1, 479, 480, 481, 512, 1000, 70_000] {
            let file: Vec<u8> = (0..len).map(|i| (i % 251) as u8 + 1).collect();
            let wrapped = etcd_snapshot_envelope(file.clone());
            assert_eq!(wrapped.len() % 512, 32, "length {len}");
            let (body, digest) = wrapped.split_at(wrapped.len() - 32);
            assert_eq!(digest, Sha256::digest(body).as_slice());
            assert_eq!(&body[..len], &file[..]);
            assert!(body[len..].iter().all(|b| *b == 0));
        }
    }
}
