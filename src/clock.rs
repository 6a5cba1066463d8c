//! Wall-clock time as the server sees it, replaceable in tests so expiry can be checked without
//! waiting.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Default)]
pub struct Clock {
    /// Seconds since the Unix epoch when the clock is fixed by a test; `None` for the system clock.
    fixed: Option<Arc<AtomicU64>>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock { fixed: None }
    }

    /// A clock standing still at `unix_seconds` until advanced.
    #[cfg(test)]
    pub fn fixed(unix_seconds: u64) -> Clock {
        Clock {
            fixed: Some(Arc::new(AtomicU64::new(unix_seconds))),
        }
    }

    #[cfg(test)]
    pub fn advance(&self, seconds: u64) {
        if let Some(fixed) = &self.fixed {
            fixed.fetch_add(seconds, Ordering::SeqCst);
        }
    }

    /// Seconds since the Unix epoch.
    pub fn now_unix(&self) -> u64 {
        match &self.fixed {
            Some(fixed) => fixed.load(Ordering::SeqCst),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|elapsed| elapsed.as_secs())
                .unwrap_or(0),
        }
    }
}

/// Formats seconds since the Unix epoch as an RFC 3339 UTC timestamp (`2024-05-01T12:00:00Z`).
pub fn format_rfc3339(unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64;
    let seconds_of_day = unix_seconds % 86_400;
    // Civil date from a day count (Howard Hinnant's algorithm), valid for every u64 second count
    // this server will meet.
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds_of_day / 3600,
        (seconds_of_day / 60) % 60,
        seconds_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(unix_seconds: u64, expected: &str) {
        assert_eq!(format_rfc3339(unix_seconds), expected, "{unix_seconds}");
    }

    #[test]
    fn rfc3339() {
        check(0, "1970-01-01T00:00:00Z");
        check(951_782_400, "2000-02-29T00:00:00Z");
        check(1_700_000_000, "2023-11-14T22:13:20Z");
        check(4_102_444_799, "2099-12-31T23:59:59Z");
    }

    #[test]
    fn fixed_clock_advances() {
        let clock = Clock::fixed(100);
        clock.advance(5);
        assert_eq!(clock.now_unix(), 105);
    }
}
