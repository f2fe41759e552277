//! Idle engines: when an engine is idle, why it stopped, and whether a
//! client's arrival may bring it back. The one home of the concept; pure,
//! so every rule below is table-tested.
//!
//! - **Activity.** Only rucat's gateway sees an engine's use, so only
//!   engines it serves ([`crate::EngineSpec::served_by_gateway`]) are
//!   idle-tracked. Gateways keep activity in memory and write it to the
//!   record sparsely ([`touched`]): when a quiet engine gets an RPC, and then
//!   at most every activity interval while RPCs come or a stream stays open.
//!   No write per RPC, and none at all while nothing happens.
//! - **Idle stop.** A Running engine with an idle timeout is scheduled for
//!   its [`idle_deadline`]: it is due for a monitor then, and not before,
//!   so tracking costs nothing at rest. A monitor that claims it past the
//!   deadline stops it through the ordinary lifecycle, recording
//!   [`StopReason::Idle`]. Any gateway with a stream open rewrites the
//!   activity more often than the shortest timeout allows
//!   ([`IdlePolicy::min_timeout`]), so no engine in use on any server is
//!   ever idle; a claim that races an activity write loses its release to
//!   the write's compare-and-swap.
//! - **Resume.** An RPC for an engine stopped for idleness (or by a user,
//!   if its `auto_resume` is on) restarts it and is held until it runs
//!   ([`resume_step`]); concurrent RPCs restart it once, because a restart
//!   is a compare-and-swap that only one of them wins.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::EngineRecord;
use crate::request::ValidationError;
use crate::state::EngineState;
use crate::time::Timestamp;

/// Why an engine stopped; kept until it runs again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum StopReason {
    /// A user's (or the embedding application's) STOP.
    User {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// A monitor found it idle for `idle_secs` (at least its timeout).
    Idle { idle_secs: u64 },
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User { name: Some(name) } => write!(f, "stopped by {name}"),
            Self::User { name: None } => f.write_str("stopped by request"),
            Self::Idle { idle_secs } => write!(
                f,
                "idle for {}",
                humantime::format_duration(Duration::from_secs(*idle_secs))
            ),
        }
    }
}

/// How idle timeouts are chosen: the server-wide default, the most a
/// request may ask for, and the least that is safe given how often
/// gateways write activity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdlePolicy {
    /// For requests that give none; zero means never.
    pub default_timeout: Duration,
    /// The longest a request may ask for; `None` allows any, and never.
    pub max_timeout: Option<Duration>,
    /// How often a gateway writes the activity of an engine in use.
    pub activity_interval: Duration,
}

impl Default for IdlePolicy {
    /// What a program embedding rucat gets unless it says otherwise: no
    /// idle stops (it may not run a gateway at all).
    fn default() -> Self {
        Self {
            default_timeout: Duration::ZERO,
            max_timeout: None,
            activity_interval: DEFAULT_ACTIVITY_INTERVAL,
        }
    }
}

/// The longest idle timeout anyone may ask for, a year: past it "never"
/// (0) says what is meant, and deadlines stay far from overflowing.
pub const MAX_TIMEOUT_SECS: u64 = 365 * 24 * 3600;

/// How often, at most, a gateway writes an engine's activity.
pub const DEFAULT_ACTIVITY_INTERVAL: Duration = Duration::from_secs(10);

impl IdlePolicy {
    /// The shortest non-zero timeout: three activity intervals, so that an
    /// engine with a stream open is rewritten at least twice per timeout
    /// and a slow write still lands before the deadline.
    pub fn min_timeout(&self) -> Duration {
        self.activity_interval.saturating_mul(3)
    }

    /// The timeout, in whole seconds (0 for never), of an engine whose
    /// request asked for `requested`; `served_by_gateway` says whether
    /// rucat can see its use at all. The error names `idle_timeout_secs`.
    pub fn resolve(
        &self,
        requested: Option<u64>,
        served_by_gateway: bool,
    ) -> Result<u64, ValidationError> {
        let invalid = |reason: String| ValidationError::new("idle_timeout_secs", reason);
        if !served_by_gateway {
            return match requested {
                None | Some(0) => Ok(0),
                Some(_) => Err(invalid(
                    "this engine is reached directly, not through rucat's gateway, so rucat cannot see whether it is in use; give 0 or leave it out".into(),
                )),
            };
        }
        let secs = requested.unwrap_or(self.default_timeout.as_secs());
        let min = self.min_timeout().as_secs();
        if secs > MAX_TIMEOUT_SECS {
            return Err(invalid(format!(
                "at most {MAX_TIMEOUT_SECS} seconds (a year; 0 is never), got {secs}"
            )));
        }
        match self.max_timeout.map(|m| m.as_secs()) {
            Some(max) if secs == 0 => Err(invalid(format!(
                "0 (never) is not allowed here; at most {max} seconds"
            ))),
            Some(max) if secs > max => Err(invalid(format!("at most {max} seconds, got {secs}"))),
            _ if secs != 0 && secs < min => Err(invalid(format!(
                "at least {min} seconds (three activity intervals), or 0 for never; got {secs}"
            ))),
            _ => Ok(secs),
        }
    }
}

