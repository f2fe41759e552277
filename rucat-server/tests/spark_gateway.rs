//! Rucat Connect with real parts: the `rucat-server` binary with auth,
//! real local Spark Connect engines, and real pyspark clients going through
//! the gateway (and, for comparison, straight to an engine).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rucat_core::EngineId;
use rucat_store::DatabaseConfig;
use serde_json::{Value, json};
use support::processes::{RucatProcess, local_spark_version, processes_mentioning, pyspark};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const START_TIMEOUT: Duration = Duration::from_secs(240);
const USER_TOKEN: &str = "user-token-7f3a";

/// A server with auth (`USER_TOKEN` as the seed admin's bearer token, and
/// two static users with tokens of their own: see [`users`]) and local
/// Spark engines.
fn server(data: &std::path::Path, extra_config: Value) -> RucatProcess {
    let users: Vec<Value> = users()
        .iter()
        .map(|(name, token)| {
            json!({"name": name, "token_sha256": rucat_server::auth::hash::token_digest_hex(token)})
        })
        .collect();
    let mut config = json!({"auth_provider": {
        "StaticAuthProviderConfig": {"username": "admin", "password": "pw", "bearer_token": USER_TOKEN},
        "StaticUsers": {"users": users}}});
    if let (Some(config), Some(extra)) = (config.as_object_mut(), extra_config.as_object()) {
        config.extend(extra.clone());
    }
    let path = data.join("server.json");
    std::fs::write(&path, config.to_string()).unwrap();
    RucatProcess::server(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--config-path",
        path.to_str().unwrap(),
    ])
}

/// alice and bob, users (not admins), and their bearer tokens.
fn users() -> [(&'static str, &'static str); 2] {
    [
        ("alice", "alice-token-51c9e0d2"),
        ("bob", "bob-token-8a7f3e41"),
    ]
}

/// The REST calls the tests need, over plain HTTP with the bearer token.
struct Api<'a> {
    server: &'a RucatProcess,
    client: reqwest::Client,
}

impl<'a> Api<'a> {
    fn new(server: &'a RucatProcess) -> Self {
        Self {
            server,
            client: reqwest::Client::new(),
        }
    }

    async fn create(&self) -> String {
        self.create_as(USER_TOKEN).await
    }

