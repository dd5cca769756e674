//! One test per setting: a good value parses, bad values are rejected with a
//! message that names the source and says how to fix it.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use bourbon_config::{load, Action, AppSpec, Bind, ErrorLogFormat, LogLevel, LogTarget};
use common::{args, env, err, err_env, run, run_env};

fn app_of(spec: &str) -> Result<AppSpec, String> {
    match load(&args(&[spec]), &env(&[])) {
        Ok(Action::Run(c)) => Ok(c.app.unwrap()),
        Ok(other) => panic!("{other:?}"),
        Err(e) => Err(e.to_string()),
    }
}

#[test]
fn app() {
    let a = app_of("mysite.wsgi:application").unwrap();
    assert_eq!(
        (a.module.as_str(), a.attr.as_str(), a.factory),
        ("mysite.wsgi", "application", false)
    );
    let a = app_of("mysite").unwrap();
    assert_eq!(
        (a.module.as_str(), a.attr.as_str()),
        ("mysite", "application")
    );
    let a = app_of("pkg.mod:create_app()").unwrap();
    assert_eq!((a.attr.as_str(), a.factory), ("create_app", true));
    assert_eq!(a.to_string(), "pkg.mod:create_app()");
    assert_eq!(
        app_of("1mod:app").unwrap_err(),
        "error: APP: '1mod:app': '1mod' is not a Python module path (expected e.g. bourbon mysite.wsgi:application)"
    );
    assert!(app_of("a..b:app")
        .unwrap_err()
        .contains("not a Python module path"));
    assert!(app_of("mod:1x")
        .unwrap_err()
        .contains("'1x' is not a Python identifier"));
    assert!(app_of("mod:")
        .unwrap_err()
        .contains("is not a Python identifier"));
    assert!(app_of("mod:make(1)")
        .unwrap_err()
        .contains("factory arguments are not supported"));
    // From env and file too.
    let c = match load(&args(&[]), &env(&[("BOURBON_APP", "x:y")])).unwrap() {
        Action::Run(c) => c,
        o => panic!("{o:?}"),
    };
    assert_eq!(c.app.unwrap().attr, "y");
}

#[test]
fn missing_app() {
    let e = load(&args(&["-w", "2"]), &env(&[])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "error: no application given: pass APP as module:callable, e.g. bourbon mysite.wsgi:application"
    );
    assert_eq!(e.exit_code(), 2);
    let e = load(&args(&["--check-config"]), &env(&[])).unwrap_err();
    assert!(e.to_string().contains("no application given"));
}

#[test]
fn second_positional_is_an_error() {
    assert!(err(&["other:app"]).contains("unexpected argument"));
}

#[test]
fn config_missing_file() {
    let e = err(&["-c", "/nonexistent/bourbon.toml"]);
    assert!(
        e.starts_with("error: /nonexistent/bourbon.toml: cannot read config file:"),
        "{e}"
    );
    let e = err_env(&[], &[("BOURBON_CONFIG", "/nonexistent/x.toml")]);
    assert!(
        e.contains("/nonexistent/x.toml: cannot read config file"),
        "{e}"
    );
}

#[test]
fn chdir() {
    let tmp = std::env::temp_dir();
    let c = run(&["--chdir", tmp.to_str().unwrap()]);
    assert_eq!(c.chdir, Some(tmp));
    assert_eq!(run(&[]).chdir, None);
    assert_eq!(
        err(&["--chdir", "/definitely/not/here"]),
        "error: --chdir: '/definitely/not/here' is not a directory"
    );
}

#[test]
fn pid() {
    assert_eq!(
        run(&["--pid", "/run/x.pid"]).pid,
        Some(PathBuf::from("/run/x.pid"))
    );
    assert_eq!(
        run(&["-p", "/tmp/y.pid"]).pid,
        Some(PathBuf::from("/tmp/y.pid"))
    );
    assert_eq!(
        run_env(&[], &[("BOURBON_PID", "/z.pid")]).pid,
        Some(PathBuf::from("/z.pid"))
    );
    assert_eq!(run(&[]).pid, None);
}

