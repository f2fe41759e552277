//! Time limits on HTTP clients, so that no client holds a connection, a
//! task or a handler forever by stalling.
//!
//! [`bound_requests`] bounds one request once its head is in: the time to
//! receive its body and the time to answer it. [`serve`] is the monitor's
//! plain HTTP/1 server, which also bounds the time to receive a request head
//! and the time a connection may sit idle. `rucat-server` serves its API with
//! [`bound_requests`] too, on a server of its own (TLS, HTTP/2, the gateway).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::time::{Instant, Sleep};

use super::error_response;

/// How long a request may take once its head has arrived.
///
/// [`bound_requests`] reads them from the request's extensions (add them
/// with `Router::layer(Extension(limits))` outside it), and uses
/// [`RequestLimits::default`] without.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestLimits {
    /// The whole body must have arrived by then. Bodies are small (the
    /// server takes at most 64 KiB); the default, 15 s, allows 64 KiB at 35 kbit/s.
    pub body: Duration,
    /// The answer must be ready by then, the body's arrival included. The
    /// default, 30 s, is hundreds of times what a healthy store takes, and
    /// less than the 60 s after which common proxies give up on an upstream,
    /// so that the client hears rucat's own answer rather than a proxy's.
    pub request: Duration,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            body: Duration::from_secs(15),
            request: Duration::from_secs(30),
        }
    }
}

/// The `error` kind of a request whose client did not send it in time.
pub const REQUEST_TIMEOUT: &str = "request_timeout";

/// Bounds each request by its [`RequestLimits`]:
///
/// - its body has not all arrived within `body`: `408 request_timeout`,
///   whatever the handler made of the truncated body;
/// - no answer within `request`: `408 request_timeout` if the handler is
///   waiting for the client's body then, else `503 unavailable` with
///   `Retry-After` (the server, typically its store, is too slow; the
///   request may or may not have taken effect).
///
/// An HTTP/1 connection is closed after a 408, as RFC 9110 advises: the
/// rest of the body may still be on its way.
pub async fn bound_requests(request: Request, next: Next) -> Response {
    let limits = request
        .extensions()
        .get::<RequestLimits>()
        .copied()
        .unwrap_or_default();
    let http1 = request.version() < Version::HTTP_2;
    let watch = Arc::new(BodyWatch::default());
    let deadline = Instant::now() + limits.body;
    let request = request.map(|body| {
        Body::new(DeadlineBody {
            inner: body,
            deadline,
            sleep: None,
            watch: Arc::clone(&watch),
        })
    });
    let answered = tokio::time::timeout(limits.request, next.run(request)).await;
    let too_slow_client = watch.timed_out.load(Ordering::SeqCst)
        || (answered.is_err() && watch.waiting.load(Ordering::SeqCst));
    if too_slow_client {
        let secs = limits.body.min(limits.request).as_secs();
        let mut response = error_response(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
            &format!("the request body did not arrive within {secs} s"),
        );
        if http1 {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        return response;
    }
    match answered {
        Ok(response) => response,
        Err(_) => {
            let secs = limits.request.as_secs();
            tracing::warn!(timeout_secs = secs, "a request took too long; answered 503");
            let mut response = error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                &format!(
                    "no answer within {secs} s (the engine store may be slow or unreachable); \
                     the request may or may not have taken effect; try again later"
                ),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}

/// What became of a request body, for [`bound_requests`].
#[derive(Default)]
struct BodyWatch {
    /// Its deadline passed while the handler was waiting for more of it.
    timed_out: AtomicBool,
    /// The handler is waiting for more of it.
    waiting: AtomicBool,
}

/// A request body that fails once its deadline has passed with data still
/// missing. The timer is set only when the handler first has to wait, so a
/// body that is already in (or empty) costs none.
struct DeadlineBody {
    inner: Body,
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
    watch: Arc<BodyWatch>,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        // What has arrived is taken even past the deadline: only waiting
        // for more is bounded.
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.watch.waiting.store(false, Ordering::SeqCst);
            return Poll::Ready(frame);
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_ready() {
            this.watch.waiting.store(false, Ordering::SeqCst);
            this.watch.timed_out.store(true, Ordering::SeqCst);
            return Poll::Ready(Some(Err(axum::Error::new(
                "the request body did not arrive in time",
            ))));
        }
        this.watch.waiting.store(true, Ordering::SeqCst);
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// How long the monitor's HTTP server waits for a request head (see
/// [`serve`]). A head is a few hundred bytes; probes and scrapers send
/// theirs at once, and they come back every few seconds at most.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// After a shutdown signal, open connections have this long to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `router` over plain HTTP/1.1 on `listener` until `shutdown`
/// resolves, then lets requests under way finish. A connection must send
/// each request head within `header_read_timeout`, counted from its start
/// and then from the end of each answer: so that is also how long an idle
/// keep-alive connection stays open. Bound the requests themselves with
/// [`bound_requests`] in `router`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(err) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(%err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let conn = builder.serve_connection(TokioIo::new(tcp), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(%err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; closing them");
    }
}
