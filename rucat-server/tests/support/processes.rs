//! Starting rucat's binaries as real processes for end-to-end tests.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::Duration;

/// A rucat binary running as a child process, SIGKILLed if dropped while alive.
pub struct RucatProcess {
    child: Child,
    /// The base URL it listens on, for servers.
    pub url: Option<String>,
    /// Where a server's Spark Connect gateway listens (`host:port`).
    pub gateway: Option<String>,
    /// Whether it has written a panic message to stderr.
    panicked: Arc<AtomicBool>,
}

impl RucatProcess {
    /// Starts `rucat-server` with `args` on a port of its choosing and waits
    /// until it says where it listens.
    pub fn server(args: &[&str]) -> Self {
        Self::server_logging(args, "info")
    }

    /// [`RucatProcess::server`] with `RUST_LOG=log_filter`, which must let
    /// `rucat_server`'s info lines through (the address is one).
    pub fn server_logging(args: &[&str], log_filter: &str) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_rucat-server"));
        command
            .args(["--listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0"])
            .args(args);
        let mut child = spawn(command, log_filter);
        let stderr = child.stderr.take().expect("piped stderr");
        let (found, url) = mpsc::channel();
        let (found_gateway, gateway) = mpsc::channel();
        let panicked = Arc::new(AtomicBool::new(false));
        let seen = Arc::clone(&panicked);
        // Keep draining stderr after the address shows up, so the server
        // never blocks on a full pipe; echo it for the test's output.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[rucat-server] {line}");
                note_panic(&line, &seen);
                if let Some(at) = line.find("rucat server listening on ") {
                    let at = at + "rucat server listening on ".len();
                    let _ = found.send(line[at..].trim().to_owned());
                }
                let gateway = "Spark Connect gateway listening on ";
                if let Some(at) = line.find(gateway) {
                    let rest = &line[at + gateway.len()..];
                    let address = rest.split(';').next().unwrap_or(rest);
                    let _ = found_gateway.send(address.trim().to_owned());
                }
            }
        });
        let url = url
            .recv_timeout(Duration::from_secs(60))
            .expect("the server reports its address");
        // Logged right after the address, unless the filter hides it.
        let gateway = gateway.recv_timeout(Duration::from_secs(5)).ok();
        Self {
            child,
            url: Some(url),
            gateway,
            panicked,
        }
    }

    /// Starts `rucat-monitor` with `args`, building it first: it belongs to
    /// another package, so cargo does not build it for this one's tests.
    pub fn monitor(args: &[&str]) -> Self {
        Self::monitor_logging(args, "info")
    }

    /// [`RucatProcess::monitor`] with `RUST_LOG=log_filter`.
    pub fn monitor_logging(args: &[&str], log_filter: &str) -> Self {
        let mut command = Command::new(monitor_binary());
        command.args(args);
        let mut child = spawn(command, log_filter);
        let stderr = child.stderr.take().expect("piped stderr");
        let panicked = Arc::new(AtomicBool::new(false));
        let seen = Arc::clone(&panicked);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[rucat-monitor] {line}");
                note_panic(&line, &seen);
            }
        });
        Self {
            child,
            url: None,
            gateway: None,
            panicked,
        }
    }

    /// Whether the process has reported a panic so far, in any thread or task.
    pub fn panicked(&self) -> bool {
        self.panicked.load(Ordering::SeqCst)
    }

    /// A handle that keeps telling whether the process panicked after it is
    /// gone (its stderr may still be draining).
    pub fn panic_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.panicked)
    }

    /// SIGKILL, as a crash would, and reap.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url.as_deref().expect("a server"))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the exit; returns whether it exited with 0.
    pub fn terminate(mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..300 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for RucatProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Rust's panic hook reports every panic, caught ones in tasks included, as
/// `thread '…' panicked at <location>`.
fn note_panic(line: &str, panicked: &AtomicBool) {
    if line.contains(" panicked at ") {
        panicked.store(true, Ordering::SeqCst);
    }
}

fn spawn(mut command: Command, log_filter: &str) -> Child {
    command
        .env("RUST_LOG", log_filter)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start a rucat binary")
}

/// Built once per test binary: chaos tests start monitors over and over.
fn monitor_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(build_monitor).clone()
}

