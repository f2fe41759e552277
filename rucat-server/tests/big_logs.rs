//! Issue 15: "A 200 MB log served with `tail=100` using bounded memory."
//!
//! The `rucat-server` binary (embedded monitor, local resource manager)
//! runs an engine on a stand-in Spark home whose `spark-submit` writes
//! 200 MB of Spark-like log lines and then listens on its port as a Spark
//! Connect server would (`rucat_core::resource::local::fake`). While the
//! engine runs, its last 100 lines and its whole log are read live; after a
//! stop, the monitor archives the 200 MB and the last 100 lines are read
//! from the archive. Through all of it the server's peak resident memory
//! (`VmHWM`) grows by far less than the log's size. No Spark, no JVM: this
//! test is not serialized with the Spark tests.

mod support;

use std::time::{Duration, Instant};

use rucat_core::resource::local::fake;
use serde_json::{Value, json};
use support::processes::RucatProcess;

/// Lines the stand-in Spark writes before it listens, each [`LINE_BYTES`]
/// long: 200 MB.
const LINES: u64 = 2_000_000;
const LINE_BYTES: u64 = 100;
/// How much the server's peak RSS may grow over the whole test. The log is
/// 200 MB; rucat reads it in 64 KiB chunks (tail: backwards, one chunk at a
/// time; the whole log: a 64 KiB `ReaderStream` into hyper; archiving: a
/// streamed copy), so what it holds at once is a few chunks per request plus
/// allocator slack (glibc keeps per-thread arenas of up to 64 MiB *virtual*
/// each, but only touched pages count). A reader that held the log, or even
/// a third of it, would pass 64 MiB; a few MiB of growth is what bounded
/// reading costs, so 64 MiB leaves a wide margin against noise without
/// hiding a reader that buffers the log.
const MAX_GROWTH_KIB: u64 = 64 * 1024;
const TIMEOUT: Duration = Duration::from_secs(120);

/// Line `n` of the big log, without its newline: a Spark-like timestamp, so
/// `since` could find it, and the number zero-padded so that every line is
/// [`LINE_BYTES`] long with its newline.
fn line(n: u64) -> String {
    format!("26/12/01 10:00:00 INFO Big: line {n:07} {}", "x".repeat(58))
}

/// `spark-submit` of the stand-in: the log, written in batches by one
/// python, then [`fake::SERVER`] listening on the port rucat gave it.
fn script() -> String {
    format!(
        r#"python3 -c 'import sys
w = sys.stdout.buffer.write
pad = b"x" * 58
for start in range(1, {LINES} + 1, 10000):
    w(b"".join(b"26/12/01 10:00:00 INFO Big: line %07d %s\n" % (i, pad) for i in range(start, min(start + 10000, {LINES} + 1))))
sys.stdout.flush()' || exit 1
{}"#,
        fake::SERVER
    )
}

/// `VmHWM` of process `pid`, in KiB.
fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in {status}"))
}

struct Api<'a> {
    server: &'a RucatProcess,
    client: reqwest::Client,
}

