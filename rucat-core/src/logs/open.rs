//! Opening an engine's log for a user: which attempt, and whether it is
//! read live from the resource manager or from the archive. The REST
//! endpoint (`GET /engine/{id}/logs`) is a thin wrapper over [`EngineLogs`].

use std::pin::Pin;
use std::sync::Arc;

use tokio::io::AsyncRead;

use super::{LogArchive, LogError, LogFile, Redacted, Redactor, Selection, select};
use crate::engine::{EngineId, EngineRecord};
use crate::engines::{EngineError, Engines};
use crate::identity::Identity;
use crate::resource::{LiveLog, LogQuery, ResourceError, ResourceManager};

/// Which log, and which part of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogRequest {
    /// An attempt's number; the latest when `None`.
    pub attempt: Option<u32>,
    pub selection: Selection,
    /// Keep delivering lines as they are written (only while the attempt runs).
    pub follow: bool,
}

/// Where a served log comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The resource manager's: the attempt is under way.
    Live,
    /// The archive's: the attempt ended.
    Archive,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Live => "live",
            Source::Archive => "archive",
        }
    }
}

/// An opened log: redacted bytes, streamed.
pub struct LogBody {
    pub attempt: u32,
    pub source: Source,
    pub reader: Pin<Box<dyn AsyncRead + Send>>,
}

impl std::fmt::Debug for LogBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogBody")
            .field("attempt", &self.attempt)
            .field("source", &self.source)
            .finish()
    }
}

