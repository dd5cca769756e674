//! Proxy trust and request ids: what a request's forwarding headers may change, and for whom.
//!
//! This module owns `--forwarded-allow-ips` as applied to each request (the list itself is
//! parsed by `bourbon_config::IpAllow`), the parsers for RFC 7239 `Forwarded` and the
//! `X-Forwarded-*` family, the choice of the client among several hops, and the request id
//! (kept from a trusted peer or made here). It runs in the driver before the handler, so
//! WSGI, ASGI HTTP and ASGI WebSocket see the same client, scheme and host, and so does the
//! access log.
//!
//! What it changes, it changes in the two things every adapter already reads: the request
//! head (a new `Host` value and request-id field, see [`RequestHead::with_fields`]) and the
//! connection's [`ConnInfo`] (a per-request copy with the client, scheme and server the
//! proxy reported). A request without forwarding headers from a trusted peer keeps the
//! connection's own `ConnInfo`, so the common case costs one pass over the field names.
//!
//! Rules (see `docs/proxies.md`):
//! - Only a trusted peer (in `--forwarded-allow-ips`, or any unix-socket peer) is believed.
//!   From anyone else the fields reach the application untouched and change nothing.
//! - The client is found by walking the hops from the right (the nearest proxy) and
//!   skipping addresses that are themselves trusted; the first other one is the client (all
//!   trusted: the leftmost). Entries left of it were written by the client itself and prove
//!   nothing, so taking the leftmost entry, as some servers do, lets any client choose its
//!   own address.
//! - `Forwarded` wins over `X-Forwarded-*`, one parameter at a time: the client from its
//!   `for=`, the scheme from its `proto=`, the host from its `host=`, each read from the
//!   element of the hop chosen as the client (that element was written by the trusted proxy
//!   that received the client's connection); what it does not say comes from
//!   `X-Forwarded-For` (same walk), `X-Forwarded-Proto` (then gunicorn's
//!   `X-Forwarded-Protocol: ssl` and `X-Forwarded-Ssl: on`), `X-Forwarded-Host` and
//!   `X-Forwarded-Port`, whose rightmost value counts (the one our trusted peer set). A
//!   `Forwarded` field that does not parse is ignored as a whole.

use std::cell::Cell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;

use bourbon_config::IpAllow;
use bytes::Bytes;

use crate::request::RequestHead;
use crate::serve::{ConnInfo, Local, Peer, Remote, Scheme};

/// The proxy-trust settings of a worker.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// `--forwarded-allow-ips`.
    pub forwarded_allow: IpAllow,
    /// `--proxy-protocol`.
    pub proxy_protocol: bool,
    /// `--proxy-allow-from`.
    pub proxy_allow: IpAllow,
    /// `--request-id-header`, as spelled there; `None`: no request ids.
    pub request_id: Option<Box<[u8]>>,
}

impl Default for ProxyConfig {
    /// Loopback trusted, no PROXY protocol, no request ids.
    fn default() -> Self {
        let loopback = IpAllow::parse(&["127.0.0.1", "::1"]).unwrap_or_default();
        ProxyConfig {
            forwarded_allow: loopback.clone(),
            proxy_protocol: false,
            proxy_allow: loopback,
            request_id: None,
        }
    }
}

impl ProxyConfig {
    /// Whether forwarding headers from `peer` are believed (unix-socket peers always are:
    /// only someone allowed to open the socket file can connect).
    pub fn trusts(&self, peer: &Peer) -> bool {
        match peer {
            Peer::Unix => true,
            Peer::Tcp(addr) => self.forwarded_allow.allows(addr.ip()),
        }
    }

    /// Whether `peer` may send a PROXY protocol header.
    pub fn proxy_allowed(&self, peer: &Peer) -> bool {
        match peer {
            Peer::Unix => true,
            Peer::Tcp(addr) => self.proxy_allow.allows(addr.ip()),
        }
    }
}

/// A request id: made here, or kept from a trusted peer.
#[derive(Clone, Debug)]
pub(crate) enum RequestId {
    Made([u8; 32]),
    Kept(Bytes),
}

