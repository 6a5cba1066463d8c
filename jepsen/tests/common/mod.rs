//! Shared by the suite's integration tests.

use std::path::PathBuf;

/// The `kuboard` binary cargo built beside the test executable (`target/<profile>/kuboard`).
pub fn kuboard_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let binary = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test executable lives in target/<profile>/deps")
        .join("kuboard");
    assert!(
        binary.is_file(),
        "{} is missing: build it first with `cargo build -p kuboard`",
        binary.display()
    );
    binary
}
