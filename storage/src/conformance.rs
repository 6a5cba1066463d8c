//! The backend-agnostic conformance suite: every [`Store`] must behave like etcd 3.4.
//!
//! Each check is a `pub async fn check_name<S: Store>(store: &S)` that panics with a message naming
//! what broke. Checks write only under a key prefix unique to the check and to the run, so several
//! checks (and several runs) can share one store, and they never compare absolute revisions: other
//! writers may make revisions at any time. Two kinds of check are global by nature and must not
//! run concurrently with other checks on the same store: [`compact`] compacts the whole store at its
//! current revision, and the "nothing changed" checks compare the store revision before and after
//! (they retry a few times to tolerate unrelated writers, but a busy store can still defeat them).
//!
//! Entry points:
//!
//! - [`run_all`]: every check in sequence on one store.
//! - [`run_check`] with a name from [`CHECKS`]: one check (to interleave extra assertions).
//! - [`conformance_tests!`](crate::conformance_tests): one `#[tokio::test]` per check, each on the
//!   store a factory returns.
//!
//! The suite was validated against real etcd 3.4 (`storage/tests/t10_conformance_etcd.rs`): when a
//! check and etcd disagree, the check is wrong.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::error::StoreError;
use crate::keys::prefix_end;
use crate::store::{Store, WatchStream};
use crate::types::*;

/// How long a check waits for an expected watch event.
const EVENT_DEADLINE: Duration = Duration::from_secs(10);
/// How many times a "nothing changed" assertion is tried before it fails.
const NO_BUMP_ATTEMPTS: usize = 5;
/// The largest request etcd accepts by default (`--max-request-bytes`, 1.5 MiB).
pub const MAX_REQUEST_BYTES: usize = 1536 * 1024;
/// The most operations one txn branch may hold in etcd by default (`--max-txn-ops`).
pub const MAX_TXN_OPS: usize = 128;
/// How much later than its granted ttl an expired lease may still hold its keys. etcd checks
/// expiry every 500 ms and revokes through Raft.
pub const LEASE_EXPIRY_MARGIN: Duration = Duration::from_secs(3);

