//! What a driver pod says about its engine: a pure mapping from the pod the
//! cluster reports to a [`ResourceStatus`], with the reason a user needs when
//! something is wrong. Nothing the cluster reports can make it panic: every
//! field is optional and unknown values fall through to Pending.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus, Pod};
use k8s_openapi::jiff::Timestamp;
use rucat_core::ResourceStatus;

use crate::names::{self, CONTAINER};

/// Waiting reasons that cannot resolve by themselves: the engine fails now
/// rather than at its start deadline.
const FATAL_WAITING: &[&str] = &[
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "CrashLoopBackOff",
    "RunContainerError",
];

/// The status of the engine whose driver pod is `pod`; `endpoint` is where
/// clients connect once it is ready. A pod being deleted is
/// [`ResourceStatus::Terminating`] for as long as its grace period lasts
/// (see [`stuck_terminating`] for when that ends).
pub fn engine_status(pod: &Pod, endpoint: &str) -> ResourceStatus {
    if pod.metadata.deletion_timestamp.is_some() {
        return ResourceStatus::Terminating;
    }
    let what = part(pod);
    let status = pod.status.as_ref();
    let container = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|all| all.iter().find(|c| c.name == container_name(pod)));
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    match phase {
        "Failed" | "Succeeded" => ResourceStatus::Failed {
            reason: container
                .and_then(terminated)
                .map(|t| describe_termination(what, t))
                .unwrap_or_else(|| {
                    let why = status.and_then(|s| s.reason.clone().or(s.message.clone()));
                    format!(
                        "the {what} pod {}: {}",
                        phase.to_lowercase(),
                        why.unwrap_or_else(|| "no reason given".to_owned())
                    )
                }),
        },
        "Running" => match container {
            Some(c) if c.ready => ResourceStatus::Running {
                endpoint: endpoint.to_owned(),
            },
            Some(c) => match terminated(c) {
                Some(t) => ResourceStatus::Failed {
                    reason: describe_termination(what, t),
                },
                None => waiting(c, pod),
            },
            None => ResourceStatus::PENDING,
        },
        "Unknown" => ResourceStatus::Pending {
            reason: Some(format!(
                "the {what} pod's node stopped reporting (phase Unknown)"
            )),
        },
        _ => match container {
            Some(c) => waiting(c, pod),
            None => unschedulable(pod).map_or(ResourceStatus::PENDING, |reason| {
                ResourceStatus::Pending {
                    reason: Some(reason),
                }
            }),
        },
    }
}

/// The status of an engine with member pods (Ballista's executors):
/// `members` are their names with the pods the cache has. Running when the
/// main pod and every member are ready; Failed when any of them fails, with
/// the index of the failed member (`None`: the main pod) whose log explains
/// it. A member missing is still being created while `just_created` (this
/// process created the engine a moment ago, or the watch has not shown it
/// yet) or while the main pod is not ready — a create retried after a crash
/// adds it; once the main pod is ready it is gone, and the engine failed.
pub fn engine_status_with_members(
    main: &Pod,
    members: &[(&str, Option<&Pod>)],
    endpoint: &str,
    just_created: bool,
) -> (ResourceStatus, Option<usize>) {
    let of_main = engine_status(main, endpoint);
    if !matches!(
        of_main,
        ResourceStatus::Running { .. } | ResourceStatus::Pending { .. }
    ) {
        return (of_main, None);
    }
    let main_ready = matches!(of_main, ResourceStatus::Running { .. });
    let mut waiting: Option<ResourceStatus> = None;
    for (index, (name, pod)) in members.iter().enumerate() {
        let Some(pod) = pod else {
            if main_ready && !just_created {
                return (
                    ResourceStatus::Failed {
                        reason: format!("the pod {name} of the engine is gone"),
                    },
                    None,
                );
            }
            waiting.get_or_insert(ResourceStatus::Pending {
                reason: Some(format!("the pod {name} is not created yet")),
            });
            continue;
        };
        match engine_status(pod, endpoint) {
            ResourceStatus::Running { .. } => {}
            ResourceStatus::Pending { reason } => {
                let part = part(pod);
                waiting.get_or_insert(ResourceStatus::Pending {
                    reason: Some(reason.map_or_else(
                        || format!("{part} is not ready yet"),
                        |r| format!("{part}: {r}"),
                    )),
                });
            }
            // A member deleted while the engine lives is as fatal as a
            // failed one: nothing recreates it.
            ResourceStatus::Terminating => {
                return (
                    ResourceStatus::Failed {
                        reason: format!("the pod {name} of the engine is being deleted"),
                    },
                    None,
                );
            }
            failed @ ResourceStatus::Failed { .. } => return (failed, Some(index)),
            ResourceStatus::Gone => {}
        }
    }
    match (of_main, waiting) {
        (ResourceStatus::Pending { reason: None }, Some(member)) => (member, None),
        (ResourceStatus::Running { .. }, Some(member)) => (member, None),
        (of_main, _) => (of_main, None),
    }
}

