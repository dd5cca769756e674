//! Both interfaces from one listener (`--asgi`): WebSocket handshakes and requests under the
//! `--asgi-path` prefixes go to the ASGI application, everything else to the WSGI one, in
//! the same worker.

use std::rc::Rc;

use bourbon_server::body::Either;
use bourbon_server::request::{Request, RequestHead};
use bourbon_server::serve::{ConnInfo, Handler, HandlerFuture};

use super::cycle::AsgiBody;
use super::handler::AsgiHandler;
use crate::wsgi::body::ResponseBody;
use crate::wsgi::handler::WsgiHandler;

/// Sends each request to one of the two applications.
pub(crate) struct Router {
    pub(crate) wsgi: WsgiHandler,
    pub(crate) asgi: AsgiHandler,
    /// `--asgi-path` prefixes, each ending with `/`.
    pub(crate) prefixes: Vec<String>,
}

impl Router {
    fn to_asgi(&self, head: &RequestHead) -> bool {
        if bourbon_server::ws::handshake::is_websocket_request(head) {
            return true;
        }
        if self.prefixes.is_empty() {
            return false;
        }
        let target = head.target();
        let path = match memchr::memchr(b'?', target) {
            Some(i) => &target[..i],
            None => target,
        };
        self.prefixes.iter().any(|p| {
            let p = p.as_bytes();
            // `/api/` takes `/api` itself too.
            path.starts_with(p) || path == &p[..p.len() - 1]
        })
    }
}

impl Handler for Router {
    type Body = Either<ResponseBody, AsgiBody>;

    fn has_capacity(&self) -> bool {
        self.wsgi.has_capacity()
    }

    fn capacity_changed(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
        self.wsgi.capacity_changed()
    }

    fn call(&self, req: Request, conn: &Rc<ConnInfo>) -> HandlerFuture<Self::Body> {
        if self.to_asgi(&req.head) {
            let fut = self.asgi.call(req, conn);
            Box::pin(async move { fut.await.map_body(Either::Right) })
        } else {
            let fut = self.wsgi.call(req, conn);
            Box::pin(async move { fut.await.map_body(Either::Left) })
        }
    }
}
