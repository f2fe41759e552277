//! A [`ResourceManager`] that runs each engine as a local process (a Spark
//! Connect server, a Sail server, ...; its [kind](crate::kind) says how to
//! start it): for development, tests, and single-machine deployments.
//!
//! Each engine gets `<work_dir>/<engine id>/`, which holds everything the
//! engine writes (Spark's local dir, temp dir, warehouse and `engine.log`) and
//! everything rucat knows about it (`process.json` with pid and port,
//! `exit_status` once it ended). Because the directory is the record, any
//! process pointed at the same `work_dir` (a server, one or more monitors, a
//! restarted monitor) sees and can adopt, query and stop the same engines.
//!
//! A recorded pid only counts as the engine while that process's command line
//! still names the engine's own local dir, so a pid the system has since given
//! to another program is never adopted or signalled.

#[cfg(any(test, feature = "conformance"))]
pub mod fake;
mod process;
mod ready;
mod setup;
mod workdir;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncSeekExt;
use tokio::process::Child;
use tokio::sync::watch;

use self::process::{Exit, Leader};
use self::ready::Readiness;
use self::workdir::{CompanionRecord, EngineDir, ProcessRecord};
use super::{ChangeSink, LiveLog, LogQuery, ResourceError, ResourceManager, ResourceStatus};
use crate::engine::{EngineId, EngineSpec, EngineType};
use crate::kind::{EngineKind, Kinds, Launch, LocalInstall, Process};
use crate::logs;

pub use self::setup::LocalSetupError;

/// How long an operation waits for another one on the same engine (a create
/// racing a create) before reporting the engine busy.
const LOCK_WAIT: Duration = Duration::from_secs(5);
/// How long to wait for this process's reaper to record an exit it has seen.
const REAPER_WAIT: Duration = Duration::from_secs(2);
/// How much of the end of `engine.log` is searched for a failure reason.
const LOG_TAIL_BYTES: u64 = 64 * 1024;

/// This process's wait for one of an engine's processes (it is their
/// parent), which records how it ended.
struct Reaper {
    /// `None` for the main process.
    companion: Option<String>,
    exited: watch::Receiver<bool>,
}

/// Configuration of the local resource manager; every field has a default, so
/// an empty configuration runs engines with the pyspark on `PATH`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalConfig {
    /// Root of the engines' work directories; each engine gets
    /// `<work_dir>/<engine id>/`. Processes that share it share the engines.
    pub work_dir: PathBuf,
    /// The Spark installation to use; else `SPARK_HOME`, else the pyspark
    /// package of `python`.
    pub spark_home: Option<PathBuf>,
    /// Driver heap (`--driver-memory`) unless the engine sets
    /// `spark.driver.memory` itself.
    pub driver_memory: String,
    pub master: String,
    /// How long an engine may take to shut down cleanly before it is killed.
    pub stop_grace_secs: u64,
    /// The Python whose pyspark provides Spark when no Spark home is given.
    pub python: PathBuf,
    /// The Python whose `pysail` package runs Sail engines (`python -m
    /// pysail spark server`); `python` if unset.
    pub sail_python: Option<PathBuf>,
    /// The directory with `ballista-scheduler` and `ballista-executor`,
    /// which run Ballista engines; else they are looked for on `PATH`.
    pub ballista_bin_dir: Option<PathBuf>,
    /// Each Ballista executor's memory pool (`--memory-pool-size`) unless
    /// the engine sets `executor.memory-pool-size` or
    /// `executor.memory-pool-fraction`: by itself Ballista gives every
    /// executor 70% of the machine's memory, which a few executors on one
    /// machine would together overcommit.
    pub ballista_executor_memory: String,
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self {
            work_dir: PathBuf::from("./rucat-data/engines"),
            spark_home: None,
            driver_memory: "512m".to_owned(),
            master: "local[2]".to_owned(),
            stop_grace_secs: 10,
            python: PathBuf::from("python3"),
            sail_python: None,
            ballista_bin_dir: None,
            ballista_executor_memory: "1GiB".to_owned(),
        }
    }
}

