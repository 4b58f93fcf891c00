//! Accuracy of the deploy comparison (design.md §5, issue 4): known regressions and A/A runs,
//! generated from a fixed seed and judged by the real `compare::engine::judge`, give detection
//! rates and false-positive rates with 95 % Wilson intervals.
//!
//! Samples are built as the collector builds them: every transaction lands in one of the
//! 10 s windows of a 15 min side (uniformly), is recorded into that window's `LatencyStats`
//! with `LatencyStats::record`, and the side is the `LatencyStats::merge` of its windows. The
//! store keeps closed windows as `histogram::encode` blobs and the comparison reads them back
//! with `histogram::decode`: the first runs of every cell are also built through that round
//! trip and must give the same statistics (`--round-trip` sends every run through it).
//!
//! Each run of a (shape, n) cell draws one A/A deploy of 20 transactions (every transaction's
//! before and after drawn from the same distribution, 1 % errors on both sides): one `judge`
//! call; a transaction judged `regression` is a false positive per transaction, an overall
//! `regression` one per deploy. Then, for each regression scenario, a fresh transaction whose
//! after side is changed replaces the deploy's first transaction and the deploy is judged
//! again (so Benjamini–Hochberg runs over 20 transactions, as in a real deploy); it is also
//! judged alone (a comparison of one transaction), which shows what the correction costs.
//!
//! Scenarios: `shift+10%` and `shift+20%` (every after latency × 1.1 or × 1.2), `tail 5%×3`
//! (each after request 3× slower with probability 5 %), `errors 1→3%` (after error rate 3 %,
//! latency unchanged). Shapes: `lognormal` (median 20 ms, σ = 0.5) and `cache_mix` (a cache:
//! 75 % hits log-normal median 15 ms σ 0.35, 25 % misses log-normal median 120 ms σ 0.6;
//! bimodal, median ≈ 18 ms, heavy upper tail).
//!
//! Run: `cargo bench -p headlight-benches --bench accuracy` (options: `--runs N` per cell,
//! default 750; `--sizes N,N`, default 500,2000; `--seed S`; `--threads T`, default the available cores; `--round-trip`; and the
//! engine's settings `--fdr F`, `--min-relative-change F`, `--min-absolute-change-ms F`,
//! `--min-error-rate-change-pp F`, `--confidence F` to try a variant). Without `--bench` (as
//! `cargo test --benches` runs it) it makes a few runs of each cell, as a smoke test.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context as _, ensure};
use headlight_collector::aggregate::histogram::{self, LatencyStats};
use headlight_collector::compare::engine::{
    Input, PValues, Settings, Side, TransactionVerdict, Verdict, judge,
};

/// The default seed ("HEADLIGHT" in ASCII, truncated to 64 bits).
const DEFAULT_SEED: u64 = 0x4845_4144_4c49_4748;
/// Width of one aggregation window, s (the collector's).
const WINDOW_S: u64 = 10;
/// Length of one side of a comparison, s (design.md's default window, 15 min).
const SIDE_S: u64 = 15 * 60;
/// Transactions in one deploy.
const DEPLOY_TRANSACTIONS: usize = 20;
/// Error rate of every transaction before (and after, but in the error scenario).
const BASE_ERROR_RATE: f64 = 0.01;
/// Error rate after the deploy in the error scenario.
const REGRESSED_ERROR_RATE: f64 = 0.03;
/// Runs of each cell also built through the store's encode/decode round trip and checked.
const ROUND_TRIP_CHECKED_RUNS: usize = 3;
/// Samples per side, by default.
const SIZES: [u64; 2] = [500, 2_000];
/// The sample size the targets apply to.
const TARGET_N: u64 = 2_000;

// ---------------------------------------------------------------------------------------------
// Random numbers.

/// SplitMix64 (Steele, Lea & Flood 2014): tiny, fast, and good enough for sampling; streams are
/// keyed so each run draws the same numbers whatever thread runs it.
#[derive(Debug, Clone)]
struct Rng {
    state: u64,
    /// The second normal of the last Box–Muller pair.
    spare_normal: Option<f64>,
}

