//! The size cap on an archived log, keeping its tail. A runaway engine can
//! write gigabytes; what explains how it ended is at the end. So a log over
//! the cap keeps its last bytes, from the first whole line among them, after
//! a first line saying how much was cut so nobody mistakes it for the whole.
//! Shared by every backend: it copies between any tokio reader and writer in
//! fixed-size chunks, never holding the log.

use std::io::{self, SeekFrom};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeek, AsyncSeekExt, AsyncWrite, AsyncWriteExt};

/// Bytes moved at a time.
const COPY_CHUNK: usize = 256 * 1024;

/// The first line of a log cut to `cap` bytes after `cut` bytes were dropped.
pub fn cut_note(cut: u64, cap: u64) -> String {
    format!("[rucat: the first {cut} bytes of this log were cut, to keep its last {cap} bytes]\n")
}

/// Copies the first `len` bytes of `source` to `dest`, or, if `len` is over
/// `cap`, a [`cut_note`] and then the last at most `cap` bytes from a line
/// boundary (from exactly `len - cap` if no line starts among them). Returns
/// the bytes cut; the note is not counted against the cap.
pub async fn copy_tail<R, W>(source: &mut R, len: u64, cap: u64, dest: &mut W) -> io::Result<u64>
where
    R: AsyncRead + AsyncSeek + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let start = if len > cap {
        line_start_from(source, len - cap, len).await?
    } else {
        0
    };
    if start > 0 {
        dest.write_all(cut_note(start, cap).as_bytes()).await?;
    }
    source.seek(SeekFrom::Start(start)).await?;
    let mut left = len - start;
    let mut buf = vec![0; COPY_CHUNK];
    while left > 0 {
        let want = usize::try_from(left).map_or(COPY_CHUNK, |l| l.min(COPY_CHUNK));
        let n = source.read(&mut buf[..want]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the log shrank while it was being archived",
            ));
        }
        dest.write_all(&buf[..n]).await?;
        left -= n as u64;
    }
    dest.flush().await?;
    Ok(start)
}

/// The offset just after the first newline at or after `from` and before
/// `len - 1`, or `from` itself if there is none.
async fn line_start_from<R>(source: &mut R, from: u64, len: u64) -> io::Result<u64>
where
    R: AsyncRead + AsyncSeek + Unpin + ?Sized,
{
    // A line starting exactly at `from` needs no skipping.
    if from > 0 {
        source.seek(SeekFrom::Start(from - 1)).await?;
        let mut before = [0u8; 1];
        source.read_exact(&mut before).await?;
        if before[0] == b'\n' {
            return Ok(from);
        }
    }
    let mut buf = vec![0; COPY_CHUNK];
    let mut at = from;
    while at < len {
        let want = usize::try_from(len - at).map_or(COPY_CHUNK, |l| l.min(COPY_CHUNK));
        let n = source.read(&mut buf[..want]).await?;
        if n == 0 {
            break;
        }
        if let Some(i) = buf[..n].iter().position(|&b| b == b'\n') {
            let next = at + i as u64 + 1;
            return Ok(if next < len { next } else { from });
        }
        at += n as u64;
    }
    Ok(from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    async fn capped(log: &str, cap: u64) -> (String, u64) {
        let mut out = Vec::new();
        let cut = copy_tail(
            &mut Cursor::new(log.as_bytes()),
            log.len() as u64,
            cap,
            &mut out,
        )
        .await
        .unwrap();
        (String::from_utf8(out).unwrap(), cut)
    }

    #[tokio::test]
    async fn logs_within_the_cap_are_copied_whole() {
        assert_eq!(capped("a\nb\n", 4).await, ("a\nb\n".to_owned(), 0));
        assert_eq!(capped("", 4).await, (String::new(), 0));
    }

    #[tokio::test]
    async fn logs_over_the_cap_keep_their_tail_from_a_line_start() {
        // The last 7 bytes are "ne2\nl3\n": the kept part starts at "l3".
        let (out, cut) = capped("line1\nline2\nl3\n", 7).await;
        assert_eq!(cut, 12);
        assert_eq!(out, format!("{}l3\n", cut_note(12, 7)));
        // Exactly at a line start: nothing more is dropped.
        let (out, cut) = capped("line1\nline2\nl3\n", 9).await;
        assert_eq!(cut, 6);
        assert_eq!(out, format!("{}line2\nl3\n", cut_note(6, 9)));
        // One long line: the last bytes, mid-line.
        let (out, cut) = capped("abcdefghij", 4).await;
        assert_eq!((out, cut), (format!("{}ghij", cut_note(6, 4)), 6));
    }
}
