//! The connection driver with a dummy handler over real loopback sockets: pipelining, guard
//! rejections answered after earlier responses, the header and keep-alive deadlines, and
//! sendfile of file-region chunks; responses held and written together (`cork`), also
//! when the client's socket is full.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bourbon_config::Bind;
use bourbon_server::body::{BodyAbort, Chunk, FileRegion};
use bourbon_server::guard::Limits;
use bourbon_server::io::{Switched, Timeouts};
use bourbon_server::layer::health::Health;
use bourbon_server::listener::{bind, Listener};
use bourbon_server::request::{HeaderBlock, OnUpgrade, Request, Response};
use bourbon_server::serve::{serve, ConnInfo, Handler, HandlerFuture, ServeConfig};
use bytes::Bytes;

/// A body of a few chunks.
struct Body(std::collections::VecDeque<Chunk>);

impl bourbon_server::body::Body for Body {
    fn poll_chunk(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Chunk, BodyAbort>>> {
        std::task::Poll::Ready(self.0.pop_front().map(Ok))
    }
    fn exact_len(&self) -> Option<u64> {
        // A body ending in trailers has no length to declare: it goes chunked.
        if self.0.iter().any(|c| matches!(c, Chunk::Trailers(_))) {
            return None;
        }
        Some(self.0.iter().map(Chunk::len).sum())
    }
}

fn data(b: impl Into<Bytes>) -> Chunk {
    Chunk::Data(b.into())
}

/// Answers with the request path; `/slow` waits 600 ms first; `/file` sends a file as a
/// file region; `/big/N` answers 60 KiB of the byte `N`.
struct Echo {
    file: Option<std::path::PathBuf>,
}

impl Handler for Echo {
    type Body = Body;

