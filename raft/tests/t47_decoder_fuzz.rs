//! Random and mutated bytes fed to the decoders reachable from outside the crate: the codec with
//! every log command and state machine answer, and the files a replica reads on start (snapshot
//! files here; WAL chunks in `log_store`'s own property tests and in t45). None may panic, and a
//! lying length prefix may not make the decoder allocate more than a small bound.
//!
//! The decoders private to other modules have their own random-input tests next to them: the peer
//! frames and handshake in `peer/tests.rs`, the MVCC snapshot stream and key parsers in `mvcc`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use kuboard_raft::codec::{self, CodecError};
use kuboard_raft::command::{Command, CommandResponse};
use kuboard_raft::{RaftStore, RaftStoreConfig};
use kuboard_storage::*;
use proptest::prelude::*;

mod common;
use common::single_member_config;

/// Counts the largest single allocation made by a thread while it is armed, to show that a decode
/// allocates in proportion to its input and not to the lengths the input claims.
struct LargestAllocation;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

unsafe impl GlobalAlloc for LargestAllocation {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.try_with(Cell::get).unwrap_or(false) {
            LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        }
        // SAFETY: the layout is passed on unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by the system allocator with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ARMED.try_with(Cell::get).unwrap_or(false) {
            LARGEST.fetch_max(new_size, Ordering::Relaxed);
        }
        // SAFETY: `ptr` was allocated by the system allocator with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

/// The largest single allocation any decode of this test binary may make: serde preallocates at
/// most 1 MiB for a sequence whatever length it claims.
const ALLOCATION_BOUND: usize = 2 * 1024 * 1024;

/// Run `f` with this thread's allocations measured; returns the largest one.
fn largest_allocation_of(f: impl FnOnce()) -> usize {
    // Tests run on several threads; each measures only its own allocations, and the maximum over
    // all of them must stay under the bound anyway.
    ARMED.with(|armed| armed.set(true));
    f();
    ARMED.with(|armed| armed.set(false));
    LARGEST.load(Ordering::Relaxed)
}

/// One of every command and answer shape, nested transactions included.
fn sample_commands() -> Vec<Command> {
    let put = PutRequest {
        lease: 7,
        prev_kv: true,
        ..PutRequest::new("users/admin", "{\"name\":\"admin\"}")
    };
    let txn = TxnRequest {
        compare: vec![
            Compare::new("a", CompareResult::Equal, CompareTarget::Version(3)),
            Compare::new("b", CompareResult::Greater, CompareTarget::Value(b"x".to_vec())),
            Compare::new("c", CompareResult::Less, CompareTarget::ModRevision(9)),
            Compare::new("d", CompareResult::NotEqual, CompareTarget::Lease(1)),
        ],
        success: vec![
            TxnOp::Put(put.clone()),
            TxnOp::Range(RangeRequest::prefix("users/")),
            TxnOp::DeleteRange(DeleteRangeRequest::prefix("sessions/")),
            TxnOp::Txn(TxnRequest {
                compare: vec![Compare::new(
                    "e",
                    CompareResult::Equal,
                    CompareTarget::CreateRevision(0),
                )],
                success: vec![TxnOp::Put(PutRequest::new("e", "1"))],
                failure: vec![],
            }),
        ],
        failure: vec![TxnOp::Range(RangeRequest::key("a"))],
    };
    vec![
        Command::Put(put),
        Command::DeleteRange(DeleteRangeRequest::prefix("k/")),
        Command::Txn(txn),
        Command::Compact(CompactRequest { revision: 42 }),
        Command::LeaseGrant { id: 99, ttl: 60 },
        Command::LeaseRevoke { id: 99 },
    ]
}

fn sample_responses() -> Vec<CommandResponse> {
    let header = ResponseHeader {
        revision: 12,
        member_id: 1,
        raft_term: 3,
    };
    let kv = KeyValue {
        key: b"users/admin".to_vec(),
        value: b"{}".to_vec(),
        create_revision: 2,
        mod_revision: 12,
        version: 4,
        lease: 0,
    };
    vec![
        CommandResponse::Put(PutResponse {
            header,
            prev_kv: Some(kv.clone()),
        }),
        CommandResponse::DeleteRange(DeleteRangeResponse {
            header,
            deleted: 1,
            prev_kvs: vec![kv.clone()],
        }),
        CommandResponse::Txn(TxnResponse {
            header,
            succeeded: true,
            responses: vec![
                TxnOpResponse::Range(RangeResponse {
                    header,
                    kvs: vec![kv],
                    more: false,
                    count: 1,
                }),
                TxnOpResponse::Put(PutResponse { header, prev_kv: None }),
            ],
        }),
        CommandResponse::Compact(CompactResponse { header }),
        CommandResponse::LeaseGrant(LeaseGrantResponse { header, id: 5, ttl: 10 }),
        CommandResponse::LeaseRevoke(LeaseRevokeResponse { header }),
        CommandResponse::Error(StoreError::Compacted {
            requested: 3,
            compact_revision: 9,
        }),
        CommandResponse::Error(StoreError::InvalidArgument("empty key".into())),
        CommandResponse::Applied(header),
    ]
}

/// Decode `bytes` as every record type of the log and check the bounds.
fn decode_all(bytes: &[u8]) {
    let largest = largest_allocation_of(|| {
        let _ = codec::decode::<Command>(bytes);
        let _ = codec::decode::<CommandResponse>(bytes);
        let _ = codec::decode_with_limit::<Command>(bytes, 64);
    });
    assert!(largest <= ALLOCATION_BOUND, "a decode allocated {largest} bytes");
}

