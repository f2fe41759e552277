//! What a monitor decides, as pure functions beside the state machine: given
//! an engine's record, what the resource manager said, the time and the
//! monitor's configuration, which record to write next. No I/O and no clock,
//! so every case is table-tested (`tests`); the monitor's reconciler only
//! claims, asks the resource manager what these functions tell it to ask,
//! and writes what they return (see [`crate::monitor`]).
//!
//! One rule here shapes the cost of rucat at rest: **a Running engine is
//! watched, not scheduled.** Once a pass has seen its resource running at
//! the recorded endpoint, its `next_action_at` is cleared (or set to its
//! idle deadline, see [`crate::idle`]), so it leaves the due list and no
//! monitor claims it again until it may be idle. Monitors instead compare the
//! resource manager's status with the record, without writing ([`needs_pass`]),
//! when the resource manager reports a change and at a slow resync interval;
//! only a difference (failed, gone, not ready, a new endpoint) is claimed.

use std::time::Duration;

use crate::engine::{EngineRecord, Lease};
use crate::idle::{self, StopReason};
use crate::monitor::MonitorConfig;
use crate::resource::{ResourceError, ResourceStatus};
use crate::state::{EngineState, Event, Transition, transition};
use crate::time::Timestamp;
use crate::token::EngineToken;

/// Longest wait between retries of a resource manager that is unavailable.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A question for the resource manager.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Create,
    Status,
    Delete,
}

/// What the monitor knows when it decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observed {
    /// Nothing yet: the engine was just claimed.
    Claimed,
    /// `create` succeeded.
    Created,
    /// `status` answered.
    Status(ResourceStatus),
    /// `delete` succeeded (the deletion may still be under way).
    DeleteIssued,
    /// The call failed or did not answer in time. `remains` says what of the
    /// engine may still exist ([`crate::ResourceManager::describe`]), shown
    /// on an engine whose cleanup is blocked.
    Failed {
        error: ResourceError,
        remains: String,
    },
}

/// The next step of a pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Ask the resource manager, then decide again with its answer.
    Ask(Call),
    /// Write this record: the pass is over.
    Write(Box<Decision>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The record to write, released (no lease).
    pub next: EngineRecord,
    pub outcome: Outcome,
}

/// Why `next` is what it is, for logs and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `event` applied; `next.state` may equal the claimed state (a new
    /// endpoint of a Running engine).
    Moved(Event),
    /// Nothing changed. A Running engine is left unscheduled but for its
    /// idle deadline; any other is looked at again after the check interval.
    Unchanged,
    /// The resource manager could not be asked, or refused a step that must
    /// not be given up (a cleanup); retried after a backoff.
    Retry(ResourceError),
    /// The observation does not fit the state (a bug elsewhere): nothing is
    /// applied, and the engine is looked at again after the check interval.
    Ignored,
}

/// The record that claims `seen` for `owner`, or `None` if the engine is not
/// in a state a monitor claims. A start (`WaitToStart`) takes a fresh token
/// from `fresh_token`, written with the claim so that a monitor taking the
/// start over creates the engine with the same one (see [`crate::token`]);
/// without one there is no claim.
pub fn claim(
    seen: &EngineRecord,
    owner: &str,
    now: Timestamp,
    config: &MonitorConfig,
    fresh_token: impl FnOnce() -> Option<EngineToken>,
) -> Option<EngineRecord> {
    let Ok(Transition::To(state)) = transition(seen.state, Event::Claim) else {
        return None;
    };
    let mut claimed = seen.clone();
    move_to(&mut claimed, state, now);
    if seen.state == EngineState::WaitToStart {
        claimed.spec.token = Some(fresh_token()?);
        crate::attempt::begin(&mut claimed, now);
    }
    let expires_at = now.plus(config.lease_duration);
    claimed.lease = Some(Lease {
        owner: owner.to_owned(),
        expires_at,
    });
    // If this monitor dies, the engine is due again once the lease expires,
    // even a Running engine that is otherwise never due.
    claimed.next_action_at = Some(expires_at);
    Some(claimed)
}

