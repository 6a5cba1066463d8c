//! etcd's KV service: Range, Put, DeleteRange, Txn, Compact (and RangeStream, newer than 3.4,
//! answered in one chunk).

use std::pin::Pin;

use etcd_client::proto::{
    PbCompactionRequest, PbCompactionResponse, PbDeleteRequest, PbDeleteResponse, PbKvService, PbPutRequest,
    PbPutResponse, PbRangeRequest, PbRangeResponse, PbRangeStreamResponse, PbTxnOpRequest, PbTxnRequest, PbTxnResponse,
};
use futures::Stream;
use kuboard_storage::{
    CompactRequest, Compare, CompareResult, CompareTarget, PutRequest, RangeRequest, Store, TxnOp, TxnOpResponse,
    TxnRequest,
};
use tonic::{Code, Request, Response, Status};

use super::access::{Credentials, Need, Op};
use super::context::ApiContext;
use super::convert;
use super::errors::{self, invalid, status_of};

/// How often a put with `ignore_value` / `ignore_lease` retries when the key changes between
/// reading it and writing it.
const IGNORE_PUT_ATTEMPTS: usize = 10;

pub(super) struct KvService<S> {
    pub ctx: ApiContext<S>,
}

impl<S: Store + Clone> KvService<S> {
    async fn range_inner(&self, credentials: &Credentials, request: PbRangeRequest) -> Result<PbRangeResponse, Status> {
        let plan = convert::range_plan(request)?;
        let need = Need::Range(Op::Read, plan.request.key.clone(), plan.request.range_end.clone());
        let response = self.ctx.authorized_range(credentials, &[need], plan.request).await?;
        let header = self.ctx.header(response.header);
        Ok(convert::range_response(response, plan.finish.as_ref(), header))
    }

    /// etcd's `ignore_value` / `ignore_lease`: keep the key's current value or lease. The store has
    /// no such put, so it is a read and a txn conditional on the key not having changed since.
    async fn put_keeping_current(&self, request: PbPutRequest) -> Result<PbPutResponse, Status> {
        if request.key.is_empty() {
            return Err(errors::empty_key());
        }
        if request.ignore_value && !request.value.is_empty() {
            return Err(invalid(errors::VALUE_PROVIDED));
        }
        if request.ignore_lease && request.lease != 0 {
            return Err(invalid(errors::LEASE_PROVIDED));
        }
        for _ in 0..IGNORE_PUT_ATTEMPTS {
            let current = self
                .ctx
                .store
                .range(RangeRequest::key(request.key.clone()))
                .await
                .map_err(|e| status_of(&e))?;
            let Some(current) = current.kvs.into_iter().next() else {
                return Err(invalid(errors::KEY_NOT_FOUND));
            };
            let put = PutRequest {
                key: request.key.clone(),
                value: if request.ignore_value {
                    current.value
                } else {
                    request.value.clone()
                },
                lease: if request.ignore_lease {
                    current.lease
                } else {
                    request.lease
                },
                prev_kv: request.prev_kv,
            };
            let txn = TxnRequest {
                compare: vec![Compare::new(
                    request.key.clone(),
                    CompareResult::Equal,
                    CompareTarget::ModRevision(current.mod_revision),
                )],
                success: vec![TxnOp::Put(put)],
                failure: Vec::new(),
            };
            let response = self.ctx.store.txn(txn).await.map_err(|e| status_of(&e))?;
            if !response.succeeded {
                continue;
            }
            let header = self.ctx.header(response.header);
            return match response.responses.into_iter().next() {
                Some(TxnOpResponse::Put(put)) => Ok(convert::put_response(put, header)),
                _ => Err(other_response("put")),
            };
        }
        Err(Status::new(
            Code::Aborted,
            "etcdserver: the key kept changing while keeping its value or lease; retry",
        ))
    }
}

/// A put writes its key, and reads it when it returns the previous value.
fn put_needs(request: &PbPutRequest) -> Vec<Need> {
    let mut needs = vec![Need::Range(Op::Write, request.key.clone(), Vec::new())];
    if request.prev_kv || request.ignore_value || request.ignore_lease {
        needs.push(Need::Range(Op::Read, request.key.clone(), Vec::new()));
    }
    needs
}

