//! [`Reader`]: the settings as given (environment variables or `kuboard serve` flags, merged into
//! [`RawSettings`] by the command line), read by variable name and parsed into the common shapes.
//! An error names the setting as the operator wrote it (`--raft-port` or `KUBOARD_RAFT_PORT`).

use crate::cli::RawSettings;
use crate::config::values::{parse_port, ConfigError};

/// Reads raw settings by variable name and parses the common shapes.
pub(super) struct Reader<'a> {
    raw: &'a RawSettings,
}

impl<'a> Reader<'a> {
    pub(super) fn new(raw: &'a RawSettings) -> Reader<'a> {
        Reader { raw }
    }

    /// The label and value of a setting that is set to a non-empty value.
    pub(super) fn get(&self, env_name: &'static str) -> Option<(&'a str, &'a str)> {
        self.raw
            .get(env_name)
            .filter(|raw| !raw.value.is_empty())
            .map(|raw| (raw.label.as_str(), raw.value.as_str()))
    }

    pub(super) fn port(&self, env_name: &'static str) -> Result<Option<u16>, ConfigError> {
        let Some((label, value)) = self.get(env_name) else {
            return Ok(None);
        };
        parse_port(value)
            .map(Some)
            .ok_or_else(|| ConfigError::bad(label, value, "expected a TCP port number 1-65535"))
    }

    pub(super) fn bool(&self, env_name: &'static str) -> Result<Option<bool>, ConfigError> {
        let Some((label, value)) = self.get(env_name) else {
            return Ok(None);
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Some(true)),
            "false" | "0" | "no" | "off" => Ok(Some(false)),
            _ => Err(ConfigError::bad(label, value, "expected true or false")),
        }
    }

    pub(super) fn u64_in(
        &self,
        env_name: &'static str,
        min: u64,
        max: u64,
        what: &str,
    ) -> Result<Option<u64>, ConfigError> {
        let Some((label, value)) = self.get(env_name) else {
            return Ok(None);
        };
        match value.trim().parse::<u64>() {
            Ok(number) if (min..=max).contains(&number) => Ok(Some(number)),
            _ => Err(ConfigError::bad(
                label,
                value,
                format!("expected {what} between {min} and {max}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "KUBOARD_AUDIT_READS";

    fn with(value: &str) -> RawSettings {
        RawSettings::from_env_pairs(&[(NAME, value)])
    }

    #[test]
    fn empty_values_count_as_unset() {
        let raw = with("");
        let reader = Reader::new(&raw);
        assert_eq!(reader.get(NAME), None);
        assert_eq!(reader.bool(NAME), Ok(None));
        assert_eq!(reader.port(NAME), Ok(None));
        assert_eq!(reader.u64_in(NAME, 1, 2, "things"), Ok(None));
    }

    #[test]
    fn booleans() {
        fn check(input: &str, expected: Result<bool, &str>) {
            let raw = with(input);
            let got = Reader::new(&raw).bool(NAME).map_err(|error| error.to_string());
            assert_eq!(got, expected.map(Some).map_err(str::to_string), "{input:?}");
        }
        for yes in ["true", "TRUE", "1", "yes", "on", " on "] {
            check(yes, Ok(true));
        }
        for no in ["false", "0", "no", "Off"] {
            check(no, Ok(false));
        }
        check("maybe", Err(r#"KUBOARD_AUDIT_READS="maybe": expected true or false"#));
        check("2", Err(r#"KUBOARD_AUDIT_READS="2": expected true or false"#));
    }

    #[test]
    fn bounded_numbers() {
        fn check(input: &str, expected: Result<u64, ()>) {
            let raw = with(input);
            let got = Reader::new(&raw)
                .u64_in(NAME, 10, 20, "seconds")
                .map_err(|error| error.to_string());
            let expected = expected
                .map(Some)
                .map_err(|()| format!("{NAME}={input:?}: expected seconds between 10 and 20"));
            assert_eq!(got, expected, "{input:?}");
        }
        check("10", Ok(10));
        check(" 20 ", Ok(20));
        for bad in ["9", "21", "-1", "1e3", "ten", "18446744073709551616"] {
            check(bad, Err(()));
        }
    }

    #[test]
    fn ports() {
        fn check(input: &str, expected: Option<u16>) {
            let raw = with(input);
            let got = Reader::new(&raw).port(NAME).map_err(|error| error.to_string());
            let expected = expected
                .map(Some)
                .ok_or_else(|| format!("{NAME}={input:?}: expected a TCP port number 1-65535"));
            assert_eq!(got, expected, "{input:?}");
        }
        check("2379", Some(2379));
        check("0", None);
        check("65536", None);
        check("port", None);
    }
}
