//! Messages from frames and frames from messages (RFC 6455 §5.4–§5.6, RFC 7692 §6), with no
//! I/O: [`Receiver`] takes the client's bytes as they arrive and yields whole messages and
//! control frames; [`Encoder`] turns our messages into frames.
//!
//! The receiver enforces the rules that need the message in progress: a continuation only
//! inside a message and a new message only outside one, RSV1 only on the first frame of a
//! data message and only when permessage-deflate was agreed, the size limit (on the inflated
//! size for compressed messages, checked before anything past it is buffered), and UTF-8 for
//! text as it arrives. A data frame's payload is taken as it comes, whatever part of it a
//! read brought, so the caller never holds more than a frame header or a control frame
//! (at most 131 bytes) between reads. Reassembly appends each frame's payload to one buffer,
//! reserved at once when the first frame is final and grown geometrically otherwise: no
//! message is ever copied whole per frame.

use bytes::Bytes;

use super::close::{close_payload, parse_close};
use super::deflate::{DeflateParams, Deflater, InflateError, Inflater, MIN_COMPRESS};
use super::frame::{encode_header, parse_header, unmask, FrameHeader, OpCode};
use super::utf8::Utf8Validator;

/// A data message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Text: the bytes are valid UTF-8.
    Text(Bytes),
    /// Binary data.
    Binary(Bytes),
}

impl Message {
    /// The payload.
    pub fn data(&self) -> &Bytes {
        match self {
            Message::Text(b) | Message::Binary(b) => b,
        }
    }
}

/// What a run of client bytes produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A whole data message.
    Message(Message),
    /// A Ping, to be answered with a Pong carrying the same payload (§5.5.2).
    Ping(Bytes),
    /// A Pong.
    Pong(Bytes),
    /// A valid Close: its code and reason, or `None` when it carried no code.
    Close(Option<(u16, String)>),
}

/// The client broke the protocol: fail the connection with `code` (§7.1.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fail {
    /// 1002 (protocol error), 1007 (invalid data) or 1009 (too big).
    pub code: u16,
    /// Why, for the log and the Close reason.
    pub why: &'static str,
}

fn fail(code: u16, why: &'static str) -> Fail {
    Fail { code, why }
}

/// A data message being received.
struct Partial {
    text: bool,
    compressed: bool,
    buf: Vec<u8>,
    utf8: Utf8Validator,
    /// For compressed text: how much of `buf` has been validated.
    validated: usize,
}

/// The client's side of the connection, frame by frame.
pub struct Receiver {
    max_size: usize,
    deflate: Option<DeflateParams>,
    inflater: Inflater,
    /// The data frame whose payload is arriving, and how much of it has.
    frame: Option<(FrameHeader, u64)>,
    msg: Option<Partial>,
}

impl Receiver {
    /// A receiver for messages of at most `max_size` bytes (inflated), with the agreed
    /// permessage-deflate parameters if any.
    pub fn new(max_size: usize, deflate: Option<DeflateParams>) -> Self {
        Receiver {
            max_size,
            deflate,
            inflater: Inflater::default(),
            frame: None,
            msg: None,
        }
    }

    /// Whether a message or frame is partly received (its bytes held here).
    pub fn in_message(&self) -> bool {
        self.msg.is_some() || self.frame.is_some()
    }

