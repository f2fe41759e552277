//! Apache Spark, run as a Spark Connect server: the versions rucat drives,
//! the properties it reserves, the spark-submit command line of a local
//! engine, how to find a local Spark and read its version, and whether its
//! clients go through rucat's gateway. All but [`Spark::locate`] is free of
//! I/O, so it is checked against golden values.

pub mod k8s;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{BIND_ADDRESS, EngineKind, Launch, LaunchPlan, LocalInstall, Process, numeric_version};
use crate::engine::{Configs, EngineId};
use crate::resource::local::{LocalConfig, LocalSetupError};

/// The `engine_type` of Spark engines.
pub const NAME: &str = "Spark";

/// Spark, as an [`EngineKind`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Spark;

/// Spark properties that rucat (or its resource manager) sets itself: where the
/// engine listens, which master it uses and where it writes. A user value would
/// break the engine's isolation or its reachability.
pub const RESERVED_CONFIGS: &[&str] = &[
    "spark.master",
    "spark.submit.deployMode",
    "spark.app.name",
    "spark.connect.grpc.binding.port",
    "spark.connect.grpc.binding.address",
    "spark.connect.grpc.port.maxRetries",
    "spark.driver.host",
    "spark.driver.bindAddress",
    "spark.driver.port",
    "spark.blockManager.port",
    "spark.driver.blockManager.port",
    "spark.ui.enabled",
    "spark.ui.port",
    "spark.local.dir",
    "spark.sql.warehouse.dir",
    "spark.kubernetes.namespace",
    "spark.kubernetes.driver.pod.name",
    "spark.kubernetes.executor.podNamePrefix",
];

/// Spark versions rucat can drive as Spark Connect servers: 3.5.x, where
/// Spark Connect became generally available, and every 4.x.
pub fn version_supported(version: &str) -> bool {
    matches!(numeric_version(version), Some([4, _, _] | [3, 5, _]))
}

#[async_trait]
impl EngineKind for Spark {
    fn name(&self) -> &'static str {
        NAME
    }

    fn check_version(&self, version: &str) -> Result<(), String> {
        if version_supported(version) {
            Ok(())
        } else {
            Err(format!(
                "Spark version {version:?} is not supported; use 3.5.x or 4.x.y"
            ))
        }
    }

    fn version_pattern(&self) -> &'static str {
        r"^(3\.5|4\.[0-9]{1,4})\.[0-9]{1,4}$"
    }

    fn reserved_configs(&self) -> &'static [&'static str] {
        RESERVED_CONFIGS
    }

    /// Spark 4 engines: Spark 3.5's Spark Connect server cannot check a
    /// token, so its clients connect directly, and rucat sees nothing of
    /// their use.
    fn served_by_gateway(&self, version: &str) -> bool {
        !version.starts_with("3.")
    }

    /// Finds Spark in the configured home, else in `SPARK_HOME`, else in the
    /// pyspark package of `python`: pip's pyspark is a complete Spark, and
    /// the easiest one to install.
    async fn locate(&self, config: &LocalConfig) -> Result<LocalInstall, LocalSetupError> {
        locate(config.spark_home.as_deref(), &config.python).await
    }

    /// Spark is what a local rucat is for: a machine without it is reported
    /// at startup, as before there were other kinds.
    fn required_locally(&self) -> bool {
        true
    }

    fn process_marker(&self, engine_dir: &Path) -> String {
        local_dir_conf(&engine_dir.join("local"))
    }

    fn kube_images(&self) -> &'static [super::kube::KubeImage] {
        k8s::IMAGES
    }

    /// See [`k8s`]: a Spark Connect driver pod and its service; Spark
    /// creates the executors.
    fn kube_plan(
        &self,
        context: &super::kube::KubeContext<'_>,
    ) -> Result<super::kube::KubePlan, String> {
        Ok(k8s::plan(context))
    }

    fn launch_plan(&self, launch: &Launch<'_>) -> Result<LaunchPlan, String> {
        let args = submit_args(&SubmitPlan {
            id: &launch.spec.id,
            configs: &launch.spec.configs,
            master: &launch.config.master,
            driver_memory: &launch.config.driver_memory,
            port: launch.port,
            local_dir: &launch.local_dir(),
            tmp_dir: &launch.tmp_dir(),
            warehouse_dir: &launch.warehouse_dir(),
        });
        let inherited = std::env::var("SPARK_LAUNCHER_OPTS").ok();
        // Without SPARK_LOCAL_IP the driver and block manager bind to the
        // machine's outward address, whatever the Connect binding says.
        let mut envs: Vec<(String, OsString)> = vec![
            ("SPARK_LOCAL_IP".into(), BIND_ADDRESS.into()),
            (
                "SPARK_LAUNCHER_OPTS".into(),
                launcher_opts(inherited.as_deref()).into(),
            ),
            ("SPARK_HOME".into(), launch.install.location.clone().into()),
            ("SPARK_LOG_DIR".into(), launch.engine_dir.into()),
            ("SPARK_PID_DIR".into(), launch.engine_dir.into()),
        ];
        if let Some(token) = &launch.spec.token {
            envs.push((TOKEN_ENV.into(), token.expose().into()));
        }
        Ok(Process {
            envs,
            ..Process::new(&launch.install.program, args)
        }
        .into())
    }
}

