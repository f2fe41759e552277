//! The server's configuration: the original rucat JSON file, extended with
//! the local deployment's settings, and command-line flags over it.
//!
//! Everything here is pure except [`load`], which reads the file, so every
//! rule (defaults, precedence, errors) is unit-tested without I/O.

mod cli;
mod file;
mod idle;
mod settings;

pub use cli::Cli;
pub use file::{AuditConfig, FileConfig, HttpConfig, parse};
pub use idle::IdleConfig;
pub use rucat_monitor::config::ConfigError;
pub use settings::{DEFAULT_LISTEN, Settings, resolve};

/// The file `cli` names, if any, resolved with the flags over it.
pub fn load(cli: &Cli) -> Result<Settings, ConfigError> {
    let file = match &cli.config_path {
        Some(path) => rucat_monitor::config::load_with(path, parse)?,
        None => FileConfig::default(),
    };
    Ok(resolve(file, cli))
}
