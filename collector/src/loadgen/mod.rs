//! `headlight loadgen`: OTLP traffic at a fixed rate or at saturation, over gRPC or HTTP
//! (protobuf or JSON), from several connections; it reports what was sent, accepted, rejected
//! (OTLP partial success) and failed, the achieved rate and the export latency percentiles.
//!
//! Like an OpenTelemetry SDK, it retries a request answered `UNAVAILABLE` /
//! `RESOURCE_EXHAUSTED` (gRPC) or 429 / 502 / 503 / 504 (HTTP), after the server's `RetryInfo`
//! or `Retry-After` delay when given, else after an exponential backoff, until the request's
//! deadline; a request that succeeds after retries counts once. So `accepted` is exactly what
//! the collector acknowledged.

mod generate;

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, bail};
use hdrhistogram::Histogram;
use headlight_proto::otlp::collector::trace_service_client::TraceServiceClient;
use headlight_proto::otlp::collector::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use prost::Message as _;
use serde::Serialize;
use tokio::time::Instant;

pub use generate::Shape;

/// How the requests travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    Http,
    /// OTLP/HTTP with JSON bodies.
    HttpJson,
}

/// What to send.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `http://host:port` of the OTLP/gRPC or OTLP/HTTP listener.
    pub endpoint: String,
    /// The transport.
    pub protocol: Protocol,
    /// Spans per second over all connections; `None` sends as fast as the server answers.
    pub rate: Option<f64>,
    /// How long to send.
    pub duration: Duration,
    /// Spans per request (whole traces, so it may be rounded up to a multiple of the trace).
    pub batch: usize,
    /// Concurrent connections, each with one request in flight.
    pub connections: usize,
    /// Compress the bodies with gzip.
    pub gzip: bool,
    /// Retry retryable failures.
    pub retry: bool,
    /// Longest time one request is retried for.
    pub request_deadline: Duration,
    /// The traffic's shape.
    pub shape: Shape,
}

/// What happened, as printed at the end (and as JSON with `--json`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// Seconds spent sending.
    pub elapsed_s: f64,
    /// Export requests that got an answer (after retries).
    pub requests: u64,
    /// Spans in the requests that were sent (each counted once, however often retried).
    pub spans_sent: u64,
    /// Spans the server acknowledged: sent minus rejected, in requests answered with success.
    pub spans_accepted: u64,
    /// Spans the server refused in a partial success.
    pub spans_rejected: u64,
    /// Spans of requests that failed for good (not retryable, or the deadline passed).
    pub spans_failed: u64,
    /// Requests retried, and why (the status or HTTP code).
    pub retries: BTreeMap<String, u64>,
    /// Requests that failed for good, and why.
    pub failures: BTreeMap<String, u64>,
    /// Accepted spans per second.
    pub accepted_per_s: f64,
    /// Export latency (request sent to answer, retries included), ms: p50, p90, p99, max.
    pub latency_ms: Latency,
}

/// Export latency percentiles, ms.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

#[derive(Debug)]
struct Tally {
    requests: AtomicU64,
    spans_sent: AtomicU64,
    spans_accepted: AtomicU64,
    spans_rejected: AtomicU64,
    spans_failed: AtomicU64,
    retries: Mutex<BTreeMap<String, u64>>,
    failures: Mutex<BTreeMap<String, u64>>,
    /// Export latency, µs.
    latency: Mutex<Histogram<u64>>,
}