/// The pod's part in its engine, for messages: the role its kind gave it,
/// or `driver` (Spark's, which has none).
fn part(pod: &Pod) -> &str {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(names::PART))
        .map_or("driver", String::as_str)
}

/// The container whose state is the pod's: the first in its spec (rucat's
/// pods have one), or Spark's when the spec is not at hand.
pub fn container_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .map_or(CONTAINER, |c| c.name.as_str())
}

/// Whether a pod being deleted is still there `limit` after the end of its
/// grace period (its `deletionTimestamp` is when that ends): its node is
/// likely lost, and only a delete with no grace period removes it.
pub fn stuck_terminating(pod: &Pod, now: Timestamp, limit: Duration) -> bool {
    let Some(until) = pod.metadata.deletion_timestamp.as_ref() else {
        return false;
    };
    let waited = now.duration_since(until.0);
    !waited.is_negative() && waited.unsigned_abs() >= limit
}

fn terminated(container: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    container.state.as_ref()?.terminated.as_ref()
}

fn describe_termination(what: &str, t: &ContainerStateTerminated) -> String {
    let reason = t.reason.as_deref().unwrap_or("terminated");
    let mut text = format!(
        "the {what} container ended: {reason} (exit code {})",
        t.exit_code
    );
    if let Some(message) = t.message.as_deref().filter(|m| !m.is_empty()) {
        text.push_str(": ");
        text.push_str(message.trim());
    }
    text
}

/// A container that exists but is not ready: Pending, with the kubelet's
/// reason if it gives one; Failed if that reason cannot clear by itself.
/// The engine's own Secret, created just after its pod, may be missing for a
/// moment: waiting for it clears by itself.
fn waiting(container: &ContainerStatus, pod: &Pod) -> ResourceStatus {
    let Some(w) = container.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
        return ResourceStatus::PENDING;
    };
    let Some(reason) = w.reason.as_deref() else {
        return ResourceStatus::PENDING;
    };
    let text = match w.message.as_deref().filter(|m| !m.is_empty()) {
        Some(message) => format!("{reason}: {}", message.trim()),
        None => reason.to_owned(),
    };
    let own_secret = pod
        .metadata
        .name
        .as_deref()
        .map(|name| format!("secret \"{name}\" not found"));
    let awaits_own_secret = reason == "CreateContainerConfigError"
        && own_secret.is_some_and(|missing| text.contains(&missing));
    if FATAL_WAITING.contains(&reason) && !awaits_own_secret {
        ResourceStatus::Failed { reason: text }
    } else if reason == "ContainerCreating" || reason == "PodInitializing" {
        ResourceStatus::PENDING
    } else {
        ResourceStatus::Pending { reason: Some(text) }
    }
}

