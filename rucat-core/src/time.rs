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

    /// Reads RFC 3339 text (`2026-12-01T10:00:00Z`, fractions and offsets
    /// allowed) as the API writes it.
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let time = humantime::parse_rfc3339_weak(text).ok()?;
        let millis = time.duration_since(UNIX_EPOCH).ok()?.as_millis();
        Some(Self::from_millis(
            i64::try_from(millis).unwrap_or(MAX_MILLIS),
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
