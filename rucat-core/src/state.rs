//! The engine lifecycle as data: states, events and one pure transition function.
//!
//! This is the state diagram of the original rucat README, with two deliberate
//! deviations, both so that no resource is ever left behind:
//!
//! 1. A failed resource creation (`TriggerStart` + [`Event::CreateFailed`]) goes
//!    to `ErrorWaitToClean`, not straight to `ErrorClean`: creation may have got
//!    half way (a process spawned, a pod created but not its service), so the
//!    cleanup path runs before the engine is declared clean.
//! 2. Resources can fail or vanish after they were Running, and an engine
//!    restarted from `WaitToTerminate` before it was ever ready is not ready yet.
//!    The diagram has no arrows for either; here `Running` takes
//!    [`Event::ResourceFailed`] / [`Event::ResourceGone`] to the cleanup path and
//!    [`Event::ResourceNotReady`] back to `StartInProgress`.
//!
//! Everything else — which user action is allowed where, which state a monitor
//! may claim — follows the diagram exactly; `tests::diagram` checks every
//! (state, event) pair.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where an engine is in its lifecycle. Serialized as the plain variant name,
/// e.g. `"Running"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EngineState {
    WaitToStart,
    TriggerStart,
    StartInProgress,
    Running,
    WaitToTerminate,
    TriggerTermination,
    TerminateInProgress,
    Terminated,
    ErrorWaitToClean,
    ErrorTriggerClean,
    ErrorCleanInProgress,
    ErrorClean,
}

impl EngineState {
    pub const ALL: [EngineState; 12] = [
        Self::WaitToStart,
        Self::TriggerStart,
        Self::StartInProgress,
        Self::Running,
        Self::WaitToTerminate,
        Self::TriggerTermination,
        Self::TerminateInProgress,
        Self::Terminated,
        Self::ErrorWaitToClean,
        Self::ErrorTriggerClean,
        Self::ErrorCleanInProgress,
        Self::ErrorClean,
    ];

    /// The state of a newly created engine (the diagram's `[*] --> WaitToStart: CREATE`).
    pub const INITIAL: EngineState = Self::WaitToStart;

    pub const fn name(self) -> &'static str {
        match self {
            Self::WaitToStart => "WaitToStart",
            Self::TriggerStart => "TriggerStart",
            Self::StartInProgress => "StartInProgress",
            Self::Running => "Running",
            Self::WaitToTerminate => "WaitToTerminate",
            Self::TriggerTermination => "TriggerTermination",
            Self::TerminateInProgress => "TerminateInProgress",
            Self::Terminated => "Terminated",
            Self::ErrorWaitToClean => "ErrorWaitToClean",
            Self::ErrorTriggerClean => "ErrorTriggerClean",
            Self::ErrorCleanInProgress => "ErrorCleanInProgress",
            Self::ErrorClean => "ErrorClean",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// States in which the monitor has nothing to do until a user acts.
    pub const fn is_at_rest(self) -> bool {
        matches!(self, Self::Terminated | Self::ErrorClean)
    }

    /// States in which the engine's resources are being released: the monitor
    /// deletes them and waits until they are gone, however long that takes.
    pub const fn is_cleaning_up(self) -> bool {
        matches!(
            self,
            Self::WaitToTerminate
                | Self::TriggerTermination
                | Self::TerminateInProgress
                | Self::ErrorWaitToClean
                | Self::ErrorTriggerClean
                | Self::ErrorCleanInProgress
        )
    }

    /// States on the error path; the engine's `error` says why it got there.
    pub const fn is_error(self) -> bool {
        matches!(
            self,
            Self::ErrorWaitToClean
                | Self::ErrorTriggerClean
                | Self::ErrorCleanInProgress
                | Self::ErrorClean
        )
    }
}

impl fmt::Display for EngineState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Something that happens to an existing engine: a user action or an
/// observation of the monitor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// User: STOP.
    Stop,
    /// User: RESTART.
    Restart,
    /// User: DELETE.
    Delete,
    /// Monitor: takes the engine with a lease, to act on it. In the states that
    /// only need watching the state does not change, but the lease still keeps
    /// two monitors from acting at once.
    Claim,
    /// Monitor: the resource manager accepted the creation.
    ResourceCreated,
    /// Monitor: the resource manager refused the creation.
    CreateFailed,
    /// Monitor: the resource reports Running.
    ResourceRunning,
    /// Monitor: a resource of an engine marked Running is not ready (yet).
    ResourceNotReady,
    /// Monitor: the resource reports Failed.
    ResourceFailed,
    /// Monitor: the engine did not reach Running within the start deadline.
    StartTimedOut,
    /// Monitor: deletion of the resource was issued.
    DeleteIssued,
    /// Monitor: the resource no longer exists.
    ResourceGone,
}

