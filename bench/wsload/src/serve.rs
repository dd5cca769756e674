//! `serve` mode: a minimal WebSocket echo server on 127.0.0.1, to measure the client's own
//! ceiling (pinned to the servers' CPU, it is what the cells would show if the server cost
//! nothing but its syscalls).
//!
//! It answers any request that carries `Sec-WebSocket-Key` with a 101 (RFC 6455 §4.2.2, no
//! extension, no subprotocol) and echoes every data frame as it comes, with its opcode and FIN
//! bit; pings get pongs; a Close is answered with a Close and the connection ends. Everything
//! buffered is answered in one write. It stops after `secs` seconds whatever happens.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{sleep_until, timeout, Instant};

use crate::conn::MESSAGE_MAX;
use crate::proto::{self, OP_CLOSE, OP_PING, OP_PONG};
use crate::{jobj, jstr};

pub(crate) struct Opts {
    pub(crate) port: u16,
    pub(crate) secs: f64,
    pub(crate) max_conns: usize,
}

const HEAD_MAX: usize = 16 * 1024;
const HEAD_LIMIT: Duration = Duration::from_secs(10);

pub(crate) async fn run(o: Opts) -> Result<String, String> {
    crate::raise_nofile(o.max_conns as u64 + 64);
    let listener = TcpListener::bind(("127.0.0.1", o.port))
        .await
        .map_err(|e| format!("bind 127.0.0.1:{}: {e}", o.port))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    println!(
        "{}",
        jobj(&[("event", jstr("listening")), ("port", port.to_string())])
    );
    let accepted = serve(listener, Duration::from_secs_f64(o.secs), o.max_conns).await;
    Ok(jobj(&[
        ("event", jstr("stopped")),
        ("accepted", accepted.to_string()),
    ]))
}

/// Accepts and echoes on `listener` for `secs`, at most `max_conns` connections at a time;
/// returns how many were accepted.
pub(crate) async fn serve(listener: TcpListener, secs: Duration, max_conns: usize) -> u64 {
    let deadline = Instant::now() + secs;
    let open = Rc::new(Cell::new(0usize));
    let mut accepted = 0u64;
    loop {
        tokio::select! {
            r = listener.accept() => {
                let Ok((stream, _)) = r else { continue };
                if open.get() >= max_conns {
                    continue; // dropped: over the bound
                }
                accepted += 1;
                open.set(open.get() + 1);
                let open = open.clone();
                tokio::task::spawn_local(async move {
                    let _ = connection(stream).await;
                    open.set(open.get() - 1);
                });
            }
            () = sleep_until(deadline) => break,
        }
    }
    accepted
}

async fn connection(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(4096);
    let head_end = timeout(HEAD_LIMIT, async {
        loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                return Ok(Some(i));
            }
            if buf.len() > HEAD_MAX || stream.read_buf(&mut buf).await? == 0 {
                return Ok::<_, std::io::Error>(None);
            }
        }
    })
    .await
    .unwrap_or(Ok(None))?;
    let Some(head_end) = head_end else {
        return Ok(());
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let key = head.split("\r\n").skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("sec-websocket-key")
            .then(|| value.trim().to_string())
    });
    let Some(key) = key else {
        let bad = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        return stream.write_all(bad).await;
    };
    let reply = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        proto::accept_for(&key)
    );
    stream.write_all(reply.as_bytes()).await?;
    buf.drain(..head_end + 4);
    let mut out = Vec::with_capacity(4096);
    loop {
        let mut start = 0;
        let mut closing = false;
        loop {
            match proto::parse_frame(&buf[start..], true, MESSAGE_MAX) {
                Ok(Some((frame, used))) => {
                    start += used;
                    match frame.opcode {
                        OP_PING => {
                            proto::encode_frame(&mut out, true, OP_PONG, &frame.payload, None)
                        }
                        OP_PONG => {}
                        OP_CLOSE => {
                            let code = &frame.payload[..frame.payload.len().min(2)];
                            proto::encode_frame(&mut out, true, OP_CLOSE, code, None);
                            closing = true;
                            break;
                        }
                        op => proto::encode_frame(&mut out, frame.fin, op, &frame.payload, None),
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    // 1002 protocol error (§7.4.1), then end.
                    proto::encode_frame(&mut out, true, OP_CLOSE, &1002u16.to_be_bytes(), None);
                    closing = true;
                    break;
                }
            }
        }
        buf.drain(..start);
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        if closing {
            return stream.shutdown().await;
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(4096);
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
}
