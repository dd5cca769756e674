//! `bourbon compress DIR [DIR...]`: pre-compressed variants for a static tree.
//!
//! Run after Django's `collectstatic`, it writes `NAME.br` (brotli) and `NAME.gz` (gzip)
//! beside each file whose type compresses well, so that the static file layer can answer a
//! client whose `Accept-Encoding` allows one of them (RFC 9110 §12.5.3) with that file and
//! `Content-Encoding` (§8.4), instead of compressing on every request or not at all.
//!
//! It owns which files get variants (by extension; never dotfiles, never through a
//! symlinked directory), the encoders' settings, the atomic installation of each variant,
//! and the command's arguments, output and exit status. It runs as a one-off command, never
//! inside a server process, and shares only a naming convention with the serving path: a
//! variant is the original's name plus `.br` / `.gz`, and carries the original's
//! modification time, which is how a later run knows that the variant is current.

use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File, FileTimes, Metadata, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::num::NonZeroUsize;
use std::os::unix::fs::PermissionsExt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::SystemTime;

use flate2::{Compression, GzBuilder};

/// Extensions (compared without regard to case) of types that compress well: text, source
/// maps, SVG, WebAssembly, uncompressed font formats and icons. Formats that are compressed
/// already (images, WOFF/WOFF2, archives, audio and video) gain nothing and are left out, as
/// are `.br` and `.gz` files themselves.
const COMPRESSIBLE: &[&str] = &[
    "css",
    "csv",
    "eot",
    "htm",
    "html",
    "ico",
    "js",
    "json",
    "map",
    "md",
    "mjs",
    "otf",
    "svg",
    "ttf",
    "txt",
    "wasm",
    "webmanifest",
    "xml",
];

/// Brotli's highest quality: the files are compressed once and served many times.
const BROTLI_QUALITY: i32 = 11;
/// Brotli's window, log2 bytes: 4 MiB, the `brotli` tool's default and well inside what
/// every browser's decoder accepts (RFC 7932 §9.1 allows up to 24).
const BROTLI_WINDOW: i32 = 22;
/// How much of the original is read at a time and handed to both encoders.
const READ_CHUNK: usize = 64 * 1024;

const USAGE: &str = "\
usage: bourbon compress [OPTIONS] DIR [DIR...]

Write pre-compressed copies of the files in each DIR (recursively), for bourbon's static
file server to send to clients that accept them; run it after `manage.py collectstatic`,
on STATIC_ROOT. Beside each text, SVG, JSON, source map, WebAssembly, font or icon file
NAME it writes NAME.br (brotli, quality 11) and NAME.gz (gzip, level 9), each only when it
is more than 5% smaller than NAME; otherwise an old copy of that name is removed. A copy
whose modification time equals NAME's is current and left alone, so running it again only
compresses what changed. Dotfiles and dot-directories are skipped and symlinked
directories are not followed.

options:
  --force        rewrite every copy, current or not
  --no-brotli    do not write NAME.br (existing ones are left as they are)
  --no-gzip      do not write NAME.gz (existing ones are left as they are)
  --quiet        print only errors, not the summary line
  -h, --help     show this help

Only the bare word `compress` as the first argument runs this command; an application
module named compress is still served with `bourbon compress:app`.
Exit status: 0 done, 1 some files failed (one line each on stderr), 2 usage error.
";

/// What to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Rewrite variants that are current.
    pub force: bool,
    /// Write `NAME.br`.
    pub brotli: bool,
    /// Write `NAME.gz`.
    pub gzip: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            force: false,
            brotli: true,
            gzip: true,
        }
    }
}

/// The command line after `compress`.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    Help,
    Run {
        dirs: Vec<PathBuf>,
        options: Options,
        quiet: bool,
    },
}

/// What a run did, for the summary line and the exit status.
#[derive(Debug, Default)]
pub struct Summary {
    /// Files for which at least one variant was written.
    pub compressed: u64,
    /// Files of a compressible type left without a new variant: every variant was current,
    /// or none was worth keeping.
    pub skipped: u64,
    /// Total size of the compressed files.
    pub original_bytes: u64,
    /// Total size of the `.br` variants written (`None`: brotli was off).
    pub br_bytes: Option<u64>,
    /// Total size of the `.gz` variants written (`None`: gzip was off).
    pub gz_bytes: Option<u64>,
    /// One line per failure, naming the path, in walk order.
    pub errors: Vec<String>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = if self.compressed == 1 { "" } else { "s" };
        write!(
            f,
            "compressed {} file{plural} ({} MB",
            self.compressed,
            megabytes(self.original_bytes)
        )?;
        let mut sep = " → ";
        for (name, bytes) in [("br", self.br_bytes), ("gz", self.gz_bytes)] {
            if let Some(bytes) = bytes {
                write!(f, "{sep}{name} {} MB", megabytes(bytes))?;
                sep = ", ";
            }
        }
        write!(f, "), skipped {}", self.skipped)
    }
}

