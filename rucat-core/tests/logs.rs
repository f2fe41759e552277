//! Engine logs end to end on the local resource manager, with a stand-in
//! Spark (a shell script) so that every path is fast and exact: live reads,
//! tail and follow, archiving by the monitor before the engine's resources
//! go, attempts, redaction of the engine's token, a failed engine's log,
//! and retention after deletion. The same with real Spark runs in
//! rucat-server's `spark_logs` tests.

use std::sync::Arc;
use std::time::Duration;

use rucat_core::logs::{
    EngineLogs, FsLogArchive, LogArchive, LogRequest, OpenLogError, Retention, Selection, Source,
};
use rucat_core::resource::local::{LocalConfig, LocalResourceManager, fake};
use rucat_core::store::MemoryStore;
use rucat_core::{
    CreateEngineRequest, EngineId, EngineRecord, EngineState, Engines, Identity, Monitor,
    MonitorConfig, Timestamp,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::sync::oneshot;

/// A Spark Connect server as far as rucat can tell, which logs like Spark:
/// a startup line, a line with its token (which rucat must never show), a
/// tick every 200 ms, and a last line when stopped.
const LOGGING_SERVER: &str = r#"echo "26/12/01 10:00:00 INFO SparkConnectServer: starting"
echo "26/12/01 10:00:01 INFO Auth: token=$SPARK_CONNECT_AUTHENTICATE_TOKEN"
(i=0; while :; do sleep 0.2; i=$((i+1)); echo "26/12/01 10:00:02 INFO Ticker: tick $i"; done) &
exec python3 -c 'import re, socket, sys
port = int(re.search(r"binding.port=(\d+)", " ".join(sys.argv)).group(1))
s = socket.socket(); s.bind(("127.0.0.1", port)); s.listen()
while True: s.accept()[0].close()' "$@""#;

/// An engine that fails at start, as Spark does with `spark.driver.memory=lots`.
const FAILING: &str = r#"echo "26/12/01 10:00:00 INFO SparkSubmit: starting"
echo "Invalid maximum heap size: -Xmxlots"
echo "Error: Could not create the Java Virtual Machine."
exit 1"#;

struct Setup {
    _root: tempfile::TempDir,
    engines: Engines,
    logs: EngineLogs,
    archive: Arc<FsLogArchive>,
    stop: Option<oneshot::Sender<()>>,
    monitor: tokio::task::JoinHandle<()>,
}

impl Setup {
    async fn new(script: &str, retention: Retention) -> Self {
        let root = tempfile::tempdir().unwrap();
        let local = LocalConfig {
            work_dir: root.path().join("engines"),
            spark_home: Some(fake::spark_home(root.path(), script).unwrap()),
            stop_grace_secs: 1,
            ..LocalConfig::default()
        };
        let resources = Arc::new(LocalResourceManager::new(local).await.unwrap());
        let archive = Arc::new(FsLogArchive::new(root.path().join("logs"), retention));
        let store = Arc::new(MemoryStore::new());
        let config = MonitorConfig {
            owner: "m".into(),
            check_interval: Duration::from_millis(50),
            lease_duration: Duration::from_secs(10),
            start_deadline: Duration::from_secs(30),
            max_concurrent: 8,
            resync_interval: Duration::from_millis(200),
        };
        let monitor = Monitor::new(store.clone(), resources.clone(), config)
            .with_log_archive(archive.clone());
        let engines = Engines::new(store)
            .with_waker(monitor.waker())
            .with_log_archive(archive.clone());
        let logs = EngineLogs::new(engines.clone(), Some(resources), archive.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let monitor = tokio::spawn(monitor.run(async {
            let _ = stopped.await;
        }));
        Self {
            _root: root,
            engines,
            logs,
            archive,
            stop: Some(stop),
            monitor,
        }
    }

    async fn wait_for(&self, id: &EngineId, state: EngineState) -> EngineRecord {
        self.engines
            .wait_for(id, state, Duration::from_secs(20))
            .await
            .unwrap()
    }

    async fn read(&self, id: &EngineId, request: LogRequest) -> (Source, u32, String) {
        let body = self
            .logs
            .open(&Identity::admin("admin"), id, request)
            .await
            .unwrap();
        let mut text = String::new();
        let mut reader = body.reader;
        reader.read_to_string(&mut text).await.unwrap();
        (body.source, body.attempt, text)
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.monitor).await.unwrap();
    }
}

fn whole(attempt: Option<u32>) -> LogRequest {
    LogRequest {
        attempt,
        selection: Selection::All,
        follow: false,
    }
}

fn token_of(record: &EngineRecord) -> String {
    record
        .spec
        .token
        .as_ref()
        .expect("a started engine has a token")
        .expose()
        .to_owned()
}

#[tokio::test]
async fn logs_are_read_live_followed_archived_per_attempt_and_removed_after_deletion() {
    let retention = Retention {
        keep_attempts: 5,
        deleted_engine_ttl: Duration::ZERO,
        max_bytes_per_attempt: 1024 * 1024,
    };
    let setup = Setup::new(LOGGING_SERVER, retention).await;
    let id = setup
        .engines
        .create(CreateEngineRequest::spark("logs", "4.3.0"))
        .await
        .unwrap();
    let running = setup.wait_for(&id, EngineState::Running).await;
    let token = token_of(&running);

    // Live, whole: the startup line, and the token redacted.
    let (source, attempt, text) = setup.read(&id, whole(None)).await;
    assert_eq!((source, attempt), (Source::Live, 1));
    assert!(text.contains("SparkConnectServer: starting"), "{text}");
    assert!(text.contains("token=<redacted>"), "{text}");
    assert!(!text.contains(&token));

    // Live, the last line only, once the engine ticks (its first tick
    // comes 200 ms after it starts, maybe after it is Running).
    let ticking = tokio::time::timeout(Duration::from_secs(10), async {
        while !setup.read(&id, whole(None)).await.2.contains("tick") {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(ticking.is_ok(), "the engine logs ticks");
    let request = LogRequest {
        selection: Selection::Tail(1),
        ..whole(None)
    };
    let (_, _, last) = setup.read(&id, request).await;
    assert_eq!(last.lines().count(), 1, "{last:?}");
    assert!(last.contains("tick"), "{last:?}");

    // Live, followed: a tick written after the request started arrives.
    let follow = LogRequest {
        selection: Selection::Tail(0),
        follow: true,
        ..whole(None)
    };
    let body = setup
        .logs
        .open(&Identity::admin("admin"), &id, follow)
        .await
        .unwrap();
    let mut lines = BufReader::new(body.reader).lines();
    let later = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("a line written after the request arrives")
        .unwrap()
        .unwrap();
    assert!(later.contains("tick"), "{later}");

    // Stopped: the monitor archived attempt 1 before removing the work
    // directory, redacted as written (the next attempt has another token).
    setup.engines.stop(&id).await.unwrap();
    setup.wait_for(&id, EngineState::Terminated).await;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while lines.next_line().await.unwrap().is_some() {}
    })
    .await;
    assert!(
        ended.is_ok(),
        "a follow ends when the engine's process does"
    );
    let (source, attempt, archived) = setup.read(&id, whole(None)).await;
    assert_eq!((source, attempt), (Source::Archive, 1));
    assert!(
        archived.contains("SparkConnectServer: starting"),
        "{archived}"
    );
    let file = setup.archive.dir().join(id.to_string()).join("1.log");
    let on_disk = std::fs::read_to_string(&file).unwrap();
    assert!(on_disk.contains("token=<redacted>") && !on_disk.contains(&token));

    // A second attempt has its own log; the first stays readable.
    setup.engines.restart(&id).await.unwrap();
    setup.wait_for(&id, EngineState::Running).await;
    let (source, attempt, _) = setup.read(&id, whole(None)).await;
    assert_eq!((source, attempt), (Source::Live, 2));
    let (source, attempt, first) = setup.read(&id, whole(Some(1))).await;
    assert_eq!((source, attempt), (Source::Archive, 1));
    assert_eq!(first, archived);
    let missing = setup
        .logs
        .open(&Identity::admin("admin"), &id, whole(Some(3)))
        .await
        .unwrap_err();
    assert!(
        matches!(&missing, OpenLogError::NoLog(why) if why.contains("no attempt 3")),
        "{missing}"
    );
    // Another user is told the engine does not exist.
    let stranger = setup
        .logs
        .open(&Identity::user("mallory", ["g"]), &id, whole(None))
        .await
        .unwrap_err();
    assert!(matches!(stranger, OpenLogError::Engine(_)), "{stranger}");

    // Deleted: both attempts stay archived until a sweep past the
    // retention time (zero here) removes them.
    setup.engines.stop(&id).await.unwrap();
    setup.wait_for(&id, EngineState::Terminated).await;
    let attempts: Vec<u32> = setup
        .archive
        .attempts(&id)
        .await
        .unwrap()
        .iter()
        .map(|a| a.attempt)
        .collect();
    assert_eq!(attempts, [1, 2]);
    setup.engines.delete(&id).await.unwrap();
    assert!(setup.archive.tombstone(&id).await.unwrap().is_some());
    assert_eq!(setup.archive.attempts(&id).await.unwrap().len(), 2);
    // Still served, from the archive, to whoever could see the engine.
    let (source, attempt, after) = setup.read(&id, whole(Some(1))).await;
    assert_eq!((source, attempt), (Source::Archive, 1));
    assert_eq!(after, first);
    let (_, attempt, _) = setup.read(&id, whole(None)).await;
    assert_eq!(attempt, 2, "the latest kept");
    let report = setup
        .archive
        .sweep(Timestamp::now().plus(Duration::from_secs(1)))
        .await
        .unwrap();
    assert_eq!(report.engines_removed, 1);
    assert!(setup.archive.attempts(&id).await.unwrap().is_empty());
    setup.shutdown().await;
}

#[tokio::test]
async fn a_failed_engine_keeps_its_log() {
    let setup = Setup::new(FAILING, Retention::default()).await;
    let id = setup
        .engines
        .create(CreateEngineRequest::spark("fails", "4.3.0"))
        .await
        .unwrap();
    let failed = setup.wait_for(&id, EngineState::ErrorClean).await;
    let error = failed.error.unwrap_or_default();
    assert!(error.contains("Invalid maximum heap size"), "{error}");
    let (source, attempt, text) = setup.read(&id, whole(None)).await;
    assert_eq!((source, attempt), (Source::Archive, 1));
    assert!(text.contains("SparkSubmit: starting"), "{text}");
    assert!(
        text.contains("Error: Could not create the Java Virtual Machine."),
        "{text}"
    );
    setup.shutdown().await;
}

#[tokio::test]
async fn an_engine_never_started_has_no_log_and_says_why() {
    let root = tempfile::tempdir().unwrap();
    let archive = Arc::new(FsLogArchive::new(root.path(), Retention::default()));
    let engines = Engines::new(Arc::new(MemoryStore::new()));
    // No resource manager: a server that can only read the archive.
    let logs = EngineLogs::new(engines.clone(), None, archive);
    let id = engines
        .create(CreateEngineRequest::spark("waits", "4.3.0"))
        .await
        .unwrap();
    let err = logs
        .open(&Identity::admin("admin"), &id, whole(None))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, OpenLogError::NoLog(why) if why.contains("has not been started yet")),
        "{err}"
    );
}
