//! Finding the local Spark installation once, when the resource manager is
//! built, so that a missing or unreadable Spark is reported at startup rather
//! than as a failure of every engine.

use std::path::{Path, PathBuf};

use super::spark;

/// Why the local resource manager cannot run engines on this machine.
#[derive(Debug, thiserror::Error)]
pub enum LocalSetupError {
    #[error(
        "cannot find Spark: {0}; set `spark_home` in the configuration or SPARK_HOME, \
         or install pyspark (pip install \"pyspark[connect]\")"
    )]
    SparkNotFound(String),
    #[error("no spark-submit at {0}")]
    SparkSubmitMissing(PathBuf),
    #[error(
        "cannot tell the Spark version under {0}: it has neither a RELEASE file \
         nor a jars/spark-core_*.jar"
    )]
    VersionUnknown(PathBuf),
    #[error("cannot use the work directory {path}: {source}")]
    WorkDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the work directory {0} is not valid UTF-8, which Spark's configuration requires")]
    WorkDirNotUtf8(PathBuf),
}

/// A Spark installation that can start engines.
#[derive(Clone, Debug)]
pub(super) struct SparkInstall {
    pub home: PathBuf,
    pub submit: PathBuf,
    pub version: String,
}

/// Finds Spark in the configured home, else in `SPARK_HOME`, else in the
/// pyspark package of `python`: pip's pyspark is a complete Spark, and the
/// easiest one to install.
pub(super) async fn locate(
    configured: Option<&Path>,
    python: &Path,
) -> Result<SparkInstall, LocalSetupError> {
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
    Ok(SparkInstall {
        home,
        submit,
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
        .and_then(|release| spark::version_from_release(&release))
    {
        return Some(version);
    }
    std::fs::read_dir(home.join("jars"))
        .ok()?
        .filter_map(Result::ok)
        .find_map(|entry| spark::version_from_core_jar(entry.file_name().to_str()?))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(found.submit, home.path().join("bin/spark-submit"));
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