    /// Take bytes from the front of `input` (unmasking them in place): how many were used,
    /// and the event they completed, if any. Call again with the rest while an event comes
    /// back; `(n, None)` means the rest is an incomplete header or control frame, to be
    /// offered again with more bytes after it.
    pub fn feed(&mut self, input: &mut [u8]) -> Result<(usize, Option<Event>), Fail> {
        let mut at = 0;
        loop {
            if self.frame.is_none() {
                let Some((h, n)) = parse_header(&input[at..]).map_err(|e| fail(1002, e.0))? else {
                    return Ok((at, None));
                };
                if h.opcode.is_control() {
                    if h.rsv1 {
                        return Err(fail(1002, "RSV1 on a control frame"));
                    }
                    let len = h.len as usize;
                    let Some(payload) = input.get_mut(at + n..at + n + len) else {
                        return Ok((at, None));
                    };
                    unmask(payload, h.mask, 0);
                    let payload = &*payload;
                    let event = match h.opcode {
                        OpCode::Ping => Event::Ping(Bytes::copy_from_slice(payload)),
                        OpCode::Pong => Event::Pong(Bytes::copy_from_slice(payload)),
                        _ => Event::Close(parse_close(payload).map_err(|e| fail(e.code, e.why))?),
                    };
                    return Ok((at + n + len, Some(event)));
                }
                self.start_frame(h)?;
                at += n;
            }
            let Some((h, done)) = self.frame.as_mut() else {
                continue;
            };
            let want = h.len - *done;
            let take = want.min((input.len() - at) as u64) as usize;
            if take == 0 && want > 0 {
                return Ok((at, None));
            }
            let chunk = &mut input[at..at + take];
            unmask(chunk, h.mask, *done);
            *done += take as u64;
            at += take;
            let (h, frame_done) = (*h, *done == h.len);
            if frame_done {
                self.frame = None;
            }
            let last = frame_done && h.fin;
            let msg = self.msg.as_mut().ok_or(fail(1002, "no message"))?;
            if msg.compressed {
                self.inflater
                    .inflate(chunk, last, &mut msg.buf, self.max_size)
                    .map_err(|e| match e {
                        InflateError::TooBig => fail(1009, "message too big"),
                        InflateError::Corrupt => fail(1007, "invalid compressed data"),
                    })?;
                if msg.text {
                    msg.utf8
                        .push(&msg.buf[msg.validated..])
                        .map_err(|_| fail(1007, "invalid UTF-8 in text"))?;
                    msg.validated = msg.buf.len();
                }
            } else {
                if msg.text {
                    msg.utf8
                        .push(chunk)
                        .map_err(|_| fail(1007, "invalid UTF-8 in text"))?;
                }
                msg.buf.extend_from_slice(chunk);
            }
            if last {
                return self.finish_message().map(|m| (at, Some(Event::Message(m))));
            }
            if !frame_done {
                return Ok((at, None));
            }
        }
    }

    /// A data frame's header arrived: check it against the message in progress.
    fn start_frame(&mut self, h: FrameHeader) -> Result<(), Fail> {
        match (h.opcode, &self.msg) {
            (OpCode::Continuation, None) => {
                return Err(fail(1002, "continuation outside a message"))
            }
            (OpCode::Continuation, Some(_)) => {
                if h.rsv1 {
                    return Err(fail(1002, "RSV1 on a continuation frame"));
                }
            }
            (_, Some(_)) => return Err(fail(1002, "new message inside a fragmented one")),
            (op, None) => {
                if h.rsv1 && self.deflate.is_none() {
                    return Err(fail(1002, "RSV1 without permessage-deflate"));
                }
                self.msg = Some(Partial {
                    text: op == OpCode::Text,
                    compressed: h.rsv1,
                    buf: Vec::new(),
                    utf8: Utf8Validator::new(),
                    validated: 0,
                });
            }
        }
        let msg = self.msg.as_mut().ok_or(fail(1002, "no message"))?;
        if !msg.compressed {
            let total = (msg.buf.len() as u64).saturating_add(h.len);
            if total > self.max_size as u64 {
                return Err(fail(1009, "message too big"));
            }
            if msg.buf.is_empty() && h.fin {
                msg.buf.reserve_exact(h.len as usize);
            } else if msg.buf.capacity() - msg.buf.len() < h.len as usize {
                // Geometric growth: at least double, never past the limit.
                let want = (msg.buf.len() + h.len as usize).max(msg.buf.capacity() * 2);
                msg.buf.reserve(want.min(self.max_size) - msg.buf.len());
            }
        }
        self.frame = Some((h, 0));
        Ok(())
    }

    fn finish_message(&mut self) -> Result<Message, Fail> {
        let msg = self.msg.take().ok_or(fail(1002, "no message"))?;
        if msg.text {
            msg.utf8
                .finish()
                .map_err(|_| fail(1007, "text ends inside a UTF-8 sequence"))?;
        }
        if msg.compressed {
            if let Some(p) = &self.deflate {
                self.inflater.message_done(p);
            }
        }
        let data = Bytes::from(msg.buf);
        Ok(if msg.text {
            Message::Text(data)
        } else {
            Message::Binary(data)
        })
    }

    /// Free what a partial message holds (the connection is closing).
    pub fn discard(&mut self) {
        self.msg = None;
        self.frame = None;
        self.inflater = Inflater::default();
    }
}

/// A frame ready to write: its header, and its payload (the caller's bytes, not copied).
#[derive(Clone, Debug)]
pub struct OutFrame {
    head: [u8; 10],
    head_len: u8,
    /// The payload.
    pub payload: Bytes,
}

impl OutFrame {
    fn new(opcode: OpCode, rsv1: bool, payload: Bytes) -> Self {
        let mut head = [0u8; 10];
        let head_len = encode_header(&mut head, true, rsv1, opcode, payload.len()) as u8;
        OutFrame {
            head,
            head_len,
            payload,
        }
    }