impl RequestId {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            RequestId::Made(b) => b,
            RequestId::Kept(b) => b,
        }
    }
}

/// What a connection remembers between requests: the last forwarded view, reused while a
/// proxy's keep-alive connection keeps carrying the same client.
#[derive(Default)]
pub(crate) struct ForwardState {
    last: Option<(Vec<u8>, Rc<ConnInfo>)>,
}

/// A request as the application should see it.
pub(crate) struct Applied {
    pub head: RequestHead,
    /// `Some` when forwarding headers changed the client, scheme or host.
    pub conn: Option<Rc<ConnInfo>>,
    pub request_id: Option<RequestId>,
}

/// Apply proxy trust and request ids to one request.
pub(crate) fn apply(
    cfg: &ProxyConfig,
    head: RequestHead,
    conn: &Rc<ConnInfo>,
    state: &mut ForwardState,
) -> Applied {
    let trusted = conn.trusted;
    let id_name = cfg.request_id.as_deref();
    if !trusted && id_name.is_none() {
        return Applied {
            head,
            conn: None,
            request_id: None,
        };
    }
    let mut found = Found::default();
    for i in 0..head.field_count() {
        let Some((name, value)) = head.field(i) else {
            continue;
        };
        if let Some(id_name) = id_name {
            if name.len() == id_name.len() && name.eq_ignore_ascii_case(id_name) {
                // Repeats make the value unusable: the last one wins nowhere.
                found.id = if found.id_seen { None } else { Some(i) };
                found.id_seen = true;
                continue;
            }
        }
        if trusted {
            found.note(i, name, value);
        }
    }
    let request_id = id_name.map(|_| match found.id {
        Some(i) if trusted => {
            let (_, v) = head.field(i).unwrap_or_default();
            if valid_id(v) {
                RequestId::Kept(head.field_value_bytes(i))
            } else {
                RequestId::Made(next_id())
            }
        }
        _ => RequestId::Made(next_id()),
    });
    let view = if found.any {
        found.view(&head, cfg)
    } else {
        None
    };
    let conn_view = view.as_ref().map(|v| {
        if let Some((key, rc)) = &state.last {
            if *key == v.key {
                return rc.clone();
            }
        }
        let rc = Rc::new(v.conn_info(conn));
        state.last = Some((v.key.clone(), rc.clone()));
        rc
    });
    let host = view.as_ref().and_then(|v| v.host.as_deref());
    let made = match (&request_id, id_name) {
        (Some(RequestId::Made(id)), Some(name)) => Some((name, &id[..])),
        _ => None,
    };
    let head = match (host, made) {
        (None, None) => head,
        (Some(h), None) => head.with_fields(&[(b"Host", h, true)]),
        (None, Some((n, id))) => head.with_fields(&[(n, id, false)]),
        (Some(h), Some((n, id))) => head.with_fields(&[(b"Host", h, true), (n, id, false)]),
    };
    Applied {
        head,
        conn: conn_view,
        request_id,
    }
}

