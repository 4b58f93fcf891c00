//! The `headlight` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use headlight_collector::cli::{Cli, Command, LoadgenArgs, ServeArgs, run_client};
use headlight_collector::server::Server;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo's terminal is its story: the collector's own log only says warnings there.
    let default_level = match cli.command {
        Command::Demo(_) => "warn",
        _ => "info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HEADLIGHT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|runtime| match cli.command {
            Command::Serve(args) => runtime.block_on(serve(args)).map(|()| ExitCode::SUCCESS),
            Command::Loadgen(args) => runtime.block_on(loadgen(args)),
            Command::Demo(args) => runtime
                .block_on(headlight_collector::demo::run(args))
                .map(|()| ExitCode::SUCCESS),
            client => runtime.block_on(run_client(client)),
        });
    match result {
        Ok(code) => code,
        Err(e) => {
            #[allow(clippy::print_stderr)] // the error is the command's last word
            {
                eprintln!("headlight: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::print_stdout)] // the report is the command's output
async fn loadgen(args: LoadgenArgs) -> anyhow::Result<ExitCode> {
    let plan = args.plan()?;
    let report = headlight_collector::loadgen::run(plan, true).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", headlight_collector::loadgen::render(&report));
    }
    Ok(ExitCode::SUCCESS)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    // Listening for the signals before the listeners open: a SIGTERM that comes as soon as
    // "listening" is logged still shuts down cleanly.
    let shutdown = shutdown_signal().context("cannot listen for shutdown signals")?;
    let server = Server::start(config).await?;
    shutdown.await;
    tracing::info!("shutting down: flushing to the store");
    server.shutdown().await.context("final flush failed")?;
    Ok(())
}

/// Resolves at the first SIGINT (Ctrl-C) or SIGTERM received after this call.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// Resolves at the first Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
