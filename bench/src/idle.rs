//! Benchmark e: resident memory of an idle `rucat-server` (as
//! `scripts/run-local` runs it: embedded monitor, local resource manager,
//! SQLite) and of an idle `rucat-monitor`, against the bare axum server.

use std::path::Path;
use std::time::Duration;

use crate::procs::{Binaries, Process};
use crate::rss;

/// Long enough for start-up allocations to settle and a few monitor passes.
const SETTLE: Duration = Duration::from_secs(3);

#[derive(Debug)]
pub struct Idle {
    pub server_mb: f64,
    pub monitor_mb: f64,
    pub bare_mb: f64,
}

pub fn run(bins: &Binaries, work: &Path) -> anyhow::Result<Idle> {
    let data = work.join("idle");
    let mut command = bins.server();
    command
        .args(["--listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&data);
    let server = Process::server(command, &work.join("idle-server.log"))?;

    let mut command = bins.monitor();
    command
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data);
    let monitor = Process::server(command, &work.join("idle-monitor.log"))?;

    let mut command = Binaries::bare()?;
    command.args(["--engines", "0"]);
    let bare = Process::server(command, &work.join("idle-bare.log"))?;

    std::thread::sleep(SETTLE);
    let idle = Idle {
        server_mb: rss::current_mb(server.pid())?,
        monitor_mb: rss::current_mb(monitor.pid())?,
        bare_mb: rss::current_mb(bare.pid())?,
    };
    server.terminate();
    monitor.terminate();
    Ok(idle)
}
