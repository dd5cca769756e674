//! The non-CLI sources: derived defaults (`PORT`, `WEB_CONCURRENCY`),
//! `BOURBON_*` environment variables, and the TOML config file.
//!
//! Each source is turned into the same per-setting lists of strings the CLI
//! produces and pushed through the registry's parsers, so a value means the
//! same thing wherever it is written.

use toml::de::{DeTable, DeValue};

use crate::error::{bad_value, ConfigError, Origin};
use crate::registry::{apply, by_name, did_you_mean, split_list, Kind, Setting, SETTINGS};
use crate::types::{parse_whole, Bad, Config};

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
    if let Some(n) = set_env(env, "WEB_CONCURRENCY") {
        if let Some(s) = by_name("workers") {
            apply(s, cfg, &[n]).map_err(|b| bad_value(s, Origin::Derived("WEB_CONCURRENCY"), b))?;
        }
    }
    Ok(())
}

/// Apply every `BOURBON_<NAME>` variable that names a setting. Unknown
/// `BOURBON_*` variables are ignored: the prefix is shared with tooling
/// (e.g. test switches) that is not configuration.
pub(crate) fn apply_env(
    cfg: &mut Config,
    env: &std::collections::HashMap<String, String>,
) -> Result<(), ConfigError> {
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

/// Read the TOML config file at `path` and apply its settings.
pub(crate) fn apply_file(cfg: &mut Config, path: &str) -> Result<(), ConfigError> {
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
                let known = SETTINGS.iter().filter(|s| s.from_file).map(|s| s.name);
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
