//! Benchmark j: what identity and quotas cost. Release `rucat-server`s on
//! durable SQLite, no monitor (`embedded_monitor: false`, so only the API
//! writes), default logging:
//!
//! - `GET /engine/{id}` with `wrk`, on a server with every identity provider
//!   enabled at once (the seed's `StaticAuthProviderConfig`, `StaticUsers`
//!   with an argon2 password and a token, `Jwt` against a JWKS served by this
//!   process, `TrustedHeader`), as each provider's caller in turn, each run
//!   right after the same request to a server without auth (the baseline);
//! - the first Basic request of a static user (its argon2 check) against
//!   the same user's next request (from the cache);
//! - `GET /engines?limit=100` on a store of many engines, 1% owned by the
//!   caller and 1% shared with their group, as that user against an admin
//!   (both through the trusted header, so only the visibility filter
//!   differs);
//! - `POST /engine` with `wrk` on a server with a quota that never refuses
//!   against one without quotas, both fresh and without auth (everyone is
//!   the anonymous admin, who owns every engine created, so the quota's
//!   count is of all of them); and the same through the trusted header with
//!   [`SPREAD_USERS`] users in turn, so that each owner's count stays small,
//!   as it does under a real quota.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::identities;
use crate::procs::{Binaries, Process};
use crate::{fleet, many, wrk};

/// Concurrent clients filling the store for the list.
const CLIENTS: usize = 32;

/// The group the engines' user is in, and that 1% of engines are shared with.
const GROUP: &str = "data";

/// The static user and JWT subject that owns the engine read.
const USER: &str = "alice";

/// A name the trusted header makes an admin.
const ADMIN: &str = "root";

/// The trusted header's user and groups headers.
const USER_HEADER: &str = "x-forwarded-user";
const GROUPS_HEADER: &str = "x-forwarded-groups";

/// A `max_engines` no run comes near.
const QUOTA: u64 = 1_000_000_000;

/// Users creating engines in turn, each with a count of their own.
pub const SPREAD_USERS: usize = 1000;

pub struct Sizes {
    /// Engines in the store while the list is read.
    pub engines: usize,
    /// Static users whose first (uncached) Basic request is timed.
    pub argon2_users: usize,
    pub wrk_duration: Duration,
}

/// Requests per second with and without the thing measured.
#[derive(Debug)]
pub struct Pair {
    pub with: f64,
    pub without: f64,
}

#[derive(Debug)]
pub struct Costs {
    /// `GET /engine/{id}` per provider: as its caller, and without auth.
    pub gets: Vec<(&'static str, Pair)>,
    /// Median of the static users' first Basic request, and of their second.
    pub argon2_first_ms: f64,
    pub argon2_cached_ms: f64,
    /// `GET /engines?limit=100`: as the user, and as an admin.
    pub list: Pair,
    /// Engines the user may see in the list's store (own and shared).
    pub visible: usize,
    /// `POST /engine`: with a quota, and without quotas.
    pub create: Pair,
    /// Engines the quota's owner has when the quota run ends.
    pub quota_count: usize,
    /// `POST /engine` through the trusted header, [`SPREAD_USERS`] users in
    /// turn: with a quota, and without quotas.
    pub create_spread: Pair,
    /// The most engines one of those users has when the quota run ends.
    pub spread_count: usize,
}

/// Makes a caller's headers, just before their run.
type HeadersFn<'a> = Box<dyn Fn() -> Vec<String> + 'a>;

/// A static user's name and password, with its Basic header value.
struct Login {
    name: String,
    password: String,
}

impl Login {
    fn new(name: &str) -> anyhow::Result<Self> {
        Ok(Self {
            name: name.to_owned(),
            password: rucat_server::auth::hash::new_token()?,
        })
    }