/// The next step of a pass over `claimed`, given what was observed so far.
/// A pass starts with [`Observed::Claimed`] and asks at most twice (a
/// cleanup: status, then delete again).
pub fn decide(
    claimed: &EngineRecord,
    observed: Observed,
    now: Timestamp,
    config: &MonitorConfig,
) -> Verdict {
    use EngineState::*;
    let verdict = match (claimed.state, observed) {
        // Idle past its timeout: stopped without asking anyone (see
        // `crate::idle`); a gateway's activity write since our claim
        // refuses the release, and the engine stays.
        (Running, Observed::Claimed) if idle::idle_stop(claimed, now).is_some() => {
            idle::idle_stop(claimed, now).map_or(Found::Ignored, Found::IdleStop)
        }
        (TriggerStart, Observed::Claimed) => return Verdict::Ask(Call::Create),
        (
            StartInProgress | Running | TerminateInProgress | ErrorCleanInProgress,
            Observed::Claimed,
        ) => return Verdict::Ask(Call::Status),
        (TriggerTermination | ErrorTriggerClean, Observed::Claimed) => {
            return Verdict::Ask(Call::Delete);
        }

        (TriggerStart, Observed::Created) => Found::event(Event::ResourceCreated),
        (
            TriggerStart,
            Observed::Failed {
                error: ResourceError::Rejected(reason),
                ..
            },
        ) => Found::failed(Event::CreateFailed, reason),

        (StartInProgress | Running, Observed::Status(status)) => {
            judge_started(claimed, status, now, config)
        }

        (TriggerTermination | ErrorTriggerClean, Observed::DeleteIssued) => {
            Found::event(Event::DeleteIssued)
        }

        (TerminateInProgress | ErrorCleanInProgress, Observed::Status(status)) => match status {
            ResourceStatus::Gone => Found::event(Event::ResourceGone),
            // The deletion is under way: asking again would only cost the
            // platform a write per check.
            ResourceStatus::Terminating => Found::Unchanged,
            // Still there and not going: deletion is idempotent, so ask again
            // in case the first request was lost.
            _ => return Verdict::Ask(Call::Delete),
        },
        (TerminateInProgress | ErrorCleanInProgress, Observed::DeleteIssued) => Found::Unchanged,

        (_, Observed::Failed { error, remains }) => Found::Retry { error, remains },
        _ => Found::Ignored,
    };
    Verdict::Write(Box::new(release(claimed, verdict, now, config)))
}

/// Whether a Running engine that nobody holds needs a pass, given a status
/// read without claiming it: not when writing would change nothing, which is
/// what keeps a quiet rucat from writing at all.
pub fn needs_pass(
    record: &EngineRecord,
    status: &ResourceStatus,
    now: Timestamp,
    config: &MonitorConfig,
) -> bool {
    if record.state != EngineState::Running || record.lease.is_some() {
        return false;
    }
    match decide(record, Observed::Status(status.clone()), now, config) {
        Verdict::Write(decision) => decision.next != *record,
        Verdict::Ask(_) => true,
    }
}

/// What a pass found, before it is turned into a record.
enum Found {
    Event {
        event: Event,
        endpoint: Option<String>,
        error: Option<String>,
    },
    Unchanged,
    /// Idle past its timeout: stop it.
    IdleStop(StopReason),
    Retry {
        error: ResourceError,
        remains: String,
    },
    Ignored,
}

impl Found {
    fn event(event: Event) -> Self {
        Self::Event {
            event,
            endpoint: None,
            error: None,
        }
    }

    fn failed(event: Event, reason: String) -> Self {
        Self::Event {
            event,
            endpoint: None,
            error: Some(reason),
        }
    }
}

