#![allow(clippy::unwrap_used)]

use super::*;

/// What a driver saw after feeding some input to a guard.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    /// Everything released, concatenated.
    released: Vec<u8>,
    /// Sizes of the individual `Ok(n > 0)` answers.
    pieces: Vec<usize>,
    heads: u64,
    err: Option<Reject>,
    phase: Phase,
}

/// Feed `input` in pieces of the given sizes (the last size repeats), draining what the
/// guard releases after each call, as the connection driver does.
fn feed_with(limits: Limits, input: &[u8], sizes: &[usize]) -> Outcome {
    let mut guard = Guard::new(limits);
    let mut pending: Vec<u8> = Vec::new();
    let mut out = Outcome {
        released: Vec::new(),
        pieces: Vec::new(),
        heads: 0,
        err: None,
        phase: Phase::Idle,
    };
    let mut offset = 0;
    let mut i = 0;
    'outer: loop {
        loop {
            match guard.scan(&pending) {
                Ok(0) => break,
                Ok(n) => {
                    out.released.extend(pending.drain(..n));
                    out.pieces.push(n);
                }
                Err(r) => {
                    out.err = Some(r);
                    // Sticky.
                    assert_eq!(guard.scan(&pending), Err(r));
                    break 'outer;
                }
            }
        }
        if offset == input.len() {
            break;
        }
        let size = sizes[i.min(sizes.len() - 1)].max(1);
        i += 1;
        let end = offset.saturating_add(size).min(input.len());
        pending.extend_from_slice(&input[offset..end]);
        offset = end;
    }
    out.heads = guard.heads_released();
    out.phase = guard.phase();
    out
}

fn feed(input: &[u8]) -> Outcome {
    feed_with(Limits::default(), input, &[usize::MAX])
}

/// Feed in one piece, byte by byte, and split at every point in two: the released bytes,
/// heads and rejection must not depend on how the input arrives.
fn feed_all_ways(limits: Limits, input: &[u8]) -> Outcome {
    let whole = feed_with(limits, input, &[usize::MAX]);
    let same = |o: &Outcome, how: &str| {
        assert_eq!(o.released, whole.released, "released differs ({how})");
        assert_eq!(o.heads, whole.heads, "heads differ ({how})");
        assert_eq!(o.err, whole.err, "rejection differs ({how})");
        assert_eq!(o.phase, whole.phase, "phase differs ({how})");
    };
    same(&feed_with(limits, input, &[1]), "byte by byte");
    for split in 1..input.len() {
        same(
            &feed_with(limits, input, &[split, usize::MAX]),
            &format!("split at {split}"),
        );
    }
    whole
}

fn accepted(input: &[u8]) -> Outcome {
    let o = feed_all_ways(Limits::default(), input);
    assert_eq!(
        o.err,
        None,
        "unexpected rejection of {:?}",
        String::from_utf8_lossy(input)
    );
    assert_eq!(o.released, input, "not all released");
    assert_eq!(o.phase, Phase::Idle);
    o
}

fn rejected_with(limits: Limits, input: &[u8]) -> Reject {
    let o = feed_all_ways(limits, input);
    o.err
        .unwrap_or_else(|| panic!("accepted {:?}", String::from_utf8_lossy(input)))
}

fn rejected(input: &[u8]) -> Reject {
    rejected_with(Limits::default(), input)
}

fn get_with(header: &str) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nHost: a\r\n{header}\r\n\r\n").into_bytes()
}

fn post_with(header: &str, body: &str) -> Vec<u8> {
    format!("POST / HTTP/1.1\r\nHost: a\r\n{header}\r\n\r\n{body}").into_bytes()
}

// ---------------------------------------------------------------- basics

#[test]
fn simple_get_released_whole() {
    let input = b"GET /x?y=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
    let o = accepted(input);
    assert_eq!(o.heads, 1);
    assert_eq!(o.pieces, vec![input.len()]);
}

#[test]
fn head_is_held_until_complete() {
    let mut g = Guard::new(Limits::default());
    assert_eq!(g.phase(), Phase::Idle);
    assert_eq!(g.scan(b""), Ok(0));
    assert_eq!(g.phase(), Phase::Idle);
    let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    for end in 1..head.len() {
        assert_eq!(g.scan(&head[..end]), Ok(0), "released at {end}");
        assert_eq!(g.phase(), Phase::Head);
        assert_eq!(g.heads_released(), 0);
    }
    assert_eq!(g.scan(head), Ok(head.len()));
    assert_eq!(g.heads_released(), 1);
    assert_eq!(g.phase(), Phase::Idle);
}

#[test]
fn bytes_after_head_wait_for_next_call() {
    let mut g = Guard::new(Limits::default());
    let input = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
    assert_eq!(g.scan(input), Ok(input.len() - 3));
    assert_eq!(g.phase(), Phase::Body);
    assert_eq!(g.scan(b"ab"), Ok(2));
    assert_eq!(g.phase(), Phase::Body);
    assert_eq!(g.scan(b"cGET"), Ok(1));
    assert_eq!(g.phase(), Phase::Idle);
    assert_eq!(g.scan(b"GET"), Ok(0));
    assert_eq!(g.phase(), Phase::Head);
}

