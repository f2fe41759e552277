//! The monitor's configuration file: the original rucat shape
//! (`check_interval_secs`, `database`) plus the resource manager and the
//! lease settings. Parsing is pure; only [`MonitorFileConfig::load`] reads.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rucat_core::MonitorConfig;
use rucat_store::DatabaseConfig;
use serde::Deserialize;

use crate::backends::ResourceManagerConfig;

/// Where engines and the database live when nothing else is configured.
pub const DEFAULT_DATA_DIR: &str = "./rucat-data";

/// Where the monitor serves health and metrics: loopback, beside the
/// server's default 3000, so an unconfigured monitor is not reachable from elsewhere.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 3001));

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorFileConfig {
    /// How often starting and stopping engines are checked, in seconds (at least 1).
    #[serde(default = "default_check_interval")]
    pub check_interval_secs: u8,
    /// Defaults to the SQLite file of the data directory.
    #[serde(default)]
    pub database: Option<DatabaseConfig>,
    /// Defaults to the local resource manager in the data directory.
    #[serde(default)]
    pub resource_manager: Option<ResourceManagerConfig>,
    #[serde(default = "default_lease_secs")]
    pub lease_secs: u16,
    #[serde(default = "default_start_deadline_secs")]
    pub start_deadline_secs: u32,
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: u16,
    /// How often every Running engine's resource is checked, read-only, for
    /// a failure no change feed reported (at least 1; see `rucat_core::monitor`).
    #[serde(default = "default_resync_interval")]
    pub resync_interval_secs: u32,
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
}

fn default_check_interval() -> u8 {
    1
}
fn default_lease_secs() -> u16 {
    30
}
fn default_start_deadline_secs() -> u32 {
    300
}
fn default_max_concurrent() -> u16 {
    64
}
fn default_resync_interval() -> u32 {
    30
}
fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN
}

impl Default for MonitorFileConfig {
    fn default() -> Self {
        Self {
            check_interval_secs: default_check_interval(),
            database: None,
            resource_manager: None,
            lease_secs: default_lease_secs(),
            start_deadline_secs: default_start_deadline_secs(),
            max_concurrent: default_max_concurrent(),
            resync_interval_secs: default_resync_interval(),
            listen: default_listen(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

impl MonitorFileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|reason| ConfigError::Invalid {
            path: path.to_owned(),
            reason,
        })
    }

    /// Parses and checks a config; the error names the offending key.
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: Self = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if config.check_interval_secs == 0 {
            return Err("check_interval_secs: must be at least 1".into());
        }
        if config.lease_secs < 3 {
            return Err("lease_secs: must be at least 3".into());
        }
        if config.max_concurrent == 0 {
            return Err("max_concurrent: must be at least 1".into());
        }
        if config.resync_interval_secs == 0 {
            return Err("resync_interval_secs: must be at least 1".into());
        }
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

    /// The monitor's runtime settings; `owner` stays the generated default.
    pub fn monitor_config(&self) -> MonitorConfig {
        MonitorConfig {
            check_interval: Duration::from_secs(self.check_interval_secs.into()),
            lease_duration: Duration::from_secs(self.lease_secs.into()),
            start_deadline: Duration::from_secs(self.start_deadline_secs.into()),
            max_concurrent: self.max_concurrent.into(),
            resync_interval: Duration::from_secs(self.resync_interval_secs.into()),
            ..MonitorConfig::default()
        }
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
    use super::*;

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
        let err = MonitorFileConfig::parse(r#"{"listen": "nowhere"}"#).unwrap_err();
        assert!(err.contains("socket address"), "{err}");
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
        let err =
            MonitorFileConfig::parse(r#"{"resource_manager": {"Kubernetes": {"namespace": 3}}}"#)
                .unwrap_err();
        assert!(err.contains("invalid type"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key() {
        for (text, key) in [
            (r#"{"check_interval_secs": 0}"#, "check_interval_secs"),
            (r#"{"check_interval_secs": 300}"#, "300"),
            (r#"{"lease_secs": 1}"#, "lease_secs"),
            (r#"{"max_concurrent": 0}"#, "max_concurrent"),
            (r#"{"resync_interval_secs": 0}"#, "resync_interval_secs"),
            (r#"{"check_interval": 1}"#, "unknown field `check_interval`"),
            (r#"{"database": {"Postgres": {}}}"#, "Postgres"),
            (
                r#"{"resource_manager": {"Local": {"wrk_dir": "x"}}}"#,
                "wrk_dir",
            ),
        ] {
            let err = MonitorFileConfig::parse(text).unwrap_err();
            assert!(err.contains(key), "{text}: {err}");
        }
    }
}
