//! Container logs: the lines the kubelet harness appends
//! ([`TestServer::append_pod_log`](crate::TestServer::append_pod_log)), and
//! `GET /api/v1/namespaces/{ns}/pods/{name}/log` serving them as the API
//! server (proxying the kubelet) does.
//!
//! What is emulated: `container` (required when the pod has several, 400
//! for one it does not have), `tailLines`, `sinceTime` (RFC 3339) and
//! `sinceSeconds` (one of them), `limitBytes` (the output cut there, even
//! mid-line), `timestamps` (each line prefixed with its RFC 3339 time),
//! `follow` (new lines as they are appended, until the container stops
//! running or the pod is removed). An unscheduled pod has an empty log
//! (200), a container that has not started gets the kubelet's 400
//! `container "c" in pod "p" is waiting to start: <reason>`, an unknown pod
//! 404. A pod being deleted serves its log until it is removed; its logs go
//! with it. `previous` is refused: the harness does not restart containers.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::Response;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::query::Query;
use crate::resource::Resource;
use crate::shared::Shared;
use crate::status::{ApiError, FieldError};
use crate::store::Key;

/// One line a container wrote, without its newline, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogLine {
    pub(crate) time: Timestamp,
    pub(crate) text: String,
}

/// Each container's lines of one pod.
pub(crate) type PodLogs = BTreeMap<String, Vec<LogLine>>;

/// The `PodLogOptions` the server honours.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LogOptions {
    pub(crate) container: Option<String>,
    pub(crate) follow: bool,
    pub(crate) tail_lines: Option<usize>,
    pub(crate) since: Option<Timestamp>,
    pub(crate) limit_bytes: Option<usize>,
    pub(crate) timestamps: bool,
}

impl LogOptions {
    /// Parses and validates the query as the real server does (422 for a
    /// negative `tailLines`, a `limitBytes` under 1, both `sinceTime` and
    /// `sinceSeconds`; 400 for values that do not parse).
    pub(crate) fn parse(query: &Query, now: Timestamp, pod: &str) -> Result<Self, ApiError> {
        let mut problems = Vec::new();
        let tail_lines = query.integer("tailLines")?;
        if let Some(tail) = tail_lines.filter(|t| *t < 0) {
            problems.push(FieldError::invalid(
                "tailLines",
                &json!(tail),
                "must be greater than or equal to 0",
            ));
        }
        let limit_bytes = query.integer("limitBytes")?;
        if let Some(limit) = limit_bytes.filter(|l| *l < 1) {
            problems.push(FieldError::invalid(
                "limitBytes",
                &json!(limit),
                "must be greater than 0",
            ));
        }
        let since_seconds = query.integer("sinceSeconds")?;
        if let Some(seconds) = since_seconds.filter(|s| *s < 1) {
            problems.push(FieldError::invalid(
                "sinceSeconds",
                &json!(seconds),
                "must be greater than 0",
            ));
        }
        let since_time = match query.get("sinceTime").filter(|t| !t.is_empty()) {
            None => None,
            Some(text) => Some(text.parse::<Timestamp>().map_err(|_| {
                ApiError::bad_request(format!(
                    "parsing time {text:?} as \"2006-01-02T15:04:05Z07:00\": cannot parse {text:?}"
                ))
            })?),
        };
        if since_seconds.is_some() && since_time.is_some() {
            problems.push(FieldError::forbidden(
                "sinceSeconds",
                "at most one of `sinceTime` or `sinceSeconds` may be specified",
            ));
        }
        if query.flag("previous")? {
            return Err(ApiError::bad_request(
                "previous terminated container not found: the test server's kubelet does not restart containers",
            ));
        }
        if !problems.is_empty() {
            return Err(ApiError::invalid_pod_log_options(pod, problems));
        }
        let since = since_time.or_else(|| {
            since_seconds.map(|s| {
                now.checked_sub(SignedDuration::from_secs(s))
                    .unwrap_or(Timestamp::MIN)
            })
        });
        Ok(Self {
            container: query
                .get("container")
                .filter(|c| !c.is_empty())
                .map(str::to_owned),
            follow: query.flag("follow")?,
            tail_lines: tail_lines.and_then(|t| usize::try_from(t).ok()),
            since,
            limit_bytes: limit_bytes.and_then(|l| usize::try_from(l).ok()),
            timestamps: query.flag("timestamps")?,
        })
    }
}

