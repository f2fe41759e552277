//! Telling monitors the moment a starting engine accepts connections, and
//! the moment its process ends: it is Running as soon as it can serve rather
//! than at a monitor's next check, and a Running engine that dies is cleaned
//! up at once rather than at the monitors' next resync. Only the processes
//! this process started can be watched this way (it is their parent); the
//! others, adopted after a restart, are found by the resync.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::process;
use crate::change::{ChangeSink, ChangeSinks};
use crate::engine::EngineId;
use crate::kind::{BIND_ADDRESS, ReadyCheck};

/// How often a starting engine is checked.
const POLL: Duration = Duration::from_millis(100);
/// Starts slower than this are left to the monitors' own checks.
const LIMIT: Duration = Duration::from_secs(600);
/// How long one HTTP check may take on loopback.
const HTTP_TIMEOUT: Duration = Duration::from_millis(500);

/// The monitors to tell, shared with the tasks that watch starting engines.
#[derive(Clone, Default)]
pub(super) struct Readiness {
    sinks: ChangeSinks,
}

impl Readiness {
    pub fn subscribe(&self, sink: ChangeSink) {
        self.sinks.add(sink);
    }

    /// Watches an engine just launched: reports it when all `checks` pass,
    /// and again when any of its processes ends (one of `exits` turns true).
    pub fn watch(
        &self,
        id: EngineId,
        checks: Vec<ReadyCheck>,
        mut exits: Vec<watch::Receiver<bool>>,
    ) {
        if self.sinks.is_empty() {
            return;
        }
        let readiness = self.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            loop {
                let ended = tokio::select! {
                    // Also when a reaper is gone without a word: nothing
                    // more will be learnt by waiting.
                    () = any_ended(&mut exits) => true,
                    () = tokio::time::sleep(POLL) => false,
                };
                if ended {
                    readiness.sinks.changed(&id);
                    return;
                }
                if all_pass(&checks).await || started.elapsed() >= LIMIT {
                    break;
                }
            }
            readiness.sinks.changed(&id);
            // Running: its end is the next thing to report.
            any_ended(&mut exits).await;
            readiness.sinks.changed(&id);
        });
    }
}

/// Returns once any of the processes has ended; never if there are none.
async fn any_ended(exits: &mut [watch::Receiver<bool>]) {
    if exits.is_empty() {
        return std::future::pending().await;
    }
    let waits = exits.iter_mut().map(|exited| {
        Box::pin(async move {
            let _ = exited.wait_for(|done| *done).await;
        })
    });
    futures::future::select_all(waits).await;
}

pub(super) async fn all_pass(checks: &[ReadyCheck]) -> bool {
    for check in checks {
        if !passes(check).await {
            return false;
        }
    }
    true
}

pub(super) async fn passes(check: &ReadyCheck) -> bool {
    match check {
        ReadyCheck::Listening { port } => process::accepts_connections(*port).await,
        ReadyCheck::HttpOk { port, path } => {
            tokio::time::timeout(HTTP_TIMEOUT, answers_ok(*port, path))
                .await
                .unwrap_or(false)
        }
    }
}

/// Whether `GET <path>` on `port` of [`BIND_ADDRESS`] answers 200. Just the
/// status line of one HTTP/1.1 request: a health check needs no client.
async fn answers_ok(port: u16, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect((BIND_ADDRESS, port)).await else {
        return false;
    };
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {BIND_ADDRESS}:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    // "HTTP/1.1 200 OK"
    let mut head = [0u8; 13];
    stream.read_exact(&mut head).await.is_ok()
        && head.starts_with(b"HTTP/1.")
        && &head[8..12] == b" 200"
        && matches!(head[12], b' ' | b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves one connection with `status_line`.
    async fn serve_once(status_line: &'static str) -> u16 {
        let listener = tokio::net::TcpListener::bind((BIND_ADDRESS, 0))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let n = stream.read(&mut request).await.unwrap();
            assert!(request[..n].starts_with(b"GET /readyz HTTP/1.1\r\n"));
            let answer = format!("{status_line}\r\ncontent-length: 0\r\n\r\n");
            stream.write_all(answer.as_bytes()).await.unwrap();
        });
        port
    }

    #[tokio::test]
    async fn http_checks_want_200() {
        let check = |port| ReadyCheck::HttpOk {
            port,
            path: "/readyz".into(),
        };
        assert!(passes(&check(serve_once("HTTP/1.1 200 OK").await)).await);
        assert!(!passes(&check(serve_once("HTTP/1.1 503 Service Unavailable").await)).await);
        assert!(!passes(&check(serve_once("HTTP/1.1 2000").await)).await);
        let closed = process::free_port().unwrap();
        assert!(!passes(&check(closed)).await);
        assert!(!passes(&ReadyCheck::Listening { port: closed }).await);
    }
}