    fn basic(&self) -> String {
        let pair = format!("{}:{}", self.name, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }

    fn password_hash(&self) -> anyhow::Result<String> {
        Ok(rucat_server::auth::hash::hash_password(
            self.password.as_bytes(),
        )?)
    }
}

pub async fn run(bins: &Binaries, work: &Path, sizes: &Sizes) -> anyhow::Result<Costs> {
    let open = bins.start_server(&work.join("open"), &json!({"embedded_monitor": false}))?;

    // Every provider at once.
    let seed = Login::new("admin")?;
    let seed_token = rucat_server::auth::hash::new_token()?;
    let user = Login::new(USER)?;
    let (user_token, user_token_sha256) = identities::new_token();
    let timed: Vec<Login> = (0..sizes.argon2_users)
        .map(|i| Login::new(&format!("timed{i}")))
        .collect::<anyhow::Result<_>>()?;
    let mut users = vec![json!({
        "name": USER, "password_hash": user.password_hash()?,
        "token_sha256": user_token_sha256, "groups": [GROUP],
    })];
    for login in &timed {
        users.push(json!({
            "name": login.name, "password_hash": login.password_hash()?, "groups": [GROUP],
        }));
    }
    let key = identities::rsa_key(work, "bench");
    let issuer = identities::issuer(vec![key.jwk.clone()]).await;
    let config = json!({
        "embedded_monitor": false,
        "auth_provider": {
            "StaticAuthProviderConfig": {
                "username": seed.name, "password": seed.password, "bearer_token": seed_token,
            },
            "StaticUsers": {"users": users},
            "Jwt": identities::jwt_config(&issuer, &[]),
            "TrustedHeader": trusted_header_config(),
        },
    });
    let auth = bins.start_server(&work.join("auth"), &config)?;

    // The engine read: the user's, shared with their group (so that the
    // timed users see it too); and one to read without auth.
    let http = reqwest::Client::new();
    let as_user = trusted(USER);
    let id = fleet::created(create(&http, &auth, &as_user, true)?).await?;
    let open_id = fleet::create_one(&http, &open.url("/engine")?).await?;
    let (path, open_path) = (format!("/engine/{id}"), format!("/engine/{open_id}"));

    let (argon2_first_ms, argon2_cached_ms) = time_argon2(&http, &auth, &path, &timed).await?;

    let duration = sizes.wrk_duration;
    let mut gets = Vec::new();
    let callers: [(&'static str, HeadersFn); 5] = [
        (
            "seed StaticAuthProviderConfig, Basic",
            Box::new(|| vec![authorization(&seed.basic())]),
        ),
        (
            "static user, Basic, argon2 (cached)",
            Box::new(|| vec![authorization(&user.basic())]),
        ),
        (
            "static user, Bearer token",
            Box::new(|| vec![authorization(&format!("Bearer {user_token}"))]),
        ),
        (
            "JWT (RS256, local JWKS)",
            // Made now: it is valid for five minutes.
            Box::new(|| {
                let jwt = identities::token(&key, USER, |_| {});
                vec![authorization(&format!("Bearer {jwt}"))]
            }),
        ),
        ("trusted header", Box::new(|| as_user.clone())),
    ];
    for (provider, headers) in callers {
        progress(format!("GET /engine/{{id}}: {provider}, and without auth"));
        let without = measure(&open, &open_path, duration, None, Vec::new()).await?;
        let with = measure(&auth, &path, duration, None, headers()).await?;
        gets.push((provider, Pair { with, without }));
    }

    progress(format!(
        "GET /engines?limit={}: {} engines, as a user and as an admin",
        many::PAGE,
        sizes.engines
    ));
    let visible = fill(&auth, sizes.engines).await? + 1;
    let page = format!("/engines?limit={}", many::PAGE);
    let admin = measure(&auth, &page, duration, None, trusted(ADMIN)).await?;
    let as_user_list = measure(&auth, &page, duration, None, as_user.clone()).await?;
    ensure_page(&http, &auth, &page, &as_user, visible.min(many::PAGE)).await?;
    auth.terminate();

    progress("POST /engine with a quota, and without quotas: one owner".into());
    let script = work.join("post.lua");
    wrk::write_post_script(&script)?;
    let without = measure(&open, "/engine", duration, Some(&script), Vec::new()).await?;
    open.terminate();
    let quotas = json!({"default": {"max_engines": QUOTA}});
    let dir = work.join("quota");
    let quota = bins.start_server(&dir, &json!({"embedded_monitor": false, "quotas": quotas}))?;
    let with = measure(&quota, "/engine", duration, Some(&script), Vec::new()).await?;
    quota.terminate();
    let one_owner = Pair { with, without };
    let one_owner_count = most_owned(&dir.join("rucat.db"))?;

    progress(format!(
        "POST /engine with a quota, and without quotas: {SPREAD_USERS} owners in turn"
    ));
    let script = work.join("post-users.lua");
    wrk::write_post_script_as_users(&script, USER_HEADER, SPREAD_USERS)?;
    let mut spread = Vec::new();
    for (name, quotas) in [("users", Value::Null), ("users-quota", quotas)] {
        let mut config = json!({
            "embedded_monitor": false,
            "auth_provider": {"TrustedHeader": trusted_header_config()},
        });
        if !quotas.is_null() {
            config["quotas"] = quotas;
        }
        let dir = work.join(name);
        let server = bins.start_server(&dir, &config)?;
        spread.push(measure(&server, "/engine", duration, Some(&script), Vec::new()).await?);
        server.terminate();
    }
    let spread_count = most_owned(&work.join("users-quota").join("rucat.db"))?;

    Ok(Costs {
        gets,
        argon2_first_ms,
        argon2_cached_ms,
        list: Pair {
            with: as_user_list,
            without: admin,
        },
        visible,
        create: one_owner,
        quota_count: one_owner_count,
        create_spread: Pair {
            with: spread[1],
            without: spread[0],
        },
        spread_count,
    })
}

/// `wrk` on `path` of `server` with `headers`, off the runtime's threads
/// (this process serves the JWKS meanwhile).
async fn measure(
    server: &Process,
    path: &str,
    duration: Duration,
    post_script: Option<&Path>,
    headers: Vec<String>,
) -> anyhow::Result<f64> {
    let url = server.url(path)?;
    let script = post_script.map(Path::to_path_buf);
    tokio::task::spawn_blocking(move || {
        wrk::requests_per_sec_with(&url, duration, script.as_deref(), &headers)
    })
    .await?
}

fn authorization(value: &str) -> String {
    format!("Authorization: {value}")
}

/// The trusted header's headers naming `user`, in the group.
fn trusted(user: &str) -> Vec<String> {
    vec![
        format!("{USER_HEADER}: {user}"),
        format!("{GROUPS_HEADER}: {GROUP}"),
    ]
}

/// A `POST /engine` to `server` with `headers`, shared with the group or not.
fn create(
    http: &reqwest::Client,
    server: &Process,
    headers: &[String],
    shared: bool,
) -> anyhow::Result<reqwest::RequestBuilder> {
    let request = fleet::create_request(http, &server.url("/engine")?).body(body(shared)?);
    with_headers(request, headers)
}

/// The benchmarks' create request, shared with the group or not.
fn body(shared: bool) -> anyhow::Result<String> {
    let mut body: Value = serde_json::from_str(wrk::CREATE_BODY)?;
    if shared {
        body["share_with_groups"] = json!([GROUP]);
    }
    Ok(body.to_string())
}

/// `request` with `headers` (`"Name: value"`, as wrk takes them).
fn with_headers(
    mut request: reqwest::RequestBuilder,
    headers: &[String],
) -> anyhow::Result<reqwest::RequestBuilder> {
    for header in headers {
        let (name, value) = header.split_once(": ").context("a header")?;
        request = request.header(name, value);
    }
    Ok(request)
}

/// Fills `server`'s store with `count` engines through the trusted header:
/// 1% the user's, 1% another user's shared with the user's group, the rest
/// fifty other users' own. Returns how many the user may see.
async fn fill(server: &Process, count: usize) -> anyhow::Result<usize> {
    let http = reqwest::Client::new();
    let url = server.url("/engine")?;
    let (own_body, shared_body) = (body(false)?, body(true)?);
    let make = move |i: usize| {
        let (owner, shared) = match i % 100 {
            0 => (USER.to_owned(), false),
            50 => ("carol".to_owned(), true),
            n => (format!("user{}", n % 50), false),
        };
        fleet::create_request(&http, &url)
            .header(USER_HEADER, owner)
            .header(GROUPS_HEADER, "others")
            .body(if shared {
                shared_body.clone()
            } else {
                own_body.clone()
            })
    };
    fleet::create_many(count, CLIENTS, make).await?;
    Ok((0..count).filter(|i| matches!(i % 100, 0 | 50)).count())
}

/// Checks that the user's page lists `expected` engines: as many as they
/// may see, up to a full page.
async fn ensure_page(
    http: &reqwest::Client,
    server: &Process,
    page: &str,
    headers: &[String],
    expected: usize,
) -> anyhow::Result<()> {
    let response = with_headers(http.get(server.url(page)?), headers)?
        .send()
        .await?;
    ensure!(
        response.status().is_success(),
        "GET {page}: {}",
        response.status()
    );
    let body: Value = response.json().await?;
    let listed = body
        .as_array()
        .or_else(|| body["engines"].as_array())
        .map_or(0, Vec::len);
    ensure!(
        listed == expected,
        "GET {page} as the user listed {listed} engines, not {expected}"
    );
    Ok(())
}

/// The median time of each timed user's first Basic request (a full argon2
/// check) and of their second (from the cache), one request at a time on a
/// connection already open.
async fn time_argon2(
    http: &reqwest::Client,
    server: &Process,
    path: &str,
    timed: &[Login],
) -> anyhow::Result<(f64, f64)> {
    let url = server.url(path)?;
    let get = |basic: String| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let started = Instant::now();
            let response = http.get(&url).header("authorization", basic).send().await?;
            let ms = started.elapsed().as_secs_f64() * 1e3;
            ensure!(
                response.status().is_success(),
                "GET {url}: {}",
                response.status()
            );
            response.bytes().await?;
            anyhow::Ok(ms)
        }
    };
    // Opens the connection, through the cheapest provider.
    with_headers(http.get(&url), &trusted(USER))?
        .send()
        .await?
        .bytes()
        .await?;
    let (mut first, mut cached) = (Vec::new(), Vec::new());
    for login in timed {
        first.push(get(login.basic()).await?);
        cached.push(get(login.basic()).await?);
    }
    Ok((median(&mut first), median(&mut cached)))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The most engines one owner has in the SQLite file at `path`.
fn most_owned(path: &Path) -> anyhow::Result<usize> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let most: i64 = conn.query_row(
        "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM engines GROUP BY owner)",
        [],
        |row| row.get(0),
    )?;
    Ok(usize::try_from(most)?)
}

/// The trusted header's provider: from loopback, admins by name.
fn trusted_header_config() -> Value {
    json!({
        "user_header": USER_HEADER, "groups_header": GROUPS_HEADER,
        "trusted_sources": ["127.0.0.1/32", "::1/128"], "admin_users": [ADMIN],
    })
}

fn progress(what: String) {
    eprintln!("rucat-bench: j. {what}");
}
