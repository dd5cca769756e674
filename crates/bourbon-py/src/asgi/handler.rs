//! The ASGI [`Handler`]: reads a small body before the application starts, queues the cycle
//! for Python and waits for the response head. It runs on the connection task and never
//! touches Python.

use std::rc::Rc;

use bourbon_server::request::{PeerWatch, Request, Response};
use bourbon_server::serve::{ConnInfo, Handler, HandlerFuture};
use bytes::{Bytes, BytesMut};

use super::cycle::{self, AsgiBody, Cycle};
use super::engine::{self, Work};
use super::websocket::WsSettings;

/// The ASGI handler.
pub(crate) struct AsgiHandler {
    /// Bodies up to this many bytes are read before the application starts, so its first
    /// `receive()` answers at once.
    pub(crate) post_buffering: u64,
    /// WebSocket settings.
    pub(crate) ws: Rc<WsSettings>,
}

impl Handler for AsgiHandler {
    type Body = AsgiBody;

    fn call(&self, req: Request, conn: &Rc<ConnInfo>) -> HandlerFuture<AsgiBody> {
        if bourbon_server::ws::handshake::is_websocket_request(&req.head) {
            return Box::pin(super::websocket::call(req, conn.clone(), self.ws.clone()));
        }
        let post_buffering = self.post_buffering;
        let conn = conn.clone();
        Box::pin(async move {
            let Request {
                head,
                mut body,
                interim,
                peer,
            } = req;
            // A body declared small enough is read first, unless the client waits for
            // `100 Continue`, which is only sent once the application asks for the body
            // (RFC 9110 §10.1.1): then it streams, as larger bodies do.
            let mut first = None;
            if body.is_empty() {
                first = Some(Bytes::new());
            } else if !head.expects_continue()
                && head.content_length().is_some_and(|n| n <= post_buffering)
            {
                let mut buf = BytesMut::new();
                loop {
                    match body.chunk().await {
                        None => break,
                        Some(Ok(data)) => buf.extend_from_slice(&data),
                        Some(Err(e)) => {
                            let status = conn.shared.reject().map_or(400, |r| r.status);
                            return refused(status, &e.to_string(), conn.clone(), head);
                        }
                    }
                }
                first = Some(buf.freeze());
            }
            let body = first.is_none().then_some(body);
            let cycle = Cycle::new(head, conn, body, first, interim, peer);
            engine::push(Work::Http(cycle.clone()));
            cycle::response(cycle).await
        })
    }
}

/// The answer to a body the guard refused before the application started (its status, e.g.
/// 413 or 400), with the connection closed.
fn refused(
    status: u16,
    why: &str,
    conn: Rc<ConnInfo>,
    head: bourbon_server::request::RequestHead,
) -> Response<AsgiBody> {
    bourbon_server::log::debug(format_args!("request body refused: {why}"));
    cycle::refused(
        status,
        Cycle::new(
            head,
            conn,
            None,
            Some(Bytes::new()),
            Default::default(),
            PeerWatch::none(),
        ),
    )
}