/// A request id worth keeping: 1 to 200 visible ASCII characters.
fn valid_id(v: &[u8]) -> bool {
    (1..=200).contains(&v.len()) && v.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// Where the forwarding fields are in a head.
#[derive(Default)]
struct Found {
    any: bool,
    id: Option<usize>,
    id_seen: bool,
    forwarded: Vec<usize>,
    xff: Vec<usize>,
    proto: Option<usize>,
    protocol: Option<usize>,
    ssl: Option<usize>,
    host: Option<usize>,
    port: Option<usize>,
}

impl Found {
    fn note(&mut self, i: usize, name: &[u8], _value: &[u8]) {
        let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
        let hit = match name.len() {
            9 if is(b"forwarded") => {
                self.forwarded.push(i);
                true
            }
            15 if is(b"x-forwarded-for") => {
                self.xff.push(i);
                true
            }
            15 if is(b"x-forwarded-ssl") => {
                self.ssl = Some(i);
                true
            }
            16 if is(b"x-forwarded-host") => {
                self.host = Some(i);
                true
            }
            16 if is(b"x-forwarded-port") => {
                self.port = Some(i);
                true
            }
            17 if is(b"x-forwarded-proto") => {
                self.proto = Some(i);
                true
            }
            20 if is(b"x-forwarded-protocol") => {
                self.protocol = Some(i);
                true
            }
            _ => false,
        };
        self.any |= hit;
    }

    /// What the fields say, if anything changes.
    fn view(&self, head: &RequestHead, cfg: &ProxyConfig) -> Option<View> {
        let value = |i: usize| head.field(i).map_or(&b""[..], |(_, v)| v);
        let trusted = |ip: IpAddr| cfg.forwarded_allow.allows(ip);
        let mut key = Vec::new();
        for &i in self.forwarded.iter().chain(&self.xff).chain(
            [self.proto, self.protocol, self.ssl, self.host, self.port]
                .iter()
                .flatten(),
        ) {
            key.extend_from_slice(value(i));
            key.push(0);
        }

        // Forwarded first (it wins parameter by parameter).
        let mut elements = Vec::new();
        let parsed = self
            .forwarded
            .iter()
            .all(|&i| parse_forwarded(value(i), &mut elements).is_ok());
        if !parsed {
            elements.clear();
        }
        let mut client: Option<(String, Option<u16>)> = None;
        let mut proto: Option<Scheme> = None;
        let mut host: Option<Vec<u8>> = None;
        if let Some(chosen) = choose(&elements, |e| match &e.for_ {
            Some(Node::Ip(ip, _)) => trusted(*ip),
            _ => false,
        }) {
            client = elements[chosen].for_.as_ref().map(Node::client);
            // The chosen hop's element, else the nearest one to its right that says it.
            proto = elements[chosen..]
                .iter()
                .find_map(|e| e.proto.as_deref().and_then(scheme_of));
            host = elements[chosen..]
                .iter()
                .find_map(|e| e.host.clone())
                .filter(|h| valid_host(h));
        }
        let host_from_forwarded = host.is_some();

        if client.is_none() && !self.xff.is_empty() {
            client = xff_client(self.xff.iter().map(|&i| value(i)), trusted)
                .map(|(ip, port)| (ip.to_string(), port));
        }
        if proto.is_none() {
            proto = if let Some(i) = self.proto {
                rightmost(value(i)).and_then(scheme_of)
            } else if self
                .protocol
                .is_some_and(|i| value(i).trim_ascii().eq_ignore_ascii_case(b"ssl"))
                || self
                    .ssl
                    .is_some_and(|i| value(i).trim_ascii().eq_ignore_ascii_case(b"on"))
            {
                Some(Scheme::Https)
            } else {
                None
            };
        }
        if host.is_none() {
            host = self
                .host
                .and_then(|i| rightmost(value(i)))
                .filter(|h| valid_host(h))
                .map(<[u8]>::to_vec);
        }
        let port = if host_from_forwarded {
            None
        } else {
            self.port
                .and_then(|i| rightmost(value(i)))
                .and_then(|p| std::str::from_utf8(p).ok())
                .and_then(|p| p.parse::<u16>().ok())
        };
        if port.is_some() && host.is_none() {
            host = head.host().map(<[u8]>::to_vec);
        }
        if client.is_none() && proto.is_none() && host.is_none() {
            return None;
        }
        let scheme = proto;
        // The host the application sees, and SERVER_NAME/SERVER_PORT (the ASGI `server`).
        let mut server = None;
        if let Some(h) = &mut host {
            let (name, own_port) = split_host(h);
            let effective = scheme.unwrap_or(Scheme::Http);
            let default = if effective == Scheme::Https { 443 } else { 80 };
            let port = port.or(own_port).unwrap_or(default);
            let name = String::from_utf8_lossy(name).into_owned();
            let mut text = name.clone();
            if port != default {
                text.push(':');
                text.push_str(&port.to_string());
            }
            *h = text.into_bytes();
            server = Some((name, port));
        }
        Some(View {
            key,
            client,
            scheme,
            host,
            server,
        })
    }
}

/// The forwarded view of one request.
struct View {
    /// The raw values it was made from (equal keys give equal views).
    key: Vec<u8>,
    client: Option<(String, Option<u16>)>,
    scheme: Option<Scheme>,
    host: Option<Vec<u8>>,
    server: Option<(String, u16)>,
}

impl View {
    fn conn_info(&self, conn: &ConnInfo) -> ConnInfo {
        let remote = match &self.client {
            Some((ip, port)) => Arc::new(Remote {
                ip: Arc::from(ip.as_str()),
                port: Arc::from(port.unwrap_or(0).to_string()),
                cache: Arc::default(),
            }),
            // A fresh cache all the same: the adapters keep per-connection values derived
            // from the scheme and server there.
            None => Arc::new(Remote {
                ip: conn.remote.ip.clone(),
                port: conn.remote.port.clone(),
                cache: Arc::default(),
            }),
        };
        ConnInfo {
            peer: conn.peer.clone(),
            scheme: self.scheme.unwrap_or(conn.scheme),
            local: match &self.server {
                Some((name, port)) => Local::Proxied {
                    name: Arc::from(name.as_str()),
                    port: *port,
                },
                None => conn.local.clone(),
            },
            shared: conn.shared.clone(),
            remote,
            trusted: conn.trusted,
        }
    }
}

/// `https`/`wss` or `http`/`ws`; anything else says nothing.
fn scheme_of(v: &[u8]) -> Option<Scheme> {
    let v = v.trim_ascii();
    if v.eq_ignore_ascii_case(b"https") || v.eq_ignore_ascii_case(b"wss") {
        Some(Scheme::Https)
    } else if v.eq_ignore_ascii_case(b"http") || v.eq_ignore_ascii_case(b"ws") {
        Some(Scheme::Http)
    } else {
        None
    }
}

/// The last entry of a comma-separated list, trimmed; `None` when empty.
fn rightmost(v: &[u8]) -> Option<&[u8]> {
    let last = v.rsplit(|&b| b == b',').next()?.trim_ascii();
    (!last.is_empty()).then_some(last)
}

/// A host as RFC 9110 §7.2 allows it (`uri-host [":" port]`), conservatively: a reg-name of
/// letters, digits and `-._~`, or an IP literal, then an optional port.
fn valid_host(h: &[u8]) -> bool {
    if h.is_empty() || h.len() > 255 {
        return false;
    }
    let (name, port) = split_host_raw(h);
    let name_ok = if let Some(inner) = name.strip_prefix(b"[").and_then(|n| n.strip_suffix(b"]")) {
        std::str::from_utf8(inner)
            .ok()
            .and_then(|s| s.parse::<std::net::Ipv6Addr>().ok())
            .is_some()
    } else {
        !name.is_empty()
            && name
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    };
    let port_ok = match port {
        None => true,
        Some(p) => std::str::from_utf8(p).is_ok_and(|p| p.parse::<u16>().is_ok()),
    };
    name_ok && port_ok
}

fn split_host_raw(h: &[u8]) -> (&[u8], Option<&[u8]>) {
    let name_end = h.iter().rposition(|&b| b == b']').map_or(0, |i| i + 1);
    match h[name_end..].iter().rposition(|&b| b == b':') {
        Some(i) => (&h[..name_end + i], Some(&h[name_end + i + 1..])),
        None => (h, None),
    }
}

/// A validated host's name and port.
fn split_host(h: &[u8]) -> (&[u8], Option<u16>) {
    let (name, port) = split_host_raw(h);
    let port = port
        .and_then(|p| std::str::from_utf8(p).ok())
        .and_then(|p| p.parse().ok());
    (name, port)
}

/// Walk hops from the right, skipping those `trusted` says are trusted proxies: the index of
/// the first other one, or the leftmost when all are trusted; `None` for no hops.
fn choose<T>(hops: &[T], trusted: impl Fn(&T) -> bool) -> Option<usize> {
    if hops.is_empty() {
        return None;
    }
    Some(hops.iter().rposition(|h| !trusted(h)).unwrap_or(0))
}

/// The client `X-Forwarded-For` names (every field of that name, in order, as one list).
/// An entry that is not an address where the walk stops makes the field say nothing.
fn xff_client<'a>(
    values: impl Iterator<Item = &'a [u8]>,
    trusted: impl Fn(IpAddr) -> bool,
) -> Option<(IpAddr, Option<u16>)> {
    let entries: Vec<&[u8]> = values
        .flat_map(|v| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|e| !e.is_empty())
        .collect();
    let parsed: Vec<Option<(IpAddr, Option<u16>)>> =
        entries.iter().map(|e| parse_addr(e)).collect();
    let i = choose(&parsed, |p| p.is_some_and(|(ip, _)| trusted(ip)))?;
    parsed[i]
}