/// Calls `$callback!` with the name of every check, in the order [`run_all`] runs them.
#[doc(hidden)]
#[macro_export]
macro_rules! __for_each_conformance_check {
    ($callback:ident ! ( $($args:tt)* )) => {
        $crate::$callback! { ($($args)*)
            range_single_key,
            range_prefix,
            range_interval,
            range_from_key,
            range_limit_more_count,
            range_at_revision,
            range_count_only,
            range_keys_only,
            range_sort_descend,
            put_prev_kv_and_versions,
            revisions_strictly_increase,
            delete_range_prev_kvs,
            delete_nothing_does_not_bump,
            txn_compare_targets,
            txn_compare_missing_keys,
            txn_compare_ranges,
            txn_branches,
            txn_nested,
            txn_duplicate_key_rejected,
            txn_atomic_single_revision,
            txn_read_only_does_not_bump,
            compact,
            watch_replays_then_live,
            watch_from_now,
            watch_prefix_only,
            watch_prev_kv,
            watch_compacted_start,
            watch_two_watchers_identical,
            lease_grant_and_attach,
            lease_grant_with_id,
            lease_keep_alive_extends,
            lease_revoke_deletes_keys_in_one_revision,
            lease_expiry_deletes_keys,
            lease_unknown,
            invalid_arguments_change_nothing,
            status_sanity,
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_names {
    (() $($check:ident),* $(,)?) => {
        /// The name of every check, in the order [`run_all`] runs them.
        pub const CHECKS: &[&str] = &[$(stringify!($check)),*];

        /// Run the check called `name` (one of [`CHECKS`]). Panics on an unknown name.
        pub async fn run_check<S: Store>(store: &S, name: &str) {
            match name {
                $(stringify!($check) => $check(store).await,)*
                other => panic!("no conformance check is called {other:?}"),
            }
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_test_fns {
    (($factory:expr) $($check:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let store = $factory.await;
                $crate::conformance::$check(&store).await;
            }
        )*
    };
    (($factory:expr, $accessor:expr) $($check:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let fixture = $factory.await;
                $crate::conformance::$check($accessor(&fixture)).await;
            }
        )*
    };
}

/// Generates one `#[tokio::test]` per conformance check.
///
/// `conformance_tests!(factory)`: `factory` is an expression evaluating to a future of the store,
/// evaluated once per test, for example `conformance_tests!(fresh_store())` with
/// `async fn fresh_store() -> MyStore`.
///
/// `conformance_tests!(factory, accessor)`: the factory returns a fixture that owns the store and
/// whatever must live as long as it (servers, temporary directories); `accessor` is a function
/// from `&Fixture` to `&Store`.
///
/// The calling crate needs `tokio` (features `macros`, `rt-multi-thread`) as a dev-dependency. Each
/// test gets its own store, so the global checks ([`compact`], the "nothing changed" checks) are
/// safe as long as the factory does not hand out one shared store.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::__for_each_conformance_check!(__conformance_test_fns!($factory));
    };
    ($factory:expr, $accessor:expr) => {
        $crate::__for_each_conformance_check!(__conformance_test_fns!($factory, $accessor));
    };
}

crate::__for_each_conformance_check!(__conformance_names!());

/// Run every check in sequence on `store`, logging each check's name and duration.
pub async fn run_all<S: Store>(store: &S) {
    for name in CHECKS {
        let started = Instant::now();
        tracing::info!(check = name, "conformance check starts");
        run_check(store, name).await;
        tracing::info!(
            check = name,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "conformance check passed"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// A key prefix unique to one check in one run, so checks sharing a store do not see each other.
struct Space {
    prefix: Vec<u8>,
}

impl Space {
    fn new(check: &str) -> Space {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or_default();
        let sequence = COUNTER.fetch_add(1, Ordering::Relaxed);
        Space {
            prefix: format!("conformance/{nanos:x}-{sequence}/{check}/").into_bytes(),
        }
    }

    fn key(&self, name: &str) -> Vec<u8> {
        let mut key = self.prefix.clone();
        key.extend_from_slice(name.as_bytes());
        key
    }

    fn end(&self) -> Vec<u8> {
        prefix_end(&self.prefix)
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn put<S: Store>(store: &S, key: &[u8], value: &str) -> PutResponse {
    store
        .put(PutRequest::new(key.to_vec(), value.as_bytes().to_vec()))
        .await
        .unwrap_or_else(|error| panic!("put {} failed: {error}", text(key)))
}

async fn put_with_lease<S: Store>(store: &S, key: &[u8], value: &str, lease: i64) -> PutResponse {
    let request = PutRequest {
        key: key.to_vec(),
        value: value.as_bytes().to_vec(),
        lease,
        prev_kv: false,
    };
    store
        .put(request)
        .await
        .unwrap_or_else(|error| panic!("put {} with lease {lease} failed: {error}", text(key)))
}

async fn get<S: Store>(store: &S, key: &[u8]) -> Option<KeyValue> {
    let response = store
        .range(RangeRequest::key(key.to_vec()))
        .await
        .unwrap_or_else(|error| panic!("get {}: {error}", text(key)));
    assert!(
        response.kvs.len() <= 1,
        "a single-key range returned {} keys",
        response.kvs.len()
    );
    response.kvs.into_iter().next()
}

async fn range<S: Store>(store: &S, request: RangeRequest) -> RangeResponse {
    let description = format!("{request:?}");
    store
        .range(request)
        .await
        .unwrap_or_else(|error| panic!("range {description} failed: {error}"))
}

fn keys_of(kvs: &[KeyValue]) -> Vec<String> {
    kvs.iter().map(|kv| text(&kv.key)).collect()
}

fn names(space: &Space, names: &[&str]) -> Vec<String> {
    names.iter().map(|name| text(&space.key(name))).collect()
}

/// The store's current revision, from a linearizable read.
async fn current_revision<S: Store>(store: &S) -> i64 {
    let request = RangeRequest {
        count_only: true,
        ..RangeRequest::key(b"conformance/revision-probe".to_vec())
    };
    range(store, request).await.header.revision
}

/// Assert that `operation` leaves the store revision unchanged. Another writer may bump the revision
/// in between, so the observation is tried a few times; a backend that bumps every time fails.
async fn assert_no_revision_bump<S, F, Fut>(store: &S, what: &str, mut operation: F)
where
    S: Store,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut observed = Vec::new();
    for _ in 0..NO_BUMP_ATTEMPTS {
        let before = current_revision(store).await;
        operation().await;
        let after = current_revision(store).await;
        if before == after {
            return;
        }
        observed.push((before, after));
    }
    panic!("{what} changed the store revision in every attempt (before, after): {observed:?}");
}

/// Wait for the next `count` events of a watch, skipping progress notifications.
async fn next_events(stream: &mut WatchStream, count: usize, what: &str) -> Vec<Event> {
    let deadline = Instant::now() + EVENT_DEADLINE;
    let mut events = Vec::new();
    while events.len() < count {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, stream.next()).await {
            Err(_) => panic!(
                "{what}: only {} of {count} events arrived within {EVENT_DEADLINE:?}: {:?}",
                events.len(),
                events.iter().map(summary).collect::<Vec<_>>()
            ),
            Ok(None) => panic!("{what}: the watch ended after {} of {count} events", events.len()),
            Ok(Some(Err(error))) => panic!("{what}: the watch failed after {} events: {error}", events.len()),
            Ok(Some(Ok(response))) => {
                let mut previous = events.last().map(|event: &Event| event.kv.mod_revision).unwrap_or(0);
                for event in &response.events {
                    assert!(
                        event.kv.mod_revision >= previous,
                        "{what}: events out of revision order: {} after {previous}",
                        event.kv.mod_revision
                    );
                    previous = event.kv.mod_revision;
                }
                events.extend(response.events);
            }
        }
    }
    assert_eq!(
        events.len(),
        count,
        "{what}: more events than expected arrived: {events:?}"
    );
    events
}

/// Assert that no event arrives on the watch for a short while.
async fn assert_no_event(stream: &mut WatchStream, what: &str) {
    let quiet = Duration::from_millis(300);
    let deadline = Instant::now() + quiet;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, stream.next()).await {
            Err(_) => return,
            Ok(Some(Ok(response))) if response.events.is_empty() => continue,
            Ok(other) => panic!("{what}: expected no event, got {other:?}"),
        }
    }
}

async fn watch<S: Store>(store: &S, request: WatchRequest) -> WatchStream {
    let description = format!("{request:?}");
    store
        .watch(request)
        .await
        .unwrap_or_else(|error| panic!("watch {description} failed: {error}"))
}

fn watch_prefix(space: &Space, start_revision: i64) -> WatchRequest {
    WatchRequest {
        key: space.prefix.clone(),
        range_end: space.end(),
        start_revision,
        ..Default::default()
    }
}

/// (kind, key, value, mod_revision) of an event, for readable comparisons.
fn summary(event: &Event) -> (EventKind, String, String, i64) {
    (
        event.kind,
        text(&event.kv.key),
        text(&event.kv.value),
        event.kv.mod_revision,
    )
}

async fn grant<S: Store>(store: &S, ttl: i64) -> LeaseGrantResponse {
    let response = store
        .lease_grant(LeaseGrantRequest { ttl, id: 0 })
        .await
        .unwrap_or_else(|error| panic!("lease grant of ttl {ttl} failed: {error}"));
    assert!(response.id != 0, "lease grant returned id 0");
    assert!(
        response.ttl >= ttl,
        "lease grant returned ttl {} below the requested {ttl}",
        response.ttl
    );
    response
}

/// A lease id nobody granted: large and random enough not to collide.
fn unknown_lease_id() -> i64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or(7);
    0x3a5f_0000_0000_0000 + i64::from(nanos)
}

fn expect_invalid<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::InvalidArgument(_)) => {}
        other => panic!("{what}: expected InvalidArgument, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Range.

/// A single-key range returns the key with its metadata; a missing key returns nothing.
pub async fn range_single_key<S: Store>(store: &S) {
    let space = Space::new("range_single_key");
    let key = space.key("a");
    let written = put(store, &key, "one").await.header.revision;

    let response = range(store, RangeRequest::key(key.clone())).await;
    assert!(
        response.header.revision >= written,
        "read revision {} < write {written}",
        response.header.revision
    );
    assert_eq!(response.count, 1);
    assert!(!response.more);
    let expected = KeyValue {
        key: key.clone(),
        value: b"one".to_vec(),
        create_revision: written,
        mod_revision: written,
        version: 1,
        lease: 0,
    };
    assert_eq!(response.kvs, vec![expected]);

    let missing = range(store, RangeRequest::key(space.key("missing"))).await;
    assert!(
        missing.kvs.is_empty() && missing.count == 0 && !missing.more,
        "missing key: {missing:?}"
    );

    // A key that only shares a prefix with the written key is another key.
    let longer = range(store, RangeRequest::key(space.key("ab"))).await;
    assert!(
        longer.kvs.is_empty(),
        "a single-key range matched a longer key: {longer:?}"
    );

    let serializable = RangeRequest {
        consistency: ReadConsistency::Serializable,
        ..RangeRequest::key(key.clone())
    };
    let serializable = range(store, serializable).await;
    assert!(
        serializable.kvs.len() <= 1,
        "serializable read returned {:?}",
        serializable.kvs
    );
}

/// A prefix range returns exactly the keys starting with the prefix, ascending.
pub async fn range_prefix<S: Store>(store: &S) {
    let space = Space::new("range_prefix");
    for name in ["dir/b", "dir/a", "dir/c", "dir", "dis", "dir0"] {
        put(store, &space.key(name), name).await;
    }
    let response = range(store, RangeRequest::prefix(space.key("dir/"))).await;
    assert_eq!(keys_of(&response.kvs), names(&space, &["dir/a", "dir/b", "dir/c"]));
    assert_eq!(response.count, 3);
    assert_eq!(text(&response.kvs[0].value), "dir/a");

    let all = range(store, RangeRequest::prefix(space.prefix.clone())).await;
    assert_eq!(
        keys_of(&all.kvs),
        names(&space, &["dir", "dir/a", "dir/b", "dir/c", "dir0", "dis"])
    );
}

/// `[key, range_end)` includes `key` and excludes `range_end`; an end before the key is empty.
pub async fn range_interval<S: Store>(store: &S) {
    let space = Space::new("range_interval");
    for name in ["k1", "k2", "k3", "k4", "k5"] {
        put(store, &space.key(name), name).await;
    }
    let request = |key: &str, end: &str| RangeRequest {
        key: space.key(key),
        range_end: space.key(end),
        ..Default::default()
    };
    let response = range(store, request("k2", "k4")).await;
    assert_eq!(keys_of(&response.kvs), names(&space, &["k2", "k3"]));
    assert_eq!(response.count, 2);

    let between = range(store, request("k2x", "k4x")).await;
    assert_eq!(keys_of(&between.kvs), names(&space, &["k3", "k4"]));

    let backwards = range(store, request("k4", "k2")).await;
    assert!(
        backwards.kvs.is_empty() && backwards.count == 0,
        "an end before the key matched {backwards:?}"
    );
}

/// A `range_end` of `[0]` means every key from `key` on.
pub async fn range_from_key<S: Store>(store: &S) {
    let space = Space::new("range_from_key");
    for name in ["a", "b", "c", "d"] {
        put(store, &space.key(name), name).await;
    }
    // Other checks' keys may sort after ours, so only the first keys are ours for sure.
    let request = RangeRequest {
        key: space.key("b"),
        range_end: vec![0],
        limit: 3,
        ..Default::default()
    };
    let response = range(store, request).await;
    assert_eq!(keys_of(&response.kvs), names(&space, &["b", "c", "d"]));
    assert!(response.count >= 3, "count {} below the 3 keys seen", response.count);
}

/// `limit` cuts the result, `more` says so, `count` counts the whole range.
pub async fn range_limit_more_count<S: Store>(store: &S) {
    let space = Space::new("range_limit_more_count");
    for name in ["1", "2", "3", "4", "5"] {
        put(store, &space.key(name), name).await;
    }
    let limited = |limit: i64| RangeRequest {
        limit,
        ..RangeRequest::prefix(space.prefix.clone())
    };

    let two = range(store, limited(2)).await;
    assert_eq!(keys_of(&two.kvs), names(&space, &["1", "2"]));
    assert!(two.more, "limit 2 of 5 must say more");
    assert_eq!(two.count, 5);

    let five = range(store, limited(5)).await;
    assert_eq!(five.kvs.len(), 5);
    assert!(!five.more, "limit equal to the count must not say more");
    assert_eq!(five.count, 5);

    let ten = range(store, limited(10)).await;
    assert_eq!(ten.kvs.len(), 5);
    assert!(!ten.more);
    assert_eq!(ten.count, 5);

    let unlimited = range(store, limited(0)).await;
    assert_eq!(unlimited.kvs.len(), 5, "limit 0 means no limit");
    assert!(!unlimited.more);
}

/// Reads at a past revision see the state of that revision; a future revision is an error.
pub async fn range_at_revision<S: Store>(store: &S) {
    let space = Space::new("range_at_revision");
    let key = space.key("k");
    let first = put(store, &key, "v1").await.header.revision;
    let second = put(store, &key, "v2").await.header.revision;
    let deleted = store
        .delete_range(DeleteRangeRequest::key(key.clone()))
        .await
        .expect("delete k")
        .header
        .revision;
    assert!(
        first < second && second < deleted,
        "revisions {first} {second} {deleted} must increase"
    );
    put(store, &space.key("other"), "x").await;

    let at = |revision: i64| RangeRequest {
        revision,
        ..RangeRequest::key(key.clone())
    };
    let before_creation = range(store, at(first - 1)).await;
    assert!(
        before_creation.kvs.is_empty(),
        "the key existed before its creation: {before_creation:?}"
    );

    let response = range(store, at(first)).await;
    assert_eq!(response.kvs.len(), 1);
    assert_eq!(response.kvs[0].value, b"v1");
    assert_eq!(response.kvs[0].version, 1);
    assert_eq!(response.kvs[0].mod_revision, first);

    let response = range(store, at(second)).await;
    assert_eq!(response.kvs[0].value, b"v2");
    assert_eq!(response.kvs[0].version, 2);
    assert_eq!(response.kvs[0].create_revision, first);

    assert!(
        range(store, at(deleted)).await.kvs.is_empty(),
        "the key is deleted at its delete revision"
    );
    assert!(
        range(store, at(0)).await.kvs.is_empty(),
        "revision 0 reads the current state"
    );

    let prefix_at = RangeRequest {
        revision: second,
        ..RangeRequest::prefix(space.prefix.clone())
    };
    assert_eq!(keys_of(&range(store, prefix_at).await.kvs), names(&space, &["k"]));

    let current = current_revision(store).await;
    let future = current + 1_000_000;
    match store.range(at(future)).await {
        Err(StoreError::FutureRevision {
            requested,
            current: reported,
        }) => {
            assert_eq!(requested, future);
            assert!(reported >= current, "reported current revision {reported} < {current}");
        }
        other => panic!("a read at a future revision must fail with FutureRevision, got {other:?}"),
    }
}

/// `count_only` returns the count and no key-values.
pub async fn range_count_only<S: Store>(store: &S) {
    let space = Space::new("range_count_only");
    for name in ["a", "b", "c"] {
        put(store, &space.key(name), name).await;
    }
    let request = RangeRequest {
        count_only: true,
        ..RangeRequest::prefix(space.prefix.clone())
    };
    let response = range(store, request).await;
    assert_eq!(response.count, 3);
    assert!(
        response.kvs.is_empty(),
        "count_only returned key-values: {:?}",
        response.kvs
    );
}

/// `keys_only` returns keys and metadata with empty values.
pub async fn range_keys_only<S: Store>(store: &S) {
    let space = Space::new("range_keys_only");
    let written = put(store, &space.key("a"), "value").await.header.revision;
    put(store, &space.key("b"), "value").await;
    let request = RangeRequest {
        keys_only: true,
        ..RangeRequest::prefix(space.prefix.clone())
    };
    let response = range(store, request).await;
    assert_eq!(keys_of(&response.kvs), names(&space, &["a", "b"]));
    assert!(
        response.kvs.iter().all(|kv| kv.value.is_empty()),
        "keys_only returned values"
    );
    assert_eq!(response.kvs[0].mod_revision, written);
    assert_eq!(response.kvs[0].create_revision, written);
    assert_eq!(response.kvs[0].version, 1);
}

/// Descending order reverses the keys; `limit` keeps the first keys in that order.
pub async fn range_sort_descend<S: Store>(store: &S) {
    let space = Space::new("range_sort_descend");
    for name in ["a", "c", "b", "d"] {
        put(store, &space.key(name), name).await;
    }
    let descend = RangeRequest {
        sort_order: SortOrder::Descend,
        ..RangeRequest::prefix(space.prefix.clone())
    };
    let response = range(store, descend.clone()).await;
    assert_eq!(keys_of(&response.kvs), names(&space, &["d", "c", "b", "a"]));

    let limited = range(store, RangeRequest { limit: 2, ..descend }).await;
    assert_eq!(keys_of(&limited.kvs), names(&space, &["d", "c"]));
    assert!(limited.more);
    assert_eq!(limited.count, 4);

    let ascend = RangeRequest {
        sort_order: SortOrder::Ascend,
        ..RangeRequest::prefix(space.prefix.clone())
    };
    assert_eq!(
        keys_of(&range(store, ascend).await.kvs),
        names(&space, &["a", "b", "c", "d"])
    );
}

// ---------------------------------------------------------------------------------------------
// Put and delete.

/// Put returns the previous key-value when asked, and maintains version and revisions.
pub async fn put_prev_kv_and_versions<S: Store>(store: &S) {
    let space = Space::new("put_prev_kv_and_versions");
    let key = space.key("k");
    let with_prev = |value: &str| PutRequest {
        prev_kv: true,
        ..PutRequest::new(key.clone(), value.as_bytes().to_vec())
    };

    let created = store.put(with_prev("v1")).await.expect("first put");
    assert_eq!(created.prev_kv, None, "a new key has no previous key-value");
    let first = created.header.revision;

    let updated = store.put(with_prev("v2")).await.expect("second put");
    let second = updated.header.revision;
    assert!(second > first);
    let previous = updated.prev_kv.expect("an overwrite returns the previous key-value");
    assert_eq!(
        previous,
        KeyValue {
            key: key.clone(),
            value: b"v1".to_vec(),
            create_revision: first,
            mod_revision: first,
            version: 1,
            lease: 0
        }
    );

    let current = get(store, &key).await.expect("the key exists");
    assert_eq!(
        (current.create_revision, current.mod_revision, current.version),
        (first, second, 2)
    );

    let silent = put(store, &key, "v3").await;
    assert_eq!(silent.prev_kv, None, "prev_kv is returned only when asked");
    assert_eq!(get(store, &key).await.expect("the key exists").version, 3);

    // Deleting and creating again starts a new generation: version 1, a new create revision.
    store
        .delete_range(DeleteRangeRequest::key(key.clone()))
        .await
        .expect("delete k");
    let recreated = store.put(with_prev("v4")).await.expect("put after delete");
    assert_eq!(recreated.prev_kv, None, "a deleted key has no previous key-value");
    let again = get(store, &key).await.expect("the key exists again");
    assert_eq!(again.version, 1);
    assert_eq!(again.create_revision, recreated.header.revision);
    assert_eq!(again.mod_revision, recreated.header.revision);

    // An empty value is a value.
    put(store, &space.key("empty"), "").await;
    let empty = get(store, &space.key("empty"))
        .await
        .expect("a key with an empty value exists");
    assert!(empty.value.is_empty());
}

/// Every write makes a new revision, greater than every earlier one.
pub async fn revisions_strictly_increase<S: Store>(store: &S) {
    let space = Space::new("revisions_strictly_increase");
    let mut previous = current_revision(store).await;
    for index in 0..10 {
        let key = space.key(&format!("k{}", index % 3));
        let revision = put(store, &key, &index.to_string()).await.header.revision;
        assert!(
            revision > previous,
            "put {index} made revision {revision}, not above {previous}"
        );
        assert_eq!(get(store, &key).await.expect("just written").mod_revision, revision);
        previous = revision;
    }
}

/// Delete returns the deleted key-values when asked and removes them in one revision.
pub async fn delete_range_prev_kvs<S: Store>(store: &S) {
    let space = Space::new("delete_range_prev_kvs");
    for name in ["x1", "x2", "x3", "y"] {
        put(store, &space.key(name), name).await;
    }
    let request = DeleteRangeRequest {
        prev_kv: true,
        ..DeleteRangeRequest::prefix(space.key("x"))
    };
    let response = store.delete_range(request).await.expect("delete x*");
    assert_eq!(response.deleted, 3);
    let mut deleted = response.prev_kvs.clone();
    deleted.sort_by(|left, right| left.key.cmp(&right.key));
    assert_eq!(keys_of(&deleted), names(&space, &["x1", "x2", "x3"]));
    assert_eq!(deleted[0].value, b"x1");

    let remaining = range(store, RangeRequest::prefix(space.prefix.clone())).await;
    assert_eq!(keys_of(&remaining.kvs), names(&space, &["y"]));

    // The three keys existed just before the delete's revision and none at it.
    let before = range(
        store,
        RangeRequest {
            revision: response.header.revision - 1,
            ..RangeRequest::prefix(space.key("x"))
        },
    )
    .await;
    assert_eq!(before.count, 3);

    let single = store
        .delete_range(DeleteRangeRequest::key(space.key("y")))
        .await
        .expect("delete y");
    assert_eq!(single.deleted, 1);
    assert!(single.prev_kvs.is_empty(), "prev_kvs are returned only when asked");
    assert!(single.header.revision > response.header.revision);
}

/// A delete that removes nothing succeeds with `deleted == 0` and makes no revision.
pub async fn delete_nothing_does_not_bump<S: Store>(store: &S) {
    let space = Space::new("delete_nothing_does_not_bump");
    put(store, &space.key("present"), "x").await;
    assert_no_revision_bump(store, "deleting a missing key", || async {
        let response = store
            .delete_range(DeleteRangeRequest::key(space.key("absent")))
            .await
            .expect("delete absent");
        assert_eq!(response.deleted, 0);
        assert!(response.prev_kvs.is_empty());
    })
    .await;
    assert_no_revision_bump(store, "deleting an empty range", || async {
        let request = DeleteRangeRequest::prefix(space.key("nothing-here/"));
        assert_eq!(
            store.delete_range(request).await.expect("delete empty range").deleted,
            0
        );
    })
    .await;
    assert!(get(store, &space.key("present")).await.is_some());
}

// ---------------------------------------------------------------------------------------------
// Txn.

async fn txn<S: Store>(store: &S, request: TxnRequest) -> TxnResponse {
    let description = format!("{request:?}");
    store
        .txn(request)
        .await
        .unwrap_or_else(|error| panic!("txn {description} failed: {error}"))
}

async fn compare_holds<S: Store>(store: &S, compare: Compare) -> bool {
    let description = format!("{compare:?}");
    let request = TxnRequest {
        compare: vec![compare],
        success: vec![],
        failure: vec![],
    };
    let response = store
        .txn(request)
        .await
        .unwrap_or_else(|error| panic!("txn comparing {description} failed: {error}"));
    response.succeeded
}

/// Every compare target with every compare result, on an existing key.
pub async fn txn_compare_targets<S: Store>(store: &S) {
    use CompareResult::*;
    let space = Space::new("txn_compare_targets");
    let key = space.key("k");
    let created = put(store, &key, "m").await.header.revision;
    let modified = put(store, &key, "m").await.header.revision;
    let lease = grant(store, 60).await.id;
    let leased_key = space.key("leased");
    put_with_lease(store, &leased_key, "x", lease).await;

    let cases: Vec<(CompareResult, CompareTarget, bool)> = vec![
        (Equal, CompareTarget::Value(b"m".to_vec()), true),
        (Equal, CompareTarget::Value(b"n".to_vec()), false),
        (Greater, CompareTarget::Value(b"l".to_vec()), true),
        (Greater, CompareTarget::Value(b"m".to_vec()), false),
        (Less, CompareTarget::Value(b"n".to_vec()), true),
        (Less, CompareTarget::Value(b"m".to_vec()), false),
        (NotEqual, CompareTarget::Value(b"x".to_vec()), true),
        (NotEqual, CompareTarget::Value(b"m".to_vec()), false),
        (Equal, CompareTarget::Version(2), true),
        (Equal, CompareTarget::Version(1), false),
        (Greater, CompareTarget::Version(1), true),
        (Greater, CompareTarget::Version(2), false),
        (Less, CompareTarget::Version(3), true),
        (Less, CompareTarget::Version(2), false),
        (NotEqual, CompareTarget::Version(5), true),
        (NotEqual, CompareTarget::Version(2), false),
        (Equal, CompareTarget::CreateRevision(created), true),
        (Equal, CompareTarget::CreateRevision(modified), false),
        (Greater, CompareTarget::CreateRevision(created - 1), true),
        (Less, CompareTarget::CreateRevision(created + 1), true),
        (Less, CompareTarget::CreateRevision(created), false),
        (NotEqual, CompareTarget::CreateRevision(created), false),
        (Equal, CompareTarget::ModRevision(modified), true),
        (Equal, CompareTarget::ModRevision(created), false),
        (Greater, CompareTarget::ModRevision(created), true),
        (Greater, CompareTarget::ModRevision(modified), false),
        (Less, CompareTarget::ModRevision(modified + 1), true),
        (NotEqual, CompareTarget::ModRevision(created), true),
        (Equal, CompareTarget::Lease(0), true),
        (NotEqual, CompareTarget::Lease(lease), true),
    ];
    for (result, target, expected) in cases {
        let compare = Compare::new(key.clone(), result, target.clone());
        assert_eq!(
            compare_holds(store, compare).await,
            expected,
            "{result:?} {target:?} on a key of version 2"
        );
    }
    for (result, target, expected) in [
        (Equal, CompareTarget::Lease(lease), true),
        (Equal, CompareTarget::Lease(0), false),
        (Greater, CompareTarget::Lease(lease - 1), true),
        (Less, CompareTarget::Lease(lease), false),
    ] {
        let compare = Compare::new(leased_key.clone(), result, target.clone());
        assert_eq!(
            compare_holds(store, compare).await,
            expected,
            "{result:?} {target:?} on a leased key"
        );
    }
    store.lease_revoke(lease).await.expect("revoke the check's lease");
}

/// A missing key compares as version, revisions and lease 0; every value comparison on it fails.
pub async fn txn_compare_missing_keys<S: Store>(store: &S) {
    use CompareResult::*;
    let space = Space::new("txn_compare_missing_keys");
    let missing = space.key("missing");
    for (result, target, expected) in [
        (Equal, CompareTarget::Version(0), true),
        (Greater, CompareTarget::Version(0), false),
        (Equal, CompareTarget::CreateRevision(0), true),
        (Equal, CompareTarget::ModRevision(0), true),
        (Less, CompareTarget::ModRevision(5), true),
        (Equal, CompareTarget::Lease(0), true),
        (Equal, CompareTarget::Value(Vec::new()), false),
        (NotEqual, CompareTarget::Value(b"x".to_vec()), false),
        (Less, CompareTarget::Value(b"z".to_vec()), false),
        (Greater, CompareTarget::Value(Vec::new()), false),
    ] {
        let compare = Compare::new(missing.clone(), result, target.clone());
        assert_eq!(
            compare_holds(store, compare).await,
            expected,
            "{result:?} {target:?} on a missing key"
        );
    }
    // The classic "create if absent" transaction.
    let create = TxnRequest {
        compare: vec![Compare::new(missing.clone(), Equal, CompareTarget::CreateRevision(0))],
        success: vec![TxnOp::Put(PutRequest::new(missing.clone(), b"created".to_vec()))],
        failure: vec![TxnOp::Range(RangeRequest::key(missing.clone()))],
    };
    assert!(
        txn(store, create.clone()).await.succeeded,
        "create-if-absent on a missing key"
    );
    let second = txn(store, create).await;
    assert!(!second.succeeded, "create-if-absent on an existing key");
    match &second.responses[..] {
        [TxnOpResponse::Range(found)] => assert_eq!(found.kvs[0].value, b"created"),
        other => panic!("the failure branch must answer its one range, got {other:?}"),
    }
}

/// A compare with a range holds only when it holds for every key of the range.
pub async fn txn_compare_ranges<S: Store>(store: &S) {
    use CompareResult::*;
    let space = Space::new("txn_compare_ranges");
    put(store, &space.key("r/a"), "1").await;
    put(store, &space.key("r/b"), "1").await;
    put(store, &space.key("r/b"), "2").await;
    let over = |key: Vec<u8>, end: Vec<u8>, result: CompareResult, target: CompareTarget| Compare {
        key,
        range_end: end,
        result,
        target,
    };
    let (key, end) = (space.key("r/"), prefix_end(&space.key("r/")));
    assert!(
        compare_holds(
            store,
            over(key.clone(), end.clone(), Greater, CompareTarget::Version(0))
        )
        .await
    );
    assert!(!compare_holds(store, over(key.clone(), end.clone(), Equal, CompareTarget::Version(1))).await);
    assert!(compare_holds(store, over(key.clone(), end.clone(), Less, CompareTarget::Version(3))).await);
    assert!(
        !compare_holds(
            store,
            over(key.clone(), end.clone(), Equal, CompareTarget::Value(b"1".to_vec()))
        )
        .await
    );

    // An empty range compares like a missing key.
    let (empty, empty_end) = (space.key("none/"), prefix_end(&space.key("none/")));
    assert!(
        compare_holds(
            store,
            over(empty.clone(), empty_end.clone(), Equal, CompareTarget::Version(0))
        )
        .await
    );
    assert!(!compare_holds(store, over(empty, empty_end, Equal, CompareTarget::Value(Vec::new()))).await);

    // `[0]` reaches every key from `key` on; every existing key has a create revision above 0.
    assert!(
        compare_holds(
            store,
            over(key.clone(), vec![0], Greater, CompareTarget::CreateRevision(0))
        )
        .await
    );
    assert!(!compare_holds(store, over(key, vec![0], Equal, CompareTarget::CreateRevision(0))).await);
}

/// The success branch runs when every compare holds, the failure branch otherwise.
pub async fn txn_branches<S: Store>(store: &S) {
    use CompareResult::*;
    let space = Space::new("txn_branches");
    let (flag, target) = (space.key("flag"), space.key("target"));
    put(store, &flag, "on").await;
    let request = |expected: &str| TxnRequest {
        compare: vec![
            Compare::new(flag.clone(), Equal, CompareTarget::Value(expected.as_bytes().to_vec())),
            Compare::new(flag.clone(), Greater, CompareTarget::Version(0)),
        ],
        success: vec![
            TxnOp::Put(PutRequest {
                prev_kv: true,
                ..PutRequest::new(target.clone(), b"success".to_vec())
            }),
            TxnOp::Range(RangeRequest::key(target.clone())),
        ],
        failure: vec![TxnOp::DeleteRange(DeleteRangeRequest {
            prev_kv: true,
            ..DeleteRangeRequest::key(target.clone())
        })],
    };

    let success = txn(store, request("on")).await;
    assert!(success.succeeded);
    match &success.responses[..] {
        [TxnOpResponse::Put(put_response), TxnOpResponse::Range(read)] => {
            assert_eq!(put_response.prev_kv, None);
            // A read inside the txn sees the txn's own earlier write.
            assert_eq!(read.kvs.len(), 1);
            assert_eq!(read.kvs[0].value, b"success");
            assert_eq!(read.kvs[0].mod_revision, success.header.revision);
        }
        other => panic!("the success branch must answer a put and a range, got {other:?}"),
    }

    let failure = txn(store, request("off")).await;
    assert!(!failure.succeeded);
    assert!(
        failure.header.revision > success.header.revision,
        "the failure branch deleted a key"
    );
    match &failure.responses[..] {
        [TxnOpResponse::DeleteRange(deleted)] => {
            assert_eq!(deleted.deleted, 1);
            assert_eq!(deleted.prev_kvs.len(), 1);
            assert_eq!(deleted.prev_kvs[0].value, b"success");
        }
        other => panic!("the failure branch must answer one delete, got {other:?}"),
    }
    assert!(get(store, &target).await.is_none());

    // No compare at all: the success branch runs.
    let empty = txn(
        store,
        TxnRequest {
            compare: vec![],
            success: vec![],
            failure: vec![],
        },
    )
    .await;
    assert!(
        empty.succeeded && empty.responses.is_empty(),
        "an empty txn succeeds: {empty:?}"
    );
}

/// A txn inside a txn runs its own branch; its writes share the outer revision.
pub async fn txn_nested<S: Store>(store: &S) {
    use CompareResult::*;
    let space = Space::new("txn_nested");
    let (a, b, c) = (space.key("a"), space.key("b"), space.key("c"));
    put(store, &a, "1").await;
    let inner = TxnRequest {
        compare: vec![Compare::new(a.clone(), Equal, CompareTarget::Value(b"1".to_vec()))],
        success: vec![TxnOp::Put(PutRequest::new(b.clone(), b"inner-success".to_vec()))],
        failure: vec![TxnOp::Put(PutRequest::new(b.clone(), b"inner-failure".to_vec()))],
    };
    let outer = TxnRequest {
        compare: vec![Compare::new(a.clone(), Equal, CompareTarget::Version(1))],
        success: vec![
            TxnOp::Put(PutRequest::new(c.clone(), b"outer".to_vec())),
            TxnOp::Txn(inner.clone()),
        ],
        failure: vec![],
    };
    let response = txn(store, outer).await;
    assert!(response.succeeded);
    match &response.responses[..] {
        [TxnOpResponse::Put(_), TxnOpResponse::Txn(nested)] => {
            assert!(nested.succeeded);
            assert!(
                matches!(&nested.responses[..], [TxnOpResponse::Put(_)]),
                "nested responses: {nested:?}"
            );
        }
        other => panic!("expected a put and a nested txn response, got {other:?}"),
    }
    let b_value = get(store, &b).await.expect("the nested txn wrote b");
    let c_value = get(store, &c).await.expect("the outer txn wrote c");
    assert_eq!(b_value.value, b"inner-success");
    assert_eq!(b_value.mod_revision, response.header.revision);
    assert_eq!(c_value.mod_revision, response.header.revision);

    put(store, &a, "2").await;
    let outer = TxnRequest {
        compare: vec![],
        success: vec![TxnOp::Txn(inner)],
        failure: vec![],
    };
    let response = txn(store, outer).await;
    match &response.responses[..] {
        [TxnOpResponse::Txn(nested)] => assert!(!nested.succeeded, "the nested compare no longer holds"),
        other => panic!("expected one nested txn response, got {other:?}"),
    }
    assert_eq!(get(store, &b).await.expect("b exists").value, b"inner-failure");
}

/// A txn may not write one key twice, in either branch or through a nested txn; nothing changes.
pub async fn txn_duplicate_key_rejected<S: Store>(store: &S) {
    use CompareResult::*;
    let space = Space::new("txn_duplicate_key_rejected");
    let key = space.key("k");
    let put_op = |value: &str| TxnOp::Put(PutRequest::new(key.clone(), value.as_bytes().to_vec()));
    let always = vec![Compare::new(space.key("absent"), Equal, CompareTarget::Version(0))];
    let requests = vec![
        (
            "two puts of one key",
            TxnRequest {
                compare: vec![],
                success: vec![put_op("1"), put_op("2")],
                failure: vec![],
            },
        ),
        (
            "a put and a delete of one key",
            TxnRequest {
                compare: vec![],
                success: vec![
                    put_op("1"),
                    TxnOp::DeleteRange(DeleteRangeRequest::prefix(space.prefix.clone())),
                ],
                failure: vec![],
            },
        ),
        (
            "two puts in the branch that does not run",
            TxnRequest {
                compare: always,
                success: vec![],
                failure: vec![put_op("1"), put_op("2")],
            },
        ),
        (
            "a put repeated by a nested txn",
            TxnRequest {
                compare: vec![],
                success: vec![
                    put_op("1"),
                    TxnOp::Txn(TxnRequest {
                        compare: vec![],
                        success: vec![put_op("2")],
                        failure: vec![],
                    }),
                ],
                failure: vec![],
            },
        ),
    ];
    for (what, request) in requests {
        assert_no_revision_bump(store, what, || async {
            expect_invalid(store.txn(request.clone()).await, what);
        })
        .await;
        assert!(
            get(store, &key).await.is_none(),
            "{what}: the rejected txn wrote the key"
        );
    }
    // Reading a key twice, or deleting overlapping ranges, is allowed.
    let allowed = TxnRequest {
        compare: vec![],
        success: vec![
            TxnOp::Range(RangeRequest::key(key.clone())),
            TxnOp::Range(RangeRequest::key(key.clone())),
            TxnOp::DeleteRange(DeleteRangeRequest::key(key.clone())),
            TxnOp::DeleteRange(DeleteRangeRequest::prefix(space.prefix.clone())),
        ],
        failure: vec![],
    };
    assert!(txn(store, allowed).await.succeeded);
}

/// All writes of a txn share one new revision; the revision before shows none of them.
pub async fn txn_atomic_single_revision<S: Store>(store: &S) {
    let space = Space::new("txn_atomic_single_revision");
    put(store, &space.key("old"), "gone soon").await;
    let request = TxnRequest {
        compare: vec![],
        success: vec![
            TxnOp::Put(PutRequest::new(space.key("a"), b"1".to_vec())),
            TxnOp::Put(PutRequest::new(space.key("b"), b"2".to_vec())),
            TxnOp::DeleteRange(DeleteRangeRequest::key(space.key("old"))),
            TxnOp::Put(PutRequest::new(space.key("c"), b"3".to_vec())),
        ],
        failure: vec![],
    };
    let response = txn(store, request).await;
    let revision = response.header.revision;
    let now = range(store, RangeRequest::prefix(space.prefix.clone())).await;
    assert_eq!(keys_of(&now.kvs), names(&space, &["a", "b", "c"]));
    for kv in &now.kvs {
        assert_eq!(
            kv.mod_revision,
            revision,
            "{} was not written at the txn's revision",
            text(&kv.key)
        );
        assert_eq!(kv.create_revision, revision);
    }
    let before = range(
        store,
        RangeRequest {
            revision: revision - 1,
            ..RangeRequest::prefix(space.prefix.clone())
        },
    )
    .await;
    assert_eq!(
        keys_of(&before.kvs),
        names(&space, &["old"]),
        "the revision before the txn shows none of its writes"
    );
}

/// A txn that only reads, or whose branch is empty, makes no revision.
pub async fn txn_read_only_does_not_bump<S: Store>(store: &S) {
    use CompareResult::*;
    let space = Space::new("txn_read_only_does_not_bump");
    let key = space.key("k");
    put(store, &key, "v").await;
    assert_no_revision_bump(store, "a read-only txn", || async {
        let request = TxnRequest {
            compare: vec![Compare::new(key.clone(), Equal, CompareTarget::Value(b"v".to_vec()))],
            success: vec![TxnOp::Range(RangeRequest::key(key.clone()))],
            failure: vec![],
        };
        assert!(txn(store, request).await.succeeded);
    })
    .await;
    assert_no_revision_bump(store, "a failed txn with an empty failure branch", || async {
        let request = TxnRequest {
            compare: vec![Compare::new(
                key.clone(),
                Equal,
                CompareTarget::Value(b"other".to_vec()),
            )],
            success: vec![TxnOp::Put(PutRequest::new(key.clone(), b"never".to_vec()))],
            failure: vec![],
        };
        assert!(!txn(store, request).await.succeeded);
    })
    .await;
    assert_no_revision_bump(store, "a txn deleting nothing", || async {
        let request = TxnRequest {
            compare: vec![],
            success: vec![TxnOp::DeleteRange(DeleteRangeRequest::key(space.key("absent")))],
            failure: vec![],
        };
        txn(store, request).await;
    })
    .await;
    assert_eq!(get(store, &key).await.expect("k exists").value, b"v");
}

// ---------------------------------------------------------------------------------------------
// Compaction.

/// Compaction drops history below its revision: reads there fail, reads at it work. This check
/// compacts the whole store at a revision it just made.
pub async fn compact<S: Store>(store: &S) {
    let space = Space::new("compact");
    let key = space.key("k");
    let first = put(store, &key, "v1").await.header.revision;
    let second = put(store, &key, "v2").await.header.revision;
    let third = put(store, &key, "v3").await.header.revision;

    store
        .compact(CompactRequest { revision: second })
        .await
        .expect("compact at a past revision");
    match store
        .range(RangeRequest {
            revision: first,
            ..RangeRequest::key(key.clone())
        })
        .await
    {
        Err(StoreError::Compacted {
            requested,
            compact_revision,
        }) => {
            assert_eq!(requested, first);
            assert!(
                compact_revision >= second,
                "compact revision {compact_revision} < {second}"
            );
        }
        other => panic!("a read below the compaction point must fail with Compacted, got {other:?}"),
    }
    let at = range(
        store,
        RangeRequest {
            revision: second,
            ..RangeRequest::key(key.clone())
        },
    )
    .await;
    assert_eq!(at.kvs[0].value, b"v2", "the compaction revision itself stays readable");
    assert_eq!(at.kvs[0].version, 2);
    let now = get(store, &key).await.expect("the key survives compaction");
    assert_eq!((now.create_revision, now.mod_revision, now.version), (first, third, 3));

    for below in [first, second] {
        match store.compact(CompactRequest { revision: below }).await {
            Err(StoreError::Compacted { requested, .. }) => assert_eq!(requested, below),
            other => panic!("compacting at or below the compaction point must fail with Compacted, got {other:?}"),
        }
    }
    let future = current_revision(store).await + 1_000_000;
    match store.compact(CompactRequest { revision: future }).await {
        Err(StoreError::FutureRevision { requested, .. }) => assert_eq!(requested, future),
        other => panic!("compacting at a future revision must fail with FutureRevision, got {other:?}"),
    }
    let head = current_revision(store).await;
    store
        .compact(CompactRequest { revision: head })
        .await
        .expect("compact at the current revision");
    assert!(get(store, &key).await.is_some());
    let status = store.status().await.expect("status after compaction");
    assert!(
        status.compact_revision >= head,
        "status compact revision {} < {head}",
        status.compact_revision
    );
}

// ---------------------------------------------------------------------------------------------
// Watch.

/// A watch from a past revision replays the history in order, then delivers live events.
pub async fn watch_replays_then_live<S: Store>(store: &S) {
    let space = Space::new("watch_replays_then_live");
    let (k1, k2, k3) = (space.key("k1"), space.key("k2"), space.key("k3"));
    let r1 = put(store, &k1, "v1").await.header.revision;
    let r2 = put(store, &k2, "v2").await.header.revision;
    let r3 = store
        .delete_range(DeleteRangeRequest::key(k1.clone()))
        .await
        .expect("delete k1")
        .header
        .revision;

    let mut stream = watch(store, watch_prefix(&space, r1)).await;
    let replayed = next_events(&mut stream, 3, "replay").await;
    assert_eq!(
        replayed.iter().map(summary).collect::<Vec<_>>(),
        vec![
            (EventKind::Put, text(&k1), "v1".into(), r1),
            (EventKind::Put, text(&k2), "v2".into(), r2),
            (EventKind::Delete, text(&k1), String::new(), r3),
        ]
    );
    assert_eq!(replayed[0].kv.create_revision, r1);
    assert_eq!(replayed[0].kv.version, 1);
    assert_eq!(replayed[0].prev_kv, None, "prev_kv is sent only when asked");
    // A delete event carries the key and the deleting revision only, as in etcd.
    assert_eq!(
        replayed[2].kv,
        KeyValue {
            key: k1.clone(),
            mod_revision: r3,
            ..Default::default()
        }
    );

    let r4 = put(store, &k3, "v3").await.header.revision;
    let r5 = put(store, &k3, "v4").await.header.revision;
    let live = next_events(&mut stream, 2, "live").await;
    assert_eq!(
        live.iter().map(summary).collect::<Vec<_>>(),
        vec![
            (EventKind::Put, text(&k3), "v3".into(), r4),
            (EventKind::Put, text(&k3), "v4".into(), r5)
        ]
    );
    assert_eq!(live[1].kv.version, 2);
    assert_eq!(live[1].kv.create_revision, r4);

    // A txn's several events arrive together, in the order the txn wrote them, at one revision.
    let request = TxnRequest {
        compare: vec![],
        success: vec![
            TxnOp::Put(PutRequest::new(space.key("t2"), b"b".to_vec())),
            TxnOp::Put(PutRequest::new(space.key("t1"), b"a".to_vec())),
        ],
        failure: vec![],
    };
    let revision = txn(store, request).await.header.revision;
    let batch = next_events(&mut stream, 2, "txn events").await;
    assert_eq!(
        batch.iter().map(summary).collect::<Vec<_>>(),
        vec![
            (EventKind::Put, text(&space.key("t2")), "b".into(), revision),
            (EventKind::Put, text(&space.key("t1")), "a".into(), revision),
        ]
    );
}

/// A watch with start revision 0 sees every write made after it was created, and none before.
pub async fn watch_from_now<S: Store>(store: &S) {
    let space = Space::new("watch_from_now");
    let key = space.key("k");
    put(store, &key, "before").await;
    let mut stream = watch(
        store,
        WatchRequest {
            key: key.clone(),
            start_revision: 0,
            ..Default::default()
        },
    )
    .await;
    let revision = put(store, &key, "after").await.header.revision;
    let events = next_events(&mut stream, 1, "watch from now").await;
    assert_eq!(
        summary(&events[0]),
        (EventKind::Put, text(&key), "after".into(), revision)
    );
}

/// A single-key watch and a prefix watch see only their own keys.
pub async fn watch_prefix_only<S: Store>(store: &S) {
    let space = Space::new("watch_prefix_only");
    let start = current_revision(store).await + 1;
    let mut prefix_stream = watch(
        store,
        WatchRequest {
            key: space.key("in/"),
            range_end: prefix_end(&space.key("in/")),
            start_revision: start,
            ..Default::default()
        },
    )
    .await;
    let mut key_stream = watch(
        store,
        WatchRequest {
            key: space.key("in/a"),
            start_revision: start,
            ..Default::default()
        },
    )
    .await;
    for name in ["out", "in/a", "in", "in/b", "in/a/deeper", "iz"] {
        put(store, &space.key(name), name).await;
    }
    let events = next_events(&mut prefix_stream, 3, "prefix watch").await;
    assert_eq!(
        events.iter().map(|event| text(&event.kv.key)).collect::<Vec<_>>(),
        names(&space, &["in/a", "in/b", "in/a/deeper"])
    );
    assert_no_event(&mut prefix_stream, "prefix watch after its keys").await;
    let events = next_events(&mut key_stream, 1, "key watch").await;
    assert_eq!(text(&events[0].kv.key), text(&space.key("in/a")));
    assert_no_event(&mut key_stream, "key watch after its key").await;
}

/// With `prev_kv`, put and delete events carry the key-value before the event.
pub async fn watch_prev_kv<S: Store>(store: &S) {
    let space = Space::new("watch_prev_kv");
    let key = space.key("k");
    let start = current_revision(store).await + 1;
    let mut stream = watch(
        store,
        WatchRequest {
            prev_kv: true,
            ..watch_prefix(&space, start)
        },
    )
    .await;
    let first = put(store, &key, "v1").await.header.revision;
    put(store, &key, "v2").await;
    store
        .delete_range(DeleteRangeRequest::key(key.clone()))
        .await
        .expect("delete k");
    let events = next_events(&mut stream, 3, "prev_kv watch").await;
    assert_eq!(events[0].prev_kv, None, "a creation has no previous key-value");
    let previous = events[1]
        .prev_kv
        .as_ref()
        .expect("an overwrite carries the previous key-value");
    assert_eq!(
        (previous.value.as_slice(), previous.version, previous.mod_revision),
        (&b"v1"[..], 1, first)
    );
    let previous = events[2]
        .prev_kv
        .as_ref()
        .expect("a delete carries the deleted key-value");
    assert_eq!((previous.value.as_slice(), previous.version), (&b"v2"[..], 2));
}

/// A watch starting below the compaction point fails with `Compacted`, never with a silent gap.
pub async fn watch_compacted_start<S: Store>(store: &S) {
    let space = Space::new("watch_compacted_start");
    let key = space.key("k");
    let first = put(store, &key, "v1").await.header.revision;
    put(store, &key, "v2").await;
    let last = put(store, &key, "v3").await.header.revision;
    store
        .compact(CompactRequest { revision: last })
        .await
        .expect("compact at the last write");

    let request = WatchRequest {
        key: key.clone(),
        start_revision: first,
        ..Default::default()
    };
    let error = match store.watch(request).await {
        Err(error) => error,
        Ok(mut stream) => loop {
            match tokio::time::timeout(EVENT_DEADLINE, stream.next()).await {
                Err(_) => panic!("a watch below the compaction point neither failed nor ended"),
                Ok(None) => panic!("a watch below the compaction point ended without an error"),
                Ok(Some(Ok(response))) if response.events.is_empty() => continue,
                Ok(Some(Ok(response))) => panic!("a watch below the compaction point sent events: {response:?}"),
                Ok(Some(Err(error))) => break error,
            }
        },
    };
    match error {
        StoreError::Compacted {
            requested,
            compact_revision,
        } => {
            assert_eq!(requested, first);
            assert!(compact_revision >= last, "compact revision {compact_revision} < {last}");
        }
        other => panic!("expected Compacted, got {other:?}"),
    }

    // Watching from the compaction point itself works.
    let mut stream = watch(
        store,
        WatchRequest {
            key: key.clone(),
            start_revision: last,
            ..Default::default()
        },
    )
    .await;
    let events = next_events(&mut stream, 1, "watch at the compaction point").await;
    assert_eq!(summary(&events[0]), (EventKind::Put, text(&key), "v3".into(), last));
}

/// Two watchers of one range see the identical sequence of events.
pub async fn watch_two_watchers_identical<S: Store>(store: &S) {
    let space = Space::new("watch_two_watchers_identical");
    let start = current_revision(store).await + 1;
    let mut early = watch(store, watch_prefix(&space, start)).await;
    let mut writes = 0;
    for round in 0..6 {
        put(store, &space.key(&format!("k{}", round % 3)), &round.to_string()).await;
        writes += 1;
        if round % 2 == 1 {
            let deleted = store
                .delete_range(DeleteRangeRequest::key(space.key("k0")))
                .await
                .expect("delete k0");
            // A delete of an already deleted key makes no event.
            writes += deleted.deleted as usize;
        }
    }
    let request = TxnRequest {
        compare: vec![],
        success: vec![
            TxnOp::Put(PutRequest::new(space.key("x"), b"1".to_vec())),
            TxnOp::Put(PutRequest::new(space.key("y"), b"2".to_vec())),
        ],
        failure: vec![],
    };
    txn(store, request).await;
    writes += 2;
    // The second watcher starts later, from the same revision: it replays what the first saw live.
    let mut late = watch(store, watch_prefix(&space, start)).await;
    let early_events = next_events(&mut early, writes, "first watcher").await;
    let late_events = next_events(&mut late, writes, "second watcher").await;
    assert_eq!(early_events, late_events, "two watchers of one range disagree");
}

// ---------------------------------------------------------------------------------------------
// Leases.

/// A granted lease holds the keys put with it; time-to-live lists them; leases lists the lease.
pub async fn lease_grant_and_attach<S: Store>(store: &S) {
    let space = Space::new("lease_grant_and_attach");
    let granted = grant(store, 30).await;
    let (a, b) = (space.key("a"), space.key("b"));
    put_with_lease(store, &a, "1", granted.id).await;
    put_with_lease(store, &b, "2", granted.id).await;
    assert_eq!(get(store, &a).await.expect("a exists").lease, granted.id);

    let alive = store.lease_time_to_live(granted.id, true).await.expect("time to live");
    assert_eq!(alive.id, granted.id);
    assert_eq!(alive.granted_ttl, granted.ttl);
    assert!(
        alive.ttl > 0 && alive.ttl <= granted.ttl,
        "remaining ttl {} of {}",
        alive.ttl,
        granted.ttl
    );
    let mut keys = alive.keys.clone();
    keys.sort();
    assert_eq!(keys, vec![a.clone(), b.clone()]);
    let without_keys = store
        .lease_time_to_live(granted.id, false)
        .await
        .expect("time to live without keys");
    assert!(without_keys.keys.is_empty(), "keys are listed only when asked");

    let leases = store.lease_leases().await.expect("list leases");
    assert!(
        leases.ids.contains(&granted.id),
        "lease {} missing from {:?}",
        granted.id,
        leases.ids
    );

    // Putting the key again without the lease detaches it.
    put(store, &b, "3").await;
    assert_eq!(get(store, &b).await.expect("b exists").lease, 0);
    let alive = store.lease_time_to_live(granted.id, true).await.expect("time to live");
    assert_eq!(alive.keys, vec![a.clone()]);
    store.lease_revoke(granted.id).await.expect("revoke");
    assert!(
        get(store, &b).await.is_some(),
        "a detached key survives its former lease"
    );
}

/// A lease can be granted with a chosen id; granting it again fails with `LeaseExists`.
pub async fn lease_grant_with_id<S: Store>(store: &S) {
    let id = unknown_lease_id();
    let granted = store
        .lease_grant(LeaseGrantRequest { ttl: 30, id })
        .await
        .expect("grant with an id");
    assert_eq!(granted.id, id);
    match store.lease_grant(LeaseGrantRequest { ttl: 30, id }).await {
        Err(StoreError::LeaseExists(existing)) => assert_eq!(existing, id),
        other => panic!("granting an existing lease id must fail with LeaseExists, got {other:?}"),
    }
    store.lease_revoke(id).await.expect("revoke");
}

/// Keep-alive renews the lease to its granted ttl.
pub async fn lease_keep_alive_extends<S: Store>(store: &S) {
    let granted = grant(store, 5).await;
    let deadline = Instant::now() + Duration::from_secs(granted.ttl as u64);
    let lowered = loop {
        let remaining = store
            .lease_time_to_live(granted.id, false)
            .await
            .expect("time to live")
            .ttl;
        if remaining <= granted.ttl - 2 {
            break remaining;
        }
        assert!(
            Instant::now() < deadline,
            "the lease's remaining ttl did not decrease: {remaining}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let renewed = store.lease_keep_alive(granted.id).await.expect("keep alive");
    assert_eq!(renewed.id, granted.id);
    assert_eq!(renewed.ttl, granted.ttl, "keep-alive renews to the granted ttl");
    let remaining = store
        .lease_time_to_live(granted.id, false)
        .await
        .expect("time to live")
        .ttl;
    assert!(
        remaining > lowered,
        "remaining ttl {remaining} not above {lowered} after keep-alive"
    );
    store.lease_revoke(granted.id).await.expect("revoke");
}

/// Revoking a lease deletes its keys in one revision and forgets the lease.
pub async fn lease_revoke_deletes_keys_in_one_revision<S: Store>(store: &S) {
    let space = Space::new("lease_revoke_deletes_keys_in_one_revision");
    let granted = grant(store, 60).await;
    for name in ["a", "b", "c"] {
        put_with_lease(store, &space.key(name), name, granted.id).await;
    }
    put(store, &space.key("free"), "stays").await;
    let start = current_revision(store).await + 1;
    let mut stream = watch(store, watch_prefix(&space, start)).await;

    let revoked = store.lease_revoke(granted.id).await.expect("revoke");
    let events = next_events(&mut stream, 3, "revoke deletions").await;
    let mut deleted: Vec<String> = events.iter().map(|event| text(&event.kv.key)).collect();
    deleted.sort();
    assert_eq!(deleted, names(&space, &["a", "b", "c"]));
    for event in &events {
        assert_eq!(event.kind, EventKind::Delete);
        assert_eq!(
            event.kv.mod_revision, events[0].kv.mod_revision,
            "a revoke deletes its keys in one revision"
        );
    }
    assert!(revoked.header.revision >= events[0].kv.mod_revision);
    let remaining = range(store, RangeRequest::prefix(space.prefix.clone())).await;
    assert_eq!(keys_of(&remaining.kvs), names(&space, &["free"]));

    let gone = store
        .lease_time_to_live(granted.id, false)
        .await
        .expect("time to live of a revoked lease");
    assert_eq!(gone.ttl, -1, "a revoked lease reports ttl -1");
    assert!(!store
        .lease_leases()
        .await
        .expect("list leases")
        .ids
        .contains(&granted.id));
    match store.lease_revoke(granted.id).await {
        Err(StoreError::LeaseNotFound(id)) => assert_eq!(id, granted.id),
        other => panic!("revoking twice must fail with LeaseNotFound, got {other:?}"),
    }
}

/// An expired lease's keys are deleted, in one revision, within its ttl plus a bounded margin.
pub async fn lease_expiry_deletes_keys<S: Store>(store: &S) {
    let space = Space::new("lease_expiry_deletes_keys");
    let granted_at = Instant::now();
    let granted = grant(store, 2).await;
    put_with_lease(store, &space.key("a"), "1", granted.id).await;
    put_with_lease(store, &space.key("b"), "2", granted.id).await;
    let start = current_revision(store).await + 1;
    let mut stream = watch(store, watch_prefix(&space, start)).await;

    let events = next_events(&mut stream, 2, "expiry deletions").await;
    let elapsed = granted_at.elapsed();
    let bound = Duration::from_secs(granted.ttl as u64) + LEASE_EXPIRY_MARGIN;
    assert!(
        elapsed <= bound,
        "keys of a {}s lease were deleted after {elapsed:?} (bound {bound:?})",
        granted.ttl
    );
    assert!(
        elapsed >= Duration::from_secs(granted.ttl as u64) - Duration::from_millis(500),
        "keys of a {}s lease were deleted early, after {elapsed:?}",
        granted.ttl
    );
    assert!(
        events.iter().all(|event| event.kind == EventKind::Delete),
        "expiry events: {events:?}"
    );
    assert_eq!(
        events[0].kv.mod_revision, events[1].kv.mod_revision,
        "an expiry deletes its keys in one revision"
    );
    assert!(range(store, RangeRequest::prefix(space.prefix.clone()))
        .await
        .kvs
        .is_empty());
    let gone = store
        .lease_time_to_live(granted.id, false)
        .await
        .expect("time to live of an expired lease");
    assert_eq!(gone.ttl, -1);
}

/// Unknown leases: put fails with `LeaseNotFound` and writes nothing; revoke and keep-alive fail;
/// time-to-live reports -1.
pub async fn lease_unknown<S: Store>(store: &S) {
    let space = Space::new("lease_unknown");
    let unknown = unknown_lease_id();
    let key = space.key("k");
    assert_no_revision_bump(store, "a put with an unknown lease", || async {
        let request = PutRequest {
            lease: unknown,
            ..PutRequest::new(key.clone(), b"v".to_vec())
        };
        match store.put(request).await {
            Err(StoreError::LeaseNotFound(id)) => assert_eq!(id, unknown),
            other => panic!("a put with an unknown lease must fail with LeaseNotFound, got {other:?}"),
        }
    })
    .await;
    assert!(
        get(store, &key).await.is_none(),
        "a put with an unknown lease wrote the key"
    );
    match store.lease_revoke(unknown).await {
        Err(StoreError::LeaseNotFound(id)) => assert_eq!(id, unknown),
        other => panic!("revoking an unknown lease must fail with LeaseNotFound, got {other:?}"),
    }
    match store.lease_keep_alive(unknown).await {
        Err(StoreError::LeaseNotFound(id)) => assert_eq!(id, unknown),
        other => panic!("keeping an unknown lease alive must fail with LeaseNotFound, got {other:?}"),
    }
    let ttl = store
        .lease_time_to_live(unknown, true)
        .await
        .expect("time to live of an unknown lease");
    assert_eq!(ttl.ttl, -1);
    assert!(ttl.keys.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Invalid input and status.

/// Malformed requests fail with `InvalidArgument` and change nothing.
pub async fn invalid_arguments_change_nothing<S: Store>(store: &S) {
    let space = Space::new("invalid_arguments_change_nothing");
    let key = space.key("k");
    put(store, &key, "original").await;

    assert_no_revision_bump(store, "a put with an empty key", || async {
        expect_invalid(
            store.put(PutRequest::new(Vec::new(), b"v".to_vec())).await,
            "put with an empty key",
        );
    })
    .await;
    expect_invalid(
        store.range(RangeRequest::key(Vec::new())).await,
        "range of an empty key",
    );
    assert_no_revision_bump(store, "a delete of an empty key", || async {
        expect_invalid(
            store.delete_range(DeleteRangeRequest::key(Vec::new())).await,
            "delete of an empty key",
        );
    })
    .await;
    assert_no_revision_bump(store, "a txn comparing an empty key", || async {
        let request = TxnRequest {
            compare: vec![Compare::new(
                Vec::new(),
                CompareResult::Equal,
                CompareTarget::Version(0),
            )],
            success: vec![TxnOp::Put(PutRequest::new(key.clone(), b"changed".to_vec()))],
            failure: vec![],
        };
        expect_invalid(store.txn(request).await, "txn comparing an empty key");
    })
    .await;
    assert_no_revision_bump(store, "a txn with too many operations", || async {
        let success = (0..=MAX_TXN_OPS)
            .map(|index| TxnOp::Put(PutRequest::new(space.key(&format!("many/{index}")), b"v".to_vec())))
            .collect();
        let request = TxnRequest {
            compare: vec![],
            success,
            failure: vec![],
        };
        expect_invalid(store.txn(request).await, "txn with too many operations");
    })
    .await;
    assert_no_revision_bump(store, "a put of a value above the request size limit", || async {
        let value = vec![b'x'; MAX_REQUEST_BYTES + 64 * 1024];
        expect_invalid(
            store.put(PutRequest::new(key.clone(), value)).await,
            "put of a too large value",
        );
    })
    .await;
    assert_no_revision_bump(store, "a txn putting an empty key", || async {
        let request = TxnRequest {
            compare: vec![],
            success: vec![
                TxnOp::Put(PutRequest::new(key.clone(), b"changed".to_vec())),
                TxnOp::Put(PutRequest::new(Vec::new(), b"v".to_vec())),
            ],
            failure: vec![],
        };
        expect_invalid(store.txn(request).await, "txn putting an empty key");
    })
    .await;

    let after = range(store, RangeRequest::prefix(space.prefix.clone())).await;
    assert_eq!(
        keys_of(&after.kvs),
        names(&space, &["k"]),
        "invalid requests wrote keys"
    );
    assert_eq!(after.kvs[0].value, b"original");
    assert_eq!(after.kvs[0].version, 1);
}

/// Status reports a healthy store with a leader among its members and a sane revision.
pub async fn status_sanity<S: Store>(store: &S) {
    let space = Space::new("status_sanity");
    let written = put(store, &space.key("k"), "v").await.header.revision;
    let status = store.status().await.expect("status");
    assert!(
        status.healthy,
        "a store that just took a write reports unhealthy: {status:?}"
    );
    assert!(
        status.revision >= written,
        "status revision {} < {written}",
        status.revision
    );
    assert!(
        status.compact_revision >= 0 && status.compact_revision <= status.revision,
        "{status:?}"
    );
    assert!(!status.members.is_empty(), "no members: {status:?}");
    let leader = status.leader.expect("a healthy store knows its leader");
    let leaders: Vec<&Member> = status
        .members
        .iter()
        .filter(|member| member.role == MemberRole::Leader)
        .collect();
    assert_eq!(leaders.len(), 1, "exactly one member is the leader: {status:?}");
    assert_eq!(leaders[0].id, leader);
    assert!(
        status.members.iter().any(|member| member.id == status.member_id),
        "the answering member is listed"
    );
    assert!(status.raft_term > 0, "a store with a leader has a term above 0");
    let healthy = status.members.iter().filter(|member| member.healthy).count();
    assert!(
        healthy * 2 > status.members.len(),
        "a healthy store has a healthy majority: {status:?}"
    );
}
