//! Configuration for bourbon: every setting, declared once, and everything
//! derived from that declaration.
//!
//! The settings registry (`registry.rs`, with the `Setting` shape in
//! `setting.rs`) is the single source of truth. From
//! it come the command-line parser (`cli.rs`), the environment and TOML file
//! loaders (`sources.rs`), `--help`, `--print-config` and the Markdown
//! reference (`docs.rs`). Value types and parsers live in `types.rs`, error
//! wording in `error.rs`, the CPU count behind the default number of workers
//! in `cpus.rs`. gunicorn's and uWSGI's words (their flags, config-file names, ini
//! files) and Daphne's and Uvicorn's flags are mapped onto the registry by the declared
//! table in `foreign.rs`.
//!
//! Precedence, lowest first: built-in defaults, platform variables (`PORT`,
//! `WEB_CONCURRENCY`), the config file (TOML, a uWSGI ini file, or a gunicorn Python
//! file that the caller executed: see [`python_config_location`] and [`load_with`]),
//! `GUNICORN_CMD_ARGS` (after the config file and before the command line, as gunicorn
//! reads it), `BOURBON_*` environment variables, the command line.
//!
//! ```
//! use std::collections::HashMap;
//! let args = vec!["-w".to_string(), "4".to_string(), "mysite.wsgi".to_string()];
//! match bourbon_config::load(&args, &HashMap::new()) {
//!     Ok(bourbon_config::Action::Run(cfg)) => assert_eq!(cfg.workers, 4),
//!     _ => unreachable!(),
//! }
//! ```

#![warn(missing_docs)]

mod allow;
mod cli;
mod cpus;
mod docs;
mod error;
mod foreign;
mod registry;
mod setting;
mod sources;
mod types;

use std::collections::HashMap;

pub use allow::IpAllow;
pub use cpus::available_cpus;
pub use docs::{help_text, print_config, settings_markdown};
pub use docs::{migrating_markdown, MIGRATING_BEGIN, MIGRATING_END};
pub use error::ConfigError;
pub use foreign::{Note, NoteLevel};
pub use types::{
    AppSpec, Bind, Config, ControlSocket, ErrorLogFormat, EventLoop, Interface, Lifespan, LogLevel,
    LogTarget, StaticMount,
};

/// bourbon's version, for `--version` and the help header.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What the process should do, as decided by the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Serve the application with this configuration.
    Run(Config),
    /// Print this help text to stdout and exit 0.
    Help(String),
    /// Print this version line to stdout and exit 0.
    Version(String),
    /// Print this TOML (the effective configuration) to stdout and exit 0.
    PrintConfig(String),
    /// The configuration is valid; the caller may additionally try importing
    /// the app, then exit 0.
    CheckConfig(Config),
}

/// A value a gunicorn Python config file gave a setting, as the caller read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PyValue {
    /// A string, or a number or boolean written as the command line would (`4`, `true`).
    Text(String),
    /// A list or tuple, each item written as [`PyValue::Text`] is.
    List(Vec<String>),
    /// A function (a server hook).
    Callable,
    /// `None`: left at its default.
    Unset,
}

/// The settings a gunicorn Python config file defined, in the order it defined them:
/// only the module-level names that are gunicorn settings ([`gunicorn_setting_names`]),
/// as gunicorn itself ignores the others.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PythonConfig {
    /// The location as given (`gunicorn.conf.py`, `python:pkg.conf`), for messages.
    pub location: String,
    /// Each setting's name and value.
    pub values: Vec<(String, PyValue)>,
}

/// Every gunicorn setting name, server hooks included: the names a Python config file is
/// read for.
pub fn gunicorn_setting_names() -> impl Iterator<Item = &'static str> {
    foreign::gunicorn_names()
}

/// The result of [`load_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// What to do.
    pub action: Action,
    /// Lines to log once the error log is open: words of other servers that have no
    /// effect here, likely typos in `BOURBON_*` variables.
    pub notes: Vec<Note>,
    /// The gunicorn server hooks the Python config file defined, by name.
    pub hooks: Vec<&'static str>,
}

/// What kind of config file a location names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FileKind {
    Toml,
    Ini,
    Python,
}