#[test]
fn pythonpath() {
    let c = run(&["--pythonpath", "/a, /b", "--pythonpath=/c"]);
    assert_eq!(
        c.pythonpath,
        [PathBuf::from("/a"), "/b".into(), "/c".into()]
    );
    let c = run_env(&[], &[("BOURBON_PYTHONPATH", "/x,/y")]);
    assert_eq!(c.pythonpath.len(), 2);
    assert!(run(&[]).pythonpath.is_empty());
}

#[test]
fn env_pairs() {
    let c = run(&["-e", "A=1", "--env", "B=x=y", "-eC="]);
    assert_eq!(
        c.env,
        [
            ("A".into(), "1".into()),
            ("B".into(), "x=y".into()),
            ("C".into(), String::new())
        ]
    );
    assert_eq!(
        err(&["-e", "=1"]),
        "error: -e: '=1': the variable name is empty (expected e.g. --env DJANGO_SETTINGS_MODULE=mysite.settings)"
    );
    assert!(err(&["--env", "NOPE"]).contains("'NOPE' is not KEY=VALUE"));
    let c = run_env(&[], &[("BOURBON_ENV", "A=1,B=2")]);
    assert_eq!(c.env.len(), 2);
}

#[test]
fn bind_forms() {
    let c = run(&[
        "-b",
        "0.0.0.0:80",
        "-b",
        "[::1]:9000",
        "-b",
        "unix:/tmp/b.sock",
        "-b",
        "fd://3",
        "-b",
        "localhost",
        "-b",
        "tcp://example.com:81",
        "-b",
        ":82",
        "-b[::]",
    ]);
    let tcp = |h: &str, p| Bind::Tcp {
        host: h.into(),
        port: p,
    };
    assert_eq!(
        c.bind,
        [
            tcp("0.0.0.0", 80),
            tcp("::1", 9000),
            Bind::Unix("/tmp/b.sock".into()),
            Bind::Fd(3),
            tcp("localhost", 8000),
            tcp("example.com", 81),
            tcp("0.0.0.0", 82),
            tcp("::", 8000),
        ]
    );
    let shown: Vec<String> = c.bind.iter().map(|b| b.to_string()).collect();
    assert_eq!(
        shown,
        [
            "0.0.0.0:80",
            "[::1]:9000",
            "unix:/tmp/b.sock",
            "fd://3",
            "localhost:8000",
            "example.com:81",
            "0.0.0.0:82",
            "[::]:8000"
        ]
    );
    assert_eq!(run(&[]).bind, [tcp("127.0.0.1", 8000)]);
}

#[test]
fn bind_errors() {
    assert_eq!(
        err(&["-b", "host:99999"]),
        "error: -b: 'host:99999': port 99999 is out of range (0-65535)"
    );
    assert_eq!(
        err(&["--bind", "host:http"]),
        "error: --bind: 'host:http': port 'http' is not a number (expected e.g. --bind 0.0.0.0:8000)"
    );
    assert!(err(&["-b", "::1:80"]).contains("put IPv6 addresses in brackets"));
    assert!(err(&["-b", "[nope]:80"]).contains("'nope' is not an IPv6 address"));
    assert!(err(&["-b", "unix:"]).contains("unix socket path is empty"));
    assert!(err(&["-b", "fd://x"]).contains("not a file descriptor number"));
    assert!(err(&["-b", "bad host:80"]).contains("is not a host name or address"));
    assert_eq!(
        err_env(&[], &[("BOURBON_BIND", "")]),
        "error: BOURBON_BIND: at least one address is required (expected e.g. BOURBON_BIND=0.0.0.0:8000)"
    );
}

