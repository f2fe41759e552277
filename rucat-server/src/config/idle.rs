//! `"idle": {...}`: when engines nobody uses are stopped, and how long a
//! client waits for one to come back (see [`rucat_core::idle`]).

use std::time::Duration;

use rucat_core::IdlePolicy;
use rucat_monitor::config::ConfigError;
use serde::Deserialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdleConfig {
    /// The idle timeout of engines whose request gives none; 0: never.
    pub timeout_secs: u32,
    /// The longest `idle_timeout_secs` a request may ask for; without it
    /// any is allowed, including 0 (never).
    pub max_timeout_secs: Option<u32>,
    /// How often, at most, the gateway writes an engine's activity to the
    /// store while it is in use; timeouts must be at least three times it.
    pub activity_interval_secs: u16,
    /// How long the gateway holds an RPC for an engine that is resuming
    /// before it answers UNAVAILABLE (the client retries).
    pub resume_wait_secs: u32,
}

impl Default for IdleConfig {
    fn default() -> Self {
        Self {
            timeout_secs: 1800,
            max_timeout_secs: None,
            activity_interval_secs: 10,
            resume_wait_secs: 300,
        }
    }
}

/// A day: the longest wait for a resume that makes sense.
const MAX_RESUME_WAIT_SECS: u32 = 86_400;

impl IdleConfig {
    pub fn policy(&self) -> IdlePolicy {
        IdlePolicy {
            default_timeout: Duration::from_secs(self.timeout_secs.into()),
            max_timeout: self.max_timeout_secs.map(|s| Duration::from_secs(s.into())),
            activity_interval: self.activity_interval(),
        }
    }

    pub fn activity_interval(&self) -> Duration {
        Duration::from_secs(self.activity_interval_secs.into())
    }

    pub fn resume_wait(&self) -> Duration {
        Duration::from_secs(self.resume_wait_secs.into())
    }

    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if self.activity_interval_secs == 0 {
            return Err(ConfigError::invalid(
                "idle.activity_interval_secs",
                "must be at least 1 second",
            ));
        }
        if !(1..=MAX_RESUME_WAIT_SECS).contains(&self.resume_wait_secs) {
            return Err(ConfigError::invalid(
                "idle.resume_wait_secs",
                format!("must be from 1 to {MAX_RESUME_WAIT_SECS} seconds"),
            ));
        }
        // The default must be a timeout a request could ask for.
        self.policy()
            .resolve(None, true)
            .map_err(|e| ConfigError::invalid("idle.timeout_secs", e.reason))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    #[test]
    fn idle_stops_are_on_by_default_and_checked() {
        let idle = parse("{}").unwrap().idle;
        assert_eq!(idle, IdleConfig::default());
        assert_eq!(idle.policy().default_timeout, Duration::from_secs(1800));
        assert_eq!(idle.policy().max_timeout, None);
        assert_eq!(idle.resume_wait(), Duration::from_secs(300));

        let idle = parse(
            r#"{"idle": {"timeout_secs": 0, "activity_interval_secs": 1, "resume_wait_secs": 60}}"#,
        )
        .unwrap()
        .idle;
        assert_eq!(idle.policy().default_timeout, Duration::ZERO);
        assert_eq!(idle.activity_interval(), Duration::from_secs(1));

        for (text, error) in [
            (
                r#"{"idle": {"timeout_secs": 20}}"#,
                "idle.timeout_secs: at least 30 seconds",
            ),
            (
                r#"{"idle": {"timeout_secs": 7200, "max_timeout_secs": 3600}}"#,
                "idle.timeout_secs: at most 3600 seconds",
            ),
            (
                r#"{"idle": {"timeout_secs": 0, "max_timeout_secs": 3600}}"#,
                "idle.timeout_secs: 0 (never) is not allowed",
            ),
            (
                r#"{"idle": {"activity_interval_secs": 0}}"#,
                "idle.activity_interval_secs: must be at least 1",
            ),
            (
                r#"{"idle": {"resume_wait_secs": 0}}"#,
                "idle.resume_wait_secs: must be from 1",
            ),
            (
                r#"{"idle": {"timeout": 60}}"#,
                "idle.timeout: unknown field `timeout`",
            ),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(error), "{text}: {err}");
        }
    }
}
