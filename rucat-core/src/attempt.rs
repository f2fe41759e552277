//! Attempts: every start of an engine is one, numbered from 1, from the
//! claim that starts it to the Terminated or ErrorClean that ends it. A
//! record keeps its last [`KEPT`] attempts, with when each began, ran and
//! ended, and how, so that a user can tell a run that was stopped for
//! idleness from one that failed, and which run a log belongs to.
//!
//! Kept here and written by [`EngineRecord::enter`] and the monitor's start
//! claim only, so every path through the lifecycle records them alike.

use serde::{Deserialize, Serialize};

use crate::engine::EngineRecord;
use crate::state::EngineState;
use crate::time::Timestamp;

/// How many attempts a record keeps; older ones are dropped.
pub const KEPT: usize = 20;

/// One start of an engine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attempt {
    /// 1 for the first start, then one more per start.
    pub number: u32,
    /// When a monitor claimed the engine to start it.
    pub started_at: Timestamp,
    /// When it was first seen Running in this attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub running_at: Option<Timestamp>,
    /// When it reached Terminated or ErrorClean.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub ended_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub outcome: Option<Outcome>,
    /// Why it ended: the stop's reason (`idle for 30m`, `stopped by
    /// alice`) or the failure's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub reason: Option<String>,
}

/// How an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Outcome {
    /// Stopped, by a user or for idleness: Terminated.
    Stopped,
    /// Failed to start or while running: ErrorClean.
    Failed,
}

/// A start begins: the next attempt, from `now`.
pub(crate) fn begin(record: &mut EngineRecord, now: Timestamp) {
    let number = record
        .attempts
        .last()
        .map_or(1, |a| a.number.saturating_add(1));
    record.attempts.push(Attempt {
        number,
        started_at: now,
        running_at: None,
        ended_at: None,
        outcome: None,
        reason: None,
    });
    if record.attempts.len() > KEPT {
        let excess = record.attempts.len() - KEPT;
        record.attempts.drain(..excess);
    }
}

/// `record` has just entered `state` (a change of state): the current
/// attempt runs, or ends.
pub(crate) fn entered(record: &mut EngineRecord, state: EngineState, now: Timestamp) {
    let reason = match state {
        EngineState::Terminated => record.stop_reason.as_ref().map(ToString::to_string),
        EngineState::ErrorClean => record.error.clone(),
        _ => None,
    };
    let Some(current) = record.attempts.last_mut().filter(|a| a.ended_at.is_none()) else {
        return;
    };
    match state {
        EngineState::Running => {
            current.running_at.get_or_insert(now);
        }
        EngineState::Terminated | EngineState::ErrorClean => {
            current.ended_at = Some(now);
            current.outcome = Some(if state == EngineState::Terminated {
                Outcome::Stopped
            } else {
                Outcome::Failed
            });
            current.reason = reason;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idle::StopReason;
    use crate::request::CreateEngineRequest;

    const T0: Timestamp = Timestamp::from_millis(1_000_000);

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_millis(T0.as_millis() + secs * 1000)
    }

    fn record() -> EngineRecord {
        let spec = CreateEngineRequest::spark("e", "4.3.0").validate().unwrap();
        EngineRecord::new(spec, T0)
    }

    #[test]
    fn each_start_is_an_attempt_that_ends_as_the_engine_does() {
        let mut r = record();
        assert!(r.attempts.is_empty());
        begin(&mut r, at(1));
        r.enter(EngineState::TriggerStart, at(1));
        r.enter(EngineState::StartInProgress, at(2));
        r.enter(EngineState::Running, at(5));
        r.enter(EngineState::WaitToTerminate, at(60));
        r.stop_reason = Some(StopReason::Idle { idle_secs: 55 });
        r.enter(EngineState::TerminateInProgress, at(61));
        r.enter(EngineState::Terminated, at(63));
        assert_eq!(
            r.attempts,
            vec![Attempt {
                number: 1,
                started_at: at(1),
                running_at: Some(at(5)),
                ended_at: Some(at(63)),
                outcome: Some(Outcome::Stopped),
                reason: Some("idle for 55s".into()),
            }]
        );

        // The second fails before it runs.
        r.enter(EngineState::WaitToStart, at(100));
        begin(&mut r, at(101));
        r.enter(EngineState::StartInProgress, at(102));
        r.enter(EngineState::ErrorWaitToClean, at(110));
        r.error = Some("driver memory: lots".into());
        r.enter(EngineState::ErrorClean, at(112));
        let second = r.attempts.last().unwrap();
        assert_eq!(second.number, 2);
        assert_eq!(second.running_at, None);
        assert_eq!(second.outcome, Some(Outcome::Failed));
        assert_eq!(second.reason.as_deref(), Some("driver memory: lots"));
        assert_eq!(
            r.attempts[0].ended_at,
            Some(at(63)),
            "the first is left alone"
        );
    }

    #[test]
    fn a_restart_before_the_stop_ends_continues_the_attempt_and_old_ones_go() {
        let mut r = record();
        begin(&mut r, at(1));
        r.enter(EngineState::Running, at(5));
        r.enter(EngineState::WaitToTerminate, at(10));
        r.enter(EngineState::Running, at(11));
        assert_eq!(r.attempts.len(), 1);
        assert_eq!(r.attempts[0].running_at, Some(at(5)));
        assert_eq!(r.attempts[0].ended_at, None);

        for n in 0..(KEPT + 5) {
            begin(&mut r, at(100 + n as i64));
        }
        assert_eq!(r.attempts.len(), KEPT);
        assert_eq!(r.attempts.last().unwrap().number, (KEPT + 6) as u32);
        assert_eq!(r.attempts[0].number, 7);
    }
}