#[test]
fn pipelined_requests_released_per_message() {
    let a = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n".to_vec();
    let b_head = b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n".to_vec();
    let c_head = b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let c_body = b"3;x=y\r\nabc\r\n0\r\nX-T: 1\r\n\r\n".to_vec();
    let input = [
        a.clone(),
        b_head.clone(),
        b"hello".to_vec(),
        c_head.clone(),
        c_body.clone(),
    ]
    .concat();
    let o = accepted(&input);
    assert_eq!(o.heads, 3);
    // One-shot: each head by its own call, each body up to its end by its own call.
    assert_eq!(
        o.pieces,
        vec![a.len(), b_head.len(), 5, c_head.len(), c_body.len()]
    );
    // Byte by byte: no released piece crosses a message boundary.
    let bounds = [a.len(), a.len() + b_head.len() + 5, input.len()];
    let o = feed_with(Limits::default(), &input, &[1]);
    let mut at = 0;
    for piece in o.pieces {
        for &b in &bounds {
            assert!(
                !(at < b && at + piece > b),
                "piece {at}+{piece} crosses {b}"
            );
        }
        at += piece;
    }
}

#[test]
fn pipelined_bad_second_request_keeps_first() {
    let first = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
    let input = [&first[..], b"GET /b HTTP/1.1\r\nHost : h\r\n\r\n"].concat();
    let o = feed_all_ways(Limits::default(), &input);
    assert_eq!(o.err, Some(Reject::BAD_FIELD_NAME));
    assert_eq!(o.released, first);
    assert_eq!(o.heads, 1);
}

#[test]
fn no_body_framing_means_no_body() {
    // RFC 9112 §6.3: the bytes after the head are the next request.
    let input = b"POST /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n";
    assert_eq!(accepted(input).heads, 2);
}

// ---------------------------------------------------------------- request line

#[test]
fn request_line_limit() {
    let limits = Limits {
        request_line: 20,
        ..Limits::default()
    };
    // "GET /aaaaaaaa HTTP/1.1" is 22 bytes.
    let ok = b"GET /aaaaaa HTTP/1.1\r\nHost: a\r\n\r\n"; // 20 bytes
    let o = feed_all_ways(limits, ok);
    assert_eq!(o.err, None);
    assert_eq!(o.heads, 1);
    assert_eq!(
        rejected_with(limits, b"GET /aaaaaaa HTTP/1.1\r\nHost: a\r\n\r\n"),
        Reject::LINE_TOO_LONG
    );
    // Detected before any line end arrives.
    let mut g = Guard::new(limits);
    assert_eq!(g.scan(&[b'A'; 21]), Ok(0));
    assert_eq!(g.scan(&[b'A'; 22]), Err(Reject::LINE_TOO_LONG));
    // 0 means gunicorn's "unlimited": the long line is accepted.
    let limits = Limits {
        request_line: 0,
        ..Limits::default()
    };
    let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(10_000));
    assert_eq!(feed_with(limits, long.as_bytes(), &[usize::MAX]).heads, 1);
}

#[test]
fn methods() {
    accepted(b"PATCH / HTTP/1.1\r\nHost: a\r\n\r\n");
    accepted(b"-BLARGH /foo HTTP/1.1\r\nHost: a\r\n\r\n");
    accepted(b"M-SEARCH / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(
        rejected(b"get / HTTP/1.1\r\nHost: a\r\n\r\n"),
        Reject::BAD_METHOD
    );
    assert_eq!(
        rejected(b"-bl /foo HTTP/1.1\r\nHost: a\r\n\r\n"),
        Reject::BAD_METHOD
    );
    assert_eq!(
        rejected(b"GET: / HTTP/1.1\r\nHost: a\r\n\r\n"),
        Reject::BAD_METHOD
    );
    assert_eq!(
        rejected(b"GE\x00T / HTTP/1.1\r\nHost: a\r\n\r\n"),
        Reject::BAD_METHOD
    );
    assert_eq!(
        rejected(b"G\xc3\x9fT / HTTP/1.1\r\nHost: a\r\n\r\n"),
        Reject::BAD_METHOD
    );
    assert_eq!(
        rejected(b"GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"),
        Reject::BAD_METHOD
    );
}

