//! The `database.Surreal` setting.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where the SurrealDB store lives, as it appears under `database.Surreal`:
/// `mem://` and `surrealkv://PATH` run the database inside the process,
/// `ws://HOST:PORT` talks to a server.
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SurrealConfig {
    pub uri: String,
    /// Root credentials, used to sign in to a remote server. An embedded
    /// database has no users, so they are ignored there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<SurrealCredentials>,
    #[serde(default = "default_name")]
    pub namespace: String,
    #[serde(default = "default_name")]
    pub database: String,
}

fn default_name() -> String {
    "rucat".to_owned()
}

impl SurrealConfig {
    /// The defaults for everything but the URI.
    pub fn new(uri: impl Into<String>) -> Self {
        Self {
            uri: uri.into(),
            credentials: None,
            namespace: default_name(),
            database: default_name(),
        }
    }
}

#[derive(Deserialize, Serialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SurrealCredentials {
    pub username: String,
    pub password: Password,
}

/// A password: serialized as given (it round-trips through config files), but
/// never shown by `Debug`, so it cannot reach a log line or an error message.
#[derive(Deserialize, Serialize, Clone, PartialEq)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    pub fn new(password: impl Into<String>) -> Self {
        Self(password.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Debug for SurrealCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SurrealCredentials")
            .field("username", &self.username)
            .field("password", &self.password)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_redaction() {
        let json = r#"{"uri":"ws://127.0.0.1:8000","credentials":{"username":"root","password":"hunter2"}}"#;
        let config: SurrealConfig = serde_json::from_str(json).unwrap();
        assert_eq!(config.namespace, "rucat");
        assert_eq!(config.database, "rucat");
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("root"), "{debug}");
        assert!(
            serde_json::from_str::<SurrealConfig>(r#"{"uri":"mem://","namespce":"x"}"#).is_err()
        );
    }
}