impl Api<'_> {
    async fn info(&self, id: &str) -> Value {
        let url = self.server.url(&format!("/engine/{id}"));
        self.client
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn wait_for(&self, id: &str, state: &str) {
        let started = Instant::now();
        loop {
            let info = self.info(id).await;
            if info["state"] == state {
                return;
            }
            assert!(started.elapsed() < TIMEOUT, "never {state}: {info}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn logs(&self, id: &str, query: &str) -> reqwest::Response {
        let url = self.server.url(&format!("/engine/{id}/logs{query}"));
        let response = self.client.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200, "GET logs{query}");
        response
    }

    /// `?tail=100`: the source header and the body.
    async fn tail_100(&self, id: &str) -> (String, String) {
        let response = self.logs(id, "?tail=100").await;
        let source = response.headers()["x-rucat-log-source"]
            .to_str()
            .unwrap()
            .to_owned();
        (source, response.text().await.unwrap())
    }
}

/// The body a `tail=100` must be: exactly the last 100 lines.
fn last_100() -> String {
    (LINES - 99..=LINES).map(|n| line(n) + "\n").collect()
}

fn assert_last_100(body: &str) {
    let last = body.lines().last().unwrap_or_default();
    assert!(
        last.contains(&format!("line {LINES:07} ")),
        "the last line is the log's last: {last:?}"
    );
    assert_eq!(body.lines().count(), 100);
    assert!(body == last_100(), "the last 100 lines, exactly");
}

#[tokio::test]
async fn a_200_mb_log_is_served_with_tail_100_in_bounded_memory() {
    assert_eq!(line(1).len() as u64 + 1, LINE_BYTES);
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let home = fake::spark_home(root.path(), &script()).unwrap();
    let config = json!({
        "resource_manager": {"Local": {
            "work_dir": data.join("engines"),
            "spark_home": home,
            "stop_grace_secs": 1,
        }},
        // Above the log's size, so that the archive keeps all of it.
        "logs": {"max_bytes_per_attempt": 256 * 1024 * 1024},
    });
    std::fs::create_dir_all(&data).unwrap();
    let config_path = root.path().join("server.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let server = RucatProcess::server(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--config-path",
        config_path.to_str().unwrap(),
    ]);
    let api = Api {
        server: &server,
        client: reqwest::Client::new(),
    };
    let created: Value = api
        .client
        .post(server.url("/engine"))
        .json(&json!({"name": "big", "engine_type": "Spark", "version": "4.3.0"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().expect("an id").to_owned();
    // Running once it listens, which it does after writing the whole log.
    api.wait_for(&id, "Running").await;
    let live_file = data.join("engines").join(&id).join("engine.log");
    let size = std::fs::metadata(&live_file).unwrap().len();
    assert_eq!(size, LINES * LINE_BYTES, "{}", live_file.display());
    let before = peak_kib(server.pid());

    // (a) The last 100 lines, live.
    let (source, body) = api.tail_100(&id).await;
    assert_eq!(source, "live");
    assert_last_100(&body);

    // (b) The whole log, live, streamed: counted chunk by chunk, never held.
    let streamed = stream_len(api.logs(&id, "").await).await;
    assert_eq!(streamed, size, "the whole log, byte for byte in length");

    // (c) Stopped: the monitor archives the 200 MB before it deletes the
    // engine's work directory; the same 100 lines come from the archive.
    let stop = api
        .client
        .post(server.url(&format!("/engine/{id}/stop")))
        .send()
        .await
        .unwrap();
    assert_eq!(stop.status(), 200);
    api.wait_for(&id, "Terminated").await;
    assert!(!live_file.exists(), "the work directory is gone");
    let archived = data.join("logs").join(&id).join("1.log");
    assert_eq!(
        std::fs::metadata(&archived).map(|m| m.len()).ok(),
        Some(size),
        "the archive holds the whole log: {}",
        archived.display()
    );
    let (source, body) = api.tail_100(&id).await;
    assert_eq!(source, "archive");
    assert_last_100(&body);

    let after = peak_kib(server.pid());
    let growth = after.saturating_sub(before);
    eprintln!("server VmHWM: {before} KiB before, {after} KiB after (+{growth} KiB)");
    assert!(
        growth < MAX_GROWTH_KIB,
        "the server's peak RSS grew by {growth} KiB serving and archiving a {size}-byte log"
    );

    let deleted = api
        .client
        .delete(server.url(&format!("/engine/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    assert!(!server.panicked());
    assert!(server.terminate(), "the server exits cleanly on SIGTERM");
}

/// The length of a response body, read chunk by chunk.
async fn stream_len(mut response: reqwest::Response) -> u64 {
    let mut bytes = 0;
    while let Some(chunk) = response.chunk().await.unwrap() {
        bytes += chunk.len() as u64;
    }
    bytes
}
