//! HAProxy's PROXY protocol, versions 1 and 2, read at the start of a connection before any
//! HTTP (`--proxy-protocol`, `--proxy-allow-from`).
//!
//! This module owns the header's parser ([`parse`]: pure, over whatever bytes have arrived,
//! so truncated input is "incomplete", never a guess) and the read at accept ([`read`]),
//! which hands the bytes after the header to the HTTP driver so nothing is read twice.
//!
//! Following the specification (haproxy.org, `proxy-protocol.txt`): a receiver configured
//! for the protocol must not guess, so from an allowed peer the header is required; v1 is
//! one line of at most 107 bytes, `PROXY TCP4|TCP6|UNKNOWN ...\r\n`; v2 is a 16-byte binary
//! prefix (12-byte signature, version and command, family and transport, length) and that
//! many bytes of addresses and TLVs, which are skipped. `LOCAL` (the proxy's own health
//! checks), `UNKNOWN`, `AF_UNSPEC` and `AF_UNIX` keep the connection's real peer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bytes::{Buf, BytesMut};

use crate::io::Socket;

/// The v2 signature: `\r\n\r\n\0\r\nQUIT\n`.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 line, CRLF included.
const V1_MAX: usize = 107;

/// What a header says about the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addresses {
    /// The proxied client and the address it connected to.
    Proxied {
        /// The client.
        src: SocketAddr,
        /// Where it connected (the proxy's front).
        dst: SocketAddr,
    },
    /// Nothing usable (`LOCAL`, `UNKNOWN`, `AF_UNSPEC`, `AF_UNIX`): keep the real peer.
    Keep,
}

/// The outcome of looking at the first bytes of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The bytes do not start a PROXY header (plain HTTP).
    NotProxy,
    /// A header has started but more bytes are needed.
    Incomplete,
    /// A header of this many bytes.
    Done(usize, Addresses),
    /// A header that breaks the specification.
    Invalid(&'static str),
}

/// Parse a PROXY header at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parsed {
    let v1 = b"PROXY ";
    let n = buf.len().min(12);
    if buf.len() >= 6 && buf.starts_with(v1) {
        return parse_v1(buf);
    }
    if buf.len() < 6 && v1.starts_with(buf) {
        return Parsed::Incomplete;
    }
    if buf[..n] == V2_SIGNATURE[..n] {
        return if n < 12 {
            Parsed::Incomplete
        } else {
            parse_v2(buf)
        };
    }
    Parsed::NotProxy
}

fn parse_v1(buf: &[u8]) -> Parsed {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(lf) = memchr::memchr(b'\n', window) else {
        return if buf.len() >= V1_MAX {
            Parsed::Invalid("v1 line longer than 107 bytes")
        } else {
            Parsed::Incomplete
        };
    };
    if lf == 0 || window[lf - 1] != b'\r' {
        return Parsed::Invalid("v1 line not ended by CRLF");
    }
    let Ok(line) = std::str::from_utf8(&window[6..lf - 1]) else {
        return Parsed::Invalid("v1 line not ASCII");
    };
    let len = lf + 1;
    let mut parts = line.split(' ');
    let proto = parts.next().unwrap_or_default();
    if proto == "UNKNOWN" {
        // The rest of the line is to be ignored (the proxy could not tell).
        return Parsed::Done(len, Addresses::Keep);
    }
    let v6 = match proto {
        "TCP4" => false,
        "TCP6" => true,
        _ => return Parsed::Invalid("v1 protocol not TCP4, TCP6 or UNKNOWN"),
    };
    let fields: Vec<&str> = parts.collect();
    let [src, dst, sport, dport] = fields[..] else {
        return Parsed::Invalid("v1 line needs 4 fields after the protocol");
    };
    let ip = |s: &str| -> Option<IpAddr> {
        if v6 {
            s.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
        } else {
            s.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
        }
    };
    // Ports are decimal 0..65535, no sign, no leading zero (the specification's form).
    let port = |s: &str| -> Option<u16> {
        let digits = !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits || (s.len() > 1 && s.starts_with('0')) {
            return None;
        }
        s.parse().ok()
    };
    match (ip(src), ip(dst), port(sport), port(dport)) {
        (Some(s), Some(d), Some(sp), Some(dp)) => Parsed::Done(
            len,
            Addresses::Proxied {
                src: SocketAddr::new(s, sp),
                dst: SocketAddr::new(d, dp),
            },
        ),
        _ => Parsed::Invalid("v1 address or port malformed"),
    }
}

