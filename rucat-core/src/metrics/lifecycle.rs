//! What monitors (and users) do to engines: transitions, how long engines
//! stayed in each state, and how often monitors got in each other's way.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::state::EngineState;
use crate::time::Timestamp;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    from: &'static str,
    to: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

/// Engines stay in a state from milliseconds (a claim) to days (Running).
const STATE_SECONDS: [f64; 17] = [
    0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
    21600.0, 86400.0,
];

fn state_histogram() -> Histogram {
    Histogram::new(STATE_SECONDS)
}

/// The lifecycle metrics of one process. Monitors record every transition
/// they make and the coordination events below; [`crate::Engines`] records
/// the transitions users make (stop, restart), so that, summed over every
/// process sharing a store, the counters cover every transition.
#[derive(Debug)]
pub struct MonitorMetrics {
    transitions: Family<TransitionLabels, Counter>,
    time_in_state: Family<StateLabels, Histogram, fn() -> Histogram>,
    claim_conflicts: Counter,
    lease_takeovers: Counter,
    releases_refused: Counter,
    idle_stops: Counter,
    logs_archived: Family<OutcomeLabels, Counter>,
}

impl MonitorMetrics {
    /// Creates the metrics and registers them into `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            transitions: Family::default(),
            time_in_state: Family::new_with_constructor(state_histogram),
            claim_conflicts: Counter::default(),
            lease_takeovers: Counter::default(),
            releases_refused: Counter::default(),
            idle_stops: Counter::default(),
            logs_archived: Family::default(),
        };
        registry.register(
            "rucat_engine_transitions",
            "Engine state transitions made by this process",
            metrics.transitions.clone(),
        );
        registry.register(
            "rucat_engine_state_duration_seconds",
            "Time engines spent in a state, observed when this process moved them out of it",
            metrics.time_in_state.clone(),
        );
        registry.register(
            "rucat_monitor_claim_conflicts",
            "Claims this process's monitor lost to another writer",
            metrics.claim_conflicts.clone(),
        );
        registry.register(
            "rucat_monitor_lease_takeovers",
            "Engines this process's monitor claimed after another monitor's lease expired",
            metrics.lease_takeovers.clone(),
        );
        registry.register(
            "rucat_monitor_releases_refused",
            "Releases refused because the engine changed after the claim (a stale owner's write)",
            metrics.releases_refused.clone(),
        );
        registry.register(
            "rucat_engine_idle_stops",
            "Engines this process's monitor stopped because they were idle past their timeout",
            metrics.idle_stops.clone(),
        );
        registry.register(
            "rucat_engine_logs_archived",
            "Engine logs this process's monitor copied into the log archive before releasing \
             the engine's resources, by outcome (archived, none: the platform had no log, failed)",
            metrics.logs_archived.clone(),
        );
        metrics
    }

    /// An engine moved from `from`, where it had been since `since`, to `to`.
    pub(crate) fn transition(
        &self,
        from: EngineState,
        to: EngineState,
        since: Timestamp,
        now: Timestamp,
    ) {
        if from == to {
            return;
        }
        self.transitions
            .get_or_create(&TransitionLabels {
                from: from.name(),
                to: to.name(),
            })
            .inc();
        self.time_in_state
            .get_or_create(&StateLabels { state: from.name() })
            .observe(now.since(since).as_secs_f64());
    }

    pub(crate) fn claim_conflict(&self) {
        self.claim_conflicts.inc();
    }

    pub(crate) fn lease_takeover(&self) {
        self.lease_takeovers.inc();
    }

    pub(crate) fn release_refused(&self) {
        self.releases_refused.inc();
    }

    pub(crate) fn idle_stop(&self) {
        self.idle_stops.inc();
    }

    /// `outcome`: `archived`, `none` or `failed`.
    pub(crate) fn log_archived(&self, outcome: &'static str) {
        self.logs_archived
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }
}