/// Which container's log a request reads, and whether there is one yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// The pod has no node: the API server answers with an empty log.
    Unscheduled,
    /// The container has run (or runs): its log is served.
    Container(String),
}

fn container_names(pod: &Value) -> Vec<&str> {
    pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect()
}

/// The container `requested` names (or the pod's only one), checked as the
/// API server checks it, then as the kubelet checks its state.
pub(crate) fn source(pod: &Value, requested: Option<&str>) -> Result<Source, ApiError> {
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let names = container_names(pod);
    let container = match requested {
        Some(c) if names.contains(&c) => c.to_owned(),
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {pod_name}"
            )));
        }
        None => match names.as_slice() {
            [only] => (*only).to_owned(),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                    names.join(" ")
                )));
            }
        },
    };
    if pod["spec"]["nodeName"]
        .as_str()
        .unwrap_or_default()
        .is_empty()
    {
        return Ok(Source::Unscheduled);
    }
    let status = pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == container.as_str());
    let Some(status) = status else {
        return Err(ApiError::bad_request(format!(
            "container {container:?} in pod {pod_name:?} is not available"
        )));
    };
    let state = &status["state"];
    if state.get("running").is_some() {
        return Ok(Source::Container(container));
    }
    if let Some(terminated) = state.get("terminated") {
        if terminated["containerID"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
        {
            return Ok(Source::Container(container));
        }
        return Err(ApiError::bad_request(format!(
            "container {container:?} in pod {pod_name:?} is terminated"
        )));
    }
    let reason = match state["waiting"]["reason"].as_str().unwrap_or_default() {
        "ErrImagePull" => "image can't be pulled".to_owned(),
        "ImagePullBackOff" => "trying and failing to pull image".to_owned(),
        other => other.to_owned(),
    };
    Err(ApiError::bad_request(format!(
        "container {container:?} in pod {pod_name:?} is waiting to start: {reason}"
    )))
}

/// Whether the container still runs, so a follow keeps waiting for lines.
pub(crate) fn still_running(pod: &Value, container: &str) -> bool {
    pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == container)
        .is_some_and(|s| s["state"].get("running").is_some())
}

/// The index of the first line a request selects: the lines at or after
/// `since`, and of those the last `tail`.
pub(crate) fn first_selected(lines: &[LogLine], options: &LogOptions) -> usize {
    let after_since = options
        .since
        .map_or(0, |since| lines.partition_point(|l| l.time < since));
    let in_tail = options
        .tail_lines
        .map_or(0, |tail| lines.len().saturating_sub(tail));
    after_since.max(in_tail)
}

/// `lines` as the log body shows them.
pub(crate) fn render(lines: &[LogLine], timestamps: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines {
        if timestamps {
            out.extend_from_slice(format!("{} ", line.time).as_bytes());
        }
        out.extend_from_slice(line.text.as_bytes());
        out.push(b'\n');
    }
    out
}

/// Cuts `chunk` to what is left of `budget` (bytes still allowed by
/// `limitBytes`, `None` for no limit) and spends it.
fn spend(mut chunk: Vec<u8>, budget: &mut Option<usize>) -> Vec<u8> {
    if let Some(left) = budget {
        chunk.truncate(*left);
        *left -= chunk.len();
    }
    chunk
}

