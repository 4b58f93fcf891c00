//! The `headlight` command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;

/// Headlight: a lightweight APM that tells you whether a deploy made your service slower.
#[derive(Debug, Parser)]
#[command(name = "headlight", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the collector: OTLP ingest (gRPC and HTTP), the embedded store, the query API.
    Serve(ServeArgs),
}

/// `headlight serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file; unknown keys are refused. Flags below override it.
    #[arg(long, env = "HEADLIGHT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the embedded store keeps its data [default: ./headlight-data].
    #[arg(long, env = "HEADLIGHT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// OTLP/gRPC listen address [default: 127.0.0.1:4317].
    #[arg(long, env = "HEADLIGHT_OTLP_GRPC")]
    pub otlp_grpc: Option<SocketAddr>,
    /// OTLP/HTTP listen address [default: 127.0.0.1:4318].
    #[arg(long, env = "HEADLIGHT_OTLP_HTTP")]
    pub otlp_http: Option<SocketAddr>,
    /// API and UI listen address [default: 127.0.0.1:8080].
    #[arg(long, env = "HEADLIGHT_HTTP")]
    pub http: Option<SocketAddr>,
}

impl ServeArgs {
    /// Builds the configuration: the file (or defaults), then the flags.
    pub fn config(&self) -> Result<Config, crate::config::ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(d) = &self.data_dir {
            config.data_dir.clone_from(d);
        }
        if let Some(a) = self.otlp_grpc {
            config.listen.otlp_grpc = a;
        }
        if let Some(a) = self.otlp_http {
            config.listen.otlp_http = a;
        }
        if let Some(a) = self.http {
            config.listen.http = a;
        }
        config.validate()?;
        Ok(config)
    }
}
