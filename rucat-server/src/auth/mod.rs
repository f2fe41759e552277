//! Who is asking: identity providers, ending in a [`rucat_core::Identity`].
//!
//! With an `auth_provider` configured ([`AuthProviderConfig`]), every API
//! request and every gateway RPC must prove an identity to one of the
//! providers configured, tried in this order:
//!
//! 1. a trusted user header ([`header`]), from an authenticating proxy's
//!    addresses only; the header from anywhere else is refused outright;
//! 2. `Authorization: Basic`: the seed's static admin, then the static
//!    users ([`users`], argon2 or bcrypt hashes);
//! 3. `Authorization: Bearer`: the static admin's token, the static users'
//!    tokens (by SHA-256), then an OIDC / JWT token ([`jwt`]).
//!
//! Failed attempts are counted ([`AuthMetrics`]) and limited per source
//! ([`limit`]): past the limit, a source is answered 429 without its
//! credentials being checked. Secrets are never logged, and never compared
//! in a way whose timing depends on how much of a guess was right.
//!
//! Without an `auth_provider` everyone is [`Identity::anonymous`], an admin,
//! as everyone could do everything before identities existed.

mod check;
mod config;
pub mod hash;
mod header;
mod jwt;
mod limit;
mod metrics;
mod users;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, header::AUTHORIZATION};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rucat_core::Identity;
use tracing::debug;

use crate::api::ApiError;

use check::{Credential, StaticAdmin};
use header::TrustedHeader;
use jwt::{JwtError, JwtProvider};
use limit::FailureLimiter;
use metrics::Outcome;
use users::{Checked, StaticUsers};

pub use config::{
    Audience, AuthProviderConfig, FailedLoginsConfig, HeaderKey, HttpUrl, JwtAlgorithm, JwtConfig,
    PasswordHash, StaticAuthProviderConfig, StaticUserConfig, StaticUsersConfig, TokenDigest,
    TrustedHeaderConfig, TrustedSources,
};
pub use metrics::AuthMetrics;
pub use rucat_core::Secret;

/// The seed's name for what checks credentials, kept so that embedding
/// programs and tests written against it still build.
pub type StaticAuth = Authenticator;

/// Why a request was not authenticated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// No credentials at all.
    #[error("authentication required")]
    Missing,
    /// Wrong or unusable credentials.
    #[error("invalid credentials")]
    Invalid,
    /// The trusted user header came from an address that is not the proxy's.
    #[error("identity header from an untrusted source")]
    UntrustedSource,
    /// A JWT could not be checked: the issuer's keys cannot be fetched.
    #[error("the identity provider is unavailable")]
    Unavailable,
    /// The source has failed too often; it may try again after `retry_after`.
    #[error("too many failed logins from your address; retry in {} s", retry_secs(*.retry_after))]
    TooManyFailures { retry_after: Duration },
}

/// Whole seconds to wait, at least one, as `Retry-After` wants them.
fn retry_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl AuthFailure {
    /// Seconds to wait before trying again, for a limited source.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::TooManyFailures { retry_after } => Some(retry_secs(*retry_after).max(1)),
            _ => None,
        }
    }
}

/// Checks credentials against every configured provider. Cheap to clone:
/// clones share their providers, their failure limits and their metrics.
#[derive(Clone)]
pub struct Authenticator {
    providers: Arc<Providers>,
    limiter: Arc<FailureLimiter>,
    metrics: AuthMetrics,
}

struct Providers {
    admin: Option<StaticAdmin>,
    users: Option<StaticUsers>,
    jwt: Option<JwtProvider>,
    header: Option<TrustedHeader>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = &self.providers;
        f.debug_struct("Authenticator")
            .field("static_admin", &p.admin.is_some())
            .field("static_users", &p.users.is_some())
            .field("jwt", &p.jwt.is_some())
            .field("trusted_header", &p.header.is_some())
            .finish_non_exhaustive()
    }
}

impl From<AuthProviderConfig> for Authenticator {
    fn from(config: AuthProviderConfig) -> Self {
        Self::new(config)
    }
}

impl From<StaticAuthProviderConfig> for Authenticator {
    fn from(config: StaticAuthProviderConfig) -> Self {
        Self::new(config.into())
    }
}

