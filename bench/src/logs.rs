//! Benchmark l: engine logs (issue 15) — what serving and archiving a big
//! log costs, against the same with a small one or against plain reads.
//!
//! A release `rucat-server` (embedded monitor, local resource manager on a
//! stand-in Spark home as `rucat_core::resource::local::fake` makes them
//! for rucat's tests, no JVM) runs
//! engines whose `spark-submit` writes N log lines of 100 bytes each (N from
//! the engine's `spark.rucat.bench.log_lines` config) and then listens on
//! its port as a Spark Connect server would. `"logs":
//! {"max_bytes_per_attempt": 256 MiB}` keeps every byte.
//!
//! - **tail=100 on an archived log**: a big engine (200 MB) and a small one
//!   (10 KB) are started and stopped, so the monitor archives both; then
//!   `GET /engine/{id}/logs?tail=100` on each, alternating, p50 over the
//!   requests (after a few untimed ones). Goal: the same cost whatever the
//!   log's size.
//! - **Streaming the whole archived 200 MB log**: the body read chunk by
//!   chunk, MB/s, best of two; the baseline reads the archived file itself
//!   in this process with plain 64 KiB reads (as `cat` does), best of two,
//!   both from the page cache (the file was just written and read).
//! - **Server memory while streaming**: its peak RSS (`VmHWM`, reset
//!   through `/proc/<pid>/clear_refs` just before) minus its RSS just
//!   before; the baseline is the idle server's RSS.
//! - **Stop → Terminated with archiving**: an engine with a 50 MB log and
//!   one with a 10 KB log, each stopped alone while Running and polled every
//!   10 ms until Terminated; the median of the rounds.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};

use crate::procs::{Binaries, Process};
use crate::rss;

pub struct Sizes {
    /// Lines of the big log (100 bytes each): 2,000,000 = 200 MB.
    pub big_lines: u64,
    /// Lines of the log whose stop is timed against the small one's.
    pub stopped_lines: u64,
    /// Lines of the small log: 100 = 10 KB.
    pub small_lines: u64,
    /// `tail=100` requests per log.
    pub tail_requests: usize,
    /// Stops timed per log size.
    pub stop_rounds: usize,
}

const LINE_BYTES: u64 = 100;
const TAIL: usize = 100;
const TIMEOUT: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(10);
/// Untimed requests before the timed ones.
const WARM_UP: usize = 5;

#[derive(Debug)]
pub struct Logs {
    pub big_mb: f64,
    pub small_kb: f64,
    pub stopped_mb: f64,
    pub tail_big_p50_ms: f64,
    pub tail_small_p50_ms: f64,
    pub tail_requests: usize,
    pub stream_mb_per_sec: f64,
    pub plain_read_mb_per_sec: f64,
    pub streaming_rss_growth_mb: f64,
    pub idle_rss_mb: f64,
    /// Whether the peak could be reset before streaming (else the growth
    /// is of the peak since the server started).
    pub peak_reset: bool,
    pub stop_big_secs: f64,
    pub stop_small_secs: f64,
    pub stop_rounds: usize,
}

/// The stand-in's `spark-submit`: the log, then a listening server.
const SCRIPT: &str = r#"python3 -c 'import re, sys
n = int(re.search(r"spark\.rucat\.bench\.log_lines=(\d+)", " ".join(sys.argv)).group(1))
w = sys.stdout.buffer.write
pad = b"x" * 58
for start in range(1, n + 1, 10000):
    w(b"".join(b"26/12/01 10:00:00 INFO Big: line %07d %s\n" % (i, pad) for i in range(start, min(start + 10000, n + 1))))
sys.stdout.flush()' "$@" || exit 1
exec python3 -c 'import re, socket, sys
port = int(re.search(r"binding.port=(\d+)", " ".join(sys.argv)).group(1))
s = socket.socket(); s.bind(("127.0.0.1", port)); s.listen()
while True: s.accept()[0].close()' "$@"
"#;

/// Creates `<root>/spark`, a Spark 4.3.0 home (an empty
/// `jars/spark-core_2.13-4.3.0.jar` tells rucat its version) whose
/// `spark-submit` is [`SCRIPT`]; its path. `rucat_core`'s own
/// (`resource::local::fake`) is for tests only.
fn spark_home(root: &Path) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let home = root.join("spark");
    std::fs::create_dir_all(home.join("bin"))?;
    std::fs::create_dir_all(home.join("jars"))?;
    std::fs::write(home.join("jars/spark-core_2.13-4.3.0.jar"), "")?;
    let submit = home.join("bin/spark-submit");
    std::fs::write(&submit, format!("#!/bin/sh\n{SCRIPT}"))?;
    std::fs::set_permissions(&submit, std::fs::Permissions::from_mode(0o755))?;
    Ok(home)
}

