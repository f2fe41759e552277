//! Reading part of a log: its last lines, or its lines from a time. Each
//! helper only finds the offset to start from, reading in fixed-size
//! chunks, so it costs bounded memory whatever the log's size and whatever
//! is asked; the caller then streams from that offset ([`select`] does both,
//! through a [`Redactor`]). They work on any tokio `AsyncRead + AsyncSeek`:
//! an archived [`LogFile`](super::LogFile)'s reader, or a live log file.
//!
//! Times are Spark's: its default log4j2 layout starts each line with
//! `%d{yy/MM/dd HH:mm:ss}` (`25/12/01 06:52:16 INFO ...`). Lines without a
//! timestamp (stack traces, multi-line messages) belong to the line before.

use std::io::{self, SeekFrom};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeek, AsyncSeekExt};

use super::redact::{Redacted, Redactor};
use crate::time::Timestamp;

/// Bytes read at a time when looking for where to start.
pub const READ_CHUNK: usize = 64 * 1024;

/// The bytes at the start of a line searched for a timestamp.
const TIME_HEAD: usize = 32;

/// Which part of a log to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection {
    All,
    /// The last this many lines.
    Tail(usize),
    /// The lines logged at or after this time (see [`since_start`]).
    Since(Timestamp),
    /// The last `lines` of the lines logged at or after `since`.
    TailSince {
        lines: usize,
        since: Timestamp,
    },
}

/// `reader` from where `selection` starts, redacted by `redactor`.
pub async fn select<R>(
    mut reader: R,
    selection: Selection,
    redactor: Redactor,
) -> io::Result<Redacted<R>>
where
    R: AsyncRead + AsyncSeek + Unpin,
{
    let start = start_of(&mut reader, selection).await?;
    reader.seek(SeekFrom::Start(start)).await?;
    Ok(Redacted::new(reader, redactor))
}

/// The offset where `selection` starts.
pub async fn start_of<R>(reader: &mut R, selection: Selection) -> io::Result<u64>
where
    R: AsyncRead + AsyncSeek + Unpin + ?Sized,
{
    Ok(match selection {
        Selection::All => 0,
        Selection::Tail(lines) => tail_start(reader, lines).await?,
        Selection::Since(at) => since_start(reader, at).await?,
        Selection::TailSince { lines, since } => {
            let tail = tail_start(reader, lines).await?;
            tail.max(since_start(reader, since).await?)
        }
    })
}

/// The offset where the last `lines` lines begin (0 if there are fewer), the
/// end if `lines` is 0. Reads backwards from the end in [`READ_CHUNK`]s, so
/// it reads at most those lines and one chunk. A final newline ends the last
/// line; it does not start an empty one.
pub async fn tail_start<R>(reader: &mut R, lines: usize) -> io::Result<u64>
where
    R: AsyncRead + AsyncSeek + Unpin + ?Sized,
{
    let len = reader.seek(SeekFrom::End(0)).await?;
    if lines == 0 || len == 0 {
        return Ok(len);
    }
    let mut buf = vec![0; READ_CHUNK];
    let mut found = 0;
    let mut end = len;
    while end > 0 {
        let start = end.saturating_sub(READ_CHUNK as u64);
        let chunk = &mut buf[..usize::try_from(end - start).unwrap_or(READ_CHUNK)];
        reader.seek(SeekFrom::Start(start)).await?;
        reader.read_exact(chunk).await?;
        for (i, &byte) in chunk.iter().enumerate().rev() {
            let at = start + i as u64;
            if byte == b'\n' && at + 1 < len {
                found += 1;
                if found == lines {
                    return Ok(at + 1);
                }
            }
        }
        end = start;
    }
    Ok(0)
}

/// The offset of the first line stamped at or after `at` (to the second: a
/// line from the same second counts), or the end if none is. A log is in time
/// order, so everything from there on is "since": the lines after it that
/// carry no timestamp belong to it or to a later line. Scans forward in
/// [`READ_CHUNK`]s, looking at no more than the start of each line.
///
/// Spark's timestamps carry no zone; they are read as UTC.
pub async fn since_start<R>(reader: &mut R, at: Timestamp) -> io::Result<u64>
where
    R: AsyncRead + AsyncSeek + Unpin + ?Sized,
{
    let since_secs = at.as_millis().div_euclid(1000);
    let is_since = |head: &[u8]| log_time_secs(head).is_some_and(|t| t >= since_secs);
    reader.seek(SeekFrom::Start(0)).await?;
    let mut buf = vec![0; READ_CHUNK];
    let mut head = Vec::with_capacity(TIME_HEAD);
    let mut head_done = false;
    let mut line_start = 0u64;
    let mut offset = 0u64;
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        let mut i = 0;
        while i < n {
            if head_done {
                // Skip the rest of the line at memchr-like speed.
                match buf[i..n].iter().position(|&b| b == b'\n') {
                    Some(p) => {
                        i += p + 1;
                        line_start = offset + i as u64;
                        head.clear();
                        head_done = false;
                    }
                    None => i = n,
                }
                continue;
            }
            let byte = buf[i];
            i += 1;
            if byte != b'\n' {
                head.push(byte);
            }
            if byte == b'\n' || head.len() == TIME_HEAD {
                if is_since(&head) {
                    return Ok(line_start);
                }
                head_done = true;
                if byte == b'\n' {
                    line_start = offset + i as u64;
                    head.clear();
                    head_done = false;
                }
            }
        }
        offset += n as u64;
    }
    if !head_done && is_since(&head) {
        return Ok(line_start);
    }
    Ok(offset)
}