fn parse_v2(buf: &[u8]) -> Parsed {
    if buf.len() < 16 {
        return Parsed::Incomplete;
    }
    let ver_cmd = buf[12];
    if ver_cmd >> 4 != 2 {
        return Parsed::Invalid("v2 version is not 2");
    }
    let local = match ver_cmd & 0xf {
        0 => true,
        1 => false,
        _ => return Parsed::Invalid("v2 command is neither LOCAL nor PROXY"),
    };
    let fam = buf[13];
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let total = 16 + len;
    if buf.len() < total {
        return Parsed::Incomplete;
    }
    if local {
        // The proxy speaking for itself: addresses (if any) and TLVs are skipped.
        return Parsed::Done(total, Addresses::Keep);
    }
    let body = &buf[16..total];
    let (family, transport) = (fam >> 4, fam & 0xf);
    if transport > 2 {
        return Parsed::Invalid("v2 transport unknown");
    }
    let at = |b: &[u8], i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    match family {
        0 => Parsed::Done(total, Addresses::Keep),
        1 => {
            if body.len() < 12 {
                return Parsed::Invalid("v2 AF_INET block shorter than 12 bytes");
            }
            let src = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            let dst = Ipv4Addr::new(body[4], body[5], body[6], body[7]);
            Parsed::Done(
                total,
                Addresses::Proxied {
                    src: SocketAddr::new(IpAddr::V4(src), at(body, 8)),
                    dst: SocketAddr::new(IpAddr::V4(dst), at(body, 10)),
                },
            )
        }
        2 => {
            if body.len() < 36 {
                return Parsed::Invalid("v2 AF_INET6 block shorter than 36 bytes");
            }
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(&body[..16]);
            d.copy_from_slice(&body[16..32]);
            Parsed::Done(
                total,
                Addresses::Proxied {
                    src: SocketAddr::new(IpAddr::V6(Ipv6Addr::from(s)), at(body, 32)),
                    dst: SocketAddr::new(IpAddr::V6(Ipv6Addr::from(d)), at(body, 34)),
                },
            )
        }
        3 => {
            if body.len() < 216 {
                return Parsed::Invalid("v2 AF_UNIX block shorter than 216 bytes");
            }
            Parsed::Done(total, Addresses::Keep)
        }
        _ => Parsed::Invalid("v2 address family unknown"),
    }
}

/// Why a connection was closed before HTTP.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// A peer not in `--proxy-allow-from` sent a header.
    NotAllowed,
    /// An allowed peer sent no header.
    Missing,
    /// The header broke the specification.
    Invalid(&'static str),
    /// No complete header within the header timeout.
    Timeout,
    /// The peer closed, or the socket failed, first.
    Closed,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::NotAllowed => {
                f.write_str("a PROXY header from a peer not in --proxy-allow-from")
            }
            Refused::Missing => f.write_str("no PROXY header (--proxy-protocol)"),
            Refused::Invalid(why) => write!(f, "a malformed PROXY header ({why})"),
            Refused::Timeout => f.write_str("no complete PROXY header within the header timeout"),
            Refused::Closed => f.write_str("the connection closed inside the PROXY header"),
        }
    }
}

