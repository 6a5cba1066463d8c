//! What this binary is: version, commit and compiled-in features.

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const GIT_COMMIT: &str = env!("KUBOARD_GIT_COMMIT");

/// The capabilities compiled into this build, as `kuboard version` lists them.
pub const FEATURES: &[&str] = &["store-raft"];

/// The text `kuboard version` prints.
pub fn describe(json: bool) -> String {
    if json {
        serde_json::json!({ "version": VERSION, "commit": GIT_COMMIT, "features": FEATURES }).to_string()
    } else {
        format!(
            "kuboard {VERSION}\ncommit: {GIT_COMMIT}\nfeatures: {}",
            FEATURES.join(", ")
        )
    }
}
