//! Arbitrary bytes as an OTLP protobuf body: decode → convert → aggregate → drain, and the
//! aggregation invariants on whatever was accepted.
#![no_main]

use headlight_collector::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(ingested) = fuzzing::ingest_protobuf(body)
        && let Err(violation) = ingested.check()
    {
        panic!("invariant violated: {violation}");
    }
});
