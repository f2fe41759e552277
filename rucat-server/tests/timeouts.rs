//! Slow and stalled clients against the real `rucat-server` binary, over
//! real sockets, with short timeouts: none holds a connection past its
//! timeout, and none delays anyone else. A store that hangs gets a bounded
//! answer too (in process: the binary has no hanging store).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hyper_util::service::TowerToHyperService;
use rucat_core::{EngineId, EngineRecord, Engines, Limits, Store, StoreError, Timestamp};
use rucat_server::api;
use rucat_server::serve::{self, Protocol, Timeouts};
use serde_json::{Value, json};
use support::processes::RucatProcess;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEADER_READ: Duration = Duration::from_secs(2);
const BODY_READ: Duration = Duration::from_secs(2);
const IDLE: Duration = Duration::from_secs(5);

/// Room for scheduling on a busy machine, beyond a timeout.
const SLACK: Duration = Duration::from_secs(3);

/// A server with short timeouts, on a fresh data directory.
fn server(data: &tempfile::TempDir) -> RucatProcess {
    let config = json!({"http": {
        "header_read_timeout_secs": HEADER_READ.as_secs(),
        "body_read_timeout_secs": BODY_READ.as_secs(),
        "request_timeout_secs": 3,
        "idle_timeout_secs": IDLE.as_secs(),
    }});
    let path = data.path().join("server.json");
    std::fs::write(&path, config.to_string()).unwrap();
    RucatProcess::server_logging(
        &[
            "--data-dir",
            data.path().to_str().unwrap(),
            "--config-path",
            path.to_str().unwrap(),
        ],
        "warn,rucat_server=info",
    )
}

fn address(url: &str) -> String {
    url.trim_start_matches("http://").to_owned()
}

/// Opens a connection to `server`'s REST API and sends `bytes` on it.
async fn send(server: &RucatProcess, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(address(server.url.as_deref().unwrap()))
        .await
        .unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

/// Waits up to `within` for the server to close `stream`, reading (and
/// dropping) whatever it sends; returns whether it closed.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Reads an HTTP/1.1 response until the server closes the connection;
/// returns the head and the body.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, String) {
    let mut bytes = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut bytes))
        .await
        .expect("the server answers and closes the connection in time")
        .expect("read the answer");
    let text = String::from_utf8(bytes).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole response");
    (head.to_owned(), body.to_owned())
}

#[tokio::test]
async fn stalled_connections_are_closed_and_delay_no_one() {
    let data = tempfile::tempdir().unwrap();
    let server = server(&data);
    let client = reqwest::Client::new();
    let engines = client.get(server.url("/engines")).send().await.unwrap();
    assert_eq!(engines.status(), 200);
    let target = address(server.url.as_deref().unwrap());

    // Five hundred clients: some send nothing, some half a request head,
    // some half the HTTP/2 preface; then all stall.
    let stalls: [&[u8]; 3] = [
        b"",
        b"GET /engines HTTP/1.1\r\nHost: rucat\r\nX-Slow: ",
        b"PRI * HTTP/2.0\r\n",
    ];
    let mut stalled = Vec::new();
    for i in 0..500 {
        let mut stream = TcpStream::connect(&target).await.unwrap();
        stream.write_all(stalls[i % stalls.len()]).await.unwrap();
        stalled.push((Instant::now(), stream));
    }

    // Meanwhile, others are served at once.
    let asked = Instant::now();
    let engines = client.get(server.url("/engines")).send().await.unwrap();
    assert_eq!(engines.status(), 200);
    assert_eq!(engines.json::<Value>().await.unwrap(), json!([]));
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "answered during the stall in {:?}",
        asked.elapsed()
    );

    // Every stalled connection is closed: after the header timeout, not before.
    let closes: Vec<_> = stalled
        .into_iter()
        .map(|(opened, mut stream)| {
            tokio::spawn(async move {
                let closed = closed_within(&mut stream, HEADER_READ + SLACK).await;
                (closed, opened.elapsed())
            })
        })
        .collect();
    let mut held = 0;
    for close in closes {
        let (closed, after) = close.await.unwrap();
        if closed {
            assert!(
                after >= HEADER_READ - Duration::from_millis(100),
                "closed after {after:?}"
            );
        } else {
            held += 1;
        }
    }
    assert_eq!(
        held,
        0,
        "stalled connections still open after {:?}",
        HEADER_READ + SLACK
    );

    let engines = client.get(server.url("/engines")).send().await.unwrap();
    assert_eq!(engines.status(), 200);
    assert!(!server.panicked());
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let data = tempfile::tempdir().unwrap();
    let server = server(&data);
    let mut stream = send(&server, b"GET /healthz HTTP/1.1\r\nHost: rucat\r\n\r\n").await;
    let mut answer = [0; 1024];
    let read = stream.read(&mut answer).await.unwrap();
    let answered = Instant::now();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with(r#"{"status":"ok"}"#), "{answer}");

    // Kept past the header timeout: idle is not a stalled head.
    assert!(!closed_within(&mut stream, HEADER_READ + Duration::from_secs(1)).await);
    // Closed once idle for the idle timeout.
    assert!(closed_within(&mut stream, IDLE + SLACK).await);
    let idle_for = answered.elapsed();
    assert!(
        idle_for >= IDLE - Duration::from_millis(100),
        "closed after {idle_for:?}"
    );
}

