//! Gzip at a level of the agent's choosing.
//!
//! tonic 0.14 compresses gRPC messages at level 6, fixed (a FIXME in its
//! `codec/compression.rs`), and at that level gzip is most of the export thread's work. The
//! export thread therefore compresses each request itself, once (a retry re-sends the same
//! bytes), into a complete gRPC frame, and [`Precompressed`] puts that frame in place of the
//! body tonic would send, with the `grpc-encoding: gzip` header. Responses, status and
//! `RetryInfo` still go through tonic.

use std::io::Write as _;
use std::task::{Context, Poll};

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use http::HeaderValue;
use http_body_util::Full;
use tonic::body::Body;

/// The gzip level of export requests: 1 of zlib's 0–9. On a request of 512 OTLP spans it spends
/// 72 % fewer instructions than tonic's level 6 for 21 % more bytes (34 % of the raw size
/// against 28.5 %; random ids do not compress): benches/RESULTS.md, "Third round".
pub(crate) const LEVEL: u32 = 1;

/// A request's gRPC frame, already compressed: carried in the request's extensions to
/// [`PrecompressedService`].
#[derive(Debug, Clone)]
pub(crate) struct Frame(pub(crate) Bytes);

/// Compresses an encoded protobuf message into a gRPC length-prefixed frame: the compressed
/// flag (1), the compressed length (4 bytes, big-endian), the gzip bytes.
pub(crate) fn frame(message: &[u8]) -> Frame {
    // OTLP spans compress to about a third (their random ids do not compress); it grows if not.
    let mut out = Vec::with_capacity(5 + message.len() / 3 + 64);
    out.extend_from_slice(&[1, 0, 0, 0, 0]);
    let mut encoder = GzEncoder::new(out, Compression::new(LEVEL));
    // Writing into a Vec cannot fail; should it, the empty frame is refused by the collector
    // and counted as an export failure.
    let mut out = encoder
        .write_all(message)
        .and_then(|()| encoder.finish())
        .unwrap_or_default();
    let len = u32::try_from(out.len().saturating_sub(5)).unwrap_or(u32::MAX);
    if let Some(header) = out.get_mut(1..5) {
        header.copy_from_slice(&len.to_be_bytes());
    }
    Frame(Bytes::from(out))
}

/// Wraps the channel: a request carrying a [`Frame`] is sent with that frame as its body and
/// `grpc-encoding: gzip`; other requests pass unchanged.
#[derive(Debug, Clone)]
pub(crate) struct PrecompressedService<S> {
    inner: S,
}

impl<S> PrecompressedService<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S> tower::Service<http::Request<Body>> for PrecompressedService<S>
where
    S: tower::Service<http::Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        if let Some(Frame(frame)) = request.extensions_mut().remove::<Frame>() {
            *request.body_mut() = Body::new(Full::new(frame));
            request
                .headers_mut()
                .insert("grpc-encoding", HeaderValue::from_static("gzip"));
        }
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    #[test]
    fn frames_decompress_to_the_message() {
        let message: Vec<u8> = (0..10_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let Frame(frame) = frame(&message);
        assert_eq!(frame[0], 1);
        let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
        assert_eq!(len, frame.len() - 5);
        let mut decoded = Vec::new();
        let mut decoder = flate2::read::GzDecoder::new(&frame[5..]).take(1 << 20);
        std::io::copy(&mut decoder, &mut decoded).unwrap();
        assert_eq!(decoded, message);
    }
}