fn megabytes(bytes: u64) -> String {
    format!("{:.2}", bytes as f64 / 1e6)
}

/// Run `bourbon compress` with the arguments after `compress`; returns the exit status.
pub fn main(args: &[String]) -> i32 {
    let (dirs, options, quiet) = match parse(args) {
        Ok(Command::Help) => {
            // A closed stdout (`| head`) is not worth an error.
            let _ = io::stdout().lock().write_all(USAGE.as_bytes());
            return 0;
        }
        Ok(Command::Run {
            dirs,
            options,
            quiet,
        }) => (dirs, options, quiet),
        Err(line) => {
            eprintln!("{line}");
            return 2;
        }
    };
    let summary = compress_dirs(&dirs, options);
    {
        let mut err = io::stderr().lock();
        for line in &summary.errors {
            let _ = writeln!(err, "error: {line}");
        }
    }
    if !quiet {
        let _ = writeln!(io::stdout().lock(), "{summary}");
    }
    if summary.errors.is_empty() {
        0
    } else {
        1
    }
}

/// Parse the arguments after `compress`; an error is the one line to print before exit 2.
fn parse(args: &[String]) -> Result<Command, String> {
    let mut options = Options::default();
    let mut quiet = false;
    let mut dirs = Vec::new();
    let mut only_dirs = false;
    for arg in args {
        if only_dirs || arg == "-" || !arg.starts_with('-') {
            dirs.push(PathBuf::from(arg));
            continue;
        }
        match arg.as_str() {
            "--" => only_dirs = true,
            "-h" | "--help" => return Ok(Command::Help),
            "--force" => options.force = true,
            "--quiet" => quiet = true,
            "--no-brotli" => options.brotli = false,
            "--no-gzip" => options.gzip = false,
            _ => {
                return Err(format!(
                    "error: unknown option {arg} for bourbon compress \
                     (--force, --quiet, --no-brotli, --no-gzip) — see bourbon compress --help"
                ))
            }
        }
    }
    if !options.brotli && !options.gzip {
        return Err(
            "error: bourbon compress: --no-brotli with --no-gzip leaves nothing to \
                    write; drop one of them"
                .to_string(),
        );
    }
    if dirs.is_empty() {
        return Err(
            "error: bourbon compress needs a directory: bourbon compress DIR [DIR...] \
                    (the STATIC_ROOT that collectstatic fills)"
                .to_string(),
        );
    }
    for dir in &dirs {
        match fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(format!(
                    "error: bourbon compress: {} is not a directory; give the directory that \
                     holds the static files (STATIC_ROOT)",
                    dir.display()
                ))
            }
            Err(e) => {
                return Err(format!(
                    "error: bourbon compress: cannot open directory {}: {e}; give an existing \
                     directory (the STATIC_ROOT that collectstatic fills)",
                    dir.display()
                ))
            }
        }
    }
    Ok(Command::Run {
        dirs,
        options,
        quiet,
    })
}

/// Write the variants for every compressible file under `dirs`, in parallel over files.
/// The result, errors included, is in walk order whatever the scheduling.
pub fn compress_dirs(dirs: &[PathBuf], options: Options) -> Summary {
    let mut summary = Summary {
        br_bytes: options.brotli.then_some(0),
        gz_bytes: options.gzip.then_some(0),
        ..Summary::default()
    };
    let files = collect(dirs, &mut summary.errors);
    for (path, result) in files.iter().zip(run_parallel(&files, options)) {
        match result {
            Ok(Outcome::Written {
                br: None, gz: None, ..
            }) => summary.skipped += 1,
            Ok(Outcome::Written { original, br, gz }) => {
                summary.compressed += 1;
                summary.original_bytes += original;
                if let (Some(total), Some(n)) = (summary.br_bytes.as_mut(), br) {
                    *total += n;
                }
                if let (Some(total), Some(n)) = (summary.gz_bytes.as_mut(), gz) {
                    *total += n;
                }
            }
            Ok(Outcome::Current) => summary.skipped += 1,
            Ok(Outcome::Vanished) => {}
            Err(e) => summary.errors.push(format!("{}: {e}", path.display())),
        }
    }
    summary
}