/// The config file the sources choose (the command line over `GUNICORN_CMD_ARGS` over
/// `BOURBON_CONFIG`), and its kind: `--ini FILE` or a `.ini` file is uWSGI's ini,
/// `python:MODULE`, `file:PATH` or a `.py` file is a gunicorn Python file, anything else
/// TOML.
fn config_choice(
    cli: &[cli::Occurrence],
    gunicorn_env: &[cli::Occurrence],
    env: &HashMap<String, String>,
) -> Option<(String, FileKind)> {
    let pick = |occ: &[cli::Occurrence]| {
        occ.iter()
            .rev()
            .find(|o| o.setting.name == "config")
            .and_then(|o| o.items.last().map(|v| (v.clone(), o.label == "--ini")))
    };
    let (path, ini) = pick(cli)
        .or_else(|| pick(gunicorn_env))
        .or_else(|| env.get("BOURBON_CONFIG").map(|v| (v.clone(), false)))?;
    if path.is_empty() {
        return None;
    }
    let kind = if ini || path.ends_with(".ini") {
        FileKind::Ini
    } else if path.starts_with("python:")
        || path.starts_with("file:")
        || path.ends_with(".py")
        || path.ends_with(".pyc")
    {
        FileKind::Python
    } else {
        FileKind::Toml
    };
    Some((path, kind))
}

/// The command line's settings and `GUNICORN_CMD_ARGS`'s, or what to print instead.
enum Parsed {
    Settings {
        cli: Vec<cli::Occurrence>,
        gunicorn_env: Vec<cli::Occurrence>,
        notes: Vec<Note>,
    },
    Done(Box<Action>),
}

fn parse_sources(args: &[String], env: &HashMap<String, String>) -> Result<Parsed, ConfigError> {
    let (cli, mut notes) = match cli::parse_args(args)? {
        cli::Parsed::Help => return Ok(Parsed::Done(Box::new(Action::Help(help_text())))),
        cli::Parsed::Version => {
            return Ok(Parsed::Done(Box::new(Action::Version(format!(
                "bourbon {VERSION}"
            )))))
        }
        cli::Parsed::Settings(o, n) => (o, n),
    };
    // gunicorn reads this variable as more command-line arguments, after its config file
    // and before the real command line.
    let mut gunicorn_env = Vec::new();
    if let Some(text) = env
        .get("GUNICORN_CMD_ARGS")
        .filter(|t| !t.trim().is_empty())
    {
        let words = foreign::split_shell(text)
            .map_err(|e| ConfigError::new(format_args!("GUNICORN_CMD_ARGS: {e}")))?;
        match cli::parse_args(&words)
            .map_err(|e| ConfigError::new(format_args!("GUNICORN_CMD_ARGS: {}", e.message())))?
        {
            cli::Parsed::Settings(o, n) => {
                gunicorn_env = o;
                notes.extend(n.into_iter().map(|mut n| {
                    n.text = format!("GUNICORN_CMD_ARGS: {}", n.text);
                    n
                }));
            }
            cli::Parsed::Help | cli::Parsed::Version => {
                return Err(ConfigError::new(
                    "GUNICORN_CMD_ARGS: --help and --version belong on the command line",
                ))
            }
        }
    }
    Ok(Parsed::Settings {
        cli,
        gunicorn_env,
        notes,
    })
}

/// The gunicorn Python config file the sources name (`-c gunicorn.conf.py`,
/// `-c python:pkg.conf`, `file:PATH`), if they name one: the caller executes it and hands
/// the settings it defined to [`load_with`]. `Ok(None)` for any other file, or none.
pub fn python_config_location(
    args: &[String],
    env: &HashMap<String, String>,
) -> Result<Option<String>, ConfigError> {
    match parse_sources(args, env)? {
        Parsed::Done(_) => Ok(None),
        Parsed::Settings {
            cli, gunicorn_env, ..
        } => Ok(config_choice(&cli, &gunicorn_env, env)
            .filter(|(_, k)| *k == FileKind::Python)
            .map(|(p, _)| p)),
    }
}

/// Resolve the configuration from `args` (without argv\[0]) and the process
/// environment `env`, and decide what to do.
///
/// `Run` and `CheckConfig` require `APP`; `PrintConfig`, `Help` and
/// `Version` do not. A gunicorn Python config file cannot be read here (this crate does
/// not link Python): use [`load_with`].
pub fn load(args: &[String], env: &HashMap<String, String>) -> Result<Action, ConfigError> {
    load_with(args, env, None).map(|l| l.action)
}

