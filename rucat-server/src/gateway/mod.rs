//! Rucat Connect: the Spark Connect gateway in front of every engine.
//!
//! Users never reach an engine directly. Each start of an engine gets its
//! own secret ([`rucat_core::token`]), and the engine admits only clients
//! that present it; the gateway is the one client that knows it. A user's
//! Spark Connect client talks to the gateway, naming the engine in its
//! metadata (`sc://HOST:PORT/;x-rucat-engine-id=<id>`, which a stock client
//! sends as it is) and, when auth is configured, its rucat credential
//! (`;token=<bearer token>`). For every RPC the gateway:
//!
//! 1. authenticates the caller with the same [`Authenticator`] as the REST
//!    API (any provider: Basic, tokens, JWTs, a trusted proxy's header);
//! 2. reads the engine's record from the store ([`route`]): it must exist
//!    and be one the caller may see ([`Identity::may_see`]; any other is
//!    answered exactly as an unknown engine, so ids do not leak), be
//!    Running, on an engine kind that can check a token. An engine stopped
//!    for idleness (or with `auto_resume`) is restarted and the RPC held
//!    until it runs ([`resume`]);
//! 3. swaps the user's credential for the engine's token and forwards the
//!    RPC over one shared HTTP/2 connection per engine ([`proxy`]),
//!    streaming both ways with end-to-end flow control;
//! 4. counts it ([`Activity`]): open streams, RPCs, bytes, last RPC, kept
//!    in memory and written to the engine's record sparsely ([`persist`]),
//!    so that monitors stop only engines no server sees in use.
//!
//! Everything it refuses is a gRPC status with a message that says what to
//! do ([`route::Refusal`]). The gateway has its own port, so that gRPC load
//! balancers and ingresses can be pointed at it without touching the REST
//! API; [`Gateway::serve`] runs it, and [`Gateway::handle`] lets an
//! embedding program mount it in a server of its own.

mod activity;
mod advertised;
mod persist;
mod proxy;
mod resume;
pub mod route;
mod status;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::Request;
use http_body::Body;
use rucat_core::{EngineId, Engines, Identity, Store};
use serde::Deserialize;
use tokio::net::TcpListener;
use tracing::{Instrument, debug, info_span, warn};

use crate::auth::{self, Authenticator};
use crate::serve::{self, Protocol, Timeouts};

pub use activity::{Activity, ActivitySnapshot, GatewayMetrics};
pub use advertised::Advertised;
pub use proxy::{BoxError, GatewayBody, GatewayResponse};
pub use route::{ENGINE_ID_KEY, Refusal};
pub use status::Code;

use activity::Direction;

/// `"gateway": {...}` in the server's config.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Where the gateway listens; default `127.0.0.1:15002`.
    pub listen: Option<SocketAddr>,
    /// `host:port` that users reach the gateway at, as shown in engine
    /// endpoints; default: derived from `listen`. Set it when the server is
    /// behind a load balancer, an ingress or a port mapping.
    pub advertised_address: Option<String>,
}

/// Spark Connect's own port, so `sc://host` without a port reaches rucat.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    15002,
));

/// The gateway; cheap to clone, every clone serves the same engines.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
    /// How long [`Gateway::serve`] gives a connection to finish its TLS
    /// handshake and send the HTTP/2 preface.
    setup_timeout: Duration,
    /// How often, at most, an engine's use is written to the store.
    activity_interval: Duration,
    /// How long an RPC for a resuming engine is held.
    resume_wait: Duration,
}

/// How long an RPC for a resuming engine is held unless told otherwise.
pub const DEFAULT_RESUME_WAIT: Duration = Duration::from_secs(300);

struct Inner {
    store: Arc<dyn Store>,
    /// Restarts engines for the RPCs that resume them, as their users.
    engines: Engines,
    auth: Option<Authenticator>,
    activity: Activity,
    client: proxy::EngineClient,
    routes: HashMap<String, SocketAddr>,
}

impl Gateway {
    /// A gateway to the engines of `engines` (whose quotas hold for the
    /// restarts of resumes, and whose idle policy's activity interval is
    /// how often use is written), admitting clients by `auth` (without,
    /// everyone is [`Identity::anonymous`], an admin), and recording into
    /// `activity`. Requests should carry their connection's peer as
    /// `ConnectInfo<SocketAddr>` ([`Gateway::serve`] adds it): a trusted
    /// proxy's header is believed only with it.
    pub fn new(engines: Engines, auth: Option<Authenticator>, activity: Activity) -> Self {
        let activity_interval = engines.idle_policy().activity_interval;
        Self {
            inner: Arc::new(Inner {
                store: Arc::clone(engines.store()),
                engines,
                auth,
                activity,
                client: proxy::engine_client(),
                routes: HashMap::new(),
            }),
            setup_timeout: Timeouts::default().header_read,
            activity_interval,
            resume_wait: DEFAULT_RESUME_WAIT,
        }
    }

    /// Holds an RPC for a resuming engine at most `wait` (default
    /// [`DEFAULT_RESUME_WAIT`]) before answering UNAVAILABLE.
    pub fn with_resume_wait(self, wait: Duration) -> Self {
        Self {
            resume_wait: wait,
            ..self
        }
    }

