//! Following a log file that its engine is still writing, like `tail -f`:
//! for platforms whose live log is a local file.

use std::future::Future;
use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::fs::File;
use tokio::io::AsyncReadExt;
use tokio_util::io::StreamReader;

use super::read::READ_CHUNK;
use crate::resource::LiveLog;

/// How often a followed file is checked for growth once its end is reached.
pub const POLL: Duration = Duration::from_millis(200);

/// `file` from its current position: what is there, then whatever is
/// appended, polled every [`POLL`], until `ended` says its writer is gone;
/// what was written before that is still delivered. Memory stays within one
/// [`READ_CHUNK`] whatever the file's size.
pub fn follow<F, Fut>(file: File, ended: F) -> LiveLog
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    struct Following<F> {
        file: File,
        ended: F,
        /// The writer was seen gone: the next end of file is the last.
        last_round: bool,
    }
    let state = Following {
        file,
        ended,
        last_round: false,
    };
    let chunks = futures::stream::unfold(state, |mut state| async move {
        loop {
            let mut buf = BytesMut::with_capacity(READ_CHUNK);
            match state.file.read_buf(&mut buf).await {
                Ok(0) if state.last_round => return None,
                Ok(0) => {
                    if (state.ended)().await {
                        // Read once more: the writer may have written its
                        // last lines between our read and its end.
                        state.last_round = true;
                    } else {
                        tokio::time::sleep(POLL).await;
                    }
                }
                Ok(_) => return Some((Ok::<Bytes, io::Error>(buf.freeze()), state)),
                Err(e) => {
                    // Ends the stream after reporting the error.
                    state.last_round = true;
                    return Some((Err(e), state));
                }
            }
        }
    });
    Box::pin(StreamReader::new(chunks))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    use super::*;

    #[tokio::test]
    async fn delivers_what_is_appended_and_ends_with_its_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("engine.log");
        let mut writer = tokio::fs::File::create(&path).await.unwrap();
        writer.write_all(b"first\n").await.unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let ended = {
            let done = Arc::clone(&done);
            move || {
                let done = Arc::clone(&done);
                async move { done.load(Ordering::SeqCst) }
            }
        };
        let reader = follow(File::open(&path).await.unwrap(), ended);
        let mut lines = BufReader::new(reader).lines();
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "first");
        writer.write_all(b"second\n").await.unwrap();
        let second = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
            .await
            .expect("an appended line arrives")
            .unwrap();
        assert_eq!(second.unwrap(), "second");
        writer.write_all(b"last words\n").await.unwrap();
        done.store(true, Ordering::SeqCst);
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "last words");
        let end = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
            .await
            .expect("the stream ends with its writer");
        assert_eq!(end.unwrap(), None);
    }
}
