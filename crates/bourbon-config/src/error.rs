//! [`ConfigError`] and the wording of every error message.
//!
//! Messages are one line: where the bad input came from (flag, env var, or
//! file and line), what is wrong, and — when an example helps — what a
//! correct value looks like, spelled for that same source.

use std::fmt;

use crate::registry::{Kind, Setting};
use crate::types::Bad;

/// A configuration problem. Its `Display` is a single line suitable for
/// printing to stderr before exiting with [`ConfigError::exit_code`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    msg: String,
}

impl ConfigError {
    /// The process exit status to use (2, like gunicorn's usage errors).
    pub fn exit_code(&self) -> i32 {
        2
    }

    /// An error with the given text (the `error: ` prefix is added).
    pub(crate) fn new(msg: impl fmt::Display) -> Self {
        ConfigError {
            msg: format!("error: {msg}"),
        }
    }

    /// The text without the `error: ` prefix, to wrap in another place's name.
    pub(crate) fn message(&self) -> &str {
        self.msg.strip_prefix("error: ").unwrap_or(&self.msg)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for ConfigError {}

/// Where a value came from, which decides how the error names it and how
/// the "expected e.g." example is spelled.
#[derive(Clone, Copy)]
pub(crate) enum Origin<'a> {
    /// The command line; the label is the flag as the user typed it.
    Cli(&'a str),
    /// A `BOURBON_*` variable.
    Env,
    /// A config file and 1-based line number.
    File(&'a str, usize),
    /// A well-known variable that supplies a default (`PORT`, ...).
    Derived(&'a str),
    /// Another server's word (gunicorn's, uWSGI's), named in full by the label: the flag,
    /// or `FILE: line N: key`.
    Foreign(&'a str),
}

fn quote_shell(v: &str) -> String {
    if v.contains(|c: char| c.is_whitespace() || c == '"' || c == '$') {
        format!("'{v}'")
    } else {
        v.to_string()
    }
}

fn toml_literal(v: &str) -> String {
    let plain =
        v == "true" || v == "false" || (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()));
    if plain {
        v.to_string()
    } else {
        toml::Value::String(v.to_string()).to_string()
    }
}

/// How to write a correct value for `s` in the given source.
pub(crate) fn example(s: &Setting, origin: Origin<'_>) -> Option<String> {
    let ex = s.example;
    Some(match origin {
        Origin::Cli(_) => match s.kind {
            Kind::Positional(_) => format!("bourbon {ex}"),
            Kind::Switch(_) => s.flag().to_string(),
            Kind::OptValue(_) => format!("{}={}", s.flag(), quote_shell(ex)),
            _ => format!("{} {}", s.flag(), quote_shell(ex)),
        },
        Origin::Env => format!("{}={}", s.env_var(), quote_shell(ex)),
        Origin::File(..) => match s.kind {
            Kind::List(_) => {
                let items: Vec<String> = crate::registry::split_list(ex)
                    .iter()
                    .map(|i| toml_literal(i))
                    .collect();
                format!("{} = [{}]", s.name, items.join(", "))
            }
            _ => format!("{} = {}", s.name, toml_literal(ex)),
        },
        Origin::Derived(_) | Origin::Foreign(_) => return None,
    })
}

/// Turn a parser's complaint into the one-line user-facing error.
pub(crate) fn bad_value(s: &Setting, origin: Origin<'_>, bad: Bad) -> ConfigError {
    let place = match origin {
        Origin::Cli(label) => label.to_string(),
        Origin::Env => s.env_var(),
        Origin::File(path, line) => format!("{path}: line {line}: {}", s.name),
        Origin::Derived(var) | Origin::Foreign(var) => var.to_string(),
    };
    let hint = if bad.hint {
        example(s, origin)
            .map(|e| format!(" (expected e.g. {e})"))
            .unwrap_or_default()
    } else {
        String::new()
    };
    ConfigError::new(format_args!("{place}: {}{hint}", bad.msg))
}
