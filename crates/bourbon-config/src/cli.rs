//! Command-line parsing, driven by the registry.
//!
//! This module only does syntax: it maps each argument to a setting and
//! collects the raw strings. Parsing values into [`crate::Config`] happens
//! later, in precedence order, through the registry's parsers.
//!
//! Accepted forms: `--name VALUE`, `--name=VALUE`, `-x VALUE`, `-xVALUE`,
//! `--switch`, `--switch=BOOL`, `--opt[=VALUE]`, and the positional `APP`; `--` ends
//! options. A flag the registry does not know may be gunicorn's, uWSGI's, Daphne's or
//! Uvicorn's (`foreign.rs`): it is translated onto a registry setting, or answered with one
//! line.

use crate::error::{example, ConfigError, Origin};
use crate::foreign::{self, Arity, Note, Parts};
use crate::registry::{by_long, by_short, did_you_mean, Kind, Setting, SETTINGS};

/// The input one source gave for one setting.
pub(crate) struct Occurrence {
    pub(crate) setting: &'static Setting,
    /// How the user spelled it (for error messages).
    pub(crate) label: String,
    /// The values, in order. A list setting's repeats are gathered here so
    /// they accumulate within the source.
    pub(crate) items: Vec<String>,
    /// Spelled in another server's words (the label then names the place in full).
    pub(crate) foreign: bool,
}

impl Occurrence {
    /// How an error about this occurrence names its place.
    pub(crate) fn origin(&self) -> Origin<'_> {
        if self.foreign {
            Origin::Foreign(&self.label)
        } else {
            Origin::Cli(&self.label)
        }
    }
}

/// Result of reading argv.
pub(crate) enum Parsed {
    Help,
    Version,
    Settings(Vec<Occurrence>, Vec<Note>),
}

fn unknown(flag: &str) -> ConfigError {
    // Other servers' flags are candidates too: `--proceses` is close to uWSGI's word.
    let longs = SETTINGS
        .iter()
        .flat_map(|s| s.long.iter().copied())
        .chain(foreign::WORDS.iter().flat_map(|w| w.flags.iter().copied()))
        .filter(|f| f.starts_with("--"));
    let suggestion = if flag.starts_with("--") {
        did_you_mean(flag, longs)
    } else {
        None
    };
    match suggestion {
        Some(s) => ConfigError::new(format_args!(
            "unknown option {flag} (did you mean {s}?) — see bourbon --help"
        )),
        None => ConfigError::new(format_args!("unknown option {flag} — see bourbon --help")),
    }
}

fn missing_value(s: &Setting, label: &str) -> ConfigError {
    let hint = example(s, Origin::Cli(label))
        .map(|e| format!(" (expected e.g. {e})"))
        .unwrap_or_default();
    ConfigError::new(format_args!("{label}: missing value{hint}"))
}

/// Record one value, merging list repeats into their first occurrence.
pub(crate) fn push(
    out: &mut Vec<Occurrence>,
    setting: &'static Setting,
    label: &str,
    value: String,
    foreign: bool,
) {
    if matches!(setting.kind, Kind::List(_)) {
        if let Some(o) = out.iter_mut().find(|o| std::ptr::eq(o.setting, setting)) {
            o.items.push(value);
            return;
        }
    }
    out.push(Occurrence {
        setting,
        label: label.to_string(),
        items: vec![value],
        foreign,
    });
}

/// A flag of another server's: its value taken as its arity says, then translated.
fn foreign_flag(
    word: &'static foreign::Word,
    label: &str,
    inline: Option<String>,
    rest: &mut std::slice::Iter<'_, String>,
    parts: (&mut Vec<Occurrence>, &mut Parts, &mut Vec<Note>),
) -> Result<(), ConfigError> {
    let value = match (word.arity, inline) {
        (_, Some(v)) => v,
        (Arity::Switch | Arity::OptValue, None) => "true".to_string(),
        (Arity::Value, None) => match rest.as_slice().first() {
            Some(next) if !(next.starts_with("--") && next.len() > 2) => {
                rest.next();
                next.clone()
            }
            _ => return Err(ConfigError::new(format_args!("{label}: missing value"))),
        },
    };
    let (out, app, notes) = parts;
    let word = foreign::by_flag_value(word, label, &value);
    foreign::translate(word, label, vec![value], out, app, notes)
}