/// Runs engines as local processes, as their kinds say; see the module docs.
pub struct LocalResourceManager {
    /// With `work_dir` made absolute: it is matched against command lines and
    /// handed to Spark, whose working directory is the engine's own.
    config: LocalConfig,
    kinds: Kinds,
    /// Each kind's installation, or why it cannot run here.
    installs: HashMap<&'static str, Result<LocalInstall, String>>,
    /// Exit watches of the engines' processes this process started, so that
    /// a status or delete right after an exit can wait for the exit status
    /// to be recorded.
    reapers: Mutex<HashMap<EngineId, Vec<Reaper>>>,
    /// Monitors to tell when an engine this process started becomes ready.
    readiness: Readiness,
}

impl LocalResourceManager {
    /// Finds each [installed](Kinds::installed) kind's installation and
    /// version (which may ask `python`) and creates the work directory, so
    /// that a machine that cannot run engines is reported before any engine
    /// is asked for.
    pub async fn new(config: LocalConfig) -> Result<Self, LocalSetupError> {
        Self::with_kinds(config, Kinds::installed().clone()).await
    }

    /// [`Self::new`] for the given kinds, e.g. the built-in ones plus a
    /// third party's (see [`Kinds::register`]). A kind that is
    /// [required](EngineKind::required_locally) and missing is an error;
    /// another missing kind only has its engines rejected.
    pub async fn with_kinds(
        mut config: LocalConfig,
        kinds: Kinds,
    ) -> Result<Self, LocalSetupError> {
        config.work_dir = absolute_work_dir(&config.work_dir)?;
        let mut installs = HashMap::new();
        for kind in kinds.iter() {
            let install = match kind.locate(&config).await {
                Ok(install) => {
                    tracing::info!(
                        kind = kind.name(),
                        location = %install.location.display(),
                        version = %install.version,
                        "found a local engine kind"
                    );
                    Ok(install)
                }
                Err(e) if kind.required_locally() => return Err(e),
                Err(e) => {
                    tracing::warn!(kind = kind.name(), "{e}");
                    Err(e.to_string())
                }
            };
            installs.insert(kind.name(), install);
        }
        tracing::info!(work_dir = %config.work_dir.display(), "local resource manager ready");
        Ok(Self {
            config,
            kinds,
            installs,
            reapers: Mutex::new(HashMap::new()),
            readiness: Readiness::default(),
        })
    }

    /// The only version of `kind` this manager can run, if it can.
    pub fn version_of(&self, kind: &EngineType) -> Option<&str> {
        match self.installs.get(kind.name()) {
            Some(Ok(install)) => Some(&install.version),
            _ => None,
        }
    }

    /// The only Spark version this manager can run.
    pub fn spark_version(&self) -> &str {
        self.version_of(&EngineType::Spark).unwrap_or_default()
    }

    pub fn spark_home(&self) -> &Path {
        match self.installs.get(crate::kind::spark::NAME) {
            Some(Ok(install)) => &install.location,
            _ => Path::new(""),
        }
    }

    /// The absolute root of the engines' work directories.
    pub fn work_dir(&self) -> &Path {
        &self.config.work_dir
    }

    /// Where the engine's files are, whether or not it exists.
    pub fn engine_dir(&self, id: &EngineId) -> PathBuf {
        self.dir(id).path().to_owned()
    }

    /// The pid of the engine's process (also its process group id), once
    /// started, whether or not it still runs.
    pub async fn pid(&self, id: &EngineId) -> Result<Option<u32>, ResourceError> {
        let record = self.dir(id).read_process().await;
        Ok(record
            .map_err(unavailable("cannot read the engine's process record"))?
            .map(|r| r.pid))
    }

    fn dir(&self, id: &EngineId) -> EngineDir {
        EngineDir::new(&self.config.work_dir, id)
    }

    fn grace(&self) -> Duration {
        Duration::from_secs(self.config.stop_grace_secs)
    }

    /// The arguments that mark an engine's process, whichever its kind:
    /// the directory, not the spec, is all `status` and `delete` know.
    fn markers(&self, dir: &EngineDir) -> Vec<String> {
        self.kinds
            .iter()
            .map(|kind| kind.process_marker(dir.path()))
            .collect()
    }

    fn kind_of(&self, engine_type: &EngineType) -> Result<&dyn EngineKind, ResourceError> {
        self.kinds
            .get(engine_type)
            .map(|kind| kind.as_ref())
            .ok_or_else(|| {
                ResourceError::Rejected(format!(
                    "the local resource manager cannot run {engine_type} engines; it knows {}",
                    self.kinds.names().join(", ")
                ))
            })
    }