impl Authenticator {
    /// The providers `config` enables. Nothing is fetched yet: a JWT
    /// issuer's keys are fetched when first needed, or by [`Authenticator::prefetch`].
    pub fn new(config: AuthProviderConfig) -> Self {
        Self {
            providers: Arc::new(Providers {
                admin: config.static_admin.map(StaticAdmin::from),
                users: config.static_users.map(StaticUsers::new),
                jwt: config.jwt.map(JwtProvider::new),
                header: config.trusted_header.map(TrustedHeader::new),
            }),
            limiter: Arc::new(FailureLimiter::new(config.failed_logins)),
            metrics: AuthMetrics::default(),
        }
    }

    /// Records attempts into `metrics` (see [`AuthMetrics::register`]).
    pub fn with_metrics(self, metrics: AuthMetrics) -> Self {
        Self { metrics, ..self }
    }

    /// Fetches a JWT issuer's keys now, if one is configured, so that a
    /// wrong `jwks_url` shows in the log at start. A failure is logged, not
    /// fatal: the issuer may come up later, and its keys are fetched then.
    pub async fn prefetch(&self) {
        if let Some(jwt) = &self.providers.jwt {
            jwt.prefetch().await;
        }
    }

    /// Whether Bearer tokens are accepted at all (for the challenge header
    /// and the OpenAPI document).
    pub fn offers_bearer(&self) -> bool {
        let p = &self.providers;
        p.admin.as_ref().is_some_and(StaticAdmin::offers_bearer)
            || p.users.as_ref().is_some_and(StaticUsers::offers_bearer)
            || p.jwt.is_some()
    }

    /// Whether HTTP Basic is accepted at all.
    pub fn offers_basic(&self) -> bool {
        let p = &self.providers;
        p.admin.is_some() || p.users.as_ref().is_some_and(StaticUsers::offers_basic)
    }

    /// The identity that `headers` prove, on a connection from `peer`
    /// (`None` when unknown: a trusted header is then never believed).
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
    ) -> Result<Identity, AuthFailure> {
        let p = &self.providers;
        let from_proxy = p.header.as_ref().filter(|h| h.present(headers));
        let authorization = headers.get(AUTHORIZATION);
        if from_proxy.is_none() && authorization.is_none() {
            return Err(AuthFailure::Missing);
        }
        let scheme = match (from_proxy, authorization) {
            (Some(_), _) => "trusted_header",
            (None, Some(value)) => check::credential(value.as_bytes()).scheme(),
            (None, None) => "other",
        };
        if let Err(retry_after) = self.limiter.check(peer, Instant::now()) {
            self.metrics.attempt(scheme, "none", Outcome::Limited);
            return Err(AuthFailure::TooManyFailures { retry_after });
        }
        let verdict = match (from_proxy, authorization) {
            (Some(trusted), _) => match trusted.identify(headers, peer) {
                Ok(identity) => Ok((identity, "trusted_header")),
                Err(header::Refused::UntrustedSource) => Err(AuthFailure::UntrustedSource),
                Err(header::Refused::Malformed) => Err(AuthFailure::Invalid),
            },
            (None, Some(value)) => self.check(check::credential(value.as_bytes())).await,
            (None, None) => Err(AuthFailure::Missing),
        };
        match verdict {
            Ok((identity, provider)) => {
                self.metrics.attempt(scheme, provider, Outcome::Success);
                Ok(identity)
            }
            Err(failure) => {
                let outcome = match failure {
                    AuthFailure::UntrustedSource => Outcome::UntrustedSource,
                    AuthFailure::Unavailable => Outcome::Unavailable,
                    _ => Outcome::Failure,
                };
                self.metrics.attempt(scheme, "none", outcome);
                // The issuer being down is not the client's failure.
                if failure != AuthFailure::Unavailable {
                    self.limiter.failed(peer, Instant::now());
                }
                debug!(scheme, ?peer, %failure, "authentication failed");
                Err(failure)
            }
        }
    }

    /// Checks an `Authorization` credential; on success, the identity and
    /// the provider that accepted it.
    async fn check(
        &self,
        credential: Credential<'_>,
    ) -> Result<(Identity, &'static str), AuthFailure> {
        let p = &self.providers;
        match credential {
            Credential::Basic { user, password } => {
                if let Some(identity) = p.admin.as_ref().and_then(|a| a.basic(&user, &password)) {
                    return Ok((identity, "static"));
                }
                let Some(users) = &p.users else {
                    return Err(AuthFailure::Invalid);
                };
                match users.basic(&user, &password).await {
                    Checked::Cached(identity) => {
                        self.metrics.password_check(true);
                        Ok((identity, "users"))
                    }
                    Checked::Verified(identity) => {
                        self.metrics.password_check(false);
                        Ok((identity, "users"))
                    }
                    Checked::Wrong => {
                        self.metrics.password_check(false);
                        Err(AuthFailure::Invalid)
                    }
                }
            }
            Credential::Bearer(token) => {
                if let Some(identity) = p.admin.as_ref().and_then(|a| a.bearer(token)) {
                    return Ok((identity, "static"));
                }
                if let Some(identity) = p.users.as_ref().and_then(|u| u.bearer(token)) {
                    return Ok((identity, "users"));
                }
                match &p.jwt {
                    Some(jwt) if JwtProvider::looks_like_jwt(token) => {
                        match jwt.verify(token).await {
                            Ok(identity) => Ok((identity, "jwt")),
                            Err(JwtError::Unavailable) => Err(AuthFailure::Unavailable),
                            Err(JwtError::Invalid(why)) => {
                                debug!(why, "JWT refused");
                                Err(AuthFailure::Invalid)
                            }
                        }
                    }
                    _ => Err(AuthFailure::Invalid),
                }
            }
            Credential::Malformed => Err(AuthFailure::Invalid),
        }
    }

    /// The API error for `failure`: 401 with the challenges, or 429.
    pub fn api_error(&self, failure: &AuthFailure) -> ApiError {
        match failure.retry_after_secs() {
            Some(retry_after_secs) => ApiError::TooManyFailedLogins { retry_after_secs },
            None => ApiError::Unauthorized {
                basic: self.offers_basic(),
                bearer: self.offers_bearer(),
            },
        }
    }
}

