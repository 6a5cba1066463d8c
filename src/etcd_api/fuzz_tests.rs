//! The bounded fuzz run of the etcd API's decoders (see `kuboard_raft::fuzzing`): the protobuf
//! requests a client sends, decoded as the gRPC service decodes them and turned into the store's
//! requests (key ranges, `range_end` and prefix forms, sort and revision filters, nested
//! transactions). Mutations of valid encodings for `KUBOARD_FUZZ_SECONDS` (default 3 s) per target;
//! none may panic. The Auth service's requests, tokens and the permission checks of txns have a
//! target of their own.

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

/// The Auth service's requests, checked as the service checks them before touching the store;
/// the bytes as a token; and the permission check of a decoded txn against a role with grants.
fn auth_requests(data: &[u8]) {
    use super::access::{self, AuthState, Permission, UserRecord};
    use super::auth::{
        AuthenticateRequest, ChangePasswordRequest, GrantPermissionRequest, NameRequest, RevokePermissionRequest,
        UserAddRequest, UserRoleRequest,
    };

    if let Ok(request) = NameRequest::decode(data) {
        let _ = access::check_name(&request.name, access::USER_EMPTY, "user");
    }
    if let Ok(request) = AuthenticateRequest::decode(data) {
        let _ = access::check_name(&request.name, access::USER_EMPTY, "user");
    }
    if let Ok(request) = UserAddRequest::decode(data) {
        let _ = access::check_name(&request.name, access::USER_EMPTY, "user");
        let _ = request.options.map(|options| options.no_password);
    }
    if let Ok(request) = ChangePasswordRequest::decode(data) {
        let _ = access::check_name(&request.name, access::USER_EMPTY, "user");
    }
    if let Ok(request) = UserRoleRequest::decode(data) {
        let _ = access::check_name(&request.role, access::ROLE_EMPTY, "role");
    }
    if let Ok(request) = RevokePermissionRequest::decode(data) {
        let _ = access::touches_reserved(&request.key, &request.range_end);
    }
    let mut state = AuthState {
        enabled: true,
        revision: 1,
        token_key: access::new_token_key(),
        ..Default::default()
    };
    if let Ok(request) = GrantPermissionRequest::decode(data) {
        if let Some(perm) = request.perm {
            let perm = Permission {
                perm_type: perm.perm_type,
                key: perm.key,
                range_end: perm.range_end,
            };
            if access::check_permission(&perm).is_ok() {
                state.roles.insert("fuzz".into(), vec![perm]);
            }
        }
    }
    state.users.insert(
        "fuzz".into(),
        UserRecord {
            password_hash: None,
            roles: ["fuzz".to_string()].into(),
        },
    );
    let _ = access::check_token(&state, &String::from_utf8_lossy(data));
    if let Ok(request) = PbTxnRequest::decode(data) {
        let mut needs = Vec::new();
        super::kv::txn_needs(&request, &mut needs);
        let _ = access::permitted(&state, "fuzz", &needs);
    }
}

fn auth_seeds() -> Vec<Vec<u8>> {
    use super::auth::{AuthenticateRequest, GrantPermissionRequest, PermissionMessage, UserAddOptions, UserAddRequest};

    let grant = GrantPermissionRequest {
        name: "app".into(),
        perm: Some(PermissionMessage {
            perm_type: 2,
            key: b"app/".to_vec(),
            range_end: b"app0".to_vec(),
        }),
    };
    let add = UserAddRequest {
        name: "alice".into(),
        password: "alice-pass".into(),
        options: Some(UserAddOptions { no_password: false }),
        hashed_password: String::new(),
    };
    let authenticate = AuthenticateRequest {
        name: "root".into(),
        password: "root-pass".into(),
    };
    let mut seeds = vec![
        grant.encode_to_vec(),
        add.encode_to_vec(),
        authenticate.encode_to_vec(),
        b"YWxpY2U.3.1900000000.c2lnbmF0dXJl".to_vec(),
    ];
    seeds.extend(seeds_for_txns());
    seeds
}

fn seeds_for_txns() -> Vec<Vec<u8>> {
    seeds()
        .into_iter()
        .filter(|seed| PbTxnRequest::decode(&seed[..]).is_ok())
        .collect()
}

#[test]
fn etcd_api_auth_requests_never_panic_the_checks() {
    let seeds = auth_seeds();
    let summary = run(
        "etcd_auth_requests",
        &seeds,
        budget(),
        MIN_INPUTS,
        MAX_INPUTS,
        auth_requests,
    );
    assert!(summary.inputs >= MIN_INPUTS);
}
