//! Which database the binaries use, as it appears in their configuration.

use std::path::PathBuf;
use std::sync::Arc;

use rucat_core::store::Store;
use serde::{Deserialize, Serialize};

use crate::sqlite::{SqliteOpenError, SqliteStore};
use crate::surreal::{SurrealConfig, SurrealOpenError, SurrealStore};

/// The `database` setting. Externally tagged, so in JSON it reads
/// `{"Sqlite": {"path": "/var/lib/rucat/rucat.db"}}` and a new backend is a new
/// variant without breaking existing files.
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub enum DatabaseConfig {
    /// A SQLite file, created if missing; every process on the host that
    /// should see the same engines names the same file.
    Sqlite { path: PathBuf },
    /// SurrealDB: `{"Surreal": {"uri": "ws://db:8000", "credentials":
    /// {"username": "root", "password": "…"}}}`, or an embedded `mem://` or
    /// `surrealkv://PATH`. Every process that should see the same engines
    /// names the same server (an embedded database belongs to one process).
    Surreal(SurrealConfig),
}

/// The configured database could not be opened. The message names the setting
/// at fault, so an operator knows what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenStoreError {
    #[error("database.Sqlite.path {}: {}", .0.path().display(), .0.reason())]
    Sqlite(SqliteOpenError),
    /// Already names the `database.Surreal` setting at fault.
    #[error(transparent)]
    Surreal(SurrealOpenError),
    #[error("opening the database did not finish: {0}")]
    Interrupted(String),
}

/// Opens the store `config` describes.
pub async fn open_store(config: &DatabaseConfig) -> Result<Arc<dyn Store>, OpenStoreError> {
    match config {
        DatabaseConfig::Sqlite { path } => {
            let path = path.clone();
            let opened = tokio::task::spawn_blocking(move || SqliteStore::open(path)).await;
            match opened {
                Ok(Ok(store)) => Ok(Arc::new(store)),
                Ok(Err(e)) => Err(OpenStoreError::Sqlite(e)),
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => Err(OpenStoreError::Interrupted(e.to_string())),
            }
        }
        DatabaseConfig::Surreal(config) => match SurrealStore::open(config).await {
            Ok(store) => Ok(Arc::new(store)),
            Err(e) => Err(OpenStoreError::Surreal(e)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_externally_tagged() {
        let config = DatabaseConfig::Sqlite {
            path: "/var/lib/rucat/rucat.db".into(),
        };
        let json = r#"{"Sqlite":{"path":"/var/lib/rucat/rucat.db"}}"#;
        assert_eq!(serde_json::to_string(&config).unwrap(), json);
        assert_eq!(
            serde_json::from_str::<DatabaseConfig>(json).unwrap(),
            config
        );
    }

    #[test]
    fn misspelt_settings_are_refused() {
        for json in [
            r#"{"Sqlite":{"pth":"/x"}}"#,
            r#"{"Sqlite":{"path":"/x","paht":"/y"}}"#,
            r#"{"SQLite":{"path":"/x"}}"#,
        ] {
            assert!(
                serde_json::from_str::<DatabaseConfig>(json).is_err(),
                "{json}"
            );
        }
    }

    #[tokio::test]
    async fn opens_a_sqlite_store() {
        let dir = tempfile::tempdir().unwrap();
        let config = DatabaseConfig::Sqlite {
            path: dir.path().join("nested/rucat.db"),
        };
        let store = open_store(&config).await.unwrap();
        assert!(store.list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn errors_name_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "not a directory").unwrap();
        let path = file.join("rucat.db");
        let config = DatabaseConfig::Sqlite { path: path.clone() };
        let err = open_store(&config).await.err().expect("an error");
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("database.Sqlite.path {}: ", path.display())),
            "{message}"
        );
        assert!(message.contains("cannot create directory"), "{message}");
    }
}
