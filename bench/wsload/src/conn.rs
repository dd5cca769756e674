//! One client WebSocket connection: loopback URL, opening handshake (RFC 6455 §4.1, offering
//! no extension and checking the server's accept value), masked sends, and a receive side
//! that answers pings, skips pongs, reassembles fragmented messages and reports a close.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::proto::{self, Frame, OP_CLOSE, OP_CONT, OP_PING, OP_PONG};
use crate::stats::Rng;

/// The largest handshake response head accepted.
const HEAD_MAX: usize = 16 * 1024;
/// The largest message accepted from a server (the echo of at most this many bytes).
pub(crate) const MESSAGE_MAX: u64 = 16 * 1024 * 1024;

/// Where to connect: only loopback addresses are accepted, so a typo cannot load a remote host.
#[derive(Clone, Debug)]
pub(crate) struct Url {
    pub(crate) addr: SocketAddr,
    pub(crate) host: String,
    pub(crate) path: String,
}

impl Url {
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let rest = s
            .strip_prefix("ws://")
            .ok_or_else(|| format!("--url {s:?}: only ws:// URLs (no TLS on loopback)"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let addr = authority
            .to_socket_addrs()
            .map_err(|e| format!("--url {s:?}: {e} (the form is ws://127.0.0.1:PORT/path)"))?
            .next()
            .ok_or_else(|| format!("--url {s:?}: no address"))?;
        if !is_loopback(addr.ip()) {
            return Err(format!(
                "--url {s:?}: {} is not a loopback address",
                addr.ip()
            ));
        }
        Ok(Self {
            addr,
            host: authority.to_string(),
            path: path.to_string(),
        })
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.is_loopback()
}

/// What went wrong on a connection; `kind` names the counter it is reported under.
#[derive(Debug)]
pub(crate) enum ConnError {
    Connect(io::Error),
    Handshake(String),
    Io(io::Error),
    Protocol(String),
    /// The server sent a Close frame (with its status code, if any).
    Closed(Option<u16>),
    /// The server ended the stream without a Close frame.
    Eof,
    Mismatch(String),
    Timeout,
}

impl ConnError {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Connect(_) => "connect",
            Self::Handshake(_) => "handshake",
            Self::Io(_) => "io",
            Self::Protocol(_) => "protocol",
            Self::Closed(_) => "closed",
            Self::Eof => "eof",
            Self::Mismatch(_) => "mismatch",
            Self::Timeout => "timeout",
        }
    }

    pub(crate) fn detail(&self) -> String {
        match self {
            Self::Connect(e) | Self::Io(e) => e.to_string(),
            Self::Handshake(s) | Self::Protocol(s) | Self::Mismatch(s) => s.clone(),
            Self::Closed(code) => format!("server sent Close (code {code:?})"),
            Self::Eof => "server ended the stream without a Close frame".to_string(),
            Self::Timeout => "no answer in time".to_string(),
        }
    }
}

pub(crate) struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    out: Vec<u8>,
    rng: Rng,
    /// The opcode and payload so far of a fragmented message being reassembled.
    partial: Option<(u8, Vec<u8>)>,
}

impl Conn {
    /// Connects and performs the opening handshake within `limit`.
    pub(crate) async fn open(url: &Url, seed: u64, limit: Duration) -> Result<Self, ConnError> {
        match timeout(limit, Self::open_inner(url, seed)).await {
            Ok(r) => r,
            Err(_) => Err(ConnError::Timeout),
        }
    }

