//! Unit tests of the state machine against etcd 3.4's semantics. Most are tables of
//! `(command, expected response)` run by [`check`].

use std::time::Duration;

use futures::StreamExt;
use kuboard_storage::*;

use super::*;
use crate::command::{Command, CommandResponse};

fn open() -> (tempfile::TempDir, KvStateMachine) {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let machine = KvStateMachine::open(dir.path()).expect("open a fresh state machine");
    (dir, machine)
}

fn put(key: &str, value: &str) -> Command {
    Command::Put(PutRequest::new(key, value))
}

fn put_prev(key: &str, value: &str) -> Command {
    Command::Put(PutRequest {
        prev_kv: true,
        ..PutRequest::new(key, value)
    })
}

fn put_lease(key: &str, value: &str, lease: i64) -> Command {
    Command::Put(PutRequest {
        lease,
        ..PutRequest::new(key, value)
    })
}

fn delete(key: &str, range_end: &[u8], prev_kv: bool) -> Command {
    Command::DeleteRange(DeleteRangeRequest {
        key: key.into(),
        range_end: range_end.to_vec(),
        prev_kv,
    })
}

fn kv(key: &str, value: &str, create_revision: i64, mod_revision: i64, version: i64, lease: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value.into(),
        create_revision,
        mod_revision,
        version,
        lease,
    }
}

fn hdr(revision: i64) -> ResponseHeader {
    header(revision)
}

fn put_ok(revision: i64, prev_kv: Option<KeyValue>) -> CommandResponse {
    CommandResponse::Put(PutResponse {
        header: hdr(revision),
        prev_kv,
    })
}

fn deleted(revision: i64, deleted: i64, prev_kvs: Vec<KeyValue>) -> CommandResponse {
    CommandResponse::DeleteRange(DeleteRangeResponse {
        header: hdr(revision),
        deleted,
        prev_kvs,
    })
}

fn error(error: StoreError) -> CommandResponse {
    CommandResponse::Error(error)
}

fn invalid() -> CommandResponse {
    error(StoreError::InvalidArgument(String::new()))
}

/// Apply each command and compare its response (an `InvalidArgument` expectation matches any message).
fn check(machine: &KvStateMachine, steps: &[(Command, CommandResponse)]) {
    for (position, (command, expected)) in steps.iter().enumerate() {
        let meta = format!("entry {position}");
        let response = machine
            .apply(command, meta.as_bytes())
            .expect("apply without internal fault");
        match (&response, expected) {
            (
                CommandResponse::Error(StoreError::InvalidArgument(_)),
                CommandResponse::Error(StoreError::InvalidArgument(message)),
            ) if message.is_empty() => {}
            _ => assert_eq!(&response, expected, "step {position}: {command:?}"),
        }
        assert_eq!(
            machine.meta().expect("read meta"),
            Some(meta.into_bytes()),
            "step {position}: meta"
        );
    }
}

fn apply(machine: &KvStateMachine, command: Command) -> CommandResponse {
    machine.apply(&command, b"meta").expect("apply without internal fault")
}

fn range(machine: &KvStateMachine, request: RangeRequest) -> Result<RangeResponse, StoreError> {
    machine.range(&request)
}

fn keys_of(response: &RangeResponse) -> Vec<String> {
    response
        .kvs
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect()
}

fn all_keys(revision: i64) -> RangeRequest {
    RangeRequest {
        key: Vec::new(),
        range_end: vec![0],
        revision,
        ..Default::default()
    }
}