/// The scheduler's reason when the pod cannot be placed.
fn unschedulable(pod: &Pod) -> Option<String> {
    let condition = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
    let reason = condition.reason.as_deref().unwrap_or("NotScheduled");
    Some(match condition.message.as_deref() {
        Some(message) => format!("{reason}: {message}"),
        None => reason.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ENDPOINT: &str = "sc://rucat-x.ns.svc:15002";

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "rucat-x"},
            "status": status,
        }))
        .unwrap()
    }

    fn container(state: serde_json::Value, ready: bool) -> serde_json::Value {
        json!({"name": "spark-connect", "ready": ready, "restartCount": 0, "image": "i", "imageID": "",
               "state": state})
    }

    #[test]
    fn a_new_pod_is_pending() {
        assert_eq!(
            engine_status(&pod(json!({})), ENDPOINT),
            ResourceStatus::PENDING
        );
        assert_eq!(
            engine_status(&pod(json!({"phase": "Pending"})), ENDPOINT),
            ResourceStatus::PENDING
        );
        let creating = container(json!({"waiting": {"reason": "ContainerCreating"}}), false);
        assert_eq!(
            engine_status(
                &pod(json!({"phase": "Pending", "containerStatuses": [creating]})),
                ENDPOINT
            ),
            ResourceStatus::PENDING
        );
    }

    #[test]
    fn ready_means_running_at_the_endpoint() {
        let ready = container(
            json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}}),
            true,
        );
        let not_yet = container(
            json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}}),
            false,
        );
        assert_eq!(
            engine_status(
                &pod(json!({"phase": "Running", "containerStatuses": [ready]})),
                ENDPOINT
            ),
            ResourceStatus::Running {
                endpoint: ENDPOINT.into()
            }
        );
        assert_eq!(
            engine_status(
                &pod(json!({"phase": "Running", "containerStatuses": [not_yet]})),
                ENDPOINT
            ),
            ResourceStatus::PENDING
        );
    }

    #[test]
    fn unschedulable_pods_wait_with_the_schedulers_reason() {
        let status = engine_status(
            &pod(
                json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                "reason": "Unschedulable", "message": "0/3 nodes are available: 3 Insufficient memory."}]}),
            ),
            ENDPOINT,
        );
        assert_eq!(
            status,
            ResourceStatus::Pending {
                reason: Some(
                    "Unschedulable: 0/3 nodes are available: 3 Insufficient memory.".into()
                )
            }
        );
    }

    #[test]
    fn image_pull_trouble_waits_with_its_reason() {
        for reason in ["ErrImagePull", "ImagePullBackOff"] {
            let c = container(
                json!({"waiting": {"reason": reason, "message": "pull access denied"}}),
                false,
            );
            assert_eq!(
                engine_status(
                    &pod(json!({"phase": "Pending", "containerStatuses": [c]})),
                    ENDPOINT
                ),
                ResourceStatus::Pending {
                    reason: Some(format!("{reason}: pull access denied"))
                }
            );
        }
    }

    #[test]
    fn hopeless_waiting_fails_at_once() {
        for reason in [
            "CrashLoopBackOff",
            "InvalidImageName",
            "CreateContainerConfigError",
        ] {
            let c = container(json!({"waiting": {"reason": reason}}), false);
            let phase = if reason == "CrashLoopBackOff" {
                "Running"
            } else {
                "Pending"
            };
            assert_eq!(
                engine_status(
                    &pod(json!({"phase": phase, "containerStatuses": [c]})),
                    ENDPOINT
                ),
                ResourceStatus::Failed {
                    reason: reason.into()
                }
            );
        }
    }

    #[test]
    fn a_driver_waiting_for_its_own_secret_is_pending_but_not_for_another() {
        let missing = |secret: &str| {
            let c = container(
                json!({"waiting": {"reason": "CreateContainerConfigError",
                    "message": format!("secret \"{secret}\" not found")}}),
                false,
            );
            engine_status(
                &pod(json!({"phase": "Pending", "containerStatuses": [c]})),
                ENDPOINT,
            )
        };
        assert!(matches!(missing("rucat-x"), ResourceStatus::Pending { .. }));
        assert!(matches!(missing("other"), ResourceStatus::Failed { .. }));
    }

    #[test]
    fn failures_name_the_reason_and_exit_code() {
        let oom = container(
            json!({"terminated": {"exitCode": 137, "reason": "OOMKilled"}}),
            false,
        );
        assert_eq!(
            engine_status(
                &pod(json!({"phase": "Failed", "containerStatuses": [oom]})),
                ENDPOINT
            ),
            ResourceStatus::Failed {
                reason: "the driver container ended: OOMKilled (exit code 137)".into()
            }
        );
        let error = container(
            json!({"terminated": {"exitCode": 1, "reason": "Error", "message": "bad conf\n"}}),
            false,
        );
        assert_eq!(
            engine_status(
                &pod(json!({"phase": "Failed", "containerStatuses": [error]})),
                ENDPOINT
            ),
            ResourceStatus::Failed {
                reason: "the driver container ended: Error (exit code 1): bad conf".into()
            }
        );
        assert_eq!(
            engine_status(
                &pod(json!({"phase": "Failed", "reason": "Evicted"})),
                ENDPOINT
            ),
            ResourceStatus::Failed {
                reason: "the driver pod failed: Evicted".into()
            }
        );
        assert!(matches!(
            engine_status(&pod(json!({"phase": "Succeeded"})), ENDPOINT),
            ResourceStatus::Failed { .. }
        ));
    }

    #[test]
    fn terminating_and_unknown_pods() {
        let mut terminating = pod(json!({"phase": "Running"}));
        terminating.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::UNIX_EPOCH),
        );
        assert_eq!(
            engine_status(&terminating, ENDPOINT),
            ResourceStatus::Terminating
        );
        assert!(matches!(
            engine_status(&pod(json!({"phase": "Unknown"})), ENDPOINT),
            ResourceStatus::Pending { reason: Some(_) }
        ));
        assert_eq!(
            engine_status(&pod(json!({"phase": "SomethingNew"})), ENDPOINT),
            ResourceStatus::PENDING
        );
    }

    #[test]
    fn a_pod_is_stuck_terminating_only_long_after_its_grace_period() {
        let limit = Duration::from_secs(60);
        let end_of_grace = Timestamp::from_second(1_000).unwrap();
        let mut deleted = pod(json!({"phase": "Running"}));
        let at = |seconds: i64| Timestamp::from_second(seconds).unwrap();
        assert!(
            !stuck_terminating(&deleted, at(5_000), limit),
            "not deleted"
        );
        deleted.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(end_of_grace),
        );
        assert!(
            !stuck_terminating(&deleted, at(970), limit),
            "in its grace period"
        );
        assert!(!stuck_terminating(&deleted, at(1_059), limit));
        assert!(stuck_terminating(&deleted, at(1_060), limit));
    }

    /// A pod of a plan: its part label and its one container's state.
    fn part_pod(part: &str, phase: &str, state: serde_json::Value, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": format!("rucat-x-{part}"), "labels": {names::PART: part}},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": phase, "containerStatuses": [
                {"name": "c", "ready": ready, "restartCount": 0, "image": "i", "imageID": "",
                 "state": state}]},
        }))
        .unwrap()
    }

    fn ready(part: &str) -> Pod {
        part_pod(part, "Running", json!({"running": {}}), true)
    }

    fn starting(part: &str) -> Pod {
        part_pod(part, "Running", json!({"running": {}}), false)
    }

    fn failed(part: &str) -> Pod {
        part_pod(
            part,
            "Failed",
            json!({"terminated": {"exitCode": 1, "reason": "Error"}}),
            false,
        )
    }

    const DF: &str = "df://rucat-x.ns.svc:50050";

    fn judge(
        main: &Pod,
        members: &[Option<&Pod>],
        just_created: bool,
    ) -> (ResourceStatus, Option<usize>) {
        let names = ["rucat-x-executor-1", "rucat-x-executor-2"];
        let members: Vec<(&str, Option<&Pod>)> =
            names.iter().copied().zip(members.iter().copied()).collect();
        engine_status_with_members(main, &members, DF, just_created)
    }

    #[test]
    fn an_engine_with_members_runs_when_all_are_ready() {
        let (e1, e2) = (ready("executor-1"), ready("executor-2"));
        assert_eq!(
            judge(&ready("scheduler"), &[Some(&e1), Some(&e2)], false),
            (
                ResourceStatus::Running {
                    endpoint: DF.into()
                },
                None
            )
        );
        assert_eq!(
            judge(&ready("scheduler"), &[], false),
            (
                ResourceStatus::Running {
                    endpoint: DF.into()
                },
                None
            ),
            "no members: the main pod alone"
        );
    }

    #[test]
    fn a_member_not_ready_keeps_the_engine_pending_and_says_which() {
        let (e1, e2) = (ready("executor-1"), starting("executor-2"));
        assert_eq!(
            judge(&ready("scheduler"), &[Some(&e1), Some(&e2)], false).0,
            ResourceStatus::Pending {
                reason: Some("executor-2 is not ready yet".into())
            }
        );
        let pulling = part_pod(
            "executor-1",
            "Pending",
            json!({"waiting": {"reason": "ErrImagePull", "message": "not found"}}),
            false,
        );
        assert_eq!(
            judge(&starting("scheduler"), &[Some(&pulling), Some(&e2)], false).0,
            ResourceStatus::Pending {
                reason: Some("executor-1: ErrImagePull: not found".into())
            },
            "the main pod has nothing to say: the member's reason"
        );
        let unschedulable: Pod = serde_json::from_value(json!({
            "metadata": {"name": "rucat-x", "labels": {names::PART: "scheduler"}},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled",
                "status": "False", "reason": "Unschedulable", "message": "no nodes"}]},
        }))
        .unwrap();
        assert_eq!(
            judge(&unschedulable, &[Some(&pulling), Some(&e2)], false).0,
            ResourceStatus::Pending {
                reason: Some("Unschedulable: no nodes".into())
            },
            "the main pod's own reason first"
        );
    }

    #[test]
    fn a_failed_member_fails_the_engine_and_is_named_for_its_log() {
        let (e1, e2) = (ready("executor-1"), failed("executor-2"));
        for main in [ready("scheduler"), starting("scheduler")] {
            assert_eq!(
                judge(&main, &[Some(&e1), Some(&e2)], false),
                (
                    ResourceStatus::Failed {
                        reason: "the executor-2 container ended: Error (exit code 1)".into()
                    },
                    Some(1)
                )
            );
        }
        assert_eq!(
            judge(&failed("scheduler"), &[Some(&e1), Some(&e2)], false),
            (
                ResourceStatus::Failed {
                    reason: "the scheduler container ended: Error (exit code 1)".into()
                },
                None
            ),
            "the main pod's failure first"
        );
    }

    #[test]
    fn a_missing_member_is_awaited_only_while_it_may_still_be_created() {
        let e1 = ready("executor-1");
        let pending = ResourceStatus::Pending {
            reason: Some("the pod rucat-x-executor-2 is not created yet".into()),
        };
        assert_eq!(
            judge(&ready("scheduler"), &[Some(&e1), None], true).0,
            pending
        );
        assert_eq!(
            judge(&starting("scheduler"), &[Some(&e1), None], false).0,
            pending
        );
        assert_eq!(
            judge(&ready("scheduler"), &[Some(&e1), None], false),
            (
                ResourceStatus::Failed {
                    reason: "the pod rucat-x-executor-2 of the engine is gone".into()
                },
                None
            )
        );
    }

    #[test]
    fn deletions_of_the_engine_or_a_member() {
        let mut deleted = ready("executor-2");
        deleted.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::UNIX_EPOCH),
        );
        let e1 = ready("executor-1");
        assert_eq!(
            judge(&ready("scheduler"), &[Some(&e1), Some(&deleted)], false).0,
            ResourceStatus::Failed {
                reason: "the pod rucat-x-executor-2 of the engine is being deleted".into()
            }
        );
        let mut main = ready("scheduler");
        main.metadata.deletion_timestamp = deleted.metadata.deletion_timestamp.clone();
        assert_eq!(
            judge(&main, &[Some(&e1), Some(&deleted)], false).0,
            ResourceStatus::Terminating,
            "a stop deletes the main pod, and its members with it"
        );
    }
}
