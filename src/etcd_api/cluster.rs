//! etcd's Cluster service: MemberList from the store's status. Membership changes go through
//! `kuboard admin members`, which knows the Raft group; here they are refused.

use etcd_client::proto::{
    PbClusterService, PbMember, PbMemberAddRequest, PbMemberAddResponse, PbMemberListRequest, PbMemberListResponse,
    PbMemberPromoteRequest, PbMemberPromoteResponse, PbMemberRemoveRequest, PbMemberRemoveResponse,
    PbMemberUpdateRequest, PbMemberUpdateResponse,
};
use kuboard_storage::{MemberRole, ResponseHeader, Store};
use tonic::{Request, Response, Status};

use super::context::ApiContext;
use super::errors::status_of;

const MEMBERSHIP_BY_ADMIN: &str =
    "etcdserver: the kuboard embedded store changes its members with `kuboard admin members`, not through the etcd API";

pub(super) struct ClusterService<S> {
    pub ctx: ApiContext<S>,
}

#[tonic::async_trait]
impl<S: Store + Clone> PbClusterService for ClusterService<S> {
    async fn member_add(&self, _request: Request<PbMemberAddRequest>) -> Result<Response<PbMemberAddResponse>, Status> {
        Err(Status::unimplemented(MEMBERSHIP_BY_ADMIN))
    }

    async fn member_remove(
        &self,
        _request: Request<PbMemberRemoveRequest>,
    ) -> Result<Response<PbMemberRemoveResponse>, Status> {
        Err(Status::unimplemented(MEMBERSHIP_BY_ADMIN))
    }

    async fn member_update(
        &self,
        _request: Request<PbMemberUpdateRequest>,
    ) -> Result<Response<PbMemberUpdateResponse>, Status> {
        Err(Status::unimplemented(MEMBERSHIP_BY_ADMIN))
    }

    async fn member_list(
        &self,
        _request: Request<PbMemberListRequest>,
    ) -> Result<Response<PbMemberListResponse>, Status> {
        // The member's own view of the membership, as etcd's serializable member list; the
        // `linearizable` flag of etcd 3.5 is not honoured.
        let status = self.ctx.store.status().await.map_err(|e| status_of(&e))?;
        let header = self.ctx.header(ResponseHeader {
            revision: status.revision,
            member_id: status.member_id,
            raft_term: status.raft_term,
        });
        let mut members: Vec<PbMember> = status
            .members
            .iter()
            .map(|member| PbMember {
                id: member.id,
                name: self.ctx.member_name(member.id),
                peer_ur_ls: self.ctx.peer_urls(member),
                client_ur_ls: self.ctx.client_urls(member),
                is_learner: member.role == MemberRole::Learner,
            })
            .collect();
        members.sort_by_key(|member| member.id);
        Ok(Response::new(PbMemberListResponse { header, members }))
    }

    async fn member_promote(
        &self,
        _request: Request<PbMemberPromoteRequest>,
    ) -> Result<Response<PbMemberPromoteResponse>, Status> {
        Err(Status::unimplemented(MEMBERSHIP_BY_ADMIN))
    }
}
