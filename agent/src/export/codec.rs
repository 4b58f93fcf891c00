//! A gRPC codec that sends an already-encoded request, so a retried export re-sends the same
//! bytes instead of cloning and re-encoding the request message.

use bytes::{BufMut as _, Bytes};
use headlight_proto::otlp::collector::ExportTraceServiceResponse;
use tonic::Status;
use tonic::codec::{Codec, EncodeBuf, Encoder};
use tonic_prost::ProstDecoder;

/// Encodes pre-encoded protobuf bytes as they are; decodes the export response with prost.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EncodedRequestCodec;

impl Codec for EncodedRequestCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = BytesEncoder;
    type Decoder = ProstDecoder<ExportTraceServiceResponse>;

    fn encoder(&mut self) -> Self::Encoder {
        BytesEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::default()
    }
}

/// Copies the encoded message into the frame.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BytesEncoder;

impl Encoder for BytesEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}
