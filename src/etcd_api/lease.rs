//! etcd's Lease service: Grant, Revoke, KeepAlive (a bidirectional stream), TimeToLive, Leases.

use std::pin::Pin;

use etcd_client::proto::{
    PbLeaseGrantRequest, PbLeaseGrantResponse, PbLeaseKeepAliveRequest, PbLeaseKeepAliveResponse, PbLeaseLeasesRequest,
    PbLeaseLeasesResponse, PbLeaseRevokeRequest, PbLeaseRevokeResponse, PbLeaseService, PbLeaseStatus,
    PbLeaseTimeToLiveRequest, PbLeaseTimeToLiveResponse,
};
use futures::Stream;
use kuboard_storage::{LeaseGrantRequest, Store, StoreError};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status, Streaming};

use super::access::{Credentials, Need, Op};
use super::context::ApiContext;
use super::errors::{self, status_of};

/// etcd's `lease.MaxLeaseTTL`.
const MAX_LEASE_TTL: i64 = 9_000_000_000;
/// Keep-alive answers waiting for the client on one stream.
const KEEP_ALIVE_CAPACITY: usize = 64;

pub(super) struct LeaseService<S> {
    pub ctx: ApiContext<S>,
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<PbLeaseKeepAliveResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl<S: Store + Clone> PbLeaseService for LeaseService<S> {
    async fn lease_grant(
        &self,
        request: Request<PbLeaseGrantRequest>,
    ) -> Result<Response<PbLeaseGrantResponse>, Status> {
        self.ctx.authorize(&Credentials::of(&request), &[Need::User]).await?;
        let request = request.into_inner();
        if request.ttl > MAX_LEASE_TTL {
            return Err(Status::new(Code::OutOfRange, errors::LEASE_TTL_TOO_LARGE));
        }
        // etcd raises a TTL below its minimum instead of refusing it; the store's minimum is 1 s.
        let grant = LeaseGrantRequest {
            ttl: request.ttl.max(1),
            id: request.id,
        };
        let response = self.ctx.store.lease_grant(grant).await.map_err(|e| status_of(&e))?;
        Ok(Response::new(PbLeaseGrantResponse {
            header: self.ctx.header(response.header),
            id: response.id,
            ttl: response.ttl,
            error: String::new(),
        }))
    }

    async fn lease_revoke(
        &self,
        request: Request<PbLeaseRevokeRequest>,
    ) -> Result<Response<PbLeaseRevokeResponse>, Status> {
        let (metadata, extensions, request) = request.into_parts();
        let credentials = Credentials::new(&metadata, &extensions);
        let id = request.id;
        // As etcd: revoking deletes the lease's keys, so it needs write access to each of them.
        let mut needs = vec![Need::User];
        if let Ok(attached) = self.ctx.store.lease_time_to_live(id, true).await {
            needs.extend(
                attached
                    .keys
                    .into_iter()
                    .map(|key| Need::Range(Op::Write, key, Vec::new())),
            );
        }
        self.ctx.authorize(&credentials, &needs).await?;
        let response = self.ctx.store.lease_revoke(id).await.map_err(|e| status_of(&e))?;
        Ok(Response::new(PbLeaseRevokeResponse {
            header: self.ctx.header(response.header),
        }))
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<PbLeaseKeepAliveRequest>>,
    ) -> Result<Response<KeepAliveStream>, Status> {
        self.ctx.authorize(&Credentials::of(&request), &[Need::User]).await?;
        let mut inbound = request.into_inner();
        let (outbound, receiver) = mpsc::channel(KEEP_ALIVE_CAPACITY);
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    message = inbound.message() => message,
                    () = outbound.closed() => break,
                    () = ctx.stopped() => {
                        let _ = outbound.send(Err(Status::new(Code::Unavailable, errors::STOPPED))).await;
                        break;
                    }
                };
                let id = match message {
                    Ok(Some(request)) => request.id,
                    Ok(None) => break,
                    Err(status) => {
                        tracing::debug!(%status, "etcd API keep-alive stream ended by the client");
                        break;
                    }
                };
                let answer = match ctx.store.lease_keep_alive(id).await {
                    Ok(response) => Ok(PbLeaseKeepAliveResponse {
                        header: ctx.header(response.header),
                        id: response.id,
                        ttl: response.ttl,
                    }),
                    // etcd answers a keep-alive of an unknown lease with a TTL of 0, and the
                    // client reports the lease as expired.
                    Err(StoreError::LeaseNotFound(_)) => Ok(PbLeaseKeepAliveResponse {
                        header: ctx.current_header().await,
                        id,
                        ttl: 0,
                    }),
                    Err(error) => Err(status_of(&error)),
                };
                let failed = answer.is_err();
                if outbound.send(answer).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<PbLeaseTimeToLiveRequest>,
    ) -> Result<Response<PbLeaseTimeToLiveResponse>, Status> {
        self.ctx.authorize(&Credentials::of(&request), &[Need::User]).await?;
        let request = request.into_inner();
        let response = match self.ctx.store.lease_time_to_live(request.id, request.keys).await {
            Ok(response) => PbLeaseTimeToLiveResponse {
                header: self.ctx.header(response.header),
                id: response.id,
                ttl: response.ttl,
                granted_ttl: response.granted_ttl,
                keys: response.keys,
            },
            // etcd reports an unknown lease as a TTL of -1, not as an error.
            Err(StoreError::LeaseNotFound(_)) => PbLeaseTimeToLiveResponse {
                header: self.ctx.current_header().await,
                id: request.id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            },
            Err(error) => return Err(status_of(&error)),
        };
        Ok(Response::new(response))
    }

    async fn lease_leases(
        &self,
        request: Request<PbLeaseLeasesRequest>,
    ) -> Result<Response<PbLeaseLeasesResponse>, Status> {
        self.ctx.authorize(&Credentials::of(&request), &[Need::User]).await?;
        let response = self.ctx.store.lease_leases().await.map_err(|e| status_of(&e))?;
        Ok(Response::new(PbLeaseLeasesResponse {
            header: self.ctx.header(response.header),
            leases: response.ids.into_iter().map(|id| PbLeaseStatus { id }).collect(),
        }))
    }
}