pub async fn run(bins: &Binaries, work: &Path, sizes: &Sizes) -> anyhow::Result<Logs> {
    std::fs::create_dir_all(work)?;
    let home = spark_home(work)?;
    let data = work.join("server");
    let config = json!({
        "resource_manager": {"Local": {
            "work_dir": data.join("engines"),
            "spark_home": home,
            "stop_grace_secs": 1,
        }},
        "logs": {"max_bytes_per_attempt": 256 * 1024 * 1024},
    });
    let server = bins.start_server(&data, &config)?;
    let api = Api {
        http: reqwest::Client::new(),
        server: &server,
        data: data.clone(),
    };
    let mut engines = Vec::new();
    let measured = measure(&api, sizes, &mut engines).await;
    for id in &engines {
        let _ = api.stop_and_delete(id).await;
    }
    server.terminate();
    measured
}

async fn measure(api: &Api<'_>, sizes: &Sizes, engines: &mut Vec<String>) -> anyhow::Result<Logs> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss_mb = rss::current_mb(api.server.pid())?;

    // Both archived: started, Running, stopped.
    let big = api.create(sizes.big_lines).await?;
    engines.push(big.clone());
    let small = api.create(sizes.small_lines).await?;
    engines.push(small.clone());
    for id in [&big, &small] {
        api.wait_for(id, "Running").await?;
        api.post(&format!("/engine/{id}/stop")).await?;
    }
    for id in [&big, &small] {
        api.wait_for(id, "Terminated").await?;
    }
    let big_file = api.archived(&big, sizes.big_lines)?;
    api.archived(&small, sizes.small_lines)?;

    // tail=100, alternating.
    for id in [&big, &small] {
        let body = api.tail(id).await?;
        ensure!(
            body.lines().count() == TAIL,
            "tail={TAIL} of {id}: {} lines",
            body.lines().count()
        );
    }
    for _ in 0..WARM_UP {
        api.tail(&big).await?;
        api.tail(&small).await?;
    }
    let (mut on_big, mut on_small) = (Vec::new(), Vec::new());
    for _ in 0..sizes.tail_requests {
        on_big.push(api.timed_tail(&big).await?);
        on_small.push(api.timed_tail(&small).await?);
    }

    // The whole big log, streamed, and read plainly; best of two each.
    let pid = api.server.pid();
    let expected = sizes.big_lines * LINE_BYTES;
    plain_read(&big_file)?;
    let (mut stream_secs, mut plain_secs) = (f64::INFINITY, f64::INFINITY);
    let mut growth_mb: f64 = 0.0;
    let mut peak_reset = true;
    for _ in 0..2 {
        let before = rss::current_mb(pid)?;
        peak_reset &= reset_peak(pid);
        let started = Instant::now();
        let bytes = api.stream(&big).await?;
        stream_secs = stream_secs.min(started.elapsed().as_secs_f64());
        ensure!(bytes == expected, "streamed {bytes} bytes, not {expected}");
        growth_mb = growth_mb.max(rss::peak_mb(pid)? - before);

        let started = Instant::now();
        let bytes = plain_read(&big_file)?;
        plain_secs = plain_secs.min(started.elapsed().as_secs_f64());
        ensure!(bytes == expected, "read {bytes} bytes, not {expected}");
    }

    // Stop → Terminated: a bigger log and a small one, alternating.
    let (mut stop_big, mut stop_small) = (Vec::new(), Vec::new());
    for round in 1..=sizes.stop_rounds {
        let stopped = api.create(sizes.stopped_lines).await?;
        engines.push(stopped.clone());
        let small = api.create(sizes.small_lines).await?;
        engines.push(small.clone());
        api.wait_for(&stopped, "Running").await?;
        api.wait_for(&small, "Running").await?;
        let big_secs = api.time_stop(&stopped).await?;
        let small_secs = api.time_stop(&small).await?;
        api.archived(&stopped, sizes.stopped_lines)?;
        api.archived(&small, sizes.small_lines)?;
        eprintln!(
            "rucat-bench: l. stop round {round}: {big_secs:.3} s with the big log, {small_secs:.3} s with the small one"
        );
        stop_big.push(big_secs);
        stop_small.push(small_secs);
    }

    let mb = |bytes: u64| bytes as f64 / 1e6;
    Ok(Logs {
        big_mb: mb(expected),
        small_kb: (sizes.small_lines * LINE_BYTES) as f64 / 1e3,
        stopped_mb: mb(sizes.stopped_lines * LINE_BYTES),
        tail_big_p50_ms: median(&mut on_big),
        tail_small_p50_ms: median(&mut on_small),
        tail_requests: sizes.tail_requests,
        stream_mb_per_sec: mb(expected) / stream_secs,
        plain_read_mb_per_sec: mb(expected) / plain_secs,
        streaming_rss_growth_mb: growth_mb,
        idle_rss_mb,
        peak_reset,
        stop_big_secs: median(&mut stop_big),
        stop_small_secs: median(&mut stop_small),
        stop_rounds: sizes.stop_rounds,
    })
}

