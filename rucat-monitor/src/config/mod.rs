//! Reading config files, the same way in both binaries (see [`parse_json`]
//! and [`ConfigError`]), and the monitor's own file: the original rucat shape
//! (`check_interval_secs`, `database`) plus the resource manager, the lease
//! settings and where health and metrics are served. Parsing is pure; only
//! [`load_with`] reads.

mod json;
mod monitor;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;

use rucat_core::MonitorConfig;
use rucat_core::logs::LogsConfig;
use rucat_store::DatabaseConfig;
use serde::Deserialize;

use crate::backends::ResourceManagerConfig;

pub use json::{ConfigError, load_with, parse_json};
pub use monitor::MonitorSettings;

/// Where engines and the database live when nothing else is configured.
pub const DEFAULT_DATA_DIR: &str = "./rucat-data";

/// Where the monitor serves health and metrics: loopback, beside the
/// server's default 3000, so an unconfigured monitor is not reachable from elsewhere.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 3001));

/// `rucat-monitor`'s config file; every key is optional, a key left out
/// takes its value from [`Default`].
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorFileConfig {
    /// See [`MonitorSettings`], as are the lease settings below.
    pub check_interval_secs: u8,
    /// Defaults to the SQLite file of the data directory.
    pub database: Option<DatabaseConfig>,
    /// Defaults to the local resource manager in the data directory.
    pub resource_manager: Option<ResourceManagerConfig>,
    pub lease_secs: u16,
    pub start_deadline_secs: u32,
    pub max_concurrent: u16,
    pub resync_interval_secs: u32,
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub listen: SocketAddr,
    /// Where engines' logs are archived before their resources are
    /// released; must be the archive the servers read.
    pub logs: LogsConfig,
}

impl Default for MonitorFileConfig {
    fn default() -> Self {
        let monitor = MonitorSettings::default();
        Self {
            check_interval_secs: monitor.check_interval_secs,
            database: None,
            resource_manager: None,
            lease_secs: monitor.lease_secs,
            start_deadline_secs: monitor.start_deadline_secs,
            max_concurrent: monitor.max_concurrent,
            resync_interval_secs: monitor.resync_interval_secs,
            listen: DEFAULT_LISTEN,
            logs: LogsConfig::default(),
        }
    }
}

impl MonitorFileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        load_with(path, Self::parse)
    }

    /// Parses and checks a config; errors name the key path at fault.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Self = parse_json(text)?;
        config.monitor_settings().check()?;
        config
            .logs
            .check()
            .map_err(|e| ConfigError::invalid(format!("logs.{}", e.key), e.reason))?;
        Ok(config)
    }

    pub fn database_or_default(&self, data_dir: &Path) -> DatabaseConfig {
        self.database
            .clone()
            .unwrap_or_else(|| default_database(data_dir))
    }

    pub fn resource_manager_or_default(&self, data_dir: &Path) -> ResourceManagerConfig {
        self.resource_manager
            .clone()
            .unwrap_or_else(|| ResourceManagerConfig::local_in(data_dir))
    }

    pub fn monitor_settings(&self) -> MonitorSettings {
        MonitorSettings {
            check_interval_secs: self.check_interval_secs,
            lease_secs: self.lease_secs,
            start_deadline_secs: self.start_deadline_secs,
            max_concurrent: self.max_concurrent,
            resync_interval_secs: self.resync_interval_secs,
        }
    }

    /// The monitor's runtime settings; `owner` stays the generated default.
    pub fn monitor_config(&self) -> MonitorConfig {
        self.monitor_settings().monitor_config()
    }
}

