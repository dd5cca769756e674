//! WebSocket frame headers (RFC 6455 §5.2) in the server's role: parse a client frame's
//! header, unmask its payload, encode the header of a frame we send.
//!
//! Only the rules a header alone can decide are checked here (known opcode, RSV2/RSV3 clear,
//! control frames final and short, masking, a 63-bit length); the rules that depend on the
//! message in progress (continuations, RSV1 for permessage-deflate) are `message.rs`'s.

/// A frame's opcode (RFC 6455 §5.2, §11.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpCode {
    /// A later fragment of a message (0x0).
    Continuation,
    /// The first frame of a text message (0x1).
    Text,
    /// The first frame of a binary message (0x2).
    Binary,
    /// Close (0x8).
    Close,
    /// Ping (0x9).
    Ping,
    /// Pong (0xA).
    Pong,
}

impl OpCode {
    fn from_bits(bits: u8) -> Option<OpCode> {
        Some(match bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    /// The four bits on the wire.
    pub fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Close, Ping and Pong (opcodes with the high bit set, §5.5).
    pub fn is_control(self) -> bool {
        self.bits() & 0x8 != 0
    }
}

/// The largest control-frame payload (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// The longest frame header: 2 bytes, an 8-byte length, a 4-byte masking key.
pub const MAX_HEADER: usize = 14;

/// A parsed client frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// The final fragment of its message.
    pub fin: bool,
    /// RSV1: with permessage-deflate, the message is compressed (RFC 7692 §6).
    pub rsv1: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key (client frames always have one, §5.3).
    pub mask: [u8; 4],
    /// The payload length.
    pub len: u64,
}

/// Why a frame header was refused: the connection fails with 1002 (protocol error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderError(pub &'static str);

/// Parse a client frame header from the front of `buf`: `Ok(None)` while it is incomplete,
/// else the header and its length in bytes.
pub fn parse_header(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, HeaderError> {
    let (Some(&b0), Some(&b1)) = (buf.first(), buf.get(1)) else {
        return Ok(None);
    };
    if b0 & 0x30 != 0 {
        return Err(HeaderError("RSV2 or RSV3 set"));
    }
    let opcode = OpCode::from_bits(b0 & 0x0F).ok_or(HeaderError("reserved opcode"))?;
    let fin = b0 & 0x80 != 0;
    if b1 & 0x80 == 0 {
        // §5.1: a server MUST close the connection on an unmasked client frame.
        return Err(HeaderError("unmasked client frame"));
    }
    let (len, at) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let mut n = [0u8; 8];
                n.copy_from_slice(b);
                let len = u64::from_be_bytes(n);
                // §5.2: the most significant bit MUST be 0. Non-minimal encodings are
                // accepted: minimality binds the sender, and refusing them gains nothing.
                if len >> 63 != 0 {
                    return Err(HeaderError("64-bit length with the top bit set"));
                }
                (len, 10)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    if opcode.is_control() {
        // §5.5: control frames are not fragmented and carry at most 125 bytes.
        if !fin {
            return Err(HeaderError("fragmented control frame"));
        }
        if len > MAX_CONTROL_PAYLOAD as u64 {
            return Err(HeaderError("control frame payload over 125 bytes"));
        }
    }
    let Some(key) = buf.get(at..at + 4) else {
        return Ok(None);
    };
    let mask = [key[0], key[1], key[2], key[3]];
    Ok(Some((
        FrameHeader {
            fin,
            rsv1: b0 & 0x40 != 0,
            opcode,
            mask,
            len,
        },
        at + 4,
    )))
}

/// Unmask `data` in place (RFC 6455 §5.3), where `data` starts `offset` bytes into the
/// payload. Eight bytes at a time: the key repeated twice as one `u64`.
pub fn unmask(data: &mut [u8], mask: [u8; 4], offset: u64) {
    let rot = (offset % 4) as usize;
    let key = [
        mask[rot],
        mask[(rot + 1) % 4],
        mask[(rot + 2) % 4],
        mask[(rot + 3) % 4],
    ];
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(w) ^ wide).to_ne_bytes());
    }
    // The tail starts at a multiple of 8 from `data`'s start, so the key is still aligned.
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
}

