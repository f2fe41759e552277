//! Benchmark f: how soon a monitor takes up an engine that someone else
//! wrote — with the store's change feed, against the same monitor without it
//! (which finds the engine at its next scheduled read of the due list; it
//! checks every second, rucat's default).
//!
//! "Someone else" is what the feed is for. On SurrealDB it is another client
//! of the same server, as another rucat process would be: SurrealDB pushes
//! the write to the monitor's LIVE query. SQLite tells no other process, so
//! there it is the monitor's own store handle written by user operations
//! that do not wake the monitor directly (`Engines` without a waker): the
//! in-process feed. Engines are created one at a time, each [`IDLE`] after
//! the previous one is Running, and timed until their Running record is
//! written. The pause matters: a monitor reads the due list again the moment
//! a pass ends, so an engine created right then is found without any feed;
//! new work usually arrives at an idle monitor.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rucat_core::Store;
use rucat_store::surreal::Password;
use rucat_store::{SqliteStore, SurrealConfig, SurrealCredentials, SurrealStore};

use crate::control_plane::{ControlPlane, Wake};
use crate::overhead::Latencies;
use crate::procs::Process;

/// Where the SurrealDB test server binary is, as scripts/test and bench/run
/// build it.
pub const SURREAL_BIN: &str = "RUCAT_SURREAL_BIN";
const SURREAL_PASS: &str = "rucat-bench";
/// How long the monitor is left idle before each engine is created.
const IDLE: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WakeStore {
    /// A SQLite file; the writer shares the monitor's handle.
    Sqlite,
    /// A SurrealDB server on loopback; the writer is a second client.
    SurrealServer,
}

pub async fn run(kind: WakeStore, feed: bool, engines: usize) -> anyhow::Result<Latencies> {
    let dir = tempfile::tempdir()?;
    let (_server, monitor_side, users_side) = open(kind, dir.path()).await?;
    let wake = Wake {
        by_users: false,
        by_feed: feed,
    };
    let mut plane = ControlPlane::assemble(monitor_side, users_side, wake);
    let mut times = Vec::with_capacity(engines);
    for _ in 0..engines {
        tokio::time::sleep(IDLE).await;
        times.push(plane.time_one_start().await?);
    }
    plane.stop().await?;
    Ok(Latencies::of(times))
}

/// The monitor's store and the users' store, and the server behind them if any.
async fn open(
    kind: WakeStore,
    dir: &Path,
) -> anyhow::Result<(Option<Process>, Arc<dyn Store>, Arc<dyn Store>)> {
    match kind {
        WakeStore::Sqlite => {
            let path = dir.join("rucat.db");
            let store: Arc<dyn Store> =
                Arc::new(tokio::task::spawn_blocking(move || SqliteStore::open(path)).await??);
            Ok((None, Arc::clone(&store), store))
        }
        WakeStore::SurrealServer => {
            let (server, config) = start_surreal(dir)?;
            let monitor_side = Arc::new(SurrealStore::open(&config).await?);
            let user_side = Arc::new(SurrealStore::open(&config).await?);
            Ok((Some(server), monitor_side, user_side))
        }
    }
}

/// A SurrealDB server in memory on a free loopback port.
fn start_surreal(dir: &Path) -> anyhow::Result<(Process, SurrealConfig)> {
    let bin = std::env::var_os(SURREAL_BIN).with_context(|| format!("{SURREAL_BIN} is not set"))?;
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port();
    let mut command = Command::new(bin);
    command
        .args(["start", "--bind", &format!("127.0.0.1:{port}")])
        .args(["--user", "root", "--pass", SURREAL_PASS, "--log", "warn"])
        .arg("memory");
    let server = Process::start(command, &dir.join("surreal.log"))?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let started = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the SurrealDB server did not listen on {addr}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let config = SurrealConfig {
        credentials: Some(SurrealCredentials {
            username: "root".to_owned(),
            password: Password::new(SURREAL_PASS),
        }),
        ..SurrealConfig::new(format!("ws://{addr}"))
    };
    Ok((server, config))
}
