//! Latency histogram and the pseudo-random numbers for masks and keys.
//!
//! The histogram is log-linear (64 sub-buckets per power of two, so a reported percentile is
//! within 1.6 % of the true value) and fixed in size whatever the run's length: a run of
//! millions of messages costs the same few kilobytes per connection.

const SUB_BITS: u32 = 6;
const SUB: usize = 1 << SUB_BITS;
/// Values below this are their own bucket.
const LINEAR: u64 = 2 * SUB as u64;
const BUCKETS: usize = LINEAR as usize + (64 - (SUB_BITS as usize + 1)) * SUB;

/// Counts of nanosecond latencies.
pub(crate) struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Histogram {
    pub(crate) fn new() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < LINEAR {
            return v as usize;
        }
        let exp = 63 - v.leading_zeros(); // >= SUB_BITS + 1
        let sub = (v >> (exp - SUB_BITS)) as usize & (SUB - 1);
        LINEAR as usize + (exp - SUB_BITS - 1) as usize * SUB + sub
    }

    /// The smallest value that falls in bucket `i`.
    fn lower(i: usize) -> u64 {
        if i < LINEAR as usize {
            return i as u64;
        }
        let j = i - LINEAR as usize;
        let exp = (j / SUB) as u32 + SUB_BITS + 1;
        let sub = (j % SUB) as u64;
        (1u64 << exp) | (sub << (exp - SUB_BITS))
    }

    pub(crate) fn record(&mut self, nanos: u64) {
        self.counts[Self::index(nanos)] += 1;
        self.total += 1;
        self.max = self.max.max(nanos);
    }

    pub(crate) fn merge(&mut self, other: &Self) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    pub(crate) fn count(&self) -> u64 {
        self.total
    }

    pub(crate) fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1): the lower bound of its bucket, or None when empty.
    pub(crate) fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Self::lower(i).min(self.max));
            }
        }
        Some(self.max)
    }
}

/// xorshift64*: masks and handshake keys need to vary, not to be secret (RFC 6455 §10.3 asks
/// for unpredictable masks to protect intermediaries; there are none on loopback).
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(crate) fn mask(&mut self) -> [u8; 4] {
        (self.next_u64() as u32).to_le_bytes()
    }

    pub(crate) fn bytes16(&mut self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        out[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn buckets_are_ordered_and_tight() {
        let mut last = 0;
        for v in (0..2000u64).chain((1..40).map(|s| 3u64 << s)) {
            let i = Histogram::index(v);
            assert!(i < BUCKETS);
            let lo = Histogram::lower(i);
            assert!(lo <= v, "{v}: lower {lo}");
            assert!(v - lo <= v / SUB as u64, "{v}: lower {lo} too far");
            assert!(i >= last || v < 2000);
            last = i;
        }
        assert!(Histogram::index(u64::MAX) < BUCKETS);
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::new();
        assert_eq!(h.quantile(0.5), None);
        for v in 1..=100u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5).unwrap();
        let p99 = h.quantile(0.99).unwrap();
        assert!((49_000..=50_000).contains(&p50), "{p50}");
        assert!((97_500..=99_000).contains(&p99), "{p99}");
        let mut other = Histogram::new();
        other.record(7);
        h.merge(&other);
        assert_eq!((h.count(), h.max()), (101, 100_000));
    }
}
