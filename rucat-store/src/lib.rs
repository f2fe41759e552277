//! Durable [`Store`](rucat_core::Store) backends for rucat: SQLite and
//! SurrealDB (embedded or on a server).
//!
//! rucat-core only knows the `Store` trait; the server and monitor binaries pick
//! a backend from their [`DatabaseConfig`] with [`open_store`], so neither has
//! to know which database it talks to.

pub mod config;
pub mod logs;
pub mod sqlite;
pub mod surreal;

pub use config::{DatabaseConfig, OpenStoreError, open_store};
pub use logs::{LogArchiveSetupError, S3LogArchive, open_log_archive};
pub use sqlite::{OpenFailure, SqliteOpenError, SqliteStore};
pub use surreal::{SurrealConfig, SurrealCredentials, SurrealOpenError, SurrealStore};
