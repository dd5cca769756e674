//! Process titles: `bourbon: master [APP]` and `bourbon: worker [APP]` in `ps`, `top` and
//! `/proc/PID/cmdline`, as gunicorn (with setproctitle) shows them.
//!
//! This module owns rewriting the process's argument area, the memory the kernel reports
//! as the command line, and the short `comm` name (prctl `PR_SET_NAME`, 15 bytes).
//!
//! The argument area is the block of NUL-separated strings the kernel placed on the initial
//! stack at exec, between `arg_start` and `arg_end` (fields 48 and 49 of
//! `/proc/self/stat`). Nothing in this process reads it after start-up: CPython decoded
//! `argv` into its own objects (`sys.argv`, `sys.orig_argv`) before our module was
//! imported, and we take the command line from Python, never from `std::env::args`. Two
//! readers could still look: Rust's `std::env::args` and glibc's `program_invocation_name`
//! point into the area; after a rewrite they read the title (every string in the area stays
//! NUL-terminated, so they read valid memory, only different text). The environment
//! strings that follow the area are left alone: we write strictly inside
//! `[arg_start, arg_end)`.
#![allow(unsafe_code)]

use std::sync::Mutex;

/// Serialises rewrites (there is only one writer in practice: the main thread).
static LOCK: Mutex<()> = Mutex::new(());

/// Show `title` as this process's command line and (cut to 15 bytes) as its `comm`.
/// Best effort: if the area cannot be found or does not look as expected, nothing is
/// written.
pub fn set(title: &str) {
    let Ok(_guard) = LOCK.lock() else {
        return;
    };
    set_comm(title);
    if let Some((start, end)) = arg_area() {
        write_area(start, end, title.as_bytes());
    }
}

/// The title for a role: `bourbon: master [NAME]`.
pub fn title(role: &str, name: &str) -> String {
    format!("bourbon: {role} [{name}]")
}

fn set_comm(title: &str) {
    let mut comm = [0u8; 16];
    let n = title.len().min(15);
    comm[..n].copy_from_slice(&title.as_bytes()[..n]);
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes from the
    // pointer; `comm` is 16 bytes with a NUL at index 15 at the latest.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, comm.as_ptr(), 0, 0, 0);
    }
}

/// `(arg_start, arg_end)` from `/proc/self/stat`.
fn arg_area() -> Option<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Field 2 (comm) is in parentheses and may contain spaces: count from after the last
    // ')'. What follows starts at field 3, so field N is at index N - 3.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let start: usize = fields.get(48 - 3)?.parse().ok()?;
    let end: usize = fields.get(49 - 3)?.parse().ok()?;
    // A sane area: non-empty, and not absurdly large (the kernel caps argv well below this).
    (start != 0 && end > start && end - start <= (4 << 20)).then_some((start, end))
}

fn write_area(start: usize, end: usize, title: &[u8]) {
    let len = end - start;
    // Check that the area holds what the kernel says our command line is before touching
    // it: if the fields were misread this refuses to write anywhere else.
    let Ok(cmdline) = std::fs::read("/proc/self/cmdline") else {
        return;
    };
    if cmdline.len() < len {
        return;
    }
    let ptr = start as *mut u8;
    // SAFETY: [start, end) is this process's argument area as reported by the kernel
    // (mapped, writable stack memory of the main thread's initial stack, alive for the
    // whole process). No Rust reference to it exists; we read it through this raw slice
    // only to compare it with /proc/self/cmdline.
    let current = unsafe { std::slice::from_raw_parts(ptr.cast_const(), len) };
    if current != &cmdline[..len] {
        return;
    }
    // Keep the last byte a NUL: the kernel then reports exactly this area as the command
    // line (a non-NUL last byte makes it read on into the environment).
    let n = title.len().min(len - 1);
    // SAFETY: both writes stay inside [start, end), checked above to be our argument area;
    // nothing else in the process reads or writes it concurrently (see the module docs and
    // LOCK).
    unsafe {
        std::ptr::copy_nonoverlapping(title.as_ptr(), ptr, n);
        std::ptr::write_bytes(ptr.add(n), 0, len - n);
    }
}
