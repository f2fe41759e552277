//! The engine's operating-system process: starting it in a process group of
//! its own, telling whether a recorded pid is still the engine, and stopping
//! the whole group.
//!
//! `/proc` is read with blocking calls: it lives in memory and answers at once,
//! and a blocking-pool round trip per read would cost more than the read.

use std::fmt;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::kind::{BIND_ADDRESS, Process};

/// How long `status` waits for a connection: long enough for a loopback
/// connect to a listening server, short enough to keep `status` cheap.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
/// How long a SIGKILLed process may take to disappear before `stop` gives up.
const KILL_WAIT: Duration = Duration::from_secs(5);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// An `exec` takes well under a millisecond; [`leader`] waits this many polls
/// of [`EXEC_POLL`] for one to finish.
const EXEC_POLLS: u32 = 40;
const EXEC_POLL: Duration = Duration::from_millis(5);

/// How an engine's process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    pub fn from_status(status: ExitStatus) -> Option<Self> {
        status
            .code()
            .map(Self::Code)
            .or_else(|| status.signal().map(Self::Signal))
    }

    /// The form kept in the engine's `exit_status` file, e.g. `code 143`.
    pub fn to_record(self) -> String {
        match self {
            Self::Code(c) => format!("code {c}"),
            Self::Signal(s) => format!("signal {s}"),
        }
    }

    pub fn from_record(record: &str) -> Option<Self> {
        let (kind, value) = record.trim().split_once(' ')?;
        let value = value.parse().ok()?;
        match kind {
            "code" => Some(Self::Code(value)),
            "signal" => Some(Self::Signal(value)),
            _ => None,
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            // The JVM turns SIGTERM into exit code 143 (128 + 15).
            Self::Code(143) => f.write_str("exited with code 143 (stopped by SIGTERM)"),
            Self::Code(c) => write!(f, "exited with code {c}"),
            Self::Signal(s) => match Signal::try_from(s) {
                Ok(sig) => write!(f, "was killed by signal {s} ({sig})"),
                Err(_) => write!(f, "was killed by signal {s}"),
            },
        }
    }
}

/// Starts `process` the way an engine's processes must run: detached from
/// our stdin, with stdout and stderr in `log`, and in the process group
/// `group` (`None`: a new one whose id is its pid), so that signalling the
/// group reaches every process of the engine and anything they started.
pub(super) fn spawn(
    process: &Process,
    cwd: &Path,
    log: std::fs::File,
    group: Option<u32>,
) -> io::Result<Child> {
    let mut command = Command::new(&process.program);
    if let Some(arg0) = &process.arg0 {
        command.arg0(arg0);
    }
    let group = match group {
        None => 0,
        Some(pid) => i32::try_from(pid).map_err(io::Error::other)?,
    };
    command
        .args(&process.args)
        .envs(process.envs.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(group)
        .kill_on_drop(false)
        .spawn()
}

/// What a recorded pid is now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Leader {
    /// Alive and running with `marker` among its arguments: the engine.
    Ours,
    /// Alive but something else: the engine died and its pid was reused.
    Foreign,
    /// Not running (absent, or a zombie waiting to be reaped).
    Gone,
}

/// Whether `pid` is still the process that was started with the argument
/// `marker`. A zombie's command line reads empty, so it never counts as ours.
pub(super) async fn leader(pid: u32, marker: &[String]) -> Leader {
    for _ in 0..EXEC_POLLS {
        if let Some(leader) = leader_now(pid, marker) {
            return leader;
        }
        tokio::time::sleep(EXEC_POLL).await;
    }
    // Kernel threads have an empty command line for good.
    Leader::Foreign
}

