//! The soak procedure, short (issue 10): one minute of `headlight loadgen` and two agent
//! processes against the real `headlight` binary, the collector killed with SIGKILL and started
//! again halfway (the write-ahead log must keep what it acknowledged), one agent restarted;
//! then the same conservation checks as the 10-minute `benches/soak.sh` (`docs/soak.md`):
//! exact per source, duplicates only within the bound a SIGKILL allows.
//!
//! The driver is the benches' own code, included with `#[path]`. The agent processes are this
//! test binary again, running the ignored test `soak_agent_process`.

// The full procedure's helpers and re-exports are used by benches/src/bin/soak.rs only.
#[allow(dead_code)]
#[path = "../../benches/src/procfs.rs"]
mod procfs;
#[allow(dead_code, unused_imports)]
#[path = "../../benches/src/soak/mod.rs"]
mod soak;

use std::path::PathBuf;
use std::time::Duration;

use soak::{AgentCommand, Plan, Programs, Stop};

#[test]
fn every_span_is_accounted_for_across_a_collector_kill_and_an_agent_restart() {
    let plan = Plan {
        duration: Duration::from_secs(60),
        loadgen_rate: 2_000,
        agent_rate: 100,
        agent_restarts: vec![Some(Duration::from_secs(35)), None],
        agent_hard_kills: Vec::new(),
        collector_stops: vec![(Duration::from_secs(25), Stop::Kill)],
        rss_every: Duration::from_secs(2),
        // Lifetimes of 30 s are too short to judge memory: it is reported, not checked.
        rss_min_samples: usize::MAX,
        rss_tolerance: 0.10,
    };
    let programs = Programs {
        headlight: PathBuf::from(env!("CARGO_BIN_EXE_headlight")),
        agent: AgentCommand {
            program: std::env::current_exe().unwrap(),
            args: ["soak_agent_process", "--exact", "--ignored", "--nocapture"]
                .map(str::to_owned)
                .to_vec(),
        },
    };
    let outcome = soak::run(&plan, &programs).unwrap();
    let report = outcome.render(&plan);
    println!("{report}");
    assert!(
        outcome.violations.is_empty(),
        "violations:\n{}\n\n{report}",
        outcome.violations.join("\n")
    );
    // The run did what it says: two collector lifetimes, three agent lifetimes, traffic stored.
    assert_eq!(outcome.lifetimes.len(), 2, "{report}");
    assert_eq!(outcome.lifetimes[0].stop, Stop::Kill, "{report}");
    assert_eq!(outcome.agent_lifetimes, 3, "{report}");
    assert!(outcome.loadgen.accepted >= 50_000, "{report}");
    for row in &outcome.rows {
        assert!(row.stored > 0, "{}: nothing stored\n{report}", row.source);
    }
}

/// An agent process of the test above (started by it with the environment it needs).
#[test]
#[ignore = "an agent process of the soak test, started by it"]
fn soak_agent_process() {
    soak::agent::main_from_env().unwrap();
}
