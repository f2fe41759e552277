//! Load generation with wrk (Debian's `wrk` package) on loopback.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

/// Connections kept open, and wrk's threads: one thread saturates a
/// two-core machine's server without taking a core from it.
const CONNECTIONS: &str = "32";
const THREADS: &str = "1";

/// The body of every benchmarked `POST /engine`.
pub const CREATE_BODY: &str = r#"{"name": "bench", "engine_type": "Spark", "version": "4.3.0"}"#;

/// Requests per second of `url` over `duration`; with `post_script`, the
/// Lua script that makes the requests POSTs. Any non-2xx answer is an error:
/// throughput of failures is no throughput.
pub fn requests_per_sec(
    url: &str,
    duration: Duration,
    post_script: Option<&Path>,
) -> anyhow::Result<f64> {
    requests_per_sec_with(url, duration, post_script, &[])
}

/// [`requests_per_sec`] with `headers` (`"Name: value"`) on every request.
pub fn requests_per_sec_with(
    url: &str,
    duration: Duration,
    post_script: Option<&Path>,
    headers: &[String],
) -> anyhow::Result<f64> {
    let mut command = Command::new("wrk");
    for header in headers {
        command.arg("-H").arg(header);
    }
    command.args([
        "-t",
        THREADS,
        "-c",
        CONNECTIONS,
        "-d",
        &format!("{}s", duration.as_secs().max(1)),
        "--timeout",
        "10s",
    ]);
    if let Some(script) = post_script {
        command.arg("-s").arg(script);
    }
    let output = command
        .arg(url)
        .output()
        .context("cannot run wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk {url} failed: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    parse(&text).with_context(|| format!("wrk {url}: {text}"))
}

/// Writes the Lua script that turns wrk's requests into creates.
pub fn write_post_script(path: &Path) -> anyhow::Result<()> {
    Ok(std::fs::write(path, creates_script())?)
}

/// Writes a script of creates whose header `header` names `user0` …
/// `user<users - 1>` in turn, as a proxy would name its users.
pub fn write_post_script_as_users(path: &Path, header: &str, users: usize) -> anyhow::Result<()> {
    let script = format!(
        "{}local n = 0\nrequest = function()\n  n = n + 1\n  wrk.headers[\"{header}\"] = \"user\" .. (n % {users})\n  return wrk.format()\nend\n",
        creates_script()
    );
    Ok(std::fs::write(path, script)?)
}

fn creates_script() -> String {
    format!(
        "wrk.method = \"POST\"\nwrk.body = '{CREATE_BODY}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
    )
}

fn parse(output: &str) -> anyhow::Result<f64> {
    if let Some(line) = output
        .lines()
        .find(|l| l.contains("Non-2xx or 3xx responses"))
    {
        bail!("failed requests: {}", line.trim());
    }
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|n| n.trim().parse().ok())
        .context("no Requests/sec in wrk's output")
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "Running 5s test @ http://127.0.0.1:1/engines
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.00ms  200.00us   5.00ms   90.00%
  50000 requests in 5.00s, 10.00MB read
Requests/sec:  10000.50
Transfer/sec:      2.00MB
";

    #[test]
    fn reads_requests_per_second() {
        assert_eq!(parse(OUTPUT).unwrap(), 10000.5);
    }

    #[test]
    fn failed_requests_are_an_error() {
        let failing = OUTPUT.replace(
            "Requests/sec",
            "  Non-2xx or 3xx responses: 7\nRequests/sec",
        );
        assert!(parse(&failing).unwrap_err().to_string().contains("7"));
    }
}
