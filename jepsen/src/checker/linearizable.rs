//! A per-key linearizability checker for a register (read / write / compare-and-set), after Wing and
//! Gong's search as improved by Lowe (the algorithm behind Knossos' `wgl` and Porcupine).
//!
//! The history of one key becomes a list of call and return entries in time order. The search walks
//! the list: at a call whose operation the model accepts in the current state, it linearizes that
//! operation (removes its call and return from the list) and starts again from the front; at a return
//! it has reached an operation that must already have taken effect, so it undoes the most recent
//! choice and tries the next call instead. Configurations already explored — the same set of
//! linearized operations leading to the same register value — are remembered and never explored again.
//!
//! Outcomes: `fail` operations are left out (they did not happen); `info` writes and compare-and-sets
//! never return (they may take effect at any point after their invoke, or never); `info` reads are left
//! out (they constrain nothing). The search succeeds once every `ok` operation is linearized.
//!
//! The problem is NP-complete, so the search counts its steps and answers [`KeyVerdict::Unknown`]
//! beyond a bound rather than running for hours.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::history::{Outcome, RegisterCall, RegisterOp};

/// How much work the search may do on one key before answering [`KeyVerdict::Unknown`].
#[derive(Debug, Clone, Copy)]
pub struct SearchLimits {
    pub max_steps_per_key: u64,
}

impl Default for SearchLimits {
    fn default() -> Self {
        SearchLimits {
            max_steps_per_key: 5_000_000,
        }
    }
}

/// The register value: `None` until the first write.
type RegisterState = Option<i64>;

/// The register model: the state after `call` in `state`, or `None` when `call` cannot happen in
/// `state` (a read of another value, a compare-and-set whose comparison fails).
fn step(state: RegisterState, call: &RegisterCall) -> Option<RegisterState> {
    match *call {
        RegisterCall::Read { value } => (value == state).then_some(state),
        RegisterCall::Write { value } => Some(Some(value)),
        RegisterCall::Cas { from, to } => (state == Some(from)).then_some(Some(to)),
    }
}

/// Why a key's history is not linearizable, as found at the deepest point of the search.
#[derive(Debug, Clone, Serialize)]
pub struct Anomaly {
    pub key: String,
    /// The operation that had to have taken effect (it had returned) but could not be linearized in any
    /// order explored.
    pub operation: RegisterOp,
    /// The register value the longest linearization reached just before `operation`.
    pub state_before: RegisterState,
    /// How many operations that longest linearization holds.
    pub linearized: usize,
    /// Its last operations, oldest first (at most [`REPORTED_CONTEXT`]).
    pub last_linearized: Vec<RegisterOp>,
    /// Operations invoked but not yet linearized at that point, which could have taken effect first
    /// (at most [`REPORTED_CONTEXT`]).
    pub concurrent: Vec<RegisterOp>,
}

/// How many neighbouring operations an [`Anomaly`] reports.
pub const REPORTED_CONTEXT: usize = 8;

/// The verdict on one key.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum KeyVerdict {
    Linearizable {
        operations: usize,
        steps: u64,
    },
    NotLinearizable {
        anomaly: Box<Anomaly>,
        steps: u64,
    },
    /// The search gave up after `steps` steps; nothing is known about this key.
    Unknown {
        operations: usize,
        steps: u64,
    },
}

/// The verdict on a whole register history: one verdict per key.
#[derive(Debug, Clone, Serialize)]
pub struct RegisterVerdict {
    /// True only when every key is linearizable.
    pub valid: bool,
    /// True when some key is not linearizable (a definite anomaly).
    pub anomaly: bool,
    pub keys: usize,
    pub unknown_keys: Vec<String>,
    pub anomalies: Vec<Anomaly>,
    pub per_key: BTreeMap<String, KeyVerdict>,
}

