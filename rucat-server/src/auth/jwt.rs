//! OIDC / JWT bearer tokens: a token is accepted if it is signed by one of
//! the issuer's published keys (its JWKS) with an allowed algorithm, comes
//! from the configured issuer (`iss`), is meant for rucat (`aud`) and has
//! not expired (`exp`, and `nbf` if present, with a small leeway for clock
//! skew). The user comes from a configurable claim, the groups from another.
//!
//! The keys are fetched over HTTP(S) when first needed and kept
//! ([`Jwks`]): fetched again every `jwks_refresh_secs` in the background,
//! and at once when a token names a key not seen yet (an issuer rotating
//! its keys publishes the new one before it signs with it), but no more
//! often than every `jwks_min_refetch_secs`, so that tokens naming made-up
//! keys cannot turn rucat against the issuer. A key the issuer no longer
//! publishes is forgotten with the next fetch.
//!
//! A token that passed the check is remembered for up to a minute
//! ([`cache`]): the signature check (RSA by default) is most of what a
//! request with a JWT costs, and clients send the same token on every
//! request until it expires. A remembered token is still refused once
//! expired, and all are forgotten when the issuer's keys change.

mod cache;

use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::http::{Request, StatusCode, Uri, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rucat_core::{Identity, Role};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tracing::{debug, info, warn};

use super::config::JwtConfig;

/// How long one fetch of the keys may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest JWKS read: a key set is a few kilobytes.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Why a token was not accepted.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum JwtError {
    /// The token is bad: the reason is for the server's debug log, never
    /// the token.
    #[error("{0}")]
    Invalid(&'static str),
    /// The token cannot be checked now: no key has ever been fetched.
    #[error("the issuer's keys cannot be fetched")]
    Unavailable,
}

pub(crate) struct JwtProvider {
    issuer: String,
    audience: Vec<String>,
    algorithms: Vec<Algorithm>,
    user_claim: String,
    groups_claim: String,
    admin_users: BTreeSet<String>,
    admin_groups: BTreeSet<String>,
    leeway: u64,
    keys: Arc<Jwks>,
}

impl JwtProvider {
    pub(crate) fn new(config: JwtConfig) -> Self {
        Self {
            issuer: config.issuer,
            audience: config.audience.0,
            algorithms: config
                .algorithms
                .iter()
                .map(|a| a.to_jsonwebtoken())
                .collect(),
            user_claim: config.user_claim,
            groups_claim: config.groups_claim,
            admin_users: config.admin_users,
            admin_groups: config.admin_groups,
            leeway: config.leeway_secs,
            keys: Arc::new(Jwks::new(
                config.jwks_url.0,
                Duration::from_secs(config.jwks_refresh_secs),
                Duration::from_secs(config.jwks_min_refetch_secs),
            )),
        }
    }

    /// Whether `token` has a JWT's shape (three base64url parts, the first
    /// a JSON object), so that other opaque tokens are not reported as
    /// broken JWTs.
    pub(crate) fn looks_like_jwt(token: &str) -> bool {
        token.starts_with("eyJ") && token.split('.').count() == 3
    }

    /// Fetches the keys now, so that the first request need not wait and a
    /// wrong `jwks_url` shows in the log at start.
    pub(crate) async fn prefetch(&self) {
        self.keys.fetch_if_due(None).await;
    }

    /// The identity `token` proves: from the cache of recently verified
    /// tokens if there, else by the full check, whose success is cached.
    pub(crate) async fn verify(&self, token: &str) -> Result<Identity, JwtError> {
        let cache_key = self.keys.verified.key(token);
        let unix_now = jsonwebtoken::get_current_timestamp();
        let cached = self
            .keys
            .verified
            .get(&cache_key, Instant::now(), unix_now, self.leeway);
        if let Some(identity) = cached {
            return Ok(identity);
        }
        let checked = Instant::now();
        // Fails for `alg: none` too: jsonwebtoken has no such algorithm.
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| JwtError::Invalid("malformed token or unknown algorithm"))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(JwtError::Invalid("algorithm not allowed"));
        }
        let (candidates, generation) = self.keys.find(header.kid.as_deref(), header.alg).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&self.audience);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        let mut why = JwtError::Invalid("no key for the token");
        for key in &candidates {
            match jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation) {
                Ok(data) => {
                    let identity = self.identity(&data.claims)?;
                    // Only whole-second times are cached: jsonwebtoken rounds
                    // fractional ones, which a hit would have to copy.
                    let exp = data.claims.get("exp").and_then(Value::as_u64);
                    let nbf = data.claims.get("nbf").map(Value::as_u64);
                    if let (Some(exp), None | Some(Some(_))) = (exp, nbf) {
                        let entry = cache::Entry {
                            identity: identity.clone(),
                            exp,
                            nbf: nbf.flatten(),
                        };
                        self.keys
                            .verified
                            .insert(cache_key, entry, generation, checked);
                    }
                    return Ok(identity);
                }
                Err(err) => why = JwtError::Invalid(reason(err.kind())),
            }
        }
        Err(why)
    }

    /// The identity the claims of a valid token name.
    fn identity(&self, claims: &Map<String, Value>) -> Result<Identity, JwtError> {
        let name = claims
            .get(&self.user_claim)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .ok_or(JwtError::Invalid("no user claim"))?
            .to_owned();
        let groups: BTreeSet<String> = match claims.get(&self.groups_claim) {
            Some(Value::String(group)) => [group.clone()].into(),
            Some(Value::Array(groups)) => groups
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => BTreeSet::new(),
        };
        let admin = self.admin_users.contains(&name) || !self.admin_groups.is_disjoint(&groups);
        Ok(Identity {
            name,
            role: if admin { Role::Admin } else { Role::User },
            groups,
        })
    }
}