    fn check_version(&self, spec: &EngineSpec) -> Result<&LocalInstall, ResourceError> {
        let kind = &spec.engine_type;
        let install = match self.installs.get(kind.name()) {
            Some(Ok(install)) => install,
            Some(Err(reason)) => return Err(ResourceError::Rejected(reason.clone())),
            None => return Err(ResourceError::Rejected(format!("{kind} is not installed"))),
        };
        if spec.version == install.version {
            return Ok(install);
        }
        Err(ResourceError::Rejected(format!(
            "requested {kind} {} but the local {kind} is {}; the local resource manager \
             runs only the {kind} installed at {}",
            spec.version,
            install.version,
            install.location.display()
        )))
    }

    /// Starts the engine's processes. Called with the engine's lock held and
    /// no process recorded.
    async fn launch(
        &self,
        spec: &EngineSpec,
        kind: &dyn EngineKind,
        install: &LocalInstall,
        dir: &EngineDir,
    ) -> Result<(), ResourceError> {
        self.stop_unrecorded(dir).await?;
        let ports = process::free_ports(1 + kind.extra_ports(spec))
            .map_err(unavailable("cannot find free ports"))?;
        let plan = kind
            .launch_plan(&Launch {
                spec,
                install,
                config: &self.config,
                port: ports[0],
                extra_ports: &ports[1..],
                engine_dir: dir.path(),
            })
            .map_err(ResourceError::Rejected)?;
        let pid = self.start(spec, kind, dir, None, &plan.main, None).await?;
        let mut companions = Vec::with_capacity(plan.companions.len());
        for companion in &plan.companions {
            let name = Some(companion.name.as_str());
            match self
                .start(spec, kind, dir, name, &companion.process, Some(pid))
                .await
            {
                Ok(companion_pid) => companions.push(CompanionRecord {
                    name: companion.name.clone(),
                    pid: companion_pid,
                    ready: companion.ready.clone(),
                }),
                Err(e) => {
                    // Half an engine must not keep running unrecorded.
                    let _ = process::signal_group(pid, Signal::SIGKILL);
                    return Err(e);
                }
            }
        }
        let port = ports[0];
        let record = ProcessRecord {
            pid,
            port,
            kind: Some(spec.engine_type.clone()),
            companions,
        };
        let checks = record.ready_checks();
        if let Err(e) = dir.write_process(record).await {
            // A create that fails must not leave an engine running unrecorded.
            let _ = process::signal_group(pid, Signal::SIGKILL);
            return Err(unavailable("cannot record the engine's process")(e));
        }
        tracing::info!(engine = %spec.id, kind = kind.name(), pid, port, "started engine");
        let exits: Option<Vec<_>> = self
            .reapers()
            .get(&spec.id)
            .map(|reapers| reapers.iter().map(|r| r.exited.clone()).collect());
        if let Some(exits) = exits {
            self.readiness.watch(spec.id.clone(), checks, exits);
        }
        Ok(())
    }

    /// Starts one of the engine's processes, logging to its log, in the
    /// process group `group` (`None`: its own), and reaps it when it ends.
    async fn start(
        &self,
        spec: &EngineSpec,
        kind: &dyn EngineKind,
        dir: &EngineDir,
        companion: Option<&str>,
        plan: &Process,
        group: Option<u32>,
    ) -> Result<u32, ResourceError> {
        let log = dir
            .open_log(companion)
            .await
            .map_err(unavailable("cannot open the engine's log"))?;
        let child = process::spawn(plan, dir.path(), log, group).map_err(unavailable(format!(
            "cannot run {}",
            plan.program.display()
        )))?;
        let pid = child.id().ok_or_else(|| {
            ResourceError::Unavailable(format!("{} vanished at once", plan.program.display()))
        })?;
        let label = match companion {
            None => kind.name().to_owned(),
            Some(name) => format!("{} {name}", kind.name()),
        };
        self.reap_in_background(&spec.id, label, companion, child, dir.clone());
        Ok(pid)
    }

    /// Stops engine processes that a crashed create started but never
    /// recorded, so that a new launch does not run the engine twice.
    async fn stop_unrecorded(&self, dir: &EngineDir) -> Result<(), ResourceError> {
        let marker = self.markers(dir);
        for pid in process::groups_with(&marker) {
            tracing::warn!(pid, dir = %dir.path().display(), "stopping an unrecorded engine process");
            process::stop(pid, &marker, self.grace())
                .await
                .map_err(unavailable("cannot stop an unrecorded engine process"))?;
        }
        Ok(())
    }

