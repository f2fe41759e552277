//! Apache Ballista (<https://datafusion.apache.org/ballista/>), a Rust,
//! Arrow-based distributed engine: one scheduler plus executors, run
//! locally as `ballista-scheduler` and `ballista-executor` processes.
//!
//! Clients connect to the scheduler (`df://HOST:PORT`, with the `ballista`
//! crate's `SessionContext::remote` or the `ballista` Python client) and
//! fetch results from the executors over Arrow Flight directly, so Ballista
//! engines do not go through rucat's Spark Connect gateway: users are given
//! the scheduler's address. Ballista checks no token, so local engines
//! listen on loopback only.
//!
//! Configs:
//! - `executors`: how many executors (1 to [`MAX_EXECUTORS`], default
//!   [`DEFAULT_EXECUTORS`]);
//! - `executor.<flag>`: `--<flag>=<value>` for every executor, e.g.
//!   `executor.vcores: 4` (tasks each runs at once; `concurrent-tasks`
//!   before Ballista deprecated it) or `executor.memory-pool-size: 2GiB`
//!   (locally [`LocalConfig::ballista_executor_memory`] unless set);
//! - `scheduler.<flag>`: `--<flag>=<value>` for the scheduler, e.g.
//!   `scheduler.scheduler-policy: push-staged`.
//!
//! The flags are Ballista's own (`ballista-executor --help`); rucat sets
//! those that decide addresses, ports and directories, so users may not
//! ([`RESERVED_CONFIGS`]). Ballista checks the rest when it starts, so a
//! bad value fails the engine with Ballista's reason in that process's log.

pub mod k8s;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{
    BIND_ADDRESS, Companion, EngineKind, Launch, LaunchPlan, LocalInstall, Process, ReadyCheck,
    numeric_version,
};
use crate::engine::{Configs, EngineSpec};
use crate::request::ValidationError;
use crate::resource::local::{LocalConfig, LocalSetupError};

/// The `engine_type` of Ballista engines.
pub const NAME: &str = "Ballista";

/// The scheduler's and the executors' program names, upstream's.
pub const SCHEDULER_PROGRAM: &str = "ballista-scheduler";
pub const EXECUTOR_PROGRAM: &str = "ballista-executor";

pub const DEFAULT_EXECUTORS: u16 = 2;
/// Enough for any one machine; a bigger cluster is a Kubernetes one.
pub const MAX_EXECUTORS: u16 = 64;
/// Each executor listens for Flight, for the scheduler's gRPC and for
/// health checks.
pub const PORTS_PER_EXECUTOR: usize = 3;

/// The oldest Ballista major version rucat was tested with. Its scheduler,
/// executors and clients must share a protocol version, and rucat relies on
/// flags (`--bind-health-port`, `/readyz`) that came with it.
const OLDEST_MAJOR: u32 = 55;

/// The executor flags of how many tasks it runs at once (`concurrent-tasks`
/// is the deprecated name), checked before it starts for a clear answer.
const TASK_SLOTS: &[&str] = &["executor.vcores", "executor.concurrent-tasks"];
const MAX_TASK_SLOTS: u16 = 999;

/// What [`Settings::from_configs`] accepts as values, for the OpenAPI
/// document.
const VALUE_PATTERNS: &[(&str, &str)] = &[
    ("executors", "^([1-9]|[1-5][0-9]|6[0-4])$"),
    ("executor.vcores", "^[1-9][0-9]{0,2}$"),
    ("executor.concurrent-tasks", "^[1-9][0-9]{0,2}$"),
];

/// The executor flags that size its memory pool; without either, Ballista
/// gives every executor 70% of the machine's memory.
const MEMORY_FLAGS: &[&str] = &["--memory-pool-size=", "--memory-pool-fraction="];

const KEY_FORM: &str = r"executors|(scheduler|executor)\.[a-z][a-z0-9-]{0,63}";

/// Ballista Apache, as an [`EngineKind`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Ballista;

