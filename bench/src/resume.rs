//! Benchmark k: what idle engines cost, and what bringing one back costs.
//!
//! **Resume.** A release `rucat-server` as `scripts/run-local` runs it
//! (embedded monitor, local resource manager, SQLite), with a short idle
//! timeout (`"idle": {"timeout_secs": 6, "activity_interval_secs": 1}`),
//! runs local Spark engines one at a time. Each round times, for one
//! engine:
//!
//! - the baseline, a fresh start: `POST /engine`, polling until it is
//!   Running, then a stock pyspark `getOrCreate()` and query through the
//!   gateway, until the answer;
//! - the figure, a resume: once the monitor has stopped the engine for
//!   idleness (it is Terminated, `stopped_reason` "idle for ..."), the same
//!   `getOrCreate()` and query through the same endpoint, until the
//!   answer. The gateway restarts the engine and holds the RPC until it
//!   runs; nothing else asks for it.
//!
//! The client is one pyspark process per query, started (with Spark
//! Connect's modules imported) before the clock starts and handed the
//! endpoint when it does, so Python's start-up counts on neither side.
//! JVM start-up varies from one start to the next, so each side is the
//! median of its rounds, after one untimed start that warms the page cache
//! for Spark's jars (as benchmark d's warm-up does).
//!
//! **Idle-tracked engines at rest.** Two release `rucat-server`s on the
//! `Markers` resource manager (engines are Running as soon as their marker
//! file exists), with activity written every second at most (the shortest
//! interval, the most writes if any were due), each get the same number of
//! engines: one server's with an idle timeout of an hour (tracked: each is
//! scheduled for its idle deadline), the baseline's with
//! `idle_timeout_secs: 0` (never). Once all are Running, every engine gets
//! one RPC through the gateway (a Config RPC from grpc; the gateway writes
//! the first use of a quiet engine before forwarding it, then finds the
//! marker engine unreachable), so each gateway has seen every engine. After
//! a settling pause, both servers are left alone for a window as long as
//! benchmark h's, and over it:
//!
//! - activity writes per second: the growth of
//!   `rucat_gateway_activity_writes_total`;
//! - store writes per second, as benchmark h counts them (the growth of the
//!   sum of every engine's revision, read from the SQLite file from
//!   outside the server).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};

use crate::fleet::{Census, Fleet, create_many};
use crate::procs::{Binaries, Process};
use crate::spark::{Api, SparkHome};

pub struct Sizes {
    /// Fresh starts and resumes timed, one of each per round.
    pub rounds: usize,
    /// Idle-tracked engines at rest, and as many in the baseline.
    pub engines: usize,
    /// After the RPCs, before the window opens.
    pub settle: Duration,
    pub window: Duration,
    pub running_timeout: Duration,
}

/// The idle timeout of the resume benchmark's server, and its activity
/// interval (the timeout must be at least three of them).
const SHORT_TIMEOUT_SECS: u64 = 6;
const SHORT_INTERVAL_SECS: u64 = 1;
/// The tracked engines' timeout at rest: none stops within the window.
const AT_REST_TIMEOUT_SECS: u64 = 3600;
/// What the query prints when the engine works: the sum of 0..999.
const ANSWER: &str = "499500";
/// The longest any one query may take, resume included.
const QUERY_TIMEOUT: Duration = Duration::from_secs(300);
/// Concurrent clients creating engines.
const CLIENTS: usize = 32;

#[derive(Debug)]
pub struct Resume {
    /// Medians over the rounds, seconds.
    pub fresh_secs: f64,
    pub resumed_secs: f64,
    pub rounds: usize,
    /// Resumes the gateway counted (`rucat_gateway_resumes_total`).
    pub resumes: f64,
    /// What the engines said when they were stopped, e.g. "idle for 6s".
    pub stopped_reason: String,
}

