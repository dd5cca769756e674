//! The opening handshake in the server's role (RFC 6455 §4.2): decide whether a request is a
//! WebSocket upgrade and a valid one, compute `Sec-WebSocket-Accept`, read the subprotocols
//! the client offers, and build the 101 response's fields.
//!
//! SHA-1 (RFC 3174) and base64 (RFC 4648) are small enough to keep here rather than add
//! dependencies for: the handshake is their only use, and SHA-1 serves no security purpose in
//! it (§10.8: the accept key only proves the server read the request).

use crate::request::{HeaderBlock, HeaderError, RequestHead};

use super::deflate::DeflateParams;

/// The GUID RFC 6455 §1.3 appends to the client's key.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A request that asks for a WebSocket (`Upgrade` lists `websocket`), valid or not. Such a
/// request takes the WebSocket path; [`validate`] then says whether it may switch.
pub fn is_websocket_request(head: &RequestHead) -> bool {
    head.fields()
        .any(|(n, v)| n.eq_ignore_ascii_case(b"upgrade") && list_has(v, b"websocket"))
}

/// Whether a comma-separated field value lists `token` (ASCII case-insensitive).
fn list_has(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// Why a WebSocket request cannot switch protocols, and how to answer it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `Sec-WebSocket-Version` is not 13: answer 426 with `Sec-WebSocket-Version: 13`
    /// (§4.2.2, §4.4).
    Version,
    /// Anything else malformed: answer 400 (§4.2.1).
    Malformed(&'static str),
}

impl Refusal {
    /// The status to answer with.
    pub fn status(self) -> u16 {
        match self {
            Refusal::Version => 426,
            Refusal::Malformed(_) => 400,
        }
    }

    /// The fields the answer needs (the versions we speak, for a 426).
    pub fn headers(self) -> HeaderBlock {
        let mut h = HeaderBlock::default();
        if self == Refusal::Version {
            h.push_trusted(b"Sec-WebSocket-Version", b"13");
        }
        h
    }

    /// Why, for the log or the answer's body.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Version => "unsupported Sec-WebSocket-Version (13 is spoken)",
            Refusal::Malformed(why) => why,
        }
    }
}

/// A valid opening handshake: what the 101 needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshake {
    /// `Sec-WebSocket-Accept` for the client's key.
    pub accept: [u8; 28],
}

/// Check an upgrade request against RFC 6455 §4.2.1: `GET`, HTTP/1.1, `Upgrade:
/// websocket`, `Connection` listing `upgrade`, `Sec-WebSocket-Version: 13` and one
/// `Sec-WebSocket-Key` that is 16 bytes in base64.
pub fn validate(head: &RequestHead) -> Result<Handshake, Refusal> {
    if head.method() != b"GET" {
        return Err(Refusal::Malformed("a WebSocket handshake must be a GET"));
    }
    if head.http10() {
        return Err(Refusal::Malformed("a WebSocket handshake needs HTTP/1.1"));
    }
    if !is_websocket_request(head) {
        return Err(Refusal::Malformed("Upgrade does not list websocket"));
    }
    if !head
        .fields()
        .any(|(n, v)| n.eq_ignore_ascii_case(b"connection") && list_has(v, b"upgrade"))
    {
        return Err(Refusal::Malformed("Connection does not list upgrade"));
    }
    let mut version = None;
    let mut key = None;
    for (n, v) in head.fields() {
        if n.eq_ignore_ascii_case(b"sec-websocket-version") {
            if version.replace(v).is_some() {
                return Err(Refusal::Version);
            }
        } else if n.eq_ignore_ascii_case(b"sec-websocket-key") && key.replace(v).is_some() {
            return Err(Refusal::Malformed("more than one Sec-WebSocket-Key"));
        }
    }
    match version {
        None => return Err(Refusal::Malformed("no Sec-WebSocket-Version")),
        Some(v) if v != b"13" => return Err(Refusal::Version),
        Some(_) => {}
    }
    let key = key.ok_or(Refusal::Malformed("no Sec-WebSocket-Key"))?;
    if base64_decode(key).map(|k| k.len()) != Some(16) {
        return Err(Refusal::Malformed(
            "Sec-WebSocket-Key is not 16 bytes in base64",
        ));
    }
    Ok(Handshake {
        accept: accept_key(key),
    })
}

/// The subprotocols the client offers, in its order of preference (every
/// `Sec-WebSocket-Protocol` field, split on commas, §4.1 and §11.3.4).
pub fn subprotocols(head: &RequestHead) -> Vec<String> {
    head.fields()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"sec-websocket-protocol"))
        .flat_map(|(_, v)| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
        .map(|t| String::from_utf8_lossy(t).into_owned())
        .collect()
}

