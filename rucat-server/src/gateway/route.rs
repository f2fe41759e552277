//! Where an RPC goes, decided from its metadata and the engine's record
//! alone (no I/O), so every refusal can be checked exhaustively.

use axum::http::HeaderMap;
use rucat_core::{EngineId, EngineRecord, EngineState, EngineToken, EngineType, StoreError};

use super::status::Code;
use crate::auth::AuthFailure;

/// The metadata key that names the engine. A Spark Connect client sends
/// every unknown parameter of its `sc://` connection string as metadata, so
/// `sc://host:port/;x-rucat-engine-id=<id>` reaches it with a stock client.
pub const ENGINE_ID_KEY: &str = "x-rucat-engine-id";

/// Why the gateway does not forward an RPC, as the client will read it.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(
        "rucat needs your credential: add ;token=<your rucat bearer token> to the sc:// connection string"
    )]
    Unauthenticated,
    /// The client's address failed to log in too often.
    #[error("too many failed logins from your address; retry in {retry_after_secs} s")]
    TooManyFailedLogins { retry_after_secs: u64 },
    #[error(
        "rucat cannot check your token now: its identity provider's keys cannot be fetched; retry in a moment"
    )]
    IdentityUnavailable,
    #[error(
        "no engine named: connect with the endpoint that GET /engine/{{id}} shows, which ends in ;{ENGINE_ID_KEY}=<engine id>"
    )]
    NoEngineId,
    #[error("{ENGINE_ID_KEY}: an engine id is 32 lowercase hexadecimal digits")]
    MalformedEngineId,
    #[error("{ENGINE_ID_KEY}: no engine {0}")]
    UnknownEngine(EngineId),
    #[error("engine {id} is {state}, not Running: {advice}")]
    NotRunning {
        id: EngineId,
        state: EngineState,
        advice: &'static str,
    },
    /// A resuming engine was not Running within the gateway's wait.
    #[error(
        "engine {id} is starting again (it was stopped) and is {state} after {waited_secs} s; retry in a moment"
    )]
    Resuming {
        id: EngineId,
        state: EngineState,
        waited_secs: u64,
    },
    /// Restarting the engine for this RPC was refused (a quota).
    #[error("engine {id} was stopped and cannot be resumed now: {why}")]
    CannotResume { id: EngineId, why: String },
    #[error(
        "engine {id} runs Spark {version}, whose Spark Connect server cannot check a token; rucat's gateway serves Spark 4 engines only"
    )]
    CannotAuthenticate { id: EngineId, version: String },
    /// An engine of a kind that is not Spark Connect (Ballista): its
    /// clients reach it at its own endpoint.
    #[error(
        "engine {id} runs {kind} {version}, which is not reached through rucat's gateway; connect to the endpoint that GET /engine/{id} gives"
    )]
    NotServed {
        id: EngineId,
        kind: String,
        version: String,
    },
    #[error("engine {id} is not reachable ({why}); retry in a moment")]
    Unreachable { id: EngineId, why: String },
    #[error("rucat cannot read its store ({0}); retry in a moment")]
    Store(String),
    #[error("rucat's gateway serves Spark Connect over gRPC only")]
    NotGrpc,
}

impl Refusal {
    pub fn code(&self) -> Code {
        match self {
            Self::Unauthenticated => Code::Unauthenticated,
            Self::TooManyFailedLogins { .. } | Self::CannotResume { .. } => Code::ResourceExhausted,
            Self::Resuming { .. } => Code::Unavailable,
            Self::IdentityUnavailable => Code::Unavailable,
            Self::NoEngineId | Self::MalformedEngineId => Code::InvalidArgument,
            Self::UnknownEngine(_) => Code::NotFound,
            Self::NotRunning { .. } | Self::CannotAuthenticate { .. } | Self::NotServed { .. } => {
                Code::FailedPrecondition
            }
            Self::Unreachable { .. } | Self::Store(_) => Code::Unavailable,
            Self::NotGrpc => Code::Unimplemented,
        }
    }

    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::TooManyFailedLogins { .. } => "rate_limited",
            Self::IdentityUnavailable => "identity_unavailable",
            Self::NoEngineId | Self::MalformedEngineId => "no_engine_id",
            Self::UnknownEngine(_) => "unknown_engine",
            Self::NotRunning { .. } => "not_running",
            Self::Resuming { .. } => "resuming",
            Self::CannotResume { .. } => "cannot_resume",
            Self::CannotAuthenticate { .. } | Self::NotServed { .. } => "unsupported_engine",
            Self::Unreachable { .. } => "unreachable",
            Self::Store(_) => "store_unavailable",
            Self::NotGrpc => "not_grpc",
        }
    }
}

impl From<AuthFailure> for Refusal {
    fn from(failure: AuthFailure) -> Self {
        match failure {
            AuthFailure::Unavailable => Self::IdentityUnavailable,
            AuthFailure::TooManyFailures { .. } => Self::TooManyFailedLogins {
                retry_after_secs: failure.retry_after_secs().unwrap_or(1),
            },
            AuthFailure::Missing | AuthFailure::Invalid | AuthFailure::UntrustedSource => {
                Self::Unauthenticated
            }
        }
    }
}

impl From<StoreError> for Refusal {
    fn from(err: StoreError) -> Self {
        Self::Store(err.to_string())
    }
}

/// Whether a request is gRPC at all (`application/grpc`, `application/grpc+proto`, …).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "application/grpc" || v.starts_with("application/grpc+"))
}

