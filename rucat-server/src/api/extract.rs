//! Extractors that fail with [`ApiError`] instead of axum's plain-text
//! rejections, so malformed input gets the same JSON error shape as every
//! other failure.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::{HeaderMap, StatusCode, header, request::Parts};
use rucat_core::logs::{LogRequest, Selection};
use rucat_core::store::PageQuery;
use rucat_core::{EngineId, EngineState, Timestamp};
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use super::MAX_BODY_BYTES;
use super::error::ApiError;

/// A JSON request body. Unlike `axum::Json` it tells apart broken JSON (400)
/// from JSON of the wrong shape (422) with serde's own message, which names
/// the offending field.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let body = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge {
                    limit: MAX_BODY_BYTES,
                }
            } else {
                ApiError::BadRequest(rejection.body_text())
            }
        })?;
        // serde reads a struct from an array too (`[null, null]` as the
        // fields in order); every body rucat takes is an object.
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_some_and(|b| *b != b'{') {
            // Broken JSON stays a 400; well-formed JSON of another kind is a 422.
            serde_json::from_slice::<serde::de::IgnoredAny>(&body).map_err(json_error)?;
            return Err(ApiError::Unprocessable {
                message: "invalid type: the body must be a JSON object".to_owned(),
                field: None,
            });
        }
        serde_json::from_slice(&body).map(Json).map_err(json_error)
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(Ok(value)) = headers.get(header::CONTENT_TYPE).map(|v| v.to_str()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn json_error(err: serde_json::Error) -> ApiError {
    match err.classify() {
        Category::Data => ApiError::Unprocessable {
            field: named_field(&err.to_string()),
            message: err.to_string(),
        },
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::BadRequest(format!("malformed JSON: {err}"))
        }
    }
}

/// The field in serde's "missing field `x`" / "unknown field `x`" messages.
fn named_field(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("missing field `")
        .or_else(|| message.strip_prefix("unknown field `"))?;
    rest.split_once('`').map(|(field, _)| field.to_owned())
}

/// The `{id}` of an engine route, already checked to be an id rucat could
/// have generated; anything else is a 400, never a store lookup.
#[derive(Debug)]
pub struct EnginePath(pub EngineId);

impl<S: Send + Sync> FromRequestParts<S> for EnginePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
        raw.parse()
            .map(EnginePath)
            .map_err(|err| ApiError::BadRequest(format!("invalid engine id: {err}")))
    }
}

/// `?force=true` on `DELETE /engine/{id}`: forget an engine whose cleanup
/// cannot finish. Absent or `false` is a plain delete; any other value is a
/// 400, so a typo never forces by accident or silently does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Force(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for Force {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        force(parts.uri.query().unwrap_or_default()).map(Force)
    }
}

fn force(query: &str) -> Result<bool, ApiError> {
    let mut force = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != "force" {
            return Err(ApiError::BadRequest(format!(
                "unknown parameter {:?}; the only one is force",
                percent_decode(key)
            )));
        }
        force = match value {
            "true" => true,
            "false" => false,
            other => {
                return Err(ApiError::BadRequest(format!(
                    "force must be true or false, not {other:?}"
                )));
            }
        };
    }
    Ok(force)
}

/// The most lines `?tail=` may ask for.
pub const MAX_TAIL: usize = 1_000_000;

/// The query of `GET /engine/{id}/logs`: `tail` (the last N lines, 0 to
/// [`MAX_TAIL`]) and/or `since` (see [`log_time`]; with `tail`, the last
/// N of the lines since then), `follow` (`true`/`false`) and `attempt`
/// (from 1). A value that is not acceptable, an unknown parameter or one
/// given twice is a 422 naming it.
#[derive(Debug)]
pub struct LogsQuery(pub LogRequest);

impl<S: Send + Sync> FromRequestParts<S> for LogsQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        logs_query(parts.uri.query().unwrap_or_default(), Timestamp::now()).map(LogsQuery)
    }
}

