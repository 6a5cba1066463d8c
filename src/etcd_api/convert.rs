//! etcd's protobuf messages to the store's types and back.
//!
//! The store sorts only by key; etcd's other sort targets and its revision filters are applied
//! here, after the store answered, exactly where etcd applies them (after the range, before the
//! limit), so a [`RangePlan`] remembers what is left to do for each range.

use etcd_client::proto::{
    PbCompare, PbCompareTarget, PbDeleteRequest, PbDeleteResponse, PbEvent, PbKeyValue, PbPutRequest, PbPutResponse,
    PbRangeRequest, PbRangeResponse, PbResponseHeader, PbResponseOp, PbTargetUnion, PbTxnOpRequest, PbTxnOpResponse,
    PbTxnRequest, PbTxnRequestOp, PbTxnResponse,
};
use kuboard_storage::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, DeleteRangeResponse, Event, EventKind, KeyValue,
    PutRequest, PutResponse, RangeRequest, RangeResponse, ReadConsistency, ResponseHeader, SortOrder, TxnOp,
    TxnOpResponse, TxnRequest, TxnResponse,
};
use tonic::Status;

use super::errors::{empty_key, invalid};

// Numbers of etcd's protobuf enums (rpc.proto, kv.proto), which the crate exposes only as i32.
const SORT_NONE: i32 = 0;
// Only the tests name it: the code treats every order but "none" and "descend" as ascending.
#[cfg(test)]
const SORT_ASCEND: i32 = 1;
const SORT_DESCEND: i32 = 2;
const SORT_TARGET_KEY: i32 = 0;
const SORT_TARGET_VERSION: i32 = 1;
const SORT_TARGET_CREATE: i32 = 2;
const SORT_TARGET_MOD: i32 = 3;
const SORT_TARGET_VALUE: i32 = 4;
const EVENT_PUT: i32 = 0;
const EVENT_DELETE: i32 = 1;

pub(super) fn key_value(kv: KeyValue) -> PbKeyValue {
    PbKeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease,
    }
}

pub(super) fn event(event: Event) -> PbEvent {
    PbEvent {
        r#type: match event.kind {
            EventKind::Put => EVENT_PUT,
            EventKind::Delete => EVENT_DELETE,
        },
        kv: Some(key_value(event.kv)),
        prev_kv: event.prev_kv.map(key_value),
    }
}

/// What is left to do on a range's answer after the store gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RangeFinish {
    sort_target: i32,
    /// Ascending unless descending.
    descending: bool,
    limit: i64,
    min_mod_revision: i64,
    max_mod_revision: i64,
    min_create_revision: i64,
    max_create_revision: i64,
}

/// A range as the store runs it, and what to do afterwards (`None`: the store's answer is final).
#[derive(Debug, Clone)]
pub(super) struct RangePlan {
    pub request: RangeRequest,
    pub finish: Option<RangeFinish>,
}

pub(super) fn range_plan(request: PbRangeRequest) -> Result<RangePlan, Status> {
    if request.key.is_empty() {
        return Err(empty_key());
    }
    if !(SORT_NONE..=SORT_DESCEND).contains(&request.sort_order) {
        return Err(invalid(format!(
            "etcdserver: unknown sort order {}",
            request.sort_order
        )));
    }
    if !(SORT_TARGET_KEY..=SORT_TARGET_VALUE).contains(&request.sort_target) {
        return Err(invalid(format!(
            "etcdserver: unknown sort target {}",
            request.sort_target
        )));
    }
    let filtered = request.min_mod_revision != 0
        || request.max_mod_revision != 0
        || request.min_create_revision != 0
        || request.max_create_revision != 0;
    let store_sorts = request.sort_target == SORT_TARGET_KEY && !filtered;
    let consistency = if request.serializable {
        ReadConsistency::Serializable
    } else {
        ReadConsistency::Linearizable
    };
    let mut store_request = RangeRequest {
        key: request.key,
        range_end: request.range_end,
        limit: request.limit,
        revision: request.revision,
        consistency,
        sort_order: if request.sort_order == SORT_DESCEND {
            SortOrder::Descend
        } else {
            SortOrder::Ascend
        },
        count_only: request.count_only,
        keys_only: request.keys_only,
    };
    if store_sorts {
        return Ok(RangePlan {
            request: store_request,
            finish: None,
        });
    }
    // As etcd: fetch the whole range, filter, sort, then cut to the limit.
    store_request.limit = 0;
    store_request.sort_order = SortOrder::Ascend;
    // Counting needs the keys when filters apply, as they do in etcd (whose count is of the range
    // before the filters, so it is kept from the store's answer).
    let count_only = store_request.count_only;
    Ok(RangePlan {
        request: store_request,
        finish: Some(RangeFinish {
            sort_target: request.sort_target,
            descending: request.sort_order == SORT_DESCEND,
            limit: if count_only { 0 } else { request.limit },
            min_mod_revision: request.min_mod_revision,
            max_mod_revision: request.max_mod_revision,
            min_create_revision: request.min_create_revision,
            max_create_revision: request.max_create_revision,
        }),
    })
}

