//! The deadlines of one connection, from what it reads and the requests it
//! carries: a connection that overruns one is closed.
//!
//! hyper's own HTTP/1 header timeout is not enough here: it does not run
//! while the auto builder is still telling HTTP/1 from HTTP/2 (a client that
//! sends nothing, or part of the HTTP/2 preface, is held forever), nor for
//! HTTP/2 at all, and it bounds an idle keep-alive connection by the header
//! timeout, while a longer idle limit is wanted.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{Request, Response, Version};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// The HTTP/2 connection preface: `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`.
const PREFACE_LEN: u64 = 24;

/// What a connection must do in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Deadlines {
    /// The REST API: the TLS handshake and the first request's head within
    /// `head` of the accept; each later HTTP/1 request's head within `head`
    /// of its first byte; no more than `idle` without a request under way.
    Requests { head: Duration, idle: Duration },
    /// The gateway: the TLS handshake and the HTTP/2 preface within this of
    /// the accept. After that, streams may be idle as long as they like
    /// (a long query); HTTP/2 keep-alive pings find dead peers.
    Setup(Duration),
}

/// Where a connection is, as far as its deadlines go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Accepted, with no request (REST) or no preface (gateway) yet.
    Opening,
    /// Idle, then bytes came: an HTTP/1 request head is on its way.
    Head,
    /// This many requests under way.
    Busy(usize),
    /// No request under way.
    Idle,
    /// The gateway's connection is set up: no deadline any more.
    Open,
}

struct State {
    phase: Phase,
    /// When `phase` began.
    since: Instant,
    /// Bytes read so far, while they matter.
    read: u64,
    http2: bool,
}

/// One connection's deadlines; shared by its IO ([`Watched`]), its service
/// ([`Tracked`]) and the task that enforces them ([`Clock::overrun`]).
pub(super) struct Clock {
    deadlines: Deadlines,
    state: Mutex<State>,
    /// Whether reads still matter; spares an open gateway connection a lock
    /// per read.
    reads_matter: AtomicBool,
}

