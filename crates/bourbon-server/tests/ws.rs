//! WebSockets end to end over real loopback sockets: the opening handshake with
//! permessage-deflate negotiated, echo through `ws::session::Session` (plain, compressed,
//! fragmented with a ping between the fragments), the closing handshake with the server
//! closing TCP first, a protocol error, a refused version, and Close 1012 on a graceful stop.
//! The client is written here, frame by frame, with flate2 for its side of the compression.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::time::Duration;

use bourbon_config::Bind;
use bourbon_server::body::Full;
use bourbon_server::guard::Limits;
use bourbon_server::io::{Switched, Timeouts};
use bourbon_server::listener::{bind, Listener};
use bourbon_server::request::{OnUpgrade, Request, Response};
use bourbon_server::serve::{serve, ConnInfo, Handler, HandlerFuture, ServeConfig};
use bourbon_server::ws::deflate::{negotiate, DeflateConfig};
use bourbon_server::ws::handshake;
use bourbon_server::ws::session::{Session, WsConfig};
use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

struct Echo;

impl Handler for Echo {
    type Body = Full;

    fn call(&self, req: Request, _conn: &Rc<ConnInfo>) -> HandlerFuture<Full> {
        let head = req.head;
        Box::pin(async move {
            let hs = match handshake::validate(&head) {
                Ok(hs) => hs,
                Err(r) => {
                    let mut resp = Response::new(r.status(), Full::new(Bytes::from(r.reason())));
                    resp.headers = r.headers();
                    return resp;
                }
            };
            let offers = head
                .fields()
                .filter(|(n, _)| n.eq_ignore_ascii_case(b"sec-websocket-extensions"))
                .map(|(_, v)| v);
            let deflate = negotiate(offers, DeflateConfig::default());
            let protocols = handshake::subprotocols(&head);
            let mut resp = Response::new(101, Full::empty());
            hs.response_headers(
                &mut resp.headers,
                protocols.first().map(String::as_str),
                deflate.as_ref(),
            )
            .unwrap();
            let (tx, rx) = tokio::sync::oneshot::channel::<Switched>();
            tokio::task::spawn_local(async move {
                let Ok(sw) = rx.await else { return };
                let cfg = WsConfig {
                    max_size: 1 << 20,
                    close_timeout: Duration::from_secs(2),
                    ..WsConfig::default()
                };
                let (session, driver) = Session::start(sw, deflate, cfg);
                tokio::task::spawn_local(driver);
                while let Ok(msg) = session.recv().await {
                    if session.send(msg).is_err() {
                        break;
                    }
                }
            });
            resp.upgrade = Some(OnUpgrade(tx));
            resp
        })
    }
}

fn start() -> (
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
        let rt = bourbon_server::cork::runtime(bourbon_server::cork::HOLD_FOR).unwrap();
        let local = tokio::task::LocalSet::new();
        let listeners: Vec<Listener> = vec![listener];
        local.block_on(&rt, async move {
            let cfg = ServeConfig {
                limits: Limits::default(),
                timeouts: Timeouts {
                    header: Duration::from_secs(5),
                    keep_alive: Duration::from_secs(5),
                    body_stall: Duration::from_secs(5),
                    write: Duration::from_secs(5),
                },
                graceful_timeout: Duration::from_secs(5),
                access_log: None,
                health: None,
                proxy: Default::default(),
                max_connections: 0,
            };
            serve(&listeners, Rc::new(Echo), cfg, rx).await.unwrap();
        });
    });
    (addr, handle, tx)
}

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Connect and shake hands; returns the stream and the response head.
fn connect(addr: std::net::SocketAddr, extra: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n{extra}\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut b).unwrap(),
            1,
            "{}",
            String::from_utf8_lossy(&head)
        );
        head.push(b[0]);
    }
    (s, String::from_utf8(head).unwrap())
}

/// Send one masked frame: `b0` is FIN, RSV and the opcode.
fn send_frame(s: &mut TcpStream, b0: u8, payload: &[u8]) {
    let key = [0x12, 0x34, 0x56, 0x78];
    let mut f = vec![b0];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n < 65536 => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&key);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    s.write_all(&f).unwrap();
}

/// Read one server frame: (first byte, payload). Server frames must not be masked.
fn read_frame(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).unwrap();
    assert_eq!(h[1] & 0x80, 0, "a server frame was masked");
    let len = match h[1] & 0x7F {
        126 => {
            let mut n = [0u8; 2];
            s.read_exact(&mut n).unwrap();
            usize::from(u16::from_be_bytes(n))
        }
        127 => {
            let mut n = [0u8; 8];
            s.read_exact(&mut n).unwrap();
            u64::from_be_bytes(n) as usize
        }
        n => usize::from(n),
    };
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).unwrap();
    (h[0], payload)
}

/// Expect the server's end of stream (its FIN) before we close our side.
fn expect_eof(s: &mut TcpStream) {
    let mut b = [0u8; 64];
    assert_eq!(s.read(&mut b).unwrap(), 0, "the server did not close TCP");
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() + 64);
    c.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

fn inflate(data: &[u8]) -> Vec<u8> {
    let mut d = Decompress::new(false);
    let mut input = data.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(1 << 20);
    d.decompress_vec(&input, &mut out, FlushDecompress::Sync)
        .unwrap();
    out
}

