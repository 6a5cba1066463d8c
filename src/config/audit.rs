//! The audit trail: `KUBOARD_DISABLE_AUDIT`, `KUBOARD_AUDIT_POLICY`, `KUBOARD_QUEST_DB_URI` (a secret:
//! it may carry a password), `KUBOARD_AUDIT_READS`, `KUBOARD_AUDIT_LOCAL_MAX_BYTES`.

use crate::config::reader::Reader;
use crate::config::values::{ConfigError, Secret};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditPolicy {
    Disabled,
    IgnoreErrors,
    Buffered,
    Strict,
}

impl AuditPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditPolicy::Disabled => "disabled",
            AuditPolicy::IgnoreErrors => "ignore-errors",
            AuditPolicy::Buffered => "buffered",
            AuditPolicy::Strict => "strict",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    pub policy: AuditPolicy,
    pub quest_db_uri: Option<Secret>,
    /// `KUBOARD_AUDIT_READS`: reads (GET) are audited too, not only changes and denials.
    pub audit_reads: bool,
    /// `KUBOARD_AUDIT_LOCAL_MAX_BYTES`: the bound of the local audit log (no QuestDB configured).
    pub local_max_bytes: u64,
}

/// The local audit log keeps at most this much by default: 256 MiB.
pub const DEFAULT_AUDIT_LOCAL_MAX_BYTES: u64 = 256 * 1024 * 1024;

pub(super) fn parse_audit(reader: &Reader<'_>) -> Result<AuditConfig, ConfigError> {
    let disable_audit = reader.bool("KUBOARD_DISABLE_AUDIT")?.unwrap_or(false);
    let configured_policy = match reader.get("KUBOARD_AUDIT_POLICY") {
        None => AuditPolicy::IgnoreErrors,
        Some((label, value)) => match value.trim().to_ascii_lowercase().as_str() {
            "ignore-errors" => AuditPolicy::IgnoreErrors,
            "buffered" => AuditPolicy::Buffered,
            "strict" => AuditPolicy::Strict,
            _ => {
                return Err(ConfigError::bad(
                    label,
                    value,
                    "expected one of ignore-errors, buffered, strict",
                ))
            }
        },
    };
    let quest_db_uri = match reader.get("KUBOARD_QUEST_DB_URI") {
        None => None,
        Some((label, value)) => {
            if !(value.starts_with("postgresql://") || value.starts_with("postgres://")) || value.len() < 14 {
                return Err(ConfigError::bad_secret(
                    label,
                    "expected a URI like postgresql://user:pass@host:8812/qdb",
                ));
            }
            Some(Secret::new(value))
        }
    };
    let audit_reads = reader.bool("KUBOARD_AUDIT_READS")?.unwrap_or(false);
    let local_max_bytes = reader
        .u64_in("KUBOARD_AUDIT_LOCAL_MAX_BYTES", 64 * 1024, 1 << 40, "a number of bytes")?
        .unwrap_or(DEFAULT_AUDIT_LOCAL_MAX_BYTES);
    Ok(AuditConfig {
        policy: if disable_audit {
            AuditPolicy::Disabled
        } else {
            configured_policy
        },
        quest_db_uri,
        audit_reads,
        local_max_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::{check, Expected};

    #[test]
    fn audit() {
        check(
            &[("KUBOARD_AUDIT_POLICY", "strict")],
            None,
            Expected::Ok(|c| c.audit.policy == AuditPolicy::Strict),
        );
        check(
            &[("KUBOARD_AUDIT_POLICY", "Buffered")],
            None,
            Expected::Ok(|c| c.audit.policy == AuditPolicy::Buffered),
        );
        check(
            &[("KUBOARD_AUDIT_POLICY", "strict"), ("KUBOARD_DISABLE_AUDIT", "true")],
            None,
            Expected::Ok(|c| c.audit.policy == AuditPolicy::Disabled),
        );
        check(
            &[("KUBOARD_AUDIT_POLICY", "sometimes")],
            None,
            Expected::Err(r#"KUBOARD_AUDIT_POLICY="sometimes": expected one of ignore-errors, buffered, strict"#),
        );
        check(
            &[("KUBOARD_DISABLE_AUDIT", "maybe")],
            None,
            Expected::Err(r#"KUBOARD_DISABLE_AUDIT="maybe": expected true or false"#),
        );
        check(
            &[("KUBOARD_AUDIT_READS", "true")],
            None,
            Expected::Ok(|c| c.audit.audit_reads && c.audit.local_max_bytes == DEFAULT_AUDIT_LOCAL_MAX_BYTES),
        );
        check(&[], None, Expected::Ok(|c| !c.audit.audit_reads));
        check(
            &[("KUBOARD_AUDIT_READS", "sometimes")],
            None,
            Expected::Err(r#"KUBOARD_AUDIT_READS="sometimes": expected true or false"#),
        );
        check(
            &[("KUBOARD_AUDIT_LOCAL_MAX_BYTES", "1048576")],
            None,
            Expected::Ok(|c| c.audit.local_max_bytes == 1_048_576),
        );
        check(
            &[("KUBOARD_AUDIT_LOCAL_MAX_BYTES", "10")],
            None,
            Expected::Err(
                r#"KUBOARD_AUDIT_LOCAL_MAX_BYTES="10": expected a number of bytes between 65536 and 1099511627776"#,
            ),
        );
        check(
            &[("KUBOARD_QUEST_DB_URI", "postgresql://user:pass@db:8812/qdb")],
            None,
            Expected::Ok(|c| {
                c.audit.quest_db_uri.as_ref().map(Secret::expose) == Some("postgresql://user:pass@db:8812/qdb")
            }),
        );
        check(
            &[("KUBOARD_QUEST_DB_URI", "postgres://")],
            None,
            Expected::Err("KUBOARD_QUEST_DB_URI=<redacted>: expected a URI like postgresql://user:pass@host:8812/qdb"),
        );
        check(
            &[("KUBOARD_QUEST_DB_URI", "mysql://user:secret@db/x")],
            None,
            Expected::Err("KUBOARD_QUEST_DB_URI=<redacted>: expected a URI like postgresql://user:pass@host:8812/qdb"),
        );
    }
}
