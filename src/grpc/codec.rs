//! The protobuf codec, with decode errors answered as INVALID_ARGUMENT
//! without decoder text (tonic-prost answers INTERNAL with it).

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// `tonic_prost::ProstCodec` with Warden's decode errors.
#[derive(Debug, Clone, Copy)]
pub struct WardenCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for WardenCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for WardenCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = WardenDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::default().encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        WardenDecoder(ProstCodec::<T, U>::default().decoder())
    }
}

/// Decodes with prost; a message that does not decode is the client's fault.
#[derive(Debug)]
pub struct WardenDecoder<U>(ProstDecoder<U>);

impl<U: Message + Default> Decoder for WardenDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|_| {
            super::status::invalid_request("request", "request is malformed or too large")
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
