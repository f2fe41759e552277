//! Benchmark d: time until a Spark Connect engine answers its first query —
//! through rucat (create over REST, wait for Running, query) against
//! `spark-submit` of the same server started by hand (wait for its port,
//! query). Both queries are the end-to-end test's pyspark script, so client
//! start-up counts the same on both sides.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};

use crate::procs::{Binaries, Process};

const START_TIMEOUT: Duration = Duration::from_secs(240);
const POLL: Duration = Duration::from_millis(50);
/// What the query prints when the engine works: the sum of 0..999.
const ANSWER: &str = "499500";

/// Seconds until the first answer, rucat's and the bare server's, each the
/// best of its rounds.
#[derive(Debug)]
pub struct FirstQuery {
    pub rucat_secs: f64,
    pub bare_secs: f64,
}

pub async fn run(bins: &Binaries, work: &Path, rounds: usize) -> anyhow::Result<FirstQuery> {
    let spark = SparkHome::locate()?;
    // Warms the page cache for Spark's jars, which the first JVM of a
    // machine otherwise pays for alone.
    bare(&spark, work, "warm-up")?;
    let (mut rucat_best, mut bare_best) = (f64::INFINITY, f64::INFINITY);
    for round in 0..rounds {
        bare_best = bare_best.min(bare(&spark, work, &format!("bare-{round}"))?);
        rucat_best = rucat_best.min(through_rucat(bins, work, &spark, round).await?);
    }
    Ok(FirstQuery {
        rucat_secs: rucat_best,
        bare_secs: bare_best,
    })
}

pub(crate) struct SparkHome {
    home: PathBuf,
    pub(crate) version: String,
}

impl SparkHome {
    /// `SPARK_HOME`, else pyspark's, as the local resource manager finds it.
    pub(crate) fn locate() -> anyhow::Result<Self> {
        let home = match std::env::var_os("SPARK_HOME") {
            Some(home) => PathBuf::from(home),
            None => PathBuf::from(python(&[
                "-c",
                "import os, pyspark; print(os.path.dirname(pyspark.__file__))",
            ])?),
        };
        let version = python(&["-c", "import pyspark; print(pyspark.__version__)"])?;
        Ok(Self { home, version })
    }
}

fn python(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("python3")
        .args(args)
        .output()
        .context("python3")?;
    ensure!(
        output.status.success(),
        "python3 {args:?}: {} (is pyspark installed? scripts/install-deps)",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The end-to-end test's query against `endpoint`.
fn query(endpoint: &str) -> anyhow::Result<()> {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../rucat-server/tests/support/spark_query.py");
    let output = Command::new("python3").arg(script).arg(endpoint).output()?;
    let answer = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success() && answer.trim() == ANSWER,
        "the query against {endpoint} answered {answer:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// The same server the local resource manager runs, by hand: same class,
/// master, driver memory, loopback binding and UI setting.
fn bare(spark: &SparkHome, work: &Path, name: &str) -> anyhow::Result<f64> {
    let dir = work.join(name);
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let mut command = Command::new(spark.home.join("bin/spark-submit"));
    command
        .current_dir(&dir)
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        .args([
            "--master",
            "local[2]",
            "--name",
            name,
            "--driver-memory",
            "512m",
        ])
        .args([
            "--class",
            "org.apache.spark.sql.connect.service.SparkConnectServer",
        ])
        .args(["--conf", &format!("spark.connect.grpc.binding.port={port}")])
        .args(["--conf", "spark.connect.grpc.binding.address=127.0.0.1"])
        .args(["--conf", "spark.ui.enabled=false"]);
    let started = Instant::now();
    let mut engine = Process::start(command, &dir.join("engine.log"))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while TcpStream::connect_timeout(&addr, POLL).is_err() {
        ensure!(engine.alive(), "spark-submit exited; see {}", dir.display());
        ensure!(
            started.elapsed() < START_TIMEOUT,
            "spark-submit never listened"
        );
        std::thread::sleep(POLL);
    }
    query(&format!("sc://127.0.0.1:{port}"))?;
    Ok(started.elapsed().as_secs_f64())
    // Dropping `engine` kills its process group.
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `rucat-server` as `scripts/run-local` runs it: embedded monitor, local
/// resource manager, SQLite.
async fn through_rucat(
    bins: &Binaries,
    work: &Path,
    spark: &SparkHome,
    round: usize,
) -> anyhow::Result<f64> {
    let data = work.join(format!("rucat-{round}"));
    let mut command = bins.server();
    command
        .args(["--listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&data);
    let server = Process::server(command, &work.join(format!("spark-server-{round}.log")))?;
    let api = Api {
        http: reqwest::Client::new(),
        server: &server,
    };
    let started = Instant::now();
    let id = api.create(&spark.version, json!({})).await?;
    let measured = async {
        let engine = api.wait_for(&id, "Running").await?;
        let endpoint = engine["endpoint"]
            .as_str()
            .context("an endpoint")?
            .to_owned();
        tokio::task::spawn_blocking(move || query(&endpoint)).await??;
        anyhow::Ok(started.elapsed().as_secs_f64())
    }
    .await;
    // Stop the engine whatever happened: it runs in a process group of its
    // own, which killing the server would leave behind.
    let stopped = api.stop_and_delete(&id).await;
    server.terminate();
    let secs = measured?;
    stopped?;
    Ok(secs)
}

pub(crate) struct Api<'a> {
    pub(crate) http: reqwest::Client,
    pub(crate) server: &'a Process,
}

impl Api<'_> {
    /// A Spark engine.
    pub(crate) async fn create(&self, version: &str, configs: Value) -> anyhow::Result<String> {
        self.create_kind("Spark", version, configs).await
    }

    /// An engine of `kind` (its `engine_type`).
    pub(crate) async fn create_kind(
        &self,
        kind: &str,
        version: &str,
        configs: Value,
    ) -> anyhow::Result<String> {
        let body =
            json!({"name": "bench", "engine_type": kind, "version": version, "configs": configs});
        let response = self
            .http
            .post(self.server.url("/engine")?)
            .json(&body)
            .send()
            .await?;
        let body: Value = response.json().await?;
        Ok(body["id"].as_str().context("an id")?.to_owned())
    }

    pub(crate) async fn wait_for(&self, id: &str, state: &str) -> anyhow::Result<Value> {
        let started = Instant::now();
        loop {
            let engine: Value = self
                .http
                .get(self.server.url(&format!("/engine/{id}"))?)
                .send()
                .await?
                .json()
                .await?;
            if engine["state"] == state {
                return Ok(engine);
            }
            if engine["state"]
                .as_str()
                .is_some_and(|s| s.starts_with("Error"))
            {
                bail!("the engine failed: {engine}");
            }
            ensure!(started.elapsed() < START_TIMEOUT, "never {state}: {engine}");
            tokio::time::sleep(POLL).await;
        }
    }

    pub(crate) async fn stop_and_delete(&self, id: &str) -> anyhow::Result<()> {
        self.http
            .post(self.server.url(&format!("/engine/{id}/stop"))?)
            .send()
            .await?;
        self.wait_for(id, "Terminated").await?;
        self.http
            .delete(self.server.url(&format!("/engine/{id}"))?)
            .send()
            .await?;
        Ok(())
    }
}