fn reason(kind: &jsonwebtoken::errors::ErrorKind) -> &'static str {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::InvalidSignature => "bad signature",
        K::ExpiredSignature => "expired",
        K::ImmatureSignature => "not valid yet (nbf)",
        K::InvalidIssuer => "wrong issuer",
        K::InvalidAudience => "wrong audience",
        K::MissingRequiredClaim(_) => "missing exp, iss or aud",
        K::InvalidAlgorithm => "algorithm does not match the key",
        _ => "malformed token",
    }
}

/// A key of the issuer's.
#[derive(Clone)]
struct Key {
    id: Option<String>,
    /// The algorithm the JWKS restricts the key to, if it says.
    algorithm: Option<Algorithm>,
    key: DecodingKey,
    /// The SHA-256 of the key's JWK, to tell whether a fetch changed the
    /// key set.
    digest: [u8; 32],
}

#[derive(Default)]
struct KeySet {
    keys: Vec<Key>,
    /// When keys were last fetched successfully.
    fetched: Option<Instant>,
    /// When a fetch last started.
    attempted: Option<Instant>,
    /// Counts the changes of `keys`, so that a token checked with keys
    /// since replaced is not cached.
    generation: u64,
}

type JwksClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// An HTTP(S) client trusting the system's CA certificates.
fn client(url: &Uri) -> Result<JwksClient, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let tls = match builder.with_provider_and_native_roots(Arc::clone(&provider)) {
        Ok(tls) => tls,
        Err(err) => {
            // Only https:// needs them: a fetch over it then fails and says why.
            if url.scheme_str() == Some("https") {
                warn!(%err, "no trusted CA certificates found for fetching the JWKS");
            }
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("cannot set up TLS: {e}"))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
        }
    };
    let connector = tls.https_or_http().enable_http1().build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// The issuer's keys, fetched from its JWKS URL and kept.
pub(crate) struct Jwks {
    url: Uri,
    /// An error if no TLS client could be set up, said by every fetch.
    client: Result<JwksClient, String>,
    refresh: Duration,
    min_refetch: Duration,
    set: RwLock<KeySet>,
    /// One fetch at a time: requests that find the keys missing while a
    /// fetch runs wait for it instead of fetching again.
    fetching: tokio::sync::Mutex<()>,
    /// Tokens recently verified with these keys, forgotten when they change.
    verified: cache::Verified,
}