/// Turns a status of an engine that was started into what it means.
fn judge_started(
    engine: &EngineRecord,
    status: ResourceStatus,
    now: Timestamp,
    config: &MonitorConfig,
) -> Found {
    let starting = engine.state == EngineState::StartInProgress;
    match status {
        ResourceStatus::Running { endpoint } => {
            if !starting && engine.endpoint.as_deref() == Some(endpoint.as_str()) {
                Found::Unchanged
            } else {
                Found::Event {
                    event: Event::ResourceRunning,
                    endpoint: Some(endpoint),
                    error: None,
                }
            }
        }
        ResourceStatus::Pending { reason } if starting => {
            if now.since(engine.state_since) >= config.start_deadline {
                let late = format!(
                    "the engine did not become ready within the start deadline of {}",
                    humantime::format_duration(config.start_deadline)
                );
                let reason = match reason {
                    Some(last) => format!("{late}; last reason: {last}"),
                    None => late,
                };
                Found::failed(Event::StartTimedOut, reason)
            } else {
                Found::Unchanged
            }
        }
        ResourceStatus::Pending { .. } => Found::event(Event::ResourceNotReady),
        ResourceStatus::Failed { reason } => Found::failed(Event::ResourceFailed, reason),
        ResourceStatus::Terminating => {
            let reason = if starting {
                "the engine's resource is being deleted, before it was ready"
            } else {
                "the engine's resource is being deleted, while it was running"
            };
            Found::failed(Event::ResourceFailed, reason.to_owned())
        }
        ResourceStatus::Gone => {
            let reason = if starting {
                "the engine's resource disappeared before it was ready"
            } else {
                "the engine's resource disappeared while it was running"
            };
            Found::failed(Event::ResourceGone, reason.to_owned())
        }
    }
}

/// The released record for what a pass found.
fn release(
    claimed: &EngineRecord,
    found: Found,
    now: Timestamp,
    config: &MonitorConfig,
) -> Decision {
    let recheck = Some(now.plus(config.check_interval));
    let mut next = claimed.clone();
    next.lease = None;
    let cleaning_up = claimed.state.is_cleaning_up();
    if cleaning_up && !matches!(found, Found::Retry { .. }) {
        next.error = crate::monitor::blocked::without_note(claimed.error.as_deref());
    }
    let outcome = match found {
        Found::Event {
            event,
            endpoint,
            error,
        } => match transition(claimed.state, event) {
            Ok(Transition::To(state)) => {
                move_to(&mut next, state, now);
                if endpoint.is_some() {
                    next.endpoint = endpoint;
                }
                if let Some(reason) = error {
                    next.error = Some(reason);
                }
                next.next_action_at = if state == EngineState::Running {
                    // Just seen running: watched from now on, scheduled
                    // only for its idle deadline.
                    next.retries = 0;
                    idle::idle_deadline(&next)
                } else if state == claimed.state {
                    recheck
                } else {
                    // A new state is acted on at once (`enter` made it due).
                    next.next_action_at
                };
                Outcome::Moved(event)
            }
            Ok(Transition::Removed) | Err(_) => {
                next.next_action_at = recheck;
                Outcome::Ignored
            }
        },
        Found::Unchanged => {
            if claimed.state == EngineState::Running {
                next.retries = 0;
                next.next_action_at = idle::idle_deadline(&next);
            } else {
                next.next_action_at = recheck;
            }
            Outcome::Unchanged
        }
        Found::IdleStop(reason) => {
            move_to(&mut next, EngineState::WaitToTerminate, now);
            next.stop_reason = Some(reason);
            Outcome::Moved(Event::Stop)
        }
        Found::Retry { error, remains } => {
            next.retries = claimed.retries.saturating_add(1);
            if cleaning_up {
                next.error = Some(crate::monitor::blocked::with_note(
                    claimed.error.as_deref(),
                    &error.to_string(),
                    &remains,
                ));
            }
            next.next_action_at = Some(now.plus(config.backoff(next.retries)));
            Outcome::Retry(error)
        }
        Found::Ignored => {
            next.next_action_at = recheck;
            Outcome::Ignored
        }
    };
    Decision { next, outcome }
}

/// Enters `state` if it differs, so that staying in a state (a claim or a
/// check of a watched state) keeps `state_since` and `update_time`.
fn move_to(record: &mut EngineRecord, state: EngineState, now: Timestamp) {
    if record.state != state {
        record.enter(state, now);
    }
}

