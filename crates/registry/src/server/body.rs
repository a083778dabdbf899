//! Response bodies: small fixed buffers, or a blob streamed from storage and hashed on the way
//! out (a blob that changes under the reader ends the response with an error instead of
//! completing, so a client never receives a full, wrong blob).

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame, SizeHint};
use palisade_image::digest::{Digest, Hasher};
use tokio::io::{AsyncRead, ReadBuf};

const CHUNK: usize = 256 * 1024;

/// A response body.
pub enum Body {
    /// Bytes known up front (possibly empty).
    Full(Option<Bytes>),
    /// A blob (or part of one) read from storage.
    Stream(Box<BlobStream>),
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Full(b) => write!(f, "Full({:?} bytes)", b.as_ref().map(Bytes::len)),
            Self::Stream(s) => write!(f, "Stream({} bytes left)", s.remaining),
        }
    }
}

impl Body {
    /// An empty body.
    pub fn empty() -> Self {
        Self::Full(None)
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Self {
        Self::Full(Some(Bytes::from(v)))
    }
}

impl From<Bytes> for Body {
    fn from(v: Bytes) -> Self {
        Self::Full(Some(v))
    }
}

/// A blob read: `remaining` bytes from `reader`; when `verify` is set (a whole-blob read) the
/// bytes are hashed and must match at the end.
pub struct BlobStream {
    reader: Pin<Box<dyn AsyncRead + Send>>,
    remaining: u64,
    verify: Option<(Hasher, Digest)>,
    buf: BytesMut,
}

impl std::fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStream")
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

impl BlobStream {
    /// Streams `len` bytes of `reader`, checking them against `verify` when given.
    pub fn new(reader: impl AsyncRead + Send + 'static, len: u64, verify: Option<Digest>) -> Self {
        Self {
            reader: Box::pin(reader),
            remaining: len,
            verify: verify.map(|d| (Hasher::new(d.algorithm()), d)),
            buf: BytesMut::new(),
        }
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(
                b.take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            Body::Stream(s) => {
                if s.remaining == 0 {
                    return Poll::Ready(None);
                }
                let want = s.remaining.min(CHUNK as u64) as usize;
                if s.buf.capacity() < want {
                    s.buf.reserve(CHUNK);
                }
                s.buf.resize(want, 0);
                let mut rb = ReadBuf::new(&mut s.buf[..want]);
                ready!(s.reader.as_mut().poll_read(cx, &mut rb))?;
                let n = rb.filled().len();
                if n == 0 {
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "blob shorter than its recorded size",
                    ))));
                }
                let chunk = s.buf.split_to(n).freeze();
                s.buf.clear();
                s.remaining -= n as u64;
                if let Some((h, _)) = s.verify.as_mut() {
                    h.update(&chunk);
                }
                if s.remaining == 0 {
                    if let Some((h, want)) = s.verify.take() {
                        let got = h.finish();
                        if got != want {
                            tracing::error!(blob = %want, actual = %got, "blob changed while being served; response aborted");
                            return Poll::Ready(Some(Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                "blob does not match its digest",
                            ))));
                        }
                    }
                }
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(b) => b.as_ref().is_none_or(Bytes::is_empty),
            Body::Stream(s) => s.remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Stream(s) => SizeHint::with_exact(s.remaining),
        }
    }
}