/// Check every key of `history` independently.
pub fn check_register_history(history: &[RegisterOp], limits: SearchLimits) -> RegisterVerdict {
    let mut by_key: BTreeMap<&str, Vec<&RegisterOp>> = BTreeMap::new();
    for op in history {
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    let mut per_key = BTreeMap::new();
    let mut anomalies = Vec::new();
    let mut unknown_keys = Vec::new();
    for (key, ops) in by_key {
        let verdict = check_key(key, &ops, limits);
        match &verdict {
            KeyVerdict::NotLinearizable { anomaly, .. } => anomalies.push((**anomaly).clone()),
            KeyVerdict::Unknown { .. } => unknown_keys.push(key.to_string()),
            KeyVerdict::Linearizable { .. } => {}
        }
        per_key.insert(key.to_string(), verdict);
    }
    RegisterVerdict {
        valid: anomalies.is_empty() && unknown_keys.is_empty(),
        anomaly: !anomalies.is_empty(),
        keys: per_key.len(),
        unknown_keys,
        anomalies,
        per_key,
    }
}

const NIL: usize = usize::MAX;

/// The call and return entries of one key's operations as a doubly linked list that the search
/// shortens (lift) and restores (unlift) in last-in, first-out order.
struct EntryList {
    /// The operation of each entry (an index into the key's operations).
    op: Vec<usize>,
    is_call: Vec<bool>,
    /// For a call entry, its return entry.
    matching: Vec<usize>,
    next: Vec<usize>,
    prev: Vec<usize>,
    /// The first entry still in the list.
    head: usize,
}

impl EntryList {
    fn build(ops: &[&RegisterOp], optional: &[bool]) -> EntryList {
        // (time, order, op, is_call): at equal times calls sort before returns, so that two operations
        // touching the same instant count as concurrent — the permissive reading.
        let mut events: Vec<(u64, u8, usize, bool)> = Vec::with_capacity(ops.len() * 2);
        for (index, op) in ops.iter().enumerate() {
            events.push((op.invoke_ns, 0, index, true));
            let returns_at = if optional[index] {
                u64::MAX
            } else {
                op.complete_ns.max(op.invoke_ns)
            };
            events.push((returns_at, 1, index, false));
        }
        events.sort();
        let count = events.len();
        let mut list = EntryList {
            op: events.iter().map(|event| event.2).collect(),
            is_call: events.iter().map(|event| event.3).collect(),
            matching: vec![NIL; count],
            next: (1..=count).map(|next| if next == count { NIL } else { next }).collect(),
            prev: (0..count)
                .map(|index| if index == 0 { NIL } else { index - 1 })
                .collect(),
            head: if count == 0 { NIL } else { 0 },
        };
        let mut call_of_op = vec![NIL; ops.len()];
        for entry in 0..count {
            if list.is_call[entry] {
                call_of_op[list.op[entry]] = entry;
            } else {
                list.matching[call_of_op[list.op[entry]]] = entry;
            }
        }
        list
    }

    fn unlink(&mut self, entry: usize) {
        let (prev, next) = (self.prev[entry], self.next[entry]);
        if prev == NIL {
            self.head = next;
        } else {
            self.next[prev] = next;
        }
        if next != NIL {
            self.prev[next] = prev;
        }
    }

    /// Put back an entry removed by [`Self::unlink`]; valid only in the reverse order of removal.
    fn relink(&mut self, entry: usize) {
        let (prev, next) = (self.prev[entry], self.next[entry]);
        if prev == NIL {
            self.head = entry;
        } else {
            self.next[prev] = entry;
        }
        if next != NIL {
            self.prev[next] = entry;
        }
    }

    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.matching[call]);
    }

    fn unlift(&mut self, call: usize) {
        self.relink(self.matching[call]);
        self.relink(call);
    }
}

/// A fixed-size set of operation indexes.
#[derive(Clone, PartialEq, Eq, Hash)]
struct BitSet(Vec<u64>);

impl BitSet {
    fn new(size: usize) -> BitSet {
        BitSet(vec![0; size.div_ceil(64)])
    }
    fn set(&mut self, index: usize) {
        self.0[index / 64] |= 1 << (index % 64);
    }
    fn clear(&mut self, index: usize) {
        self.0[index / 64] &= !(1 << (index % 64));
    }
}

