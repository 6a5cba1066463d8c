//! The set checker: every acknowledged add must be present in the final read.
//!
//! Adds that failed must be absent; indeterminate adds may go either way (those present are reported as
//! recovered). Elements read that were never added are unexpected.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::history::Outcome;

/// One attempted add and what the client learnt of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetAdd {
    pub element: i64,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetVerdict {
    pub valid: bool,
    pub attempted: usize,
    pub acknowledged: usize,
    /// Acknowledged adds missing from the final read.
    pub lost: Vec<i64>,
    /// Elements read that were never added, or whose add certainly failed.
    pub unexpected: Vec<i64>,
    /// Indeterminate adds that turned out to have taken effect.
    pub recovered: Vec<i64>,
}

pub fn check_set(adds: &[SetAdd], final_read: &BTreeSet<i64>) -> SetVerdict {
    // The strongest outcome wins when an element was added more than once.
    let mut outcome_of: BTreeMap<i64, Outcome> = BTreeMap::new();
    for add in adds {
        let rank = |outcome: Outcome| match outcome {
            Outcome::Ok => 2,
            Outcome::Info => 1,
            Outcome::Fail => 0,
        };
        outcome_of
            .entry(add.element)
            .and_modify(|known| {
                if rank(add.outcome) > rank(*known) {
                    *known = add.outcome;
                }
            })
            .or_insert(add.outcome);
    }
    let lost: Vec<i64> = outcome_of
        .iter()
        .filter(|(element, outcome)| **outcome == Outcome::Ok && !final_read.contains(element))
        .map(|(element, _)| *element)
        .collect();
    let unexpected: Vec<i64> = final_read
        .iter()
        .filter(|element| matches!(outcome_of.get(element), None | Some(Outcome::Fail)))
        .copied()
        .collect();
    let recovered: Vec<i64> = outcome_of
        .iter()
        .filter(|(element, outcome)| **outcome == Outcome::Info && final_read.contains(element))
        .map(|(element, _)| *element)
        .collect();
    SetVerdict {
        valid: lost.is_empty() && unexpected.is_empty(),
        attempted: outcome_of.len(),
        acknowledged: outcome_of.values().filter(|outcome| **outcome == Outcome::Ok).count(),
        lost,
        unexpected,
        recovered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(element: i64, outcome: Outcome) -> SetAdd {
        SetAdd { element, outcome }
    }

    fn check(adds: &[SetAdd], read: &[i64], lost: &[i64], unexpected: &[i64], recovered: &[i64]) {
        let verdict = check_set(adds, &read.iter().copied().collect());
        assert_eq!(verdict.lost, lost, "{verdict:?}");
        assert_eq!(verdict.unexpected, unexpected, "{verdict:?}");
        assert_eq!(verdict.recovered, recovered, "{verdict:?}");
        assert_eq!(verdict.valid, lost.is_empty() && unexpected.is_empty());
    }

    #[test]
    fn acknowledged_adds_must_survive_and_nothing_else_may_appear() {
        use Outcome::{Fail, Info, Ok};
        let adds = [add(1, Ok), add(2, Ok), add(3, Info), add(4, Info), add(5, Fail)];
        check(&adds, &[1, 2], &[], &[], &[]);
        check(&adds, &[1, 2, 3], &[], &[], &[3]);
        check(&adds, &[1, 3], &[2], &[], &[3]);
        check(&adds, &[1, 2, 5, 9], &[], &[5, 9], &[]);
        check(&adds, &[], &[1, 2], &[], &[]);
        // Retried adds: one acknowledgement is enough to require the element.
        check(&[add(7, Info), add(7, Ok), add(7, Fail)], &[], &[7], &[], &[]);
        let verdict = check_set(&adds, &BTreeSet::from([1, 2]));
        assert_eq!((verdict.attempted, verdict.acknowledged), (5, 2));
    }
}
