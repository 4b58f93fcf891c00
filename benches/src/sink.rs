//! An in-process OTLP/gRPC trace sink for the agent benches: it decodes every export request
//! (gzip or not) and discards it, counting what it received.
//!
//! Both exporting pipelines of a bench send to the same sink, so neither is measured in its
//! cheap "the endpoint is down, drop the batch" mode.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::thread::JoinHandle;

use headlight_proto::otlp::collector::trace_service_server::{TraceService, TraceServiceServer};
use headlight_proto::otlp::collector::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

/// What the sink has received since it started.
#[derive(Debug, Default)]
struct Received {
    requests: AtomicU64,
    spans: AtomicU64,
}

/// A `TraceService` that decodes every request and discards it, counting what it received.
#[derive(Debug, Clone, Default)]
pub struct Discard(Arc<Received>);

impl Discard {
    /// The tonic service, accepting gzip, with a 64 MiB request limit.
    pub fn service(&self) -> TraceServiceServer<Self> {
        TraceServiceServer::new(self.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(64 << 20)
    }

    /// Spans received so far.
    pub fn spans(&self) -> u64 {
        self.0.spans.load(Relaxed)
    }
}

#[tonic::async_trait]
impl TraceService for Discard {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let spans: usize = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.0.requests.fetch_add(1, Relaxed);
        self.0.spans.fetch_add(spans as u64, Relaxed);
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

/// A running sink: a tonic `TraceService` on `127.0.0.1:0`, served by a current-thread tokio
/// runtime on its own thread. Dropping it stops the server and joins the thread.
#[derive(Debug)]
pub struct Sink {
    addr: SocketAddr,
    received: Arc<Received>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Sink {
    /// Binds `127.0.0.1:0` and starts serving on a new thread.
    pub fn start() -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let discard = Discard::default();
        let received = Arc::clone(&discard.0);
        let service = discard.service();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("otlp-sink".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let serve = tonic::transport::Server::builder()
                        .add_service(service)
                        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
                    // Not a graceful shutdown: open exporter connections must not hold the
                    // bench's exit; dropping the runtime ends their tasks.
                    tokio::select! {
                        _ = serve => {}
                        _ = stopped => {}
                    }
                });
            })?;
        Ok(Self {
            addr,
            received,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Returns the endpoint to give an OTLP/gRPC exporter, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Returns the spans received since the sink started.
    pub fn spans(&self) -> u64 {
        self.received.spans.load(Relaxed)
    }

    /// Returns the export requests received since the sink started.
    pub fn requests(&self) -> u64 {
        self.received.requests.load(Relaxed)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
