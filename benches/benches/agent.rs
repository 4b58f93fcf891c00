//! The agent's hot path: cost per span on the application thread, in one run, for setups
//! running identical `tracing` workloads:
//!
//! - `no_subscriber`: plain `tracing` macros, no subscriber anywhere (the uninstrumented app);
//! - `registry_only`: `tracing_subscriber::registry()` with no layer (the floor of any
//!   layer-based agent: span ids, parent lookup, extensions);
//! - `headlight`: registry + [`headlight_agent::HeadlightLayer`], exporting over OTLP/gRPC;
//! - `otel_sdk`: registry + `tracing-opentelemetry` over the OpenTelemetry SDK's batch span
//!   processor and OTLP/gRPC (tonic) exporter: the stock pipeline.
//!
//! Both exporting pipelines ship to the same in-process sink ([`headlight_benches::sink`]),
//! which decodes and discards, with the same queue (16384 spans) and gzip. The timed loop runs
//! in chunks of at most 8192 spans, half the queue, and each pipeline is flushed (untimed)
//! between chunks, so no span is dropped for a full queue: the measured path is the enqueue
//! path. Each exporting pipeline runs twice: as deployed (batches of 512 spans, 1 s delay,
//! exported while the loop runs, so on a small machine the export thread and the sink compete
//! with the application thread), and `_deferred` (one batch per chunk, exported in the untimed
//! flush: the application thread's own cost). After each setup the bench prints its
//! conservation figures (spans created, recorded, sent, dropped, received by the sink).
//!
//! Workloads: `span` is one span with 3 attributes, entered and dropped; `transaction` is one
//! root span (`otel.kind = "server"`, 3 attributes) with 4 child spans (3 attributes each)
//! inside it. Throughput is counted in spans: criterion's `thrpt` is spans per second, and its
//! `time` (per iteration) divided by 1 or 5 is the time per span.
//!
//! Run: `cargo bench -p headlight-benches --bench agent -- --warm-up-time 2 --measurement-time 5`
//!
//! Instruction counts: with `AGENT_BENCH_ITERS=N` set, the binary skips criterion and runs the
//! one workload named by its argument (`span/headlight_deferred`, `transaction/registry_only`…)
//! exactly `N` times under that setup (same chunks and untimed flushes), so that
//! `valgrind --tool=callgrind` sees a fixed number of calls of `agent::span` or
//! `agent::transaction`; their inclusive cost divided by `N` is the cost per iteration:
//!
//! ```text
//! AGENT_BENCH_ITERS=20000 valgrind --tool=callgrind --dump-instr=no \
//!     --toggle-collect='agent::measured' target/release/deps/agent-<hash> span/headlight_deferred
//! ```
//!
//! (Two chunks run first as a warm-up, outside `agent::measured`, so the figure is the steady
//! state: records recycled by the agent's pool rather than allocated.)

use std::cell::Cell;
use std::time::{Duration, Instant};

use criterion::{Bencher, Criterion, Throughput, criterion_group};
use headlight_agent::{AgentGuard, AgentStats};
use headlight_benches::sink::Sink;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig as _, WithTonicConfig as _};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use tracing::Dispatch;
use tracing::subscriber::NoSubscriber;
use tracing_subscriber::prelude::*;

/// Spans each exporting pipeline may queue (both default to 2048).
const QUEUE_SPANS: usize = 16_384;
/// Spans per export request (both pipelines' default).
const BATCH_SPANS: usize = 512;
/// How long a span waits for its batch (Headlight's default; the SDK's is 5 s).
const BATCH_DELAY: Duration = Duration::from_secs(1);
/// Spans created between two untimed flushes: half the queue, so it never fills.
const CHUNK_SPANS: u64 = QUEUE_SPANS as u64 / 2;
/// How long an untimed flush may take before the bench says so.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// One span with 3 attributes, entered and dropped.
fn span() {
    let span = tracing::info_span!("op", a = 1, b = "x", c = true);
    let _entered = span.enter();
}

/// Spans per [`transaction`].
const TRANSACTION_SPANS: u64 = 5;

/// One server root span with 3 attributes and 4 child spans of 3 attributes inside it.
fn transaction() {
    let root = tracing::info_span!(
        "GET /users/{id}",
        otel.kind = "server",
        a = 1,
        b = "x",
        c = true
    );
    let _root = root.enter();
    for _ in 0..TRANSACTION_SPANS - 1 {
        let child = tracing::info_span!("SELECT users", a = 1, b = "x", c = true);
        let _child = child.enter();
    }
}

/// What runs behind the dispatch, to flush and to stop.
enum Pipeline {
    None,
    Headlight(Box<AgentGuard>),
    Otel {
        provider: SdkTracerProvider,
        /// Drives the tonic channel of the SDK's exporter.
        runtime: tokio::runtime::Runtime,
    },
}