impl Tally {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            requests: AtomicU64::new(0),
            spans_sent: AtomicU64::new(0),
            spans_accepted: AtomicU64::new(0),
            spans_rejected: AtomicU64::new(0),
            spans_failed: AtomicU64::new(0),
            retries: Mutex::new(BTreeMap::new()),
            failures: Mutex::new(BTreeMap::new()),
            latency: Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3)?),
        })
    }

    fn count(map: &Mutex<BTreeMap<String, u64>>, why: String) {
        *map.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(why)
            .or_default() += 1;
    }

    fn report(&self, elapsed: Duration) -> Report {
        let latency = self.latency.lock().unwrap_or_else(PoisonError::into_inner);
        #[allow(clippy::cast_precision_loss)]
        let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
        let accepted = self.spans_accepted.load(Relaxed);
        #[allow(clippy::cast_precision_loss)]
        Report {
            elapsed_s: elapsed.as_secs_f64(),
            requests: self.requests.load(Relaxed),
            spans_sent: self.spans_sent.load(Relaxed),
            spans_accepted: accepted,
            spans_rejected: self.spans_rejected.load(Relaxed),
            spans_failed: self.spans_failed.load(Relaxed),
            retries: self
                .retries
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            failures: self
                .failures
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            accepted_per_s: accepted as f64 / elapsed.as_secs_f64().max(1e-9),
            latency_ms: Latency {
                p50: ms(0.5),
                p90: ms(0.9),
                p99: ms(0.99),
                #[allow(clippy::cast_precision_loss)]
                max: latency.max() as f64 / 1000.0,
            },
        }
    }
}

/// The answer to one attempt.
enum Attempt {
    /// Success; spans the server rejected.
    Done { rejected: u64 },
    /// Worth retrying, after this delay if the server said.
    Retry {
        why: String,
        after: Option<Duration>,
    },
    /// Not worth retrying.
    Failed { why: String },
}

/// One connection's client.
enum Client {
    Grpc(TraceServiceClient<tonic::transport::Channel>),
    Http {
        http: reqwest::Client,
        url: String,
        json: bool,
        gzip: bool,
    },
}

impl Client {
    async fn connect(plan: &Plan) -> anyhow::Result<Self> {
        match plan.protocol {
            Protocol::Grpc => {
                let channel = tonic::transport::Endpoint::from_shared(plan.endpoint.clone())
                    .with_context(|| format!("invalid endpoint {}", plan.endpoint))?
                    .timeout(Duration::from_secs(10))
                    .connect()
                    .await
                    .with_context(|| format!("cannot connect to {}", plan.endpoint))?;
                let mut client = TraceServiceClient::new(channel)
                    .max_decoding_message_size(4 << 20)
                    .max_encoding_message_size(64 << 20);
                if plan.gzip {
                    client = client.send_compressed(tonic::codec::CompressionEncoding::Gzip);
                }
                Ok(Self::Grpc(client))
            }
            Protocol::Http | Protocol::HttpJson => Ok(Self::Http {
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .pool_max_idle_per_host(1)
                    .build()?,
                url: format!("{}/v1/traces", plan.endpoint.trim_end_matches('/')),
                json: plan.protocol == Protocol::HttpJson,
                gzip: plan.gzip,
            }),
        }
    }

    async fn send(&mut self, request: &ExportTraceServiceRequest) -> Attempt {
        match self {
            Self::Grpc(client) => match client.export(request.clone()).await {
                Ok(answer) => Attempt::Done {
                    rejected: rejected_of(&answer.into_inner()),
                },
                Err(status) => grpc_failure(&status),
            },
            Self::Http {
                http,
                url,
                json,
                gzip,
            } => {
                let (body, content_type) = if *json {
                    match serde_json::to_vec(request) {
                        Ok(b) => (b, "application/json"),
                        Err(e) => {
                            return Attempt::Failed {
                                why: format!("encode: {e}"),
                            };
                        }
                    }
                } else {
                    (request.encode_to_vec(), "application/x-protobuf")
                };
                let mut builder = http.post(url.as_str()).header("content-type", content_type);
                let body = if *gzip {
                    builder = builder.header("content-encoding", "gzip");
                    let mut encoder =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    if encoder.write_all(&body).is_err() {
                        return Attempt::Failed {
                            why: "gzip".to_owned(),
                        };
                    }
                    encoder.finish().unwrap_or_default()
                } else {
                    body
                };
                match builder.body(body).send().await {
                    Ok(response) => http_answer(response, *json).await,
                    Err(e) => Attempt::Retry {
                        why: if e.is_timeout() {
                            "timeout".to_owned()
                        } else {
                            "connection".to_owned()
                        },
                        after: None,
                    },
                }
            }
        }
    }
}

