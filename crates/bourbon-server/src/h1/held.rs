//! Responses held to be written together with others (see [`crate::cork`]): the connection's
//! task moves on and learns how the write went at its next use of the socket.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use super::encode::encode_status;
use super::Conn;
use crate::cork;
use crate::io::Socket;
use crate::request::{HeaderBlock, InterimSink};

/// A response handed to [`crate::cork`]: the connection's task moves on (to read the next
/// request) and learns how the write went at its next use of the socket.
#[derive(Default)]
pub(super) struct HeldWrite {
    state: Held,
    head: Vec<u8>,
    body: Bytes,
    /// The task waiting to read on this connection, woken if the write needs it.
    waker: Option<Waker>,
}

#[derive(Default)]
pub(super) enum Held {
    /// Nothing held (`head` may keep a buffer for reuse).
    #[default]
    Idle,
    /// Waiting in the queue to be written.
    Queued,
    /// The flush wrote this many bytes; the socket took no more. The task writes the rest.
    Partial(usize),
    /// The flush failed; the connection is over.
    Failed(io::Error),
}

impl<S: Socket> cork::Held for Conn<S> {
    fn write_held(&self) {
        let mut held = self.held.borrow_mut();
        if !matches!(held.state, Held::Queued) {
            // Already written by the task itself (it needed the socket first).
            return;
        }
        let total = held.head.len() + held.body.len();
        let bufs = [IoSlice::new(&held.head), IoSlice::new(&held.body)];
        held.state = match self.stream.try_write_vectored(&bufs) {
            Ok(n) if n >= total => {
                held.head.clear();
                held.body = Bytes::new();
                Held::Idle
            }
            Ok(n) => Held::Partial(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Held::Partial(0),
            Err(e) => Held::Failed(e),
        };
        if !matches!(held.state, Held::Idle) {
            if let Some(waker) = held.waker.take() {
                waker.wake();
            }
        }
    }
}

impl<S: Socket> Conn<S> {
    /// Write a whole response (`head`, then `body`) on a connection that stays open: held to
    /// go out together with others when this thread is busy (see [`crate::cork`]), else at
    /// once. Either way `head`'s buffer comes back for the next response (see
    /// [`Conn::settle_held`]).
    pub(super) async fn write_last(
        &self,
        me: &Rc<Self>,
        head: &mut Vec<u8>,
        body: Bytes,
    ) -> io::Result<()> {
        if head.len() + body.len() > cork::HOLD_MAX_BYTES {
            return self
                .write_all(&mut [IoSlice::new(head), IoSlice::new(&body)])
                .await;
        }
        {
            let mut held = self.held.borrow_mut();
            debug_assert!(matches!(held.state, Held::Idle));
            std::mem::swap(&mut held.head, head);
            held.body = body;
            held.state = Held::Queued;
        }
        if cork::hold(me.clone()) {
            return Ok(());
        }
        // Not held (the thread was idle, or holding is off): write it now.
        self.settle_held(head).await
    }

    /// Before anything else goes out on this connection (or it closes): make sure a held
    /// response is written completely, writing it here if the flush has not come yet. Hands
    /// the held response's buffer back into `spare` when that is empty.
    pub(super) async fn settle_held(&self, spare: &mut Vec<u8>) -> io::Result<()> {
        if matches!(self.held.borrow().state, Held::Idle) {
            self.reclaim_held(spare);
            return Ok(());
        }
        self.write_waited.set(true);
        let done = poll_fn(|cx| self.poll_settle_held(cx));
        let res = match tokio::time::timeout(self.timeouts.write, done).await {
            Ok(res) => res,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client stopped reading (write timeout)",
            )),
        };
        self.reclaim_held(spare);
        res
    }

    pub(super) fn reclaim_held(&self, spare: &mut Vec<u8>) {
        if spare.capacity() == 0 {
            let mut held = self.held.borrow_mut();
            if matches!(held.state, Held::Idle) {
                std::mem::swap(&mut held.head, spare);
            }
        }
    }

    /// Drive a held response out: write it if still queued, or its rest after a partial
    /// flush, waiting for room as needed; report a failed flush.
    pub(super) fn poll_settle_held(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        use cork::Held as _;
        if matches!(self.held.borrow().state, Held::Queued) {
            self.write_held();
        }
        loop {
            let mut held = self.held.borrow_mut();
            let held = &mut *held;
            let done = match std::mem::take(&mut held.state) {
                Held::Idle => return Poll::Ready(Ok(())),
                // Not reached (written just above); counts as nothing written yet.
                Held::Queued => 0,
                Held::Partial(n) => n,
                Held::Failed(e) => {
                    held.head.clear();
                    held.body = Bytes::new();
                    return Poll::Ready(Err(e));
                }
            };
            let mut bufs = [IoSlice::new(&held.head), IoSlice::new(&held.body)];
            let mut rest = &mut bufs[..];
            IoSlice::advance_slices(&mut rest, done);
            if rest.is_empty() {
                held.state = Held::Idle;
                held.head.clear();
                held.body = Bytes::new();
                return Poll::Ready(Ok(()));
            }
            match self.stream.try_write_vectored(rest) {
                Ok(0) => held.state = Held::Failed(io::ErrorKind::WriteZero.into()),
                Ok(n) => held.state = Held::Partial(done + n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    held.state = Held::Partial(done);
                    match self.stream.poll_write_ready(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(e)) => held.state = Held::Failed(e),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                Err(e) => held.state = Held::Failed(e),
            }
        }
    }

    /// Whether a held response needs this connection's task (a partial or failed flush);
    /// while it waits in the queue, remember who to wake if it will.
    pub(super) fn held_needs_task(&self, cx: &Context<'_>) -> bool {
        let mut held = self.held.borrow_mut();
        match held.state {
            Held::Idle => false,
            Held::Queued => {
                if !held.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    held.waker = Some(cx.waker().clone());
                }
                false
            }
            Held::Partial(_) | Held::Failed(_) => true,
        }
    }
}

/// Informational responses go out as held writes of their own, written at once: a write the
/// socket only partly takes is finished by the task before anything else, like a held
/// response's.
impl<S: Socket> InterimSink for Conn<S> {
    fn send_interim(&self, status: u16, headers: &HeaderBlock) -> bool {
        use cork::Held as _;
        if self.responding.get() {
            return false;
        }
        // Whatever is still held from the previous response goes first; if the socket does
        // not take it now, the hint is dropped (it is advice) rather than waited for.
        if !matches!(self.held.borrow().state, Held::Idle) {
            self.write_held();
            if !matches!(self.held.borrow().state, Held::Idle) {
                return false;
            }
        }
        {
            let mut held = self.held.borrow_mut();
            held.head.clear();
            encode_status(&mut held.head, status, None);
            held.head.extend_from_slice(headers.as_bytes());
            held.head.extend_from_slice(b"\r\n");
            held.body = Bytes::new();
            held.state = Held::Queued;
        }
        self.write_held();
        !matches!(self.held.borrow().state, Held::Failed(_))
    }
}