impl Rng {
    /// Returns the stream of `seed` keyed by `keys` (shape, n, run).
    fn keyed(seed: u64, keys: &[u64]) -> Self {
        let mut state = seed;
        for &key in keys {
            state = mix(state ^ mix(key.wrapping_add(0x9e37_79b9_7f4a_7c15)));
        }
        Self {
            state,
            spare_normal: None,
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.state)
    }

    /// Uniform in [0, 1), 53 bits.
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in 0..bound (Lemire's multiply-shift; the bias is below 2⁻⁵⁰ for our bounds).
    fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    fn chance(&mut self, probability: f64) -> bool {
        self.uniform() < probability
    }

    /// Standard normal, Box–Muller.
    fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        let u1 = 1.0 - self.uniform(); // (0, 1]: ln is finite
        let u2 = self.uniform();
        let radius = (-2.0 * u1.ln()).sqrt();
        let angle = std::f64::consts::TAU * u2;
        self.spare_normal = Some(radius * angle.sin());
        radius * angle.cos()
    }

    /// Log-normal with the given median (µs) and σ of the logarithm.
    fn log_normal(&mut self, median_us: f64, sigma: f64) -> f64 {
        median_us * (sigma * self.normal()).exp()
    }
}

/// SplitMix64's output function.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

// ---------------------------------------------------------------------------------------------
// What is drawn.

/// A transaction's latency distribution before the deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Log-normal, median 20 ms, σ = 0.5.
    LogNormal,
    /// 75 % cache hits (log-normal, median 15 ms, σ 0.35), 25 % misses (median 120 ms, σ 0.6).
    CacheMix,
}

impl Shape {
    const ALL: [Shape; 2] = [Shape::LogNormal, Shape::CacheMix];

    fn name(self) -> &'static str {
        match self {
            Self::LogNormal => "lognormal",
            Self::CacheMix => "cache_mix",
        }
    }

    /// Draws one duration, µs.
    fn draw_us(self, rng: &mut Rng) -> f64 {
        match self {
            Self::LogNormal => rng.log_normal(20_000.0, 0.5),
            Self::CacheMix => {
                if rng.chance(0.75) {
                    rng.log_normal(15_000.0, 0.35)
                } else {
                    rng.log_normal(120_000.0, 0.6)
                }
            }
        }
    }
}

/// What a deploy changed in the regressed transaction's after side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// Every latency × 1.1.
    Shift10,
    /// Every latency × 1.2.
    Shift20,
    /// Each request 3× slower with probability 5 %.
    Tail,
    /// Error rate 1 % → 3 %, latency unchanged.
    Errors,
}

impl Scenario {
    const ALL: [Scenario; 4] = [
        Scenario::Shift10,
        Scenario::Shift20,
        Scenario::Tail,
        Scenario::Errors,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Shift10 => "shift +10 %",
            Self::Shift20 => "shift +20 %",
            Self::Tail => "tail: 5 % of requests 3×",
            Self::Errors => "errors 1 % → 3 %",
        }
    }

    /// The detection target at n = 2 000, if design.md's issue sets one.
    fn target(self) -> Option<f64> {
        match self {
            Self::Shift10 => Some(0.90),
            Self::Shift20 | Self::Tail => Some(0.95),
            Self::Errors => None,
        }
    }

    /// Draws one after-side transaction: duration µs and whether it failed.
    fn draw(self, shape: Shape, rng: &mut Rng) -> (f64, bool) {
        let base = shape.draw_us(rng);
        let error_rate = match self {
            Self::Errors => REGRESSED_ERROR_RATE,
            _ => BASE_ERROR_RATE,
        };
        let error = rng.chance(error_rate);
        let duration = match self {
            Self::Shift10 => base * 1.1,
            Self::Shift20 => base * 1.2,
            Self::Tail if rng.chance(0.05) => base * 3.0,
            Self::Tail | Self::Errors => base,
        };
        (duration, error)
    }
}

