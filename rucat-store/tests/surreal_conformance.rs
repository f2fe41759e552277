//! The shared store behaviour, checked against SurrealDB: embedded in memory,
//! embedded on disk (reopened), and on a real server over WebSocket.

mod support;

use std::sync::Arc;

use async_trait::async_trait;
use rucat_core::store::Store;
use rucat_core::store::conformance::Harness;
use rucat_store::{SurrealConfig, SurrealStore};
use tempfile::TempDir;

use support::surreal_server::{Storage, SurrealServer, unique_database};

async fn open(config: &SurrealConfig) -> Arc<dyn Store> {
    match SurrealStore::open(config).await {
        Ok(store) => Arc::new(store),
        Err(e) => panic!("open the SurrealDB store: {e}"),
    }
}

/// `mem://`: every `open` is a new, empty database.
mod mem {
    use super::*;

    struct MemHarness;

    #[async_trait]
    impl Harness for MemHarness {
        async fn open(&self) -> Arc<dyn Store> {
            open(&SurrealConfig::new("mem://")).await
        }

        fn durable(&self) -> bool {
            false
        }
    }

    rucat_core::conformance_tests!(MemHarness);
}

/// `surrealkv://PATH`: every `open` is a new store on the same directory, as
/// a restarted process sees it.
mod surrealkv {
    use super::*;

    struct SurrealKvHarness {
        dir: TempDir,
    }

    impl SurrealKvHarness {
        fn new() -> Self {
            Self {
                dir: tempfile::tempdir().expect("temporary directory"),
            }
        }
    }

    #[async_trait]
    impl Harness for SurrealKvHarness {
        async fn open(&self) -> Arc<dyn Store> {
            let path = self.dir.path().join("rucat.skv");
            open(&SurrealConfig::new(format!(
                "surrealkv://{}",
                path.display()
            )))
            .await
        }

        fn durable(&self) -> bool {
            true
        }
    }

    rucat_core::conformance_tests!(SurrealKvHarness::new());
}

/// `ws://`: a real server; every `open` is a new connection to the same
/// database.
mod server {
    use super::*;

    struct ServerHarness {
        server: SurrealServer,
        database: String,
    }

    impl ServerHarness {
        fn new() -> Self {
            Self {
                server: SurrealServer::start(Storage::Memory),
                database: unique_database("conformance"),
            }
        }
    }

    #[async_trait]
    impl Harness for ServerHarness {
        async fn open(&self) -> Arc<dyn Store> {
            open(&self.server.config(&self.database)).await
        }

        fn durable(&self) -> bool {
            true
        }

        /// Two clients of the server, as two rucat processes have them.
        fn shared(&self) -> bool {
            true
        }
    }

    rucat_core::conformance_tests!(ServerHarness::new());
}
