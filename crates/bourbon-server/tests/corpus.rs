//! The request guard over gunicorn's request-parsing corpus, vendored in
//! `tests/corpus/gunicorn-requests` (its README says where it comes from). Each case's
//! `expect` in `manifest.json` decides:
//!
//! - `accept`: no rejection, every byte released unchanged (or, after a message that closes
//!   the connection, the rest left unread), one released head per listed request (at least
//!   one where none are listed), the guard at a message boundary;
//! - `reject`: a rejection before the faulty message is wholly released (for cases that end
//!   in a half-close, dropping a partial head or failing at EOF inside a body also counts);
//! - `accept_or_reject`: either; `skip`: not run.
//!
//! Every case is fed both in one piece and byte by byte; both must give the same result.
//!
//! Unlike gunicorn, bourbon answers an HTTP/1.1 request without `Host` with 400 (RFC 9112
//! §3.2). Many cases omit Host while testing something else, so each case is judged as
//! above by a guard that lets a missing Host through ([`Guard::without_host_rule`]), and
//! the real guard must then give the same result, except for the cases in [`MISSING_HOST`],
//! where it must answer 400 "missing Host" at the request that lacks it.
//! `CORPUS_VERBOSE=1 cargo test -p bourbon-server --test corpus -- --nocapture` lists the
//! outcome of every case.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use bourbon_server::guard::{Guard, Limits, Phase, Reject};
use serde_json::Value;

fn corpus_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/corpus/gunicorn-requests"
    ))
}

fn replace(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(data[i]);
            i += 1;
        }
    }
    out
}

/// Decode a `.http` file as `http_file_encoding` in the manifest describes: drop every LF,
/// then replace the escapes `\r\n`, `\0`, `\n`, `\t` in that order, then `\xHH`.
fn decode(raw: &[u8]) -> Vec<u8> {
    let data: Vec<u8> = raw.iter().copied().filter(|&b| b != b'\n').collect();
    let data = replace(&data, b"\\r\\n", b"\r\n");
    let data = replace(&data, b"\\0", b"\0");
    let data = replace(&data, b"\\n", b"\n");
    let data = replace(&data, b"\\t", b"\t");
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i..].starts_with(b"\\x") && i + 3 < data.len() {
            if let (Some(h), Some(l)) = (hex(data[i + 2]), hex(data[i + 3])) {
                out.push((h * 16 + l) as u8);
                i += 4;
                continue;
            }
        }
        out.push(data[i]);
        i += 1;
    }
    out
}

/// The cases with an HTTP/1.1 request without `Host`, and how many requests before it are
/// answered. The real guard answers that request 400 "missing Host" (RFC 9112 §3.2:
/// "A server MUST respond with a 400 (Bad Request) status code to any HTTP/1.1 request
/// message that lacks a Host header field"), where gunicorn accepts it.
const MISSING_HOST: &[(&str, u64)] = &[
    // The manifest marks these `missing_host` (accept_or_reject: gunicorn accepts them).
    ("valid/004", 0),
    ("valid/005", 0),
    ("valid/006", 0),
    ("valid/007", 0),
    ("valid/010", 0),
    ("valid/011", 0),
    ("valid/012", 0),
    ("valid/013", 0),
    ("valid/018", 0),
    ("valid/021", 0),
    ("valid/022", 1), // an HTTP/1.0 request (no Host needed), then HTTP/1.1 without Host
    ("valid/023", 0),
    ("valid/031", 0),
    ("valid/100", 0),
    // Cases about something else (target characters, transfer codings, chunked framing,
    // field syntax) that also lack Host: the Host check comes first now.
    ("valid/009", 0),
    ("valid/014", 0),
    ("valid/025", 0),
    ("valid/025_line", 0),
    ("valid/029", 0),
    ("valid/030", 0),
    ("invalid/010", 0),
    ("invalid/017", 0),
    ("invalid/019", 0),
    ("invalid/chunked_01", 0),
    ("invalid/chunked_02", 0),
    ("invalid/chunked_03", 0),
    ("invalid/chunked_04", 0),
    ("invalid/chunked_06", 0),
    ("invalid/chunked_07", 0),
    ("invalid/chunked_08", 0),
    ("invalid/chunked_09", 0),
    ("invalid/chunked_10", 0),
    ("invalid/chunked_11", 0),
    ("invalid/chunked_12", 0),
    ("invalid/chunked_13", 0),
    ("invalid/chunked_14", 0),
];

#[derive(Debug, PartialEq, Eq)]
struct Run {
    released: Vec<u8>,
    heads: u64,
    err: Option<Reject>,
    eof: Result<(), Reject>,
    phase: Phase,
    closed: bool,
}

/// Drive a guard as the connection driver does, `step` bytes arriving at a time, then EOF.
fn run(mut guard: Guard, input: &[u8], step: usize) -> Run {
    let mut pending = Vec::new();
    let mut released = Vec::new();
    let mut err = None;
    let mut offset = 0;
    'feed: loop {
        loop {
            match guard.scan(&pending) {
                Ok(0) => break,
                Ok(n) => released.extend(pending.drain(..n)),
                Err(r) => {
                    err = Some(r);
                    break 'feed;
                }
            }
        }
        if offset == input.len() || guard.is_closed() {
            break;
        }
        let end = offset.saturating_add(step).min(input.len());
        pending.extend_from_slice(&input[offset..end]);
        offset = end;
    }
    Run {
        released,
        heads: guard.heads_released(),
        err,
        eof: guard.at_eof(),
        phase: guard.phase(),
        closed: guard.is_closed(),
    }
}

