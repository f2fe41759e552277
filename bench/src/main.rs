//! `rucat-bench`: rucat's benchmarks. `bench/run` builds the release binaries
//! and runs `rucat-bench report`, which prints one table; the other
//! subcommands are the pieces it runs in processes of their own.

mod burst;
mod control_plane;
mod due;
mod fleet;
mod gateway;
/// Static users' tokens and an OIDC issuer of our own (RSA keys made by
/// openssl, a JWKS endpoint, signed tokens), as the server's tests make
/// them, for the identity benchmark.
#[allow(dead_code)]
#[path = "../../rucat-server/tests/support/identities.rs"]
mod identities;
mod identity;
mod idle;
mod kinds;
mod logs;
mod many;
mod overhead;
mod procs;
mod report;
mod rest;
mod resume;
mod rss;
mod spark;
mod steady;
/// The SurrealDB server the tests start (RUCAT_SURREAL_BIN, built by
/// scripts/test and bench/run), for the wake-up benchmark.
#[allow(dead_code)]
#[path = "../../rucat-store/tests/support/surreal_server.rs"]
mod surreal_server;
mod table;
mod wakeup;
mod watched;
mod wrk;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use control_plane::StoreKind;

#[derive(Parser)]
#[command(about = "Rucat's benchmarks (run them with bench/run)")]
struct Args {
    #[command(subcommand)]
    command: Benchmark,
}

#[derive(Subcommand)]
enum Benchmark {
    /// Every benchmark and its baseline; prints the summary table.
    Report {
        /// Where the release `rucat-server` and `rucat-monitor` are.
        #[arg(long)]
        bin_dir: PathBuf,
        /// Smaller sizes, to check that everything runs.
        #[arg(long)]
        quick: bool,
        /// Leave out the benchmarks that run local Spark engines and pyspark
        /// (d, g, k and m).
        #[arg(long)]
        no_spark: bool,
        /// Only the benchmarks with these letters, e.g. `--only cg`.
        #[arg(long)]
        only: Option<String>,
        /// Another build's release binaries (e.g. an earlier commit's):
        /// h and i also run against its `rucat-server`, in rows marked
        /// "(before)".
        #[arg(long)]
        compare_bin_dir: Option<PathBuf>,
    },
    /// a: create → Running latency; prints JSON.
    Overhead {
        #[arg(long, value_enum)]
        store: StoreKind,
        #[arg(long, default_value_t = 1000)]
        engines: usize,
    },
    /// f: a write by someone else → Running, with or without the store's
    /// change feed; prints JSON.
    Wakeup {
        #[arg(long, value_enum)]
        store: wakeup::WakeStore,
        /// Hide the store's change feed from the monitor (the baseline).
        #[arg(long)]
        no_feed: bool,
        #[arg(long, default_value_t = 40)]
        engines: usize,
    },
    /// i: the due-list read on a SQLite file of this many engines, 1% due;
    /// prints JSON.
    Due {
        #[arg(long)]
        engines: usize,
    },
    /// b: a burst of creates until all are Running; prints JSON.
    Burst {
        #[arg(long, value_enum)]
        store: StoreKind,
        #[arg(long, default_value_t = 10_000)]
        engines: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Benchmark::Report {
            bin_dir,
            quick,
            no_spark,
            only,
            compare_bin_dir,
        } => {
            let scale = if quick {
                report::Scale::QUICK
            } else {
                report::Scale::FULL
            };
            let table = report::run(report::Options {
                bin_dir,
                scale,
                spark: !no_spark,
                only,
                compare_bin_dir,
            })
            .await?;
            print!("{table}");
        }
        Benchmark::Overhead { store, engines } => {
            let result = overhead::run(store, engines).await?;
            println!("{}", serde_json::to_string(&result)?);
        }
        Benchmark::Wakeup {
            store,
            no_feed,
            engines,
        } => {
            let result = wakeup::run(store, !no_feed, engines).await?;
            println!("{}", serde_json::to_string(&result)?);
        }
        Benchmark::Due { engines } => {
            let result = due::run(engines).await?;
            println!("{}", serde_json::to_string(&result)?);
        }
        Benchmark::Burst { store, engines } => {
            let result = burst::run(store, engines).await?;
            println!("{}", serde_json::to_string(&result)?);
        }
    }
    Ok(())
}