/// [`load`], with the settings of the gunicorn Python config file that
/// [`python_config_location`] named, as the caller read them; also returns the notes to
/// log and the hooks the file defined.
pub fn load_with(
    args: &[String],
    env: &HashMap<String, String>,
    python: Option<&PythonConfig>,
) -> Result<Loaded, ConfigError> {
    let (occurrences, gunicorn_env, mut notes) = match parse_sources(args, env)? {
        Parsed::Done(action) => {
            return Ok(Loaded {
                action: *action,
                notes: Vec::new(),
                hooks: Vec::new(),
            })
        }
        Parsed::Settings {
            cli,
            gunicorn_env,
            notes,
        } => (cli, gunicorn_env, notes),
    };

    let mut cfg = Config::default();
    sources::apply_derived_defaults(&mut cfg, env)?;

    // The file is read first among explicit sources, but which file is
    // decided by the higher-precedence sources (CLI over env).
    let mut hooks = Vec::new();
    match config_choice(&occurrences, &gunicorn_env, env) {
        Some((path, FileKind::Toml)) => sources::apply_file(&mut cfg, &path, &mut notes)?,
        Some((path, FileKind::Ini)) => sources::apply_ini(&mut cfg, &path, env, &mut notes)?,
        Some((path, FileKind::Python)) => match python {
            Some(py) => hooks = sources::apply_python(&mut cfg, py, &mut notes)?,
            None => {
                return Err(ConfigError::new(format_args!(
                "{path}: a Python config file is read by the bourbon command, not by this loader"
            )))
            }
        },
        None => {
            if std::path::Path::new("gunicorn.conf.py").is_file() {
                notes.push(Note::warn(
                    "./gunicorn.conf.py is not read unless named: pass -c gunicorn.conf.py to use it"
                        .to_string(),
                ));
            }
        }
    }

    sources::apply_occurrences(&mut cfg, &gunicorn_env)
        .map_err(|e| ConfigError::new(format_args!("GUNICORN_CMD_ARGS: {}", e.message())))?;

    sources::apply_env(&mut cfg, env, &mut notes)?;

    sources::apply_occurrences(&mut cfg, &occurrences)?;
    let action = decide(cfg)?;
    Ok(Loaded {
        action,
        notes,
        hooks,
    })
}

fn decide(cfg: Config) -> Result<Action, ConfigError> {
    // Preloaded code lives in the master, which the reloader cannot refresh.
    if cfg.reload && cfg.preload {
        return Err(ConfigError::new(
            "--reload cannot be combined with --preload: preloaded code stays in the master and cannot be reloaded (drop one of them)",
        ));
    }
    // One path cannot answer two probes that mean different things.
    if !cfg.health_path.is_empty() && cfg.health_path == cfg.liveness_path {
        return Err(ConfigError::new(format_args!(
            "--health-path and --liveness-path are both '{}': give the liveness probe a path of its own (e.g. /livez)",
            cfg.health_path
        )));
    }
    if cfg.print_config {
        return Ok(Action::PrintConfig(print_config(&cfg)));
    }
    if cfg.app.is_none() {
        return Err(ConfigError::new(
            "no application given: pass APP as module:callable, e.g. bourbon mysite.wsgi:application",
        ));
    }
    if cfg.check_config {
        Ok(Action::CheckConfig(cfg))
    } else {
        Ok(Action::Run(cfg))
    }
}

/// A setting's value as gunicorn's server hooks see it (`server.cfg.workers`).
#[derive(Clone, Debug, PartialEq)]
pub enum SettingValue {
    /// A string (a path, a name; empty when unset).
    Text(String),
    /// A whole number.
    Int(i64),
    /// A number of seconds with a fraction.
    Float(f64),
    /// A switch.
    Bool(bool),
    /// A list setting.
    List(Vec<String>),
    /// No value (an unset optional).
    Unset,
}

/// Every setting's value under bourbon's name and, where gunicorn spells it differently,
/// under gunicorn's too (`access_logfile` and `accesslog`), for the `cfg` object server
/// hooks receive.
pub fn setting_values(cfg: &Config) -> Vec<(&'static str, SettingValue)> {
    use registry::Shown;
    let mut out: Vec<(&'static str, SettingValue)> = Vec::new();
    for s in registry::SETTINGS {
        let v = match (s.show)(cfg) {
            Shown::Str(t) => SettingValue::Text(t),
            Shown::Num(n) => match n.as_str() {
                "true" => SettingValue::Bool(true),
                "false" => SettingValue::Bool(false),
                _ => n
                    .parse::<i64>()
                    .map(SettingValue::Int)
                    .or_else(|_| n.parse::<f64>().map(SettingValue::Float))
                    .unwrap_or(SettingValue::Text(n)),
            },
            Shown::List(items) => SettingValue::List(items),
            Shown::Unset => SettingValue::Unset,
        };
        out.push((s.name, v));
    }
    for w in foreign::WORDS
        .iter()
        .filter(|w| w.dialect == foreign::Dialect::Gunicorn)
    {
        if let foreign::Becomes::Setting(name) = w.becomes {
            if name != w.name && !out.iter().any(|(n, _)| *n == w.name) {
                if let Some(v) = out.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone()) {
                    out.push((w.name, v));
                }
            }
        }
    }
    out
}
