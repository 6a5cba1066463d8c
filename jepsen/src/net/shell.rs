//! Running the system tools that build and break the test network (`ip`, `iptables-restore`).

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

/// Run `program args…` to completion and return its standard output; a non-zero exit is an error
/// carrying the command line and its standard error.
pub fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    run_with_input(program, args, None)
}

/// Like [`run`], feeding `input` on standard input.
pub fn run_with_input(program: &str, args: &[&str], input: Option<&str>) -> anyhow::Result<String> {
    let command_line = format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("start `{command_line}` (the suite needs root, iproute2 and iptables)"))?;
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("stdin was requested as a pipe");
        stdin
            .write_all(input.as_bytes())
            .with_context(|| format!("feed `{command_line}`"))?;
    }
    let output = child
        .wait_with_output()
        .with_context(|| format!("wait for `{command_line}`"))?;
    if !output.status.success() {
        bail!(
            "`{command_line}` exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