#[test]
fn handshake_echo_compressed_fragmented_and_close() {
    let (addr, h, stop) = start();
    let (mut s, head) = connect(
        addr,
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, v2\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
    );
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    assert!(
        head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{head}"
    );
    assert!(head.contains("Sec-WebSocket-Protocol: chat\r\n"), "{head}");
    assert!(
        head.contains("Sec-WebSocket-Extensions: permessage-deflate\r\n"),
        "{head}"
    );
    assert!(head.contains("Upgrade: websocket\r\n"), "{head}");

    // A short text message comes back uncompressed.
    send_frame(&mut s, 0x81, b"hello");
    assert_eq!(read_frame(&mut s), (0x81, b"hello".to_vec()));

    // A compressed one (RSV1) is inflated, and the echo is compressed.
    let text = "the quick brown fox jumps over the lazy dog; ".repeat(40);
    send_frame(&mut s, 0xC1, &deflate(text.as_bytes()));
    let (b0, payload) = read_frame(&mut s);
    assert_eq!(b0, 0xC1, "FIN + RSV1 + text");
    assert!(payload.len() < text.len() / 4);
    assert_eq!(inflate(&payload), text.as_bytes());

    // A fragmented binary message with a ping between its fragments: the pong comes
    // first, then the whole message.
    send_frame(&mut s, 0x02, &[1; 10]);
    send_frame(&mut s, 0x89, b"are you there");
    send_frame(&mut s, 0x00, &[2; 70_000]);
    send_frame(&mut s, 0x80, &[3; 5]);
    assert_eq!(read_frame(&mut s), (0x8A, b"are you there".to_vec()));
    let (b0, payload) = read_frame(&mut s);
    assert_eq!(b0, 0xC2, "FIN + RSV1 + binary");
    let mut expect = vec![1; 10];
    expect.extend_from_slice(&[2; 70_000]);
    expect.extend_from_slice(&[3; 5]);
    assert_eq!(inflate(&payload), expect);

    // Invalid UTF-8 in a compressed text message would be 1007; here, a valid close: the
    // server echoes the code at once and closes TCP first (RFC 6455 §7.1.1).
    send_frame(&mut s, 0x88, b"\x03\xe8bye");
    assert_eq!(read_frame(&mut s), (0x88, b"\x03\xe8".to_vec()));
    expect_eof(&mut s);
    drop(s);

    stop.send(true).unwrap();
    h.join().unwrap();
}

#[test]
fn protocol_errors_fail_the_connection_with_their_codes() {
    let (addr, h, stop) = start();
    let big = vec![0u8; (1 << 20) + 1];
    let cases: [(u8, &[u8], u16); 4] = [
        (0x80, b"x", 1002),                    // continuation outside a message
        (0x81, b"\xce\xba\xed\xa0\x80", 1007), // a surrogate in text
        (0xC1, b"x", 1002),                    // RSV1 without deflate
        (0x82, &big, 1009),                    // over max_size
    ];
    for (b0, payload, code) in cases {
        let (mut s, head) = connect(addr, "Sec-WebSocket-Version: 13\r\n");
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(!head.contains("Sec-WebSocket-Extensions"), "{head}");
        send_frame(&mut s, b0, payload);
        let (b0, p) = read_frame(&mut s);
        assert_eq!(b0, 0x88);
        assert_eq!(u16::from_be_bytes([p[0], p[1]]), code);
        expect_eof(&mut s);
    }
    // An unmasked client frame.
    let (mut s, _) = connect(addr, "Sec-WebSocket-Version: 13\r\n");
    s.write_all(b"\x81\x02hi").unwrap();
    let (_, p) = read_frame(&mut s);
    assert_eq!(p[..2], 1002u16.to_be_bytes());
    expect_eof(&mut s);
    stop.send(true).unwrap();
    h.join().unwrap();
}

#[test]
fn a_version_other_than_13_is_refused_with_426() {
    let (addr, h, stop) = start();
    let (s, head) = connect(addr, "Sec-WebSocket-Version: 8\r\n");
    assert!(head.starts_with("HTTP/1.1 426"), "{head}");
    assert!(head.contains("Sec-WebSocket-Version: 13\r\n"), "{head}");
    drop(s.shutdown(std::net::Shutdown::Write));
    stop.send(true).unwrap();
    h.join().unwrap();
}

#[test]
fn a_graceful_stop_sends_close_1012_and_waits_for_the_handshake() {
    let (addr, h, stop) = start();
    let (mut s, head) = connect(addr, "Sec-WebSocket-Version: 13\r\n");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    send_frame(&mut s, 0x81, b"before");
    assert_eq!(read_frame(&mut s), (0x81, b"before".to_vec()));
    stop.send(true).unwrap();
    let (b0, p) = read_frame(&mut s);
    assert_eq!(b0, 0x88);
    assert_eq!(p[..2], 1012u16.to_be_bytes());
    // The worker waits for the closing handshake (the graceful timeout is 5 s).
    assert!(!h.is_finished());
    send_frame(&mut s, 0x88, &1012u16.to_be_bytes());
    expect_eof(&mut s);
    drop(s);
    let done = std::time::Instant::now();
    h.join().unwrap();
    assert!(done.elapsed() < Duration::from_secs(3));
}
