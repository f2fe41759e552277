//! Benchmark g: what the Spark Connect gateway costs on the data path. One
//! local Spark engine behind a release `rucat-server`, reached by the same
//! pyspark client through the gateway and directly (with the engine's own
//! token, read from the store as only rucat can), in the same run:
//! throughput of a large `toArrow()` result (pyspark's `collect()` would
//! spend its time building Python rows and hide the transport), latency of
//! a tiny query, the server's memory while it streams, and many sessions at
//! once.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, ensure};
use rucat_core::EngineId;
use rucat_store::DatabaseConfig;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::procs::{Binaries, Process};
use crate::rss;
use crate::spark::{Api, SparkHome};

/// How much of the gateway benchmark to run.
pub struct Sizes {
    pub arrow_rows: u64,
    pub tiny_queries: usize,
    pub sessions: usize,
}

/// Each figure through the gateway and directly.
#[derive(Debug)]
pub struct Gateway {
    pub arrow_rows_per_sec: Pair,
    pub tiny_p50_ms: Pair,
    pub config_rpc_p50_ms: Pair,
    pub sessions_answered: (u64, u64),
    pub sessions_secs: Pair,
    /// The server's resident memory before streaming, and its peak while
    /// the gateway streamed the large result.
    pub rss_before_mb: f64,
    pub rss_streaming_mb: f64,
}

#[derive(Debug, Clone, Copy)]
pub struct Pair {
    pub gateway: f64,
    pub direct: f64,
}

#[derive(Deserialize)]
struct Arrow {
    rows: u64,
    seconds: f64,
}

#[derive(Deserialize)]
struct Concurrent {
    answered: u64,
    seconds: f64,
}

