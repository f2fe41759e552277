//! The processes under test: servers without embedded monitors and monitors
//! in separate processes, all sharing one store (a SQLite file, or a
//! SurrealDB server) and one marker directory, and the chaos that SIGKILLs
//! monitors and starts them again.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};

use crate::rng::Rng;
use crate::support::processes::RucatProcess;

/// Servers log their address at info; their per-request lines would drown
/// everything else.
const SERVER_LOG: &str = "warn,rucat_server=info,rucat_server::api=warn";
/// Under chaos monitors log expected warnings (refused releases, takeovers).
const MONITOR_LOG: &str = "warn";

pub struct Cluster {
    pub servers: Vec<RucatProcess>,
    monitors: Arc<Mutex<Vec<Option<RucatProcess>>>>,
    /// The panic flag of every monitor ever started, killed ones included.
    monitor_panics: Arc<Mutex<Vec<Arc<AtomicBool>>>>,
    monitor_args: Arc<Vec<String>>,
    pub marker_dir: PathBuf,
}

impl Cluster {
    /// Starts `servers` servers and `monitors` monitors on `data_dir`, with
    /// monitors that check every second and whose leases last `lease_secs`.
    /// They share `database` (a `database` config value), or without one the
    /// default SQLite file in `data_dir`.
    pub fn start(
        data_dir: &Path,
        database: Option<Value>,
        servers: usize,
        monitors: usize,
        lease_secs: u64,
    ) -> Self {
        let marker_dir = data_dir.join("markers");
        // The test reads it from the start, before a monitor may have made it.
        std::fs::create_dir_all(&marker_dir).expect("create the marker directory");
        let resource_manager = json!({"Markers": {"dir": marker_dir}});
        let mut server = json!({"embedded_monitor": false, "resource_manager": resource_manager});
        let mut monitor = json!({"check_interval_secs": 1, "lease_secs": lease_secs, "resource_manager": resource_manager});
        if let Some(database) = database {
            server["database"] = database.clone();
            monitor["database"] = database;
        }
        let server_config = data_dir.join("server.json");
        let monitor_config = data_dir.join("monitor.json");
        write_json(&server_config, server);
        write_json(&monitor_config, monitor);
        let data_dir = data_dir.to_str().expect("a UTF-8 temp dir");
        let server_args = [
            "--data-dir",
            data_dir,
            "--config-path",
            server_config.to_str().expect("UTF-8"),
        ];
        let monitor_args = Arc::new(vec![
            "--data-dir".to_owned(),
            data_dir.to_owned(),
            "--config-path".to_owned(),
            monitor_config.to_str().expect("UTF-8").to_owned(),
            // Each serves its health and metrics on a port of its own.
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
        ]);
        let cluster = Self {
            servers: (0..servers)
                .map(|_| RucatProcess::server_logging(&server_args, SERVER_LOG))
                .collect(),
            monitors: Arc::new(Mutex::new((0..monitors).map(|_| None).collect())),
            monitor_panics: Arc::default(),
            monitor_args,
            marker_dir,
        };
        for slot in 0..monitors {
            cluster.revive(slot);
        }
        cluster
    }

    pub fn urls(&self) -> Vec<String> {
        self.servers
            .iter()
            .map(|s| s.url.clone().expect("a server"))
            .collect()
    }

    /// Starts a monitor in `slot` unless one runs there.
    fn revive(&self, slot: usize) {
        revive(
            &self.monitors,
            &self.monitor_panics,
            &self.monitor_args,
            slot,
        );
    }

    /// SIGKILLs a random monitor every 0.1–0.6 s and starts a new one in its
    /// place 0–1 s later, until the returned chaos is stopped.
    pub fn unleash(&self, seed: u64) -> Chaos {
        let stop = Arc::new(AtomicBool::new(false));
        let kills = Arc::new(AtomicUsize::new(0));
        let (monitors, panics, args) = (
            Arc::clone(&self.monitors),
            Arc::clone(&self.monitor_panics),
            Arc::clone(&self.monitor_args),
        );
        let thread = std::thread::spawn({
            let (stop, kills) = (Arc::clone(&stop), Arc::clone(&kills));
            move || {
                let mut rng = Rng::new(seed);
                let slots = lock(&monitors).len() as u64;
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(100) + rng.millis(500));
                    let slot = rng.below(slots) as usize;
                    let victim = lock(&monitors)[slot].take();
                    if let Some(victim) = victim {
                        victim.kill();
                        kills.fetch_add(1, Ordering::SeqCst);
                    }
                    std::thread::sleep(rng.millis(1000));
                    revive(&monitors, &panics, &args, slot);
                }
            }
        });
        Chaos {
            stop,
            kills,
            thread: Some(thread),
        }
    }

    /// Makes sure every monitor slot runs a monitor.
    pub fn revive_all(&self) {
        let slots = lock(&self.monitors).len();
        for slot in 0..slots {
            self.revive(slot);
        }
    }

    /// SIGTERMs everything; returns the processes that did not exit with 0
    /// and whether any process, killed ones included, ever panicked.
    pub fn shut_down(self) -> (Vec<String>, bool) {
        let mut unclean = Vec::new();
        let mut panicked = false;
        for (i, server) in self.servers.into_iter().enumerate() {
            panicked |= server.panicked();
            if !server.terminate() {
                unclean.push(format!("server {i}"));
            }
        }
        let monitors: Vec<_> = lock(&self.monitors).drain(..).collect();
        for (i, monitor) in monitors.into_iter().enumerate() {
            if let Some(monitor) = monitor
                && !monitor.terminate()
            {
                unclean.push(format!("monitor {i}"));
            }
        }
        // Give stderr readers a moment to see the last lines.
        std::thread::sleep(Duration::from_millis(200));
        panicked |= lock(&self.monitor_panics)
            .iter()
            .any(|p| p.load(Ordering::SeqCst));
        (unclean, panicked)
    }
}

fn revive(
    monitors: &Mutex<Vec<Option<RucatProcess>>>,
    panics: &Mutex<Vec<Arc<AtomicBool>>>,
    args: &[String],
    slot: usize,
) {
    let mut monitors = lock(monitors);
    if monitors[slot].is_none() {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let monitor = RucatProcess::monitor_logging(&args, MONITOR_LOG);
        lock(panics).push(monitor.panic_flag());
        monitors[slot] = Some(monitor);
    }
}

/// The monitor killer, running until [`Chaos::stop`].
pub struct Chaos {
    stop: Arc<AtomicBool>,
    kills: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Chaos {
    /// Stops killing; returns how many monitors were killed.
    pub fn stop(mut self) -> usize {
        self.halt();
        self.kills.load(Ordering::SeqCst)
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Chaos {
    fn drop(&mut self) {
        self.halt();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn write_json(path: &Path, value: Value) {
    std::fs::write(path, value.to_string()).expect("write a config file");
}
