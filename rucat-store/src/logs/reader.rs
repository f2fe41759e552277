//! A seekable reader over one version of an object: ranged GETs of a bounded
//! size, each pinned to the ETag the object had when it was opened, so a log
//! replaced while it is read fails the read instead of mixing two copies.
//!
//! `object_store::buffered::BufReader` is also a tokio `AsyncRead +
//! AsyncSeek`, but it fetches by range only (no version) and drops its
//! buffer on every seek; this one keeps a fetched chunk while seeks land in
//! it, which is how [`tail_start`](rucat_core::logs::tail_start) reads.

use std::io::{self, SeekFrom};
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore};
use tokio::io::{AsyncRead, AsyncSeek, ReadBuf};

/// Bytes fetched by one GET, unless a read asks for more.
pub(crate) const FETCH_CHUNK: usize = 256 * 1024;

enum Buffer {
    Empty,
    Pending(u64, BoxFuture<'static, io::Result<Bytes>>),
    /// Bytes of the object from the offset.
    Ready(u64, Bytes),
}

pub(crate) struct RangedReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    e_tag: Option<String>,
    size: u64,
    cursor: u64,
    buffer: Buffer,
    /// Bytes fetched, added up across the archive's readers.
    fetched: Arc<AtomicU64>,
}

impl RangedReader {
    pub(crate) fn new(
        store: Arc<dyn ObjectStore>,
        path: Path,
        e_tag: Option<String>,
        size: u64,
        fetched: Arc<AtomicU64>,
    ) -> Self {
        Self {
            store,
            path,
            e_tag,
            size,
            cursor: 0,
            buffer: Buffer::Empty,
            fetched,
        }
    }

    fn fetch(&self, range: Range<u64>) -> BoxFuture<'static, io::Result<Bytes>> {
        let store = Arc::clone(&self.store);
        let path = self.path.clone();
        let fetched = Arc::clone(&self.fetched);
        let options = GetOptions {
            if_match: self.e_tag.clone(),
            range: Some(GetRange::Bounded(range.clone())),
            ..GetOptions::default()
        };
        let want = range.end - range.start;
        async move {
            let failed = |e: object_store::Error| match e {
                object_store::Error::Precondition { .. } => io::Error::other(format!(
                    "log archive: {path} was replaced while it was being read"
                )),
                e => io::Error::other(format!(
                    "log archive: cannot read bytes {}..{} of {path}: {e}",
                    range.start, range.end
                )),
            };
            let bytes = store
                .get_opts(&path, options)
                .await
                .map_err(failed)?
                .bytes()
                .await
                .map_err(failed)?;
            fetched.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            if bytes.len() as u64 != want {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "log archive: asked for {want} bytes of {path}, got {}",
                        bytes.len()
                    ),
                ));
            }
            Ok(bytes)
        }
        .boxed()
    }
}

impl AsyncRead for RangedReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.cursor >= this.size || out.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            match &mut this.buffer {
                Buffer::Ready(start, bytes)
                    if (*start..*start + bytes.len() as u64).contains(&this.cursor) =>
                {
                    let from = usize::try_from(this.cursor - *start).unwrap_or(usize::MAX);
                    let n = out.remaining().min(bytes.len() - from);
                    out.put_slice(&bytes[from..from + n]);
                    this.cursor += n as u64;
                    return Poll::Ready(Ok(()));
                }
                Buffer::Pending(start, future) => match ready!(future.poll_unpin(cx)) {
                    Ok(bytes) => this.buffer = Buffer::Ready(*start, bytes),
                    Err(e) => {
                        this.buffer = Buffer::Empty;
                        return Poll::Ready(Err(e));
                    }
                },
                _ => {
                    let want = out.remaining().max(FETCH_CHUNK) as u64;
                    let end = this.cursor.saturating_add(want).min(this.size);
                    let future = this.fetch(this.cursor..end);
                    this.buffer = Buffer::Pending(this.cursor, future);
                }
            }
        }
    }
}

impl AsyncSeek for RangedReader {
    fn start_seek(mut self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        let target = match position {
            SeekFrom::Start(offset) => Some(offset),
            SeekFrom::End(offset) => self.size.checked_add_signed(offset),
            SeekFrom::Current(offset) => self.cursor.checked_add_signed(offset),
        };
        let target = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek to a negative or overflowing position",
            )
        })?;
        // A fetch under way for another position is dropped (and so cancelled).
        if let Buffer::Pending(start, _) = &self.buffer {
            if *start != target {
                self.buffer = Buffer::Empty;
            }
        }
        self.cursor = target;
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Poll::Ready(Ok(self.cursor))
    }
}
