//! How engines get machines: the [`ResourceManager`] trait that every platform
//! (local processes, Kubernetes, …) implements.
//!
//! # Writing a resource manager
//!
//! The monitor calls a resource manager from any number of tasks, possibly in
//! several processes at once, and may call the same operation again after a
//! crash. The contract that makes this safe:
//!
//! - **`create` is idempotent and adopts.** If the engine's resource already
//!   exists (created by an earlier call, possibly by another process before it
//!   died), `create` returns `Ok` without creating a second one. Name resources
//!   deterministically from [`EngineSpec::id`] to make that possible. If
//!   creation fails half way, either clean up what was made or leave it for
//!   `delete`: after a failed `create` the monitor always calls `delete`.
//! - **`status` is cheap and never blocks on the engine.** It reports what is
//!   known now: [`ResourceStatus::Pending`] until clients can connect (with the
//!   reason it waits, if the platform gives one),
//!   [`ResourceStatus::Running`] with the endpoint once they can,
//!   [`ResourceStatus::Failed`] with a human-readable reason,
//!   [`ResourceStatus::Terminating`] while a deletion is under way (the
//!   monitor waits instead of deleting again), and [`ResourceStatus::Gone`]
//!   when nothing of the engine exists. Never conclude `Gone` or `Failed` from
//!   information that may be out of date (a cache that lost its feed): answer
//!   [`ResourceError::Unavailable`] until it is current again.
//! - **`delete` is idempotent.** Deleting what does not exist is `Ok`. It may
//!   return before the resource is fully gone; the monitor keeps polling
//!   `status` until it says `Gone`, and calls `delete` again only if `status`
//!   shows the resource neither gone nor terminating (a lost request). A
//!   deletion that hangs is the resource manager's to force, so report such a
//!   resource as `Failed` rather than `Terminating` once it has waited long
//!   enough: the monitor then deletes again.
//! - **Errors say whether to retry.** [`ResourceError::Unavailable`] means
//!   "could not ask" (the platform is unreachable): the monitor retries with
//!   backoff and changes nothing. [`ResourceError::Rejected`] means the
//!   platform refused this engine as specified: it goes down the error path
//!   with the message as its reason, so make the message useful to a user.
//!   On the cleanup path (`delete`, and `status` after it) both kinds are
//!   retried, since giving up would leave resources behind; the error is then
//!   shown on the engine with [`ResourceManager::describe`].
//! - Each call should finish well within the monitor's lease (30 s by
//!   default); a call that takes longer is abandoned and retried.
//! - **`log` reads what the platform has now** (a local file, a pod's log),
//!   from where [`LogQuery::selection`] starts, or `None` if it has nothing
//!   for the engine. It never archives: the monitor reads the whole log
//!   through it and hands it to the [`crate::logs::LogArchive`] just before
//!   it calls `delete`, so a platform that loses logs with its resources
//!   need only serve them while they exist. The default has no logs.

use std::pin::Pin;

use async_trait::async_trait;
use tokio::io::AsyncRead;

pub use crate::change::ChangeSink;
use crate::engine::{EngineId, EngineSpec};
use crate::logs::Selection;

mod instant;
pub mod local;
pub mod marker;
mod measured;

pub use instant::InstantResourceManager;
pub use measured::MeasuredResourceManager;

/// What a resource manager knows about an engine's resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResourceStatus {
    /// Exists but does not accept clients yet. `reason` says what it waits
    /// for when the platform knows (unschedulable, an image that cannot be
    /// pulled, …): if the start deadline passes, it becomes the engine's error.
    Pending { reason: Option<String> },
    /// Accepts clients at `endpoint`, e.g. `sc://127.0.0.1:15002`.
    Running { endpoint: String },
    /// Exists (or existed) but failed; `reason` is shown to the user.
    Failed { reason: String },
    /// Being deleted, e.g. a pod within its termination grace period. For a
    /// started engine it means the resource is going away (the cleanup path);
    /// for one being stopped or cleaned up, that its deletion is under way and
    /// need not be asked for again.
    Terminating,
    /// Nothing of the engine exists.
    Gone,
}

impl ResourceStatus {
    /// Pending with nothing more to say.
    pub const PENDING: ResourceStatus = ResourceStatus::Pending { reason: None };
}

/// Which part of an engine's live log to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogQuery {
    pub selection: Selection,
    /// Keep the stream open, delivering lines as they are written, until
    /// the engine's process ends (or the reader is dropped).
    pub follow: bool,
}

impl LogQuery {
    /// The whole log as it is now: what the monitor archives.
    pub const WHOLE: LogQuery = LogQuery {
        selection: Selection::All,
        follow: false,
    };
}

/// An engine's live log, as bytes, unredacted: callers redact what they
/// serve (see [`crate::logs::Redactor`]).
pub type LiveLog = Pin<Box<dyn AsyncRead + Send>>;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// The platform refused the engine as specified; retrying will not help.
    #[error("{0}")]
    Rejected(String),
    /// The platform could not be asked; retry later.
    #[error("resource manager unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait ResourceManager: Send + Sync + 'static {
    /// Starts the engine's resource, or adopts it if it already exists.
    async fn create(&self, spec: &EngineSpec) -> Result<(), ResourceError>;

    /// The resource's current status.
    async fn status(&self, id: &EngineId) -> Result<ResourceStatus, ResourceError>;

    /// Releases everything the engine holds. `Ok` if nothing exists.
    async fn delete(&self, id: &EngineId) -> Result<(), ResourceError>;

    /// Called by each monitor that drives this resource manager. Keep the
    /// sink (a [`crate::ChangeSinks`] serves several) and call
    /// [`ChangeSink::changed`] when an engine's resource changes; resource
    /// managers without a change feed ignore it (the default), and monitors
    /// then notice changes at their next check.
    fn subscribe(&self, _sink: ChangeSink) {}

    /// What the engine's resources are, in the platform's words (e.g. "pod
    /// and service rucat-… in namespace spark"), so that an operator can find
    /// and remove by hand what a blocked cleanup or a forced delete may leave
    /// behind.
    fn describe(&self, id: &EngineId) -> String {
        format!("the resources of engine {id}")
    }

    /// The engine's log as the platform has it now, from where `query`
    /// starts; `None` if it has none (never started, or already gone).
    /// See the module docs.
    async fn log(
        &self,
        _id: &EngineId,
        _query: LogQuery,
    ) -> Result<Option<LiveLog>, ResourceError> {
        Ok(None)
    }
}