    /// Reaches engines somewhere other than the address their resource
    /// manager reports: `routes` maps a reported `host:port` (e.g. a
    /// Kubernetes service name) to where this gateway finds it, for a
    /// gateway that does not share the engines' network (behind
    /// port-forwards or node ports, or in tests).
    pub fn with_routes(self, routes: HashMap<String, SocketAddr>) -> Self {
        let inner = &self.inner;
        Self {
            inner: Arc::new(Inner {
                store: Arc::clone(&inner.store),
                engines: inner.engines.clone(),
                auth: inner.auth.clone(),
                activity: inner.activity.clone(),
                client: inner.client.clone(),
                routes,
            }),
            ..self
        }
    }

    /// Gives connections `timeout` to finish their TLS handshake and send
    /// the HTTP/2 preface (default: [`Timeouts`]' `header_read`); a
    /// connection that is set up is never cut for being idle.
    pub fn with_setup_timeout(self, timeout: Duration) -> Self {
        Self {
            setup_timeout: timeout,
            ..self
        }
    }

    /// What this gateway has seen of each engine's use.
    pub fn activity(&self) -> &Activity {
        &self.inner.activity
    }

    /// Writes the use this gateway sees of engines to the store, sparsely
    /// (see [`persist`]), until `shutdown` resolves. [`Gateway::serve`]
    /// runs it; a program that mounts [`Gateway::handle`] itself runs it
    /// beside, or no engine it serves is known to be in use.
    pub async fn write_activity(&self, shutdown: impl Future<Output = ()>) {
        persist::write_activity(
            Arc::clone(&self.inner.store),
            self.inner.activity.clone(),
            self.activity_interval,
            shutdown,
        )
        .await;
    }

    /// Serves the gateway on `listener` (over TLS with `tls`, which should
    /// offer ALPN `h2`) until `shutdown` resolves, writing engines' use as
    /// [`Gateway::write_activity`]; RPCs under way then have a while to
    /// finish.
    pub async fn serve(
        self,
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        shutdown: impl Future<Output = ()>,
    ) {
        let (stop_writer, writer_stopped) = tokio::sync::oneshot::channel::<()>();
        let writer = {
            let gateway = self.clone();
            tokio::spawn(async move {
                gateway
                    .write_activity(async {
                        let _ = writer_stopped.await;
                    })
                    .await;
            })
        };
        self.serve_rpcs(listener, tls, shutdown).await;
        let _ = stop_writer.send(());
        let _ = writer.await;
    }

    async fn serve_rpcs(
        self,
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        shutdown: impl Future<Output = ()>,
    ) {
        let protocol = Protocol::http2(
            proxy::STREAM_WINDOW,
            proxy::CONNECTION_WINDOW,
            proxy::MAX_FRAME,
            self.setup_timeout,
        );
        let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
            let gateway = self.clone();
            async move { Ok::<_, Infallible>(gateway.handle(request).await) }
        });
        serve::serve(listener, tls, protocol, service, shutdown).await;
    }

    /// Answers one RPC: forwards it to its engine, or refuses it with a gRPC status.
    pub async fn handle<B>(&self, request: Request<B>) -> GatewayResponse
    where
        B: Body<Data = bytes::Bytes> + Unpin + Send + 'static,
        B::Error: Into<BoxError>,
    {
        match self.forward(request).await {
            Ok(response) => response,
            Err(refusal) => {
                debug!(%refusal, "RPC refused");
                self.inner.activity.refused(refusal.kind());
                status::response(refusal.code(), &refusal.to_string())
            }
        }
    }

    async fn forward<B>(&self, request: Request<B>) -> Result<GatewayResponse, Refusal>
    where
        B: Body<Data = bytes::Bytes> + Unpin + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let headers = request.headers();
        if !route::is_grpc(headers) {
            return Err(Refusal::NotGrpc);
        }
        let identity = match &self.inner.auth {
            None => Identity::anonymous(),
            Some(auth) => auth.authenticate(headers, auth::peer_of(&request)).await?,
        };
        let id = route::engine_id(headers)?;
        let record = self.running(&identity, &id).await?;
        let mut upstream = route::upstream(&record)?;
        if let Some(address) = self.inner.routes.get(&upstream.authority) {
            upstream.authority = address.to_string();
        }
        let request = proxy::upstream_request(request, &id, &upstream)?;
        let stream = self.inner.activity.rpc_started(&id);
        let request = request.map(|body| proxy::counted(body, &stream, Direction::ToEngine));
        let response = self
            .inner
            .client
            .request(request)
            .instrument(info_span!("engine", id = %id))
            .await
            .map_err(|err| unreachable(&id, &err))?;
        Ok(response.map(|body| proxy::counted(body, &stream, Direction::ToClient)))
    }
}

fn unreachable(id: &EngineId, err: &hyper_util::client::legacy::Error) -> Refusal {
    let why = if err.is_connect() {
        "cannot connect to it".to_owned()
    } else {
        // The source says more than the client error's own text.
        std::error::Error::source(err).map_or_else(|| err.to_string(), ToString::to_string)
    };
    warn!(engine = %id, %why, "engine unreachable");
    Refusal::Unreachable {
        id: id.clone(),
        why,
    }
}