#[test]
fn revisions_after_each_kind_of_command() {
    let (_dir, machine) = open();
    assert_eq!(machine.revision(), 1);
    assert_eq!(machine.compact_revision(), 0);
    assert_eq!(machine.meta().expect("read meta"), None);
    check(
        &machine,
        &[
            (put("a", "1"), put_ok(2, None)),
            (put_prev("a", "2"), put_ok(3, Some(kv("a", "1", 2, 2, 1, 0)))),
            // A delete that removes nothing keeps the revision.
            (delete("zzz", b"", true), deleted(3, 0, vec![])),
            (delete("a", b"", true), deleted(4, 1, vec![kv("a", "2", 2, 3, 2, 0)])),
            // A put after a delete starts a new generation.
            (put_prev("a", "3"), put_ok(5, None)),
            (
                Command::LeaseGrant { id: 7, ttl: 10 },
                CommandResponse::LeaseGrant(LeaseGrantResponse {
                    header: hdr(5),
                    id: 7,
                    ttl: 10,
                }),
            ),
            (
                Command::LeaseGrant { id: 7, ttl: 10 },
                error(StoreError::LeaseExists(7)),
            ),
            (put_lease("b", "x", 7), put_ok(6, None)),
            (put_lease("c", "x", 8), error(StoreError::LeaseNotFound(8))),
            (
                Command::LeaseRevoke { id: 7 },
                CommandResponse::LeaseRevoke(LeaseRevokeResponse { header: hdr(7) }),
            ),
            (Command::LeaseRevoke { id: 7 }, error(StoreError::LeaseNotFound(7))),
            // A lease without keys is revoked without a new revision.
            (
                Command::LeaseGrant { id: 9, ttl: 1 },
                CommandResponse::LeaseGrant(LeaseGrantResponse {
                    header: hdr(7),
                    id: 9,
                    ttl: 1,
                }),
            ),
            (
                Command::LeaseRevoke { id: 9 },
                CommandResponse::LeaseRevoke(LeaseRevokeResponse { header: hdr(7) }),
            ),
            (
                Command::Compact(CompactRequest { revision: 3 }),
                CommandResponse::Compact(CompactResponse { header: hdr(7) }),
            ),
            (
                Command::Compact(CompactRequest { revision: 3 }),
                error(StoreError::Compacted {
                    requested: 3,
                    compact_revision: 3,
                }),
            ),
            (
                Command::Compact(CompactRequest { revision: 2 }),
                error(StoreError::Compacted {
                    requested: 2,
                    compact_revision: 3,
                }),
            ),
            (
                Command::Compact(CompactRequest { revision: 8 }),
                error(StoreError::FutureRevision {
                    requested: 8,
                    current: 7,
                }),
            ),
            (put("", "x"), invalid()),
            (delete("", b"", false), invalid()),
            (Command::LeaseGrant { id: 0, ttl: 5 }, invalid()),
            (Command::LeaseGrant { id: 3, ttl: 0 }, invalid()),
            (
                Command::Compact(CompactRequest { revision: 7 }),
                CommandResponse::Compact(CompactResponse { header: hdr(7) }),
            ),
        ],
    );
    assert_eq!(machine.revision(), 7);
    assert_eq!(machine.compact_revision(), 7);
    let all = range(&machine, all_keys(0)).expect("range");
    assert_eq!(all.kvs, vec![kv("a", "3", 5, 5, 1, 0)]);
    assert_eq!(all.header.revision, 7);
}

#[test]
fn apply_meta_alone_and_errors_keep_meta() {
    let (_dir, machine) = open();
    machine.apply_meta(b"blank entry").expect("apply meta");
    assert_eq!(machine.meta().expect("read meta"), Some(b"blank entry".to_vec()));
    assert_eq!(machine.revision(), 1);
    let response = machine.apply(&put_lease("k", "v", 5), b"after error").expect("apply");
    assert_eq!(response, error(StoreError::LeaseNotFound(5)));
    assert_eq!(machine.meta().expect("read meta"), Some(b"after error".to_vec()));
    assert_eq!(machine.revision(), 1);
    assert_eq!(range(&machine, all_keys(0)).expect("range").count, 0);
}

fn fill(machine: &KvStateMachine, keys: &[&str]) {
    for key in keys {
        apply(machine, put(key, &format!("v-{key}")));
    }
}

#[test]
fn range_selections() {
    let (_dir, machine) = open();
    fill(&machine, &["a", "ab", "abc", "b", "c", "c\0"]);
    let request = |key: &str, range_end: &[u8]| RangeRequest {
        key: key.into(),
        range_end: range_end.to_vec(),
        ..Default::default()
    };
    let cases: Vec<(RangeRequest, Vec<&str>, i64, bool)> = vec![
        (RangeRequest::key("ab"), vec!["ab"], 1, false),
        (RangeRequest::key("zz"), vec![], 0, false),
        (RangeRequest::prefix("a"), vec!["a", "ab", "abc"], 3, false),
        (RangeRequest::prefix("c"), vec!["c", "c\0"], 2, false),
        (request("ab", b"b"), vec!["ab", "abc"], 2, false),
        (request("b", &[0]), vec!["b", "c", "c\0"], 3, false),
        (request("", &[0]), vec!["a", "ab", "abc", "b", "c", "c\0"], 6, false),
        // A range_end at or below key selects nothing.
        (request("b", b"a"), vec![], 0, false),
        (request("b", b"b"), vec![], 0, false),
        (
            RangeRequest {
                limit: 2,
                ..request("a", &[0])
            },
            vec!["a", "ab"],
            6,
            true,
        ),
        (
            RangeRequest {
                limit: 6,
                ..request("a", &[0])
            },
            vec!["a", "ab", "abc", "b", "c", "c\0"],
            6,
            false,
        ),
        (
            RangeRequest {
                sort_order: SortOrder::Descend,
                ..RangeRequest::prefix("a")
            },
            vec!["abc", "ab", "a"],
            3,
            false,
        ),
        (
            RangeRequest {
                sort_order: SortOrder::Descend,
                limit: 2,
                ..request("", &[0])
            },
            vec!["c\0", "c"],
            6,
            true,
        ),
        (
            RangeRequest {
                count_only: true,
                limit: 1,
                ..request("", &[0])
            },
            vec![],
            6,
            false,
        ),
    ];
    for (request, keys, count, more) in cases {
        let response = range(&machine, request.clone()).expect("range");
        assert_eq!(keys_of(&response), keys, "{request:?}");
        assert_eq!((response.count, response.more), (count, more), "{request:?}");
        assert_eq!(response.header.revision, 7);
    }
    let keys_only = range(
        &machine,
        RangeRequest {
            keys_only: true,
            ..RangeRequest::key("b")
        },
    )
    .expect("range");
    assert_eq!(keys_only.kvs, vec![kv("b", "", 5, 5, 1, 0)]);
    let invalid_requests = [
        RangeRequest::key(""),
        RangeRequest {
            limit: -1,
            ..RangeRequest::key("a")
        },
        RangeRequest {
            revision: -1,
            ..RangeRequest::key("a")
        },
    ];
    for request in invalid_requests {
        assert!(matches!(range(&machine, request), Err(StoreError::InvalidArgument(_))));
    }
}