fn check_key(key: &str, all_ops: &[&RegisterOp], limits: SearchLimits) -> KeyVerdict {
    // Failed operations did not happen and indeterminate reads observed nothing: neither constrains
    // the order.
    let ops: Vec<&RegisterOp> = all_ops
        .iter()
        .copied()
        .filter(|op| match op.outcome {
            Outcome::Ok => true,
            Outcome::Fail => false,
            Outcome::Info => !matches!(op.call, RegisterCall::Read { .. }),
        })
        .collect();
    let optional: Vec<bool> = ops.iter().map(|op| op.outcome == Outcome::Info).collect();
    let mut list = EntryList::build(&ops, &optional);

    let mut state: RegisterState = None;
    let mut linearized = BitSet::new(ops.len());
    let mut explored: HashSet<(BitSet, RegisterState)> = HashSet::new();
    // The linearized calls, most recent last, with the state before each.
    let mut stack: Vec<(usize, RegisterState)> = Vec::new();
    let mut deepest: Option<Anomaly> = None;
    let mut steps: u64 = 0;
    let mut entry = list.head;

    loop {
        steps += 1;
        if steps > limits.max_steps_per_key {
            return KeyVerdict::Unknown {
                operations: ops.len(),
                steps,
            };
        }
        if entry == NIL {
            return KeyVerdict::Linearizable {
                operations: ops.len(),
                steps,
            };
        }
        let op = list.op[entry];
        if list.is_call[entry] {
            if let Some(next_state) = step(state, &ops[op].call) {
                linearized.set(op);
                if explored.insert((linearized.clone(), next_state)) {
                    stack.push((entry, state));
                    state = next_state;
                    list.lift(entry);
                    entry = list.head;
                    continue;
                }
                linearized.clear(op);
            }
            entry = list.next[entry];
            continue;
        }
        // A return: every entry before it is a call that could not be linearized now.
        if optional[op] {
            // Returns of indeterminate operations sort after every other return, so every `ok`
            // operation is linearized; the indeterminate ones left simply never took effect.
            return KeyVerdict::Linearizable {
                operations: ops.len(),
                steps,
            };
        }
        if deepest.as_ref().is_none_or(|best| stack.len() > best.linearized) {
            deepest = Some(describe(key, &ops, &list, &stack, entry, state));
        }
        let Some((call, previous_state)) = stack.pop() else {
            let anomaly = deepest.expect("a return without any linearization was just described");
            return KeyVerdict::NotLinearizable {
                anomaly: Box::new(anomaly),
                steps,
            };
        };
        state = previous_state;
        linearized.clear(list.op[call]);
        list.unlift(call);
        entry = list.next[call];
    }
}

