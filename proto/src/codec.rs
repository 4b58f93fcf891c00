//! The gRPC codec of Headlight's services.

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstEncoder};

/// Encodes like tonic's `ProstCodec`, but answers a request that is not valid protobuf with
/// `INVALID_ARGUMENT` and the decoder's reason, as OTLP asks (tonic's stock codec says `INTERNAL`,
/// which clients treat as a server fault and retry).
#[derive(Debug, Clone)]
pub struct StrictProstCodec<T, U> {
    _messages: PhantomData<(T, U)>,
}

impl<T, U> Default for StrictProstCodec<T, U> {
    fn default() -> Self {
        Self {
            _messages: PhantomData,
        }
    }
}

impl<T, U> Codec for StrictProstCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = StrictProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        StrictProstDecoder {
            _message: PhantomData,
        }
    }
}

/// Decodes one protobuf message; a decode error becomes `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct StrictProstDecoder<U> {
    _message: PhantomData<U>,
}

impl<U: Message + Default> Decoder for StrictProstDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf)
            .map(Some)
            .map_err(|e| Status::invalid_argument(format!("malformed protobuf: {e}")))
    }
}

/// Encodes responses like tonic's `ProstCodec` and hands over each request's bytes undecoded
/// (without a copy), for a server that reads the message in place.
#[derive(Debug, Clone)]
pub struct RawRequestCodec<T> {
    _response: PhantomData<T>,
}

impl<T> Default for RawRequestCodec<T> {
    fn default() -> Self {
        Self {
            _response: PhantomData,
        }
    }
}

impl<T: Message + Send + 'static> Codec for RawRequestCodec<T> {
    type Encode = T;
    type Decode = bytes::Bytes;
    type Encoder = ProstEncoder<T>;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, ()>::raw_encoder(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

/// Takes one message's bytes as they are.
#[derive(Debug, Clone, Copy)]
pub struct RawDecoder;

impl Decoder for RawDecoder {
    type Item = bytes::Bytes;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<bytes::Bytes>, Status> {
        use bytes::Buf as _;
        Ok(Some(buf.copy_to_bytes(buf.remaining())))
    }
}
