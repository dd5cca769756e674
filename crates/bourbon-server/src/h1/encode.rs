//! The bytes of a response head that are not the handler's: the status line (RFC 9112 §4),
//! chunk sizes (§7.1) and the Date field (RFC 9110 §6.6.1), formatted once a second.

use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The status line (RFC 9112 §4).
pub(super) fn encode_status(out: &mut Vec<u8>, status: u16, reason: Option<&[u8]>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
    out.push(b' ');
    match reason {
        Some(r) => out.extend_from_slice(r),
        None => {
            let canonical = http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("");
            out.extend_from_slice(canonical.as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Digits of `len` in hexadecimal (as `push_chunk_size` writes them).
pub(super) fn hex_len(len: usize) -> usize {
    let bits = usize::BITS - len.leading_zeros();
    (bits as usize).div_ceil(4).max(1)
}

pub(super) fn push_chunk_size(out: &mut Vec<u8>, len: usize) {
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    let mut n = len;
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 || i == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

/// The IMF-fixdate of the current second, and the instant the second ends.
pub(super) struct DateCache {
    until: Option<std::time::Instant>,
    text: [u8; 29],
}

thread_local! {
    static DATE_CACHE: RefCell<DateCache> = const {
        RefCell::new(DateCache { until: None, text: [b' '; 29] })
    };
}

/// Append the date at `now` (a recent instant) as an HTTP-date (RFC 9110 §5.6.7). The
/// calendar clock is read and the text formatted once a second, not per response.
pub(super) fn push_date(out: &mut Vec<u8>, now: std::time::Instant) {
    DATE_CACHE.with(|cell| {
        let mut cache = cell.borrow_mut();
        if cache.until.is_none_or(|until| now >= until) {
            let wall = SystemTime::now();
            let into_second = wall
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let text = httpdate::fmt_http_date(wall);
            if text.len() == 29 {
                cache.text.copy_from_slice(text.as_bytes());
                let left = Duration::from_secs(1) - Duration::from_nanos(u64::from(into_second));
                cache.until = Some(std::time::Instant::now() + left);
            }
        }
        out.extend_from_slice(&cache.text);
    });
}

#[cfg(test)]
mod tests {
    use super::push_chunk_size;

    #[test]
    fn hex_len_counts_digits() {
        for n in [0usize, 1, 15, 16, 255, 256, 4095, 4096, 1 << 20, usize::MAX] {
            let mut out = Vec::new();
            super::push_chunk_size(&mut out, n);
            assert_eq!(super::hex_len(n), out.len() - 2, "{n}");
        }
    }

    #[test]
    fn chunk_sizes_are_lower_hex() {
        for (n, want) in [
            (0usize, "0\r\n"),
            (13, "d\r\n"),
            (4096, "1000\r\n"),
            (1 << 20, "100000\r\n"),
        ] {
            let mut out = Vec::new();
            push_chunk_size(&mut out, n);
            assert_eq!(out, want.as_bytes());
        }
    }
}
