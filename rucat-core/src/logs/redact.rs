//! Secrets out of served logs. Spark prints what it is given (configs,
//! environment, command lines), and the engine's own token is among what it
//! is given. Redaction happens on the way out, over a stream read in
//! arbitrary chunks, so a secret split across two reads must still be
//! caught: the [`Redactor`] holds back the few bytes that might begin one
//! until the next chunk decides.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, ReadBuf};

/// What a secret is replaced with.
pub const REDACTED: &[u8] = b"<redacted>";

/// Bytes read from the inner reader at a time by [`Redacted`].
const READ_CHUNK: usize = 64 * 1024;

/// Replaces every occurrence of its secrets in a byte stream fed in chunks
/// ([`Redactor::push`], then [`Redactor::finish`]). Holds back at most the
/// longest secret's length less one byte.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Longest first, so that of secrets starting at one place the longest
    /// is replaced whole.
    secrets: Vec<Vec<u8>>,
    /// The secrets' distinct first bytes: no secret starts anywhere else,
    /// so the scan jumps from one of these to the next.
    firsts: Vec<u8>,
    carry: Vec<u8>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl Redactor {
    /// A redactor of `secrets`; empty ones are ignored. For an engine's
    /// token: `Redactor::new([token.expose()])`.
    pub fn new<I, S>(secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let mut secrets: Vec<Vec<u8>> = secrets
            .into_iter()
            .map(|s| s.as_ref().to_vec())
            .filter(|s| !s.is_empty())
            .collect();
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        let mut firsts: Vec<u8> = secrets.iter().filter_map(|s| s.first().copied()).collect();
        firsts.sort_unstable();
        firsts.dedup();
        Self {
            secrets,
            firsts,
            carry: Vec::new(),
        }
    }

    /// Feeds the next chunk; what is certainly final goes to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.secrets.is_empty() {
            out.extend_from_slice(chunk);
            return;
        }
        let mut data = std::mem::take(&mut self.carry);
        data.extend_from_slice(chunk);
        let rest = self.scan(&data, out, false);
        self.carry = data.split_off(rest);
    }

    /// Ends the stream: what was held back goes to `out`, redacted.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let data = std::mem::take(&mut self.carry);
        self.scan(&data, out, true);
    }

    /// Writes `data` redacted to `out` up to where a secret might begin but
    /// not yet be complete (unless `last`), and returns that position.
    fn scan(&self, data: &[u8], out: &mut Vec<u8>, last: bool) -> usize {
        let longest = self.secrets.first().map_or(0, Vec::len);
        let mut run = 0;
        let mut at = 0;
        while at < data.len() {
            match self.next_candidate(&data[at..]) {
                Some(skip) => at += skip,
                None => {
                    at = data.len();
                    break;
                }
            }
            let rest = &data[at..];
            if !last
                && rest.len() < longest
                && self
                    .secrets
                    .iter()
                    .any(|s| s.len() > rest.len() && s.starts_with(rest))
            {
                break;
            }
            match self.secrets.iter().find(|s| rest.starts_with(s)) {
                Some(secret) => {
                    out.extend_from_slice(&data[run..at]);
                    out.extend_from_slice(REDACTED);
                    at += secret.len();
                    run = at;
                }
                None => at += 1,
            }
        }
        out.extend_from_slice(&data[run..at]);
        at
    }
}

impl Redactor {
    /// Where in `data` a secret could start: the next of the secrets'
    /// first bytes (memchr's vectorized search for up to three of them).
    fn next_candidate(&self, data: &[u8]) -> Option<usize> {
        match self.firsts[..] {
            [a] => memchr::memchr(a, data),
            [a, b] => memchr::memchr2(a, b, data),
            [a, b, c] => memchr::memchr3(a, b, c, data),
            _ => data
                .iter()
                .position(|b| self.firsts.binary_search(b).is_ok()),
        }
    }
}

/// A reader that yields its inner reader's bytes redacted.
#[derive(Debug)]
pub struct Redacted<R> {
    inner: R,
    redactor: Redactor,
    pending: Vec<u8>,
    served: usize,
    buf: Box<[u8]>,
    done: bool,
}

