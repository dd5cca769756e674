//! `echo` mode: every connection a closed loop of one message and its echo.
//!
//! All connections are opened (and handshaken) first; then the clock starts: `warmup`
//! seconds not counted, then `secs` seconds in which each echo that completes is counted and
//! its round trip (send started to echo fully read) recorded. Each message carries its
//! connection's sequence number and a pattern derived from it, so a lost, reordered or
//! altered echo is caught. A connection that fails stops (its error counted) and is not
//! reopened: the errors say how many fell, the rate says what the rest did.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::time::timeout;

use crate::conn::{Conn, ConnError, Url};
use crate::proto::{OP_BINARY, OP_TEXT};
use crate::stats::Histogram;
use crate::{jobj, jstr, Errors};

pub(crate) struct Opts {
    pub(crate) url: Url,
    pub(crate) conns: usize,
    pub(crate) size: usize,
    pub(crate) secs: f64,
    pub(crate) warmup: f64,
    pub(crate) text: bool,
    pub(crate) timeout: Duration,
    pub(crate) connect: Duration,
}

/// How long the closing handshake may take at the end.
const CLOSE_LIMIT: Duration = Duration::from_secs(2);

/// The message `seq` of connection `id`: the sequence number first (8 bytes big-endian, or 16
/// hex digits for text), then a pattern that depends on both.
pub(crate) fn payload(out: &mut Vec<u8>, id: usize, seq: u64, size: usize, text: bool) {
    out.clear();
    let base = (id as u64).wrapping_mul(31).wrapping_add(seq);
    if text {
        out.extend_from_slice(format!("{seq:016x}").as_bytes());
        out.extend((out.len()..size).map(|i| b'a' + (base.wrapping_add(i as u64) % 26) as u8));
    } else {
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend((out.len()..size).map(|i| base.wrapping_add(i as u64) as u8));
    }
}

struct Outcome {
    hist: Histogram,
    error: Option<ConnError>,
    clean_close: bool,
}

#[allow(clippy::too_many_arguments)]
async fn one(
    mut conn: Conn,
    id: usize,
    size: usize,
    text: bool,
    limit: Duration,
    from: Instant,
    until: Instant,
) -> Outcome {
    let opcode = if text { OP_TEXT } else { OP_BINARY };
    let mut hist = Histogram::new();
    let mut msg = Vec::with_capacity(size);
    let mut seq = 0u64;
    let mut error = None;
    while Instant::now() < until {
        payload(&mut msg, id, seq, size, text);
        let t0 = Instant::now();
        let round = async {
            conn.send(opcode, &msg).await?;
            conn.recv().await
        };
        match timeout(limit, round).await {
            Err(_) => error = Some(ConnError::Timeout),
            Ok(Err(e)) => error = Some(e),
            Ok(Ok((op, echo))) => {
                let t1 = Instant::now();
                if op != opcode || echo != msg {
                    let what = format!(
                        "connection {id} message {seq}: sent {} bytes (opcode {opcode}), got {} (opcode {op})",
                        msg.len(),
                        echo.len()
                    );
                    error = Some(ConnError::Mismatch(what));
                } else if t1 >= from && t1 <= until {
                    hist.record(u64::try_from((t1 - t0).as_nanos()).unwrap_or(u64::MAX));
                }
            }
        }
        if error.is_some() {
            break;
        }
        seq += 1;
    }
    let clean_close = error.is_none() && conn.close(CLOSE_LIMIT).await;
    Outcome {
        hist,
        error,
        clean_close,
    }
}

pub(crate) async fn run(o: Opts) -> String {
    crate::raise_nofile(o.conns as u64 + 64);
    let errors = Rc::new(RefCell::new(Errors::default()));
    let t_connect = Instant::now();
    let opening: Vec<_> = (0..o.conns)
        .map(|i| {
            let url = o.url.clone();
            let seed =
                0x9E37_79B9_7F4A_7C15u64 ^ (i as u64) << 20 ^ t_connect.elapsed().as_nanos() as u64;
            let limit = o.connect;
            tokio::task::spawn_local(async move { Conn::open(&url, seed, limit).await })
        })
        .collect();
    let mut conns = Vec::with_capacity(o.conns);
    for h in opening {
        match h.await {
            Ok(Ok(c)) => conns.push(c),
            Ok(Err(e)) => errors.borrow_mut().add(&e),
            Err(e) => errors
                .borrow_mut()
                .add(&ConnError::Protocol(format!("task: {e}"))),
        }
    }
    let connect_s = t_connect.elapsed().as_secs_f64();
    let connected = conns.len();
    let start = Instant::now();
    let from = start + Duration::from_secs_f64(o.warmup);
    let until = from + Duration::from_secs_f64(o.secs);
    let loops: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(id, c)| tokio::task::spawn_local(one(c, id, o.size, o.text, o.timeout, from, until)))
        .collect();
    let mut hist = Histogram::new();
    let (mut clean, mut failed) = (0u64, 0u64);
    for h in loops {
        match h.await {
            Ok(out) => {
                hist.merge(&out.hist);
                clean += u64::from(out.clean_close);
                if let Some(e) = out.error {
                    failed += 1;
                    errors.borrow_mut().add(&e);
                }
            }
            Err(e) => errors
                .borrow_mut()
                .add(&ConnError::Protocol(format!("task: {e}"))),
        }
    }
    let us = |q: f64| {
        hist.quantile(q)
            .map_or("null".to_string(), |n| format!("{:.1}", n as f64 / 1e3))
    };
    let errors = errors.borrow();
    jobj(&[
        ("mode", jstr("echo")),
        ("url", jstr(&format!("ws://{}{}", o.url.host, o.url.path))),
        ("conns", o.conns.to_string()),
        ("connected", connected.to_string()),
        ("connect_s", format!("{connect_s:.3}")),
        ("size", o.size.to_string()),
        ("opcode", jstr(if o.text { "text" } else { "binary" })),
        ("warmup_s", format!("{}", o.warmup)),
        ("secs", format!("{}", o.secs)),
        ("messages", hist.count().to_string()),
        ("msgs_per_s", format!("{:.1}", hist.count() as f64 / o.secs)),
        ("p50_us", us(0.5)),
        ("p99_us", us(0.99)),
        ("max_us", format!("{:.1}", hist.max() as f64 / 1e3)),
        ("errors", errors.total().to_string()),
        ("error_detail", errors.json()),
        ("error_examples", errors.examples_json()),
        ("conns_failed", failed.to_string()),
        ("clean_closes", clean.to_string()),
    ])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn payloads_differ_by_sequence_and_connection() {
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        payload(&mut a, 0, 1, 64, false);
        payload(&mut b, 0, 2, 64, false);
        payload(&mut c, 1, 1, 64, false);
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_ne!(a, c);
        payload(&mut a, 3, 255, 64, true);
        assert_eq!(a.len(), 64);
        assert!(std::str::from_utf8(&a)
            .unwrap()
            .starts_with("00000000000000ff"));
    }
}
