//! Static files served from Rust, as a layer in front of any interface's handler.
//!
//! This module owns the static-file service: routing a request to a mount (`--static
//! PREFIX=DIR`), answering it by RFC 9110 (GET and HEAD; validators, preconditions §13,
//! ranges §14, pre-compressed variants chosen by `Accept-Encoding` §12.5.3), falling through
//! to the application for a missing file when so configured, and serving the file an
//! application names with `X-Accel-Redirect` or `X-Sendfile` from a `--static-internal`
//! location. It never enters Python: a static request is answered on the event loop from the
//! [`cache`], or after a lookup on the blocking pool.
//!
//! The pure parts live beside it: [`resolve`] (request path → safe relative path),
//! [`conditional`], [`range`], [`mime`], [`encoding`]; [`compress`] writes the variants.

pub(crate) mod cache;
pub mod compress;
pub mod conditional;
pub mod encoding;
pub mod mime;
pub mod range;
pub mod resolve;
#[cfg(test)]
pub(crate) mod testutil;

use std::cell::RefCell;
use std::collections::HashSet;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::body::{Either, FileBody, FileRegion, Full};
use crate::request::{HeaderBlock, Request, RequestHead, Response};
use crate::serve::{ConnInfo, Handler, HandlerFuture};
use cache::{Cache, Entry, Found, OpenRules, Rep, Root};
use conditional::{Conditions, Precondition};
use encoding::Coding;
use range::RangeOutcome;

/// `Cache-Control` for a name that changes whenever its content does (a hashed name listed
/// in Django's manifest): cache it for ten years (WhiteNoise and Django's convention).
const IMMUTABLE: &str = "public, max-age=315360000, immutable";

/// What to do with a request under a static prefix whose file is not there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    /// Hand it to the application (its URL space is shared with the mount).
    App,
    /// Answer 404 at once.
    NotFound,
}

/// A directory served under a URL prefix.
#[derive(Clone, Debug)]
pub struct MountSpec {
    /// The URL prefix, starting with `/` (a trailing `/` is implied).
    pub prefix: String,
    /// The directory.
    pub root: PathBuf,
    /// Django's manifest of hashed names (`staticfiles.json`); by default the root's, when
    /// there is one.
    pub manifest: Option<PathBuf>,
}

/// The settings of the static-file layer.
#[derive(Clone, Debug)]
pub struct StaticConfig {
    /// Served to clients.
    pub mounts: Vec<MountSpec>,
    /// Served only when the application names a file in them (`X-Accel-Redirect` with the
    /// prefix, `X-Sendfile` with a path under the root).
    pub internal: Vec<MountSpec>,
    /// `max-age` for names that are not known to be hashed.
    pub max_age: u64,
    /// Follow symlinks that lead out of a root.
    pub follow_symlinks: bool,
    /// The file served for a directory URL (`PREFIX/dir/`), if any.
    pub index: Option<String>,
    /// What a missing file gets.
    pub missing: Missing,
}

struct Mount {
    /// With its trailing `/`.
    prefix: Box<[u8]>,
    root: Root,
    manifest: Option<PathBuf>,
    /// Names the manifest lists as hashed (replaced when the manifest changes).
    immutable: Rc<RefCell<HashSet<Box<[u8]>>>>,
}

struct State {
    /// Public mounts (longest prefix first), then internal ones; a mount's position is its
    /// number in the cache.
    mounts: Vec<Mount>,
    public: usize,
    cache: Rc<Cache>,
    cache_control: String,
    rules: OpenRules,
    index: Option<String>,
    missing: Missing,
}

/// The layer: static requests are answered here, the rest go to `inner`.
pub struct StaticFiles<H> {
    inner: Rc<H>,
    state: Rc<State>,
}

/// The body of a response this layer made.
pub type StaticBody = Either<Full, FileBody>;

