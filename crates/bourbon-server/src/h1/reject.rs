//! The short 4xx answer to a rejected request, and the lingering close that lets the client
//! read it (RFC 9112 §9.6).

use std::future::poll_fn;
use std::io::IoSlice;
use std::time::Duration;

use super::{Conn, READ_CHUNK};
use crate::guard::Reject;
use crate::io::Socket;

/// After a rejected request, how long and how much we keep reading (and discarding) so the
/// client reads our answer instead of a reset caused by its unread bytes.
const LINGER_TIME: Duration = Duration::from_secs(2);

const LINGER_BYTES: usize = 256 * 1024;

impl<S: Socket> Conn<S> {
    /// Answer a rejected request with its short 4xx and close gracefully.
    pub(super) async fn answer_reject(&self, reject: Reject) {
        if self.settle_held(&mut Vec::new()).await.is_err() {
            return;
        }
        let bytes = reject.response_bytes();
        if self.write_all(&mut [IoSlice::new(&bytes)]).await.is_ok() {
            self.linger().await;
        }
    }

    /// Close our side, then read and discard what the client still sends, for a bounded
    /// time and amount, so our last answer is not destroyed by a TCP reset (RFC 9112 §9.6).
    pub(super) async fn linger(&self) {
        if self.settle_held(&mut Vec::new()).await.is_err() {
            return;
        }
        self.shutdown_write();
        let discard = async {
            let mut seen = 0usize;
            loop {
                let res = poll_fn(|cx| {
                    let rd = &mut *self.rd.borrow_mut();
                    rd.buf.clear();
                    self.poll_fill(rd, cx, READ_CHUNK)
                })
                .await;
                match res {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        seen += n;
                        if seen > LINGER_BYTES {
                            break;
                        }
                    }
                }
            }
        };
        let _ = tokio::time::timeout(LINGER_TIME, discard).await;
    }
}
