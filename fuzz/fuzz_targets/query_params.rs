//! Arbitrary query strings through an API endpoint's parameter parsing (the first byte picks
//! the endpoint: `0` latency, `1` histogram, `2` transactions, `3` heatmap, `4` compare, and on
//! modulo 5): never a panic, and what is accepted satisfies the ranges' invariants.
#![no_main]

use headlight_collector::fuzzing::{self, Endpoint};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(query) = std::str::from_utf8(rest) else {
        return;
    };
    let endpoint = Endpoint::ALL[usize::from(selector.wrapping_sub(b'0')) % Endpoint::ALL.len()];
    if let Ok(parsed) = fuzzing::query(endpoint, query)
        && let Err(violation) = parsed.check()
    {
        panic!("{endpoint:?} accepted {query:?}: {violation}");
    }
});