/// The compressible files under `dirs`, depth first in name order. A directory named twice,
/// or inside another one named, is walked once.
fn collect(dirs: &[PathBuf], errors: &mut Vec<String>) -> Vec<PathBuf> {
    let mut roots: Vec<(&PathBuf, PathBuf)> = Vec::new();
    for dir in dirs {
        match fs::canonicalize(dir) {
            Ok(real) => roots.push((dir, real)),
            Err(e) => errors.push(format!("{}: {e}", dir.display())),
        }
    }
    let mut files = Vec::new();
    for (i, (dir, real)) in roots.iter().enumerate() {
        // Inside another root, or the same as an earlier one.
        let covered = roots
            .iter()
            .enumerate()
            .any(|(j, (_, other))| j != i && real.starts_with(other) && (real != other || j < i));
        if !covered {
            walk(real, dir, &mut files, errors);
        }
    }
    files
}

/// Add the compressible files under `dir` (part of the tree whose real path is `root`).
fn walk(root: &Path, dir: &Path, files: &mut Vec<PathBuf>, errors: &mut Vec<String>) {
    let listing = match fs::read_dir(dir) {
        Ok(l) => l,
        Err(e) => {
            errors.push(format!("{}: cannot list the directory: {e}", dir.display()));
            return;
        }
    };
    let mut entries = Vec::new();
    for entry in listing {
        match entry {
            Ok(e) => entries.push(e),
            Err(e) => errors.push(format!("{}: cannot list the directory: {e}", dir.display())),
        }
    }
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        // The server never serves dotfiles (`.git`, `.env`), so they get no variants either;
        // this also keeps our own temporary files out.
        if name.as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let path = entry.path();
        let kind = match entry.file_type() {
            Ok(k) => k,
            Err(e) => {
                errors.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        if kind.is_dir() {
            walk(root, &path, files, errors);
        } else if is_compressible(&name) && (kind.is_file() || links_to_file_inside(&path, root)) {
            files.push(path);
        }
        // A symlink to a directory is not followed: the directory is either outside the tree
        // (not ours to write into) or inside it (walked where it lies).
    }
}

/// A symlink to a regular file inside the tree gets variants beside the link. One that leads
/// outside is left alone: the server refuses it unless told to follow such links, and a
/// variant would be a regular file that it serves, which would publish the target.
fn links_to_file_inside(link: &Path, root: &Path) -> bool {
    match fs::canonicalize(link) {
        Ok(target) => target.starts_with(root) && target.is_file(),
        Err(_) => false,
    }
}

fn is_compressible(name: &OsStr) -> bool {
    let name = name.as_encoded_bytes();
    match name.iter().rposition(|&b| b == b'.') {
        Some(dot) if dot > 0 => {
            let ext = &name[dot + 1..];
            COMPRESSIBLE
                .iter()
                .any(|known| known.as_bytes().eq_ignore_ascii_case(ext))
        }
        _ => false,
    }
}

/// The two codings, in the order they are reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Coding {
    Brotli,
    Gzip,
}

impl Coding {
    fn suffix(self) -> &'static str {
        match self {
            Coding::Brotli => ".br",
            Coding::Gzip => ".gz",
        }
    }
}

/// `NAME` + `.br` / `.gz`.
fn variant_path(original: &Path, coding: Coding) -> PathBuf {
    let mut name = original.as_os_str().to_owned();
    name.push(coding.suffix());
    PathBuf::from(name)
}

/// A variant is current when it is a regular file with exactly the original's modification
/// time, which only this command (or a copy that keeps times, like `gzip -k` or `rsync -a`)
/// gives it. Equality rather than "not older" so that an original replaced by an older
/// file (a rollback, a checkout) is compressed again instead of sharing a stale variant.
fn is_current(variant: &Path, modified: SystemTime) -> bool {
    match fs::symlink_metadata(variant) {
        Ok(m) => m.is_file() && m.modified().is_ok_and(|t| t == modified),
        Err(_) => false,
    }
}

/// A variant is kept only when it is more than 5% smaller than the original: below that, the
/// bytes saved do not pay for a second file to keep and negotiate (WhiteNoise users expect
/// the same threshold).
fn worth_keeping(variant_len: u64, original_len: u64) -> bool {
    u128::from(variant_len) * 100 < u128::from(original_len) * 95
}

/// What happened to one file.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Every enabled variant was current.
    Current,
    /// The file was compressed; the sizes of the variants kept (`None`: not written, because
    /// it was current, not worth keeping, or its coding is off).
    Written {
        original: u64,
        br: Option<u64>,
        gz: Option<u64>,
    },
    /// It was gone, or no longer a regular file, when its turn came.
    Vanished,
}

