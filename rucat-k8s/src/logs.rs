//! The driver's log, through the `pods/log` subresource (the kubelet's copy
//! of the container's output): the request for a [`LogQuery`], which
//! answers mean "no log", the stream as a tokio reader, and the failure
//! reason that quotes the log. Pure but for the reader adapter.
//!
//! The kubelet keeps a container's log until its pod is removed — also
//! while the pod is terminating, which is when the monitor archives it — so
//! whatever was not read before a removal (a force delete with no grace
//! period, a node lost with its disk) is lost.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::io::AsyncBufRead;
use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use rucat_core::logs::Selection;
use rucat_core::resource::LogQuery;
use tokio::io::ReadBuf;

use crate::names::CONTAINER;

/// How much of a failed driver's log is read for its failure reason: the
/// last this many lines…
pub const REASON_TAIL_LINES: i64 = 200;
/// …and at most this many bytes of them.
pub const REASON_TAIL_BYTES: i64 = 64 * 1024;

/// The request for `query`: the driver container's log from where the
/// selection starts.
///
/// The API takes `sinceTime` in whole seconds, so a `Since` selection is
/// rounded down to its second: it may start with lines of that second
/// logged before the requested instant, never miss one after it.
pub fn params(query: &LogQuery) -> LogParams {
    params_of(CONTAINER, query)
}

/// [`params`] for the log of `container` (the engine's main container,
/// whichever its kind).
pub fn params_of(container: &str, query: &LogQuery) -> LogParams {
    let mut params = LogParams {
        container: Some(container.to_owned()),
        follow: query.follow,
        ..LogParams::default()
    };
    match query.selection {
        Selection::All => {}
        Selection::Tail(lines) => {
            params.tail_lines = Some(i64::try_from(lines).unwrap_or(i64::MAX));
        }
        Selection::Since(at) => params.since_time = Some(since_second(at)),
        // The API applies both: the last lines of those since the time.
        Selection::TailSince { lines, since } => {
            params.tail_lines = Some(i64::try_from(lines).unwrap_or(i64::MAX));
            params.since_time = Some(since_second(since));
        }
    }
    params
}

/// `at` rounded down to its second, the API's resolution.
fn since_second(at: rucat_core::Timestamp) -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::from_second(at.as_millis().div_euclid(1000))
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
}

/// The request for the end of a failed driver's log, bounded in lines and
/// bytes (see [`REASON_TAIL_LINES`]).
pub fn reason_params() -> LogParams {
    reason_params_of(CONTAINER)
}

/// [`reason_params`] for the log of `container`.
pub fn reason_params_of(container: &str) -> LogParams {
    LogParams {
        container: Some(container.to_owned()),
        tail_lines: Some(REASON_TAIL_LINES),
        limit_bytes: Some(REASON_TAIL_BYTES),
        ..LogParams::default()
    }
}

/// Whether the API's refusal means the driver has no log (rather than that
/// it could not be asked): the pod does not exist (404), or the kubelet has
/// no container to read yet — `container "…" in pod "…" is waiting to
/// start: ContainerCreating` (400), or not available, or terminated
/// without ever running.
pub fn means_no_log(err: &kube::Error) -> bool {
    let kube::Error::Api(status) = err else {
        return false;
    };
    match status.code {
        404 => true,
        400 => [
            "is waiting to start",
            "is not available",
            "is terminated",
            "ContainerCreating",
            "PodInitializing",
        ]
        .iter()
        .any(|phrase| status.message.contains(phrase)),
        _ => false,
    }
}

/// Whether a failed driver's log is worth quoting in its failure reason:
/// its container ran and exited with an error. Not when the kernel killed
/// it for memory (`OOMKilled` says it all; the log just stops), nor for a
/// pod that failed without its container running (eviction, image).
pub fn log_explains_failure(pod: &Pod) -> bool {
    let container = crate::status::container_name(pod);
    let Some(terminated) = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|all| all.iter().find(|c| c.name == container))
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref())
    else {
        return false;
    };
    terminated.exit_code != 0 && terminated.reason.as_deref() != Some("OOMKilled")
}

/// `reason` (from the pod's status) followed by `summary`, the relevant
/// lines of the driver's log ([`rucat_core::logs::reason::summarize_log`]),
/// as the local resource manager words it.
pub fn with_log(reason: &str, summary: &str) -> String {
    if summary.is_empty() {
        format!("{reason}; its log is empty")
    } else {
        format!("{reason}; end of its log:\n{summary}")
    }
}

