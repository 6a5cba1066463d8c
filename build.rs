//! Build steps of the `kuboard` binary:
//!
//! - records the git commit the binary is built from, for `kuboard version` and the build-info metric;
//! - puts the web console into the binary (served by `src/console`).
//!
//! # The console
//!
//! A **release** build (`cargo build --release`) carries the console built from `web/`: when
//! `web/dist` is missing or older than the sources in `web/` and Node 20+ with npm is on the PATH, this script
//! runs `npm ci` (when `web/node_modules` is missing) and `npm run build` in `web/`; a failing npm
//! build fails the cargo build. `web/dist` is then compressed (brotli) into the binary.
//!
//! A **debug** build never runs npm, so that it stays fast: it serves `web/dist` from disk as it is
//! (rebuild it with `npm run build` in `web/`) or, when there is none, the placeholder page.
//!
//! Either build serves a small page naming the command that builds the console when there is no
//! `web/dist` and npm cannot make one (no Node on the machine), never a blank page.
//! `KUBOARD_SKIP_CONSOLE_BUILD=1` stops this script from running npm in any build (a release build
//! then embeds whatever `web/dist` holds, or the placeholder).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

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
    embed_console();
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

/// What the console's build depends on, relative to `web/`.
const CONSOLE_SOURCES: [&str; 8] = [
    "src",
    "public",
    "index.html",
    "package.json",
    "package-lock.json",
    "vite.config.ts",
    "tsconfig.json",
    "tsconfig.app.json",
];

fn embed_console() {
    println!("cargo:rerun-if-env-changed=KUBOARD_SKIP_CONSOLE_BUILD");
    println!("cargo:rerun-if-env-changed=PATH");
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let web = manifest_dir.join("web");
    let dist = web.join("dist");
    let release = std::env::var("PROFILE").is_ok_and(|profile| profile == "release");
    let skip = std::env::var("KUBOARD_SKIP_CONSOLE_BUILD").is_ok_and(|value| value == "1");
    if web.is_dir() {
        for source in CONSOLE_SOURCES {
            let path = web.join(source);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }

    if release && !skip && web.join("package.json").is_file() && dist_is_stale(&web, &dist) {
        if npm_present() {
            build_console(&web);
        } else {
            println!(
                "cargo:warning=web/dist is missing or older than web/src and no Node 20 with npm is installed: \
                 this binary serves {} (install Node 20 and npm, then rebuild)",
                if dist.join("index.html").is_file() {
                    "the old web/dist"
                } else {
                    "a page that says how to build the console"
                }
            );
        }
    }

    let served = if dist.join("index.html").is_file() {
        dist
    } else {
        // Notices a `web/dist` that appears later (`npm run build` by hand).
        if web.is_dir() {
            println!("cargo:rerun-if-changed={}", web.display());
        }
        write_placeholder()
    };
    // memory-serve would print a warning line per file on every build.
    std::env::set_var("MEMORY_SERVE_QUIET", "1");
    // Embedded in release builds; a debug build reads the files from disk at request time.
    memory_serve::load_directory_with_embed(&served, release);
}

/// Whether `web/dist` is missing or older than anything it is built from.
fn dist_is_stale(web: &Path, dist: &Path) -> bool {
    let Some(built) = modified(&dist.join("index.html")) else {
        return true;
    };
    CONSOLE_SOURCES
        .iter()
        .filter_map(|source| newest_modification(&web.join(source)))
        .any(|source_time| source_time > built)
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|metadata| metadata.modified()).ok()
}

/// The newest modification time of a file, or of any file under a directory.
fn newest_modification(path: &Path) -> Option<SystemTime> {
    let metadata = std::fs::metadata(path).ok()?;
    if !metadata.is_dir() {
        return metadata.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| newest_modification(&entry.path()))
        .max()
}

/// npm, with a Node new enough for the console's Vite (20 or later).
fn npm_present() -> bool {
    let node_major = Command::new("node")
        .arg("--version")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| {
            let version = String::from_utf8_lossy(&output.stdout)
                .trim()
                .trim_start_matches('v')
                .to_string();
            version.split('.').next()?.parse::<u32>().ok()
        });
    let npm = Command::new("npm")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    npm && node_major.is_some_and(|major| major >= 20)
}

/// `npm ci` (only when `node_modules` is missing) and `npm run build` in `web/`; a failure stops
/// the cargo build, since a release binary without its console would be a broken product.
fn build_console(web: &Path) {
    if !web.join("node_modules").is_dir() {
        run_npm(web, &["ci", "--no-audit", "--no-fund"]);
    }
    run_npm(web, &["run", "build"]);
}

fn run_npm(web: &Path, args: &[&str]) {
    println!(
        "cargo:warning=building the web console: npm {} (in web/)",
        args.join(" ")
    );
    let status = Command::new("npm").args(args).current_dir(web).status();
    match status {
        Ok(status) if status.success() => {}
        Ok(status) => panic!(
            "`npm {}` in web/ failed ({status}); fix the console build, or build without it with \
             KUBOARD_SKIP_CONSOLE_BUILD=1",
            args.join(" ")
        ),
        Err(error) => panic!("run `npm {}` in web/: {error}", args.join(" ")),
    }
}

/// The page served when the binary carries no console: it names the commands that build it.
/// Its style is a file of its own, since the Content-Security-Policy allows no inline script and
/// the page needs none.
fn write_placeholder() -> PathBuf {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let directory = out_dir.join("console-placeholder");
    std::fs::create_dir_all(directory.join("assets")).expect("create the console placeholder directory in OUT_DIR");
    std::fs::write(directory.join("index.html"), PLACEHOLDER_HTML).expect("write the console placeholder page");
    std::fs::write(directory.join("assets/placeholder.css"), PLACEHOLDER_CSS)
        .expect("write the console placeholder style");
    directory
}

const PLACEHOLDER_HTML: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Kuboard: the web console is not built</title>
<link rel="stylesheet" href="/assets/placeholder.css">
</head>
<body>
<main>
<h1>Kuboard</h1>
<p>This <code>kuboard</code> binary was built without its web console (Node and npm were not found,
or <code>KUBOARD_SKIP_CONSOLE_BUILD=1</code> was set). The REST API works as usual under
<code>/kuboard-api/</code>.</p>
<p>To build the console into the binary, install Node 20 with npm and run, from the source tree:</p>
<pre>cargo build --release</pre>
<p>or build it by hand first: <code>cd web &amp;&amp; npm ci &amp;&amp; npm run build</code>.</p>
<p lang="zh-CN">此 kuboard 程序构建时未包含 Web 控制台。安装 Node 20 和 npm 后，在源码目录执行
<code>cargo build --release</code> 即可将控制台构建进程序。</p>
</main>
</body>
</html>
"#;

const PLACEHOLDER_CSS: &str = "body { font-family: sans-serif; margin: 3em auto; max-width: 44em; \
color: #1f2d3d; line-height: 1.5; padding: 0 1em; }\npre, code { background: #f2f4f7; padding: 0.1em 0.3em; }\n\
pre { padding: 0.8em; }\n";
