//! The kubelet (and scheduler) harness: moves pods through the states a
//! real node reports, through the same write path as the `/status`
//! subresource, so each step bumps the resourceVersion and reaches
//! watchers as a `MODIFIED` event.
//!
//! Statuses follow what a real kubelet writes for a single-node cluster:
//! conditions with transition times kept while unchanged, a pod IP, one
//! container status per spec container.

use std::sync::Weak;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::TestServer;
use crate::ids;
use crate::logs::LogLine;
use crate::resource::Resource;
use crate::shared::Shared;
use crate::status::ApiError;
use crate::store::{Key, Store};

/// How often the harness looks for grace periods that ended.
const GRACE_CHECK: Duration = Duration::from_millis(100);

/// Confirms graceful deletions whose grace period ended (when the server is
/// set to), until the server is gone.
pub(crate) async fn end_grace_periods(shared: Weak<Shared>) {
    loop {
        tokio::time::sleep(GRACE_CHECK).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.write(|s| s.finish_due_terminations(Instant::now()));
    }
}

/// The node every scheduled pod lands on.
pub const NODE_NAME: &str = "rucat-test-node";
/// That node's IP (`status.hostIP`).
pub const HOST_IP: &str = "172.18.0.2";

/// The per-container state the harness reports.
enum ContainerState<'a> {
    Running,
    Waiting { reason: &'a str, message: &'a str },
    Terminated { exit_code: i32, reason: &'a str },
}

fn condition(
    old: &Value,
    kind: &str,
    status: bool,
    reason: Option<&str>,
    message: Option<&str>,
) -> Value {
    let status = if status { "True" } else { "False" };
    let previous = old["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == kind);
    // The transition time only moves when the status flips.
    let since = previous
        .filter(|c| c["status"] == status)
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(ids::now()));
    let mut c =
        json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": since});
    if let Some(reason) = reason {
        c["reason"] = json!(reason);
    }
    if let Some(message) = message {
        c["message"] = json!(message);
    }
    c
}

fn container_statuses(pod: &Value, state: &ContainerState<'_>) -> Vec<Value> {
    let old = &pod["status"];
    let now = ids::now();
    pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let name = c["name"].as_str().unwrap_or_default();
            let image = c["image"].as_str().unwrap_or_default();
            let previous = old["containerStatuses"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|s| s["name"] == name);
            let running_since =
                previous.and_then(|p| p.pointer("/state/running/startedAt").cloned());
            let container_id = previous
                .and_then(|p| p.get("containerID").cloned())
                .unwrap_or_else(|| json!(ids::container_id()));
            let restarts = previous
                .and_then(|p| p["restartCount"].as_i64())
                .unwrap_or(0);
            let mut status = json!({
                "name": name,
                "image": image,
                "imageID": "",
                "restartCount": restarts,
                "lastState": {},
            });
            match state {
                ContainerState::Running => {
                    let since = running_since.unwrap_or_else(|| json!(now));
                    status["state"] = json!({"running": {"startedAt": since}});
                    status["ready"] = json!(true);
                    status["started"] = json!(true);
                    status["containerID"] = container_id;
                    status["imageID"] = json!(format!("{image}@sha256:{:0>64}", ""));
                }
                ContainerState::Waiting { reason, message } => {
                    status["state"] = json!({"waiting": {"reason": reason, "message": message}});
                    status["ready"] = json!(false);
                    status["started"] = json!(false);
                }
                ContainerState::Terminated { exit_code, reason } => {
                    let started = running_since.unwrap_or_else(|| json!(now));
                    status["state"] = json!({"terminated": {
                        "exitCode": exit_code, "reason": reason, "startedAt": started,
                        "finishedAt": now, "containerID": container_id}});
                    status["ready"] = json!(false);
                    status["started"] = json!(false);
                    status["containerID"] = container_id;
                }
            }
            status
        })
        .collect()
}

/// Writes the status a kubelet reports for a pod on [`NODE_NAME`] whose
/// containers are in `state`, after binding the pod to that node.
fn report(
    store: &mut Store,
    key: &Key,
    phase: &str,
    state: ContainerState<'_>,
) -> Result<Value, ApiError> {
    store.bind_pod(key, NODE_NAME)?;
    let pod_ip = store
        .get(key)
        .and_then(|p| p["status"]["podIP"].as_str().map(str::to_owned))
        .unwrap_or_else(|| store.allocate_pod_ip());
    store.update_status(key, |pod| {
        let old = pod["status"].clone();
        let containers = container_statuses(pod, &state);
        let unready: Vec<String> = containers
            .iter()
            .filter(|c| c["ready"] != true)
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect();
        let (ready, reason, message) = match (&state, phase) {
            (ContainerState::Running, _) => (true, None, None),
            (_, "Failed") => (false, Some("PodFailed"), None),
            (_, "Succeeded") => (false, Some("PodCompleted"), None),
            _ => (
                false,
                Some("ContainersNotReady"),
                Some(format!(
                    "containers with unready status: [{}]",
                    unready.join(" ")
                )),
            ),
        };
        let sandbox = !matches!(phase, "Failed" | "Succeeded");
        let mut status = Map::new();
        status.insert("phase".into(), json!(phase));
        status.insert(
            "conditions".into(),
            json!([
                condition(&old, "PodReadyToStartContainers", sandbox, None, None),
                condition(&old, "Initialized", true, None, None),
                condition(&old, "Ready", ready, reason, message.as_deref()),
                condition(&old, "ContainersReady", ready, reason, message.as_deref()),
                condition(&old, "PodScheduled", true, None, None),
            ]),
        );
        status.insert("hostIP".into(), json!(HOST_IP));
        status.insert("hostIPs".into(), json!([{"ip": HOST_IP}]));
        status.insert("podIP".into(), json!(pod_ip));
        status.insert("podIPs".into(), json!([{"ip": pod_ip}]));
        status.insert(
            "startTime".into(),
            old.get("startTime")
                .cloned()
                .unwrap_or_else(|| json!(ids::now())),
        );
        status.insert("containerStatuses".into(), json!(containers));
        if let Some(qos) = old.get("qosClass") {
            status.insert("qosClass".into(), qos.clone());
        }
        pod["status"] = Value::Object(status);
    })
}