/// A futures reader (what kube streams a log as) read as a tokio one
/// (what [`rucat_core::resource::LiveLog`] is).
pub struct TokioRead<R> {
    inner: Pin<Box<R>>,
}

impl<R> TokioRead<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner: Box::pin(inner),
        }
    }
}

impl<R: AsyncBufRead> tokio::io::AsyncRead for TokioRead<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let inner = &mut self.get_mut().inner;
        let available = ready!(inner.as_mut().poll_fill_buf(cx))?;
        let n = available.len().min(buf.remaining());
        buf.put_slice(&available[..n]);
        inner.as_mut().consume(n);
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use rucat_core::Timestamp;
    use serde_json::json;
    use tokio::io::AsyncReadExt;

    use super::*;

    #[test]
    fn queries_become_log_params_of_the_driver_container() {
        let whole = params(&LogQuery::WHOLE);
        assert_eq!(whole.container.as_deref(), Some(CONTAINER));
        assert!(!whole.follow);
        assert_eq!((whole.tail_lines, whole.since_time), (None, None));
        let tail = params(&LogQuery {
            selection: Selection::Tail(100),
            follow: true,
        });
        assert_eq!(tail.tail_lines, Some(100));
        assert!(tail.follow);
        let since = params(&LogQuery {
            selection: Selection::Since(Timestamp::from_millis(1_700_000_000_999)),
            follow: false,
        });
        assert_eq!(
            since.since_time,
            Some(k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap()),
            "rounded down to the second"
        );
        let reason = reason_params();
        assert_eq!(reason.tail_lines, Some(REASON_TAIL_LINES));
        assert_eq!(reason.limit_bytes, Some(REASON_TAIL_BYTES));
    }

    fn api_error(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            message: message.into(),
            ..kube::core::Status::default()
        }))
    }

    #[test]
    fn no_pod_or_no_container_yet_means_no_log() {
        assert!(means_no_log(&api_error(404, "pods \"rucat-x\" not found")));
        assert!(means_no_log(&api_error(
            400,
            "container \"spark-connect\" in pod \"rucat-x\" is waiting to start: ContainerCreating"
        )));
        assert!(means_no_log(&api_error(
            400,
            "container \"spark-connect\" in pod \"rucat-x\" is waiting to start: trying and failing to pull image"
        )));
        assert!(!means_no_log(&api_error(
            400,
            "container spark-connect is not valid for pod rucat-x"
        )));
        assert!(!means_no_log(&api_error(403, "forbidden")));
        assert!(!means_no_log(&api_error(503, "unavailable")));
    }

    fn pod_with(state: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "rucat-x"},
            "status": {"phase": "Failed", "containerStatuses": [
                {"name": CONTAINER, "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                 "state": state}]},
        }))
        .unwrap()
    }

    #[test]
    fn only_an_error_exit_is_explained_by_the_log() {
        let exited = |code: i32, reason: &str| {
            pod_with(json!({"terminated": {"exitCode": code, "reason": reason}}))
        };
        assert!(log_explains_failure(&exited(1, "Error")));
        assert!(!log_explains_failure(&exited(137, "OOMKilled")));
        assert!(!log_explains_failure(&exited(0, "Completed")));
        assert!(!log_explains_failure(&pod_with(
            json!({"waiting": {"reason": "ImagePullBackOff"}})
        )));
        let evicted: Pod =
            serde_json::from_value(json!({"status": {"phase": "Failed", "reason": "Evicted"}}))
                .unwrap();
        assert!(!log_explains_failure(&evicted));
    }

    #[test]
    fn reasons_quote_the_summary() {
        assert_eq!(
            with_log(
                "the driver container ended: Error (exit code 1)",
                "java.lang.IllegalArgumentException: bad"
            ),
            "the driver container ended: Error (exit code 1); end of its log:\njava.lang.IllegalArgumentException: bad"
        );
        assert_eq!(with_log("ended", ""), "ended; its log is empty");
    }

    #[tokio::test]
    async fn a_futures_reader_reads_as_a_tokio_one() {
        let source = futures::io::BufReader::with_capacity(3, &b"several bytes\n"[..]);
        let mut reader = TokioRead::new(source);
        let mut out = String::new();
        reader.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "several bytes\n");
    }
}