struct Setup {
    name: &'static str,
    dispatch: Dispatch,
    pipeline: Pipeline,
    /// Spans the timed loops created (warm-up included).
    created: Cell<u64>,
    failed_flushes: Cell<u64>,
    sink_before: u64,
}

impl Setup {
    fn new(name: &'static str, dispatch: Dispatch, pipeline: Pipeline, sink: &Sink) -> Self {
        Self {
            name,
            dispatch,
            pipeline,
            created: Cell::new(0),
            failed_flushes: Cell::new(0),
            sink_before: sink.spans(),
        }
    }

    /// Ships what is queued and waits for the sink's answer (untimed).
    fn flush(&self) {
        let flushed = match &self.pipeline {
            Pipeline::None => true,
            Pipeline::Headlight(guard) => guard.flush(FLUSH_TIMEOUT),
            Pipeline::Otel { provider, .. } => provider.force_flush().is_ok(),
        };
        if !flushed {
            self.failed_flushes.set(self.failed_flushes.get() + 1);
        }
    }

    /// Times `iters` runs of `workload` in chunks of at most [`CHUNK_SPANS`] spans under this
    /// setup's dispatch, flushing between chunks outside the timed region.
    fn time(&self, iters: u64, spans_per_iter: u64, workload: fn()) -> Duration {
        let chunk = (CHUNK_SPANS / spans_per_iter).max(1);
        let mut elapsed = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let n = left.min(chunk);
            elapsed += tracing::dispatcher::with_default(&self.dispatch, || {
                let start = Instant::now();
                for _ in 0..n {
                    workload();
                }
                start.elapsed()
            });
            left -= n;
            self.created.set(self.created.get() + n * spans_per_iter);
            self.flush();
        }
        elapsed
    }

    /// Stops the pipeline and prints where every created span went.
    fn finish(self, sink: &Sink) {
        let Self {
            name,
            dispatch,
            pipeline,
            created,
            failed_flushes,
            sink_before,
        } = self;
        drop(dispatch);
        let agent = match pipeline {
            Pipeline::None => None,
            Pipeline::Headlight(guard) => Some(guard.shutdown()),
            Pipeline::Otel { provider, runtime } => {
                if provider.shutdown().is_err() {
                    failed_flushes.set(failed_flushes.get() + 1);
                }
                drop(provider);
                drop(runtime);
                None
            }
        };
        // Callsites keep the interest computed while this setup's subscriber was alive: rebuild
        // it so the next setup starts from its own subscriber alone.
        tracing::callsite::rebuild_interest_cache();
        report(
            name,
            created.get(),
            failed_flushes.get(),
            sink.spans() - sink_before,
            agent,
        );
    }
}

#[allow(clippy::print_stdout)] // a bench reports its conservation figures beside criterion's
fn report(name: &str, created: u64, failed_flushes: u64, received: u64, agent: Option<AgentStats>) {
    println!(
        "{name}: spans created {created}, received by the sink {received}, failed flushes {failed_flushes}"
    );
    if let Some(stats) = agent {
        println!("{name}: agent {stats}");
    }
}

/// When the exporters work: beside the application thread, as deployed, or only in the untimed
/// flushes between chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Export {
    /// Batches of [`BATCH_SPANS`] leave as soon as they fill, while the timed loop runs: the
    /// export thread, the sink and the application thread share the machine's cores.
    Concurrent,
    /// A batch is the whole queue and the delay is longer than any chunk, so the exporters
    /// stay idle while the loop is timed: the application thread's own cost.
    Deferred,
}

impl Export {
    fn batch(self) -> (usize, Duration) {
        match self {
            Self::Concurrent => (BATCH_SPANS, BATCH_DELAY),
            Self::Deferred => (QUEUE_SPANS, Duration::from_secs(600)),
        }
    }
}

fn headlight(sink: &Sink, export: Export) -> Setup {
    let (batch, delay) = export.batch();
    let (layer, guard) = headlight_agent::builder()
        .service_name("bench")
        .endpoint(sink.endpoint())
        .export(|e| {
            e.max_queue_spans = QUEUE_SPANS;
            e.max_batch_spans = batch;
            e.batch_timeout = delay;
            e.gzip = true;
        })
        .build()
        .expect("the agent starts");
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    let name = match export {
        Export::Concurrent => "headlight",
        Export::Deferred => "headlight_deferred",
    };
    Setup::new(name, dispatch, Pipeline::Headlight(Box::new(guard)), sink)
}

