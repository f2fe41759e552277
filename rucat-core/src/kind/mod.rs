//! Engine kinds: everything rucat knows about one kind of engine (Spark,
//! Sail, or one a third party adds), in one place per kind, behind
//! [`EngineKind`].
//!
//! The rest of rucat is generic over kinds: request validation asks the
//! kind which versions and configs it accepts, the local resource manager
//! asks it for a [`LaunchPlan`] and for the reason in its log, the
//! Kubernetes resource manager (`rucat-k8s`) asks it for a
//! [`kube::KubePlan`], and the gateway asks whether its engines speak Spark
//! Connect through it. A new kind implements [`EngineKind`] and is
//! registered in a [`Kinds`], which a program [installs](Kinds::install) at
//! startup; no resource manager changes.

pub mod ballista;
pub mod kube;
pub mod sail;
pub mod spark;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, OnceLock};

use async_trait::async_trait;

use crate::engine::{Configs, EngineSpec, EngineType};
use crate::request::ValidationError;
use crate::resource::local::{LocalConfig, LocalSetupError};

/// Local engines listen on loopback only: a local engine is for this
/// machine, and engines that cannot check a token (Sail, Spark 3.5) must be
/// reachable by nothing but rucat's gateway and local users.
pub const BIND_ADDRESS: &str = "127.0.0.1";

/// One kind of engine. Its pure parts (versions, configs, endpoint, failure
/// reasons, the launch plan) are free of I/O so they can be tested against
/// golden values; only [`EngineKind::locate`] looks at the machine.
#[async_trait]
pub trait EngineKind: Send + Sync + 'static {
    /// The `engine_type` users write, e.g. `"Spark"`.
    fn name(&self) -> &'static str;

    /// Why `version` is not one this kind can run, if it is not; the
    /// reason is shown to the user as is.
    fn check_version(&self, version: &str) -> Result<(), String>;

    /// [`EngineKind::check_version`] as a regular expression (ECMA 262 and
    /// Python alike), for the API's OpenAPI document.
    fn version_pattern(&self) -> &'static str;

    /// The form of config keys [`EngineKind::validate_configs`] accepts,
    /// as a regular expression without anchors, for the OpenAPI document;
    /// `None` if it accepts any key the generic rules allow.
    fn config_key_form(&self) -> Option<&'static str> {
        None
    }

    /// Patterns (ECMA 262 and Python alike) of the values of some config
    /// keys, which [`EngineKind::validate_configs`] checks, for the OpenAPI
    /// document.
    fn config_value_patterns(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    /// Config keys rucat sets itself (or that would break the engine's
    /// isolation or reachability); users may not set them.
    fn reserved_configs(&self) -> &'static [&'static str];

    /// Kind-specific checks of a request's configs, after the generic ones
    /// (count, lengths, characters) and the reserved keys. None by default.
    fn validate_configs(&self, _configs: &Configs) -> Result<(), ValidationError> {
        Ok(())
    }

    /// Whether users reach engines of this version through rucat's Spark
    /// Connect gateway (which adds the engine's token and sees their use).
    fn served_by_gateway(&self, version: &str) -> bool;

    /// Whether no engine of this kind, whatever its version, is served by
    /// the gateway, so that idle timeouts never apply to it; for the OpenAPI
    /// document, which cannot call [`EngineKind::served_by_gateway`].
    fn never_served_by_gateway(&self) -> bool {
        false
    }

    /// The address users are given for an engine listening on `port` of
    /// [`BIND_ADDRESS`], e.g. `sc://127.0.0.1:15002`.
    fn endpoint(&self, port: u16) -> String {
        format!("sc://{BIND_ADDRESS}:{port}")
    }

    /// Finds this kind's local installation and its version. Called once,
    /// when the local resource manager is built.
    async fn locate(&self, config: &LocalConfig) -> Result<LocalInstall, LocalSetupError>;

    /// Whether a machine without this kind may still run the others: a
    /// required kind that cannot be located stops the local resource
    /// manager from starting; another one only fails its own engines.
    fn required_locally(&self) -> bool {
        false
    }

    /// The argument that only this engine's processes carry on their
    /// command lines; finding it in `/proc/<pid>/cmdline` proves that a
    /// recorded pid was not recycled, and finds a process whose pid was
    /// never recorded. [`EngineKind::launch_plan`] must put it among the
    /// arguments (or as `arg0`) of every process as is.
    fn process_marker(&self, engine_dir: &Path) -> String;

    /// How many ports besides the engine's own (`launch.port`) its
    /// processes listen on, e.g. each Ballista executor's three; rucat picks
    /// them free and hands them over as `launch.extra_ports`.
    fn extra_ports(&self, _spec: &EngineSpec) -> usize {
        0
    }

    /// How to start one engine as local processes: a main one that listens
    /// on `launch.port` of [`BIND_ADDRESS`], and any companions. `Err` is a
    /// reason the engine cannot be started (its configs, validated when it
    /// was asked for, no longer make sense to this kind).
    fn launch_plan(&self, launch: &Launch<'_>) -> Result<LaunchPlan, String>;

    /// The images this kind's pods run on Kubernetes, by component, with
    /// their defaults; operators override them per version. None by
    /// default: such a kind cannot run on Kubernetes.
    fn kube_images(&self) -> &'static [kube::KubeImage] {
        &[]
    }

    /// What an engine of this kind needs on Kubernetes (see [`kube`]).
    /// Pure, like [`EngineKind::launch_plan`]. The error is shown to the
    /// user as is; by default the kind cannot run on Kubernetes, so kinds
    /// written before Kubernetes support keep compiling.
    fn kube_plan(&self, _context: &kube::KubeContext<'_>) -> Result<kube::KubePlan, String> {
        Err(format!("{} engines cannot run on Kubernetes", self.name()))
    }

    /// The reason shown to a user for an engine whose process has ended:
    /// `exit` says how, e.g. "exited with code 1", if known, and
    /// `log_summary` is the end of its log (see
    /// [`crate::logs::reason::summarize_log`]).
    fn failure_reason(&self, exit: Option<&str>, log_summary: &str) -> String {
        let name = self.name();
        let head = match exit {
            Some(exit) => format!("{name} {exit}"),
            None => format!("{name}'s process is gone and its exit status is unknown"),
        };
        if log_summary.is_empty() {
            format!("{head}; its log is empty")
        } else {
            format!("{head}; end of its log:\n{log_summary}")
        }
    }
}

