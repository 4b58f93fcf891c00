//! The Headlight collector: OTLP ingest, exact latency histograms per series and window, the
//! transaction index and stored spans in an embedded store, and the query API.
//!
//! The `headlight` binary is a thin shell over this library: tests and tools start a collector
//! in-process with [`server::Server::start`] and talk to it over real sockets.
//!
//! # Examples
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use headlight_collector::{config::Config, server::Server};
//!
//! let mut config = Config::default();
//! config.listen.otlp_grpc = "127.0.0.1:0".parse()?; // any free port
//! let server = Server::start(config).await?;
//! println!("send OTLP to http://{}", server.otlp_grpc);
//! server.shutdown().await?;
//! # Ok(()) }
//! ```

pub mod aggregate;
pub mod alert;
pub mod auth;
pub mod cli;
pub mod compare;
pub mod config;
pub mod demo;
pub mod deploys;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod ingest;
pub mod loadgen;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod query;
pub(crate) mod random;
pub mod render;
pub mod server;
pub mod store;
pub mod tls;
