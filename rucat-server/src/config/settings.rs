//! What the server runs with: the file's values, flags over them, and
//! defaults for what neither gives. A config-less `rucat-server` is a working
//! single-host setup: SQLite and local engines under `./rucat-data`.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;

use rucat_core::Quotas;
use rucat_core::logs::LogsConfig;
use rucat_monitor::{MonitorSettings, ResourceManagerConfig};
use rucat_store::DatabaseConfig;

use super::cli::Cli;
use super::file::{AuditConfig, FileConfig};
use super::idle::IdleConfig;
use crate::auth::AuthProviderConfig;
use crate::gateway::{self, Advertised};
use crate::serve::Timeouts;
use crate::tls::TlsConfig;

/// Loopback only, so an unconfigured server is not reachable from elsewhere.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 3000));

#[derive(Clone, Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database: DatabaseConfig,
    pub resource_manager: ResourceManagerConfig,
    pub auth: Option<AuthProviderConfig>,
    pub embedded_monitor: bool,
    /// What the embedded monitor runs with, as `rucat-monitor` would.
    pub monitor: MonitorSettings,
    /// Where the Spark Connect gateway listens.
    pub gateway_listen: SocketAddr,
    /// The gateway address shown to users; `None`: derived from where it
    /// listens once bound (see [`Settings::advertised`]).
    pub gateway_advertised: Option<String>,
    pub tls: Option<TlsConfig>,
    /// How long clients may take, on the REST API and the gateway.
    pub timeouts: Timeouts,
    /// How many engines each user may have.
    pub quotas: Quotas,
    pub audit: AuditConfig,
    /// When idle engines stop, and how they resume.
    pub idle: IdleConfig,
    /// Where engines' logs are archived (by default under `data_dir`).
    pub logs: LogsConfig,
}

impl Settings {
    /// How users reach the gateway, which listens at `bound` (the port
    /// actually bound, in case `gateway_listen` asked for any).
    pub fn advertised(&self, bound: SocketAddr) -> Advertised {
        let tls = self.tls.is_some();
        match &self.gateway_advertised {
            Some(address) => Advertised::new(address.clone(), tls),
            None => Advertised::from_listen(bound, tls),
        }
    }
}