impl TestServer {
    fn kubelet(
        &self,
        namespace: &str,
        name: &str,
        phase: &str,
        state: ContainerState<'_>,
    ) -> Result<Value, ApiError> {
        let key = Key::new(Resource::Pods, namespace, name);
        self.shared.write(|s| report(s, &key, phase, state))
    }

    /// Schedules the pod (if it is not yet) and reports it `Running`: a pod
    /// IP, every container running and ready, condition `Ready=True`.
    pub fn set_pod_running(&self, namespace: &str, name: &str) -> Result<Value, ApiError> {
        self.kubelet(namespace, name, "Running", ContainerState::Running)
    }

    /// Reports the pod `Failed`, every container terminated with
    /// `exit_code` and `reason` (e.g. `OOMKilled`, `Error`).
    pub fn set_pod_failed(
        &self,
        namespace: &str,
        name: &str,
        exit_code: i32,
        reason: &str,
    ) -> Result<Value, ApiError> {
        self.kubelet(
            namespace,
            name,
            "Failed",
            ContainerState::Terminated { exit_code, reason },
        )
    }

    /// Reports the pod `Succeeded`, every container terminated with exit
    /// code 0 and reason `Completed`.
    pub fn set_pod_succeeded(&self, namespace: &str, name: &str) -> Result<Value, ApiError> {
        self.kubelet(
            namespace,
            name,
            "Succeeded",
            ContainerState::Terminated {
                exit_code: 0,
                reason: "Completed",
            },
        )
    }

    /// Schedules the pod and reports its containers waiting with `reason`
    /// and `message` (e.g. `ImagePullBackOff`, `CrashLoopBackOff`,
    /// `CreateContainerConfigError`). The phase stays `Running` for a pod
    /// that was running (a crash loop), else `Pending`.
    pub fn set_pod_waiting(
        &self,
        namespace: &str,
        name: &str,
        reason: &str,
        message: &str,
    ) -> Result<Value, ApiError> {
        let running = self
            .get(namespace, Resource::Pods, name)
            .is_some_and(|p| p["status"]["phase"] == "Running");
        let phase = if running { "Running" } else { "Pending" };
        self.kubelet(
            namespace,
            name,
            phase,
            ContainerState::Waiting { reason, message },
        )
    }

    /// Reports what the scheduler writes for a pod no node can take: phase
    /// `Pending`, condition `PodScheduled=False` with reason
    /// `Unschedulable` and `message` (e.g. `0/3 nodes are available:
    /// 3 Insufficient memory.`).
    pub fn set_pod_unschedulable(
        &self,
        namespace: &str,
        name: &str,
        message: &str,
    ) -> Result<Value, ApiError> {
        let key = Key::new(Resource::Pods, namespace, name);
        self.shared.write(|s| {
            s.update_status(&key, |pod| {
                let old = pod["status"].clone();
                let mut status = json!({
                    "phase": "Pending",
                    "conditions": [condition(&old, "PodScheduled", false, Some("Unschedulable"), Some(message))],
                });
                if let Some(qos) = old.get("qosClass") {
                    status["qosClass"] = qos.clone();
                }
                pod["status"] = status;
            })
        })
    }

    /// `container` of the pod writes `lines`, stamped now, to its log
    /// (served by `GET .../pods/{name}/log`; open follows get them at
    /// once). The pod must exist and have that container (404, 400). Like a
    /// real kubelet's, the log goes when the pod is removed, not when it is
    /// marked for deletion.
    pub fn append_pod_log(
        &self,
        namespace: &str,
        name: &str,
        container: &str,
        lines: &[&str],
    ) -> Result<(), ApiError> {
        self.append_pod_log_at(namespace, name, container, Timestamp::now(), lines)
    }

    /// [`Self::append_pod_log`] with the lines stamped `at` (what
    /// `sinceTime` compares with). A log is in time order: a time earlier
    /// than the log's last line is taken as that line's.
    pub fn append_pod_log_at(
        &self,
        namespace: &str,
        name: &str,
        container: &str,
        at: Timestamp,
        lines: &[&str],
    ) -> Result<(), ApiError> {
        let key = Key::new(Resource::Pods, namespace, name);
        let lines = lines.iter().flat_map(|text| {
            // One appended string with newlines is several lines.
            text.split('\n').map(move |line| LogLine {
                time: at,
                text: line.to_owned(),
            })
        });
        self.shared
            .write(|s| s.append_log(&key, container, lines))?;
        self.shared.log_written();
        Ok(())
    }

    /// Confirms that a gracefully deleted pod's containers have stopped
    /// (see [`TestServer::set_graceful_pod_deletion`]): the pod goes,
    /// unless finalizers still hold it.
    pub fn complete_pod_termination(&self, namespace: &str, name: &str) -> Result<(), ApiError> {
        let key = Key::new(Resource::Pods, namespace, name);
        self.shared.write(|s| s.complete_pod_termination(&key))
    }
}