/// Flags rucat sets: where each process listens and is reached, its
/// identity, and where it writes.
pub const RESERVED_CONFIGS: &[&str] = &[
    "scheduler.bind-host",
    "scheduler.bind-port",
    "scheduler.external-host",
    "scheduler.id",
    "scheduler.log-dir",
    "executor.bind-host",
    "executor.bind-port",
    "executor.bind-grpc-port",
    "executor.bind-health-port",
    "executor.external-host",
    "executor.scheduler-host",
    "executor.scheduler-port",
    "executor.scheduler-connect-timeout-seconds",
    "executor.id",
    "executor.work-dir",
    "executor.log-dir",
];

/// An engine's configs as Ballista's processes take them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub executors: u16,
    /// `--flag=value`, each one argument, so a value cannot add another.
    pub scheduler_args: Vec<String>,
    pub executor_args: Vec<String>,
}

impl Settings {
    /// Checks and sorts out an engine's configs (the reserved keys are
    /// refused before this, by request validation).
    pub fn from_configs(configs: &Configs) -> Result<Self, ValidationError> {
        let mut settings = Settings {
            executors: DEFAULT_EXECUTORS,
            scheduler_args: Vec::new(),
            executor_args: Vec::new(),
        };
        for (key, value) in configs {
            let field = || format!("configs.{key}");
            if key == "executors" {
                settings.executors = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_EXECUTORS).contains(n))
                    .ok_or_else(|| {
                        ValidationError::new(
                            field(),
                            format!("the number of executors, 1 to {MAX_EXECUTORS}"),
                        )
                    })?;
                continue;
            }
            let (args, flag) = match key.split_once('.') {
                Some(("scheduler", flag)) => (&mut settings.scheduler_args, flag),
                Some(("executor", flag)) => (&mut settings.executor_args, flag),
                _ => {
                    return Err(ValidationError::new(
                        field(),
                        "Ballista configs are `executors`, `executor.<flag>` or \
                         `scheduler.<flag>` (a flag of ballista-executor or \
                         ballista-scheduler, e.g. executor.vcores)",
                    ));
                }
            };
            if !is_flag(flag) {
                return Err(ValidationError::new(
                    field(),
                    "a flag is a-z, 0-9 and '-', starting with a letter, at most 64 \
                     characters, e.g. vcores",
                ));
            }
            let slots = || {
                value
                    .parse::<u16>()
                    .ok()
                    .filter(|n| (1..=MAX_TASK_SLOTS).contains(n))
            };
            if TASK_SLOTS.contains(&key.as_str()) && slots().is_none() {
                return Err(ValidationError::new(
                    field(),
                    format!(
                        "the number of tasks each executor runs at once, 1 to {MAX_TASK_SLOTS}"
                    ),
                ));
            }
            args.push(format!("--{flag}={value}"));
        }
        Ok(settings)
    }
}

impl Settings {
    /// Whether the engine sizes its executors' memory pools itself.
    pub fn sizes_memory(&self) -> bool {
        self.executor_args
            .iter()
            .any(|arg| MEMORY_FLAGS.iter().any(|flag| arg.starts_with(flag)))
    }
}

fn is_flag(flag: &str) -> bool {
    let mut bytes = flag.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && flag.len() <= 64
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'))
}

#[async_trait]
impl EngineKind for Ballista {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Ballista 55.0.0 and later (its versions follow DataFusion's). A local
    /// machine runs only the one it has installed.
    fn check_version(&self, version: &str) -> Result<(), String> {
        match numeric_version(version) {
            Some([major, _, _]) if major >= OLDEST_MAJOR => Ok(()),
            _ => Err(format!(
                "Ballista version {version:?} is not supported; use {OLDEST_MAJOR}.0.0 or later, \
                 e.g. 55.0.0"
            )),
        }
    }

    fn version_pattern(&self) -> &'static str {
        r"^(5[5-9]|[6-9][0-9]|[1-9][0-9]{2,3})\.[0-9]{1,4}\.[0-9]{1,4}$"
    }

