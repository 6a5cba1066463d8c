//! Model-based tests: random command sequences applied to the state machine and to a tiny
//! in-memory model of etcd's semantics (a full copy of the key space per revision), compared after
//! every command: responses, revisions, leases, and ranges at every revision.

use std::collections::{BTreeMap, BTreeSet};

use kuboard_storage::*;
use proptest::prelude::*;

use super::KvStateMachine;
use crate::command::{Command, CommandResponse};

#[derive(Debug, Clone)]
enum Op {
    Put {
        key: u8,
        value: u8,
        lease: i64,
    },
    Delete {
        key: u8,
        width: u8,
    },
    Txn {
        compare_key: u8,
        version: i64,
        then_put: (u8, u8),
        then_delete: u8,
        else_put: (u8, u8),
    },
    Compact {
        back: i64,
    },
    Grant {
        id: i64,
    },
    Revoke {
        id: i64,
    },
}

fn key(n: u8) -> Vec<u8> {
    vec![b'a' + n]
}

fn value(n: u8) -> Vec<u8> {
    vec![b'0' + n]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..5, 0u8..10, prop_oneof![3 => Just(0i64), 1 => 1i64..3])
            .prop_map(|(key, value, lease)| Op::Put { key, value, lease }),
        2 => (0u8..5, 0u8..3).prop_map(|(key, width)| Op::Delete { key, width }),
        2 => (0u8..5, 0i64..3, (0u8..5, 0u8..10), 0u8..5, (0u8..5, 0u8..10)).prop_map(
            |(compare_key, version, then_put, then_delete, else_put)| Op::Txn {
                compare_key,
                version,
                then_put,
                then_delete,
                else_put
            }
        ),
        1 => (-1i64..4).prop_map(|back| Op::Compact { back }),
        1 => (1i64..3).prop_map(|id| Op::Grant { id }),
        1 => (1i64..3).prop_map(|id| Op::Revoke { id }),
    ]
}

/// The expected outcome of a command: the revision after it, or an error.
type Outcome = Result<i64, StoreError>;

#[derive(Debug)]
struct Model {
    /// `states[r - 1]` is the key space at revision `r`.
    states: Vec<BTreeMap<Vec<u8>, KeyValue>>,
    compact_revision: i64,
    leases: BTreeMap<i64, BTreeSet<Vec<u8>>>,
}

impl Model {
    fn new() -> Model {
        Model {
            states: vec![BTreeMap::new()],
            compact_revision: 0,
            leases: BTreeMap::new(),
        }
    }

    fn revision(&self) -> i64 {
        self.states.len() as i64
    }

    fn latest(&self) -> &BTreeMap<Vec<u8>, KeyValue> {
        self.states.last().expect("the model always has a state")
    }

    fn put(&mut self, state: &mut BTreeMap<Vec<u8>, KeyValue>, key: Vec<u8>, value: Vec<u8>, lease: i64) {
        let revision = self.revision() + 1;
        let prev = state.get(&key).cloned();
        if let Some(prev) = &prev {
            if let Some(keys) = self.leases.get_mut(&prev.lease) {
                keys.remove(&key);
            }
        }
        if lease != 0 {
            self.leases.get_mut(&lease).expect("lease checked").insert(key.clone());
        }
        let kv = KeyValue {
            key: key.clone(),
            value,
            create_revision: prev.as_ref().map_or(revision, |prev| prev.create_revision),
            mod_revision: revision,
            version: prev.as_ref().map_or(1, |prev| prev.version + 1),
            lease,
        };
        state.insert(key, kv);
    }

    fn delete(&mut self, state: &mut BTreeMap<Vec<u8>, KeyValue>, start: &[u8], end: &[u8]) -> bool {
        let doomed: Vec<Vec<u8>> = state
            .keys()
            .filter(|candidate| keys::in_range(start, end, candidate))
            .cloned()
            .collect();
        for key in &doomed {
            let removed = state.remove(key).expect("listed above");
            if let Some(keys) = self.leases.get_mut(&removed.lease) {
                keys.remove(key);
            }
        }
        !doomed.is_empty()
    }

