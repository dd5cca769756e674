//! `idle` mode: hold many connections open, then prove each one alive.
//!
//! Connections are opened `parallel` at a time (a burst of 10,000 SYNs would overflow any
//! listen backlog and measure SYN retries instead) within `connect` seconds. Once all are
//! open (or failed), a `held` line is printed and they are held for `secs` seconds, each
//! answering the server's pings (uvicorn and Daphne ping every 20 s and drop a connection
//! whose pong is late). Then a `hold_end` line, and each connection sends one message and
//! checks its echo, `parallel` at a time within `probe` seconds, and closes.

use std::io::Write;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Semaphore};
use tokio::time::{timeout, timeout_at};

use crate::conn::{Conn, ConnError, Url};
use crate::echo::payload;
use crate::proto::OP_BINARY;
use crate::{jobj, jstr, Errors};

pub(crate) struct Opts {
    pub(crate) url: Url,
    pub(crate) conns: usize,
    pub(crate) secs: f64,
    pub(crate) size: usize,
    pub(crate) connect: Duration,
    pub(crate) parallel: usize,
    pub(crate) probe: Duration,
}

/// One connection's wait for its own handshake, and for its echo when probed.
const EACH_LIMIT: Duration = Duration::from_secs(15);
const CLOSE_LIMIT: Duration = Duration::from_secs(1);

fn event(line: &str) {
    let mut out = std::io::stdout().lock();
    // The harness reads these lines as they come: flush each one.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Holds one connection until `stop` changes (it only ever turns true), answering pings.
async fn hold(mut conn: Conn, mut stop: watch::Receiver<bool>) -> Result<Conn, ConnError> {
    loop {
        let read = tokio::select! {
            n = conn.fill() => Some(n),
            _ = stop.changed() => None,
        };
        match read {
            Some(n) => conn.idle_input(n?).await?,
            None => return Ok(conn),
        }
    }
}

/// Sends message `id` and checks its echo; then the closing handshake. (alive, clean close)
async fn probe(mut conn: Conn, id: usize, size: usize) -> (Result<(), ConnError>, bool) {
    let mut msg = Vec::with_capacity(size);
    payload(&mut msg, id, id as u64, size, false);
    let round = async {
        conn.send(OP_BINARY, &msg).await?;
        conn.recv().await
    };
    let res = match timeout(EACH_LIMIT, round).await {
        Err(_) => Err(ConnError::Timeout),
        Ok(Err(e)) => Err(e),
        Ok(Ok((op, echo))) if op == OP_BINARY && echo == msg => Ok(()),
        Ok(Ok((op, echo))) => Err(ConnError::Mismatch(format!(
            "connection {id}: {} bytes (opcode {op}) for {} bytes",
            echo.len(),
            msg.len()
        ))),
    };
    let clean = res.is_ok() && conn.close(CLOSE_LIMIT).await;
    (res, clean)
}

pub(crate) async fn run(o: Opts) -> String {
    let nofile = crate::raise_nofile(o.conns as u64 + 64);
    let mut errors = Errors::default();
    let gate = Rc::new(Semaphore::new(o.parallel));
    let t0 = Instant::now();
    let deadline = tokio::time::Instant::now() + o.connect;
    let opening: Vec<_> = (0..o.conns)
        .map(|i| {
            let (url, gate) = (o.url.clone(), gate.clone());
            let seed =
                0xD1B5_4A32_D192_ED03u64 ^ ((i as u64) << 24) ^ t0.elapsed().as_nanos() as u64;
            tokio::task::spawn_local(async move {
                let open = async {
                    let _permit = gate.acquire().await.map_err(|_| ConnError::Timeout)?;
                    Conn::open(&url, seed, EACH_LIMIT).await
                };
                timeout_at(deadline, open)
                    .await
                    .unwrap_or(Err(ConnError::Timeout))
            })
        })
        .collect();
    let mut conns = Vec::with_capacity(o.conns);
    for h in opening {
        match h.await {
            Ok(Ok(c)) => conns.push(c),
            Ok(Err(e)) => errors.add(&e),
            Err(e) => errors.add(&ConnError::Protocol(format!("task: {e}"))),
        }
    }
    let connect_s = t0.elapsed().as_secs_f64();
    let connected = conns.len();
    event(&jobj(&[
        ("event", jstr("held")),
        ("connected", connected.to_string()),
        ("connect_failed", (o.conns - connected).to_string()),
        ("connect_s", format!("{connect_s:.3}")),
    ]));

    let (stop_tx, stop_rx) = watch::channel(false);
    let holders: Vec<_> = conns
        .into_iter()
        .map(|c| tokio::task::spawn_local(hold(c, stop_rx.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(o.secs)).await;
    let _ = stop_tx.send(true);
    let mut kept = Vec::with_capacity(connected);
    let mut dropped_in_hold = 0u64;
    for h in holders {
        match h.await {
            Ok(Ok(c)) => kept.push(c),
            Ok(Err(e)) => {
                dropped_in_hold += 1;
                errors.add(&e);
            }
            Err(e) => errors.add(&ConnError::Protocol(format!("task: {e}"))),
        }
    }
    event(&jobj(&[
        ("event", jstr("hold_end")),
        ("kept", kept.len().to_string()),
        ("dropped_in_hold", dropped_in_hold.to_string()),
    ]));

    let t_probe = Instant::now();
    let deadline = tokio::time::Instant::now() + o.probe;
    let probes: Vec<_> = kept
        .into_iter()
        .enumerate()
        .map(|(id, c)| {
            let gate = gate.clone();
            let size = o.size;
            tokio::task::spawn_local(async move {
                let run = async {
                    let _permit = gate.acquire().await.ok();
                    probe(c, id, size).await
                };
                timeout_at(deadline, run)
                    .await
                    .unwrap_or((Err(ConnError::Timeout), false))
            })
        })
        .collect();
    let (mut alive, mut clean) = (0u64, 0u64);
    for h in probes {
        match h.await {
            Ok((Ok(()), c)) => {
                alive += 1;
                clean += u64::from(c);
            }
            Ok((Err(e), _)) => errors.add(&e),
            Err(e) => errors.add(&ConnError::Protocol(format!("task: {e}"))),
        }
    }
    jobj(&[
        ("mode", jstr("idle")),
        ("url", jstr(&format!("ws://{}{}", o.url.host, o.url.path))),
        ("conns", o.conns.to_string()),
        ("nofile", nofile.to_string()),
        ("connected", connected.to_string()),
        ("connect_s", format!("{connect_s:.3}")),
        ("held_s", format!("{}", o.secs)),
        ("dropped_in_hold", dropped_in_hold.to_string()),
        ("alive", alive.to_string()),
        ("probe_s", format!("{:.3}", t_probe.elapsed().as_secs_f64())),
        ("clean_closes", clean.to_string()),
        ("errors", errors.total().to_string()),
        ("error_detail", errors.json()),
        ("error_examples", errors.examples_json()),
    ])
}