impl Clock {
    pub(super) fn new(deadlines: Deadlines, accepted: Instant) -> Arc<Self> {
        Arc::new(Self {
            deadlines,
            state: Mutex::new(State {
                phase: Phase::Opening,
                since: accepted,
                read: 0,
                http2: false,
            }),
            reads_matter: AtomicBool::new(true),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent whatever panicked while holding it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn read(&self, bytes: usize) {
        if !self.reads_matter.load(Ordering::Relaxed) {
            return;
        }
        let mut state = self.state();
        state.read += bytes as u64;
        match (self.deadlines, state.phase) {
            (Deadlines::Setup(_), Phase::Opening) if state.read >= PREFACE_LEN => {
                state.phase = Phase::Open;
                self.reads_matter.store(false, Ordering::Relaxed);
            }
            // An HTTP/2 client sends frames between requests (pings,
            // window updates); only HTTP/1 bytes start a request head.
            (Deadlines::Requests { .. }, Phase::Idle) if !state.http2 => {
                state.phase = Phase::Head;
                state.since = Instant::now();
            }
            _ => {}
        }
    }

    fn request_started(self: &Arc<Self>, version: Version) -> RequestGuard {
        let mut state = self.state();
        state.http2 = version == Version::HTTP_2;
        state.phase = match state.phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            Phase::Open => Phase::Open,
            _ => Phase::Busy(1),
        };
        RequestGuard(Arc::clone(self))
    }

    fn request_ended(&self) {
        let mut state = self.state();
        match state.phase {
            Phase::Busy(1) => {
                state.phase = Phase::Idle;
                state.since = Instant::now();
            }
            Phase::Busy(n) => state.phase = Phase::Busy(n - 1),
            _ => {}
        }
    }

    /// The current deadline and what it bounds; `None` while none runs.
    fn deadline(&self) -> Option<(Instant, &'static str)> {
        let state = self.state();
        match (self.deadlines, state.phase) {
            (Deadlines::Setup(setup), Phase::Opening) => {
                Some((state.since + setup, "TLS handshake or HTTP/2 preface"))
            }
            (Deadlines::Requests { head, .. }, Phase::Opening | Phase::Head) => {
                Some((state.since + head, "request head"))
            }
            (Deadlines::Requests { idle, .. }, Phase::Idle) => Some((state.since + idle, "idle")),
            _ => None,
        }
    }

    /// Resolves, with what took too long, once the connection has overrun
    /// a deadline; never for a gateway connection that is set up.
    pub(super) async fn overrun(&self) -> &'static str {
        // While requests are under way no deadline runs; look again this
        // often, so that the idle deadline counts from the last answer.
        let recheck = match self.deadlines {
            Deadlines::Requests { head, idle } => Some(head.min(idle)),
            Deadlines::Setup(_) => None,
        };
        loop {
            match (self.deadline(), recheck) {
                (Some((at, what)), _) if Instant::now() >= at => return what,
                (Some((at, _)), _) => tokio::time::sleep_until(at).await,
                (None, Some(recheck)) => tokio::time::sleep(recheck).await,
                (None, None) => std::future::pending().await,
            }
        }
    }
}

/// Ends its request when dropped: answered, or given up.
struct RequestGuard(Arc<Clock>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// A connection's IO, telling its [`Clock`] what it reads.
pub(super) struct Watched<T> {
    pub(super) io: T,
    pub(super) clock: Arc<Clock>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            self.clock.read(read);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A connection's service, telling its [`Clock`] when requests start and end.
#[derive(Clone)]
pub(super) struct Tracked<S> {
    pub(super) service: S,
    pub(super) clock: Arc<Clock>,
}

impl<S, R, B> hyper::service::Service<Request<R>> for Tracked<S>
where
    S: hyper::service::Service<Request<R>, Response = Response<B>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<B>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, Infallible>> + Send>>;

    fn call(&self, request: Request<R>) -> Self::Future {
        let guard = self.clock.request_started(request.version());
        let answer = self.service.call(request);
        Box::pin(async move {
            let answered = answer.await;
            drop(guard);
            answered
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(75);
    const REST: Deadlines = Deadlines::Requests {
        head: HEAD,
        idle: IDLE,
    };

    /// What is due, and in about how many whole seconds.
    fn due(clock: &Clock) -> Option<(u64, &'static str)> {
        clock.deadline().map(|(at, what)| {
            let left = at.saturating_duration_since(Instant::now());
            ((left + Duration::from_millis(500)).as_secs(), what)
        })
    }

    #[tokio::test]
    async fn a_rest_connection_has_a_head_deadline_until_its_first_request() {
        let accepted = Instant::now() - Duration::from_secs(4);
        let clock = Clock::new(REST, accepted);
        // Bytes of a first head do not restart the clock: it counts from the accept.
        clock.read(100);
        assert_eq!(due(&clock), Some((6, "request head")));
        let guard = clock.request_started(Version::HTTP_11);
        assert_eq!(
            due(&clock),
            None,
            "no deadline while a request is under way"
        );
        clock.read(100);
        assert_eq!(due(&clock), None, "a body is the request's own business");
        drop(guard);
        assert_eq!(due(&clock), Some((75, "idle")));
        // The next request's first bytes start its head's deadline.
        clock.read(1);
        assert_eq!(due(&clock), Some((10, "request head")));
    }

    #[tokio::test]
    async fn idle_begins_when_the_last_of_concurrent_requests_ends() {
        let clock = Clock::new(REST, Instant::now());
        let first = clock.request_started(Version::HTTP_2);
        let second = clock.request_started(Version::HTTP_2);
        drop(first);
        assert_eq!(due(&clock), None);
        drop(second);
        assert_eq!(due(&clock), Some((75, "idle")));
        // HTTP/2 frames between requests (pings) are not a request head.
        clock.read(17);
        assert_eq!(due(&clock), Some((75, "idle")));
    }

    #[tokio::test]
    async fn a_gateway_connection_has_a_deadline_only_until_its_preface() {
        let clock = Clock::new(Deadlines::Setup(HEAD), Instant::now());
        clock.read(23);
        assert_eq!(due(&clock), Some((10, "TLS handshake or HTTP/2 preface")));
        clock.read(1);
        assert_eq!(due(&clock), None);
        drop(clock.request_started(Version::HTTP_2));
        assert_eq!(due(&clock), None, "streams may idle as long as they like");
        assert!(
            tokio::time::timeout(Duration::from_millis(200), clock.overrun())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn overrun_resolves_an_idle_timeout_after_the_last_answer() {
        let (head, idle) = (Duration::from_millis(100), Duration::from_millis(300));
        let clock = Clock::new(Deadlines::Requests { head, idle }, Instant::now());
        let guard = clock.request_started(Version::HTTP_11);
        let answered = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(250)).await;
            drop(guard);
            Instant::now()
        });
        let what = clock.overrun().await;
        let idle_for = answered.await.unwrap().elapsed();
        assert_eq!(what, "idle");
        // Not before the idle time; late by at most the recheck (`head`).
        assert!(idle_for >= idle, "{idle_for:?}");
        assert!(
            idle_for < idle + head + Duration::from_millis(100),
            "{idle_for:?}"
        );
    }
}
