//! Names and labels of an engine's Kubernetes objects, derived only from the
//! engine id, so any process can find (and adopt or delete) what another
//! created.

use std::collections::BTreeMap;

use rucat_core::EngineId;
use rucat_core::kind::spark::k8s as spark;

pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGER: &str = "rucat";
pub const ENGINE_ID: &str = "rucat.io/engine-id";
pub const ROLE: &str = "rucat.io/role";
pub const ENGINE_NAME: &str = "rucat.io/engine-name";
/// The role of every engine's main pod (the name predates other kinds than
/// Spark, and running engines' pods carry it, so it stays).
pub const DRIVER: &str = "driver";
/// The role of the executors Spark creates (rucat does not watch them).
pub const EXECUTOR: &str = "executor";
/// The role of the pods rucat creates besides the main pod (Ballista's
/// executors), owned by it and watched with it.
pub const MEMBER: &str = "member";
/// On pods built from a kind's plan: the pod's role in the plan, e.g.
/// `scheduler` or `executor-1`, unless it is `driver` (Spark's), the role a
/// pod without the label has.
pub const PART: &str = "rucat.io/part";
/// `"true"` on the pods of engines that check no token although users
/// reach them through the gateway (Sail; see
/// [`rucat_core::kind::kube::KubePlan::gateway_only`]): the Helm chart's
/// NetworkPolicy lets only the gateway reach them.
pub const GATEWAY_ONLY: &str = "rucat.io/gateway-only";
/// On a main pod with members: their names, comma-separated, so the status
/// of an engine is found from its main pod without a list.
pub const MEMBERS: &str = "rucat.io/members";
/// On a main pod: the engine's endpoint, unless it is the one a pod without
/// the annotation has, `sc://<service>:<the pod's first port>` (Spark's,
/// Sail's).
pub const ENDPOINT: &str = "rucat.io/endpoint";

/// Spark's ports, container and token variable (the Spark kind's, see
/// [`rucat_core::kind::spark::k8s`]), as Kubernetes types take them.
pub const CONNECT_PORT: i32 = spark::CONNECT_PORT as i32;
pub const UI_PORT: i32 = spark::UI_PORT as i32;
pub const DRIVER_PORT: i32 = spark::DRIVER_PORT as i32;
pub const BLOCK_MANAGER_PORT: i32 = spark::BLOCK_MANAGER_PORT as i32;
pub const CONTAINER: &str = spark::CONTAINER;
pub const TOKEN_ENV: &str = spark::TOKEN_ENV;
/// The token's key in the engine's Secret.
pub const TOKEN_KEY: &str = "token";

/// Driver pod and service share this name: `rucat-` + the 32 hex digits of
/// the id, a valid DNS label of 38 characters.
pub fn object_name(id: &EngineId) -> String {
    format!("rucat-{id}")
}

/// The engine whose driver pod this is, if the name is one of ours.
pub fn engine_of(name: &str) -> Option<EngineId> {
    name.strip_prefix("rucat-")?.parse().ok()
}

/// Selects the main pods of every engine and the pods rucat created with
/// them (not the executors Spark creates).
pub fn driver_selector() -> String {
    format!("{MANAGED_BY}={MANAGER},{ROLE} in ({DRIVER},{MEMBER})")
}

/// A member pod of the engine: `rucat-<id>-<role>`, at most 63 characters
/// for roles of up to 24.
pub fn member_name(id: &EngineId, role: &str) -> String {
    format!("{}-{role}", object_name(id))
}

/// The DNS name of the engine's service in `namespace`.
pub fn service_host(id: &EngineId, namespace: &str) -> String {
    format!("{}.{namespace}.svc", object_name(id))
}

/// Labels that identify an engine's objects; `role` tells drivers from executors.
pub fn labels(id: &EngineId, role: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_owned(), MANAGER.to_owned()),
        (ENGINE_ID.to_owned(), id.to_string()),
        (ROLE.to_owned(), role.to_owned()),
    ])
}

/// Where clients inside the cluster reach the engine.
pub fn endpoint(id: &EngineId, namespace: &str) -> String {
    format!("sc://{}:{CONNECT_PORT}", service_host(id, namespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_fit_a_dns_label() {
        let id = EngineId::generate();
        let name = object_name(&id);
        assert!(name.len() <= 63);
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        );
        assert_eq!(engine_of(&name), Some(id));
        assert_eq!(engine_of("rucat-not-an-id"), None);
        assert_eq!(engine_of("other-pod"), None);
    }
}
