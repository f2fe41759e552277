//! Identity providers through the real `rucat-server` binary: static users
//! (argon2 and bcrypt, hashed by the binary's own `hash-password` and
//! `hash-token`), OIDC / JWT tokens against a local JWKS server with keys
//! made here by `openssl`, a trusted proxy header from an allowed and a
//! refused source, the 429 after repeated failures, the metrics, and the
//! gateway applying the same identities and hiding engines the caller may
//! not see. Engines are written into the server's SQLite file directly, as a
//! second server sharing the store would.

mod support;

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{RequestBuilder, StatusCode};
use rucat_core::{CreateEngineRequest, EngineRecord, EngineState, Timestamp};
use rucat_store::DatabaseConfig;
use serde_json::{Value, json};
use support::identities::{ISSUER, issuer, jwt_config, now, rsa_key, token};
use support::processes::RucatProcess;
use support::processes::rucat_server;

/// A `rucat-server` with `auth_provider`, no monitor, its data in a temp dir.
struct Server {
    process: RucatProcess,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Server {
    fn start(auth_provider: Value) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("server.json");
        let body = json!({"embedded_monitor": false, "auth_provider": auth_provider});
        std::fs::write(&config, body.to_string()).unwrap();
        let process = RucatProcess::server(&[
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--config-path",
            config.to_str().unwrap(),
        ]);
        Self {
            process,
            dir,
            http: reqwest::Client::new(),
        }
    }

    fn engines(&self) -> RequestBuilder {
        self.http.get(self.process.url("/engines"))
    }

    async fn status(&self, request: RequestBuilder) -> StatusCode {
        request.send().await.unwrap().status()
    }