/// Since when a Running engine has been idle: its last activity, or when it
/// became Running if nothing came since.
pub fn idle_since(record: &EngineRecord) -> Timestamp {
    record
        .last_activity
        .map_or(record.state_since, |at| at.max(record.state_since))
}

/// When a Running engine becomes idle enough to stop; `None` for engines
/// that are not Running or never stop.
pub fn idle_deadline(record: &EngineRecord) -> Option<Timestamp> {
    (record.state == EngineState::Running && record.idle_timeout_secs > 0)
        .then(|| idle_since(record).plus(Duration::from_secs(record.idle_timeout_secs)))
}

/// Why `record` should be stopped at `now` for idleness, if it should.
pub fn idle_stop(record: &EngineRecord, now: Timestamp) -> Option<StopReason> {
    let deadline = idle_deadline(record)?;
    (now >= deadline).then(|| StopReason::Idle {
        idle_secs: now.since(idle_since(record)).as_secs(),
    })
}

/// `record` with activity at `at`, to be written with a compare-and-swap;
/// `None` when there is nothing to write: the engine is not Running, or
/// the record already knows of activity that recent. Reschedules the idle
/// deadline, unless a monitor holds the engine (its claim decides when it
/// is due, and this write will refuse its release).
pub fn touched(record: &EngineRecord, at: Timestamp) -> Option<EngineRecord> {
    if record.state != EngineState::Running || record.last_activity.is_some_and(|t| t >= at) {
        return None;
    }
    let mut next = record.clone();
    next.last_activity = Some(at);
    if next.lease.is_none() {
        next.next_action_at = idle_deadline(&next);
    }
    Some(next)
}

/// Whether an RPC may bring the engine back: it was stopped for
/// idleness, or it resumes whatever stopped it.
pub fn resumable(record: &EngineRecord) -> bool {
    record.auto_resume || matches!(record.stop_reason, Some(StopReason::Idle { .. }))
}

/// What the gateway does with an RPC for `record`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResumeStep {
    /// Running: forward it.
    Forward,
    /// Stopped (or stopping) and resumable: restart it, then wait.
    Restart,
    /// On its way to Running, or to Terminated before a restart: wait.
    Wait,
    /// Not going to run for this RPC (failed, or stopped and not
    /// resumable): refuse it.
    Refuse,
}

