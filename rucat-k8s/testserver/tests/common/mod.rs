//! Helpers shared by the integration tests.

#![allow(dead_code)] // each test binary uses a different subset

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use serde_json::json;

pub const NS: &str = "rucat";

/// A minimal driver-like pod.
pub fn pod(name: &str, labels: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "driver", "image": "spark:3.5.1", "ports": [{"containerPort": 15002}]}]
        }
    }))
    .unwrap()
}

/// A headless service, optionally owned by a pod.
pub fn headless_service(name: &str, owner: Option<&Pod>) -> Service {
    let mut svc = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"clusterIP": "None", "selector": {"app": name}, "ports": [{"name": "connect", "port": 15002}]}
    });
    if let Some(owner) = owner {
        svc["metadata"]["ownerReferences"] = json!([{
            "apiVersion": "v1", "kind": "Pod",
            "name": owner.metadata.name, "uid": owner.metadata.uid,
            "controller": true, "blockOwnerDeletion": true
        }]);
    }
    serde_json::from_value(svc).unwrap()
}

/// Polls `condition` until it holds, failing the test after 20 s.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `Status` of a failed kube call.
pub fn api_error<T: std::fmt::Debug>(result: kube::Result<T>) -> Box<kube::core::Status> {
    match result {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}
