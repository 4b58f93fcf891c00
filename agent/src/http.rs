//! Tower middleware for HTTP servers (axum, hyper, tonic): one transaction span per request.

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use tracing::Instrument as _;
use tracing::Span;
use tracing::instrument::Instrumented;

/// A `tower::Layer` that opens the transaction span of every request.
///
/// The span (INFO, target `headlight_agent::http`) carries `otel.kind = "server"`,
/// `http.request.method`, `http.route` (axum's `MatchedPath`, with the `axum` feature),
/// `url.path`, `user_agent.original`, `client.address` (axum's `ConnectInfo<SocketAddr>`, else
/// the first `X-Forwarded-For` entry) and, once answered, `http.response.status_code`; a 5xx
/// answer or an error from the inner service marks it failed. gRPC requests (tonic) get
/// `rpc.system`, `rpc.service` and `rpc.method` instead of a route. A W3C `traceparent` /
/// `tracestate` in the request continues the caller's trace.
///
/// With axum, add it with `Router::layer` so the matched route is known:
///
/// ```
/// use axum::{Router, routing::get};
/// let app: Router = Router::new()
///     .route("/users/{id}", get(|| async { "ok" }))
///     .layer(headlight_agent::HttpLayer::new());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpLayer {
    _private: (),
}

impl HttpLayer {
    /// Creates the layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> tower::Layer<S> for HttpLayer {
    type Service = HttpService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpService { inner }
    }
}

/// The service [`HttpLayer`] wraps around an HTTP service.
#[derive(Debug, Clone)]
pub struct HttpService<S> {
    inner: S,
}

impl<S, B, R> tower::Service<Request<B>> for HttpService<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
    S::Error: Display,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let span = request_span(&request);
        let inner = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        ResponseFuture {
            inner: inner.instrument(span.clone()),
            span,
        }
    }
}

fn header<'a, B>(request: &'a Request<B>, name: &str) -> Option<&'a str> {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

#[cfg(feature = "axum")]
fn route<B>(request: &Request<B>) -> Option<&str> {
    request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(axum::extract::MatchedPath::as_str)
}

#[cfg(not(feature = "axum"))]
fn route<B>(_request: &Request<B>) -> Option<&str> {
    None
}

#[cfg(feature = "axum")]
fn connect_address<B>(request: &Request<B>) -> Option<String> {
    request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip().to_string())
}

#[cfg(not(feature = "axum"))]
fn connect_address<B>(_request: &Request<B>) -> Option<String> {
    None
}

fn request_span<B>(request: &Request<B>) -> Span {
    let method = request.method().as_str();
    let path = request.uri().path();
    let grpc = header(request, "content-type").is_some_and(|c| c.starts_with("application/grpc"));
    let (rpc_service, rpc_method) = if grpc {
        path.trim_start_matches('/')
            .split_once('/')
            .map_or((None, None), |(s, m)| (Some(s), Some(m)))
    } else {
        (None, None)
    };
    let route = if grpc { None } else { route(request) };
    let name = match (route, rpc_service, rpc_method) {
        (Some(route), _, _) => format!("{method} {route}"),
        (None, Some(service), Some(rpc)) => format!("{service}/{rpc}"),
        _ => method.to_owned(),
    };
    let client = connect_address(request).or_else(|| {
        header(request, "x-forwarded-for")
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_owned())
    });
    tracing::info_span!(
        target: "headlight_agent::http",
        "HTTP request",
        otel.name = name,
        otel.kind = "server",
        http.request.method = method,
        http.route = route,
        url.path = path,
        user_agent.original = header(request, "user-agent"),
        client.address = client,
        rpc.system = grpc.then_some("grpc"),
        rpc.service = rpc_service,
        rpc.method = rpc_method,
        traceparent = header(request, "traceparent"),
        tracestate = header(request, "tracestate"),
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        error = tracing::field::Empty,
    )
}

pin_project_lite::pin_project! {
    /// The response future of [`HttpService`]: records the status code when the answer is
    /// ready.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Instrumented<F>,
        span: Span,
    }
}

impl<F, R, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<R>, E>>,
    E: Display,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = match this.inner.poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(result) => result,
        };
        match &result {
            Ok(response) => {
                let status = response.status().as_u16();
                this.span.record("http.response.status_code", status);
                if status >= 500 {
                    this.span.record("otel.status_code", "ERROR");
                }
            }
            Err(error) => {
                this.span.record("otel.status_code", "ERROR");
                this.span.record("error", tracing::field::display(error));
            }
        }
        Poll::Ready(result)
    }
}