#[test]
fn workers() {
    // The default is the CPUs this process may use (WEB_CONCURRENCY aside: see precedence).
    let cpus = bourbon_config::available_cpus();
    assert!(cpus >= 1);
    assert_eq!(run(&[]).workers, cpus);
    assert_eq!(run(&["-w", "auto"]).workers, cpus);
    assert_eq!(run_env(&[], &[("BOURBON_WORKERS", "AUTO")]).workers, cpus);
    assert_eq!(run(&["-w", "4"]).workers, 4);
    assert_eq!(run(&["-w4"]).workers, 4);
    assert_eq!(run(&["--workers=3"]).workers, 3);
    assert_eq!(
        err(&["--workers", "abc"]),
        "error: --workers: 'abc' is not a whole number (expected e.g. --workers 4)"
    );
    assert_eq!(err(&["-w", "0"]), "error: -w: '0' must be at least 1");
    assert_eq!(
        err(&["-w", "-1"]),
        "error: -w: '-1' is not a whole number (expected e.g. --workers 4)"
    );
}

#[test]
fn timeouts_of_workers() {
    let c = run(&[]);
    assert_eq!(c.timeout, Duration::from_secs(30));
    assert_eq!(c.graceful_timeout, Duration::from_secs(30));
    assert_eq!(run(&["-t", "2"]).timeout, Duration::from_secs(2));
    assert_eq!(run(&["--harakiri", "5"]).timeout, Duration::from_secs(5));
    assert_eq!(run(&["--timeout=0"]).timeout, Duration::ZERO);
    assert_eq!(
        run_env(&[], &[("BOURBON_TIMEOUT", "1.5")]).timeout,
        Duration::from_millis(1500)
    );
    assert_eq!(
        run(&["--graceful-timeout", "1"]).graceful_timeout,
        Duration::from_secs(1)
    );
    assert_eq!(
        err(&["--timeout", "soon"]),
        "error: --timeout: 'soon' is not a number of seconds (expected e.g. --timeout 30)"
    );
    assert!(err(&["--graceful-timeout", "-1"]).contains("is not a number of seconds"));
}

#[test]
fn recycling() {
    let c = run(&[]);
    assert_eq!(
        (c.max_requests, c.max_requests_jitter, c.max_worker_memory),
        (0, 0, 0)
    );
    assert_eq!(c.max_worker_lifetime, Duration::ZERO);
    let c = run(&[
        "--max-requests",
        "1000",
        "--max-requests-jitter",
        "50",
        "--max-worker-lifetime",
        "3600",
        "--max-worker-memory",
        "512",
    ]);
    assert_eq!(
        (c.max_requests, c.max_requests_jitter, c.max_worker_memory),
        (1000, 50, 512)
    );
    assert_eq!(c.max_worker_lifetime, Duration::from_secs(3600));
    assert_eq!(run(&["--reload-on-rss", "64"]).max_worker_memory, 64);
    assert_eq!(
        err(&["--max-requests", "many"]),
        "error: --max-requests: 'many' is not a whole number (expected e.g. --max-requests 1000)"
    );
    assert!(err_env(&[], &[("BOURBON_MAX_WORKER_MEMORY", "1G")]).contains("not a whole number"));
}

#[test]
fn threads() {
    assert_eq!(run(&[]).threads, 1);
    assert_eq!(run(&["--threads", "8"]).threads, 8);
    assert_eq!(
        err_env(&[], &[("BOURBON_THREADS", "0")]),
        "error: BOURBON_THREADS: '0' must be at least 1"
    );
    assert_eq!(
        err_env(&[], &[("BOURBON_THREADS", "x")]),
        "error: BOURBON_THREADS: 'x' is not a whole number (expected e.g. BOURBON_THREADS=4)"
    );
}

#[test]
fn keep_alive() {
    assert_eq!(run(&[]).keep_alive, Duration::from_secs(2));
    assert_eq!(run(&["--keep-alive", "0"]).keep_alive, Duration::ZERO);
    assert_eq!(
        run(&["--keep-alive", "0.25"]).keep_alive,
        Duration::from_millis(250)
    );
    assert_eq!(
        err(&["--keep-alive", "soon"]),
        "error: --keep-alive: 'soon' is not a number of seconds (expected e.g. --keep-alive 5)"
    );
    assert!(err(&["--keep-alive", "-1"]).contains("not a number of seconds"));
}