pub fn resume_step(record: &EngineRecord) -> ResumeStep {
    use EngineState::*;
    match record.state {
        Running => ResumeStep::Forward,
        // Coming back from a stop it may resume from (by this RPC's gateway
        // or another): wait. Any other start is the user's to wait for.
        WaitToStart | TriggerStart | StartInProgress if resumable(record) => ResumeStep::Wait,
        WaitToStart | TriggerStart | StartInProgress => ResumeStep::Refuse,
        // A stop not yet begun is undone at once (WaitToTerminate --RESTART-->
        // Running); one under way must end before a restart.
        WaitToTerminate if resumable(record) => ResumeStep::Restart,
        TriggerTermination | TerminateInProgress if resumable(record) => ResumeStep::Wait,
        Terminated if resumable(record) => ResumeStep::Restart,
        WaitToTerminate | TriggerTermination | TerminateInProgress | Terminated => {
            ResumeStep::Refuse
        }
        ErrorWaitToClean | ErrorTriggerClean | ErrorCleanInProgress | ErrorClean => {
            ResumeStep::Refuse
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Lease;
    use crate::request::CreateEngineRequest;

    const T0: Timestamp = Timestamp::from_millis(1_000_000);

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn running(timeout: u64) -> EngineRecord {
        let spec = CreateEngineRequest::spark("e", "4.3.0").validate().unwrap();
        let mut record = EngineRecord::new(spec, T0);
        record.enter(EngineState::Running, T0);
        record.idle_timeout_secs = timeout;
        record
    }

    fn policy(default: u64, max: Option<u64>) -> IdlePolicy {
        IdlePolicy {
            default_timeout: secs(default),
            max_timeout: max.map(secs),
            activity_interval: secs(10),
        }
    }

    #[test]
    fn timeouts_resolve_within_the_policy() {
        let p = policy(1800, None);
        assert_eq!(p.resolve(None, true), Ok(1800));
        assert_eq!(p.resolve(Some(0), true), Ok(0), "never");
        assert_eq!(p.resolve(Some(30), true), Ok(30));
        assert_eq!(
            p.resolve(Some(MAX_TIMEOUT_SECS), true),
            Ok(MAX_TIMEOUT_SECS)
        );
        assert!(p.resolve(Some(u64::MAX), true).is_err());
        let short = p.resolve(Some(29), true).unwrap_err();
        assert_eq!(short.field, "idle_timeout_secs");
        assert!(short.reason.contains("at least 30"), "{short}");

        let bounded = policy(600, Some(3600));
        assert_eq!(bounded.resolve(None, true), Ok(600));
        assert_eq!(bounded.resolve(Some(3600), true), Ok(3600));
        assert!(bounded.resolve(Some(3601), true).is_err());
        let never = bounded.resolve(Some(0), true).unwrap_err();
        assert!(never.reason.contains("never"), "{never}");

        // Engines the gateway does not serve are never idle-tracked.
        assert_eq!(p.resolve(None, false), Ok(0));
        assert_eq!(p.resolve(Some(0), false), Ok(0));
        let direct = p.resolve(Some(600), false).unwrap_err();
        assert!(direct.reason.contains("directly"), "{direct}");
    }

    #[test]
    fn a_running_engine_is_due_at_its_idle_deadline() {
        let mut r = running(60);
        assert_eq!(idle_deadline(&r), Some(T0.plus(secs(60))));
        assert_eq!(idle_stop(&r, T0.plus(secs(59))), None);
        assert_eq!(
            idle_stop(&r, T0.plus(secs(61))),
            Some(StopReason::Idle { idle_secs: 61 })
        );
        // Activity moves the deadline; activity from a previous run does not.
        r.last_activity = Some(T0.plus(secs(30)));
        assert_eq!(idle_deadline(&r), Some(T0.plus(secs(90))));
        r.last_activity = Some(Timestamp::from_millis(1));
        assert_eq!(idle_since(&r), T0);
        // Never, and not Running: no deadline.
        assert_eq!(idle_deadline(&running(0)), None);
        let mut stopped = running(60);
        stopped.enter(EngineState::Terminated, T0);
        assert_eq!(idle_deadline(&stopped), None);
        assert_eq!(idle_stop(&stopped, T0.plus(secs(3600))), None);
    }

    #[test]
    fn activity_is_written_only_when_it_is_news() {
        let r = running(60);
        let at = T0.plus(secs(5));
        let next = touched(&r, at).unwrap();
        assert_eq!(next.last_activity, Some(at));
        assert_eq!(next.next_action_at, Some(at.plus(secs(60))));
        assert_eq!(touched(&next, at), None, "nothing newer");
        assert_eq!(touched(&next, T0), None, "older");

        // A claimed engine keeps the schedule its claim set.
        let mut claimed = r.clone();
        let expiry = T0.plus(secs(30));
        claimed.lease = Some(Lease {
            owner: "m".into(),
            expires_at: expiry,
        });
        claimed.next_action_at = Some(expiry);
        let next = touched(&claimed, at).unwrap();
        assert_eq!(next.next_action_at, Some(expiry));
        assert_eq!(next.last_activity, Some(at));

        // Never-stopping engines record activity without a schedule.
        assert_eq!(touched(&running(0), at).unwrap().next_action_at, None);
        // Only Running engines are touched.
        let mut starting = r;
        starting.enter(EngineState::StartInProgress, T0);
        assert_eq!(touched(&starting, at), None);
    }

    #[test]
    fn every_state_has_one_resume_step() {
        use EngineState::*;
        for state in EngineState::ALL {
            for (reason, auto) in [
                (None, false),
                (Some(StopReason::User { name: None }), false),
                (Some(StopReason::User { name: None }), true),
                (Some(StopReason::Idle { idle_secs: 60 }), false),
            ] {
                let mut r = running(60);
                r.enter(state, T0);
                r.stop_reason = reason.clone();
                r.auto_resume = auto;
                let may = auto || matches!(reason, Some(StopReason::Idle { .. }));
                let expected = match state {
                    Running => ResumeStep::Forward,
                    WaitToStart | TriggerStart | StartInProgress if may => ResumeStep::Wait,
                    WaitToTerminate | Terminated if may => ResumeStep::Restart,
                    TriggerTermination | TerminateInProgress if may => ResumeStep::Wait,
                    _ => ResumeStep::Refuse,
                };
                assert_eq!(resume_step(&r), expected, "{state} {reason:?} {auto}");
            }
        }
    }

    #[test]
    fn reasons_read_as_users_expect() {
        assert_eq!(
            StopReason::Idle { idle_secs: 1800 }.to_string(),
            "idle for 30m"
        );
        assert_eq!(
            StopReason::User {
                name: Some("alice".into())
            }
            .to_string(),
            "stopped by alice"
        );
        let json = serde_json::to_value(StopReason::Idle { idle_secs: 5 }).unwrap();
        assert_eq!(json, serde_json::json!({"by": "idle", "idle_secs": 5}));
    }
}
