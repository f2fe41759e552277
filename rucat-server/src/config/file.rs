//! The configuration file, in the original rucat shape (`auth_provider`,
//! `database`) plus `resource_manager`, `listen`, `data_dir`,
//! `embedded_monitor`, the embedded monitor's settings (the keys of
//! `rucat-monitor`'s config), `gateway`, `tls`, `http`, `quotas`, `audit`, `idle` and `logs`.
//!
//! Read as `rucat-monitor` reads its own (see [`parse_json`]): errors name
//! the key path at fault, for the checks made here too.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rucat_core::Quotas;
use rucat_core::logs::LogsConfig;
use rucat_monitor::ResourceManagerConfig;
use rucat_monitor::config::{ConfigError, MonitorSettings, parse_json};
use rucat_store::DatabaseConfig;
use serde::Deserialize;

use super::idle::IdleConfig;
use crate::auth::AuthProviderConfig;
use crate::gateway::GatewayConfig;
use crate::serve::Timeouts;
use crate::tls::TlsConfig;

/// The file as written; a key left out takes its value from [`Default`],
/// and an optional key given as `null` is left out.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    pub auth_provider: Option<AuthProviderConfig>,
    pub database: Option<DatabaseConfig>,
    pub resource_manager: Option<ResourceManagerConfig>,
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    /// Whether the server also runs a monitor; off when separate
    /// `rucat-monitor` processes drive the engines.
    pub embedded_monitor: bool,
    /// The embedded monitor's settings, under the names, defaults and rules
    /// of `rucat-monitor`'s config (see [`MonitorSettings`]).
    pub check_interval_secs: u8,
    pub lease_secs: u16,
    pub start_deadline_secs: u32,
    pub max_concurrent: u16,
    pub resync_interval_secs: u32,
    /// The Spark Connect gateway's address and the address it advertises.
    pub gateway: GatewayConfig,
    /// Serve the REST API and the gateway over TLS.
    pub tls: Option<TlsConfig>,
    /// How long clients may take.
    pub http: HttpConfig,
    /// How many engines each user may have; none limited by default.
    pub quotas: Quotas,
    /// The audit trail's metrics.
    pub audit: AuditConfig,
    /// When idle engines stop, and how they resume.
    pub idle: IdleConfig,
    /// Where engines' logs are archived, and for how long.
    pub logs: LogsConfig,
}

/// `"audit": {...}`: how the audited actions are counted (see
/// `crate::api::Audit`; every action is logged whatever this says).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// How many distinct users get a `user` label of their own in
    /// `rucat_api_actions_total`; later ones share `other`. 0 (the default):
    /// users are no label at all.
    pub user_metrics_limit: u16,
}

impl Default for FileConfig {
    fn default() -> Self {
        let monitor = MonitorSettings::default();
        Self {
            auth_provider: None,
            database: None,
            resource_manager: None,
            listen: None,
            data_dir: None,
            embedded_monitor: true,
            check_interval_secs: monitor.check_interval_secs,
            lease_secs: monitor.lease_secs,
            start_deadline_secs: monitor.start_deadline_secs,
            max_concurrent: monitor.max_concurrent,
            resync_interval_secs: monitor.resync_interval_secs,
            gateway: GatewayConfig::default(),
            tls: None,
            http: HttpConfig::default(),
            quotas: Quotas::default(),
            audit: AuditConfig::default(),
            idle: IdleConfig::default(),
            logs: LogsConfig::default(),
        }
    }
}

