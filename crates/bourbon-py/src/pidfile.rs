//! The `--pid` file: written once the sockets are bound, removed at a clean exit by the
//! process that wrote it (not by forked workers, which return through the same code), and
//! moved aside to `PIDFILE.oldbin` while a re-executed master (SIGUSR2) takes the name.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The configured path, where the file is now, and the process that owns it.
struct State {
    configured: PathBuf,
    current: PathBuf,
    owner: u32,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// Removes the pid file when dropped in the process that wrote it.
pub(crate) struct PidFile(());

/// Write this process's id to `path`.
pub(crate) fn create(path: &Path) -> std::io::Result<PidFile> {
    let owner = std::process::id();
    std::fs::write(path, format!("{owner}\n"))
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    if let Ok(mut s) = STATE.lock() {
        *s = Some(State {
            configured: path.to_owned(),
            current: path.to_owned(),
            owner,
        });
    }
    Ok(PidFile(()))
}

/// Move the file to `PIDFILE.oldbin` (a new master is about to write `PIDFILE`); returns
/// the new path. Nothing happens without a pid file.
pub(crate) fn move_aside() -> std::io::Result<Option<PathBuf>> {
    let Ok(mut guard) = STATE.lock() else {
        return Ok(None);
    };
    let Some(s) = guard.as_mut() else {
        return Ok(None);
    };
    let mut name = s.configured.clone().into_os_string();
    name.push(".oldbin");
    let aside = PathBuf::from(name);
    std::fs::rename(&s.current, &aside)?;
    s.current.clone_from(&aside);
    Ok(Some(aside))
}

/// Put the file back under its configured name (the new master died), rewriting it in
/// case the other master removed or replaced it.
pub(crate) fn restore() {
    let Ok(mut guard) = STATE.lock() else {
        return;
    };
    if let Some(s) = guard.as_mut() {
        if s.current != s.configured {
            let _ = std::fs::remove_file(&s.current);
            let _ = std::fs::write(&s.configured, format!("{}\n", s.owner));
            s.current.clone_from(&s.configured);
        }
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Ok(guard) = STATE.lock() {
            if let Some(s) = guard.as_ref() {
                if s.owner == std::process::id() {
                    let _ = std::fs::remove_file(&s.current);
                }
            }
        }
    }
}