/// Why no log was served.
#[derive(Debug, thiserror::Error)]
pub enum OpenLogError {
    /// An unknown engine, or one the caller may not see.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The engine or attempt has no log to show; the message says why.
    #[error("{0}")]
    NoLog(String),
    #[error("cannot read the engine's live log: {0}")]
    Resource(#[from] ResourceError),
    #[error("cannot read the engine's archived log: {0}")]
    Archive(#[from] LogError),
}

/// Serves engines' logs to the users who may see the engines.
#[derive(Clone)]
pub struct EngineLogs {
    engines: Engines,
    /// `None` in a process that cannot reach the engines' platform: then
    /// only archived logs are served.
    resources: Option<Arc<dyn ResourceManager>>,
    archive: Arc<dyn LogArchive>,
}

impl EngineLogs {
    pub fn new(
        engines: Engines,
        resources: Option<Arc<dyn ResourceManager>>,
        archive: Arc<dyn LogArchive>,
    ) -> Self {
        Self {
            engines,
            resources,
            archive,
        }
    }

    /// Opens the log `request` asks for, if `who` may see the engine
    /// (authorized like reading the engine itself). An attempt under way is
    /// read live, falling back to the archive; an ended one from the
    /// archive. The engine's token is redacted from whatever is served.
    pub async fn open(
        &self,
        who: &Identity,
        id: &EngineId,
        request: LogRequest,
    ) -> Result<LogBody, OpenLogError> {
        let record = match self.engines.get_as(who, id).await {
            Ok(record) => record,
            Err(EngineError::NotFound(_)) => return self.open_deleted(who, id, request).await,
            Err(err) => return Err(err.into()),
        };
        let attempt = self.attempt(&record, request.attempt).await?;
        let redactor = Redactor::new(record.spec.token.iter().map(|t| t.expose()));
        let under_way = record
            .attempts
            .last()
            .is_some_and(|a| a.number == attempt && a.ended_at.is_none());
        if under_way {
            if let Some(live) = self.live(id, request).await? {
                return Ok(LogBody {
                    attempt,
                    source: Source::Live,
                    reader: Box::pin(Redacted::new(live, redactor)),
                });
            }
        }
        let Some(file) = self.archive.open(id, attempt).await? else {
            return Err(OpenLogError::NoLog(no_log_reason(
                &record,
                attempt,
                under_way,
                self.resources.is_some(),
            )));
        };
        serve_archived(file, attempt, request.selection, redactor).await
    }

    /// A deleted engine's archived logs, for whoever could see the engine,
    /// until retention removes them; anyone else, as for any unknown
    /// engine, is told it does not exist.
    async fn open_deleted(
        &self,
        who: &Identity,
        id: &EngineId,
        request: LogRequest,
    ) -> Result<LogBody, OpenLogError> {
        let not_found = || OpenLogError::Engine(EngineError::NotFound(id.clone()));
        let Some(tombstone) = self.archive.tombstone(id).await? else {
            return Err(not_found());
        };
        if !who.may_see_owned(tombstone.owner.as_deref(), &tombstone.share_with_groups) {
            return Err(not_found());
        }
        let archived = self.archive.attempts(id).await?;
        let attempt = match request.attempt {
            Some(asked) => asked,
            None => archived.last().map(|a| a.attempt).ok_or_else(|| {
                OpenLogError::NoLog(format!(
                    "engine {id} was deleted at {} and none of its logs is kept",
                    tombstone.deleted_at
                ))
            })?,
        };
        let Some(file) = self.archive.open(id, attempt).await? else {
            let kept: Vec<String> = archived.iter().map(|a| a.attempt.to_string()).collect();
            return Err(OpenLogError::NoLog(format!(
                "engine {id} was deleted; the logs kept are of attempts [{}]",
                kept.join(", ")
            )));
        };
        // Archived logs were redacted when they were archived.
        serve_archived(file, attempt, request.selection, Redactor::default()).await
    }

    async fn live(
        &self,
        id: &EngineId,
        request: LogRequest,
    ) -> Result<Option<LiveLog>, ResourceError> {
        let Some(resources) = &self.resources else {
            return Ok(None);
        };
        let query = LogQuery {
            selection: request.selection,
            follow: request.follow,
        };
        resources.log(id, query).await
    }

    /// The attempt asked for, or the latest; one that neither the record
    /// nor the archive knows is [`OpenLogError::NoLog`].
    async fn attempt(
        &self,
        record: &EngineRecord,
        asked: Option<u32>,
    ) -> Result<u32, OpenLogError> {
        let latest = record.attempts.last().map(|a| a.number);
        match (asked, latest) {
            (None, Some(latest)) => Ok(latest),
            (None, None) => Err(OpenLogError::NoLog(format!(
                "engine {} has not been started yet, so it has no log",
                record.id()
            ))),
            (Some(asked), Some(latest)) if asked >= 1 && asked <= latest => Ok(asked),
            (Some(asked), _) => {
                let archived = self.archive.attempts(record.id()).await?;
                if archived.iter().any(|a| a.attempt == asked) {
                    return Ok(asked);
                }
                Err(OpenLogError::NoLog(match latest {
                    Some(latest) => format!(
                        "engine {} has no attempt {asked}: its attempts are numbered 1 to {latest}",
                        record.id()
                    ),
                    None => format!(
                        "engine {} has not been started yet, so it has no attempt {asked}",
                        record.id()
                    ),
                }))
            }
        }
    }
}

/// An archived attempt's log from where `selection` starts.
async fn serve_archived(
    file: LogFile,
    attempt: u32,
    selection: Selection,
    redactor: Redactor,
) -> Result<LogBody, OpenLogError> {
    let reader = select(file.reader, selection, redactor)
        .await
        .map_err(|e| LogError::Backend(format!("cannot read attempt {attempt}'s log: {e}")))?;
    Ok(LogBody {
        attempt,
        source: Source::Archive,
        reader: Box::pin(reader),
    })
}

/// Why an attempt that exists has no log to serve.
fn no_log_reason(record: &EngineRecord, attempt: u32, under_way: bool, live: bool) -> String {
    let id = record.id();
    if under_way && !live {
        format!(
            "engine {id}'s attempt {attempt} is {}, and this server cannot read live logs (it \
             could not reach the engines' platform at start); its log is archived when it ends",
            record.state
        )
    } else if under_way {
        format!(
            "engine {id} has no log yet: attempt {attempt} is {} and its engine has not written one",
            record.state
        )
    } else {
        format!(
            "the log of engine {id}'s attempt {attempt} is not kept: it was removed by the \
             archive's retention, or could not be archived when the attempt ended"
        )
    }
}
