//! Benchmark m: engine kinds, a Sail engine against a Spark engine.
//!
//! A release `rucat-server` as `scripts/run-local` runs it (embedded
//! monitor, local resource manager, SQLite), with `scripts/install-deps`'s
//! Sail venv as its `sail_python`, runs one engine at a time, Spark and Sail
//! in turn (the order swapped every round), after one untimed engine of
//! each (which warms the page cache for Spark's jars and Sail's library).
//! For each engine:
//!
//! - create → first query: `POST /engine`, polling until it is Running,
//!   then a stock pyspark client's `getOrCreate()` and `sum(id)` query
//!   through the gateway, until the answer (benchmark k's client: started,
//!   with Spark Connect's modules imported, before the clock starts);
//! - idle memory: a few seconds after that answer, with nothing running on
//!   it, the summed `VmRSS` of the engine's process group (the local
//!   resource manager's `process.json` names its pid, which is also the
//!   group's id: Spark's JVM and anything else the engine started count).
//!
//! Each figure is the median of its kind's rounds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::{Value, json};

use crate::procs::Binaries;
use crate::resume::{fresh, median};
use crate::rss;
use crate::spark::{Api, SparkHome};

pub struct Sizes {
    /// Engines of each kind timed.
    pub rounds: usize,
    /// From an engine's first answer to the reading of its memory.
    pub settle: Duration,
}

#[derive(Debug)]
pub struct Kinds {
    pub sail: Kind,
    pub spark: Kind,
    pub rounds: usize,
    pub settle: Duration,
}

/// One kind's medians.
#[derive(Debug)]
pub struct Kind {
    pub version: String,
    /// `POST /engine` → the first query answered, seconds.
    pub first_query_secs: f64,
    /// The idle engine's process group, MB.
    pub idle_rss_mb: f64,
    /// Processes in that group (the most seen).
    pub processes: usize,
}

pub async fn run(bins: &Binaries, work: &Path, sizes: &Sizes) -> anyhow::Result<Kinds> {
    let spark = SparkHome::locate()?;
    let sail_python = sail_python();
    let sail_version = sail_version(&sail_python)?;
    let engines = work.join("engines");
    let config = json!({"resource_manager": {"Local": {
        "work_dir": engines, "sail_python": sail_python}}});
    let server = bins.start_server(work, &config)?;
    let api = Api {
        http: reqwest::Client::new(),
        server: &server,
    };
    let kinds = [("Spark", spark.version.as_str()), ("Sail", &sail_version)];
    let measured = async {
        for (kind, version) in kinds {
            let (secs, id, _) = fresh(&api, kind, version).await?;
            eprintln!("rucat-bench: m. warm-up: {kind} {secs:.2} s");
            api.stop_and_delete(&id).await?;
        }
        // Seconds, MB and processes, per kind.
        let mut samples: [(Vec<f64>, Vec<f64>, usize); 2] = Default::default();
        for round in 1..=sizes.rounds {
            let order = if round % 2 == 1 { [0, 1] } else { [1, 0] };
            for k in order {
                let (kind, version) = kinds[k];
                let (secs, id, engine) = fresh(&api, kind, version).await?;
                let idle = async {
                    ensure!(engine["engine_type"] == kind, "a {kind} engine: {engine}");
                    tokio::time::sleep(sizes.settle).await;
                    rss::group_mb(process_group(&engines.join(&id))?)
                }
                .await;
                let deleted = api.stop_and_delete(&id).await;
                let (mb, processes) = idle?;
                deleted?;
                eprintln!(
                    "rucat-bench: m. round {round}: {kind} {secs:.2} s, idle {mb:.1} MB ({processes} in its process group)"
                );
                let (all_secs, all_mb, most) = &mut samples[k];
                all_secs.push(secs);
                all_mb.push(mb);
                *most = (*most).max(processes);
            }
        }
        let [spark_samples, sail_samples] = samples;
        let kind = |version: &str, (mut secs, mut mb, processes): (Vec<f64>, Vec<f64>, usize)| {
            Kind {
                version: version.to_owned(),
                first_query_secs: median(&mut secs),
                idle_rss_mb: median(&mut mb),
                processes,
            }
        };
        anyhow::Ok(Kinds {
            spark: kind(&spark.version, spark_samples),
            sail: kind(&sail_version, sail_samples),
            rounds: sizes.rounds,
            settle: sizes.settle,
        })
    }
    .await;
    server.terminate();
    measured
}

/// The Python that runs Sail: `scripts/install-deps`'s venv (Sail 0.7
/// refuses the system's pyspark 4.3), as the Sail end-to-end test finds it.
fn sail_python() -> PathBuf {
    let tools = std::env::var_os("RUCAT_TOOLS").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/rucat-tools"),
        PathBuf::from,
    );
    tools.join("sail-venv/bin/python")
}

/// The version of the pysail `python` runs, which its engines must ask for.
fn sail_version(python: &Path) -> anyhow::Result<String> {
    let output = Command::new(python)
        .args(["-c", "import pysail; print(pysail.__version__)"])
        .output()
        .with_context(|| format!("{} (scripts/install-deps makes it)", python.display()))?;
    ensure!(
        output.status.success(),
        "pysail in {}: {} (scripts/install-deps)",
        python.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The engine's process group: the pid in the local resource manager's
/// record of it, `<work_dir>/<id>/process.json`.
fn process_group(engine_dir: &Path) -> anyhow::Result<u32> {
    let path = engine_dir.join("process.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let record: Value = serde_json::from_str(&text)?;
    let pid = record["pid"]
        .as_u64()
        .with_context(|| format!("a pid in {text}"))?;
    Ok(u32::try_from(pid)?)
}
