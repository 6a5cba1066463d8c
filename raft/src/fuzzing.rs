//! Fuzz targets for every decoder of this crate that takes bytes from the network, and a small
//! seeded mutation engine that drives them on stable Rust within a time budget.
//!
//! Each target is a plain function of a byte slice that must never panic, whatever the bytes; it
//! returns nothing and asserts nothing else (a decoder answering with an error is the expected
//! outcome for most inputs). [`run`] feeds a target mutations of its seed inputs (valid encodings)
//! for a time budget; the bounded run of the default test suite is `raft/tests/t49_network_fuzz.rs`
//! (and `src/etcd_api/fuzz_tests.rs` for the server's decoders), the longer one is documented in
//! `docs/fuzzing.md` (more time through `KUBOARD_FUZZ_SECONDS`, or libFuzzer through `cargo fuzz`
//! on nightly with the targets in `fuzz/`).
//!
//! Not a stable API: for the product's own tests and fuzzing only.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub use crate::peer::fuzz_targets::{
    handshake_seeds, peer_client_handshake, peer_frames, peer_seeds, peer_server_handshake, raft_rpc_seeds, raft_rpcs,
    sealed_frames, sealed_seeds, snapshot_chunk_seeds, snapshot_chunks,
};

/// Time per target when `KUBOARD_FUZZ_SECONDS` is not set.
pub const DEFAULT_SECONDS_PER_TARGET: f64 = 3.0;

/// The time budget of one target: `KUBOARD_FUZZ_SECONDS` (fractional seconds), or the default.
pub fn budget() -> Duration {
    std::env::var("KUBOARD_FUZZ_SECONDS")
        .ok()
        .and_then(|value| value.trim().parse::<f64>().ok())
        .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs_f64(DEFAULT_SECONDS_PER_TARGET))
}

/// The seed of the mutation engine: `KUBOARD_FUZZ_SEED`, or a fixed one so that a run repeats.
pub fn rng_seed() -> u64 {
    std::env::var("KUBOARD_FUZZ_SEED")
        .ok()
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0x6b75_626f_6172)
}

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    pub inputs: u64,
    pub seed: u64,
}

/// Feed `target` every seed, then mutations of the seeds, until `budget` has passed (at least
/// `min_inputs` inputs, at most `max_inputs`). A panic in the target is re-raised after the input
/// that caused it is printed in hex, so that it can become a regression test.
pub fn run(
    name: &str,
    seeds: &[Vec<u8>],
    budget: Duration,
    min_inputs: u64,
    max_inputs: u64,
    mut target: impl FnMut(&[u8]),
) -> RunSummary {
    let seed = rng_seed();
    let mut mutator = Mutator::new(seed);
    let started = Instant::now();
    let mut inputs = 0u64;
    let mut feed = |input: &[u8], inputs: &mut u64| {
        *inputs += 1;
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| target(input))) {
            eprintln!(
                "fuzz target {name} panicked on input {} (seed {seed}, input #{inputs}): {}",
                hex(input),
                panic_message(&panic)
            );
            resume_unwind(panic);
        }
    };
    for input in seeds {
        feed(input, &mut inputs);
    }
    let empty = [Vec::new()];
    let pool = if seeds.is_empty() { &empty[..] } else { seeds };
    while inputs < max_inputs && (inputs < min_inputs || started.elapsed() < budget) {
        let input = mutator.mutate(pool);
        feed(&input, &mut inputs);
    }
    eprintln!(
        "fuzz target {name}: {inputs} inputs in {:.1} s, no panic (seed {seed})",
        started.elapsed().as_secs_f64()
    );
    RunSummary { inputs, seed }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic".to_string())
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Bytes from lower-case or upper-case hex; `None` for anything else.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

/// Structure-unaware byte mutations of seed inputs, the usual ones of coverage-less fuzzers: bit
/// flips, interesting values (0, 0xff, 0x7f, 0x80, lengths) over single bytes and 4-byte big-endian
/// and little-endian words, insertions, deletions, duplications, truncation and splicing of two
/// seeds. Deterministic for a given seed.
pub struct Mutator {
    rng: StdRng,
}

