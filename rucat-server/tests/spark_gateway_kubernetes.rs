//! The gateway in front of an engine run by the Kubernetes resource manager:
//! a monitor drives the engine against the Kubernetes API test server (real
//! HTTP through kube), the test plays the kubelet, and the "driver" is a real
//! local Spark Connect server started with the token rucat put in the
//! engine's Secret. The gateway reaches the engine's service name through a
//! route to that server, so a real pyspark query flows through it.

mod support;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rucat_core::{CreateEngineRequest, EngineState, Engines, Monitor, MonitorConfig};
use rucat_k8s::{KubernetesConfig, KubernetesResourceManager, agent, names};
use rucat_k8s_testserver::{Resource, TestServer};
use rucat_server::gateway::{Activity, Gateway};
use rucat_store::DatabaseConfig;
use serde_json::json;
use support::processes::{local_spark_version, pyspark};

const NS: &str = "spark";
const WAIT: Duration = Duration::from_secs(240);

/// A Spark Connect server like the driver pod's, demanding `token`; killed on drop.
struct Driver(Child);

impl Driver {
    fn start(token: &str, port: u16, dir: &std::path::Path) -> Self {
        let home = Command::new("python3")
            .args([
                "-c",
                "import os, pyspark; print(os.path.dirname(pyspark.__file__))",
            ])
            .output()
            .unwrap();
        let home = String::from_utf8_lossy(&home.stdout).trim().to_owned();
        let log = std::fs::File::create(dir.join("driver.log")).unwrap();
        let child = Command::new(format!("{home}/bin/spark-submit"))
            .current_dir(dir)
            .env("SPARK_HOME", &home)
            .env("SPARK_LOCAL_IP", "127.0.0.1")
            .env("SPARK_CONNECT_AUTHENTICATE_TOKEN", token)
            .args(["--master", "local[1]", "--driver-memory", "512m"])
            .args([
                "--class",
                "org.apache.spark.sql.connect.service.SparkConnectServer",
            ])
            .args(["--conf", &format!("spark.connect.grpc.binding.port={port}")])
            .args(["--conf", "spark.connect.grpc.binding.address=127.0.0.1"])
            .args(["--conf", "spark.ui.enabled=false"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        Self(child)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: spark-submit's shell and its JVM.
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

use std::os::unix::process::CommandExt as _;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn spark_through_the_gateway_on_kubernetes() {
    let dir = tempfile::tempdir().unwrap();
    let api = TestServer::start().await;
    let mut kube_config = api.config(NS);
    agent::identify(&mut kube_config);
    let resources = Arc::new(KubernetesResourceManager::new(
        kube::Client::try_from(kube_config).unwrap(),
        KubernetesConfig {
            namespace: NS.into(),
            ..KubernetesConfig::default()
        },
    ));
    let store = rucat_store::open_store(&DatabaseConfig::Sqlite {
        path: dir.path().join("rucat.db"),
    })
    .await
    .unwrap();
    let monitor = Monitor::new(
        store.clone(),
        resources,
        MonitorConfig {
            check_interval: Duration::from_millis(200),
            ..MonitorConfig::default()
        },
    );
    tokio::spawn(monitor.run(std::future::pending()));
    let engines = Engines::new(store.clone());
    let id = engines
        .create(CreateEngineRequest::spark("k8s", local_spark_version()))
        .await
        .unwrap();

    // Play the kubelet: once the driver pod and its Secret exist, run the
    // driver with the Secret's token, and report the pod ready when it listens.
    let name = names::object_name(&id);
    let started = Instant::now();
    let secret = loop {
        if let Some(secret) = api.get(NS, Resource::Secrets, &name) {
            break secret;
        }
        assert!(started.elapsed() < WAIT, "no Secret for the driver");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let token = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["token"].as_str().unwrap())
        .unwrap();
    let token = String::from_utf8(token).unwrap();
    let pod = api.get(NS, Resource::Pods, &name).expect("the driver pod");
    assert!(
        !pod.to_string().contains(&token),
        "the pod spec never holds the token"
    );
    let port = free_port();
    let _driver = Driver::start(&token, port, dir.path());
    let driver: SocketAddr = ([127, 0, 0, 1], port).into();
    while TcpStream::connect_timeout(&driver, Duration::from_millis(100)).is_err() {
        assert!(started.elapsed() < WAIT, "the driver never listened");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    api.set_pod_running(NS, &name).unwrap();
    let running = engines
        .wait_for(&id, EngineState::Running, WAIT)
        .await
        .unwrap();
    let service = format!("rucat-{id}.{NS}.svc:15002");
    assert_eq!(running.endpoint, Some(format!("sc://{service}")));

    // The gateway, as in the server's pod, reaching the service name.
    let gateway = Gateway::new(rucat_core::Engines::new(store), None, Activity::default())
        .with_routes(HashMap::from([(service, driver)]));
    let activity = gateway.activity().clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!(
        "sc://localhost:{}/;x-rucat-engine-id={id}",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(gateway.serve(listener, None, std::future::pending()));
    let answer = tokio::task::spawn_blocking(move || pyspark(&["sum", &endpoint], &[]))
        .await
        .unwrap()
        .unwrap_or_else(|stderr| panic!("the query failed: {stderr}"));
    assert_eq!(answer, json!(499500));
    assert!(activity.snapshot(&id).is_some_and(|a| a.rpcs > 0));
    // Stopping on Kubernetes is rucat-k8s's tests' business.
}
