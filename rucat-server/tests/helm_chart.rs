//! The Helm chart in deploy/helm/rucat, checked as far as this machine
//! allows without a cluster: `helm lint --strict`, `helm template` with
//! several value sets, every rendered object parsed as its typed Kubernetes
//! resource, and the rendered rucat configs parsed by rucat's own parsers.
//! Needs `helm` on PATH (scripts/install-deps installs it).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use rucat_monitor::{MonitorFileConfig, ResourceManagerConfig};
use serde::Deserialize;
use serde_json::Value;

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/helm/rucat")
}

fn helm(args: &[&str]) -> String {
    let out = Command::new("helm")
        .args(args)
        .output()
        .expect("helm on PATH (scripts/install-deps installs it)");
    assert!(
        out.status.success(),
        "helm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// Every object `helm template` renders with `sets`, as JSON.
fn render(sets: &[&str]) -> Vec<Value> {
    let chart = chart();
    let mut args = vec![
        "template",
        "r",
        chart.to_str().unwrap(),
        "--namespace",
        "rucat",
    ];
    for set in sets {
        args.extend(["--set", set]);
    }
    serde_norway::Deserializer::from_str(&helm(&args))
        .map(|doc| Value::deserialize(doc).expect("valid YAML"))
        .filter(|doc| !doc.is_null())
        .collect()
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn typed<T: serde::de::DeserializeOwned>(object: &Value) -> T {
    serde_json::from_value(object.clone()).unwrap_or_else(|e| {
        panic!(
            "{} is not a valid {}: {e}",
            object["metadata"]["name"], object["kind"]
        )
    })
}

#[test]
fn the_chart_lints_strictly() {
    helm(&["lint", "--strict", chart().to_str().unwrap()]);
}

#[test]
fn every_rendered_object_is_a_valid_kubernetes_resource() {
    for sets in [
        vec![],
        vec![
            "auth.enabled=true",
            "auth.password=s3cret",
            "auth.bearerToken=t0ken",
            "engineNamespace=spark",
        ],
        vec![
            "monitor.replicas=3",
            "kubernetes.driver.nodeSelector.pool=spark",
            "spark.serviceAccount.create=false",
        ],
        vec![
            "gateway.ingress.enabled=true",
            "gateway.ingress.host=spark.example.com",
            "gateway.ingress.tlsSecretName=spark-tls",
            "tls.secretName=rucat-tls",
            "gateway.service.type=LoadBalancer",
        ],
    ] {
        let objects = render(&sets);
        for object in &objects {
            match object["kind"].as_str().unwrap_or_default() {
                "Deployment" => drop(typed::<Deployment>(object)),
                "Service" => drop(typed::<Service>(object)),
                "Secret" => drop(typed::<Secret>(object)),
                "ServiceAccount" => drop(typed::<ServiceAccount>(object)),
                "Role" => drop(typed::<Role>(object)),
                "RoleBinding" => drop(typed::<RoleBinding>(object)),
                "PersistentVolumeClaim" => drop(typed::<PersistentVolumeClaim>(object)),
                "Ingress" => drop(typed::<Ingress>(object)),
                "NetworkPolicy" => drop(typed::<NetworkPolicy>(object)),
                other => panic!("unexpected kind {other} with {sets:?}"),
            }
        }
        assert_eq!(
            of_kind(&objects, "Deployment").len(),
            2,
            "server and monitor"
        );
    }
}

fn config_text<'a>(objects: &'a [Value], key: &str) -> &'a str {
    let secret = of_kind(objects, "Secret")[0];
    secret["stringData"][key]
        .as_str()
        .expect("config in the Secret")
}

#[test]
fn the_rendered_configs_are_accepted_by_rucat() {
    let objects = render(&[
        "auth.enabled=true",
        "auth.password=s3cret",
        "engineNamespace=spark",
        "monitor.leaseSecs=20",
    ]);
    let server =
        rucat_server::config::parse(config_text(&objects, "server.json")).expect("server config");
    assert!(server.auth_provider.is_some());
    assert!(!server.embedded_monitor, "the monitors are separate pods");
    let monitor =
        MonitorFileConfig::parse(config_text(&objects, "monitor.json")).expect("monitor config");
    assert_eq!(monitor.lease_secs, 20);
    assert_eq!(
        server.database, monitor.database,
        "server and monitors share one database"
    );
    match monitor.resource_manager {
        Some(ResourceManagerConfig::Kubernetes(k8s)) => {
            assert_eq!(k8s.namespace, "spark");
            assert_eq!(k8s.service_account.as_deref(), Some("rucat-spark"));
        }
        other => panic!("{other:?}"),
    }
    // No secret outside the Secret.
    for object in objects.iter().filter(|o| o["kind"] != "Secret") {
        assert!(
            !object.to_string().contains("s3cret"),
            "{}",
            object["metadata"]["name"]
        );
    }
}

/// Other identity providers, quotas, the audit's metrics and idle stops pass from the
/// values to the server's config (and so to its checks) unchanged, beside
/// the static admin.
#[test]
fn providers_quotas_audit_and_idle_reach_the_server_config() {
    let chart = chart();
    let providers = r#"{"StaticUsers": {"users": [{"name": "etl-bot", "token_sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "groups": ["data"]}]},
        "Jwt": {"issuer": "https://idp.example.com", "audience": "rucat", "jwks_url": "https://idp.example.com/certs"},
        "failed_logins": {"max_failures": 5}}"#;
    let text = helm(&[
        "template",
        "r",
        chart.to_str().unwrap(),
        "--set",
        "auth.enabled=true",
        "--set",
        "auth.password=s3cret",
        "--set-json",
        &format!("auth.providers={}", providers.replace('\n', " ")),
        "--set-json",
        r#"quotas={"default": {"max_engines": 10, "max_running": 2}, "groups": {"data": {"max_running": 4}}}"#,
        "--set",
        "audit.userMetricsLimit=25",
        "--set",
        "idle.timeoutSecs=600",
        "--set",
        "idle.maxTimeoutSecs=7200",
        "--set",
        "idle.resumeWaitSecs=120",
    ]);
    let objects: Vec<Value> = serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("valid YAML"))
        .filter(|doc| !doc.is_null())
        .collect();
    let server = server_config(&objects);
    let auth = server.auth_provider.expect("auth_provider");
    assert!(auth.static_admin.is_some(), "the static admin stays");
    assert_eq!(auth.static_users.map(|u| u.users.len()), Some(1));
    assert!(auth.jwt.is_some());
    assert_eq!(auth.failed_logins.max_failures, 5);
    assert_eq!(server.quotas.default.max_engines, Some(10));
    assert_eq!(server.quotas.groups["data"].max_running, Some(4));
    assert_eq!(server.audit.user_metrics_limit, 25);
    let idle = server.idle.policy();
    assert_eq!(idle.default_timeout, std::time::Duration::from_secs(600));
    assert_eq!(idle.max_timeout, Some(std::time::Duration::from_secs(7200)));
    assert_eq!(
        server.idle.resume_wait(),
        std::time::Duration::from_secs(120)
    );

    // Without any of it: no auth_provider, no quotas, the server's idle defaults.
    let server = server_config(&render(&[]));
    assert!(server.auth_provider.is_none());
    assert_eq!(server.quotas, rucat_core::Quotas::default());
    assert_eq!(server.audit.user_metrics_limit, 0);
    assert_eq!(server.idle, rucat_server::config::IdleConfig::default());
}

