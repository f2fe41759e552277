//! Who may see and do what, through the real `rucat-server` binary with
//! several identity providers enabled at once and its SQLite store: the full
//! matrix of every engine endpoint for an admin, the owner, a member of a
//! group the engine is shared with and another user, asked through each
//! provider; the seed's single admin; engines recorded before owners existed;
//! and quotas holding when two servers share one store.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use reqwest::{Method, RequestBuilder, StatusCode};
use rucat_core::{CreateEngineRequest, EngineRecord, Timestamp};
use rucat_store::DatabaseConfig;
use serde_json::{Value, json};
use support::identities::{self, Issuer, Key};
use support::processes::{RucatProcess, race_creates_against_quota};

/// The admin's, alice's, bob's and carol's password, as each one's name
/// with this suffix.
const PASSWORD_SUFFIX: &str = "-pass-9f2c";
const SEED_ADMIN: (&str, &str) = ("seed-admin", "seed-pass-31d7");

/// One person, as the tests know them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Actor {
    Admin,
    /// alice, who owns the engines under test.
    Owner,
    /// bob, in the group `data` the shared engine is shared with.
    Member,
    /// carol, in the group `ops` only.
    Other,
}

use Actor::*;

const ACTORS: [Actor; 4] = [Admin, Owner, Member, Other];

impl Actor {
    fn name(self) -> &'static str {
        match self {
            Admin => "root",
            Owner => "alice",
            Member => "bob",
            Other => "carol",
        }
    }

    fn groups(self) -> &'static [&'static str] {
        match self {
            Admin => &["platform"],
            Owner => &["data"],
            Member => &["data", "ml"],
            Other => &["ops"],
        }
    }
}

/// How a request proves who it is.
#[derive(Clone, Copy, Debug)]
enum Provider {
    /// `StaticUsers`, HTTP Basic with the password.
    Password,
    /// `StaticUsers`, a bearer token.
    Token,
    /// `Jwt`, a token signed by the test's issuer.
    Jwt,
    /// `TrustedHeader`, from 127.0.0.1.
    Header,
}

const PROVIDERS: [Provider; 4] = [
    Provider::Password,
    Provider::Token,
    Provider::Jwt,
    Provider::Header,
];

/// A server with every provider enabled at once, no monitor (engines stay
/// where the API puts them), its SQLite file in `dir`.
struct Server {
    process: RucatProcess,
    http: reqwest::Client,
    tokens: Vec<(Actor, String)>,
    key: Key,
    _issuer: Issuer,
    db: std::path::PathBuf,
}

impl Server {
    async fn start(dir: &Path) -> Self {
        let mut users = Vec::new();
        let mut tokens = Vec::new();
        for actor in ACTORS {
            let password = format!("{}{PASSWORD_SUFFIX}", actor.name());
            let hash = support::processes::password_hash(&password);
            let (token, digest) = identities::new_token();
            tokens.push((actor, token));
            users.push(json!({
                "name": actor.name(),
                "password_hash": hash,
                "token_sha256": digest,
                "role": if actor == Admin { "admin" } else { "user" },
                "groups": actor.groups(),
            }));
        }
        let key = identities::rsa_key(dir, "k1");
        let issuer = identities::issuer(vec![key.jwk.clone()]).await;
        let config = json!({
            "embedded_monitor": false,
            "auth_provider": {
                "StaticAuthProviderConfig": {"username": SEED_ADMIN.0, "password": SEED_ADMIN.1},
                "StaticUsers": {"users": users},
                "Jwt": identities::jwt_config(&issuer, &["platform"]),
                "TrustedHeader": {
                    "user_header": "x-forwarded-user",
                    "groups_header": "x-forwarded-groups",
                    "trusted_sources": ["127.0.0.0/8"],
                    "admin_users": [Admin.name()],
                },
            },
        });
        let path = dir.join("server.json");
        std::fs::write(&path, config.to_string()).unwrap();
        let process = RucatProcess::server(&[
            "--data-dir",
            dir.to_str().unwrap(),
            "--config-path",
            path.to_str().unwrap(),
        ]);
        Self {
            process,
            http: reqwest::Client::new(),
            tokens,
            key,
            _issuer: issuer,
            db: dir.join("rucat.db"),
        }
    }