fn rejected_of(answer: &ExportTraceServiceResponse) -> u64 {
    answer
        .partial_success
        .as_ref()
        .map_or(0, |p| u64::try_from(p.rejected_spans).unwrap_or(0))
}

fn grpc_failure(status: &tonic::Status) -> Attempt {
    use tonic::Code;
    use tonic_types::StatusExt as _;
    let after = status.get_details_retry_info().and_then(|r| r.retry_delay);
    let why = match after {
        Some(_) => format!("grpc {:?} (RetryInfo)", status.code()),
        None => format!("grpc {:?}", status.code()),
    };
    // The OTLP specification's retryable codes.
    let retryable = matches!(
        status.code(),
        Code::Unavailable
            | Code::ResourceExhausted
            | Code::Cancelled
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::OutOfRange
            | Code::DataLoss
    );
    // RESOURCE_EXHAUSTED is retryable only with RetryInfo (OTLP).
    if retryable && (status.code() != Code::ResourceExhausted || after.is_some()) {
        Attempt::Retry { why, after }
    } else {
        Attempt::Failed { why }
    }
}

async fn http_answer(response: reqwest::Response, json: bool) -> Attempt {
    let status = response.status();
    if status.is_success() {
        let Ok(body) = response.bytes().await else {
            return Attempt::Retry {
                why: "connection".to_owned(),
                after: None,
            };
        };
        let answer = if json {
            serde_json::from_slice::<ExportTraceServiceResponse>(&body).ok()
        } else {
            ExportTraceServiceResponse::decode(body.as_ref()).ok()
        };
        return Attempt::Done {
            rejected: answer.as_ref().map_or(0, rejected_of),
        };
    }
    let why = format!("http {}", status.as_u16());
    if matches!(status.as_u16(), 429 | 502 | 503 | 504) {
        let after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let why = if after.is_some() {
            format!("{why} (Retry-After)")
        } else {
            why
        };
        Attempt::Retry { why, after }
    } else {
        Attempt::Failed { why }
    }
}

