//! The request body as the handler pulls it: `100 Continue` on the first pull (RFC 9110
//! §10.1.1), the payload released by the guard, the body-stall deadline, and draining an
//! unread rest so the connection can carry the next request.

use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::time::Instant;

use super::Conn;
use crate::guard::{Phase, Reject};
use crate::io::Socket;
use crate::request::{BodyError, BodySource, RequestBody, RequestHead};

/// Reads inside a large body use bigger buffers: fewer syscalls per megabyte.
pub(super) const BODY_READ_CHUNK: usize = 64 * 1024;

/// A body the application left unread is drained (so the connection can be kept) only when
/// its rest arrives promptly and is at most this large; otherwise the connection closes.
pub(super) const DRAIN_BYTES: u64 = 64 * 1024;

pub(super) const DRAIN_TIME: Duration = Duration::from_secs(1);

/// The interim answer to `Expect: 100-continue`.
pub(super) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

impl<S: Socket> Conn<S> {
    /// Set up the body of a request whose head was just read.
    pub(super) fn start_request(self: &Rc<Self>, head: &RequestHead) -> RequestBody {
        self.responding.set(false);
        let has_body = head.has_body();
        {
            let rd = &mut *self.rd.borrow_mut();
            rd.body_done = !has_body;
            rd.body_failed = None;
            rd.stall_armed = false;
        }
        if !has_body {
            return RequestBody::empty();
        }
        // HTTP/1.0 clients do not know 100 Continue (RFC 9110 §10.1.1).
        if head.expects_continue() && !head.http10() {
            self.continue_owed.set(CONTINUE.len());
        }
        RequestBody::new(self.clone() as Rc<dyn BodySource>)
    }

    /// Send what is owed of `100 Continue`.
    pub(super) fn poll_continue(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.continue_owed.get() > 0 {
            // A held response to the previous request goes before this interim one.
            match self.poll_settle_held(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
            if self.responding.get() {
                // The final response is already going out: no interim answer any more.
                self.continue_owed.set(0);
                break;
            }
            let owed = self.continue_owed.get();
            let rest = &CONTINUE[CONTINUE.len() - owed..];
            match self.stream.try_write_vectored(&[IoSlice::new(rest)]) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => self.continue_owed.set(owed - n.min(owed)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    match self.stream.poll_write_ready(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// The next piece of the current request's body.
    pub(super) fn poll_body(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BodyError>>> {
        match self.poll_continue(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(_)) => return Poll::Ready(Some(Err(BodyError::Broken))),
            Poll::Pending => return Poll::Pending,
        }
        let rd = &mut *self.rd.borrow_mut();
        loop {
            if let Some(e) = rd.body_failed {
                return Poll::Ready(Some(Err(e)));
            }
            if rd.body_done {
                return Poll::Ready(None);
            }
            if rd.unscanned && !rd.buf.is_empty() {
                rd.unscanned = false;
                rd.data.clear();
                match rd.guard.scan_data(&rd.buf, &mut rd.data) {
                    Ok(0) => {}
                    Ok(n) => {
                        let chunk = payload(&rd.buf[..n], &rd.data);
                        rd.buf.advance(n);
                        rd.unscanned = true;
                        if rd.guard.phase() != Phase::Body {
                            rd.body_done = true;
                        }
                        if !chunk.is_empty() {
                            return Poll::Ready(Some(Ok(chunk)));
                        }
                        continue;
                    }
                    Err(reject) => {
                        self.shared.reject.set(Some(reject));
                        rd.body_failed = Some(BodyError::Rejected(reject.status));
                        continue;
                    }
                }
            }
            if rd.eof {
                // The client closed inside the body: the request is truncated (400).
                let reject = rd.guard.at_eof().err().unwrap_or(Reject::INCOMPLETE_BODY);
                self.shared.reject.set(Some(reject));
                rd.body_failed = Some(BodyError::Rejected(reject.status));
                continue;
            }
            match self.poll_fill(rd, cx, BODY_READ_CHUNK) {
                Poll::Ready(Ok(0)) => rd.eof = true,
                Poll::Ready(Ok(_)) => {
                    rd.unscanned = true;
                    // Progress: the stall deadline starts again.
                    rd.stall_armed = false;
                }
                Poll::Ready(Err(_)) => rd.body_failed = Some(BodyError::Broken),
                Poll::Pending => {
                    let until = Instant::now() + self.timeouts.body_stall;
                    let armed = rd.stall_armed;
                    let sleep = rd
                        .stall
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
                    if !armed {
                        sleep.as_mut().reset(until);
                        rd.stall_armed = true;
                    }
                    if sleep.as_mut().poll(cx).is_ready() {
                        rd.body_failed = Some(BodyError::Broken);
                        continue;
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    /// After the response: read the unread rest of the body, if that is cheap, so the
    /// connection can carry the next request. False when it must close instead.
    pub(super) async fn finish_body(&self) -> bool {
        {
            let rd = self.rd.borrow();
            if rd.body_failed.is_some() {
                return false;
            }
            if rd.body_done {
                return true;
            }
        }
        if self.continue_owed.get() > 0 {
            // The client waits for our go-ahead and has sent no body: the framing of what it
            // sends next is unknowable (RFC 9110 §10.1.1 lets us close).
            return false;
        }
        let drain = async {
            let mut drained: u64 = 0;
            while let Some(chunk) = poll_fn(|cx| self.poll_body(cx)).await {
                match chunk {
                    Ok(bytes) => {
                        drained += bytes.len() as u64;
                        if drained > DRAIN_BYTES {
                            return false;
                        }
                    }
                    Err(_) => return false,
                }
            }
            true
        };
        tokio::time::timeout(DRAIN_TIME, drain)
            .await
            .unwrap_or(false)
    }
}

impl<S: Socket> BodySource for Conn<S> {
    fn poll_chunk(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BodyError>>> {
        self.poll_body(cx)
    }
}

/// The payload among `released` bytes: one range is copied as is, several (chunked) are
/// joined.
fn payload(released: &[u8], ranges: &[(usize, usize)]) -> Bytes {
    match ranges {
        [] => Bytes::new(),
        [(a, b)] => Bytes::copy_from_slice(&released[*a..*b]),
        many => {
            let total = many.iter().map(|(a, b)| b - a).sum();
            let mut out = BytesMut::with_capacity(total);
            for (a, b) in many {
                out.extend_from_slice(&released[*a..*b]);
            }
            out.freeze()
        }
    }
}
