//! Login throttling kept in the store, so that spreading attempts over replicas does not help.
//!
//! Each failed login bumps two counters, `throttle/user/<name>` and `throttle/ip/<address>`. A
//! counter is created attached to a store lease of the window's length, so it vanishes (and the
//! count starts again) one window after its first failure. While a counter is at its limit, logins
//! for that user or from that address are refused before the password is checked.

use kuboard_storage::{PutRequest, StoreError};
use serde::{Deserialize, Serialize};

use crate::app_store::{AppStore, KeyExpectation};

pub const THROTTLE_PREFIX: &str = "throttle/";
/// Concurrent failures race on one counter; each retry reads it again. Bounded: a counter lost to
/// this many races in a row is at worst one failure short.
const MAX_INCREMENT_ATTEMPTS: usize = 8;

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

/// Seconds until `subject` may try again, or `None` when it may try now.
pub async fn retry_after(
    store: &AppStore,
    subject: &ThrottleSubject,
    limits: &ThrottleLimits,
    now: u64,
) -> Result<Option<u64>, StoreError> {
    let Some(kv) = store.get(&subject.key()).await? else {
        return Ok(None);
    };
    let Ok(counter) = serde_json::from_slice::<FailureCounter>(&kv.value) else {
        return Ok(None);
    };
    let window_end = counter.window_start.saturating_add(limits.window_seconds);
    if counter.failures < subject.limit(limits) || window_end <= now {
        return Ok(None);
    }
    Ok(Some((window_end - now).max(1)))
}

/// Counts one failure of `subject`; returns the count in the current window.
pub async fn record_failure(
    store: &AppStore,
    subject: &ThrottleSubject,
    limits: &ThrottleLimits,
    now: u64,
) -> Result<u64, StoreError> {
    let key = subject.key();
    for _ in 0..MAX_INCREMENT_ATTEMPTS {
        let existing = store.get(&key).await?;
        let expected = KeyExpectation::from_read(existing.as_ref());
        let (counter, lease) = match existing.as_ref().and_then(|kv| {
            serde_json::from_slice::<FailureCounter>(&kv.value)
                .ok()
                .map(|c| (kv, c))
        }) {
            Some((kv, counter)) if counter.window_start.saturating_add(limits.window_seconds) > now => (
                FailureCounter {
                    failures: counter.failures + 1,
                    window_start: counter.window_start,
                },
                kv.lease,
            ),
            // No counter, or one whose window is over (its lease not yet expired): start afresh.
            _ => {
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
            Ok(true) => return Ok(counter.failures),
            Ok(false) => continue,
            // The counter's lease expired between the read and the write: read again.
            Err(StoreError::LeaseNotFound(_)) => continue,
            Err(error) => return Err(error),
        }
    }
    tracing::warn!(key = %key, "a login failure counter stayed contended; this failure is not counted");
    Ok(0)
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