#[test]
fn backlog() {
    assert_eq!(run(&[]).backlog, 2048);
    assert_eq!(run(&["--backlog", "64"]).backlog, 64);
    assert_eq!(
        err(&["--backlog", "0"]),
        "error: --backlog: '0' must be at least 1"
    );
}

#[test]
fn limit_request_line() {
    assert_eq!(run(&[]).limit_request_line, 4094);
    assert_eq!(
        run(&["--limit-request-line", "100"]).limit_request_line,
        100
    );
    assert_eq!(run(&["--limit-request-line", "0"]).limit_request_line, 8190);
    assert_eq!(
        err(&["--limit-request-line", "8191"]),
        "error: --limit-request-line: '8191' must be at most 8190"
    );
}

#[test]
fn limit_request_fields() {
    assert_eq!(run(&[]).limit_request_fields, 100);
    assert_eq!(
        run(&["--limit-request-fields", "0"]).limit_request_fields,
        32768
    );
    assert_eq!(
        run(&["--limit-request-fields", "50"]).limit_request_fields,
        50
    );
    assert!(err(&["--limit-request-fields", "40000"]).contains("must be at most 32768"));
}

#[test]
fn limit_request_field_size() {
    assert_eq!(run(&[]).limit_request_field_size, 8190);
    assert_eq!(
        run(&["--limit-request-field_size", "100"]).limit_request_field_size,
        100
    );
    assert_eq!(
        run(&["--limit-request-field-size", "200"]).limit_request_field_size,
        200
    );
    assert_eq!(
        run(&["--limit-request-field-size", "0"]).limit_request_field_size,
        0
    );
    let c = run_env(&[], &[("BOURBON_LIMIT_REQUEST_FIELD_SIZE", "300")]);
    assert_eq!(c.limit_request_field_size, 300);
    assert!(err(&["--limit-request-field-size", "big"]).contains("is not a whole number"));
}

#[test]
fn limit_request_body() {
    assert_eq!(run(&[]).limit_request_body, 0);
    assert_eq!(
        run(&["--limit-request-body", "100"]).limit_request_body,
        100
    );
    assert_eq!(
        run(&["--limit-request-body", "64K"]).limit_request_body,
        64 << 10
    );
    assert_eq!(
        run(&["--limit-request-body", "10M"]).limit_request_body,
        10 << 20
    );
    assert_eq!(
        run(&["--limit-request-body", "2g"]).limit_request_body,
        2 << 30
    );
    assert_eq!(
        run(&["--limit-request-body", "1MiB"]).limit_request_body,
        1 << 20
    );
    assert_eq!(
        err(&["--limit-request-body", "10X"]),
        "error: --limit-request-body: '10X' is not a size in bytes (expected e.g. --limit-request-body 10M)"
    );
    assert!(err(&["--limit-request-body", "99999999999G"]).contains("too large"));
}

#[test]
fn header_timeout() {
    assert_eq!(run(&[]).header_timeout, Duration::from_secs(10));
    assert_eq!(
        run(&["--header-timeout", "1.5"]).header_timeout,
        Duration::from_millis(1500)
    );
    assert_eq!(
        err(&["--header-timeout", "0"]),
        "error: --header-timeout: '0' must be greater than 0"
    );
    assert!(err(&["--header-timeout", "1e3"]).contains("not a number of seconds"));
}

#[test]
fn write_timeout() {
    assert_eq!(run(&[]).write_timeout, Duration::from_secs(30));
    assert_eq!(
        run(&["--write-timeout", "5"]).write_timeout,
        Duration::from_secs(5)
    );
    assert!(err(&["--write-timeout", "0.0"]).contains("must be greater than 0"));
}

