#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kuboard_raft::fuzzing::raft_rpcs(data));
