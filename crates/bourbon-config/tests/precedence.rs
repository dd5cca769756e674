//! Source precedence (defaults < file < env < CLI), list replacement,
//! platform variables, the TOML file format and `--print-config` round-trips.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use bourbon_config::{load, print_config, Action, Bind, Config, LogLevel};
use common::{args, env, err_env, run_env, temp_file};

fn tcp(h: &str, p: u16) -> Bind {
    Bind::Tcp {
        host: h.into(),
        port: p,
    }
}

#[test]
fn default_file_env_cli() {
    let f = temp_file("workers = 2\nthreads = 2\nbacklog = 2\nkeep_alive = 2.5\n");
    let f = f.to_str().unwrap();
    // file over default
    let c = run_env(&["-c", f], &[]);
    assert_eq!((c.workers, c.threads, c.backlog), (2, 2, 2));
    assert_eq!(c.keep_alive, Duration::from_millis(2500));
    assert_eq!(c.config.as_deref(), Some(std::path::Path::new(f)));
    // env over file
    let c = run_env(
        &["-c", f],
        &[("BOURBON_WORKERS", "3"), ("BOURBON_THREADS", "3")],
    );
    assert_eq!((c.workers, c.threads, c.backlog), (3, 3, 2));
    // cli over env
    let c = run_env(
        &["-c", f, "-w", "4"],
        &[("BOURBON_WORKERS", "3"), ("BOURBON_THREADS", "3")],
    );
    assert_eq!((c.workers, c.threads, c.backlog), (4, 3, 2));
    // Last CLI occurrence of a single-valued setting wins.
    let c = run_env(&["-w", "4", "-w", "5"], &[]);
    assert_eq!(c.workers, 5);
}

#[test]
fn bind_is_replaced_across_sources_and_accumulates_within_one() {
    let f = temp_file("bind = [\"10.0.0.1:1\", \"10.0.0.2:2\"]\n");
    let f = f.to_str().unwrap();
    assert_eq!(
        run_env(&["-c", f], &[]).bind,
        [tcp("10.0.0.1", 1), tcp("10.0.0.2", 2)]
    );
    let e = [("BOURBON_BIND", "127.0.0.1:3,unix:/tmp/x.sock")];
    assert_eq!(
        run_env(&["-c", f], &e).bind,
        [tcp("127.0.0.1", 3), Bind::Unix("/tmp/x.sock".into())]
    );
    assert_eq!(
        run_env(&["-c", f, "-b", "h:4", "-b", "h:5"], &e).bind,
        [tcp("h", 4), tcp("h", 5)]
    );
    let f2 = temp_file("bind = \"10.0.0.9:9\"\n");
    assert_eq!(
        run_env(&["-c", f2.to_str().unwrap()], &[]).bind,
        [tcp("10.0.0.9", 9)]
    );
}

#[test]
fn port_variable() {
    assert_eq!(
        run_env(&[], &[("PORT", "5000")]).bind,
        [tcp("0.0.0.0", 5000)]
    );
    // Any explicit bind wins over PORT.
    assert_eq!(
        run_env(&["-b", "127.0.0.1:1"], &[("PORT", "5000")]).bind,
        [tcp("127.0.0.1", 1)]
    );
    assert_eq!(
        run_env(&[], &[("PORT", "5000"), ("BOURBON_BIND", "h:2")]).bind,
        [tcp("h", 2)]
    );
    let f = temp_file("bind = \"h:3\"\n");
    assert_eq!(
        run_env(&["-c", f.to_str().unwrap()], &[("PORT", "5000")]).bind,
        [tcp("h", 3)]
    );
    assert_eq!(
        err_env(&[], &[("PORT", "http")]),
        "error: PORT: 'http' is not a port number (0-65535)"
    );
}