/// Flags win over the file, and the file over defaults. The database and the
/// resource manager default to places inside the data directory, so moving the
/// data directory (by file or flag) moves everything not set explicitly.
pub fn resolve(file: FileConfig, cli: &Cli) -> Settings {
    let monitor = file.monitor_settings();
    let data_dir = cli
        .data_dir
        .clone()
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from(rucat_monitor::DEFAULT_DATA_DIR));
    Settings {
        listen: cli.listen.or(file.listen).unwrap_or(DEFAULT_LISTEN),
        database: file
            .database
            .unwrap_or_else(|| rucat_monitor::config::default_database(&data_dir)),
        resource_manager: file
            .resource_manager
            .unwrap_or_else(|| ResourceManagerConfig::local_in(&data_dir)),
        auth: file.auth_provider,
        embedded_monitor: file.embedded_monitor,
        monitor,
        gateway_listen: cli
            .gateway_listen
            .or(file.gateway.listen)
            .unwrap_or(gateway::DEFAULT_LISTEN),
        gateway_advertised: file.gateway.advertised_address,
        tls: file.tls,
        timeouts: file.http.timeouts(),
        quotas: file.quotas,
        audit: file.audit,
        idle: file.idle,
        logs: file.logs,
        data_dir,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::config::parse;

    fn cli(listen: Option<&str>, data_dir: Option<&str>) -> Cli {
        Cli {
            listen: listen.map(|l| l.parse().unwrap()),
            data_dir: data_dir.map(PathBuf::from),
            ..Cli::default()
        }
    }

    fn sqlite(path: &str) -> DatabaseConfig {
        DatabaseConfig::Sqlite { path: path.into() }
    }

    fn work_dir(settings: &Settings) -> &Path {
        match &settings.resource_manager {
            ResourceManagerConfig::Local(local) => &local.work_dir,
            other => panic!("expected the local resource manager, got {other:?}"),
        }
    }

    #[test]
    fn defaults_without_any_config() {
        let settings = resolve(FileConfig::default(), &Cli::default());
        assert_eq!(
            settings.listen,
            "127.0.0.1:3000".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(settings.data_dir, Path::new("./rucat-data"));
        assert_eq!(settings.database, sqlite("./rucat-data/rucat.db"));
        assert_eq!(work_dir(&settings), Path::new("./rucat-data/engines"));
        assert!(settings.auth.is_none());
        assert!(settings.embedded_monitor);
        assert_eq!(settings.monitor, MonitorSettings::default());
        assert_eq!(settings.quotas, Quotas::default());
        assert_eq!(
            settings.gateway_listen,
            "127.0.0.1:15002".parse::<SocketAddr>().unwrap()
        );
        assert!(settings.tls.is_none());
        assert_eq!(settings.timeouts, Timeouts::default());
        let id = rucat_core::EngineId::generate();
        assert_eq!(
            settings.advertised(settings.gateway_listen).endpoint(&id),
            format!("sc://localhost:15002/;x-rucat-engine-id={id}")
        );
    }

    #[test]
    fn the_gateway_advertises_what_it_is_told() {
        let file = parse(
            r#"{"gateway": {"listen": "0.0.0.0:15002", "advertised_address": "rucat.example.com:443"},
                "tls": {"certificate": "/c", "key": "/k"}}"#,
        )
        .unwrap();
        let mut flags = cli(None, None);
        flags.gateway_listen = Some("127.0.0.1:0".parse().unwrap());
        let settings = resolve(file, &flags);
        assert_eq!(
            settings.gateway_listen,
            "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
            "the flag wins"
        );
        let id = rucat_core::EngineId::generate();
        assert_eq!(
            settings
                .advertised("127.0.0.1:40000".parse().unwrap())
                .endpoint(&id),
            format!("sc://rucat.example.com:443/;x-rucat-engine-id={id};use_ssl=true")
        );
    }

    #[test]
    fn the_file_sets_everything() {
        let file = parse(
            r#"{"listen": "0.0.0.0:8080", "data_dir": "/data",
                "database": {"Sqlite": {"path": "/db/r.db"}},
                "resource_manager": {"Local": {"work_dir": "/work"}},
                "auth_provider": {"StaticAuthProviderConfig": {"username": "u", "password": "p"}},
                "embedded_monitor": false, "check_interval_secs": 7,
                "lease_secs": 12, "start_deadline_secs": 90, "max_concurrent": 4,
                "resync_interval_secs": 60,
                "http": {"request_timeout_secs": 45},
                "quotas": {"default": {"max_running": 3}},
                "audit": {"user_metrics_limit": 50}}"#,
        )
        .unwrap();
        let settings = resolve(file, &Cli::default());
        assert_eq!(
            settings.listen,
            "0.0.0.0:8080".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(settings.data_dir, Path::new("/data"));
        assert_eq!(settings.database, sqlite("/db/r.db"));
        assert_eq!(work_dir(&settings), Path::new("/work"));
        assert!(settings.auth.is_some());
        assert!(!settings.embedded_monitor);
        let monitor = settings.monitor.monitor_config();
        assert_eq!(monitor.check_interval, Duration::from_secs(7));
        assert_eq!(monitor.lease_duration, Duration::from_secs(12));
        assert_eq!(monitor.start_deadline, Duration::from_secs(90));
        assert_eq!(monitor.max_concurrent, 4);
        assert_eq!(monitor.resync_interval, Duration::from_secs(60));
        assert_eq!(settings.timeouts.request, Duration::from_secs(45));
        assert_eq!(settings.quotas.default.max_running, Some(3));
        assert_eq!(settings.audit.user_metrics_limit, 50);
        assert_eq!(
            resolve(FileConfig::default(), &Cli::default())
                .audit
                .user_metrics_limit,
            0,
            "users are no label unless configured"
        );
        let err = parse(r#"{"audit": {"per_user": true}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("audit.per_user: unknown field"), "{err}");
    }

    #[test]
    fn the_data_dir_moves_what_is_not_set_explicitly() {
        let file = parse(r#"{"data_dir": "/data"}"#).unwrap();
        let settings = resolve(file, &Cli::default());
        assert_eq!(settings.database, sqlite("/data/rucat.db"));
        assert_eq!(work_dir(&settings), Path::new("/data/engines"));

        let file = parse(r#"{"data_dir": "/data", "database": {"Sqlite": {"path": "/db/r.db"}}}"#)
            .unwrap();
        let settings = resolve(file, &cli(None, Some("/flag")));
        assert_eq!(settings.data_dir, Path::new("/flag"));
        assert_eq!(settings.database, sqlite("/db/r.db"), "explicit stays");
        assert_eq!(work_dir(&settings), Path::new("/flag/engines"));
    }

    #[test]
    fn flags_override_the_file() {
        let file = parse(r#"{"listen": "0.0.0.0:8080", "data_dir": "/data"}"#).unwrap();
        let settings = resolve(file, &cli(Some("127.0.0.1:0"), Some("/flag")));
        assert_eq!(
            settings.listen,
            "127.0.0.1:0".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(settings.data_dir, Path::new("/flag"));
        assert_eq!(settings.database, sqlite("/flag/rucat.db"));
    }

    #[test]
    fn flags_alone_override_the_defaults() {
        let settings = resolve(FileConfig::default(), &cli(Some("[::1]:9000"), None));
        assert_eq!(settings.listen, "[::1]:9000".parse::<SocketAddr>().unwrap());
        assert_eq!(settings.data_dir, Path::new("./rucat-data"));
        let settings = resolve(FileConfig::default(), &cli(None, Some("d")));
        assert_eq!(settings.listen, DEFAULT_LISTEN);
        assert_eq!(settings.database, sqlite("d/rucat.db"));
    }
}
