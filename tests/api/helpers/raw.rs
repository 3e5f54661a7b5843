//! A pass-through codec, for calls with hand-made (or broken) message bytes.

use tonic::transport::Channel;
use tonic::{Request, Status};

/// A codec that sends raw bytes, to hand the server messages no generated
/// client would produce.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

/// The raw codec's encoder/decoder.
#[derive(Debug, Clone, Copy, Default)]
pub struct Raw;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl tonic::codec::Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let len = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, len).to_vec()))
    }
}

/// Sends `body` as the request message of `rpc` (e.g. "Login").
pub async fn raw_call(channel: Channel, rpc: &str, body: Vec<u8>) -> Result<Vec<u8>, Status> {
    raw_call_with(channel, rpc, body, None).await
}

/// [`raw_call`] with an `authorization` metadata value, if any.
pub async fn raw_call_with(
    channel: Channel,
    rpc: &str,
    body: Vec<u8>,
    authorization: Option<&str>,
) -> Result<Vec<u8>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let path =
        http::uri::PathAndQuery::try_from(format!("/warden.v1.AuthService/{rpc}")).expect("path");
    let mut request = Request::new(body);
    if let Some(value) = authorization {
        request.metadata_mut().insert(
            "authorization",
            value.parse().expect("a printable ASCII header value"),
        );
    }
    grpc.unary(request, path, RawCodec)
        .await
        .map(tonic::Response::into_inner)
}