    /// Creates an engine as the user of `token`, who owns it.
    async fn create_as(&self, token: &str) -> String {
        let body = json!({"name": "gw", "engine_type": "Spark", "version": local_spark_version()});
        let response = self
            .client
            .post(self.server.url("/engine"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let created: Value = response.json().await.unwrap();
        created["id"].as_str().unwrap().to_owned()
    }

    async fn text(&self, path: &str) -> String {
        self.client
            .get(self.server.url(path))
            .bearer_auth(USER_TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn post(&self, path: &str) {
        let response = self
            .client
            .post(self.server.url(path))
            .bearer_auth(USER_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }

    /// Stops `id` and waits until its JVM is gone: engines outlive a
    /// server that is shut down, so a test must stop its own.
    async fn stop(&self, id: &str) {
        self.post(&format!("/engine/{id}/stop")).await;
        let started = Instant::now();
        loop {
            let info: Value =
                serde_json::from_str(&self.text(&format!("/engine/{id}")).await).unwrap();
            if info["state"] == "Terminated" {
                return;
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "never Terminated: {info}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits for Running; the engine's endpoint with the user's token.
    async fn running(&self, id: &str) -> String {
        let started = Instant::now();
        loop {
            let info: Value =
                serde_json::from_str(&self.text(&format!("/engine/{id}")).await).unwrap();
            if info["state"] == "Running" {
                let endpoint = info["endpoint"].as_str().unwrap();
                return format!("{endpoint};token={USER_TOKEN}");
            }
            assert!(started.elapsed() < START_TIMEOUT, "never Running: {info}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Runs the pyspark client on a blocking thread; panics with its stderr if it fails.
async fn client(args: &[&str]) -> Value {
    client_with_env(args, &[]).await
}

async fn client_with_env(args: &[&str], envs: &[(&str, &str)]) -> Value {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let envs: Vec<(String, String)> = envs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        pyspark(&args, &envs).unwrap_or_else(|stderr| panic!("{args:?} failed: {stderr}"))
    })
    .await
    .unwrap()
}

/// The engine's own address and token, read from the server's store as only
/// rucat itself can.
async fn engine_secret(data: &std::path::Path, id: &str) -> (String, String) {
    let store = rucat_store::open_store(&DatabaseConfig::Sqlite {
        path: data.join("rucat.db"),
    })
    .await
    .unwrap();
    let record = store
        .get(&id.parse::<EngineId>().unwrap())
        .await
        .unwrap()
        .unwrap();
    let port = record
        .endpoint
        .as_deref()
        .and_then(|e| e.rsplit(':').next())
        .unwrap()
        .to_owned();
    let token = record.spec.token.expect("a started engine has a token");
    (port, token.expose().to_owned())
}

#[tokio::test]
async fn spark_through_the_gateway_every_kind_of_rpc() {
    let data = tempfile::tempdir().unwrap();
    let server = server(data.path(), json!({}));
    let api = Api::new(&server);
    // a is the admin's; b is alice's, which the admin sees too.
    let [(_, alice), (_, bob)] = users();
    let (a, b) = (api.create().await, api.create_as(alice).await);
    let endpoint_a = api.running(&a).await;
    let endpoint_b = api.running(&b).await;
    assert!(
        endpoint_a.starts_with("sc://localhost:")
            && endpoint_a.contains(&format!("x-rucat-engine-id={a}")),
        "{endpoint_a}"
    );

    // A query, and the same million rows through the gateway and directly.
    assert_eq!(client(&["sum", &endpoint_a]).await, json!(499500));
    let (port, engine_token) = engine_secret(data.path(), &a).await;
    let direct = format!("sc://localhost:{port}/;token={engine_token}");
    let through = client(&["digest", &endpoint_a, "1000000"]).await;
    assert_eq!(through["rows"], 1_000_000);
    assert_eq!(
        through,
        client(&["digest", &direct, "1000000"]).await,
        "byte-identical"
    );

    // The engine's port refuses clients without its token.
    let refused = client(&["rpc", &format!("sc://127.0.0.1:{port}")]).await;
    assert_eq!(refused["code"], "UNAUTHENTICATED", "{refused}");

    // A Python UDF, two sessions, an interrupt.
    assert_eq!(client(&["udf", &endpoint_a]).await, json!([1, 2, 3, 4, 5]));
    let sessions = client(&["sessions", &endpoint_a]).await;
    assert_eq!(
        sessions,
        json!({"distinct_sessions": true, "in_first": true, "in_second": false, "first_count": 3})
    );
    let interrupted = client(&["interrupt", &endpoint_a]).await;
    assert!(
        interrupted["interrupted"].as_u64() >= Some(1),
        "{interrupted}"
    );
    assert_eq!(interrupted["alive"], false, "{interrupted}");
    assert!(
        interrupted["error"].as_str().is_some_and(
            |e| e.contains("OPERATION_CANCELED") || e.to_lowercase().contains("cancel")
        ),
        "{interrupted}"
    );

    // Two engines through one gateway, each with its own data.
    assert_eq!(
        client(&["view-create", &endpoint_a, "only_in_a"]).await,
        json!(7)
    );
    assert_eq!(
        client(&["view-exists", &endpoint_a, "only_in_a"]).await,
        json!(true)
    );
    assert_eq!(
        client(&["view-exists", &endpoint_b, "only_in_a"]).await,
        json!(false)
    );

    // Stock pyspark with another user's token: alice's engine answers
    // alice, and to bob it does not exist; the admin's does not exist for
    // alice. Nothing tells them the engine is there.
    let as_user = |endpoint: &str, token: &str| endpoint.replace(USER_TOKEN, token);
    assert_eq!(
        client(&["sum-or-error", &as_user(&endpoint_b, alice)]).await,
        json!({"sum": 499500})
    );
    for (endpoint, token, id) in [(&endpoint_b, bob, &b), (&endpoint_a, alice, &a)] {
        let refused = client(&["sum-or-error", &as_user(endpoint, token)]).await;
        let error = refused["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("NOT_FOUND") && error.contains(&format!("no engine {id}")),
            "{refused}"
        );
    }

    // The token shows nowhere: not in the engine's conf, the API, a
    // process's command line or the engine's log.
    assert_eq!(
        client(&["conf", &endpoint_a, "spark.connect.authenticate.token"]).await,
        Value::Null
    );
    assert!(
        !api.text(&format!("/engine/{a}"))
            .await
            .contains(&engine_token)
    );
    assert_eq!(processes_mentioning(&engine_token), Vec::<u32>::new());
    let log =
        std::fs::read_to_string(data.path().join("engines").join(&a).join("engine.log")).unwrap();
    assert!(
        !log.contains(&engine_token),
        "the engine's log shows its token"
    );

    // Activity per engine.
    let metrics = api.text("/metrics").await;
    let rpcs = format!("rucat_gateway_rpcs_total{{engine=\"{a}\"}}");
    assert!(metrics.contains(&rpcs), "{metrics}");
    assert!(
        metrics.contains(&format!("rucat_gateway_open_streams{{engine=\"{b}\"}} 0")),
        "{metrics}"
    );

    // A restarted engine has a new token; the gateway follows.
    api.post(&format!("/engine/{a}/stop")).await;
    let metadata = json!([
        ["authorization", format!("Bearer {USER_TOKEN}")],
        ["x-rucat-engine-id", a]
    ]);
    let stopped = client(&["rpc", &endpoint_a, &metadata.to_string()]).await;
    assert_eq!(stopped["code"], "FAILED_PRECONDITION", "{stopped}");
    api.post(&format!("/engine/{a}/restart")).await;
    let endpoint_a = api.running(&a).await;
    assert_eq!(client(&["sum", &endpoint_a]).await, json!(499500));
    let (_, new_token) = engine_secret(data.path(), &a).await;
    assert_ne!(new_token, engine_token, "each start has its own token");
    api.stop(&a).await;
    api.stop(&b).await;
    assert!(server.terminate());
}

/// A TCP proxy in front of the gateway that cuts the first connection
/// that carries more than `after` bytes to the client; counts its cuts.
async fn cutter(target: std::net::SocketAddr, after: usize) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let cuts = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&cuts);
    tokio::spawn(async move {
        while let Ok((mut downstream, _)) = listener.accept().await {
            let cuts = Arc::clone(&counted);
            tokio::spawn(async move {
                let Ok(mut upstream) = TcpStream::connect(target).await else {
                    return;
                };
                let (mut down_read, mut down_write) = downstream.split();
                let (mut up_read, mut up_write) = upstream.split();
                let to_server = tokio::io::copy(&mut down_read, &mut up_write);
                let to_client = async {
                    let mut sent = 0usize;
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = up_read.read(&mut buf).await?;
                        if n == 0 {
                            return Ok::<_, std::io::Error>(());
                        }
                        down_write.write_all(&buf[..n]).await?;
                        sent += n;
                        if sent > after && cuts.fetch_add(1, Ordering::SeqCst) == 0 {
                            return Ok(()); // drop both sides: the connection is cut
                        }
                    }
                };
                tokio::select! {
                    _ = to_server => {}
                    _ = to_client => {}
                }
            });
        }
    });
    (port, cuts)
}

#[tokio::test]
async fn spark_through_the_gateway_reattaches_after_a_dropped_connection() {
    let data = tempfile::tempdir().unwrap();
    let server = server(data.path(), json!({}));
    let api = Api::new(&server);
    let id = api.create().await;
    let endpoint = api.running(&id).await;
    let gateway_port: u16 = endpoint
        .trim_start_matches("sc://localhost:")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let (port, cuts) = cutter(([127, 0, 0, 1], gateway_port).into(), 4 * 1024 * 1024).await;
    let cut_endpoint = endpoint.replace(&format!(":{gateway_port}/"), &format!(":{port}/"));
    let result = client(&["digest", &cut_endpoint, "2000000"]).await;
    assert!(cuts.load(Ordering::SeqCst) >= 1, "the connection was cut");
    assert_eq!(
        result["rows"], 2_000_000,
        "the query completed after reattaching"
    );
    assert_eq!(result, client(&["digest", &endpoint, "2000000"]).await);
    api.stop(&id).await;
    assert!(server.terminate());
}

/// A CA and a server certificate for `names`, made with openssl.
fn certificates(
    dir: &std::path::Path,
    names: &[&str],
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=rucat test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=rucat",
    ]);
    let mut san = String::from("subjectAltName=IP:127.0.0.1");
    for name in names {
        san.push_str(&format!(",DNS:{name}"));
    }
    std::fs::write(dir.join("san.ext"), san).unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

/// A name of this machine other than `localhost` that resolves to a
/// loopback address, if it has one (its host name usually does).
fn loopback_name() -> Option<String> {
    let name = std::fs::read_to_string("/etc/hostname")
        .ok()?
        .trim()
        .to_owned();
    use std::net::ToSocketAddrs;
    let resolves = (name.as_str(), 0)
        .to_socket_addrs()
        .ok()?
        .any(|a| a.ip() == std::net::Ipv4Addr::LOCALHOST);
    (resolves && name != "localhost").then_some(name)
}

#[tokio::test]
async fn spark_through_the_gateway_over_tls_with_a_token() {
    let data = tempfile::tempdir().unwrap();
    let name = loopback_name();
    let host = name.clone().unwrap_or_else(|| "127.0.0.1".to_owned());
    let (ca, cert, key) = certificates(
        data.path(),
        &[name.as_deref().unwrap_or("localhost"), "localhost"],
    );
    let server = server(
        data.path(),
        json!({"tls": {"certificate": cert, "key": key}}),
    );
    let base = server.url("");
    assert!(base.starts_with("https://"), "{base}");
    // The REST API speaks TLS too: curl checks it against the test CA.
    let curl = |args: &[&str]| {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--fail", "--cacert", ca.to_str().unwrap(), "-H"])
            .arg(format!("authorization: Bearer {USER_TOKEN}"))
            .args(args)
            .output()
            .expect("curl");
        assert!(
            out.status.success(),
            "curl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let body = json!({"name": "tls", "engine_type": "Spark", "version": local_spark_version()})
        .to_string();
    let created = curl(&[
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "-d",
        &body,
        &server.url("/engine"),
    ]);
    let id = created["id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let endpoint = loop {
        let info = curl(&[&server.url(&format!("/engine/{id}"))]);
        if info["state"] == "Running" {
            break info["endpoint"].as_str().unwrap().to_owned();
        }
        assert!(started.elapsed() < START_TIMEOUT, "never Running: {info}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(endpoint.ends_with(";use_ssl=true"), "{endpoint}");
    // pyspark insists on TLS for a token sent anywhere but `localhost`.
    let endpoint = format!(
        "{};token={USER_TOKEN}",
        endpoint.replace("sc://localhost:", &format!("sc://{host}:"))
    );
    let answer = client_with_env(
        &["sum", &endpoint],
        &[("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", ca.to_str().unwrap())],
    )
    .await;
    assert_eq!(answer, json!(499500), "through TLS to {host}");
    // Stop the engine: it would outlive the server.
    let stop = std::process::Command::new("curl")
        .args([
            "-sS",
            "--fail",
            "--cacert",
            ca.to_str().unwrap(),
            "-X",
            "POST",
            "-H",
        ])
        .arg(format!("authorization: Bearer {USER_TOKEN}"))
        .arg(server.url(&format!("/engine/{id}/stop")))
        .status()
        .expect("curl");
    assert!(stop.success());
    let started = Instant::now();
    while curl(&[&server.url(&format!("/engine/{id}"))])["state"] != "Terminated" {
        assert!(started.elapsed() < START_TIMEOUT, "never Terminated");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(server.terminate());
}
