//! Workload (e): strict audit. The members run with `KUBOARD_AUDIT_POLICY=strict` and a PostgreSQL
//! audit database (which the `audit-db` fault kills and restarts). Clients create users through the
//! round-robin balancer, each request with a `User-Agent` of its own, so that its audit event can be
//! found. At the end, with everything healed: every acknowledged creation has an event; a creation
//! refused with 503 `audit_unavailable` did not happen; every user of the workload that exists has an
//! event (an indeterminate creation that took effect too).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde::Serialize;
use serde_json::json;
use tokio::task::JoinSet;

use super::http::{complete, final_user_list, log_in, take_history, Balancer, HttpOutcome};
use super::{Progress, Recorder, ERROR_BACKOFF, FINAL_READ_WITHIN};
use crate::history::{Op, Outcome};

/// The `User-Agent` prefix of the workload's requests; the rest names the request.
pub const AGENT_PREFIX: &str = "kuboard-jepsen-audit/";
/// The prefix of the users the workload creates.
const USER_PREFIX: &str = "jepsen-a";

#[derive(Debug, Clone)]
pub struct AuditOptions {
    pub clients: usize,
    pub op_timeout: Duration,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            clients: 2,
            op_timeout: Duration::from_millis(3000),
        }
    }
}

/// The workload's history and the final list of users; the audit events are read by the run (which
/// owns the cluster and its database) and given to [`AuditOutcome::verdict`].
#[derive(Debug, Clone)]
pub struct AuditOutcome {
    /// `login`, `change-password`, `create-user` (value: the request's user agent), `final-list`.
    pub history: Vec<Op>,
    pub final_users: Option<BTreeSet<String>>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditVerdict {
    pub valid: bool,
    pub creates_attempted: usize,
    pub creates_acknowledged: usize,
    /// Refused with 503 `audit_unavailable` (the audit database was down).
    pub creates_refused_audit_unavailable: usize,
    pub creates_indeterminate: usize,
    /// Workload requests found in the audit table.
    pub requests_with_events: usize,
    /// Acknowledged creations without an audit event.
    pub acknowledged_without_event: Vec<String>,
    /// Creations refused with `audit_unavailable` whose user exists all the same.
    pub refused_but_done: Vec<String>,
    /// Users of the workload that exist without an audit event for their creation.
    pub present_without_event: Vec<String>,
    pub error: Option<String>,
}

impl AuditOutcome {
    /// Judge the history against `events`: user agent → the decisions of its events (`pending`,
    /// `allow`, …), or the error of the query.
    pub fn verdict(&self, events: Result<BTreeMap<String, Vec<String>>, String>) -> AuditVerdict {
        let creates: Vec<&Op> = self.history.iter().filter(|op| op.f == "create-user").collect();
        let refused = |op: &&&Op| {
            op.error
                .as_deref()
                .is_some_and(|error| error.contains("audit_unavailable"))
        };
        let (events, events_error) = match events {
            Ok(events) => (events, None),
            Err(error) => (BTreeMap::new(), Some(error)),
        };
        let has_event = |op: &Op| op.value.as_deref().is_some_and(|agent| events.contains_key(agent));
        let empty = BTreeSet::new();
        let users = self.final_users.as_ref().unwrap_or(&empty);
        let acknowledged_without_event: Vec<String> = creates
            .iter()
            .filter(|op| op.outcome == Outcome::Ok && !has_event(op))
            .map(|op| op.key.clone())
            .collect();
        let refused_but_done: Vec<String> = creates
            .iter()
            .filter(|op| refused(op) && users.contains(&op.key))
            .map(|op| op.key.clone())
            .collect();
        let present_without_event: Vec<String> = creates
            .iter()
            .filter(|op| users.contains(&op.key) && !has_event(op))
            .map(|op| op.key.clone())
            .collect();
        let error = self.error.clone().or(events_error).or_else(|| {
            self.final_users
                .is_none()
                .then(|| "no member answered the final list of users after healing".to_string())
        });
        AuditVerdict {
            valid: acknowledged_without_event.is_empty()
                && refused_but_done.is_empty()
                && present_without_event.is_empty()
                && error.is_none(),
            creates_attempted: creates.len(),
            creates_acknowledged: creates.iter().filter(|op| op.outcome == Outcome::Ok).count(),
            creates_refused_audit_unavailable: creates.iter().filter(refused).count(),
            creates_indeterminate: creates.iter().filter(|op| op.outcome == Outcome::Info).count(),
            requests_with_events: creates.iter().filter(|op| has_event(op)).count(),
            acknowledged_without_event,
            refused_but_done,
            present_without_event,
            error,
        }
    }
}

/// The SQL that reads the workload's events: user agent and decision.
pub fn events_query() -> String {
    format!("SELECT user_agent, decision FROM kuboard_audit WHERE user_agent LIKE '{AGENT_PREFIX}%'")
}

/// Group the rows of [`events_query`] by user agent.
pub fn events_by_agent(rows: &[Vec<String>]) -> BTreeMap<String, Vec<String>> {
    let mut events: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in rows {
        if let [agent, decision, ..] = row.as_slice() {
            events.entry(agent.clone()).or_default().push(decision.clone());
        }
    }
    events
}

/// Log in once, create users until `deadline`, then list the users after healing.
pub async fn run(
    options: AuditOptions,
    urls: Vec<String>,
    names: Vec<String>,
    started: Instant,
    deadline: Instant,
    progress: Arc<Progress>,
) -> AuditOutcome {
    let recorder = Arc::new(Recorder::new(started, progress));
    let balancer = match Balancer::new(urls, names, options.op_timeout) {
        Ok(balancer) => Arc::new(balancer),
        Err(error) => {
            return AuditOutcome {
                history: Vec::new(),
                final_users: None,
                error: Some(format!("{error:#}")),
            }
        }
    };
    let mut session = HttpOutcome {
        history: Vec::new(),
        logged_in: false,
        password_changed: false,
        session_valid_on: Vec::new(),
        session_invalid_on: Vec::new(),
        final_users: None,
        error: None,
    };
    let token = match log_in(&balancer, &recorder, deadline, &mut session).await {
        Ok(token) => Arc::new(token),
        Err(error) => {
            return AuditOutcome {
                history: take_history(recorder),
                final_users: None,
                error: Some(error),
            }
        }
    };
    let run_tag = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
    let next = Arc::new(AtomicU64::new(0));
    let mut clients = JoinSet::new();
    for worker in 0..options.clients.max(1) {
        let (balancer, recorder, token, next, run_tag) = (
            Arc::clone(&balancer),
            Arc::clone(&recorder),
            Arc::clone(&token),
            Arc::clone(&next),
            run_tag.clone(),
        );
        let clients_count = options.clients.max(1) as u64;
        clients.spawn(async move {
            let mut process = worker as u64;
            // Bounded by the deadline: every iteration takes at most one request timeout.
            while Instant::now() < deadline {
                let number = next.fetch_add(1, Ordering::Relaxed);
                let user = format!("{USER_PREFIX}{run_tag}-{number}");
                let agent = format!("{AGENT_PREFIX}{run_tag}-{number}");
                let pending = recorder.invoke(process, "", "create-user", &user, Some(agent.clone()));
                let password = format!("Jepsen-{:016x}", rand::random::<u64>());
                let body = json!({ "username": user, "password": password });
                let reply = balancer
                    .send_as(
                        Method::POST,
                        "/kuboard-api/users",
                        Some(&token),
                        Some(&body),
                        Some(&agent),
                    )
                    .await;
                let outcome = complete(&balancer, &recorder, pending, reply, false);
                if outcome == Outcome::Info {
                    process += clients_count;
                }
                if outcome != Outcome::Ok {
                    tokio::time::sleep(ERROR_BACKOFF).await;
                }
            }
        });
    }
    while let Some(result) = clients.join_next().await {
        if let Err(error) = result {
            tracing::error!("a strict-audit client panicked: {error}");
        }
    }
    let final_users = final_user_list(&balancer, &recorder, &token, Instant::now() + FINAL_READ_WITHIN).await;
    AuditOutcome {
        history: take_history(recorder),
        final_users,
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(user: &str, outcome: Outcome, error: Option<&str>) -> Op {
        Op {
            index: 0,
            process: 0,
            node: "n1".into(),
            f: "create-user".into(),
            key: user.into(),
            value: Some(format!("{AGENT_PREFIX}{user}")),
            revision: None,
            outcome,
            invoke_ns: 0,
            complete_ns: 1,
            error: error.map(str::to_string),
        }
    }

    #[test]
    fn every_change_that_happened_needs_its_event_and_refused_ones_must_not_happen() {
        let outcome = AuditOutcome {
            history: vec![
                create("a", Outcome::Ok, None),
                create("b", Outcome::Ok, None),
                create("c", Outcome::Fail, Some("503 audit_unavailable")),
                create("d", Outcome::Info, Some("no answer in time")),
                create("e", Outcome::Fail, Some("503 audit_unavailable")),
            ],
            final_users: Some(["a", "b", "d", "e"].into_iter().map(str::to_string).collect()),
            error: None,
        };
        let rows: Vec<Vec<String>> = ["a", "c"]
            .iter()
            .map(|user| vec![format!("{AGENT_PREFIX}{user}"), "pending".to_string()])
            .collect();
        let verdict = outcome.verdict(Ok(events_by_agent(&rows)));
        assert!(!verdict.valid);
        assert_eq!(verdict.acknowledged_without_event, vec!["b"]);
        assert_eq!(verdict.refused_but_done, vec!["e"]);
        assert_eq!(verdict.present_without_event, vec!["b", "d", "e"]);
        assert_eq!(verdict.creates_refused_audit_unavailable, 2);
        assert_eq!(verdict.requests_with_events, 2);

        let clean = AuditOutcome {
            history: vec![
                create("a", Outcome::Ok, None),
                create("c", Outcome::Fail, Some("503 audit_unavailable")),
            ],
            final_users: Some(["a".to_string()].into_iter().collect()),
            error: None,
        };
        assert!(clean.verdict(Ok(events_by_agent(&rows))).valid);
        let unreadable = clean.verdict(Err("the audit database did not answer".into()));
        assert!(!unreadable.valid && unreadable.error.is_some());
    }
}
