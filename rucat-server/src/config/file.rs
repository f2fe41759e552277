//! The configuration file, in the original rucat shape (`auth_provider`,
//! `database`) plus `resource_manager`, `listen`, `data_dir`,
//! `embedded_monitor`, `check_interval_secs`, `resync_interval_secs`,
//! `gateway`, `tls` and `http`.
//!
//! Keys are parsed one by one rather than with one derived struct so that
//! every error names the key at fault: serde's own messages for a nested
//! value ("invalid socket address syntax") do not say where it was.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rucat_monitor::ResourceManagerConfig;
use rucat_store::DatabaseConfig;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::auth::AuthProviderConfig;
use crate::gateway::GatewayConfig;
use crate::serve::Timeouts;
use crate::tls::TlsConfig;

pub const KNOWN_KEYS: &[&str] = &[
    "auth_provider",
    "database",
    "resource_manager",
    "listen",
    "data_dir",
    "embedded_monitor",
    "check_interval_secs",
    "resync_interval_secs",
    "gateway",
    "tls",
    "http",
];

/// The file as written: `None` where a key was left out (or `null`).
#[derive(Clone, Debug)]
pub struct FileConfig {
    pub auth_provider: Option<AuthProviderConfig>,
    pub database: Option<DatabaseConfig>,
    pub resource_manager: Option<ResourceManagerConfig>,
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    /// Whether the server also runs a monitor; off when separate
    /// `rucat-monitor` processes drive the engines.
    pub embedded_monitor: bool,
    /// How often the embedded monitor checks engines, as in the original
    /// monitor's config.
    pub check_interval_secs: u8,
    /// How often the embedded monitor checks every Running engine's
    /// resource, read-only (see `rucat_core::monitor`).
    pub resync_interval_secs: u32,
    /// The Spark Connect gateway's address and the address it advertises.
    pub gateway: GatewayConfig,
    /// Serve the REST API and the gateway over TLS.
    pub tls: Option<TlsConfig>,
    /// How long clients may take.
    pub http: HttpConfig,
}

/// `"http": {...}`: how long clients may take, in seconds (see
/// [`crate::serve::Timeouts`]); `None` where left out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub header_read_timeout_secs: Option<u32>,
    pub body_read_timeout_secs: Option<u32>,
    pub request_timeout_secs: Option<u32>,
    pub idle_timeout_secs: Option<u32>,
}

/// The longest timeout accepted: a day, well past any use, and far from
/// overflowing a clock.
const MAX_TIMEOUT_SECS: u32 = 86_400;

