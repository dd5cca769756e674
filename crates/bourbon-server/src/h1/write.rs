//! Writing a response: the framing it needs (RFC 9112 §6), the declared Content-Length
//! enforced, chunks gathered into one writev, file regions sent with sendfile(2), and the
//! write deadline.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;

use bytes::Bytes;

use super::encode::{encode_status, hex_len, push_chunk_size, push_date};
use super::{Conn, Framing, ReqFacts};
use crate::body::{Body, Chunk, FileRegion};
use crate::io::Socket;
use crate::request::Response;

/// At most this many further chunks, or about this many bytes, go out in one writev.
const MAX_GATHER: usize = 32;

const MAX_GATHER_BYTES: usize = 256 * 1024;

impl<S: Socket> Conn<S> {
    /// Write a response. `Ok(true)` when the connection may carry another request.
    pub(super) async fn write_response<B>(
        &self,
        me: &Rc<Self>,
        resp: Response<B>,
        req: ReqFacts,
        close_wanted: bool,
        wbuf: &mut Vec<u8>,
        now: std::time::Instant,
    ) -> io::Result<bool>
    where
        B: Body,
    {
        let Response {
            status,
            reason,
            headers,
            close,
            body,
            ..
        } = resp;
        let mut body = pin!(body);
        // The client waits for `100 Continue` that never came (the handler did not read the
        // body): what it sends next is unknowable, so the connection ends with this response
        // and says so (RFC 9110 §10.1.1).
        let mut close = close || close_wanted || self.continue_owed.get() > 0;
        let no_content = status == 204 || status == 304 || status < 200;
        let declared = headers.content_length();
        let exact = body.exact_len();
        let mut add_length = None;
        let framing = if req.is_head || no_content {
            // A HEAD response may tell the length a GET would have had (RFC 9110 §9.3.2).
            if req.is_head && !no_content && declared.is_none() {
                add_length = exact;
            }
            Framing::None
        } else if let Some(n) = declared {
            Framing::Length(n)
        } else if let Some(n) = exact {
            add_length = Some(n);
            Framing::Length(n)
        } else if !req.http10 {
            Framing::Chunked
        } else {
            // RFC 9112 §6.3: without a length, an HTTP/1.0 body ends when the connection does.
            close = true;
            Framing::Eof
        };
        if req.http10 && !req.http10_keep_alive {
            close = true;
        }

        // A response still held from the previous request (pipelining) goes first.
        self.settle_held(wbuf).await?;
        self.responding.set(true);
        wbuf.clear();
        encode_status(wbuf, status, reason.as_deref());
        wbuf.extend_from_slice(headers.as_bytes());
        if let Some(n) = add_length {
            wbuf.extend_from_slice(b"content-length: ");
            wbuf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            wbuf.extend_from_slice(b"\r\n");
        }
        if framing == Framing::Chunked {
            wbuf.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        if close {
            wbuf.extend_from_slice(b"connection: close\r\n");
        } else if req.http10 {
            wbuf.extend_from_slice(b"connection: keep-alive\r\n");
        }
        if !headers.has_server() {
            wbuf.extend_from_slice(b"Server: bourbon\r\n");
        }
        if !headers.has_date() {
            wbuf.extend_from_slice(b"date: ");
            push_date(wbuf, now);
            wbuf.extend_from_slice(b"\r\n");
        }
        wbuf.extend_from_slice(b"\r\n");
        drop(headers);

        if framing == Framing::None {
            // The body is never polled: HEAD and 204/304 responses have none on the wire.
            if close {
                self.write_all(&mut [IoSlice::new(wbuf)]).await?;
            } else {
                self.write_last(me, wbuf, Bytes::new()).await?;
            }
            return Ok(!close);
        }
        let chunked = framing == Framing::Chunked;
        // What the declared Content-Length still allows: a longer body is cut (PEP 3333 lets
        // the server truncate, and the framing stays right), a shorter one closes the
        // connection (RFC 9112 §6.3: the client would wait for bytes that never come).
        let mut owed = match framing {
            Framing::Length(n) => Some(n),
            _ => None,
        };
        // A chunk polled while gathering that could not join the batch (a file region, the
        // end, an error): it is handled first in the next round.
        let mut next = None;
        // Trailer fields that ended the body (sent only when chunked, RFC 9112 §7.1.2).
        let mut trailers = None;
        loop {
            let polled = match next.take() {
                Some(polled) => polled,
                None => poll_fn(|cx| body.as_mut().poll_chunk(cx)).await,
            };
            let chunk = match polled {
                None => break,
                Some(Ok(Chunk::Trailers(t))) => {
                    trailers = Some(t);
                    break;
                }
                Some(Err(_)) => {
                    // The body failed (app error mid-response): send what we have and close,
                    // so the client sees the response cut off.
                    let _ = self.write_all(&mut [IoSlice::new(wbuf)]).await;
                    return Ok(false);
                }
                Some(Ok(chunk)) => match limit(chunk, &mut owed) {
                    Some(chunk) => chunk,
                    None if owed == Some(0) => break,
                    None => continue,
                },
            };
            let data = match chunk {
                // Taken before `limit` above (it never yields an empty chunk).
                Chunk::Trailers(_) => continue,
                Chunk::File(region) => {
                    if chunked {
                        push_chunk_size(wbuf, usize::try_from(region.len).unwrap_or(usize::MAX));
                    }
                    // Corked (nginx's tcp_nopush), the head and the file's first bytes leave in
                    // full segments rather than the head alone in a small one, and the client
                    // is woken for whole segments; uncorking pushes out the last partial one.
                    let cork = self.tcp && !region.transient && region.len >= CORK_MIN;
                    if cork {
                        self.set_cork(true);
                    }
                    let sent = async {
                        self.write_all(&mut [IoSlice::new(wbuf)]).await?;
                        self.send_region(&region).await
                    }
                    .await;
                    if cork {
                        self.set_cork(false);
                    }
                    sent?;
                    wbuf.clear();
                    self.add_sent(region.len);
                    if chunked {
                        wbuf.extend_from_slice(b"\r\n");
                    }
                    continue;
                }
                Chunk::Data(data) => data,
            };
            self.add_sent(data.len() as u64);
            if chunked {
                push_chunk_size(wbuf, data.len());
            }
            let mut end = owed == Some(0) || body.is_end_stream();
            // Chunks the application has already produced go out together, in one writev:
            // PEP 3333 forbids holding a block back, not sending the ready ones at once.
            let mut more: Vec<Bytes> = Vec::new();
            let mut seps: Vec<u8> = Vec::new();
            let mut gathered = data.len();
            while !end && more.len() < MAX_GATHER && gathered < MAX_GATHER_BYTES {
                let polled = poll_fn(|cx| Poll::Ready(body.as_mut().poll_chunk(cx))).await;
                let polled = match polled {
                    Poll::Pending => break,
                    Poll::Ready(polled) => polled,
                };
                match polled {
                    Some(Ok(t @ Chunk::Trailers(_))) => {
                        next = Some(Some(Ok(t)));
                        break;
                    }
                    Some(Ok(chunk)) => match limit(chunk, &mut owed) {
                        None => end = owed == Some(0) || body.is_end_stream(),
                        Some(chunk @ (Chunk::File(_) | Chunk::Trailers(_))) => {
                            next = Some(Some(Ok(chunk)));
                            break;
                        }
                        Some(Chunk::Data(d)) => {
                            self.add_sent(d.len() as u64);
                            gathered += d.len();
                            if chunked {
                                seps.extend_from_slice(b"\r\n");
                                push_chunk_size(&mut seps, d.len());
                            }
                            more.push(d);
                            end = owed == Some(0) || body.is_end_stream();
                        }
                    },
                    None => end = true,
                    Some(Err(e)) => {
                        next = Some(Some(Err(e)));
                        break;
                    }
                }
            }
            let short = end && length_short(owed);
            let tail: &[u8] = match (chunked, end) {
                (true, true) => b"\r\n0\r\n\r\n",
                (true, false) => b"\r\n",
                (false, _) => b"",
            };
            if more.is_empty() && end && !close && !short && tail.is_empty() {
                // The whole response, and the connection stays: it may wait for company.
                self.write_last(me, wbuf, data).await?;
            } else if more.is_empty() {
                self.write_all(&mut [IoSlice::new(wbuf), IoSlice::new(&data), IoSlice::new(tail)])
                    .await?;
            } else {
                let mut bufs = Vec::with_capacity(3 + 2 * more.len());
                bufs.push(IoSlice::new(wbuf));
                bufs.push(IoSlice::new(&data));
                let mut rest = &seps[..];
                for d in &more {
                    if chunked {
                        // "\r\n" + hex size + "\r\n" before each further chunk.
                        let len = 2 + hex_len(d.len()) + 2;
                        let (sep, after) = rest.split_at(len.min(rest.len()));
                        bufs.push(IoSlice::new(sep));
                        rest = after;
                    }
                    bufs.push(IoSlice::new(d));
                }
                bufs.push(IoSlice::new(tail));
                self.write_all(&mut bufs).await?;
            }
            wbuf.clear();
            if end {
                return Ok(!close && !short && framing != Framing::Eof);
            }
        }
        if chunked {
            wbuf.extend_from_slice(b"0\r\n");
            if let Some(t) = &trailers {
                wbuf.extend_from_slice(t.as_bytes());
            }
            wbuf.extend_from_slice(b"\r\n");
        }
        self.write_all(&mut [IoSlice::new(wbuf)]).await?;
        Ok(!close && !length_short(owed) && framing != Framing::Eof)
    }

    /// Write all of `bufs`, waiting for room at most the write timeout at a time.
    pub(super) async fn write_all(&self, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
        IoSlice::advance_slices(&mut bufs, 0);
        while !bufs.is_empty() {
            match self.stream.try_write_vectored(bufs) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut bufs, n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable().await?,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Wait until the socket takes more bytes; a client that reads nothing for the write
    /// timeout loses the connection (it must not pin a response, and a Python thread, forever).
    pub(super) async fn writable(&self) -> io::Result<()> {
        self.write_waited.set(true);
        let ready = poll_fn(|cx| self.stream.poll_write_ready(cx));
        match tokio::time::timeout(self.timeouts.write, ready).await {
            Ok(res) => res,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client stopped reading (write timeout)",
            )),
        }
    }

    /// Send a file region with sendfile(2): the bytes go from the page cache to the socket
    /// without passing through this process. (An earlier build copied regions through a
    /// buffer for clients on this machine; measured again with static files on loopback, one
    /// worker, c=16, sendfile(2) served 1 MiB files at about 1.7x and 3 MiB files at 1.4x
    /// the copy's rate, level with nginx, which uses it too.) A transient region (a
    /// response's temporary file, whose space is punched out once sent) is copied instead:
    /// sendfile(2) would leave the socket holding pages the punch then zeroes.
    pub(super) async fn send_region(&self, region: &FileRegion) -> io::Result<()> {
        let mut offset = region.offset;
        let mut left = region.len;
        while left > 0 {
            let want = usize::try_from(left).unwrap_or(usize::MAX);
            let sent = if region.transient {
                copy_file_once(&self.stream, &region.file, offset, want)
            } else {
                self.stream
                    .try_sendfile(region.file.as_raw_fd(), offset, want)
            };
            match sent {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shorter than its Content-Length",
                    ))
                }
                Ok(n) => {
                    offset += n as u64;
                    left -= (n as u64).min(left);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable().await?,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// TCP_CORK on or off (TCP only).
    fn set_cork(&self, on: bool) {
        let _ = socket2::SockRef::from(&self.stream).set_tcp_cork(on);
    }

    /// Count body bytes handed to the socket (for the access log).
    pub(super) fn add_sent(&self, n: u64) {
        self.body_sent.set(self.body_sent.get() + n);
    }
}

/// Apply the declared length to a chunk: what goes beyond it is dropped (logged once per
/// response, when the cut happens). `None` when nothing of the chunk is left to send.
fn limit(chunk: Chunk, owed: &mut Option<u64>) -> Option<Chunk> {
    let Some(left) = owed.as_mut() else {
        return (!chunk.is_empty()).then_some(chunk);
    };
    let len = chunk.len();
    let chunk = if len > *left {
        if *left > 0 || len > 0 {
            crate::log::warn(format_args!(
                "response body longer than its Content-Length; extra bytes dropped"
            ));
        }
        match chunk {
            Chunk::Data(mut d) => {
                d.truncate(usize::try_from(*left).unwrap_or(usize::MAX));
                Chunk::Data(d)
            }
            Chunk::File(mut r) => {
                r.len = *left;
                Chunk::File(r)
            }
            // No bytes: never longer than what is left.
            t @ Chunk::Trailers(_) => t,
        }
    } else {
        chunk
    };
    *left -= chunk.len();
    (!chunk.is_empty()).then_some(chunk)
}

/// Whether a body ended short of its declared length; logged, since the connection must then
/// close (RFC 9112 §6.3).
fn length_short(owed: Option<u64>) -> bool {
    match owed {
        Some(n) if n > 0 => {
            crate::log::warn(format_args!(
                "response body shorter than its Content-Length by {n} bytes; closing the connection"
            ));
            true
        }
        _ => false,
    }
}

/// File regions at least this large are sent corked (smaller ones would pay two system calls
/// for nothing: they fit in a segment with their head).
const CORK_MIN: u64 = 64 * 1024;

/// Regions copied rather than lent to the socket go through a buffer of this size (per thread).
const COPY_CHUNK: usize = 256 * 1024;

thread_local! {
    static COPY_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Copy up to `want` bytes of `file` from `offset` to the socket, through a buffer shared by
/// the thread's connections (bytes read but not taken by the socket are read again next time,
/// from the page cache). `WouldBlock` when the socket takes nothing.
fn copy_file_once<S: Socket>(
    stream: &S,
    file: &std::fs::File,
    offset: u64,
    want: usize,
) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    COPY_BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        if buf.is_empty() {
            buf.resize(COPY_CHUNK, 0);
        }
        let want = want.min(COPY_CHUNK);
        let n = file.read_at(&mut buf[..want], offset)?;
        if n == 0 {
            return Ok(0);
        }
        stream.try_write_vectored(&[IoSlice::new(&buf[..n])])
    })
}
