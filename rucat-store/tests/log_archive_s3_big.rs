//! A 200 MB log through the S3 log archive with bounded memory: archived
//! with a streamed multipart upload, and its last 100 lines read with
//! ranged reads of a few chunks. Alone in its test binary, so the process's
//! peak resident memory is this test's.

#[path = "support/moto_server.rs"]
mod moto_server;

use std::io::Write;
use std::time::Instant;

use moto_server::MotoServer;
use rucat_core::engine::EngineId;
use rucat_core::logs::{LogArchive, Redactor, Retention, Selection, select};
use rucat_store::logs::S3LogArchive;
use tokio::io::AsyncReadExt;

const MIB: u64 = 1024 * 1024;
/// 2,000,000 numbered lines of 100 bytes.
const LINES: u64 = 2_000_000;

fn line(i: u64) -> String {
    format!("{i:>99}\n")
}

/// A field of /proc/self/status, in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib * 1024
}

/// Resets the peak resident size (VmHWM) to the current one.
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

/// How far the peak resident size rose above `before` since [`reset_peak`].
fn peak_growth(before: u64) -> u64 {
    status_bytes("VmHWM:").saturating_sub(before)
}

#[tokio::test]
async fn a_200_mb_log_is_archived_and_tailed_in_bounded_memory() {
    let server = MotoServer::start();
    server.create_bucket("big");
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("engine.log");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&source).unwrap());
        for i in 0..LINES {
            out.write_all(line(i).as_bytes()).unwrap();
        }
        out.flush().unwrap();
    }
    let len = std::fs::metadata(&source).unwrap().len();
    assert_eq!(len, LINES * 100);

    let retention = Retention {
        max_bytes_per_attempt: 256 * MIB,
        ..Retention::default()
    };
    let archive = S3LogArchive::new(&server.config("big", "logs"), retention).unwrap();
    let engine = EngineId::generate();

    reset_peak();
    let before = status_bytes("VmRSS:");
    let started = Instant::now();
    let report = archive.archive(&engine, 1, &source).await.unwrap();
    let archived_in = started.elapsed();
    let archive_growth = peak_growth(before);
    assert_eq!((report.cut, report.archived.bytes), (0, len));
    assert_eq!(archive.attempts(&engine).await.unwrap()[0].bytes, len);

    reset_peak();
    let before = status_bytes("VmRSS:");
    let started = Instant::now();
    let log = archive.open(&engine, 1).await.unwrap().unwrap();
    assert_eq!(log.len, len);
    let mut tail = String::new();
    select(log.reader, Selection::Tail(100), Redactor::new(["nothing"]))
        .await
        .unwrap()
        .read_to_string(&mut tail)
        .await
        .unwrap();
    let tailed_in = started.elapsed();
    let tail_growth = peak_growth(before);
    let expected: String = (LINES - 100..LINES).map(line).collect();
    assert!(tail == expected, "the last 100 lines differ");
    let fetched = archive.bytes_read();

    eprintln!(
        "200 MB log: archived in {archived_in:?} with peak RSS +{} MiB; \
         last 100 lines in {tailed_in:?} with peak RSS +{} KiB, {} KiB fetched",
        archive_growth / MIB,
        tail_growth / 1024,
        fetched / 1024
    );
    // Uploading holds at most a few 8 MiB parts, never the log.
    assert!(
        archive_growth < 64 * MIB,
        "archiving grew the peak RSS by {} MiB",
        archive_growth / MIB
    );
    // The tail is found reading backwards in 64 KiB chunks, each fetch at
    // most 256 KiB: a few fetches, not the object.
    assert!(
        fetched < MIB,
        "{fetched} bytes fetched for the last 100 lines"
    );
    assert!(
        tail_growth < 8 * MIB,
        "reading the tail grew the peak RSS by {} KiB",
        tail_growth / 1024
    );
}