impl<H: Handler> StaticFiles<H> {
    /// Put the layer in front of `inner`. Opens the roots and reads the manifests (at start:
    /// this may block).
    pub fn new(inner: H, cfg: &StaticConfig) -> io::Result<Self> {
        let mut public = cfg.mounts.clone();
        // The longest prefix wins.
        public.sort_by_key(|m| std::cmp::Reverse(m.prefix.len()));
        let count = public.len();
        let cache = Rc::new(Cache::new(count + cfg.internal.len()));
        let mut mounts = Vec::new();
        for (i, spec) in public.iter().chain(cfg.internal.iter()).enumerate() {
            let root = Root::open(&spec.root)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", spec.root.display())))?;
            let mut prefix = spec.prefix.clone().into_bytes();
            if prefix.last() != Some(&b'/') {
                prefix.push(b'/');
            }
            let manifest = spec
                .manifest
                .clone()
                .or_else(|| Some(spec.root.join("staticfiles.json")));
            let immutable = manifest.as_deref().map(read_manifest).unwrap_or_default();
            cache.watch_root(&spec.root);
            if let Some(m) = &manifest {
                if let Some(dir) = m.parent() {
                    cache.watch_now(dir);
                }
                cache.manifests.borrow_mut().push((i, m.clone()));
            }
            mounts.push(Mount {
                prefix: prefix.into(),
                root,
                manifest,
                immutable: Rc::new(RefCell::new(immutable)),
            });
        }
        let cache_control = if cfg.max_age == 0 {
            "no-cache".to_owned()
        } else {
            format!("public, max-age={}", cfg.max_age)
        };
        Ok(StaticFiles {
            inner: Rc::new(inner),
            state: Rc::new(State {
                mounts,
                public: count,
                cache,
                cache_control,
                rules: OpenRules {
                    follow_symlinks: cfg.follow_symlinks,
                },
                index: cfg.index.clone().filter(|s| !s.is_empty()),
                missing: cfg.missing,
            }),
        })
    }
}

/// Names Django's ManifestStaticFilesStorage wrote: the values of `paths` in its manifest.
fn read_manifest(path: &Path) -> HashSet<Box<[u8]>> {
    let Ok(text) = std::fs::read(path) else {
        return HashSet::new();
    };
    let parsed: serde_json::Value = match serde_json::from_slice(&text) {
        Ok(v) => v,
        Err(e) => {
            crate::log::warn(format_args!(
                "static files: cannot read the manifest {}: {e}",
                path.display()
            ));
            return HashSet::new();
        }
    };
    parsed
        .get("paths")
        .and_then(serde_json::Value::as_object)
        .map(|paths| {
            paths
                .values()
                .filter_map(serde_json::Value::as_str)
                .map(|s| s.as_bytes().into())
                .collect()
        })
        .unwrap_or_default()
}

impl<H: Handler> Handler for StaticFiles<H>
where
    H::Body: Unpin,
{
    type Body = Either<StaticBody, H::Body>;

    fn has_capacity(&self) -> bool {
        self.inner.has_capacity()
    }

    fn capacity_changed(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
        self.inner.capacity_changed()
    }

    fn call(&self, req: Request, conn: &Rc<ConnInfo>) -> HandlerFuture<Self::Body> {
        let state = &self.state;
        if let Some(route) = state.route(&req.head) {
            match state.decide(route, &req.head) {
                Decision::Respond(resp, file) => {
                    crate::metrics::static_answered(file);
                    return Box::pin(std::future::ready(from_rust(resp)));
                }
                Decision::Look(look) => {
                    let (state, inner, conn) = (state.clone(), self.inner.clone(), conn.clone());
                    return Box::pin(async move { state.look(look, req, inner, conn).await });
                }
            }
        }
        let wants_internal = state.mounts.len() > state.public;
        let head = wants_internal.then(|| req.head.clone());
        let fut = self.inner.call(req, conn);
        let state = state.clone();
        Box::pin(async move {
            let resp = fut.await;
            match head {
                Some(head) if resp.headers.names_a_file() => {
                    Box::pin(state.internal(head, resp)).await
                }
                _ => resp.map_body(Either::Right),
            }
        })
    }
}

