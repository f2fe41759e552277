//! The `surreal` binary's entry point, built with only the memory and SurrealKV
//! storage engines so rucat's tests can run a real SurrealDB server without
//! installing one. Same CLI as `surreal`, e.g.
//! `rucat-surreal-server start --bind 127.0.0.1:8000 --user root --pass root memory`.
// The server crate's query types nest deeply enough to need this.
#![recursion_limit = "256"]

use std::process::ExitCode;

// No `#[tokio::main]`: `init` starts its own runtime.
fn main() -> ExitCode {
    surrealdb_server::init(surrealdb_server::core::CommunityComposer())
}
