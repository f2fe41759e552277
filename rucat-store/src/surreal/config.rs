//! The `database.Surreal` setting.

use rucat_core::Secret;
use serde::{Deserialize, Serialize, Serializer};

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

/// Root credentials for a SurrealDB server.
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SurrealCredentials {
    pub username: String,
    /// A [`Secret`], as every credential in rucat's configs: `Debug` and a
    /// mistyped value's parse error never show it.
    #[serde(serialize_with = "serialize_password")]
    pub password: Secret,
}

/// The password's earlier name, kept so that code naming
/// `rucat_store::surreal::Password` keeps compiling.
pub type Password = Secret;

/// A `Secret` has no `Serialize`, so that it cannot reach a response or a
/// log by accident; the credentials are the exception, written out as given
/// so that a config round-trips through a file (the benchmarks write the
/// server's config this way).
fn serialize_password<S: Serializer>(password: &Secret, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(password.expose_str())
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

    #[test]
    fn a_mistyped_password_is_refused_without_being_quoted() {
        for password in ["987654321", "98765.4321", "true"] {
            let json = format!(
                r#"{{"uri":"ws://db:8000","credentials":{{"username":"root","password":{password}}}}}"#
            );
            let err = serde_json::from_str::<SurrealConfig>(&json)
                .unwrap_err()
                .to_string();
            assert!(err.contains("expected a string"), "{err}");
            assert!(!err.contains(password), "{err}");
        }
    }

    #[test]
    fn credentials_round_trip_through_a_config_file() {
        let json = r#"{"uri":"ws://db:8000","credentials":{"username":"root","password":"hunter2"},"namespace":"n","database":"d"}"#;
        let config: SurrealConfig = serde_json::from_str(json).unwrap();
        assert_eq!(
            config.credentials.as_ref().map(|c| c.password.expose_str()),
            Some("hunter2")
        );
        assert_eq!(serde_json::to_string(&config).unwrap(), json);
    }
}
