//! Login throttling kept in the store, so that spreading attempts over replicas does not help.
//!
//! Each login attempt bumps two counters, `throttle/user/<name>` and `throttle/ip/<address>`,
//! before its password is checked; a correct password gives the attempt back, so the counters
//! hold failures (and attempts still being verified). A counter is created attached to a store
//! lease of the window's length, so it vanishes (and the count starts again) one window after its
//! first attempt. While a counter is at its limit, logins for that user or from that address are
//! refused before the password is checked.

use kuboard_storage::{PutRequest, StoreError};
use serde::{Deserialize, Serialize};

use crate::app_store::{AppStore, KeyExpectation};

pub const THROTTLE_PREFIX: &str = "throttle/";
/// Concurrent attempts race on one counter; each retry reads it again. Bounded: an attempt that
/// loses this many races in a row is refused (and a refund is lost, leaving the count high).
const MAX_INCREMENT_ATTEMPTS: usize = 16;

/// The limits, from the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleLimits {
    pub window_seconds: u64,
    pub max_failures_per_user: u64,
    pub max_failures_per_address: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureCounter {
    pub failures: u64,
    /// When the first failure of this window happened (seconds since the Unix epoch).
    pub window_start: u64,
}

/// Which counter a login touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThrottleSubject {
    User(String),
    Address(String),
}

impl ThrottleSubject {
    pub fn key(&self) -> String {
        match self {
            ThrottleSubject::User(name) => format!("{THROTTLE_PREFIX}user/{name}"),
            ThrottleSubject::Address(address) => format!("{THROTTLE_PREFIX}ip/{address}"),
        }
    }

    fn limit(&self, limits: &ThrottleLimits) -> u64 {
        match self {
            ThrottleSubject::User(_) => limits.max_failures_per_user,
            ThrottleSubject::Address(_) => limits.max_failures_per_address,
        }
    }
}

/// Whether a login may be tried, from [`reserve_attempt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Counted: the password may be verified.
    Allowed,
    /// The window's count is at the limit; try again in this many seconds.
    Refused { retry_after: u64 },
}

/// Counts one login attempt of `subject` before its password is verified, and refuses it when
/// the window's count has already reached the limit.
///
/// The count is raised by compare-and-swap, so of any number of parallel attempts at most the
/// limit are allowed: checking first and counting after the (slow) verification would let all
/// of them through. A correct password gives the attempt back ([`reset`] for the user,
/// [`refund_attempt`] for the address). When the counter stays contended past the retry bound
/// the attempt is refused (for a second) rather than let through uncounted.
pub async fn reserve_attempt(
    store: &AppStore,
    subject: &ThrottleSubject,
    limits: &ThrottleLimits,
    now: u64,
) -> Result<Attempt, StoreError> {
    let key = subject.key();
    let limit = subject.limit(limits);
    for _ in 0..MAX_INCREMENT_ATTEMPTS {
        let existing = store.get(&key).await?;
        let expected = KeyExpectation::from_read(existing.as_ref());
        let live = existing.as_ref().and_then(|kv| {
            serde_json::from_slice::<FailureCounter>(&kv.value)
                .ok()
                .filter(|counter| counter.window_start.saturating_add(limits.window_seconds) > now)
                .map(|counter| (kv.lease, counter))
        });
        let (counter, lease) = match live {
            Some((_, counter)) if counter.failures >= limit => {
                let window_end = counter.window_start.saturating_add(limits.window_seconds);
                return Ok(Attempt::Refused {
                    retry_after: (window_end - now).max(1),
                });
            }
            Some((lease, counter)) => (
                FailureCounter {
                    failures: counter.failures + 1,
                    window_start: counter.window_start,
                },
                lease,
            ),
            // No counter, or one whose window is over (its lease not yet expired): start afresh.
            None => {
                let ttl = i64::try_from(limits.window_seconds).unwrap_or(i64::MAX);
                let lease = store.lease_grant(ttl).await?.id;
                (
                    FailureCounter {
                        failures: 1,
                        window_start: now,
                    },
                    lease,
                )
            }
        };
        let value = serde_json::to_vec(&counter).expect("a counter always serializes");
        let put = PutRequest {
            lease,
            ..PutRequest::new(key.clone(), value)
        };
        match store.put_if(expected, put).await {
            Ok(true) => return Ok(Attempt::Allowed),
            Ok(false) => continue,
            // The counter's lease expired between the read and the write: read again.
            Err(StoreError::LeaseNotFound(_)) => continue,
            Err(error) => return Err(error),
        }
    }
    tracing::warn!(key = %key, "a login attempt counter stayed contended; the attempt is refused");
    Ok(Attempt::Refused { retry_after: 1 })
}

/// Gives back one attempt counted by [`reserve_attempt`] (a correct password, or an attempt
/// that was not tried after all). Best effort: a refund lost to contention leaves the count one
/// too high, never too low.
pub async fn refund_attempt(
    store: &AppStore,
    subject: &ThrottleSubject,
    limits: &ThrottleLimits,
    now: u64,
) -> Result<(), StoreError> {
    let key = subject.key();
    for _ in 0..MAX_INCREMENT_ATTEMPTS {
        let Some(kv) = store.get(&key).await? else {
            return Ok(());
        };
        let Ok(counter) = serde_json::from_slice::<FailureCounter>(&kv.value) else {
            return Ok(());
        };
        if counter.failures == 0 || counter.window_start.saturating_add(limits.window_seconds) <= now {
            return Ok(());
        }
        let value = serde_json::to_vec(&FailureCounter {
            failures: counter.failures - 1,
            window_start: counter.window_start,
        })
        .expect("a counter always serializes");
        let put = PutRequest {
            lease: kv.lease,
            ..PutRequest::new(key.clone(), value)
        };
        match store.put_if(KeyExpectation::from_read(Some(&kv)), put).await {
            Ok(true) => return Ok(()),
            Ok(false) | Err(StoreError::LeaseNotFound(_)) => continue,
            Err(error) => return Err(error),
        }
    }
    tracing::warn!(key = %key, "a login attempt counter stayed contended; an attempt was not given back");
    Ok(())
}

/// Forgets the failures of `subject` (after a successful login of that user).
pub async fn reset(store: &AppStore, subject: &ThrottleSubject) -> Result<(), StoreError> {
    store.delete_key(&subject.key()).await?;
    Ok(())
}

/// Deletes counters whose window is over but whose key is still there (its lease not yet expired
/// or lost). Returns how many. Run by one replica at a time (see `singleton`).
pub async fn purge_stale_counters(store: &AppStore, window_seconds: u64, now: u64) -> Result<usize, StoreError> {
    let mut purged = 0;
    for kv in store.list(THROTTLE_PREFIX).await? {
        let stale = match serde_json::from_slice::<FailureCounter>(&kv.value) {
            Ok(counter) => counter.window_start.saturating_add(window_seconds) <= now,
            Err(_) => true,
        };
        if stale {
            let key = String::from_utf8_lossy(&kv.key).into_owned();
            if store.delete_if_unchanged(&key, kv.mod_revision).await? {
                purged += 1;
            }
        }
    }
    Ok(purged)
}