/// The time a log line starts with, in seconds since the Unix epoch, read
/// as UTC: Spark's `yy/MM/dd HH:mm:ss` (years 2000 to 2099), or
/// `yyyy-MM-dd HH:mm:ss` with a space or a `T`.
pub fn log_time_secs(line: &[u8]) -> Option<i64> {
    let (year, sep, rest) = match line {
        [y1, y2, b'/', rest @ ..] => (2000 + digits(&[*y1, *y2])?, b'/', rest),
        [y1, y2, y3, y4, b'-', rest @ ..] => (digits(&[*y1, *y2, *y3, *y4])?, b'-', rest),
        _ => return None,
    };
    let [
        m1,
        m2,
        s1,
        d1,
        d2,
        t,
        h1,
        h2,
        b':',
        i1,
        i2,
        b':',
        s3,
        s4,
        ..,
    ] = rest
    else {
        return None;
    };
    if *s1 != sep || !(*t == b' ' || (sep == b'-' && *t == b'T')) {
        return None;
    }
    let month = digits(&[*m1, *m2])?;
    let day = digits(&[*d1, *d2])?;
    let (hour, minute, second) = (
        digits(&[*h1, *h2])?,
        digits(&[*i1, *i2])?,
        digits(&[*s3, *s4])?,
    );
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3_600 + minute * 60 + second)
}

