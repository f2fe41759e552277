//! `rucat_monitor::http::serve` and `bound_requests` over real sockets,
//! with short limits: stalled heads are closed, stalled bodies get 408, slow
//! handlers 503, and no one waits on anyone else.

use std::time::{Duration, Instant};

use axum::routing::{get, post};
use axum::{Extension, Router};
use rucat_monitor::http::{RequestLimits, bound_requests, serve};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const HEADER_READ: Duration = Duration::from_secs(1);
const LIMITS: RequestLimits = RequestLimits {
    body: Duration::from_secs(1),
    request: Duration::from_secs(2),
};
/// Room for scheduling on a busy machine, beyond a timeout.
const SLACK: Duration = Duration::from_secs(3);

/// A server with a fast route, a slow one and one that reads its body.
async fn start() -> String {
    let router = Router::new()
        .route("/fast", get(|| async { "fast" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                "slow"
            }),
        )
        .route("/echo", post(|body: String| async move { body }))
        .layer(axum::middleware::from_fn(bound_requests))
        .layer(Extension(LIMITS));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(serve(listener, router, HEADER_READ, std::future::pending()));
    address
}

/// Sends `request` and reads until the server closes the connection.
async fn exchange(address: &str, request: &[u8], within: Duration) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut answer))
        .await
        .expect("closed in time")
        .expect("read");
    String::from_utf8(answer).unwrap()
}

fn json_body(answer: &str) -> Value {
    let (_, body) = answer.split_once("\r\n\r\n").expect("a whole response");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {answer}"))
}

#[tokio::test]
async fn stalled_heads_are_closed_while_others_are_answered() {
    let address = start().await;
    let opened = Instant::now();
    let silent = exchange(&address, b"", HEADER_READ + SLACK);
    let half = exchange(
        &address,
        b"GET /fast HTTP/1.1\r\nHost: x",
        HEADER_READ + SLACK,
    );
    let fast = async {
        let answer = exchange(
            &address,
            b"GET /fast HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            Duration::from_secs(1),
        )
        .await;
        (answer, opened.elapsed())
    };
    let (silent, half, (fast, fast_after)) = tokio::join!(silent, half, fast);
    assert!(fast.ends_with("\r\n\r\nfast"), "{fast}");
    assert!(fast_after < HEADER_READ, "answered after {fast_after:?}");
    // Closed without an answer, once the head timeout passed.
    for answer in [silent, half] {
        assert!(!answer.contains("200 OK"), "{answer}");
    }
    assert!(opened.elapsed() >= HEADER_READ - Duration::from_millis(100));
}

#[tokio::test]
async fn a_stalled_body_gets_408_and_a_closed_connection() {
    let address = start().await;
    let sent = Instant::now();
    let answer = exchange(
        &address,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
        LIMITS.body + SLACK,
    )
    .await;
    assert!(sent.elapsed() >= LIMITS.body - Duration::from_millis(100));
    assert!(
        answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{answer}"
    );
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    assert_eq!(
        json_body(&answer),
        json!({"error": "request_timeout", "message": "the request body did not arrive within 1 s"})
    );
    // A body that arrives in time is read as usual.
    let answer = exchange(
        &address,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
        Duration::from_secs(1),
    )
    .await;
    assert!(answer.ends_with("\r\n\r\nabc"), "{answer}");
}

#[tokio::test]
async fn a_slow_handler_gets_503() {
    let address = start().await;
    let sent = Instant::now();
    let answer = exchange(
        &address,
        b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        LIMITS.request + SLACK,
    )
    .await;
    assert!(sent.elapsed() >= LIMITS.request - Duration::from_millis(100));
    assert!(
        answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{answer}"
    );
    assert!(answer.contains("\r\nretry-after: 1\r\n"), "{answer}");
    let body = json_body(&answer);
    assert_eq!(body["error"], "unavailable", "{body}");
}
