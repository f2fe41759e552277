//! Forwarding one RPC: a transparent HTTP/2 proxy.
//!
//! The request's frames go to the engine as they arrive and the response's
//! frames come back as the engine sends them, trailers (`grpc-status`)
//! included; nothing is decoded or buffered whole. HTTP/2 flow control does
//! the rest: a slow client stops reading, its stream window fills, the
//! gateway stops pulling from the engine, and the engine's window fills in
//! turn, so memory per stream is bounded by the windows below, whatever the
//! size of the result. Any RPC the engine speaks passes, unary and streaming
//! alike, with no protocol definitions to keep up to date.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::header::{AUTHORIZATION, HOST};
use axum::http::{HeaderValue, Request, Response, Uri};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::activity::{Direction, Stream};
use super::route::{ENGINE_ID_KEY, Refusal, Upstream};
use rucat_core::EngineId;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of everything the gateway sends, either way.
pub type GatewayBody = UnsyncBoxBody<Bytes, BoxError>;

/// HTTP/2 windows: how much of one stream (and of one connection) may be in
/// flight unread. Large enough that a fast client is never held back by
/// round trips on loopback or in a cluster, small enough that a slow client
/// of a huge result costs the gateway at most this much per stream.
pub(super) const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
pub(super) const CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;
/// The largest HTTP/2 frame the gateway accepts (the protocol's default is 16 KiB).
pub(super) const MAX_FRAME: u32 = 1024 * 1024;

/// Pings keep connections through load balancers alive and notice engines
/// that vanished without closing their connections.
const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// One HTTP/2 connection per engine address, shared by every RPC to it.
pub(super) type EngineClient = Client<HttpConnector, GatewayBody>;

pub(super) fn engine_client() -> EngineClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    Client::builder(TokioExecutor::new())
        // Keep-alive pings and idle-connection expiry need a timer.
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .http2_only(true)
        .http2_initial_stream_window_size(STREAM_WINDOW)
        .http2_initial_connection_window_size(CONNECTION_WINDOW)
        // Arrow batches are large: fewer, larger frames from the engine
        // cost the proxy less per byte.
        .http2_max_frame_size(MAX_FRAME)
        .http2_keep_alive_interval(KEEP_ALIVE)
        .http2_keep_alive_timeout(Duration::from_secs(10))
        .build(connector)
}

/// The request as the engine must see it: sent to its own address, without
/// the user's credential and rucat's routing metadata, and carrying the
/// engine's own token instead.
pub(super) fn upstream_request<B>(
    request: Request<B>,
    id: &EngineId,
    upstream: &Upstream,
) -> Result<Request<B>, Refusal> {
    let (mut parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    parts.uri = Uri::builder()
        .scheme("http")
        .authority(upstream.authority.as_str())
        .path_and_query(path)
        .build()
        .map_err(|e| Refusal::Unreachable {
            id: id.clone(),
            why: format!("bad engine address {}: {e}", upstream.authority),
        })?;
    let headers = &mut parts.headers;
    headers.remove(AUTHORIZATION);
    headers.remove(ENGINE_ID_KEY);
    headers.remove(HOST);
    if let Some(token) = &upstream.token {
        if let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {}", token.expose())) {
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
    }
    Ok(Request::from_parts(parts, body))
}

/// A body that reports its bytes to an RPC's [`Stream`] as they pass, and
/// holds the stream open until it is dropped.
pub(super) struct Counted<B> {
    inner: B,
    stream: Arc<Stream>,
    direction: Direction,
}

impl<B> Counted<B> {
    pub(super) fn new(inner: B, stream: Arc<Stream>, direction: Direction) -> Self {
        Self {
            inner,
            stream,
            direction,
        }
    }
}

impl<B> Body for Counted<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.stream.bytes(self.direction, data.len());
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(err.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Boxes `body` with its bytes counted on `stream`.
pub(super) fn counted<B>(body: B, stream: &Arc<Stream>, direction: Direction) -> GatewayBody
where
    B: Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
{
    Counted::new(body, Arc::clone(stream), direction).boxed_unsync()
}

/// Every answer the gateway gives.
pub type GatewayResponse = Response<GatewayBody>;

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;
    use rucat_core::EngineToken;

    use super::*;

    #[test]
    fn the_engine_sees_its_own_token_and_no_user_credential() {
        let token = EngineToken::generate().unwrap();
        let upstream = Upstream {
            authority: "127.0.0.1:41000".into(),
            token: Some(token.clone()),
        };
        let request = Request::builder()
            .uri("http://gateway:15002/spark.connect.SparkConnectService/ExecutePlan")
            .header("authorization", "Bearer users-secret")
            .header(ENGINE_ID_KEY, EngineId::generate().as_str())
            .header("host", "gateway:15002")
            .header("content-type", "application/grpc")
            .header("x-user-metadata", "kept")
            .body(())
            .unwrap();
        let forwarded = upstream_request(request, &EngineId::generate(), &upstream).unwrap();
        assert_eq!(
            forwarded.uri().to_string(),
            "http://127.0.0.1:41000/spark.connect.SparkConnectService/ExecutePlan"
        );
        let headers: &HeaderMap = forwarded.headers();
        assert_eq!(
            headers["authorization"],
            format!("Bearer {}", token.expose()).as_str()
        );
        assert!(headers["authorization"].is_sensitive());
        assert!(headers.get(ENGINE_ID_KEY).is_none());
        assert!(headers.get("host").is_none());
        assert_eq!(headers["x-user-metadata"], "kept");
        assert_eq!(headers["content-type"], "application/grpc");

        let tokenless = Upstream {
            authority: "127.0.0.1:41000".into(),
            token: None,
        };
        let request = Request::builder()
            .uri("/x")
            .header("authorization", "Bearer users-secret")
            .body(())
            .unwrap();
        let forwarded = upstream_request(request, &EngineId::generate(), &tokenless).unwrap();
        assert!(forwarded.headers().get("authorization").is_none());
    }
}
