//! `rucat-bench-bare`: the baseline of the REST and memory benchmarks. Axum
//! handlers with the shapes of rucat's answers and none of its work — no
//! store, no validation, no middleware — in the same runtime configuration as
//! `rucat-server`. A binary of its own, so that it links none of the stores
//! and its resident memory is that of a bare axum server.
//!
//! `rucat-bench-bare [--listen ADDR] [--engines N]`: N entries in its list.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use rucat_core::{EngineId, EngineInfo, EngineRecord, Timestamp};
use serde::Serialize;
use serde_json::{Value, json};

struct Canned {
    engine: EngineInfo,
    list: Vec<IdRef>,
}

/// The shape of an entry of rucat's list.
#[derive(Clone, Serialize)]
struct IdRef {
    id: EngineId,
}

#[derive(clap::Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// Entries of its canned engine list.
    #[arg(long, default_value_t = 1000)]
    engines: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Args { listen, engines } = clap::Parser::parse();
    let spec = rucat_core::CreateEngineRequest::spark("bench", "4.3.0").validate()?;
    let engine = EngineInfo::from(&EngineRecord::new(spec, Timestamp::now()));
    let list = (0..engines)
        .map(|_| IdRef {
            id: EngineId::generate(),
        })
        .collect();
    let router = Router::new()
        .route("/engine", post(create))
        .route("/engine/{id}", get(engine_by_id))
        .route("/engines", get(list_engines))
        .with_state(Arc::new(Canned { engine, list }));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!("bare axum listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router).await?;
    Ok(())
}

async fn create(Json(_request): Json<Value>) -> Json<Value> {
    Json(json!({"id": EngineId::generate()}))
}

async fn engine_by_id(
    State(canned): State<Arc<Canned>>,
    Path(_id): Path<String>,
) -> Json<EngineInfo> {
    Json(canned.engine.clone())
}

async fn list_engines(State(canned): State<Arc<Canned>>) -> Json<Vec<IdRef>> {
    Json(canned.list.clone())
}