    /// The header bytes.
    pub fn head(&self) -> &[u8] {
        &self.head[..usize::from(self.head_len)]
    }

    /// Header and payload length.
    pub fn len(&self) -> usize {
        usize::from(self.head_len) + self.payload.len()
    }

    /// Never empty (a header is at least 2 bytes); for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// A Close frame with `code` and `reason`, or an empty one for `None`.
    pub fn close(code: Option<(u16, &str)>) -> Self {
        let payload = match code {
            Some((c, r)) => Bytes::from(close_payload(c, r)),
            None => Bytes::new(),
        };
        OutFrame::new(OpCode::Close, false, payload)
    }

    /// A Ping (`pong == false`) or Pong with `payload` (at most 125 bytes, §5.5).
    pub fn ping_pong(pong: bool, payload: Bytes) -> Self {
        let payload = payload.slice(..payload.len().min(125));
        OutFrame::new(
            if pong { OpCode::Pong } else { OpCode::Ping },
            false,
            payload,
        )
    }
}

/// Our side of the connection: messages into frames, compressed when agreed. Each message
/// goes out as one frame (§5.4 lets the sender choose; one frame is the fewest bytes).
#[derive(Default)]
pub struct Encoder {
    deflate: Option<DeflateParams>,
    deflater: Deflater,
}

impl Encoder {
    /// An encoder with the agreed permessage-deflate parameters, if any.
    pub fn new(deflate: Option<DeflateParams>) -> Self {
        Encoder {
            deflate,
            deflater: Deflater::default(),
        }
    }

    /// The frame for `msg`.
    pub fn message(&mut self, msg: Message) -> OutFrame {
        let (opcode, data) = match msg {
            Message::Text(b) => (OpCode::Text, b),
            Message::Binary(b) => (OpCode::Binary, b),
        };
        if let Some(p) = &self.deflate {
            if data.len() >= MIN_COMPRESS {
                if let Some(c) = self.deflater.compress(p, &data) {
                    return OutFrame::new(opcode, true, Bytes::from(c));
                }
            }
        }
        OutFrame::new(opcode, false, data)
    }

    /// Free the compression stream (the connection is closing).
    pub fn discard(&mut self) {
        self.deflater = Deflater::default();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::static_files::testutil::XorShift;

    /// A client frame: `b0` (FIN, RSV, opcode), masked with a fixed key.
    fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let mut v = vec![b0];
        match payload.len() {
            n if n < 126 => v.push(0x80 | n as u8),
            n if n < 65536 => {
                v.push(0x80 | 126);
                v.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                v.push(0x80 | 127);
                v.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        v.extend_from_slice(&key);
        v.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        v
    }

    /// Feed `wire` in pieces of the given sizes (cycled); collect events or the failure.
    fn run(rx: &mut Receiver, wire: &[u8], sizes: &[usize]) -> Result<Vec<Event>, Fail> {
        let mut events = Vec::new();
        let mut held: Vec<u8> = Vec::new();
        let mut at = 0;
        let mut k = 0;
        while at < wire.len() {
            let n = sizes[k % sizes.len()].min(wire.len() - at);
            k += 1;
            held.extend_from_slice(&wire[at..at + n]);
            at += n;
            loop {
                let (used, ev) = rx.feed(&mut held)?;
                held.drain(..used);
                match ev {
                    Some(e) => events.push(e),
                    None => break,
                }
            }
            assert!(held.len() <= 131, "held {} bytes between reads", held.len());
        }
        Ok(events)
    }

    #[test]
    fn fragments_with_a_ping_between_in_any_split() {
        let mut wire = frame(0x01, "Hello, ".as_bytes());
        wire.extend(frame(0x89, b"ping!"));
        wire.extend(frame(0x00, "wörld".as_bytes()));
        wire.extend(frame(0x80, b"!"));
        wire.extend(frame(0x82, &[7; 300]));
        wire.extend(frame(0x88, &close_payload(1000, "bye")));
        for size in 1..wire.len() {
            let mut rx = Receiver::new(1 << 20, None);
            let ev = run(&mut rx, &wire, &[size]).unwrap();
            assert_eq!(
                ev,
                [
                    Event::Ping(Bytes::from_static(b"ping!")),
                    Event::Message(Message::Text(Bytes::from("Hello, wörld!"))),
                    Event::Message(Message::Binary(Bytes::from(vec![7; 300]))),
                    Event::Close(Some((1000, "bye".into()))),
                ],
                "{size}"
            );
        }
    }

    #[test]
    fn message_rules() {
        let cases: &[(Vec<u8>, u16)] = &[
            (frame(0x80, b"x"), 1002), // continuation outside
            ([frame(0x01, b"a"), frame(0x81, b"b")].concat(), 1002), // new message inside
            (frame(0xC1, b"x"), 1002), // RSV1 without deflate
            (frame(0x81, b"\xce\xba\xed\xa0\x80"), 1007), // surrogate
            (frame(0x88, b"\x03"), 1002), // one-byte close
            (frame(0x88, b"\x03\xec"), 1002), // 1004
            (frame(0x88, b"\x03\xe8\xff"), 1007), // close reason
            (frame(0x82, &[0; 101]), 1009), // over the limit
            (
                [frame(0x02, &[0; 60]), frame(0x80, &[0; 41])].concat(),
                1009,
            ),
        ];
        for (wire, code) in cases {
            let mut rx = Receiver::new(100, None);
            assert_eq!(
                run(&mut rx, wire, &[1000]).unwrap_err().code,
                *code,
                "{wire:x?}"
            );
        }
        // Exactly at the limit is fine.
        let mut rx = Receiver::new(100, None);
        assert_eq!(
            run(&mut rx, &frame(0x82, &[0; 100]), &[7]).unwrap().len(),
            1
        );
    }

    #[test]
    fn invalid_text_fails_before_the_message_ends() {
        // The first fragment is already invalid; the rest never arrives.
        let mut rx = Receiver::new(1 << 20, None);
        let wire = frame(
            0x01,
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80",
        );
        assert_eq!(run(&mut rx, &wire, &[3]).unwrap_err().code, 1007);
    }

    fn deflate_params() -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: None,
        }
    }

