//! The server's configuration: the original rucat JSON file, extended with
//! the local deployment's settings, and command-line flags over it.
//!
//! Everything here is pure except [`load`], which reads the file, so every
//! rule (defaults, precedence, errors) is unit-tested without I/O.

mod cli;
mod file;
mod settings;

pub use cli::Cli;
pub use file::{ConfigError, FileConfig, HttpConfig, KNOWN_KEYS, parse};
pub use settings::{DEFAULT_LISTEN, Settings, resolve};

/// The file `cli` names, if any, resolved with the flags over it.
pub fn load(cli: &Cli) -> Result<Settings, ConfigError> {
    let file = match &cli.config_path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            parse(&text).map_err(|error| ConfigError::InFile {
                path: path.clone(),
                error: Box::new(error),
            })?
        }
        None => FileConfig::default(),
    };
    Ok(resolve(file, cli))
}