/// A request that fell under a mount: which, the rest of the path, and the query.
struct Route<'a> {
    mount: usize,
    rest: &'a [u8],
    query: Option<&'a [u8]>,
}

/// What to do with a static request right away.
enum Decision {
    /// Answered at once; `true` with a file (from the cache).
    Respond(Response<StaticBody>, bool),
    /// Look the file up on the blocking pool.
    Look(Look),
}

struct Look {
    mount: usize,
    rel: PathBuf,
    /// The URL named a directory (`/`-terminated), so `rel` has the index appended.
    dir_url: bool,
    /// Where to redirect if `rel` is a directory holding the index (`rel/`).
    location: Option<Vec<u8>>,
}

impl State {
    fn route<'a>(&self, head: &'a RequestHead) -> Option<Route<'a>> {
        let (path, query) = resolve::target_path(head.target())?;
        self.mounts[..self.public]
            .iter()
            .position(|m| path.starts_with(&m.prefix))
            .map(|mount| Route {
                mount,
                rest: &path[self.mounts[mount].prefix.len()..],
                query,
            })
    }

    fn decide(&self, route: Route<'_>, head: &RequestHead) -> Decision {
        let resolved = match resolve::relative_path(route.rest) {
            Ok(r) => r,
            Err(resolve::Refusal::BadRequest) => return Decision::Respond(short(400), false),
            Err(resolve::Refusal::NotFound) => return Decision::Respond(short(404), false),
        };
        let dir_url = resolved.trailing_slash || resolved.path.as_os_str().is_empty();
        let rel = match (&self.index, dir_url) {
            (Some(index), true) => resolved.path.join(index),
            (None, true) => resolved.path,
            (_, false) => resolved.path,
        };
        if !(dir_url && self.index.is_none()) {
            if let Some(entry) = self.cache.get(route.mount, &rel) {
                self.reload_manifests();
                return Decision::Respond(
                    self.respond(route.mount, &rel, &entry, head, None),
                    true,
                );
            }
        }
        self.reload_manifests();
        // Where a directory URL without its slash would be sent (RFC 9110 §15.4.2).
        let location = (!dir_url && self.index.is_some()).then(|| {
            let mut loc = self.mounts[route.mount].prefix.to_vec();
            loc.extend_from_slice(route.rest);
            loc.push(b'/');
            if let Some(q) = route.query {
                loc.push(b'?');
                loc.extend_from_slice(q);
            }
            loc
        });
        Decision::Look(Look {
            mount: route.mount,
            rel,
            dir_url,
            location,
        })
    }

    async fn look<H: Handler>(
        self: Rc<Self>,
        look: Look,
        req: Request,
        inner: Rc<H>,
        conn: Rc<ConnInfo>,
    ) -> Response<Either<StaticBody, H::Body>> {
        let Look {
            mount,
            rel,
            dir_url,
            location,
        } = look;
        let found = if dir_url && self.index.is_none() {
            // A directory URL and no index: never a listing.
            Found::Missing
        } else {
            let root = &self.mounts[mount].root;
            self.cache
                .lookup(mount, root, &rel, self.index.as_deref(), self.rules)
                .await
        };
        let mut file = false;
        let resp = match found {
            Found::File(entry) => {
                file = true;
                self.respond(mount, &rel, &entry, &req.head, None)
            }
            Found::Dir { index: true } if !dir_url => match location {
                Some(loc) => redirect(&loc),
                None => short(404),
            },
            Found::Refused => short(404),
            Found::Dir { .. } | Found::Missing => match self.missing {
                Missing::App => return inner.call(req, &conn).await.map_body(Either::Right),
                Missing::NotFound => short(404),
            },
        };
        // No await from here to the driver: it reads the mark in this same poll.
        crate::metrics::static_answered(file);
        from_rust(resp)
    }

    /// Read again the manifests that changed on disk (off the event loop; until then the
    /// previous one holds).
    fn reload_manifests(&self) {
        if self.cache.manifest_dirty.borrow().is_empty() {
            return;
        }
        let dirty: Vec<usize> = std::mem::take(&mut *self.cache.manifest_dirty.borrow_mut());
        for mount in dirty {
            let Some(m) = self.mounts.get(mount) else {
                continue;
            };
            let Some(path) = m.manifest.clone() else {
                continue;
            };
            let immutable = m.immutable.clone();
            let task = tokio::task::spawn_blocking(move || read_manifest(&path));
            tokio::task::spawn_local(async move {
                if let Ok(set) = task.await {
                    *immutable.borrow_mut() = set;
                }
            });
        }
    }

    /// Answer a request for a file that exists. `app` carries the application's headers when
    /// it handed the file over (`X-Accel-Redirect`).
    fn respond(
        &self,
        mount: usize,
        rel: &Path,
        entry: &Entry,
        head: &RequestHead,
        app: Option<&HeaderBlock>,
    ) -> Response<StaticBody> {
        let method = head.method();
        let get = method == b"GET";
        if !get && method != b"HEAD" {
            let mut resp = short(405);
            resp.headers.push_trusted(b"Allow", b"GET, HEAD");
            return resp;
        }
        let fields = Fields::scan(head);
        let (rep, coding) = choose(entry, fields.accept_encoding);
        let immutable = self.mounts[mount]
            .immutable
            .borrow()
            .contains(rel.as_os_str().as_bytes());
        let cache_control = if immutable {
            IMMUTABLE
        } else {
            self.cache_control.as_str()
        };
        let pre = conditional::evaluate(
            &Conditions {
                if_match: fields.if_match,
                if_none_match: fields.if_none_match,
                if_modified_since: fields.if_modified_since,
                if_unmodified_since: fields.if_unmodified_since,
            },
            true,
            &rep.validators,
        );
        // RFC 9110 §8.8.2.1: a modification time in the future (a clock set wrong, a file
        // copied with its times) is sent as the message's date instead.
        let now = SystemTime::now();
        let clamped = (rep.validators.last_modified > now).then(|| conditional::http_date(now));
        let headers = |status: u16| {
            let mut h = HeaderBlock::with_capacity(320);
            if status != 304 {
                let ct = app
                    .and_then(|a| a.get(b"content-type"))
                    .filter(|v| !v.is_empty());
                match ct {
                    Some(ct) => h.push_trusted(b"Content-Type", ct),
                    None => h.push_trusted(b"Content-Type", mime::content_type(rel).as_bytes()),
                }
                if let Some(c) = coding {
                    h.push_trusted(
                        b"Content-Encoding",
                        match c {
                            Coding::Br => b"br",
                            Coding::Gzip => b"gzip",
                        },
                    );
                }
            }
            match &clamped {
                Some(date) => h.push_trusted(b"Last-Modified", date.as_bytes()),
                None => h.push_trusted(b"Last-Modified", rep.last_modified.as_bytes()),
            }
            h.push_trusted(b"ETag", rep.validators.etag.as_bytes());
            match app.and_then(|a| a.get(b"cache-control")) {
                Some(cc) => h.push_trusted(b"Cache-Control", cc),
                None => h.push_trusted(b"Cache-Control", cache_control.as_bytes()),
            }
            if entry.has_variants() {
                h.push_trusted(b"Vary", b"Accept-Encoding");
            }
            if status != 304 {
                h.push_trusted(b"Accept-Ranges", b"bytes");
            }
            if let Some(app) = app {
                for (name, value) in app.iter() {
                    if [&b"content-disposition"[..], b"expires", b"set-cookie"]
                        .iter()
                        .any(|n| name.eq_ignore_ascii_case(n))
                    {
                        h.push_trusted(name, value);
                    }
                }
            }
            h
        };
        match pre {
            Precondition::Failed => return vary(short(412), entry),
            Precondition::NotModified => {
                return Response {
                    status: 304,
                    reason: None,
                    headers: headers(304),
                    close: false,
                    upgrade: None,
                    interface: crate::request::Interface::Static,
                    body: Either::Left(Full::empty()),
                }
            }
            Precondition::Proceed => {}
        }
        // An If-Range date only validates when Last-Modified is a strong validator, at least a
        // second older than now (RFC 9110 §13.1.5, §8.8.2.2): a file changed twice within one
        // second could otherwise be resumed from the wrong version.
        let weak_date = fields.if_range.is_some_and(|v| {
            !v.starts_with(b"\"") && !v.starts_with(b"W/") && {
                now.duration_since(rep.validators.last_modified)
                    .map_or(true, |age| age < Duration::from_secs(1))
            }
        });
        let outcome = if get && !weak_date {
            range::evaluate(fields.range, fields.if_range, rep.len, &rep.validators)
        } else {
            RangeOutcome::Full
        };
        match outcome {
            RangeOutcome::Unsatisfiable => {
                let mut resp = short(416);
                resp.headers.push_trusted(
                    b"Content-Range",
                    range::unsatisfied_range(rep.len).as_bytes(),
                );
                vary(resp, entry)
            }
            RangeOutcome::Full => Response {
                status: 200,
                reason: None,
                headers: headers(200),
                close: false,
                upgrade: None,
                interface: crate::request::Interface::Static,
                body: body_of(rep, 0, rep.len),
            },
            RangeOutcome::Partial { start, end } => {
                let mut h = headers(206);
                h.push_trusted(
                    b"Content-Range",
                    range::content_range(start, end, rep.len).as_bytes(),
                );
                Response {
                    status: 206,
                    reason: None,
                    headers: h,
                    close: false,
                    upgrade: None,
                    interface: crate::request::Interface::Static,
                    body: body_of(rep, start, end + 1 - start),
                }
            }
        }
    }

    /// The application named a file (`X-Accel-Redirect`, `X-Sendfile`): serve it in place of
    /// the application's body, if it lies in an internal location.
    async fn internal<B>(
        self: Rc<Self>,
        head: RequestHead,
        resp: Response<B>,
    ) -> Response<Either<StaticBody, B>> {
        let Response { headers, body, .. } = resp;
        // The application's body is not sent: dropping it ends its part (closes its iterator).
        drop(body);
        let target = self.internal_target(&headers);
        let Some((mount, rel)) = target else {
            return from_rust(short(500));
        };
        let root = &self.mounts[mount].root;
        let found = match self.cache.get(mount, &rel) {
            Some(entry) => Found::File(entry),
            None => self.cache.lookup(mount, root, &rel, None, self.rules).await,
        };
        let resp = match found {
            Found::File(entry) => self.respond(mount, &rel, &entry, &head, Some(&headers)),
            _ => short(404),
        };
        from_rust(resp)
    }

    /// Which internal mount and file the application's header names; logs and gives `None`
    /// when it names nothing servable.
    fn internal_target(&self, headers: &HeaderBlock) -> Option<(usize, PathBuf)> {
        let internal = self.public..self.mounts.len();
        if let Some(uri) = headers.get(b"x-accel-redirect") {
            let found = resolve::target_path(uri).and_then(|(path, _)| {
                internal.clone().find_map(|i| {
                    let rest = path.strip_prefix(&*self.mounts[i].prefix)?;
                    let r = resolve::relative_path(rest).ok()?;
                    (!r.trailing_slash && !r.path.as_os_str().is_empty()).then_some((i, r.path))
                })
            });
            if found.is_none() {
                crate::log::error(format_args!(
                    "X-Accel-Redirect: {} is not under a --static-internal location; answering 500",
                    String::from_utf8_lossy(uri)
                ));
            }
            return found;
        }
        let path = headers.get(b"x-sendfile")?;
        let path = Path::new(std::ffi::OsStr::from_bytes(path));
        let found = internal.clone().find_map(|i| {
            let rest = path.strip_prefix(&self.mounts[i].root.path).ok()?;
            let safe = rest.components().all(|c| match c {
                Component::Normal(n) => !n.as_encoded_bytes().starts_with(b"."),
                _ => false,
            });
            (safe && !rest.as_os_str().is_empty()).then(|| (i, rest.to_path_buf()))
        });
        if found.is_none() {
            crate::log::error(format_args!(
                "X-Sendfile: {} is not under a --static-internal directory; answering 500",
                path.display()
            ));
        }
        found
    }
}