/// Compress each file on up to one thread per available core, the calling thread included.
/// Results come back in the order of `files`.
fn run_parallel(files: &[PathBuf], options: Options) -> Vec<Result<Outcome, String>> {
    let slots: Vec<OnceLock<Result<Outcome, String>>> =
        files.iter().map(|_| OnceLock::new()).collect();
    let next = AtomicUsize::new(0);
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(path) = files.get(i) else { break };
        // A panic in an encoder fails that file, not the run (our temporary files are
        // removed as the stack unwinds).
        let result = panic::catch_unwind(AssertUnwindSafe(|| compress_file(path, options)))
            .unwrap_or_else(|_| Err("internal error while compressing (a bug)".to_string()));
        let _ = slots[i].set(result);
    };
    let threads = thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(files.len());
    thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads)
            .filter_map(|_| thread::Builder::new().spawn_scoped(scope, work).ok())
            .collect();
        work();
        for helper in helpers {
            let _ = helper.join();
        }
    });
    slots
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .unwrap_or_else(|| Err("internal error: not compressed (a bug)".to_string()))
        })
        .collect()
}

/// Write the variants of one file that are not current (all of them with `--force`).
fn compress_file(path: &Path, options: Options) -> Result<Outcome, String> {
    let mut original = match File::open(path) {
        Ok(f) => f,
        // Removed since the walk (collectstatic --clear running meanwhile): nothing to do.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Outcome::Vanished),
        Err(e) => return Err(format!("cannot open: {e}")),
    };
    // The metadata of the file as opened, so a file replaced meanwhile is judged by the
    // bytes actually read, and its variants get that version's time.
    let meta = original
        .metadata()
        .map_err(|e| format!("cannot stat: {e}"))?;
    if !meta.is_file() {
        return Ok(Outcome::Vanished);
    }
    let modified = meta
        .modified()
        .map_err(|e| format!("no modification time: {e}"))?;
    let wanted: Vec<Coding> = [
        (options.brotli, Coding::Brotli),
        (options.gzip, Coding::Gzip),
    ]
    .into_iter()
    .filter(|&(on, coding)| {
        on && (options.force || !is_current(&variant_path(path, coding), modified))
    })
    .map(|(_, coding)| coding)
    .collect();
    if wanted.is_empty() {
        return Ok(Outcome::Current);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut encoders = Vec::with_capacity(wanted.len());
    for &coding in &wanted {
        let pending = Pending::create(dir)
            .map_err(|e| format!("cannot create a temporary file in {}: {e}", dir.display()))?;
        encoders.push(Encoder::new(coding, pending, meta.len()));
    }
    let mut buf = vec![0u8; READ_CHUNK];
    let mut read_total: u64 = 0;
    loop {
        let n = match original.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("cannot read: {e}")),
        };
        read_total += n as u64;
        for encoder in &mut encoders {
            encoder
                .write_all(&buf[..n])
                .map_err(|e| format!("cannot write a temporary file in {}: {e}", dir.display()))?;
        }
    }
    let mut outcome = Outcome::Written {
        original: read_total,
        br: None,
        gz: None,
    };
    for encoder in encoders {
        let coding = encoder.coding();
        let target = variant_path(path, coding);
        let pending = encoder
            .finish()
            .map_err(|e| format!("cannot write a temporary file in {}: {e}", dir.display()))?;
        let len = pending.written;
        if worth_keeping(len, read_total) {
            pending
                .install(&target, &meta)
                .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
            if let Outcome::Written { br, gz, .. } = &mut outcome {
                match coding {
                    Coding::Brotli => *br = Some(len),
                    Coding::Gzip => *gz = Some(len),
                }
            }
        } else {
            drop(pending);
            // An older variant of a file that no longer compresses would be served with
            // the old bytes.
            match fs::remove_file(&target) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("cannot remove stale {}: {e}", target.display())),
            }
        }
    }
    Ok(outcome)
}

/// One encoder, writing into its temporary file.
enum Encoder {
    Brotli(Box<brotli::CompressorWriter<Pending>>),
    Gzip(Box<flate2::write::GzEncoder<Pending>>),
}

impl Encoder {
    fn new(coding: Coding, out: Pending, size_hint: u64) -> Self {
        match coding {
            Coding::Brotli => {
                let params = brotli::enc::BrotliEncoderParams {
                    quality: BROTLI_QUALITY,
                    lgwin: BROTLI_WINDOW,
                    size_hint: usize::try_from(size_hint).unwrap_or(usize::MAX),
                    ..Default::default()
                };
                Encoder::Brotli(Box::new(brotli::CompressorWriter::with_params(
                    out, READ_CHUNK, &params,
                )))
            }
            // mtime 0 and no file name in the header (RFC 1952 §2.3.1): the same input gives
            // the same bytes, whenever and wherever it is compressed.
            Coding::Gzip => Encoder::Gzip(Box::new(
                GzBuilder::new().mtime(0).write(out, Compression::best()),
            )),
        }
    }

