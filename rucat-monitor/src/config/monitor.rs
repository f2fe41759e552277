//! The monitor's settings, as both binaries take them: `rucat-monitor`
//! and `rucat-server`'s embedded monitor read the same top-level keys, with
//! the defaults and rules defined once here.
//!
//! Each config struct declares the keys itself, because serde's `flatten`
//! would silently accept unknown keys; [`MonitorSettings`] is what they hand
//! over, so defaults, checks and the resulting `MonitorConfig` cannot differ
//! between the binaries.

use std::time::Duration;

use rucat_core::MonitorConfig;

use super::ConfigError;

/// `check_interval_secs`, `lease_secs`, `start_deadline_secs`,
/// `max_concurrent` and `resync_interval_secs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonitorSettings {
    /// How often starting and stopping engines are checked, in seconds (at least 1).
    pub check_interval_secs: u8,
    /// How long a claim on an engine lasts before another monitor may take
    /// it over (at least 3, so that renewing it has time to succeed).
    pub lease_secs: u16,
    /// How long an engine may take to become ready before it is failed.
    pub start_deadline_secs: u32,
    /// How many engines are acted on at once (at least 1).
    pub max_concurrent: u16,
    /// How often every Running engine's resource is checked, read-only, for
    /// a failure no change feed reported (at least 1; see `rucat_core::monitor`).
    pub resync_interval_secs: u32,
}

impl Default for MonitorSettings {
    fn default() -> Self {
        Self {
            check_interval_secs: 1,
            lease_secs: 30,
            start_deadline_secs: 300,
            max_concurrent: 64,
            resync_interval_secs: 30,
        }
    }
}

impl MonitorSettings {
    /// The rules a config must meet; errors name the key.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.check_interval_secs == 0 {
            return Err(ConfigError::invalid(
                "check_interval_secs",
                "must be at least 1",
            ));
        }
        if self.lease_secs < 3 {
            return Err(ConfigError::invalid("lease_secs", "must be at least 3"));
        }
        if self.max_concurrent == 0 {
            return Err(ConfigError::invalid("max_concurrent", "must be at least 1"));
        }
        if self.resync_interval_secs == 0 {
            return Err(ConfigError::invalid(
                "resync_interval_secs",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// The monitor's runtime settings; `owner` stays the generated default.
    pub fn monitor_config(&self) -> MonitorConfig {
        MonitorConfig {
            check_interval: Duration::from_secs(self.check_interval_secs.into()),
            lease_duration: Duration::from_secs(self.lease_secs.into()),
            start_deadline: Duration::from_secs(self.start_deadline_secs.into()),
            max_concurrent: self.max_concurrent.into(),
            resync_interval: Duration::from_secs(self.resync_interval_secs.into()),
            ..MonitorConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_monitors_own() {
        let ours = MonitorSettings::default().monitor_config();
        let core = MonitorConfig::default();
        assert_eq!(ours.check_interval, core.check_interval);
        assert_eq!(ours.lease_duration, core.lease_duration);
        assert_eq!(ours.start_deadline, core.start_deadline);
        assert_eq!(ours.max_concurrent, core.max_concurrent);
        assert_eq!(ours.resync_interval, core.resync_interval);
        assert!(MonitorSettings::default().check().is_ok());
    }

    #[test]
    fn every_setting_reaches_the_monitor() {
        let config = MonitorSettings {
            check_interval_secs: 2,
            lease_secs: 3,
            start_deadline_secs: 4,
            max_concurrent: 5,
            resync_interval_secs: 6,
        }
        .monitor_config();
        assert_eq!(config.check_interval, Duration::from_secs(2));
        assert_eq!(config.lease_duration, Duration::from_secs(3));
        assert_eq!(config.start_deadline, Duration::from_secs(4));
        assert_eq!(config.max_concurrent, 5);
        assert_eq!(config.resync_interval, Duration::from_secs(6));
    }

    #[test]
    fn the_checks_name_the_key() {
        let ok = MonitorSettings::default();
        for (settings, expected) in [
            (
                MonitorSettings {
                    check_interval_secs: 0,
                    ..ok
                },
                "check_interval_secs: must be at least 1",
            ),
            (
                MonitorSettings {
                    lease_secs: 2,
                    ..ok
                },
                "lease_secs: must be at least 3",
            ),
            (
                MonitorSettings {
                    max_concurrent: 0,
                    ..ok
                },
                "max_concurrent: must be at least 1",
            ),
            (
                MonitorSettings {
                    resync_interval_secs: 0,
                    ..ok
                },
                "resync_interval_secs: must be at least 1",
            ),
        ] {
            let err = settings.check().unwrap_err().to_string();
            assert_eq!(err, expected);
        }
        let edge = MonitorSettings {
            check_interval_secs: 1,
            lease_secs: 3,
            start_deadline_secs: 0,
            max_concurrent: 1,
            resync_interval_secs: 1,
        };
        assert!(edge.check().is_ok(), "the smallest accepted values");
    }
}
