//! The connection after `101 Switching Protocols` (RFC 9110 §15.2.2): handed to the handler
//! as [`Upgraded`], with whatever the client sent after the request that switched.

use std::io::{self, IoSlice};
use std::task::{Context, Poll};

use bytes::BytesMut;

use super::{Conn, READ_CHUNK};
use crate::io::{Socket, Upgraded};

impl<S: Socket> Upgraded for Conn<S> {
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        let rd = &mut *self.rd.borrow_mut();
        if rd.buf.is_empty() && !rd.eof {
            match self.poll_fill(rd, cx, READ_CHUNK) {
                Poll::Ready(Ok(0)) => rd.eof = true,
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = rd.buf.len();
        buf.extend_from_slice(&rd.buf);
        rd.buf.clear();
        Poll::Ready(Ok(n))
    }

    fn poll_write(&self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        loop {
            match self.stream.try_write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    match self.stream.poll_write_ready(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                res => return Poll::Ready(res),
            }
        }
    }

    fn shutdown_write(&self) {
        Conn::shutdown_write(self);
    }
}