/// The server and the monitors name the same log archive: the shared
/// volume's `logs` directory, or the S3 bucket given, whose secret stays in
/// the Secret; retention passes through.
#[test]
fn the_server_and_the_monitors_share_one_log_archive() {
    use rucat_core::logs::ArchiveConfig;
    let objects = render(&["logs.keepAttempts=3", "logs.deletedEngineTtlSecs=86400"]);
    let server = server_config(&objects);
    let monitor =
        MonitorFileConfig::parse(config_text(&objects, "monitor.json")).expect("monitor config");
    assert_eq!(server.logs, monitor.logs);
    assert_eq!(
        server.logs.archive,
        Some(ArchiveConfig::Filesystem {
            dir: "/var/lib/rucat/logs".into()
        })
    );
    assert_eq!(server.logs.keep_attempts, 3);
    assert_eq!(server.logs.deleted_engine_ttl_secs, 86400);

    let objects = render(&[
        "logs.s3.bucket=rucat-logs",
        "logs.s3.endpoint=http://minio.storage:9000",
        "logs.s3.allow_http=true",
        "logs.s3.access_key_id=rucat",
        "logs.s3.secret_access_key=s3cret-key",
    ]);
    let server = server_config(&objects);
    let monitor =
        MonitorFileConfig::parse(config_text(&objects, "monitor.json")).expect("monitor config");
    assert_eq!(server.logs, monitor.logs);
    match &server.logs.archive {
        Some(ArchiveConfig::S3(s3)) => {
            assert_eq!(s3.bucket, "rucat-logs");
            assert!(s3.allow_http);
        }
        other => panic!("{other:?}"),
    }
    for object in objects.iter().filter(|o| o["kind"] != "Secret") {
        assert!(!object.to_string().contains("s3cret-key"));
    }
}

