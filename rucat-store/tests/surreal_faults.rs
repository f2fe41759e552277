//! The SurrealDB store when things go wrong: bad settings fail startup with a
//! message naming the setting (and never the password), and a server that
//! goes away mid-run makes operations fail as `Unavailable` until it is back,
//! with every engine intact.

mod support;

use std::time::{Duration, Instant};

use rucat_core::store::{Store, StoreError};
use rucat_store::surreal::Password;
use rucat_store::{DatabaseConfig, SurrealConfig, SurrealCredentials, SurrealStore, open_store};

use support::engine;
use support::surreal_server::{Storage, SurrealServer, USER, unique_database};

async fn open_error(config: SurrealConfig) -> String {
    match open_store(&DatabaseConfig::Surreal(config)).await {
        Ok(_) => panic!("opened a store that should not open"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn an_unsupported_uri_names_the_setting() {
    let message = open_error(SurrealConfig::new("postgres://localhost/rucat")).await;
    assert!(
        message.starts_with("database.Surreal.uri postgres://localhost/rucat: unsupported scheme"),
        "{message}"
    );
}

#[tokio::test]
async fn a_bad_namespace_names_the_setting() {
    let config = SurrealConfig {
        namespace: "rucat; REMOVE NAMESPACE x".to_owned(),
        ..SurrealConfig::new("mem://")
    };
    let message = open_error(config).await;
    assert!(
        message.starts_with("database.Surreal.namespace "),
        "{message}"
    );
}

#[tokio::test]
async fn an_unreachable_server_names_the_uri() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let uri = format!("ws://127.0.0.1:{port}");
    let start = Instant::now();
    let message = open_error(SurrealConfig::new(&uri)).await;
    assert!(
        message.starts_with(&format!("database.Surreal.uri {uri}: ")),
        "{message}"
    );
    assert!(start.elapsed() < Duration::from_secs(30), "{message}");
}

#[tokio::test]
async fn wrong_credentials_name_the_setting_but_not_the_password() {
    let server = SurrealServer::start(Storage::Memory);
    let secret = "not-the-password-4f1c";
    let mut config = server.config("rucat");
    config.credentials = Some(SurrealCredentials {
        username: USER.to_owned(),
        password: Password::new(secret),
    });
    let message = open_error(config.clone()).await;
    assert!(
        message.starts_with("database.Surreal.credentials: "),
        "{message}"
    );
    assert!(!message.contains(secret), "{message}");
    assert!(!format!("{config:?}").contains(secret));

    config.credentials = None;
    let message = open_error(config).await;
    assert!(
        message.starts_with("database.Surreal.credentials: "),
        "{message}"
    );
}

/// Retries `operation` until it succeeds, for the time a restarted server
/// and the client's reconnection take.
async fn eventually<T>(what: &str, mut operation: impl AsyncFnMut() -> Result<T, StoreError>) -> T {
    let start = Instant::now();
    loop {
        match operation().await {
            Ok(value) => return value,
            Err(StoreError::Unavailable(reason)) if start.elapsed() < Duration::from_secs(60) => {
                eprintln!("{what}: still unavailable: {reason}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_makes_the_store_unavailable_then_whole_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = SurrealServer::start(Storage::SurrealKv(dir.path().join("data")));
    let config = server.config(&unique_database("faults"));
    let store = SurrealStore::open(&config).await.unwrap();

    let mut kept = engine("kept");
    store.insert(&kept).await.unwrap();
    kept.spec.name = "renamed".to_owned();
    let revision = store.compare_and_swap(1, &kept).await.unwrap();
    assert_eq!(revision, 2);

    server.kill();
    let started = Instant::now();
    match store.get(kept.id()).await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("expected Unavailable while the server is down, got {other:?}"),
    }
    match store.compare_and_swap(2, &kept).await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("expected Unavailable while the server is down, got {other:?}"),
    }
    assert!(
        store.ping().await.is_err(),
        "ping answers while the server is down"
    );
    assert!(started.elapsed() < Duration::from_secs(20));

    server.restart();
    // The same handle reconnects: nothing was lost, and the fence still holds.
    let stored = eventually("get after restart", async || store.get(kept.id()).await)
        .await
        .expect("the engine survived the restart");
    assert_eq!(stored.spec.name, "renamed");
    // An Unavailable write has an unknown outcome: the client may still send
    // it once reconnected. Either it never landed (revision 2) or it landed
    // as written, fenced like any other write (revision 3).
    assert!(matches!(stored.revision, 2 | 3), "{stored:?}");
    match store.compare_and_swap(1, &kept).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("a stale revision must still conflict, got {other:?}"),
    }
    assert_eq!(
        store
            .compare_and_swap(stored.revision, &kept)
            .await
            .unwrap(),
        stored.revision + 1
    );
    let second = engine("after-restart");
    store.insert(&second).await.unwrap();
    assert_eq!(store.list_ids().await.unwrap().len(), 2);

    // A fresh process opening the store after the restart sees the same.
    let reopened = open_store(&DatabaseConfig::Surreal(config)).await.unwrap();
    assert_eq!(
        reopened.get(kept.id()).await.unwrap().unwrap().revision,
        stored.revision + 1
    );
}