/// Overwrite, insert, remove or cut bytes of `bytes`.
fn mutate(bytes: &mut Vec<u8>, mutations: &[(usize, u8, u8)]) {
    for &(at, op, byte) in mutations {
        let at = at % (bytes.len() + 1);
        match op {
            0 if at < bytes.len() => bytes[at] = byte,
            1 => bytes.insert(at, byte),
            2 if at < bytes.len() => {
                bytes.remove(at);
            }
            _ => bytes.truncate(at),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic_the_codec(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        decode_all(&bytes);
        // The same bytes behind a valid format version reach the record decoders themselves.
        let mut versioned = vec![codec::FORMAT_VERSION];
        versioned.extend_from_slice(&bytes);
        decode_all(&versioned);
    }

    /// Mutations of valid records decode to an error or to a record that encodes back to itself.
    #[test]
    fn mutated_records_fail_or_decode_to_a_stable_record(
        which in 0usize..100,
        mutations in proptest::collection::vec((any::<usize>(), 0u8..4, any::<u8>()), 1..4),
    ) {
        let commands = sample_commands();
        let responses = sample_responses();
        let original = if which % 2 == 0 {
            codec::encode(&commands[which / 2 % commands.len()]).expect("encode")
        } else {
            codec::encode(&responses[which / 2 % responses.len()]).expect("encode")
        };
        let mut bytes = original;
        mutate(&mut bytes, &mutations);
        decode_all(&bytes);
        if let Ok(command) = codec::decode::<Command>(&bytes) {
            let again = codec::encode(&command).expect("re-encode");
            prop_assert_eq!(codec::decode::<Command>(&again).expect("decode again"), command);
        }
        if let Ok(response) = codec::decode::<CommandResponse>(&bytes) {
            let again = codec::encode(&response).expect("re-encode");
            prop_assert_eq!(codec::decode::<CommandResponse>(&again).expect("decode again"), response);
        }
    }
}

#[test]
fn every_sample_round_trips() {
    for command in sample_commands() {
        let bytes = codec::encode(&command).expect("encode");
        assert_eq!(codec::decode::<Command>(&bytes).expect("decode"), command);
    }
    for response in sample_responses() {
        let bytes = codec::encode(&response).expect("encode");
        assert_eq!(codec::decode::<CommandResponse>(&bytes).expect("decode"), response);
    }
}

/// A put whose key claims 60 MiB (under the 64 MiB record limit) in a 20-byte record: the decode
/// fails without allocating anything like the claimed size.
#[test]
fn lying_length_prefix_does_not_allocate_what_it_claims() {
    let claimed: u32 = 60 * 1024 * 1024;
    // Format version, variant 0 (put), then bincode's varint for a u32 length: 0xfc and 4 bytes.
    let mut bytes = vec![codec::FORMAT_VERSION, 0, 0xfc];
    bytes.extend_from_slice(&claimed.to_le_bytes());
    bytes.extend_from_slice(b"short key");
    let mut result = None;
    let largest = largest_allocation_of(|| result = Some(codec::decode::<Command>(&bytes)));
    assert!(matches!(result, Some(Err(CodecError::Decode(_)))), "{result:?}");
    assert!(
        largest <= ALLOCATION_BOUND,
        "decoding a lying length allocated {largest} bytes"
    );
}

fn config(data_dir: &Path) -> RaftStoreConfig {
    single_member_config(data_dir, 10)
}

async fn assert_all_keys(store: &RaftStore, count: u32) {
    let response = store.range(RangeRequest::prefix("fuzz/")).await.expect("range");
    assert_eq!(response.count, i64::from(count), "every acknowledged key is there");
}

/// Snapshot files of random bytes, and a real snapshot file with random bytes in its header, are
/// read on start: the start never panics, and when it succeeds every acknowledged key is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_snapshot_files_never_panic_the_start() {
    const KEYS: u32 = 25;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RaftStore::open(config(dir.path())).await.expect("open");
    for index in 0..KEYS {
        store
            .put(PutRequest::new(format!("fuzz/{index}"), "v"))
            .await
            .expect("put");
    }
    store.shutdown().await.expect("shutdown");
    let snapshot_dir = dir.path().join("raft").join("snapshots");
    let real: Vec<_> = std::fs::read_dir(&snapshot_dir)
        .expect("list snapshots")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "snap"))
        .collect();
    assert_eq!(real.len(), 1, "a snapshot was built: {real:?}");
    let pristine = std::fs::read(&real[0]).expect("read snapshot");

    let (mut refused, mut opened) = (0, 0);
    for case in 0..12u32 {
        // A file of random bytes beside the real one, with a name that sorts anywhere.
        let junk: Vec<u8> = (0..rand::random::<usize>() % 300).map(|_| rand::random()).collect();
        std::fs::write(snapshot_dir.join(format!("snapshot-{case}-1-{case}.snap")), junk).expect("write junk");
        // A few random bytes anywhere in the real file (its checksum must catch every one).
        let mut bytes = pristine.clone();
        for _ in 0..1 + case % 3 {
            let at = rand::random::<usize>() % bytes.len();
            bytes[at] = rand::random();
        }
        std::fs::write(&real[0], &bytes).expect("write damaged snapshot");
        match RaftStore::open(config(dir.path())).await {
            Ok(store) => {
                assert_all_keys(&store, KEYS).await;
                store.shutdown().await.expect("shutdown");
                opened += 1;
            }
            Err(e) => {
                println!("start refused with a damaged snapshot: {e}");
                refused += 1;
            }
        }
        // Restore the real snapshot for the next case (a start may have replaced it).
        for entry in std::fs::read_dir(&snapshot_dir).expect("list snapshots") {
            let _ = std::fs::remove_file(entry.expect("dir entry").path());
        }
        std::fs::write(&real[0], &pristine).expect("restore snapshot");
    }
    println!("damaged snapshot files: {opened} starts served every key, {refused} refused");
}