#[tokio::test]
async fn a_stalled_body_gets_408_with_a_json_error() {
    let data = tempfile::tempdir().unwrap();
    let server = server(&data);
    let mut stream = send(
        &server,
        b"POST /engine HTTP/1.1\r\nHost: rucat\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"name\": \"etl\", ",
    )
    .await;
    let sent = Instant::now();
    let (head, body) = read_until_closed(&mut stream, BODY_READ + SLACK).await;
    assert!(
        sent.elapsed() >= BODY_READ - Duration::from_millis(100),
        "answered after {:?}",
        sent.elapsed()
    );
    assert!(
        head.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{head}"
    );
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("\r\ncontent-type: application/json"),
        "{head}"
    );
    assert!(head.contains("\r\nconnection: close"), "{head}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        json!({"error": "request_timeout", "message": "the request body did not arrive within 2 s"})
    );
    // Nothing was created from the half body.
    let engines = reqwest::get(server.url("/engines")).await.unwrap();
    assert_eq!(engines.json::<Value>().await.unwrap(), json!([]));
}

#[tokio::test]
async fn the_gateway_closes_connections_that_never_send_the_preface() {
    let data = tempfile::tempdir().unwrap();
    let server = server(&data);
    let gateway = server.gateway.clone().expect("the gateway's address");
    let mut silent = TcpStream::connect(&gateway).await.unwrap();
    let mut half = TcpStream::connect(&gateway).await.unwrap();
    half.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    // A client that sets up its connection and then sends nothing, as one
    // waiting on a long query would, keeps it.
    let mut set_up = TcpStream::connect(&gateway).await.unwrap();
    set_up
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let opened = Instant::now();

    for stream in [&mut silent, &mut half] {
        assert!(closed_within(stream, HEADER_READ + SLACK).await);
        assert!(opened.elapsed() >= HEADER_READ - Duration::from_millis(100));
    }
    assert!(
        !closed_within(&mut set_up, HEADER_READ + Duration::from_secs(1)).await,
        "a connection that is set up is not cut for being idle"
    );
}

/// A store that never answers.
struct Hanging;

#[async_trait]
impl Store for Hanging {
    async fn insert(&self, _: &EngineRecord) -> Result<(), StoreError> {
        std::future::pending().await
    }
    async fn insert_within(&self, _: &EngineRecord, _: &Limits) -> Result<(), StoreError> {
        std::future::pending().await
    }
    async fn compare_and_swap_within(
        &self,
        _: u64,
        _: &EngineRecord,
        _: &Limits,
    ) -> Result<u64, StoreError> {
        std::future::pending().await
    }
    async fn get(&self, _: &EngineId) -> Result<Option<EngineRecord>, StoreError> {
        std::future::pending().await
    }
    async fn list(&self) -> Result<Vec<EngineRecord>, StoreError> {
        std::future::pending().await
    }
    async fn compare_and_swap(&self, _: u64, _: &EngineRecord) -> Result<u64, StoreError> {
        std::future::pending().await
    }
    async fn delete(&self, _: &EngineId, _: u64) -> Result<(), StoreError> {
        std::future::pending().await
    }
    async fn due(&self, _: Timestamp, _: usize) -> Result<Vec<EngineRecord>, StoreError> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_hanging_store_gets_a_bounded_503() {
    let timeouts = Timeouts {
        body_read: Duration::from_secs(1),
        request: Duration::from_secs(1),
        ..Timeouts::default()
    };
    let store: Arc<dyn Store> = Arc::new(Hanging);
    let router = api::with_timeouts(
        api::router(Engines::new(store), None),
        timeouts.request_limits(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve::serve(
        listener,
        None,
        Protocol::http(&timeouts),
        TowerToHyperService::new(router),
        std::future::pending::<()>(),
    ));

    let client = reqwest::Client::new();
    let asked = Instant::now();
    let response = client.get(format!("{url}/engines")).send().await.unwrap();
    let took = asked.elapsed();
    assert_eq!(response.status(), 503);
    assert!(
        took >= Duration::from_millis(900),
        "answered after {took:?}"
    );
    assert!(
        took < Duration::from_secs(1) + SLACK,
        "answered after {took:?}"
    );
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unavailable", "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.starts_with("no answer within 1 s"), "{message}");

    // The connection and the server stay usable.
    let health = client.get(format!("{url}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}
