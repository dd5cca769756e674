//! `wsload`: the WebSocket load client of bourbon's benchmark harness (`bench/run.py`).
//!
//! Three modes, each bounded in connections and time and limited to loopback:
//!
//! - `echo`: N connections, each a closed loop of one message out, its echo back, checked
//!   byte for byte (a sequence number in every message); after a warm-up, counts the messages
//!   completed in the measured window and their round-trip latency. One JSON line.
//! - `idle`: opens N connections and holds them (answering the server's pings), then proves
//!   each one alive with one echoed message. JSON lines: `held` when all are open, `hold_end`,
//!   then the result.
//! - `serve`: a minimal echo server of its own, so the harness can measure the client's
//!   ceiling: a server cell within half of it is marked client-bound.
//!
//! One thread (tokio's current-thread runtime): the harness pins it to the client's CPU.

mod conn;
mod echo;
mod idle;
mod proto;
mod serve;
mod stats;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage:
  wsload echo --url ws://127.0.0.1:PORT/PATH [--conns 64] [--size 64] [--secs 10] [--warmup 2]
              [--text] [--timeout 5] [--connect-secs 10]
  wsload idle --url ws://127.0.0.1:PORT/PATH [--conns 10000] [--secs 30] [--size 64]
              [--connect-secs 120] [--parallel 200] [--probe-secs 120]
  wsload serve [--port 0] [--secs 600] [--max-conns 20000]";

/// Hard bounds, whatever the flags say.
const MAX_CONNS: u64 = 60_000;
const MAX_SECS: f64 = 3600.0;

/// Parsed `--name value` flags (and bare `--flag` switches) of one mode.
struct Flags {
    values: BTreeMap<String, String>,
    switches: Vec<String>,
}

impl Flags {
    fn parse(args: &[String], switches: &[&str]) -> Result<Self, String> {
        let mut values = BTreeMap::new();
        let mut found = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let name = a
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {a:?}"))?;
            if switches.contains(&name) {
                found.push(name.to_string());
                continue;
            }
            let v = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
            values.insert(name.to_string(), v.clone());
        }
        Ok(Self {
            values,
            switches: found,
        })
    }

    fn take(&mut self, name: &str) -> Option<String> {
        self.values.remove(name)
    }

    fn num(&mut self, name: &str, default: f64, min: f64, max: f64) -> Result<f64, String> {
        let Some(v) = self.take(name) else {
            return Ok(default);
        };
        match v.parse::<f64>() {
            Ok(x) if (min..=max).contains(&x) => Ok(x),
            _ => Err(format!("--{name} {v:?}: give a number from {min} to {max}")),
        }
    }

    fn int(&mut self, name: &str, default: u64, min: u64, max: u64) -> Result<u64, String> {
        let Some(v) = self.take(name) else {
            return Ok(default);
        };
        match v.parse::<u64>() {
            Ok(x) if (min..=max).contains(&x) => Ok(x),
            _ => Err(format!(
                "--{name} {v:?}: give a whole number from {min} to {max}"
            )),
        }
    }

    fn has(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }

    fn finish(self) -> Result<(), String> {
        match self.values.keys().next() {
            Some(k) => Err(format!("unknown flag --{k}")),
            None => Ok(()),
        }
    }
}

fn secs(x: f64) -> Duration {
    Duration::from_secs_f64(x)
}