/// Encode the header of a server frame (unmasked, §5.1) into `out`; returns its length.
pub fn encode_header(
    out: &mut [u8; 10],
    fin: bool,
    rsv1: bool,
    opcode: OpCode,
    len: usize,
) -> usize {
    out[0] = (u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode.bits();
    if len < 126 {
        out[1] = len as u8;
        2
    } else if let Ok(short) = u16::try_from(len) {
        out[1] = 126;
        out[2..4].copy_from_slice(&short.to_be_bytes());
        4
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::static_files::testutil::XorShift;

    fn masked(b0: u8, len_bytes: &[u8]) -> Vec<u8> {
        let mut v = vec![b0, len_bytes[0] | 0x80];
        v.extend_from_slice(&len_bytes[1..]);
        v.extend_from_slice(&[1, 2, 3, 4]);
        v
    }

    #[test]
    fn parses_the_three_length_forms() {
        let (h, n) = parse_header(&masked(0x81, &[5])).unwrap().unwrap();
        assert_eq!(
            (h.fin, h.opcode, h.len, h.mask, n),
            (true, OpCode::Text, 5, [1, 2, 3, 4], 6)
        );
        let (h, n) = parse_header(&masked(0x02, &[126, 1, 0])).unwrap().unwrap();
        assert_eq!((h.fin, h.opcode, h.len, n), (false, OpCode::Binary, 256, 8));
        let (h, n) = parse_header(&masked(0x82, &[127, 0, 0, 0, 0, 0, 1, 0, 0]))
            .unwrap()
            .unwrap();
        assert_eq!((h.len, n), (65536, 14));
        // Non-minimal: 5 in the 64-bit form is accepted.
        let (h, _) = parse_header(&masked(0x82, &[127, 0, 0, 0, 0, 0, 0, 0, 5]))
            .unwrap()
            .unwrap();
        assert_eq!(h.len, 5);
    }

    #[test]
    fn incomplete_headers_wait() {
        let full = masked(0x82, &[127, 0, 0, 0, 0, 0, 1, 0, 0]);
        for cut in 0..full.len() {
            assert_eq!(parse_header(&full[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn refuses_what_rfc_6455_forbids() {
        let bad = [
            masked(0xA1, &[0]),                              // RSV2
            masked(0x91, &[0]),                              // RSV3
            masked(0x83, &[0]),                              // reserved data opcode
            masked(0x8B, &[0]),                              // reserved control opcode
            vec![0x81, 0x00],                                // unmasked
            masked(0x09, &[0]),                              // fragmented ping
            masked(0x89, &[126, 0, 126]),                    // 126-byte ping
            masked(0x82, &[127, 0x80, 0, 0, 0, 0, 0, 0, 0]), // top bit
        ];
        for b in bad {
            assert!(parse_header(&b).is_err(), "{b:x?}");
        }
        // 125 is the largest control payload.
        assert!(parse_header(&masked(0x89, &[125])).unwrap().is_some());
        // RSV1 is reported, judged by the message layer.
        assert!(parse_header(&masked(0xC1, &[0])).unwrap().unwrap().0.rsv1);
    }

    #[test]
    fn unmask_matches_the_bytewise_definition_at_every_offset() {
        let mut rng = XorShift(0x5eed);
        for _ in 0..300 {
            let len = rng.below(70);
            let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let mask = (rng.next() as u32).to_be_bytes();
            let expect: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            // Unmasked whole, and in pieces at arbitrary offsets.
            let mut whole = data.clone();
            unmask(&mut whole, mask, 0);
            assert_eq!(whole, expect);
            let mut pieces = data.clone();
            let mut at = 0;
            while at < len {
                let n = (rng.below(11) + 1).min(len - at);
                unmask(&mut pieces[at..at + n], mask, at as u64);
                at += n;
            }
            assert_eq!(pieces, expect);
        }
    }

    #[test]
    fn encodes_minimal_lengths() {
        let mut h = [0u8; 10];
        assert_eq!(encode_header(&mut h, true, false, OpCode::Text, 125), 2);
        assert_eq!(&h[..2], &[0x81, 125]);
        assert_eq!(encode_header(&mut h, true, true, OpCode::Binary, 126), 4);
        assert_eq!(&h[..4], &[0xC2, 126, 0, 126]);
        assert_eq!(
            encode_header(&mut h, false, false, OpCode::Binary, 65536),
            10
        );
        assert_eq!(&h[..10], &[0x02, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    }
}