#[test]
fn request_line_shape() {
    assert_eq!(
        rejected(b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n"),
        Reject::BAD_REQUEST_LINE
    );
    assert_eq!(
        rejected(b" GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        Reject::BAD_REQUEST_LINE
    );
    assert_eq!(
        rejected(b"GET HTTP/1.1\r\nHost: a\r\n\r\n"),
        Reject::BAD_REQUEST_LINE
    );
    assert_eq!(rejected(b"GET\r\n\r\n"), Reject::BAD_REQUEST_LINE);
    assert_eq!(
        rejected(b"GET /  HTTP/1.1\r\nHost: a\r\n\r\n"),
        Reject::BAD_VERSION
    );
    assert_eq!(rejected(b"GET / HTTP/1.1 \r\n\r\n"), Reject::BAD_VERSION);
}

#[test]
fn versions() {
    accepted(b"GET / HTTP/1.0\r\n\r\n");
    accepted(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(
        rejected(b"GET / HTTP/2.0\r\n\r\n"),
        Reject::UNSUPPORTED_VERSION
    );
    assert_eq!(
        rejected(b"GET / HTTP/1.2\r\n\r\n"),
        Reject::UNSUPPORTED_VERSION
    );
    assert_eq!(
        rejected(b"GET / HTTP/0.9\r\n\r\n"),
        Reject::UNSUPPORTED_VERSION
    );
    for bad in [
        &b"HTTP/111"[..],
        b"HTTP/0.99",
        b"http/1.1",
        b"FTP/1.1",
        b"HTTP/1.1.1",
        b"HTTP/1",
        b"HTTP/11111111111111111.1",
    ] {
        let input = [&b"GET / "[..], bad, b"\r\n\r\n"].concat();
        assert_eq!(rejected(&input), Reject::BAD_VERSION, "{bad:?}");
    }
}

#[test]
fn request_targets() {
    accepted(b"GET /a/b?c=d&e=%20 HTTP/1.1\r\nHost: a\r\n\r\n");
    accepted(b"GET ///x HTTP/1.1\r\nHost: a\r\n\r\n");
    accepted(b"GET http://example.com/foo?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
    accepted(b"GET http://[::1]:8080/foo HTTP/1.1\r\nHost: a\r\n\r\n");
    accepted(b"GET https://example.com HTTP/1.1\r\nHost: a\r\n\r\n");
    accepted(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    // A well-formed CONNECT is refused as unsupported (501), not as malformed (400).
    for ok_form in [
        &b"CONNECT example.com:443 HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"CONNECT [::1]:443 HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        let o = feed_all_ways(Limits::default(), ok_form);
        assert_eq!(o.err, Some(Reject::CONNECT_UNSUPPORTED));
        assert_eq!(o.heads, 0);
    }
    for bad in [
        &b"GET * HTTP/1.1"[..],
        b"GET example.com:443 HTTP/1.1",
        b"GET foo/bar HTTP/1.1",
        b"PUT s://]ufd/: HTTP/1.1",
        b"GET http:///x HTTP/1.1",
        b"GET 1http://a/ HTTP/1.1",
        b"CONNECT example.com HTTP/1.1",
        b"CONNECT /x HTTP/1.1",
        b"CONNECT a:b HTTP/1.1",
        b"GET /a\x7fb HTTP/1.1",
        b"GET /a\x01b HTTP/1.1",
    ] {
        let input = [bad, b"\r\n\r\n"].concat();
        assert_eq!(
            rejected(&input),
            Reject::BAD_TARGET,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn leading_empty_lines() {
    let o = accepted(b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(o.heads, 1);
    let many = format!(
        "{}GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "\r\n".repeat(MAX_EMPTY_LINES + 1)
    );
    assert_eq!(rejected(many.as_bytes()), Reject::BAD_REQUEST_LINE);
    assert_eq!(
        rejected(b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        Reject::BAD_LINE_ENDING
    );
    // Stray CRLF after a body, then EOF: an empty head is dropped.
    let mut g = Guard::new(Limits::default());
    assert_eq!(g.scan(b"\r\n"), Ok(0));
    assert_eq!(g.phase(), Phase::Head);
    assert_eq!(g.at_eof(), Ok(()));
}

#[test]
fn bare_lf_and_cr() {
    assert_eq!(
        rejected(b"GET / HTTP/1.1\nHost: a\r\n\r\n"),
        Reject::BAD_LINE_ENDING
    );
    assert_eq!(
        rejected(b"GET / HTTP/1.1\r\nHost: a\n\r\n"),
        Reject::BAD_LINE_ENDING
    );
    assert_eq!(
        rejected(b"GET / HTTP/1.1\r\nHost: a\r\n\n"),
        Reject::BAD_LINE_ENDING
    );
    assert_eq!(
        rejected(b"GET\n/\nHTTP/1.1\r\nHost: a\r\n\r\n"),
        Reject::BAD_LINE_ENDING
    );
    assert_eq!(rejected(&get_with("X: a\rb")), Reject::BAD_LINE_ENDING);
    assert_eq!(
        rejected(b"GET / HTTP/1.1\r\r\n\r\n"),
        Reject::BAD_LINE_ENDING
    );
}

// ---------------------------------------------------------------- header fields

#[test]
fn field_syntax() {
    accepted(&get_with("X.Custom|Pipe_: ok"));
    accepted(&get_with("X-Empty:"));
    accepted(&get_with("X-Tab:\tabc\t"));
    accepted(&get_with("Name: \t value \t "));
    accepted(&get_with("X-Value: caf\u{e9}"));
    accepted(&get_with("X-Quotes: \"a\" (b) {c}"));
    assert_eq!(
        rejected(&get_with("Content-Length : 3")),
        Reject::BAD_FIELD_NAME
    );
    assert_eq!(rejected(&get_with("X\t: 3")), Reject::BAD_FIELD_NAME);
    assert_eq!(rejected(&get_with(": 3")), Reject::BAD_FIELD_NAME);
    assert_eq!(rejected(&get_with("no colon")), Reject::BAD_FIELD_NAME);
    assert_eq!(rejected(&get_with("ba\0z: bar")), Reject::BAD_FIELD_NAME);
    assert_eq!(rejected(&get_with("X\u{df}: bar")), Reject::BAD_FIELD_NAME);
    assert_eq!(rejected(&get_with("X: a\0b")), Reject::BAD_FIELD_VALUE);
    assert_eq!(rejected(&get_with("X: a\x07b")), Reject::BAD_FIELD_VALUE);
    assert_eq!(rejected(&get_with("X: a\x7fb")), Reject::BAD_FIELD_VALUE);
    assert_eq!(rejected(&get_with("X: a\x0bb")), Reject::BAD_FIELD_VALUE);
}

#[test]
fn obs_fold_rejected() {
    assert_eq!(rejected(&get_with("Long: one\r\n two")), Reject::OBS_FOLD);
    assert_eq!(rejected(&get_with("Long: one\r\n\ttwo")), Reject::OBS_FOLD);
    // Whitespace between the request line and the first field (RFC 9112 §2.2).
    assert_eq!(
        rejected(b"GET / HTTP/1.1\r\n Host: a\r\n\r\n"),
        Reject::OBS_FOLD
    );
}

#[test]
fn field_count_limit() {
    let limits = Limits {
        fields: 2,
        ..Limits::default()
    };
    let two = b"GET / HTTP/1.1\r\nHost: a\r\nB: 2\r\n\r\n";
    assert_eq!(feed_all_ways(limits, two).err, None);
    let three = b"GET / HTTP/1.1\r\nHost: a\r\nB: 2\r\nC: 3\r\n\r\n";
    assert_eq!(rejected_with(limits, three), Reject::TOO_MANY_FIELDS);
    let many: String = (0..101).map(|i| format!("H{i}: {i}\r\n")).collect();
    let input = format!("GET / HTTP/1.1\r\n{many}\r\n");
    assert_eq!(rejected(input.as_bytes()), Reject::TOO_MANY_FIELDS);
}

#[test]
fn field_size_limit() {
    let limits = Limits {
        field_size: 10,
        ..Limits::default()
    };
    assert_eq!(feed_all_ways(limits, &get_with("X: 1234567")).err, None); // 10 bytes
    assert_eq!(
        rejected_with(limits, &get_with("X: 12345678")),
        Reject::FIELD_TOO_LONG
    );
    // Detected before the line ends.
    let mut g = Guard::new(limits);
    let head = b"GET / HTTP/1.1\r\nX: 12345678"; // 11 bytes: may still end in CR
    assert_eq!(g.scan(head), Ok(0));
    assert_eq!(
        g.scan(&[&head[..], b"9"].concat()),
        Err(Reject::FIELD_TOO_LONG)
    );
    // Default: 8190 bytes fine, 8191 too long.
    let ok = format!("X: {}", "y".repeat(8187));
    accepted(&get_with(&ok)[..]);
    let long = format!("X: {}", "y".repeat(8188));
    assert_eq!(feed(&get_with(&long)).err, Some(Reject::FIELD_TOO_LONG));
}

#[test]
fn head_total_limit() {
    let limits = Limits {
        request_line: 100,
        fields: 1000,
        field_size: 100,
        body: None,
    };
    assert_eq!(limits.max_head_len(), 16 + 100 + 2 + 1000 * 102 + 2);
    // Fields within their own limits but never ending: bounded by the count.
    let mut g = Guard::new(limits);
    let mut buf = b"GET / HTTP/1.1\r\n".to_vec();
    let mut err = None;
    for i in 0..2000 {
        buf.extend_from_slice(format!("H{i:04}: {}\r\n", "v".repeat(90)).as_bytes());
        match g.scan(&buf) {
            Ok(0) => {}
            Ok(n) => panic!("released {n}"),
            Err(r) => {
                err = Some(r);
                break;
            }
        }
    }
    assert_eq!(err, Some(Reject::TOO_MANY_FIELDS));
}

#[test]
fn header_search_is_incremental() {
    // A big head fed byte by byte must not be rescanned from the start on every call.
    let many: String = (0..99)
        .map(|i| format!("H{i}: {}\r\n", "v".repeat(8000)))
        .collect();
    let input = format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n");
    let start = std::time::Instant::now();
    let o = feed_with(Limits::default(), input.as_bytes(), &[1]);
    assert_eq!(o.err, None);
    assert_eq!(o.heads, 1);
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
}

/// The host a released head is for, as text.
fn host_of(input: &[u8]) -> Option<String> {
    let mut g = Guard::new(Limits::default());
    assert_eq!(
        g.scan(input),
        Ok(input.len()),
        "{:?}",
        String::from_utf8_lossy(input)
    );
    let info = g.take_head().unwrap();
    info.host
        .map(|(s, e)| String::from_utf8(input[s as usize..e as usize].to_vec()).unwrap())
}

#[test]
fn host_fields() {
    // RFC 9112 §3.2: an HTTP/1.1 request without Host is a 400; HTTP/1.0 predates Host.
    assert_eq!(rejected(b"GET / HTTP/1.1\r\n\r\n"), Reject::MISSING_HOST);
    assert_eq!(
        rejected(b"GET / HTTP/1.1\r\nX-Host: a\r\n\r\n"),
        Reject::MISSING_HOST
    );
    assert_eq!(
        rejected(b"GET http://a/ HTTP/1.1\r\n\r\n"),
        Reject::MISSING_HOST
    );
    assert_eq!(
        rejected(b"OPTIONS * HTTP/1.1\r\n\r\n"),
        Reject::MISSING_HOST
    );
    accepted(b"GET / HTTP/1.0\r\n\r\n");
    accepted(b"GET / HTTP/1.1\r\nhOsT: a\r\n\r\n");
    // Pipelined: the request without Host is refused, the one before it is released.
    let first = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
    let o = feed_all_ways(
        Limits::default(),
        &[&first[..], b"GET /b HTTP/1.1\r\n\r\n"].concat(),
    );
    assert_eq!(o.err, Some(Reject::MISSING_HOST));
    assert_eq!((o.heads, &o.released[..]), (1, &first[..]));
    // ... and so are more than one Host, whatever their values.
    assert_eq!(
        rejected(&get_with("Host: evil.example.com")),
        Reject::DUP_HOST
    );
    assert_eq!(rejected(&get_with("host: a")), Reject::DUP_HOST);
    // A Host value is `uri-host [":" port]` (RFC 9110 §7.2); empty is allowed (a target
    // without an authority).
    for ok in [
        "",
        "a",
        "example.com",
        "example.com:8080",
        "EXAMPLE.com.:80",
        "127.0.0.1:8000",
        "[::1]",
        "[::1]:8000",
        "my_host-1.example~x",
        "xn--bcher-kva.example",
        "a:",
    ] {
        accepted(format!("GET / HTTP/1.1\r\nHost: {ok}\r\n\r\n").as_bytes());
    }
    for bad in [
        "a b",
        "a/b",
        "a?b",
        "a#b",
        "user@a",
        "a:80:90",
        "a:8x",
        ":80",
        "[::1",
        "[]",
        "::1",
        "caf\u{e9}.example",
        "a\"b",
    ] {
        let input = format!("GET / HTTP/1.1\r\nHost: {bad}\r\n\r\n");
        assert_eq!(rejected(input.as_bytes()), Reject::BAD_HOST, "{bad:?}");
    }
    // Also in HTTP/1.0, where Host is optional but must be valid when sent.
    assert_eq!(
        rejected(b"GET / HTTP/1.0\r\nHost: a b\r\n\r\n"),
        Reject::BAD_HOST
    );
}

#[test]
fn host_of_the_request() {
    // Origin-form: the Host value, trimmed.
    assert_eq!(
        host_of(b"GET /x HTTP/1.1\r\nA: 1\r\nHost:  example.com:8080 \r\n\r\n").as_deref(),
        Some("example.com:8080")
    );
    assert_eq!(
        host_of(b"GET / HTTP/1.1\r\nHost:\r\n\r\n").as_deref(),
        Some("")
    );
    assert_eq!(host_of(b"GET / HTTP/1.0\r\n\r\n"), None);
    // Absolute-form: the target's authority wins over Host (RFC 9112 §3.2.2), without
    // userinfo, with its port if it has one.
    assert_eq!(
        host_of(b"GET http://example.com:8080/p?q HTTP/1.1\r\nHost: other\r\n\r\n").as_deref(),
        Some("example.com:8080")
    );
    assert_eq!(
        host_of(b"GET https://u:pw@example.com HTTP/1.1\r\nHost: other\r\n\r\n").as_deref(),
        Some("example.com")
    );
    assert_eq!(
        host_of(b"GET http://[::1]:81?q HTTP/1.1\r\nHost: other\r\n\r\n").as_deref(),
        Some("[::1]:81")
    );
    assert_eq!(
        host_of(b"GET http://a.example/x HTTP/1.0\r\n\r\n").as_deref(),
        Some("a.example")
    );
    // Asterisk-form: Host.
    assert_eq!(
        host_of(b"OPTIONS * HTTP/1.1\r\nHost: h:1\r\n\r\n").as_deref(),
        Some("h:1")
    );
}

// ---------------------------------------------------------------- framing

#[test]
fn content_length_body() {
    let o = accepted(&post_with("Content-Length: 5", "hello"));
    assert_eq!(o.heads, 1);
    accepted(&post_with("Content-Length: 0", ""));
    accepted(&post_with("Content-Length: 005", "hello"));
    accepted(&post_with("conTENT-length:\t5\t", "hello"));
    // Partial body: phase Body, EOF is an error.
    let mut g = Guard::new(Limits::default());
    let input = post_with("Content-Length: 5", "hel");
    let head_len = input.len() - 3;
    assert_eq!(g.scan(&input), Ok(head_len));
    assert_eq!(g.scan(b"hel"), Ok(3));
    assert_eq!(g.phase(), Phase::Body);
    assert_eq!(g.at_eof(), Err(Reject::INCOMPLETE_BODY));
}

#[test]
fn content_length_syntax() {
    for bad in [
        "-1",
        "+1",
        "-0",
        "0_1",
        "0x5",
        "1 2",
        "3 1",
        "5, 5",
        "5,5",
        "",
        "bla-bla-bla",
        "1e3",
        "18446744073709551616",
    ] {
        let input = post_with(&format!("Content-Length: {bad}"), "");
        assert_eq!(rejected(&input), Reject::BAD_CONTENT_LENGTH, "{bad:?}");
    }
    assert_eq!(
        rejected(&post_with("Content-Length: 3\r\nContent-Length: 3", "abc")),
        Reject::DUP_CONTENT_LENGTH
    );
    assert_eq!(
        rejected(&post_with("Content-Length: 3\r\nContent-Length: 2", "abc")),
        Reject::DUP_CONTENT_LENGTH
    );
    // Underscore spellings are other fields, not framing.
    let o = accepted(&post_with(
        "Content_Length: -1E23\r\nContent-Length: 2",
        "ab",
    ));
    assert_eq!(o.heads, 1);
}

#[test]
fn body_limit() {
    let limits = Limits {
        body: Some(5),
        ..Limits::default()
    };
    assert_eq!(
        feed_all_ways(limits, &post_with("Content-Length: 5", "hello")).err,
        None
    );
    assert_eq!(
        rejected_with(limits, &post_with("Content-Length: 6", "hello!")),
        Reject::BODY_TOO_LARGE
    );
    let te = "Transfer-Encoding: chunked";
    assert_eq!(
        feed_all_ways(limits, &post_with(te, "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")).err,
        None
    );
    let o = feed_all_ways(limits, &post_with(te, "3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"));
    assert_eq!(o.err, Some(Reject::BODY_TOO_LARGE));
    // The first chunk was released; the oversized one was not.
    assert!(o.released.ends_with(b"3\r\nabc\r\n"));
}

#[test]
fn transfer_encoding_rules() {
    let body = "5\r\nhello\r\n0\r\n\r\n";
    accepted(&post_with("Transfer-Encoding: chunked", body));
    accepted(&post_with("Transfer-Encoding: \tCHUNKED ", body));
    accepted(&post_with("Transfer-Encoding: , chunked", body));
    let cases: [(&str, Reject); 12] = [
        (
            "Transfer-Encoding: chunked\r\nContent-Length: 15",
            Reject::TE_WITH_CL,
        ),
        (
            "Content-Length: 15\r\nTransfer-Encoding: chunked",
            Reject::TE_WITH_CL,
        ),
        (
            "Transfer-Encoding: identity\r\nContent-Length: 5",
            Reject::TE_WITH_CL,
        ),
        ("Transfer-Encoding: gzip", Reject::BAD_TE),
        ("Transfer-Encoding: chunked, gzip", Reject::BAD_TE),
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity",
            Reject::BAD_TE,
        ),
        ("Transfer-Encoding: chunked, chunked", Reject::BAD_TE),
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
            Reject::BAD_TE,
        ),
        ("Transfer-Encoding: chunked;q=1", Reject::BAD_TE),
        ("Transfer-Encoding:", Reject::BAD_TE),
        ("Transfer-Encoding: gzip, chunked", Reject::UNSUPPORTED_TE),
        (
            "Transfer-Encoding: identity\r\nTransfer-Encoding: chunked",
            Reject::UNSUPPORTED_TE,
        ),
    ];
    for (header, want) in cases {
        assert_eq!(rejected(&post_with(header, body)), want, "{header:?}");
    }
    let http10 = format!("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n{body}");
    assert_eq!(rejected(http10.as_bytes()), Reject::TE_HTTP10);
}

#[test]
fn expect_continue_flag() {
    let mut g = Guard::new(Limits::default());
    let a = post_with("Expect: 100-Continue\r\nContent-Length: 1", "x");
    assert_eq!(g.scan(&a), Ok(a.len() - 1));
    assert!(g.expects_continue());
    assert_eq!(g.scan(b"x"), Ok(1));
    let b = get_with("X: 1");
    assert_eq!(g.scan(&b), Ok(b.len()));
    assert!(!g.expects_continue());
}

// ---------------------------------------------------------------- chunked bodies

const TE: &str = "Transfer-Encoding: chunked";

#[test]
fn chunked_with_extensions_and_trailers() {
    for body in [
        "1e\r\nall your base are belong to us\r\n0\r\n\r\n",
        "5\r\nhello\r\n6\r\n world\r\n000\r\n\r\n",
        "5\r\nhello\r\n6\r\n world\r\n0\r\nVary: *\r\nContent-Type: text/plain\r\n\r\n",
        "5; some; parameters=stuff\r\nhello\r\n6; blahblah; blah\r\n world\r\n0\r\n\r\n",
        "5;foo=\"bar baz\"\r\nhello\r\n0\r\n\r\n",
        "5;foo=\"a\\\"b\"\r\nhello\r\n0;last\r\n\r\n",
        "5 ;foo\r\nhello\r\n0\r\n\r\n",
        "0005\r\nhello\r\n0\r\n\r\n",
        "A\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n",
        "ffffffffffffffff\r\n",
    ] {
        let input = post_with(TE, body);
        let o = feed_all_ways(Limits::default(), &input);
        assert_eq!(o.err, None, "{body:?}");
        assert_eq!(o.released, input, "{body:?}");
        assert_eq!(o.heads, 1);
    }
}

#[test]
fn chunk_data_streams_but_framing_lines_are_held() {
    let mut g = Guard::new(Limits::default());
    let head = post_with(TE, "");
    assert_eq!(g.scan(&head), Ok(head.len()));
    assert_eq!(g.phase(), Phase::Body);
    assert_eq!(g.scan(b"5"), Ok(0));
    assert_eq!(g.scan(b"5\r"), Ok(0));
    assert_eq!(g.scan(b"5\r\nhe"), Ok(5));
    assert_eq!(g.scan(b"llo"), Ok(3));
    assert_eq!(g.scan(b"\r"), Ok(0));
    assert_eq!(g.scan(b"\r\n0\r\nX-T"), Ok(5));
    assert_eq!(g.phase(), Phase::Body);
    assert_eq!(g.scan(b"X-T: 1\r\n"), Ok(8));
    assert_eq!(g.scan(b"\r\n"), Ok(2));
    assert_eq!(g.phase(), Phase::Idle);
    assert_eq!(g.at_eof(), Ok(()));
}

#[test]
fn chunked_errors() {
    let cases: [(&str, Reject); 15] = [
        (
            "5\r\nhello\r\n6_0\r\n world\r\n0\r\n\r\n",
            Reject::BAD_CHUNK_SIZE,
        ),
        ("5\r\nhello\r\n0 \r\n\r\n", Reject::BAD_CHUNK_SIZE),
        ("5\r\nhello\r\n 0\r\n\r\n", Reject::BAD_CHUNK_SIZE),
        ("5\n;\r\nhello\r\n0\r\n\r\n", Reject::BAD_LINE_ENDING),
        (" ;foo=bar\r\nhello\r\n0\r\n\r\n", Reject::BAD_CHUNK_SIZE),
        ("\r\nhello\r\n0\r\n\r\n", Reject::BAD_CHUNK_SIZE),
        ("-5\r\nhello\r\n0\r\n\r\n", Reject::BAD_CHUNK_SIZE),
        ("+5\r\nhello\r\n0\r\n\r\n", Reject::BAD_CHUNK_SIZE),
        ("0x5\r\nhello\r\n0\r\n\r\n", Reject::BAD_CHUNK_SIZE),
        ("10000000000000000\r\n", Reject::BAD_CHUNK_SIZE),
        (
            "5;ext=val\rue\r\nhello\r\n0\r\n\r\n",
            Reject::BAD_LINE_ENDING,
        ),
        ("5;\r\nhello\r\n0\r\n\r\n", Reject::BAD_CHUNK_EXT),
        ("5;a=\"x\r\nhello\r\n0\r\n\r\n", Reject::BAD_CHUNK_EXT),
        ("5;a b\r\nhello\r\n0\r\n\r\n", Reject::BAD_CHUNK_EXT),
        ("5\r\nhelloXY0\r\n\r\n", Reject::BAD_CHUNK_END),
    ];
    for (body, want) in cases {
        let input = post_with(TE, body);
        let o = feed_all_ways(Limits::default(), &input);
        assert_eq!(o.err, Some(want), "{body:?}");
        assert_eq!(o.heads, 1);
        assert!(o.released.len() < input.len());
    }
    // Missing final CRLF, then EOF.
    let mut g = Guard::new(Limits::default());
    let input = post_with(TE, "0\r\n");
    assert_eq!(g.scan(&input), Ok(input.len() - 3));
    assert_eq!(g.scan(b"0\r\n"), Ok(3));
    assert_eq!(g.phase(), Phase::Body);
    assert_eq!(g.at_eof(), Err(Reject::INCOMPLETE_BODY));
}

#[test]
fn chunk_line_and_extension_bounds() {
    let long_ext = format!("5;x={}\r\nhello\r\n0\r\n\r\n", "a".repeat(MAX_CHUNK_LINE));
    assert_eq!(rejected(&post_with(TE, &long_ext)), Reject::BAD_CHUNK_EXT);
    // Never-ending size line is cut off without a line end.
    let mut g = Guard::new(Limits::default());
    let head = post_with(TE, "");
    assert_eq!(g.scan(&head), Ok(head.len()));
    let endless = [b"5;x=".as_slice(), &[b'a'; MAX_CHUNK_LINE]].concat();
    assert_eq!(g.scan(&endless), Err(Reject::BAD_CHUNK_EXT));
    // Many chunks with moderate extensions add up.
    let chunk = format!("1;x={}\r\na\r\n", "b".repeat(1000));
    let body = format!("{}0\r\n\r\n", chunk.repeat(20));
    assert_eq!(feed(&post_with(TE, &body)).err, Some(Reject::BAD_CHUNK_EXT));
}

#[test]
fn trailer_rules() {
    for name in [
        "Content-Length",
        "host",
        "Transfer-Encoding",
        "Connection",
        "Trailer",
    ] {
        let body = format!("5\r\nhello\r\n0\r\n{name}: 1\r\n\r\n");
        assert_eq!(
            rejected(&post_with(TE, &body)),
            Reject::FORBIDDEN_TRAILER,
            "{name}"
        );
    }
    let bad = [
        ("0\r\n folded\r\n\r\n", Reject::OBS_FOLD),
        ("0\r\nX : 1\r\n\r\n", Reject::BAD_FIELD_NAME),
        ("0\r\nX: \x01\r\n\r\n", Reject::BAD_FIELD_VALUE),
        ("0\r\nX: 1\n\r\n", Reject::BAD_LINE_ENDING),
        ("0\r\n\n", Reject::BAD_LINE_ENDING),
    ];
    for (body, want) in bad {
        assert_eq!(rejected(&post_with(TE, body)), want, "{body:?}");
    }
    let limits = Limits {
        fields: 2,
        field_size: 30,
        ..Limits::default()
    };
    let head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    let ok = format!("{head}0\r\nA: 1\r\nB: 2\r\n\r\n");
    assert_eq!(feed_all_ways(limits, ok.as_bytes()).err, None);
    let many = format!("{head}0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n");
    assert_eq!(
        rejected_with(limits, many.as_bytes()),
        Reject::TOO_MANY_FIELDS
    );
    let long = format!("{head}0\r\nA: {}\r\n\r\n", "x".repeat(28));
    assert_eq!(
        rejected_with(limits, long.as_bytes()),
        Reject::FIELD_TOO_LONG
    );
}

#[test]
fn valid_prefix_released_before_rejection() {
    let mut g = Guard::new(Limits::default());
    let head = post_with(TE, "");
    assert_eq!(g.scan(&head), Ok(head.len()));
    let body = b"5\r\nhello\r\nzz\r\n";
    assert_eq!(g.scan(body), Ok(10));
    assert_eq!(g.phase(), Phase::Body);
    assert_eq!(g.scan(&body[10..]), Err(Reject::BAD_CHUNK_SIZE));
    assert_eq!(g.scan(&body[10..]), Err(Reject::BAD_CHUNK_SIZE));
}

// ---------------------------------------------------------------- connection end

#[test]
fn closing_messages_end_the_stream() {
    for first in [
        &b"GET /first HTTP/1.0\r\n\r\n"[..],
        b"GET /first HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n",
        b"GET /first HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n",
        b"POST /first HTTP/1.0\r\nContent-Length: 2\r\n\r\nab",
    ] {
        // Whatever follows (a request, or garbage) is neither released nor judged.
        for rest in [
            &b"GET /second HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"\x00garbage\n",
        ] {
            let input = [first, rest].concat();
            let o = feed_all_ways(Limits::default(), &input);
            assert_eq!(o.err, None);
            assert_eq!(o.released, first);
            assert_eq!(o.heads, 1);
            assert_eq!(o.phase, Phase::Idle);
        }
    }
    let mut g = Guard::new(Limits::default());
    let first = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    assert_eq!(g.scan(first), Ok(first.len()));
    assert!(g.is_closed());
    assert_eq!(g.scan(b"junk"), Ok(0));
    assert_eq!(g.at_eof(), Ok(()));
}

#[test]
fn http10_keep_alive_continues() {
    let input =
        b"GET /first HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\nGET /second HTTP/1.1\r\nHost: a\r\n\r\n";
    let o = accepted(input);
    assert_eq!(o.heads, 2);
}

#[test]
fn eof_handling() {
    let g = Guard::new(Limits::default());
    assert_eq!(g.at_eof(), Ok(()));
    let mut g = Guard::new(Limits::default());
    assert_eq!(g.scan(b"GET /foo/bar HTTP/1.0\r\nbaz"), Ok(0));
    assert_eq!(g.phase(), Phase::Head);
    assert_eq!(g.at_eof(), Ok(()));
    assert_eq!(g.heads_released(), 0);
}

// ---------------------------------------------------------------- responses

#[test]
fn reject_response_bytes() {
    let r = Reject::BAD_FIELD_NAME;
    let bytes = r.response_bytes();
    let text = String::from_utf8(bytes).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    assert_eq!(lines.next(), Some("HTTP/1.1 400 Bad Request"));
    let fields: Vec<&str> = lines.collect();
    assert!(fields.contains(&"Content-Type: text/plain; charset=utf-8"));
    assert!(fields.contains(&"Connection: close"));
    assert!(fields.contains(&format!("Content-Length: {}", body.len()).as_str()));
    assert_eq!(body, "Bad Request: invalid header name\n");
    for (r, line) in [
        (Reject::LINE_TOO_LONG, "HTTP/1.1 414 URI Too Long"),
        (
            Reject::TOO_MANY_FIELDS,
            "HTTP/1.1 431 Request Header Fields Too Large",
        ),
        (Reject::BODY_TOO_LARGE, "HTTP/1.1 413 Content Too Large"),
        (Reject::UNSUPPORTED_TE, "HTTP/1.1 501 Not Implemented"),
        (
            Reject::UNSUPPORTED_VERSION,
            "HTTP/1.1 505 HTTP Version Not Supported",
        ),
    ] {
        let text = String::from_utf8(r.response_bytes()).unwrap();
        assert!(text.starts_with(&format!("{line}\r\n")), "{text}");
        assert!(text.ends_with('\n') && !text.ends_with("\n\n"));
    }
}
