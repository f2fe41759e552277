//! Wall-clock timestamps with millisecond precision.
//!
//! Stores compare timestamps (lease expiry, due times) in their own query
//! language, so a timestamp is a plain count of Unix milliseconds; the API shows
//! it as RFC 3339 text.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Milliseconds since the Unix epoch, from 1970 up to the end of year 9999:
/// the range RFC 3339 can write, so serializing a timestamp never fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// 9999-12-31T23:59:59.999Z.
const MAX_MILLIS: i64 = 253_402_300_799_999;

impl Timestamp {
    pub fn now() -> Self {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Self::from_millis(i64::try_from(millis).unwrap_or(MAX_MILLIS))
    }

    /// Clamps to the representable range.
    pub const fn from_millis(millis: i64) -> Self {
        if millis < 0 {
            Self(0)
        } else if millis > MAX_MILLIS {
            Self(MAX_MILLIS)
        } else {
            Self(millis)
        }
    }

    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// `self + duration`, saturating instead of overflowing.
    pub fn plus(self, duration: Duration) -> Self {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(MAX_MILLIS);
        Self::from_millis(self.0.saturating_add(millis))
    }

    /// `self - duration`, saturating at the epoch.
    pub fn minus(self, duration: Duration) -> Self {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(MAX_MILLIS);
        Self::from_millis(self.0.saturating_sub(millis))
    }

    /// Reads an RFC 3339 date-time (`2026-12-01T10:00:00Z`,
    /// `2026-12-01t11:00:00.5+01:00`): exactly the strings OpenAPI's
    /// `date-time` format admits, a leap second read as the second before.
    /// Times before 1970 are the epoch.
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        let number = |from: usize, len: usize| -> Option<i64> {
            let digits = bytes.get(from..from + len)?;
            digits
                .iter()
                .all(u8::is_ascii_digit)
                .then(|| digits.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
        };
        let at = |i: usize, expected: &[u8]| bytes.get(i).is_some_and(|b| expected.contains(b));
        let (year, month, day) = (number(0, 4)?, number(5, 2)?, number(8, 2)?);
        let (hour, minute, second) = (number(11, 2)?, number(14, 2)?, number(17, 2)?);
        let separators =
            at(4, b"-") && at(7, b"-") && at(10, b"Tt") && at(13, b":") && at(16, b":");
        if !separators
            || !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return None;
        }
        let mut i = 19;
        let mut millis = 0;
        if at(i, b".") {
            i += 1;
            let start = i;
            while at(i, b"0123456789") {
                if i - start < 3 {
                    millis = millis * 10 + i64::from(bytes[i] - b'0');
                }
                i += 1;
            }
            if i == start {
                return None;
            }
            for _ in (i - start)..3 {
                millis *= 10;
            }
        }
        let offset_minutes = if at(i, b"Zz") {
            i += 1;
            0
        } else if at(i, b"+-") && at(i + 3, b":") {
            let (hours, minutes) = (number(i + 1, 2)?, number(i + 4, 2)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let sign = if bytes[i] == b'-' { -1 } else { 1 };
            i += 6;
            sign * (hours * 60 + minutes)
        } else {
            return None;
        };
        if i != bytes.len() {
            return None;
        }
        let seconds = days_from_civil(year, month, day) * 86_400
            + hour * 3_600
            + minute * 60
            + second.min(59)
            - offset_minutes * 60;
        Some(Self::from_millis(
            seconds.saturating_mul(1000).saturating_add(millis),
        ))
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }

    fn to_system_time(self) -> SystemTime {
        match u64::try_from(self.0) {
            Ok(millis) => UNIX_EPOCH + Duration::from_millis(millis),
            Err(_) => UNIX_EPOCH,
        }
    }
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard
/// Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        humantime::format_rfc3339_millis(self.to_system_time()).fmt(f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let time = humantime::parse_rfc3339_weak(&text).map_err(serde::de::Error::custom)?;
        let millis = time
            .duration_since(UNIX_EPOCH)
            .map_err(serde::de::Error::custom)?
            .as_millis();
        Ok(Self(
            i64::try_from(millis).map_err(serde::de::Error::custom)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_date_times_are_read_exactly() {
        let millis = |text: &str| Timestamp::parse_rfc3339(text).map(Timestamp::as_millis);
        assert_eq!(millis("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(millis("2026-12-01T10:00:00Z"), Some(1_796_119_200_000));
        assert_eq!(
            millis("2026-12-01t11:00:00.5+01:00"),
            Some(1_796_119_200_500)
        );
        assert_eq!(
            millis("2026-12-01T09:30:00.123456-00:30"),
            Some(1_796_119_200_123)
        );
        assert_eq!(millis("2024-02-29T00:00:00Z"), Some(1_709_164_800_000));
        assert_eq!(
            millis("2026-12-31T23:59:60Z"),
            millis("2026-12-31T23:59:59Z")
        );
        assert_eq!(
            millis("1969-12-31T23:59:59Z"),
            Some(0),
            "clamped to the epoch"
        );
        for bad in [
            "",
            "2026-12-01",
            "2026-12-01T10:00:00",
            "2026-12-01 10:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-12-32T00:00:00Z",
            "2026-12-01T24:00:00Z",
            "2026-12-01T10:00:00.Z",
            "2026-12-01T10:00:00+1:00",
            "2026-12-01T10:00:00+24:00",
            "2026-12-01T10:00:00Zjunk",
            "+026-12-01T10:00:00Z",
            "２０２６-12-01T10:00:00Z",
        ] {
            assert_eq!(millis(bad), None, "{bad:?}");
        }
        // Agrees with how timestamps are written.
        let now = Timestamp::now();
        assert_eq!(Timestamp::parse_rfc3339(&now.to_string()), Some(now));
    }

    #[test]
    fn rfc3339_round_trip_keeps_millis() {
        let t = Timestamp::from_millis(1_764_000_000_123);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2025-11-24T16:00:00.123Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
    }

    #[test]
    fn arithmetic_saturates_within_the_writable_range() {
        let t = Timestamp::from_millis(MAX_MILLIS - 1);
        let end = t.plus(Duration::from_secs(10));
        assert_eq!(end.as_millis(), MAX_MILLIS);
        assert_eq!(Timestamp::from_millis(5).since(t), Duration::ZERO);
        assert_eq!(Timestamp::from_millis(-5).as_millis(), 0);
        assert_eq!(Timestamp::from_millis(i64::MAX), end);
        let far = Timestamp::now().plus(Duration::MAX);
        let json = serde_json::to_string(&far).unwrap();
        assert_eq!(json, "\"9999-12-31T23:59:59.999Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), far);
    }
}