    /// Waits for the child so that it never lingers as a zombie, and records
    /// how it ended for `status` calls from any process.
    fn reap_in_background(
        &self,
        id: &EngineId,
        label: String,
        companion: Option<&str>,
        mut child: Child,
        dir: EngineDir,
    ) {
        let (done, exited) = watch::channel(false);
        let companion = companion.map(str::to_owned);
        let mut reapers = self.reapers();
        let engine = reapers.entry(id.clone()).or_default();
        if companion.is_none() {
            // A new attempt: the previous one's processes are all gone.
            engine.clear();
        }
        engine.push(Reaper {
            companion: companion.clone(),
            exited,
        });
        drop(reapers);
        let id = id.clone();
        tokio::spawn(async move {
            match child.wait().await {
                Ok(status) => {
                    if let Some(exit) = Exit::from_status(status) {
                        tracing::info!(engine = %id, "{label} {exit}");
                        // Fails harmlessly if the engine was deleted meanwhile.
                        if let Err(e) = dir.write_exit(companion.as_deref(), exit).await {
                            tracing::debug!(engine = %id, "exit status not recorded: {e}");
                        }
                    }
                }
                Err(e) => tracing::warn!(engine = %id, "cannot wait for {label}'s process: {e}"),
            }
            done.send_replace(true);
        });
    }

    fn reapers(&self) -> std::sync::MutexGuard<'_, HashMap<EngineId, Vec<Reaper>>> {
        // The map stays consistent even if a holder panicked: every update
        // is a single insert or remove.
        self.reapers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits up to `limit` for this process's reapers of the engine's
    /// processes, if any, to finish; true if they did.
    async fn await_reapers(&self, id: &EngineId, limit: Duration) -> bool {
        self.await_reapers_of(id, |_| true, limit).await
    }

    /// [`Self::await_reapers`] for one process only: the others may well
    /// live on.
    async fn await_reaper(&self, id: &EngineId, companion: Option<&str>, limit: Duration) -> bool {
        self.await_reapers_of(id, |c| c == companion, limit).await
    }

    async fn await_reapers_of(
        &self,
        id: &EngineId,
        which: impl Fn(Option<&str>) -> bool,
        limit: Duration,
    ) -> bool {
        let mut exits: Vec<_> = match self.reapers().get(id) {
            Some(reapers) => reapers
                .iter()
                .filter(|r| which(r.companion.as_deref()))
                .map(|r| r.exited.clone())
                .collect(),
            None => Vec::new(),
        };
        if exits.is_empty() {
            return false;
        }
        let all = async {
            for exited in &mut exits {
                if exited.wait_for(|done| *done).await.is_err() {
                    return false;
                }
            }
            true
        };
        matches!(tokio::time::timeout(limit, all).await, Ok(true))
    }

    /// Why the engine's main process (`companion: None`) or a companion
    /// ended: its exit and the end of its log, as its kind words it.
    async fn failure_reason(
        &self,
        id: &EngineId,
        kind: &dyn EngineKind,
        dir: &EngineDir,
        companion: Option<&str>,
    ) -> Result<String, ResourceError> {
        let read_exit = || async {
            dir.read_exit(companion)
                .await
                .map_err(unavailable("cannot read the engine's exit status"))
        };
        let mut exit = read_exit().await?;
        if exit.is_none() && self.await_reaper(id, companion, REAPER_WAIT).await {
            exit = read_exit().await?;
        }
        let log = dir
            .log_tail(companion, LOG_TAIL_BYTES)
            .await
            .map_err(unavailable("cannot read the engine's log"))?;
        let exit = exit.map(|e| e.to_string());
        let reason =
            kind.failure_reason(exit.as_deref(), &crate::logs::reason::summarize_log(&log));
        Ok(match companion {
            None => reason,
            Some(name) => format!("{name}: {reason}"),
        })
    }

    /// The pid to stop: a corrupt record must not make an engine undeletable,
    /// since the /proc search still finds its process.
    async fn recorded_pid_for_delete(&self, dir: &EngineDir) -> Result<Option<u32>, ResourceError> {
        match dir.read_process().await {
            Ok(record) => Ok(record.map(|r| r.pid)),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                tracing::warn!("ignoring a corrupt process record: {e}");
                Ok(None)
            }
            Err(e) => Err(unavailable("cannot read the engine's process record")(e)),
        }
    }
}