/// Serves `GET .../pods/{name}/log`.
pub(crate) fn respond(
    shared: &Arc<Shared>,
    namespace: &str,
    name: &str,
    query: &Query,
) -> Result<Response, ApiError> {
    let options = LogOptions::parse(query, Timestamp::now(), name)?;
    let key = Key::new(Resource::Pods, namespace, name);
    let (source, uid, lines) = shared.read(|s| {
        let pod = s
            .get(&key)
            .ok_or_else(|| ApiError::not_found(Resource::Pods, name))?;
        let source = source(pod, options.container.as_deref())?;
        let uid = pod["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let lines = match &source {
            Source::Unscheduled => Vec::new(),
            Source::Container(c) => s.log_lines(&key, c).to_vec(),
        };
        Ok::<_, ApiError>((source, uid, lines))
    })?;
    let mut budget = options.limit_bytes;
    let start = first_selected(&lines, &options);
    let first = spend(render(&lines[start..], options.timestamps), &mut budget);
    let builder = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/plain");
    let Source::Container(container) = source else {
        return builder
            .body(Body::empty())
            .map_err(|e| ApiError::internal(format!("building the log response: {e}")));
    };
    if !options.follow || budget == Some(0) {
        return builder
            .body(Body::from(first))
            .map_err(|e| ApiError::internal(format!("building the log response: {e}")));
    }
    let follow = Follow {
        shared: shared.clone(),
        key,
        uid,
        container,
        next: lines.len(),
        timestamps: options.timestamps,
        budget,
        pending: (!first.is_empty()).then_some(first),
        done: false,
    };
    let stream = futures::stream::unfold(follow, |mut f| async move {
        let chunk = f.next_chunk().await?;
        Some((Ok::<_, Infallible>(Bytes::from(chunk)), f))
    });
    builder
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::internal(format!("building the log response: {e}")))
}

/// An open `follow=true` request.
struct Follow {
    shared: Arc<Shared>,
    key: Key,
    uid: String,
    container: String,
    /// The index of the next line to send.
    next: usize,
    timestamps: bool,
    budget: Option<usize>,
    /// The first chunk, not sent yet.
    pending: Option<Vec<u8>>,
    done: bool,
}