fn digits(bytes: &[u8]) -> Option<i64> {
    bytes.iter().try_fold(0i64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
    })
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::{AsyncWriteExt, ReadBuf};

    /// Counts the bytes read through it.
    struct Counting<R> {
        inner: R,
        read: u64,
    }

    impl<R: AsyncRead + Unpin> AsyncRead for Counting<R> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let before = buf.filled().len();
            let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
            self.read += (buf.filled().len() - before) as u64;
            poll
        }
    }

    impl<R: AsyncSeek + Unpin> AsyncSeek for Counting<R> {
        fn start_seek(mut self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
            Pin::new(&mut self.inner).start_seek(position)
        }
        fn poll_complete(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
            Pin::new(&mut self.inner).poll_complete(cx)
        }
    }

    async fn tail(log: &str, lines: usize) -> String {
        let mut out = String::new();
        select(
            Cursor::new(log.as_bytes()),
            Selection::Tail(lines),
            Redactor::default(),
        )
        .await
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
        out
    }

    async fn since(log: &str, at: &str) -> String {
        let at = humantime::parse_rfc3339(at).unwrap();
        let millis = at
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let at = Timestamp::from_millis(i64::try_from(millis).unwrap());
        let mut out = String::new();
        select(
            Cursor::new(log.as_bytes()),
            Selection::Since(at),
            Redactor::default(),
        )
        .await
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
        out
    }

    #[tokio::test]
    async fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2).await, "b\nc\n");
        assert_eq!(tail("a\nb\nc", 2).await, "b\nc");
        assert_eq!(tail("a\nb\nc\n", 3).await, "a\nb\nc\n");
        assert_eq!(tail("a\nb\nc\n", 10).await, "a\nb\nc\n");
        assert_eq!(tail("a\nb\nc\n", 0).await, "");
        assert_eq!(tail("", 5).await, "");
        assert_eq!(tail("\n\n", 1).await, "\n");
    }

    #[tokio::test]
    async fn tail_works_across_chunks() {
        let log: String = (0..50_000).map(|i| format!("line {i}\n")).collect();
        assert!(log.len() > 3 * READ_CHUNK);
        let expected: String = (40_000..50_000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(tail(&log, 10_000).await, expected);
        assert_eq!(tail(&log, 60_000).await, log);
    }

    #[tokio::test]
    async fn tail_of_a_200_mb_file_reads_only_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("engine.log");
        let line = format!("26/01/01 00:00:00 INFO Filler: {}\n", "x".repeat(90));
        let block = line.repeat((1 << 20) / line.len());
        let mut file = tokio::fs::File::create(&path).await.unwrap();
        let mut written = 0u64;
        while written < 200 * 1024 * 1024 {
            file.write_all(block.as_bytes()).await.unwrap();
            written += block.len() as u64;
        }
        for i in 0..100 {
            file.write_all(format!("26/01/01 00:00:01 INFO Last: {i}\n").as_bytes())
                .await
                .unwrap();
        }
        file.flush().await.unwrap();
        drop(file);

        let file = tokio::fs::File::open(&path).await.unwrap();
        let mut counting = Counting {
            inner: file,
            read: 0,
        };
        let start = tail_start(&mut counting, 100).await.unwrap();
        let len = tokio::fs::metadata(&path).await.unwrap().len();
        assert!(len > 200 * 1024 * 1024);
        let tail_bytes = len - start;
        assert!(
            counting.read <= tail_bytes + READ_CHUNK as u64,
            "read {} bytes for a {tail_bytes}-byte tail",
            counting.read
        );
        let mut out = String::new();
        select(counting, Selection::Tail(100), Redactor::default())
            .await
            .unwrap()
            .read_to_string(&mut out)
            .await
            .unwrap();
        let expected: String = (0..100)
            .map(|i| format!("26/01/01 00:00:01 INFO Last: {i}\n"))
            .collect();
        assert_eq!(out, expected);
    }

    const SPARK_LOG: &str = "\
Spark Command: java -cp ...
25/12/01 06:52:15 INFO SparkContext: Running Spark version 4.0.0
25/12/01 06:52:16 ERROR SparkContext: Error initializing SparkContext.
java.lang.IllegalArgumentException: bad value
\tat org.apache.spark.SparkConf.get(SparkConf.scala:1)
25/12/01 06:52:17 INFO ShutdownHookManager: Shutdown hook called
";

    #[tokio::test]
    async fn since_starts_at_the_first_line_at_or_after_the_time() {
        // Continuation lines go with the line they follow.
        assert_eq!(
            since(SPARK_LOG, "2025-12-01T06:52:16Z").await,
            "25/12/01 06:52:16 ERROR SparkContext: Error initializing SparkContext.\n\
             java.lang.IllegalArgumentException: bad value\n\
             \tat org.apache.spark.SparkConf.get(SparkConf.scala:1)\n\
             25/12/01 06:52:17 INFO ShutdownHookManager: Shutdown hook called\n"
        );
        // Within a second, the line of that second counts.
        assert_eq!(
            since(SPARK_LOG, "2025-12-01T06:52:17.900Z").await,
            "25/12/01 06:52:17 INFO ShutdownHookManager: Shutdown hook called\n"
        );
        assert_eq!(since(SPARK_LOG, "2025-12-01T06:52:18Z").await, "");
        assert_eq!(
            since(SPARK_LOG, "2025-11-30T00:00:00Z").await,
            SPARK_LOG.split_once('\n').unwrap().1
        );
        assert_eq!(since("", "2025-11-30T00:00:00Z").await, "");
        assert_eq!(
            since("no times here\nat all", "2025-11-30T00:00:00Z").await,
            ""
        );
        // A last line without a newline, and a very long line before it.
        let log = format!(
            "25/12/01 06:00:00 INFO A: {}\n25/12/01 07:00:00 INFO B",
            "y".repeat(200_000)
        );
        assert_eq!(
            since(&log, "2025-12-01T06:30:00Z").await,
            "25/12/01 07:00:00 INFO B"
        );
    }

    #[test]
    fn log_times_are_parsed_strictly() {
        // 2025-12-01T06:52:16Z
        assert_eq!(
            log_time_secs(b"25/12/01 06:52:16 INFO x"),
            Some(1_764_571_936)
        );
        assert_eq!(
            log_time_secs(b"2025-12-01 06:52:16,123 INFO"),
            Some(1_764_571_936)
        );
        assert_eq!(log_time_secs(b"2025-12-01T06:52:16"), Some(1_764_571_936));
        assert_eq!(log_time_secs(b"70/01/01 00:00:00"), Some(3_155_760_000));
        assert_eq!(log_time_secs(b"2000-03-01 00:00:00"), Some(951_868_800));
        for bad in [
            &b""[..],
            b"25/12/01",
            b"25/13/01 06:52:16",
            b"25/12/01 24:00:00",
            b"25-12-01 06:52:16",
            b"2025/12/01 06:52:16",
            b"25/12/01T06:52:16",
            b"\tat org.apache",
            b"25/12/0x 06:52:16",
        ] {
            assert_eq!(log_time_secs(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
