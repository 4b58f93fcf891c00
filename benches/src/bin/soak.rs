//! The soak procedure (issue 10), 10 minutes by default: `headlight serve` under `headlight
//! loadgen` and several agent processes (`soak_agent`), the agents restarted every 60–90 s
//! (some by SIGKILL), the collector stopped by SIGTERM and by SIGKILL and started again; then
//! conservation per source and the collector's memory per lifetime. Prints a Markdown report and
//! exits 1 on any violation. Run it with `benches/soak.sh`; `docs/soak.md` explains the checks.
//!
//! ```text
//! soak --headlight target/release/headlight --agent target/release/soak_agent \
//!     [--duration-s 600] [--rate 5000] [--agent-rate 200]
//! ```

#![allow(clippy::print_stdout, clippy::print_stderr)] // the report is the program's output

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use headlight_benches::procfs::machine;
use headlight_benches::soak::{self, AgentCommand, Plan, Programs};

fn main() -> anyhow::Result<ExitCode> {
    let mut headlight = PathBuf::from("target/release/headlight");
    let mut agent = PathBuf::from("target/release/soak_agent");
    let mut duration_s = 600;
    let mut rate = 5_000;
    let mut agent_rate = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--headlight" => headlight = value.into(),
            "--agent" => agent = value.into(),
            "--duration-s" => duration_s = value.parse().context("--duration-s: seconds")?,
            "--rate" => rate = value.parse().context("--rate: spans per second")?,
            "--agent-rate" => {
                agent_rate = Some(
                    value
                        .parse()
                        .context("--agent-rate: transactions per second")?,
                );
            }
            other => bail!("unknown flag {other}"),
        }
    }
    let mut plan = Plan::full(Duration::from_secs(duration_s), rate);
    if let Some(r) = agent_rate {
        plan.agent_rate = r;
    }
    let programs = Programs {
        headlight,
        agent: AgentCommand {
            program: agent,
            args: Vec::new(),
        },
    };
    println!(
        "soak: {}, {duration_s} s, loadgen {rate} spans/s (OTLP/gRPC), {} agents × {} transactions/s (3 children each), collector stops {:?}",
        machine(),
        plan.agent_restarts.len(),
        plan.agent_rate,
        plan.collector_stops
            .iter()
            .map(|(at, stop)| format!("{} at {} s", stop.signal(), at.as_secs()))
            .collect::<Vec<_>>()
    );
    let outcome = soak::run(&plan, &programs)?;
    println!();
    println!("{}", outcome.render(&plan));
    if outcome.violations.is_empty() {
        println!("soak: no violation");
        Ok(ExitCode::SUCCESS)
    } else {
        for v in &outcome.violations {
            eprintln!("soak: violation: {v}");
        }
        Ok(ExitCode::FAILURE)
    }
}
