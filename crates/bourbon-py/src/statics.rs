//! Static files in a worker: the settings turned into the server's static-file layer, with
//! `--static django` resolved from the loaded application's Django settings.
//!
//! The layer itself (routing, RFC 9110 semantics, the cache) is Python-free and lives in
//! `bourbon_server::static_files`; this module only reads Django's `STATIC_URL`,
//! `STATIC_ROOT` and manifest location (through `bourbon.django.static_mount`) once per
//! worker, after the application is imported.

use bourbon_config::{Config, StaticMount};

/// A worker's exit code, before it serves, for "a setting cannot be applied to the loaded
/// application" (`--static django` without a `STATIC_ROOT` to serve): the worker has logged
/// the one line saying which and how to fix it; the master stops with 2, a settings error,
/// rather than reporting a failed boot. Private between master and worker, like
/// `appkind::EXIT_WORKER_ASGI`.
pub(crate) const EXIT_WORKER_SETTINGS: i32 = 6;
use bourbon_server::log;
use bourbon_server::static_files::{Missing, MountSpec, StaticConfig};
use pyo3::prelude::*;

/// The layer's settings, or `None` when no static file is served. An error is a sentence
/// for the log (the worker then fails to boot).
pub(crate) fn config(py: Python<'_>, cfg: &Config) -> Result<Option<StaticConfig>, String> {
    if cfg.static_mounts.is_empty() && cfg.static_internal.is_empty() {
        return Ok(None);
    }
    let mut mounts = Vec::new();
    for m in &cfg.static_mounts {
        mounts.push(match m {
            StaticMount::Dir { prefix, root } => MountSpec {
                prefix: prefix.clone(),
                root: root.clone(),
                manifest: None,
            },
            StaticMount::Django => django(py)?,
        });
    }
    let internal = cfg
        .static_internal
        .iter()
        .filter_map(|m| match m {
            StaticMount::Dir { prefix, root } => Some(MountSpec {
                prefix: prefix.clone(),
                root: root.clone(),
                manifest: None,
            }),
            StaticMount::Django => None,
        })
        .collect();
    Ok(Some(StaticConfig {
        mounts,
        internal,
        max_age: cfg.static_max_age,
        follow_symlinks: cfg.static_follow_symlinks,
        index: (!cfg.static_index.is_empty()).then(|| cfg.static_index.clone()),
        missing: if cfg.static_missing_to_app {
            Missing::App
        } else {
            Missing::NotFound
        },
    }))
}

/// Django's static mount, from the settings the application loaded.
fn django(py: Python<'_>) -> Result<MountSpec, String> {
    let found = py
        .import("bourbon.django")
        .and_then(|m| m.call_method0("static_mount"))
        .and_then(|t| t.extract::<(String, String, Option<String>)>());
    match found {
        Ok((prefix, root, manifest)) => {
            log::info(format_args!("Serving static files: {prefix} from {root}"));
            Ok(MountSpec {
                prefix,
                root: root.into(),
                manifest: manifest.map(Into::into),
            })
        }
        Err(e) => Err(format!("--static django: {}", e.value(py))),
    }
}