impl Event {
    pub const ALL: [Event; 12] = [
        Self::Stop,
        Self::Restart,
        Self::Delete,
        Self::Claim,
        Self::ResourceCreated,
        Self::CreateFailed,
        Self::ResourceRunning,
        Self::ResourceNotReady,
        Self::ResourceFailed,
        Self::StartTimedOut,
        Self::DeleteIssued,
        Self::ResourceGone,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Stop => "STOP",
            Self::Restart => "RESTART",
            Self::Delete => "DELETE",
            Self::Claim => "Claim",
            Self::ResourceCreated => "ResourceCreated",
            Self::CreateFailed => "CreateFailed",
            Self::ResourceRunning => "ResourceRunning",
            Self::ResourceNotReady => "ResourceNotReady",
            Self::ResourceFailed => "ResourceFailed",
            Self::StartTimedOut => "StartTimedOut",
            Self::DeleteIssued => "DeleteIssued",
            Self::ResourceGone => "ResourceGone",
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where an event takes an engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    To(EngineState),
    /// The engine record is removed (`--> [*]` in the diagram).
    Removed,
}

/// `event` is not allowed in `state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{event} is not allowed in state {state}")]
pub struct InvalidTransition {
    pub state: EngineState,
    pub event: Event,
}

/// The state machine. Pure: no I/O, no clock.
pub fn transition(state: EngineState, event: Event) -> Result<Transition, InvalidTransition> {
    use EngineState::*;
    use Event::*;
    use Transition::{Removed, To};
    let next = match (state, event) {
        (WaitToStart, Stop) => To(Terminated),
        (WaitToStart, Delete) => Removed,
        (WaitToStart | TriggerStart, Claim) => To(TriggerStart),
        (TriggerStart, ResourceCreated) => To(StartInProgress),
        (TriggerStart, CreateFailed) => To(ErrorWaitToClean),

        (StartInProgress, Claim) => To(StartInProgress),
        (StartInProgress, ResourceRunning) => To(Running),
        (StartInProgress, Stop) => To(WaitToTerminate),
        (StartInProgress, ResourceFailed | StartTimedOut | ResourceGone) => To(ErrorWaitToClean),

        (Running, Claim | ResourceRunning) => To(Running),
        (Running, Stop) => To(WaitToTerminate),
        (Running, ResourceNotReady) => To(StartInProgress),
        (Running, ResourceFailed | ResourceGone) => To(ErrorWaitToClean),

        (WaitToTerminate, Restart) => To(Running),
        (WaitToTerminate | TriggerTermination, Claim) => To(TriggerTermination),
        (TriggerTermination, DeleteIssued) => To(TerminateInProgress),
        (TerminateInProgress, Claim) => To(TerminateInProgress),
        (TerminateInProgress, ResourceGone) => To(Terminated),

        (Terminated, Restart) => To(WaitToStart),
        (Terminated, Delete) => Removed,

        (ErrorWaitToClean | ErrorTriggerClean, Claim) => To(ErrorTriggerClean),
        (ErrorTriggerClean, DeleteIssued) => To(ErrorCleanInProgress),
        (ErrorCleanInProgress, Claim) => To(ErrorCleanInProgress),
        (ErrorCleanInProgress, ResourceGone) => To(ErrorClean),
        (ErrorClean, Delete) => Removed,

        _ => return Err(InvalidTransition { state, event }),
    };
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::EngineState::*;
    use super::Event::*;
    use super::*;

    /// Every allowed (state, event) pair, written out independently of
    /// `transition`'s match so that a slip in either shows up.
    const DIAGRAM: &[(EngineState, Event, Option<EngineState>)] = &[
        // From the original diagram.
        (WaitToStart, Stop, Some(Terminated)),
        (WaitToStart, Delete, None),
        (WaitToStart, Claim, Some(TriggerStart)),
        (TriggerStart, ResourceCreated, Some(StartInProgress)),
        (StartInProgress, ResourceRunning, Some(Running)),
        (StartInProgress, Stop, Some(WaitToTerminate)),
        (StartInProgress, ResourceFailed, Some(ErrorWaitToClean)),
        (Running, Stop, Some(WaitToTerminate)),
        (WaitToTerminate, Restart, Some(Running)),
        (WaitToTerminate, Claim, Some(TriggerTermination)),
        (TriggerTermination, DeleteIssued, Some(TerminateInProgress)),
        (TerminateInProgress, ResourceGone, Some(Terminated)),
        (Terminated, Restart, Some(WaitToStart)),
        (Terminated, Delete, None),
        (ErrorWaitToClean, Claim, Some(ErrorTriggerClean)),
        (ErrorTriggerClean, DeleteIssued, Some(ErrorCleanInProgress)),
        (ErrorCleanInProgress, ResourceGone, Some(ErrorClean)),
        (ErrorClean, Delete, None),
        // Deviation 1: a failed creation is cleaned up.
        (TriggerStart, CreateFailed, Some(ErrorWaitToClean)),
        // Deviation 2: failures after start, and a restart that is not ready.
        (StartInProgress, StartTimedOut, Some(ErrorWaitToClean)),
        (StartInProgress, ResourceGone, Some(ErrorWaitToClean)),
        (Running, ResourceFailed, Some(ErrorWaitToClean)),
        (Running, ResourceGone, Some(ErrorWaitToClean)),
        (Running, ResourceNotReady, Some(StartInProgress)),
        (Running, ResourceRunning, Some(Running)),
        // A monitor whose lease expired is replaced by another one, which claims
        // the engine again in the same trigger state.
        (TriggerStart, Claim, Some(TriggerStart)),
        (TriggerTermination, Claim, Some(TriggerTermination)),
        (ErrorTriggerClean, Claim, Some(ErrorTriggerClean)),
        // States that are only watched are claimed without changing.
        (StartInProgress, Claim, Some(StartInProgress)),
        (Running, Claim, Some(Running)),
        (TerminateInProgress, Claim, Some(TerminateInProgress)),
        (ErrorCleanInProgress, Claim, Some(ErrorCleanInProgress)),
    ];

    #[test]
    fn diagram() {
        let mut allowed = 0;
        for state in EngineState::ALL {
            for event in Event::ALL {
                let expected = DIAGRAM
                    .iter()
                    .find(|(s, e, _)| *s == state && *e == event)
                    .map(|(_, _, to)| to.map_or(Transition::Removed, Transition::To));
                match (transition(state, event), expected) {
                    (Ok(got), Some(want)) => {
                        assert_eq!(got, want, "{state} + {event}");
                        allowed += 1;
                    }
                    (Err(err), None) => assert_eq!(err, InvalidTransition { state, event }),
                    (got, want) => panic!("{state} + {event}: got {got:?}, diagram says {want:?}"),
                }
            }
        }
        assert_eq!(allowed, DIAGRAM.len(), "a diagram row is listed twice");
    }

    #[test]
    fn user_actions_only_where_the_diagram_allows() {
        let allowed = |event| {
            EngineState::ALL
                .into_iter()
                .filter(|s| transition(*s, event).is_ok())
                .collect::<Vec<_>>()
        };
        assert_eq!(allowed(Stop), [WaitToStart, StartInProgress, Running]);
        assert_eq!(allowed(Restart), [WaitToTerminate, Terminated]);
        assert_eq!(allowed(Delete), [WaitToStart, Terminated, ErrorClean]);
    }

    #[test]
    fn at_rest_states_accept_no_monitor_event() {
        for state in EngineState::ALL.into_iter().filter(|s| s.is_at_rest()) {
            for event in [
                Claim,
                ResourceCreated,
                ResourceRunning,
                ResourceGone,
                DeleteIssued,
            ] {
                assert!(transition(state, event).is_err(), "{state} + {event}");
            }
        }
    }

    #[test]
    fn json_is_the_plain_state_name() {
        for state in EngineState::ALL {
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.name()));
            assert_eq!(EngineState::from_name(state.name()), Some(state));
        }
        assert_eq!(EngineState::from_name("running"), None);
    }
}