/// A kind's installation on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalInstall {
    /// Where it was found (a Spark home, a Python), for messages.
    pub location: PathBuf,
    /// The program that starts an engine.
    pub program: PathBuf,
    /// The only version of the kind this machine runs.
    pub version: String,
}

/// Everything that decides how one engine is started.
#[derive(Clone, Copy, Debug)]
pub struct Launch<'a> {
    pub spec: &'a EngineSpec,
    pub install: &'a LocalInstall,
    pub config: &'a LocalConfig,
    /// The engine's port on [`BIND_ADDRESS`].
    pub port: u16,
    /// As many more free ports as [`EngineKind::extra_ports`] asked for.
    pub extra_ports: &'a [u16],
    /// The engine's work directory (also the process's working directory);
    /// it holds `local/`, `tmp/` and `warehouse/`, which exist at launch.
    pub engine_dir: &'a Path,
}

impl Launch<'_> {
    pub fn local_dir(&self) -> PathBuf {
        self.engine_dir.join("local")
    }
    pub fn tmp_dir(&self) -> PathBuf {
        self.engine_dir.join("tmp")
    }
    pub fn warehouse_dir(&self) -> PathBuf {
        self.engine_dir.join("warehouse")
    }
}

/// The processes of one engine. The main one is started first, leads a
/// process group of its own (so stopping the engine signals the group) and
/// writes `engine.log`; its port is the engine's endpoint. Companions (e.g.
/// Ballista's executors) join its group, each with a log of its own. The
/// engine is Running once the main port accepts connections and every
/// companion is [ready](Companion::ready); it fails when any of them ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchPlan {
    pub main: Process,
    pub companions: Vec<Companion>,
}

impl From<Process> for LaunchPlan {
    fn from(main: Process) -> Self {
        Self {
            main,
            companions: Vec::new(),
        }
    }
}

/// One process to start, its output going to its log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    pub program: PathBuf,
    /// The command line's first word, if not `program`: a place for the
    /// [process marker](EngineKind::process_marker) for programs without a
    /// harmless flag to carry it (a script started through its interpreter
    /// loses it, so this is for binaries).
    pub arg0: Option<String>,
    pub args: Vec<String>,
    /// Set on top of rucat's own environment. Secrets go here, never in
    /// `args`, which `ps` shows anyone.
    pub envs: Vec<(String, OsString)>,
}

impl Process {
    pub fn new(program: impl Into<PathBuf>, args: Vec<String>) -> Self {
        Self {
            program: program.into(),
            arg0: None,
            args,
            envs: Vec::new(),
        }
    }
}

/// A process of an engine besides its main one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Companion {
    /// Names its log, `<name>.log` in the engine's directory, and its
    /// failures ("executor-2: ..."): `a-z`, `0-9` and `-`, unique per engine.
    pub name: String,
    pub process: Process,
    /// What must answer before the engine counts as Running; `None`: being
    /// alive is enough.
    pub ready: Option<ReadyCheck>,
}

