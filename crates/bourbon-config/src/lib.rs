//! Configuration for bourbon: every setting, declared once, and everything
//! derived from that declaration.
//!
//! The settings registry (`registry.rs`, with the `Setting` shape in
//! `setting.rs`) is the single source of truth. From
//! it come the command-line parser (`cli.rs`), the environment and TOML file
//! loaders (`sources.rs`), `--help`, `--print-config` and the Markdown
//! reference (`docs.rs`). Value types and parsers live in `types.rs`, error
//! wording in `error.rs`, the CPU count behind the default number of workers
//! in `cpus.rs`.
//!
//! Precedence, lowest first: built-in defaults, platform variables (`PORT`,
//! `WEB_CONCURRENCY`), the config file, `BOURBON_*` environment variables,
//! the command line.
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

mod cli;
mod cpus;
mod docs;
mod error;
mod registry;
mod setting;
mod sources;
mod types;

use std::collections::HashMap;

pub use cpus::available_cpus;
pub use docs::{help_text, print_config, settings_markdown};
pub use error::ConfigError;
pub use types::{AppSpec, Bind, Config, LogLevel, LogTarget};

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

/// Resolve the configuration from `args` (without argv\[0]) and the process
/// environment `env`, and decide what to do.
///
/// `Run` and `CheckConfig` require `APP`; `PrintConfig`, `Help` and
/// `Version` do not.
pub fn load(args: &[String], env: &HashMap<String, String>) -> Result<Action, ConfigError> {
    let occurrences = match cli::parse_args(args)? {
        cli::Parsed::Help => return Ok(Action::Help(help_text())),
        cli::Parsed::Version => return Ok(Action::Version(format!("bourbon {VERSION}"))),
        cli::Parsed::Settings(o) => o,
    };

    let mut cfg = Config::default();
    sources::apply_derived_defaults(&mut cfg, env)?;

    // The file is read first among explicit sources, but which file is
    // decided by the higher-precedence sources (CLI over env).
    let cli_path = occurrences
        .iter()
        .rev()
        .find(|o| o.setting.name == "config")
        .and_then(|o| o.items.last().cloned());
    let env_path = env.get("BOURBON_CONFIG").cloned();
    if let Some(path) = cli_path.or(env_path).filter(|p| !p.is_empty()) {
        sources::apply_file(&mut cfg, &path)?;
    }

    sources::apply_env(&mut cfg, env)?;

    for o in &occurrences {
        registry::apply(o.setting, &mut cfg, &o.items)
            .map_err(|b| error::bad_value(o.setting, error::Origin::Cli(&o.label), b))?;
    }

    // Preloaded code lives in the master, which the reloader cannot refresh.
    if cfg.reload && cfg.preload {
        return Err(ConfigError::new(
            "--reload cannot be combined with --preload: preloaded code stays in the master and cannot be reloaded (drop one of them)",
        ));
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