/// The peer of the connection a request came on, as the server's serving
/// loop records it ([`crate::serve`]).
pub fn peer_of<B>(request: &axum::http::Request<B>) -> Option<IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
}

/// Middleware: puts the caller's [`Identity`] into the request's
/// extensions (handlers take it as `Extension<Identity>`), or answers 401
/// with a challenge, or 429 with `Retry-After` for a source that failed too
/// often. Without an authenticator everyone is [`Identity::anonymous`].
pub async fn require_auth(
    State(auth): State<Option<Authenticator>>,
    mut req: Request,
    next: Next,
) -> Response {
    let identity = match &auth {
        None => Identity::anonymous(),
        Some(auth) => match auth.authenticate(req.headers(), peer_of(&req)).await {
            Ok(identity) => identity,
            Err(failure) => {
                debug!(method = %req.method(), path = req.uri().path(), %failure, "request refused");
                return auth.api_error(&failure).into_response();
            }
        },
    };
    req.extensions_mut().insert(identity);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use base64::Engine as _;

    fn authenticator(json: serde_json::Value) -> Authenticator {
        Authenticator::new(serde_json::from_value(json).unwrap())
    }

    fn basic(user: &str, password: &str) -> HeaderMap {
        let value = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {value}")).unwrap(),
        );
        headers
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        headers
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[tokio::test]
    async fn providers_are_tried_in_turn() {
        let auth = authenticator(serde_json::json!({
            "StaticAuthProviderConfig": {"username": "admin", "password": "pw", "bearer_token": "admin-token"},
            "StaticUsers": {"users": [{"name": "alice", "password_hash": users::tests::cheap_argon2("a-pass"),
                                       "token_sha256": hash::token_digest_hex("alice-token"), "groups": ["data"]}]},
            "TrustedHeader": {"user_header": "x-user", "trusted_sources": ["10.0.0.0/8"]}
        }));
        assert!(auth.offers_basic() && auth.offers_bearer());
        let from = ip("192.0.2.1");
        let admin = auth
            .authenticate(&basic("admin", "pw"), from)
            .await
            .unwrap();
        assert_eq!(admin, Identity::admin("admin"));
        assert_eq!(
            auth.authenticate(&bearer("admin-token"), from)
                .await
                .unwrap(),
            admin
        );
        let alice = Identity::user("alice", ["data"]);
        assert_eq!(
            auth.authenticate(&basic("alice", "a-pass"), from)
                .await
                .unwrap(),
            alice
        );
        assert_eq!(
            auth.authenticate(&bearer("alice-token"), from)
                .await
                .unwrap(),
            alice
        );
        assert_eq!(
            auth.authenticate(&HeaderMap::new(), from).await,
            Err(AuthFailure::Missing)
        );
        assert_eq!(
            auth.authenticate(&basic("alice", "pw"), from).await,
            Err(AuthFailure::Invalid)
        );
        // The proxy's header: believed from 10/8 only, whatever else comes with it.
        let mut proxied = basic("admin", "pw");
        proxied.insert("x-user", HeaderValue::from_static("carol"));
        let carol = auth.authenticate(&proxied, ip("10.0.0.5")).await.unwrap();
        assert_eq!(carol, Identity::user("carol", Vec::<String>::new()));
        assert_eq!(
            auth.authenticate(&proxied, from).await,
            Err(AuthFailure::UntrustedSource)
        );
        assert_eq!(
            auth.authenticate(&proxied, None).await,
            Err(AuthFailure::UntrustedSource)
        );
    }

    #[tokio::test]
    async fn failures_are_limited_per_source_and_counted() {
        let mut registry = prometheus_client::registry::Registry::default();
        let auth = authenticator(serde_json::json!({
            "StaticAuthProviderConfig": {"username": "admin", "password": "pw"},
            "failed_logins": {"max_failures": 3, "per_secs": 60}
        }))
        .with_metrics(AuthMetrics::register(&mut registry));
        let attacker = ip("192.0.2.66");
        for _ in 0..3 {
            assert_eq!(
                auth.authenticate(&basic("admin", "guess"), attacker).await,
                Err(AuthFailure::Invalid)
            );
        }
        // Now even the right password is refused unchecked.
        let limited = auth
            .authenticate(&basic("admin", "pw"), attacker)
            .await
            .unwrap_err();
        let secs = limited.retry_after_secs().unwrap();
        assert!((19..=20).contains(&secs), "{secs}");
        assert!(limited.to_string().contains("retry in 20 s"), "{limited}");
        // Missing credentials are no attempt: 401 still.
        assert_eq!(
            auth.authenticate(&HeaderMap::new(), attacker).await,
            Err(AuthFailure::Missing)
        );
        // Another source is not affected.
        assert!(
            auth.authenticate(&basic("admin", "pw"), ip("192.0.2.1"))
                .await
                .is_ok()
        );
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            r#"rucat_auth_attempts_total{scheme="basic",provider="none",result="failure"} 3"#,
            r#"rucat_auth_attempts_total{scheme="basic",provider="none",result="limited"} 1"#,
            r#"rucat_auth_attempts_total{scheme="basic",provider="static",result="success"} 1"#,
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        assert!(!text.contains("guess"));
        let error = auth.api_error(&limited).into_response();
        assert_eq!(error.status(), 429);
        assert_eq!(error.headers()["retry-after"], secs.to_string().as_str());
    }

    #[tokio::test]
    async fn an_unreachable_issuer_is_not_the_clients_failure() {
        let auth = authenticator(serde_json::json!({
            "Jwt": {"issuer": "i", "audience": "a", "jwks_url": "http://127.0.0.1:9/jwks"},
            "failed_logins": {"max_failures": 1}
        }));
        assert!(auth.offers_bearer() && !auth.offers_basic());
        let token = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsifQ.e30.c2ln";
        let from = ip("192.0.2.1");
        for _ in 0..3 {
            assert_eq!(
                auth.authenticate(&bearer(token), from).await,
                Err(AuthFailure::Unavailable)
            );
        }
        // Opaque tokens are no JWTs: plain failures, and limited.
        assert_eq!(
            auth.authenticate(&bearer("opaque"), from).await,
            Err(AuthFailure::Invalid)
        );
        assert!(matches!(
            auth.authenticate(&bearer("opaque"), from).await,
            Err(AuthFailure::TooManyFailures { .. })
        ));
    }
}