/// `1.2.3.4`, `1.2.3.4:5`, `::1`, `[::1]`, `[::1]:5`.
fn parse_addr(e: &[u8]) -> Option<(IpAddr, Option<u16>)> {
    let s = std::str::from_utf8(e).ok()?;
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some((ip, None));
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some((sa.ip(), Some(sa.port())));
    }
    let inner = s.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<IpAddr>().ok().map(|ip| (ip, None))
}

/// A `for=` (or `by=`) node of RFC 7239 §6.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// An IP address, with a port when one was given as a number.
    Ip(IpAddr, Option<u16>),
    /// `unknown` (§6.2) or an obfuscated identifier such as `_hidden` (§6.3).
    Named(String),
}

impl Node {
    fn parse(v: &[u8]) -> Option<Node> {
        let s = std::str::from_utf8(v).ok()?;
        // The port: a number, or an obfuscated `_port` (§6.3), which says nothing usable.
        let port_of = |p: &str| -> Option<Option<u16>> {
            if let Ok(n) = p.parse::<u16>() {
                Some(Some(n))
            } else if p.starts_with('_') && valid_obf(p) {
                Some(None)
            } else {
                None
            }
        };
        if let Some(rest) = s.strip_prefix('[') {
            let (ip6, after) = rest.split_once(']')?;
            let ip: std::net::Ipv6Addr = ip6.parse().ok()?;
            let port = match after {
                "" => None,
                p => port_of(p.strip_prefix(':')?)?,
            };
            return Some(Node::Ip(IpAddr::V6(ip), port));
        }
        let (name, port) = match s.split_once(':') {
            Some((n, p)) => (n, port_of(p)?),
            None => (s, None),
        };
        if name.eq_ignore_ascii_case("unknown") {
            return Some(Node::Named("unknown".into()));
        }
        if name.starts_with('_') {
            return valid_obf(name).then(|| Node::Named(name.to_owned()));
        }
        let ip: std::net::Ipv4Addr = name.parse().ok()?;
        Some(Node::Ip(IpAddr::V4(ip), port))
    }

