//! Who the server runs as: the `--umask`, and giving up root for `--user`/`--group`.
//!
//! This module owns looking the accounts up (before anything is bound, so a typo fails
//! fast with exit 2), handing the socket and log files to them, and the switch itself,
//! which the master makes once the sockets are bound and the pid
//! file is written, before any worker exists: the application never runs as root.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use bourbon_config::Config;

/// Set the process umask (gunicorn's `--umask`): unix socket files are created with
/// `0o777 & !umask`, and workers and the application inherit it.
pub fn set_umask(umask: u32) {
    // SAFETY: umask(2) only replaces a per-process value and cannot fail.
    unsafe {
        libc::umask(umask as libc::mode_t);
    }
}

/// The accounts `--user` and `--group` name, resolved to ids.
#[derive(Debug, Default)]
pub struct Accounts {
    /// The user to become, and its name (for its supplementary groups) when it has one.
    user: Option<(libc::uid_t, Option<CString>)>,
    /// The group to become: `--group`, else the user's primary group.
    gid: Option<libc::gid_t>,
}

impl Accounts {
    /// Look up `--user` and `--group`. An unknown name is an error naming the setting.
    pub fn resolve(cfg: &Config) -> Result<Accounts, String> {
        let mut acc = Accounts::default();
        let mut primary = None;
        if let Some(u) = cfg.user.as_deref() {
            match lookup_user(u).map_err(|e| format!("--user: cannot look up '{u}': {e}"))? {
                Some((uid, gid, name)) => {
                    acc.user = Some((uid, Some(name)));
                    primary = Some(gid);
                }
                None => match u.parse::<libc::uid_t>() {
                    // A numeric id need not have a passwd entry (containers often lack one).
                    Ok(uid) => acc.user = Some((uid, None)),
                    Err(_) => return Err(format!("--user: no such user '{u}'")),
                },
            }
        }
        if let Some(g) = cfg.group.as_deref() {
            match lookup_group(g).map_err(|e| format!("--group: cannot look up '{g}': {e}"))? {
                Some(gid) => acc.gid = Some(gid),
                None => match g.parse::<libc::gid_t>() {
                    Ok(gid) => acc.gid = Some(gid),
                    Err(_) => return Err(format!("--group: no such group '{g}'")),
                },
            }
        }
        acc.gid = acc.gid.or(primary);
        Ok(acc)
    }

    /// Whether there is anything to switch to.
    pub fn is_empty(&self) -> bool {
        self.user.is_none() && self.gid.is_none()
    }

    /// Give `path` to the target user and group, so the unprivileged server can still
    /// remove a socket file or reopen a log file it created as root.
    pub fn chown(&self, path: &Path) -> io::Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // -1 (all bits set) leaves that id unchanged, as chown(2) documents.
        let uid = self.user.as_ref().map_or(libc::uid_t::MAX, |(u, _)| *u);
        let gid = self.gid.unwrap_or(libc::gid_t::MAX);
        // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
        if unsafe { libc::chown(c.as_ptr(), uid, gid) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Become the target user and group, in the order that keeps the right to do each
    /// step: supplementary groups, then the group, then the user (after setuid the others
    /// are no longer allowed). Nothing to do when already running as them.
    pub fn switch(&self) -> io::Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        // SAFETY: getuid/getgid/geteuid only read process credentials.
        let (ruid, rgid, euid) = unsafe { (libc::getuid(), libc::getgid(), libc::geteuid()) };
        let gid = self.gid.unwrap_or(rgid);
        let uid = self.user.as_ref().map(|(u, _)| *u);
        if euid != 0 && uid.unwrap_or(ruid) == ruid && gid == rgid {
            return Ok(());
        }
        let ok = |rc: libc::c_int| {
            if rc == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        };
        match &self.user {
            // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
            Some((_, Some(name))) => ok(unsafe { libc::initgroups(name.as_ptr(), gid) })?,
            // No name to look the user's groups up by: keep only the one group, so root's
            // supplementary groups (root, disk, ...) are not carried over.
            // SAFETY: setgroups reads one gid from our local.
            _ => ok(unsafe { libc::setgroups(1, &gid) })?,
        }
        // SAFETY: plain credential changes of this process; glibc applies them to every
        // thread.
        ok(unsafe { libc::setgid(gid) })?;
        if let Some(uid) = uid {
            // SAFETY: as above.
            ok(unsafe { libc::setuid(uid) })?;
        }
        Ok(())
    }

    /// Whether the switch takes this process from root to another user: it then loses the
    /// right to remove files from root-owned directories (the pid file in `/run`).
    pub fn gives_up_root(&self) -> bool {
        // SAFETY: geteuid only reads a process credential.
        let euid = unsafe { libc::geteuid() };
        euid == 0 && self.user.as_ref().is_some_and(|(uid, _)| *uid != 0)
    }

    /// A short description for the log: `uid=65534 gid=65534`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some((uid, name)) = &self.user {
            match name {
                Some(n) => parts.push(format!("user {} (uid {uid})", n.to_string_lossy())),
                None => parts.push(format!("uid {uid}")),
            }
        }
        if let Some(gid) = self.gid {
            parts.push(format!("gid {gid}"));
        }
        parts.join(", ")
    }
}

/// `(uid, primary gid, name)` of a user given by name or id, or `None` if there is none.
fn lookup_user(user: &str) -> io::Result<Option<(libc::uid_t, libc::gid_t, CString)>> {
    let cname = CString::new(user).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let numeric = user.parse::<libc::uid_t>().ok();
    with_buffer(|buf| {
        // SAFETY: a zeroed passwd is a valid out-parameter; getpw*_r fill it with pointers
        // into `buf`, which we only read before `buf` is dropped.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer passed is valid for the stated length.
        let rc = unsafe {
            match numeric {
                Some(uid) => {
                    libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result)
                }
                None => libc::getpwnam_r(
                    cname.as_ptr(),
                    &mut pwd,
                    buf.as_mut_ptr(),
                    buf.len(),
                    &mut result,
                ),
            }
        };
        if rc != 0 {
            return Err(rc);
        }
        if result.is_null() {
            return Ok(None);
        }
        // SAFETY: on success pw_name points to a NUL-terminated string inside `buf`.
        let name = unsafe { CStr::from_ptr(pwd.pw_name) }.to_owned();
        Ok(Some((pwd.pw_uid, pwd.pw_gid, name)))
    })
}

/// The gid of a group given by name, or `None` if there is none (a numeric group is
/// taken as it is by the caller).
fn lookup_group(group: &str) -> io::Result<Option<libc::gid_t>> {
    if group.parse::<libc::gid_t>().is_ok() {
        return Ok(None);
    }
    let cname = CString::new(group).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    with_buffer(|buf| {
        // SAFETY: a zeroed group is a valid out-parameter for getgrnam_r.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer passed is valid for the stated length.
        let rc = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut grp,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc != 0 {
            return Err(rc);
        }
        Ok((!result.is_null()).then_some(grp.gr_gid))
    })
}

/// Run a `get*_r` lookup with a buffer that grows while the answer does not fit.
fn with_buffer<T>(
    mut f: impl FnMut(&mut [libc::c_char]) -> Result<T, libc::c_int>,
) -> io::Result<T> {
    let mut len = 1024;
    loop {
        let mut buf = vec![0 as libc::c_char; len];
        match f(&mut buf) {
            Ok(v) => return Ok(v),
            Err(libc::ERANGE) if len < (1 << 20) => len *= 4,
            Err(e) => return Err(io::Error::from_raw_os_error(e)),
        }
    }
}
