//! permessage-deflate (RFC 7692): choosing among the client's offers, and compressing and
//! inflating one message at a time.
//!
//! Memory is the constraint that shapes this module: a zlib deflate stream with a 32 KiB
//! window holds about 256 KiB and an inflate stream about 40 KiB, and a worker may hold
//! thousands of idle sockets. So each side's stream is allocated when its first compressed
//! message comes, and dropped after every message when context takeover is off (the side
//! then starts every message from an empty window anyway).

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The tail a sync flush leaves, which the sender strips and the receiver puts back
/// (RFC 7692 §7.2.1, §7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Messages shorter than this go uncompressed: deflate would not make them smaller. RFC 7692
/// §6 lets the sender choose per message.
pub const MIN_COMPRESS: usize = 64;

/// Inflated output grows by at least this much per step (and at most doubles), never past
/// the size limit, so a deflate bomb cannot allocate more than the limit.
const INFLATE_STEP: usize = 64 * 1024;

/// What the server wants from the negotiation beyond what the client asks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Announce `server_no_context_takeover` and ask `client_no_context_takeover` even when
    /// the client did not (RFC 7692 §7.1.1.1, §7.1.1.2): no compression state outlives a
    /// message, at the cost of ratio.
    pub no_context_takeover: bool,
}

/// The agreed parameters of one connection (RFC 7692 §7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeflateParams {
    /// We compress every message from an empty window.
    pub server_no_context_takeover: bool,
    /// The client compresses every message from an empty window (we may drop our inflater
    /// between messages).
    pub client_no_context_takeover: bool,
    /// Our window, 9..=15 bits; announced when below 15.
    pub server_max_window_bits: u8,
    /// The client's window if it offered a limit and we echo it (informational for us: the
    /// inflater always takes 15 bits, which inflates any smaller window).
    pub client_max_window_bits: Option<u8>,
}

impl DeflateParams {
    /// The `Sec-WebSocket-Extensions` value of the response.
    pub fn response(&self) -> String {
        let mut s = String::from("permessage-deflate");
        if self.server_no_context_takeover {
            s.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            s.push_str("; client_no_context_takeover");
        }
        if self.server_max_window_bits < 15 {
            s.push_str(&format!(
                "; server_max_window_bits={}",
                self.server_max_window_bits
            ));
        }
        if let Some(bits) = self.client_max_window_bits {
            s.push_str(&format!("; client_max_window_bits={bits}"));
        }
        s
    }
}

/// Accept the first valid `permessage-deflate` offer among every `Sec-WebSocket-Extensions`
/// value (RFC 7692 §5, §7.1): unknown parameters, duplicates or out-of-range values decline
/// that offer, not the handshake. An offer of `server_max_window_bits=8` is declined: zlib
/// cannot compress with an 8-bit window (it turns 8 into 9).
pub fn negotiate<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    cfg: DeflateConfig,
) -> Option<DeflateParams> {
    for value in values {
        for offer in split_outside_quotes(value, b',') {
            let mut parts = split_outside_quotes(offer, b';').into_iter();
            let name = parts.next().unwrap_or_default().trim_ascii();
            if !name.eq_ignore_ascii_case(b"permessage-deflate") {
                continue;
            }
            if let Some(params) = accept_offer(parts, cfg) {
                return Some(params);
            }
        }
    }
    None
}

/// The parameters of one offer, or `None` to decline it.
fn accept_offer<'a>(
    params: impl Iterator<Item = &'a [u8]>,
    cfg: DeflateConfig,
) -> Option<DeflateParams> {
    let mut server_nct = false;
    let mut client_nct = false;
    let mut server_bits: Option<u8> = None;
    let mut client_bits: Option<Option<u8>> = None;
    for p in params {
        let p = p.trim_ascii();
        let (name, value) = match p.iter().position(|&b| b == b'=') {
            Some(eq) => (
                p[..eq].trim_ascii(),
                Some(unquote(p[eq + 1..].trim_ascii())?),
            ),
            None => (p, None),
        };
        let name = std::str::from_utf8(name).ok()?.to_ascii_lowercase();
        match (name.as_str(), value) {
            ("server_no_context_takeover", None) if !server_nct => server_nct = true,
            ("client_no_context_takeover", None) if !client_nct => client_nct = true,
            ("server_max_window_bits", Some(v)) if server_bits.is_none() => {
                server_bits = Some(window_bits(v)?);
            }
            ("client_max_window_bits", v) if client_bits.is_none() => {
                client_bits = Some(match v {
                    Some(v) => Some(window_bits(v)?),
                    None => None,
                });
            }
            _ => return None,
        }
    }
    let server_max_window_bits = match server_bits {
        Some(8) => return None,
        Some(bits) => bits,
        None => 15,
    };
    Some(DeflateParams {
        server_no_context_takeover: server_nct || cfg.no_context_takeover,
        // A client's own `client_no_context_takeover` is a hint (§7.1.1.2); we only ask for
        // it when configured to.
        client_no_context_takeover: cfg.no_context_takeover,
        server_max_window_bits,
        client_max_window_bits: client_bits.flatten(),
    })
}

