//! The balancer's state machine, kept free of I/O and time so that it can be tested by feeding
//! it check results.
//!
//! k3s's client-side balancer ranks servers `ACTIVE > PREFERRED > HEALTHY > RECOVERING >
//! UNCHECKED > STANDBY > FAILED`. Here ACTIVE and PREFERRED are one state, [`EndpointState::Preferred`]: k3s
//! tells apart the server it dials (active) and the one it would like to dial (preferred) because
//! it balances raw TCP dials; a request-level balancer dials the preferred server directly, and
//! how many connections it holds is reported beside the state. STANDBY (k3s's fallback to the
//! server address given at start) has no counterpart: every imported URL is a full member.
//!
//! Rules:
//! - a passing check moves UNCHECKED to HEALTHY, FAILED to RECOVERING, and RECOVERING to HEALTHY
//!   after `recover_after` consecutive passes (hysteresis: a flapping server does not come back
//!   into use at its first good answer);
//! - `fail_after` consecutive failed checks, or one failed connect on the request path, make a
//!   server FAILED; the caller must then close every connection to it ([`Transition::Failed`]);
//! - one server is PREFERRED. It stays preferred while it is not failed (no flip-flopping back to
//!   the first URL); when it fails, the best other server by rank (then by configured order)
//!   takes over: HEALTHY first, else RECOVERING or UNCHECKED. FAILED servers are never preferred
//!   but are still tried, last, since a health check may fail falsely under load.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndpointState {
    Preferred,
    Healthy,
    Recovering,
    Unchecked,
    Failed,
}

impl EndpointState {
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointState::Preferred => "preferred",
            EndpointState::Healthy => "healthy",
            EndpointState::Recovering => "recovering",
            EndpointState::Unchecked => "unchecked",
            EndpointState::Failed => "failed",
        }
    }

    /// The metric value: higher is better (failed 0 … preferred 4).
    pub fn metric_value(self) -> i64 {
        match self {
            EndpointState::Failed => 0,
            EndpointState::Unchecked => 1,
            EndpointState::Recovering => 2,
            EndpointState::Healthy => 3,
            EndpointState::Preferred => 4,
        }
    }
}

/// What happened to one endpoint that the caller must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// The endpoint became FAILED: close every connection to it.
    Failed { index: usize },
    /// Another endpoint is preferred now (`None`: every endpoint failed).
    PreferredChanged { from: Option<usize>, to: Option<usize> },
    /// The endpoint passed enough checks to be used again.
    Recovered { index: usize },
}

/// The health of one endpoint as the state machine sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointHealth {
    /// Not `Preferred`: preference is kept in [`EndpointStates::preferred`].
    base: EndpointState,
    pub consecutive_passes: u32,
    pub consecutive_failures: u32,
}

#[derive(Debug, Clone)]
pub struct EndpointStates {
    endpoints: Vec<EndpointHealth>,
    preferred: Option<usize>,
    recover_after: u32,
    fail_after: u32,
}

impl EndpointStates {
    /// `count` endpoints, all UNCHECKED; the first is preferred until checks say otherwise.
    pub fn new(count: usize, recover_after: u32, fail_after: u32) -> EndpointStates {
        EndpointStates {
            endpoints: vec![
                EndpointHealth {
                    base: EndpointState::Unchecked,
                    consecutive_passes: 0,
                    consecutive_failures: 0,
                };
                count
            ],
            preferred: (count > 0).then_some(0),
            recover_after: recover_after.max(1),
            fail_after: fail_after.max(1),
        }
    }

    pub fn state(&self, index: usize) -> EndpointState {
        if self.preferred == Some(index) {
            EndpointState::Preferred
        } else {
            self.endpoints[index].base
        }
    }

    pub fn health(&self, index: usize) -> &EndpointHealth {
        &self.endpoints[index]
    }

    #[cfg(test)]
    pub fn preferred(&self) -> Option<usize> {
        self.preferred
    }