    fn commit(&mut self, state: BTreeMap<Vec<u8>, KeyValue>, changed: bool) -> Outcome {
        if changed {
            self.states.push(state);
        }
        Ok(self.revision())
    }

    fn apply(&mut self, op: &Op) -> Outcome {
        let mut state = self.latest().clone();
        match op {
            Op::Put {
                key: k,
                value: v,
                lease,
            } => {
                if *lease != 0 && !self.leases.contains_key(lease) {
                    return Err(StoreError::LeaseNotFound(*lease));
                }
                self.put(&mut state, key(*k), value(*v), *lease);
                self.commit(state, true)
            }
            Op::Delete { key: k, width } => {
                let end = if *width == 0 { Vec::new() } else { key(*k + *width) };
                let changed = self.delete(&mut state, &key(*k), &end);
                self.commit(state, changed)
            }
            Op::Txn {
                compare_key,
                version,
                then_put,
                then_delete,
                else_put,
            } => {
                if then_put.0 == *then_delete {
                    return Err(StoreError::InvalidArgument(String::new()));
                }
                let current = state.get(&key(*compare_key)).map_or(0, |kv| kv.version);
                if current == *version {
                    self.put(&mut state, key(then_put.0), value(then_put.1), 0);
                    self.delete(&mut state, &key(*then_delete), &[]);
                } else {
                    self.put(&mut state, key(else_put.0), value(else_put.1), 0);
                }
                self.commit(state, true)
            }
            Op::Compact { back } => {
                let target = self.revision() - back;
                if target <= self.compact_revision {
                    return Err(StoreError::Compacted {
                        requested: target,
                        compact_revision: self.compact_revision,
                    });
                }
                if target > self.revision() {
                    return Err(StoreError::FutureRevision {
                        requested: target,
                        current: self.revision(),
                    });
                }
                self.compact_revision = target;
                Ok(self.revision())
            }
            Op::Grant { id } => {
                if self.leases.contains_key(id) {
                    return Err(StoreError::LeaseExists(*id));
                }
                self.leases.insert(*id, BTreeSet::new());
                Ok(self.revision())
            }
            Op::Revoke { id } => {
                let Some(keys) = self.leases.remove(id) else {
                    return Err(StoreError::LeaseNotFound(*id));
                };
                for key in &keys {
                    state.remove(key);
                }
                self.commit(state, !keys.is_empty())
            }
        }
    }
}

/// The command of `op`; a compaction is relative to the machine's `revision`.
fn command(op: &Op, revision: i64) -> Command {
    match op {
        Op::Put {
            key: k,
            value: v,
            lease,
        } => Command::Put(PutRequest {
            lease: *lease,
            prev_kv: true,
            ..PutRequest::new(key(*k), value(*v))
        }),
        Op::Delete { key: k, width } => Command::DeleteRange(DeleteRangeRequest {
            key: key(*k),
            range_end: if *width == 0 { Vec::new() } else { key(*k + *width) },
            prev_kv: true,
        }),
        Op::Txn {
            compare_key,
            version,
            then_put,
            then_delete,
            else_put,
        } => Command::Txn(TxnRequest {
            compare: vec![Compare::new(
                key(*compare_key),
                CompareResult::Equal,
                CompareTarget::Version(*version),
            )],
            success: vec![
                TxnOp::Put(PutRequest::new(key(then_put.0), value(then_put.1))),
                TxnOp::DeleteRange(DeleteRangeRequest::key(key(*then_delete))),
            ],
            failure: vec![TxnOp::Put(PutRequest::new(key(else_put.0), value(else_put.1)))],
        }),
        Op::Compact { back } => Command::Compact(CompactRequest {
            revision: revision - back,
        }),
        Op::Grant { id } => Command::LeaseGrant { id: *id, ttl: 10 },
        Op::Revoke { id } => Command::LeaseRevoke { id: *id },
    }
}