#[async_trait]
impl ResourceManager for LocalResourceManager {
    /// An engine with a recorded process is adopted even if that process has
    /// ended: `status` then says why it failed, which a silent restart would
    /// hide.
    async fn create(&self, spec: &EngineSpec) -> Result<(), ResourceError> {
        let dir = self.dir(&spec.id);
        let read_record = || async {
            dir.read_process()
                .await
                .map_err(unavailable("cannot read the engine's process record"))
        };
        if read_record().await?.is_some() {
            tracing::debug!(engine = %spec.id, "engine already started; adopting it");
            return Ok(());
        }
        let kind = self.kind_of(&spec.engine_type)?;
        let install = self.check_version(spec)?;
        dir.prepare()
            .await
            .map_err(unavailable("cannot create the engine's work directory"))?;
        let lock = dir
            .lock(LOCK_WAIT)
            .await
            .map_err(unavailable("cannot lock the engine's work directory"))?;
        let Some(_lock) = lock else {
            return Err(ResourceError::Unavailable(
                "the engine's work directory was removed while it was being created".into(),
            ));
        };
        // Another process may have started it while we waited for the lock.
        if read_record().await?.is_some() {
            return Ok(());
        }
        self.launch(spec, kind, install, &dir).await
    }

    async fn status(&self, id: &EngineId) -> Result<ResourceStatus, ResourceError> {
        let dir = self.dir(id);
        let exists = dir
            .exists()
            .await
            .map_err(unavailable("cannot look for the engine's work directory"))?;
        if !exists {
            return Ok(ResourceStatus::Gone);
        }
        let record = dir
            .read_process()
            .await
            .map_err(unavailable("cannot read the engine's process record"))?;
        let Some(record) = record else {
            // Being created, or a create was interrupted and will be retried.
            return Ok(ResourceStatus::PENDING);
        };
        // Records written before rucat knew other kinds are Spark's.
        let kind = self.kind_of(record.kind.as_ref().unwrap_or(&EngineType::Spark))?;
        let markers = self.markers(&dir);
        if process::leader(record.pid, &markers).await != Leader::Ours {
            return Ok(ResourceStatus::Failed {
                reason: self.failure_reason(id, kind, &dir, None).await?,
            });
        }
        for companion in &record.companions {
            if process::leader(companion.pid, &markers).await != Leader::Ours {
                let name = Some(companion.name.as_str());
                return Ok(ResourceStatus::Failed {
                    reason: self.failure_reason(id, kind, &dir, name).await?,
                });
            }
        }
        if ready::all_pass(&record.ready_checks()).await {
            Ok(ResourceStatus::Running {
                endpoint: kind.endpoint(record.port),
            })
        } else {
            Ok(ResourceStatus::PENDING)
        }
    }

    /// Returns only once the engine's processes are gone and its directory is
    /// removed, so a following `status` says `Gone`.
    async fn delete(&self, id: &EngineId) -> Result<(), ResourceError> {
        let dir = self.dir(id);
        let lock = dir
            .lock(LOCK_WAIT)
            .await
            .map_err(unavailable("cannot lock the engine's work directory"))?;
        let Some(_lock) = lock else {
            self.reapers().remove(id);
            return Ok(());
        };
        let marker = self.markers(&dir);
        let mut pids = process::groups_with(&marker);
        if let Some(pid) = self.recorded_pid_for_delete(&dir).await? {
            if !pids.contains(&pid) {
                pids.push(pid);
            }
        }
        for pid in pids {
            process::stop(pid, &marker, self.grace())
                .await
                .map_err(unavailable("cannot stop the engine's process"))?;
        }
        // Let our reaper record the exit first, so it does not write into the
        // directory while it is being removed.
        self.await_reapers(id, REAPER_WAIT).await;
        dir.remove()
            .await
            .map_err(unavailable("cannot remove the engine's work directory"))?;
        self.reapers().remove(id);
        tracing::info!(engine = %id, "deleted engine");
        Ok(())
    }

    /// Engines this process starts are reported the moment they are ready
    /// (or one of their processes ends).
    fn subscribe(&self, sink: ChangeSink) {
        self.readiness.subscribe(sink);
    }