impl Jwks {
    fn new(url: Uri, refresh: Duration, min_refetch: Duration) -> Self {
        Self {
            client: client(&url),
            url,
            refresh,
            min_refetch,
            set: RwLock::new(KeySet::default()),
            fetching: tokio::sync::Mutex::new(()),
            verified: cache::Verified::new(cache::VERIFIED_CAPACITY, cache::VERIFIED_TTL),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, KeySet> {
        // Writers replace the set whole: a poisoned one is still consistent.
        self.set.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, KeySet> {
        self.set.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The keys that may have signed a token with `kid` and `alg`, and the
    /// generation of the key set they come from.
    async fn find(
        self: &Arc<Self>,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<(Vec<DecodingKey>, u64), JwtError> {
        let started = Instant::now();
        let (found, stale, generation) = self.lookup(kid, alg);
        if !found.is_empty() {
            if stale {
                // Refreshed in the background; the keys at hand still serve.
                let jwks = Arc::clone(self);
                tokio::spawn(async move { jwks.fetch_if_due(None).await });
            }
            return Ok((found, generation));
        }
        // A key not seen yet: the issuer may have rotated its keys.
        self.fetch_if_due(Some(started)).await;
        let (found, _, generation) = self.lookup(kid, alg);
        if !found.is_empty() {
            return Ok((found, generation));
        }
        if self.read().fetched.is_none() {
            Err(JwtError::Unavailable)
        } else {
            Err(JwtError::Invalid(
                "signed by a key the issuer does not publish",
            ))
        }
    }

    /// The matching keys, whether the set is due for a refresh, and its
    /// generation.
    fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> (Vec<DecodingKey>, bool, u64) {
        let set = self.read();
        let found = set
            .keys
            .iter()
            .filter(|key| kid.is_none() || key.id.as_deref() == kid)
            .filter(|key| key.algorithm.is_none_or(|a| a == alg))
            .map(|key| key.key.clone())
            .collect();
        let stale = set.fetched.is_none_or(|at| at.elapsed() >= self.refresh);
        (found, stale, set.generation)
    }

    /// Fetches the keys unless a fetch started less than `min_refetch` ago
    /// or (with `after`) since `after`, when the caller's need has been
    /// seen to already.
    async fn fetch_if_due(&self, after: Option<Instant>) {
        let _one = self.fetching.lock().await;
        {
            let mut set = self.write();
            if let Some(attempted) = set.attempted {
                if after.is_some_and(|after| attempted >= after)
                    || attempted.elapsed() < self.min_refetch
                {
                    return;
                }
                if after.is_none() && set.fetched.is_some_and(|at| at.elapsed() < self.refresh) {
                    return;
                }
            }
            set.attempted = Some(Instant::now());
        }
        match tokio::time::timeout(FETCH_TIMEOUT, self.fetch()).await {
            Ok(Ok(keys)) => {
                info!(url = %self.url, keys = keys.len(), "fetched the JWT issuer's keys");
                self.install(keys);
            }
            Ok(Err(why)) => warn!(url = %self.url, %why, "cannot fetch the JWT issuer's keys"),
            Err(_) => {
                warn!(url = %self.url, "cannot fetch the JWT issuer's keys: timed out after {FETCH_TIMEOUT:?}")
            }
        }
    }

    /// Replaces the keys with freshly fetched ones. If they differ, the
    /// cache of verified tokens is cleared (under the set's lock, so no
    /// request sees the new keys with the old cache), so that a key the
    /// issuer dropped stops working now, cached or not.
    fn install(&self, keys: Vec<Key>) {
        let mut set = self.write();
        let changed = !set
            .keys
            .iter()
            .map(|k| k.digest)
            .eq(keys.iter().map(|k| k.digest));
        if changed {
            set.generation += 1;
            self.verified.clear(set.generation);
        }
        set.keys = keys;
        set.fetched = Some(Instant::now());
    }

    async fn fetch(&self) -> Result<Vec<Key>, String> {
        let request = Request::get(self.url.clone())
            .header(header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let client = self.client.as_ref().map_err(Clone::clone)?;
        let response = client.request(request).await.map_err(|e| {
            std::error::Error::source(&e).map_or_else(|| e.to_string(), ToString::to_string)
        })?;
        if response.status() != StatusCode::OK {
            return Err(format!("answered {}", response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        parse_jwks(&body)
    }
}

/// The usable signing keys of a JWKS document. Keys rucat cannot use
/// (encryption keys, unknown types) are skipped, not fatal: issuers publish
/// all sorts.
fn parse_jwks(body: &[u8]) -> Result<Vec<Key>, String> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<Value>,
    }
    let document: Document =
        serde_json::from_slice(body).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = Vec::new();
    for value in document.keys {
        if value
            .get("use")
            .and_then(Value::as_str)
            .is_some_and(|u| u != "sig")
        {
            continue;
        }
        let algorithm = match value.get("alg").and_then(Value::as_str) {
            None => None,
            Some(name) => match Algorithm::from_str(name) {
                Ok(alg) => Some(alg),
                Err(_) => continue,
            },
        };
        let id = value.get("kid").and_then(Value::as_str).map(str::to_owned);
        let digest = Sha256::digest(value.to_string().as_bytes()).into();
        let key = serde_json::from_value::<Jwk>(value)
            .ok()
            .and_then(|jwk| DecodingKey::from_jwk(&jwk).ok());
        match key {
            Some(key) => keys.push(Key {
                id,
                algorithm,
                key,
                digest,
            }),
            None => debug!(kid = ?id, "skipping a JWKS key rucat cannot use"),
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> JwtProvider {
        let config: JwtConfig = serde_json::from_value(serde_json::json!({
            "issuer": "https://idp", "audience": "rucat", "jwks_url": "http://127.0.0.1:9/jwks",
            "user_claim": "preferred_username", "admin_groups": ["ops"], "admin_users": ["root"]
        }))
        .unwrap();
        JwtProvider::new(config)
    }

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn identities_from_claims() {
        let p = provider();
        let alice = p
            .identity(&claims(serde_json::json!({"preferred_username": "alice", "sub": "x", "groups": ["data", 7, "ml"]})))
            .unwrap();
        assert_eq!(alice, Identity::user("alice", ["data", "ml"]));
        let op = p
            .identity(&claims(
                serde_json::json!({"preferred_username": "bob", "groups": "ops"}),
            ))
            .unwrap();
        assert!(op.is_admin());
        let root = p
            .identity(&claims(serde_json::json!({"preferred_username": "root"})))
            .unwrap();
        assert!(root.is_admin() && root.groups.is_empty());
        for bad in [
            serde_json::json!({"sub": "alice"}),
            serde_json::json!({"preferred_username": ""}),
            serde_json::json!({"preferred_username": 42}),
        ] {
            assert_eq!(
                p.identity(&claims(bad)),
                Err(JwtError::Invalid("no user claim"))
            );
        }
    }

    #[test]
    fn only_jwt_shaped_tokens_are_jwts() {
        assert!(JwtProvider::looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.e30.c2ln"));
        assert!(!JwtProvider::looks_like_jwt("rucat-token-abc"));
        assert!(!JwtProvider::looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.e30"));
    }

    #[test]
    fn jwks_documents_keep_usable_signing_keys() {
        let body = serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "sXch", "e": "AQAB"},
            {"kty": "RSA", "kid": "a", "alg": "RS256", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB"},
            {"kty": "RSA", "kid": "hs", "alg": "HS999", "n": "sXch", "e": "AQAB"},
            {"kty": "XYZ", "kid": "odd"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
        ]});
        let keys = parse_jwks(body.to_string().as_bytes()).unwrap();
        let ids: Vec<_> = keys.iter().map(|k| k.id.as_deref().unwrap()).collect();
        assert_eq!(ids, ["a", "ed"]);
        assert_eq!(keys[0].algorithm, Some(Algorithm::RS256));
        assert!(parse_jwks(b"{}").is_err());
        assert!(parse_jwks(b"<html>").is_err());
    }

    #[test]
    fn verified_tokens_are_forgotten_when_the_keys_change() {
        let jwks = Jwks::new(
            Uri::from_static("http://127.0.0.1:9/jwks"),
            Duration::from_secs(3600),
            Duration::from_secs(30),
        );
        let keys = |kids: &[&str]| {
            let keys: Vec<Value> = kids
                .iter()
                .map(|kid| serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}))
                .collect();
            parse_jwks(serde_json::json!({ "keys": keys }).to_string().as_bytes()).unwrap()
        };
        let remember = || {
            let (_, _, generation) = jwks.lookup(None, Algorithm::EdDSA);
            let entry = cache::Entry {
                identity: Identity::user("alice", ["data"]),
                exp: u64::MAX,
                nbf: None,
            };
            jwks.verified
                .insert(jwks.verified.key("t"), entry, generation, Instant::now());
        };
        let cached = || {
            jwks.verified
                .get(&jwks.verified.key("t"), Instant::now(), 0, 0)
                .is_some()
        };
        jwks.install(keys(&["a", "b"]));
        remember();
        assert!(cached());
        // The same keys fetched again: nothing changes.
        jwks.install(keys(&["a", "b"]));
        assert!(cached());
        // The issuer dropped b: every cached token is checked again.
        jwks.install(keys(&["a"]));
        assert!(!cached());
        remember();
        assert!(cached());
        jwks.install(keys(&["a", "c"]));
        assert!(!cached());
    }
}
