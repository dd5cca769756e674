//! The non-CLI sources: derived defaults (`PORT`, `WEB_CONCURRENCY`),
//! `BOURBON_*` environment variables, and the config file: TOML, a uWSGI ini file's
//! `[uwsgi]` section, or the settings a gunicorn Python config file defined (executed by
//! the caller, which links Python; this crate only receives the values).
//!
//! Each source is turned into the same per-setting lists of strings the CLI
//! produces and pushed through the registry's parsers, so a value means the
//! same thing wherever it is written. Other servers' names go through `foreign.rs` first.

use std::collections::HashMap;

use toml::de::{DeTable, DeValue};

use crate::cli::Occurrence;
use crate::error::{bad_value, ConfigError, Origin};
use crate::foreign::{self, Becomes, Note, Parts};
use crate::registry::{apply, by_name, did_you_mean, split_list, Kind, Setting, SETTINGS};
use crate::types::{parse_whole, Bad, Config};
use crate::{PyValue, PythonConfig};

/// `BOURBON_*` variables that are not settings but bourbon's own plumbing (the sockets a
/// binary upgrade hands over; the docs test's switch): never warned about.
const INTERNAL_VARS: &[&str] = &["BOURBON_FDS", "BOURBON_BLESS"];

/// Apply the occurrences of one source, in order.
pub(crate) fn apply_occurrences(cfg: &mut Config, occ: &[Occurrence]) -> Result<(), ConfigError> {
    for o in occ {
        apply(o.setting, cfg, &o.items).map_err(|b| bad_value(o.setting, o.origin(), b))?;
    }
    Ok(())
}

fn set_env(env: &std::collections::HashMap<String, String>, key: &str) -> Option<String> {
    env.get(key)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Apply defaults that platforms communicate through well-known variables:
/// `PORT` (Heroku and friends) and `WEB_CONCURRENCY`. They sit just above
/// the built-in defaults, so any explicit setting overrides them.
pub(crate) fn apply_derived_defaults(
    cfg: &mut Config,
    env: &std::collections::HashMap<String, String>,
) -> Result<(), ConfigError> {
    if let Some(port) = set_env(env, "PORT") {
        let p = parse_whole(&port)
            .ok()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| {
                ConfigError::new(format_args!(
                    "PORT: '{port}' is not a port number (0-65535)"
                ))
            })?;
        cfg.bind = vec![crate::Bind::Tcp {
            host: "0.0.0.0".into(),
            port: p,
        }];
    }
    // gunicorn reads its default for forwarded_allow_ips from this variable.
    if let Some(list) = env.get("FORWARDED_ALLOW_IPS") {
        if let Some(s) = by_name("forwarded_allow_ips") {
            apply(s, cfg, &split_list(list))
                .map_err(|b| bad_value(s, Origin::Derived("FORWARDED_ALLOW_IPS"), b))?;
        }
    }
    if let Some(n) = set_env(env, "WEB_CONCURRENCY") {
        if let Some(s) = by_name("workers") {
            apply(s, cfg, &[n]).map_err(|b| bad_value(s, Origin::Derived("WEB_CONCURRENCY"), b))?;
        }
    }
    Ok(())
}

/// Apply every `BOURBON_<NAME>` variable that names a setting. An unknown `BOURBON_*`
/// variable close to a setting's (a typo) gets a warning naming that setting's variable;
/// others are left alone, as the prefix is shared with tooling (test switches, the
/// sockets a binary upgrade hands over) that is not configuration.
pub(crate) fn apply_env(
    cfg: &mut Config,
    env: &HashMap<String, String>,
    notes: &mut Vec<Note>,
) -> Result<(), ConfigError> {
    let known: Vec<String> = SETTINGS
        .iter()
        .filter(|s| s.from_env)
        .map(|s| s.env_var())
        .collect();
    let mut unknown: Vec<&String> = env
        .keys()
        .filter(|k| k.starts_with("BOURBON_") && !known.contains(k))
        .filter(|k| !INTERNAL_VARS.contains(&k.as_str()) && !k.starts_with("BOURBON_TEST_"))
        .collect();
    unknown.sort();
    for k in unknown {
        if let Some(m) = did_you_mean(k, known.iter().map(String::as_str)) {
            notes.push(Note::warn(format!(
                "{k} is not a bourbon setting and is ignored (did you mean {m}?)"
            )));
        }
    }
    for s in SETTINGS.iter().filter(|s| s.from_env) {
        let Some(v) = env.get(&s.env_var()) else {
            continue;
        };
        let items = match s.kind {
            Kind::List(_) => split_list(v),
            _ => vec![v.clone()],
        };
        apply(s, cfg, &items).map_err(|b| bad_value(s, Origin::Env, b))?;
    }
    Ok(())
}