/// How rucat asks a local process whether it is ready.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ReadyCheck {
    /// Its port on [`BIND_ADDRESS`] accepts connections.
    Listening { port: u16 },
    /// `GET http://127.0.0.1:<port><path>` answers 200, e.g. a health
    /// endpoint that turns ready once the process has joined its cluster.
    HttpOk { port: u16, path: String },
}

/// The kinds one rucat process knows, by name.
#[derive(Clone)]
pub struct Kinds {
    kinds: Vec<Arc<dyn EngineKind>>,
}

/// The kinds of this process, if a program installed its own.
static INSTALLED: OnceLock<Kinds> = OnceLock::new();

static BUILTIN: LazyLock<Kinds> = LazyLock::new(|| Kinds {
    kinds: vec![
        Arc::new(spark::Spark),
        Arc::new(sail::Sail),
        Arc::new(ballista::Ballista),
    ],
});

impl Kinds {
    /// The kinds rucat ships: Spark, Sail and Ballista.
    pub fn builtin() -> &'static Kinds {
        &BUILTIN
    }

    /// The kinds this process knows: those [installed](Self::install), else
    /// the built-in ones. Request validation, the OpenAPI document, the
    /// gateway and [`LocalResourceManager::new`] use them.
    ///
    /// [`LocalResourceManager::new`]: crate::resource::local::LocalResourceManager::new
    pub fn installed() -> &'static Kinds {
        INSTALLED.get().unwrap_or(&BUILTIN)
    }

    /// Makes these the kinds of the whole process, e.g. the built-in ones
    /// plus a third party's. Process-wide because what a kind is must not
    /// depend on which part of rucat asks (a request accepted by the API and
    /// then refused by the monitor would be lost). Call it once, at startup,
    /// before anything else of rucat; a second call is refused and gets its
    /// kinds back.
    pub fn install(self) -> Result<(), Kinds> {
        INSTALLED.set(self)
    }

    /// Adds `kind`, replacing a kind of the same name.
    pub fn register(mut self, kind: impl EngineKind) -> Self {
        self.kinds.retain(|k| k.name() != kind.name());
        self.kinds.push(Arc::new(kind));
        self
    }

    pub fn get(&self, engine_type: &EngineType) -> Option<&Arc<dyn EngineKind>> {
        self.by_name(engine_type.name())
    }

    pub fn by_name(&self, name: &str) -> Option<&Arc<dyn EngineKind>> {
        self.kinds.iter().find(|k| k.name() == name)
    }

    /// In registration order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn EngineKind>> {
        self.kinds.iter()
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.kinds.iter().map(|k| k.name()).collect()
    }
}

impl std::fmt::Debug for Kinds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// Whether `version` is three numbers of at most four digits, e.g. `4.3.0`.
pub(crate) fn numeric_version(version: &str) -> Option<[u32; 3]> {
    let mut parts = version.split('.');
    let mut numbers = [0u32; 3];
    for n in &mut numbers {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 4 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *n = part.parse().ok()?;
    }
    parts.next().is_none().then_some(numbers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_kinds_are_found_by_name() {
        let kinds = Kinds::builtin();
        assert_eq!(kinds.names(), ["Spark", "Sail", "Ballista"]);
        assert_eq!(
            kinds.get(&EngineType::Spark).map(|k| k.name()),
            Some("Spark")
        );
        assert_eq!(kinds.get(&EngineType::Sail).map(|k| k.name()), Some("Sail"));
        assert!(kinds.by_name("spark").is_none(), "names are case-sensitive");
        assert!(kinds.by_name("Flink").is_none());
    }

    #[test]
    fn registering_adds_or_replaces_by_name() {
        let kinds = Kinds::builtin().clone().register(sail::Sail);
        assert_eq!(kinds.names(), ["Spark", "Ballista", "Sail"]);
    }

    #[test]
    fn numeric_versions() {
        assert_eq!(numeric_version("4.3.0"), Some([4, 3, 0]));
        assert_eq!(numeric_version("0.7.12"), Some([0, 7, 12]));
        for bad in [
            "",
            "4.0",
            "4.0.0-rc1",
            "latest",
            "4..0",
            "1.2.3.4",
            "12345.0.0",
        ] {
            assert_eq!(numeric_version(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_default_failure_reason_names_the_kind() {
        assert_eq!(
            sail::Sail.failure_reason(Some("exited with code 1"), "boom"),
            "Sail exited with code 1; end of its log:\nboom"
        );
        assert_eq!(
            sail::Sail.failure_reason(None, ""),
            "Sail's process is gone and its exit status is unknown; its log is empty"
        );
    }
}