/// Apply the filters, the sort and the limit that the store could not.
fn finish_range(mut response: RangeResponse, finish: &RangeFinish) -> RangeResponse {
    let keep = |kv: &KeyValue| {
        (finish.min_mod_revision == 0 || kv.mod_revision >= finish.min_mod_revision)
            && (finish.max_mod_revision == 0 || kv.mod_revision <= finish.max_mod_revision)
            && (finish.min_create_revision == 0 || kv.create_revision >= finish.min_create_revision)
            && (finish.max_create_revision == 0 || kv.create_revision <= finish.max_create_revision)
    };
    response.kvs.retain(keep);
    // The store answers ascending by key; a stable sort keeps that order among equal targets.
    match finish.sort_target {
        SORT_TARGET_VERSION => response.kvs.sort_by_key(|kv| kv.version),
        SORT_TARGET_CREATE => response.kvs.sort_by_key(|kv| kv.create_revision),
        SORT_TARGET_MOD => response.kvs.sort_by_key(|kv| kv.mod_revision),
        SORT_TARGET_VALUE => response.kvs.sort_by(|a, b| a.value.cmp(&b.value)),
        _ => {}
    }
    if finish.descending {
        response.kvs.reverse();
    }
    response.more = false;
    if finish.limit > 0 {
        let limit = usize::try_from(finish.limit).unwrap_or(usize::MAX);
        if response.kvs.len() > limit {
            response.kvs.truncate(limit);
            response.more = true;
        }
    }
    response
}

pub(super) fn range_response(
    response: RangeResponse,
    finish: Option<&RangeFinish>,
    header: Option<PbResponseHeader>,
) -> PbRangeResponse {
    let response = match finish {
        Some(finish) => finish_range(response, finish),
        None => response,
    };
    PbRangeResponse {
        header,
        kvs: response.kvs.into_iter().map(key_value).collect(),
        more: response.more,
        count: response.count,
    }
}

/// A put without etcd's `ignore_value` / `ignore_lease` (the KV service handles those).
pub(super) fn put_request(request: PbPutRequest) -> Result<PutRequest, Status> {
    if request.key.is_empty() {
        return Err(empty_key());
    }
    if request.ignore_value || request.ignore_lease {
        return Err(invalid(
            "etcdserver: ignore_value and ignore_lease are not supported inside a txn by this server",
        ));
    }
    Ok(PutRequest {
        key: request.key,
        value: request.value,
        lease: request.lease,
        prev_kv: request.prev_kv,
    })
}

pub(super) fn put_response(response: PutResponse, header: Option<PbResponseHeader>) -> PbPutResponse {
    PbPutResponse {
        header,
        prev_kv: response.prev_kv.map(key_value),
    }
}

pub(super) fn delete_request(request: PbDeleteRequest) -> Result<DeleteRangeRequest, Status> {
    if request.key.is_empty() {
        return Err(empty_key());
    }
    Ok(DeleteRangeRequest {
        key: request.key,
        range_end: request.range_end,
        prev_kv: request.prev_kv,
    })
}

pub(super) fn delete_response(response: DeleteRangeResponse, header: Option<PbResponseHeader>) -> PbDeleteResponse {
    PbDeleteResponse {
        header,
        deleted: response.deleted,
        prev_kvs: response.prev_kvs.into_iter().map(key_value).collect(),
    }
}