impl Handshake {
    /// Add the 101's fields to `headers`: `Upgrade`, `Connection`, `Sec-WebSocket-Accept`,
    /// the chosen subprotocol (which must be one the client offered, §4.2.2) and the
    /// negotiated permessage-deflate parameters.
    pub fn response_headers(
        &self,
        headers: &mut HeaderBlock,
        protocol: Option<&str>,
        deflate: Option<&DeflateParams>,
    ) -> Result<(), HeaderError> {
        headers.push_trusted(b"Upgrade", b"websocket");
        headers.push_trusted(b"Connection", b"Upgrade");
        headers.push_trusted(b"Sec-WebSocket-Accept", &self.accept);
        if let Some(p) = protocol {
            headers.push(b"Sec-WebSocket-Protocol", p.as_bytes())?;
        }
        if let Some(d) = deflate {
            headers.push_trusted(b"Sec-WebSocket-Extensions", d.response().as_bytes());
        }
        Ok(())
    }
}

/// `Sec-WebSocket-Accept` for `key` (§4.2.2 step 5.4): base64 of the SHA-1 of the key as
/// sent followed by the GUID.
pub fn accept_key(key: &[u8]) -> [u8; 28] {
    let mut input = Vec::with_capacity(key.len() + GUID.len());
    input.extend_from_slice(key);
    input.extend_from_slice(GUID);
    let digest = sha1(&input);
    let mut out = [0u8; 28];
    base64_encode(&digest, &mut out);
    out
}

/// SHA-1 (RFC 3174) of a short message.
fn sha1(msg: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut data = msg.to_vec();
    data.push(0x80);
    while data.len() % 64 != 56 {
        data.push(0);
    }
    data.extend_from_slice(&((msg.len() as u64) * 8).to_be_bytes());
    for block in data.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (hv, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *hv = hv.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (o, v) in out.chunks_exact_mut(4).zip(h) {
        o.copy_from_slice(&v.to_be_bytes());
    }
    out
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding of `input` into `out` (which holds exactly its length).
fn base64_encode(input: &[u8], out: &mut [u8]) {
    for (chunk, o) in input.chunks(3).zip(out.chunks_mut(4)) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(chunk.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(chunk.get(2).copied().unwrap_or(0));
        for (i, slot) in o.iter_mut().enumerate() {
            *slot = if i <= chunk.len() {
                B64[((n >> (18 - 6 * i)) & 63) as usize]
            } else {
                b'='
            };
        }
    }
}

/// Standard base64 with padding required; `None` on anything else.
fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    if text.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let quads = text.chunks_exact(4);
    let last = quads.len().saturating_sub(1);
    for (qi, quad) in quads.enumerate() {
        let mut n = 0u32;
        let mut pad = 0;
        for (i, &c) in quad.iter().enumerate() {
            let v = match c {
                b'=' if qi == last && i >= 2 => {
                    pad += 1;
                    0
                }
                _ if pad > 0 => return None,
                _ => B64.iter().position(|&b| b == c)? as u32,
            };
            n = (n << 6) | v;
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::guard::{Guard, Limits};

    fn head(raw: &str) -> RequestHead {
        let mut g = Guard::new(Limits::default());
        let n = g.scan(raw.as_bytes()).unwrap();
        assert_eq!(n, raw.len());
        RequestHead::new(
            bytes::Bytes::copy_from_slice(raw.as_bytes()),
            g.take_head().unwrap(),
        )
    }

    const GOOD: &str = "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Protocol: v2\r\n\r\n";

    #[test]
    fn rfc_6455_sample_key() {
        // §1.3's example.
        assert_eq!(
            &accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn sha1_and_base64_vectors() {
        let hex = |d: [u8; 20]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(
            hex(sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(hex(sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(sha1(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
        ] {
            assert_eq!(base64_decode(coded.as_bytes()).unwrap(), plain.as_bytes());
            let mut out = vec![0u8; coded.len()];
            base64_encode(plain.as_bytes(), &mut out);
            assert_eq!(out, coded.as_bytes());
        }
        for bad in ["Zg=", "Z===", "Zg=a", "Zm9v!A==", "Zg==Zg=="] {
            assert_eq!(base64_decode(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn a_valid_handshake_and_its_subprotocols() {
        let h = head(GOOD);
        assert!(is_websocket_request(&h));
        let hs = validate(&h).unwrap();
        assert_eq!(&hs.accept, b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(subprotocols(&h), ["chat", "superchat", "v2"]);
        let mut out = HeaderBlock::default();
        hs.response_headers(&mut out, Some("chat"), None).unwrap();
        assert_eq!(
            out.as_bytes(),
            b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n"
        );
    }

    #[test]
    fn refusals() {
        let cases = [
            (GOOD.replace("GET", "POST"), 400),
            (GOOD.replace("HTTP/1.1", "HTTP/1.0"), 400),
            (GOOD.replace("keep-alive, Upgrade", "keep-alive"), 400),
            (GOOD.replace("Version: 13", "Version: 8"), 426),
            (GOOD.replace("Sec-WebSocket-Version: 13\r\n", ""), 400),
            (
                GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZQ=="),
                400,
            ),
            (
                GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "not base64!!"),
                400,
            ),
            (
                GOOD.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
                400,
            ),
        ];
        for (raw, status) in cases {
            let r = validate(&head(&raw)).unwrap_err();
            assert_eq!(r.status(), status, "{raw}");
            assert_eq!(
                r.headers().get(b"sec-websocket-version").is_some(),
                status == 426
            );
        }
        assert!(!is_websocket_request(&head(
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n\r\n"
        )));
    }
}