/// 1-based line number of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// A TOML scalar as the string a user would have typed on the command line.
fn scalar(v: &DeValue<'_>) -> Result<String, Bad> {
    match v {
        DeValue::String(s) => Ok(s.to_string()),
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .map(|n| n.to_string())
            .map_err(|_| Bad::range(format!("'{i}' is too large"))),
        DeValue::Float(f) => Ok(f.as_str().to_string()),
        DeValue::Boolean(b) => Ok(b.to_string()),
        DeValue::Datetime(d) => Err(Bad::form(format!("'{d}' is a date, not a setting value"))),
        DeValue::Array(_) => Err(Bad::form("expected a single value, not an array")),
        DeValue::Table(_) => Err(Bad::form(
            "expected a value, not a table (settings are top-level keys)",
        )),
    }
}

fn items_of(s: &Setting, v: &DeValue<'_>) -> Result<Vec<String>, Bad> {
    match (s.kind, v) {
        (Kind::List(_), DeValue::Array(a)) => a.iter().map(|x| scalar(x.get_ref())).collect(),
        _ => scalar(v).map(|x| vec![x]),
    }
}

/// Read the TOML config file at `path` and apply its settings. gunicorn's names
/// (`accesslog`, `preload_app`, `raw_env`, ...) are accepted beside bourbon's.
pub(crate) fn apply_file(
    cfg: &mut Config,
    path: &str,
    notes: &mut Vec<Note>,
) -> Result<(), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(format_args!(
            "{path}: cannot read config file: {e} (check the --config / BOURBON_CONFIG path)"
        ))
    })?;
    let table = DeTable::parse(&text).map_err(|e| {
        let line = e.span().map(|r| line_of(&text, r.start)).unwrap_or(1);
        let msg = e.message().trim().replace('\n', "; ");
        ConfigError::new(format_args!("{path}: line {line}: invalid TOML: {msg}"))
    })?;
    // Report problems in file order, not the map's key order.
    let mut entries: Vec<_> = table.get_ref().iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    let mut seen: Vec<&str> = Vec::new();
    for (key, value) in entries {
        let line = line_of(&text, key.span().start);
        let name = key.get_ref().as_ref();
        if by_name(name).is_none() {
            if let Some(word) = foreign::gunicorn(name) {
                let label = format!("{path}: line {line}: {name}");
                let items = match value.get_ref() {
                    DeValue::Array(a) => a.iter().map(|x| scalar(x.get_ref())).collect(),
                    v => scalar(v).map(|x| vec![x]),
                }
                .map_err(|b| ConfigError::new(format_args!("{label}: {}", b.msg)))?;
                if let Some(t) = foreign::target(word) {
                    if seen.contains(&t.name) {
                        return Err(ConfigError::new(format_args!(
                            "{label}: '{}' is set twice (as '{name}' and '{}')",
                            t.name, t.name
                        )));
                    }
                    seen.push(t.name);
                }
                let mut occ = Vec::new();
                foreign::translate(word, &label, items, &mut occ, &mut Parts::default(), notes)?;
                apply_occurrences(cfg, &occ)?;
                continue;
            }
        }
        let s = match by_name(name) {
            Some(s) if s.from_file => s,
            Some(s) => {
                return Err(ConfigError::new(format_args!(
                    "{path}: line {line}: '{name}' cannot be set in a config file{}",
                    if s.from_env {
                        format!(" (use {} or {})", s.flag(), s.env_var())
                    } else {
                        String::new()
                    }
                )))
            }
            None if matches!(value.get_ref(), DeValue::Table(_)) => {
                return Err(ConfigError::new(format_args!(
                    "{path}: line {line}: unexpected table '{name}': settings are top-level keys, \
                     so put them before any [table] header (e.g. workers = 4)"
                )));
            }
            None => {
                let known = SETTINGS
                    .iter()
                    .filter(|s| s.from_file)
                    .map(|s| s.name)
                    .chain(foreign::gunicorn_names());
                let normalized = name.replace('-', "_");
                let hint = did_you_mean(&normalized, known)
                    .map(|m| format!(" (did you mean '{m}'?)"))
                    .unwrap_or_default();
                return Err(ConfigError::new(format_args!(
                    "{path}: line {line}: unknown setting '{name}'{hint}"
                )));
            }
        };
        // `keep-alive` and `keep_alive` are the same key to us, though not
        // to TOML, so catch the duplicate TOML itself cannot.
        if seen.contains(&s.name) {
            return Err(ConfigError::new(format_args!(
                "{path}: line {line}: '{name}' is set twice"
            )));
        }
        seen.push(s.name);
        let origin = Origin::File(path, line);
        let items = items_of(s, value.get_ref()).map_err(|b| bad_value(s, origin, b))?;
        apply(s, cfg, &items).map_err(|b| bad_value(s, origin, b))?;
    }
    Ok(())
}