#[test]
fn range_at_older_revisions() {
    let (_dir, machine) = open();
    check(
        &machine,
        &[
            (put("a", "1"), put_ok(2, None)),
            (put("b", "1"), put_ok(3, None)),
            (put("a", "2"), put_ok(4, None)),
            (delete("b", b"", false), deleted(5, 1, vec![])),
            (put("b\0", "1"), put_ok(6, None)),
        ],
    );
    let expected: Vec<(i64, Vec<KeyValue>)> = vec![
        (1, vec![]),
        (2, vec![kv("a", "1", 2, 2, 1, 0)]),
        (3, vec![kv("a", "1", 2, 2, 1, 0), kv("b", "1", 3, 3, 1, 0)]),
        (4, vec![kv("a", "2", 2, 4, 2, 0), kv("b", "1", 3, 3, 1, 0)]),
        (5, vec![kv("a", "2", 2, 4, 2, 0)]),
        (6, vec![kv("a", "2", 2, 4, 2, 0), kv("b\0", "1", 6, 6, 1, 0)]),
    ];
    for (revision, kvs) in &expected {
        let response = range(&machine, all_keys(*revision)).expect("range");
        assert_eq!(&response.kvs, kvs, "at {revision}");
        assert_eq!(response.header.revision, 6);
        let descending = range(
            &machine,
            RangeRequest {
                sort_order: SortOrder::Descend,
                limit: 1,
                ..all_keys(*revision)
            },
        )
        .expect("range");
        assert_eq!(
            descending.kvs,
            kvs.iter().rev().take(1).cloned().collect::<Vec<_>>(),
            "descending at {revision}"
        );
        assert_eq!(descending.more, kvs.len() > 1);
        let single = range(
            &machine,
            RangeRequest {
                revision: *revision,
                ..RangeRequest::key("b")
            },
        )
        .expect("range");
        assert_eq!(
            single.kvs,
            kvs.iter().filter(|kv| kv.key == b"b").cloned().collect::<Vec<_>>()
        );
    }
    assert_eq!(
        range(&machine, all_keys(7)),
        Err(StoreError::FutureRevision {
            requested: 7,
            current: 6
        })
    );
}

fn cmp(key: &str, result: CompareResult, target: CompareTarget) -> Compare {
    Compare::new(key, result, target)
}

fn txn(compare: Vec<Compare>, success: Vec<TxnOp>, failure: Vec<TxnOp>) -> Command {
    Command::Txn(TxnRequest {
        compare,
        success,
        failure,
    })
}

fn op_put(key: &str, value: &str) -> TxnOp {
    TxnOp::Put(PutRequest::new(key, value))
}

fn txn_ok(revision: i64, succeeded: bool, responses: Vec<TxnOpResponse>) -> CommandResponse {
    CommandResponse::Txn(TxnResponse {
        header: hdr(revision),
        succeeded,
        responses,
    })
}

fn op_put_ok(revision: i64) -> TxnOpResponse {
    TxnOpResponse::Put(PutResponse {
        header: hdr(revision),
        prev_kv: None,
    })
}

#[test]
fn txn_compares_on_missing_and_present_keys() {
    use CompareResult::*;
    use CompareTarget::*;
    let (_dir, machine) = open();
    apply(&machine, put("present", "v"));
    let cases: Vec<(Compare, bool)> = vec![
        (cmp("missing", Equal, Version(0)), true),
        (cmp("missing", Equal, CreateRevision(0)), true),
        (cmp("missing", Equal, ModRevision(0)), true),
        (cmp("missing", Equal, Lease(0)), true),
        (cmp("missing", Equal, Value(vec![])), false),
        (cmp("missing", NotEqual, Value(b"x".to_vec())), false),
        (cmp("missing", Less, Version(1)), true),
        (cmp("present", Equal, Value(b"v".to_vec())), true),
        (cmp("present", Greater, Value(b"u".to_vec())), true),
        (cmp("present", Less, Value(b"w".to_vec())), true),
        (cmp("present", NotEqual, Value(b"v".to_vec())), false),
        (cmp("present", Equal, Version(1)), true),
        (cmp("present", Greater, ModRevision(1)), true),
        (cmp("present", Less, CreateRevision(2)), false),
        (cmp("present", Equal, Lease(0)), true),
        // A range compare must hold for every key in it.
        (
            Compare {
                range_end: vec![0],
                ..cmp("", Greater, Version(0))
            },
            true,
        ),
        (
            Compare {
                range_end: b"q".to_vec(),
                ..cmp("p", Equal, Value(b"v".to_vec()))
            },
            true,
        ),
        (
            Compare {
                range_end: b"y".to_vec(),
                ..cmp("x", Equal, Version(0))
            },
            true,
        ),
        (
            Compare {
                range_end: b"y".to_vec(),
                ..cmp("x", Equal, Value(b"v".to_vec()))
            },
            false,
        ),
    ];
    for (compare, holds) in cases {
        let response = apply(&machine, txn(vec![compare.clone()], vec![], vec![]));
        assert_eq!(response, txn_ok(2, holds, vec![]), "{compare:?}");
    }
    assert_eq!(machine.revision(), 2, "read-only txns keep the revision");
}