fn outcome(response: &CommandResponse) -> Outcome {
    match response {
        CommandResponse::Put(response) => Ok(response.header.revision),
        CommandResponse::DeleteRange(response) => Ok(response.header.revision),
        CommandResponse::Txn(response) => Ok(response.header.revision),
        CommandResponse::Compact(response) => Ok(response.header.revision),
        CommandResponse::LeaseGrant(response) => Ok(response.header.revision),
        CommandResponse::LeaseRevoke(response) => Ok(response.header.revision),
        CommandResponse::Applied(header) => Ok(header.revision),
        // Messages of invalid arguments are for humans; the model does not spell them.
        CommandResponse::Error(StoreError::InvalidArgument(_)) => Err(StoreError::InvalidArgument(String::new())),
        CommandResponse::Error(error) => Err(error.clone()),
    }
}

fn compare_state(machine: &KvStateMachine, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(machine.revision(), model.revision());
    prop_assert_eq!(machine.compact_revision(), model.compact_revision);
    let leases: Vec<i64> = machine
        .leases()
        .expect("leases")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    prop_assert_eq!(leases, model.leases.keys().copied().collect::<Vec<_>>());
    for (id, keys) in &model.leases {
        let (_, attached) = machine.lease(*id).expect("lease").expect("lease exists");
        prop_assert_eq!(attached, keys.iter().cloned().collect::<Vec<_>>());
    }
    for revision in 1..=model.revision() {
        let all = RangeRequest {
            key: Vec::new(),
            range_end: vec![0],
            revision,
            ..Default::default()
        };
        let response = machine.range(&all);
        if revision < model.compact_revision {
            prop_assert!(
                matches!(response, Err(StoreError::Compacted { .. })),
                "at {revision}: {response:?}"
            );
            continue;
        }
        let expected: Vec<KeyValue> = model.states[revision as usize - 1].values().cloned().collect();
        let response = response.expect("range at a retained revision");
        prop_assert_eq!(&response.kvs, &expected, "all keys at {}", revision);
        // A bounded, descending, limited range over the middle keys.
        let window = RangeRequest {
            key: key(1),
            range_end: key(4),
            revision,
            limit: 2,
            sort_order: SortOrder::Descend,
            ..Default::default()
        };
        let response = machine.range(&window).expect("range");
        let in_window: Vec<KeyValue> = expected
            .iter()
            .filter(|kv| keys::in_range(&key(1), &key(4), &kv.key))
            .rev()
            .cloned()
            .collect();
        prop_assert_eq!(response.count, in_window.len() as i64);
        prop_assert_eq!(response.more, in_window.len() > 2);
        prop_assert_eq!(response.kvs, in_window.into_iter().take(2).collect::<Vec<_>>());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn state_machine_matches_the_model(ops in proptest::collection::vec(op_strategy(), 1..40)) {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let machine = KvStateMachine::open(dir.path()).expect("open");
        let mut model = Model::new();
        for op in &ops {
            let command = command(op, machine.revision());
            let response = machine.apply(&command, b"meta").expect("apply without internal fault");
            let expected = model.apply(op);
            prop_assert_eq!(outcome(&response), expected, "{:?}", op);
            compare_state(&machine, &model)?;
        }
        // The same holds after a reopen.
        drop(machine);
        let machine = super::reopen_after_drop(dir.path());
        compare_state(&machine, &model)?;
    }

    #[test]
    fn install_of_random_bytes_fails_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let machine = KvStateMachine::open(dir.path()).expect("open");
        machine.apply(&Command::Put(PutRequest::new("k", "v")), b"meta").expect("apply");
        prop_assert!(machine.install_snapshot(&mut bytes.as_slice()).is_err());
        prop_assert_eq!(machine.revision(), 2);
        let all = machine.range(&RangeRequest::key("k")).expect("range");
        prop_assert_eq!(all.count, 1);
    }
}

/// Transactions that read inside a group: `1` compares a range and reads the latest state (it runs
/// on the group's pending writes), `2` also reads at the current revision (it is applied alone),
/// `3` reads at the revision before (alone too).
fn reading_txn(kind: u8, revision: i64) -> Option<Command> {
    let all_at = |revision: i64| {
        TxnOp::Range(RangeRequest {
            key: key(0),
            range_end: key(5),
            revision,
            ..Default::default()
        })
    };
    let read_at = match kind {
        1 => 0,
        2 => revision,
        3 => (revision - 1).max(1),
        _ => return None,
    };
    Some(Command::Txn(TxnRequest {
        compare: vec![Compare {
            range_end: key(5),
            ..Compare::new(key(0), CompareResult::Greater, CompareTarget::Version(1))
        }],
        success: vec![all_at(0), TxnOp::Put(PutRequest::new(key(4), value(9)))],
        failure: vec![all_at(read_at), TxnOp::DeleteRange(DeleteRangeRequest::key(key(1)))],
    }))
}