    fn coding(&self) -> Coding {
        match self {
            Encoder::Brotli(_) => Coding::Brotli,
            Encoder::Gzip(_) => Coding::Gzip,
        }
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Encoder::Brotli(w) => w.write_all(data),
            Encoder::Gzip(w) => w.write_all(data),
        }
    }

    /// End the stream and hand back its file, or the first write error it met.
    fn finish(self) -> io::Result<Pending> {
        let mut pending = match self {
            // `into_inner` writes the end of the stream but drops any error doing so; the
            // file remembers it.
            Encoder::Brotli(w) => w.into_inner(),
            Encoder::Gzip(w) => w.finish()?,
        };
        match pending.error.take() {
            Some(e) => Err(e),
            None => Ok(pending),
        }
    }
}

/// A variant being written: a dot-named temporary file in the original's directory (the
/// server never serves dotfiles, and a run skips them), renamed over `NAME.br` / `NAME.gz`
/// once complete, so a reader sees the old variant or the new one, never part of one.
/// Dropped without [`Pending::install`] (failure, not worth keeping, a panic), it removes
/// itself.
struct Pending {
    path: PathBuf,
    file: File,
    /// Bytes written so far.
    written: u64,
    /// The first write error, kept for encoders that do not report one.
    error: Option<io::Error>,
    installed: bool,
}

impl Pending {
    fn create(dir: &Path) -> io::Result<Self> {
        static SEQUENCE: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            ".bourbon-compress-{}-{}.tmp",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok(Pending {
            path,
            file,
            written: 0,
            error: None,
            installed: false,
        })
    }

    /// Give the variant the original's permission bits (it must be exactly as readable) and
    /// modification time, make it durable, and rename it into place. Durable before the
    /// rename because a variant truncated by a crash would look current forever.
    fn install(mut self, to: &Path, original: &Metadata) -> io::Result<()> {
        let mode = original.permissions().mode() & 0o777;
        self.file.set_permissions(Permissions::from_mode(mode))?;
        self.file
            .set_times(FileTimes::new().set_modified(original.modified()?))?;
        self.file.sync_all()?;
        fs::rename(&self.path, to)?;
        self.installed = true;
        Ok(())
    }
}