impl HttpConfig {
    /// The timeouts, with defaults for what is left out.
    pub fn timeouts(&self) -> Timeouts {
        let set = |secs: Option<u32>, default: Duration| {
            secs.map_or(default, |secs| Duration::from_secs(secs.into()))
        };
        let default = Timeouts::default();
        Timeouts {
            header_read: set(self.header_read_timeout_secs, default.header_read),
            body_read: set(self.body_read_timeout_secs, default.body_read),
            request: set(self.request_timeout_secs, default.request),
            idle: set(self.idle_timeout_secs, default.idle),
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        for (key, secs) in [
            (
                "http.header_read_timeout_secs",
                self.header_read_timeout_secs,
            ),
            ("http.body_read_timeout_secs", self.body_read_timeout_secs),
            ("http.request_timeout_secs", self.request_timeout_secs),
            ("http.idle_timeout_secs", self.idle_timeout_secs),
        ] {
            if secs.is_some_and(|secs| !(1..=MAX_TIMEOUT_SECS).contains(&secs)) {
                return Err(invalid(
                    key,
                    format!("must be from 1 to {MAX_TIMEOUT_SECS} seconds"),
                ));
            }
        }
        let timeouts = self.timeouts();
        if timeouts.body_read > timeouts.request {
            return Err(invalid(
                "http.body_read_timeout_secs",
                format!(
                    "must not exceed http.request_timeout_secs ({} s), which includes reading the body",
                    timeouts.request.as_secs()
                ),
            ));
        }
        Ok(())
    }
}

impl Default for FileConfig {
    fn default() -> Self {
        Self {
            auth_provider: None,
            database: None,
            resource_manager: None,
            listen: None,
            data_dir: None,
            embedded_monitor: true,
            check_interval_secs: 1,
            resync_interval_secs: 30,
            gateway: GatewayConfig::default(),
            tls: None,
            http: HttpConfig::default(),
        }
    }
}

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
    #[error("unknown key `{key}`; known keys: {}", KNOWN_KEYS.join(", "))]
    UnknownKey { key: String },
    #[error("{key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// Parses and checks the text of a config file.
pub fn parse(text: &str) -> Result<FileConfig, ConfigError> {
    let object: Map<String, Value> =
        serde_json::from_str(text).map_err(|e| ConfigError::NotAnObject(e.to_string()))?;
    let mut config = FileConfig::default();
    for (key, value) in object {
        match key.as_str() {
            "auth_provider" => config.auth_provider = value_of("auth_provider", value)?,
            "database" => config.database = value_of("database", value)?,
            "resource_manager" => config.resource_manager = value_of("resource_manager", value)?,
            "listen" => config.listen = value_of("listen", value)?,
            "data_dir" => config.data_dir = value_of("data_dir", value)?,
            "embedded_monitor" => config.embedded_monitor = value_of("embedded_monitor", value)?,
            "check_interval_secs" => {
                config.check_interval_secs = value_of("check_interval_secs", value)?;
                if config.check_interval_secs == 0 {
                    return Err(invalid("check_interval_secs", "must be at least 1"));
                }
            }
            "resync_interval_secs" => {
                config.resync_interval_secs = value_of("resync_interval_secs", value)?;
                if config.resync_interval_secs == 0 {
                    return Err(invalid("resync_interval_secs", "must be at least 1"));
                }
            }
            "gateway" => config.gateway = value_of("gateway", value)?,
            "tls" => config.tls = value_of("tls", value)?,
            "http" => {
                config.http = value_of("http", value)?;
                config.http.check()?;
            }
            _ => return Err(ConfigError::UnknownKey { key }),
        }
    }
    if config
        .data_dir
        .as_ref()
        .is_some_and(|d| d.as_os_str().is_empty())
    {
        return Err(invalid("data_dir", "must not be empty"));
    }
    if let Some(address) = &config.gateway.advertised_address {
        check_host_port(address).map_err(|reason| invalid("gateway.advertised_address", reason))?;
    }
    Ok(config)
}

/// An advertised address goes into `sc://` URLs: `host:port`, nothing more.
fn check_host_port(address: &str) -> Result<(), String> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or("must be host:port, e.g. rucat.example.com:443")?;
    port.parse::<u16>()
        .map_err(|_| format!("`{port}` is not a port number"))?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':');
    if host.is_empty() || !host.chars().all(allowed) {
        return Err("the host must be a DNS name or an IP address".into());
    }
    Ok(())
}