/// The main class of a Spark Connect server; spark-submit knows it as an
/// internal class, so no application jar is needed.
pub(crate) const CONNECT_SERVER_CLASS: &str =
    "org.apache.spark.sql.connect.service.SparkConnectServer";

/// Where a Spark 4 Connect server reads the pre-shared token it demands from
/// clients (`PreSharedKeyAuthenticationInterceptor`). The environment rather
/// than `spark.connect.authenticate.token`, so that the token is on no command
/// line and in no Spark conf a client can read back.
pub(crate) const TOKEN_ENV: &str = "SPARK_CONNECT_AUTHENTICATE_TOKEN";

const DRIVER_MEMORY: &str = "spark.driver.memory";
const DRIVER_JAVA_OPTIONS: &str = "spark.driver.extraJavaOptions";

/// Everything that decides one engine's spark-submit command line.
pub(crate) struct SubmitPlan<'a> {
    pub id: &'a EngineId,
    pub configs: &'a Configs,
    pub master: &'a str,
    /// Used only when the user did not set `spark.driver.memory`.
    pub driver_memory: &'a str,
    pub port: u16,
    pub local_dir: &'a Path,
    pub tmp_dir: &'a Path,
    pub warehouse_dir: &'a Path,
}

/// The conf that names the engine's own local dir. It appears on the command
/// line of the engine's process (shell script and JVM alike) and of no other
/// process, so finding it in `/proc/<pid>/cmdline` proves a recorded pid was
/// not recycled.
pub(crate) fn local_dir_conf(local_dir: &Path) -> String {
    format!("spark.local.dir={}", local_dir.display())
}

/// The arguments after `spark-submit`.
///
/// The user's configs come before rucat's, because spark-submit keeps the last
/// value of a repeated `--conf`: the engine's address and its directories must
/// not be overridable, or clients could not find it and it could write outside
/// its work dir. The user's `spark.driver.memory` replaces the default instead
/// of fighting with `--driver-memory`, and the user's driver Java options are
/// kept, with rucat's appended so that its `java.io.tmpdir` wins.
pub(crate) fn submit_args(plan: &SubmitPlan<'_>) -> Vec<String> {
    let mut args = vec![
        "--master".to_owned(),
        plan.master.to_owned(),
        "--name".to_owned(),
        format!("rucat-{}", plan.id),
        "--class".to_owned(),
        CONNECT_SERVER_CLASS.to_owned(),
    ];
    if !plan.configs.contains_key(DRIVER_MEMORY) {
        args.extend(["--driver-memory".to_owned(), plan.driver_memory.to_owned()]);
    }
    let user = plan
        .configs
        .iter()
        .filter(|(k, _)| k.as_str() != DRIVER_JAVA_OPTIONS)
        .map(|(k, v)| format!("{k}={v}"));
    let own = [
        format!("spark.connect.grpc.binding.port={}", plan.port),
        format!("spark.connect.grpc.binding.address={BIND_ADDRESS}"),
        "spark.ui.enabled=false".to_owned(),
        local_dir_conf(plan.local_dir),
        format!("spark.sql.warehouse.dir={}", plan.warehouse_dir.display()),
        format!("{DRIVER_JAVA_OPTIONS}={}", driver_java_options(plan)),
    ];
    for conf in user.chain(own) {
        args.extend(["--conf".to_owned(), conf]);
    }
    args
}

