//! The shape of a setting and the operations on the registry as a whole:
//! applying input, building defaults, lookup by name or flag, and typo
//! suggestions. The settings themselves are declared in `registry.rs`.

use crate::registry::SETTINGS;
use crate::types::{Bad, Config};

/// Parser for a setting that takes one value per source.
pub(crate) type ApplyOne = fn(&mut Config, &str) -> Result<(), Bad>;
/// Parser for a list setting: receives all of one source's items at once,
/// so a later source replaces rather than extends an earlier one.
pub(crate) type ApplyMany = fn(&mut Config, &[String]) -> Result<(), Bad>;

/// How a setting takes input, with its parser.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    /// `--flag` alone means true; env/TOML take a boolean.
    Switch(ApplyOne),
    /// Takes exactly one value.
    Value(ApplyOne),
    /// `--flag` alone means `true` (the parser picks the value that stands for); a value
    /// is only taken attached, as `--flag=VALUE`, so the next argument is never eaten.
    OptValue(ApplyOne),
    /// Repeatable on the CLI, comma-separated in env, string or array in TOML.
    List(ApplyMany),
    /// The bare positional argument (APP).
    Positional(ApplyOne),
    /// `--help`: stops parsing and prints help.
    Help,
    /// `--version`: stops parsing and prints the version.
    Version,
}

/// Grouping used by `--help` and the generated docs, in display order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Section {
    Application,
    Socket,
    Workers,
    Mechanics,
    Timeouts,
    Limits,
    Responses,
    Static,
    Asgi,
    Logging,
    Health,
    Actions,
}

impl Section {
    pub(crate) const ALL: [Section; 12] = [
        Section::Application,
        Section::Socket,
        Section::Workers,
        Section::Mechanics,
        Section::Timeouts,
        Section::Limits,
        Section::Responses,
        Section::Static,
        Section::Asgi,
        Section::Logging,
        Section::Health,
        Section::Actions,
    ];

    pub(crate) fn title(self) -> &'static str {
        match self {
            Section::Application => "Application",
            Section::Socket => "Server socket",
            Section::Workers => "Worker processes",
            Section::Mechanics => "Server mechanics",
            Section::Timeouts => "Timeouts",
            Section::Limits => "Request limits",
            Section::Responses => "Response buffering",
            Section::Static => "Static files",
            Section::Asgi => "ASGI and WebSockets",
            Section::Logging => "Logging",
            Section::Health => "Health checks",
            Section::Actions => "Actions",
        }
    }
}

/// A setting's current value, typed just enough to print it as TOML.
#[derive(Debug, PartialEq)]
pub(crate) enum Shown {
    /// A TOML string.
    Str(String),
    /// A TOML integer or decimal, written verbatim.
    Num(String),
    /// A TOML array of strings.
    List(Vec<String>),
    /// No value to write (unset optional, or a setting not valid in files).
    Unset,
}

/// One setting. See the module docs.
pub(crate) struct Setting {
    /// Canonical name with underscores: the TOML key; `BOURBON_` + uppercase
    /// is the env var.
    pub(crate) name: &'static str,
    /// Long flags; the first is canonical, the rest are accepted aliases.
    pub(crate) long: &'static [&'static str],
    /// Optional short flag.
    pub(crate) short: Option<char>,
    /// Placeholder for the value in help text.
    pub(crate) metavar: &'static str,
    pub(crate) section: Section,
    pub(crate) kind: Kind,
    /// Whether `BOURBON_<NAME>` is read.
    pub(crate) from_env: bool,
    /// Whether the key is accepted in (and written to) TOML config files.
    pub(crate) from_file: bool,
    /// Default input, applied through `kind`'s parser; `None` leaves the
    /// field unset.
    pub(crate) default: Option<&'static str>,
    /// A valid example value, used in error hints.
    pub(crate) example: &'static str,
    /// One-line summary for `--help`.
    pub(crate) help: &'static str,
    /// Longer Markdown description for `docs/settings.md`.
    pub(crate) doc: &'static str,
    /// Current value for `--print-config` and the docs' default column.
    pub(crate) show: fn(&Config) -> Shown,
}

impl Setting {
    /// The environment variable that sets this setting.
    pub(crate) fn env_var(&self) -> String {
        format!("BOURBON_{}", self.name.to_ascii_uppercase())
    }

    /// The canonical long flag, or the metavar for the positional.
    pub(crate) fn flag(&self) -> &'static str {
        self.long.first().copied().unwrap_or(self.metavar)
    }

    /// Does the CLI spelling take a value after the flag?
    pub(crate) fn takes_value(&self) -> bool {
        matches!(self.kind, Kind::Value(_) | Kind::List(_))
    }
}

/// Apply one source's input for `s` to `cfg`.
pub(crate) fn apply(s: &Setting, cfg: &mut Config, items: &[String]) -> Result<(), Bad> {
    match s.kind {
        Kind::List(f) => f(cfg, items),
        Kind::Switch(f) | Kind::Value(f) | Kind::OptValue(f) | Kind::Positional(f) => {
            match items.last() {
                Some(v) => f(cfg, v),
                None => Ok(()),
            }
        }
        Kind::Help | Kind::Version => Ok(()),
    }
}

/// Split a default (or env) string into list items: comma-separated, blanks
/// dropped.
pub(crate) fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect()
}

