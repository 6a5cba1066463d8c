//! The records a workload writes and a checker reads: one JSON line per completed operation.
//!
//! Each operation carries its invoke and completion times on one monotonic clock (nanoseconds since
//! the start of the run) and an outcome in Jepsen's sense: `ok` (it took effect, between its invoke and
//! its completion), `fail` (it certainly did not take effect) or `info` (indeterminate: it may take
//! effect at any time after its invoke, even after the run ends).

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// What became of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It took effect between its invoke and its completion.
    Ok,
    /// It certainly did not take effect.
    Fail,
    /// Indeterminate (a timeout, a lost connection): it may or may not have taken effect.
    Info,
}

/// A register operation and, for a read, the value it observed (`None`: the key did not exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "lowercase")]
pub enum RegisterCall {
    Read { value: Option<i64> },
    Write { value: i64 },
    Cas { from: i64, to: i64 },
}

/// One completed operation on one register (one key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterOp {
    /// Position in the history, unique within a run.
    pub index: usize,
    /// The logical client process; a process that saw an indeterminate outcome is retired and its client
    /// continues under a new process number, as in Jepsen.
    pub process: u64,
    /// The replica the request was sent to.
    pub node: String,
    pub key: String,
    #[serde(flatten)]
    pub call: RegisterCall,
    pub outcome: Outcome,
    pub invoke_ns: u64,
    pub complete_ns: u64,
    /// Why the operation failed or is indeterminate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One completed operation of the set, watch or HTTP workload: what was asked (`f`, `key`, `value`),
/// of which member, and what became of it. Register operations keep their own type ([`RegisterOp`]),
/// which the linearizability checker reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Position in the workload's history.
    pub index: usize,
    /// The logical client process (a new one after an indeterminate outcome).
    pub process: u64,
    /// The member the request was sent to.
    pub node: String,
    /// The operation: `add`, `read`, `put`, `login`, `create-user`, `get-user`, `me`, ….
    pub f: String,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The store revision the operation produced (a put) or read at, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    pub outcome: Outcome,
    pub invoke_ns: u64,
    pub complete_ns: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One line of `history.jsonl`: an operation of any workload, tagged with the workload's name.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryLine<'a, T: Serialize> {
    pub workload: &'static str,
    #[serde(flatten)]
    pub op: &'a T,
}

/// What the plots need of an operation, whichever workload it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedOp {
    /// `register read`, `set add`, `http create-user`, …
    pub kind: String,
    pub outcome: Outcome,
    pub invoke_ns: u64,
    pub complete_ns: u64,
}

impl TimedOp {
    pub fn of_register(op: &RegisterOp) -> TimedOp {
        TimedOp::of_register_in("register", op)
    }

    /// A register operation of `workload` (`register`, `agent-register`).
    pub fn of_register_in(workload: &str, op: &RegisterOp) -> TimedOp {
        let f = match op.call {
            RegisterCall::Read { .. } => "read",
            RegisterCall::Write { .. } => "write",
            RegisterCall::Cas { .. } => "cas",
        };
        TimedOp {
            kind: format!("{workload} {f}"),
            outcome: op.outcome,
            invoke_ns: op.invoke_ns,
            complete_ns: op.complete_ns,
        }
    }

    pub fn of_op(workload: &str, op: &Op) -> TimedOp {
        TimedOp {
            kind: format!("{workload} {}", op.f),
            outcome: op.outcome,
            invoke_ns: op.invoke_ns,
            complete_ns: op.complete_ns,
        }
    }
}

/// Append `ops` to an open JSON lines writer, each tagged with `workload`.
pub fn append_jsonl<T: Serialize>(writer: &mut impl Write, workload: &'static str, ops: &[T]) -> anyhow::Result<()> {
    for op in ops {
        serde_json::to_writer(&mut *writer, &HistoryLine { workload, op }).context("encode a history line")?;
        writer.write_all(b"\n").context("write a history line")?;
    }
    Ok(())
}

/// Write `ops` as JSON lines.
pub fn write_jsonl<T: Serialize>(path: &Path, ops: &[T]) -> anyhow::Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    for op in ops {
        serde_json::to_writer(&mut writer, op).context("encode a history line")?;
        writer.write_all(b"\n").context("write a history line")?;
    }
    writer.flush().with_context(|| format!("write {}", path.display()))
}

/// Read JSON lines written by [`write_jsonl`].
pub fn read_jsonl<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<Vec<T>> {
    let file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut ops = Vec::new();
    for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let op =
            serde_json::from_str(&line).with_context(|| format!("parse line {} of {}", number + 1, path.display()))?;
        ops.push(op);
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_ops_round_trip_through_json_lines() {
        let ops = vec![
            RegisterOp {
                index: 0,
                process: 3,
                node: "n1".into(),
                key: "r0".into(),
                call: RegisterCall::Cas { from: 1, to: 2 },
                outcome: Outcome::Info,
                invoke_ns: 10,
                complete_ns: 20,
                error: Some("deadline exceeded".into()),
            },
            RegisterOp {
                index: 1,
                process: 4,
                node: "n2".into(),
                key: "r0".into(),
                call: RegisterCall::Read { value: None },
                outcome: Outcome::Ok,
                invoke_ns: 11,
                complete_ns: 12,
                error: None,
            },
        ];
        let dir = tempfile::tempdir().expect("create a temp dir");
        let path = dir.path().join("history.jsonl");
        write_jsonl(&path, &ops).expect("write the history");
        let text = std::fs::read_to_string(&path).expect("read the history back");
        assert!(
            text.lines()
                .next()
                .expect("a first line")
                .contains(r#""f":"cas","from":1,"to":2"#),
            "{text}"
        );
        let back: Vec<RegisterOp> = read_jsonl(&path).expect("parse the history");
        assert_eq!(back, ops);
    }
}
