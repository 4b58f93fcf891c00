//! The fuzz corpora without cargo-fuzz: every committed seed (`fuzz/corpus/<target>/`) and
//! crash input (`fuzz/regressions/<target>/`) goes through the same `fuzzing` entry point as
//! its fuzz target, must not panic, and what is accepted must satisfy the target's invariants.
//! The seeds are real requests, so they are also checked for what they must give.

use std::path::{Path, PathBuf};

use headlight_collector::fuzzing::{self, Endpoint, Ingested, Malformed, Parsed};
use prost::Message;

/// The files of `fuzz/<kind>/<target>/`, sorted; none when the folder does not exist.
fn inputs(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable fuzz folder").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("readable fuzz input");
            (p, bytes)
        })
        .collect()
}

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let files = inputs("corpus", target);
    assert!(
        files.len() >= 3,
        "fuzz/corpus/{target} holds {} files; the seeds are missing",
        files.len()
    );
    files
}

fn all_inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = seeds(target);
    files.extend(inputs("regressions", target));
    files
}

/// Runs an ingest entry point on a file, checking the invariants of whatever it accepted.
fn ingest_checked(
    ingest: fn(&[u8]) -> Result<Ingested, Malformed>,
    path: &Path,
    body: &[u8],
) -> Result<Ingested, Malformed> {
    let result = ingest(body);
    if let Ok(ingested) = &result
        && let Err(violation) = ingested.check()
    {
        panic!("{}: {violation}", path.display());
    }
    result
}

fn name(path: &Path) -> &str {
    path.file_name()
        .and_then(|n| n.to_str())
        .expect("utf-8 file name")
}

/// Every input of an ingest target keeps the invariants, and every seed is accepted.
fn check_ingest_target(target: &str, ingest: fn(&[u8]) -> Result<Ingested, Malformed>) {
    for (path, body) in all_inputs(target) {
        let result = ingest_checked(ingest, &path, &body);
        if name(&path).starts_with("seed-") {
            let ingested = result.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(ingested.spans_in > 0, "{}: no spans", path.display());
        }
    }
}

#[test]
fn json_inputs_keep_the_invariants_and_seeds_are_accepted() {
    check_ingest_target("otlp_json", fuzzing::ingest_json);
}

#[test]
fn protobuf_inputs_keep_the_invariants_and_seeds_are_accepted() {
    check_ingest_target("otlp_protobuf", fuzzing::ingest_protobuf);
}

/// The protobuf seeds are the JSON seeds encoded as protobuf, byte for byte. With
/// `HEADLIGHT_BLESS_SEEDS=1` the test writes them instead (after a JSON seed is added or changed).
#[test]
fn protobuf_seeds_are_the_json_seeds_encoded() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/otlp_protobuf");
    let bless = std::env::var_os("HEADLIGHT_BLESS_SEEDS").is_some();
    for (path, json) in seeds("otlp_json") {
        let stem = name(&path).trim_end_matches(".json");
        let request = fuzzing::decode_json(&json).unwrap_or_else(|e| panic!("{stem}: {e}"));
        let encoded = request.encode_to_vec();
        let pb = dir.join(format!("{stem}.pb"));
        if bless {
            std::fs::write(&pb, &encoded).expect("writable corpus");
        }
        let committed = std::fs::read(&pb)
            .unwrap_or_else(|e| panic!("{}: {e} (run with HEADLIGHT_BLESS_SEEDS=1)", pb.display()));
        assert!(
            committed == encoded,
            "{} is stale (run with HEADLIGHT_BLESS_SEEDS=1)",
            pb.display()
        );
    }
}

/// The protobuf seeds are the JSON seeds re-encoded: both decoders must give the same answer.
#[test]
fn protobuf_and_json_seeds_give_the_same_aggregates() {
    let json = seeds("otlp_json");
    let mut compared = 0;
    for (path, body) in seeds("otlp_protobuf") {
        let stem = name(&path).trim_end_matches(".pb");
        let Some((_, json_body)) = json.iter().find(|(p, _)| name(p) == format!("{stem}.json"))
        else {
            continue;
        };
        let a = fuzzing::ingest_protobuf(&body).expect("protobuf seed decodes");
        let b = fuzzing::ingest_json(json_body).expect("json seed decodes");
        let summary = |i: &Ingested| {
            (
                i.spans_in,
                i.accepted,
                i.rejected,
                i.transactions,
                i.orphans_dropped,
                i.batch.histograms.len(),
                i.batch.breakdown.len(),
                i.batch.spans.len(),
            )
        };
        assert_eq!(summary(&a), summary(&b), "{stem}");
        assert_eq!(a.message, b.message, "{stem}");
        compared += 1;
    }
    assert!(
        compared >= 3,
        "only {compared} protobuf seeds have a JSON twin"
    );
}