/// Build the default configuration by applying every registry default.
pub(crate) fn defaults() -> Config {
    let mut cfg = Config::blank();
    for s in SETTINGS {
        let Some(d) = s.default else { continue };
        let items = match s.kind {
            Kind::List(_) => split_list(d),
            _ => vec![d.to_string()],
        };
        // Registry defaults are constants checked by a unit test; a failure
        // here is a programming error in this file.
        if let Err(e) = apply(s, &mut cfg, &items) {
            panic!("default for setting '{}' is invalid: {}", s.name, e.msg);
        }
    }
    cfg
}

/// Find a setting by TOML key (dashes accepted for underscores).
pub(crate) fn by_name(key: &str) -> Option<&'static Setting> {
    let key = key.replace('-', "_");
    SETTINGS.iter().find(|s| s.name == key)
}

/// Find a setting by long flag (without `=value`).
pub(crate) fn by_long(flag: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.long.contains(&flag))
}

/// Find a setting by short flag letter.
pub(crate) fn by_short(c: char) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.short == Some(c))
}

/// The closest candidate to `word` if it is plausibly a typo of it: the edit distance must
/// be small against the length of the word (one edit up to 5 letters, two up to 11, three
/// beyond), not counting the dashes of a flag or the `BOURBON_` of a variable, which every
/// candidate shares. So `--wrokers` suggests `--workers`, but `--ws` suggests nothing. Ties
/// go to the earlier candidate.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let core = word.trim_start_matches('-');
    let core = core.strip_prefix("BOURBON_").unwrap_or(core);
    let limit = match core.chars().count() {
        0..=2 => 0,
        3..=5 => 1,
        6..=11 => 2,
        _ => 3,
    };
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= limit && *d > 0)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal-string-alignment distance: Levenshtein plus adjacent
/// transpositions, since swapped letters are the commonest typo.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_flags_and_env_vars_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for s in SETTINGS {
            assert!(seen.insert(s.name.to_string()), "dup name {}", s.name);
            for l in s.long {
                assert!(l.starts_with("--"));
                assert!(seen.insert((*l).to_string()), "dup flag {l}");
            }
            if let Some(c) = s.short {
                assert!(seen.insert(format!("-{c}")), "dup short {c}");
            }
            assert!(!s.name.contains('-'));
            assert!(!s.help.is_empty() && !s.doc.is_empty());
        }
    }

    #[test]
    fn every_default_and_example_parses() {
        let _ = defaults();
        for s in SETTINGS {
            if s.example.is_empty() {
                continue;
            }
            let mut cfg = defaults();
            let items = match s.kind {
                Kind::List(_) => split_list(s.example),
                _ => vec![s.example.to_string()],
            };
            if matches!(s.name, "chdir" | "static" | "static_internal") {
                continue; // depends on the filesystem (see `static_mounts_parse`)
            }
            assert!(apply(s, &mut cfg, &items).is_ok(), "example for {}", s.name);
        }
    }

    #[test]
    fn static_mounts_parse() {
        let dir = std::env::temp_dir();
        let d = dir.display();
        let mut cfg = defaults();
        let items = vec![format!("/static={d}"), "django".into()];
        assert!(apply(by_name("static").expect("static"), &mut cfg, &items).is_ok());
        assert_eq!(cfg.static_mounts[0].to_string(), format!("/static/={d}"));
        assert_eq!(cfg.static_mounts[1], crate::StaticMount::Django);
        for bad in [
            "nosep",
            "static=/tmp",
            "/s/=/does/not/exist",
            "/a/../b=/tmp",
        ] {
            let res = apply(
                by_name("static").expect("static"),
                &mut cfg,
                &[bad.to_string()],
            );
            assert!(res.is_err(), "{bad}");
        }
        // `django` names Django's settings only for public mounts.
        let internal = by_name("static_internal").expect("static_internal");
        assert!(apply(internal, &mut cfg, &["django".to_string()]).is_err());
        assert!(apply(internal, &mut cfg, &[format!("/protected/={d}")]).is_ok());
    }

    #[test]
    fn edit_distance_counts_transpositions_once() {
        assert_eq!(edit_distance("wrokers", "workers"), 1);
        assert_eq!(edit_distance("wrkers", "workers"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(did_you_mean("bnd", ["bind", "workers"]), Some("bind"));
        assert_eq!(did_you_mean("zzzzzz", ["bind", "workers"]), None);
    }

    #[test]
    fn suggestions_are_only_for_close_words() {
        let flags = [
            "--bind",
            "--workers",
            "--threads",
            "--timeout",
            "--max-requests",
        ];
        assert_eq!(did_you_mean("--wrokers", flags), Some("--workers"));
        assert_eq!(did_you_mean("--thread", flags), Some("--threads"));
        assert_eq!(did_you_mean("--max-request", flags), Some("--max-requests"));
        // Short words: the shared dashes do not make them close to anything.
        assert_eq!(did_you_mean("--ws", flags), None);
        assert_eq!(did_you_mean("--x", flags), None);
        // Two edits in a four-letter word is another word, not a typo.
        assert_eq!(did_you_mean("--bond", flags), Some("--bind"));
        assert_eq!(did_you_mean("--band2", flags), None);
        assert_eq!(did_you_mean("--tinemout", flags), Some("--timeout"));
        assert_eq!(
            did_you_mean("BOURBON_WROKERS", ["BOURBON_WORKERS"]),
            Some("BOURBON_WORKERS")
        );
        assert_eq!(
            did_you_mean("BOURBON_FOO", ["BOURBON_PID", "BOURBON_BIND"]),
            None
        );
    }
}
