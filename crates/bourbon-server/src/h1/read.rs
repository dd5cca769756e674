//! Reading request heads, and the connection's header and keep-alive deadlines.

use std::future::{poll_fn, Future};
use std::io::{self};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Conn, HeadRead, Reader, StopWait, READ_CHUNK, STOP_IDLE_GRACE};
use crate::io::Socket;
use crate::request::RequestHead;
use crate::serve::stop_signalled;

impl<S: Socket> Conn<S> {
    /// Read from the socket into the buffer.
    pub(super) fn poll_fill(
        &self,
        rd: &mut Reader,
        cx: &mut Context<'_>,
        chunk: usize,
    ) -> Poll<io::Result<usize>> {
        if rd.buf.capacity() - rd.buf.len() < chunk / 4 {
            rd.buf.reserve(chunk);
        }
        loop {
            match self.stream.poll_read_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
            let room = rd.buf.capacity() - rd.buf.len();
            match self.stream.try_read_buf(&mut rd.buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Ok(n) if n > 0 && n < room => {
                    crate::metrics::bytes_in(n);
                    // A short read emptied the socket. Without this the next read would be a
                    // wasted recv(2) returning EAGAIN before waiting (one per request on a
                    // keep-alive connection). Safe on this single-threaded runtime: bytes
                    // arriving from now on raise a new readiness event, which the reactor
                    // records after this.
                    self.stream.clear_read_ready();
                    return Poll::Ready(Ok(n));
                }
                res => {
                    if let Ok(n) = res {
                        crate::metrics::bytes_in(n);
                    }
                    return Poll::Ready(res);
                }
            }
        }
    }

    /// Wait for the next request head. The first must arrive within the header timeout of
    /// accept; later ones within the keep-alive timeout of the last response (idle), then
    /// within the header timeout of their first byte.
    ///
    /// A head usually arrives whole in one read: the header deadline is only worked out (from
    /// the clock) when a part of one has to be waited for.
    pub(super) async fn read_head(
        &self,
        first: bool,
        accepted: Instant,
        idle_from: Instant,
        stop: &watch::Receiver<bool>,
        stop_wait: &mut StopWait,
    ) -> HeadRead {
        let t = self.timeouts;
        let mut in_head = first || !self.rd.borrow().buf.is_empty();
        let mut stopping = false;
        // None: the header timeout, counted from when the wait starts.
        let mut deadline = if first {
            Some(accepted + t.header)
        } else if in_head {
            None
        } else {
            Some(idle_from + t.keep_alive)
        };
        loop {
            {
                let rd = &mut *self.rd.borrow_mut();
                if rd.guard.is_closed() {
                    return HeadRead::Close;
                }
                if rd.unscanned && !rd.buf.is_empty() {
                    rd.unscanned = false;
                    match rd.guard.scan(&rd.buf) {
                        Ok(0) => {}
                        Ok(n) => {
                            let Some(info) = rd.guard.take_head() else {
                                return HeadRead::Close;
                            };
                            let bytes = Bytes::copy_from_slice(&rd.buf[..n]);
                            rd.buf.advance(n);
                            rd.unscanned = true;
                            return HeadRead::Head(RequestHead::new(bytes, info));
                        }
                        Err(reject) => return HeadRead::Reject(reject),
                    }
                }
                if rd.eof {
                    return HeadRead::Close;
                }
            }
            if !in_head && !stopping && stop_signalled(stop) {
                // Stopping, between requests. A request the client has already sent, or
                // sends within a short grace, is served (with `Connection: close`) rather
                // than dropped: closing on bytes in flight would cut off a client that did
                // nothing wrong.
                stopping = true;
                let now = Instant::now();
                if self.peer_sent_bytes() {
                    in_head = true;
                    deadline = Some(now + t.header);
                } else {
                    let grace = now + STOP_IDLE_GRACE;
                    deadline = Some(deadline.map_or(grace, |d| d.min(grace)));
                }
            }
            let until = *deadline.get_or_insert_with(|| Instant::now() + t.header);
            let fill = poll_fn(|cx| {
                if self.held_needs_task(cx) {
                    return Poll::Ready(None);
                }
                let rd = &mut *self.rd.borrow_mut();
                self.poll_fill(rd, cx, READ_CHUNK).map(Some)
            });
            let got = tokio::select! {
                biased;
                res = fill => match res {
                    Some(res) => Some(res),
                    None => {
                        // The previous response's flush left work (the client's socket
                        // was full) or failed.
                        if self.settle_held(&mut Vec::new()).await.is_err() {
                            return HeadRead::Close;
                        }
                        continue;
                    }
                },
                changed = poll_fn(|cx| stop_wait.poll(cx)), if !in_head && !stopping => {
                    if !changed {
                        return HeadRead::Close;
                    }
                    continue;
                }
                () = poll_fn(|cx| self.poll_deadline(until, cx)) => None,
            };
            let rd = &mut *self.rd.borrow_mut();
            match got {
                None | Some(Err(_)) => return HeadRead::Close,
                Some(Ok(0)) => rd.eof = true,
                Some(Ok(_)) => {
                    rd.unscanned = true;
                    if !in_head {
                        in_head = true;
                        deadline = None;
                    }
                }
            }
        }
    }

    /// Ready once `deadline` has passed.
    ///
    /// One timer serves the connection's life. Registering a tokio timer takes the driver's
    /// lock and a wheel insert, and dropping it another: per request that was about 700
    /// instructions of some 27,000 for a small response. Deadlines mostly move later (each
    /// request pushes the keep-alive wait out), so the timer stays set for the old one and,
    /// when it fires early, is moved to the current one; it is moved at once only when the
    /// deadline comes earlier than the one it is set for.
    pub(super) fn poll_deadline(&self, deadline: Instant, cx: &mut Context<'_>) -> Poll<()> {
        let mut slot = self.deadline.borrow_mut();
        let (timer, set_for) =
            slot.get_or_insert_with(|| (Box::pin(tokio::time::sleep_until(deadline)), deadline));
        if *set_for > deadline {
            timer.as_mut().reset(deadline);
            *set_for = deadline;
        }
        loop {
            match timer.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) if *set_for >= deadline => return Poll::Ready(()),
                Poll::Ready(()) => {
                    timer.as_mut().reset(deadline);
                    *set_for = deadline;
                }
            }
        }
    }
}

impl<S: Socket> crate::request::PeerSource for Conn<S> {
    /// See [`crate::request::PeerWatch`]: reads ahead into the connection's buffer (what it
    /// reads is the next request's, parsed later), and reports EOF or an error as the client
    /// gone.
    fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        let rd = &mut *self.rd.borrow_mut();
        if rd.eof {
            return Poll::Ready(());
        }
        // While the body is read, its reader notices a client that goes.
        if !rd.body_done {
            return Poll::Pending;
        }
        loop {
            if rd.buf.len() >= READ_CHUNK {
                return Poll::Pending;
            }
            match self.poll_fill(rd, cx, READ_CHUNK) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                    rd.eof = true;
                    return Poll::Ready(());
                }
                Poll::Ready(Ok(_)) => rd.unscanned = true,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