#[test]
fn web_concurrency_variable() {
    assert_eq!(run_env(&[], &[("WEB_CONCURRENCY", "6")]).workers, 6);
    assert_eq!(
        run_env(&["-w", "2"], &[("WEB_CONCURRENCY", "6")]).workers,
        2
    );
    assert_eq!(
        run_env(&[], &[("WEB_CONCURRENCY", "6"), ("BOURBON_WORKERS", "3")]).workers,
        3
    );
    assert_eq!(
        err_env(&[], &[("WEB_CONCURRENCY", "0")]),
        "error: WEB_CONCURRENCY: '0' must be at least 1"
    );
}

#[test]
fn config_from_env_and_cli_override() {
    let a = temp_file("workers = 7\n");
    let b = temp_file("workers = 8\n");
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    assert_eq!(run_env(&[], &[("BOURBON_CONFIG", a)]).workers, 7);
    assert_eq!(
        run_env(&["--config", b], &[("BOURBON_CONFIG", a)]).workers,
        8
    );
}

#[test]
fn unknown_env_vars_are_ignored() {
    let c = run_env(&[], &[("BOURBON_WROKERS", "9"), ("BOURBON_BLESS", "1")]);
    assert_eq!(c.workers, bourbon_config::available_cpus());
}

#[test]
fn file_unknown_key_did_you_mean() {
    let f = temp_file("# comment\nthreads = 2\nwrokers = 4\n");
    let f = f.to_str().unwrap();
    assert_eq!(
        err_env(&["-c", f], &[]),
        format!("error: {f}: line 3: unknown setting 'wrokers' (did you mean 'workers'?)")
    );
    let f = temp_file("zzzzzz = 1\n");
    let f = f.to_str().unwrap();
    assert_eq!(
        err_env(&["-c", f], &[]),
        format!("error: {f}: line 1: unknown setting 'zzzzzz'")
    );
}

#[test]
fn file_values_and_errors() {
    let f = temp_file(
        "keep-alive = 0\nlimit_request_field_size = 1000\nlog_level = \"debug\"\n\
         pythonpath = \"/a,/b\"\nenv = [\"A=1\"]\ncheck_config = false\n\
         limit_request_body = \"2M\"\nbacklog = 0x10\n",
    );
    let c = run_env(&["-c", f.to_str().unwrap()], &[]);
    assert_eq!(c.keep_alive, Duration::ZERO);
    assert_eq!(c.limit_request_field_size, 1000);
    assert_eq!(c.log_level, LogLevel::Debug);
    assert_eq!(c.pythonpath.len(), 2);
    assert_eq!(c.env, [("A".to_string(), "1".to_string())]);
    assert_eq!(c.limit_request_body, 2 << 20);
    assert_eq!(c.backlog, 16);

    let bad = |text: &str| {
        let f = temp_file(text);
        let f = f.to_str().unwrap().to_string();
        err_env(&["-c", &f], &[]).replace(&f, "FILE")
    };
    assert_eq!(
        bad("\n\nworkers = \"abc\"\n"),
        "error: FILE: line 3: workers: 'abc' is not a whole number (expected e.g. workers = 4)"
    );
    assert_eq!(
        bad("log_level = \"x\"\n"),
        "error: FILE: line 1: log_level: 'x' is not a log level (debug, info, warning, error, critical) (expected e.g. log_level = \"info\")"
    );
    assert!(bad("workers = [1, 2]\n").contains("expected a single value, not an array"));
    assert_eq!(
        bad("[server]\nworkers = 1\n"),
        "error: FILE: line 1: unexpected table 'server': settings are top-level keys, so put them before any [table] header (e.g. workers = 4)"
    );
    assert!(bad("workers = { n = 1 }\n").contains("expected a value, not a table"));
    assert!(bad("workers = \n").starts_with("error: FILE: line 1: invalid TOML:"));
    assert!(bad("keep_alive = 1\nkeep-alive = 2\n").contains("line 2: 'keep-alive' is set twice"));
    assert_eq!(
        bad("config = \"x.toml\"\n"),
        "error: FILE: line 1: 'config' cannot be set in a config file (use --config or BOURBON_CONFIG)"
    );
    assert!(bad("bind = [\"h:1\", \"h:x\"]\n")
        .contains("line 1: bind: 'h:x': port 'x' is not a number"));
}