/// Parse argv (without argv\[0]).
pub(crate) fn parse_args(args: &[String]) -> Result<Parsed, ConfigError> {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    let mut app_parts = Parts::default();
    let mut app: Option<String> = None;
    let mut positional = |arg: &str, out: &mut Vec<Occurrence>| -> Result<(), ConfigError> {
        if let Some(prev) = &app {
            return Err(ConfigError::new(format_args!(
                "unexpected argument '{arg}' (APP is already '{prev}'; options go before or after APP, e.g. bourbon -w 4 {prev})"
            )));
        }
        // Safe to look up: the registry has exactly one positional.
        if let Some(s) = SETTINGS
            .iter()
            .find(|s| matches!(s.kind, Kind::Positional(_)))
        {
            push(out, s, s.metavar, arg.to_string(), false);
        }
        app = Some(arg.to_string());
        Ok(())
    };
    let mut rest = args.iter();
    // Deliberately a manual loop: a value-taking flag consumes the next arg.
    while let Some(arg) = rest.next() {
        if arg == "--" {
            for a in rest.by_ref() {
                positional(a, &mut out)?;
            }
            break;
        }
        let (setting, label, inline) = if let Some(body) = arg.strip_prefix("--") {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let flag = format!("--{name}");
            match by_long(&flag) {
                Some(s) => (s, flag, inline),
                None => {
                    let word = foreign::by_flag(&flag).ok_or_else(|| unknown(&flag))?;
                    let parts = (&mut out, &mut app_parts, &mut notes);
                    foreign_flag(word, &flag, inline, &mut rest, parts)?;
                    continue;
                }
            }
        } else if arg.len() > 1 && arg.starts_with('-') {
            let mut chars = arg[1..].chars();
            let c = chars.next().unwrap_or('-');
            let flag = format!("-{c}");
            let attached = chars.as_str();
            let attached = attached.strip_prefix('=').unwrap_or(attached);
            let inline = (!attached.is_empty()).then(|| attached.to_string());
            match by_short(c) {
                Some(s) => (s, flag, inline),
                None => {
                    let word = foreign::by_flag(&flag).ok_or_else(|| unknown(&flag))?;
                    let parts = (&mut out, &mut app_parts, &mut notes);
                    foreign_flag(word, &flag, inline, &mut rest, parts)?;
                    continue;
                }
            }
        } else {
            positional(arg, &mut out)?;
            continue;
        };
        match setting.kind {
            Kind::Help => return Ok(Parsed::Help),
            Kind::Version => return Ok(Parsed::Version),
            Kind::Switch(_) => {
                // A short switch with trailing text is more likely a typo
                // than an attached boolean, so only `--x=BOOL` carries one.
                if inline.is_some() && !label.starts_with("--") {
                    return Err(unknown(arg));
                }
                push(
                    &mut out,
                    setting,
                    &label,
                    inline.unwrap_or_else(|| "true".into()),
                    false,
                );
            }
            Kind::OptValue(_) => {
                if inline.is_some() && !label.starts_with("--") {
                    return Err(unknown(arg));
                }
                let value = inline.unwrap_or_else(|| "true".into());
                push(&mut out, setting, &label, value, false);
            }
            Kind::Value(_) | Kind::List(_) | Kind::Positional(_) => {
                let value = match inline {
                    Some(v) => v,
                    None => match rest.as_slice().first() {
                        // `--workers --threads 2` is a forgotten value, not a
                        // value that happens to start with dashes.
                        Some(next) if !(next.starts_with("--") && next.len() > 2) => {
                            rest.next();
                            next.clone()
                        }
                        _ => return Err(missing_value(setting, &label)),
                    },
                };
                push(&mut out, setting, &label, value, false);
            }
        }
    }
    app_parts.finish(&mut out, &mut notes)?;
    Ok(Parsed::Settings(out, notes))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(args: &[&str]) -> Result<Vec<(String, Vec<String>)>, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match parse_args(&args).map_err(|e| e.to_string())? {
            Parsed::Settings(o, _) => Ok(o
                .into_iter()
                .map(|o| (o.setting.name.to_string(), o.items))
                .collect()),
            Parsed::Help => Ok(vec![("HELP".into(), vec![])]),
            Parsed::Version => Ok(vec![("VERSION".into(), vec![])]),
        }
    }

    #[test]
    fn value_forms() {
        let got = parse(&["-w4", "-w", "5", "--threads=2", "--threads", "3", "-b=x:1"]).unwrap();
        let names: Vec<_> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["workers", "workers", "threads", "threads", "bind"]);
        assert_eq!(got[0].1, ["4"]);
        assert_eq!(got[4].1, ["x:1"]);
    }

    #[test]
    fn list_repeats_accumulate() {
        let got = parse(&["-b", "a:1", "app:x", "--bind=b:2"]).unwrap();
        assert_eq!(
            got[0],
            (
                "bind".to_string(),
                vec!["a:1".to_string(), "b:2".to_string()]
            )
        );
        assert_eq!(got[1].0, "app");
    }

    #[test]
    fn double_dash_ends_options() {
        let got = parse(&["--", "-weird"]).unwrap();
        assert_eq!(got[0], ("app".to_string(), vec!["-weird".to_string()]));
    }

    #[test]
    fn dash_is_a_value() {
        let got = parse(&["--access-logfile", "-"]).unwrap();
        assert_eq!(got[0].1, ["-"]);
    }

    #[test]
    fn help_and_version_short_circuit() {
        assert_eq!(parse(&["-h", "--wrkers"]).unwrap()[0].0, "HELP");
        assert_eq!(parse(&["--version"]).unwrap()[0].0, "VERSION");
        assert_eq!(parse(&["-v"]).unwrap()[0].0, "VERSION");
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(
            parse(&["--workers"]).unwrap_err(),
            "error: --workers: missing value (expected e.g. --workers 4)"
        );
        assert_eq!(
            parse(&["--workers", "--threads", "2"]).unwrap_err(),
            "error: --workers: missing value (expected e.g. --workers 4)"
        );
        assert_eq!(
            parse(&["-x"]).unwrap_err(),
            "error: unknown option -x — see bourbon --help"
        );
        assert_eq!(
            parse(&["--check-configg"]).unwrap_err(),
            "error: unknown option --check-configg (did you mean --check-config?) — see bourbon --help"
        );
        assert!(parse(&["a:b", "c:d"])
            .unwrap_err()
            .contains("unexpected argument 'c:d'"));
        assert_eq!(parse(&["-hx"]).unwrap()[0].0, "HELP");
    }
}