impl<R> Redacted<R> {
    pub fn new(inner: R, redactor: Redactor) -> Self {
        Self {
            inner,
            redactor,
            pending: Vec::new(),
            served: 0,
            buf: vec![0; READ_CHUNK].into_boxed_slice(),
            done: false,
        }
    }

    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Redacted<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.served < this.pending.len() {
                let n = out.remaining().min(this.pending.len() - this.served);
                out.put_slice(&this.pending[this.served..this.served + n]);
                this.served += n;
                if this.served == this.pending.len() {
                    this.pending.clear();
                    this.served = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.done {
                return Poll::Ready(Ok(()));
            }
            let mut read = ReadBuf::new(&mut this.buf);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            let filled = read.filled();
            if filled.is_empty() {
                this.redactor.finish(&mut this.pending);
                this.done = true;
            } else {
                this.redactor.push(filled, &mut this.pending);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn redact_in_chunks(secrets: &[&str], text: &str, chunk: usize) -> String {
        let mut redactor = Redactor::new(secrets.iter().copied());
        let mut out = Vec::new();
        for piece in text.as_bytes().chunks(chunk) {
            redactor.push(piece, &mut out);
        }
        redactor.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn secrets_are_replaced_whatever_the_chunking() {
        let token = "0123456789abcdef0123456789abcdef";
        let text = format!(
            "start {token} middle x{token}{token}y --conf spark.secret=hunter2 end {token}"
        );
        let expected = "start <redacted> middle x<redacted><redacted>y --conf spark.secret=<redacted> end <redacted>";
        for chunk in 1..=text.len() {
            assert_eq!(
                redact_in_chunks(&[token, "hunter2"], &text, chunk),
                expected,
                "chunk {chunk}"
            );
        }
    }

    /// The same answer as the obvious quadratic scan (at each place, the
    /// longest secret that starts there), for one to five secrets (so
    /// every way of finding candidates is used), whatever the chunking.
    #[test]
    fn the_jumping_scan_agrees_with_the_obvious_one() {
        fn obvious(secrets: &[&str], text: &str) -> String {
            let mut sorted: Vec<&str> = secrets.to_vec();
            sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
            let (mut out, mut at) = (String::new(), 0);
            while at < text.len() {
                match sorted.iter().find(|s| text[at..].starts_with(**s)) {
                    Some(s) => {
                        out.push_str("<redacted>");
                        at += s.len();
                    }
                    None => {
                        out.push_str(&text[at..=at]);
                        at += 1;
                    }
                }
            }
            out
        }
        let all = ["abc", "xyz", "aab", "qq", "bca"];
        // A deterministic jumble of the secrets' letters and others.
        let text: String = (0..600u32)
            .map(|i| b"abcxyzq. "[(i.wrapping_mul(7919) % 9) as usize] as char)
            .collect();
        for n in 1..=all.len() {
            let secrets = &all[..n];
            let expected = obvious(secrets, &text);
            for chunk in [1, 2, 3, 5, 64, 600] {
                assert_eq!(
                    redact_in_chunks(secrets, &text, chunk),
                    expected,
                    "{n} secrets, chunk {chunk}"
                );
            }
        }
    }

    #[test]
    fn the_longest_secret_at_a_place_is_replaced_whole() {
        // "cd" alone must not leave "ef" of "cdef" showing, even when "cdef"
        // arrives in two pieces.
        for chunk in 1..=8 {
            assert_eq!(
                redact_in_chunks(&["cd", "cdef"], "abcdefcdx", chunk),
                "ab<redacted><redacted>x"
            );
        }
    }

    #[test]
    fn partial_secrets_and_no_secrets_pass_through() {
        assert_eq!(redact_in_chunks(&["secret"], "secre", 2), "secre");
        assert_eq!(redact_in_chunks(&["secret"], "a secre t", 3), "a secre t");
        assert_eq!(redact_in_chunks(&[], "anything", 3), "anything");
        assert_eq!(redact_in_chunks(&[""], "anything", 3), "anything");
    }

    #[tokio::test]
    async fn the_reader_redacts_across_its_reads() {
        let token = crate::EngineToken::generate().unwrap();
        let mut log = Vec::new();
        for i in 0..20_000 {
            log.extend_from_slice(format!("line {i} token={}\n", token.expose()).as_bytes());
        }
        assert!(log.len() > 2 * READ_CHUNK);
        let mut reader = Redacted::new(&log[..], Redactor::new([token.expose()]));
        let mut out = String::new();
        reader.read_to_string(&mut out).await.unwrap();
        assert!(!out.contains(token.expose()));
        assert_eq!(out.lines().count(), 20_000);
        assert!(out.lines().all(|l| l.ends_with(" token=<redacted>")));
    }
}
