//! Shared helpers for the integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use bourbon_config::{load, Action, Config};

pub(crate) fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

pub(crate) fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Load with an APP appended and expect `Run`.
pub(crate) fn run_env(a: &[&str], e: &[(&str, &str)]) -> Config {
    let mut a = args(a);
    a.push("app:application".into());
    match load(&a, &env(e)) {
        Ok(Action::Run(c)) => c,
        other => panic!("expected Run, got {other:?}"),
    }
}

pub(crate) fn run(a: &[&str]) -> Config {
    run_env(a, &[])
}

/// Load with an APP appended and expect an error; return its message.
pub(crate) fn err_env(a: &[&str], e: &[(&str, &str)]) -> String {
    let mut a = args(a);
    a.push("app:application".into());
    match load(&a, &env(e)) {
        Err(e) => {
            assert_eq!(e.exit_code(), 2);
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "multi-line error: {msg}");
            assert!(msg.starts_with("error: "), "{msg}");
            msg
        }
        Ok(a) => panic!("expected an error, got {a:?}"),
    }
}

pub(crate) fn err(a: &[&str]) -> String {
    err_env(a, &[])
}

/// Write `contents` to a fresh temp file and return its path.
pub(crate) fn temp_file(contents: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("bourbon-config-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("c{n}.toml"));
    std::fs::write(&path, contents).unwrap();
    path
}