/// One transaction as the agent reports it: when it ended (which window), its duration and
/// whether it failed.
#[derive(Debug, Clone, Copy)]
struct Record {
    window: u64,
    duration_us: u64,
    error: bool,
}

/// Draws `n` transactions of one side, each ending at a uniform time of the side's 15 min.
fn draw_side(n: u64, rng: &mut Rng, mut draw: impl FnMut(&mut Rng) -> (f64, bool)) -> Vec<Record> {
    (0..n)
        .map(|_| {
            let window = rng.below(SIDE_S / WINDOW_S);
            let (duration, error) = draw(rng);
            Record {
                window,
                // The agent reports whole µs; HDR's lowest trackable value is 1 µs.
                duration_us: duration.round().max(1.0) as u64,
                error,
            }
        })
        .collect()
}

/// Builds a side as the collector does: per 10 s window, `LatencyStats::record` each
/// transaction; then `LatencyStats::merge` the windows. With `round_trip`, every window's
/// histograms go through `histogram::encode`/`decode` first, as the store keeps them.
fn build_side(mut records: Vec<Record>, round_trip: bool) -> anyhow::Result<Side> {
    records.sort_by_key(|r| r.window);
    let mut side = LatencyStats::default();
    for window in records.chunk_by(|a, b| a.window == b.window) {
        let mut stats = LatencyStats::default();
        for r in window {
            stats.record(r.duration_us, r.error);
        }
        if round_trip {
            stats.histogram = histogram::decode(&histogram::encode(&stats.histogram))?;
            stats.error_histogram = histogram::decode(&histogram::encode(&stats.error_histogram))?;
        }
        side.merge(&stats);
    }
    Ok(Side {
        stats: side,
        self_us: Default::default(),
    })
}

/// Draws and builds one side; the first runs of a cell are also built through the round trip
/// and must come out identical.
fn side(
    n: u64,
    rng: &mut Rng,
    draw: impl FnMut(&mut Rng) -> (f64, bool),
    run: usize,
    options: &Options,
) -> anyhow::Result<Side> {
    let records = draw_side(n, rng, draw);
    if options.round_trip {
        return build_side(records, true);
    }
    if run < ROUND_TRIP_CHECKED_RUNS {
        let direct = build_side(records.clone(), false)?;
        let stored = build_side(records, true)?;
        ensure!(
            direct == stored,
            "the store's encode/decode round trip changed a side"
        );
        return Ok(direct);
    }
    build_side(records, false)
}

// ---------------------------------------------------------------------------------------------
// Counting.

/// Why a regressed transaction was not judged `regression`.
#[derive(Debug, Clone, Copy, Default)]
struct Misses {
    /// No "worse" test had a raw p-value at or below the FDR.
    not_significant: u64,
    /// Some raw p-value was at or below the FDR, none after Benjamini–Hochberg.
    lost_to_bh: u64,
    /// Some test was significant after Benjamini–Hochberg, but the change was below the
    /// minimums (the verdict's reason says so).
    below_minimum: u64,
}

/// Counts of one scenario in one (shape, n) cell.
#[derive(Debug, Clone, Copy, Default)]
struct Detection {
    runs: u64,
    /// Judged `regression` inside the 20-transaction deploy.
    in_deploy: u64,
    /// Judged `regression` as a comparison of its own.
    alone: u64,
    misses: Misses,
}

/// The counts of one (shape, n) cell.
#[derive(Debug, Clone, Default)]
struct Cell {
    aa_deploys: u64,
    aa_deploy_regressions: u64,
    aa_transactions: u64,
    aa_transaction_regressions: u64,
    /// A/A transactions judged `improvement` (the other direction's false positives).
    aa_transaction_improvements: u64,
    detection: [Detection; Scenario::ALL.len()],
}

