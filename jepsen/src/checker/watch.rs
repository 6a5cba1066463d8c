//! The watch checker: every watcher saw every committed event of its window, in revision order, once.
//!
//! A watcher covers a window of revisions: from the revision it asked to start at to the last revision
//! it must have seen (the store's revision when it was told to stop after a final write it had to
//! observe). The committed events are everything known to have happened: acknowledged writes with
//! the revision the store gave them, plus every event any watcher reported (a watcher can report only
//! what the store committed).

use std::collections::BTreeSet;

use serde::Serialize;

/// One change as a watcher reports it; a transaction touching several keys yields several events with
/// one revision.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct WatchEvent {
    pub revision: i64,
    pub key: String,
}

#[derive(Debug, Clone)]
pub struct WatcherLog {
    pub watcher: usize,
    /// The first revision the watcher asked for.
    pub start_revision: i64,
    /// The last revision it must have seen.
    pub end_revision: i64,
    /// What it reported, in arrival order.
    pub events: Vec<WatchEvent>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WatcherProblems {
    pub watcher: usize,
    /// Events arriving after an event of a higher revision.
    pub out_of_order: Vec<WatchEvent>,
    /// Events reported more than once.
    pub duplicates: Vec<WatchEvent>,
    /// Committed events of the window the watcher never reported.
    pub missing: Vec<WatchEvent>,
    /// Events outside the window the watcher asked for.
    pub outside_window: Vec<WatchEvent>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WatchVerdict {
    pub valid: bool,
    pub watchers: usize,
    pub committed_events: usize,
    pub problems: Vec<WatcherProblems>,
}

/// How many events of each kind a report lists per watcher.
const REPORTED_EVENTS: usize = 20;

pub fn check_watch(watchers: &[WatcherLog], acknowledged: &[WatchEvent]) -> WatchVerdict {
    let mut committed: BTreeSet<WatchEvent> = acknowledged.iter().cloned().collect();
    for watcher in watchers {
        committed.extend(watcher.events.iter().cloned());
    }
    let mut problems = Vec::new();
    for watcher in watchers {
        let mut seen: BTreeSet<&WatchEvent> = BTreeSet::new();
        let mut highest_revision = i64::MIN;
        let mut found = WatcherProblems {
            watcher: watcher.watcher,
            out_of_order: Vec::new(),
            duplicates: Vec::new(),
            missing: Vec::new(),
            outside_window: Vec::new(),
        };
        for event in &watcher.events {
            if event.revision < highest_revision {
                found.out_of_order.push(event.clone());
            }
            highest_revision = highest_revision.max(event.revision);
            if !seen.insert(event) {
                found.duplicates.push(event.clone());
            }
            if event.revision < watcher.start_revision {
                found.outside_window.push(event.clone());
            }
        }
        found.missing = committed
            .iter()
            .filter(|event| (watcher.start_revision..=watcher.end_revision).contains(&event.revision))
            .filter(|event| !seen.contains(event))
            .cloned()
            .collect();
        let clean = found.out_of_order.is_empty()
            && found.duplicates.is_empty()
            && found.missing.is_empty()
            && found.outside_window.is_empty();
        if !clean {
            found.out_of_order.truncate(REPORTED_EVENTS);
            found.duplicates.truncate(REPORTED_EVENTS);
            found.missing.truncate(REPORTED_EVENTS);
            found.outside_window.truncate(REPORTED_EVENTS);
            problems.push(found);
        }
    }
    WatchVerdict {
        valid: problems.is_empty(),
        watchers: watchers.len(),
        committed_events: committed.len(),
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(revisions: &[i64]) -> Vec<WatchEvent> {
        revisions
            .iter()
            .map(|revision| WatchEvent {
                revision: *revision,
                key: format!("k{}", revision % 3),
            })
            .collect()
    }

    fn watcher(watcher: usize, start: i64, end: i64, seen: &[i64]) -> WatcherLog {
        WatcherLog {
            watcher,
            start_revision: start,
            end_revision: end,
            events: events(seen),
        }
    }

    #[test]
    fn complete_ordered_watchers_pass() {
        let acknowledged = events(&[2, 3, 4, 5]);
        let verdict = check_watch(
            &[watcher(0, 2, 5, &[2, 3, 4, 5]), watcher(1, 4, 5, &[4, 5])],
            &acknowledged,
        );
        assert!(verdict.valid, "{verdict:?}");
        assert_eq!(verdict.committed_events, 4);
    }

    #[test]
    fn gaps_duplicates_and_reordering_are_each_reported() {
        let acknowledged = events(&[2, 3, 4, 5]);
        let verdict = check_watch(
            &[
                watcher(0, 2, 5, &[2, 3, 4, 5]),
                watcher(1, 2, 5, &[2, 4, 5]),
                watcher(2, 2, 5, &[2, 3, 3, 4, 5]),
                watcher(3, 2, 5, &[2, 4, 3, 5]),
                watcher(4, 3, 5, &[1, 3, 4, 5]),
            ],
            &acknowledged,
        );
        assert!(!verdict.valid);
        let by_watcher = |id: usize| verdict.problems.iter().find(|p| p.watcher == id).cloned();
        assert!(by_watcher(0).is_none());
        assert_eq!(by_watcher(1).expect("watcher 1 has a gap").missing, events(&[3]));
        assert_eq!(
            by_watcher(2).expect("watcher 2 has a duplicate").duplicates,
            events(&[3])
        );
        assert_eq!(
            by_watcher(3).expect("watcher 3 is out of order").out_of_order,
            events(&[3])
        );
        let early = by_watcher(4).expect("watcher 4 saw an event before its start");
        assert_eq!(early.outside_window, events(&[1]));
        assert!(early.out_of_order.is_empty() && early.missing.is_empty());
    }

    #[test]
    fn an_event_seen_by_one_watcher_only_is_required_of_the_others() {
        // Revision 6 was not acknowledged to any client (indeterminate write) but watcher 0 saw it.
        let verdict = check_watch(&[watcher(0, 2, 6, &[2, 6]), watcher(1, 2, 6, &[2])], &events(&[2]));
        assert_eq!(verdict.problems.len(), 1);
        assert_eq!(verdict.problems[0].watcher, 1);
        assert_eq!(verdict.problems[0].missing, events(&[6]));
    }
}
