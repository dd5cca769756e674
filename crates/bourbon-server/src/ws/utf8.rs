//! Incremental UTF-8 validation for text messages (RFC 6455 §8.1), standard library only.
//!
//! Text arrives in pieces (frames, socket reads, inflated output), and a multi-byte sequence
//! may be split between two of them. Each piece is checked as it comes, so an invalid
//! message fails at its first bad byte rather than at its end (Autobahn 6.4.x): `from_utf8`
//! says whether an error is a sequence cut short by the end of the piece (`error_len() ==
//! None`, kept as a carry of at most 3 bytes) or a byte that can never be valid. Surrogates
//! and code points past U+10FFFF are refused by `from_utf8` itself.

/// The state of one text message's validation.
#[derive(Clone, Copy, Debug, Default)]
pub struct Utf8Validator {
    carry: [u8; 4],
    carry_len: u8,
}

/// The text is not UTF-8: the connection fails with 1007.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidUtf8;

/// The length of the sequence a lead byte starts (0 for a byte that cannot lead).
fn sequence_len(lead: u8) -> usize {
    match lead {
        0x00..=0x7F => 1,
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 0,
    }
}

impl Utf8Validator {
    /// A validator at the start of a message.
    pub fn new() -> Self {
        Utf8Validator::default()
    }

    /// Check the next piece of the message.
    pub fn push(&mut self, mut piece: &[u8]) -> Result<(), InvalidUtf8> {
        if self.carry_len > 0 {
            // Complete the sequence the last piece ended inside.
            let have = usize::from(self.carry_len);
            let need = sequence_len(self.carry[0]);
            let take = need.saturating_sub(have).min(piece.len());
            let mut seq = self.carry;
            seq[have..have + take].copy_from_slice(&piece[..take]);
            match std::str::from_utf8(&seq[..have + take]) {
                Ok(_) => {
                    self.carry_len = 0;
                    piece = &piece[take..];
                }
                Err(e) if e.error_len().is_none() => {
                    // Still incomplete: the piece was too short to finish it.
                    self.carry = seq;
                    self.carry_len = (have + take) as u8;
                    return Ok(());
                }
                Err(_) => return Err(InvalidUtf8),
            }
        }
        match std::str::from_utf8(piece) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                let rest = &piece[e.valid_up_to()..];
                self.carry[..rest.len()].copy_from_slice(rest);
                self.carry_len = rest.len() as u8;
                Ok(())
            }
            Err(_) => Err(InvalidUtf8),
        }
    }

    /// The message ended: valid only if no sequence was left open.
    pub fn finish(&self) -> Result<(), InvalidUtf8> {
        if self.carry_len == 0 {
            Ok(())
        } else {
            Err(InvalidUtf8)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::static_files::testutil::XorShift;

    fn pieces_ok(pieces: &[&[u8]]) -> bool {
        let mut v = Utf8Validator::new();
        pieces.iter().all(|p| v.push(p).is_ok()) && v.finish().is_ok()
    }

    #[test]
    fn split_sequences_are_joined() {
        let s = "κόσμε-€-𝄞".as_bytes();
        for a in 0..=s.len() {
            for b in a..=s.len() {
                assert!(pieces_ok(&[&s[..a], &s[a..b], &s[b..]]), "{a} {b}");
            }
        }
    }

    #[test]
    fn invalid_text_fails_at_the_first_bad_piece() {
        // An invalid byte in the first piece fails there, before the rest arrives.
        let mut v = Utf8Validator::new();
        assert_eq!(
            v.push(b"ok \xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"),
            Err(InvalidUtf8)
        );
        // A surrogate split over pieces fails as soon as its second byte shows it.
        let mut v = Utf8Validator::new();
        assert!(v.push(b"a\xed").is_ok());
        assert_eq!(v.push(b"\xa0\x80"), Err(InvalidUtf8));
        // Past U+10FFFF, overlong forms, a stray continuation byte.
        for bad in [
            &b"\xf4\x90\x80\x80"[..],
            b"\xc0\xaf",
            b"\xe0\x80\xaf",
            b"\x80",
            b"\xff",
        ] {
            let mut v = Utf8Validator::new();
            assert_eq!(v.push(bad), Err(InvalidUtf8), "{bad:x?}");
        }
        // A sequence left open at the end of the message.
        let mut v = Utf8Validator::new();
        assert!(v.push(b"ab\xe2\x82").is_ok());
        assert_eq!(v.finish(), Err(InvalidUtf8));
    }

    #[test]
    fn agrees_with_from_utf8_on_random_splits() {
        let mut rng = XorShift(7);
        let alphabet: [&[u8]; 8] = [
            b"a",
            "é".as_bytes(),
            "€".as_bytes(),
            "𝄞".as_bytes(),
            b"\xed\xa0\x80",
            b"\xc3",
            b"\x80",
            b"\xf4\x90\x80\x80",
        ];
        for _ in 0..2000 {
            let mut msg = Vec::new();
            for _ in 0..rng.below(8) {
                msg.extend_from_slice(alphabet[rng.below(alphabet.len())]);
            }
            let mut v = Utf8Validator::new();
            let mut at = 0;
            let mut ok = true;
            while at < msg.len() && ok {
                let n = (rng.below(4) + 1).min(msg.len() - at);
                ok = v.push(&msg[at..at + n]).is_ok();
                // Fail-fast: once a piece fails, the bytes up to its end are not valid
                // text, whatever follows.
                if !ok {
                    assert!(
                        std::str::from_utf8(&msg[..at + n]).is_err_and(|e| e.error_len().is_some())
                    );
                }
                at += n;
            }
            let ok = ok && v.finish().is_ok();
            assert_eq!(ok, std::str::from_utf8(&msg).is_ok(), "{msg:x?}");
        }
    }
}
