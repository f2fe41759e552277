//! Query-string parsing (`application/x-www-form-urlencoded`), done by
//! hand because axum's `Query` extractor is not among the enabled
//! features, and because bad input must become a 400 `Status`, not a
//! rejection in axum's format.

use crate::status::ApiError;

/// The decoded query parameters of one request, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Query {
    /// Parses a raw query string; empty pairs (kube sends `?&watch=true`)
    /// are skipped.
    pub(crate) fn parse(raw: &str) -> Self {
        let pairs = raw
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (decode(k), decode(v)),
                None => (decode(p), String::new()),
            })
            .collect();
        Self { pairs }
    }

    /// The first value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean parameter: `true`/`1` or `false`/`0` (absent is false).
    pub(crate) fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name) {
            None | Some("" | "false" | "0") => Ok(false),
            Some("true" | "1") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid boolean value for {name}: {other:?}"
            ))),
        }
    }

    /// An integer parameter.
    pub(crate) fn integer(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid integer value for {name}: {v:?}"))
                })
            })
            .transpose()
    }

    /// `dryRun`: only `All` is defined.
    pub(crate) fn dry_run(&self) -> Result<bool, ApiError> {
        match self.get("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: {other:?}: supported values: \"All\""
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_kube_sends() {
        let q = Query::parse(
            "&watch=true&timeoutSeconds=290&labelSelector=app%3Drucat%2Ctier+in+%28a%29&resourceVersion=0",
        );
        assert!(q.flag("watch").unwrap());
        assert_eq!(q.integer("timeoutSeconds").unwrap(), Some(290));
        assert_eq!(q.get("labelSelector"), Some("app=rucat,tier in (a)"));
        assert_eq!(q.get("resourceVersion"), Some("0"));
        assert_eq!(q.get("missing"), None);
    }

    #[test]
    fn bad_values_are_bad_requests() {
        let q = Query::parse("watch=maybe&limit=x&dryRun=Some&p=%zz%4");
        assert_eq!(q.flag("watch").unwrap_err().code(), 400);
        assert_eq!(q.integer("limit").unwrap_err().code(), 400);
        assert_eq!(q.dry_run().unwrap_err().code(), 400);
        assert_eq!(q.get("p"), Some("%zz%4"));
    }
}
