//! Command-line flags. They override the file, so one config file can serve
//! several servers that differ only in address or data directory. Two
//! subcommands print what a static user's config needs instead of serving.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

pub use crate::auth::hash::Command;

#[derive(Clone, Debug, Default, PartialEq, Eq, Parser)]
#[command(name = "rucat-server", version, about = "Rucat REST server")]
pub struct Cli {
    /// The JSON configuration file.
    #[arg(long, value_name = "PATH")]
    pub config_path: Option<PathBuf>,
    /// Address to listen on (overrides `listen`).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory for the database and engine work directories (overrides `data_dir`).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address for the Spark Connect gateway (overrides `gateway.listen`).
    #[arg(long, value_name = "ADDR")]
    pub gateway_listen: Option<SocketAddr>,
    /// Print a hash for the config instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("rucat-server").chain(args.iter().copied()))
    }

    #[test]
    fn no_flags() {
        assert_eq!(parse(&[]).unwrap(), Cli::default());
    }

    #[test]
    fn all_flags() {
        let cli = parse(&[
            "--config-path",
            "/etc/rucat.json",
            "--listen",
            "0.0.0.0:8080",
            "--data-dir",
            "/var/lib/rucat",
            "--gateway-listen",
            "0.0.0.0:15002",
        ])
        .unwrap();
        assert_eq!(cli.config_path, Some("/etc/rucat.json".into()));
        assert_eq!(cli.listen, Some("0.0.0.0:8080".parse().unwrap()));
        assert_eq!(cli.data_dir, Some("/var/lib/rucat".into()));
        assert_eq!(cli.gateway_listen, Some("0.0.0.0:15002".parse().unwrap()));
    }

    #[test]
    fn hash_commands() {
        assert_eq!(
            parse(&["hash-password"]).unwrap().command,
            Some(Command::HashPassword)
        );
        assert_eq!(
            parse(&["hash-token"]).unwrap().command,
            Some(Command::HashToken { stdin: false })
        );
        assert_eq!(
            parse(&["hash-token", "--stdin"]).unwrap().command,
            Some(Command::HashToken { stdin: true })
        );
        // The password never comes as an argument.
        assert!(parse(&["hash-password", "s3cret"]).is_err());
    }

    #[test]
    fn bad_flags_are_refused() {
        assert!(parse(&["--listen", "localhost"]).is_err());
        assert!(parse(&["--listen"]).is_err());
        assert!(parse(&["--config"]).is_err());
        assert!(parse(&["stray"]).is_err());
    }
}