#[test]
fn txn_writes_share_one_revision_and_see_earlier_writes() {
    use CompareResult::*;
    use CompareTarget::*;
    let (_dir, machine) = open();
    apply(&machine, put("x", "old"));
    apply(&machine, put("y", "old"));
    let request = txn(
        vec![cmp("x", Equal, Version(1))],
        vec![
            op_put("a", "1"),
            TxnOp::Range(RangeRequest::prefix("a")),
            TxnOp::DeleteRange(DeleteRangeRequest {
                prev_kv: true,
                ..DeleteRangeRequest::key("x")
            }),
            TxnOp::Range(RangeRequest {
                key: Vec::new(),
                range_end: vec![0],
                ..Default::default()
            }),
            // A read at an explicit revision sees the committed state at that revision.
            TxnOp::Range(RangeRequest {
                revision: 3,
                ..RangeRequest::key("x")
            }),
        ],
        vec![op_put("failed", "1")],
    );
    let expected = txn_ok(
        4,
        true,
        vec![
            op_put_ok(4),
            TxnOpResponse::Range(RangeResponse {
                header: hdr(4),
                kvs: vec![kv("a", "1", 4, 4, 1, 0)],
                more: false,
                count: 1,
            }),
            TxnOpResponse::DeleteRange(DeleteRangeResponse {
                header: hdr(4),
                deleted: 1,
                prev_kvs: vec![kv("x", "old", 2, 2, 1, 0)],
            }),
            TxnOpResponse::Range(RangeResponse {
                header: hdr(4),
                kvs: vec![kv("a", "1", 4, 4, 1, 0), kv("y", "old", 3, 3, 1, 0)],
                more: false,
                count: 2,
            }),
            TxnOpResponse::Range(RangeResponse {
                header: hdr(4),
                kvs: vec![kv("x", "old", 2, 2, 1, 0)],
                more: false,
                count: 1,
            }),
        ],
    );
    check(&machine, &[(request, expected)]);
    // Failure branch: the compare no longer holds (x is gone).
    check(
        &machine,
        &[(
            txn(
                vec![cmp("x", Equal, Version(1))],
                vec![op_put("never", "1")],
                vec![op_put("failed", "1")],
            ),
            txn_ok(5, false, vec![op_put_ok(5)]),
        )],
    );
    // A txn whose only write deletes nothing keeps the revision.
    check(
        &machine,
        &[(
            txn(
                vec![],
                vec![TxnOp::DeleteRange(DeleteRangeRequest::key("nothing"))],
                vec![],
            ),
            txn_ok(
                5,
                true,
                vec![TxnOpResponse::DeleteRange(DeleteRangeResponse {
                    header: hdr(5),
                    deleted: 0,
                    prev_kvs: vec![],
                })],
            ),
        )],
    );
}

#[test]
fn txn_rejections_change_nothing() {
    let (_dir, machine) = open();
    apply(&machine, put("k", "v"));
    let nested = |success: Vec<TxnOp>, failure: Vec<TxnOp>| {
        TxnOp::Txn(TxnRequest {
            compare: vec![],
            success,
            failure,
        })
    };
    let rejected = vec![
        (txn(vec![], vec![op_put("a", "1"), op_put("a", "2")], vec![]), invalid()),
        (txn(vec![], vec![], vec![op_put("a", "1"), op_put("a", "2")]), invalid()),
        (
            txn(
                vec![],
                vec![TxnOp::DeleteRange(DeleteRangeRequest::prefix("a")), op_put("ab", "1")],
                vec![],
            ),
            invalid(),
        ),
        (
            txn(
                vec![],
                vec![op_put("a", "1"), nested(vec![op_put("a", "2")], vec![])],
                vec![],
            ),
            invalid(),
        ),
        (
            txn(
                vec![],
                vec![
                    TxnOp::DeleteRange(DeleteRangeRequest::key("a")),
                    nested(vec![], vec![op_put("a", "2")]),
                ],
                vec![],
            ),
            invalid(),
        ),
        (txn(vec![], vec![op_put("", "1")], vec![]), invalid()),
        (
            txn(vec![], vec![TxnOp::Range(RangeRequest::key(""))], vec![]),
            invalid(),
        ),
        (
            txn(
                vec![],
                (0..129).map(|n| op_put(&format!("k{n}"), "v")).collect(),
                vec![],
            ),
            invalid(),
        ),
        (
            txn(
                vec![],
                vec![TxnOp::Put(PutRequest {
                    lease: 42,
                    ..PutRequest::new("a", "1")
                })],
                vec![],
            ),
            error(StoreError::LeaseNotFound(42)),
        ),
        (
            txn(
                vec![],
                vec![
                    op_put("a", "1"),
                    TxnOp::Range(RangeRequest {
                        revision: 3,
                        ..RangeRequest::key("a")
                    }),
                ],
                vec![],
            ),
            error(StoreError::FutureRevision {
                requested: 3,
                current: 2,
            }),
        ),
    ];
    check(&machine, &rejected);
    assert_eq!(machine.revision(), 2);
    assert_eq!(keys_of(&range(&machine, all_keys(0)).expect("range")), vec!["k"]);
    // The two branches of a nested txn exclude each other, so both may put the same key; deletes may overlap.
    let allowed = txn(
        vec![],
        vec![
            nested(vec![op_put("a", "1")], vec![op_put("a", "2")]),
            TxnOp::DeleteRange(DeleteRangeRequest::prefix("k")),
            TxnOp::DeleteRange(DeleteRangeRequest::key("k")),
        ],
        vec![],
    );
    let response = apply(&machine, allowed);
    let CommandResponse::Txn(response) = response else {
        panic!("txn failed: {response:?}")
    };
    assert!(response.succeeded);
    assert_eq!(machine.revision(), 3);
    assert_eq!(
        range(&machine, all_keys(0)).expect("range").kvs,
        vec![kv("a", "1", 3, 3, 1, 0)]
    );
}

