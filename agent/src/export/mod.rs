//! The export thread: its own OS thread and single-threaded tokio runtime, so neither the
//! application's runtime nor its threads ever wait on the network.

mod codec;
mod encode;
mod gzip;
mod otlp;
pub(crate) mod tail;
mod tls;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::SyncSender;
use std::time::Duration;

use headlight_proto::otlp::collector::ExportTraceServiceResponse;
use headlight_proto::otlp::common::KeyValue;
use tokio::time::Instant;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::InitError;
use crate::config::{ExportConfig, TailConfig};
use crate::ids;
use crate::layer::suppress_current_thread;
use crate::queue::{Item, Queue};
use crate::record::SpanRecord;
use crate::stats::DropReason;
use tail::{Decision, TailDecider, Unsent};

pub(crate) use otlp::string as string_attribute;

/// The gRPC client: tonic over the channel, with requests gzipped by the export thread.
type Client = tonic::client::Grpc<gzip::PrecompressedService<Channel>>;

/// Messages from the guard to the export thread.
#[derive(Debug)]
pub(crate) enum Control {
    /// Ships everything queued now, then answers.
    Flush(SyncSender<()>),
    /// Ships what it can before the deadline, counts the rest as dropped, answers and stops.
    Shutdown(std::time::Instant, Option<SyncSender<()>>),
}

/// Starts the export thread.
pub(crate) fn spawn(
    config: ExportConfig,
    tail: TailConfig,
    resource: Vec<KeyValue>,
    queue: Arc<Queue>,
) -> Result<
    (
        tokio::sync::mpsc::Sender<Control>,
        std::thread::JoinHandle<()>,
    ),
    InitError,