/// The representation to send: a pre-compressed variant the client accepts, else the file.
fn choose<'e>(entry: &'e Entry, accept: Option<&[u8]>) -> (&'e Rep, Option<Coding>) {
    if entry.has_variants() {
        for coding in encoding::preferred(accept) {
            let rep = match coding {
                Coding::Br => entry.br.as_ref(),
                Coding::Gzip => entry.gz.as_ref(),
            };
            if let Some(rep) = rep {
                return (rep, Some(coding));
            }
        }
    }
    (&entry.identity, None)
}

/// `len` bytes of `rep` from `start`: from memory for a small file, else a file region.
fn body_of(rep: &Rep, start: u64, len: u64) -> Either<Full, FileBody> {
    match &rep.bytes {
        Some(bytes) => {
            let from = usize::try_from(start)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let to = usize::try_from(start + len)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            Either::Left(Full::new(bytes.slice(from..to)))
        }
        None => Either::Right(FileBody::new(FileRegion {
            file: rep.file.clone(),
            offset: start,
            len,
            transient: false,
        })),
    }
}

/// Every answer about a file with variants says that it depends on Accept-Encoding (RFC 9110
/// §12.5.5), errors included, so no cache serves one client's answer to another.
fn vary(mut resp: Response<StaticBody>, entry: &Entry) -> Response<StaticBody> {
    if entry.has_variants() {
        resp.headers.push_trusted(b"Vary", b"Accept-Encoding");
    }
    resp
}

