//! The local resource manager against a real Spark: the pyspark installed for
//! the `python3` on `PATH` (CI installs `pyspark[connect]`), with Java.

use std::path::Path;
use std::time::{Duration, Instant};

use rucat_core::Change;
use rucat_core::engine::{Configs, EngineId, EngineSpec, EngineType};
use rucat_core::resource::local::{LocalConfig, LocalResourceManager};
use rucat_core::resource::{ChangeSink, ResourceError, ResourceManager, ResourceStatus};

const START_TIMEOUT: Duration = Duration::from_secs(120);

const CLIENT: &str = r#"
import sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.remote(sys.argv[1]).getOrCreate()
print(spark.range(1000).selectExpr("sum(id)").collect()[0][0])
spark.stop()
"#;

async fn manager(work_dir: &Path) -> LocalResourceManager {
    let config = LocalConfig {
        work_dir: work_dir.to_owned(),
        ..LocalConfig::default()
    };
    LocalResourceManager::new(config)
        .await
        .expect("Spark (pyspark) must be installed for python3")
}

fn spec(version: &str, configs: &[(&str, &str)]) -> EngineSpec {
    EngineSpec {
        id: EngineId::generate(),
        name: "it".into(),
        engine_type: EngineType::Spark,
        version: version.into(),
        configs: configs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Configs>(),
        token: None,
    }
}

/// Polls `status` until it is no longer Pending.
async fn settle(manager: &LocalResourceManager, id: &EngineId, limit: Duration) -> ResourceStatus {
    let deadline = Instant::now() + limit;
    loop {
        let status = manager.status(id).await.unwrap();
        if status != ResourceStatus::PENDING {
            return status;
        }
        assert!(Instant::now() < deadline, "still Pending after {limit:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Whether `pid` runs (a zombie does not).
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat[stat.rfind(')').unwrap() + 1..]
        .trim_start()
        .chars()
        .next();
    !matches!(state, Some('Z' | 'X'))
}

/// Live processes whose command line mentions `dir`: the engine's JVM, or its
/// launcher script before that execs the JVM.
fn processes_mentioning(dir: &Path) -> Vec<u32> {
    let needle = dir.to_str().unwrap().as_bytes();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            cmdline.windows(needle.len()).any(|w| w == needle) && alive(pid)
        })
        .collect()
}

/// Kills an engine's process group if the test fails before deleting it, so
/// a failure does not leave a JVM behind.
struct KillOnPanic(u32);

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let pgid = nix::unistd::Pid::from_raw(self.0 as i32);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// The pid leaves the process table once reaped; give the reaper a moment.
async fn assert_reaped(pid: u32) {
    for _ in 0..50 {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "process {pid} is still in the process table (alive: {})",
        alive(pid)
    );
}

async fn query(endpoint: &str) -> String {
    let run = tokio::process::Command::new("python3")
        .args(["-c", CLIENT, endpoint])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the client finished")
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_serves_queries_is_adopted_and_deleted() {
    let work = tempfile::tempdir().unwrap();
    let manager = manager(work.path()).await;
    let (sink, mut changes) = ChangeSink::channel(8);
    manager.subscribe(sink);
    let spec = spec(manager.spark_version(), &[]);
    let dir = manager.engine_dir(&spec.id);

    let started = Instant::now();
    manager.create(&spec).await.unwrap();
    let pid = manager
        .pid(&spec.id)
        .await
        .unwrap()
        .expect("a recorded pid");
    let _cleanup = KillOnPanic(pid);
    let changed = tokio::time::timeout(START_TIMEOUT, changes.recv()).await;
    match changed.expect("readiness is reported") {
        Some(Change::Resource(id)) => assert_eq!(id, spec.id),
        other => panic!("expected the engine's readiness, got {other:?}"),
    }
    let status = manager.status(&spec.id).await.unwrap();
    let ResourceStatus::Running { endpoint } = status else {
        panic!("reported ready but {status:?}");
    };
    eprintln!("Running at {endpoint} after {:?}", started.elapsed());

    let queried = Instant::now();
    assert_eq!(query(&endpoint).await, "499500");
    eprintln!("query answered in {:?}", queried.elapsed());

    // Adoption, both by this manager and by one in "another process" that
    // shares only the work directory.
    manager.create(&spec).await.unwrap();
    let other = manager_sharing(&manager).await;
    other.create(&spec).await.unwrap();
    assert_eq!(other.pid(&spec.id).await.unwrap(), Some(pid));
    assert_eq!(processes_mentioning(&dir), [pid], "exactly one JVM");
    assert_eq!(
        other.status(&spec.id).await.unwrap(),
        ResourceStatus::Running { endpoint }
    );

    let deleting = Instant::now();
    other.delete(&spec.id).await.unwrap();
    eprintln!("deleted in {:?}", deleting.elapsed());
    assert!(!alive(pid));
    assert_eq!(processes_mentioning(&dir), Vec::<u32>::new());
    assert!(!dir.exists(), "the work dir is removed");
    assert_eq!(
        manager.status(&spec.id).await.unwrap(),
        ResourceStatus::Gone
    );
    assert_reaped(pid).await;
    assert!(
        !dir.exists(),
        "nothing wrote into the work dir after delete"
    );
    manager.delete(&spec.id).await.unwrap();
}

async fn manager_sharing(manager: &LocalResourceManager) -> LocalResourceManager {
    self::manager(manager.work_dir()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_fails_with_sparks_reason_and_is_cleaned_up() {
    let work = tempfile::tempdir().unwrap();
    let manager = manager(work.path()).await;
    let spec = spec(manager.spark_version(), &[("spark.driver.memory", "lots")]);
    let dir = manager.engine_dir(&spec.id);

    manager.create(&spec).await.unwrap();
    let pid = manager
        .pid(&spec.id)
        .await
        .unwrap()
        .expect("a recorded pid");
    let _cleanup = KillOnPanic(pid);
    let status = settle(&manager, &spec.id, START_TIMEOUT).await;
    let ResourceStatus::Failed { reason } = status else {
        panic!("expected Failed, got {status:?}");
    };
    eprintln!("reason: {reason}");
    assert!(reason.contains("exited with code"), "{reason}");
    assert!(
        reason.contains("lots") || reason.to_lowercase().contains("memory"),
        "the reason comes from Spark's log: {reason}"
    );

    manager.delete(&spec.id).await.unwrap();
    assert!(!alive(pid));
    assert_eq!(processes_mentioning(&dir), Vec::<u32>::new());
    assert!(!dir.exists());
    assert_eq!(
        manager.status(&spec.id).await.unwrap(),
        ResourceStatus::Gone
    );
}

#[tokio::test]
async fn another_spark_version_is_rejected_naming_both() {
    let work = tempfile::tempdir().unwrap();
    let manager = manager(work.path()).await;
    let local = manager.spark_version().to_owned();
    let requested = if local.starts_with("3.") {
        "4.0.0"
    } else {
        "3.5.3"
    };
    let spec = spec(requested, &[]);

    let err = manager.create(&spec).await.unwrap_err();
    let ResourceError::Rejected(reason) = err else {
        panic!("expected Rejected, got {err:?}");
    };
    assert!(
        reason.contains(&format!("requested Spark {requested}"))
            && reason.contains(&format!("local Spark is {local}")),
        "{reason}"
    );
    assert!(
        !manager.engine_dir(&spec.id).exists(),
        "nothing was started"
    );
    assert_eq!(
        manager.status(&spec.id).await.unwrap(),
        ResourceStatus::Gone
    );
}