/// What a txn needs, as etcd checks it: reading every compared range and every range op, writing
/// every put and delete, in both branches and in nested txns, whichever branch runs.
pub(super) fn txn_needs(txn: &PbTxnRequest, needs: &mut Vec<Need>) {
    for compare in &txn.compare {
        needs.push(Need::Range(Op::Read, compare.key.clone(), compare.range_end.clone()));
    }
    for op in txn.success.iter().chain(&txn.failure) {
        match &op.request {
            Some(PbTxnOpRequest::RequestRange(range)) => {
                needs.push(Need::Range(Op::Read, range.key.clone(), range.range_end.clone()));
            }
            Some(PbTxnOpRequest::RequestPut(put)) => needs.extend(put_needs(put)),
            Some(PbTxnOpRequest::RequestDeleteRange(delete)) => {
                needs.push(Need::Range(Op::Write, delete.key.clone(), delete.range_end.clone()));
                if delete.prev_kv {
                    needs.push(Need::Range(Op::Read, delete.key.clone(), delete.range_end.clone()));
                }
            }
            Some(PbTxnOpRequest::RequestTxn(nested)) => txn_needs(nested, needs),
            None => {}
        }
    }
}

/// The store answered an operation with the response of another kind.
fn other_response(operation: &str) -> Status {
    Status::internal(format!(
        "etcdserver: the store answered a {operation} with another kind of response"
    ))
}

type RangeStream = Pin<Box<dyn Stream<Item = Result<PbRangeStreamResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl<S: Store + Clone> PbKvService for KvService<S> {
    async fn range(&self, request: Request<PbRangeRequest>) -> Result<Response<PbRangeResponse>, Status> {
        let (metadata, extensions, request) = request.into_parts();
        let credentials = Credentials::new(&metadata, &extensions);
        Ok(Response::new(self.range_inner(&credentials, request).await?))
    }

    type RangeStreamStream = RangeStream;

    async fn range_stream(&self, request: Request<PbRangeRequest>) -> Result<Response<RangeStream>, Status> {
        let (metadata, extensions, request) = request.into_parts();
        let credentials = Credentials::new(&metadata, &extensions);
        let response = self.range_inner(&credentials, request).await?;
        let chunk = PbRangeStreamResponse {
            range_response: Some(response),
        };
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(chunk)]))))
    }

    async fn put(&self, request: Request<PbPutRequest>) -> Result<Response<PbPutResponse>, Status> {
        let (metadata, extensions, request) = request.into_parts();
        let credentials = Credentials::new(&metadata, &extensions);
        let needs = put_needs(&request);
        if request.ignore_value || request.ignore_lease {
            self.ctx.authorize(&credentials, &needs).await?;
            return Ok(Response::new(self.put_keeping_current(request).await?));
        }
        let put = convert::put_request(request)?;
        match self.ctx.authorized_write(&credentials, &needs, TxnOp::Put(put)).await? {
            (header, TxnOpResponse::Put(response)) => {
                Ok(Response::new(convert::put_response(response, self.ctx.header(header))))
            }
            _ => Err(other_response("put")),
        }
    }

    async fn delete_range(&self, request: Request<PbDeleteRequest>) -> Result<Response<PbDeleteResponse>, Status> {
        let (metadata, extensions, request) = request.into_parts();
        let credentials = Credentials::new(&metadata, &extensions);
        let delete = convert::delete_request(request)?;
        let mut needs = vec![Need::Range(Op::Write, delete.key.clone(), delete.range_end.clone())];
        if delete.prev_kv {
            needs.push(Need::Range(Op::Read, delete.key.clone(), delete.range_end.clone()));
        }
        match self
            .ctx
            .authorized_write(&credentials, &needs, TxnOp::DeleteRange(delete))
            .await?
        {
            (header, TxnOpResponse::DeleteRange(response)) => Ok(Response::new(convert::delete_response(
                response,
                self.ctx.header(header),
            ))),
            _ => Err(other_response("delete")),
        }
    }

    async fn txn(&self, request: Request<PbTxnRequest>) -> Result<Response<PbTxnResponse>, Status> {
        let (metadata, extensions, request) = request.into_parts();
        let credentials = Credentials::new(&metadata, &extensions);
        let mut needs = Vec::new();
        txn_needs(&request, &mut needs);
        let (txn, plan) = convert::txn_request(request)?;
        match self.ctx.authorized_write(&credentials, &needs, TxnOp::Txn(txn)).await? {
            (header, TxnOpResponse::Txn(response)) => Ok(Response::new(convert::txn_response(
                response,
                &plan,
                self.ctx.header(header),
            ))),
            _ => Err(other_response("txn")),
        }
    }

    async fn compact(&self, request: Request<PbCompactionRequest>) -> Result<Response<PbCompactionResponse>, Status> {
        // `physical` asks to wait until the compaction is on disk; the store's compaction is applied
        // when it returns, so both kinds are answered the same way.
        let (metadata, extensions, request) = request.into_parts();
        let credentials = Credentials::new(&metadata, &extensions);
        self.ctx.authorize(&credentials, &[Need::Admin]).await?;
        let revision = request.revision;
        let response = self
            .ctx
            .store
            .compact(CompactRequest { revision })
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(PbCompactionResponse {
            header: self.ctx.header(response.header),
        }))
    }
}