fn accepts(r: &Run, input: &[u8], requests: Option<u64>) -> Result<(), String> {
    if let Some(e) = r.err {
        return Err(format!("rejected {} {:?}", e.status, e.reason));
    }
    if let Err(e) = r.eof {
        return Err(format!("EOF inside a body ({:?})", e.reason));
    }
    if r.phase != Phase::Idle {
        return Err(format!("ends in {:?}, not at a message boundary", r.phase));
    }
    match requests {
        Some(n) if r.heads != n => {
            return Err(format!("{} heads released, {n} requests listed", r.heads));
        }
        None if r.heads == 0 => return Err("no head released".into()),
        _ => {}
    }
    if !input.starts_with(&r.released) {
        return Err("released bytes differ from the input".into());
    }
    // After a message that closes the connection the rest is not read (RFC 9112 §9.6).
    if r.released.len() < input.len() && !r.closed {
        return Err(format!(
            "only {} of {} bytes released",
            r.released.len(),
            input.len()
        ));
    }
    Ok(())
}

fn rejects(r: &Run, input: &[u8], requests: Option<u64>, half_close: bool) -> Result<(), String> {
    let stopped = r.err.is_some() || (half_close && (r.eof.is_err() || r.phase == Phase::Head));
    if !stopped {
        return Err(format!(
            "not rejected ({} heads, {} of {} bytes released, {:?})",
            r.heads,
            r.released.len(),
            input.len(),
            r.phase
        ));
    }
    if r.released.len() >= input.len() && r.err.is_some() {
        return Err("rejected only after releasing everything".into());
    }
    if let Some(n) = requests.filter(|&n| r.heads >= n) {
        return Err(format!("{} heads released of {n} requests", r.heads));
    }
    Ok(())
}

#[test]
fn gunicorn_request_corpus() {
    let dir = corpus_dir();
    let manifest_path = dir.join("manifest.json");
    let manifest = std::fs::read_to_string(&manifest_path).unwrap_or_else(|e| {
        panic!(
            "gunicorn corpus missing: cannot read {} ({e})",
            manifest_path.display()
        )
    });
    let manifest: Value = serde_json::from_str(&manifest).unwrap();
    let cases = manifest["cases"].as_array().unwrap();
    assert!(
        cases.len() > 100,
        "manifest lists only {} cases",
        cases.len()
    );

    let mut failures = Vec::new();
    let (mut ran, mut accepted, mut rejected, mut skipped) = (0, 0, 0, 0);
    for case in cases {
        let id = case["id"].as_str().unwrap();
        let expect = case["expect"].as_str().unwrap();
        if expect == "skip" {
            skipped += 1;
            continue;
        }
        let file = dir.join(case["file"].as_str().unwrap());
        let raw = std::fs::read(&file)
            .unwrap_or_else(|e| panic!("{id}: cannot read {} ({e})", file.display()));
        let input = decode(&raw);
        // Invalid cases list no requests: the count is then unknown.
        let requests = case["requests"]
            .as_array()
            .filter(|list| !list.is_empty())
            .map(|list| list.len() as u64);
        let half_close = case["half_close"].as_bool().unwrap_or(false);
        ran += 1;

        let lenient = || Guard::new(Limits::default()).without_host_rule();
        let whole = run(lenient(), &input, usize::MAX);
        let bytewise = run(lenient(), &input, 1);
        if whole != bytewise {
            failures.push(format!(
                "{id}: byte-by-byte differs: whole {:?}/{} heads, bytewise {:?}/{} heads",
                whole.err, whole.heads, bytewise.err, bytewise.heads
            ));
            continue;
        }
        if std::env::var_os("CORPUS_VERBOSE").is_some() {
            let outcome = match whole.err {
                Some(e) => format!("{} {}", e.status, e.reason),
                None => format!(
                    "{} head(s), {:?}, eof {:?}",
                    whole.heads, whole.phase, whole.eof
                ),
            };
            println!("{id:<50} {expect:<17} {outcome}");
        }
        let acc = accepts(&whole, &input, requests);
        let rej = rejects(&whole, &input, requests, half_close);
        if acc.is_ok() {
            accepted += 1;
        }
        if rej.is_ok() {
            rejected += 1;
        }
        let verdict = match expect {
            "accept" => acc,
            "reject" => rej,
            "accept_or_reject" => acc.or(rej),
            other => Err(format!("unknown expect {other:?}")),
        };
        if let Err(why) = verdict {
            failures.push(format!("{id} (expect {expect}): {why}"));
        }
        let real = run(Guard::new(Limits::default()), &input, usize::MAX);
        let why = match MISSING_HOST.iter().find(|(case, _)| *case == id) {
            Some(&(_, n)) if real.err != Some(Reject::MISSING_HOST) || real.heads != n => {
                format!(
                    "expected {n} head(s) then 400 missing Host, got {} head(s), {:?}",
                    real.heads, real.err
                )
            }
            None if real != whole => format!(
                "the Host rule changes the outcome ({:?}, {} heads), but the case is not \
                 listed in MISSING_HOST",
                real.err, real.heads
            ),
            _ => continue,
        };
        failures.push(format!("{id}: {why}"));
    }
    println!(
        "gunicorn corpus: {ran} run ({accepted} accepted, {rejected} rejected), {skipped} skipped"
    );
    assert!(
        failures.is_empty(),
        "{} corpus case(s) failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

#[test]
fn decoding_follows_the_manifest() {
    let raw = b"GET / HTTP/1.1\\r\\n\nX: a\\x0Db\\tc\\0\\n\\r\\n\n\\r\\n\n";
    assert_eq!(
        decode(raw),
        b"GET / HTTP/1.1\r\nX: a\rb\tc\0\n\r\n\r\n".to_vec()
    );
}