/// 8..=15 as a decimal without leading zeros (RFC 7692 §7.1.2.1).
fn window_bits(v: &[u8]) -> Option<u8> {
    match v {
        [d] if (b'8'..=b'9').contains(d) => Some(d - b'0'),
        [b'1', d] if (b'0'..=b'5').contains(d) => Some(10 + d - b'0'),
        _ => None,
    }
}

/// A parameter value with its quotes (RFC 9110 §5.6.4) removed; `None` if unbalanced.
fn unquote(v: &[u8]) -> Option<&[u8]> {
    match v {
        [b'"', inner @ .., b'"'] if !inner.contains(&b'"') => Some(inner),
        _ if v.contains(&b'"') => None,
        _ => Some(v),
    }
}

/// Split on `sep` outside double quotes.
fn split_outside_quotes(s: &[u8], sep: u8) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, &b) in s.iter().enumerate() {
        if b == b'"' {
            quoted = !quoted;
        } else if b == sep && !quoted {
            out.push(&s[start..i]);
            start = i + 1;
        }
    }
    out.push(&s[start..]);
    out
}

/// A compressed message was corrupt or decompressed past the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InflateError {
    /// Not valid deflate data: the connection fails with 1007.
    Corrupt,
    /// Larger than the limit once inflated: 1009.
    TooBig,
}

/// Our side of the compression (the messages we send).
#[derive(Default)]
pub struct Deflater {
    stream: Option<Box<Compress>>,
}

impl Deflater {
    /// Compress one message (RFC 7692 §7.2.1): a sync flush, its empty-block tail
    /// stripped. `None` when compression failed; the message then goes uncompressed and
    /// the stream starts afresh (the client may keep history we no longer reference).
    pub fn compress(&mut self, params: &DeflateParams, data: &[u8]) -> Option<Vec<u8>> {
        let bits = params.server_max_window_bits.clamp(9, 15);
        let stream = self.stream.get_or_insert_with(|| {
            Box::new(Compress::new_with_window_bits(
                Compression::new(6),
                false,
                bits,
            ))
        });
        let mut out: Vec<u8> = Vec::with_capacity(data.len() / 2 + 64);
        let mut rest = data;
        let ok = loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            let before = stream.total_in();
            match stream.compress_vec(rest, &mut out, FlushCompress::Sync) {
                Ok(_) => {}
                Err(_) => break false,
            }
            let used = usize::try_from(stream.total_in() - before).unwrap_or(rest.len());
            rest = &rest[used.min(rest.len())..];
            // A sync flush is complete once zlib returns with output room to spare.
            if rest.is_empty() && out.len() < out.capacity() {
                break true;
            }
        };
        if !ok || !out.ends_with(&TAIL) {
            self.stream = None;
            return None;
        }
        out.truncate(out.len() - TAIL.len());
        if params.server_no_context_takeover {
            self.stream = None;
        }
        Some(out)
    }

    /// Whether a compression stream is allocated.
    pub fn is_allocated(&self) -> bool {
        self.stream.is_some()
    }
}

/// The client's side (the messages we receive).
#[derive(Default)]
pub struct Inflater {
    stream: Option<Box<Decompress>>,
}

impl Inflater {
    /// Inflate a piece of a compressed message's data onto `out`, which may grow to at most
    /// `max` bytes. `last` marks the message's final piece, after which the sync-flush tail
    /// is inflated too.
    pub fn inflate(
        &mut self,
        input: &[u8],
        last: bool,
        out: &mut Vec<u8>,
        max: usize,
    ) -> Result<(), InflateError> {
        let stream = self
            .stream
            .get_or_insert_with(|| Box::new(Decompress::new_with_window_bits(false, 15)));
        let mut ended = false;
        let inputs: [&[u8]; 2] = [input, if last { &TAIL } else { &[] }];
        for mut rest in inputs {
            loop {
                if ended {
                    // A final block (BFINAL) ended the stream: what follows is the tail,
                    // or a new stream for the next message.
                    break;
                }
                if out.capacity() == out.len() {
                    // Grow geometrically (a 16 MiB message must not be copied once per
                    // step), but never past one byte over the limit.
                    let room = max
                        .saturating_add(1)
                        .saturating_sub(out.len())
                        .min(INFLATE_STEP.max(out.capacity()));
                    if room == 0 {
                        return Err(InflateError::TooBig);
                    }
                    out.reserve_exact(room);
                }
                let (in0, out0) = (stream.total_in(), out.len());
                let status = stream
                    .decompress_vec(rest, out, FlushDecompress::Sync)
                    .map_err(|_| InflateError::Corrupt)?;
                if out.len() > max {
                    return Err(InflateError::TooBig);
                }
                let used = usize::try_from(stream.total_in() - in0).unwrap_or(rest.len());
                rest = &rest[used.min(rest.len())..];
                ended = status == Status::StreamEnd;
                let full = out.len() == out.capacity();
                if (rest.is_empty() && !full) || (used == 0 && out.len() == out0 && !full) {
                    break;
                }
            }
        }
        if ended {
            self.stream = None;
        }
        Ok(())
    }

