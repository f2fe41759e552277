//! What the local resource manager knows about Spark, kept free of I/O so it
//! can be checked against golden values: the spark-submit command line that
//! runs an engine as a Spark Connect server, how to read the Spark version of
//! an installation, and how to turn Spark's log into a reason a user can act on.

use std::path::Path;

use crate::engine::{Configs, EngineId};

/// The main class of a Spark Connect server; spark-submit knows it as an
/// internal class, so no application jar is needed.
pub(super) const CONNECT_SERVER_CLASS: &str =
    "org.apache.spark.sql.connect.service.SparkConnectServer";

/// Engines listen on loopback only: a local engine is for this machine.
pub(super) const BIND_ADDRESS: &str = "127.0.0.1";

/// Where a Spark 4 Connect server reads the pre-shared token it demands from
/// clients (`PreSharedKeyAuthenticationInterceptor`). The environment rather
/// than `spark.connect.authenticate.token`, so that the token is on no command
/// line and in no Spark conf a client can read back.
pub(super) const TOKEN_ENV: &str = "SPARK_CONNECT_AUTHENTICATE_TOKEN";

const DRIVER_MEMORY: &str = "spark.driver.memory";
const DRIVER_JAVA_OPTIONS: &str = "spark.driver.extraJavaOptions";

/// Everything that decides one engine's spark-submit command line.
pub(super) struct SubmitPlan<'a> {
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
pub(super) fn local_dir_conf(local_dir: &Path) -> String {
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
pub(super) fn submit_args(plan: &SubmitPlan<'_>) -> Vec<String> {
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
pub(super) fn launcher_opts(inherited: Option<&str>) -> String {
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
pub(super) fn version_from_release(release: &str) -> Option<String> {
    let mut words = release.lines().next()?.split_whitespace();
    match (words.next(), words.next()) {
        (Some("Spark"), Some(version)) => Some(version.to_owned()),
        _ => None,
    }
}

/// The version in the name of Spark's core jar, e.g. `spark-core_2.13-4.3.0.jar`.
/// pip's pyspark has no `RELEASE` file, but always ships this jar.
pub(super) fn version_from_core_jar(file_name: &str) -> Option<String> {
    let rest = file_name
        .strip_prefix("spark-core_")?
        .strip_suffix(".jar")?;
    let (_scala, version) = rest.split_once('-')?;
    let numeric = version.split('.').all(|p| !p.is_empty())
        && version.starts_with(|c: char| c.is_ascii_digit());
    numeric.then(|| version.to_owned())
}

/// The reason shown to a user for an engine whose process has ended.
/// `exit` describes how it ended, e.g. "exited with code 1", if known.
pub(super) fn failure_reason(exit: Option<&str>, log_summary: &str) -> String {
    let head = match exit {
        Some(exit) => format!("Spark {exit}"),
        None => "Spark's process is gone and its exit status is unknown".to_owned(),
    };
    if log_summary.is_empty() {
        format!("{head}; its log is empty")
    } else {
        format!("{head}; end of its log:\n{log_summary}")
    }
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

    #[test]
    fn reasons() {
        assert_eq!(
            failure_reason(Some("exited with code 1"), "boom"),
            "Spark exited with code 1; end of its log:\nboom"
        );
        assert_eq!(
            failure_reason(None, ""),
            "Spark's process is gone and its exit status is unknown; its log is empty"
        );
    }
}