/// The engine the RPC is for.
pub fn engine_id(headers: &HeaderMap) -> Result<EngineId, Refusal> {
    let value = headers.get(ENGINE_ID_KEY).ok_or(Refusal::NoEngineId)?;
    let text = value.to_str().map_err(|_| Refusal::MalformedEngineId)?;
    text.trim().parse().map_err(|_| Refusal::MalformedEngineId)
}

/// Where and how to reach a Running engine.
#[derive(Debug)]
pub struct Upstream {
    /// `host:port` of the engine's own Spark Connect server.
    pub authority: String,
    /// The engine's secret, presented on the user's behalf; `None` for an
    /// engine started before rucat gave engines tokens.
    pub token: Option<EngineToken>,
}

/// Why an RPC for `record`, which is not Running and will not be for
/// this RPC, is refused.
pub fn not_running(record: &EngineRecord) -> Refusal {
    Refusal::NotRunning {
        id: record.id().clone(),
        state: record.state,
        advice: advice(record.state),
    }
}

/// The upstream of `record`, if the engine can take RPCs now.
pub fn upstream(record: &EngineRecord) -> Result<Upstream, Refusal> {
    let id = record.id();
    if record.state != EngineState::Running {
        return Err(not_running(record));
    }
    if !record.spec.served_by_gateway() {
        if record.spec.engine_type != EngineType::Spark {
            return Err(Refusal::NotServed {
                id: id.clone(),
                kind: record.spec.engine_type.to_string(),
                version: record.spec.version.clone(),
            });
        }
        return Err(Refusal::CannotAuthenticate {
            id: id.clone(),
            version: record.spec.version.clone(),
        });
    }
    let authority = record
        .endpoint
        .as_deref()
        .and_then(authority_of)
        .ok_or_else(|| Refusal::Unreachable {
            id: id.clone(),
            why: "its resource manager reported no address".into(),
        })?;
    Ok(Upstream {
        authority: authority.to_owned(),
        token: record.spec.token.clone(),
    })
}

/// `host:port` of an engine endpoint such as `sc://127.0.0.1:15002` (a
/// Spark Connect URL may carry `/;params`, which the gateway does not need).
fn authority_of(endpoint: &str) -> Option<&str> {
    let rest = endpoint.strip_prefix("sc://")?;
    let authority = rest.split(['/', ';']).next()?;
    (!authority.is_empty()).then_some(authority)
}

fn advice(state: EngineState) -> &'static str {
    match state {
        EngineState::WaitToStart | EngineState::TriggerStart | EngineState::StartInProgress => {
            "it is starting; connect again once GET /engine/{id} shows Running"
        }
        EngineState::Terminated => {
            "it was stopped; start it with POST /engine/{id}/restart (an engine stopped for idleness, or created with auto_resume, restarts on its own when a client connects)"
        }
        EngineState::WaitToTerminate
        | EngineState::TriggerTermination
        | EngineState::TerminateInProgress => {
            "it is stopping; once Terminated, start it with POST /engine/{id}/restart"
        }
        _ => "it failed; GET /engine/{id} shows why",
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use rucat_core::{CreateEngineRequest, Timestamp};

    use super::*;

    fn record(state: EngineState, version: &str) -> EngineRecord {
        let spec = CreateEngineRequest::spark("e", version).validate().unwrap();
        let mut record = EngineRecord::new(spec, Timestamp::now());
        record.enter(state, Timestamp::now());
        record.endpoint = Some("sc://127.0.0.1:41000".into());
        record
    }

    #[test]
    fn the_engine_id_comes_from_the_metadata() {
        let mut headers = HeaderMap::new();
        assert!(matches!(engine_id(&headers), Err(Refusal::NoEngineId)));
        headers.insert(ENGINE_ID_KEY, HeaderValue::from_static("../etc"));
        assert!(matches!(
            engine_id(&headers),
            Err(Refusal::MalformedEngineId)
        ));
        let id = EngineId::generate();
        headers.insert(ENGINE_ID_KEY, HeaderValue::from_str(id.as_str()).unwrap());
        assert_eq!(engine_id(&headers).unwrap(), id);
    }

    #[test]
    fn only_grpc_is_served() {
        let mut headers = HeaderMap::new();
        assert!(!is_grpc(&headers));
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        assert!(!is_grpc(&headers));
        headers.insert("content-type", HeaderValue::from_static("application/grpc"));
        assert!(is_grpc(&headers));
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/grpc+proto"),
        );
        assert!(is_grpc(&headers));
    }

    #[test]
    fn only_running_spark_4_engines_take_rpcs() {
        for state in EngineState::ALL {
            let result = upstream(&record(state, "4.3.0"));
            if state == EngineState::Running {
                assert_eq!(result.unwrap().authority, "127.0.0.1:41000");
            } else {
                let refusal = result.unwrap_err();
                assert_eq!(refusal.code(), Code::FailedPrecondition);
                assert!(refusal.to_string().contains(state.name()), "{refusal}");
            }
        }
        let refusal = upstream(&record(EngineState::Running, "3.5.3")).unwrap_err();
        assert_eq!(refusal.code(), Code::FailedPrecondition);
        assert!(refusal.to_string().contains("Spark 3.5.3"), "{refusal}");
    }

    #[test]
    fn endpoints_become_authorities() {
        assert_eq!(authority_of("sc://127.0.0.1:1"), Some("127.0.0.1:1"));
        assert_eq!(
            authority_of("sc://rucat-x.spark.svc:15002/;use_ssl=false"),
            Some("rucat-x.spark.svc:15002")
        );
        assert_eq!(authority_of("http://x:1"), None);
        assert_eq!(authority_of("sc://"), None);
        let mut r = record(EngineState::Running, "4.3.0");
        r.endpoint = None;
        assert_eq!(upstream(&r).unwrap_err().code(), Code::Unavailable);
    }
}