/// What the seeds must give, so a decoder or validation change that silently drops spans shows.
#[test]
fn seeds_give_their_known_outcomes() {
    let outcome = |file: &str| {
        let (path, body) = seeds("otlp_json")
            .into_iter()
            .find(|(p, _)| name(p) == file)
            .unwrap_or_else(|| panic!("seed {file} missing"));
        fuzzing::ingest_json(&body).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let whole = outcome("seed-transaction-with-children.json");
    assert_eq!((whole.spans_in, whole.accepted), (3, 3));
    assert_eq!(whole.transactions, 1);
    assert_eq!(
        whole.batch.histograms.len(),
        2,
        "one raw and one rollup window"
    );
    let rejected = outcome("seed-rejected-spans.json");
    assert_eq!((rejected.accepted, rejected.rejected), (0, 6));
    assert!(
        rejected.message.contains("rejected 6 of 6"),
        "{}",
        rejected.message
    );
    let errors = outcome("seed-errors-across-windows.json");
    assert_eq!(errors.transactions, 3, "two server spans and a consumer");
    assert_eq!(errors.orphans_dropped, 1);
    let raw_errors: u64 = errors
        .batch
        .histograms
        .iter()
        .filter(|h| h.resolution_s == errors.window_s)
        .map(|h| h.stats.errors)
        .sum();
    assert_eq!(raw_errors, 1, "the 503 with status error");
}

/// A body cut short is malformed: an error, never accepted spans.
#[test]
fn truncated_bodies_are_malformed() {
    for (path, body) in seeds("otlp_protobuf") {
        for cut in [body.len() - 1, body.len() / 2, 3] {
            assert!(
                fuzzing::ingest_protobuf(&body[..cut]).is_err(),
                "{} cut to {cut} bytes was accepted",
                path.display()
            );
        }
    }
    for (path, body) in seeds("otlp_json") {
        let text = body.trim_ascii_end();
        for cut in [text.len() - 1, text.len() / 2, 1] {
            assert!(
                matches!(fuzzing::ingest_json(&text[..cut]), Err(Malformed::Json(_))),
                "{} cut to {cut} bytes was accepted",
                path.display()
            );
        }
    }
    assert!(matches!(
        fuzzing::ingest_protobuf(b"\xff\xff\xff\xff"),
        Err(Malformed::Protobuf(_))
    ));
}

/// Runs a `query_params` input: first byte picks the endpoint, the rest is the query string.
fn query_checked(path: &Path, data: &[u8]) -> Option<(Endpoint, Result<Parsed, String>)> {
    let (&selector, rest) = data.split_first()?;
    let query = std::str::from_utf8(rest).ok()?;
    let endpoint = Endpoint::ALL[usize::from(selector.wrapping_sub(b'0')) % Endpoint::ALL.len()];
    let result = fuzzing::query(endpoint, query).map_err(|e| e.message);
    if let Ok(parsed) = &result
        && let Err(violation) = parsed.check()
    {
        panic!(
            "{}: {endpoint:?} accepted {query:?}: {violation}",
            path.display()
        );
    }
    Some((endpoint, result))
}

#[test]
fn query_inputs_keep_the_invariants_and_seeds_are_accepted() {
    let mut endpoints = Vec::new();
    for (path, data) in all_inputs("query_params") {
        let outcome = query_checked(&path, &data);
        if name(&path).starts_with("seed-") {
            let (endpoint, result) = outcome.expect("seed has a selector and utf-8");
            if let Err(message) = result {
                panic!("{}: {message}", path.display());
            }
            endpoints.push(endpoint);
        }
    }
    for endpoint in Endpoint::ALL {
        assert!(endpoints.contains(&endpoint), "no seed for {endpoint:?}");
    }
}

/// Inputs the parsers must refuse with a message naming the problem.
#[test]
fn bad_queries_are_refused() {
    for (endpoint, query, expected) in [
        (Endpoint::Latency, "from=10&to=5", "must be before"),
        (Endpoint::Latency, "step=0", "step"),
        (Endpoint::Histogram, "servce=x", "unknown query parameter"),
        (Endpoint::Histogram, "from=1&from=2", "repeated"),
        (Endpoint::Transactions, "min_ms=5&max_ms=1", "min_ms"),
        (Endpoint::Transactions, "limit=NaN", "limit"),
        (Endpoint::Heatmap, "y_buckets=501", "y_buckets"),
        (Endpoint::Heatmap, "y_scale=cubic", "y_scale"),
        (
            Endpoint::Compare,
            "service=a&after_from=1&after_to=2",
            "before_from",
        ),
        (
            Endpoint::Compare,
            "service=a&after_from=1&after_to=2&offset=99999999999999999d",
            "offset",
        ),
        (Endpoint::Latency, "from=0000-01-01T00:00:00Z", "`from`"),
    ] {
        match fuzzing::query(endpoint, query) {
            Ok(parsed) => panic!("{endpoint:?} accepted {query:?}: {parsed:?}"),
            Err(e) => assert!(
                e.message.contains(expected),
                "{endpoint:?} {query:?}: {}",
                e.message
            ),
        }
    }
}