/// Every lease with its ttl and attached keys.
type LeaseState = Vec<(i64, i64, Vec<Vec<u8>>)>;

/// Everything a reader can observe of a state machine: revisions, leases with their keys, and
/// every key at every retained revision.
fn observable(machine: &KvStateMachine) -> (i64, i64, LeaseState, Vec<RangeResponse>) {
    let leases = machine
        .leases()
        .expect("leases")
        .into_iter()
        .map(|(id, ttl)| {
            let (_, keys) = machine.lease(id).expect("lease").expect("listed lease exists");
            (id, ttl, keys)
        })
        .collect();
    let ranges = (machine.compact_revision().max(1)..=machine.revision())
        .map(|revision| {
            let all = RangeRequest {
                key: Vec::new(),
                range_end: vec![0],
                revision,
                ..Default::default()
            };
            machine.range(&all).expect("range at a retained revision")
        })
        .collect();
    (machine.revision(), machine.compact_revision(), leases, ranges)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Entries applied in groups (runs of puts and deletions in one sled transaction, the other
    /// commands alone, entries without a command in between) answer and end exactly as the same
    /// entries applied one at a time, and the meta of a group's last entry is the one stored.
    #[test]
    fn grouped_apply_matches_one_at_a_time(
        ops in proptest::collection::vec((op_strategy(), any::<bool>(), 0u8..4), 1..40),
        cuts in proptest::collection::vec(1usize..12, 1..40),
    ) {
        let one_dir = tempfile::tempdir().expect("create a temporary directory");
        let one = KvStateMachine::open(one_dir.path()).expect("open");
        let mut entries = Vec::new();
        let mut expected = Vec::new();
        for (position, (op, blank_before, reader)) in ops.iter().enumerate() {
            if *blank_before {
                let meta = format!("blank before {position}").into_bytes();
                expected.push(CommandResponse::Applied(kuboard_storage::ResponseHeader {
                    revision: one.revision(),
                    ..Default::default()
                }));
                one.apply_meta(&meta).expect("apply meta");
                entries.push((None, meta));
            }
            let command = command(op, one.revision());
            let meta = format!("entry {position}").into_bytes();
            expected.push(one.apply(&command, &meta).expect("apply without internal fault"));
            entries.push((Some(command), meta));
            if let Some(command) = reading_txn(*reader, one.revision()) {
                let meta = format!("reader after {position}").into_bytes();
                expected.push(one.apply(&command, &meta).expect("apply without internal fault"));
                entries.push((Some(command), meta));
            }
        }

        let grouped_dir = tempfile::tempdir().expect("create a temporary directory");
        let grouped = KvStateMachine::open(grouped_dir.path()).expect("open");
        let mut answers = Vec::new();
        let mut rest = &entries[..];
        let mut sizes = cuts.iter().cycle();
        while !rest.is_empty() {
            let size = (*sizes.next().expect("cycle of a non-empty list")).min(rest.len());
            let (group, after) = rest.split_at(size);
            let items: Vec<(Option<&Command>, Vec<u8>)> =
                group.iter().map(|(command, meta)| (command.as_ref(), meta.clone())).collect();
            answers.extend(grouped.apply_group(&items).expect("apply group without internal fault"));
            let last_meta = group.last().map(|(_, meta)| meta.clone());
            prop_assert_eq!(grouped.meta().expect("read meta"), last_meta);
            rest = after;
        }
        prop_assert_eq!(&answers, &expected);
        prop_assert_eq!(observable(&grouped), observable(&one));
        // What a group committed survives a reopen.
        drop(grouped);
        let grouped = super::reopen_after_drop(grouped_dir.path());
        prop_assert_eq!(observable(&grouped), observable(&one));
    }
}