    #[test]
    fn compressed_messages_round_trip_through_encoder_and_receiver() {
        let p = deflate_params();
        let mut enc = Encoder::new(Some(p));
        let mut rng = XorShift(3);
        let mut wire = Vec::new();
        let mut sent = Vec::new();
        for i in 0..30 {
            let text = "λόγος και ".repeat(rng.below(200) + 1);
            let msg = if i % 2 == 0 {
                Message::Text(Bytes::from(text))
            } else {
                Message::Binary(Bytes::from(text.into_bytes()))
            };
            let f = enc.message(msg.clone());
            assert_eq!(f.head()[0] & 0x40 != 0, msg.data().len() >= MIN_COMPRESS);
            // Our frames are unmasked; mask them as a client would, and split the payload
            // into fragments with RSV1 on the first only.
            let payload = f.payload.to_vec();
            let cut = rng.below(payload.len() + 1);
            let op = f.head()[0] & 0x0F;
            let rsv = f.head()[0] & 0x40;
            wire.extend(frame(op | rsv, &payload[..cut]));
            wire.extend(frame(0x80, &payload[cut..]));
            sent.push(Event::Message(msg));
        }
        let mut rx = Receiver::new(1 << 20, Some(p));
        assert_eq!(run(&mut rx, &wire, &[5, 77, 1000]).unwrap(), sent);
    }

    #[test]
    fn a_compressed_message_is_limited_by_its_inflated_size() {
        let p = deflate_params();
        let mut enc = Encoder::new(Some(p));
        let f = enc.message(Message::Binary(Bytes::from(vec![0u8; 200_000])));
        assert!(f.payload.len() < 1000);
        let wire = frame(0xC2, &f.payload);
        let mut rx = Receiver::new(100_000, Some(p));
        assert_eq!(run(&mut rx, &wire, &[4096]).unwrap_err().code, 1009);
        // RSV1 on a continuation is refused even with deflate.
        let wire = [frame(0x42, &f.payload), frame(0xC0, b"")].concat();
        let mut rx = Receiver::new(1 << 20, Some(p));
        assert_eq!(run(&mut rx, &wire, &[4096]).unwrap_err().code, 1002);
    }

    #[test]
    fn reassembly_of_many_small_frames_is_not_quadratic() {
        // 4 MiB in 64-byte frames (Autobahn 9.4.x's shape): a copy of the whole per frame
        // would move 128 GiB; appending moves 4 MiB.
        let mut wire = Vec::with_capacity(5 << 20);
        let n = (4 << 20) / 64;
        for i in 0..n {
            let b0 = if i == 0 {
                0x02
            } else if i == n - 1 {
                0x80
            } else {
                0x00
            };
            wire.extend(frame(b0, &[i as u8; 64]));
        }
        let started = std::time::Instant::now();
        let mut rx = Receiver::new(16 << 20, None);
        let ev = run(&mut rx, &wire, &[65536]).unwrap();
        assert_eq!(ev.len(), 1);
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }
}