fn describe(
    key: &str,
    ops: &[&RegisterOp],
    list: &EntryList,
    stack: &[(usize, RegisterState)],
    blocking_return: usize,
    state: RegisterState,
) -> Anomaly {
    let first_reported = stack.len().saturating_sub(REPORTED_CONTEXT);
    let last_linearized = stack[first_reported..]
        .iter()
        .map(|(call, _)| ops[list.op[*call]].clone())
        .collect();
    let blocking_op = list.op[blocking_return];
    let mut concurrent = Vec::new();
    let mut entry = list.head;
    while entry != NIL && entry != blocking_return && concurrent.len() < REPORTED_CONTEXT {
        if list.is_call[entry] && list.op[entry] != blocking_op {
            concurrent.push(ops[list.op[entry]].clone());
        }
        entry = list.next[entry];
    }
    Anomaly {
        key: key.to_string(),
        operation: ops[blocking_op].clone(),
        state_before: state,
        linearized: stack.len(),
        last_linearized,
        concurrent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An operation on key "x", times in arbitrary units.
    fn op(index: usize, call: RegisterCall, invoke: u64, complete: u64, outcome: Outcome) -> RegisterOp {
        RegisterOp {
            index,
            process: index as u64,
            node: "n1".into(),
            key: "x".into(),
            call,
            outcome,
            invoke_ns: invoke,
            complete_ns: complete,
            error: None,
        }
    }
    fn read(value: Option<i64>) -> RegisterCall {
        RegisterCall::Read { value }
    }
    fn write(value: i64) -> RegisterCall {
        RegisterCall::Write { value }
    }
    fn cas(from: i64, to: i64) -> RegisterCall {
        RegisterCall::Cas { from, to }
    }

    fn check(history: &[RegisterOp]) -> KeyVerdict {
        let verdict = check_register_history(history, SearchLimits::default());
        verdict.per_key.into_values().next().expect("one key")
    }

    fn assert_linearizable(history: &[RegisterOp]) {
        let verdict = check(history);
        assert!(matches!(verdict, KeyVerdict::Linearizable { .. }), "{verdict:#?}");
    }

    fn assert_anomaly(history: &[RegisterOp]) -> Anomaly {
        match check(history) {
            KeyVerdict::NotLinearizable { anomaly, .. } => *anomaly,
            other => panic!("expected an anomaly, got {other:#?}"),
        }
    }

    #[test]
    fn sequential_and_concurrent_histories_that_are_linearizable_pass() {
        use Outcome::Ok;
        assert!(check_register_history(&[], SearchLimits::default()).valid);
        // Sequential: read of nothing, write, read, successful CAS, read.
        assert_linearizable(&[
            op(0, read(None), 0, 1, Ok),
            op(1, write(1), 2, 3, Ok),
            op(2, read(Some(1)), 4, 5, Ok),
            op(3, cas(1, 2), 6, 7, Ok),
            op(4, read(Some(2)), 8, 9, Ok),
        ]);
        // A read concurrent with a write may see either value; here the read sees the new value
        // although it was invoked first, and a second concurrent read sees the old one.
        assert_linearizable(&[
            op(0, write(1), 0, 1, Ok),
            op(1, read(Some(2)), 2, 10, Ok),
            op(2, write(2), 3, 8, Ok),
            op(3, read(Some(1)), 4, 5, Ok),
        ]);
        // Two concurrent CASes from the same value: only one order works, and it must be found.
        assert_linearizable(&[
            op(0, write(0), 0, 1, Ok),
            op(1, cas(1, 2), 2, 10, Ok),
            op(2, cas(0, 1), 3, 9, Ok),
            op(3, read(Some(2)), 11, 12, Ok),
        ]);
    }

    #[test]
    fn a_stale_read_fails_and_names_the_read_and_the_write_it_missed() {
        use Outcome::Ok;
        let history = [
            op(0, write(1), 0, 1, Ok),
            op(1, write(2), 2, 3, Ok),
            // Invoked after write(2) completed, yet returns the older value.
            op(2, read(Some(1)), 4, 5, Ok),
        ];
        let anomaly = assert_anomaly(&history);
        assert_eq!(anomaly.operation.index, 2, "{anomaly:#?}");
        assert_eq!(anomaly.state_before, Some(2));
        assert_eq!(anomaly.linearized, 2);
        let missed: Vec<usize> = anomaly.last_linearized.iter().map(|op| op.index).collect();
        assert_eq!(missed, vec![0, 1]);
    }

    #[test]
    fn a_read_of_a_value_never_written_fails() {
        use Outcome::Ok;
        let anomaly = assert_anomaly(&[op(0, write(1), 0, 1, Ok), op(1, read(Some(7)), 2, 3, Ok)]);
        assert_eq!(anomaly.operation.index, 1);
    }

    #[test]
    fn a_successful_cas_from_the_wrong_value_fails() {
        use Outcome::Ok;
        let anomaly = assert_anomaly(&[op(0, write(1), 0, 1, Ok), op(1, cas(3, 4), 2, 3, Ok)]);
        assert_eq!(anomaly.operation.index, 1);
        assert_eq!(anomaly.state_before, Some(1));
    }

    #[test]
    fn failed_operations_are_ignored() {
        use Outcome::{Fail, Ok};
        assert_linearizable(&[
            op(0, write(1), 0, 1, Ok),
            op(1, write(5), 2, 3, Fail),
            op(2, cas(1, 2), 4, 5, Fail),
            op(3, read(Some(1)), 6, 7, Ok),
        ]);
        // A read that saw the failed write's value is an anomaly.
        assert_anomaly(&[
            op(0, write(1), 0, 1, Ok),
            op(1, write(5), 2, 3, Fail),
            op(2, read(Some(5)), 6, 7, Ok),
        ]);
    }

    #[test]
    fn indeterminate_writes_may_take_effect_late_or_never() {
        use Outcome::{Info, Ok};
        // The write timed out, then a later read saw it: it took effect after its "completion".
        assert_linearizable(&[
            op(0, write(1), 0, 1, Ok),
            op(1, write(2), 2, 3, Info),
            op(2, read(Some(1)), 4, 5, Ok),
            op(3, read(Some(2)), 6, 7, Ok),
        ]);
        // It never took effect.
        assert_linearizable(&[
            op(0, write(1), 0, 1, Ok),
            op(1, write(2), 2, 3, Info),
            op(2, read(Some(1)), 4, 5, Ok),
        ]);
        // But once observed, it cannot be undone: 1, then 2, then 1 again needs another write of 1.
        let anomaly = assert_anomaly(&[
            op(0, write(1), 0, 1, Ok),
            op(1, write(2), 2, 3, Info),
            op(2, read(Some(2)), 4, 5, Ok),
            op(3, read(Some(1)), 6, 7, Ok),
        ]);
        assert_eq!(anomaly.operation.index, 3);
        // And it cannot take effect before it was invoked.
        assert_anomaly(&[op(0, read(Some(2)), 0, 1, Ok), op(1, write(2), 2, 3, Info)]);
        // An indeterminate CAS takes effect only when its comparison holds.
        assert_linearizable(&[
            op(0, write(1), 0, 1, Ok),
            op(1, cas(1, 3), 2, 3, Info),
            op(2, read(Some(3)), 4, 5, Ok),
        ]);
        assert_anomaly(&[
            op(0, write(1), 0, 1, Ok),
            op(1, cas(2, 3), 2, 3, Info),
            op(2, read(Some(3)), 4, 5, Ok),
        ]);
        // Indeterminate reads observed nothing.
        assert_linearizable(&[op(0, write(1), 0, 1, Ok), op(1, read(Some(9)), 2, 3, Info)]);
    }

    #[test]
    fn keys_are_checked_independently_and_each_gets_a_verdict() {
        use Outcome::Ok;
        let mut history = vec![op(0, write(1), 0, 1, Ok), op(1, read(Some(1)), 2, 3, Ok)];
        let mut other = op(2, read(Some(1)), 2, 3, Ok);
        other.key = "y".into();
        history.push(other);
        let verdict = check_register_history(&history, SearchLimits::default());
        assert_eq!(verdict.keys, 2);
        assert!(verdict.anomaly);
        assert_eq!(verdict.anomalies.len(), 1);
        assert_eq!(verdict.anomalies[0].key, "y");
        assert!(matches!(verdict.per_key["x"], KeyVerdict::Linearizable { .. }));
    }

    #[test]
    fn the_search_gives_up_with_unknown_instead_of_running_unbounded() {
        use Outcome::{Info, Ok};
        // Many mutually concurrent indeterminate writes followed by an impossible read force the search
        // to try every subset; a small step bound must stop it.
        let mut history: Vec<RegisterOp> = (0..40)
            .map(|index| op(index, write(index as i64), 0, 1, Info))
            .collect();
        history.push(op(40, read(Some(1000)), 2, 3, Ok));
        let limits = SearchLimits {
            max_steps_per_key: 10_000,
        };
        let verdict = check_register_history(&history, limits);
        assert!(!verdict.valid);
        assert!(!verdict.anomaly);
        assert_eq!(verdict.unknown_keys, vec!["x".to_string()]);
        assert!(matches!(verdict.per_key["x"], KeyVerdict::Unknown { steps, .. } if steps > 10_000));
    }

    #[test]
    fn a_long_concurrent_history_is_checked_quickly() {
        use Outcome::Ok;
        // 5 processes, 400 operations, each overlapping its neighbours, consistent with a register
        // that applies the writes in invoke order.
        let mut history = Vec::new();
        let mut value = None;
        for index in 0..400usize {
            let invoke = index as u64 * 10;
            let call = match index % 3 {
                0 => {
                    value = Some(index as i64 % 5);
                    write(index as i64 % 5)
                }
                1 => read(value),
                _ => {
                    let from = value.unwrap_or(0);
                    value = Some(from + 1);
                    cas(from, from + 1)
                }
            };
            history.push(op(index, call, invoke, invoke + 35, Ok));
        }
        let started = std::time::Instant::now();
        let verdict = check(&history);
        assert!(matches!(verdict, KeyVerdict::Linearizable { .. }), "{verdict:#?}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
    }

    /// The definition, by brute force: some order of the `ok` operations plus any subset of the
    /// indeterminate writes and CASes, respecting real time, that the register model accepts.
    fn brute_force_linearizable(history: &[RegisterOp]) -> bool {
        let ops: Vec<&RegisterOp> = history
            .iter()
            .filter(|op| match op.outcome {
                Outcome::Ok => true,
                Outcome::Fail => false,
                Outcome::Info => !matches!(op.call, RegisterCall::Read { .. }),
            })
            .collect();
        fn search(ops: &[&RegisterOp], done: &mut Vec<bool>, state: RegisterState) -> bool {
            let required_left = ops
                .iter()
                .zip(done.iter())
                .any(|(op, done)| !done && op.outcome == Outcome::Ok);
            if !required_left {
                return true;
            }
            for next in 0..ops.len() {
                if done[next] {
                    continue;
                }
                // A required operation that returned before `next` was invoked must come first.
                let blocked = ops.iter().zip(done.iter()).any(|(other, other_done)| {
                    !other_done && other.outcome == Outcome::Ok && other.complete_ns < ops[next].invoke_ns
                });
                if blocked {
                    continue;
                }
                if let Some(after) = step(state, &ops[next].call) {
                    done[next] = true;
                    let found = search(ops, done, after);
                    done[next] = false;
                    if found {
                        return true;
                    }
                }
            }
            false
        }
        search(&ops, &mut vec![false; ops.len()], None)
    }

    #[test]
    fn the_search_agrees_with_brute_force_on_random_small_histories() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        let (mut linearizable, mut not) = (0, 0);
        for _ in 0..3000 {
            let count = rng.gen_range(1..=6);
            let history: Vec<RegisterOp> = (0..count)
                .map(|index| {
                    let invoke = rng.gen_range(0..20);
                    let complete = invoke + rng.gen_range(0..8);
                    let call = match rng.gen_range(0..3) {
                        0 => read([None, Some(0), Some(1), Some(2)][rng.gen_range(0..4)]),
                        1 => write(rng.gen_range(0..3)),
                        _ => cas(rng.gen_range(0..3), rng.gen_range(0..3)),
                    };
                    let outcome = match rng.gen_range(0..10) {
                        0 | 1 => Outcome::Info,
                        2 => Outcome::Fail,
                        _ => Outcome::Ok,
                    };
                    op(index, call, invoke, complete, outcome)
                })
                .collect();
            let expected = brute_force_linearizable(&history);
            let verdict = check_register_history(&history, SearchLimits::default());
            assert!(verdict.unknown_keys.is_empty());
            assert_eq!(verdict.valid, expected, "{history:#?}");
            if expected {
                linearizable += 1;
            } else {
                not += 1;
            }
        }
        // Both answers must actually occur for the comparison to mean anything.
        assert!(
            linearizable > 300 && not > 300,
            "{linearizable} linearizable, {not} not"
        );
    }
}