> {
    let mut endpoint = Endpoint::from_shared(config.endpoint.clone())
        .map_err(|e| InitError::Endpoint(format!("{}: {e}", config.endpoint)))?
        .connect_timeout(config.timeout.min(Duration::from_secs(5)))
        .tcp_nodelay(true);
    if endpoint.uri().scheme_str() == Some("https") {
        endpoint = endpoint
            .tls_config(tls::client_config(&config.tls)?)
            .map_err(|e| InitError::Endpoint(format!("{}: {e}", config.endpoint)))?;
    }
    let mut headers = MetadataMap::new();
    for (key, value) in &config.headers.0 {
        let key =
            MetadataKey::from_bytes(key.as_bytes()).map_err(|_| InitError::Header(key.clone()))?;
        let value = MetadataValue::try_from(value.as_str())
            .map_err(|_| InitError::Header(key.to_string()))?;
        headers.insert(key, value);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(InitError::Thread)?;
    let (control_tx, control_rx) = tokio::sync::mpsc::channel(8);
    let thread = std::thread::Builder::new()
        .name("headlight-export".to_owned())
        .spawn(move || {
            suppress_current_thread();
            runtime.block_on(async move {
                // Requests are gzipped by `gzip::frame`, at a cheaper level than tonic's.
                let client = tonic::client::Grpc::new(gzip::PrecompressedService::new(
                    endpoint.connect_lazy(),
                ));
                let exporter = Exporter {
                    client: client.accept_compressed(CompressionEncoding::Gzip),
                    config,
                    headers,
                    resource,
                    queue,
                    tail: TailDecider::new(tail),
                    batch: Batch::default(),
                    spare: Vec::new(),
                    converted: Vec::new(),
                    lists: Vec::new(),
                    control: control_rx,
                    stashed: VecDeque::new(),
                    shutdown_deadline: None,
                };
                exporter.run().await;
            });
        })
        .map_err(InitError::Thread)?;
    Ok((control_tx, thread))
}

struct Exporter {
    client: Client,
    config: ExportConfig,
    headers: MetadataMap,
    resource: Vec<KeyValue>,
    queue: Arc<Queue>,
    tail: TailDecider,
    /// Encoded spans waiting to be sent.
    batch: Batch,
    /// The queue's previous buffer, emptied, handed back at the next take so the application
    /// threads push into memory that is already there.
    spare: Vec<Item>,
    /// Records converted by `drain`, on their way back to the pool.
    converted: Vec<crate::pool::BoxedRecord>,
    /// Emptied child lists, on their way back to the pool.
    lists: Vec<crate::pool::ChildList>,
    control: tokio::sync::mpsc::Receiver<Control>,
    /// Control messages that arrived during an export, handled right after it.
    stashed: VecDeque<Control>,
    /// Set once shutdown is asked for: no export or retry runs past it.
    shutdown_deadline: Option<Instant>,
}

impl Exporter {
    async fn run(mut self) {
        loop {
            let message = match self.stashed.pop_front() {
                Some(message) => Some(message),
                None => {
                    let wake = Instant::now() + self.config.batch_timeout;
                    tokio::select! {
                        () = self.queue.notify.notified() => None,
                        () = tokio::time::sleep_until(wake) => None,
                        message = self.control.recv() => Some(message.unwrap_or_else(|| {
                            Control::Shutdown(
                                std::time::Instant::now() + self.config.shutdown_timeout,
                                None,
                            )
                        })),
                    }
                }
            };
            match message {
                None => {
                    self.drain();
                    self.send_all().await;
                }
                Some(Control::Flush(done)) => {
                    self.drain();
                    self.send_all().await;
                    let _ = done.try_send(());
                }
                Some(Control::Shutdown(deadline, done)) => {
                    self.note_deadline(Instant::from_std(deadline));
                    self.queue.close();
                    self.drain();
                    self.send_all().await;
                    for message in self.stashed.drain(..) {
                        match message {
                            Control::Flush(done) | Control::Shutdown(_, Some(done)) => {
                                let _ = done.try_send(());
                            }
                            Control::Shutdown(_, None) => {}
                        }
                    }
                    if let Some(done) = done {
                        let _ = done.try_send(());
                    }
                    return;
                }
            }
        }
    }

    fn note_deadline(&mut self, deadline: Instant) {
        self.shutdown_deadline = Some(self.shutdown_deadline.map_or(deadline, |d| d.min(deadline)));
    }

    /// Awaits `future` while still taking control messages; `None` when the shutdown deadline
    /// passes first.
    async fn wait<F: std::future::Future>(&mut self, future: F) -> Option<F::Output> {
        tokio::pin!(future);
        let mut control_open = true;
        loop {
            let deadline = self
                .shutdown_deadline
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
            tokio::select! {
                output = &mut future => return Some(output),
                () = tokio::time::sleep_until(deadline) => return None,
                message = self.control.recv(), if control_open => match message {
                    Some(message) => {
                        if let Control::Shutdown(deadline, _) = &message {
                            self.note_deadline(Instant::from_std(*deadline));
                        }
                        self.stashed.push_back(message);
                    }
                    None => {
                        control_open = false;
                        let deadline = Instant::now() + self.config.shutdown_timeout;
                        self.note_deadline(deadline);
                        self.stashed.push_back(Control::Shutdown(deadline.into_std(), None));
                    }
                },
            }
        }
    }

    /// Moves queued items into the batch, making the tail decision for each transaction, and
    /// hands the converted records back to the pool.
    fn drain(&mut self) {
        let mut items = self.queue.take(std::mem::take(&mut self.spare));
        let mut converted = std::mem::take(&mut self.converted);
        let mut lists = std::mem::take(&mut self.lists);
        for item in items.drain(..) {
            match item {
                Item::Loose(span) => {
                    self.batch.push(&span, None, false);
                    converted.push(span);
                }
                Item::Transaction { span, mut children } => {
                    match self.tail.decide(&span, &children) {
                        Decision::Keep => {
                            for child in children.drain(..) {
                                self.batch.push(&child, None, false);
                                converted.push(child);
                            }
                            self.batch.push(&span, None, true);
                        }
                        Decision::Summarize {
                            transaction_self_ns,
                            unsent,
                        } => {
                            self.queue
                                .counters
                                .spans_not_kept
                                .fetch_add(children.len() as u64, Relaxed);
                            let summary = (transaction_self_ns, unsent);
                            self.batch.push(&span, Some(&summary), true);
                            converted.append(&mut children);
                        }
                    }
                    converted.push(span);
                    if children.capacity() > 0 {
                        lists.push(children);
                    }
                }
            }
        }
        self.spare = items;
        self.queue.pool.give_back(&mut converted);
        self.queue.pool.give_back_lists(&mut lists);
        self.converted = converted;
        self.lists = lists;
    }

    /// Sends the batch in requests of at most `max_batch_spans`.
    async fn send_all(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        let mut from = 0;
        for chunk in batch.ends.chunks(self.config.max_batch_spans) {
            let Some(&(to, _)) = chunk.last() else {
                continue;
            };
            let transactions = chunk.iter().filter(|(_, t)| *t).count() as u64;
            // Encoded (and compressed) once: a retry re-sends the same bytes (a cheap `Bytes`
            // clone).
            let request =
                otlp::request(&self.resource, &self.queue.stats(), &batch.spans[from..to]);
            let body = if self.config.gzip {
                Body::Gzip(gzip::frame(&request))
            } else {
                Body::Plain(bytes::Bytes::from(request))
            };
            from = to;
            self.send(body, chunk.len() as u64, transactions).await;
        }
        // Keep the buffers' capacity for the next batch.
        self.batch = batch;
        self.batch.clear();
    }

    /// Sends one request, retrying what OTLP says is retryable until `max_retry_elapsed` (or
    /// the shutdown deadline); a partial success is final.
    async fn send(&mut self, body: Body, count: u64, transactions: u64) {
        let counters = Arc::clone(&self.queue.counters);
        let retry_limit = Instant::now() + self.config.max_retry_elapsed;
        let mut attempt = 0u32;
        loop {
            let give_up = self
                .shutdown_deadline
                .map_or(retry_limit, |d| d.min(retry_limit));
            let reason = if self.shutdown_deadline.is_some_and(|d| d < retry_limit) {
                DropReason::Shutdown
            } else {
                DropReason::ExportFailed
            };
            let timeout = self
                .config
                .timeout
                .min(give_up.saturating_duration_since(Instant::now()))
                .max(Duration::from_millis(10));
            let mut call = match &body {
                Body::Plain(bytes) => tonic::Request::new(bytes.clone()),
                Body::Gzip(frame) => {
                    // tonic encodes an empty message; the frame replaces it on the way out.
                    let mut call = tonic::Request::new(bytes::Bytes::new());
                    call.extensions_mut().insert(frame.clone());
                    call
                }
            };
            *call.metadata_mut() = self.headers.clone();
            call.set_timeout(timeout);
            counters.export_requests.fetch_add(1, Relaxed);
            let mut client = self.client.clone();
            let outcome = self
                .wait(tokio::time::timeout(timeout, export(&mut client, call)))
                .await;
            let status = match outcome {
                None => {
                    counters.dropped(DropReason::Shutdown, count, transactions);
                    return;
                }
                Some(Ok(Ok(response))) => {
                    let rejected = response
                        .into_inner()
                        .partial_success
                        .map_or(0, |p| u64::try_from(p.rejected_spans).unwrap_or(0))
                        .min(count);
                    counters.spans_sent.fetch_add(count - rejected, Relaxed);
                    counters.transactions_sent.fetch_add(transactions, Relaxed);
                    if rejected > 0 {
                        counters.dropped(DropReason::Rejected, rejected, 0);
                        tracing::warn!(rejected, "collector rejected spans");
                    }
                    return;
                }
                Some(Ok(Err(status))) => status,
                Some(Err(_)) => Status::deadline_exceeded("export timed out"),
            };
            let Some(delay) = retry_delay(&status, attempt) else {
                counters.dropped(DropReason::ExportFailed, count, transactions);
                tracing::warn!(code = ?status.code(), message = status.message(), spans = count, "export failed, not retryable");
                return;
            };
            if Instant::now() + delay >= give_up {
                counters.dropped(reason, count, transactions);
                tracing::warn!(code = ?status.code(), spans = count, attempts = attempt + 1, "export failed, retries exhausted");
                return;
            }
            counters.export_retries.fetch_add(1, Relaxed);
            attempt += 1;
            if self.wait(tokio::time::sleep(delay)).await.is_none() {
                counters.dropped(DropReason::Shutdown, count, transactions);
                return;
            }
        }
    }
}

/// Spans encoded for export, back to back as `ScopeSpans.spans` entries.
#[derive(Debug, Default)]
struct Batch {
    spans: Vec<u8>,
    /// Where each span's bytes end, and whether it is a transaction.
    ends: Vec<(usize, bool)>,
}

impl Batch {
    fn push(
        &mut self,
        record: &SpanRecord,
        summary: Option<&(u64, Vec<Unsent>)>,
        transaction: bool,
    ) {
        encode::span(&mut self.spans, record, summary);
        self.ends.push((self.spans.len(), transaction));
    }

    fn clear(&mut self) {
        self.spans.clear();
        self.ends.clear();
    }
}

/// An encoded export request, as sent.
#[derive(Debug)]
enum Body {
    /// Protobuf bytes, sent uncompressed.
    Plain(bytes::Bytes),
    /// The gzipped gRPC frame.
    Gzip(gzip::Frame),
}

/// Calls `TraceService/Export` with an already-encoded request.
async fn export(
    client: &mut Client,
    request: tonic::Request<bytes::Bytes>,
) -> Result<tonic::Response<ExportTraceServiceResponse>, Status> {
    client
        .ready()
        .await
        .map_err(|e| Status::unavailable(format!("collector not ready: {e}")))?;
    let path = http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    );
    client
        .unary(request, path, codec::EncodedRequestCodec)
        .await
}