    async fn open_inner(url: &Url, seed: u64) -> Result<Self, ConnError> {
        let stream = TcpStream::connect(url.addr)
            .await
            .map_err(ConnError::Connect)?;
        stream.set_nodelay(true).map_err(ConnError::Connect)?;
        let mut rng = Rng::new(seed);
        let key = proto::base64(&rng.bytes16());
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
            url.path, url.host
        );
        let mut conn = Self {
            stream,
            buf: Vec::with_capacity(512),
            start: 0,
            out: Vec::new(),
            rng,
            partial: None,
        };
        conn.stream
            .write_all(request.as_bytes())
            .await
            .map_err(ConnError::Io)?;
        let head_end = loop {
            if let Some(i) = find(&conn.buf, b"\r\n\r\n") {
                break i;
            }
            if conn.buf.len() > HEAD_MAX {
                return Err(ConnError::Handshake("response head over 16 KiB".into()));
            }
            if conn.fill().await? == 0 {
                return Err(ConnError::Handshake(
                    "connection closed during the handshake".into(),
                ));
            }
        };
        let head = String::from_utf8_lossy(&conn.buf[..head_end]).into_owned();
        conn.start = head_end + 4;
        check_response(&head, &proto::accept_for(&key))?;
        Ok(conn)
    }

    /// Reads more bytes into the buffer (cancel-safe: nothing is lost if the future is
    /// dropped). Returns how many; 0 is end of stream.
    pub(crate) async fn fill(&mut self) -> Result<usize, ConnError> {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 4096 && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.capacity() - self.buf.len() < 256 {
            self.buf.reserve(4096);
        }
        self.stream
            .read_buf(&mut self.buf)
            .await
            .map_err(ConnError::Io)
    }

    /// The next complete frame already buffered, if any.
    fn take_frame(&mut self) -> Result<Option<Frame>, ConnError> {
        match proto::parse_frame(&self.buf[self.start..], false, MESSAGE_MAX) {
            Ok(Some((frame, used))) => {
                self.start += used;
                Ok(Some(frame))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(ConnError::Protocol(format!("{e:?}"))),
        }
    }

    /// Sends one message (a single masked frame).
    pub(crate) async fn send(&mut self, opcode: u8, payload: &[u8]) -> Result<(), ConnError> {
        self.out.clear();
        let mask = self.rng.mask();
        proto::encode_frame(&mut self.out, true, opcode, payload, Some(mask));
        self.stream
            .write_all(&self.out)
            .await
            .map_err(ConnError::Io)
    }

    /// Handles every buffered frame: pings are answered, pongs skipped, a data message (once
    /// complete) is returned, a close is an error. `Ok(None)`: nothing complete yet.
    async fn handle_buffered(&mut self) -> Result<Option<(u8, Vec<u8>)>, ConnError> {
        while let Some(frame) = self.take_frame()? {
            match frame.opcode {
                OP_PING => self.send(OP_PONG, &frame.payload).await?,
                OP_PONG => {}
                OP_CLOSE => {
                    let code = (frame.payload.len() >= 2)
                        .then(|| u16::from_be_bytes([frame.payload[0], frame.payload[1]]));
                    return Err(ConnError::Closed(code));
                }
                OP_CONT => {
                    let Some((op, mut data)) = self.partial.take() else {
                        return Err(ConnError::Protocol("continuation without a message".into()));
                    };
                    data.extend_from_slice(&frame.payload);
                    if data.len() as u64 > MESSAGE_MAX {
                        return Err(ConnError::Protocol("message over 16 MiB".into()));
                    }
                    if frame.fin {
                        return Ok(Some((op, data)));
                    }
                    self.partial = Some((op, data));
                }
                op => {
                    if self.partial.is_some() {
                        return Err(ConnError::Protocol(
                            "new message inside a fragmented one".into(),
                        ));
                    }
                    if frame.fin {
                        return Ok(Some((op, frame.payload)));
                    }
                    self.partial = Some((op, frame.payload));
                }
            }
        }
        Ok(None)
    }

    /// Receives the next data message: (opcode, payload).
    pub(crate) async fn recv(&mut self) -> Result<(u8, Vec<u8>), ConnError> {
        loop {
            if let Some(msg) = self.handle_buffered().await? {
                return Ok(msg);
            }
            if self.fill().await? == 0 {
                return Err(ConnError::Eof);
            }
        }
    }

    /// While idle: handles whatever the server sent (pings) without waiting. A data message
    /// is an error: nothing was asked.
    pub(crate) async fn idle_input(&mut self, n: usize) -> Result<(), ConnError> {
        if n == 0 {
            return Err(ConnError::Eof);
        }
        match self.handle_buffered().await? {
            Some(_) => Err(ConnError::Protocol("a message nobody asked for".into())),
            None => Ok(()),
        }
    }

    /// The closing handshake (§7.1.2): sends Close 1000 and waits, at most `limit`, for the
    /// server's Close. True when it came.
    pub(crate) async fn close(mut self, limit: Duration) -> bool {
        let fut = async {
            self.send(OP_CLOSE, &1000u16.to_be_bytes()).await?;
            loop {
                match self.recv().await {
                    Err(ConnError::Closed(_)) => return Ok::<bool, ConnError>(true),
                    Err(e) => return Err(e),
                    Ok(_) => {} // an echo still in flight
                }
            }
        };
        matches!(timeout(limit, fut).await, Ok(Ok(true)))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Checks a handshake response head: 101, `Upgrade: websocket`, `Connection: upgrade`, the
/// right accept value, and no extension (none was offered, §4.1 item 4 of the client's checks).
fn check_response(head: &str, accept: &str) -> Result<(), ConnError> {
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if status.split(' ').nth(1) != Some("101") {
        return Err(ConnError::Handshake(format!("status line {status:?}")));
    }
    let (mut upgrade, mut connection, mut got_accept) = (false, false, None);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "upgrade" => upgrade = value.eq_ignore_ascii_case("websocket"),
            "connection" => {
                connection = value
                    .split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            }
            "sec-websocket-accept" => got_accept = Some(value.to_string()),
            "sec-websocket-extensions" => {
                return Err(ConnError::Handshake(format!(
                    "extension {value:?} not offered"
                )))
            }
            _ => {}
        }
    }
    if !upgrade || !connection {
        return Err(ConnError::Handshake(
            "no Upgrade: websocket / Connection: upgrade".into(),
        ));
    }
    if got_accept.as_deref() != Some(accept) {
        return Err(ConnError::Handshake(format!(
            "accept {got_accept:?}, expected {accept:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn urls_are_loopback_only() {
        let u = Url::parse("ws://127.0.0.1:8000/ws?x=1").unwrap();
        assert_eq!((u.addr.port(), u.path.as_str()), (8000, "/ws?x=1"));
        assert_eq!(Url::parse("ws://127.0.0.1:9").unwrap().path, "/");
        assert!(Url::parse("ws://[::1]:9/").is_ok());
        assert!(Url::parse("ws://10.1.2.3:80/")
            .unwrap_err()
            .contains("not a loopback"));
        assert!(Url::parse("wss://127.0.0.1:80/").is_err());
    }

    #[test]
    fn response_checks() {
        let acc = proto::accept_for("dGhlIHNhbXBsZSBub25jZQ==");
        let ok = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Accept: {acc}"
        );
        assert!(check_response(&ok, &acc).is_ok());
        assert!(check_response(&ok.replace("101", "400"), &acc).is_err());
        assert!(check_response(&ok, "wrong").is_err());
        let ext = format!("{ok}\r\nSec-WebSocket-Extensions: permessage-deflate");
        assert!(check_response(&ext, &acc).is_err());
    }
}
