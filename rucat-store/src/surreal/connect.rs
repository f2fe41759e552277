//! Opening a SurrealDB store: connecting, signing in and defining what
//! SurrealDB 3 insists exists before it is written to.

use std::time::Duration;

use surrealdb::Surreal;
use surrealdb::engine::any::{self, Any};
use surrealdb::opt::auth::Root;

use super::config::SurrealConfig;
use super::queries::SCHEMA;

/// How long opening may take. An unreachable server must fail startup with a
/// clear message rather than hang it.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// The SurrealDB store could not be opened. The message names the setting at
/// fault and never contains the password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SurrealOpenError {
    #[error(
        "database.Surreal.uri {uri}: unsupported scheme; use mem://, surrealkv://PATH or ws://HOST:PORT"
    )]
    UnsupportedUri { uri: String },
    #[error("database.Surreal.uri {uri}: cannot connect: {reason}")]
    Connect { uri: String, reason: String },
    #[error("database.Surreal.uri {uri}: no answer within {}s", .timeout.as_secs())]
    Timeout { uri: String, timeout: Duration },
    #[error("database.Surreal.credentials: {uri} needs credentials to sign in")]
    MissingCredentials { uri: String },
    #[error("database.Surreal.credentials: signing in to {uri} as {username} failed: {reason}")]
    SignIn {
        uri: String,
        username: String,
        reason: String,
    },
    #[error(
        "database.Surreal.{setting} {name:?}: must be letters, digits and underscores, starting with a letter"
    )]
    BadName { setting: &'static str, name: String },
    #[error("database.Surreal.{setting} {name:?}: cannot be defined: {reason}")]
    Define {
        setting: &'static str,
        name: String,
        reason: String,
    },
}

/// Whether the URI names a server rather than an engine inside this process.
fn is_remote(uri: &str) -> bool {
    uri.starts_with("ws://")
}

fn check_uri(uri: &str) -> Result<(), SurrealOpenError> {
    let supported = uri == "mem://" || uri.starts_with("surrealkv://") || is_remote(uri);
    if supported {
        Ok(())
    } else {
        Err(SurrealOpenError::UnsupportedUri {
            uri: uri.to_owned(),
        })
    }
}

/// Namespace and database names go into `DEFINE` statements, which take no
/// parameters, so only plain identifiers are accepted.
fn check_name(setting: &'static str, name: &str) -> Result<(), SurrealOpenError> {
    let mut chars = name.chars();
    let plain = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        Ok(())
    } else {
        Err(SurrealOpenError::BadName {
            setting,
            name: name.to_owned(),
        })
    }
}

/// Connects, signs in (remote only) and makes sure namespace, database and
/// table exist.
pub(super) async fn open(config: &SurrealConfig) -> Result<Surreal<Any>, SurrealOpenError> {
    check_uri(&config.uri)?;
    check_name("namespace", &config.namespace)?;
    check_name("database", &config.database)?;
    match tokio::time::timeout(OPEN_TIMEOUT, open_unbounded(config)).await {
        Ok(opened) => opened,
        Err(_) => Err(SurrealOpenError::Timeout {
            uri: config.uri.clone(),
            timeout: OPEN_TIMEOUT,
        }),
    }
}

async fn open_unbounded(config: &SurrealConfig) -> Result<Surreal<Any>, SurrealOpenError> {
    let uri = &config.uri;
    let db = loop {
        match any::connect(uri.as_str()).await {
            Ok(db) => break db,
            // A SurrealKV directory is locked by its one open handle, and a
            // dropped handle closes in the background: a store reopened in
            // the same process (or right after its previous owner exited)
            // waits for it, within OPEN_TIMEOUT.
            Err(e)
                if uri.starts_with("surrealkv://") && e.to_string().contains("already locked") =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => {
                return Err(SurrealOpenError::Connect {
                    uri: uri.clone(),
                    reason: e.to_string(),
                });
            }
        }
    };
    if is_remote(uri) {
        let credentials = config
            .credentials
            .as_ref()
            .ok_or_else(|| SurrealOpenError::MissingCredentials { uri: uri.clone() })?;
        db.signin(Root {
            username: credentials.username.clone(),
            password: credentials.password.expose_str().to_owned(),
        })
        .await
        .map_err(|e| SurrealOpenError::SignIn {
            uri: uri.clone(),
            username: credentials.username.clone(),
            reason: e.to_string(),
        })?;
    }
    let define = |setting: &'static str, name: &str| {
        let name = name.to_owned();
        move |e: surrealdb::Error| SurrealOpenError::Define {
            setting,
            name,
            reason: e.to_string(),
        }
    };
    let ns = &config.namespace;
    let database = &config.database;
    db.query(format!("DEFINE NAMESPACE IF NOT EXISTS {ns}"))
        .await
        .and_then(|r| r.check())
        .map_err(define("namespace", ns))?;
    db.use_ns(ns.as_str())
        .await
        .map_err(define("namespace", ns))?;
    db.query(format!("DEFINE DATABASE IF NOT EXISTS {database}"))
        .await
        .and_then(|r| r.check())
        .map_err(define("database", database))?;
    db.use_db(database.as_str())
        .await
        .map_err(define("database", database))?;
    db.query(SCHEMA)
        .await
        .and_then(|r| r.check())
        .map_err(define("database", database))?;
    Ok(db)
}