/// A short plain-text answer of our own.
/// A response this layer made, as the handler's body type, marked as served by Rust for the
/// access log.
fn from_rust<B>(resp: Response<StaticBody>) -> Response<Either<StaticBody, B>> {
    let mut resp = resp.map_body(Either::Left);
    resp.interface = crate::request::Interface::Static;
    resp
}

fn short(status: u16) -> Response<StaticBody> {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let mut resp = Response::new(
        status,
        Either::Left(Full::new(Bytes::from(format!("{status} {reason}\n")))),
    );
    resp.headers
        .push_trusted(b"Content-Type", b"text/plain; charset=utf-8");
    resp
}

fn redirect(location: &[u8]) -> Response<StaticBody> {
    let mut resp = short(301);
    // Bytes of a request target the guard accepted: no CR, LF or NUL in them.
    if resp.headers.push(b"Location", location).is_err() {
        return short(404);
    }
    resp
}

/// The request fields the layer reads, found in one pass over the head.
#[derive(Default)]
struct Fields<'a> {
    if_match: Option<&'a [u8]>,
    if_none_match: Option<&'a [u8]>,
    if_modified_since: Option<&'a [u8]>,
    if_unmodified_since: Option<&'a [u8]>,
    range: Option<&'a [u8]>,
    if_range: Option<&'a [u8]>,
    accept_encoding: Option<&'a [u8]>,
}

impl<'a> Fields<'a> {
    /// The first field of each name (a repeated one is a list the client should have joined;
    /// the first is what nginx reads too).
    fn scan(head: &'a RequestHead) -> Self {
        let mut f = Fields::default();
        for (name, value) in head.fields() {
            let slot = match name.len() {
                5 if name.eq_ignore_ascii_case(b"range") => &mut f.range,
                8 if name.eq_ignore_ascii_case(b"if-match") => &mut f.if_match,
                8 if name.eq_ignore_ascii_case(b"if-range") => &mut f.if_range,
                13 if name.eq_ignore_ascii_case(b"if-none-match") => &mut f.if_none_match,
                15 if name.eq_ignore_ascii_case(b"accept-encoding") => &mut f.accept_encoding,
                17 if name.eq_ignore_ascii_case(b"if-modified-since") => &mut f.if_modified_since,
                19 if name.eq_ignore_ascii_case(b"if-unmodified-since") => {
                    &mut f.if_unmodified_since
                }
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(value);
            }
        }
        f
    }
}
