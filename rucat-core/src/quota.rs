//! How many engines one user may have, and how many running at once.
//!
//! The configuration gives a default and overrides per user and per group;
//! [`Quotas::limits_for`] resolves them for one [`Identity`] into
//! [`Limits`], which the store enforces in the same atomic step as the write
//! that would break them ([`crate::Store::insert_within`],
//! [`crate::Store::compare_and_swap_within`]): a check before the write would
//! let parallel creates, on one server or several, all pass it.
//!
//! Counts are per owner, whatever the groups: a group override raises or
//! lowers the limit of each of its members, not a shared pool.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::engine::EngineRecord;
use crate::identity::Identity;
use crate::state::EngineState;

/// One set of limits as configured; a limit left out is not enforced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Engines recorded, in any state.
    pub max_engines: Option<u64>,
    /// Engines starting or running at once (see [`counts_as_running`]).
    pub max_running: Option<u64>,
}

/// The `quotas` section of the server's configuration:
///
/// ```json
/// "quotas": {"default": {"max_engines": 10, "max_running": 2},
///            "users": {"alice": {"max_running": 5}},
///            "groups": {"analysts": {"max_engines": 20}}}
/// ```
///
/// Per limit, a user's own override wins; else the most generous of their
/// groups' overrides; else the default. No `quotas`: no limits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    #[serde(default)]
    pub default: Quota,
    #[serde(default)]
    pub users: BTreeMap<String, Quota>,
    #[serde(default)]
    pub groups: BTreeMap<String, Quota>,
}

impl Quotas {
    /// The limits that apply to `who`'s engines.
    pub fn limits_for(&self, who: &Identity) -> Limits {
        let own = self.users.get(&who.name);
        let groups: Vec<&Quota> = who
            .groups
            .iter()
            .filter_map(|g| self.groups.get(g))
            .collect();
        let pick = |field: fn(&Quota) -> Option<u64>| {
            own.and_then(field)
                .or_else(|| groups.iter().filter_map(|q| field(q)).max())
                .or(field(&self.default))
        };
        Limits {
            owner: who.name.clone(),
            max_engines: pick(|q| q.max_engines),
            max_running: pick(|q| q.max_running),
        }
    }
}

/// The limits on one owner's engines, as a store enforces them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub owner: String,
    pub max_engines: Option<u64>,
    pub max_running: Option<u64>,
}

impl Limits {
    /// No limit: what an embedding application without quotas passes.
    pub fn none(owner: impl Into<String>) -> Self {
        Self {
            owner: owner.into(),
            max_engines: None,
            max_running: None,
        }
    }

    /// Whether `next` may be written when its owner already has `usage`
    /// other than `next` itself: the pure rule every store applies inside
    /// its atomic write. `inserting` is true for a new engine, which counts
    /// against `max_engines`; an update (a restart) only against
    /// `max_running`. A write that does not add to a count always passes, so
    /// lowering a quota never blocks stopping or deleting.
    pub fn check(
        &self,
        usage: Usage,
        next: &EngineRecord,
        inserting: bool,
    ) -> Result<(), QuotaExceeded> {
        if let Some(limit) = self.max_engines
            && inserting
            && usage.engines >= limit
        {
            return Err(QuotaExceeded {
                quota: QuotaKind::MaxEngines,
                count: usage.engines,
                limit,
            });
        }
        if let Some(limit) = self.max_running
            && counts_as_running(next.state)
            && usage.running >= limit
        {
            return Err(QuotaExceeded {
                quota: QuotaKind::MaxRunning,
                count: usage.running,
                limit,
            });
        }
        Ok(())
    }

    /// Whether any limit is set (else a store may write without counting).
    pub fn is_unlimited(&self) -> bool {
        self.max_engines.is_none() && self.max_running.is_none()
    }
}

/// An owner's engines, as counted against [`Limits`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub engines: u64,
    /// Of those, how many [`counts_as_running`].
    pub running: u64,
}

impl Usage {
    /// Adds `record` to the count.
    pub fn add(&mut self, record: &EngineRecord) {
        self.engines += 1;
        if counts_as_running(record.state) {
            self.running += 1;
        }
    }
}

/// Whether an engine in `state` counts against `max_running`: from the
/// moment it is asked to start until it is asked to stop. A stopping engine
/// no longer counts, so a user at the limit can stop one and start another.
pub const fn counts_as_running(state: EngineState) -> bool {
    matches!(
        state,
        EngineState::WaitToStart
            | EngineState::TriggerStart
            | EngineState::StartInProgress
            | EngineState::Running
    )
}

