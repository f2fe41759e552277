//! Processes the benchmarks start: rucat's release binaries, the bare axum
//! server, Spark. Each is killed (with its process group) when dropped, so a
//! failing benchmark leaves nothing running.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long a server may take to say where it listens.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Process {
    child: Child,
    /// `http://ADDR` for servers.
    pub url: Option<String>,
}

impl Process {
    /// Starts `command` in a process group of its own, its stderr going to
    /// `log`.
    pub fn start(mut command: Command, log: &Path) -> anyhow::Result<Self> {
        let log = std::fs::File::create(log)?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {command:?}"))?;
        Ok(Self { child, url: None })
    }

    /// Starts a server that logs `... on http://ADDR` (rucat's binaries say
    /// "listening on" or "serving health and metrics on") to stderr,
    /// which goes to `log`, and waits for that line. A file rather than a
    /// pipe, so that no reader in this process competes with the server for
    /// CPU while it is measured.
    pub fn server(command: Command, log: &Path) -> anyhow::Result<Self> {
        let mut process = Self::start(command, log)?;
        let started = Instant::now();
        while started.elapsed() < READY_TIMEOUT {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if let Some(at) = text.find(" on http://") {
                let rest = &text[at + " on ".len()..];
                let url = rest.lines().next().unwrap_or_default().trim();
                process.url = Some(url.to_owned());
                return Ok(process);
            }
            if !process.alive() {
                bail!("it exited; see {}", log.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("it did not report its address; see {}", log.display())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> anyhow::Result<String> {
        Ok(format!(
            "{}{path}",
            self.url.as_deref().context("not a server")?
        ))
    }

    /// SIGTERM, and up to 30 s for a graceful exit; SIGKILL after that.
    pub fn terminate(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while self.alive() && started.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(50));
        }
        // Drop kills what is left.
    }

    /// Whether it still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // The group: Spark's launcher script leaves its JVM as a child.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.child.id())])
                .status();
            let _ = self.child.wait();
        }
    }
}

/// The release binaries `bench/run` built.
#[derive(Clone, Debug)]
pub struct Binaries {
    pub dir: PathBuf,
}

impl Binaries {
    pub fn server(&self) -> Command {
        Command::new(self.dir.join("rucat-server"))
    }

    /// A `rucat-server` on loopback (free ports for the API and the
    /// gateway) with its store under `dir`, `config` as its configuration
    /// (written to `dir/server.json`) and its log in `dir/server.log`.
    pub fn start_server(&self, dir: &Path, config: &serde_json::Value) -> anyhow::Result<Process> {
        std::fs::create_dir_all(dir)?;
        let config_path = dir.join("server.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(config)?)?;
        let mut command = self.server();
        command
            .args(["--listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir)
            .arg("--config-path")
            .arg(&config_path);
        Process::server(command, &dir.join("server.log"))
    }

    pub fn monitor(&self) -> Command {
        Command::new(self.dir.join("rucat-monitor"))
    }

    /// This benchmark program, for measurements that need a process of their own.
    pub fn bench() -> anyhow::Result<Command> {
        Ok(Command::new(std::env::current_exe()?))
    }

    /// The bare axum baseline server, built beside this program.
    pub fn bare() -> anyhow::Result<Command> {
        Ok(Command::new(
            std::env::current_exe()?.with_file_name("rucat-bench-bare"),
        ))
    }
}

/// Runs this program with `args` and parses the JSON line it prints last.
pub fn run_json<T: serde::de::DeserializeOwned>(args: &[&str]) -> anyhow::Result<T> {
    let output = Binaries::bench()?
        .args(args)
        .stderr(Stdio::inherit())
        .output()?;
    if !output.status.success() {
        bail!("rucat-bench {args:?} failed: {}", output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).with_context(|| format!("rucat-bench {args:?} printed {stdout:?}"))
}