    fn config_key_form(&self) -> Option<&'static str> {
        Some(KEY_FORM)
    }

    fn reserved_configs(&self) -> &'static [&'static str] {
        RESERVED_CONFIGS
    }

    fn config_value_patterns(&self) -> &'static [(&'static str, &'static str)] {
        VALUE_PATTERNS
    }

    fn validate_configs(&self, configs: &Configs) -> Result<(), ValidationError> {
        Settings::from_configs(configs).map(drop)
    }

    /// Never: Ballista is not Spark Connect, and its clients fetch results
    /// from the executors directly.
    fn served_by_gateway(&self, _version: &str) -> bool {
        false
    }

    fn never_served_by_gateway(&self) -> bool {
        true
    }

    fn endpoint(&self, port: u16) -> String {
        format!("df://{BIND_ADDRESS}:{port}")
    }

    async fn locate(&self, config: &LocalConfig) -> Result<LocalInstall, LocalSetupError> {
        let unavailable = |reason: String| LocalSetupError::KindUnavailable {
            kind: NAME.to_owned(),
            reason,
        };
        let dir = match &config.ballista_bin_dir {
            Some(dir) => dir.clone(),
            None => on_path(SCHEDULER_PROGRAM).ok_or_else(|| {
                unavailable(format!(
                    "{SCHEDULER_PROGRAM} is not on PATH; install Ballista or set \
                     local.ballista_bin_dir"
                ))
            })?,
        };
        let scheduler = version_of(&dir.join(SCHEDULER_PROGRAM))
            .await
            .map_err(unavailable)?;
        let executor = version_of(&dir.join(EXECUTOR_PROGRAM))
            .await
            .map_err(unavailable)?;
        if scheduler != executor {
            return Err(unavailable(format!(
                "{SCHEDULER_PROGRAM} is {scheduler} but {EXECUTOR_PROGRAM} is {executor} in {}",
                dir.display()
            )));
        }
        Ok(LocalInstall {
            program: dir.join(SCHEDULER_PROGRAM),
            location: dir,
            version: scheduler,
        })
    }

    /// Carried as every process's `arg0`: Ballista has no flag that the
    /// scheduler and the executors share and that is harmless to repeat.
    fn process_marker(&self, engine_dir: &Path) -> String {
        format!("rucat-ballista={}", engine_dir.display())
    }

    fn extra_ports(&self, spec: &EngineSpec) -> usize {
        Settings::from_configs(&spec.configs)
            .map_or(0, |s| usize::from(s.executors) * PORTS_PER_EXECUTOR)
    }

    fn kube_images(&self) -> &'static [super::kube::KubeImage] {
        k8s::IMAGES
    }

    /// See [`k8s`]: a scheduler pod and its service, and the executor pods
    /// it owns.
    fn kube_plan(
        &self,
        context: &super::kube::KubeContext<'_>,
    ) -> Result<super::kube::KubePlan, String> {
        k8s::plan(context)
    }

    fn launch_plan(&self, launch: &Launch<'_>) -> Result<LaunchPlan, String> {
        let settings = Settings::from_configs(&launch.spec.configs).map_err(|e| e.to_string())?;
        let marker = self.process_marker(launch.engine_dir);
        let envs: Vec<(String, OsString)> = vec![("TMPDIR".into(), launch.tmp_dir().into())];
        let process = |program: PathBuf, args: Vec<String>| Process {
            program,
            arg0: Some(marker.clone()),
            args,
            envs: envs.clone(),
        };
        let port = launch.port.to_string();
        let mut scheduler_args: Vec<String> = [
            "--bind-host",
            BIND_ADDRESS,
            "--external-host",
            BIND_ADDRESS,
            "--bind-port",
            &port,
        ]
        .map(str::to_owned)
        .to_vec();
        scheduler_args.extend(settings.scheduler_args.iter().cloned());
        let executor_program = launch.install.location.join(EXECUTOR_PROGRAM);
        let needed = usize::from(settings.executors) * PORTS_PER_EXECUTOR;
        if launch.extra_ports.len() < needed {
            return Err(format!(
                "{} executors need {needed} ports; {} were given",
                settings.executors,
                launch.extra_ports.len()
            ));
        }
        let companions = launch
            .extra_ports
            .chunks_exact(PORTS_PER_EXECUTOR)
            .take(usize::from(settings.executors))
            .enumerate()
            .map(|(i, ports)| {
                let name = format!("executor-{}", i + 1);
                let work_dir = launch.local_dir().join(&name);
                let mut args: Vec<String> = [
                    "--bind-host",
                    BIND_ADDRESS,
                    "--external-host",
                    BIND_ADDRESS,
                    "--scheduler-host",
                    BIND_ADDRESS,
                    "--scheduler-port",
                    &port,
                    "--bind-port",
                    &ports[0].to_string(),
                    "--bind-grpc-port",
                    &ports[1].to_string(),
                    "--bind-health-port",
                    &ports[2].to_string(),
                    // Started with the scheduler, it may not listen yet.
                    "--scheduler-connect-timeout-seconds",
                    "60",
                ]
                .map(str::to_owned)
                .to_vec();
                args.push(format!("--work-dir={}", work_dir.display()));
                if !settings.sizes_memory() {
                    let memory = &launch.config.ballista_executor_memory;
                    args.push(format!("--memory-pool-size={memory}"));
                }
                args.extend(settings.executor_args.iter().cloned());
                Companion {
                    process: process(executor_program.clone(), args),
                    // Ready after its first heartbeat reached the scheduler:
                    // it has registered and can be given tasks.
                    ready: Some(ReadyCheck::HttpOk {
                        port: ports[2],
                        path: "/readyz".into(),
                    }),
                    name,
                }
            })
            .collect();
        Ok(LaunchPlan {
            main: process(launch.install.program.clone(), scheduler_args),
            companions,
        })
    }
}

