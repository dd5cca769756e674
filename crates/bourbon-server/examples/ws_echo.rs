//! A WebSocket echo server on the serving core, with no Python: the handshake (with
//! permessage-deflate negotiation) and [`Session`] echoing every message. It is what the
//! Autobahn fuzzing client is pointed at to check the codec alone
//! (`cargo run --release -p bourbon-server --example ws_echo -- 127.0.0.1:9001`; a second
//! argument `no-context-takeover` negotiates permessage-deflate without context takeover,
//! which frees the compression streams after every message).
#![allow(missing_docs)]

use std::rc::Rc;
use std::time::Duration;

use bourbon_config::Bind;
use bourbon_server::body::Full;
use bourbon_server::guard::Limits;
use bourbon_server::io::{Switched, Timeouts};
use bourbon_server::request::{OnUpgrade, Request, Response};
use bourbon_server::serve::{serve, ConnInfo, Handler, HandlerFuture, ServeConfig};
use bourbon_server::ws::deflate::{negotiate, DeflateConfig, DeflateParams};
use bourbon_server::ws::handshake;
use bourbon_server::ws::session::{Session, WsConfig};
use bytes::Bytes;

struct Echo {
    deflate: DeflateConfig,
}

impl Handler for Echo {
    type Body = Full;

    fn call(&self, req: Request, _conn: &Rc<ConnInfo>) -> HandlerFuture<Self::Body> {
        let head = req.head;
        let deflate_cfg = self.deflate;
        Box::pin(async move {
            if !handshake::is_websocket_request(&head) {
                let mut resp =
                    Response::new(426, Full::new(Bytes::from_static(b"WebSocket only\n")));
                let _ = resp.headers.push(b"Upgrade", b"websocket");
                return resp;
            }
            let hs = match handshake::validate(&head) {
                Ok(hs) => hs,
                Err(refusal) => {
                    let mut resp =
                        Response::new(refusal.status(), Full::new(Bytes::from(refusal.reason())));
                    resp.headers = refusal.headers();
                    resp.close = true;
                    return resp;
                }
            };
            let offers = head
                .fields()
                .filter(|(n, _)| n.eq_ignore_ascii_case(b"sec-websocket-extensions"))
                .map(|(_, v)| v);
            let deflate = negotiate(offers, deflate_cfg);
            let mut resp = Response::new(101, Full::empty());
            if hs
                .response_headers(&mut resp.headers, None, deflate.as_ref())
                .is_err()
            {
                return Response::new(500, Full::empty());
            }
            let (tx, rx) = tokio::sync::oneshot::channel::<Switched>();
            tokio::task::spawn_local(async move {
                if let Ok(sw) = rx.await {
                    echo(sw, deflate).await;
                }
            });
            resp.upgrade = Some(OnUpgrade(tx));
            resp
        })
    }
}

/// Echo every message until the connection closes.
async fn echo(sw: Switched, deflate: Option<DeflateParams>) {
    let cfg = WsConfig {
        ping_interval: None,
        ..WsConfig::default()
    };
    let (session, driver) = Session::start(sw, deflate, cfg);
    tokio::task::spawn_local(driver);
    while let Ok(msg) = session.recv().await {
        if session.send(msg).is_err() {
            break;
        }
        // Backpressure: do not take more while a megabyte waits to be written.
        std::future::poll_fn(|cx| session.poll_drained(cx, 1 << 20)).await;
    }
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    let (host, port) = addr.rsplit_once(':').unwrap_or(("127.0.0.1", "9001"));
    let bind = Bind::Tcp {
        host: host.to_owned(),
        port: port.parse().unwrap_or(9001),
    };
    let listeners = bourbon_server::listener::bind_all(&[bind], 2048)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let deflate = DeflateConfig {
        no_context_takeover: std::env::args().nth(2).as_deref() == Some("no-context-takeover"),
    };
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let cfg = ServeConfig {
        limits: Limits::default(),
        timeouts: Timeouts {
            header: Duration::from_secs(10),
            keep_alive: Duration::from_secs(30),
            body_stall: Duration::from_secs(30),
            write: Duration::from_secs(30),
        },
        graceful_timeout: Duration::from_secs(1),
        access_log: None,
        health: None,
        proxy: Default::default(),
        max_connections: 0,
    };
    local.block_on(
        &rt,
        serve(&listeners, Rc::new(Echo { deflate }), cfg, stop_rx),
    )
}
