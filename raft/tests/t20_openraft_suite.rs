//! openraft's own storage conformance suite against the WAL log store and the MVCC state machine.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite_passes() {
    let dir = tempfile::tempdir().expect("tempdir");
    kuboard_raft::testing::run_openraft_storage_suite(dir.path())
        .await
        .expect("openraft storage suite");
}