    /// `engine.log` in the engine's work directory, which holds only the
    /// current attempt (the directory is removed when the engine stops); a
    /// follow ends when the engine's process does.
    async fn log(&self, id: &EngineId, query: LogQuery) -> Result<Option<LiveLog>, ResourceError> {
        let dir = self.dir(id);
        let mut file = match tokio::fs::File::open(dir.log_file()).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(unavailable("cannot open the engine's log")(e)),
        };
        let positioned = async {
            let start = logs::read::start_of(&mut file, query.selection).await?;
            file.seek(io::SeekFrom::Start(start)).await
        };
        positioned
            .await
            .map_err(unavailable("cannot read the engine's log"))?;
        if !query.follow {
            return Ok(Some(Box::pin(file)));
        }
        let pid = self.recorded_pid_for_delete(&dir).await?;
        let marker = self.markers(&dir);
        let ended = move || {
            let marker = marker.clone();
            async move {
                match pid {
                    Some(pid) => process::leader(pid, &marker).await != Leader::Ours,
                    None => true,
                }
            }
        };
        Ok(Some(logs::follow::follow(file, ended)))
    }
}

/// The work directory as an absolute path, created if needed.
fn absolute_work_dir(work_dir: &Path) -> Result<PathBuf, LocalSetupError> {
    let io_error = |source| LocalSetupError::WorkDir {
        path: work_dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(work_dir).map_err(io_error)?;
    let absolute = work_dir.canonicalize().map_err(io_error)?;
    if absolute.to_str().is_none() {
        return Err(LocalSetupError::WorkDirNotUtf8(absolute));
    }
    Ok(absolute)
}

/// Maps an I/O failure to "could not ask", with what was being done.
fn unavailable(context: impl std::fmt::Display) -> impl FnOnce(io::Error) -> ResourceError {
    move |e| ResourceError::Unavailable(format!("{context}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::ReadyCheck;

    #[test]
    fn an_empty_config_is_all_defaults() {
        let config: LocalConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config, LocalConfig::default());
        assert_eq!(config.work_dir, PathBuf::from("./rucat-data/engines"));
        assert_eq!(config.driver_memory, "512m");
        assert_eq!(config.master, "local[2]");
        assert_eq!(config.stop_grace_secs, 10);
        assert_eq!(config.python, PathBuf::from("python3"));
        assert_eq!(config.spark_home, None);
    }

    #[test]
    fn unknown_config_fields_are_refused() {
        let err = serde_json::from_str::<LocalConfig>(r#"{"workdir":"/x"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `workdir`"), "{err}");
    }

    #[tokio::test]
    async fn a_missing_spark_home_is_a_setup_error() {
        let work = tempfile::tempdir().unwrap();
        let config = LocalConfig {
            work_dir: work.path().join("engines"),
            spark_home: Some(work.path().join("no-spark")),
            ..LocalConfig::default()
        };
        let err = LocalResourceManager::new(config).await.err().unwrap();
        assert!(
            matches!(err, LocalSetupError::SparkSubmitMissing(_)),
            "{err}"
        );
    }

    async fn fake_spark(script: &str) -> (tempfile::TempDir, LocalResourceManager) {
        let root = tempfile::tempdir().unwrap();
        let config = LocalConfig {
            work_dir: root.path().join("engines"),
            spark_home: Some(fake::spark_home(root.path(), script).unwrap()),
            stop_grace_secs: 1,
            ..LocalConfig::default()
        };
        let manager = LocalResourceManager::new(config).await.unwrap();
        (root, manager)
    }

    fn spec(version: &str) -> EngineSpec {
        EngineSpec {
            id: EngineId::generate(),
            name: "t".into(),
            engine_type: crate::engine::EngineType::Spark,
            version: version.into(),
            configs: Default::default(),
            token: None,
        }
    }

    async fn wait_for_failure(manager: &LocalResourceManager, id: &EngineId) -> String {
        for _ in 0..100 {
            if let ResourceStatus::Failed { reason } = manager.status(id).await.unwrap() {
                return reason;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the engine did not fail");
    }

    #[tokio::test]
    async fn a_failed_process_is_reported_with_its_log_and_adopted() {
        let (_root, manager) = fake_spark("echo 'Exception: no luck' >&2; exit 3").await;
        let spec = spec("4.3.0");
        manager.create(&spec).await.unwrap();
        let pid = manager.pid(&spec.id).await.unwrap().unwrap();
        let reason = wait_for_failure(&manager, &spec.id).await;
        assert_eq!(
            reason,
            "Spark exited with code 3; end of its log:\nException: no luck"
        );
        manager.create(&spec).await.unwrap();
        assert_eq!(manager.pid(&spec.id).await.unwrap(), Some(pid), "adopted");
        manager.delete(&spec.id).await.unwrap();
        assert_eq!(
            manager.status(&spec.id).await.unwrap(),
            ResourceStatus::Gone
        );
        assert!(!manager.engine_dir(&spec.id).exists());
        manager.delete(&spec.id).await.unwrap();
    }

    #[tokio::test]
    async fn a_live_process_is_pending_until_its_port_opens_and_is_stopped_by_delete() {
        // A stand-in server that ignores SIGTERM, so delete must escalate.
        let (_root, manager) = fake_spark("trap '' TERM; while :; do sleep 0.05; done").await;
        let spec = spec("4.3.0");
        manager.create(&spec).await.unwrap();
        assert_eq!(
            manager.status(&spec.id).await.unwrap(),
            ResourceStatus::PENDING
        );
        let pid = manager.pid(&spec.id).await.unwrap().unwrap();
        let _cleanup = process::tests::KillGroupOnPanic(pid);

        let other = LocalResourceManager::new(manager.config.clone())
            .await
            .unwrap();
        other.create(&spec).await.unwrap();
        assert_eq!(other.pid(&spec.id).await.unwrap(), Some(pid), "adopted");
        other.delete(&spec.id).await.unwrap();
        assert_eq!(
            manager.status(&spec.id).await.unwrap(),
            ResourceStatus::Gone
        );
        assert_ne!(
            process::leader(pid, &manager.markers(&manager.dir(&spec.id))).await,
            Leader::Ours
        );
    }

    /// A process this manager started is reported twice: when its port
    /// opens, and when it dies while Running, so that monitors need not poll.
    #[tokio::test]
    async fn a_started_engine_is_reported_when_ready_and_when_it_dies() {
        let (_root, manager) = fake_spark(fake::SERVER).await;
        let (sink, mut changes) = ChangeSink::channel(8);
        manager.subscribe(sink);
        let spec = spec("4.3.0");
        manager.create(&spec).await.unwrap();
        let pid = manager.pid(&spec.id).await.unwrap().unwrap();
        let _cleanup = process::tests::KillGroupOnPanic(pid);
        let next_change = async |changes: &mut tokio::sync::mpsc::Receiver<crate::Change>| {
            match tokio::time::timeout(Duration::from_secs(20), changes.recv()).await {
                Ok(Some(crate::Change::Resource(id))) => id,
                other => panic!("no change reported: {other:?}"),
            }
        };
        assert_eq!(next_change(&mut changes).await, spec.id, "ready");
        assert!(matches!(
            manager.status(&spec.id).await.unwrap(),
            ResourceStatus::Running { .. }
        ));
        process::signal_group(pid, Signal::SIGKILL).unwrap();
        assert_eq!(next_change(&mut changes).await, spec.id, "died");
        let reason = wait_for_failure(&manager, &spec.id).await;
        assert!(
            reason.contains("signal 9") || reason.contains("killed"),
            "{reason}"
        );
        manager.delete(&spec.id).await.unwrap();
    }

    #[tokio::test]
    async fn another_version_is_rejected_without_a_trace() {
        let (_root, manager) = fake_spark("exit 0").await;
        let spec = spec("3.5.3");
        let err = manager.create(&spec).await.unwrap_err();
        let ResourceError::Rejected(reason) = err else {
            panic!("{err:?}")
        };
        assert!(
            reason.contains("3.5.3") && reason.contains("4.3.0"),
            "{reason}"
        );
        assert!(!manager.engine_dir(&spec.id).exists());
        assert_eq!(
            manager.status(&spec.id).await.unwrap(),
            ResourceStatus::Gone
        );
    }

    /// A kind of two processes, both `python3 -m http.server`: a main one
    /// and a companion that must answer `GET /` before the engine runs.
    struct Duo;

    #[async_trait]
    impl EngineKind for Duo {
        fn name(&self) -> &'static str {
            "Duo"
        }
        fn check_version(&self, _version: &str) -> Result<(), String> {
            Ok(())
        }
        fn version_pattern(&self) -> &'static str {
            ".*"
        }
        fn reserved_configs(&self) -> &'static [&'static str] {
            &[]
        }
        fn served_by_gateway(&self, _version: &str) -> bool {
            false
        }
        async fn locate(&self, config: &LocalConfig) -> Result<LocalInstall, LocalSetupError> {
            Ok(LocalInstall {
                location: config.python.clone(),
                program: config.python.clone(),
                version: "1.0.0".into(),
            })
        }
        fn process_marker(&self, engine_dir: &Path) -> String {
            format!("--directory={}", engine_dir.display())
        }
        fn extra_ports(&self, _spec: &EngineSpec) -> usize {
            1
        }
        fn launch_plan(&self, launch: &Launch<'_>) -> Result<crate::kind::LaunchPlan, String> {
            let marker = self.process_marker(launch.engine_dir);
            let server = |port: u16| {
                let port = port.to_string();
                let args = ["-m", "http.server", &port, "--bind", "127.0.0.1", &marker];
                Process::new(&launch.install.program, args.map(str::to_owned).to_vec())
            };
            let helper = launch.extra_ports[0];
            Ok(crate::kind::LaunchPlan {
                main: server(launch.port),
                companions: vec![crate::kind::Companion {
                    name: "helper".into(),
                    process: server(helper),
                    ready: Some(ReadyCheck::HttpOk {
                        port: helper,
                        path: "/".into(),
                    }),
                }],
            })
        }
    }

    /// Both processes run in one group, each with its log; another manager
    /// sees the engine; a companion that dies fails it with its name; delete
    /// ends them all.
    #[tokio::test]
    async fn an_engine_of_several_processes_runs_fails_and_stops_as_one() {
        let root = tempfile::tempdir().unwrap();
        let config = LocalConfig {
            work_dir: root.path().join("engines"),
            spark_home: Some(fake::spark_home(root.path(), "exit 0").unwrap()),
            stop_grace_secs: 2,
            ..LocalConfig::default()
        };
        let kinds = Kinds::builtin().clone().register(Duo);
        let manager = LocalResourceManager::with_kinds(config.clone(), kinds.clone())
            .await
            .unwrap();
        let spec = EngineSpec {
            engine_type: EngineType::new("Duo"),
            ..spec("1.0.0")
        };
        manager.create(&spec).await.unwrap();
        let pid = manager.pid(&spec.id).await.unwrap().unwrap();
        let _cleanup = process::tests::KillGroupOnPanic(pid);
        let dir = manager.dir(&spec.id);
        let record = dir.read_process().await.unwrap().unwrap();
        assert_eq!(record.companions.len(), 1);
        let helper = record.companions[0].pid;
        let running = async |manager: &LocalResourceManager| {
            for _ in 0..200 {
                let status = manager.status(&spec.id).await.unwrap();
                if let ResourceStatus::Running { endpoint } = status {
                    return endpoint;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("never Running");
        };
        let endpoint = running(&manager).await;
        assert_eq!(endpoint, format!("sc://127.0.0.1:{}", record.port));
        assert!(dir.log_file_of(Some("helper")).is_file());
        let other = LocalResourceManager::with_kinds(config, kinds)
            .await
            .unwrap();
        running(&other).await;
        assert_eq!(process::groups_with(&manager.markers(&dir)), [pid]);

        let helper_pid = nix::unistd::Pid::from_raw(i32::try_from(helper).unwrap());
        nix::sys::signal::kill(helper_pid, Signal::SIGKILL).unwrap();
        let reason = wait_for_failure(&manager, &spec.id).await;
        assert!(
            reason.starts_with("helper: Duo was killed by signal 9 (SIGKILL)"),
            "{reason}"
        );
        let markers = manager.markers(&dir);
        assert_eq!(
            process::leader(pid, &markers).await,
            Leader::Ours,
            "the main process lives on until the engine is deleted"
        );

        other.delete(&spec.id).await.unwrap();
        assert_eq!(
            manager.status(&spec.id).await.unwrap(),
            ResourceStatus::Gone
        );
        for pid in [pid, helper] {
            assert_ne!(process::leader(pid, &markers).await, Leader::Ours);
        }
    }
}