fn otel_sdk(sink: &Sink, export: Export) -> Setup {
    let (batch, delay) = export.batch();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("otel-exporter")
        .enable_all()
        .build()
        .expect("runtime");
    // The tonic channel spawns its connection task on the runtime it is built in.
    let exporter = {
        let _context = runtime.enter();
        opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(sink.endpoint())
            .with_compression(opentelemetry_otlp::Compression::Gzip)
            .build()
            .expect("the exporter builds")
    };
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(QUEUE_SPANS)
                .with_max_export_batch_size(batch)
                .with_scheduled_delay(delay)
                .build(),
        )
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("bench")
                .build(),
        )
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("bench"));
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    let name = match export {
        Export::Concurrent => "otel_sdk",
        Export::Deferred => "otel_sdk_deferred",
    };
    Setup::new(name, dispatch, Pipeline::Otel { provider, runtime }, sink)
}

fn bench_setup(c: &mut Criterion, setup: &Setup) {
    let mut group = c.benchmark_group("span");
    group.throughput(Throughput::Elements(1));
    group.bench_function(setup.name, |b: &mut Bencher<'_>| {
        b.iter_custom(|iters| setup.time(iters, 1, span));
    });
    group.finish();
    let mut group = c.benchmark_group("transaction");
    group.throughput(Throughput::Elements(TRANSACTION_SPANS));
    group.bench_function(setup.name, |b: &mut Bencher<'_>| {
        b.iter_custom(|iters| setup.time(iters, TRANSACTION_SPANS, transaction));
    });
    group.finish();
}

fn agent(c: &mut Criterion) {
    let sink = Sink::start().expect("the sink starts");
    // One setup alive at a time, and `no_subscriber` first: while any other subscriber is
    // alive, callsites cannot be disabled once and for all, which is the uninstrumented case.
    let setups: [fn(&Sink) -> Setup; 6] = [
        |sink| {
            Setup::new(
                "no_subscriber",
                Dispatch::new(NoSubscriber::default()),
                Pipeline::None,
                sink,
            )
        },
        |sink| {
            Setup::new(
                "registry_only",
                Dispatch::new(tracing_subscriber::registry()),
                Pipeline::None,
                sink,
            )
        },
        |sink| headlight(sink, Export::Concurrent),
        |sink| headlight(sink, Export::Deferred),
        |sink| otel_sdk(sink, Export::Concurrent),
        |sink| otel_sdk(sink, Export::Deferred),
    ];
    for make in setups {
        let setup = make(&sink);
        bench_setup(c, &setup);
        setup.finish(&sink);
    }
}

/// Runs one workload a fixed number of times under one setup (see the module's doc), or
/// returns `false` when `AGENT_BENCH_ITERS` is not set.
fn fixed_iterations() -> bool {
    let Some(iters) = std::env::var("AGENT_BENCH_ITERS")
        .ok()
        .and_then(|n| n.parse::<u64>().ok())
    else {
        return false;
    };
    let wanted = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_else(|| "span/headlight_deferred".to_owned());
    let (workload, setup_name) = wanted.split_once('/').expect("workload/setup");
    let (spans_per_iter, run): (u64, fn()) = match workload {
        "span" => (1, span),
        "transaction" => (TRANSACTION_SPANS, transaction),
        other => panic!("unknown workload {other}"),
    };
    let sink = Sink::start().expect("the sink starts");
    let setup = match setup_name {
        "no_subscriber" => Setup::new(
            "no_subscriber",
            Dispatch::new(NoSubscriber::default()),
            Pipeline::None,
            &sink,
        ),
        "registry_only" => Setup::new(
            "registry_only",
            Dispatch::new(tracing_subscriber::registry()),
            Pipeline::None,
            &sink,
        ),
        "headlight" => headlight(&sink, Export::Concurrent),
        "headlight_deferred" => headlight(&sink, Export::Deferred),
        "otel_sdk" => otel_sdk(&sink, Export::Concurrent),
        "otel_sdk_deferred" => otel_sdk(&sink, Export::Deferred),
        other => panic!("unknown setup {other}"),
    };
    // Warm-up: two chunks, so that span records come from the agent's pool as in a steady
    // state (the first chunk allocates them).
    setup.time(2 * CHUNK_SPANS / spans_per_iter, spans_per_iter, run);
    measured(&setup, iters, spans_per_iter, run);
    setup.finish(&sink);
    true
}

/// The measured part of [`fixed_iterations`], apart so that callgrind can collect it alone
/// (`--toggle-collect='agent::measured'`).
#[inline(never)]
fn measured(setup: &Setup, iters: u64, spans_per_iter: u64, workload: fn()) {
    setup.time(iters, spans_per_iter, workload);
}

criterion_group!(benches, agent);

fn main() {
    if fixed_iterations() {
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