fn compare(compare: PbCompare) -> Result<Compare, Status> {
    if compare.key.is_empty() {
        return Err(empty_key());
    }
    let result = match compare.result {
        0 => CompareResult::Equal,
        1 => CompareResult::Greater,
        2 => CompareResult::Less,
        3 => CompareResult::NotEqual,
        other => return Err(invalid(format!("etcdserver: unknown compare result {other}"))),
    };
    // As in etcd, the target field chooses what is compared; a union of another kind reads as zero.
    let union = compare.target_union;
    let target = match PbCompareTarget::try_from(compare.target) {
        Ok(PbCompareTarget::Version) => CompareTarget::Version(match union {
            Some(PbTargetUnion::Version(v)) => v,
            _ => 0,
        }),
        Ok(PbCompareTarget::Create) => CompareTarget::CreateRevision(match union {
            Some(PbTargetUnion::CreateRevision(v)) => v,
            _ => 0,
        }),
        Ok(PbCompareTarget::Mod) => CompareTarget::ModRevision(match union {
            Some(PbTargetUnion::ModRevision(v)) => v,
            _ => 0,
        }),
        Ok(PbCompareTarget::Value) => CompareTarget::Value(match union {
            Some(PbTargetUnion::Value(v)) => v,
            _ => Vec::new(),
        }),
        Ok(PbCompareTarget::Lease) => CompareTarget::Lease(match union {
            Some(PbTargetUnion::Lease(v)) => v,
            _ => 0,
        }),
        Err(_) => {
            return Err(invalid(format!(
                "etcdserver: unknown compare target {}",
                compare.target
            )))
        }
    };
    Ok(Compare {
        key: compare.key,
        range_end: compare.range_end,
        result,
        target,
    })
}

/// For each operation of a txn branch, what is left to do on its answer.
#[derive(Debug, Clone, Default)]
pub(super) struct TxnPlan {
    success: Vec<OpPlan>,
    failure: Vec<OpPlan>,
}

#[derive(Debug, Clone)]
enum OpPlan {
    Range(Option<RangeFinish>),
    Txn(TxnPlan),
    Write,
}

pub(super) fn txn_request(request: PbTxnRequest) -> Result<(TxnRequest, TxnPlan), Status> {
    let compare = request
        .compare
        .into_iter()
        .map(compare)
        .collect::<Result<Vec<_>, _>>()?;
    let (success, success_plan) = txn_branch(request.success)?;
    let (failure, failure_plan) = txn_branch(request.failure)?;
    Ok((
        TxnRequest {
            compare,
            success,
            failure,
        },
        TxnPlan {
            success: success_plan,
            failure: failure_plan,
        },
    ))
}

fn txn_branch(ops: Vec<PbTxnRequestOp>) -> Result<(Vec<TxnOp>, Vec<OpPlan>), Status> {
    let mut store_ops = Vec::with_capacity(ops.len());
    let mut plans = Vec::with_capacity(ops.len());
    for op in ops {
        match op.request {
            Some(PbTxnOpRequest::RequestRange(range)) => {
                let plan = range_plan(range)?;
                store_ops.push(TxnOp::Range(plan.request));
                plans.push(OpPlan::Range(plan.finish));
            }
            Some(PbTxnOpRequest::RequestPut(put)) => {
                store_ops.push(TxnOp::Put(put_request(put)?));
                plans.push(OpPlan::Write);
            }
            Some(PbTxnOpRequest::RequestDeleteRange(delete)) => {
                store_ops.push(TxnOp::DeleteRange(delete_request(delete)?));
                plans.push(OpPlan::Write);
            }
            Some(PbTxnOpRequest::RequestTxn(nested)) => {
                let (nested, plan) = txn_request(nested)?;
                store_ops.push(TxnOp::Txn(nested));
                plans.push(OpPlan::Txn(plan));
            }
            None => return Err(invalid("etcdserver: a txn operation carries no request")),
        }
    }
    Ok((store_ops, plans))
}