/// Which limit a write would break.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaKind {
    MaxEngines,
    MaxRunning,
}

impl QuotaKind {
    pub const fn name(self) -> &'static str {
        match self {
            Self::MaxEngines => "max_engines",
            Self::MaxRunning => "max_running",
        }
    }
}

impl fmt::Display for QuotaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A write refused because its owner is at a limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("quota {quota} reached: {count} of {limit}")]
pub struct QuotaExceeded {
    pub quota: QuotaKind,
    /// The owner's count when the write was refused.
    pub count: u64,
    pub limit: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Configs, EngineId, EngineSpec, EngineType};
    use crate::time::Timestamp;

    fn quotas() -> Quotas {
        serde_json::from_str(
            r#"{"default": {"max_engines": 5, "max_running": 1},
                "users": {"alice": {"max_running": 4}},
                "groups": {"big": {"max_engines": 50, "max_running": 3},
                           "bigger": {"max_engines": 80}}}"#,
        )
        .unwrap()
    }

    fn limits(max_engines: Option<u64>, max_running: Option<u64>) -> (Option<u64>, Option<u64>) {
        (max_engines, max_running)
    }

    #[test]
    fn user_then_most_generous_group_then_default() {
        let q = quotas();
        let of = |who: Identity| {
            let l = q.limits_for(&who);
            assert_eq!(l.owner, who.name);
            (l.max_engines, l.max_running)
        };
        let none: [&str; 0] = [];
        assert_eq!(
            of(Identity::user("zed", none)),
            limits(Some(5), Some(1)),
            "default"
        );
        assert_eq!(
            of(Identity::user("alice", none)),
            limits(Some(5), Some(4)),
            "own override per limit"
        );
        assert_eq!(
            of(Identity::user("zed", ["big", "bigger"])),
            limits(Some(80), Some(3)),
            "most generous group, per limit"
        );
        assert_eq!(
            of(Identity::user("alice", ["big"])),
            limits(Some(50), Some(4)),
            "own override beats the group"
        );
        assert_eq!(
            Quotas::default().limits_for(&Identity::admin("root")),
            Limits::none("root")
        );
        assert!(serde_json::from_str::<Quotas>(r#"{"default": {"max": 1}}"#).is_err());
    }

    fn record(state: EngineState) -> EngineRecord {
        let spec = EngineSpec {
            id: EngineId::generate(),
            name: "e".into(),
            engine_type: EngineType::Spark,
            version: "4.3.0".into(),
            configs: Configs::new(),
            token: None,
        };
        let mut r = EngineRecord::new(spec, Timestamp::from_millis(1));
        r.state = state;
        r
    }

    #[test]
    fn check_counts_what_the_write_adds() {
        let limits = Limits {
            owner: "a".into(),
            max_engines: Some(3),
            max_running: Some(2),
        };
        let usage = |engines, running| Usage { engines, running };
        let starting = record(EngineState::WaitToStart);
        let stopped = record(EngineState::Terminated);
        assert_eq!(limits.check(usage(2, 1), &starting, true), Ok(()));
        assert_eq!(
            limits.check(usage(3, 0), &stopped, true),
            Err(QuotaExceeded {
                quota: QuotaKind::MaxEngines,
                count: 3,
                limit: 3
            })
        );
        assert_eq!(
            limits.check(usage(2, 2), &starting, false),
            Err(QuotaExceeded {
                quota: QuotaKind::MaxRunning,
                count: 2,
                limit: 2
            })
        );
        assert_eq!(
            limits.check(usage(2, 2), &stopped, true),
            Ok(()),
            "a stopped engine does not count as running"
        );
        assert_eq!(
            limits.check(usage(5, 0), &starting, false),
            Ok(()),
            "a restart adds no engine"
        );
        assert!(
            Limits::none("a")
                .check(usage(1000, 1000), &starting, true)
                .is_ok()
        );
        let mut u = Usage::default();
        for state in EngineState::ALL {
            u.add(&record(state));
        }
        assert_eq!(u.engines, EngineState::ALL.len() as u64);
        assert_eq!(u.running, 4);
        assert_eq!(
            QuotaExceeded {
                quota: QuotaKind::MaxRunning,
                count: 2,
                limit: 2
            }
            .to_string(),
            "quota max_running reached: 2 of 2"
        );
    }
}
