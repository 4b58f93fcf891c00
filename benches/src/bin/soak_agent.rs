//! One of the soak's agent processes (`benches/soak.sh` starts several): creates transactions
//! through `headlight-agent` at the rate the driver sets in the environment and reports its
//! counters on stdout until its stdin closes. See `headlight_benches::soak::agent`.

fn main() -> anyhow::Result<()> {
    headlight_benches::soak::agent::main_from_env()
}
