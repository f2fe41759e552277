//! Identities for tests against the real binary: static users' tokens, and
//! an OIDC issuer of our own — RSA keys made by `openssl`, a JWKS endpoint
//! serving them (and counting its fetches), and tokens signed with them.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// The `iss` of every token made here.
pub const ISSUER: &str = "https://idp.test/realms/data";

/// A fresh static-user token and its `token_sha256`.
pub fn new_token() -> (String, String) {
    let token = rucat_server::auth::hash::new_token().unwrap();
    let digest = rucat_server::auth::hash::token_digest_hex(&token);
    (token, digest)
}

/// An RSA key made by `openssl`, and its public JWK (with `kid` = `id`).
pub struct Key {
    pub id: String,
    pub encoding: EncodingKey,
    pub jwk: Value,
}

/// Makes a 2048-bit RSA key in `dir`.
pub fn rsa_key(dir: &Path, id: &str) -> Key {
    let der = dir.join(format!("{id}-{}.der", std::process::id()));
    let made = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl genrsa -traditional 2048 2>/dev/null | openssl rsa -traditional -outform DER -out '{}' 2>/dev/null",
            der.display()
        ))
        .status()
        .expect("openssl (scripts/install-deps installs it)");
    assert!(made.success(), "openssl could not make a key");
    let encoding = EncodingKey::from_rsa_der(&std::fs::read(&der).unwrap());
    let _ = std::fs::remove_file(der);
    let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256).unwrap();
    jwk.common.key_id = Some(id.to_owned());
    Key {
        id: id.to_owned(),
        encoding,
        jwk: serde_json::to_value(jwk).unwrap(),
    }
}

/// Seconds since the epoch, as JWT times are.
pub fn now() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(since.as_secs()).unwrap()
}

/// An RS256 token for `user` signed by `key`, with `edit` applied to the
/// claims: issued by [`ISSUER`] for `rucat`, valid five minutes, groups
/// `["data"]`, the user in `preferred_username` (and `<user>-id` in `sub`).
pub fn token(key: &Key, user: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut claims = json!({
        "iss": ISSUER, "aud": ["rucat", "other"], "exp": now() + 300, "iat": now(),
        "sub": format!("{user}-id"), "preferred_username": user, "groups": ["data"],
    });
    edit(&mut claims);
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(key.id.clone());
    jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap()
}

/// A JWKS endpoint on a local port serving whatever `keys` holds.
pub struct Issuer {
    pub url: String,
    pub keys: Arc<Mutex<Vec<Value>>>,
    /// How many times the keys were fetched.
    pub fetches: Arc<AtomicUsize>,
}

impl Issuer {
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Publishes `keys` instead of the current ones.
    pub fn publish(&self, keys: Vec<Value>) {
        *self.keys.lock().unwrap() = keys;
    }
}

/// Serves `keys` as a JWKS until the test's runtime ends.
pub async fn issuer(keys: Vec<Value>) -> Issuer {
    let keys = Arc::new(Mutex::new(keys));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (served, counted) = (Arc::clone(&keys), Arc::clone(&fetches));
    let app = axum::Router::new().route(
        "/certs",
        axum::routing::get(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            let keys = served.lock().unwrap().clone();
            async move { axum::Json(json!({"keys": keys})) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/certs", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Issuer { url, keys, fetches }
}

/// The `Jwt` provider's config for `issuer`'s tokens: users by
/// `preferred_username`, admins by `admin_groups`, a 5 s leeway, and keys
/// fetched again for an unknown `kid` at most once a second.
pub fn jwt_config(issuer: &Issuer, admin_groups: &[&str]) -> Value {
    json!({
        "issuer": ISSUER, "audience": "rucat", "jwks_url": issuer.url,
        "user_claim": "preferred_username", "admin_groups": admin_groups,
        "leeway_secs": 5, "jwks_min_refetch_secs": 1
    })
}
