//! Sail (<https://github.com/lakehq/sail>), a Rust engine that speaks the
//! Spark Connect protocol, run locally as `sail spark server` from the
//! `pysail` package of a configured Python.
//!
//! Sail cannot check a pre-shared token: its engines listen on loopback
//! only and users reach them through rucat's gateway, which demands the
//! engine's token from clients (and adds it, which Sail ignores). Its
//! configs are Sail's own keys (e.g. `execution.batch_size`), given to the
//! server as its `SAIL_*` environment variables
//! (`SAIL_EXECUTION__BATCH_SIZE`); Sail checks their values when it starts,
//! so a bad value fails the engine with Sail's reason in its log.

pub mod k8s;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{BIND_ADDRESS, EngineKind, Launch, LaunchPlan, LocalInstall, Process, numeric_version};
use crate::engine::Configs;
use crate::request::ValidationError;
use crate::resource::local::{LocalConfig, LocalSetupError};

/// The `engine_type` of Sail engines.
pub const NAME: &str = "Sail";

/// Sail, as an [`EngineKind`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Sail;

/// Sail keys rucat decides: `mode` (rucat runs Sail's local server; its
/// cluster modes would start workers rucat does not track).
pub const RESERVED_CONFIGS: &[&str] = &["mode"];

/// The oldest Sail minor version rucat was tested with (0.7).
const OLDEST_MINOR: u32 = 7;

/// Sail's key form, as [`Sail::validate_configs`] checks it.
const KEY_FORM: &str = r"[a-z0-9_]+(\.[a-z0-9_]+)*";

/// Sail's prefix for configuration through the environment.
const ENV_PREFIX: &str = "SAIL_";

#[async_trait]
impl EngineKind for Sail {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Sail 0.7.0 and later 0.x (what `pysail.__version__` reports, e.g.
    /// `0.7.2`): tested with 0.7, and a 1.0 may change what rucat relies
    /// on (the CLI, `SAIL_*` configs). A local machine runs only the one it
    /// has installed.
    fn check_version(&self, version: &str) -> Result<(), String> {
        match numeric_version(version) {
            Some([0, minor, _]) if minor >= OLDEST_MINOR => Ok(()),
            _ => Err(format!(
                "Sail version {version:?} is not supported; use 0.x.y from 0.7.0 on, e.g. 0.7.2"
            )),
        }
    }

    fn version_pattern(&self) -> &'static str {
        r"^0\.([7-9]|[1-9][0-9]{1,3})\.[0-9]{1,4}$"
    }

    fn config_key_form(&self) -> Option<&'static str> {
        Some(KEY_FORM)
    }

    fn reserved_configs(&self) -> &'static [&'static str] {
        RESERVED_CONFIGS
    }

    /// Keys become environment variable names, so only Sail's key form is
    /// accepted: dot-separated words of `a-z`, `0-9` and `_`.
    fn validate_configs(&self, configs: &Configs) -> Result<(), ValidationError> {
        for key in configs.keys() {
            let word = |w: &str| {
                !w.is_empty()
                    && w.bytes()
                        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
            };
            if !key.split('.').all(word) {
                return Err(ValidationError::new(
                    format!("configs.{key}"),
                    "Sail keys are dot-separated words of a-z, 0-9 and '_', e.g. execution.batch_size",
                ));
            }
        }
        Ok(())
    }

    /// Always: Sail speaks Spark Connect but checks no token, so the
    /// gateway is the only way in.
    fn served_by_gateway(&self, _version: &str) -> bool {
        true
    }

    async fn locate(&self, config: &LocalConfig) -> Result<LocalInstall, LocalSetupError> {
        let python = config.sail_python.as_deref().unwrap_or(&config.python);
        locate(python).await
    }

    /// `--directory=<engine dir>`: Sail's own flag for its working
    /// directory, which is the engine's anyway, written as one argument.
    fn process_marker(&self, engine_dir: &Path) -> String {
        format!("--directory={}", engine_dir.display())
    }

    fn kube_images(&self) -> &'static [super::kube::KubeImage] {
        k8s::IMAGES
    }

    /// See [`k8s`]: a `sail spark server` pod and its service.
    fn kube_plan(
        &self,
        context: &super::kube::KubeContext<'_>,
    ) -> Result<super::kube::KubePlan, String> {
        Ok(k8s::plan(context))
    }

    fn launch_plan(&self, launch: &Launch<'_>) -> Result<LaunchPlan, String> {
        let args = [
            "-m",
            "pysail",
            "spark",
            "server",
            "--ip",
            BIND_ADDRESS,
            "--port",
            &launch.port.to_string(),
            &self.process_marker(launch.engine_dir),
        ]
        .map(str::to_owned)
        .to_vec();
        let mut envs: Vec<(String, OsString)> = launch
            .spec
            .configs
            .iter()
            .map(|(key, value)| (env_name(key), value.into()))
            .collect();
        envs.push(("TMPDIR".into(), launch.tmp_dir().into()));
        Ok(Process {
            envs,
            ..Process::new(&launch.install.program, args)
        }
        .into())
    }
}

