//! The API access the resource manager needs in the engine namespace: what
//! its Role must grant, and no more. The Helm chart's Role is tested against
//! this list, and this list against the calls the resource manager really
//! makes, so neither can drift.

/// Verbs on one resource of the core API group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
}

pub const PERMISSIONS: &[Permission] = &[
    // Create and delete engine pods (drivers, and the pods a kind's plan
    // adds, e.g. Ballista's executors), adopt existing ones (get), and the
    // watch-fed cache (list, watch).
    Permission {
        resource: "pods",
        verbs: &["get", "list", "watch", "create", "delete"],
    },
    // The driver's log: read while it runs, archived before its pod is
    // deleted, quoted in the failure reason of a driver that exits with an
    // error.
    Permission {
        resource: "pods/log",
        verbs: &["get"],
    },
    // The headless service in front of each driver (every kind's main pod).
    Permission {
        resource: "services",
        verbs: &["create", "delete"],
    },
    // The engine's token, owned by its driver pod (so deleted with it);
    // replaced when one is left from an earlier start.
    Permission {
        resource: "secrets",
        verbs: &["create", "update"],
    },
];