    /// The message ended: drop the stream if the client starts each message afresh.
    pub fn message_done(&mut self, params: &DeflateParams) {
        if params.client_no_context_takeover {
            self.stream = None;
        }
    }

    /// Whether an inflate stream is allocated.
    pub fn is_allocated(&self) -> bool {
        self.stream.is_some()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::static_files::testutil::XorShift;

    fn neg(v: &str) -> Option<DeflateParams> {
        negotiate([v.as_bytes()], DeflateConfig::default())
    }

    #[test]
    fn negotiation_takes_the_first_acceptable_offer() {
        let p = neg("permessage-deflate").unwrap();
        assert_eq!(p.response(), "permessage-deflate");
        let p = neg("permessage-deflate; client_max_window_bits").unwrap();
        assert_eq!(p.response(), "permessage-deflate");
        let p = neg("permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_max_window_bits=\"10\"").unwrap();
        assert_eq!(p.response(), "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_max_window_bits=10");
        // Autobahn 13.7: the first of three offers wins.
        let p = neg("permessage-deflate; server_no_context_takeover; server_max_window_bits=9, permessage-deflate; server_no_context_takeover, permessage-deflate").unwrap();
        assert_eq!(p.server_max_window_bits, 9);
        // Invalid offers are declined and the next one is taken.
        for bad in [
            "server_max_window_bits",
            "server_max_window_bits=16",
            "server_max_window_bits=08",
            "server_max_window_bits=8",
            "x=1",
            "server_no_context_takeover; server_no_context_takeover",
            "server_no_context_takeover=1",
            "client_max_window_bits=7",
        ] {
            assert_eq!(neg(&format!("permessage-deflate; {bad}")), None, "{bad}");
            let p = neg(&format!(
                "permessage-deflate; {bad}, permessage-deflate; client_no_context_takeover"
            ))
            .unwrap();
            assert_eq!(p.response(), "permessage-deflate", "{bad}");
        }
        assert_eq!(neg("x-webkit-deflate-frame"), None);
        // Across several fields.
        assert!(negotiate(
            [&b"foo"[..], b"permessage-deflate"],
            DeflateConfig::default()
        )
        .is_some());
        // Configured for memory: no takeover either way, asked unasked.
        let p = negotiate(
            [&b"permessage-deflate"[..]],
            DeflateConfig {
                no_context_takeover: true,
            },
        )
        .unwrap();
        assert_eq!(
            p.response(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
    }

    fn params(takeover: bool, bits: u8) -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: !takeover,
            client_no_context_takeover: !takeover,
            server_max_window_bits: bits,
            client_max_window_bits: None,
        }
    }

    #[test]
    fn round_trips_with_and_without_takeover() {
        let mut rng = XorShift(99);
        for (takeover, bits) in [(true, 15), (false, 15), (true, 9), (false, 9)] {
            let p = params(takeover, bits);
            let mut d = Deflater::default();
            let mut i = Inflater::default();
            for round in 0..40 {
                let len = rng.below(5000);
                let msg: Vec<u8> = (0..len)
                    .map(|k| b"abcabcxyz"[(k + round) % 9] ^ (rng.below(3) == 0) as u8)
                    .collect();
                let c = d.compress(&p, &msg).unwrap();
                assert_eq!(d.is_allocated(), takeover);
                // Inflated in pieces, as frames and reads split it.
                let mut out = Vec::new();
                let mut at = 0;
                loop {
                    let n = rng.below(300).min(c.len() - at);
                    let last = at + n == c.len();
                    i.inflate(&c[at..at + n], last, &mut out, 1 << 20).unwrap();
                    at += n;
                    if last {
                        break;
                    }
                }
                i.message_done(&p);
                assert_eq!(i.is_allocated(), takeover);
                assert_eq!(out, msg);
            }
        }
    }

    #[test]
    fn a_deflate_bomb_stops_at_the_limit() {
        let p = params(false, 15);
        let big = vec![0u8; 8 << 20];
        let c = Deflater::default().compress(&p, &big).unwrap();
        assert!(c.len() < 20_000);
        let mut out = Vec::new();
        assert_eq!(
            Inflater::default().inflate(&c, true, &mut out, 1 << 20),
            Err(InflateError::TooBig)
        );
        assert!(out.capacity() <= (1 << 20) + 1, "{}", out.capacity());
        let mut out = Vec::new();
        assert_eq!(
            Inflater::default().inflate(b"\xff\xff\xff garbage", true, &mut out, 1 << 20),
            Err(InflateError::Corrupt)
        );
    }
}
