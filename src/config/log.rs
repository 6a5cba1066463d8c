//! Logging: `KUBOARD_SERVER_LOGRUS_LEVEL` (Kuboard's logrus levels) or `RUST_LOG` (a tracing filter).

use crate::config::reader::Reader;
use crate::config::values::ConfigError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A tracing `EnvFilter` directive, already checked to parse.
    pub filter: String,
}

pub(super) fn parse_log(reader: &Reader<'_>) -> Result<LogConfig, ConfigError> {
    if let Some((label, value)) = reader.get("KUBOARD_SERVER_LOGRUS_LEVEL") {
        let level = match value.trim().to_ascii_lowercase().as_str() {
            "trace" => "trace",
            "debug" => "debug",
            "info" => "info",
            "warn" | "warning" => "warn",
            // logrus' fatal and panic levels have no tracing counterpart: errors are the closest.
            "error" | "fatal" | "panic" => "error",
            _ => {
                return Err(ConfigError::bad(
                    label,
                    value,
                    "expected one of trace, debug, info, warn, warning, error, fatal, panic",
                ));
            }
        };
        return Ok(LogConfig {
            filter: quiet_dependencies(level),
        });
    }
    if let Some((label, value)) = reader.get("RUST_LOG") {
        if tracing_subscriber::EnvFilter::builder().parse(value).is_err() {
            return Err(ConfigError::bad(
                label,
                value,
                "expected a tracing filter, e.g. info or info,kuboard=debug",
            ));
        }
        return Ok(LogConfig {
            filter: value.to_string(),
        });
    }
    Ok(LogConfig {
        filter: quiet_dependencies("info"),
    })
}

/// At info and below the store's libraries log every election step; an operator wants those only
/// when debugging, so they start at warn unless the level asks for more.
/// The filter for a plain level. openraft warns on every failed heartbeat (many lines a second
/// while a peer is down); our peer transport already logs each peer's reachability changes, so at
/// the everyday levels openraft only reports errors.
fn quiet_dependencies(level: &str) -> String {
    match level {
        "info" => "info,openraft=error,sled=warn,raft_log=warn".to_string(),
        "warn" => "warn,openraft=error".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::RawSettings;
    use crate::config::parse;
    use crate::config::test_support::{check, Expected};

    #[test]
    fn log_levels() {
        for (given, filter) in [
            ("warning", "warn,openraft=error"),
            ("fatal", "error"),
            ("panic", "error"),
            ("DEBUG", "debug"),
        ] {
            let raw = RawSettings::from_env_pairs(&[("KUBOARD_SERVER_LOGRUS_LEVEL", given)]);
            assert_eq!(parse(&raw, None).expect("valid level").log.filter, filter, "{given}");
        }
        check(
            &[("KUBOARD_SERVER_LOGRUS_LEVEL", "loud")],
            None,
            Expected::Err(
                r#"KUBOARD_SERVER_LOGRUS_LEVEL="loud": expected one of trace, debug, info, warn, warning, error, fatal, panic"#,
            ),
        );
        check(
            &[("RUST_LOG", "info,kuboard=debug")],
            None,
            Expected::Ok(|c| c.log.filter == "info,kuboard=debug"),
        );
        check(
            &[("RUST_LOG", "info,kuboard=loud")],
            None,
            Expected::Err(
                r#"RUST_LOG="info,kuboard=loud": expected a tracing filter, e.g. info or info,kuboard=debug"#,
            ),
        );
        check(
            &[("RUST_LOG", "trace"), ("KUBOARD_SERVER_LOGRUS_LEVEL", "error")],
            None,
            Expected::Ok(|c| c.log.filter == "error"),
        );
    }
}