/// [`leader`] at this instant; `None` while the process is in the middle of
/// an `exec`, when its command line reads empty. The engine passes through
/// that twice as it starts (spark-submit is a script that execs Java), and
/// calling it foreign then would report a healthy engine as failed.
fn leader_now(pid: u32, marker: &[String]) -> Option<Leader> {
    let proc_dir = Path::new("/proc").join(pid.to_string());
    match std::fs::read(proc_dir.join("cmdline")) {
        Ok(cmdline)
            if cmdline
                .split(|&b| b == 0)
                .any(|arg| marker.iter().any(|m| arg == m.as_bytes())) =>
        {
            Some(Leader::Ours)
        }
        Ok(cmdline) if is_running(&proc_dir) => (!cmdline.is_empty()).then_some(Leader::Foreign),
        _ => Some(Leader::Gone),
    }
}

/// Whether the process behind a `/proc/<pid>` directory has not yet died.
fn is_running(proc_dir: &Path) -> bool {
    stat_of(proc_dir).is_some_and(|stat| !matches!(stat.state, 'Z' | 'X' | 'x'))
}

struct Stat {
    state: char,
    pgrp: u32,
}

fn stat_of(proc_dir: &Path) -> Option<Stat> {
    let stat = std::fs::read_to_string(proc_dir.join("stat")).ok()?;
    // The fields follow the command name, which is in parentheses and may
    // itself contain spaces and parentheses.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some(Stat { state, pgrp })
}

/// The process groups of every process started with the argument `marker`.
/// Finds an engine whose pid was never recorded (its starter died between
/// starting it and writing the record), even once its main process is gone
/// and only companions are left.
pub(super) fn groups_with(marker: &[String]) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut groups: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| leader_now(pid, marker) == Some(Leader::Ours))
        .filter_map(|pid| Some(stat_of(&Path::new("/proc").join(pid.to_string()))?.pgrp))
        .collect();
    groups.sort_unstable();
    groups.dedup();
    groups
}