    /// The order in which a request tries the endpoints: the preferred one, then by rank, failed
    /// ones last; ties keep the configured order.
    pub fn try_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.endpoints.len()).collect();
        order.sort_by_key(|index| (self.state(*index), *index));
        order
    }

    /// Feeds the result of one health check of `index`.
    pub fn record_check(&mut self, index: usize, passed: bool) -> Vec<Transition> {
        let mut transitions = Vec::new();
        let endpoint = &mut self.endpoints[index];
        if passed {
            endpoint.consecutive_failures = 0;
            endpoint.consecutive_passes = endpoint.consecutive_passes.saturating_add(1);
            match endpoint.base {
                EndpointState::Unchecked => endpoint.base = EndpointState::Healthy,
                EndpointState::Failed | EndpointState::Recovering => {
                    if endpoint.consecutive_passes >= self.recover_after {
                        endpoint.base = EndpointState::Healthy;
                        transitions.push(Transition::Recovered { index });
                    } else {
                        endpoint.base = EndpointState::Recovering;
                    }
                }
                EndpointState::Healthy | EndpointState::Preferred => {}
            }
        } else {
            endpoint.consecutive_passes = 0;
            endpoint.consecutive_failures = endpoint.consecutive_failures.saturating_add(1);
            if endpoint.base != EndpointState::Failed && endpoint.consecutive_failures >= self.fail_after {
                endpoint.base = EndpointState::Failed;
                transitions.push(Transition::Failed { index });
            } else if endpoint.base == EndpointState::Recovering {
                // A recovering server that fails again starts its probation over.
                endpoint.base = EndpointState::Failed;
            }
        }
        transitions.extend(self.reelect());
        transitions
    }

    /// A request could not even connect to `index`: it is FAILED at once (a refused or timed-out
    /// connect is not a false alarm of an overloaded health endpoint).
    pub fn record_connect_failure(&mut self, index: usize) -> Vec<Transition> {
        let mut transitions = Vec::new();
        let endpoint = &mut self.endpoints[index];
        endpoint.consecutive_passes = 0;
        endpoint.consecutive_failures = endpoint.consecutive_failures.saturating_add(1);
        if endpoint.base != EndpointState::Failed {
            endpoint.base = EndpointState::Failed;
            transitions.push(Transition::Failed { index });
        }
        transitions.extend(self.reelect());
        transitions
    }

    /// Keeps the preferred endpoint unless it failed (or none is preferred and one can be).
    fn reelect(&mut self) -> Option<Transition> {
        if let Some(current) = self.preferred {
            if self.endpoints[current].base != EndpointState::Failed {
                return None;
            }
        }
        let best = (0..self.endpoints.len())
            .filter(|index| self.endpoints[*index].base != EndpointState::Failed)
            .min_by_key(|index| (self.endpoints[*index].base, *index));
        if best == self.preferred {
            return None;
        }
        let from = self.preferred;
        self.preferred = best;
        Some(Transition::PreferredChanged { from, to: best })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EndpointState::*;

    fn states(machine: &EndpointStates) -> Vec<EndpointState> {
        (0..machine.endpoints.len()).map(|index| machine.state(index)).collect()
    }

    /// Feeds `(endpoint, passed)` checks and compares the states after each step.
    fn check(steps: &[((usize, bool), &[EndpointState])]) {
        let mut machine = EndpointStates::new(3, 3, 1);
        for (step, ((index, passed), expected)) in steps.iter().enumerate() {
            machine.record_check(*index, *passed);
            assert_eq!(
                states(&machine),
                *expected,
                "after step {step}: check {index} passed={passed}"
            );
        }
    }

    #[test]
    fn starts_unchecked_with_the_first_preferred() {
        let machine = EndpointStates::new(3, 3, 1);
        assert_eq!(states(&machine), vec![Preferred, Unchecked, Unchecked]);
        assert_eq!(machine.try_order(), vec![0, 1, 2]);
    }

    #[test]
    fn failover_and_recovery_with_hysteresis() {
        check(&[
            ((0, true), &[Preferred, Unchecked, Unchecked]),
            ((1, true), &[Preferred, Healthy, Unchecked]),
            ((2, true), &[Preferred, Healthy, Healthy]),
            // The preferred server fails: the next healthy one takes over.
            ((0, false), &[Failed, Preferred, Healthy]),
            // It comes back but must pass three checks before it is healthy, and it does not take
            // the preference back.
            ((0, true), &[Recovering, Preferred, Healthy]),
            ((0, true), &[Recovering, Preferred, Healthy]),
            ((0, false), &[Failed, Preferred, Healthy]),
            ((0, true), &[Recovering, Preferred, Healthy]),
            ((0, true), &[Recovering, Preferred, Healthy]),
            ((0, true), &[Healthy, Preferred, Healthy]),
            // Both others fail: the recovered first one is preferred again.
            ((1, false), &[Preferred, Failed, Healthy]),
            ((2, false), &[Preferred, Failed, Failed]),
        ]);
    }

    #[test]
    fn failed_servers_are_tried_last_and_never_preferred() {
        let mut machine = EndpointStates::new(3, 2, 1);
        let transitions = machine.record_connect_failure(0);
        assert_eq!(
            transitions,
            vec![
                Transition::Failed { index: 0 },
                Transition::PreferredChanged {
                    from: Some(0),
                    to: Some(1)
                }
            ]
        );
        assert_eq!(machine.try_order(), vec![1, 2, 0]);
        machine.record_check(1, false);
        machine.record_check(2, false);
        assert_eq!(machine.preferred(), None);
        assert_eq!(machine.try_order(), vec![0, 1, 2], "all failed: all still tried");
        // A recovering server is preferred over failed ones before it is fully healthy.
        let transitions = machine.record_check(2, true);
        assert_eq!(
            transitions,
            vec![Transition::PreferredChanged {
                from: None,
                to: Some(2)
            }]
        );
        assert_eq!(states(&machine), vec![Failed, Failed, Preferred]);
        let transitions = machine.record_check(2, true);
        assert_eq!(transitions, vec![Transition::Recovered { index: 2 }]);
    }

    #[test]
    fn fail_after_counts_consecutive_failures() {
        let mut machine = EndpointStates::new(2, 1, 2);
        machine.record_check(0, true);
        assert!(machine.record_check(0, false).is_empty(), "one failure is tolerated");
        machine.record_check(0, true);
        assert!(machine.record_check(0, false).is_empty(), "the count restarted");
        assert_eq!(
            machine.record_check(0, false),
            vec![
                Transition::Failed { index: 0 },
                Transition::PreferredChanged {
                    from: Some(0),
                    to: Some(1)
                }
            ]
        );
    }
}
