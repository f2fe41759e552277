//! A resource manager whose "engines" are marker files, for benchmarks and
//! chaos tests that run rucat as several processes.
//!
//! [`InstantResourceManager`](super::InstantResourceManager) keeps its count
//! of creations in memory, which dies with a killed monitor. Here everything
//! lives in one directory that any number of processes share, so a test can
//! prove after the fact that no engine was started twice and that no resource
//! outlived its engine:
//!
//! - `<dir>/<engine id>` exists while the engine's resource does. It is created
//!   exclusively (a hard link fails if the name exists), so two creations
//!   racing each other cannot both succeed: the second one adopts.
//! - `<dir>/creations.log` gets one line `<engine id> <token>` per real
//!   creation, where `token` is unique to that creation and is also the
//!   marker's content.
//!
//! A process killed between creating a marker and logging it would lose the
//! line, so adopting a marker whose token is not logged yet logs it. The same
//! repair can log a token twice when an adoption races the creating call's own
//! line, which is why [`MarkerRecords`] counts distinct tokens.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::{self, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{ResourceError, ResourceManager, ResourceStatus};
use crate::engine::{EngineId, EngineSpec};

/// The file that records every creation.
pub const CREATIONS_LOG: &str = "creations.log";

/// Temporary files of creations under way start with this; a creation killed
/// half way leaves one behind, which is not a resource.
const PENDING_PREFIX: &str = ".creating-";

/// `"resource_manager": {"Markers": {"dir": "..."}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkerConfig {
    /// Where the markers and the creation log live; processes that share it
    /// share the engines.
    pub dir: PathBuf,
}

/// The marker directory cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot use the marker directory {}: {source}", dir.display())]
pub struct MarkerSetupError {
    dir: PathBuf,
    source: io::Error,
}

/// Engines as marker files; see the module docs.
pub struct MarkerResourceManager {
    dir: PathBuf,
}

impl MarkerResourceManager {
    /// Creates the directory if needed, so a directory that cannot be written
    /// is reported at startup rather than by every engine.
    pub fn new(config: MarkerConfig) -> Result<Self, MarkerSetupError> {
        let dir = config.dir;
        match fs::create_dir_all(&dir) {
            Ok(()) => Ok(Self { dir }),
            Err(source) => Err(MarkerSetupError { dir, source }),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, ResourceError>
    where
        F: FnOnce(&Path) -> io::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let dir = self.dir.clone();
        match tokio::task::spawn_blocking(move || f(&dir)).await {
            Ok(result) => result.map_err(|e| ResourceError::Unavailable(e.to_string())),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(ResourceError::Unavailable(e.to_string())),
        }
    }
}

#[async_trait]
impl ResourceManager for MarkerResourceManager {
    async fn create(&self, spec: &EngineSpec) -> Result<(), ResourceError> {
        let id = spec.id.clone();
        self.blocking(move |dir| create_marker(dir, &id)).await
    }

    async fn status(&self, id: &EngineId) -> Result<ResourceStatus, ResourceError> {
        let marker = self.dir.join(id.as_str());
        let exists = tokio::fs::try_exists(&marker)
            .await
            .map_err(|e| ResourceError::Unavailable(e.to_string()))?;
        Ok(if exists {
            ResourceStatus::Running {
                endpoint: format!("marker://{id}"),
            }
        } else {
            ResourceStatus::Gone
        })
    }

    async fn delete(&self, id: &EngineId) -> Result<(), ResourceError> {
        match tokio::fs::remove_file(self.dir.join(id.as_str())).await {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                Err(ResourceError::Unavailable(e.to_string()))
            }
            _ => Ok(()),
        }
    }
}

/// Creates the engine's marker, or adopts the one that exists.
fn create_marker(dir: &Path, id: &EngineId) -> io::Result<()> {
    let marker = dir.join(id.as_str());
    let token = EngineId::generate();
    // Written under a temporary name and linked into place, so the marker
    // never exists without its token.
    let pending = dir.join(format!("{PENDING_PREFIX}{token}"));
    fs::write(&pending, token.as_str())?;
    let linked = fs::hard_link(&pending, &marker);
    fs::remove_file(&pending)?;
    match linked {
        Ok(()) => append_creation(dir, id, token.as_str()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            let existing = fs::read_to_string(&marker)?;
            let logged = MarkerRecords::read_log(dir)?;
            if logged.contains(&(id.clone(), existing.clone())) {
                Ok(())
            } else {
                append_creation(dir, id, &existing)
            }
        }
        Err(e) => Err(e),
    }
}