/// Resets the peak RSS of `pid` (`VmHWM`) to its current RSS; whether the
/// kernel allowed it.
fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Reads `path` whole with 64 KiB reads, as `cat` does; the bytes read.
fn plain_read(path: &Path) -> anyhow::Result<u64> {
    let mut file = std::fs::File::open(path)?;
    let mut buffer = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
    }
}

struct Api<'a> {
    http: reqwest::Client,
    server: &'a Process,
    data: PathBuf,
}

impl Api<'_> {
    async fn create(&self, lines: u64) -> anyhow::Result<String> {
        let body = json!({"name": "logs", "engine_type": "Spark", "version": "4.3.0",
            "configs": {"spark.rucat.bench.log_lines": lines.to_string()}});
        let response = self
            .http
            .post(self.server.url("/engine")?)
            .json(&body)
            .send()
            .await?;
        let body: Value = response.json().await?;
        Ok(body["id"].as_str().context("an id")?.to_owned())
    }

    async fn post(&self, path: &str) -> anyhow::Result<()> {
        let response = self.http.post(self.server.url(path)?).send().await?;
        ensure!(
            response.status() == 200,
            "POST {path}: {}",
            response.status()
        );
        Ok(())
    }

    async fn wait_for(&self, id: &str, state: &str) -> anyhow::Result<()> {
        let started = Instant::now();
        let url = self.server.url(&format!("/engine/{id}"))?;
        loop {
            let engine: Value = self.http.get(&url).send().await?.json().await?;
            if engine["state"] == state {
                return Ok(());
            }
            if engine["state"]
                .as_str()
                .is_some_and(|s| s.starts_with("Error"))
            {
                bail!("the engine failed: {engine}");
            }
            ensure!(started.elapsed() < TIMEOUT, "never {state}: {engine}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Seconds from the stop request to a Terminated record.
    async fn time_stop(&self, id: &str) -> anyhow::Result<f64> {
        let started = Instant::now();
        self.post(&format!("/engine/{id}/stop")).await?;
        self.wait_for(id, "Terminated").await?;
        Ok(started.elapsed().as_secs_f64())
    }

    async fn stop_and_delete(&self, id: &str) -> anyhow::Result<()> {
        let _ = self.post(&format!("/engine/{id}/stop")).await;
        self.wait_for(id, "Terminated").await?;
        let url = self.server.url(&format!("/engine/{id}"))?;
        self.http.delete(url).send().await?;
        Ok(())
    }

    /// The archived log of the engine's first attempt, checked to hold all
    /// of its `lines`.
    fn archived(&self, id: &str, lines: u64) -> anyhow::Result<PathBuf> {
        let path = self.data.join("logs").join(id).join("1.log");
        let len = std::fs::metadata(&path)
            .with_context(|| format!("no archived log {}", path.display()))?
            .len();
        ensure!(
            len == lines * LINE_BYTES,
            "{} holds {len} bytes, not {}",
            path.display(),
            lines * LINE_BYTES
        );
        Ok(path)
    }

    async fn logs(&self, id: &str, query: &str) -> anyhow::Result<reqwest::Response> {
        let url = self.server.url(&format!("/engine/{id}/logs{query}"))?;
        let response = self.http.get(url).send().await?;
        ensure!(
            response.status() == 200,
            "GET logs{query}: {}",
            response.status()
        );
        let source = response.headers().get("x-rucat-log-source");
        ensure!(
            source.is_some_and(|s| s == "archive"),
            "GET logs{query} is served from the archive: {source:?}"
        );
        Ok(response)
    }

    async fn tail(&self, id: &str) -> anyhow::Result<String> {
        Ok(self.logs(id, "?tail=100").await?.text().await?)
    }

    /// Milliseconds until the whole answer to `tail=100` is read.
    async fn timed_tail(&self, id: &str) -> anyhow::Result<f64> {
        let started = Instant::now();
        let body = self.logs(id, "?tail=100").await?.bytes().await?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        ensure!(body.len() == TAIL * LINE_BYTES as usize, "tail={TAIL}");
        Ok(ms)
    }

    /// The whole log's length, read chunk by chunk.
    async fn stream(&self, id: &str) -> anyhow::Result<u64> {
        let mut response = self.logs(id, "").await?;
        let mut bytes = 0;
        while let Some(chunk) = response.chunk().await? {
            bytes += chunk.len() as u64;
        }
        Ok(bytes)
    }
}

/// The middle value (the mean of the middle two of an even count).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}
