//! Serving a hyper service on a listener, in plain text or TLS, until a
//! shutdown signal, then letting open connections finish their requests.
//! The REST API and the gateway both go through here, so they share one TLS
//! set-up, one shutdown behaviour and one way of bounding slow clients
//! ([`Timeouts`], enforced per connection by [`deadline`]). Every request
//! carries its connection's peer address as axum's
//! `ConnectInfo<SocketAddr>` in its extensions ([`WithPeer`]), for
//! authentication to tell where it came from.

mod deadline;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use rucat_monitor::http::RequestLimits;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use deadline::{Clock, Deadlines, Tracked, Watched};

/// A connection's byte stream: TCP, or TLS over it.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// After a shutdown signal, open connections have this long to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long clients may take; the server config's `http` object.
///
/// The defaults are far beyond what any working client needs, so only
/// stalled or malicious clients meet them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// A new connection's TLS handshake plus its first request head (REST)
    /// or HTTP/2 preface (gateway), from the accept; a later HTTP/1 request
    /// head, from its first byte. Default 10 s: a head is a few hundred
    /// bytes and a handshake a few round trips.
    pub header_read: Duration,
    /// REST: a request's whole body, from its head. Default 15 s.
    pub body_read: Duration,
    /// REST: the answer, from the request's head, its body included.
    /// Default 30 s.
    pub request: Duration,
    /// REST: a connection with no request under way is closed after this.
    /// Default 75 s: longer than the 60 s idle timeouts of common load
    /// balancers and ingress controllers, so that a proxy in front closes
    /// an idle connection first and never sends a request on one that rucat
    /// is closing.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let requests = RequestLimits::default();
        Self {
            header_read: Duration::from_secs(10),
            body_read: requests.body,
            request: requests.request,
            idle: Duration::from_secs(75),
        }
    }
}

impl Timeouts {
    /// What the API's [`rucat_monitor::http::bound_requests`] enforces.
    pub fn request_limits(&self) -> RequestLimits {
        RequestLimits {
            body: self.body_read,
            request: self.request,
        }
    }
}

/// How a listener speaks HTTP, and what its connections must do in time.
pub struct Protocol {
    builder: Builder<TokioExecutor>,
    deadlines: Deadlines,
}

impl Protocol {
    /// HTTP/1.1 and HTTP/2 (cleartext or by ALPN), for the REST API, with
    /// `timeouts`' head and idle deadlines on every connection (bound the
    /// requests themselves with `rucat_monitor::http::bound_requests`).
    pub fn http(timeouts: &Timeouts) -> Self {
        let mut builder = Builder::new(TokioExecutor::new());
        // The connection deadlines replace hyper's header timeout, which
        // would close idle connections at the head deadline.
        builder.http1().header_read_timeout(None);
        Self {
            builder,
            deadlines: Deadlines::Requests {
                head: timeouts.header_read,
                idle: timeouts.idle,
            },
        }
    }

    /// HTTP/2 only, with the given windows and largest frame, for gRPC. A
    /// connection must finish its TLS handshake and send the HTTP/2 preface
    /// within `setup`; after that it is never cut for being slow or idle
    /// (a query may run for hours), and keep-alive pings find dead peers.
    pub fn http2(
        stream_window: u32,
        connection_window: u32,
        max_frame: u32,
        setup: Duration,
    ) -> Self {
        let mut builder = Builder::new(TokioExecutor::new()).http2_only();
        builder
            .http2()
            .timer(TokioTimer::new())
            .initial_stream_window_size(stream_window)
            .initial_connection_window_size(connection_window)
            .max_frame_size(max_frame)
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10));
        Self {
            builder,
            deadlines: Deadlines::Setup(setup),
        }
    }
}

/// Serves `service` on `listener` until `shutdown` resolves, then drains.
pub async fn serve<S, B>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    protocol: Protocol,
    service: S,
    shutdown: impl Future<Output = ()>,
) where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let graceful = GracefulShutdown::new();
    let tls = tls.map(TlsAcceptor::from);
    let deadlines = protocol.deadlines;
    let builder = Arc::new(protocol.builder);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    warn!(%err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let accepted = tokio::time::Instant::now();
        let _ = tcp.set_nodelay(true);
        let (builder, service, tls, watcher) = (
            Arc::clone(&builder),
            service.clone(),
            tls.clone(),
            graceful.watcher(),
        );
        let clock = Clock::new(deadlines, accepted);
        tokio::spawn(async move {
            let served = async {
                let io: Box<dyn Io> = match tls {
                    None => Box::new(tcp),
                    Some(acceptor) => match acceptor.accept(tcp).await {
                        Ok(stream) => Box::new(stream),
                        Err(err) => return debug!(%peer, %err, "TLS handshake failed"),
                    },
                };
                let io = Watched {
                    io,
                    clock: Arc::clone(&clock),
                };
                let service = Tracked {
                    service: WithPeer { service, peer },
                    clock: Arc::clone(&clock),
                };
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
                if let Err(err) = watcher.watch(conn).await {
                    debug!(%peer, %err, "connection ended with an error");
                }
            };
            tokio::select! {
                () = served => {}
                what = clock.overrun() => debug!(%peer, what, "closing a connection that took too long"),
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("connections still open after {DRAIN_TIMEOUT:?}; closing them");
    }
}

/// A connection's service, giving each request the connection's peer
/// address as `ConnectInfo<SocketAddr>`, as axum's own server would: the
/// REST API's and the gateway's authentication read it to tell a trusted
/// proxy from anyone else, and to limit failed logins per source.
#[derive(Clone)]
pub struct WithPeer<S> {
    service: S,
    peer: SocketAddr,
}

impl<S, B> hyper::service::Service<Request<B>> for WithPeer<S>
where
    S: hyper::service::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, mut request: Request<B>) -> Self::Future {
        request.extensions_mut().insert(ConnectInfo(self.peer));
        self.service.call(request)
    }
}