#[test]
fn post_buffering() {
    assert_eq!(run(&[]).post_buffering, 1 << 20);
    assert_eq!(run(&["--post-buffering", "0"]).post_buffering, 0);
    assert_eq!(run(&["--post-buffering", "8k"]).post_buffering, 8192);
    assert!(err(&["--post-buffering", "lots"]).contains("is not a size in bytes"));
}

#[test]
fn response_buffering() {
    let c = run(&[]);
    assert_eq!(c.response_buffer_size, 64 << 10);
    assert_eq!(c.max_temp_file_size, 1 << 30);
    assert_eq!(c.temp_path, None);
    let c = run(&[
        "--response-buffer-size",
        "1m",
        "--max-temp-file-size",
        "0",
        "--temp-path",
        "/tmp",
    ]);
    assert_eq!(c.response_buffer_size, 1 << 20);
    assert_eq!(c.max_temp_file_size, 0);
    assert_eq!(c.temp_path.as_deref(), Some(std::path::Path::new("/tmp")));
    assert!(err(&["--max-temp-file-size", "big"]).contains("is not a size in bytes"));
    assert!(err(&["--temp-path", "/no/such/dir"]).contains("is not a directory"));
}

#[test]
fn root_path() {
    assert_eq!(run(&[]).root_path, "");
    assert_eq!(run(&["--root-path", "/app"]).root_path, "/app");
    assert_eq!(
        err(&["--root-path", "/app/"]),
        "error: --root-path: '/app/' must not end with '/' (use '/app') (expected e.g. --root-path /app)"
    );
    assert!(err(&["--root-path", "app"]).contains("must start with '/'"));
}

#[test]
fn log_level() {
    assert_eq!(run(&[]).log_level, LogLevel::Info);
    assert_eq!(run(&["--log-level", "DEBUG"]).log_level, LogLevel::Debug);
    assert_eq!(
        run(&["--log-level", "warning"]).log_level,
        LogLevel::Warning
    );
    assert_eq!(
        run(&["--log-level", "critical"]).log_level,
        LogLevel::Critical
    );
    assert!(err(&["--log-level", "loud"]).contains("'loud' is not a log level"));
}

#[test]
fn error_logfile() {
    assert_eq!(run(&[]).error_logfile, LogTarget::Stderr);
    assert_eq!(
        run(&["--error-logfile", "/var/log/e.log"]).error_logfile,
        LogTarget::File("/var/log/e.log".into())
    );
    assert_eq!(
        run(&["--log-file", "e.log"]).error_logfile,
        LogTarget::File("e.log".into())
    );
    assert!(err(&["--log-file="]).contains("--log-file: the error log file name is empty"));
}

#[test]
fn log_format() {
    assert_eq!(run(&[]).log_format, ErrorLogFormat::Text);
    assert_eq!(
        run(&["--log-format", "JSON"]).log_format,
        ErrorLogFormat::Json
    );
    assert_eq!(
        run_env(&[], &[("BOURBON_LOG_FORMAT", "json")]).log_format,
        ErrorLogFormat::Json
    );
    let e = err(&["--log-format", "yaml"]);
    assert!(
        e.contains("--log-format: 'yaml' is not an error log format (text, json;"),
        "{e}"
    );
}

#[test]
fn capture_output() {
    assert!(!run(&[]).capture_output);
    assert!(run(&["--capture-output"]).capture_output);
    assert!(run_env(&[], &[("BOURBON_CAPTURE_OUTPUT", "true")]).capture_output);
}

#[test]
fn log_config() {
    assert_eq!(run(&[]).log_config, None);
    for (flag, file) in [
        ("--log-config", "logging.json"),
        ("--log-config", "conf/Logging.TOML"),
        ("--log-config", "gunicorn-logging.conf"),
        ("--log-config", "logging.ini"),
        ("--log-config-json", "logging.json"),
    ] {
        assert_eq!(run(&[flag, file]).log_config, Some(PathBuf::from(file)));
    }
    let e = err(&["--log-config", "logging.yaml"]);
    assert!(
        e.contains("--log-config: 'logging.yaml' must end in .json or .toml"),
        "{e}"
    );
    assert!(e.lines().count() == 1, "{e}");
}

