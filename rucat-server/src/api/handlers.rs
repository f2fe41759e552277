//! One handler per endpoint of the original rucat API. Each only translates
//! between HTTP and [`Engines`]; the rules live in `rucat-core`.

use axum::extract::State;
use rucat_core::{CreateEngineRequest, EngineId, EngineInfo, Engines};
use serde::Serialize;

use super::error::ApiError;
use super::extract::{EnginePath, Json};

/// `{"id": "<engine id>"}`: the answer to a create, and one entry of a list.
#[derive(Debug, Serialize)]
pub struct EngineRef {
    pub id: EngineId,
}

type JsonResult<T> = Result<axum::Json<T>, ApiError>;

pub async fn create(
    State(engines): State<Engines>,
    Json(request): Json<CreateEngineRequest>,
) -> JsonResult<EngineRef> {
    let id = engines.create(request).await?;
    tracing::info!(engine = %id, "engine created");
    Ok(axum::Json(EngineRef { id }))
}

pub async fn get(
    State(engines): State<Engines>,
    EnginePath(id): EnginePath,
) -> JsonResult<EngineInfo> {
    let record = engines.get(&id).await?;
    Ok(axum::Json(EngineInfo::from(&record)))
}

pub async fn list(State(engines): State<Engines>) -> JsonResult<Vec<EngineRef>> {
    let records = engines.list().await?;
    let refs = records
        .into_iter()
        .map(|r| EngineRef { id: r.spec.id })
        .collect();
    Ok(axum::Json(refs))
}

/// The original API returns nothing for the actions: 200 with an empty body.
pub async fn stop(
    State(engines): State<Engines>,
    EnginePath(id): EnginePath,
) -> Result<(), ApiError> {
    engines.stop(&id).await?;
    tracing::info!(engine = %id, "engine stop requested");
    Ok(())
}

pub async fn restart(
    State(engines): State<Engines>,
    EnginePath(id): EnginePath,
) -> Result<(), ApiError> {
    engines.restart(&id).await?;
    tracing::info!(engine = %id, "engine restart requested");
    Ok(())
}

pub async fn delete(
    State(engines): State<Engines>,
    EnginePath(id): EnginePath,
) -> Result<(), ApiError> {
    engines.delete(&id).await?;
    tracing::info!(engine = %id, "engine deleted");
    Ok(())
}

/// For paths no route knows.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".to_owned())
}

/// For known paths asked with a method they do not support.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