/// The user's driver Java options followed by rucat's: temporary files go to
/// the engine's tmp dir, and `-XX:-UsePerfData` stops the JVM from writing
/// `hsperfdata` under the system temp dir, which `java.io.tmpdir` does not move.
fn driver_java_options(plan: &SubmitPlan<'_>) -> String {
    let own = format!(
        "-Djava.io.tmpdir={} -XX:-UsePerfData",
        quote_java_option(&plan.tmp_dir.display().to_string())
    );
    match plan.configs.get(DRIVER_JAVA_OPTIONS).map(|s| s.trim()) {
        Some(user) if !user.is_empty() => format!("{user} {own}"),
        _ => own,
    }
}

/// `SPARK_LAUNCHER_OPTS` for the short-lived JVM that `spark-class` runs to
/// compute the real command line: without `-XX:-UsePerfData` it too writes
/// under the system temp dir. Options the user already set are kept.
pub(crate) fn launcher_opts(inherited: Option<&str>) -> String {
    match inherited.map(str::trim) {
        Some(opts) if !opts.is_empty() => format!("{opts} -XX:-UsePerfData"),
        _ => "-XX:-UsePerfData".to_owned(),
    }
}

/// Spark splits Java option strings like a shell does, so a path with spaces
/// or quotes must be quoted to stay one option.
fn quote_java_option(value: &str) -> String {
    let plain = !value
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\'));
    if plain {
        return value.to_owned();
    }
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        if matches!(c, '"' | '\\') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// The version in a Spark distribution's `RELEASE` file, whose first line
/// reads like `Spark 4.3.0 built for Hadoop 3.4.1`.
pub(crate) fn version_from_release(release: &str) -> Option<String> {
    let mut words = release.lines().next()?.split_whitespace();
    match (words.next(), words.next()) {
        (Some("Spark"), Some(version)) => Some(version.to_owned()),
        _ => None,
    }
}

/// The version in the name of Spark's core jar, e.g. `spark-core_2.13-4.3.0.jar`.
/// pip's pyspark has no `RELEASE` file, but always ships this jar.
pub(crate) fn version_from_core_jar(file_name: &str) -> Option<String> {
    let rest = file_name
        .strip_prefix("spark-core_")?
        .strip_suffix(".jar")?;
    let (_scala, version) = rest.split_once('-')?;
    let numeric = version.split('.').all(|p| !p.is_empty())
        && version.starts_with(|c: char| c.is_ascii_digit());
    numeric.then(|| version.to_owned())
}

/// Finds Spark in the configured home, else in `SPARK_HOME`, else in the
/// pyspark package of `python`: pip's pyspark is a complete Spark, and the
/// easiest one to install.
async fn locate(configured: Option<&Path>, python: &Path) -> Result<LocalInstall, LocalSetupError> {
    let home = match configured {
        Some(home) => home.to_owned(),
        None => match std::env::var_os("SPARK_HOME").filter(|h| !h.is_empty()) {
            Some(home) => PathBuf::from(home),
            None => pyspark_home(python).await?,
        },
    };
    let submit = home.join("bin").join("spark-submit");
    if !submit.is_file() {
        return Err(LocalSetupError::SparkSubmitMissing(submit));
    }
    let version =
        installed_version(&home).ok_or_else(|| LocalSetupError::VersionUnknown(home.clone()))?;
    Ok(LocalInstall {
        location: home,
        program: submit,
        version,
    })
}

async fn pyspark_home(python: &Path) -> Result<PathBuf, LocalSetupError> {
    let script = "import os, pyspark; print(os.path.dirname(pyspark.__file__))";
    let output = tokio::process::Command::new(python)
        .args(["-c", script])
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| {
            LocalSetupError::SparkNotFound(format!(
                "SPARK_HOME is not set and {} could not be run: {e}",
                python.display()
            ))
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or("no error output");
        return Err(LocalSetupError::SparkNotFound(format!(
            "SPARK_HOME is not set and {} has no pyspark ({last})",
            python.display()
        )));
    }
    let home = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if home.is_empty() {
        return Err(LocalSetupError::SparkNotFound(format!(
            "{} printed no pyspark location",
            python.display()
        )));
    }
    Ok(PathBuf::from(home))
}

/// Read from files rather than by running `spark-submit --version`, which
/// starts a JVM.
fn installed_version(home: &Path) -> Option<String> {
    if let Some(version) = std::fs::read_to_string(home.join("RELEASE"))
        .ok()
        .and_then(|release| version_from_release(&release))
    {
        return Some(version);
    }
    std::fs::read_dir(home.join("jars"))
        .ok()?
        .filter_map(Result::ok)
        .find_map(|entry| version_from_core_jar(entry.file_name().to_str()?))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn id() -> EngineId {
        "0123456789abcdef0123456789abcdef".parse().unwrap()
    }

    fn args_for(configs: &[(&str, &str)], tmp: &str) -> Vec<String> {
        let configs: Configs = configs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let id = id();
        let root = PathBuf::from("/w/0123456789abcdef0123456789abcdef");
        submit_args(&SubmitPlan {
            id: &id,
            configs: &configs,
            master: "local[2]",
            driver_memory: "512m",
            port: 15002,
            local_dir: &root.join("local"),
            tmp_dir: &PathBuf::from(tmp),
            warehouse_dir: &root.join("warehouse"),
        })
    }

    #[test]
    fn golden_argument_list() {
        let args = args_for(
            &[("spark.executor.cores", "1")],
            "/w/0123456789abcdef0123456789abcdef/tmp",
        );
        let expected = [
            "--master",
            "local[2]",
            "--name",
            "rucat-0123456789abcdef0123456789abcdef",
            "--class",
            "org.apache.spark.sql.connect.service.SparkConnectServer",
            "--driver-memory",
            "512m",
            "--conf",
            "spark.executor.cores=1",
            "--conf",
            "spark.connect.grpc.binding.port=15002",
            "--conf",
            "spark.connect.grpc.binding.address=127.0.0.1",
            "--conf",
            "spark.ui.enabled=false",
            "--conf",
            "spark.local.dir=/w/0123456789abcdef0123456789abcdef/local",
            "--conf",
            "spark.sql.warehouse.dir=/w/0123456789abcdef0123456789abcdef/warehouse",
            "--conf",
            "spark.driver.extraJavaOptions=-Djava.io.tmpdir=/w/0123456789abcdef0123456789abcdef/tmp -XX:-UsePerfData",
        ];
        assert_eq!(args, expected);
    }

    #[test]
    fn user_driver_memory_replaces_the_default() {
        let args = args_for(&[("spark.driver.memory", "2g")], "/t");
        assert!(!args.iter().any(|a| a == "--driver-memory"));
        assert!(args.iter().any(|a| a == "spark.driver.memory=2g"));
    }

    #[test]
    fn user_java_options_are_kept_before_rucat_ones() {
        let args = args_for(
            &[("spark.driver.extraJavaOptions", " -Dfoo=bar -verbose:gc ")],
            "/t",
        );
        let opts: Vec<&String> = args
            .iter()
            .filter(|a| a.starts_with("spark.driver.extraJavaOptions="))
            .collect();
        assert_eq!(
            opts,
            [
                "spark.driver.extraJavaOptions=-Dfoo=bar -verbose:gc -Djava.io.tmpdir=/t -XX:-UsePerfData"
            ]
        );
    }

    #[test]
    fn rucat_confs_come_after_user_ones_so_they_win() {
        let args = args_for(&[("spark.ui.enabled", "true")], "/t");
        let user = args.iter().position(|a| a == "spark.ui.enabled=true");
        let own = args.iter().position(|a| a == "spark.ui.enabled=false");
        assert!(user < own, "{args:?}");
    }

    #[test]
    fn tmp_dirs_with_spaces_are_quoted() {
        let args = args_for(&[], "/my dir/a\"b");
        assert!(
            args.last()
                .unwrap()
                .contains(r#"-Djava.io.tmpdir="/my dir/a\"b" -XX"#),
            "{args:?}"
        );
    }

    #[test]
    fn launcher_opts_keep_the_users() {
        assert_eq!(launcher_opts(None), "-XX:-UsePerfData");
        assert_eq!(launcher_opts(Some(" ")), "-XX:-UsePerfData");
        assert_eq!(launcher_opts(Some("-Dx=1")), "-Dx=1 -XX:-UsePerfData");
    }

    #[test]
    fn versions() {
        assert_eq!(
            version_from_release("Spark 4.3.0 built for Hadoop 3.4.1\nBuild flags: -B\n")
                .as_deref(),
            Some("4.3.0")
        );
        assert_eq!(version_from_release("Flink 1.0"), None);
        assert_eq!(version_from_release(""), None);
        assert_eq!(
            version_from_core_jar("spark-core_2.13-4.3.0.jar").as_deref(),
            Some("4.3.0")
        );
        assert_eq!(
            version_from_core_jar("spark-core_2.12-3.5.3.jar").as_deref(),
            Some("3.5.3")
        );
        assert_eq!(version_from_core_jar("spark-connect_2.13-4.3.0.jar"), None);
        assert_eq!(version_from_core_jar("spark-core_2.13-tests.jar"), None);
    }

    #[tokio::test]
    async fn a_distribution_is_read_from_its_release_file() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join("bin")).unwrap();
        std::fs::create_dir_all(home.path().join("jars")).unwrap();
        std::fs::write(home.path().join("bin/spark-submit"), "").unwrap();
        std::fs::write(home.path().join("jars/spark-core_2.12-3.5.3.jar"), "").unwrap();
        let found = locate(Some(home.path()), Path::new("python3"))
            .await
            .unwrap();
        assert_eq!(found.version, "3.5.3");
        std::fs::write(
            home.path().join("RELEASE"),
            "Spark 3.5.4 built for Hadoop 3\n",
        )
        .unwrap();
        let found = locate(Some(home.path()), Path::new("python3"))
            .await
            .unwrap();
        assert_eq!(found.version, "3.5.4");
        assert_eq!(found.program, home.path().join("bin/spark-submit"));
    }

    #[tokio::test]
    async fn missing_pieces_are_typed_errors() {
        let home = tempfile::tempdir().unwrap();
        assert!(matches!(
            locate(Some(home.path()), Path::new("python3")).await,
            Err(LocalSetupError::SparkSubmitMissing(_))
        ));
        std::fs::create_dir_all(home.path().join("bin")).unwrap();
        std::fs::write(home.path().join("bin/spark-submit"), "").unwrap();
        assert!(matches!(
            locate(Some(home.path()), Path::new("python3")).await,
            Err(LocalSetupError::VersionUnknown(_))
        ));
        let err = pyspark_home(Path::new("/nonexistent/python"))
            .await
            .unwrap_err();
        assert!(matches!(err, LocalSetupError::SparkNotFound(_)));
        assert!(err.to_string().contains("/nonexistent/python"), "{err}");
    }
}
