//! The S3 log archive against a real S3-compatible server (moto's, see
//! support/moto_server.rs): the behaviours rucat-core's filesystem archive
//! is tested for, a cap byte-identical to the filesystem archive's, atomic
//! replacement, and failures that are prompt, say what failed and never
//! show the secret. Also [`open_log_archive`]'s setup errors.

#[path = "support/moto_server.rs"]
mod moto_server;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moto_server::{MotoServer, SECRET_ACCESS_KEY};
use object_store::ObjectStoreExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use rucat_core::engine::EngineId;
use rucat_core::logs::cap::cut_note;
use rucat_core::logs::{
    ArchiveConfig, ArchiveReport, ArchivedAttempt, FsLogArchive, LogArchive, LogError, Redactor,
    Retention, S3ArchiveConfig, Selection, SweepReport, Tombstone, select, tail_start,
};
use rucat_core::{Secret, Timestamp};
use rucat_store::logs::{LogArchiveSetupError, S3LogArchive, open_log_archive};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);
const BUCKET: &str = "rucat-logs";
const PREFIX: &str = "rucat/logs";

struct Bucket {
    server: MotoServer,
    tmp: tempfile::TempDir,
}

impl Bucket {
    fn new() -> Self {
        let server = MotoServer::start();
        server.create_bucket(BUCKET);
        Self {
            server,
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    fn config(&self) -> S3ArchiveConfig {
        self.server.config(BUCKET, PREFIX)
    }

    fn archive(&self, retention: Retention) -> Arc<dyn LogArchive> {
        Arc::new(S3LogArchive::new(&self.config(), retention).unwrap())
    }

    fn source(&self, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let path = self.tmp.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The bucket through object_store directly, to put what rucat did not.
    fn raw(&self) -> object_store::aws::AmazonS3 {
        AmazonS3Builder::new()
            .with_bucket_name(BUCKET)
            .with_region("us-east-1")
            .with_endpoint(self.server.endpoint())
            .with_allow_http(true)
            .with_access_key_id("k")
            .with_secret_access_key("s")
            .build()
            .unwrap()
    }

    async fn put_raw(&self, key: &str, text: &str) {
        self.raw()
            .put(&Key::from(key), text.to_owned().into())
            .await
            .unwrap();
    }

    async fn exists(&self, key: &str) -> bool {
        match self.raw().head(&Key::from(key)).await {
            Ok(_) => true,
            Err(object_store::Error::NotFound { .. }) => false,
            Err(e) => panic!("{e}"),
        }
    }
}

async fn read_back(archive: &dyn LogArchive, engine: &EngineId, attempt: u32) -> Option<Vec<u8>> {
    let mut log = archive.open(engine, attempt).await.unwrap()?;
    let mut bytes = Vec::new();
    log.reader.read_to_end(&mut bytes).await.unwrap();
    assert_eq!(log.len, bytes.len() as u64);
    Some(bytes)
}

async fn read_text(archive: &dyn LogArchive, engine: &EngineId, attempt: u32) -> Option<String> {
    read_back(archive, engine, attempt)
        .await
        .map(|b| String::from_utf8(b).unwrap())
}

fn numbers(attempts: &[ArchivedAttempt]) -> Vec<u32> {
    attempts.iter().map(|a| a.attempt).collect()
}

#[tokio::test]
async fn archived_logs_read_back_per_attempt() {
    let bucket = Bucket::new();
    let archive = bucket.archive(Retention::default());
    let engine = EngineId::generate();
    let first = bucket.source("1", "first run\n");
    let second = bucket.source("2", "second run\n");

    let report = archive.archive(&engine, 1, &first).await.unwrap();
    assert_eq!(
        report,
        ArchiveReport {
            archived: ArchivedAttempt {
                attempt: 1,
                bytes: 10
            },
            cut: 0,
            removed: vec![]
        }
    );
    archive.archive(&engine, 2, &second).await.unwrap();
    assert_eq!(
        read_text(&*archive, &engine, 1).await.unwrap(),
        "first run\n"
    );
    assert_eq!(
        read_text(&*archive, &engine, 2).await.unwrap(),
        "second run\n"
    );
    assert_eq!(
        archive.attempts(&engine).await.unwrap(),
        vec![
            ArchivedAttempt {
                attempt: 1,
                bytes: 10
            },
            ArchivedAttempt {
                attempt: 2,
                bytes: 11
            }
        ]
    );
    // Under <prefix>/<engine id>/<attempt>.log.
    assert!(
        bucket
            .exists(&format!("{PREFIX}/{}/1.log", engine.as_str()))
            .await
    );
    // Archiving an attempt again replaces it.
    archive.archive(&engine, 2, &first).await.unwrap();
    assert_eq!(
        read_text(&*archive, &engine, 2).await.unwrap(),
        "first run\n"
    );

    // The tail of an archived log, redacted, through the archive's reader.
    let secret = bucket.source("3", "a\ntoken=s3cret\nb\n");
    archive.archive(&engine, 3, &secret).await.unwrap();
    let log = archive.open(&engine, 3).await.unwrap().unwrap();
    let mut text = String::new();
    select(log.reader, Selection::Tail(2), Redactor::new(["s3cret"]))
        .await
        .unwrap()
        .read_to_string(&mut text)
        .await
        .unwrap();
    assert_eq!(text, "token=<redacted>\nb\n");

    // Seeking around: tail_start, then reading from there and from the start.
    let mut log = archive.open(&engine, 3).await.unwrap().unwrap();
    let start = tail_start(&mut log.reader, 1).await.unwrap();
    assert_eq!(start, 15);
    log.reader
        .seek(std::io::SeekFrom::Start(start))
        .await
        .unwrap();
    let mut last = String::new();
    log.reader.read_to_string(&mut last).await.unwrap();
    assert_eq!(last, "b\n");
    log.reader.seek(std::io::SeekFrom::Start(2)).await.unwrap();
    let mut rest = String::new();
    log.reader.read_to_string(&mut rest).await.unwrap();
    assert_eq!(rest, "token=s3cret\nb\n");
}

#[tokio::test]
async fn what_is_missing_is_none_or_empty() {
    let bucket = Bucket::new();
    let archive = bucket.archive(Retention::default());
    let engine = EngineId::generate();
    // Nothing in the bucket yet.
    assert!(archive.open(&engine, 1).await.unwrap().is_none());
    assert!(archive.attempts(&engine).await.unwrap().is_empty());
    assert_eq!(archive.tombstone(&engine).await.unwrap(), None);
    assert_eq!(
        archive.sweep(Timestamp::now()).await.unwrap(),
        SweepReport::default()
    );

    archive
        .archive(&engine, 1, &bucket.source("log", "x\n"))
        .await
        .unwrap();
    assert!(archive.open(&engine, 2).await.unwrap().is_none());
    assert!(archive.open(&engine, 0).await.unwrap().is_none());
    assert!(
        archive
            .open(&EngineId::generate(), 1)
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        archive
            .archive(&engine, 0, &bucket.source("log", "x\n"))
            .await,
        Err(LogError::AttemptZero)
    ));
    assert!(matches!(
        archive
            .archive(&engine, 2, &bucket.tmp.path().join("absent"))
            .await,
        Err(LogError::Io { action: "open", .. })
    ));
    assert!(matches!(
        archive.archive(&engine, 2, bucket.tmp.path()).await,
        Err(LogError::NotAFile(_))
    ));
    assert_eq!(numbers(&archive.attempts(&engine).await.unwrap()), [1]);

    // An empty log is a log.
    archive
        .archive(&engine, 3, &bucket.source("empty", ""))
        .await
        .unwrap();
    assert_eq!(read_back(&*archive, &engine, 3).await.unwrap(), b"");
}

#[tokio::test]
async fn foreign_keys_are_never_attempts() {
    let bucket = Bucket::new();
    let archive = bucket.archive(Retention::default());
    let engine = EngineId::generate();
    archive
        .archive(&engine, 1, &bucket.source("log", "x\n"))
        .await
        .unwrap();
    let dir = format!("{PREFIX}/{}", engine.as_str());
    for name in [
        "01.log",
        "0.log",
        "x.log",
        "3.txt",
        "4294967296.log",
        "5.log/x",
    ] {
        bucket.put_raw(&format!("{dir}/{name}"), "?").await;
    }
    assert_eq!(numbers(&archive.attempts(&engine).await.unwrap()), [1]);
    assert!(archive.open(&engine, 5).await.unwrap().is_none());
    // A sweep leaves them alone.
    let report = archive.sweep(Timestamp::now()).await.unwrap();
    assert_eq!(report, SweepReport::default());
    assert!(bucket.exists(&format!("{dir}/x.log")).await);
}

#[tokio::test]
async fn only_the_last_attempts_are_kept() {
    let bucket = Bucket::new();
    let retention = Retention {
        keep_attempts: 3,
        ..Retention::default()
    };
    let archive = bucket.archive(retention);
    let engine = EngineId::generate();
    let other = EngineId::generate();
    let log = bucket.source("log", "x\n");
    archive.archive(&other, 1, &log).await.unwrap();
    for attempt in 1..=3 {
        let report = archive.archive(&engine, attempt, &log).await.unwrap();
        assert!(report.removed.is_empty());
    }
    let report = archive.archive(&engine, 4, &log).await.unwrap();
    assert_eq!(report.removed, [1]);
    let report = archive.archive(&engine, 6, &log).await.unwrap();
    assert_eq!(report.removed, [2]);
    assert_eq!(
        numbers(&archive.attempts(&engine).await.unwrap()),
        [3, 4, 6]
    );
    assert_eq!(numbers(&archive.attempts(&other).await.unwrap()), [1]);

    // A smaller K applies at the next sweep; zero still keeps one.
    let stricter = bucket.archive(Retention {
        keep_attempts: 0,
        ..retention
    });
    let report = stricter.sweep(Timestamp::now()).await.unwrap();
    assert_eq!(report.attempts_removed, 2);
    assert_eq!(numbers(&stricter.attempts(&engine).await.unwrap()), [6]);
    assert_eq!(numbers(&stricter.attempts(&other).await.unwrap()), [1]);
}

#[tokio::test]
async fn deleted_engines_logs_are_kept_for_their_time_then_swept() {
    let bucket = Bucket::new();
    let retention = Retention {
        deleted_engine_ttl: 7 * DAY,
        ..Retention::default()
    };
    let archive = bucket.archive(retention);
    let deleted = EngineId::generate();
    let alive = EngineId::generate();
    let never_logged = EngineId::generate();
    let log = bucket.source("log", "x\n");
    archive.archive(&deleted, 1, &log).await.unwrap();
    archive.archive(&deleted, 2, &log).await.unwrap();
    archive.archive(&alive, 1, &log).await.unwrap();

    let at = Timestamp::from_millis(1_764_000_000_000);
    let tombstone = |at| Tombstone {
        deleted_at: at,
        owner: Some("alice".into()),
        share_with_groups: ["data".to_owned()].into(),
    };
    archive
        .engine_deleted(&deleted, &tombstone(at))
        .await
        .unwrap();
    archive
        .engine_deleted(&never_logged, &tombstone(at))
        .await
        .unwrap();
    // Recording it again keeps the first time.
    archive
        .engine_deleted(&deleted, &tombstone(at.plus(3 * DAY)))
        .await
        .unwrap();
    assert_eq!(
        archive.tombstone(&deleted).await.unwrap(),
        Some(tombstone(at))
    );
    // Durable: another archive on the same bucket sees it.
    let reopened = bucket.archive(retention);
    assert_eq!(
        reopened.tombstone(&deleted).await.unwrap(),
        Some(tombstone(at))
    );
    assert_eq!(reopened.tombstone(&alive).await.unwrap(), None);

    // Still readable within the time.
    let report = reopened
        .sweep(at.plus(7 * DAY - Duration::from_millis(1)))
        .await
        .unwrap();
    assert_eq!(report.engines_removed, 0);
    assert_eq!(read_text(&*reopened, &deleted, 1).await.unwrap(), "x\n");

    // A log archived after the deletion (a cleanup still under way) goes too.
    reopened.archive(&never_logged, 1, &log).await.unwrap();
    let report = reopened.sweep(at.plus(7 * DAY)).await.unwrap();
    assert_eq!(report.engines_removed, 2);
    assert!(reopened.open(&deleted, 1).await.unwrap().is_none());
    assert!(reopened.attempts(&deleted).await.unwrap().is_empty());
    assert!(reopened.attempts(&never_logged).await.unwrap().is_empty());
    assert_eq!(reopened.tombstone(&deleted).await.unwrap(), None);
    assert!(
        !bucket
            .exists(&format!("{PREFIX}/{}/deleted", deleted.as_str()))
            .await
    );
    assert_eq!(read_text(&*reopened, &alive, 1).await.unwrap(), "x\n");
    // Nothing left to remove.
    let report = reopened.sweep(at.plus(8 * DAY)).await.unwrap();
    assert_eq!(report, SweepReport::default());
}

#[tokio::test]
async fn sweeps_ignore_foreign_keys_and_survive_damaged_records() {
    let bucket = Bucket::new();
    let archive = bucket.archive(Retention::default());
    let engine = EngineId::generate();
    archive
        .archive(&engine, 1, &bucket.source("log", "x\n"))
        .await
        .unwrap();
    bucket
        .put_raw(&format!("{PREFIX}/not-an-engine/1.log"), "?")
        .await;
    bucket
        .put_raw(
            &format!("{PREFIX}/0123456789ABCDEF0123456789ABCDEF/1.log"),
            "?",
        )
        .await;
    bucket.put_raw("elsewhere/1.log", "?").await;
    bucket
        .put_raw(&format!("{PREFIX}/{}/deleted", engine.as_str()), "garbage")
        .await;

    // A record in the earlier form, the time alone, is read as such.
    let earlier = EngineId::generate();
    bucket
        .put_raw(
            &format!("{PREFIX}/{}/deleted", earlier.as_str()),
            "1700000000000",
        )
        .await;
    let tombstone = archive.tombstone(&earlier).await.unwrap().unwrap();
    assert_eq!(
        tombstone.deleted_at,
        Timestamp::from_millis(1_700_000_000_000)
    );

    // A damaged deletion record counts from when it was written.
    let written = archive.tombstone(&engine).await.unwrap().unwrap();
    assert!(Timestamp::now().since(written.deleted_at) < Duration::from_secs(60));
    assert_eq!(written.owner, None);
    // Only the engine deleted long ago goes now.
    let report = archive.sweep(Timestamp::now()).await.unwrap();
    assert_eq!(
        report,
        SweepReport {
            engines_removed: 1,
            ..SweepReport::default()
        }
    );
    assert_eq!(archive.tombstone(&earlier).await.unwrap(), None);
    let report = archive.sweep(Timestamp::now().plus(8 * DAY)).await.unwrap();
    assert_eq!(report.engines_removed, 1);
    assert!(archive.open(&engine, 1).await.unwrap().is_none());
    assert!(
        bucket
            .exists(&format!("{PREFIX}/not-an-engine/1.log"))
            .await
    );
    assert!(
        bucket
            .exists(&format!("{PREFIX}/0123456789ABCDEF0123456789ABCDEF/1.log"))
            .await
    );
    assert!(bucket.exists("elsewhere/1.log").await);
}

/// The same log archived by the filesystem and the S3 archive with the same
/// cap: the same report and the same bytes.
async fn same_as_filesystem(bucket: &Bucket, text: &[u8], cap: u64) -> ArchiveReport {
    let retention = Retention {
        max_bytes_per_attempt: cap,
        ..Retention::default()
    };
    let s3 = bucket.archive(retention);
    let fs = FsLogArchive::new(bucket.tmp.path().join("fs"), retention);
    let engine = EngineId::generate();
    let source = bucket.source("big", text);
    let from_s3 = s3.archive(&engine, 1, &source).await.unwrap();
    let from_fs = fs.archive(&engine, 1, &source).await.unwrap();
    assert_eq!(from_s3, from_fs);
    let kept_s3 = read_back(&*s3, &engine, 1).await.unwrap();
    let kept_fs = read_back(&fs, &engine, 1).await.unwrap();
    assert!(kept_s3 == kept_fs, "the S3 archive kept other bytes");
    assert_eq!(
        s3.attempts(&engine).await.unwrap(),
        fs.attempts(&engine).await.unwrap()
    );
    from_s3
}

#[tokio::test]
async fn big_logs_keep_their_tail_exactly_as_the_filesystem_archive() {
    let bucket = Bucket::new();
    // About 3 MiB of numbered 100-byte lines, capped at 1 MiB: one PUT.
    let cap = 1024 * 1024;
    let text: String = (0..30_000).map(|i| format!("{i:>99}\n")).collect();
    let report = same_as_filesystem(&bucket, text.as_bytes(), cap).await;
    let kept_lines = usize::try_from(cap / 100).unwrap();
    assert_eq!(report.cut, text.len() as u64 - (kept_lines as u64) * 100);
    assert_eq!(
        report.archived.bytes,
        cut_note(report.cut, cap).len() as u64 + (kept_lines as u64) * 100
    );

    // About 30 MiB capped at 20 MiB: a multipart upload of several parts.
    let cap = 20 * 1024 * 1024;
    let text: String = (0..300_000).map(|i| format!("{i:>99}\n")).collect();
    let report = same_as_filesystem(&bucket, text.as_bytes(), cap).await;
    assert!(report.cut > 0);

    // Within the cap: whole; one long line over it: cut mid-line.
    let report = same_as_filesystem(&bucket, b"a\nb\n", 4096).await;
    assert_eq!(report.cut, 0);
    let report = same_as_filesystem(&bucket, &vec![b'x'; 10_000], 4096).await;
    assert_eq!(report.cut, 10_000 - 4096);
}

#[tokio::test]
async fn an_attempt_is_replaced_atomically() {
    let bucket = Bucket::new();
    let archive = bucket.archive(Retention::default());
    let engine = EngineId::generate();
    // 10 MiB each, over a part: replaced by a multipart upload.
    let old: Vec<u8> = (0..100_000)
        .flat_map(|i| format!("{i:>99}\n").into_bytes())
        .collect();
    let new: Vec<u8> = old
        .iter()
        .map(|&b| if b == b' ' { b'.' } else { b })
        .collect();
    let old_path = bucket.source("old", &old);
    let new_path = bucket.source("new", &new);
    archive.archive(&engine, 1, &old_path).await.unwrap();

    // A reader opened on the old copy.
    let mut before = archive.open(&engine, 1).await.unwrap().unwrap();
    let mut head = vec![0; 100];
    before.reader.read_exact(&mut head).await.unwrap();

    // Readers during the replacement see the whole old or the whole new copy.
    let replacing = {
        let archive = Arc::clone(&archive);
        let engine = engine.clone();
        tokio::spawn(async move { archive.archive(&engine, 1, &new_path).await })
    };
    // A read that the replacement overtakes fails instead of mixing them.
    let mut reads = 0;
    while !replacing.is_finished() || reads == 0 {
        let mut log = archive.open(&engine, 1).await.unwrap().unwrap();
        let mut bytes = Vec::new();
        match log.reader.read_to_end(&mut bytes).await {
            Ok(_) => {
                assert!(bytes == old || bytes == new, "a mixed copy was read");
                assert_eq!(log.len, bytes.len() as u64);
                reads += 1;
            }
            Err(e) => assert!(e.to_string().contains("was replaced"), "{e}"),
        }
    }
    replacing.await.unwrap().unwrap();
    assert!(read_back(&*archive, &engine, 1).await.unwrap() == new);

    // The reader opened before does not read into the new copy: its reads
    // fail rather than mix the two.
    let mut rest = Vec::new();
    let result = before.reader.read_to_end(&mut rest).await;
    let err = result.expect_err("a reader of the old copy read the new one");
    assert!(err.to_string().contains("replaced"), "{err}");
}

#[tokio::test]
async fn an_unreachable_service_fails_promptly_saying_what_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let config = S3ArchiveConfig {
        bucket: "nowhere".to_owned(),
        prefix: PREFIX.to_owned(),
        endpoint: Some(format!("http://127.0.0.1:{}", moto_server::free_port())),
        region: "us-east-1".to_owned(),
        access_key_id: Some("key".to_owned()),
        secret_access_key: Some(Secret::new(SECRET_ACCESS_KEY)),
        allow_http: true,
    };
    let archive = S3LogArchive::new(&config, Retention::default()).unwrap();
    let debug = format!("{archive:?}");
    assert!(!debug.contains(SECRET_ACCESS_KEY), "{debug}");
    let engine = EngineId::generate();
    let log = tmp.path().join("log");
    std::fs::write(&log, "x\n").unwrap();

    let started = Instant::now();
    let errors = [
        archive.archive(&engine, 1, &log).await.unwrap_err(),
        archive.open(&engine, 1).await.unwrap_err(),
        archive.attempts(&engine).await.unwrap_err(),
        archive
            .engine_deleted(
                &engine,
                &Tombstone {
                    deleted_at: Timestamp::now(),
                    owner: None,
                    share_with_groups: Default::default(),
                },
            )
            .await
            .unwrap_err(),
        archive.tombstone(&engine).await.unwrap_err(),
    ];
    let sweep = archive.sweep(Timestamp::now()).await.unwrap_err();
    let elapsed = started.elapsed();
    for (e, action) in errors
        .iter()
        .chain([&sweep])
        .zip(["upload", "open", "list", "read", "read", "list"])
    {
        let LogError::Backend(message) = e else {
            panic!("not a backend error: {e:?}")
        };
        assert!(
            message.starts_with(&format!("cannot {action} s3://nowhere/{PREFIX}")),
            "{message}"
        );
        assert!(!message.contains(SECRET_ACCESS_KEY), "{message}");
        assert!(!format!("{e:?}").contains(SECRET_ACCESS_KEY), "{e:?}");
    }
    // Six operations, each with its retries, in well under a minute.
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
}

#[tokio::test]
async fn a_missing_bucket_is_an_error_not_an_empty_archive() {
    let server = MotoServer::start();
    let archive =
        S3LogArchive::new(&server.config("absent", PREFIX), Retention::default()).unwrap();
    let engine = EngineId::generate();
    let err = archive.attempts(&engine).await.unwrap_err();
    assert!(matches!(err, LogError::Backend(_)), "{err:?}");
    assert!(err.to_string().contains("s3://absent/"), "{err}");
}

#[tokio::test]
async fn open_log_archive_picks_the_configured_backend() {
    let bucket = Bucket::new();
    let engine = EngineId::generate();
    let log = bucket.source("log", "x\n");
    for config in [
        ArchiveConfig::Filesystem {
            dir: bucket.tmp.path().join("logs"),
        },
        ArchiveConfig::S3(bucket.config()),
    ] {
        let archive = open_log_archive(&config, Retention::default()).unwrap();
        archive.archive(&engine, 1, &log).await.unwrap();
        assert_eq!(read_text(&*archive, &engine, 1).await.unwrap(), "x\n");
    }
    assert!(
        bucket
            .tmp
            .path()
            .join("logs")
            .join(engine.as_str())
            .join("1.log")
            .is_file()
    );
    assert!(
        bucket
            .exists(&format!("{PREFIX}/{}/1.log", engine.as_str()))
            .await
    );
}

#[test]
fn setup_errors_name_their_key() {
    let good = S3ArchiveConfig {
        bucket: "b".to_owned(),
        prefix: "rucat/logs".to_owned(),
        endpoint: Some("https://s3.example.com".to_owned()),
        region: "us-east-1".to_owned(),
        access_key_id: Some("k".to_owned()),
        secret_access_key: Some(Secret::new(SECRET_ACCESS_KEY)),
        allow_http: false,
    };
    let open = |config: S3ArchiveConfig| {
        open_log_archive(&ArchiveConfig::S3(config), Retention::default())
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    open(good.clone()).unwrap();
    open(S3ArchiveConfig {
        endpoint: None,
        prefix: "/".to_owned(),
        ..good.clone()
    })
    .unwrap();
    for (config, expected) in [
        (
            S3ArchiveConfig {
                endpoint: Some("http://127.0.0.1:9000".to_owned()),
                ..good.clone()
            },
            "logs.archive.S3.endpoint: an http:// endpoint needs \"allow_http\": true",
        ),
        (
            S3ArchiveConfig {
                endpoint: Some("s3.example.com".to_owned()),
                ..good.clone()
            },
            "logs.archive.S3.endpoint: \"s3.example.com\" is not an http:// or https:// URL",
        ),
        (
            S3ArchiveConfig {
                endpoint: Some("https://".to_owned()),
                ..good.clone()
            },
            "logs.archive.S3.endpoint: \"https://\" names no host",
        ),
        (
            S3ArchiveConfig {
                bucket: String::new(),
                ..good.clone()
            },
            "logs.archive.S3.bucket: must not be empty",
        ),
        (
            S3ArchiveConfig {
                secret_access_key: None,
                ..good.clone()
            },
            "logs.archive.S3: give both access_key_id and secret_access_key, or neither",
        ),
        (
            S3ArchiveConfig {
                prefix: "a/../b".to_owned(),
                ..good.clone()
            },
            "logs.archive.S3.prefix: ",
        ),
    ] {
        let err = open(config).unwrap_err();
        assert!(err.starts_with(expected), "{err}");
        assert!(!err.contains(SECRET_ACCESS_KEY), "{err}");
    }
    let err = open_log_archive(
        &ArchiveConfig::Filesystem {
            dir: PathBuf::new(),
        },
        Retention::default(),
    )
    .map(|_| ())
    .unwrap_err();
    assert_eq!(err, LogArchiveSetupError::EmptyDir);
    assert_eq!(
        err.to_string(),
        "logs.archive.Filesystem.dir: must not be empty"
    );
}