fn logs_query(query: &str, now: Timestamp) -> Result<LogRequest, ApiError> {
    let mut tail = None;
    let mut since = None;
    let mut follow = None;
    let mut attempt = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value);
        match percent_decode(key).as_str() {
            "tail" => {
                let lines = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n <= MAX_TAIL && value.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| {
                        invalid(
                            "tail",
                            format!("must be a whole number from 0 to {MAX_TAIL}, not {value:?}"),
                        )
                    })?;
                once("tail", &mut tail, lines)?;
            }
            "since" => once("since", &mut since, log_time(&value, now)?)?,
            "follow" => {
                let on = match value.as_str() {
                    "true" => true,
                    "false" => false,
                    other => {
                        return Err(invalid(
                            "follow",
                            format!("must be true or false, not {other:?}"),
                        ));
                    }
                };
                once("follow", &mut follow, on)?;
            }
            "attempt" => {
                let number = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n >= 1 && value.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| {
                        invalid(
                            "attempt",
                            format!("must be an attempt number from 1, not {value:?}"),
                        )
                    })?;
                once("attempt", &mut attempt, number)?;
            }
            other => {
                return Err(invalid(
                    other,
                    "unknown parameter; known: tail, since, follow, attempt",
                ));
            }
        }
    }
    let selection = match (tail, since) {
        (Some(lines), Some(since)) => Selection::TailSince { lines, since },
        (Some(lines), None) => Selection::Tail(lines),
        (None, Some(at)) => Selection::Since(at),
        (None, None) => Selection::All,
    };
    Ok(LogRequest {
        attempt,
        selection,
        follow: follow.unwrap_or(false),
    })
}

/// `since`: an RFC 3339 date-time, or a whole number of seconds, minutes,
/// hours or days back from `now` (`90s`, `10m`, `2h`, `7d`): exactly what
/// the OpenAPI document says (see `openapi::log_parameters`).
fn log_time(value: &str, now: Timestamp) -> Result<Timestamp, ApiError> {
    if let Some(at) = Timestamp::parse_rfc3339(value) {
        return Ok(at);
    }
    let back = value
        .strip_suffix(['s', 'm', 'h', 'd'])
        .filter(|n| (1..=9).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse::<u64>().ok())
        .map(|n| match value.as_bytes().last() {
            Some(b'm') => n * 60,
            Some(b'h') => n * 3_600,
            Some(b'd') => n * 86_400,
            _ => n,
        });
    match back {
        Some(secs) => Ok(now.minus(std::time::Duration::from_secs(secs))),
        None => Err(invalid(
            "since",
            format!(
                "must be an RFC 3339 date-time (2026-12-01T10:00:00Z) or a duration back \
                 from now in whole s, m, h or d (90s, 10m, 2h, 7d), not {value:?}"
            ),
        )),
    }
}

/// How many engines `GET /engines` lists without `limit`.
pub const DEFAULT_PAGE: usize = 1000;
/// The most `GET /engines` lists in one answer.
pub const MAX_PAGE: usize = 10_000;

/// The query of `GET /engines`: `limit` (1 to [`MAX_PAGE`], default
/// [`DEFAULT_PAGE`]), `after` (an engine id) and `state` (state names,
/// repeated or comma-separated). A value that is not acceptable is a 422
/// naming the parameter; other parameters are ignored, as before there were
/// any.
#[derive(Debug)]
pub struct ListQuery(pub PageQuery);

impl<S: Send + Sync> FromRequestParts<S> for ListQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        list_query(parts.uri.query().unwrap_or_default()).map(ListQuery)
    }
}

fn list_query(query: &str) -> Result<PageQuery, ApiError> {
    let mut limit = None;
    let mut after = None;
    let mut owner = None;
    let mut states = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value);
        match percent_decode(key).as_str() {
            "limit" => once("limit", &mut limit, page_limit(&value)?)?,
            "after" => {
                let id = value
                    .parse::<EngineId>()
                    .map_err(|err| invalid("after", err.to_string()))?;
                once("after", &mut after, id)?;
            }
            "owner" => {
                if value.is_empty() || value.chars().count() > MAX_OWNER_LEN {
                    return Err(invalid(
                        "owner",
                        format!("a user name of 1 to {MAX_OWNER_LEN} characters"),
                    ));
                }
                once("owner", &mut owner, value)?;
            }
            "state" => {
                for name in value.split(',') {
                    let state = EngineState::from_name(name.trim())
                        .ok_or_else(|| invalid("state", unknown_state(name)))?;
                    if !states.contains(&state) {
                        states.push(state);
                    }
                }
            }
            // Refused rather than ignored, as unknown body fields are: a
            // misspelt filter must not quietly list everything.
            other => {
                return Err(invalid(
                    other,
                    "unknown parameter; known: limit, after, state, owner",
                ));
            }
        }
    }
    Ok(PageQuery {
        after,
        limit: limit.unwrap_or(DEFAULT_PAGE),
        states,
        owner,
        // Set by the handler from the caller's identity, never by the query.
        visible_to: None,
    })
}