/// Read the PROXY header from a new connection, within `timeout`. `allowed`: the peer may
/// send one (and then must). Returns what it says (`None`: a peer not allowed, plain HTTP)
/// and the bytes read after it, which belong to HTTP.
pub(crate) async fn read<S: Socket>(
    stream: &S,
    allowed: bool,
    timeout: Duration,
) -> Result<(Option<Addresses>, BytesMut), Refused> {
    let work = async {
        let mut buf = BytesMut::with_capacity(536);
        loop {
            match parse(&buf) {
                Parsed::NotProxy if allowed => return Err(Refused::Missing),
                Parsed::NotProxy => return Ok((None, buf)),
                Parsed::Done(..) if !allowed => return Err(Refused::NotAllowed),
                Parsed::Done(len, addrs) => {
                    buf.advance(len);
                    return Ok((Some(addrs), buf));
                }
                Parsed::Invalid(why) => return Err(Refused::Invalid(why)),
                Parsed::Incomplete => {}
            }
            if buf.capacity() - buf.len() < 512 {
                buf.reserve(4096);
            }
            let n = std::future::poll_fn(|cx| loop {
                match stream.poll_read_ready(cx) {
                    std::task::Poll::Ready(Ok(())) => {}
                    std::task::Poll::Ready(Err(e)) => return std::task::Poll::Ready(Err(e)),
                    std::task::Poll::Pending => return std::task::Poll::Pending,
                }
                match stream.try_read_buf(&mut buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    res => return std::task::Poll::Ready(res),
                }
            })
            .await;
            match n {
                Ok(0) | Err(_) => return Err(Refused::Closed),
                Ok(_) => {}
            }
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(res) => res,
        Err(_) => Err(Refused::Timeout),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn v2(cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | cmd);
        h.push(fam);
        h.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    #[test]
    fn v1_lines_from_the_specification() {
        let line = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n";
        assert_eq!(
            parse(line),
            Parsed::Done(
                47,
                Addresses::Proxied {
                    src: sa("192.168.0.1:56324"),
                    dst: sa("192.168.0.11:443")
                }
            )
        );
        let line = b"PROXY TCP6 2001:db8::1 ::1 65535 8000\r\n";
        assert_eq!(
            parse(line),
            Parsed::Done(
                line.len(),
                Addresses::Proxied {
                    src: sa("[2001:db8::1]:65535"),
                    dst: sa("[::1]:8000")
                }
            )
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n"),
            Parsed::Done(15, Addresses::Keep)
        );
        let unknown = b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n";
        assert_eq!(parse(unknown), Parsed::Done(unknown.len(), Addresses::Keep));
    }

    #[test]
    fn v1_truncated_is_incomplete_and_broken_is_invalid() {
        let line = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
        for cut in 1..line.len() {
            assert_eq!(parse(&line[..cut]), Parsed::Incomplete, "cut at {cut}");
        }
        for bad in [
            &b"PROXY TCP4 192.168.0.1 192.168.0.11 56324\r\n"[..],
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 1.2.3.4 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n",
            b"PROXY UDP4 1.2.3.4 1.2.3.4 1 2\r\n",
            b"PROXY TCP4  1.2.3.4 1.2.3.4 1 2\r\n",
        ] {
            assert!(
                matches!(parse(bad), Parsed::Invalid(_)),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.resize(120, b'x');
        assert!(matches!(parse(&long), Parsed::Invalid(_)));
    }

    #[test]
    fn plain_http_is_not_proxy() {
        for http in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"PROPFIND / HTTP/1.1\r\n",
            b"POST",
            b"\r\n\r\nX",
        ] {
            assert_eq!(
                parse(http),
                Parsed::NotProxy,
                "{}",
                String::from_utf8_lossy(http)
            );
        }
        assert_eq!(parse(b""), Parsed::Incomplete);
        assert_eq!(parse(b"PRO"), Parsed::Incomplete);
        assert_eq!(parse(b"\r\n\r\n\0\r"), Parsed::Incomplete);
    }

    #[test]
    fn v2_families_and_commands() {
        let mut body = vec![192, 0, 2, 1, 198, 51, 100, 2];
        body.extend_from_slice(&40000u16.to_be_bytes());
        body.extend_from_slice(&443u16.to_be_bytes());
        // A TLV (PP2_TYPE_ALPN) after the addresses is skipped.
        body.extend_from_slice(&[0x01, 0x00, 0x02, b'h', b'2']);
        let mut h = v2(1, 0x11, &body);
        let len = h.len();
        h.extend_from_slice(b"GET /");
        assert_eq!(
            parse(&h),
            Parsed::Done(
                len,
                Addresses::Proxied {
                    src: sa("192.0.2.1:40000"),
                    dst: sa("198.51.100.2:443")
                }
            )
        );
        let mut body6 = Vec::new();
        body6.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        body6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        body6.extend_from_slice(&1234u16.to_be_bytes());
        body6.extend_from_slice(&80u16.to_be_bytes());
        let h6 = v2(1, 0x21, &body6);
        assert_eq!(
            parse(&h6),
            Parsed::Done(
                h6.len(),
                Addresses::Proxied {
                    src: sa("[2001:db8::7]:1234"),
                    dst: sa("[::1]:80")
                }
            )
        );
        let local = v2(0, 0x00, &[]);
        assert_eq!(parse(&local), Parsed::Done(16, Addresses::Keep));
        let local_with_addrs = v2(0, 0x11, &body);
        assert_eq!(
            parse(&local_with_addrs),
            Parsed::Done(local_with_addrs.len(), Addresses::Keep)
        );
        let unspec = v2(1, 0x00, &[]);
        assert_eq!(parse(&unspec), Parsed::Done(16, Addresses::Keep));
        let unix = v2(1, 0x31, &[0u8; 216]);
        assert_eq!(parse(&unix), Parsed::Done(232, Addresses::Keep));
    }

    #[test]
    fn v2_truncated_is_incomplete_and_broken_is_invalid() {
        let mut body = vec![192, 0, 2, 1, 198, 51, 100, 2, 0, 80, 0, 81];
        let h = v2(1, 0x11, &body);
        for cut in 1..h.len() {
            assert_eq!(parse(&h[..cut]), Parsed::Incomplete, "cut at {cut}");
        }
        let mut bad_version = h.clone();
        bad_version[12] = 0x11;
        assert!(matches!(parse(&bad_version), Parsed::Invalid(_)));
        let mut bad_command = h.clone();
        bad_command[12] = 0x22;
        assert!(matches!(parse(&bad_command), Parsed::Invalid(_)));
        let mut bad_family = h.clone();
        bad_family[13] = 0x41;
        assert!(matches!(parse(&bad_family), Parsed::Invalid(_)));
        body.truncate(8);
        assert!(matches!(parse(&v2(1, 0x11, &body)), Parsed::Invalid(_)));
        assert!(matches!(
            parse(&v2(1, 0x21, &[0u8; 20])),
            Parsed::Invalid(_)
        ));
        assert!(matches!(
            parse(&v2(1, 0x31, &[0u8; 100])),
            Parsed::Invalid(_)
        ));
    }
}