/// A JSON string literal.
pub(crate) fn jstr(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON object from already-rendered values.
pub(crate) fn jobj(fields: &[(&str, String)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", jstr(k)))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// Counts per error kind, as a JSON object, with one example message per kind.
#[derive(Default)]
pub(crate) struct Errors {
    counts: BTreeMap<&'static str, u64>,
    examples: BTreeMap<&'static str, String>,
}

impl Errors {
    pub(crate) fn add(&mut self, e: &conn::ConnError) {
        *self.counts.entry(e.kind()).or_default() += 1;
        self.examples.entry(e.kind()).or_insert_with(|| e.detail());
    }

    pub(crate) fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    pub(crate) fn json(&self) -> String {
        let f: Vec<(&str, String)> = self
            .counts
            .iter()
            .map(|(k, v)| (*k, v.to_string()))
            .collect();
        jobj(&f)
    }

    pub(crate) fn examples_json(&self) -> String {
        let f: Vec<(&str, String)> = self.examples.iter().map(|(k, v)| (*k, jstr(v))).collect();
        jobj(&f)
    }
}

/// Raises RLIMIT_NOFILE's soft limit to `want` (and the hard one, when allowed). Returns the
/// soft limit in force afterwards.
pub(crate) fn raise_nofile(want: u64) -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let cur = getrlimit(Resource::Nofile);
    let soft = cur.current.unwrap_or(u64::MAX);
    if soft >= want {
        return soft;
    }
    let hard = cur.maximum.unwrap_or(u64::MAX);
    if hard < want {
        // Raising the hard limit needs CAP_SYS_RESOURCE; without it, go as far as allowed.
        let new = Rlimit {
            current: Some(want),
            maximum: Some(want),
        };
        if setrlimit(Resource::Nofile, new).is_ok() {
            return want;
        }
    }
    let new = Rlimit {
        current: Some(want.min(hard)),
        maximum: cur.maximum,
    };
    match setrlimit(Resource::Nofile, new) {
        Ok(()) => want.min(hard),
        Err(_) => soft,
    }
}

fn run(args: &[String]) -> Result<String, String> {
    let Some(mode) = args.first() else {
        return Err("no mode given".into());
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let local = tokio::task::LocalSet::new();
    match mode.as_str() {
        "echo" => {
            let mut f = Flags::parse(&args[1..], &["text"])?;
            let url = conn::Url::parse(&f.take("url").ok_or("--url is required")?)?;
            let o = echo::Opts {
                conns: f.int("conns", 64, 1, MAX_CONNS)? as usize,
                size: f.int("size", 64, 16, conn::MESSAGE_MAX)? as usize,
                secs: f.num("secs", 10.0, 0.1, MAX_SECS)?,
                warmup: f.num("warmup", 2.0, 0.0, MAX_SECS)?,
                text: f.has("text"),
                timeout: secs(f.num("timeout", 5.0, 0.1, 600.0)?),
                connect: secs(f.num("connect-secs", 10.0, 0.1, 600.0)?),
                url,
            };
            f.finish()?;
            Ok(local.block_on(&rt, echo::run(o)))
        }
        "idle" => {
            let mut f = Flags::parse(&args[1..], &[])?;
            let url = conn::Url::parse(&f.take("url").ok_or("--url is required")?)?;
            let o = idle::Opts {
                conns: f.int("conns", 10_000, 1, MAX_CONNS)? as usize,
                secs: f.num("secs", 30.0, 0.0, MAX_SECS)?,
                size: f.int("size", 64, 16, 65_536)? as usize,
                connect: secs(f.num("connect-secs", 120.0, 1.0, MAX_SECS)?),
                parallel: f.int("parallel", 200, 1, 10_000)? as usize,
                probe: secs(f.num("probe-secs", 120.0, 1.0, MAX_SECS)?),
                url,
            };
            f.finish()?;
            Ok(local.block_on(&rt, idle::run(o)))
        }
        "serve" => {
            let mut f = Flags::parse(&args[1..], &[])?;
            let o = serve::Opts {
                port: f.int("port", 0, 0, 65_535)? as u16,
                secs: f.num("secs", 600.0, 0.1, MAX_SECS)?,
                max_conns: f.int("max-conns", 20_000, 1, MAX_CONNS)? as usize,
            };
            f.finish()?;
            local.block_on(&rt, serve::run(o))
        }
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(String::new())
        }
        m => Err(format!("unknown mode {m:?}")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(line) => {
            if !line.is_empty() {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wsload: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_and_bounds() {
        let mut f = Flags::parse(&strings(&["--conns", "8", "--text"]), &["text"]).unwrap();
        assert_eq!(f.int("conns", 1, 1, 10).unwrap(), 8);
        assert!(f.has("text"));
        assert!(f.finish().is_ok());
        let mut f = Flags::parse(&strings(&["--conns", "0"]), &[]).unwrap();
        assert!(f.int("conns", 1, 1, 10).is_err());
        assert!(Flags::parse(&strings(&["--conns"]), &[]).is_err());
        assert!(Flags::parse(&strings(&["--bogus", "1"]), &[])
            .unwrap()
            .finish()
            .is_err());
        assert!(run(&strings(&["echo", "--url", "ws://192.0.2.1:80/"])).is_err());
    }

    #[test]
    fn json_escapes() {
        assert_eq!(jstr("a\"b\\c\n"), r#""a\"b\\c\u000a""#);
        assert_eq!(
            jobj(&[("n", "1".into()), ("s", jstr("x"))]),
            r#"{"n":1,"s":"x"}"#
        );
    }
}

/// The modes end to end on loopback: the client against its own server, and against a
/// server that alters one echo (which must be counted as a mismatch, not as a message).
#[cfg(test)]
mod end_to_end {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use crate::{conn, echo, idle, proto, serve};

    fn field<'a>(json: &'a str, name: &str) -> &'a str {
        let at = json.find(&format!("\"{name}\":")).unwrap() + name.len() + 3;
        let end = json[at..].find([',', '}']).unwrap();
        &json[at..at + end]
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tokio::task::LocalSet::new().block_on(&rt, f)
    }

    async fn own_server() -> conn::Url {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::task::spawn_local(serve::serve(listener, Duration::from_secs(20), 1000));
        conn::Url::parse(&format!("ws://127.0.0.1:{port}/ws")).unwrap()
    }

    #[test]
    fn echo_against_own_server() {
        let out = block_on(async {
            let url = own_server().await;
            let mut outs = Vec::new();
            for text in [false, true] {
                let o = echo::Opts {
                    url: url.clone(),
                    conns: 4,
                    size: 200, // over 125: the 16-bit length form
                    secs: 0.3,
                    warmup: 0.1,
                    text,
                    timeout: Duration::from_secs(5),
                    connect: Duration::from_secs(5),
                };
                outs.push(echo::run(o).await);
            }
            outs
        });
        for json in out {
            assert_eq!(field(&json, "errors"), "0", "{json}");
            assert_eq!(field(&json, "connected"), "4", "{json}");
            assert_eq!(field(&json, "clean_closes"), "4", "{json}");
            assert!(
                field(&json, "messages").parse::<u64>().unwrap() > 10,
                "{json}"
            );
        }
    }

    #[test]
    fn idle_against_own_server() {
        let json = block_on(async {
            let url = own_server().await;
            let o = idle::Opts {
                url,
                conns: 50,
                secs: 0.2,
                size: 64,
                connect: Duration::from_secs(10),
                parallel: 8,
                probe: Duration::from_secs(10),
            };
            idle::run(o).await
        });
        assert_eq!(field(&json, "connected"), "50", "{json}");
        assert_eq!(field(&json, "alive"), "50", "{json}");
        assert_eq!(field(&json, "errors"), "0", "{json}");
    }

    #[test]
    fn an_altered_echo_is_an_error() {
        let json = block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            tokio::task::spawn_local(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap();
                let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                let key = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                    .unwrap()
                    .trim()
                    .to_string();
                let reply = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                    proto::accept_for(&key)
                );
                s.write_all(reply.as_bytes()).await.unwrap();
                let mut got = Vec::new();
                loop {
                    let n = s.read(&mut buf).await.unwrap();
                    got.extend_from_slice(&buf[..n]);
                    if let Some((mut frame, _)) = proto::parse_frame(&got, true, 1 << 20).unwrap() {
                        frame.payload[20] ^= 1; // one bit of the pattern
                        let mut out = Vec::new();
                        proto::encode_frame(&mut out, true, frame.opcode, &frame.payload, None);
                        s.write_all(&out).await.unwrap();
                        break;
                    }
                }
                // Hold the connection until the client gives up on it.
                let _ = s.read(&mut buf).await;
            });
            let o = echo::Opts {
                url: conn::Url::parse(&format!("ws://127.0.0.1:{port}/")).unwrap(),
                conns: 1,
                size: 64,
                secs: 0.2,
                warmup: 0.0,
                text: false,
                timeout: Duration::from_secs(2),
                connect: Duration::from_secs(5),
            };
            echo::run(o).await
        });
        assert_eq!(field(&json, "messages"), "0", "{json}");
        assert!(json.contains("\"mismatch\":1"), "{json}");
    }
}