/// Read the `[uwsgi]` section of the ini file at `path` and apply the options bourbon
/// knows; repeated keys accumulate for list settings (`env`, `http-socket`), the last wins
/// for the others. An option bourbon does not know is warned about and skipped: uWSGI has
/// hundreds, and an ini file written for it should not stop a migration.
pub(crate) fn apply_ini(
    cfg: &mut Config,
    path: &str,
    env: &HashMap<String, String>,
    notes: &mut Vec<Note>,
) -> Result<(), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(format_args!(
            "{path}: cannot read ini file: {e} (check the --ini / --config path)"
        ))
    })?;
    let entries = foreign::parse_ini(&text, std::path::Path::new(path), env);
    if entries.is_empty() {
        return Err(ConfigError::new(format_args!(
            "{path}: no [uwsgi] section with settings (bourbon reads the [uwsgi] section of an ini file)"
        )));
    }
    let mut occ: Vec<Occurrence> = Vec::new();
    let mut app = Parts::default();
    for e in entries {
        let label = format!("{path}: line {}: {}", e.line, e.key);
        if e.key == "ini" {
            return Err(ConfigError::new(format_args!(
                "{label}: bourbon reads one ini file; copy the included file's [uwsgi] lines into this one"
            )));
        }
        match foreign::uwsgi(&e.key) {
            Some(word) => {
                foreign::translate(word, &label, vec![e.value], &mut occ, &mut app, notes)?;
            }
            None => {
                let names = foreign::WORDS
                    .iter()
                    .filter(|w| w.dialect == foreign::Dialect::Uwsgi)
                    .map(|w| w.name);
                let hint = did_you_mean(&e.key.replace('_', "-"), names)
                    .map(|m| format!(" (did you mean '{m}'?)"))
                    .unwrap_or_default();
                // Custom placeholders (`base = /srv/app`, used as `%(base)`) are keys
                // uWSGI does not know either; they are not worth a line.
                if !hint.is_empty() || !text.contains(&format!("%({})", e.key)) {
                    notes.push(Note::warn(format!(
                        "{label}: not a setting bourbon knows; ignored{hint}"
                    )));
                }
            }
        }
    }
    app.finish(&mut occ, notes)?;
    apply_occurrences(cfg, &occ)
}

/// Apply the gunicorn settings a Python config file defined; returns the names of the
/// server hooks it defined, for the caller to call.
pub(crate) fn apply_python(
    cfg: &mut Config,
    py: &PythonConfig,
    notes: &mut Vec<Note>,
) -> Result<Vec<&'static str>, ConfigError> {
    let mut hooks = Vec::new();
    let mut occ: Vec<Occurrence> = Vec::new();
    let mut app = Parts::default();
    for (name, value) in &py.values {
        let Some(word) = foreign::gunicorn(name) else {
            continue;
        };
        let label = format!("{}: {name}", py.location);
        match (word.becomes, value) {
            (_, PyValue::Unset) => {}
            (Becomes::Hook, PyValue::Callable) => hooks.push(word.name),
            (Becomes::DeadHook(why), PyValue::Callable) => {
                notes.push(Note::warn(format!("{label}: never called: {why}")));
            }
            (Becomes::Hook | Becomes::DeadHook(_), _) => {
                return Err(ConfigError::new(format_args!(
                    "{label}: a server hook must be a function, e.g. def {name}(server): ..."
                )));
            }
            (_, PyValue::Callable) => {
                return Err(ConfigError::new(format_args!(
                    "{label}: expected a value, not a function"
                )));
            }
            (_, PyValue::Text(t)) => {
                foreign::translate(word, &label, vec![t.clone()], &mut occ, &mut app, notes)?;
            }
            (_, PyValue::List(items)) => {
                if foreign::target(word).is_some_and(|t| !matches!(t.kind, Kind::List(_))) {
                    return Err(ConfigError::new(format_args!(
                        "{label}: expected a single value, not a list"
                    )));
                }
                foreign::translate(word, &label, items.clone(), &mut occ, &mut app, notes)?;
            }
        }
    }
    app.finish(&mut occ, notes)?;
    apply_occurrences(cfg, &occ)?;
    Ok(hooks)
}
