//! What every service of the API shares: the store, and who this member is.

use std::sync::Arc;

use etcd_client::proto::PbResponseHeader;
use kuboard_storage::{
    Member, RangeRequest, RangeResponse, ReadConsistency, ResponseHeader, Store, TxnOp, TxnOpResponse,
};
use tonic::Status;

use super::access::{self, AuthCache, Caller, Credentials, Need};
use super::errors::status_of;
use super::EtcdApiIdentity;

/// The store and the identity, cheap to clone into each service and stream task.
pub(super) struct ApiContext<S> {
    pub store: S,
    pub identity: Arc<EtcdApiIdentity>,
    /// The answering member's id, as the store reported it when the API started.
    pub member_id: u64,
    /// `https` when the API is served over TLS, for the client URLs of `member list`.
    pub client_scheme: &'static str,
    /// Becomes true when the server stops: long-lived streams (watch, keep-alive) end then, or
    /// the server would wait for them forever.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// The auth state shared by the group, as this member last read it.
    pub auth: Arc<AuthCache>,
}

impl<S: Clone> Clone for ApiContext<S> {
    fn clone(&self) -> Self {
        ApiContext {
            store: self.store.clone(),
            identity: self.identity.clone(),
            member_id: self.member_id,
            client_scheme: self.client_scheme,
            stopping: self.stopping.clone(),
            auth: self.auth.clone(),
        }
    }
}

impl<S: Store + Clone> ApiContext<S> {
    /// Check the caller of a request (its `token` metadata, or its client certificate's common
    /// name) against what the request needs; with
    /// auth disabled only writes into the reserved prefix are refused.
    pub async fn authorize(&self, credentials: &Credentials, needs: &[Need]) -> Result<Caller, Status> {
        self.auth
            .authorize(&self.store, credentials, needs, ReadConsistency::Linearizable)
            .await
    }

    /// Apply the write `op` if its caller may: checked against the auth state as this member
    /// applied it, and applied only while that state is still the latest (one transaction, no
    /// quorum read before it); when the state changed in between, checked again against the
    /// group's latest. Answers the header of the write and the response of `op`.
    pub async fn authorized_write(
        &self,
        credentials: &Credentials,
        needs: &[Need],
        op: TxnOp,
    ) -> Result<(ResponseHeader, TxnOpResponse), Status> {
        let mut consistency = ReadConsistency::Serializable;
        for _ in 0..access::CHANGE_ATTEMPTS {
            let checked_at = self
                .auth
                .authorize_write(&self.store, credentials, needs, consistency)
                .await?;
            let response = self
                .store
                .txn(access::guarded(op.clone(), checked_at))
                .await
                .map_err(|e| status_of(&e))?;
            if response.succeeded {
                let answer = response
                    .responses
                    .into_iter()
                    .next()
                    .ok_or_else(|| Status::internal("etcdserver: the store answered a write with no response"))?;
                return Ok((response.header, answer));
            }
            consistency = ReadConsistency::Linearizable;
        }
        Err(access::auth_state_changing())
    }

    /// A range its caller may read, checked as etcd checks it: against the auth state this member
    /// holds when the read is made, with no quorum read of the auth key of its own. For a
    /// linearizable range the caller is checked against this member's applied state, the range is
    /// read (a read index, then the local store), and the check holds when the auth key is still at
    /// the revision it was checked at: the read point lies between the two looks, so the state did
    /// not change at it. When it did change, the range is checked against the group's latest
    /// state and read again. (This holds for the embedded store, the only one the API serves:
    /// its serializable reads are this member's applied state.)
    pub async fn authorized_range(
        &self,
        credentials: &Credentials,
        needs: &[Need],
        request: RangeRequest,
    ) -> Result<RangeResponse, Status> {
        if request.consistency == ReadConsistency::Linearizable {
            // A refusal here is confirmed against the group's latest state before it is answered.
            let checked_at = self
                .auth
                .authorize_write(&self.store, credentials, needs, ReadConsistency::Serializable)
                .await?;
            let response = self.store.range(request.clone()).await.map_err(|e| status_of(&e))?;
            let after = self.auth.read(&self.store, ReadConsistency::Serializable).await?;
            if after.mod_revision == checked_at {
                return Ok(response);
            }
        }
        self.authorize_read(credentials, needs, request.consistency).await?;
        self.store.range(request).await.map_err(|e| status_of(&e))
    }