impl MonitorConfig {
    /// Resource-manager calls must end well before the lease does, so that no
    /// other monitor takes over while this one still acts.
    pub fn action_timeout(&self) -> Duration {
        self.lease_duration.mul_f64(2.0 / 3.0)
    }

    /// How long to wait before retrying after `retries` consecutive failures:
    /// the check interval, doubling, at most a minute.
    pub fn backoff(&self, retries: u32) -> Duration {
        let factor = 2u32.saturating_pow(retries.saturating_sub(1).min(16));
        self.check_interval.saturating_mul(factor).min(MAX_BACKOFF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EngineState::*;

    const T0: Timestamp = Timestamp::from_millis(1_000_000);

    fn config() -> MonitorConfig {
        MonitorConfig {
            owner: "m1".into(),
            check_interval: Duration::from_secs(1),
            lease_duration: Duration::from_secs(30),
            start_deadline: Duration::from_secs(300),
            max_concurrent: 4,
            resync_interval: Duration::from_secs(30),
        }
    }

    fn running(endpoint: &str) -> ResourceStatus {
        ResourceStatus::Running {
            endpoint: endpoint.into(),
        }
    }

    fn unavailable() -> Observed {
        Observed::Failed {
            error: ResourceError::Unavailable("down".into()),
            remains: "pod p".into(),
        }
    }

    /// An engine that entered `state` at T0 and was claimed at T0 + 1 s.
    fn claimed(state: EngineState) -> EngineRecord {
        let spec = crate::CreateEngineRequest::spark("e", "4.3.0")
            .validate()
            .unwrap();
        let mut record = EngineRecord::new(spec, T0);
        record.enter(state, T0);
        if state == Running {
            record.endpoint = Some("sc://a:1".into());
        }
        record.revision = 7;
        record.lease = Some(Lease {
            owner: "m1".into(),
            expires_at: T0.plus(Duration::from_secs(31)),
        });
        record
    }

    fn write(state: EngineState, observed: Observed, now: Timestamp) -> Decision {
        match decide(&claimed(state), observed, now, &config()) {
            Verdict::Write(decision) => *decision,
            Verdict::Ask(call) => panic!("{state}: asked {call:?} instead of deciding"),
        }
    }

    #[test]
    fn each_claimed_state_asks_one_question() {
        let asks = [
            (TriggerStart, Some(Call::Create)),
            (StartInProgress, Some(Call::Status)),
            (Running, Some(Call::Status)),
            (TriggerTermination, Some(Call::Delete)),
            (TerminateInProgress, Some(Call::Status)),
            (ErrorTriggerClean, Some(Call::Delete)),
            (ErrorCleanInProgress, Some(Call::Status)),
            // Claims never leave an engine here; nothing to ask.
            (WaitToStart, None),
            (WaitToTerminate, None),
            (ErrorWaitToClean, None),
            (Terminated, None),
            (ErrorClean, None),
        ];
        for (state, want) in asks {
            let got = match decide(&claimed(state), Observed::Claimed, T0, &config()) {
                Verdict::Ask(call) => Some(call),
                Verdict::Write(d) => {
                    assert_eq!(d.outcome, Outcome::Ignored, "{state}");
                    None
                }
            };
            assert_eq!(got, want, "{state}");
        }
    }

    /// (claimed state, observation, resulting state, outcome, next check:
    /// None = unscheduled, Some(ms after now)).
    #[test]
    fn table() {
        let now = T0.plus(Duration::from_secs(10));
        let failed = |reason: &str| {
            Observed::Status(ResourceStatus::Failed {
                reason: reason.into(),
            })
        };
        type Row = (EngineState, Observed, EngineState, Outcome, Option<u64>);
        let rows: Vec<Row> = vec![
            (
                TriggerStart,
                Observed::Created,
                StartInProgress,
                Outcome::Moved(Event::ResourceCreated),
                Some(0),
            ),
            (
                TriggerStart,
                Observed::Failed {
                    error: ResourceError::Rejected("bad image".into()),
                    remains: String::new(),
                },
                ErrorWaitToClean,
                Outcome::Moved(Event::CreateFailed),
                Some(0),
            ),
            (
                TriggerStart,
                unavailable(),
                TriggerStart,
                Outcome::Retry(ResourceError::Unavailable("down".into())),
                Some(1000),
            ),
            (
                StartInProgress,
                Observed::Status(running("sc://a:1")),
                Running,
                Outcome::Moved(Event::ResourceRunning),
                None,
            ),
            (
                StartInProgress,
                Observed::Status(ResourceStatus::PENDING),
                StartInProgress,
                Outcome::Unchanged,
                Some(1000),
            ),
            (
                StartInProgress,
                failed("oom"),
                ErrorWaitToClean,
                Outcome::Moved(Event::ResourceFailed),
                Some(0),
            ),
            (
                StartInProgress,
                Observed::Status(ResourceStatus::Gone),
                ErrorWaitToClean,
                Outcome::Moved(Event::ResourceGone),
                Some(0),
            ),
            (
                StartInProgress,
                Observed::Status(ResourceStatus::Terminating),
                ErrorWaitToClean,
                Outcome::Moved(Event::ResourceFailed),
                Some(0),
            ),
            // The watched state: seen as recorded, it leaves the schedule.
            (
                Running,
                Observed::Status(running("sc://a:1")),
                Running,
                Outcome::Unchanged,
                None,
            ),
            (
                Running,
                Observed::Status(running("sc://b:2")),
                Running,
                Outcome::Moved(Event::ResourceRunning),
                None,
            ),
            (
                Running,
                Observed::Status(ResourceStatus::PENDING),
                StartInProgress,
                Outcome::Moved(Event::ResourceNotReady),
                Some(0),
            ),
            (
                Running,
                failed("oom"),
                ErrorWaitToClean,
                Outcome::Moved(Event::ResourceFailed),
                Some(0),
            ),
            (
                Running,
                Observed::Status(ResourceStatus::Gone),
                ErrorWaitToClean,
                Outcome::Moved(Event::ResourceGone),
                Some(0),
            ),
            (
                Running,
                unavailable(),
                Running,
                Outcome::Retry(ResourceError::Unavailable("down".into())),
                Some(1000),
            ),
            (
                TriggerTermination,
                Observed::DeleteIssued,
                TerminateInProgress,
                Outcome::Moved(Event::DeleteIssued),
                Some(0),
            ),
            (
                TriggerTermination,
                unavailable(),
                TriggerTermination,
                Outcome::Retry(ResourceError::Unavailable("down".into())),
                Some(1000),
            ),
            (
                TerminateInProgress,
                Observed::Status(ResourceStatus::Gone),
                Terminated,
                Outcome::Moved(Event::ResourceGone),
                None,
            ),
            (
                TerminateInProgress,
                Observed::Status(ResourceStatus::Terminating),
                TerminateInProgress,
                Outcome::Unchanged,
                Some(1000),
            ),
            (
                TerminateInProgress,
                Observed::DeleteIssued,
                TerminateInProgress,
                Outcome::Unchanged,
                Some(1000),
            ),
            (
                ErrorTriggerClean,
                Observed::DeleteIssued,
                ErrorCleanInProgress,
                Outcome::Moved(Event::DeleteIssued),
                Some(0),
            ),
            (
                ErrorCleanInProgress,
                Observed::Status(ResourceStatus::Gone),
                ErrorClean,
                Outcome::Moved(Event::ResourceGone),
                None,
            ),
            // Observations that do not fit the state change nothing.
            (
                Running,
                Observed::Created,
                Running,
                Outcome::Ignored,
                Some(1000),
            ),
            (
                TriggerStart,
                Observed::DeleteIssued,
                TriggerStart,
                Outcome::Ignored,
                Some(1000),
            ),
        ];
        for (state, observed, to, outcome, check) in rows {
            let label = format!("{state} + {observed:?}");
            let d = write(state, observed, now);
            assert_eq!(d.next.state, to, "{label}");
            assert_eq!(d.outcome, outcome, "{label}");
            assert_eq!(d.next.lease, None, "{label}: released");
            assert_eq!(
                d.next.next_action_at,
                check.map(|ms| now.plus(Duration::from_millis(ms))),
                "{label}: next check"
            );
            if to == state {
                assert_eq!(d.next.state_since, T0, "{label}: staying keeps state_since");
            } else {
                assert_eq!(d.next.state_since, now, "{label}");
            }
        }
    }

    #[test]
    fn cleanup_deletes_again_only_what_is_neither_gone_nor_going() {
        for state in [TerminateInProgress, ErrorCleanInProgress] {
            for status in [running("sc://a:1"), ResourceStatus::PENDING] {
                assert_eq!(
                    decide(&claimed(state), Observed::Status(status), T0, &config()),
                    Verdict::Ask(Call::Delete),
                    "{state}"
                );
            }
        }
    }

    #[test]
    fn the_start_deadline_counts_from_entering_the_state() {
        let cfg = config();
        let reason = Some("0/3 nodes are available".to_owned());
        let pending = Observed::Status(ResourceStatus::Pending { reason });
        let before = T0.plus(cfg.start_deadline - Duration::from_millis(1));
        assert_eq!(
            write(StartInProgress, pending.clone(), before).outcome,
            Outcome::Unchanged
        );
        let at = T0.plus(cfg.start_deadline);
        let d = write(StartInProgress, pending, at);
        assert_eq!(d.outcome, Outcome::Moved(Event::StartTimedOut));
        assert_eq!(d.next.state, ErrorWaitToClean);
        let error = d.next.error.unwrap_or_default();
        assert!(error.contains("within the start deadline of 5m"), "{error}");
        assert!(
            error.ends_with("last reason: 0/3 nodes are available"),
            "{error}"
        );
    }

    #[test]
    fn endpoints_and_errors_follow_the_decision() {
        let d = write(StartInProgress, Observed::Status(running("sc://h:9")), T0);
        assert_eq!(d.next.endpoint.as_deref(), Some("sc://h:9"));
        assert_eq!(d.next.retries, 0);
        let d = write(Running, Observed::Status(ResourceStatus::Gone), T0);
        assert_eq!(
            d.next.endpoint, None,
            "an engine on the error path has no endpoint"
        );
        assert_eq!(
            d.next.error.as_deref(),
            Some("the engine's resource disappeared while it was running")
        );
    }

    #[test]
    fn retries_back_off_and_a_blocked_cleanup_says_why() {
        let mut record = claimed(TriggerTermination);
        record.retries = 3;
        record.error = None;
        let Verdict::Write(d) = decide(&record, unavailable(), T0, &config()) else {
            panic!("asked");
        };
        assert_eq!(d.next.retries, 4);
        assert_eq!(d.next.next_action_at, Some(T0.plus(Duration::from_secs(8))));
        let error = d.next.error.clone().unwrap_or_default();
        assert!(error.contains("down") && error.contains("pod p"), "{error}");
        // Once the cleanup moves on, the note goes.
        let Verdict::Write(done) = decide(&d.next, Observed::DeleteIssued, T0, &config()) else {
            panic!("asked");
        };
        assert_eq!(done.next.error, None);
        assert_eq!(config().backoff(40), MAX_BACKOFF);
    }

    #[test]
    fn a_claim_leases_and_stays_due_for_a_takeover() {
        let cfg = config();
        let mut running = claimed(Running);
        running.lease = None;
        running.next_action_at = None;
        let c = claim(&running, "m2", T0, &cfg, || None).expect("Running is claimed");
        let lease = c.lease.clone().expect("leased");
        assert_eq!(lease.owner, "m2");
        assert_eq!(c.next_action_at, Some(lease.expires_at));
        assert!(c.is_due(lease.expires_at) && !c.is_due(T0));
        assert_eq!(
            c.state_since, running.state_since,
            "claiming a watched state keeps it"
        );

        let mut waiting = claimed(WaitToStart);
        waiting.lease = None;
        assert_eq!(
            claim(&waiting, "m2", T0, &cfg, || None),
            None,
            "no start without a token"
        );
        let token = EngineToken::generate().unwrap();
        let c = claim(&waiting, "m2", T0, &cfg, || Some(token.clone())).unwrap();
        assert_eq!((c.state, c.spec.token), (TriggerStart, Some(token)));

        for at_rest in [Terminated, ErrorClean] {
            assert_eq!(claim(&claimed(at_rest), "m2", T0, &cfg, || None), None);
        }
    }

    #[test]
    fn a_running_engine_as_recorded_needs_no_pass() {
        let cfg = config();
        let now = T0.plus(Duration::from_secs(60));
        // As a pass leaves it.
        let quiet = write(Running, Observed::Status(running("sc://a:1")), now).next;
        assert!(!needs_pass(&quiet, &running("sc://a:1"), now, &cfg));
        for changed in [
            running("sc://b:2"),
            ResourceStatus::PENDING,
            ResourceStatus::Gone,
            ResourceStatus::Terminating,
            ResourceStatus::Failed { reason: "x".into() },
        ] {
            assert!(needs_pass(&quiet, &changed, now, &cfg), "{changed:?}");
        }
        // Held by a pass or not Running: not the watch's business.
        let held = claimed(Running);
        assert!(!needs_pass(&held, &ResourceStatus::Gone, now, &cfg));
        let mut stopping = quiet.clone();
        stopping.state = WaitToTerminate;
        assert!(!needs_pass(&stopping, &ResourceStatus::Gone, now, &cfg));
    }

    #[test]
    fn idle_running_engines_are_stopped_at_their_deadline() {
        let cfg = config();
        let idle_claim = |idle: u64| {
            let mut r = claimed(Running);
            r.idle_timeout_secs = idle;
            r
        };
        let deadline = T0.plus(Duration::from_secs(60));
        // Before the deadline: an ordinary check, rescheduled for the deadline.
        let early = T0.plus(Duration::from_secs(59));
        assert_eq!(
            decide(&idle_claim(60), Observed::Claimed, early, &cfg),
            Verdict::Ask(Call::Status)
        );
        let Verdict::Write(kept) = decide(
            &idle_claim(60),
            Observed::Status(running("sc://a:1")),
            early,
            &cfg,
        ) else {
            panic!("a status decides")
        };
        assert_eq!(kept.outcome, Outcome::Unchanged);
        assert_eq!(kept.next.next_action_at, Some(deadline));
        assert!(!needs_pass(&kept.next, &running("sc://a:1"), early, &cfg));

        // Past it: stopped through the lifecycle, saying why, with no call.
        let late = T0.plus(Duration::from_secs(90));
        let Verdict::Write(stop) = decide(&idle_claim(60), Observed::Claimed, late, &cfg) else {
            panic!("an idle engine is stopped without asking")
        };
        assert_eq!(stop.outcome, Outcome::Moved(Event::Stop));
        assert_eq!(stop.next.state, WaitToTerminate);
        assert_eq!(stop.next.lease, None);
        assert_eq!(stop.next.next_action_at, Some(late), "stopped at once");
        assert_eq!(
            stop.next.stop_reason,
            Some(StopReason::Idle { idle_secs: 90 })
        );
        assert_eq!(stop.next.endpoint.as_deref(), Some("sc://a:1"));

        // Activity since moves the deadline; a timeout of 0 never stops.
        let mut active = idle_claim(60);
        active.last_activity = Some(T0.plus(Duration::from_secs(40)));
        assert_eq!(
            decide(&active, Observed::Claimed, late, &cfg),
            Verdict::Ask(Call::Status)
        );
        assert_eq!(
            decide(
                &idle_claim(0),
                Observed::Claimed,
                T0.plus(Duration::from_secs(86_400)),
                &cfg
            ),
            Verdict::Ask(Call::Status)
        );

        // A fresh start is scheduled for its first deadline.
        let mut starting = claimed(StartInProgress);
        starting.idle_timeout_secs = 60;
        let now = T0.plus(Duration::from_secs(5));
        let Verdict::Write(up) =
            decide(&starting, Observed::Status(running("sc://a:1")), now, &cfg)
        else {
            panic!("a status decides")
        };
        assert_eq!(up.next.state, Running);
        assert_eq!(
            up.next.next_action_at,
            Some(now.plus(Duration::from_secs(60)))
        );
    }
}