fn build_monitor() -> PathBuf {
    let server = Path::new(env!("CARGO_BIN_EXE_rucat-server"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let release = server.parent().is_some_and(|dir| dir.ends_with("release"));
    let mut build = Command::new(cargo);
    // Cargo describes this test's own package in the environment; ring's
    // build script reruns when those variables change, so passing them on
    // would rebuild ring and all that uses it (about a minute here) whenever
    // a test's build and a shell's build take turns.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let about_this_package = name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_BIN_")
            || name.starts_with("CARGO_MANIFEST_")
            || matches!(
                name.as_ref(),
                "CARGO_CRATE_NAME" | "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR"
            );
        if about_this_package {
            build.env_remove(name.as_ref());
        }
    }
    build.args([
        "build",
        "--quiet",
        "-p",
        "rucat-monitor",
        "--bin",
        "rucat-monitor",
    ]);
    if release {
        build.arg("--release");
    }
    assert!(
        build.status().expect("run cargo").success(),
        "building rucat-monitor failed"
    );
    server.with_file_name("rucat-monitor")
}

/// Kills, when a test fails, every process whose command line mentions
/// its needle (e.g. the test's data directory): the engines a killed server
/// leaves behind. Declared before the server, so it is dropped after the
/// server is killed.
pub struct KillEnginesOnPanic(pub String);

impl Drop for KillEnginesOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for pid in processes_mentioning(&self.0) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

/// Processes whose command line mentions `needle` (an engine id): a leaked
/// JVM shows up here.
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmd| String::from_utf8_lossy(&cmd).contains(needle))
        })
        .collect()
}

/// The version of the pyspark the local resource manager will run.
pub fn local_spark_version() -> String {
    let out = Command::new("python3")
        .args(["-c", "import pyspark; print(pyspark.__version__)"])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "pyspark is installed (scripts/install-deps)"
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs the test query against a Spark Connect endpoint; returns its output.
pub fn spark_query(endpoint: &str) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/spark_query.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(endpoint)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "query failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// How long one pyspark client command may take before it is killed: a
/// hung client fails its own step, by name, instead of the whole test
/// timing out with nothing said.
const PYSPARK_TIME_LIMIT_SECS: &str = "240";

/// Runs `tests/support/gateway_client.py` (a real pyspark client) with
/// `args`; returns the JSON it prints, or its stderr if it failed. The
/// client never inherits an engine token from the environment (pyspark
/// would send it).
pub fn pyspark(args: &[&str], envs: &[(&str, &str)]) -> Result<serde_json::Value, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/gateway_client.py");
    let out = Command::new("timeout")
        .args(["--kill-after=10", PYSPARK_TIME_LIMIT_SECS, "python3"])
        .arg(script)
        .args(args)
        .env_remove("SPARK_CONNECT_AUTHENTICATE_TOKEN")
        .envs(envs.iter().copied())
        .output()
        .expect("timeout (coreutils) and python3");
    if out.status.code() == Some(124) {
        return Err(format!(
            "killed after {PYSPARK_TIME_LIMIT_SECS} s: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).map_err(|e| format!("{e}: {stdout}"))
}

/// Sends `creates` engine creates at once with `token`, alternating between
/// `servers` (which share one store), and asserts that a `max_engines` quota
/// of `limit` held: exactly `limit` were created and every other answer is
/// 429 `quota_exceeded` naming the quota, the count and the limit.
pub async fn race_creates_against_quota(
    servers: &[RucatProcess],
    token: &str,
    creates: usize,
    limit: u64,
) {
    let client = reqwest::Client::new();
    let body = serde_json::json!({"name": "q", "engine_type": "Spark", "version": "4.3.0"});
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..creates {
        let request = client
            .post(servers[i % servers.len()].url("/engine"))
            .bearer_auth(token)
            .json(&body);
        requests.spawn(async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap())
        });
    }
    let answers = requests.join_all().await;
    let created = answers.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!(created as u64, limit, "{answers:?}");
    for (status, body) in answers.iter().filter(|(status, _)| *status != 200) {
        assert_eq!(*status, 429, "{body}");
        assert_eq!(body["error"], "quota_exceeded", "{body}");
        assert_eq!(body["quota"], "max_engines", "{body}");
        assert_eq!(
            (body["count"].as_u64(), body["limit"].as_u64()),
            (Some(limit), Some(limit)),
            "{body}"
        );
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("max_engines")),
            "{body}"
        );
    }
}

/// Runs `rucat-server ARGS` (its hash commands) with `stdin` as its input;
/// its standard output. Panics with its standard error if it fails.
pub fn rucat_server(args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rucat-server"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The argon2 hash of `password`, as `rucat-server hash-password` prints it.
pub fn password_hash(password: &str) -> String {
    rucat_server(&["hash-password"], &format!("{password}\n"))
        .trim()
        .to_owned()
}