    /// [`Self::authorize`] for a read of the given consistency: a serializable read is checked
    /// against this member's applied auth state, as etcd does.
    pub async fn authorize_read(
        &self,
        credentials: &Credentials,
        needs: &[Need],
        consistency: ReadConsistency,
    ) -> Result<Caller, Status> {
        self.auth.authorize(&self.store, credentials, needs, consistency).await
    }

    /// etcd's full header (etcdctl 3.4 needs every field) from the store's header.
    pub fn header(&self, header: ResponseHeader) -> Option<PbResponseHeader> {
        Some(PbResponseHeader {
            cluster_id: self.identity.cluster_id,
            member_id: header.member_id,
            revision: header.revision,
            raft_term: header.raft_term,
        })
    }

    /// The header of a response that has no store response to take it from: the answering
    /// member's current revision and term, read locally (no quorum round trip). When even that
    /// read fails, a header without revision, so that the client still gets a complete message.
    pub async fn current_header(&self) -> Option<PbResponseHeader> {
        let header = self.current_store_header().await.unwrap_or(ResponseHeader {
            revision: 0,
            member_id: self.member_id,
            raft_term: 0,
        });
        self.header(header)
    }

    pub async fn current_store_header(&self) -> Result<ResponseHeader, Status> {
        // Any key would do: the header is what is wanted, and counting one key is the cheapest read.
        let probe = RangeRequest {
            key: vec![0],
            count_only: true,
            consistency: ReadConsistency::Serializable,
            ..Default::default()
        };
        let response = self.store.range(probe).await.map_err(|e| status_of(&e))?;
        Ok(response.header)
    }

    /// Completes when the server stops.
    pub async fn stopped(&self) {
        let mut stopping = self.stopping.clone();
        // An error means the server is gone, which is stopping too.
        let _ = stopping.wait_for(|stopping| *stopping).await;
    }

    /// The etcd name of a member.
    pub fn member_name(&self, member_id: u64) -> String {
        format!("kuboard-{member_id}")
    }

    /// The peer URL of a member from its peer address (`host:port`).
    pub fn peer_urls(&self, member: &Member) -> Vec<String> {
        if member.address.contains("://") {
            vec![member.address.clone()]
        } else {
            vec![format!("http://{}", member.address)]
        }
    }

    /// Where clients reach a member's etcd API: its peer host on the API port all replicas share.
    pub fn client_urls(&self, member: &Member) -> Vec<String> {
        if let Some(urls) = self.identity.client_urls.get(&member.id) {
            return urls.clone();
        }
        let Some(port) = self.identity.client_port else {
            return Vec::new();
        };
        let host = peer_host(&member.address);
        vec![format!("{}://{host}:{port}", self.client_scheme)]
    }
}

/// The host part of `host:port`, `[v6]:port` or a URL.
fn peer_host(address: &str) -> &str {
    let without_scheme = address.split_once("://").map_or(address, |(_, rest)| rest);
    let authority = without_scheme.split('/').next().unwrap_or(without_scheme);
    if authority.starts_with('[') {
        if let Some(end) = authority.find(']') {
            return &authority[..=end];
        }
    }
    authority.rsplit_once(':').map_or(authority, |(host, _port)| host)
}

#[cfg(test)]
mod tests {
    use super::peer_host;

    #[test]
    fn peer_hosts() {
        assert_eq!(peer_host("10.0.0.1:10082"), "10.0.0.1");
        assert_eq!(peer_host("kuboard-0.kuboard:10082"), "kuboard-0.kuboard");
        assert_eq!(peer_host("[::1]:10082"), "[::1]");
        assert_eq!(peer_host("http://host:1/x"), "host");
        assert_eq!(peer_host("host"), "host");
    }
}