/// The longest `owner` a list may filter on; longer names are no user's.
const MAX_OWNER_LEN: usize = 256;

fn invalid(field: &str, reason: impl std::fmt::Display) -> ApiError {
    ApiError::Unprocessable {
        message: format!("{field}: {reason}"),
        field: Some(field.to_owned()),
    }
}

/// Sets `slot` to `value`, refusing a parameter given twice: which one
/// counts would be a guess.
fn once<T>(field: &str, slot: &mut Option<T>, value: T) -> Result<(), ApiError> {
    if slot.replace(value).is_some() {
        return Err(invalid(field, "may be given only once"));
    }
    Ok(())
}

fn page_limit(value: &str) -> Result<usize, ApiError> {
    let out_of_range = || {
        invalid(
            "limit",
            format!("must be a whole number from 1 to {MAX_PAGE}, not {value:?}"),
        )
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(out_of_range());
    }
    value
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_PAGE).contains(n))
        .ok_or_else(out_of_range)
}

fn unknown_state(name: &str) -> String {
    let names: Vec<&str> = EngineState::ALL.iter().map(|s| s.name()).collect();
    format!(
        "unknown state {name:?}; the states are {}",
        names.join(", ")
    )
}

/// A query component with `%XX` escapes and `+` (a space in forms) decoded;
/// a malformed escape is kept as it is, and bytes that are not UTF-8 become
/// U+FFFD (no valid value has either, so either is refused by its parser).
fn percent_decode(component: &str) -> String {
    let bytes = component.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[i], escaped) {
            (_, Some(byte)) => {
                decoded.push(byte);
                i += 3;
            }
            (b'+', None) => {
                decoded.push(b' ');
                i += 1;
            }
            (byte, None) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn log_queries_pick_a_part_an_attempt_and_follow() {
        let now = Timestamp::parse_rfc3339("2026-12-01T10:00:00Z").unwrap();
        let read = |query: &str| logs_query(query, now).unwrap();
        assert_eq!(
            read(""),
            LogRequest {
                attempt: None,
                selection: Selection::All,
                follow: false
            }
        );
        assert_eq!(read("tail=100").selection, Selection::Tail(100));
        assert_eq!(read("tail=0").selection, Selection::Tail(0));
        assert_eq!(
            read("since=2026-12-01T09:00:00Z").selection,
            Selection::Since(Timestamp::parse_rfc3339("2026-12-01T09:00:00Z").unwrap())
        );
        assert_eq!(
            read("since=10m").selection,
            Selection::Since(Timestamp::parse_rfc3339("2026-12-01T09:50:00Z").unwrap())
        );
        assert_eq!(
            read("since=2d").selection,
            Selection::Since(Timestamp::parse_rfc3339("2026-11-29T10:00:00Z").unwrap())
        );
        let all = read("follow=true&attempt=3&tail=5&since=90s");
        assert_eq!((all.follow, all.attempt), (true, Some(3)));
        assert_eq!(
            all.selection,
            Selection::TailSince {
                lines: 5,
                since: Timestamp::parse_rfc3339("2026-12-01T09:58:30Z").unwrap()
            }
        );
    }

    #[test]
    fn bad_log_queries_name_the_parameter() {
        let now = Timestamp::now();
        for (query, field) in [
            ("tail=-1", "tail"),
            ("tail=+5", "tail"),
            ("tail=1000001", "tail"),
            ("tail=", "tail"),
            ("since=yesterday", "since"),
            ("since=1.5h", "since"),
            ("since=1h30m", "since"),
            ("since=1234567890s", "since"),
            ("follow=1", "follow"),
            ("attempt=0", "attempt"),
            ("attempt=x", "attempt"),
            ("tail=1&tail=2", "tail"),
            ("lines=3", "lines"),
        ] {
            match logs_query(query, now).unwrap_err() {
                ApiError::Unprocessable {
                    field: Some(named),
                    message,
                } => assert_eq!(named, field, "{query}: {message}"),
                other => panic!("{query}: {other:?}"),
            }
        }
    }

    fn refused(query: &str) -> (String, String) {
        match list_query(query).unwrap_err() {
            ApiError::Unprocessable {
                message,
                field: Some(field),
            } => (field, message),
            other => panic!("{query}: {other:?}"),
        }
    }

    #[test]
    fn list_queries_are_read_with_defaults() {
        assert_eq!(list_query("").unwrap(), PageQuery::first(DEFAULT_PAGE));
        for unknown in ["other=1", "x", "=true", "limit=1&States=Running"] {
            let err = list_query(unknown).unwrap_err();
            assert!(
                err.to_string().contains("unknown parameter"),
                "{unknown}: {err}"
            );
        }
        let id = EngineId::generate();
        let query = list_query(&format!(
            "limit=10000&after={id}&state=Running&state=Terminated%2C%20ErrorClean,Running"
        ))
        .unwrap();
        assert_eq!(
            query,
            PageQuery {
                after: Some(id),
                limit: MAX_PAGE,
                states: vec![
                    EngineState::Running,
                    EngineState::Terminated,
                    EngineState::ErrorClean
                ],
                ..PageQuery::first(0)
            }
        );
        assert_eq!(
            list_query("owner=al%20ice").unwrap().owner.as_deref(),
            Some("al ice")
        );
        for bad in ["owner=", "owner=a&owner=b"] {
            assert!(list_query(bad).is_err(), "{bad}");
        }
        assert_eq!(list_query("limit=1").unwrap().limit, 1);
    }

    #[test]
    fn bad_list_queries_name_the_parameter() {
        for limit in [
            "0",
            "10001",
            "-1",
            "+5",
            "1.0",
            "abc",
            "",
            "99999999999999999999999",
        ] {
            let (field, message) = refused(&format!("limit={limit}"));
            assert_eq!(field, "limit", "{limit}");
            assert!(message.contains("from 1 to 10000"), "{message}");
        }
        let (field, message) = refused("after=nope");
        assert_eq!(field, "after");
        assert!(
            message.contains("32 lowercase hexadecimal digits"),
            "{message}"
        );
        let (field, message) = refused("state=Running,Sleeping");
        assert_eq!(field, "state");
        assert!(message.contains("\"Sleeping\""), "{message}");
        assert!(message.contains("WaitToStart, TriggerStart"), "{message}");
        assert_eq!(refused("state=").0, "state");
        assert_eq!(refused("limit=1&limit=2").0, "limit");
    }

    #[test]
    fn query_components_are_percent_decoded() {
        assert_eq!(percent_decode("a%2Cb+c%zz%4"), "a,b c%zz%4");
        assert_eq!(percent_decode("%FF"), "\u{fffd}");
    }

    #[test]
    fn force_is_true_only_when_asked_for() {
        assert!(!force("").unwrap());
        assert!(!force("force=false").unwrap());
        assert!(force("force=true").unwrap());
        assert!(force("other=1").is_err(), "unknown parameters are refused");
        assert!(force("x=1&force=true").is_err());
        assert!(force("force=yes").is_err());
        assert!(force("force").is_err());
    }

    fn headers(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).unwrap(),
        );
        headers
    }

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/vnd.rucat+json",
        ] {
            assert!(is_json(&headers(ok)), "{ok}");
        }
        for bad in ["text/plain", "application/x-www-form-urlencoded", "json"] {
            assert!(!is_json(&headers(bad)), "{bad}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn fields_are_named_from_serde_messages() {
        assert_eq!(
            named_field("missing field `name` at line 1 column 2").as_deref(),
            Some("name")
        );
        assert_eq!(
            named_field("unknown field `config`, expected one of `name`").as_deref(),
            Some("config")
        );
        assert_eq!(named_field("invalid type: integer `1`"), None);
    }
}