/// The directory of `program` on `PATH`.
fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|dir| dir.join(program).is_file())
}

/// A Ballista binary's version, from `--version` (`ballista-scheduler
/// 55.0.0`).
async fn version_of(program: &Path) -> Result<String, String> {
    let output = tokio::process::Command::new(program)
        .arg("--version")
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("{} could not be run: {e}", program.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let version = stdout.split_whitespace().last().unwrap_or_default();
    if !output.status.success() || numeric_version(version).is_none() {
        return Err(format!(
            "{} --version did not print a version: {}",
            program.display(),
            stdout.trim()
        ));
    }
    Ok(version.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{EngineId, EngineType};

    fn configs(pairs: &[(&str, &str)]) -> Configs {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn versions() {
        for good in ["55.0.0", "55.1.2", "56.0.0", "100.0.0"] {
            assert!(Ballista.check_version(good).is_ok(), "{good}");
        }
        for bad in ["54.9.9", "43.0.0", "55.0", "latest", "", "4.3.0"] {
            assert!(Ballista.check_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_from_configs() {
        assert_eq!(
            Settings::from_configs(&Configs::new()).unwrap(),
            Settings {
                executors: DEFAULT_EXECUTORS,
                scheduler_args: vec![],
                executor_args: vec![],
            }
        );
        let settings = Settings::from_configs(&configs(&[
            ("executors", "3"),
            ("executor.vcores", "4"),
            ("executor.memory-pool-size", "1 GB"),
            ("scheduler.scheduler-policy", "push-staged"),
        ]))
        .unwrap();
        assert_eq!(settings.executors, 3);
        assert_eq!(
            settings.executor_args,
            ["--memory-pool-size=1 GB", "--vcores=4"]
        );
        assert_eq!(settings.scheduler_args, ["--scheduler-policy=push-staged"]);
    }

    #[test]
    fn bad_configs_name_the_key() {
        for (key, value) in [
            ("executors", "0"),
            ("executors", "65"),
            ("executors", "two"),
            ("executor.concurrent-tasks", "0"),
            ("executor.vcores", "lots"),
            ("executor.vcores", "1000"),
            ("executor.Bad", "1"),
            ("executor.-x", "1"),
            ("executor.", "1"),
            ("worker.threads", "1"),
            ("spark.executor.cores", "1"),
        ] {
            let err = Settings::from_configs(&configs(&[(key, value)])).unwrap_err();
            assert_eq!(err.field, format!("configs.{key}"), "{key}={value}");
        }
    }

    #[test]
    fn the_reserved_configs_are_flags_of_their_process() {
        for key in RESERVED_CONFIGS {
            let (process, flag) = key.split_once('.').unwrap();
            assert!(
                matches!(process, "scheduler" | "executor") && is_flag(flag),
                "{key}"
            );
        }
    }

    #[test]
    fn golden_launch_plan() {
        let spec = EngineSpec {
            id: "0123456789abcdef0123456789abcdef"
                .parse::<EngineId>()
                .unwrap(),
            name: "b".into(),
            engine_type: EngineType::Ballista,
            version: "55.0.0".into(),
            configs: configs(&[
                ("executors", "2"),
                ("executor.vcores", "2"),
                ("scheduler.scheduler-policy", "push-staged"),
            ]),
            token: Some(crate::token::EngineToken::generate().unwrap()),
        };
        let install = LocalInstall {
            location: "/b".into(),
            program: "/b/ballista-scheduler".into(),
            version: "55.0.0".into(),
        };
        assert_eq!(Ballista.extra_ports(&spec), 6);
        let config = LocalConfig::default();
        let launch = |extra_ports| Launch {
            spec: &spec,
            install: &install,
            config: &config,
            port: 20000,
            extra_ports,
            engine_dir: Path::new("/w/e"),
        };
        let err = Ballista.launch_plan(&launch(&[1, 2, 3])).unwrap_err();
        assert!(err.contains("need 6 ports"), "{err}");
        let plan = Ballista
            .launch_plan(&launch(&[20001, 20002, 20003, 20004, 20005, 20006]))
            .unwrap();
        let tmp = ("TMPDIR".to_owned(), OsString::from("/w/e/tmp"));
        let marker = Some("rucat-ballista=/w/e".to_owned());
        assert_eq!(
            plan.main,
            Process {
                program: "/b/ballista-scheduler".into(),
                arg0: marker.clone(),
                args: [
                    "--bind-host",
                    "127.0.0.1",
                    "--external-host",
                    "127.0.0.1",
                    "--bind-port",
                    "20000",
                    "--scheduler-policy=push-staged"
                ]
                .map(str::to_owned)
                .to_vec(),
                envs: vec![tmp.clone()],
            }
        );
        assert_eq!(plan.companions.len(), 2);
        let second = &plan.companions[1];
        assert_eq!(second.name, "executor-2");
        assert_eq!(
            second.ready,
            Some(ReadyCheck::HttpOk {
                port: 20006,
                path: "/readyz".into()
            })
        );
        assert_eq!(
            second.process,
            Process {
                program: "/b/ballista-executor".into(),
                arg0: marker,
                args: [
                    "--bind-host",
                    "127.0.0.1",
                    "--external-host",
                    "127.0.0.1",
                    "--scheduler-host",
                    "127.0.0.1",
                    "--scheduler-port",
                    "20000",
                    "--bind-port",
                    "20004",
                    "--bind-grpc-port",
                    "20005",
                    "--bind-health-port",
                    "20006",
                    "--scheduler-connect-timeout-seconds",
                    "60",
                    "--work-dir=/w/e/local/executor-2",
                    "--memory-pool-size=1GiB",
                    "--vcores=2",
                ]
                .map(str::to_owned)
                .to_vec(),
                envs: vec![tmp],
            },
            "no token anywhere: Ballista cannot check one"
        );
        assert_eq!(Ballista.endpoint(20000), "df://127.0.0.1:20000");
        assert!(!Ballista.served_by_gateway("55.0.0"));
        assert!(Ballista.never_served_by_gateway());
    }

    #[tokio::test]
    async fn a_missing_install_is_a_typed_error() {
        let config = LocalConfig {
            ballista_bin_dir: Some("/nonexistent".into()),
            ..LocalConfig::default()
        };
        let err = Ballista.locate(&config).await.unwrap_err();
        assert!(
            matches!(&err, LocalSetupError::KindUnavailable { kind, .. } if kind == "Ballista"),
            "{err}"
        );
    }
}