impl Cell {
    fn add(&mut self, other: &Cell) {
        self.aa_deploys += other.aa_deploys;
        self.aa_deploy_regressions += other.aa_deploy_regressions;
        self.aa_transactions += other.aa_transactions;
        self.aa_transaction_regressions += other.aa_transaction_regressions;
        self.aa_transaction_improvements += other.aa_transaction_improvements;
        for (d, o) in self.detection.iter_mut().zip(&other.detection) {
            d.runs += o.runs;
            d.in_deploy += o.in_deploy;
            d.alone += o.alone;
            d.misses.not_significant += o.misses.not_significant;
            d.misses.lost_to_bh += o.misses.lost_to_bh;
            d.misses.below_minimum += o.misses.below_minimum;
        }
    }
}

/// Classifies a regressed transaction's miss (see [`Misses`]).
fn classify_miss(verdict: &TransactionVerdict, settings: &Settings, misses: &mut Misses) {
    let p = |v: PValues| [v.shift, v.tail, v.errors];
    let raw = p(verdict.p_values).into_iter().any(|x| x <= settings.fdr);
    let adjusted = p(verdict.p_values_adjusted)
        .into_iter()
        .any(|x| x <= settings.fdr);
    if adjusted {
        misses.below_minimum += 1;
    } else if raw {
        misses.lost_to_bh += 1;
    } else {
        misses.not_significant += 1;
    }
}