impl Write for Pending {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.error.is_some() {
            return Err(io::Error::other("an earlier write failed"));
        }
        match self.file.write(data) {
            Ok(n) => {
                self.written += n as u64;
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let copy = io::Error::new(e.kind(), e.to_string());
                self.error = Some(e);
                Err(copy)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.installed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt};
    use std::time::Duration;

    /// A directory under the system's temporary directory, removed when dropped.
    struct Tree(PathBuf);

    impl Tree {
        fn new(tag: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("bourbon-compress-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Tree(dir)
        }

        fn path(&self, rel: &str) -> PathBuf {
            self.0.join(rel)
        }

        fn write(&self, rel: &str, data: &[u8]) -> PathBuf {
            let path = self.path(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, data).unwrap();
            path
        }

        fn run(&self, options: Options) -> Summary {
            compress_dirs(std::slice::from_ref(&self.0), options)
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// Text that compresses to a small fraction of its size.
    fn text(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| format!(".rule-{} {{ color: #{:06x}; }}\n", i % 50, i % 7))
            .collect::<String>()
            .into_bytes()
    }

    /// Bytes that do not compress (xorshift).
    fn noise(n: usize) -> Vec<u8> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn has(path: &Path, coding: Coding) -> bool {
        variant_path(path, coding).exists()
    }

    fn both(path: &Path) -> bool {
        has(path, Coding::Brotli) && has(path, Coding::Gzip)
    }

    fn neither(path: &Path) -> bool {
        !has(path, Coding::Brotli) && !has(path, Coding::Gzip)
    }

    fn gunzip(path: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(File::open(path).unwrap())
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn unbrotli(path: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        brotli::Decompressor::new(File::open(path).unwrap(), 4096)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn set_mtime(path: &Path, t: SystemTime) {
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_times(FileTimes::new().set_modified(t))
            .unwrap();
    }

    fn mtime(path: &Path) -> SystemTime {
        fs::metadata(path).unwrap().modified().unwrap()
    }

    fn leftovers(dir: &Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                found.extend(leftovers(&path));
            } else if entry
                .file_name()
                .to_string_lossy()
                .starts_with(".bourbon-compress-")
            {
                found.push(path);
            }
        }
        found
    }

    #[test]
    fn chooses_files_by_extension() {
        let t = Tree::new("types");
        let body = text(400);
        let yes: Vec<PathBuf> = [
            "a.css",
            "b.js",
            "c.mjs",
            "d.json",
            "e.js.map",
            "f.html",
            "g.htm",
            "h.txt",
            "i.xml",
            "j.svg",
            "k.csv",
            "l.md",
            "m.wasm",
            "n.ttf",
            "o.otf",
            "p.eot",
            "q.ico",
            "r.webmanifest",
            "UPPER.CSS",
            "sub/dir/s.css",
        ]
        .iter()
        .map(|n| t.write(n, &body))
        .collect();
        let no: Vec<PathBuf> = [
            "a.png",
            "b.jpg",
            "c.gif",
            "d.webp",
            "e.avif",
            "f.woff",
            "g.woff2",
            "h.zip",
            "i.gz",
            "j.br",
            "k.mp4",
            "l.webm",
            "m.mp3",
            "Makefile",
            "css",
            "x.css.gz.txt.gz",
        ]
        .iter()
        .map(|n| t.write(n, &body))
        .collect();
        let s = t.run(Options::default());
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        for p in &yes {
            assert!(both(p), "{} has no variants", p.display());
        }
        for p in &no {
            assert!(neither(p), "{} got a variant", p.display());
        }
        assert_eq!(s.compressed, yes.len() as u64);
        assert_eq!(s.skipped, 0);
        assert!(leftovers(&t.0).is_empty());
    }

    #[test]
    fn variants_decompress_to_the_original_and_are_reproducible() {
        let t = Tree::new("roundtrip");
        let body = text(20_000); // several read chunks
        let css = t.write("app.css", &body);
        let s = t.run(Options::default());
        assert_eq!(s.compressed, 1);
        let br = variant_path(&css, Coding::Brotli);
        let gz = variant_path(&css, Coding::Gzip);
        assert_eq!(unbrotli(&br), body);
        assert_eq!(gunzip(&gz), body);
        assert_eq!(s.original_bytes, body.len() as u64);
        assert_eq!(s.br_bytes, Some(fs::metadata(&br).unwrap().len()));
        assert_eq!(s.gz_bytes, Some(fs::metadata(&gz).unwrap().len()));
        let gz_bytes = fs::read(&gz).unwrap();
        assert_eq!(
            &gz_bytes[..4],
            &[0x1f, 0x8b, 8, 0],
            "gzip magic, deflate, no flags"
        );
        assert_eq!(&gz_bytes[4..8], &[0, 0, 0, 0], "MTIME is 0");
        let br_bytes = fs::read(&br).unwrap();
        let again = t.run(Options {
            force: true,
            ..Options::default()
        });
        assert_eq!(again.compressed, 1);
        assert_eq!(fs::read(&gz).unwrap(), gz_bytes);
        assert_eq!(fs::read(&br).unwrap(), br_bytes);
    }

    #[test]
    fn five_percent_rule() {
        assert!(worth_keeping(94, 100));
        assert!(!worth_keeping(95, 100));
        assert!(!worth_keeping(96, 100));
        assert!(!worth_keeping(0, 0));
        assert!(worth_keeping(0, 1));
        assert!(!worth_keeping(u64::MAX, u64::MAX));

        let t = Tree::new("five");
        let random = t.write("random.txt", &noise(50_000));
        let empty = t.write("empty.txt", b"");
        let tiny = t.write("tiny.js", b"x");
        let small = t.write("small.css", &text(3)); // small, but compresses
        let s = t.run(Options::default());
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        assert!(neither(&random) && neither(&empty) && neither(&tiny));
        assert!(both(&small));
        assert_eq!((s.compressed, s.skipped), (1, 3));

        // A file that compressed before and no longer does loses its stale variants.
        let page = t.write("page.html", &text(500));
        t.run(Options::default());
        assert!(both(&page));
        fs::write(&page, noise(5_000)).unwrap();
        set_mtime(&page, mtime(&page) + Duration::from_secs(10));
        let s = t.run(Options::default());
        assert!(neither(&page), "stale variants kept");
        assert!(s.errors.is_empty());
        assert!(leftovers(&t.0).is_empty());
    }

    #[test]
    fn variant_takes_the_original_time_and_mode() {
        let t = Tree::new("mtime");
        let css = t.write("app.css", &text(300));
        let when = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        set_mtime(&css, when);
        fs::set_permissions(&css, Permissions::from_mode(0o640)).unwrap();
        t.run(Options::default());
        for coding in [Coding::Brotli, Coding::Gzip] {
            let v = variant_path(&css, coding);
            assert_eq!(mtime(&v), mtime(&css));
            assert_eq!(fs::metadata(&v).unwrap().mode() & 0o777, 0o640);
        }
    }

    #[test]
    fn second_run_skips_current_variants_and_redoes_changed_ones() {
        let t = Tree::new("incremental");
        let a = t.write("a.css", &text(300));
        let b = t.write("js/b.js", &text(400));
        let s = t.run(Options::default());
        assert_eq!((s.compressed, s.skipped), (2, 0));
        let inode = |p: &Path| fs::metadata(p).unwrap().ino();
        let a_br = variant_path(&a, Coding::Brotli);
        let before = inode(&a_br);

        let s = t.run(Options::default());
        assert_eq!((s.compressed, s.skipped), (0, 2));
        assert_eq!(
            s.to_string(),
            "compressed 0 files (0.00 MB → br 0.00 MB, gz 0.00 MB), skipped 2"
        );
        assert_eq!(inode(&a_br), before, "a current variant was rewritten");

        // Changed content with a newer time: compressed again, with the new bytes.
        let new_body = text(700);
        fs::write(&b, &new_body).unwrap();
        set_mtime(&b, mtime(&b) + Duration::from_secs(5));
        // Replaced by an older file (a rollback): also compressed again.
        let old_body = text(250);
        fs::write(&a, &old_body).unwrap();
        set_mtime(&a, SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
        let s = t.run(Options::default());
        assert_eq!((s.compressed, s.skipped), (2, 0));
        assert_eq!(gunzip(&variant_path(&b, Coding::Gzip)), new_body);
        assert_eq!(unbrotli(&variant_path(&b, Coding::Brotli)), new_body);
        assert_eq!(gunzip(&variant_path(&a, Coding::Gzip)), old_body);
        assert_ne!(inode(&a_br), before);

        // A missing variant is written again; the other one stays.
        fs::remove_file(variant_path(&a, Coding::Gzip)).unwrap();
        let br_inode = inode(&a_br);
        let s = t.run(Options::default());
        assert_eq!((s.compressed, s.skipped), (1, 1));
        assert_eq!(s.br_bytes, Some(0));
        assert!(s.gz_bytes.unwrap() > 0);
        assert!(has(&a, Coding::Gzip));
        assert_eq!(inode(&a_br), br_inode);
    }

    #[test]
    fn force_rewrites_current_variants() {
        let t = Tree::new("force");
        let a = t.write("a.css", &text(300));
        t.run(Options::default());
        let v = variant_path(&a, Coding::Gzip);
        let before = fs::metadata(&v).unwrap().ino();
        let s = t.run(Options {
            force: true,
            ..Options::default()
        });
        assert_eq!(s.compressed, 1);
        assert_ne!(fs::metadata(&v).unwrap().ino(), before);
    }

    #[test]
    fn codings_can_be_turned_off() {
        let t = Tree::new("off");
        let a = t.write("a.css", &text(300));
        let s = t.run(Options {
            brotli: false,
            ..Options::default()
        });
        assert!(has(&a, Coding::Gzip) && !has(&a, Coding::Brotli));
        assert_eq!(s.br_bytes, None);
        assert!(s.to_string().starts_with("compressed 1 file ("), "{s}");
        assert!(!s.to_string().contains("br "), "{s}");
        let s = t.run(Options {
            gzip: false,
            ..Options::default()
        });
        assert!(both(&a));
        assert_eq!(s.gz_bytes, None);
        // --no-gzip leaves a stale .gz alone.
        fs::write(&a, text(900)).unwrap();
        set_mtime(&a, mtime(&a) + Duration::from_secs(5));
        let gz_before = fs::read(variant_path(&a, Coding::Gzip)).unwrap();
        t.run(Options {
            gzip: false,
            ..Options::default()
        });
        assert_eq!(fs::read(variant_path(&a, Coding::Gzip)).unwrap(), gz_before);
        assert_eq!(unbrotli(&variant_path(&a, Coding::Brotli)), text(900));
    }

    #[test]
    fn dotfiles_and_dot_directories_are_skipped() {
        let t = Tree::new("dots");
        let hidden = [
            t.write(".env.txt", &text(300)),
            t.write(".git/config.txt", &text(300)),
            t.write("sub/.cache/x.js", &text(300)),
            t.write(".well-known/security.txt", &text(300)),
        ];
        let seen = t.write("sub/ok.js", &text(300));
        let s = t.run(Options::default());
        assert_eq!(s.compressed, 1);
        assert!(both(&seen));
        for p in &hidden {
            assert!(neither(p), "{}", p.display());
        }
    }

    #[test]
    fn symlinked_directories_are_not_followed() {
        let outside = Tree::new("outside");
        let far = outside.write("lib/far.css", &text(300));
        let secret = outside.write("secret.txt", &text(300));
        let t = Tree::new("links");
        let real = t.write("real/app.css", &text(300));
        symlink(outside.path("lib"), t.path("lib")).unwrap();
        symlink(t.path("real"), t.path("alias")).unwrap();
        symlink(&real, t.path("linked.css")).unwrap();
        symlink(&secret, t.path("secret.txt")).unwrap();
        symlink(t.path("missing.css"), t.path("dangling.css")).unwrap();
        let s = t.run(Options::default());
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        assert!(
            neither(&far),
            "wrote outside the tree through a symlinked directory"
        );
        assert!(both(&real));
        // A link to a file inside the tree: variants beside the link, with the target's bytes.
        assert_eq!(gunzip(&t.path("linked.css.gz")), text(300));
        // A link leading outside: nothing that the server would publish.
        assert!(neither(&t.path("secret.txt")) && neither(&secret));
        assert!(neither(&t.path("dangling.css")));
        assert_eq!(s.compressed, 2, "real/app.css and linked.css, once each");
    }

    #[test]
    fn nested_and_repeated_directories_are_walked_once() {
        let t = Tree::new("nested");
        t.write("css/a.css", &text(300));
        t.write("b.js", &text(300));
        let s = compress_dirs(
            &[t.path("css"), t.0.clone(), t.0.clone()],
            Options::default(),
        );
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        assert_eq!(s.compressed, 2);
    }

    #[test]
    fn a_failing_file_is_reported_and_the_rest_still_done() {
        let t = Tree::new("fail");
        let bad = t.write("bad.css", &text(300));
        // A directory where the variant should go: the rename cannot replace it.
        t.write("bad.css.gz/keep", b"x");
        let good = t.write("good.css", &text(300));
        let s = t.run(Options::default());
        assert_eq!(s.errors.len(), 1, "{:?}", s.errors);
        assert!(s.errors[0].contains("bad.css"), "{}", s.errors[0]);
        assert!(s.errors[0].contains("bad.css.gz"), "{}", s.errors[0]);
        assert!(both(&good));
        assert!(leftovers(&t.0).is_empty(), "{:?}", leftovers(&t.0));
        assert_eq!(main(&[t.0.display().to_string(), "--quiet".into()]), 1);
        let _ = bad;
    }

    #[test]
    fn arguments() {
        let args = |a: &[&str]| parse(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let t = Tree::new("args");
        let dir = t.0.display().to_string();
        let file = t.write("f.txt", b"x").display().to_string();
        assert_eq!(args(&["-h"]), Ok(Command::Help));
        assert_eq!(args(&[&dir, "--help", "--bogus"]), Ok(Command::Help));
        assert_eq!(
            args(&["--force", &dir, "--no-brotli", "--quiet"]),
            Ok(Command::Run {
                dirs: vec![t.0.clone()],
                options: Options {
                    force: true,
                    brotli: false,
                    gzip: true
                },
                quiet: true,
            })
        );
        let err = |a: &[&str]| args(a).unwrap_err();
        assert!(err(&[]).contains("DIR"));
        assert!(err(&["--force"]).contains("needs a directory"));
        let missing = format!("{dir}/nope");
        assert!(err(&[&missing]).contains(&missing));
        assert!(err(&[&file]).contains("is not a directory"));
        assert!(err(&[&dir, "--frobnicate"]).contains("--frobnicate"));
        assert!(err(&[&dir, "--no-brotli", "--no-gzip"]).contains("--no-gzip"));
        for e in [err(&[]), err(&[&missing]), err(&[&dir, "-x"])] {
            assert!(e.starts_with("error: ") && !e.contains('\n'), "{e}");
        }
        // After `--`, a name that starts with a dash is a directory.
        fs::create_dir(t.path("--force")).unwrap();
        let dashed = t.path("--force");
        let Ok(Command::Run { dirs, .. }) =
            parse(&["--".to_string(), dashed.display().to_string()])
        else {
            panic!("`--` not honoured")
        };
        assert_eq!(dirs, vec![dashed]);
        assert_eq!(main(&["--no-such".into()]), 2);
        assert_eq!(main(&[missing]), 2);
        assert_eq!(main(&[dir, "--quiet".into()]), 0);
    }
}
