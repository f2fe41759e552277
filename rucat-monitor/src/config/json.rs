//! How both binaries read their config files: serde derive, through
//! `serde_path_to_error`, so that every error names the key path at fault
//! (`database.Surreal.uri: invalid type: ...`); the checks made after
//! deserializing name their key the same way.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::Value;

/// Why a config file was not accepted: the message says which file and
/// which key, so that an operator knows what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {}: {error}", path.display())]
    InFile {
        path: PathBuf,
        error: Box<ConfigError>,
    },
    #[error("the config must be a JSON object: {0}")]
    NotAnObject(String),
    /// `path` is the key path (`http.idle_timeout_secs`), empty for the
    /// config as a whole (a key given twice).
    #[error("{}{reason}", key_prefix(.path))]
    Invalid { path: String, reason: String },
}

impl ConfigError {
    /// A value that does not meet a rule checked after deserializing.
    pub fn invalid(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

fn key_prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

/// Deserializes a config file's text; errors name the key path.
///
/// Secrets stay unquoted because their types refuse a wrong value without
/// quoting it (see `rucat_core::Secret`), not because of anything here.
pub fn parse_json<T: DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    // A derived struct also reads a JSON array of its fields in order, which
    // no config file means, so the shape is checked first.
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(_)) => {}
        Ok(other) => return Err(ConfigError::NotAnObject(format!("found {}", kind(&other)))),
        Err(e) => return Err(ConfigError::NotAnObject(e.to_string())),
    }
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let config = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        // The whole config's path is ".".
        let path = if path == "." { String::new() } else { path };
        ConfigError::invalid(path, e.into_inner().to_string())
    })?;
    deserializer
        .end()
        .map_err(|e| ConfigError::NotAnObject(e.to_string()))?;
    Ok(config)
}

/// What a JSON value is, without quoting it.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads the file at `path` and parses it with `parse`; errors say which
/// file.
pub fn load_with<T>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, ConfigError>,
) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text).map_err(|error| ConfigError::InFile {
        path: path.to_owned(),
        error: Box::new(error),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rucat_core::Secret;
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[serde(default)]
        number: u8,
        #[serde(default)]
        inner: Option<Inner>,
        #[serde(default)]
        list: Vec<Inner>,
        #[serde(default)]
        map: BTreeMap<String, Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    enum Inner {
        Tagged { secret: Secret, port: u16 },
    }

    fn error(text: &str) -> String {
        parse_json::<Outer>(text).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_key_path() {
        for (text, expected) in [
            (r#"{"number": 256}"#, "number: invalid value: integer `256`"),
            (r#"{"number": "1"}"#, "number: invalid type: string"),
            (
                r#"{"inner": {"Tagged": {"secret": "s", "port": -1}}}"#,
                "inner.Tagged.port: invalid value",
            ),
            (
                r#"{"inner": {"Tagged": {"secret": "s"}}}"#,
                "inner.Tagged: missing field `port`",
            ),
            (
                r#"{"inner": {"Tagged": {"secret": "s", "port": 1, "host": "h"}}}"#,
                "inner.Tagged.host: unknown field `host`",
            ),
            (
                r#"{"inner": {"Untagged": {}}}"#,
                "inner: unknown variant `Untagged`",
            ),
            (
                r#"{"list": [{"Tagged": {"secret": "s", "port": 1}}, {"Tagged": {"secret": "s", "port": "p"}}]}"#,
                "list[1].Tagged.port: invalid type",
            ),
            (
                r#"{"map": {"alice": {"Tagged": {"secret": "s", "port": "p"}}}}"#,
                "map.alice.Tagged.port: invalid type",
            ),
            (
                r#"{"numbr": 1}"#,
                "numbr: unknown field `numbr`, expected one of `number`, `inner`, `list`, `map`",
            ),
            (r#"{"number": 1, "number": 2}"#, "duplicate field `number`"),
        ] {
            let err = error(text);
            assert!(err.starts_with(expected), "{text}: {err}");
        }
    }

    #[test]
    fn a_mistyped_secret_is_named_but_not_quoted() {
        let err = error(r#"{"inner": {"Tagged": {"secret": 9876543210, "port": 1}}}"#);
        assert!(
            err.starts_with("inner.Tagged.secret: invalid type: expected a string"),
            "{err}"
        );
        assert!(!err.contains("9876543210"), "{err}");
    }

    #[test]
    fn only_an_object_is_a_config() {
        for (text, reason) in [
            ("", "EOF while parsing"),
            ("[]", "found an array"),
            ("[1, {}]", "found an array"),
            ("1", "found a number"),
            ("null", "found null"),
            (r#""{}""#, "found a string"),
            ("{", "EOF while parsing"),
            (r#"{"number": 1,}"#, "trailing comma"),
            ("{} {}", "trailing characters"),
        ] {
            let err = parse_json::<Outer>(text).unwrap_err();
            assert!(matches!(err, ConfigError::NotAnObject(_)), "{text}: {err}");
            let err = err.to_string();
            assert!(
                err.starts_with("the config must be a JSON object: ") && err.contains(reason),
                "{text}: {err}"
            );
        }
        let config = parse_json::<Outer>("  {}\n").unwrap();
        assert_eq!(config.number, 0);
        assert!(config.inner.is_none() && config.list.is_empty() && config.map.is_empty());
    }

    #[test]
    fn a_good_config_is_read_whole() {
        let config = parse_json::<Outer>(
            r#"{"number": 3, "inner": {"Tagged": {"secret": "s", "port": 1}},
                "list": [{"Tagged": {"secret": "t", "port": 2}}],
                "map": {"alice": {"Tagged": {"secret": "u", "port": 3}}}}"#,
        )
        .unwrap();
        assert_eq!(config.number, 3);
        let Some(Inner::Tagged { secret, port }) = &config.inner else {
            panic!("{config:?}");
        };
        assert_eq!((secret.expose_str(), *port), ("s", 1));
        let Inner::Tagged { secret, port } = &config.list[0];
        assert_eq!((secret.expose_str(), *port), ("t", 2));
        let Inner::Tagged { secret, port } = &config.map["alice"];
        assert_eq!((secret.expose_str(), *port), ("u", 3));
    }

    #[test]
    fn loading_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let err = load_with(&path, parse_json::<Outer>).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with(&format!("cannot read config file {}: ", path.display())),
            "{err}"
        );
        std::fs::write(&path, r#"{"number": "x"}"#).unwrap();
        let err = load_with(&path, parse_json::<Outer>)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "config file {}: number: invalid type",
                path.display()
            )),
            "{err}"
        );
        std::fs::write(&path, r#"{"number": 7}"#).unwrap();
        assert_eq!(load_with(&path, parse_json::<Outer>).unwrap().number, 7);
    }
}