    async fn metrics(&self) -> String {
        let url = self.process.url("/metrics");
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    fn gateway(&self) -> String {
        self.process.gateway.clone().expect("the gateway's address")
    }

    /// Records a Terminated Spark 4 engine owned by `owner` in the server's
    /// store; its id.
    async fn engine_of(&self, owner: &str, shared_with: &[&str]) -> String {
        let store = rucat_store::open_store(&DatabaseConfig::Sqlite {
            path: self.dir.path().join("rucat.db"),
        })
        .await
        .unwrap();
        let spec = CreateEngineRequest::spark("e", "4.3.0").validate().unwrap();
        let mut record = EngineRecord::new(spec, Timestamp::now());
        record.enter(EngineState::Terminated, Timestamp::now());
        record.owner = Some(owner.to_owned());
        record.share_with_groups = shared_with.iter().map(|g| g.to_string()).collect();
        store.insert(&record).await.unwrap();
        record.id().to_string()
    }
}

/// One gRPC call to the gateway with `metadata`: its `grpc-status` and
/// `grpc-message`. The gateway answers refusals itself, so no engine runs.
async fn rpc(gateway: &str, metadata: &[(&str, &str)]) -> (u16, String) {
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Empty<Bytes>>();
    let mut request = axum::http::Request::post(format!(
        "http://{gateway}/spark.connect.SparkConnectService/Config"
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers");
    for (name, value) in metadata {
        request = request.header(*name, *value);
    }
    let response = client
        .request(request.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    (
        header("grpc-status").parse().unwrap(),
        header("grpc-message"),
    )
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

const NOT_FOUND: u16 = 5;
const RESOURCE_EXHAUSTED: u16 = 8;
const FAILED_PRECONDITION: u16 = 9;
const UNAUTHENTICATED: u16 = 16;

/// Asserts who sees which engine through the gateway: `visible` answer as
/// existing (not Running), `hidden` exactly as unknown ids.
async fn gateway_sees(gateway: &str, credential: &str, visible: &[&str], hidden: &[&str]) {
    let cases = visible.iter().map(|id| (id, true));
    for (id, seen) in cases.chain(hidden.iter().map(|id| (id, false))) {
        let metadata = [("authorization", credential), ("x-rucat-engine-id", *id)];
        let (code, message) = rpc(gateway, &metadata).await;
        if seen {
            assert_eq!(code, FAILED_PRECONDITION, "{id}: {message}");
            assert!(message.contains("is Terminated, not Running"), "{message}");
        } else {
            assert_eq!(code, NOT_FOUND, "{id}: {message}");
            assert_eq!(message, format!("x-rucat-engine-id: no engine {id}"));
        }
    }
}

#[tokio::test]
async fn static_users_with_argon2_and_bcrypt_hashes_and_tokens() {
    // The binary's own commands make the argon2 hash and the token.
    let started = Instant::now();
    let argon2 = rucat_server(&["hash-password"], "alice-pass\n");
    let hashing = started.elapsed();
    let argon2 = argon2.trim();
    assert!(argon2.starts_with("$argon2id$"), "{argon2}");
    let minted = rucat_server(&["hash-token"], "");
    let token = minted
        .lines()
        .next()
        .unwrap()
        .strip_prefix("token: ")
        .unwrap()
        .to_owned();
    let digest = minted
        .lines()
        .nth(1)
        .unwrap()
        .strip_prefix("token_sha256: ")
        .unwrap();
    assert_eq!(
        rucat_server(&["hash-token", "--stdin"], &format!("{token}\n")).trim(),
        digest
    );
    let bcrypt = bcrypt::hash_with_salt("bob-pass", 10, *b"rucat-test-salt!")
        .unwrap()
        .to_string();

    let server = Server::start(json!({
        "StaticUsers": {"users": [
            {"name": "alice", "password_hash": argon2, "token_sha256": digest, "groups": ["data"]},
            {"name": "bob", "password_hash": bcrypt, "role": "admin"}
        ]},
        "failed_logins": {"max_failures": 100}
    }));
    let first = Instant::now();
    assert_eq!(
        server
            .status(server.engines().basic_auth("alice", Some("alice-pass")))
            .await,
        200
    );
    let uncached = first.elapsed();
    assert_eq!(
        server
            .status(server.engines().basic_auth("bob", Some("bob-pass")))
            .await,
        200
    );
    assert_eq!(
        server.status(server.engines().bearer_auth(&token)).await,
        200
    );
    for (user, password) in [
        ("alice", "bob-pass"),
        ("bob", "alice-pass"),
        ("carol", "alice-pass"),
    ] {
        let status = server
            .status(server.engines().basic_auth(user, Some(password)))
            .await;
        assert_eq!(status, 401, "{user}");
    }
    assert_eq!(
        server.status(server.engines().bearer_auth(digest)).await,
        401,
        "the digest is no token"
    );
    // No plaintext anywhere: the seed's admin is not configured here.
    assert_eq!(
        server
            .status(server.engines().basic_auth("admin", Some("admin")))
            .await,
        401
    );

    // The cost of a password check, and what the cache saves: a fresh
    // password (the first check of each user) against repeats.
    let gateway = server.gateway();
    let timed = |user: &'static str, password: &'static str| {
        let request = server.engines().basic_auth(user, Some(password));
        async move {
            let started = Instant::now();
            assert_eq!(request.send().await.unwrap().status(), 200);
            started.elapsed()
        }
    };
    let mut cached = Vec::new();
    for _ in 0..20 {
        cached.push(timed("alice", "alice-pass").await);
    }
    cached.sort();
    let cached_p50 = cached[cached.len() / 2];
    eprintln!(
        "argon2id (m=19456,t=2,p=1) hash by hash-password: {hashing:?} (process included); \
         first Basic request (full check): {uncached:?}; p50 with the password cached: {cached_p50:?}"
    );
    assert!(cached_p50 < uncached, "{cached_p50:?} vs {uncached:?}");
    assert!(cached_p50 < Duration::from_millis(50), "{cached_p50:?}");
    let metrics = server.metrics().await;
    assert!(
        metrics.contains(r#"rucat_auth_password_checks_total{cache="hit"} 20"#)
            && metrics.contains(r#"rucat_auth_password_checks_total{cache="miss"} 6"#),
        "{metrics}"
    );
    for line in [
        r#"rucat_auth_attempts_total{scheme="basic",provider="users",result="success"}"#,
        r#"rucat_auth_attempts_total{scheme="bearer",provider="users",result="success"} 1"#,
        r#"rucat_auth_attempts_total{scheme="basic",provider="none",result="failure"} 4"#,
        r#"rucat_auth_attempts_total{scheme="bearer",provider="none",result="failure"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    for secret in ["alice-pass", "bob-pass", token.as_str()] {
        assert!(!metrics.contains(secret));
    }

    // The gateway: alice by token or by Basic sees her engine and those
    // shared with `data`; bob, an admin, sees all.
    let alices = server.engine_of("alice", &[]).await;
    let shared = server.engine_of("carol", &["data"]).await;
    let carols = server.engine_of("carol", &["ml"]).await;
    let (alices, shared, carols) = (alices.as_str(), shared.as_str(), carols.as_str());
    let legacy_free = [alices, shared];
    gateway_sees(&gateway, &bearer(&token), &legacy_free, &[carols]).await;
    gateway_sees(
        &gateway,
        &basic("alice", "alice-pass"),
        &legacy_free,
        &[carols],
    )
    .await;
    gateway_sees(
        &gateway,
        &basic("bob", "bob-pass"),
        &[alices, shared, carols],
        &[],
    )
    .await;
    let (code, _) = rpc(
        &gateway,
        &[
            ("authorization", basic("alice", "nope").as_str()),
            ("x-rucat-engine-id", alices),
        ],
    )
    .await;
    assert_eq!(code, UNAUTHENTICATED);
}

#[tokio::test]
async fn a_trusted_header_is_believed_only_from_its_sources() {
    let header = |sources: &[&str]| {
        json!({"TrustedHeader": {"user_header": "x-forwarded-user", "groups_header": "x-forwarded-groups",
                                 "trusted_sources": sources, "admin_groups": ["ops"]},
               "failed_logins": {"max_failures": 100}})
    };
    // The test connects from 127.0.0.1.
    let trusting = Server::start(header(&["127.0.0.0/8"]));
    let request = || {
        trusting
            .engines()
            .header("x-forwarded-user", "alice")
            .header("x-forwarded-groups", "data")
    };
    assert_eq!(trusting.status(request()).await, 200);
    assert_eq!(
        trusting.status(trusting.engines()).await,
        401,
        "no header, no identity"
    );
    let gateway = trusting.gateway();
    let alices = trusting.engine_of("alice", &[]).await;
    let bobs = trusting.engine_of("bob", &[]).await;
    let (alices, bobs) = (alices.as_str(), bobs.as_str());
    let (code, message) = rpc(
        &gateway,
        &[("x-forwarded-user", "alice"), ("x-rucat-engine-id", alices)],
    )
    .await;
    assert_eq!(code, FAILED_PRECONDITION, "{message}");
    let (code, _) = rpc(
        &gateway,
        &[("x-forwarded-user", "alice"), ("x-rucat-engine-id", bobs)],
    )
    .await;
    assert_eq!(code, NOT_FOUND);
    let (code, _) = rpc(
        &gateway,
        &[
            ("x-forwarded-user", "carol"),
            ("x-forwarded-groups", "ops"),
            ("x-rucat-engine-id", bobs),
        ],
    )
    .await;
    assert_eq!(code, FAILED_PRECONDITION, "ops are admins");

    // From anywhere else the header is refused, never ignored.
    let refusing = Server::start(header(&["10.0.0.0/8"]));
    let response = refusing
        .engines()
        .header("x-forwarded-user", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    let (code, _) = rpc(
        &refusing.gateway(),
        &[("x-forwarded-user", "alice"), ("x-rucat-engine-id", alices)],
    )
    .await;
    assert_eq!(code, UNAUTHENTICATED);
    let metrics = refusing.metrics().await;
    let line = r#"rucat_auth_attempts_total{scheme="trusted_header",provider="none",result="untrusted_source"} 2"#;
    assert!(metrics.contains(line), "{line} in\n{metrics}");
}

#[tokio::test]
async fn repeated_failures_get_429_on_the_api_and_the_gateway() {
    let server = Server::start(json!({
        "StaticAuthProviderConfig": {"username": "admin", "password": "right", "bearer_token": "admin-token"},
        "failed_logins": {"max_failures": 3, "per_secs": 30}
    }));
    // Asking without credentials is no failed login.
    for _ in 0..5 {
        assert_eq!(server.status(server.engines()).await, 401);
    }
    for _ in 0..3 {
        let status = server
            .status(server.engines().basic_auth("admin", Some("guess")))
            .await;
        assert_eq!(status, 401);
    }
    // Now even the right password is refused, unchecked.
    let response = server
        .engines()
        .basic_auth("admin", Some("right"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry), "{retry}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    assert!(
        body["message"].as_str().unwrap().contains("retry in"),
        "{body}"
    );
    let (code, message) = rpc(
        &server.gateway(),
        &[
            ("authorization", "Bearer admin-token"),
            ("x-rucat-engine-id", &"0".repeat(32)),
        ],
    )
    .await;
    assert_eq!(code, RESOURCE_EXHAUSTED, "{message}");
    assert!(
        message.contains("too many failed logins from your address; retry in"),
        "{message}"
    );
    let metrics = server.metrics().await;
    for line in [
        r#"rucat_auth_attempts_total{scheme="basic",provider="none",result="failure"} 3"#,
        r#"rucat_auth_attempts_total{scheme="basic",provider="none",result="limited"} 1"#,
        r#"rucat_auth_attempts_total{scheme="bearer",provider="none",result="limited"} 1"#,
        r#"rucat_gateway_refusals_total{reason="rate_limited"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_tokens_are_checked_against_the_issuers_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second, stranger) = (
        rsa_key(dir.path(), "first"),
        rsa_key(dir.path(), "second"),
        rsa_key(dir.path(), "first"),
    );
    let idp = issuer(vec![first.jwk.clone()]).await;
    let server = Server::start(json!({
        "Jwt": jwt_config(&idp, &["ops"]),
        "failed_logins": {"max_failures": 1000}
    }));
    let status = |token: String| {
        let request = server.engines().bearer_auth(token);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(token(&first, "alice", |_| {})).await, 200);
    assert_eq!(
        status(token(&first, "alice", |c| c["exp"] = json!(now() - 2))).await,
        200,
        "within the leeway"
    );
    let b64 = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let claims =
        json!({"iss": ISSUER, "aud": "rucat", "exp": now() + 300, "preferred_username": "alice"});
    let refused = [
        (
            "expired",
            token(&first, "alice", |c| c["exp"] = json!(now() - 60)),
        ),
        (
            "not yet valid",
            token(&first, "alice", |c| c["nbf"] = json!(now() + 60)),
        ),
        (
            "wrong audience",
            token(&first, "alice", |c| c["aud"] = json!("spark")),
        ),
        (
            "wrong issuer",
            token(&first, "alice", |c| c["iss"] = json!("https://evil.test")),
        ),
        (
            "no exp",
            token(&first, "alice", |c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        ),
        (
            "no user claim",
            token(&first, "alice", |c| {
                c.as_object_mut().unwrap().remove("preferred_username");
            }),
        ),
        ("wrong key, same kid", token(&stranger, "alice", |_| {})),
        ("unknown kid", token(&second, "alice", |_| {})),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(json!({"alg": "none", "typ": "JWT"})),
                b64(claims.clone())
            ),
        ),
        (
            "alg none, kid",
            format!(
                "{}.{}.",
                b64(json!({"alg": "none", "kid": "first"})),
                b64(claims.clone())
            ),
        ),
        ("tampered", {
            let good = token(&first, "alice", |_| {});
            let parts: Vec<&str> = good.split('.').collect();
            let admin = json!({"iss": ISSUER, "aud": "rucat", "exp": now() + 300, "preferred_username": "alice", "groups": ["ops"]});
            format!("{}.{}.{}", parts[0], b64(admin), parts[2])
        }),
        ("HS256 with the public key as secret", {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some("first".into());
            let secret = EncodingKey::from_secret(first.jwk.to_string().as_bytes());
            jsonwebtoken::encode(&header, &claims, &secret).unwrap()
        }),
    ];
    for (case, token) in refused {
        assert_eq!(status(token).await, 401, "{case}");
    }

    // The gateway takes the same tokens (pyspark's ;token=); the user comes
    // from preferred_username, admins from the ops group.
    let gateway = server.gateway();
    let alices = server.engine_of("alice", &[]).await;
    let bobs = server.engine_of("bob", &[]).await;
    let (alices, bobs) = (alices.as_str(), bobs.as_str());
    let alice = bearer(&token(&first, "alice", |_| {}));
    gateway_sees(&gateway, &alice, &[alices], &[bobs]).await;
    let op = bearer(&token(&first, "olga", |c| c["groups"] = json!(["ops"])));
    gateway_sees(&gateway, &op, &[alices, bobs], &[]).await;

    // A token checked once is remembered (the second request is a cache hit).
    let remembered = token(&first, "alice", |_| {});
    assert_eq!(status(remembered.clone()).await, 200);
    assert_eq!(status(remembered.clone()).await, 200);

    // Rotation: the issuer publishes the second key and drops the first.
    idp.publish(vec![second.jwk.clone()]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fetched = idp.fetches();
    assert_eq!(
        status(token(&second, "alice", |_| {})).await,
        200,
        "a new key is fetched at once"
    );
    assert_eq!(idp.fetches(), fetched + 1);
    assert_eq!(
        status(remembered).await,
        401,
        "a remembered token signed with the dropped key"
    );
    // Tokens naming unknown keys make no more than one fetch a second.
    for _ in 0..5 {
        assert_eq!(
            status(token(&first, "alice", |_| {})).await,
            401,
            "the dropped key"
        );
    }
    assert!(idp.fetches() <= fetched + 2);
    let metrics = server.metrics().await;
    let line = r#"rucat_auth_attempts_total{scheme="bearer",provider="jwt",result="success"}"#;
    assert!(metrics.contains(line), "{line} in\n{metrics}");
}