#[test]
fn nested_txn_compares_see_the_state_before_the_txn() {
    use CompareResult::*;
    use CompareTarget::*;
    let (_dir, machine) = open();
    let request = txn(
        vec![],
        vec![
            op_put("a", "1"),
            TxnOp::Txn(TxnRequest {
                // "a" does not exist before the txn, although the put above precedes this compare.
                compare: vec![cmp("a", Equal, Version(0))],
                success: vec![op_put("b", "seen-before")],
                failure: vec![op_put("b", "seen-after")],
            }),
        ],
        vec![],
    );
    let expected = txn_ok(
        2,
        true,
        vec![
            op_put_ok(2),
            TxnOpResponse::Txn(TxnResponse {
                header: hdr(2),
                succeeded: true,
                responses: vec![op_put_ok(2)],
            }),
        ],
    );
    check(&machine, &[(request, expected)]);
    let b = range(&machine, RangeRequest::key("b")).expect("range");
    assert_eq!(b.kvs, vec![kv("b", "seen-before", 2, 2, 1, 0)]);
}

fn history_len(machine: &KvStateMachine) -> usize {
    read(&machine.inner.state).history.len()
}

/// The history's length once the background removal of compacted history is done.
fn history_len_once_purged(machine: &KvStateMachine) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while machine.purge_pending() {
        assert!(
            std::time::Instant::now() < deadline,
            "compacted history removed within 10 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    history_len(machine)
}

#[test]
fn compaction_keeps_what_is_visible_at_the_compaction_revision() {
    let (_dir, machine) = open();
    check(
        &machine,
        &[
            (put("a", "1"), put_ok(2, None)),
            (put("a", "2"), put_ok(3, None)),
            (put("b", "1"), put_ok(4, None)),
            (delete("b", b"", false), deleted(5, 1, vec![])),
            (put("c", "1"), put_ok(6, None)),
            (delete("c", b"", false), deleted(7, 1, vec![])),
            (put("a", "3"), put_ok(8, None)),
        ],
    );
    assert_eq!(history_len(&machine), 7);
    check(
        &machine,
        &[(
            Command::Compact(CompactRequest { revision: 7 }),
            CommandResponse::Compact(CompactResponse { header: hdr(8) }),
        )],
    );
    // Kept: a@3 (visible at 7), c's tombstone at exactly 7, a@8. Dropped: a@2, b@4, b's tombstone, c@6.
    assert_eq!(history_len_once_purged(&machine), 3);
    assert_eq!(
        range(&machine, all_keys(6)),
        Err(StoreError::Compacted {
            requested: 6,
            compact_revision: 7
        })
    );
    assert_eq!(
        range(&machine, all_keys(7)).expect("range at the compaction point").kvs,
        vec![kv("a", "2", 2, 3, 2, 0)]
    );
    assert_eq!(
        range(&machine, all_keys(0)).expect("range").kvs,
        vec![kv("a", "3", 2, 8, 3, 0)]
    );
    // Versions continue across compaction.
    check(
        &machine,
        &[(put_prev("a", "4"), put_ok(9, Some(kv("a", "3", 2, 8, 3, 0))))],
    );
    // Compacting at the current revision is allowed.
    check(
        &machine,
        &[(
            Command::Compact(CompactRequest { revision: 9 }),
            CommandResponse::Compact(CompactResponse { header: hdr(9) }),
        )],
    );
    assert_eq!(history_len_once_purged(&machine), 1);
    assert_eq!(
        range(&machine, all_keys(9)).expect("range").kvs,
        vec![kv("a", "4", 2, 9, 4, 0)]
    );
}

#[test]
fn lease_revoke_deletes_attached_keys_in_one_revision() {
    let (_dir, machine) = open();
    apply(&machine, Command::LeaseGrant { id: 5, ttl: 30 });
    apply(&machine, Command::LeaseGrant { id: -2, ttl: 60 });
    fill(&machine, &["plain"]);
    for key in ["x", "y", "z"] {
        apply(&machine, put_lease(key, "v", 5));
    }
    // Re-putting "z" without the lease detaches it.
    apply(&machine, put("z", "free"));
    // Moving "y" to another lease detaches it from the first one.
    apply(&machine, put_lease("w", "v", 5));
    apply(&machine, put_lease("y", "v", -2));
    assert_eq!(machine.leases().expect("leases"), vec![(-2, 60), (5, 30)]);
    assert_eq!(
        machine.lease(5).expect("lease"),
        Some((30, vec![b"w".to_vec(), b"x".to_vec()]))
    );
    assert_eq!(machine.lease(-2).expect("lease"), Some((60, vec![b"y".to_vec()])));
    assert_eq!(machine.lease(6).expect("lease"), None);
    let before = machine.revision();
    check(
        &machine,
        &[(
            Command::LeaseRevoke { id: 5 },
            CommandResponse::LeaseRevoke(LeaseRevokeResponse {
                header: hdr(before + 1),
            }),
        )],
    );
    assert_eq!(
        keys_of(&range(&machine, all_keys(0)).expect("range")),
        vec!["plain", "y", "z"]
    );
    assert_eq!(machine.leases().expect("leases"), vec![(-2, 60)]);
    // Both deletions carry the same revision.
    let history = range(&machine, all_keys(before)).expect("range before revoke");
    assert_eq!(keys_of(&history), vec!["plain", "w", "x", "y", "z"]);
    // Deleting a leased key detaches it too.
    apply(&machine, delete("y", b"", false));
    assert_eq!(machine.lease(-2).expect("lease"), Some((60, vec![])));
}

async fn next_event(stream: &mut WatchStream) -> Result<WatchResponse, StoreError> {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a watch response within 10 s")
        .expect("the watch stream is still open")
}

/// Collect `(kind, key, mod_revision)` of the next `count` events.
async fn collect_events(stream: &mut WatchStream, count: usize) -> Vec<(EventKind, String, i64)> {
    let mut events = Vec::new();
    while events.len() < count {
        let response = next_event(stream).await.expect("no watch error");
        for event in response.events {
            events.push((
                event.kind,
                String::from_utf8_lossy(&event.kv.key).into_owned(),
                event.kv.mod_revision,
            ));
        }
    }
    events
}

#[tokio::test]
async fn watch_replays_history_then_streams_live_events() {
    let (_dir, machine) = open();
    fill(&machine, &["a", "b", "other"]);
    apply(&machine, delete("a", b"", false));
    let mut watch = machine
        .watch(WatchRequest {
            key: b"a".to_vec(),
            range_end: b"c".to_vec(),
            start_revision: 2,
            prev_kv: true,
            ..Default::default()
        })
        .expect("start watch");
    let first = next_event(&mut watch).await.expect("history");
    assert_eq!(first.events.len(), 3);
    assert_eq!(first.events[2].kind, EventKind::Delete);
    assert_eq!(
        first.events[2].kv,
        KeyValue {
            key: b"a".to_vec(),
            mod_revision: 5,
            ..Default::default()
        }
    );
    assert_eq!(first.events[2].prev_kv, Some(kv("a", "v-a", 2, 2, 1, 0)));
    let mut live = machine
        .watch(WatchRequest {
            key: b"b".to_vec(),
            ..Default::default()
        })
        .expect("start watch");
    apply(&machine, put_prev("b", "2"));
    apply(&machine, put("c", "outside"));
    apply(&machine, put("b", "3"));
    assert_eq!(
        collect_events(&mut watch, 2).await,
        vec![
            (EventKind::Put, "b".to_string(), 6),
            (EventKind::Put, "b".to_string(), 8)
        ]
    );
    let response = next_event(&mut live).await.expect("live event");
    assert_eq!(response.events[0].kv, kv("b", "2", 3, 6, 2, 0));
    assert_eq!(response.events[0].prev_kv, None, "prev_kv only on request");
    assert_eq!(
        collect_events(&mut live, 1).await,
        vec![(EventKind::Put, "b".to_string(), 8)]
    );
}

#[tokio::test]
async fn watch_of_a_txn_sees_its_writes_in_order_in_one_response() {
    let (_dir, machine) = open();
    let mut watch = machine
        .watch(WatchRequest {
            key: Vec::new(),
            range_end: vec![0],
            ..Default::default()
        })
        .expect("watch");
    apply(
        &machine,
        txn(
            vec![],
            vec![
                op_put("z", "1"),
                op_put("a", "1"),
                TxnOp::DeleteRange(DeleteRangeRequest::key("z")),
            ],
            vec![],
        ),
    );
    // etcd rejects put and delete of the same key; this txn is refused, so use distinct keys.
    apply(
        &machine,
        txn(
            vec![],
            vec![
                op_put("z", "1"),
                op_put("a", "1"),
                TxnOp::DeleteRange(DeleteRangeRequest::key("q")),
            ],
            vec![],
        ),
    );
    let response = next_event(&mut watch).await.expect("events");
    let keys: Vec<_> = response
        .events
        .iter()
        .map(|event| (event.kv.key.clone(), event.kv.mod_revision))
        .collect();
    assert_eq!(keys, vec![(b"z".to_vec(), 2), (b"a".to_vec(), 2)]);
}

#[tokio::test]
async fn watch_below_the_compaction_point_fails() {
    let (_dir, machine) = open();
    fill(&machine, &["a", "b", "c"]);
    apply(&machine, Command::Compact(CompactRequest { revision: 3 }));
    let compacted = machine.watch(WatchRequest {
        key: b"a".to_vec(),
        start_revision: 2,
        ..Default::default()
    });
    assert!(matches!(
        compacted,
        Err(StoreError::Compacted {
            requested: 2,
            compact_revision: 3
        })
    ));
    // Watching from the compaction point itself works.
    let mut watch = machine
        .watch(WatchRequest {
            key: Vec::new(),
            range_end: vec![0],
            start_revision: 3,
            ..Default::default()
        })
        .expect("watch at the compaction point");
    assert_eq!(
        collect_events(&mut watch, 2).await,
        vec![
            (EventKind::Put, "b".to_string(), 3),
            (EventKind::Put, "c".to_string(), 4)
        ]
    );
}

#[tokio::test]
async fn slow_watcher_catches_up_from_history_without_gap() {
    let (_dir, machine) = open();
    let mut watch = machine
        .watch(WatchRequest {
            key: Vec::new(),
            range_end: vec![0],
            ..Default::default()
        })
        .expect("watch");
    let total = watch_hub::HUB_CAPACITY * 2 + 10;
    for n in 0..total {
        apply(&machine, put(&format!("k{}", n % 7), &n.to_string()));
    }
    let events = collect_events(&mut watch, total).await;
    let revisions: Vec<i64> = events.iter().map(|(_, _, revision)| *revision).collect();
    assert_eq!(revisions, (2..2 + total as i64).collect::<Vec<_>>());
}

#[tokio::test]
async fn lagging_watcher_behind_a_compaction_ends_with_compacted() {
    let (_dir, machine) = open();
    let mut watch = machine
        .watch(WatchRequest {
            key: Vec::new(),
            range_end: vec![0],
            ..Default::default()
        })
        .expect("watch");
    let total = watch_hub::HUB_CAPACITY + 10;
    for n in 0..total {
        apply(&machine, put("k", &n.to_string()));
    }
    apply(
        &machine,
        Command::Compact(CompactRequest {
            revision: machine.revision(),
        }),
    );
    let result = next_event(&mut watch).await;
    assert!(
        matches!(result, Err(StoreError::Compacted { requested: 2, .. })),
        "{result:?}"
    );
    let end = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("stream ends promptly");
    assert!(end.is_none(), "the stream ends after the error");
}

#[tokio::test]
async fn progress_notifications_while_idle() {
    let (_dir, machine) = open();
    machine.set_progress_interval(Duration::from_millis(20));
    fill(&machine, &["a"]);
    let mut watch = machine
        .watch(WatchRequest {
            key: b"a".to_vec(),
            progress_notify: true,
            ..Default::default()
        })
        .expect("watch");
    let progress = next_event(&mut watch).await.expect("progress");
    assert!(progress.events.is_empty());
    assert_eq!(progress.header.revision, 2);
}

fn snapshot_bytes(machine: &KvStateMachine) -> Vec<u8> {
    let mut bytes = Vec::new();
    machine.export_snapshot(&mut bytes).expect("export snapshot");
    bytes
}

/// Every observable of the state: revisions, meta, leases, and every range at every retained revision.
fn observe(machine: &KvStateMachine) -> Vec<String> {
    let mut seen = vec![
        format!("revision {} compact {}", machine.revision(), machine.compact_revision()),
        format!("meta {:?}", machine.meta().expect("meta")),
        format!("leases {:?}", machine.leases().expect("leases")),
    ];
    for (id, _) in machine.leases().expect("leases") {
        seen.push(format!("lease {id} {:?}", machine.lease(id).expect("lease")));
    }
    for revision in machine.compact_revision().max(1)..=machine.revision() {
        seen.push(format!(
            "at {revision}: {:?}",
            range(machine, all_keys(revision)).map(|response| response.kvs)
        ));
    }
    seen
}

fn busy_history(machine: &KvStateMachine) {
    apply(machine, Command::LeaseGrant { id: 11, ttl: 100 });
    apply(machine, Command::LeaseGrant { id: 12, ttl: 200 });
    for n in 0..30 {
        apply(machine, put(&format!("key/{}", n % 9), &format!("value {n}")));
        if n % 4 == 0 {
            apply(machine, delete(&format!("key/{}", (n + 3) % 9), b"", false));
        }
    }
    apply(machine, put_lease("leased/1", "v", 11));
    apply(machine, put_lease("leased/2", "v", 12));
    apply(machine, Command::Compact(CompactRequest { revision: 20 }));
    apply(machine, put("after", "compaction"));
    machine.apply_meta(b"last applied").expect("apply meta");
}

#[test]
fn snapshot_export_install_reproduces_the_state() {
    let (_dir, source) = open();
    busy_history(&source);
    let bytes = snapshot_bytes(&source);
    let (_fresh_dir, fresh) = open();
    fresh
        .install_snapshot(&mut bytes.as_slice())
        .expect("install snapshot into a fresh store");
    assert_eq!(observe(&fresh), observe(&source));
    let (target_dir, target) = open();
    // The target has state of its own that the snapshot replaces.
    fill(&target, &["stale/1", "stale/2"]);
    target
        .install_snapshot(&mut bytes.as_slice())
        .expect("install snapshot");
    assert_eq!(observe(&target), observe(&source));
    // Both continue identically.
    for command in [
        put("key/1", "next"),
        Command::LeaseRevoke { id: 11 },
        Command::Compact(CompactRequest { revision: 25 }),
    ] {
        assert_eq!(apply(&target, command.clone()), apply(&source, command));
    }
    assert_eq!(observe(&target), observe(&source));
    // The installed state survives a reopen, and an export of it equals the source's.
    drop(target);
    let reopened = super::reopen_after_drop(target_dir.path());
    assert_eq!(observe(&reopened), observe(&source));
    assert_eq!(snapshot_bytes(&reopened), snapshot_bytes(&source));
}

#[test]
fn damaged_snapshot_leaves_the_state_alone() {
    let (_dir, source) = open();
    busy_history(&source);
    let bytes = snapshot_bytes(&source);
    let (_target_dir, target) = open();
    fill(&target, &["mine"]);
    let before = observe(&target);
    for cut in [0, 3, 10, bytes.len() / 2, bytes.len() - 1] {
        assert!(target.install_snapshot(&mut &bytes[..cut]).is_err(), "cut at {cut}");
        assert_eq!(observe(&target), before);
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(target.install_snapshot(&mut trailing.as_slice()).is_err());
    assert_eq!(observe(&target), before);
    apply(&target, put("still", "writable"));
}

#[tokio::test]
async fn install_ends_watchers_whose_position_is_gone() {
    let (_dir, source) = open();
    busy_history(&source);
    let bytes = snapshot_bytes(&source);
    let (_target_dir, target) = open();
    fill(&target, &["mine"]);
    let mut watch = target
        .watch(WatchRequest {
            key: Vec::new(),
            range_end: vec![0],
            ..Default::default()
        })
        .expect("watch");
    target.install_snapshot(&mut bytes.as_slice()).expect("install");
    let result = next_event(&mut watch).await;
    assert!(
        matches!(
            result,
            Err(StoreError::Compacted {
                requested: 3,
                compact_revision: 20
            })
        ),
        "{result:?}"
    );
}

#[test]
fn reopen_keeps_everything() {
    let (dir, machine) = open();
    busy_history(&machine);
    let before = observe(&machine);
    machine.flush().expect("flush");
    drop(machine);
    let reopened = super::reopen_after_drop(dir.path());
    assert_eq!(observe(&reopened), before);
}

#[tokio::test]
async fn a_group_publishes_its_revisions_in_order_after_committing() {
    let (_dir, machine) = open();
    let mut watch = machine
        .watch(WatchRequest {
            key: b"a".to_vec(),
            range_end: b"z".to_vec(),
            ..Default::default()
        })
        .expect("start watch");
    let commands = [put("b", "1"), put("c", "1"), delete("b", b"", false), put("b", "2")];
    let items: Vec<(Option<&Command>, Vec<u8>)> = commands
        .iter()
        .map(Some)
        .chain([None])
        .enumerate()
        .map(|(position, command)| (command, format!("entry {position}").into_bytes()))
        .collect();
    let responses = machine.apply_group(&items).expect("apply group");
    let revisions: Vec<i64> = responses
        .iter()
        .map(|response| match response {
            CommandResponse::Put(r) => r.header.revision,
            CommandResponse::DeleteRange(r) => r.header.revision,
            CommandResponse::Applied(header) => header.revision,
            other => panic!("unexpected answer {other:?}"),
        })
        .collect();
    assert_eq!(revisions, vec![2, 3, 4, 5, 5]);
    assert_eq!(machine.revision(), 5);
    assert_eq!(machine.meta().expect("read meta"), Some(b"entry 4".to_vec()));
    assert_eq!(
        collect_events(&mut watch, 4).await,
        vec![
            (EventKind::Put, "b".to_string(), 2),
            (EventKind::Put, "c".to_string(), 3),
            (EventKind::Delete, "b".to_string(), 4),
            (EventKind::Put, "b".to_string(), 5),
        ]
    );
    // The put after the deletion recreated the key: version 1, created at 5.
    let now = range(&machine, RangeRequest::key("b")).expect("range");
    assert_eq!(now.kvs, vec![kv("b", "2", 5, 5, 1, 0)]);
}
