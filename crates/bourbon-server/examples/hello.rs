//! The serving core with a Rust handler and no Python: the ceiling the WSGI adapter is
//! measured against (`cargo run --release -p bourbon-server --example hello -- 127.0.0.1:8000`).
#![allow(missing_docs)]

use std::rc::Rc;
use std::time::Duration;

use bourbon_config::Bind;
use bourbon_server::body::Full;
use bourbon_server::guard::Limits;
use bourbon_server::io::Timeouts;
use bourbon_server::request::{Request, Response};
use bourbon_server::serve::{serve, ConnInfo, Handler, HandlerFuture, ServeConfig};
use bytes::Bytes;

struct Hello;

impl Handler for Hello {
    type Body = Full;

    fn call(&self, _req: Request, _conn: &Rc<ConnInfo>) -> HandlerFuture<Self::Body> {
        Box::pin(async {
            let mut resp = Response::new(200, Full::new(Bytes::from_static(b"Hello, world!")));
            let _ = resp.headers.push(b"Content-Type", b"text/plain");
            resp
        })
    }
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8000".into());
    let (host, port) = addr.rsplit_once(':').unwrap_or(("127.0.0.1", "8000"));
    let bind = Bind::Tcp {
        host: host.to_owned(),
        port: port.parse().unwrap_or(8000),
    };
    let listeners = bourbon_server::listener::bind_all(&[bind], 2048)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
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
    local.block_on(&rt, serve(&listeners, Rc::new(Hello), cfg, stop_rx))
}