const INTERESTING_WORDS: [u32; 9] = [0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x7fff_ffff, 0x8000_0000, u32::MAX];

impl Mutator {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// A mutation of one of `seeds` (1 to 8 mutations stacked).
    pub fn mutate(&mut self, seeds: &[Vec<u8>]) -> Vec<u8> {
        let mut input = seeds[self.rng.gen_range(0..seeds.len())].clone();
        for _ in 0..self.rng.gen_range(1..=8) {
            self.mutate_once(&mut input, seeds);
        }
        input
    }

    fn mutate_once(&mut self, input: &mut Vec<u8>, seeds: &[Vec<u8>]) {
        let rng = &mut self.rng;
        let len = input.len();
        match rng.gen_range(0..10) {
            0 if len > 0 => {
                let at = rng.gen_range(0..len);
                input[at] ^= 1 << rng.gen_range(0..8);
            }
            1 if len > 0 => {
                let at = rng.gen_range(0..len);
                input[at] = rng.gen();
            }
            2 if len >= 4 => {
                let at = rng.gen_range(0..=len - 4);
                let word = INTERESTING_WORDS[rng.gen_range(0..INTERESTING_WORDS.len())];
                let bytes = if rng.gen() {
                    word.to_be_bytes()
                } else {
                    word.to_le_bytes()
                };
                input[at..at + 4].copy_from_slice(&bytes);
            }
            3 => {
                let at = rng.gen_range(0..=len);
                let count = rng.gen_range(1..=16);
                let junk: Vec<u8> = (0..count).map(|_| rng.gen()).collect();
                input.splice(at..at, junk);
            }
            4 if len > 0 => {
                let at = rng.gen_range(0..len);
                let end = (at + rng.gen_range(1..=16)).min(len);
                input.drain(at..end);
            }
            5 if len > 0 => {
                let at = rng.gen_range(0..len);
                let end = (at + rng.gen_range(1..=64)).min(len);
                let copy = input[at..end].to_vec();
                let to = rng.gen_range(0..=input.len());
                input.splice(to..to, copy);
            }
            6 if len > 0 => input.truncate(rng.gen_range(0..len)),
            7 => {
                let other = &seeds[rng.gen_range(0..seeds.len())];
                if !other.is_empty() {
                    let from = rng.gen_range(0..other.len());
                    let at = rng.gen_range(0..=len);
                    input.truncate(at);
                    input.extend_from_slice(&other[from..]);
                }
            }
            8 if len > 0 => {
                let at = rng.gen_range(0..len);
                input[at] = [0, 0xff, 0x7f, 0x80, 1][rng.gen_range(0..5)];
            }
            _ => {
                let junk: Vec<u8> = (0..rng.gen_range(0..=32)).map(|_| rng.gen()).collect();
                input.extend_from_slice(&junk);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_repeat_for_a_seed_and_change_the_input() {
        let seeds = vec![b"the quick brown fox".to_vec(), vec![0u8; 40]];
        let first: Vec<Vec<u8>> = {
            let mut mutator = Mutator::new(7);
            (0..50).map(|_| mutator.mutate(&seeds)).collect()
        };
        let again: Vec<Vec<u8>> = {
            let mut mutator = Mutator::new(7);
            (0..50).map(|_| mutator.mutate(&seeds)).collect()
        };
        assert_eq!(first, again);
        assert!(first.iter().filter(|input| !seeds.contains(input)).count() > 40);
        assert_eq!(unhex(&hex(&first[3])), Some(first[3].clone()));
        assert_eq!(unhex("0g"), None);
    }

    #[test]
    fn a_panicking_target_is_reported_with_its_input() {
        let outcome = std::panic::catch_unwind(|| {
            run("panics", &[vec![1, 2, 3]], Duration::from_millis(10), 1, 10, |input| {
                assert!(input.len() < 3, "long input");
            })
        });
        assert!(outcome.is_err(), "the target's panic reaches the caller");
    }
}