pub async fn run(bins: &Binaries, work: &Path, sizes: &Sizes) -> anyhow::Result<Gateway> {
    let spark = SparkHome::locate()?;
    let data = work.join("gateway");
    let mut command = bins.server();
    command
        .args(["--listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&data);
    let server = Process::server(command, &work.join("gateway-server.log"))?;
    let api = Api {
        http: reqwest::Client::new(),
        server: &server,
    };
    // The large result is collected on the driver before it streams.
    let id = api
        .create(&spark.version, json!({"spark.driver.memory": "2g"}))
        .await?;
    let measured = async {
        let engine = api.wait_for(&id, "Running").await?;
        let gateway = engine["endpoint"]
            .as_str()
            .context("an endpoint")?
            .to_owned();
        let direct = direct_endpoint(&data, &id).await?;
        measure(server.pid(), &gateway, &direct, sizes).await
    }
    .await;
    let stopped = api.stop_and_delete(&id).await;
    server.terminate();
    let figures = measured?;
    stopped?;
    Ok(figures)
}

async fn measure(
    server_pid: u32,
    gateway: &str,
    direct: &str,
    sizes: &Sizes,
) -> anyhow::Result<Gateway> {
    let rows = sizes.arrow_rows.to_string();
    // Warm both paths (JIT, connection) before anything is timed.
    client(&["tiny", direct, "20"])?;
    client(&["tiny", gateway, "20"])?;

    // Gateway and direct runs alternate, and each keeps its best, so that
    // drift in the engine (JIT, garbage collection) hits both alike.
    let rss_before_mb = rss::current_mb(server_pid)?;
    let mut rss_streaming_mb: f64 = 0.0;
    let (mut through, mut straight) = (0.0_f64, 0.0_f64);
    let tiny = sizes.tiny_queries.to_string();
    let (mut tiny_gateway, mut tiny_direct) = (f64::INFINITY, f64::INFINITY);
    let (mut rpc_gateway, mut rpc_direct) = (f64::INFINITY, f64::INFINITY);
    let rpcs = (sizes.tiny_queries * 5).to_string();
    for _ in 0..ROUNDS {
        let (arrow, peak) = while_sampling(server_pid, || client(&["arrow", gateway, &rows]))?;
        rss_streaming_mb = rss_streaming_mb.max(peak);
        through = through.max(rows_per_sec(arrow?, sizes.arrow_rows)?);
        straight = straight.max(rows_per_sec(
            client(&["arrow", direct, &rows])?,
            sizes.arrow_rows,
        )?);
        tiny_gateway = tiny_gateway.min(number(client(&["tiny", gateway, &tiny])?)?);
        tiny_direct = tiny_direct.min(number(client(&["tiny", direct, &tiny])?)?);
        rpc_gateway = rpc_gateway.min(number(client(&["config-latency", gateway, &rpcs])?)?);
        rpc_direct = rpc_direct.min(number(client(&["config-latency", direct, &rpcs])?)?);
    }

    let sessions = sizes.sessions.to_string();
    let many_gateway: Concurrent =
        serde_json::from_value(client(&["concurrent", gateway, &sessions])?)?;
    let many_direct: Concurrent =
        serde_json::from_value(client(&["concurrent", direct, &sessions])?)?;

    Ok(Gateway {
        arrow_rows_per_sec: Pair {
            gateway: through,
            direct: straight,
        },
        tiny_p50_ms: Pair {
            gateway: tiny_gateway,
            direct: tiny_direct,
        },
        config_rpc_p50_ms: Pair {
            gateway: rpc_gateway,
            direct: rpc_direct,
        },
        sessions_answered: (many_gateway.answered, many_direct.answered),
        sessions_secs: Pair {
            gateway: many_gateway.seconds,
            direct: many_direct.seconds,
        },
        rss_before_mb,
        rss_streaming_mb,
    })
}

/// Rounds of the alternating measurements.
const ROUNDS: usize = 3;

/// Runs `work` while sampling the server's resident memory; its result and the peak.
fn while_sampling<T>(pid: u32, work: impl FnOnce() -> T) -> anyhow::Result<(T, f64)> {
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = std::thread::spawn({
        let sampling = Arc::clone(&sampling);
        move || {
            let mut peak: f64 = 0.0;
            while sampling.load(Ordering::Relaxed) {
                peak = peak.max(rss::current_mb(pid).unwrap_or(0.0));
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        }
    });
    let result = work();
    sampling.store(false, Ordering::Relaxed);
    let peak = sampler
        .join()
        .map_err(|_| anyhow::anyhow!("the memory sampler panicked"))?;
    Ok((result, peak))
}

/// Rows per second of a complete `arrow` answer.
fn rows_per_sec(answer: Value, expected: u64) -> anyhow::Result<f64> {
    let arrow: Arrow = serde_json::from_value(answer)?;
    ensure!(arrow.rows == expected, "the arrow result is complete");
    Ok(arrow.rows as f64 / arrow.seconds)
}

/// The engine's own address with its token, which only rucat knows: read
/// from the server's store. `localhost`, so pyspark sends the token without TLS.
async fn direct_endpoint(data: &Path, id: &str) -> anyhow::Result<String> {
    let store = rucat_store::open_store(&DatabaseConfig::Sqlite {
        path: data.join("rucat.db"),
    })
    .await?;
    let record = store
        .get(&id.parse::<EngineId>()?)
        .await?
        .context("the engine is recorded")?;
    let port = record
        .endpoint
        .as_deref()
        .and_then(|e| e.rsplit(':').next())
        .context("a Running engine has an address")?;
    let token = record.spec.token.context("a started engine has a token")?;
    Ok(format!("sc://localhost:{port}/;token={}", token.expose()))
}

/// The tests' pyspark client (`gateway_client.py`); its JSON answer.
fn client(args: &[&str]) -> anyhow::Result<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../rucat-server/tests/support/gateway_client.py");
    let output = Command::new("python3")
        .arg(script)
        .args(args)
        .env_remove("SPARK_CONNECT_AUTHENTICATE_TOKEN")
        .output()
        .context("python3")?;
    ensure!(
        output.status.success(),
        "gateway_client.py {}: {}",
        args.first().unwrap_or(&""),
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    Ok(serde_json::from_str(
        stdout.lines().last().unwrap_or_default(),
    )?)
}

fn number(value: Value) -> anyhow::Result<f64> {
    value.as_f64().context("a number")
}