/// One short append: the kernel writes it at the end of the file in one
/// piece, however many processes append at once.
fn append_creation(dir: &Path, id: &EngineId, token: &str) -> io::Result<()> {
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(CREATIONS_LOG))?;
    log.write_all(format!("{id} {token}\n").as_bytes())
}

/// What a marker directory says happened, read by the test or benchmark that
/// owns it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MarkerRecords {
    /// How many distinct resources were created for each engine.
    pub creations: BTreeMap<EngineId, usize>,
    /// Engines whose resource exists now.
    pub markers: BTreeSet<EngineId>,
}

impl MarkerRecords {
    pub fn read(dir: &Path) -> io::Result<Self> {
        let mut creations = BTreeMap::new();
        for (id, _token) in Self::read_log(dir)? {
            *creations.entry(id).or_insert(0) += 1;
        }
        let mut markers = BTreeSet::new();
        for entry in fs::read_dir(dir)? {
            if let Some(id) = entry?.file_name().to_str().and_then(|n| n.parse().ok()) {
                markers.insert(id);
            }
        }
        Ok(Self { creations, markers })
    }

    /// How many resources were created for `id`.
    pub fn creations_of(&self, id: &EngineId) -> usize {
        self.creations.get(id).copied().unwrap_or(0)
    }

    /// Distinct `(engine, token)` pairs of the creation log.
    fn read_log(dir: &Path) -> io::Result<HashSet<(EngineId, String)>> {
        let text = match fs::read_to_string(dir.join(CREATIONS_LOG)) {
            Ok(text) => text,
            Err(e) if e.kind() == ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        text.lines()
            .map(|line| {
                let parsed = line
                    .split_once(' ')
                    .and_then(|(id, token)| Some((id.parse().ok()?, token.to_owned())));
                parsed.ok_or_else(|| {
                    io::Error::new(
                        ErrorKind::InvalidData,
                        format!("{CREATIONS_LOG}: malformed line {line:?}"),
                    )
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::request::CreateEngineRequest;

    fn spec() -> EngineSpec {
        CreateEngineRequest::spark("m", "4.3.0").validate().unwrap()
    }

    fn manager(dir: &Path) -> MarkerResourceManager {
        MarkerResourceManager::new(MarkerConfig {
            dir: dir.to_owned(),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn create_status_delete() {
        let dir = tempfile::tempdir().unwrap();
        let rm = manager(dir.path());
        let spec = spec();
        assert_eq!(rm.status(&spec.id).await.unwrap(), ResourceStatus::Gone);
        rm.create(&spec).await.unwrap();
        assert_eq!(
            rm.status(&spec.id).await.unwrap(),
            ResourceStatus::Running {
                endpoint: format!("marker://{}", spec.id)
            }
        );
        rm.delete(&spec.id).await.unwrap();
        rm.delete(&spec.id).await.unwrap();
        assert_eq!(rm.status(&spec.id).await.unwrap(), ResourceStatus::Gone);
        rm.create(&spec).await.unwrap();
        let records = MarkerRecords::read(dir.path()).unwrap();
        assert_eq!(records.creations_of(&spec.id), 2, "one per real creation");
        assert_eq!(records.markers, BTreeSet::from([spec.id.clone()]));
    }

    #[tokio::test]
    async fn racing_creations_create_once() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec();
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                // Separate managers, as separate processes would have.
                let (rm, spec) = (Arc::new(manager(dir.path())), spec.clone());
                tokio::spawn(async move { rm.create(&spec).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let records = MarkerRecords::read(dir.path()).unwrap();
        assert_eq!(records.creations_of(&spec.id), 1);
        assert!(
            fs::read_dir(dir.path()).unwrap().all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')),
            "no temporary file is left behind"
        );
    }

    #[tokio::test]
    async fn adopting_an_unlogged_marker_logs_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let rm = manager(dir.path());
        let spec = spec();
        // A creator killed after linking its marker and before logging it.
        fs::write(dir.path().join(spec.id.as_str()), "token-of-the-dead").unwrap();
        rm.create(&spec).await.unwrap();
        rm.create(&spec).await.unwrap();
        let log = fs::read_to_string(dir.path().join(CREATIONS_LOG)).unwrap();
        assert_eq!(log, format!("{} token-of-the-dead\n", spec.id));
    }

    #[test]
    fn a_malformed_log_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(CREATIONS_LOG), "not an engine\n").unwrap();
        let err = MarkerRecords::read(dir.path()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidData);
    }

    #[test]
    fn config_json() {
        let config: MarkerConfig = serde_json::from_str(r#"{"dir": "/tmp/m"}"#).unwrap();
        assert_eq!(config.dir, Path::new("/tmp/m"));
        assert!(serde_json::from_str::<MarkerConfig>(r#"{"dir": "x", "y": 1}"#).is_err());
    }
}