    fn call(&self, req: Request, conn: &Rc<ConnInfo>) -> HandlerFuture<Body> {
        let target = req.head.target();
        let path =
            String::from_utf8_lossy(target.split(|&b| b == b'?').next().unwrap()).into_owned();
        let file = self.file.clone();
        let _ = conn;
        let mut body = req.body;
        Box::pin(async move {
            // Drain the body so keep-alive can continue.
            while let Some(Ok(_)) = body.chunk().await {}
            if path == "/slow" {
                tokio::time::sleep(Duration::from_millis(600)).await;
            }
            if path == "/file" {
                let file = std::fs::File::open(file.unwrap()).unwrap();
                let len = file.metadata().unwrap().len();
                let region = FileRegion {
                    file: Arc::new(file),
                    offset: 0,
                    len,
                    transient: false,
                };
                let mut resp = Response::new(200, Body([Chunk::File(region)].into()));
                resp.headers
                    .push(b"Content-Length", len.to_string().as_bytes())
                    .unwrap();
                return resp;
            }
            if path == "/hints" {
                let mut hints = HeaderBlock::default();
                hints
                    .push(b"Link", b"</style.css>; rel=preload; as=style")
                    .unwrap();
                let sent = req.interim.send(103, &hints);
                // Not a 1xx: refused.
                assert!(!req.interim.send(200, &hints));
                let mut resp = Response::new(200, Body([data("done")].into()));
                resp.headers
                    .push(b"X-Hint-Sent", if sent { b"yes" } else { b"no" })
                    .unwrap();
                return resp;
            }
            if path == "/trailers" {
                let mut t = HeaderBlock::default();
                t.push(b"X-Checksum", b"42").unwrap();
                return Response::new(
                    200,
                    Body([data("abc"), data("def"), Chunk::Trailers(t)].into()),
                );
            }
            if path == "/upgrade" {
                // Switch to a protocol that answers every read in capitals, until EOF, and
                // says STOPPING when the worker begins a graceful stop.
                let (tx, rx) = tokio::sync::oneshot::channel::<Switched>();
                tokio::task::spawn_local(async move {
                    let Ok(Switched {
                        io, live, mut stop, ..
                    }) = rx.await
                    else {
                        return;
                    };
                    let mut buf = bytes::BytesMut::new();
                    let mut stop_seen = false;
                    loop {
                        buf.clear();
                        let read = std::future::poll_fn(|cx| io.poll_read(cx, &mut buf));
                        let up = tokio::select! {
                            n = read => {
                                if n.unwrap() == 0 {
                                    io.shutdown_write();
                                    drop(live);
                                    return;
                                }
                                buf.to_ascii_uppercase()
                            }
                            _ = stop.changed(), if !stop_seen => {
                                stop_seen = true;
                                b"STOPPING".to_vec()
                            }
                        };
                        let mut sent = 0;
                        while sent < up.len() {
                            let slice = [std::io::IoSlice::new(&up[sent..])];
                            sent += std::future::poll_fn(|cx| io.poll_write(cx, &slice))
                                .await
                                .unwrap();
                        }
                    }
                });
                let mut resp = Response::new(101, Body(Default::default()));
                resp.headers.push(b"Connection", b"Upgrade").unwrap();
                resp.headers.push(b"Upgrade", b"shout").unwrap();
                resp.upgrade = Some(OnUpgrade(tx));
                return resp;
            }
            if let Some(n) = path.strip_prefix("/big/") {
                let byte = n.parse::<u8>().unwrap();
                return Response::new(200, Body([data(vec![byte; BIG])].into()));
            }
            Response::new(200, Body([data(path)].into()))
        })
    }
}

/// Under `cork::HOLD_MAX_BYTES`, so such a response may be held, and larger than what a
/// loopback socket takes at once when the client does not read.
const BIG: usize = 60 * 1024;

fn start(
    timeouts: Timeouts,
    file: Option<std::path::PathBuf>,
) -> (
    std::net::SocketAddr,
    std::thread::JoinHandle<()>,
    tokio::sync::watch::Sender<bool>,
) {
    start_with(timeouts, file, None)
}

fn start_with(
    timeouts: Timeouts,
    file: Option<std::path::PathBuf>,
    health: Option<Arc<Health>>,
) -> (
    std::net::SocketAddr,
    std::thread::JoinHandle<()>,
    tokio::sync::watch::Sender<bool>,
) {
    let listener = bind(
        &Bind::Tcp {
            host: "127.0.0.1".into(),
            port: 0,
        },
        64,
    )
    .unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let handle = std::thread::spawn(move || {
        // The workers' runtime: responses may be held and written together.
        let rt = bourbon_server::cork::runtime(bourbon_server::cork::HOLD_FOR).unwrap();
        let local = tokio::task::LocalSet::new();
        let listeners: Vec<Listener> = vec![listener];
        local.block_on(&rt, async move {
            let cfg = ServeConfig {
                limits: Limits::default(),
                timeouts,
                graceful_timeout: Duration::from_secs(2),
                access_log: None,
                health,
                proxy: Default::default(),
                max_connections: 0,
            };
            serve(&listeners, Rc::new(Echo { file }), cfg, rx)
                .await
                .unwrap();
        });
    });
    (addr, handle, tx)
}

fn timeouts() -> Timeouts {
    Timeouts {
        header: Duration::from_secs(5),
        keep_alive: Duration::from_secs(5),
        body_stall: Duration::from_secs(5),
        write: Duration::from_secs(5),
    }
}

fn read_all(mut s: TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (addr, h, stop) = start(timeouts(), None);
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\nGET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let out = String::from_utf8(read_all(s)).unwrap();
    let one = out.find("/one").unwrap();
    let two = out.find("/two").unwrap();
    let three = out.find("/three").unwrap();
    assert!(one < two && two < three, "{out}");
    assert_eq!(count(out.as_bytes(), b"HTTP/1.1 200"), 3);
    stop.send(true).unwrap();
    h.join().unwrap();
}

#[test]
fn health_probes_are_answered_by_the_driver() {
    let health = Health::new("/readyz", "/livez", false).map(Arc::new);
    let (addr, h, stop) = start_with(timeouts(), None, health);
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(
        b"GET /readyz?x=1 HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /app HTTP/1.1\r\nHost: x\r\n\r\n\
          HEAD http://x/livez HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /livez HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\
          GET /readyz/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let out = String::from_utf8(read_all(s)).unwrap();
    let parts: Vec<&str> = out.split("HTTP/1.1 ").skip(1).collect();
    assert_eq!(parts.len(), 5, "{out}");
    assert!(parts[0].starts_with("200 OK\r\n"), "{out}");
    assert!(parts[0].contains("Cache-Control: no-store\r\n"), "{out}");
    assert!(
        parts[0]
            .to_ascii_lowercase()
            .contains("content-length: 3\r\n"),
        "{out}"
    );
    assert!(parts[0].ends_with("\r\n\r\nok\n"), "{out}");
    // The handler sees the requests that are not probes, and only those.
    assert!(
        parts[1].starts_with("200 OK") && parts[1].contains("/app"),
        "{out}"
    );
    assert!(
        parts[2].starts_with("200 OK") && parts[2].ends_with("\r\n\r\n"),
        "{out}"
    );
    assert!(
        parts[3].starts_with("405 ") && parts[3].contains("Allow: GET, HEAD"),
        "{out}"
    );
    assert!(
        parts[4].starts_with("200 OK") && parts[4].contains("/readyz/"),
        "{out}"
    );
    stop.send(true).unwrap();
    h.join().unwrap();
}

#[test]
fn a_bad_request_is_answered_after_earlier_ones_and_nothing_after_it() {
    let (addr, h, stop) = start(timeouts(), None);
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /good HTTP/1.1\r\nHost: x\r\n\r\nGET /bad HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /never HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let out = String::from_utf8(read_all(s)).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let bad = out.find("HTTP/1.1 400").unwrap();
    assert!(out.find("/good").unwrap() < bad);
    assert!(!out.contains("/never"), "{out}");
    assert!(!out.contains("/bad"), "{out}");
    assert!(out[bad..].contains("connection: close") || out[bad..].contains("Connection: close"));
    // A short body says what was wrong.
    assert!(out[bad..]
        .split("\r\n\r\n")
        .nth(1)
        .is_some_and(|b| !b.is_empty()));
    stop.send(true).unwrap();
    h.join().unwrap();
}

#[test]
fn header_timeout_closes_a_partial_head() {
    let mut t = timeouts();
    t.header = Duration::from_millis(300);
    let (addr, h, stop) = start(t, None);
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = Instant::now();
    let out = read_all(s);
    assert!(out.is_empty());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    stop.send(true).unwrap();
    h.join().unwrap();
}

#[test]
fn keep_alive_deadline_waits_for_the_response() {
    let mut t = timeouts();
    t.keep_alive = Duration::from_millis(200);
    let (addr, h, stop) = start(t, None);
    let mut s = TcpStream::connect(addr).unwrap();
    // The handler takes 600 ms, longer than the keep-alive timeout: the response must come,
    // and only then does the idle clock start and close the connection.
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let out = String::from_utf8(read_all(s)).unwrap();
    assert!(out.contains("/slow"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(3));
    stop.send(true).unwrap();
    h.join().unwrap();
}

#[test]
fn file_region_chunks_send_the_file() {
    let path = std::env::temp_dir().join(format!("bourbon-sendfile-{}", std::process::id()));
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let (addr, h, stop) = start(timeouts(), Some(path.clone()));
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /file HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let out = read_all(s);
    let head_end = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(&out[head_end..head_end + data.len()], &data[..]);
    // The connection stays usable after the file: the next response follows exactly.
    assert!(out[head_end + data.len()..].starts_with(b"HTTP/1.1 200"));
    std::fs::remove_file(&path).ok();
    stop.send(true).unwrap();
    h.join().unwrap();
}

/// Read one response with a Content-Length body from `s`; returns the body.
fn read_response(s: &mut std::io::BufReader<TcpStream>) -> Vec<u8> {
    use std::io::BufRead;
    let mut len = 0usize;
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            s.read_line(&mut line).unwrap() > 0,
            "connection closed mid-response"
        );
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; len];
    s.read_exact(&mut body).unwrap();
    body
}

#[test]
fn many_keep_alive_clients_get_every_response() {
    // Several clients in step keep the worker busy, so responses are held and written
    // together; a response that never left would stall its client into the read timeout.
    let (addr, h, stop) = start(timeouts(), None);
    let clients: Vec<_> = (0..8)
        .map(|c| {
            std::thread::spawn(move || {
                let s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut r = std::io::BufReader::new(s.try_clone().unwrap());
                let mut s = s;
                for i in 0..200 {
                    let path = format!("/c{c}/r{i}");
                    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                    assert_eq!(read_response(&mut r), path.as_bytes());
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    stop.send(true).unwrap();
    h.join().unwrap();
}

#[test]
fn held_responses_survive_a_client_that_reads_late() {
    // Pipelined requests for 60 KiB answers from a client that reads nothing at first: the
    // socket fills, so a held response is written only in part by the flush and the
    // connection's task must finish it before the next one, in order.
    let (addr, h, stop) = start(timeouts(), None);
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = 120u8;
    let mut reqs = String::new();
    for i in 0..n {
        reqs.push_str(&format!("GET /big/{i} HTTP/1.1\r\nHost: x\r\n\r\n"));
    }
    s.write_all(reqs.as_bytes()).unwrap();
    // Let the server run into the full socket before reading anything.
    std::thread::sleep(Duration::from_millis(300));
    let mut r = std::io::BufReader::new(s.try_clone().unwrap());
    for i in 0..n {
        let body = read_response(&mut r);
        assert_eq!(body.len(), BIG);
        assert!(
            body.iter().all(|&b| b == i),
            "response {i} out of order or mixed"
        );
    }
    stop.send(true).unwrap();
    h.join().unwrap();
}

#[test]
fn after_101_the_handler_owns_the_connection() {
    let (addr, h, stop) = start(timeouts(), None);
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The new protocol's first bytes arrive with the request: the driver has read them
    // already and must hand them over.
    s.write_all(
        b"GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: shout\r\n\r\nhello",
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"HELLO") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(
        text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{text}"
    );
    assert!(text.contains("Upgrade: shout\r\n"), "{text}");
    // No framing, no close: the head ends and the new protocol begins.
    assert!(
        !text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    assert!(
        !text.to_ascii_lowercase().contains("content-length"),
        "{text}"
    );
    assert!(text.ends_with("\r\n\r\nHELLO"), "{text}");
    // HTTP is over on this connection: a request is just bytes now.
    s.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    let mut got = Vec::new();
    while got.len() < 16 {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"GET / HTTP/1.1\r\n");
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(s.read(&mut buf).unwrap(), 0);
    stop.send(true).unwrap();
    h.join().unwrap();
}

#[test]
fn early_hints_go_before_the_response_and_never_to_http10() {
    let (addr, h, stop) = start(timeouts(), None);
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /hints HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let out = String::from_utf8(read_all(s)).unwrap();
    assert!(
        out.starts_with(
            "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\nHTTP/1.1 200 OK\r\n"
        ),
        "{out}"
    );
    assert!(out.contains("X-Hint-Sent: yes\r\n"), "{out}");
    assert!(out.ends_with("done"), "{out}");
    // RFC 9110 §15.2: no 1xx to an HTTP/1.0 client.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /hints HTTP/1.0\r\n\r\n").unwrap();
    let out = String::from_utf8(read_all(s)).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("X-Hint-Sent: no\r\n"), "{out}");
    stop.send(true).unwrap();
    h.join().unwrap();
}

#[test]
fn trailers_end_a_chunked_body() {
    let (addr, h, stop) = start(timeouts(), None);
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /trailers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let out = String::from_utf8(read_all(s)).unwrap();
    assert!(out.contains("transfer-encoding: chunked\r\n"), "{out}");
    assert!(
        out.ends_with("\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\nX-Checksum: 42\r\n\r\n"),
        "{out:?}"
    );
    // HTTP/1.0 has no chunked coding, so nowhere to put trailers: the body ends with the
    // connection, without them.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /trailers HTTP/1.0\r\n\r\n").unwrap();
    let out = String::from_utf8(read_all(s)).unwrap();
    assert!(out.ends_with("\r\n\r\nabcdef"), "{out:?}");
    stop.send(true).unwrap();
    h.join().unwrap();
}

/// Upgrade to the capitals protocol; returns the stream after the 101 and "HELLO".
fn upgrade(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(
        b"GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: shout\r\n\r\nhello",
    )
    .unwrap();
    read_until(&mut s, b"HELLO");
    s
}

fn read_until(s: &mut TcpStream, end: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(end) {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    got
}

#[test]
fn a_graceful_stop_waits_for_a_switched_connection_and_tells_it() {
    let (addr, h, stop) = start(timeouts(), None);
    let mut s = upgrade(addr);
    stop.send(true).unwrap();
    // The switched connection sees the stop ...
    read_until(&mut s, b"STOPPING");
    // ... and the drain waits for it: the worker does not return while it lives (the
    // graceful timeout is 2 s).
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_millis(400) {
        assert!(
            !h.is_finished(),
            "the drain did not wait for the switched connection"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    s.write_all(b"still here").unwrap();
    read_until(&mut s, b"STILL HERE");
    // Once the handler lets the connection go, the drain ends without waiting out the
    // graceful timeout.
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let closed = Instant::now();
    assert_eq!(s.read(&mut [0u8; 16]).unwrap(), 0);
    h.join().unwrap();
    assert!(
        closed.elapsed() < Duration::from_millis(1500),
        "{:?}",
        closed.elapsed()
    );
}