/// The environment variable Sail reads a config key from:
/// `execution.batch_size` is `SAIL_EXECUTION__BATCH_SIZE`.
pub fn env_name(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key.to_ascii_uppercase().replace('.', "__")
    )
}

/// The pysail of `python`: its version, asked of the package itself.
async fn locate(python: &Path) -> Result<LocalInstall, LocalSetupError> {
    let unavailable = |reason: String| LocalSetupError::KindUnavailable {
        kind: NAME.to_owned(),
        reason,
    };
    let output = tokio::process::Command::new(python)
        .args(["-c", "import pysail; print(pysail.__version__)"])
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| unavailable(format!("{} could not be run: {e}", python.display())))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or("no error output");
        return Err(unavailable(format!(
            "{} has no pysail ({last}); pip install pysail",
            python.display()
        )));
    }
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if numeric_version(&version).is_none() {
        return Err(unavailable(format!(
            "{}'s pysail reports the version {version:?}",
            python.display()
        )));
    }
    Ok(LocalInstall {
        location: PathBuf::from(python),
        program: PathBuf::from(python),
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{EngineId, EngineSpec, EngineType};

    #[test]
    fn versions() {
        for good in ["0.7.0", "0.7.2", "0.8.1", "0.12.0"] {
            assert!(Sail.check_version(good).is_ok(), "{good}");
        }
        for bad in ["0.6.9", "0.7", "latest", "0.7.2rc1", "", "1.0.0", "4.3.0"] {
            assert!(Sail.check_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_keys_are_sails_form() {
        let configs = |key: &str| Configs::from([(key.to_owned(), "1".to_owned())]);
        assert!(
            Sail.validate_configs(&configs("execution.batch_size"))
                .is_ok()
        );
        for bad in ["Execution.x", "a..b", "spark-x", ".a", "a b"] {
            let err = Sail.validate_configs(&configs(bad)).unwrap_err();
            assert_eq!(err.field, format!("configs.{bad}"));
        }
        assert_eq!(
            env_name("execution.batch_size"),
            "SAIL_EXECUTION__BATCH_SIZE"
        );
    }

    #[test]
    fn golden_launch_plan() {
        let spec = EngineSpec {
            id: "0123456789abcdef0123456789abcdef"
                .parse::<EngineId>()
                .unwrap(),
            name: "s".into(),
            engine_type: EngineType::Sail,
            version: "0.7.2".into(),
            configs: Configs::from([("execution.batch_size".into(), "1024".into())]),
            token: Some(crate::token::EngineToken::generate().unwrap()),
        };
        let install = LocalInstall {
            location: "/py/python3".into(),
            program: "/py/python3".into(),
            version: "0.7.2".into(),
        };
        let plan = Sail
            .launch_plan(&Launch {
                spec: &spec,
                install: &install,
                config: &LocalConfig::default(),
                port: 15010,
                extra_ports: &[],
                engine_dir: Path::new("/w/e"),
            })
            .unwrap();
        assert!(plan.companions.is_empty());
        let plan = plan.main;
        assert_eq!(plan.arg0, None);
        assert_eq!(plan.program, PathBuf::from("/py/python3"));
        assert_eq!(
            plan.args,
            [
                "-m",
                "pysail",
                "spark",
                "server",
                "--ip",
                "127.0.0.1",
                "--port",
                "15010",
                "--directory=/w/e"
            ]
        );
        assert_eq!(
            plan.envs,
            [
                ("SAIL_EXECUTION__BATCH_SIZE".into(), OsString::from("1024")),
                ("TMPDIR".into(), OsString::from("/w/e/tmp")),
            ],
            "no token: Sail cannot check one"
        );
        assert_eq!(Sail.endpoint(15010), "sc://127.0.0.1:15010");
        assert!(Sail.served_by_gateway("0.7.2"));
    }

    #[tokio::test]
    async fn a_python_without_pysail_is_a_typed_error() {
        let err = locate(Path::new("/nonexistent/python")).await.unwrap_err();
        assert!(
            matches!(&err, LocalSetupError::KindUnavailable { kind, .. } if kind == "Sail"),
            "{err}"
        );
    }
}
