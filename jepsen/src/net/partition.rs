//! Partition shapes (after Jepsen's nemesis grudges): which hosts each host stops hearing from.

use std::collections::{BTreeMap, BTreeSet};

use rand::seq::SliceRandom;
use rand::Rng;
use serde::Serialize;

/// For each host (by index), the hosts whose packets it drops, both incoming and outgoing.
pub type Grudge = BTreeMap<usize, BTreeSet<usize>>;

/// The partition shapes the nemesis picks from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionKind {
    /// Two random halves (for an odd count, a majority and a minority).
    RandomHalves,
    /// One random host cut off from all others.
    IsolateOne,
    /// Two halves and one host that still talks to both (Jepsen's bridge).
    Bridge,
    /// Every host sees a majority, but a different one (needs at least 5 hosts).
    MajoritiesRing,
}

impl PartitionKind {
    pub const ALL: [PartitionKind; 4] = [
        PartitionKind::RandomHalves,
        PartitionKind::IsolateOne,
        PartitionKind::Bridge,
        PartitionKind::MajoritiesRing,
    ];

    /// Whether the shape exists for `hosts` hosts.
    pub fn applies_to(self, hosts: usize) -> bool {
        match self {
            PartitionKind::RandomHalves | PartitionKind::IsolateOne => hosts >= 2,
            PartitionKind::Bridge => hosts >= 3,
            PartitionKind::MajoritiesRing => hosts >= 5,
        }
    }

    pub fn grudge(self, hosts: usize, rng: &mut impl Rng) -> Grudge {
        let mut order: Vec<usize> = (0..hosts).collect();
        order.shuffle(rng);
        match self {
            PartitionKind::RandomHalves => {
                let (minority, majority) = order.split_at(hosts / 2);
                complete(&[minority.to_vec(), majority.to_vec()])
            }
            PartitionKind::IsolateOne => isolate(hosts, order[0]),
            PartitionKind::Bridge => bridge(&order),
            PartitionKind::MajoritiesRing => majorities_ring(&order),
        }
    }
}

/// Hosts in different components drop each other's packets.
pub fn complete(components: &[Vec<usize>]) -> Grudge {
    let mut grudge = Grudge::new();
    for (index, component) in components.iter().enumerate() {
        let others: BTreeSet<usize> = components
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != index)
            .flat_map(|(_, hosts)| hosts.iter().copied())
            .collect();
        for host in component {
            grudge.insert(*host, others.clone());
        }
    }
    grudge
}

/// `host` cut off from every other host.
pub fn isolate(hosts: usize, host: usize) -> Grudge {
    let others: Vec<usize> = (0..hosts).filter(|other| *other != host).collect();
    complete(&[vec![host], others])
}

/// The hosts in `order` split in two halves around the middle host, which keeps talking to both.
pub fn bridge(order: &[usize]) -> Grudge {
    let middle = order.len() / 2;
    let left = order[..middle].to_vec();
    let right = order[middle + 1..].to_vec();
    let mut grudge = Grudge::new();
    for host in &left {
        grudge.insert(*host, right.iter().copied().collect());
    }
    for host in &right {
        grudge.insert(*host, left.iter().copied().collect());
    }
    grudge
}

/// Hosts placed on a ring in `order`; each keeps talking to its nearest neighbours so that it sees a
/// majority (itself included) and nobody sees everyone.
pub fn majorities_ring(order: &[usize]) -> Grudge {
    let count = order.len();
    let reach = count / 2 / 2 + (count / 2) % 2;
    let mut grudge = Grudge::new();
    for (position, host) in order.iter().enumerate() {
        let dropped = order
            .iter()
            .enumerate()
            .filter(|(other_position, _)| {
                let distance = position.abs_diff(*other_position);
                let ring_distance = distance.min(count - distance);
                ring_distance > reach
            })
            .map(|(_, other)| *other)
            .collect();
        grudge.insert(*host, dropped);
    }
    grudge
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen_by(grudge: &Grudge, host: usize, hosts: usize) -> BTreeSet<usize> {
        (0..hosts)
            .filter(|other| !grudge.get(&host).is_some_and(|dropped| dropped.contains(other)))
            .collect()
    }

    fn assert_symmetric(grudge: &Grudge) {
        for (host, dropped) in grudge {
            for other in dropped {
                assert!(
                    grudge[other].contains(host),
                    "{host} drops {other} but not the reverse: {grudge:?}"
                );
            }
        }
    }

    #[test]
    fn shapes_cut_the_links_they_promise() {
        let mut rng = rand::thread_rng();
        for _ in 0..20 {
            let halves = PartitionKind::RandomHalves.grudge(5, &mut rng);
            assert_symmetric(&halves);
            let mut sizes: Vec<usize> = (0..5).map(|host| seen_by(&halves, host, 5).len()).collect();
            sizes.sort();
            assert_eq!(sizes, vec![2, 2, 3, 3, 3]);

            let isolated = PartitionKind::IsolateOne.grudge(3, &mut rng);
            assert_symmetric(&isolated);
            assert_eq!((0..3).filter(|host| seen_by(&isolated, *host, 3).len() == 1).count(), 1);

            let bridged = PartitionKind::Bridge.grudge(5, &mut rng);
            assert_symmetric(&bridged);
            let sizes: Vec<usize> = (0..5).map(|host| seen_by(&bridged, host, 5).len()).collect();
            assert_eq!(sizes.iter().filter(|size| **size == 5).count(), 1, "{bridged:?}");
            assert_eq!(sizes.iter().filter(|size| **size == 3).count(), 4, "{bridged:?}");

            let ring = PartitionKind::MajoritiesRing.grudge(5, &mut rng);
            assert_symmetric(&ring);
            for host in 0..5 {
                assert_eq!(seen_by(&ring, host, 5).len(), 3, "{ring:?}");
            }
        }
        assert!(!PartitionKind::MajoritiesRing.applies_to(3));
        assert!(PartitionKind::Bridge.applies_to(3));
    }
}