#[test]
fn app_from_file() {
    let f = temp_file("app = \"site.wsgi:app\"\n");
    match load(&args(&["-c", f.to_str().unwrap()]), &env(&[])).unwrap() {
        Action::Run(c) => assert_eq!(c.app.unwrap().to_string(), "site.wsgi:app"),
        o => panic!("{o:?}"),
    }
}

fn print_then_reload(cli: &[&str], e: &[(&str, &str)]) -> (Config, Config) {
    let mut a = args(cli);
    a.push("--print-config".into());
    let text = match load(&a, &env(e)).unwrap() {
        Action::PrintConfig(t) => t,
        o => panic!("{o:?}"),
    };
    let mut first = match load(&args(cli), &env(e)) {
        Ok(Action::Run(c)) => c,
        o => panic!("{o:?}"),
    };
    let f = temp_file(&text);
    let second = match load(&args(&["-c", f.to_str().unwrap()]), &env(&[])) {
        Ok(Action::Run(c)) => c,
        o => panic!("{o:?}\n{text}"),
    };
    // The file path is where the config came from, not part of it.
    first.config = second.config.clone();
    (first, second)
}

#[test]
fn print_config_round_trips() {
    let (a, b) = print_then_reload(&["x.y:z()"], &[]);
    assert_eq!(a, b);
    let (a, b) = print_then_reload(
        &[
            "pkg.app:make()",
            "-b",
            "[::1]:81",
            "-b",
            "unix:/tmp/q \"s\".sock",
            "-b",
            "fd://4",
            "-w",
            "3",
            "--threads",
            "5",
            "--keep-alive",
            "0.123456789",
            "--header-timeout",
            "1.5",
            "--limit-request-body",
            "3G",
            "--root-path",
            "/p",
            "--log-level",
            "error",
            "--access-logfile",
            "-",
            "--error-logfile",
            "/tmp/e.log",
            "-e",
            "A=b,c",
            "-e",
            "Q='\"",
            "--pythonpath",
            "/x,/y",
            "--access-logformat",
            "%(h)s \"%(r)s\" \\",
            "--limit-request-field-size",
            "0",
        ],
        &[("PORT", "1")],
    );
    assert_eq!(a, b);
    // Also with platform defaults in effect and no app (print-only).
    match load(
        &args(&["--print-config"]),
        &env(&[("PORT", "9"), ("WEB_CONCURRENCY", "2")]),
    ) {
        Ok(Action::PrintConfig(t)) => {
            assert!(t.contains("bind = [\"0.0.0.0:9\"]"), "{t}");
            assert!(t.contains("workers = 2"), "{t}");
            assert!(t.contains("# app is not set"), "{t}");
        }
        o => panic!("{o:?}"),
    }
}

#[test]
fn print_config_covers_every_config_field() {
    let text = print_config(&Config::default());
    for key in [
        "chdir",
        "pythonpath",
        "env",
        "root_path",
        "bind",
        "backlog",
        "workers",
        "threads",
        "timeout",
        "graceful_timeout",
        "max_requests",
        "max_requests_jitter",
        "max_worker_lifetime",
        "max_worker_memory",
        "keep_alive",
        "header_timeout",
        "write_timeout",
        "limit_request_line",
        "limit_request_fields",
        "limit_request_field_size",
        "limit_request_body",
        "post_buffering",
        "response_buffer_size",
        "max_temp_file_size",
        "log_level",
        "error_logfile",
        "access_logfile",
        "access_logformat",
    ] {
        assert!(
            text.contains(&format!("\n{key} = ")),
            "{key} missing from:\n{text}"
        );
    }
    assert!(!text.contains("\nconfig ="));
    assert!(!text.contains("print_config ="));
}