/// The SQLite file rucat uses in a data directory.
pub fn default_database(data_dir: &Path) -> DatabaseConfig {
    DatabaseConfig::Sqlite {
        path: data_dir.join("rucat.db"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn error(text: &str) -> String {
        MonitorFileConfig::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn the_original_shape_parses() {
        let config = MonitorFileConfig::parse(
            r#"{"check_interval_secs": 5, "database": {"Sqlite": {"path": "/var/lib/rucat/rucat.db"}}}"#,
        )
        .unwrap();
        assert_eq!(config.check_interval_secs, 5);
        assert_eq!(
            config.database_or_default(Path::new("/ignored")),
            DatabaseConfig::Sqlite {
                path: "/var/lib/rucat/rucat.db".into()
            }
        );
        assert_eq!(
            config.monitor_config().check_interval,
            Duration::from_secs(5)
        );
    }

    #[test]
    fn defaults_live_in_the_data_dir() {
        let config = MonitorFileConfig::parse("{}").unwrap();
        let dir = Path::new("/data");
        assert_eq!(
            config.database_or_default(dir),
            DatabaseConfig::Sqlite {
                path: "/data/rucat.db".into()
            }
        );
        let ResourceManagerConfig::Local(local) = config.resource_manager_or_default(dir) else {
            panic!("the default is the local resource manager");
        };
        assert_eq!(local.work_dir, Path::new("/data/engines"));
        assert_eq!(
            config.monitor_config().lease_duration,
            Duration::from_secs(30)
        );
        assert_eq!(
            config.monitor_config().resync_interval,
            Duration::from_secs(30)
        );
        let config = MonitorFileConfig::parse(r#"{"resync_interval_secs": 300}"#).unwrap();
        assert_eq!(
            config.monitor_config().resync_interval,
            Duration::from_secs(300)
        );
    }

    #[test]
    fn health_and_metrics_listen_on_loopback_unless_configured() {
        assert_eq!(
            MonitorFileConfig::parse("{}").unwrap().listen,
            DEFAULT_LISTEN
        );
        let config = MonitorFileConfig::parse(r#"{"listen": "0.0.0.0:9100"}"#).unwrap();
        assert_eq!(config.listen, "0.0.0.0:9100".parse::<SocketAddr>().unwrap());
        let err = error(r#"{"listen": "nowhere"}"#);
        assert!(err.starts_with("listen: invalid socket address"), "{err}");
    }

    #[test]
    fn the_kubernetes_resource_manager_is_configurable() {
        let config = MonitorFileConfig::parse(
            r#"{"resource_manager": {"Kubernetes": {"namespace": "spark", "service_account": "rucat-spark"}}}"#,
        )
        .unwrap();
        match config.resource_manager_or_default(Path::new("/data")) {
            ResourceManagerConfig::Kubernetes(k8s) => {
                assert_eq!(k8s.namespace, "spark");
                assert_eq!(k8s.service_account.as_deref(), Some("rucat-spark"));
            }
            other => panic!("{other:?}"),
        }
        let err = error(r#"{"resource_manager": {"Kubernetes": {"namespace": 3}}}"#);
        assert!(
            err.starts_with("resource_manager.Kubernetes.namespace: invalid type"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_name_the_key_path() {
        for (text, expected) in [
            (
                r#"{"check_interval_secs": 0}"#,
                "check_interval_secs: must be at least 1",
            ),
            (
                r#"{"check_interval_secs": 300}"#,
                "check_interval_secs: invalid value: integer `300`",
            ),
            (r#"{"lease_secs": 1}"#, "lease_secs: must be at least 3"),
            (
                r#"{"max_concurrent": 0}"#,
                "max_concurrent: must be at least 1",
            ),
            (
                r#"{"resync_interval_secs": 0}"#,
                "resync_interval_secs: must be at least 1",
            ),
            (
                r#"{"start_deadline_secs": -1}"#,
                "start_deadline_secs: invalid value",
            ),
            (r#"{"lease_secs": null}"#, "lease_secs: invalid type: null"),
            (
                r#"{"check_interval": 1}"#,
                "check_interval: unknown field `check_interval`, expected one of `check_interval_secs`",
            ),
            (
                r#"{"database": {"Postgres": {}}}"#,
                "database: unknown variant `Postgres`",
            ),
            (
                r#"{"database": {"Surreal": {"uri": 8000}}}"#,
                "database.Surreal.uri: invalid type",
            ),
            (
                r#"{"resource_manager": {"Local": {"wrk_dir": "x"}}}"#,
                "resource_manager.Local.wrk_dir: unknown field `wrk_dir`",
            ),
        ] {
            let err = error(text);
            assert!(err.starts_with(expected), "{text}: {err}");
        }
    }

    #[test]
    fn every_key_parses() {
        let config = MonitorFileConfig::parse(
            r#"{"check_interval_secs": 2, "database": {"Sqlite": {"path": "/db"}},
                "resource_manager": {"Local": {"work_dir": "/work"}},
                "lease_secs": 10, "start_deadline_secs": 60, "max_concurrent": 8,
                "resync_interval_secs": 120, "listen": "127.0.0.1:9000"}"#,
        )
        .unwrap();
        assert_eq!(
            config.monitor_settings(),
            MonitorSettings {
                check_interval_secs: 2,
                lease_secs: 10,
                start_deadline_secs: 60,
                max_concurrent: 8,
                resync_interval_secs: 120,
            }
        );
        assert_eq!(
            config.database,
            Some(DatabaseConfig::Sqlite { path: "/db".into() })
        );
        assert!(config.resource_manager.is_some());
        assert_eq!(
            config.listen,
            "127.0.0.1:9000".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            MonitorFileConfig::parse("{}").unwrap(),
            MonitorFileConfig::default()
        );
        assert_eq!(
            MonitorFileConfig::default().monitor_settings(),
            MonitorSettings::default()
        );
    }

    #[test]
    fn null_means_left_out() {
        let config =
            MonitorFileConfig::parse(r#"{"database": null, "resource_manager": null}"#).unwrap();
        assert_eq!(config, MonitorFileConfig::default());
    }

    #[test]
    fn the_surreal_password_is_never_shown() {
        let err = error(
            r#"{"database": {"Surreal": {"uri": "ws://db:8000", "credentials": {"username": "root", "password": 987654321}}}}"#,
        );
        assert!(
            err.starts_with("database.Surreal.credentials.password: invalid type"),
            "{err}"
        );
        assert!(!err.contains("987654321"), "{err}");
        let config = MonitorFileConfig::parse(
            r#"{"database": {"Surreal": {"uri": "ws://db:8000", "credentials": {"username": "root", "password": "987654321"}}}}"#,
        )
        .unwrap();
        let debug = format!("{config:?} {config:#?}");
        assert!(!debug.contains("987654321"), "{debug}");
        assert!(debug.contains("root"), "{debug}");
    }
}