    /// A request by `actor`, proven through `provider`.
    fn request(
        &self,
        provider: Provider,
        actor: Actor,
        method: Method,
        path: &str,
    ) -> RequestBuilder {
        let request = self.http.request(method, self.process.url(path));
        match provider {
            Provider::Password => request.basic_auth(
                actor.name(),
                Some(format!("{}{PASSWORD_SUFFIX}", actor.name())),
            ),
            Provider::Token => {
                let token = self
                    .tokens
                    .iter()
                    .find(|(a, _)| *a == actor)
                    .map(|(_, t)| t.clone())
                    .unwrap();
                request.bearer_auth(token)
            }
            Provider::Jwt => {
                request.bearer_auth(identities::token(&self.key, actor.name(), |claims| {
                    claims["groups"] = json!(actor.groups())
                }))
            }
            Provider::Header => request
                .header("x-forwarded-user", actor.name())
                .header("x-forwarded-groups", actor.groups().join(",")),
        }
    }

    /// Sends; the status and the body as JSON (`Null` if empty).
    async fn send(&self, request: RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, body)
    }

    /// Creates an engine as `actor`; its id.
    async fn create(&self, provider: Provider, actor: Actor, shared_with: &[&str]) -> String {
        let body = json!({"name": "m", "engine_type": "Spark", "version": "4.3.0",
                          "share_with_groups": shared_with});
        let (status, created) = self
            .send(
                self.request(provider, actor, Method::POST, "/engine")
                    .json(&body),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{provider:?} {actor:?}: {created}");
        created["id"].as_str().unwrap().to_owned()
    }

    /// The ids `actor` lists, following every page, filtered by `query`.
    async fn listed(&self, provider: Provider, actor: Actor, query: &str) -> BTreeSet<String> {
        let (status, page) = self
            .send(self.request(
                provider,
                actor,
                Method::GET,
                &format!("/engines?limit=10000{query}"),
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        page.as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Records an engine as a rucat before owners would have: no owner.
    async fn legacy_engine(&self) -> String {
        let store = rucat_store::open_store(&DatabaseConfig::Sqlite {
            path: self.db.clone(),
        })
        .await
        .unwrap();
        let spec = CreateEngineRequest::spark("legacy", "4.3.0")
            .validate()
            .unwrap();
        let record = EngineRecord::new(spec, Timestamp::now());
        assert_eq!(record.owner, None);
        store.insert(&record).await.unwrap();
        record.id().to_string()
    }
}

/// Whether `actor` may see each of: alice's engine shared with `data`,
/// alice's private engine, and an engine without owner.
fn sees(actor: Actor) -> [bool; 3] {
    match actor {
        Admin => [true, true, true],
        Owner => [true, true, false],
        Member => [true, false, false],
        Other => [false, false, false],
    }
}

#[tokio::test]
async fn every_endpoint_for_every_actor_through_every_provider() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let legacy = server.legacy_engine().await;

    for provider in PROVIDERS {
        let shared = server.create(provider, Owner, &["data"]).await;
        let private = server.create(provider, Owner, &[]).await;
        let engines = [&shared, &private, &legacy];

        // GET /engine/{id}: visible engines show their owner; the others
        // answer exactly as an id nobody has.
        for actor in ACTORS {
            for (engine, visible) in engines.iter().zip(sees(actor)) {
                let path = format!("/engine/{engine}");
                let (status, body) = server
                    .send(server.request(provider, actor, Method::GET, &path))
                    .await;
                if visible {
                    assert_eq!(status, StatusCode::OK, "{provider:?} {actor:?} {body}");
                    let owner = if *engine == &legacy {
                        None
                    } else {
                        Some("alice")
                    };
                    assert_eq!(body["owner"].as_str(), owner, "{body}");
                } else {
                    assert_eq!(
                        status,
                        StatusCode::NOT_FOUND,
                        "{provider:?} {actor:?} {body}"
                    );
                    assert_eq!(body["message"], format!("engine {engine} not found"));
                }
            }
        }
        let (_, shown) = server
            .send(server.request(provider, Owner, Method::GET, &format!("/engine/{shared}")))
            .await;
        assert_eq!(shown["share_with_groups"], json!(["data"]), "{shown}");

        // GET /engines lists exactly what each may see; ?owner= filters it.
        for actor in ACTORS {
            let ours: BTreeSet<String> = engines.iter().map(|e| e.to_string()).collect();
            let listed: BTreeSet<String> = server
                .listed(provider, actor, "")
                .await
                .intersection(&ours)
                .cloned()
                .collect();
            let expected: BTreeSet<String> = engines
                .iter()
                .zip(sees(actor))
                .filter(|(_, v)| *v)
                .map(|(e, _)| e.to_string())
                .collect();
            assert_eq!(listed, expected, "{provider:?} {actor:?} lists");
            let by_alice = server.listed(provider, actor, "&owner=alice").await;
            let expected: BTreeSet<String> = [&shared, &private]
                .into_iter()
                .zip(sees(actor))
                .filter(|(_, v)| *v)
                .map(|(e, _)| e.to_string())
                .collect();
            assert!(
                by_alice.is_superset(&expected)
                    && by_alice
                        .iter()
                        .all(|id| actor != Other || !ours.contains(id)),
                "{provider:?} {actor:?} ?owner=alice: {by_alice:?}"
            );
            assert!(
                !by_alice.contains(&legacy),
                "an ownerless engine is nobody's"
            );
        }

        // PATCH share_with_groups: owner and admin; a member sees but may
        // not; others do not see.
        for (actor, expected) in [
            (Admin, StatusCode::OK),
            (Owner, StatusCode::OK),
            (Member, StatusCode::FORBIDDEN),
            (Other, StatusCode::NOT_FOUND),
        ] {
            let (status, body) = server
                .send(
                    server
                        .request(provider, actor, Method::PATCH, &format!("/engine/{shared}"))
                        .json(&json!({"share_with_groups": ["data", "ml"]})),
                )
                .await;
            assert_eq!(status, expected, "{provider:?} {actor:?} shares: {body}");
        }
        for (actor, expected) in [(Member, StatusCode::NOT_FOUND), (Admin, StatusCode::OK)] {
            let (status, body) = server
                .send(
                    server
                        .request(provider, actor, Method::PATCH, &format!("/engine/{legacy}"))
                        .json(&json!({"share_with_groups": []})),
                )
                .await;
            assert_eq!(
                status, expected,
                "{provider:?} {actor:?} shares legacy: {body}"
            );
        }

        // stop, restart, delete: on a fresh engine per actor, each step
        // succeeds for those who see it (WaitToStart → Terminated →
        // WaitToStart → gone) and is 404 for the others, changing nothing.
        for actor in ACTORS {
            for (shared_with, visible) in
                [(&["data"][..], sees(actor)[0]), (&[][..], sees(actor)[1])]
            {
                let id = server.create(provider, Owner, shared_with).await;
                for (method, path) in [
                    (Method::POST, format!("/engine/{id}/stop")),
                    (Method::POST, format!("/engine/{id}/restart")),
                    (Method::DELETE, format!("/engine/{id}")),
                ] {
                    let (status, body) = server
                        .send(server.request(provider, actor, method.clone(), &path))
                        .await;
                    let expected = if visible {
                        StatusCode::OK
                    } else {
                        StatusCode::NOT_FOUND
                    };
                    assert_eq!(
                        status, expected,
                        "{provider:?} {actor:?} {method} {path}: {body}"
                    );
                }
                if !visible {
                    let (status, body) = server
                        .send(server.request(
                            provider,
                            Owner,
                            Method::GET,
                            &format!("/engine/{id}"),
                        ))
                        .await;
                    assert_eq!(status, StatusCode::OK, "untouched: {body}");
                    assert_eq!(body["state"], "WaitToStart", "untouched: {body}");
                    let (status, _) = server
                        .send(server.request(
                            provider,
                            Owner,
                            Method::DELETE,
                            &format!("/engine/{id}"),
                        ))
                        .await;
                    assert_eq!(status, StatusCode::OK);
                }
            }
        }
        // An ownerless engine: users cannot act on it.
        for actor in [Owner, Member, Other] {
            let (status, _) = server
                .send(server.request(
                    provider,
                    actor,
                    Method::POST,
                    &format!("/engine/{legacy}/stop"),
                ))
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{provider:?} {actor:?}");
        }

        // Everyone creates, and owns what they create.
        for actor in ACTORS {
            let id = server.create(provider, actor, &[]).await;
            let (status, body) = server
                .send(server.request(provider, actor, Method::GET, &format!("/engine/{id}")))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(
                body["owner"],
                actor.name(),
                "{provider:?} {actor:?}: {body}"
            );
        }
        for engine in [&shared, &private] {
            let (status, _) = server
                .send(server.request(
                    provider,
                    Admin,
                    Method::DELETE,
                    &format!("/engine/{engine}"),
                ))
                .await;
            assert_eq!(status, StatusCode::OK);
        }
    }

    // The seed's single admin sees everything, the ownerless engine too.
    let seed = |method: Method, path: &str| {
        server
            .http
            .request(method, server.process.url(path))
            .basic_auth(SEED_ADMIN.0, Some(SEED_ADMIN.1))
    };
    let (status, body) = server
        .send(seed(Method::GET, &format!("/engine/{legacy}")))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server
        .send(seed(Method::DELETE, &format!("/engine/{legacy}")))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Requests without credentials are not anyone.
    let (status, _) = server
        .send(server.http.get(server.process.url("/engines")))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(server.process.terminate(), "stops cleanly");
}

/// Two servers on one SQLite file, 20 creates at once against a limit of 3:
/// exactly 3 engines, and every refusal names the quota and the count.
#[tokio::test]
async fn quotas_hold_across_two_servers_sharing_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let (token, digest) = identities::new_token();
    let (bob_token, bob_digest) = identities::new_token();
    let config = json!({
        "embedded_monitor": false,
        "auth_provider": {"StaticUsers": {"users": [
            {"name": "alice", "token_sha256": digest, "groups": ["data"]},
            {"name": "bob", "token_sha256": bob_digest},
        ]}},
        "quotas": {"default": {"max_engines": 3},
                   "users": {"bob": {"max_running": 1}}},
    });
    let path = dir.path().join("server.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let args = [
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--config-path",
        path.to_str().unwrap(),
    ];
    let servers = [RucatProcess::server(&args), RucatProcess::server(&args)];
    let http = reqwest::Client::new();
    let body = json!({"name": "q", "engine_type": "Spark", "version": "4.3.0"});

    race_creates_against_quota(&servers, &token, 20, 3).await;
    for server in &servers {
        let listed: Vec<Value> = http
            .get(server.url("/engines"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(listed.len(), 3, "both servers see the same 3");
    }

    // bob may have one engine starting or running at once: a create is a
    // start, and so is a restart.
    let bob = |method: Method, path: &str| {
        http.request(method, servers[1].url(path))
            .bearer_auth(&bob_token)
    };
    let first: Value = bob(Method::POST, "/engine")
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let first = first["id"].as_str().unwrap().to_owned();
    let refused = bob(Method::POST, "/engine")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["quota"], "max_running", "{refused}");
    assert_eq!(
        (refused["count"].as_u64(), refused["limit"].as_u64()),
        (Some(1), Some(1))
    );
    let stopped = bob(Method::POST, &format!("/engine/{first}/stop"))
        .send()
        .await
        .unwrap();
    assert_eq!(stopped.status(), StatusCode::OK);
    let second = bob(Method::POST, "/engine")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        second.status(),
        StatusCode::OK,
        "the stopped one no longer counts"
    );
    let restart = bob(Method::POST, &format!("/engine/{first}/restart"))
        .send()
        .await
        .unwrap();
    assert_eq!(restart.status(), StatusCode::TOO_MANY_REQUESTS);
    let restart: Value = restart.json().await.unwrap();
    assert_eq!(restart["quota"], "max_running", "{restart}");
    let state: Value = bob(Method::GET, &format!("/engine/{first}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        state["state"], "Terminated",
        "a refused restart changes nothing"
    );

    for server in servers {
        assert!(server.terminate(), "stops cleanly");
    }
}
