//! The bounded fuzz run of the default suite for every decoder of the replicated store that takes
//! bytes from the network: peer frames, both sides of the handshake, sealed frames, the Raft RPCs
//! and forwarded application messages inside them, and snapshot chunks. Each target gets
//! mutations of valid encodings for `KUBOARD_FUZZ_SECONDS` (default 3 s; the whole binary stays
//! under 30 s on two cores) and must not panic. `docs/fuzzing.md` has the longer runs.
//!
//! Inputs that once failed are kept below as regression tests.

use kuboard_raft::fuzzing::{self, budget, run};

/// Enough inputs that a slow machine still explores past the seeds.
const MIN_INPUTS: u64 = 2_000;
const MAX_INPUTS: u64 = 50_000_000;

fn fuzz(name: &str, seeds: Vec<Vec<u8>>, target: fn(&[u8])) {
    let summary = run(name, &seeds, budget(), MIN_INPUTS, MAX_INPUTS, target);
    assert!(summary.inputs >= MIN_INPUTS, "{name}: only {} inputs", summary.inputs);
}

#[test]
fn peer_frames_never_panic() {
    fuzz("peer_frames", fuzzing::peer_seeds(), fuzzing::peer_frames);
}

#[test]
fn the_server_handshake_never_panics_nor_passes_without_the_secret() {
    fuzz(
        "peer_server_handshake",
        fuzzing::handshake_seeds(),
        fuzzing::peer_server_handshake,
    );
}

#[test]
fn the_client_handshake_never_panics_nor_passes_without_the_secret() {
    fuzz(
        "peer_client_handshake",
        fuzzing::handshake_seeds(),
        fuzzing::peer_client_handshake,
    );
}

#[test]
fn sealed_frames_never_panic() {
    fuzz("sealed_frames", fuzzing::sealed_seeds(), fuzzing::sealed_frames);
}

#[test]
fn raft_rpcs_and_forwarded_messages_never_panic() {
    fuzz("raft_rpcs", fuzzing::raft_rpc_seeds(), fuzzing::raft_rpcs);
}

#[test]
fn snapshot_chunks_never_panic() {
    fuzz(
        "snapshot_chunks",
        fuzzing::snapshot_chunk_seeds(),
        fuzzing::snapshot_chunks,
    );
}