/// The server's config as rendered with `sets`.
fn server_config(objects: &[Value]) -> rucat_server::config::FileConfig {
    rucat_server::config::parse(config_text(objects, "server.json")).expect("server config")
}

#[test]
fn the_gateway_is_exposed_and_advertised() {
    let objects = render(&[]);
    let server = server_config(&objects);
    assert_eq!(
        server.gateway.listen,
        Some("0.0.0.0:15002".parse().unwrap())
    );
    assert_eq!(
        server.gateway.advertised_address.as_deref(),
        Some("r-rucat-gateway.rucat.svc:15002"),
        "in-cluster clients reach the gateway service"
    );
    assert!(server.tls.is_none());
    let services: Vec<Service> = of_kind(&objects, "Service")
        .into_iter()
        .map(typed)
        .collect();
    let gateway = services
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some("r-rucat-gateway"))
        .expect("the gateway's service");
    let port = &gateway.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.port, port.app_protocol.as_deref()),
        (15002, Some("grpc"))
    );
    assert!(of_kind(&objects, "Ingress").is_empty());

    let objects = render(&[
        "gateway.ingress.enabled=true",
        "gateway.ingress.host=spark.example.com",
        "tls.secretName=rucat-tls",
    ]);
    let server = server_config(&objects);
    assert_eq!(
        server.gateway.advertised_address.as_deref(),
        Some("spark.example.com:443"),
        "outside clients reach the ingress"
    );
    let tls = server.tls.expect("TLS configured");
    assert_eq!(tls.certificate, PathBuf::from("/etc/rucat/tls/tls.crt"));
    let ingress: Ingress = typed(of_kind(&objects, "Ingress")[0]);
    let rule = &ingress.spec.unwrap().rules.unwrap()[0];
    assert_eq!(rule.host.as_deref(), Some("spark.example.com"));
    let deployment: Deployment = typed(
        of_kind(&objects, "Deployment")
            .into_iter()
            .find(|d| d["metadata"]["name"] == "r-rucat-server")
            .unwrap(),
    );
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    let probe = pod.containers[0].readiness_probe.as_ref().unwrap();
    assert_eq!(
        probe.http_get.as_ref().unwrap().scheme.as_deref(),
        Some("HTTPS"),
        "probes speak TLS too"
    );
    assert!(
        pod.volumes.unwrap().iter().any(|v| v
            .secret
            .as_ref()
            .and_then(|s| s.secret_name.as_deref())
            == Some("rucat-tls"))
    );
}

#[test]
fn rbac_is_minimal_and_sufficient() {
    let objects = render(&["engineNamespace=spark"]);
    let roles: Vec<Role> = of_kind(&objects, "Role").into_iter().map(typed).collect();
    let rucat = roles
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some("r-rucat"))
        .expect("rucat's role");
    assert_eq!(rucat.metadata.namespace.as_deref(), Some("spark"));
    // Exactly what the resource manager uses: no verb missing, none extra.
    let granted: BTreeSet<(String, String)> = rucat
        .rules
        .iter()
        .flatten()
        .flat_map(|rule| {
            let resources = rule.resources.clone().unwrap_or_default();
            resources.into_iter().flat_map(|resource| {
                rule.verbs
                    .iter()
                    .map(move |verb| (resource.clone(), verb.clone()))
            })
        })
        .collect();
    let needed: BTreeSet<(String, String)> = rucat_k8s::rbac::PERMISSIONS
        .iter()
        .flat_map(|p| {
            p.verbs
                .iter()
                .map(|v| (p.resource.to_owned(), (*v).to_owned()))
        })
        .collect();
    assert_eq!(granted, needed);
    assert!(
        rucat
            .rules
            .iter()
            .flatten()
            .all(|r| r.api_groups.iter().flatten().all(|g| g.is_empty()))
    );
}

