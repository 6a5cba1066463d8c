//! Records the git commit the binary is built from, for `kuboard version` and the build-info metric.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=KUBOARD_GIT_COMMIT");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    let commit = std::env::var("KUBOARD_GIT_COMMIT")
        .ok()
        .filter(|commit| !commit.is_empty())
        .or_else(git_commit);
    println!(
        "cargo:rustc-env=KUBOARD_GIT_COMMIT={}",
        commit.unwrap_or_else(|| "unknown".to_string())
    );
}

/// The short commit of HEAD, or nothing when the source is not a git checkout (a release tarball).
fn git_commit() -> Option<String> {
    let output = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let commit = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (!commit.is_empty()).then_some(commit)
}