/// How long to wait before retrying, or `None` when the error is final (OTLP/gRPC spec: retry
/// CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS, and
/// RESOURCE_EXHAUSTED only when the server sent `RetryInfo`). The server's `RetryInfo` delay
/// wins (capped at 30 s); otherwise exponential backoff from 100 ms to 5 s with jitter.
fn retry_delay(status: &Status, attempt: u32) -> Option<Duration> {
    let retry_info = status.get_details_retry_info().and_then(|r| r.retry_delay);
    let retryable = match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => true,
        Code::ResourceExhausted => retry_info.is_some(),
        _ => false,
    };
    if !retryable {
        return None;
    }
    if let Some(delay) = retry_info {
        return Some(delay.min(Duration::from_secs(30)));
    }
    let base_ms = 100u64.saturating_mul(1 << attempt.min(6)).min(5_000);
    let jitter = 0.5 + (ids::next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    Some(Duration::from_millis((base_ms as f64 * jitter) as u64))
}

#[cfg(test)]
mod tests {
    use super::retry_delay;
    use std::time::Duration;
    use tonic::{Code, Status};
    use tonic_types::{ErrorDetails, StatusExt};

    #[test]
    fn retry_follows_the_otlp_rules() {
        assert!(retry_delay(&Status::invalid_argument("bad"), 0).is_none());
        assert!(retry_delay(&Status::resource_exhausted("too big"), 0).is_none());
        let delay = retry_delay(&Status::unavailable("down"), 0).unwrap();
        assert!(delay >= Duration::from_millis(50) && delay <= Duration::from_millis(150));
        let later = retry_delay(&Status::unavailable("down"), 10).unwrap();
        assert!(later <= Duration::from_millis(7_500) && later >= Duration::from_millis(2_500));
        let with_info = Status::with_error_details(
            Code::ResourceExhausted,
            "slow down",
            ErrorDetails::with_retry_info(Some(Duration::from_millis(1_234))),
        );
        assert_eq!(
            retry_delay(&with_info, 3),
            Some(Duration::from_millis(1_234))
        );
    }
}