/// Sends one request until it succeeds, fails for good, or its deadline passes.
async fn export(
    client: &mut Client,
    plan: &Plan,
    request: &ExportTraceServiceRequest,
    spans: u64,
    tally: &Tally,
) {
    let started = Instant::now();
    let deadline = started + plan.request_deadline;
    let mut backoff = Duration::from_millis(100);
    let outcome = loop {
        match client.send(request).await {
            Attempt::Done { rejected } => break Ok(rejected),
            Attempt::Failed { why } => break Err(why),
            Attempt::Retry { why, after } => {
                let wait = after.unwrap_or(backoff);
                if !plan.retry || Instant::now() + wait > deadline {
                    break Err(why);
                }
                Tally::count(&tally.retries, why);
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    };
    let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let _ = tally
        .latency
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .record(us.clamp(1, 600_000_000));
    tally.requests.fetch_add(1, Relaxed);
    tally.spans_sent.fetch_add(spans, Relaxed);
    match outcome {
        Ok(rejected) => {
            let rejected = rejected.min(spans);
            tally.spans_rejected.fetch_add(rejected, Relaxed);
            tally.spans_accepted.fetch_add(spans - rejected, Relaxed);
        }
        Err(why) => {
            tally.spans_failed.fetch_add(spans, Relaxed);
            Tally::count(&tally.failures, why);
        }
    }
}

/// One connection: requests back to back, paced to its share of the rate.
async fn connection(
    index: usize,
    plan: Arc<Plan>,
    tally: Arc<Tally>,
    end: Instant,
) -> anyhow::Result<()> {
    let mut client = Client::connect(&plan).await?;
    #[allow(clippy::cast_precision_loss)]
    let gap = plan.rate.map(|rate| {
        Duration::from_secs_f64(plan.batch as f64 * plan.connections as f64 / rate.max(1e-9))
    });
    // Spread the connections' first requests over one gap.
    #[allow(clippy::cast_precision_loss)]
    let mut next = Instant::now()
        + gap.map_or(Duration::ZERO, |g| {
            g.mul_f64(index as f64 / plan.connections as f64)
        });
    let mut service = u32::try_from(index).unwrap_or(0);
    while next < end {
        tokio::time::sleep_until(next).await;
        let (request, spans) = generate::request(
            &plan.shape,
            service % plan.shape.services.max(1),
            plan.batch,
        );
        service = service.wrapping_add(1);
        export(&mut client, &plan, &request, spans as u64, &tally).await;
        next = match gap {
            // Fixed rate: keep the schedule, but never send a burst to catch up.
            Some(g) => (next + g).max(Instant::now()),
            None => Instant::now(),
        };
    }
    Ok(())
}

/// Sends `plan`, printing progress to stderr, and returns the report.
pub async fn run(plan: Plan, progress: bool) -> anyhow::Result<Report> {
    if plan.batch == 0 || plan.connections == 0 {
        bail!("--batch and --connections must be at least 1");
    }
    if plan.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        bail!("--rate must be a positive number of spans per second (or 0 for saturation)");
    }
    let plan = Arc::new(plan);
    let tally = Arc::new(Tally::new()?);
    let started = Instant::now();
    let end = started + plan.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..plan.connections {
        tasks.spawn(connection(i, Arc::clone(&plan), Arc::clone(&tally), end));
    }
    let tty = std::io::stderr().is_terminal();
    let every = if tty {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(5)
    };
    let mut ticker = tokio::time::interval_at(started + every, every);
    let mut first_error = None;
    while !tasks.is_empty() {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(Ok(Err(e))) => { first_error.get_or_insert(e); }
                Some(Err(e)) => { first_error.get_or_insert(e.into()); }
                _ => {}
            },
            _ = ticker.tick(), if progress => {
                let line = progress_line(&tally.report(started.elapsed()), started.elapsed(), plan.duration);
                let mut err = std::io::stderr().lock();
                let _ = if tty { write!(err, "\r\x1b[2K{line}") } else { writeln!(err, "{line}") };
            }
        }
    }
    if progress && tty {
        let _ = writeln!(std::io::stderr());
    }
    let report = tally.report(
        started
            .elapsed()
            .min(plan.duration.max(Duration::from_millis(1))),
    );
    match first_error {
        Some(e) if report.requests == 0 => Err(e),
        _ => Ok(report),
    }
}

fn progress_line(report: &Report, elapsed: Duration, total: Duration) -> String {
    const WIDTH: usize = 24;
    let done = (elapsed.as_secs_f64() / total.as_secs_f64().max(1e-9)).min(1.0);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let filled = (done * WIDTH as f64) as usize;
    format!(
        "[{}{}] {:>4}s/{}s  accepted {} spans ({:.0}/s)  rejected {}  failed {}  retries {}  p99 {:.1} ms",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled),
        elapsed.as_secs(),
        total.as_secs(),
        report.spans_accepted,
        report.accepted_per_s,
        report.spans_rejected,
        report.spans_failed,
        report.retries.values().sum::<u64>(),
        report.latency_ms.p99
    )
}

/// The report for people.
pub fn render(report: &Report) -> String {
    let map = |m: &BTreeMap<String, u64>| {
        if m.is_empty() {
            "none".to_owned()
        } else {
            m.iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    format!(
        "sent      {} spans in {} requests over {:.1} s\naccepted  {} spans ({:.0} spans/s)\nrejected  {} spans (partial success)\nfailed    {} spans ({})\nretries   {}\nlatency   p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms\n",
        report.spans_sent,
        report.requests,
        report.elapsed_s,
        report.spans_accepted,
        report.accepted_per_s,
        report.spans_rejected,
        report.spans_failed,
        map(&report.failures),
        map(&report.retries),
        report.latency_ms.p50,
        report.latency_ms.p90,
        report.latency_ms.p99,
        report.latency_ms.max,
    )
}
