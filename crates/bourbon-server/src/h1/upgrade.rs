//! The connection after `101 Switching Protocols` (RFC 9110 §15.2.2): handed to the handler
//! as [`Upgraded`], with whatever the client sent after the request that switched.

use std::io::{self, IoSlice};
use std::task::{Context, Poll};

use bytes::BytesMut;

use super::{Conn, READ_CHUNK};
use crate::io::{Socket, Upgraded};

impl<S: Socket> Upgraded for Conn<S> {
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        {
            let rd = &mut *self.rd.borrow_mut();
            if !rd.buf.is_empty() {
                // What the client sent after the request that switched, once; then the
                // driver's buffer goes, so an idle switched connection keeps no 16 KiB.
                let n = rd.buf.len();
                buf.extend_from_slice(&rd.buf);
                rd.buf = BytesMut::new();
                return Poll::Ready(Ok(n));
            }
            if rd.buf.capacity() > 0 {
                rd.buf = BytesMut::new();
                rd.data = Vec::new();
            }
            if rd.eof {
                return Poll::Ready(Ok(0));
            }
        }
        if buf.capacity() == buf.len() {
            buf.reserve(READ_CHUNK);
        }
        loop {
            match self.stream.poll_read_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
            let room = buf.capacity() - buf.len();
            match self.stream.try_read_buf(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Ok(n) if n > 0 && n < room => {
                    crate::metrics::bytes_in(n);
                    // A short read emptied the socket (see `Conn::poll_fill`).
                    self.stream.clear_read_ready();
                    return Poll::Ready(Ok(n));
                }
                Ok(0) => {
                    self.rd.borrow_mut().eof = true;
                    return Poll::Ready(Ok(0));
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::future::poll_fn;
    use std::rc::Rc;
    use std::time::Duration;

    use bytes::BytesMut;
    use tokio::io::AsyncWriteExt;

    use super::Conn;
    use crate::guard::Limits;
    use crate::io::{ConnShared, Timeouts, Upgraded};
    use crate::serve::ServeConfig;

    #[test]
    fn the_driver_buffer_goes_once_the_leftover_bytes_are_handed_over() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (a, mut b) = tokio::net::UnixStream::pair().unwrap();
            let t = Duration::from_secs(5);
            let cfg = ServeConfig {
                limits: Limits::default(),
                timeouts: Timeouts {
                    header: t,
                    keep_alive: t,
                    body_stall: t,
                    write: t,
                },
                graceful_timeout: t,
                access_log: None,
                health: None,
                proxy: Default::default(),
                max_connections: 0,
            };
            let conn = Conn::new(
                a,
                &cfg,
                Rc::new(ConnShared::default()),
                false,
                BytesMut::new(),
            );
            // What the client sent after the request that switched.
            conn.rd.borrow_mut().buf.extend_from_slice(b"left over");
            let mut out = BytesMut::new();
            let n = poll_fn(|cx| conn.poll_read(cx, &mut out)).await.unwrap();
            assert_eq!((n, &out[..]), (9, &b"left over"[..]));
            assert_eq!(
                conn.rd.borrow().buf.capacity(),
                0,
                "the driver's buffer was kept"
            );
            // Later reads go straight into the caller's buffer.
            b.write_all(b"more").await.unwrap();
            out.clear();
            let n = poll_fn(|cx| conn.poll_read(cx, &mut out)).await.unwrap();
            assert_eq!((n, &out[..]), (4, &b"more"[..]));
            assert_eq!(conn.rd.borrow().buf.capacity(), 0);
            drop(b);
            out.clear();
            assert_eq!(poll_fn(|cx| conn.poll_read(cx, &mut out)).await.unwrap(), 0);
        });
    }
}
