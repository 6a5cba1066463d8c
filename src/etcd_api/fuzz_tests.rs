//! The bounded fuzz run of the etcd API's decoders (see `kuboard_raft::fuzzing`): the protobuf
//! requests a client sends, decoded as the gRPC service decodes them and turned into the store's
//! requests (key ranges, `range_end` and prefix forms, sort and revision filters, nested
//! transactions). Mutations of valid encodings for `KUBOARD_FUZZ_SECONDS` (default 3 s) per target;
//! none may panic.

use etcd_client::proto::{
    PbCompare, PbDeleteRequest, PbPutRequest, PbRangeRequest, PbTargetUnion, PbTxnOpRequest, PbTxnRequest,
    PbTxnRequestOp,
};
use kuboard_raft::fuzzing::{budget, run};
use prost::Message;

use super::convert;

const MIN_INPUTS: u64 = 2_000;
const MAX_INPUTS: u64 = 50_000_000;

fn range(key: &[u8], range_end: &[u8]) -> PbRangeRequest {
    PbRangeRequest {
        key: key.to_vec(),
        range_end: range_end.to_vec(),
        limit: 10,
        sort_order: 2,
        sort_target: 3,
        min_mod_revision: 2,
        max_create_revision: 90,
        ..Default::default()
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let put = PbPutRequest {
        key: b"/registry/users/admin".to_vec(),
        value: b"{\"name\":\"admin\"}".to_vec(),
        lease: 7,
        prev_kv: true,
        ..Default::default()
    };
    let delete = PbDeleteRequest {
        key: b"/sessions/".to_vec(),
        range_end: b"/sessions0".to_vec(),
        prev_kv: true,
    };
    let txn = PbTxnRequest {
        compare: vec![PbCompare {
            result: 0,
            target: 3,
            key: b"/lock".to_vec(),
            range_end: Vec::new(),
            target_union: Some(PbTargetUnion::ModRevision(0)),
        }],
        success: vec![
            PbTxnRequestOp {
                request: Some(PbTxnOpRequest::RequestPut(put.clone())),
            },
            PbTxnRequestOp {
                request: Some(PbTxnOpRequest::RequestTxn(PbTxnRequest {
                    compare: Vec::new(),
                    success: vec![PbTxnRequestOp {
                        request: Some(PbTxnOpRequest::RequestRange(range(b"a", b"\0"))),
                    }],
                    failure: Vec::new(),
                })),
            },
        ],
        failure: vec![PbTxnRequestOp {
            request: Some(PbTxnOpRequest::RequestDeleteRange(delete.clone())),
        }],
    };
    vec![
        range(b"/registry/", b"/registry0").encode_to_vec(),
        range(b"\0", b"\0").encode_to_vec(),
        range(b"k", b"").encode_to_vec(),
        put.encode_to_vec(),
        delete.encode_to_vec(),
        txn.encode_to_vec(),
    ]
}

/// Every request type the KV service decodes, from the same bytes.
fn etcd_requests(data: &[u8]) {
    if let Ok(request) = PbRangeRequest::decode(data) {
        let _ = convert::range_plan(request);
    }
    if let Ok(request) = PbPutRequest::decode(data) {
        let _ = convert::put_request(request);
    }
    if let Ok(request) = PbDeleteRequest::decode(data) {
        let _ = convert::delete_request(request);
    }
    if let Ok(request) = PbTxnRequest::decode(data) {
        let _ = convert::txn_request(request);
    }
}

#[test]
fn etcd_api_requests_never_panic_the_decoding() {
    let seeds = seeds();
    for seed in &seeds {
        assert!(
            PbRangeRequest::decode(&seed[..]).is_ok() || PbTxnRequest::decode(&seed[..]).is_ok(),
            "the seeds are valid requests"
        );
    }
    let summary = run("etcd_requests", &seeds, budget(), MIN_INPUTS, MAX_INPUTS, etcd_requests);
    assert!(summary.inputs >= MIN_INPUTS);
}