fn value_of<T: DeserializeOwned>(key: &'static str, value: Value) -> Result<T, ConfigError> {
    serde_json::from_value(value).map_err(|e| invalid(key, e.to_string()))
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn an_empty_object_is_all_defaults() {
        let config = parse("{}").unwrap();
        assert!(config.auth_provider.is_none());
        assert!(config.database.is_none());
        assert!(config.resource_manager.is_none());
        assert!(config.listen.is_none());
        assert!(config.data_dir.is_none());
        assert!(config.embedded_monitor);
        assert_eq!(config.check_interval_secs, 1);
    }

    #[test]
    fn every_key_parses() {
        let config = parse(
            r#"{
                "auth_provider": {"StaticAuthProviderConfig": {"username": "admin", "password": "admin", "bearer_token": "admin"}},
                "database": {"Sqlite": {"path": "/var/lib/rucat/rucat.db"}},
                "resource_manager": {"Local": {"work_dir": "/var/lib/rucat/engines"}},
                "listen": "0.0.0.0:3000",
                "data_dir": "/var/lib/rucat",
                "embedded_monitor": false,
                "check_interval_secs": 5
            }"#,
        )
        .unwrap();
        let Some(AuthProviderConfig::StaticAuthProviderConfig(auth)) = config.auth_provider else {
            panic!("no auth provider");
        };
        assert!(auth.bearer_token.is_some());
        assert_eq!(
            config.database,
            Some(DatabaseConfig::Sqlite {
                path: "/var/lib/rucat/rucat.db".into()
            })
        );
        let Some(ResourceManagerConfig::Local(local)) = config.resource_manager else {
            panic!("no resource manager");
        };
        assert_eq!(local.work_dir, PathBuf::from("/var/lib/rucat/engines"));
        assert_eq!(config.listen, Some("0.0.0.0:3000".parse().unwrap()));
        assert_eq!(config.data_dir, Some("/var/lib/rucat".into()));
        assert!(!config.embedded_monitor);
        assert_eq!(config.check_interval_secs, 5);
    }

    #[test]
    fn the_gateway_and_tls_parse_and_are_checked() {
        let config = parse(
            r#"{"gateway": {"listen": "0.0.0.0:15002", "advertised_address": "rucat.example.com:443"},
                "tls": {"certificate": "/etc/rucat/tls.crt", "key": "/etc/rucat/tls.key"}}"#,
        )
        .unwrap();
        assert_eq!(
            config.gateway.listen,
            Some("0.0.0.0:15002".parse().unwrap())
        );
        assert_eq!(
            config.gateway.advertised_address.as_deref(),
            Some("rucat.example.com:443")
        );
        assert_eq!(
            config.tls.map(|t| t.key),
            Some(PathBuf::from("/etc/rucat/tls.key"))
        );
        for (bad, reason) in [
            ("rucat.example.com", "must be host:port"),
            ("rucat.example.com:https", "not a port number"),
            ("a/b:443", "DNS name or an IP address"),
            (":443", "DNS name or an IP address"),
        ] {
            let text = format!(r#"{{"gateway": {{"advertised_address": "{bad}"}}}}"#);
            let err = error(&text);
            assert!(err.starts_with("gateway.advertised_address: "), "{err}");
            assert!(err.contains(reason), "{bad}: {err}");
        }
        let err = error(r#"{"gateway": {"port": 1}}"#);
        assert!(err.starts_with("gateway: unknown field `port`"), "{err}");
        let err = error(r#"{"tls": {"certificate": "/c"}}"#);
        assert!(err.starts_with("tls: missing field `key`"), "{err}");
    }

    #[test]
    fn http_timeouts_parse_default_and_are_checked() {
        let defaults = parse("{}").unwrap().http.timeouts();
        assert_eq!(defaults, Timeouts::default());
        assert_eq!(
            defaults,
            Timeouts {
                header_read: Duration::from_secs(10),
                body_read: Duration::from_secs(15),
                request: Duration::from_secs(30),
                idle: Duration::from_secs(75),
            }
        );
        let config = parse(
            r#"{"http": {"header_read_timeout_secs": 2, "body_read_timeout_secs": 3,
                         "request_timeout_secs": 4, "idle_timeout_secs": 5}}"#,
        )
        .unwrap();
        assert_eq!(
            config.http.timeouts(),
            Timeouts {
                header_read: Duration::from_secs(2),
                body_read: Duration::from_secs(3),
                request: Duration::from_secs(4),
                idle: Duration::from_secs(5),
            }
        );
        let config = parse(r#"{"http": {"idle_timeout_secs": 600}}"#).unwrap();
        assert_eq!(
            config.http.timeouts(),
            Timeouts {
                idle: Duration::from_secs(600),
                ..Timeouts::default()
            },
            "what is left out keeps its default"
        );
        for (text, expected) in [
            (
                r#"{"http": {"header_read_timeout_secs": 0}}"#,
                "http.header_read_timeout_secs: must be from 1 to 86400 seconds",
            ),
            (
                r#"{"http": {"idle_timeout_secs": 86401}}"#,
                "http.idle_timeout_secs: must be from 1 to 86400 seconds",
            ),
            (
                r#"{"http": {"request_timeout_secs": 0}}"#,
                "http.request_timeout_secs: must be from 1 to 86400 seconds",
            ),
            (
                r#"{"http": {"body_read_timeout_secs": 31}}"#,
                "http.body_read_timeout_secs: must not exceed http.request_timeout_secs (30 s)",
            ),
            (
                r#"{"http": {"request_timeout_secs": 10}}"#,
                "http.body_read_timeout_secs: must not exceed http.request_timeout_secs (10 s)",
            ),
            (
                r#"{"http": {"header_read_timeout_secs": -1}}"#,
                "http: invalid value",
            ),
            (
                r#"{"http": {"header_read_timeout_secs": "10s"}}"#,
                "http: invalid type",
            ),
            (
                r#"{"http": {"read_timeout_secs": 10}}"#,
                "http: unknown field `read_timeout_secs`",
            ),
        ] {
            let err = error(text);
            assert!(err.starts_with(expected), "{text}: {err}");
        }
    }

    #[test]
    fn the_bearer_token_is_optional() {
        let config = parse(
            r#"{"auth_provider": {"StaticAuthProviderConfig": {"username": "u", "password": "p"}}}"#,
        )
        .unwrap();
        let Some(AuthProviderConfig::StaticAuthProviderConfig(auth)) = config.auth_provider else {
            panic!("no auth provider");
        };
        assert!(auth.bearer_token.is_none());
    }

    #[test]
    fn null_means_left_out() {
        let config = parse(r#"{"auth_provider": null, "listen": null, "data_dir": null}"#).unwrap();
        assert!(config.auth_provider.is_none());
        assert!(config.listen.is_none());
        assert!(config.data_dir.is_none());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = error(r#"{"listen": "127.0.0.1:1", "check_interval": 1}"#);
        assert!(err.contains("unknown key `check_interval`"), "{err}");
        assert!(
            err.contains("check_interval_secs"),
            "lists the known keys: {err}"
        );
    }

    #[test]
    fn errors_name_the_key_and_the_reason() {
        for (text, expected) in [
            (
                r#"{"listen": "localhost"}"#,
                "listen: invalid socket address",
            ),
            (r#"{"listen": 3000}"#, "listen: invalid type"),
            (r#"{"data_dir": 1}"#, "data_dir: invalid type"),
            (r#"{"data_dir": ""}"#, "data_dir: must not be empty"),
            (
                r#"{"embedded_monitor": "yes"}"#,
                "embedded_monitor: invalid type",
            ),
            (
                r#"{"embedded_monitor": null}"#,
                "embedded_monitor: invalid type",
            ),
            (
                r#"{"check_interval_secs": 0}"#,
                "check_interval_secs: must be at least 1",
            ),
            (
                r#"{"resync_interval_secs": 0}"#,
                "resync_interval_secs: must be at least 1",
            ),
            (
                r#"{"check_interval_secs": 256}"#,
                "check_interval_secs: invalid value",
            ),
            (
                r#"{"check_interval_secs": -1}"#,
                "check_interval_secs: invalid value",
            ),
            (
                r#"{"database": {"Postgres": {}}}"#,
                "database: unknown variant `Postgres`",
            ),
            (
                r#"{"database": {"Surreal": {}}}"#,
                "database: missing field `uri`",
            ),
            (
                r#"{"database": {"Sqlite": {}}}"#,
                "database: missing field `path`",
            ),
            (
                r#"{"resource_manager": {"K8s": {}}}"#,
                "resource_manager: unknown variant `K8s`",
            ),
            (
                r#"{"auth_provider": {"StaticAuthProviderConfig": {"username": "u"}}}"#,
                "auth_provider: missing field `password`",
            ),
            (
                r#"{"auth_provider": {"StaticAuthProviderConfig": {"username": "u", "password": "p", "token": "t"}}}"#,
                "auth_provider: unknown field `token`",
            ),
            (
                r#"{"auth_provider": {"Ldap": {}}}"#,
                "auth_provider: unknown variant `Ldap`",
            ),
        ] {
            let err = error(text);
            assert!(err.starts_with(expected), "{text}: {err}");
        }
    }

    #[test]
    fn secrets_are_not_quoted_in_errors() {
        let err = error(
            r#"{"auth_provider": {"StaticAuthProviderConfig": {"username": "u", "password": 987654321}}}"#,
        );
        assert!(err.starts_with("auth_provider: invalid type"), "{err}");
        assert!(!err.contains("987654321"), "{err}");
        let err = error(
            r#"{"auth_provider": {"StaticAuthProviderConfig": {"username": "u", "password": "p", "bearer_token": 13579}}}"#,
        );
        assert!(!err.contains("13579"), "{err}");
    }

    #[test]
    fn the_debug_output_hides_secrets() {
        let config = parse(
            r#"{"auth_provider": {"StaticAuthProviderConfig": {"username": "the-user", "password": "the-password", "bearer_token": "the-token"}}}"#,
        )
        .unwrap();
        let debug = format!("{config:?} {config:#?}");
        for secret in ["the-user", "the-password", "the-token"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(debug.contains("StaticAuthProviderConfig"), "{debug}");
    }

    #[test]
    fn non_objects_are_refused() {
        for text in ["", "[]", "1", "null", "{", r#"{"listen": "127.0.0.1:1",}"#] {
            assert!(
                matches!(parse(text), Err(ConfigError::NotAnObject(_))),
                "{text}"
            );
        }
    }
}