#[test]
fn the_monitors_share_the_servers_volume_and_node() {
    let objects = render(&[]);
    let deployments: Vec<Deployment> = of_kind(&objects, "Deployment")
        .into_iter()
        .map(typed)
        .collect();
    let claim = |d: &Deployment| -> Option<String> {
        d.spec
            .as_ref()?
            .template
            .spec
            .as_ref()?
            .volumes
            .iter()
            .flatten()
            .find_map(|v| {
                v.persistent_volume_claim
                    .as_ref()
                    .map(|c| c.claim_name.clone())
            })
    };
    assert_eq!(claim(&deployments[0]), claim(&deployments[1]));
    let monitor = deployments
        .iter()
        .find(|d| d.metadata.name.as_deref() == Some("r-rucat-monitor"))
        .unwrap();
    let affinity = monitor
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.affinity.as_ref());
    assert!(affinity.and_then(|a| a.pod_affinity.as_ref()).is_some());
}

/// Sail checks no token, so only the gateway (in the server's pods) may
/// reach Sail engine pods: the policy selects the labels rucat puts on
/// them (checked against the Sail pod rucat-k8s builds, its golden JSON)
/// and admits the server's pods, in the release namespace, on Sail's port.
#[test]
fn sail_engines_accept_only_the_gateway() {
    let objects = render(&["engineNamespace=spark"]);
    let policies = of_kind(&objects, "NetworkPolicy");
    assert_eq!(policies.len(), 1);
    let policy: NetworkPolicy = typed(policies[0]);
    assert_eq!(policy.metadata.namespace.as_deref(), Some("spark"));
    let spec = policy.spec.unwrap();
    assert_eq!(
        spec.policy_types.as_deref(),
        Some(&["Ingress".to_owned()][..])
    );

    let sail_pod: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../rucat-k8s/tests/golden/sail_pod.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let selected = spec.pod_selector.and_then(|s| s.match_labels).unwrap();
    assert_eq!(selected[rucat_k8s::names::GATEWAY_ONLY], "true");
    for (key, value) in &selected {
        assert_eq!(sail_pod["metadata"]["labels"][key], value.as_str(), "{key}");
    }
    let spark_driver: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../rucat-k8s/tests/golden/driver_pod_spark4.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(
        selected
            .iter()
            .any(|(k, v)| spark_driver["metadata"]["labels"][k] != v.as_str()),
        "Spark drivers (which check their token) are not selected"
    );

    let ingress = spec.ingress.unwrap();
    assert_eq!(ingress.len(), 1);
    let rule = &ingress[0];
    let peers = rule.from.as_ref().unwrap();
    assert_eq!(peers.len(), 1, "one peer: namespace AND pods");
    let namespace = peers[0]
        .namespace_selector
        .clone()
        .unwrap()
        .match_labels
        .unwrap();
    assert_eq!(namespace["kubernetes.io/metadata.name"], "rucat");
    let server_pods = peers[0].pod_selector.clone().unwrap().match_labels.unwrap();
    let server = of_kind(&objects, "Deployment")
        .into_iter()
        .find(|d| d["metadata"]["name"].as_str().unwrap().ends_with("-server"))
        .unwrap();
    for (key, value) in &server_pods {
        assert_eq!(
            server["spec"]["template"]["metadata"]["labels"][key],
            value.as_str(),
            "{key}"
        );
    }
    let monitor = of_kind(&objects, "Deployment")
        .into_iter()
        .find(|d| {
            d["metadata"]["name"]
                .as_str()
                .unwrap()
                .ends_with("-monitor")
        })
        .unwrap();
    assert!(
        server_pods
            .iter()
            .any(|(k, v)| monitor["spec"]["template"]["metadata"]["labels"][k] != v.as_str()),
        "the monitors do not dial engines"
    );
    let ports = rule.ports.as_ref().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(
        ports[0].port,
        Some(
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i32::from(
                rucat_core::kind::sail::k8s::PORT
            ))
        )
    );

    let off = render(&["networkPolicy.sailEngines=false"]);
    assert!(of_kind(&off, "NetworkPolicy").is_empty());
}

#[test]
fn kinds_images_reach_the_kubernetes_config() {
    let objects =
        render(&["kubernetes.kinds.Sail.server.image_template=registry.local/sail:{version}"]);
    let monitor =
        MonitorFileConfig::parse(config_text(&objects, "monitor.json")).expect("monitor config");
    let Some(ResourceManagerConfig::Kubernetes(k8s)) = monitor.resource_manager else {
        panic!("Kubernetes");
    };
    assert_eq!(
        k8s.kind_image_for(&rucat_core::kind::sail::Sail, "server", "0.7.2"),
        "registry.local/sail:0.7.2"
    );
    assert_eq!(k8s.check_kinds(rucat_core::kind::Kinds::builtin()), Ok(()));
}