/// Sends `signal` to the process group led by `pid`. A group that no longer
/// exists is not an error: the goal, no process left, is met.
pub(super) fn signal_group(pid: u32, signal: Signal) -> io::Result<()> {
    // Group 0 is our own and 1 is init's; a corrupt pid file must not reach them.
    let pgid = i32::try_from(pid)
        .ok()
        .filter(|&p| p > 1)
        .ok_or_else(|| io::Error::other(format!("refusing to signal process group {pid}")))?;
    match killpg(Pid::from_raw(pgid), signal) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Stops the engine whose process group `pid` leads: SIGTERM so that Spark
/// shuts down cleanly, SIGKILL after `grace`. Returns once the leader is gone.
///
/// The group is only signalled while the leader is ours, or after it is gone:
/// while any member of a group lives, the kernel does not hand its id to a new
/// process, so the group then still holds only the engine's leftovers.
pub(super) async fn stop(pid: u32, marker: &[String], grace: Duration) -> io::Result<()> {
    match leader(pid, marker).await {
        Leader::Foreign => return Ok(()),
        Leader::Gone => return signal_group(pid, Signal::SIGKILL),
        Leader::Ours => {}
    }
    signal_group(pid, Signal::SIGTERM)?;
    if !wait_until_not_ours(pid, marker, grace).await {
        tracing::warn!(pid, ?grace, "engine ignored SIGTERM; killing it");
        signal_group(pid, Signal::SIGKILL)?;
        if !wait_until_not_ours(pid, marker, KILL_WAIT).await {
            return Err(io::Error::other(format!(
                "process {pid} is still alive {KILL_WAIT:?} after SIGKILL"
            )));
        }
    }
    // Whatever the leader started (e.g. Python workers) may outlive it.
    if leader(pid, marker).await == Leader::Gone {
        signal_group(pid, Signal::SIGKILL)?;
    }
    Ok(())
}

/// Polls until `pid` is no longer the engine; false if `limit` passed first.
async fn wait_until_not_ours(pid: u32, marker: &[String], limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if matches!(
            leader_now(pid, marker),
            Some(Leader::Foreign | Leader::Gone)
        ) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Whether a client could connect to `port` now.
pub(super) async fn accepts_connections(port: u16) -> bool {
    let connect = TcpStream::connect((BIND_ADDRESS, port));
    matches!(
        tokio::time::timeout(CONNECT_TIMEOUT, connect).await,
        Ok(Ok(_))
    )
}

/// A port that is free on the engine's address right now.
///
/// Spark binds it a few seconds later, and a program that takes it first makes
/// the engine fail ("Address already in use"). The likeliest such program is
/// another engine starting: its driver and block manager bind ports the kernel
/// picks from the ephemeral range. So ports are picked at random below that
/// range, where the kernel never hands out ports by itself.
pub(super) fn free_port() -> io::Result<u16> {
    let ephemeral_low = ephemeral_range_start().unwrap_or(DEFAULT_EPHEMERAL_START);
    let candidates = port_candidates(ephemeral_low, random_numbers());
    for port in candidates.take(PORT_ATTEMPTS) {
        if std::net::TcpListener::bind((BIND_ADDRESS, port)).is_ok() {
            return Ok(port);
        }
    }
    let listener = std::net::TcpListener::bind((BIND_ADDRESS, 0))?;
    Ok(listener.local_addr()?.port())
}

/// `n` distinct ports, each free now (see [`free_port`]).
pub(super) fn free_ports(n: usize) -> io::Result<Vec<u16>> {
    let mut ports = Vec::with_capacity(n);
    let mut attempts = 0;
    while ports.len() < n {
        let port = free_port()?;
        if !ports.contains(&port) {
            ports.push(port);
        }
        attempts += 1;
        if attempts > n + PORT_ATTEMPTS {
            return Err(io::Error::other(format!("cannot find {n} free ports")));
        }
    }
    Ok(ports)
}

/// Ports below are left alone: they include well-known development ports
/// (Spark Connect's own default is 15002).
const PORT_FLOOR: u16 = 20000;
const PORT_ATTEMPTS: usize = 64;
/// Linux's default when `ip_local_port_range` cannot be read.
const DEFAULT_EPHEMERAL_START: u16 = 32768;

fn ephemeral_range_start() -> Option<u16> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    range.split_whitespace().next()?.parse().ok()
}

/// Candidate ports in `[PORT_FLOOR, ephemeral_low)`; none if that is empty.
fn port_candidates(
    ephemeral_low: u16,
    random: impl Iterator<Item = u64>,
) -> impl Iterator<Item = u16> {
    let span = ephemeral_low.saturating_sub(PORT_FLOOR);
    random
        .take_while(move |_| span > 0)
        .map(move |r| PORT_FLOOR + (r % u64::from(span)) as u16)
}

/// Randomness enough to spread ports, from the standard library's randomly
/// keyed hasher rather than a new dependency.
fn random_numbers() -> impl Iterator<Item = u64> {
    use std::hash::BuildHasher;
    let state = std::collections::hash_map::RandomState::new();
    (0u64..).map(move |i| state.hash_one(i))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn exit_records_round_trip() {
        for exit in [Exit::Code(0), Exit::Code(143), Exit::Signal(9)] {
            assert_eq!(Exit::from_record(&exit.to_record()), Some(exit));
        }
        assert_eq!(Exit::from_record("garbage"), None);
        assert_eq!(Exit::from_record(""), None);
        assert_eq!(
            Exit::Signal(9).to_string(),
            "was killed by signal 9 (SIGKILL)"
        );
        assert_eq!(Exit::Code(1).to_string(), "exited with code 1");
    }

    #[tokio::test]
    async fn a_live_process_without_the_marker_is_foreign() {
        let me = std::process::id();
        assert_eq!(
            leader(me, &["spark.local.dir=/nowhere".to_owned()]).await,
            Leader::Foreign
        );
        assert_eq!(leader(u32::MAX, &["x".to_owned()]).await, Leader::Gone);
    }

    #[test]
    fn our_own_and_inits_groups_are_never_signalled() {
        assert!(signal_group(0, Signal::SIGTERM).is_err());
        assert!(signal_group(1, Signal::SIGTERM).is_err());
        assert!(signal_group(u32::MAX, Signal::SIGTERM).is_err());
    }

    /// Pids of live (non-zombie) processes in group `pgid`.
    fn live_members(pgid: u32) -> Vec<u32> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return vec![];
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                let dir = Path::new("/proc").join(pid.to_string());
                is_running(&dir) && stat_of(&dir).is_some_and(|s| s.pgrp == pgid)
            })
            .collect()
    }

    /// A failing test must not leave its SIGTERM-proof processes behind.
    /// Only on failure: once a passing test stopped the group, its id may
    /// belong to someone else.
    pub(in crate::resource::local) struct KillGroupOnPanic(pub u32);

    impl Drop for KillGroupOnPanic {
        fn drop(&mut self) {
            if std::thread::panicking() {
                let _ = signal_group(self.0, Signal::SIGKILL);
            }
        }
    }

    #[tokio::test]
    async fn stop_escalates_to_sigkill_and_reaches_the_whole_group() {
        let marker = format!("spark.local.dir=/test/{}", uuid::Uuid::now_v7());
        let markers = std::slice::from_ref(&marker);
        let log = tempfile::tempfile().unwrap();
        // Ignores SIGTERM, as do its children, and starts a child that would
        // outlive it.
        let script = r#"trap "" TERM; sleep 60 & while :; do sleep 0.05; done"#;
        let args = ["-c", script, "sh", &marker].map(str::to_owned).to_vec();
        let sh = Process::new("sh", args);
        let mut child = spawn(&sh, Path::new("/"), log.try_clone().unwrap(), None).unwrap();
        let pid = child.id().unwrap();
        let _cleanup = KillGroupOnPanic(pid);
        // A companion, marked by its arg0, in the same group.
        let companion = Process {
            arg0: Some(marker.clone()),
            ..Process::new("sleep", vec!["60".into()])
        };
        let mut companion = spawn(&companion, Path::new("/"), log, Some(pid)).unwrap();
        let companion_pid = companion.id().unwrap();
        assert_eq!(leader(pid, markers).await, Leader::Ours);
        assert_eq!(leader(companion_pid, markers).await, Leader::Ours);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(groups_with(markers), [pid], "one group for all");
        assert!(live_members(pid).len() >= 3, "the background sleep runs");

        let started = std::time::Instant::now();
        stop(pid, markers, Duration::from_millis(300))
            .await
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(300));
        let status = child.wait().await.unwrap();
        assert_eq!(Exit::from_status(status), Some(Exit::Signal(9)));
        let status = companion.wait().await.unwrap();
        assert_eq!(Exit::from_status(status), Some(Exit::Signal(15)));
        assert_eq!(leader(pid, markers).await, Leader::Gone);
        for _ in 0..40 {
            if live_members(pid).is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("group members survived: {:?}", live_members(pid));
    }

    #[test]
    fn ports_are_picked_below_the_ephemeral_range() {
        let ports: Vec<u16> = port_candidates(32768, random_numbers())
            .take(1000)
            .collect();
        assert_eq!(ports.len(), 1000);
        assert!(ports.iter().all(|p| (PORT_FLOOR..32768).contains(p)));
        assert!(ports.iter().any(|&p| p != ports[0]), "they vary");
        assert_eq!(port_candidates(PORT_FLOOR, random_numbers()).count(), 0);
        assert_eq!(port_candidates(1024, random_numbers()).count(), 0);
    }

    #[test]
    fn free_ports_are_distinct() {
        let mut ports = free_ports(30).unwrap();
        assert_eq!(ports.len(), 30);
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 30);
    }

    #[tokio::test]
    async fn a_free_port_is_bindable_and_seen_once_bound() {
        let port = free_port().unwrap();
        let low = ephemeral_range_start().unwrap_or(DEFAULT_EPHEMERAL_START);
        if low > PORT_FLOOR {
            assert!(port < low, "{port} is outside the ephemeral range");
        }
        let _listener = std::net::TcpListener::bind((BIND_ADDRESS, port)).unwrap();
        assert!(accepts_connections(port).await);
    }
}
