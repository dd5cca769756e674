//! The WebSocket wire format as this load tool needs it (RFC 6455), written here and nowhere
//! else: the opening handshake's key and accept value (§4.1, §4.2.2: SHA-1 then base64),
//! frame headers (§5.2), masking (§5.3) and an incremental frame parser.
//!
//! It is independent of bourbon's own codec (`crates/bourbon-server/src/ws/`) on purpose: a
//! benchmark client that shared the server's framing code would agree with the server's bugs.
//! No extension is ever negotiated (the handshake offers none), so RSV bits must be zero.

/// The GUID of RFC 6455 §1.3 that the server appends to the client's key before hashing.
const WS_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

pub(crate) const OP_CONT: u8 = 0x0;
pub(crate) const OP_TEXT: u8 = 0x1;
pub(crate) const OP_BINARY: u8 = 0x2;
pub(crate) const OP_CLOSE: u8 = 0x8;
pub(crate) const OP_PING: u8 = 0x9;
pub(crate) const OP_PONG: u8 = 0xA;

/// SHA-1 (FIPS 180-4) of `data`. Only the handshake uses it, where RFC 6455 requires it; it
/// is not used for anything that needs collision resistance.
pub(crate) fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for block in msg.chunks_exact(64) {
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
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (chunk, word) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// Standard base64 with padding (RFC 4648 §4), as the handshake's fields use.
pub(crate) fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The `Sec-WebSocket-Accept` value a server must answer to `key` (RFC 6455 §4.2.2).
pub(crate) fn accept_for(key: &str) -> String {
    let mut buf = key.as_bytes().to_vec();
    buf.extend_from_slice(WS_GUID);
    base64(&sha1(&buf))
}

/// Appends one frame to `out`: the header of §5.2 (FIN set when `fin`), then the payload,
/// masked with `mask` when given (client to server, §5.3) or as is (server to client).
pub(crate) fn encode_frame(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: u8,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    out.push(if fin { 0x80 } else { 0 } | opcode);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let len = payload.len();
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.push(mask_bit | 126);
        out.extend_from_slice(&short.to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
}

/// One frame as parsed: its opcode, FIN bit, and payload (unmasked).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    pub(crate) fin: bool,
    pub(crate) opcode: u8,
    pub(crate) payload: Vec<u8>,
}

/// Why bytes received are not a frame this tool accepts.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// RSV1–3 set although no extension was negotiated (§5.2).
    Rsv,
    /// A server-to-client frame was masked (§5.1), or a client-to-server frame was not.
    Masking,
    /// An opcode §5.2 reserves.
    Opcode(u8),
    /// A control frame over 125 bytes or fragmented (§5.5).
    Control,
    /// A payload longer than the caller's limit.
    TooLong(u64),
}

/// Parses one frame from the front of `buf`: `Ok(None)` when more bytes are needed, else
/// the frame and how many bytes it took. `masked` says whether frames must be masked (a
/// server reading a client) or must not be (a client reading a server).
pub(crate) fn parse_frame(
    buf: &[u8],
    masked: bool,
    max_payload: u64,
) -> Result<Option<(Frame, usize)>, FrameError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x70 != 0 {
        return Err(FrameError::Rsv);
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    if !matches!(
        opcode,
        OP_CONT | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
    ) {
        return Err(FrameError::Opcode(opcode));
    }
    if (b1 & 0x80 != 0) != masked {
        return Err(FrameError::Masking);
    }
    let mut at = 2;
    let len = match b1 & 0x7F {
        126 => {
            if buf.len() < at + 2 {
                return Ok(None);
            }
            at += 2;
            u64::from(u16::from_be_bytes([buf[2], buf[3]]))
        }
        127 => {
            if buf.len() < at + 8 {
                return Ok(None);
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            at += 8;
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    if opcode >= OP_CLOSE && (len > 125 || !fin) {
        return Err(FrameError::Control);
    }
    if len > max_payload {
        return Err(FrameError::TooLong(len));
    }
    let key = if masked {
        if buf.len() < at + 4 {
            return Ok(None);
        }
        let k = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
        at += 4;
        Some(k)
    } else {
        None
    };
    // `len <= max_payload`, which the caller keeps far below usize::MAX.
    let len = len as usize;
    if buf.len() < at + len {
        return Ok(None);
    }
    let mut payload = buf[at..at + len].to_vec();
    if let Some(k) = key {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= k[i % 4];
        }
    }
    Ok(Some((
        Frame {
            fin,
            opcode,
            payload,
        },
        at + len,
    )))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn sha1_known_vectors() {
        let hex = |d: [u8; 20]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hex(sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        let long = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        assert_eq!(hex(sha1(long)), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn accept_matches_rfc_6455_example() {
        // RFC 6455 §1.3's worked example.
        assert_eq!(
            accept_for("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn masked_round_trip_at_each_length_form() {
        for len in [0usize, 1, 125, 126, 65535, 65536] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let mut wire = Vec::new();
            encode_frame(&mut wire, true, OP_BINARY, &payload, Some([1, 2, 3, 4]));
            let (frame, used) = parse_frame(&wire, true, 1 << 20).unwrap().unwrap();
            assert_eq!(used, wire.len());
            assert_eq!(
                frame,
                Frame {
                    fin: true,
                    opcode: OP_BINARY,
                    payload: payload.clone()
                }
            );
            // Every prefix is "need more", never an error or a wrong frame.
            for cut in 0..wire.len().min(20) {
                assert_eq!(parse_frame(&wire[..cut], true, 1 << 20), Ok(None));
            }
        }
    }

    #[test]
    fn rfc_6455_unmasked_hello() {
        // §5.7: a single-frame unmasked text message "Hello".
        let wire = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let (frame, used) = parse_frame(&wire, false, 125).unwrap().unwrap();
        assert_eq!(
            (frame.opcode, frame.payload.as_slice(), used),
            (OP_TEXT, &b"Hello"[..], 7)
        );
        // §5.7: the same message masked with 37 fa 21 3d.
        let masked = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let mut ours = Vec::new();
        encode_frame(
            &mut ours,
            true,
            OP_TEXT,
            b"Hello",
            Some([0x37, 0xfa, 0x21, 0x3d]),
        );
        assert_eq!(ours, masked);
    }

    #[test]
    fn refuses_what_no_peer_may_send() {
        assert_eq!(parse_frame(&[0xC1, 0x00], false, 125), Err(FrameError::Rsv));
        assert_eq!(
            parse_frame(&[0x81, 0x80, 0, 0, 0, 0], false, 125),
            Err(FrameError::Masking)
        );
        assert_eq!(
            parse_frame(&[0x81, 0x00], true, 125),
            Err(FrameError::Masking)
        );
        assert_eq!(
            parse_frame(&[0x83, 0x00], false, 125),
            Err(FrameError::Opcode(3))
        );
        assert_eq!(
            parse_frame(&[0x09, 0x00], false, 125),
            Err(FrameError::Control)
        );
        assert_eq!(
            parse_frame(&[0x82, 0x7E, 0x01, 0x00], false, 255),
            Err(FrameError::TooLong(256))
        );
    }
}