#[test]
fn access_logfile() {
    assert_eq!(run(&[]).access_logfile, None);
    assert_eq!(
        run(&["--access-logfile", "-"]).access_logfile,
        Some(LogTarget::Stdout)
    );
    assert_eq!(
        run(&["--access-logfile", "a.log"]).access_logfile,
        Some(LogTarget::File("a.log".into()))
    );
    let c = run_env(
        &["--access-logfile", ""],
        &[("BOURBON_ACCESS_LOGFILE", "-")],
    );
    assert_eq!(c.access_logfile, None);
    let e = load(&args(&["a:b", "--access-logfile"]), &env(&[])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "error: --access-logfile: missing value (expected e.g. --access-logfile -)"
    );
}

#[test]
fn access_logformat() {
    assert_eq!(
        run(&[]).access_logformat,
        r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#
    );
    assert_eq!(
        run(&["--access-logformat", "%(h)s %(s)s"]).access_logformat,
        "%(h)s %(s)s"
    );
    assert!(err(&["--access-logformat", "%(h)s %(s"]).contains("is not closed by ')s'"));
}

#[test]
fn check_config() {
    match load(&args(&["--check-config", "a:b"]), &env(&[])).unwrap() {
        Action::CheckConfig(c) => assert!(c.check_config),
        o => panic!("{o:?}"),
    }
    match load(&args(&["a:b"]), &env(&[("BOURBON_CHECK_CONFIG", "yes")])).unwrap() {
        Action::CheckConfig(_) => {}
        o => panic!("{o:?}"),
    }
    assert!(!run_env(&[], &[("BOURBON_CHECK_CONFIG", "0")]).check_config);
    assert_eq!(
        err_env(&[], &[("BOURBON_CHECK_CONFIG", "maybe")]),
        "error: BOURBON_CHECK_CONFIG: 'maybe' is not a boolean (use true or false) (expected e.g. BOURBON_CHECK_CONFIG=true)"
    );
    assert!(err(&["--check-config=nah"]).contains("is not a boolean"));
    assert!(!run(&["--check-config=false"]).check_config);
}

#[test]
fn print_config_needs_no_app() {
    match load(&args(&["--print-config", "-w", "3"]), &env(&[])).unwrap() {
        Action::PrintConfig(t) => assert!(t.contains("\nworkers = 3\n"), "{t}"),
        o => panic!("{o:?}"),
    }
}

#[test]
fn help_and_version() {
    match load(&args(&["--help"]), &env(&[])).unwrap() {
        Action::Help(t) => assert_eq!(t, bourbon_config::help_text()),
        o => panic!("{o:?}"),
    }
    match load(&args(&["-v"]), &env(&[])).unwrap() {
        Action::Version(v) => assert_eq!(v, format!("bourbon {}", bourbon_config::VERSION)),
        o => panic!("{o:?}"),
    }
}

#[test]
fn unknown_options() {
    assert_eq!(
        err(&["--wrkers", "4"]),
        "error: unknown option --wrkers (did you mean --workers?) — see bourbon --help"
    );
    assert_eq!(
        err(&["--frobnicate"]),
        "error: unknown option --frobnicate — see bourbon --help"
    );
    assert!(err(&["--keepalive=3"]).contains("did you mean --keep-alive?"));
    assert!(err(&["-z"]).contains("unknown option -z"));
}

#[test]
fn double_dash_ends_options() {
    match load(&args(&["-w", "2", "--", "mod:app"]), &env(&[])).unwrap() {
        Action::Run(c) => assert_eq!(c.app.unwrap().module, "mod"),
        o => panic!("{o:?}"),
    }
}
