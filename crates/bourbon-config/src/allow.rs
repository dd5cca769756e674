//! Address allow-lists (`--forwarded-allow-ips`, `--proxy-allow-from`): IP addresses, CIDR
//! blocks and `*`, parsed once at start-up and matched against each connection's peer.
//!
//! This module owns the list's grammar and its matching. It lives with the settings so a
//! bad entry is refused (one line, exit 2) before anything is bound.

use std::fmt;
use std::net::IpAddr;

/// One entry: an address and how many leading bits of it must match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(
                u128::from(u32::from(net)) << 96,
                u128::from(u32::from(ip)) << 96,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(u128::from(net), u128::from(ip), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, bits: u8) -> bool {
    if bits == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - u32::from(bits.min(128)));
    a & mask == b & mask
}

/// Who is allowed: anyone (`*`), or the peers inside one of the listed blocks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpAllow {
    any: bool,
    nets: Vec<Net>,
}

impl IpAllow {
    /// Nobody (an empty list).
    pub fn nobody() -> Self {
        IpAllow::default()
    }

    /// Parse a list of entries: `*`, an address (`10.0.0.1`, `::1`) or a block
    /// (`10.0.0.0/8`, `fd00::/8`). Empty entries are skipped.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, String> {
        let mut allow = IpAllow::default();
        for item in items {
            let t = item.as_ref().trim();
            if t.is_empty() {
                continue;
            }
            if t == "*" {
                allow.any = true;
                continue;
            }
            let (addr, prefix) = match t.split_once('/') {
                Some((a, p)) => (a, Some(p)),
                None => (t, None),
            };
            let addr: IpAddr = addr
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .map_err(|_| format!("'{t}' is not an IP address, a CIDR block or '*'"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                None => max,
                Some(p) => match p.parse::<u8>() {
                    Ok(n) if n <= max => n,
                    _ => return Err(format!("'{t}': the prefix length must be 0 to {max}")),
                },
            };
            allow.nets.push(Net { addr, prefix });
        }
        Ok(allow)
    }

    /// Whether `ip` is allowed. An IPv4 peer seen through an IPv6 socket
    /// (`::ffff:10.0.0.1`) is matched as the IPv4 address it is.
    pub fn allows(&self, ip: IpAddr) -> bool {
        if self.any {
            return true;
        }
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.nets.iter().any(|n| n.contains(ip))
    }

    /// True for `*`.
    pub fn allows_any(&self) -> bool {
        self.any
    }
}

impl fmt::Display for IpAllow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            let s = if first { "" } else { "," };
            first = false;
            f.write_str(s)
        };
        if self.any {
            sep(f)?;
            f.write_str("*")?;
        }
        for n in &self.nets {
            sep(f)?;
            let max = if n.addr.is_ipv4() { 32 } else { 128 };
            if n.prefix == max {
                write!(f, "{}", n.addr)?;
            } else {
                write!(f, "{}/{}", n.addr, n.prefix)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::IpAllow;

    fn allow(list: &[&str]) -> IpAllow {
        IpAllow::parse(list).unwrap()
    }

    #[test]
    fn addresses_and_blocks_match() {
        let a = allow(&[
            "127.0.0.1",
            "::1",
            "10.0.0.0/8",
            "fd00::/8",
            "192.168.1.128/25",
        ]);
        for ok in [
            "127.0.0.1",
            "::1",
            "10.1.2.3",
            "fd12::5",
            "192.168.1.200",
            "::ffff:10.9.9.9",
        ] {
            assert!(a.allows(ok.parse().unwrap()), "{ok}");
        }
        for no in [
            "127.0.0.2",
            "::2",
            "11.0.0.1",
            "fe80::1",
            "192.168.1.127",
            "::ffff:127.0.0.2",
        ] {
            assert!(!a.allows(no.parse().unwrap()), "{no}");
        }
    }

    #[test]
    fn star_zero_prefix_and_empty() {
        assert!(allow(&["*"]).allows("203.0.113.9".parse().unwrap()));
        assert!(allow(&["0.0.0.0/0"]).allows("203.0.113.9".parse().unwrap()));
        assert!(!allow(&["0.0.0.0/0"]).allows("2001:db8::1".parse().unwrap()));
        assert!(allow(&["::/0"]).allows("2001:db8::1".parse().unwrap()));
        assert!(!allow(&[]).allows("127.0.0.1".parse().unwrap()));
        assert!(!allow(&["", " "]).allows("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn bad_entries_are_refused() {
        for bad in [
            "localhost",
            "10.0.0.0/33",
            "::/129",
            "1.2.3",
            "10.0.0.0/x",
            "*/8",
        ] {
            assert!(IpAllow::parse(&[bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn shows_as_given() {
        assert_eq!(
            allow(&["127.0.0.1", "::1", "10.0.0.0/8"]).to_string(),
            "127.0.0.1,::1,10.0.0.0/8"
        );
        assert_eq!(allow(&["*"]).to_string(), "*");
    }
}
