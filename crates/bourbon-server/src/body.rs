//! Response bodies at the seam between a handler and the connection driver.
//!
//! This module owns the body contract every interface writes to: a body is a stream of
//! [`Chunk`]s, each either bytes or a [`FileRegion`] — a region of an open file that the
//! driver sends itself (sendfile(2), or a copy where that does not pay), so file bytes never
//! pass through the handler's memory. A file region is a value of its own, not bytes that
//! stand for it, so every transport and every counter sees what it is.
//!
//! Framing is not the body's business: the driver frames by the declared `Content-Length`
//! (enforcing it: longer bodies are cut, shorter ones close the connection), else by the
//! body's exact length when it knows one, else chunked (RFC 9112 §6).

use std::fs::File;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;

/// A region of an open file, sent by the driver.
#[derive(Clone, Debug)]
pub struct FileRegion {
    /// The file, shared with whoever else holds it (a cache, a spool).
    pub file: Arc<File>,
    /// Where the region starts.
    pub offset: u64,
    /// How many bytes it spans.
    pub len: u64,
    /// The region's disk space is given back (hole-punched) as soon as it has been sent, as a
    /// response's temporary file does: its bytes must then be copied into the socket, not
    /// lent to it with sendfile(2), which queues references to the page-cache pages — and
    /// punching a hole zeroes a partly covered page in place, under the socket.
    pub transient: bool,
}

/// One piece of a response body.
#[derive(Debug)]
pub enum Chunk {
    /// Bytes to send as they are.
    Data(Bytes),
    /// A file region to send from the file.
    File(FileRegion),
    /// Trailer fields, ending the body (RFC 9112 §7.1.2): sent after the last chunk of a
    /// chunked body; a body framed by its length has nowhere to put them, and they are
    /// dropped.
    Trailers(crate::request::HeaderBlock),
}

impl Chunk {
    /// The number of body bytes this chunk carries.
    pub fn len(&self) -> u64 {
        match self {
            Chunk::Data(b) => b.len() as u64,
            Chunk::File(r) => r.len,
            Chunk::Trailers(_) => 0,
        }
    }

    /// True when it carries no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a body ended early. The driver closes the connection, so the client sees the response
/// cut off rather than a silently wrong one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyAbort(pub &'static str);

impl std::fmt::Display for BodyAbort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for BodyAbort {}

/// A response body as the driver pulls it.
pub trait Body {
    /// The next chunk; `None` at the end, an error to abort the response.
    fn poll_chunk(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Chunk, BodyAbort>>>;

    /// True when `poll_chunk` would return `None`: lets the driver write the last chunk and
    /// the end of the message together.
    fn is_end_stream(&self) -> bool {
        false
    }

    /// The body's whole length, when known before it is sent (used for `Content-Length`
    /// when the handler declared none).
    fn exact_len(&self) -> Option<u64> {
        None
    }
}

/// A body held in memory whole (or none).
#[derive(Debug, Default)]
pub struct Full(Option<Bytes>);

impl Full {
    /// A body of these bytes.
    pub fn new(bytes: Bytes) -> Self {
        Full(Some(bytes))
    }

    /// No body.
    pub fn empty() -> Self {
        Full(None)
    }
}

impl Body for Full {
    fn poll_chunk(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Chunk, BodyAbort>>> {
        Poll::Ready(self.0.take().map(|b| Ok(Chunk::Data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.as_ref().is_none_or(Bytes::is_empty)
    }

    fn exact_len(&self) -> Option<u64> {
        Some(self.0.as_ref().map_or(0, |b| b.len() as u64))
    }
}

/// A body of one file region.
#[derive(Debug)]
pub struct FileBody(Option<FileRegion>);

impl FileBody {
    /// A body that is this region.
    pub fn new(region: FileRegion) -> Self {
        FileBody(Some(region))
    }
}

impl Body for FileBody {
    fn poll_chunk(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Chunk, BodyAbort>>> {
        Poll::Ready(self.0.take().map(|r| Ok(Chunk::File(r))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.as_ref().is_none_or(|r| r.len == 0)
    }

    fn exact_len(&self) -> Option<u64> {
        Some(self.0.as_ref().map_or(0, |r| r.len))
    }
}

/// One of two body types: a layer's own, or the one of the handler it wraps.
#[derive(Debug)]
pub enum Either<A, B> {
    /// The first kind.
    Left(A),
    /// The second kind.
    Right(B),
}

impl<A: Body + Unpin, B: Body + Unpin> Body for Either<A, B> {
    fn poll_chunk(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Chunk, BodyAbort>>> {
        match self.get_mut() {
            Either::Left(a) => Pin::new(a).poll_chunk(cx),
            Either::Right(b) => Pin::new(b).poll_chunk(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Either::Left(a) => a.is_end_stream(),
            Either::Right(b) => b.is_end_stream(),
        }
    }

    fn exact_len(&self) -> Option<u64> {
        match self {
            Either::Left(a) => a.exact_len(),
            Either::Right(b) => b.exact_len(),
        }
    }
}