pub async fn resume(bins: &Binaries, work: &Path, sizes: &Sizes) -> anyhow::Result<Resume> {
    let spark = SparkHome::locate()?;
    let config = json!({
        "idle": {
            "timeout_secs": SHORT_TIMEOUT_SECS,
            "activity_interval_secs": SHORT_INTERVAL_SECS,
        },
    });
    let server = bins.start_server(&work.join("resume"), &config)?;
    let api = Api {
        http: reqwest::Client::new(),
        server: &server,
    };
    let measured = async {
        // Warms the page cache for Spark's jars; not timed.
        let (_, warm_up, _) = fresh(&api, "Spark", &spark.version).await?;
        api.stop_and_delete(&warm_up).await?;
        let resumes_before = metric(&api, "rucat_gateway_resumes_total").await?;
        let (mut fresh_secs, mut resumed_secs) = (Vec::new(), Vec::new());
        let mut stopped_reason = String::new();
        for round in 1..=sizes.rounds {
            let (secs, id, engine) = fresh(&api, "Spark", &spark.version).await?;
            fresh_secs.push(secs);
            let round = async {
                ensure!(
                    engine["idle_timeout_secs"] == SHORT_TIMEOUT_SECS,
                    "the engine is idle-tracked: {engine}"
                );
                let endpoint = endpoint_of(&engine)?;
                // Nobody uses it: the monitor stops it after its timeout.
                let stopped = api.wait_for(&id, "Terminated").await?;
                stopped_reason = stopped["stopped_reason"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                ensure!(
                    stopped_reason.starts_with("idle"),
                    "the engine stopped for idleness: {stopped}"
                );
                let client = Client::ready().await?;
                let started = Instant::now();
                client.query(&endpoint).await?;
                let resumed = started.elapsed().as_secs_f64();
                resumed_secs.push(resumed);
                eprintln!(
                    "rucat-bench: k. round {round}: fresh {secs:.2} s, resumed {resumed:.2} s"
                );
                let engine = api.wait_for(&id, "Running").await?;
                ensure!(
                    engine["stopped_reason"].is_null(),
                    "a resumed engine has no stop reason: {engine}"
                );
                anyhow::Ok(())
            }
            .await;
            let deleted = api.stop_and_delete(&id).await;
            round?;
            deleted?;
        }
        let resumes = metric(&api, "rucat_gateway_resumes_total").await? - resumes_before;
        anyhow::Ok(Resume {
            fresh_secs: median(&mut fresh_secs),
            resumed_secs: median(&mut resumed_secs),
            rounds: sizes.rounds,
            resumes,
            stopped_reason,
        })
    }
    .await;
    server.terminate();
    measured
}

/// A fresh engine of `kind` to its first answer through the gateway, from
/// `POST /engine` on: seconds, the engine's id and its record once Running.
/// The engine is left Running, unless something failed.
pub(crate) async fn fresh(
    api: &Api<'_>,
    kind: &str,
    version: &str,
) -> anyhow::Result<(f64, String, Value)> {
    let client = Client::ready().await?;
    let started = Instant::now();
    let id = api.create_kind(kind, version, json!({})).await?;
    let answered = async {
        let engine = api.wait_for(&id, "Running").await?;
        client.query(&endpoint_of(&engine)?).await?;
        anyhow::Ok((started.elapsed().as_secs_f64(), engine))
    }
    .await;
    match answered {
        Ok((secs, engine)) => Ok((secs, id, engine)),
        Err(err) => {
            let _ = api.stop_and_delete(&id).await;
            Err(err)
        }
    }
}

/// A Running engine's endpoint.
fn endpoint_of(engine: &Value) -> anyhow::Result<String> {
    Ok(engine["endpoint"]
        .as_str()
        .with_context(|| format!("an endpoint: {engine}"))?
        .to_owned())
}

/// A stock pyspark client, started and with Spark Connect's modules
/// imported, waiting for the endpoint on its stdin; then it runs
/// `getOrCreate()` and the end-to-end test's query, prints the answer and
/// stops its session.
struct Client {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

const CLIENT: &str = r#"
import sys
import grpc, pandas, pyarrow
from pyspark.sql import SparkSession
import pyspark.sql.connect.session
print("ready", flush=True)
endpoint = sys.stdin.readline().strip()
spark = SparkSession.builder.remote(endpoint).getOrCreate()
try:
    print(spark.range(1000).selectExpr("sum(id)").collect()[0][0], flush=True)
finally:
    spark.stop()
"#;

impl Client {
    async fn ready() -> anyhow::Result<Self> {
        tokio::task::spawn_blocking(|| {
            let mut child = Command::new("python3")
                .args(["-c", CLIENT])
                .env_remove("SPARK_CONNECT_AUTHENTICATE_TOKEN")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .context("python3")?;
            let stdin = child.stdin.take().context("stdin")?;
            let mut stdout = BufReader::new(child.stdout.take().context("stdout")?);
            let mut line = String::new();
            stdout.read_line(&mut line)?;
            let mut client = Self {
                child,
                stdin,
                stdout,
            };
            if line.trim() != "ready" {
                let _ = client.child.kill();
                bail!(
                    "the pyspark client did not start (is pyspark installed? scripts/install-deps)"
                );
            }
            Ok(client)
        })
        .await?
    }

    /// Queries `endpoint`; returns once the answer is read (the session's
    /// stop and the exit are not timed, but waited for).
    async fn query(self, endpoint: &str) -> anyhow::Result<()> {
        let endpoint = endpoint.to_owned();
        tokio::task::spawn_blocking(move || {
            let Self {
                mut child,
                mut stdin,
                mut stdout,
            } = self;
            let answered = (|| {
                writeln!(stdin, "{endpoint}")?;
                stdin.flush()?;
                let mut answer = String::new();
                stdout.read_line(&mut answer)?;
                ensure!(
                    answer.trim() == ANSWER,
                    "the query against {endpoint} answered {answer:?}"
                );
                anyhow::Ok(())
            })();
            // Ends a client that hangs (no answer, or closing its channel).
            let started = Instant::now();
            while child.try_wait()?.is_none() {
                if started.elapsed() > QUERY_TIMEOUT {
                    let _ = child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            answered
        })
        .await?
    }
}

/// The idle-tracked fleet at rest, and the baseline's.
#[derive(Debug)]
pub struct AtRest {
    pub tracked: Quiet,
    pub untracked: Quiet,
}

#[derive(Debug, Clone, Copy)]
pub struct Quiet {
    /// Engines Running when the window opened.
    pub running: usize,
    /// Activity writes the one RPC per engine caused (before the window).
    pub rpc_activity_writes: f64,
    pub activity_writes_per_sec: f64,
    pub store_writes_per_sec: f64,
    /// Idle stops in the window (none is due).
    pub idle_stops: f64,
}

pub async fn at_rest(bins: &Binaries, work: &Path, sizes: &Sizes) -> anyhow::Result<AtRest> {
    let tracked = Tracked::start(bins, &work.join("tracked"), AT_REST_TIMEOUT_SECS, sizes).await?;
    let untracked = Tracked::start(bins, &work.join("untracked"), 0, sizes).await?;
    let measured = async {
        let (tracked_rpcs, untracked_rpcs) =
            tokio::try_join!(tracked.rpc_each(), untracked.rpc_each())?;
        tokio::time::sleep(sizes.settle).await;
        let (mut tracked_quiet, mut untracked_quiet) =
            tokio::try_join!(tracked.quiet(sizes.window), untracked.quiet(sizes.window))?;
        tracked_quiet.rpc_activity_writes = tracked_rpcs;
        untracked_quiet.rpc_activity_writes = untracked_rpcs;
        anyhow::Ok(AtRest {
            tracked: tracked_quiet,
            untracked: untracked_quiet,
        })
    }
    .await;
    tracked.fleet.server.terminate();
    untracked.fleet.server.terminate();
    measured
}

/// A `rucat-server` on the `Markers` resource manager with `engines`
/// Running engines of one idle timeout.
struct Tracked {
    fleet: Fleet,
    ids: Vec<String>,
    http: reqwest::Client,
    running: usize,
}

impl Tracked {
    async fn start(
        bins: &Binaries,
        dir: &Path,
        timeout_secs: u64,
        sizes: &Sizes,
    ) -> anyhow::Result<Self> {
        let config = json!({
            "resource_manager": {"Markers": {"dir": dir.join("markers")}},
            "idle": {"activity_interval_secs": SHORT_INTERVAL_SECS},
        });
        let server = bins.start_server(dir, &config)?;
        let fleet = Fleet {
            server,
            census: Census::Sqlite(dir.join("rucat.db")),
        };
        let http = reqwest::Client::new();
        let url = fleet.server.url("/engine")?;
        let body = json!({
            "name": "bench", "engine_type": "Spark", "version": "4.3.0",
            "idle_timeout_secs": timeout_secs,
        })
        .to_string();
        let ids = create_many(sizes.engines, CLIENTS, {
            let http = http.clone();
            move |_| {
                http.post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
            }
        })
        .await?;
        let (running, _) = fleet
            .wait_running(sizes.engines, sizes.running_timeout)
            .await?;
        let tracked = Self {
            fleet,
            ids,
            http,
            running,
        };
        let engine = tracked.engine(&tracked.ids[0]).await?;
        ensure!(
            engine["idle_timeout_secs"] == timeout_secs,
            "the engines have the timeout asked for: {engine}"
        );
        Ok(tracked)
    }

    async fn engine(&self, id: &str) -> anyhow::Result<Value> {
        let url = self.fleet.server.url(&format!("/engine/{id}"))?;
        Ok(self.http.get(url).send().await?.json().await?)
    }

    /// One Config RPC through the gateway for every engine; the activity
    /// writes they caused. Each must be answered UNAVAILABLE: the gateway
    /// found the engine Running (and wrote its use) and could not reach it.
    async fn rpc_each(&self) -> anyhow::Result<f64> {
        let engine = self.engine(&self.ids[0]).await?;
        let endpoint = engine["endpoint"].as_str().context("an endpoint")?;
        let target = endpoint
            .strip_prefix("sc://")
            .and_then(|rest| rest.split(['/', ';']).next())
            .with_context(|| format!("the gateway's address in {endpoint}"))?
            .to_owned();
        let writes = "rucat_gateway_activity_writes_total";
        let before = self.metric(writes).await?;
        let ids = serde_json::to_string(&self.ids)?;
        let codes = tokio::task::spawn_blocking(move || rpcs(&target, &ids)).await??;
        let after = self.metric(writes).await?;
        let unavailable = codes.get("UNAVAILABLE").copied().unwrap_or(0);
        ensure!(
            unavailable == self.ids.len() as u64,
            "every RPC reaches its (unreachable) engine: {codes:?}"
        );
        Ok(after - before)
    }

    /// Over `window`, with no request but the census's reads and two
    /// reads of `/metrics`.
    async fn quiet(&self, window: Duration) -> anyhow::Result<Quiet> {
        let (writes, stops) = (
            "rucat_gateway_activity_writes_total",
            "rucat_engine_idle_stops_total",
        );
        let census = &self.fleet.census;
        let (activity_before, stops_before) =
            (self.metric(writes).await?, self.metric(stops).await?);
        let (store_before, started) = (census.writes().await?, Instant::now());
        tokio::time::sleep(window).await;
        let (store_after, secs) = (census.writes().await?, started.elapsed().as_secs_f64());
        let (activity_after, stops_after) = (self.metric(writes).await?, self.metric(stops).await?);
        Ok(Quiet {
            running: self.running,
            rpc_activity_writes: 0.0,
            activity_writes_per_sec: (activity_after - activity_before) / secs,
            store_writes_per_sec: store_after.saturating_sub(store_before) as f64 / secs,
            idle_stops: stops_after - stops_before,
        })
    }

    async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        metric_of(&self.http, &self.fleet.server, name).await
    }
}

/// One unary Config RPC per engine id (a JSON list), through the gateway at
/// `target`, from one grpc channel; how many got each status code.
fn rpcs(target: &str, ids: &str) -> anyhow::Result<std::collections::BTreeMap<String, u64>> {
    const SCRIPT: &str = r#"
import json, sys
import grpc
codes = {}
with grpc.insecure_channel(sys.argv[1]) as channel:
    config = channel.unary_unary(
        "/spark.connect.SparkConnectService/Config",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    for engine in json.load(sys.stdin):
        try:
            config(b"", metadata=[("x-rucat-engine-id", engine)], timeout=30)
            code = "OK"
        except grpc.RpcError as e:
            code = e.code().name
        codes[code] = codes.get(code, 0) + 1
print(json.dumps(codes))
"#;
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT, target])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("python3")?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(ids.as_bytes())?;
    let output = child.wait_with_output()?;
    ensure!(
        output.status.success(),
        "the grpc client: {} (is grpc installed? scripts/install-deps)",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    Ok(serde_json::from_str(
        stdout.lines().last().unwrap_or_default(),
    )?)
}

async fn metric(api: &Api<'_>, name: &str) -> anyhow::Result<f64> {
    metric_of(&api.http, api.server, name).await
}

/// A metric without labels from the server's `/metrics`; 0 if absent.
async fn metric_of(http: &reqwest::Client, server: &Process, name: &str) -> anyhow::Result<f64> {
    let text = http
        .get(server.url("/metrics")?)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    for line in text.lines() {
        if let Some(value) = line.strip_prefix(name).and_then(|r| r.strip_prefix(' ')) {
            return Ok(value.trim().parse()?);
        }
    }
    Ok(0.0)
}

/// The middle value (the mean of the middle two of an even count).
pub(crate) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }
}
