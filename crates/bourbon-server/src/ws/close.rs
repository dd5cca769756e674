//! Close frames (RFC 6455 §5.5.1, §7.4): which status codes a peer may send, reading a Close
//! payload, and building ours.

/// What the app is told when the peer's Close carried no code (§7.4.1; never sent).
pub const NO_STATUS: u16 = 1005;
/// What the app is told when the connection ended without a Close (§7.4.1; never sent).
pub const ABNORMAL: u16 = 1006;

/// Codes a peer may put in a Close frame: the ones RFC 6455 §7.4.1 and the IANA registry
/// define for the wire (1000–1003, 1007–1014), and the ranges for libraries, frameworks and
/// applications (3000–4999). 1004–1006 and 1015 are reserved or never sent; everything else
/// below 3000 is unassigned.
pub fn valid_on_wire(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A Close frame's payload was invalid; the connection fails with this code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadClose {
    /// 1002 (bad length or code) or 1007 (reason not UTF-8).
    pub code: u16,
    /// Why, for the log.
    pub why: &'static str,
}

/// Read a Close payload: `None` when empty (no status code), else the code and the reason.
pub fn parse_close(payload: &[u8]) -> Result<Option<(u16, String)>, BadClose> {
    match payload {
        [] => Ok(None),
        [_] => Err(BadClose {
            code: 1002,
            why: "one-byte Close payload",
        }),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !valid_on_wire(code) {
                return Err(BadClose {
                    code: 1002,
                    why: "invalid close code",
                });
            }
            let text = std::str::from_utf8(reason).map_err(|_| BadClose {
                code: 1007,
                why: "close reason is not UTF-8",
            })?;
            Ok(Some((code, text.to_owned())))
        }
    }
}

/// A Close payload: the code and as much of `reason` as fits the 125-byte control-frame
/// limit, cut at a character boundary.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = Vec::with_capacity(2 + end);
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&reason.as_bytes()[..end]);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn codes_accepted_and_refused_as_autobahn_7_x_checks() {
        for ok in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
            4000, 4999,
        ] {
            assert!(valid_on_wire(ok), "{ok}");
            assert_eq!(
                parse_close(&close_payload(ok, "bye")).unwrap(),
                Some((ok, "bye".into()))
            );
        }
        for bad in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!valid_on_wire(bad), "{bad}");
            assert_eq!(parse_close(&bad.to_be_bytes()).unwrap_err().code, 1002);
        }
    }

    #[test]
    fn payload_rules() {
        assert_eq!(parse_close(b""), Ok(None));
        assert_eq!(parse_close(b"\x03").unwrap_err().code, 1002);
        assert_eq!(
            parse_close(b"\x03\xe8\xce\xba\xe1\xbd\xb9\xed\xa0\x80")
                .unwrap_err()
                .code,
            1007
        );
        // The reason is cut to fit 125 bytes, never inside a character.
        let long = "é".repeat(100);
        let p = close_payload(1000, &long);
        assert!(p.len() <= 125);
        assert!(std::str::from_utf8(&p[2..]).is_ok());
        assert_eq!(p.len(), 2 + 122);
    }
}