/// The txn's answer under `header`. As in etcd, the answers of its operations carry a header with
/// the revision only.
pub(super) fn txn_response(response: TxnResponse, plan: &TxnPlan, header: Option<PbResponseHeader>) -> PbTxnResponse {
    let revision_only = |h: ResponseHeader| {
        Some(PbResponseHeader {
            revision: h.revision,
            ..Default::default()
        })
    };
    let plans = if response.succeeded {
        &plan.success
    } else {
        &plan.failure
    };
    let responses = response
        .responses
        .into_iter()
        .enumerate()
        .map(|(index, op)| {
            let op_plan = plans.get(index);
            let response = match op {
                TxnOpResponse::Range(range) => {
                    let finish = match op_plan {
                        Some(OpPlan::Range(finish)) => finish.as_ref(),
                        _ => None,
                    };
                    let op_header = revision_only(range.header);
                    PbTxnOpResponse::ResponseRange(range_response(range, finish, op_header))
                }
                TxnOpResponse::Put(put) => {
                    let op_header = revision_only(put.header);
                    PbTxnOpResponse::ResponsePut(put_response(put, op_header))
                }
                TxnOpResponse::DeleteRange(delete) => {
                    let op_header = revision_only(delete.header);
                    PbTxnOpResponse::ResponseDeleteRange(delete_response(delete, op_header))
                }
                TxnOpResponse::Txn(nested) => {
                    let empty = TxnPlan::default();
                    let nested_plan = match op_plan {
                        Some(OpPlan::Txn(nested_plan)) => nested_plan,
                        _ => &empty,
                    };
                    let nested_header = revision_only(nested.header);
                    PbTxnOpResponse::ResponseTxn(txn_response(nested, nested_plan, nested_header))
                }
            };
            PbResponseOp {
                response: Some(response),
            }
        })
        .collect();
    PbTxnResponse {
        header,
        succeeded: response.succeeded,
        responses,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str, create_revision: i64, mod_revision: i64, version: i64) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.into(),
            create_revision,
            mod_revision,
            version,
            lease: 0,
        }
    }

    fn keys(response: &PbRangeResponse) -> Vec<String> {
        response
            .kvs
            .iter()
            .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
            .collect()
    }

    fn check(request: PbRangeRequest, expected_keys: &[&str], expected_more: bool) {
        let plan = range_plan(request.clone()).expect("valid request");
        let stored = RangeResponse {
            header: ResponseHeader::default(),
            kvs: vec![kv("a", "3", 2, 9, 4), kv("b", "1", 3, 3, 1), kv("c", "2", 4, 7, 2)],
            more: false,
            count: 3,
        };
        let response = range_response(stored, plan.finish.as_ref(), None);
        assert_eq!(keys(&response), expected_keys, "{request:?}");
        assert_eq!(response.more, expected_more, "{request:?}");
        assert_eq!(response.count, 3, "count is of the range before filters, as in etcd");
    }

    fn request() -> PbRangeRequest {
        PbRangeRequest {
            key: b"a".to_vec(),
            range_end: b"z".to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn sorts_and_filters_the_store_cannot_do() {
        let by = |target, order, limit| PbRangeRequest {
            sort_target: target,
            sort_order: order,
            limit,
            ..request()
        };
        check(by(SORT_TARGET_VALUE, SORT_NONE, 0), &["b", "c", "a"], false);
        check(by(SORT_TARGET_VALUE, SORT_DESCEND, 0), &["a", "c", "b"], false);
        check(by(SORT_TARGET_MOD, SORT_ASCEND, 2), &["b", "c"], true);
        check(by(SORT_TARGET_VERSION, SORT_DESCEND, 1), &["a"], true);
        check(by(SORT_TARGET_CREATE, SORT_DESCEND, 3), &["c", "b", "a"], false);
        let filtered = PbRangeRequest {
            min_mod_revision: 4,
            max_create_revision: 3,
            ..request()
        };
        check(filtered, &["a"], false);
    }

    #[test]
    fn key_sorted_ranges_go_to_the_store_unchanged() {
        let plan = range_plan(PbRangeRequest {
            sort_order: SORT_DESCEND,
            limit: 2,
            serializable: true,
            ..request()
        })
        .expect("valid");
        assert!(plan.finish.is_none());
        assert_eq!(plan.request.sort_order, SortOrder::Descend);
        assert_eq!(plan.request.limit, 2);
        assert_eq!(plan.request.consistency, ReadConsistency::Serializable);
    }

    #[test]
    fn empty_keys_are_refused_as_etcd_does() {
        let status = range_plan(PbRangeRequest::default()).expect_err("empty key");
        assert_eq!(status.message(), "etcdserver: key is not provided");
        let txn = PbTxnRequest {
            compare: vec![PbCompare::default()],
            ..Default::default()
        };
        assert_eq!(
            txn_request(txn).expect_err("empty compare key").message(),
            "etcdserver: key is not provided"
        );
    }
}