/// One run of a cell: an A/A deploy, then each scenario's regressed transaction in it.
fn run_once(
    shape: Shape,
    n: u64,
    run: usize,
    options: &Options,
    cell: &mut Cell,
) -> anyhow::Result<()> {
    let mut rng = Rng::keyed(options.seed, &[shape as u64, n, run as u64]);
    let unchanged = |rng: &mut Rng| (shape.draw_us(rng), rng.chance(BASE_ERROR_RATE));
    let mut deploy = Vec::with_capacity(DEPLOY_TRANSACTIONS);
    for t in 0..DEPLOY_TRANSACTIONS {
        deploy.push(Input {
            transaction: format!("GET /a-a/{t}"),
            before: side(n, &mut rng, unchanged, run, options)?,
            after: side(n, &mut rng, unchanged, run, options)?,
        });
    }
    let (verdicts, overall) = judge(&deploy, &options.settings);
    cell.aa_deploys += 1;
    cell.aa_deploy_regressions += u64::from(overall == Verdict::Regression);
    for v in &verdicts {
        cell.aa_transactions += 1;
        cell.aa_transaction_regressions += u64::from(v.verdict == Verdict::Regression);
        cell.aa_transaction_improvements += u64::from(v.verdict == Verdict::Improvement);
    }

    for (scenario, detection) in Scenario::ALL.into_iter().zip(&mut cell.detection) {
        let regressed = Input {
            transaction: format!("GET /regressed/{}", scenario as u8),
            before: side(n, &mut rng, unchanged, run, options)?,
            after: side(n, &mut rng, |rng| scenario.draw(shape, rng), run, options)?,
        };
        let (alone, _) = judge(std::slice::from_ref(&regressed), &options.settings);
        let unchanged_first = std::mem::replace(&mut deploy[0], regressed);
        let (in_deploy, _) = judge(&deploy, &options.settings);
        deploy[0] = unchanged_first;

        detection.runs += 1;
        detection.alone += u64::from(alone[0].verdict == Verdict::Regression);
        if in_deploy[0].verdict == Verdict::Regression {
            detection.in_deploy += 1;
        } else {
            classify_miss(&in_deploy[0], &options.settings, &mut detection.misses);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reporting.

/// The 95 % Wilson score interval of `hits` out of `n`.
fn wilson(hits: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 1.959_963_984_540_054_f64;
    let (k, n) = (hits as f64, n as f64);
    let p = k / n;
    let denominator = 1.0 + z * z / n;
    let center = (p + z * z / (2.0 * n)) / denominator;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denominator;
    ((center - half).max(0.0), (center + half).min(1.0))
}

/// "k/n = r % [lo, hi]", in % with two decimals (false-positive rates are small).
fn rate(hits: u64, n: u64) -> String {
    let (low, high) = wilson(hits, n);
    format!(
        "{hits}/{n} = {:.2} % [{:.2}, {:.2}]",
        100.0 * hits as f64 / n.max(1) as f64,
        100.0 * low,
        100.0 * high
    )
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

struct Options {
    runs: usize,
    sizes: Vec<u64>,
    seed: u64,
    threads: usize,
    round_trip: bool,
    settings: Settings,
}

impl Options {
    fn parse() -> anyhow::Result<Self> {
        let args: Vec<String> = std::env::args().collect();
        let value = |name: &str| -> anyhow::Result<Option<&str>> {
            args.iter()
                .position(|a| a == name)
                .map(|i| {
                    args.get(i + 1)
                        .map(String::as_str)
                        .with_context(|| format!("{name} needs a value"))
                })
                .transpose()
        };
        let number = |name: &str| -> anyhow::Result<Option<f64>> {
            value(name)?
                .map(|v| v.parse().with_context(|| format!("{name} needs a number")))
                .transpose()
        };
        let smoke = !args.iter().any(|a| a == "--bench");
        let mut settings = Settings::default();
        let overrides: [(&str, &mut f64); 5] = [
            ("--fdr", &mut settings.fdr),
            ("--min-relative-change", &mut settings.min_relative_change),
            (
                "--min-absolute-change-ms",
                &mut settings.min_absolute_change_ms,
            ),
            (
                "--min-error-rate-change-pp",
                &mut settings.min_error_rate_change_pp,
            ),
            ("--confidence", &mut settings.confidence),
        ];
        for (name, field) in overrides {
            if let Some(v) = number(name)? {
                *field = v;
            }
        }
        settings
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid settings: {e}"))?;
        let seed = match value("--seed")? {
            None => DEFAULT_SEED,
            Some(s) => match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).context("--seed needs a number")?,
                None => s.parse().context("--seed needs a number")?,
            },
        };
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let runs = match number("--runs")? {
            Some(r) => r as usize,
            None if smoke => 1,
            None => 750,
        };
        let sizes = match value("--sizes")? {
            None => SIZES.to_vec(),
            Some(list) => list
                .split(',')
                .map(|n| {
                    n.trim()
                        .parse()
                        .context("--sizes needs numbers, e.g. 500,2000")
                })
                .collect::<anyhow::Result<_>>()?,
        };
        Ok(Self {
            runs: runs.max(1),
            sizes,
            seed,
            threads: number("--threads")?.map_or(cores, |t| t as usize).max(1),
            round_trip: args.iter().any(|a| a == "--round-trip"),
            settings,
        })
    }
}

#[allow(clippy::print_stdout)] // the bench's output is its table
fn main() -> anyhow::Result<()> {
    let options = Options::parse()?;
    let cells: Vec<(Shape, u64)> = Shape::ALL
        .into_iter()
        .flat_map(|shape| options.sizes.iter().map(move |&n| (shape, n)))
        .collect();
    println!(
        "accuracy: seed {:#x}, {} runs per cell, {} thread(s), {}; settings {:?}",
        options.seed,
        options.runs,
        options.threads,
        if options.round_trip {
            "every window through encode/decode"
        } else {
            "encode/decode round trip checked on the first runs"
        },
        options.settings
    );

    // Jobs are (cell, run); each run has its own random stream, so the counts do not depend
    // on which thread ran what.
    let started = Instant::now();
    let jobs = cells.len() * options.runs;
    let next = AtomicUsize::new(0);
    let totals = Mutex::new(vec![Cell::default(); cells.len()]);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let workers: Vec<_> = (0..options.threads)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    let mut local = vec![Cell::default(); cells.len()];
                    loop {
                        let job = next.fetch_add(1, Ordering::Relaxed);
                        if job >= jobs {
                            break;
                        }
                        let (c, run) = (job % cells.len(), job / cells.len());
                        let (shape, n) = cells[c];
                        run_once(shape, n, run, &options, &mut local[c])?;
                    }
                    let mut totals = totals.lock().unwrap_or_else(|e| e.into_inner());
                    for (t, l) in totals.iter_mut().zip(&local) {
                        t.add(l);
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("a worker panicked"))??;
        }
        Ok(())
    })?;
    let elapsed = started.elapsed();
    let totals = totals.into_inner().unwrap_or_else(|e| e.into_inner());

    println!();
    println!("Detection: share of runs whose regressed transaction was judged `regression`");
    println!(
        "(95 % Wilson interval); misses: not significant / significant raw but not after BH / \
         significant but below the minimum change"
    );
    println!();
    println!(
        "| shape | scenario | n per side | in a {DEPLOY_TRANSACTIONS}-transaction deploy | \
         alone (1 transaction) | misses in deploy |"
    );
    println!("|---|---|---|---|---|---|");
    for (scenario_index, scenario) in Scenario::ALL.into_iter().enumerate() {
        for ((shape, n), cell) in cells.iter().zip(&totals) {
            let d = cell.detection[scenario_index];
            println!(
                "| {} | {} | {n} | {} | {} | {} / {} / {} |",
                shape.name(),
                scenario.name(),
                rate(d.in_deploy, d.runs),
                rate(d.alone, d.runs),
                d.misses.not_significant,
                d.misses.lost_to_bh,
                d.misses.below_minimum
            );
        }
    }

    println!();
    println!("False positives: A/A comparisons judged `regression` (95 % Wilson interval)");
    println!();
    println!(
        "| shape | n per side | per transaction | per {DEPLOY_TRANSACTIONS}-transaction deploy | \
         A/A transactions judged `improvement` |"
    );
    println!("|---|---|---|---|---|");
    for ((shape, n), cell) in cells.iter().zip(&totals) {
        println!(
            "| {} | {n} | {} | {} | {} |",
            shape.name(),
            rate(cell.aa_transaction_regressions, cell.aa_transactions),
            rate(cell.aa_deploy_regressions, cell.aa_deploys),
            rate(cell.aa_transaction_improvements, cell.aa_transactions),
        );
    }

    println!();
    println!("Targets at n = {TARGET_N} (point estimates; the interval is in the tables):");
    let mut all_met = true;
    let mut evaluated = false;
    for ((shape, n), cell) in cells.iter().zip(&totals) {
        if *n != TARGET_N {
            continue;
        }
        for (scenario_index, scenario) in Scenario::ALL.into_iter().enumerate() {
            let Some(target) = scenario.target() else {
                continue;
            };
            let d = cell.detection[scenario_index];
            let got = d.in_deploy as f64 / d.runs as f64;
            all_met &= got >= target;
            evaluated = true;
            println!(
                "  {:<9} {:<26} detection {:>5.1} % (target ≥ {:.0} %): {}",
                shape.name(),
                scenario.name(),
                100.0 * got,
                100.0 * target,
                met(got >= target)
            );
        }
        let fp_tx = cell.aa_transaction_regressions as f64 / cell.aa_transactions as f64;
        let fp_deploy = cell.aa_deploy_regressions as f64 / cell.aa_deploys as f64;
        all_met &= fp_tx <= 0.01 && fp_deploy <= 0.05;
        println!(
            "  {:<9} {:<26} {:>5.2} % per transaction (target ≤ 1 %): {}; {:.1} % per deploy \
             (target ≤ 5 %): {}",
            shape.name(),
            "A/A false positives",
            100.0 * fp_tx,
            met(fp_tx <= 0.01),
            100.0 * fp_deploy,
            met(fp_deploy <= 0.05)
        );
    }
    println!(
        "all targets {}; {jobs} runs ({} A/A deploys, {} regressed transactions) in {:.1} s",
        match (evaluated, all_met) {
            (false, _) => "not evaluated (n = 2000 not among the sizes)",
            (true, true) => "met",
            (true, false) => "NOT met",
        },
        totals.iter().map(|c| c.aa_deploys).sum::<u64>(),
        totals
            .iter()
            .flat_map(|c| c.detection.iter().map(|d| d.runs))
            .sum::<u64>(),
        elapsed.as_secs_f64()
    );
    Ok(())
}