impl Follow {
    /// The next bytes to send, or `None` when the stream ends: the
    /// container stopped (after its last lines), the pod is gone, the
    /// `limitBytes` budget is spent, or the server closes its streams.
    async fn next_chunk(&mut self) -> Option<Vec<u8>> {
        if let Some(first) = self.pending.take() {
            return Some(first);
        }
        let (mut rv, mut logs, mut close) = self.shared.subscribe_logs();
        loop {
            if self.done || self.budget == Some(0) {
                return None;
            }
            rv.borrow_and_update();
            logs.borrow_and_update();
            let (lines, running) = self.shared.read(|s| match s.get(&self.key) {
                Some(pod) if pod["metadata"]["uid"] == self.uid.as_str() => {
                    let all = s.log_lines(&self.key, &self.container);
                    let new = all.get(self.next..).unwrap_or_default().to_vec();
                    (new, still_running(pod, &self.container))
                }
                // Removed (or replaced by a new pod of the same name): its
                // log went with it.
                _ => (Vec::new(), false),
            });
            self.next += lines.len();
            if !running {
                self.done = true;
            }
            if !lines.is_empty() {
                return Some(spend(render(&lines, self.timestamps), &mut self.budget));
            }
            if self.done {
                return None;
            }
            tokio::select! {
                changed = rv.changed() => if changed.is_err() { return None },
                changed = logs.changed() => if changed.is_err() { return None },
                _ = close.changed() => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    fn lines() -> Vec<LogLine> {
        (0..5)
            .map(|i| LogLine {
                time: at(100 + i),
                text: format!("line {i}"),
            })
            .collect()
    }

    #[test]
    fn tail_and_since_select_the_intersection() {
        let lines = lines();
        let options = |tail, since| LogOptions {
            tail_lines: tail,
            since,
            ..LogOptions::default()
        };
        assert_eq!(first_selected(&lines, &options(None, None)), 0);
        assert_eq!(first_selected(&lines, &options(Some(2), None)), 3);
        assert_eq!(first_selected(&lines, &options(Some(9), None)), 0);
        assert_eq!(first_selected(&lines, &options(Some(0), None)), 5);
        assert_eq!(first_selected(&lines, &options(None, Some(at(102)))), 2);
        assert_eq!(first_selected(&lines, &options(Some(4), Some(at(103)))), 3);
        assert_eq!(first_selected(&lines, &options(None, Some(at(999)))), 5);
    }

    #[test]
    fn options_are_validated_like_the_real_server() {
        let now = at(1_000);
        let parse = |q: &str| LogOptions::parse(&Query::parse(q), now, "p");
        let parsed =
            parse("container=c&tailLines=3&follow=true&limitBytes=10&timestamps=true").unwrap();
        assert_eq!(parsed.container.as_deref(), Some("c"));
        assert_eq!(parsed.tail_lines, Some(3));
        assert!(parsed.follow && parsed.timestamps);
        assert_eq!(parsed.limit_bytes, Some(10));
        assert_eq!(
            parse("sinceTime=1970-01-01T00%3A01%3A40Z").unwrap().since,
            Some(at(100))
        );
        assert_eq!(parse("sinceSeconds=10").unwrap().since, Some(at(990)));
        assert_eq!(parse("tailLines=-1").unwrap_err().code(), 422);
        assert_eq!(parse("limitBytes=0").unwrap_err().code(), 422);
        assert_eq!(
            parse("sinceSeconds=1&sinceTime=1970-01-01T00:00:00Z")
                .unwrap_err()
                .code(),
            422
        );
        assert_eq!(parse("sinceTime=yesterday").unwrap_err().code(), 400);
        assert_eq!(parse("previous=true").unwrap_err().code(), 400);
    }

    #[test]
    fn the_source_follows_the_container_state() {
        let pod = |node: &str, state: Value| {
            json!({"metadata": {"name": "p"},
                "spec": {"nodeName": node, "containers": [{"name": "c"}, {"name": "d"}]},
                "status": {"containerStatuses": [{"name": "c", "state": state}]}})
        };
        let running = json!({"running": {}});
        assert_eq!(
            source(&pod("", running.clone()), Some("c")),
            Ok(Source::Unscheduled)
        );
        assert_eq!(
            source(&pod("n", running.clone()), Some("c")),
            Ok(Source::Container("c".into()))
        );
        let err = source(&pod("n", running.clone()), None).unwrap_err();
        assert_eq!(
            err.message(),
            "a container name must be specified for pod p, choose one of: [c d]"
        );
        assert_eq!(
            source(&pod("n", running), Some("x")).unwrap_err().message(),
            "container x is not valid for pod p"
        );
        let waiting = json!({"waiting": {"reason": "ContainerCreating"}});
        assert_eq!(
            source(&pod("n", waiting), Some("c")).unwrap_err().message(),
            "container \"c\" in pod \"p\" is waiting to start: ContainerCreating"
        );
        let ended = json!({"terminated": {"exitCode": 1, "containerID": "containerd://1"}});
        assert_eq!(
            source(&pod("n", ended), Some("c")),
            Ok(Source::Container("c".into()))
        );
        assert_eq!(
            source(&pod("n", json!({"running": {}})), Some("d"))
                .unwrap_err()
                .message(),
            "container \"d\" in pod \"p\" is not available"
        );
    }

    #[test]
    fn rendering_and_limits() {
        let lines = lines();
        assert_eq!(render(&lines[3..], false), b"line 3\nline 4\n");
        assert_eq!(
            render(&lines[4..], true),
            b"1970-01-01T00:01:44Z line 4\n".to_vec()
        );
        let mut budget = Some(10);
        assert_eq!(spend(render(&lines, false), &mut budget), b"line 0\nlin");
        assert_eq!(budget, Some(0));
        let mut unlimited = None;
        assert_eq!(spend(b"abc".to_vec(), &mut unlimited), b"abc");
    }
}