impl FileConfig {
    /// What the embedded monitor runs with.
    pub fn monitor_settings(&self) -> MonitorSettings {
        MonitorSettings {
            check_interval_secs: self.check_interval_secs,
            lease_secs: self.lease_secs,
            start_deadline_secs: self.start_deadline_secs,
            max_concurrent: self.max_concurrent,
            resync_interval_secs: self.resync_interval_secs,
        }
    }
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
                return Err(ConfigError::invalid(
                    key,
                    format!("must be from 1 to {MAX_TIMEOUT_SECS} seconds"),
                ));
            }
        }
        let timeouts = self.timeouts();
        if timeouts.body_read > timeouts.request {
            return Err(ConfigError::invalid(
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

/// Parses and checks the text of a config file.
pub fn parse(text: &str) -> Result<FileConfig, ConfigError> {
    let config: FileConfig = parse_json(text)?;
    config.monitor_settings().check()?;
    config.http.check()?;
    config.idle.check()?;
    config
        .logs
        .check()
        .map_err(|e| ConfigError::invalid(format!("logs.{}", e.key), e.reason))?;
    if config
        .data_dir
        .as_ref()
        .is_some_and(|d| d.as_os_str().is_empty())
    {
        return Err(ConfigError::invalid("data_dir", "must not be empty"));
    }
    if let Some(address) = &config.gateway.advertised_address {
        check_host_port(address)
            .map_err(|reason| ConfigError::invalid("gateway.advertised_address", reason))?;
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

#[cfg(test)]
mod tests {
    use rucat_monitor::MonitorFileConfig;

    use super::*;

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    /// Whether the static admin has a bearer token, read from the redacted
    /// `Debug` (which says only whether there is one), so that this does not
    /// depend on how `AuthProviderConfig` holds its providers.
    fn static_admin_has_token(config: &FileConfig) -> bool {
        let debug = format!("{:?}", config.auth_provider);
        assert!(debug.contains("StaticAuthProviderConfig {"), "{debug}");
        debug.contains(r#"bearer_token: Some("<redacted>")"#)
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
        assert_eq!(config.monitor_settings(), MonitorSettings::default());
        assert_eq!(config.gateway, GatewayConfig::default());
        assert!(config.tls.is_none());
        assert_eq!(config.http, HttpConfig::default());
        assert_eq!(config.quotas, Quotas::default());
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
                "check_interval_secs": 5,
                "lease_secs": 20,
                "start_deadline_secs": 600,
                "max_concurrent": 16,
                "resync_interval_secs": 120,
                "quotas": {"default": {"max_engines": 10, "max_running": 2},
                           "users": {"alice": {"max_running": 5}},
                           "groups": {"analysts": {"max_engines": 20}}}
            }"#,
        )
        .unwrap();
        assert!(
            static_admin_has_token(&config),
            "{:?}",
            config.auth_provider
        );
        assert_eq!(
            config.database,
            Some(DatabaseConfig::Sqlite {
                path: "/var/lib/rucat/rucat.db".into()
            })
        );
        let Some(ResourceManagerConfig::Local(local)) = &config.resource_manager else {
            panic!("no resource manager");
        };
        assert_eq!(local.work_dir, PathBuf::from("/var/lib/rucat/engines"));
        assert_eq!(config.listen, Some("0.0.0.0:3000".parse().unwrap()));
        assert_eq!(config.data_dir, Some("/var/lib/rucat".into()));
        assert!(!config.embedded_monitor);
        assert_eq!(
            config.monitor_settings(),
            MonitorSettings {
                check_interval_secs: 5,
                lease_secs: 20,
                start_deadline_secs: 600,
                max_concurrent: 16,
                resync_interval_secs: 120,
            }
        );
        assert_eq!(config.quotas.default.max_engines, Some(10));
        assert_eq!(config.quotas.default.max_running, Some(2));
        assert_eq!(config.quotas.users["alice"].max_running, Some(5));
        assert_eq!(config.quotas.users["alice"].max_engines, None);
        assert_eq!(config.quotas.groups["analysts"].max_engines, Some(20));
    }

    #[test]
    fn the_embedded_monitor_reads_its_keys_as_rucat_monitor_does() {
        for text in [
            "{}",
            r#"{"check_interval_secs": 3}"#,
            r#"{"lease_secs": 45}"#,
            r#"{"start_deadline_secs": 0}"#,
            r#"{"max_concurrent": 1}"#,
            r#"{"resync_interval_secs": 7}"#,
            r#"{"check_interval_secs": 9, "lease_secs": 3, "start_deadline_secs": 4000000000,
                "max_concurrent": 65535, "resync_interval_secs": 86400}"#,
            r#"{"check_interval_secs": 0}"#,
            r#"{"lease_secs": 2}"#,
            r#"{"max_concurrent": 0}"#,
            r#"{"resync_interval_secs": 0}"#,
            r#"{"lease_secs": 70000}"#,
            r#"{"start_deadline_secs": -1}"#,
            r#"{"max_concurrent": null}"#,
            r#"{"check_interval_secs": "1"}"#,
        ] {
            let server = parse(text)
                .map(|c| c.monitor_settings())
                .map_err(|e| e.to_string());
            let monitor = MonitorFileConfig::parse(text)
                .map(|c| c.monitor_settings())
                .map_err(|e| e.to_string());
            assert_eq!(server, monitor, "{text}");
        }
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
        assert!(
            err.starts_with("gateway.port: unknown field `port`"),
            "{err}"
        );
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
                "http.header_read_timeout_secs: invalid value",
            ),
            (
                r#"{"http": {"header_read_timeout_secs": "10s"}}"#,
                "http.header_read_timeout_secs: invalid type",
            ),
            (
                r#"{"http": {"read_timeout_secs": 10}}"#,
                "http.read_timeout_secs: unknown field `read_timeout_secs`",
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
        assert!(config.auth_provider.is_some());
        assert!(
            !static_admin_has_token(&config),
            "{:?}",
            config.auth_provider
        );
    }

    #[test]
    fn null_means_left_out() {
        let config = parse(
            r#"{"auth_provider": null, "database": null, "resource_manager": null,
                "listen": null, "data_dir": null, "tls": null,
                "gateway": {"listen": null, "advertised_address": null},
                "http": {"idle_timeout_secs": null}}"#,
        )
        .unwrap();
        assert!(config.auth_provider.is_none());
        assert!(config.database.is_none());
        assert!(config.resource_manager.is_none());
        assert!(config.listen.is_none());
        assert!(config.data_dir.is_none());
        assert!(config.tls.is_none());
        assert_eq!(config.gateway, GatewayConfig::default());
        assert_eq!(config.http, HttpConfig::default());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = error(r#"{"listen": "127.0.0.1:1", "check_interval": 1}"#);
        assert!(
            err.starts_with("check_interval: unknown field `check_interval`"),
            "{err}"
        );
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
                "database.Surreal: missing field `uri`",
            ),
            (
                r#"{"database": {"Surreal": {"uri": 8000}}}"#,
                "database.Surreal.uri: invalid type",
            ),
            (
                r#"{"database": {"Sqlite": {}}}"#,
                "database.Sqlite: missing field `path`",
            ),
            (
                r#"{"resource_manager": {"K8s": {}}}"#,
                "resource_manager: unknown variant `K8s`",
            ),
            (
                r#"{"auth_provider": {"StaticAuthProviderConfig": {"username": "u"}}}"#,
                "auth_provider.StaticAuthProviderConfig: missing field `password`",
            ),
            (
                r#"{"auth_provider": {"StaticAuthProviderConfig": {"username": "u", "password": "p", "token": "t"}}}"#,
                "auth_provider.StaticAuthProviderConfig.token: unknown field `token`",
            ),
            (r#"{"lease_secs": 2}"#, "lease_secs: must be at least 3"),
            (r#"{"lease_secs": 65536}"#, "lease_secs: invalid value"),
            (
                r#"{"max_concurrent": 0}"#,
                "max_concurrent: must be at least 1",
            ),
            (
                r#"{"start_deadline_secs": "5m"}"#,
                "start_deadline_secs: invalid type",
            ),
            (
                r#"{"quotas": {"default": {"max_engines": -1}}}"#,
                "quotas.default.max_engines: invalid value",
            ),
            (
                r#"{"quotas": {"users": {"alice": {"max_runing": 1}}}}"#,
                "quotas.users.alice.max_runing: unknown field `max_runing`",
            ),
            (r#"{"quotas": null}"#, "quotas: invalid type: null"),
        ] {
            let err = error(text);
            assert!(err.starts_with(expected), "{text}: {err}");
        }
        // An unknown provider, at `auth_provider` or below it as the
        // provider config's shape has it.
        let err = error(r#"{"auth_provider": {"Ldap": {}}}"#);
        assert!(
            err.starts_with("auth_provider") && err.contains("`Ldap`"),
            "{err}"
        );
    }

    #[test]
    fn secrets_are_not_quoted_in_errors() {
        for (text, path, secret) in [
            (
                r#"{"auth_provider": {"StaticAuthProviderConfig": {"username": "u", "password": 987654321}}}"#,
                "auth_provider.StaticAuthProviderConfig.password",
                "987654321",
            ),
            (
                r#"{"auth_provider": {"StaticAuthProviderConfig": {"username": "u", "password": "p", "bearer_token": 13579}}}"#,
                "auth_provider.StaticAuthProviderConfig.bearer_token",
                "13579",
            ),
            (
                r#"{"database": {"Surreal": {"uri": "ws://db:8000", "credentials": {"username": "root", "password": 24680}}}}"#,
                "database.Surreal.credentials.password",
                "24680",
            ),
        ] {
            let err = error(text);
            assert!(err.starts_with(&format!("{path}: invalid type")), "{err}");
            assert!(!err.contains(secret), "{err}");
        }
    }

    #[test]
    fn the_debug_output_hides_secrets() {
        let config = parse(
            r#"{"auth_provider": {"StaticAuthProviderConfig": {"username": "the-user", "password": "987654321", "bearer_token": "13579"}},
                "database": {"Surreal": {"uri": "ws://db:8000", "credentials": {"username": "root", "password": "24680"}}}}"#,
        )
        .unwrap();
        let debug = format!("{config:?} {config:#?}");
        for secret in ["the-user", "987654321", "13579", "24680"] {
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
