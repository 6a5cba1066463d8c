//! etcd's Maintenance service: Status, Alarm (never any alarm), Defragment (nothing to do).
//! Snapshot, Hash, HashKV, MoveLeader and Downgrade are refused with a reason.

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
use tonic::{Request, Response, Status};

use super::context::ApiContext;
use super::errors::{status_of, NO_LEADER};

/// Files counted for the database size, at most; a data directory holds a few dozen.
const MAX_DATA_FILES: usize = 100_000;

const NO_SNAPSHOT: &str = "etcdserver: the kuboard embedded store does not stream etcd (bbolt) snapshots; \
     use `kuboard admin snapshot save FILE` for a consistent snapshot";

pub(super) struct MaintenanceService<S> {
    pub ctx: ApiContext<S>,
}

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
        _request: Request<PbDefragmentRequest>,
    ) -> Result<Response<PbDefragmentResponse>, Status> {
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

    async fn snapshot(&self, _request: Request<PbSnapshotRequest>) -> Result<Response<SnapshotStream>, Status> {
        Err(Status::unimplemented(NO_SNAPSHOT))
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