    fn client(&self) -> (String, Option<u16>) {
        match self {
            Node::Ip(ip, port) => (ip.to_string(), *port),
            Node::Named(name) => (name.clone(), None),
        }
    }
}

/// `"_" 1*(ALPHA / DIGIT / "." / "_" / "-")` (RFC 7239 §6.3).
fn valid_obf(s: &str) -> bool {
    s.len() > 1
        && s.starts_with('_')
        && s[1..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// A `Forwarded` field that breaks RFC 7239's grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadForwarded;

/// One element of a `Forwarded` field: what one proxy said about the connection it received.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Element {
    /// `for=`: the client of that connection.
    pub for_: Option<Node>,
    /// `proto=`: its scheme, as sent.
    pub proto: Option<Vec<u8>>,
    /// `host=`: the Host it carried, as sent.
    pub host: Option<Vec<u8>>,
}

/// Parse one `Forwarded` field value (RFC 7239 §4) and append its elements to `out`.
/// Quoted values may hold escapes (RFC 9110 §5.6.4); parameter names are case-insensitive;
/// a parameter given twice in one element, a `for=` that is not a node, or broken syntax is
/// an error. Parameters other than `for`, `proto` and `host` (`by`, extensions) are read
/// and ignored.
pub fn parse_forwarded(v: &[u8], out: &mut Vec<Element>) -> Result<(), BadForwarded> {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    let mut i = 0;
    let mut el = Element::default();
    let mut pairs = 0usize;
    let mut seen = [false; 4];
    let n = v.len();
    loop {
        while i < n && (v[i] == b' ' || v[i] == b'\t') {
            i += 1;
        }
        if i == n || v[i] == b',' {
            if pairs > 0 {
                out.push(std::mem::take(&mut el));
            }
            pairs = 0;
            seen = [false; 4];
            if i == n {
                return Ok(());
            }
            i += 1;
            continue;
        }
        if v[i] == b';' {
            i += 1;
            continue;
        }
        let start = i;
        while i < n && tchar(v[i]) {
            i += 1;
        }
        if start == i || i == n || v[i] != b'=' {
            return Err(BadForwarded);
        }
        let name = &v[start..i];
        i += 1;
        let mut value = Vec::new();
        if i < n && v[i] == b'"' {
            i += 1;
            loop {
                match v.get(i) {
                    None => return Err(BadForwarded),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        let c = *v.get(i + 1).ok_or(BadForwarded)?;
                        value.push(c);
                        i += 2;
                    }
                    Some(&c) => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
        } else {
            let vs = i;
            while i < n && tchar(v[i]) {
                i += 1;
            }
            if vs == i {
                return Err(BadForwarded);
            }
            value.extend_from_slice(&v[vs..i]);
        }
        let slot = if name.eq_ignore_ascii_case(b"for") {
            0
        } else if name.eq_ignore_ascii_case(b"proto") {
            1
        } else if name.eq_ignore_ascii_case(b"host") {
            2
        } else if name.eq_ignore_ascii_case(b"by") {
            3
        } else {
            pairs += 1;
            continue;
        };
        if std::mem::replace(&mut seen[slot], true) {
            return Err(BadForwarded);
        }
        match slot {
            0 => el.for_ = Some(Node::parse(&value).ok_or(BadForwarded)?),
            1 => el.proto = Some(value),
            2 => el.host = Some(value),
            _ => {}
        }
        pairs += 1;
    }
}

thread_local! {
    /// This thread's id prefix (random, made on first use) and counter.
    static IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// A new request id: 16 hex digits of a random prefix chosen once per thread (so per
/// worker: ids are made on the worker's runtime thread, created after fork) and 16 of a
/// counter. Unique without coordination between workers, and a few dozen instructions.
pub(crate) fn next_id() -> [u8; 32] {
    let (prefix, n) = IDS.with(|c| {
        let (mut prefix, n) = c.get();
        if prefix == 0 {
            prefix = random_u64() | 1;
        }
        c.set((prefix, n.wrapping_add(1)));
        (prefix, n)
    });
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (k, word) in [prefix, n].into_iter().enumerate() {
        for j in 0..16 {
            let nibble = (word >> (60 - 4 * j)) & 0xf;
            out[k * 16 + j] = HEX[nibble as usize];
        }
    }
    out
}

/// 64 bits from the kernel's random source; the clock and pid if it fails.
#[allow(unsafe_code)]
fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: `buf` is valid for writes of its length for the duration of the call.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n == 8 {
        return u64::from_ne_bytes(buf);
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ (u64::from(std::process::id()) << 32)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parse(v: &str) -> Result<Vec<Element>, BadForwarded> {
        let mut out = Vec::new();
        parse_forwarded(v.as_bytes(), &mut out).map(|()| out)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_elements_and_pairs() {
        let e = parse("for=192.0.2.60;proto=http;by=203.0.113.43").unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].for_, Some(Node::Ip(ip("192.0.2.60"), None)));
        assert_eq!(e[0].proto.as_deref(), Some(&b"http"[..]));
        let e = parse("For=\"[2001:db8:cafe::17]:4711\", for=\"192.0.2.43:80\";Host=example.com")
            .unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(
            e[0].for_,
            Some(Node::Ip(ip("2001:db8:cafe::17"), Some(4711)))
        );
        assert_eq!(e[1].for_, Some(Node::Ip(ip("192.0.2.43"), Some(80))));
        assert_eq!(e[1].host.as_deref(), Some(&b"example.com"[..]));
        let e = parse("for=unknown, for=_hidden, for=\"_SEV:_port\"").unwrap();
        assert_eq!(e[0].for_, Some(Node::Named("unknown".into())));
        assert_eq!(e[1].for_, Some(Node::Named("_hidden".into())));
        assert_eq!(e[2].for_, Some(Node::Named("_SEV".into())));
        // Escapes in quoted strings, empty list members, extensions.
        let e = parse(" , for=\"\\1\\.2.3.4\";ext=\"a,b\" ,").unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].for_, Some(Node::Ip(ip("1.2.3.4"), None)));
    }

    #[test]
    fn broken_forwarded_is_refused() {
        for bad in [
            "for",
            "for=",
            "for=\"1.2.3.4",
            "for=1.2.3.4;for=5.6.7.8",
            "for=[::1]",
            "for=\"[::1\"",
            "for=not-an-ip",
            "for=1.2.3.4:99999",
            "=x",
            "for=_",
            // A port needs quotes: ':' is not a token character (RFC 7239 §6).
            "for=192.0.2.43:80",
            "proto=http proto=https",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_client_is_the_first_untrusted_hop_from_the_right() {
        let trusted = |ip: IpAddr| ip == super::IpAddr::from([10, 0, 0, 1]) || ip.is_loopback();
        let xff = |v: &str| xff_client([v.as_bytes()].into_iter(), trusted);
        assert_eq!(xff("203.0.113.7"), Some((ip("203.0.113.7"), None)));
        // A forged leftmost entry is skipped: the proxy appended what it saw.
        assert_eq!(
            xff("1.1.1.1, 203.0.113.7, 10.0.0.1"),
            Some((ip("203.0.113.7"), None))
        );
        // All trusted: the leftmost.
        assert_eq!(xff("127.0.0.1, 10.0.0.1"), Some((ip("127.0.0.1"), None)));
        assert_eq!(
            xff("[2001:db8::1]:443"),
            Some((ip("2001:db8::1"), Some(443)))
        );
        assert_eq!(
            xff("203.0.113.7:5555"),
            Some((ip("203.0.113.7"), Some(5555)))
        );
        // Garbage where the walk stops: nothing.
        assert_eq!(xff("1.1.1.1, garbage, 10.0.0.1"), None);
        assert_eq!(xff(""), None);
        // Several fields are one list.
        let two = xff_client(
            [&b"198.51.100.1"[..], &b"10.0.0.1"[..]].into_iter(),
            trusted,
        );
        assert_eq!(two, Some((ip("198.51.100.1"), None)));
    }

    #[test]
    fn hosts_are_checked_and_split() {
        for ok in [
            "example.com",
            "example.com:8443",
            "[::1]:80",
            "127.0.0.1",
            "a-b.c_d~",
        ] {
            assert!(valid_host(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "a/b",
            "a@b",
            "example.com:x",
            "[nope]",
            "ex:1:2",
            "h:99999",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad}");
        }
        assert_eq!(split_host(b"[::1]:8080"), (&b"[::1]"[..], Some(8080)));
        assert_eq!(split_host(b"example.com"), (&b"example.com"[..], None));
    }

    #[test]
    fn ids_are_distinct_hex() {
        let a = next_id();
        let b = next_id();
        assert_ne!(a, b);
        assert!(a.iter().all(u8::is_ascii_hexdigit));
        assert_eq!(a[..16], b[..16]);
        assert!(valid_id(&a));
        assert!(!valid_id(b"has space"));
        assert!(!valid_id(b""));
    }
}
