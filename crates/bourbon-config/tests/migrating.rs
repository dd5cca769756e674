//! gunicorn's and uWSGI's words: uWSGI flags and ini files (placeholders, repeated keys,
//! the application options), gunicorn's config-file names in TOML and in the values a
//! Python config file defined, `GUNICORN_CMD_ARGS` and its place in the precedence, the
//! one-line refusals, typo suggestions and warnings about unknown `BOURBON_*` variables.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use bourbon_config::{
    load, load_with, python_config_location, Action, AppSpec, Bind, Config, Loaded, NoteLevel,
    PyValue, PythonConfig,
};
use common::{args, env, err, err_env, run, run_env, temp_file};

fn tcp(h: &str, p: u16) -> Bind {
    Bind::Tcp {
        host: h.into(),
        port: p,
    }
}

fn app(s: &str) -> AppSpec {
    let (module, attr) = s.split_once(':').unwrap();
    AppSpec {
        module: module.into(),
        attr: attr.into(),
        factory: false,
    }
}

/// Load without appending an APP (the sources give it).
fn cfg_of(a: &[&str], e: &[(&str, &str)]) -> Config {
    match load(&args(a), &env(e)) {
        Ok(Action::Run(c)) => c,
        other => panic!("expected Run, got {other:?}"),
    }
}

fn loaded(a: &[&str], e: &[(&str, &str)], py: Option<&PythonConfig>) -> Loaded {
    load_with(&args(a), &env(e), py).unwrap()
}

fn cfg_py(a: &[&str], e: &[(&str, &str)], py: &PythonConfig) -> Config {
    match loaded(a, e, Some(py)).action {
        Action::Run(c) => c,
        other => panic!("expected Run, got {other:?}"),
    }
}

fn warnings(l: &Loaded) -> Vec<String> {
    l.notes
        .iter()
        .filter(|n| n.level == NoteLevel::Warning)
        .map(|n| n.text.clone())
        .collect()
}

/// A file with this name and content in a fresh directory; returns its path.
fn file_named(name: &str, contents: &str) -> PathBuf {
    let dir = temp_file("").with_extension("d");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn uwsgi_flags_on_the_command_line() {
    let c = cfg_of(
        &[
            "--http",
            ":8000",
            "--module",
            "mysite.wsgi",
            "--processes",
            "4",
            "--threads",
            "2",
            "--master",
            "--harakiri",
            "20",
            "--max-requests",
            "100",
            "--reload-on-rss",
            "256",
            "--env",
            "A=1",
            "--env",
            "B=2",
            "--pidfile",
            "/tmp/x.pid",
            "--vacuum",
            "--die-on-term",
            "--uid",
            "www-data",
            "--gid",
            "1000",
            "--enable-threads",
            "--need-app",
            "--chmod-socket",
        ],
        &[],
    );
    assert_eq!(c.bind, [tcp("0.0.0.0", 8000)]);
    assert_eq!(c.app, Some(app("mysite.wsgi:application")));
    assert_eq!((c.workers, c.threads), (4, 2));
    assert_eq!(c.timeout, Duration::from_secs(20));
    assert_eq!((c.max_requests, c.max_worker_memory), (100, 256));
    assert_eq!(c.env, [("A".into(), "1".into()), ("B".into(), "2".into())]);
    assert_eq!(c.pid, Some(PathBuf::from("/tmp/x.pid")));
    assert_eq!(c.user.as_deref(), Some("www-data"));
    assert_eq!(c.group.as_deref(), Some("1000"));
    assert_eq!(c.chmod_socket, Some(0o666));
}

#[test]
fn uwsgi_application_options() {
    // module with its callable, in either order.
    let c = cfg_of(&["--callable", "app", "--module", "pkg.wsgi"], &[]);
    assert_eq!(c.app, Some(app("pkg.wsgi:app")));
    let c = cfg_of(&["--module", "pkg.wsgi:application"], &[]);
    assert_eq!(c.app, Some(app("pkg.wsgi:application")));
    // wsgi-file: its directory joins pythonpath and its name is the module.
    let c = cfg_of(&["--wsgi-file", "site/wsgi.py", "--callable", "app"], &[]);
    assert_eq!(c.app, Some(app("wsgi:app")));
    assert_eq!(c.pythonpath, [PathBuf::from("site")]);
    let c = cfg_of(&["--wsgi-file", "wsgi.py", "--pythonpath", "/lib"], &[]);
    assert_eq!(c.app, Some(app("wsgi:application")));
    assert_eq!(c.pythonpath, [PathBuf::from("/lib"), PathBuf::from(".")]);
    let e = err(&["--wsgi-file", "my-app.py"]);
    assert!(
        e.contains("must be a .py file whose name is an identifier"),
        "{e}"
    );
}

#[test]
fn http_socket_paths_are_unix_sockets_and_chmod_takes_octal() {
    let c = run(&["--http-socket", "/run/app.sock", "--chmod-socket=660"]);
    assert_eq!(c.bind, [Bind::Unix("/run/app.sock".into())]);
    assert_eq!(c.chmod_socket, Some(0o660));
    let c = run(&["--http-socket", "127.0.0.1:9000", "--http", ":9001"]);
    assert_eq!(c.bind, [tcp("127.0.0.1", 9000), tcp("0.0.0.0", 9001)]);
    assert_eq!(run(&[]).chmod_socket, None);
    let e = err(&["--chmod-socket=999"]);
    assert!(
        e.contains("--chmod-socket: '999' is not a file mode"),
        "{e}"
    );
    // The flag alone never eats the next argument.
    let c = cfg_of(&["--chmod-socket", "app:x"], &[]);
    assert_eq!((c.chmod_socket, c.app), (Some(0o666), Some(app("app:x"))));
    assert_eq!(
        run_env(&[], &[("BOURBON_CHMOD_SOCKET", "600")]).chmod_socket,
        Some(0o600)
    );
}

#[test]
fn ini_file_with_placeholders_and_repeated_keys() {
    let ini = file_named(
        "uwsgi.ini",
        "[uwsgi]\n\
         ; the project lives next to this file\n\
         chdir = %d\n\
         http = :8000\n\
         http-socket = %dapp.sock\n\
         module = mysite.wsgi:application\n\
         processes = 3\n\
         threads = 2\n\
         master = true\n\
         vacuum = 1\n\
         die-on-term = yes\n\
         env = DJANGO_SETTINGS_MODULE=mysite.settings\n\
         env = WHO=$(BOURBON_TEST_WHO)\n\
         harakiri = 45\n\
         pidfile = /tmp/%n.pid\n\
         [other]\n\
         processes = 99\n",
    );
    let dir = ini.parent().unwrap().to_path_buf();
    let p = ini.to_str().unwrap();
    for how in [["--ini", p], ["-c", p]] {
        let l = loaded(&how, &[("BOURBON_TEST_WHO", "me")], None);
        let Action::Run(c) = &l.action else {
            panic!("expected Run")
        };
        assert_eq!(c.chdir.as_deref(), Some(dir.as_path()));
        assert_eq!(
            c.bind,
            [tcp("0.0.0.0", 8000), Bind::Unix(dir.join("app.sock"))]
        );
        assert_eq!(c.app, Some(app("mysite.wsgi:application")));
        assert_eq!((c.workers, c.threads), (3, 2));
        assert_eq!(c.timeout, Duration::from_secs(45));
        assert_eq!(c.pid, Some(PathBuf::from("/tmp/uwsgi.pid")));
        assert_eq!(
            c.env,
            [
                ("DJANGO_SETTINGS_MODULE".into(), "mysite.settings".into()),
                ("WHO".into(), "me".into())
            ]
        );
        assert_eq!(warnings(&l), Vec::<String>::new());
    }
}

#[test]
fn ini_precedence_unknown_keys_and_refusals() {
    let ini = file_named(
        "site.ini",
        "[uwsgi]\nmodule = a.wsgi\nprocesses = 3\nthreads = 3\nprocessesss = 5\nbuffer-size = 32768\n",
    );
    let p = ini.to_str().unwrap();
    // file < BOURBON_* < command line
    let l = loaded(
        &["--ini", p, "--threads", "5"],
        &[("BOURBON_WORKERS", "4")],
        None,
    );
    let Action::Run(c) = &l.action else { panic!() };
    assert_eq!((c.workers, c.threads), (4, 5));
    let w = warnings(&l);
    assert_eq!(w.len(), 2, "{w:?}");
    assert_eq!(
        w[0],
        format!("{p}: line 5: processesss: not a setting bourbon knows; ignored (did you mean 'processes'?)")
    );
    assert!(w[1].contains("buffer-size: has no effect in bourbon: set --limit-request-line"));

    let bad = file_named("bad.ini", "[uwsgi]\nsocket = /tmp/app.sock\n");
    let e = err(&["--ini", bad.to_str().unwrap()]);
    assert!(
        e.contains("line 2: socket: the uwsgi protocol is not served yet"),
        "{e}"
    );
    let empty = file_named("empty.ini", "[app]\nx = 1\n");
    let e = err(&["--ini", empty.to_str().unwrap()]);
    assert!(e.contains("no [uwsgi] section"), "{e}");
    let e = err(&["--ini", "/nonexistent/uwsgi.ini"]);
    assert!(e.contains("cannot read ini file"), "{e}");
}

#[test]
fn words_with_no_meaning_here_are_one_line_with_the_fix() {
    for (argv, want) in [
        (
            &["--socket", "/tmp/x.sock"][..],
            "--socket: the uwsgi protocol is not served yet",
        ),
        (
            &["-s", ":3031"][..],
            "-s: the uwsgi protocol is not served yet",
        ),
        (
            &["-k", "gevent"][..],
            "-k gevent: bourbon has one worker type (WSGI on threads",
        ),
        (
            &["--worker-class=eventlet"][..],
            "--worker-class eventlet: bourbon has one worker type",
        ),
        (
            &["--static-map2", "/static=/srv/static"][..],
            "--static-map2: bourbon maps a prefix onto a directory",
        ),
        (
            &["--certfile", "c.pem"][..],
            "--certfile: bourbon does not terminate TLS",
        ),
        (
            &["--gevent", "100"][..],
            "--gevent: bourbon has one worker type",
        ),
        (
            &["--paste", "x.ini"][..],
            "--paste: bourbon loads a WSGI callable",
        ),
        (&["--http2"][..], "--http2: HTTP/2 is not served yet"),
        (
            &["--daemonize", "/var/log/x"][..],
            "use --daemon with --error-logfile",
        ),
    ] {
        let e = err(argv);
        assert!(e.contains(want), "{argv:?}: {e}");
    }
    // uWSGI's --static-map is bourbon's --static.
    let dir = std::env::temp_dir();
    let mounts = run(&["--static-map", &format!("/static={}", dir.display())]).static_mounts;
    assert_eq!(
        mounts,
        vec![bourbon_config::StaticMount::Dir {
            prefix: "/static/".into(),
            root: dir.clone(),
        }]
    );
    // The worker types bourbon's are, and flags that change nothing, are accepted.
    assert_eq!(run(&["-k", "sync", "--threads", "3"]).threads, 3);
    run(&[
        "-k",
        "gthread",
        "--master",
        "--vacuum",
        "--no-sendfile",
        "--initgroups",
    ]);
    // A flag that would tune something bourbon does not do: a warning, and it serves.
    let l = loaded(&["--http-parser", "fast", "a:b"], &[], None);
    assert!(matches!(l.action, Action::Run(_)));
    assert_eq!(
        warnings(&l),
        ["--http-parser: has no effect in bourbon: bourbon has one HTTP parser, its own (strict, RFC 9112)"]
    );
    // gunicorn's --worker-connections is bourbon's: the same cap on a worker's connections.
    let l = loaded(&["--worker-connections", "1000", "a:b"], &[], None);
    let Action::Run(c) = &l.action else { panic!() };
    assert_eq!(c.worker_connections, 1000);
    assert!(warnings(&l).is_empty(), "{:?}", warnings(&l));
}

#[test]
fn suggestions_only_for_close_flags_including_other_servers() {
    let e = err(&["--proceses", "4"]);
    assert!(e.contains("(did you mean --processes?)"), "{e}");
    let e = err(&["--wrkers", "4"]);
    assert!(e.contains("(did you mean --workers?)"), "{e}");
    let e = err(&["--harakri", "4"]);
    assert!(e.contains("(did you mean --harakiri?)"), "{e}");
    for far in ["--zz", "--gunicorn", "--socketz-thing"] {
        let e = err(&[far]);
        assert!(!e.contains("did you mean"), "{far}: {e}");
    }
    let f = temp_file("accesslogg = \"-\"\n");
    let e = err(&["-c", f.to_str().unwrap()]);
    assert!(e.contains("(did you mean 'accesslog'?)"), "{e}");
}

#[test]
fn unknown_bourbon_variables_warn_only_when_close() {
    let l = loaded(
        &["a:b"],
        &[
            ("BOURBON_WROKERS", "9"),
            ("BOURBON_FDS", "3"),
            ("BOURBON_BLESS", "1"),
            ("BOURBON_TEST_X", "1"),
            ("BOURBON_SOMETHING_ELSE", "1"),
        ],
        None,
    );
    assert_eq!(
        warnings(&l),
        ["BOURBON_WROKERS is not a bourbon setting and is ignored (did you mean BOURBON_WORKERS?)"]
    );
}

#[test]
fn toml_accepts_gunicorns_names() {
    let f = temp_file(
        "accesslog = \"-\"\nerrorlog = \"-\"\nloglevel = \"debug\"\npreload_app = true\n\
         raw_env = [\"A=1\", \"B=2\"]\nkeepalive = 5\npidfile = \"/tmp/g.pid\"\n\
         worker_class = \"sync\"\nworker_connections = 1000\nspew = false\n",
    );
    let l = loaded(&["-c", f.to_str().unwrap(), "a:b"], &[], None);
    let Action::Run(c) = &l.action else { panic!() };
    assert_eq!(c.access_logfile, Some(bourbon_config::LogTarget::Stdout));
    assert_eq!(c.log_level, bourbon_config::LogLevel::Debug);
    assert!(c.preload);
    assert_eq!(c.env.len(), 2);
    assert_eq!(c.keep_alive, Duration::from_secs(5));
    assert_eq!(c.pid, Some(PathBuf::from("/tmp/g.pid")));
    // worker_connections is bourbon's own; spew = false is no news.
    assert_eq!(c.worker_connections, 1000);
    let w = warnings(&l);
    assert!(w.is_empty(), "{w:?}");

    let f = temp_file("keep_alive = 1\nkeepalive = 2\n");
    let e = err(&["-c", f.to_str().unwrap()]);
    assert!(
        e.contains("line 2: keepalive: 'keep_alive' is set twice"),
        "{e}"
    );
    let f = temp_file("worker_class = \"gevent\"\n");
    let e = err(&["-c", f.to_str().unwrap()]);
    assert!(
        e.contains("line 1: worker_class gevent: bourbon has one worker type"),
        "{e}"
    );
    let f = temp_file("keepalive = [1, 2]\n");
    let e = err(&["-c", f.to_str().unwrap()]);
    assert!(
        e.contains("line 1: keepalive: expected a single value, not a list"),
        "{e}"
    );
    let f = temp_file("on_starting = \"x\"\n");
    let e = err(&["-c", f.to_str().unwrap()]);
    assert!(e.contains("is a gunicorn server hook"), "{e}");
}

fn py(values: &[(&str, PyValue)]) -> PythonConfig {
    PythonConfig {
        location: "gunicorn.conf.py".into(),
        values: values
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    }
}

fn text(s: &str) -> PyValue {
    PyValue::Text(s.into())
}

#[test]
fn python_config_values_and_hooks() {
    let conf = py(&[
        (
            "bind",
            PyValue::List(vec!["127.0.0.1:8001".into(), "unix:/tmp/g.sock".into()]),
        ),
        ("workers", text("9")),
        ("threads", text("3")),
        ("raw_env", PyValue::List(vec!["A=1".into()])),
        ("preload_app", text("true")),
        ("accesslog", PyValue::Unset),
        ("umask", text("18")),
        ("wsgi_app", text("site.wsgi:app")),
        ("on_starting", PyValue::Callable),
        ("post_fork", PyValue::Callable),
        ("worker_connections", text("1000")),
        ("http_parser", text("fast")),
        ("on_dirty_starting", PyValue::Callable),
    ]);
    let l = loaded(&["-c", "gunicorn.conf.py"], &[], Some(&conf));
    let Action::Run(c) = &l.action else { panic!() };
    assert_eq!(
        c.bind,
        [tcp("127.0.0.1", 8001), Bind::Unix("/tmp/g.sock".into())]
    );
    assert_eq!((c.workers, c.threads, c.umask), (9, 3, 0o22));
    assert_eq!(c.worker_connections, 1000);
    assert!(c.preload);
    assert_eq!(c.access_logfile, None);
    assert_eq!(c.app, Some(app("site.wsgi:app")));
    assert_eq!(l.hooks, ["on_starting", "post_fork"]);
    let w = warnings(&l);
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w[0].starts_with("gunicorn.conf.py: http_parser: has no effect"));
    assert!(w[1].starts_with("gunicorn.conf.py: on_dirty_starting: never called"));
}

#[test]
fn python_config_refusals() {
    let cases: [(&[(&str, PyValue)], &str); 5] = [
        (
            &[("worker_class", text("gevent"))],
            "gunicorn.conf.py: worker_class gevent: bourbon has one worker type (WSGI on threads, ASGI on an asyncio loop): drop -k/worker_class",
        ),
        (
            &[("workers", PyValue::Callable)],
            "gunicorn.conf.py: workers: expected a value, not a function",
        ),
        (
            &[("on_starting", text("x"))],
            "gunicorn.conf.py: on_starting: a server hook must be a function",
        ),
        (
            &[("workers", PyValue::List(vec!["1".into(), "2".into()]))],
            "gunicorn.conf.py: workers: expected a single value, not a list",
        ),
        (
            &[("workers", text("many"))],
            "gunicorn.conf.py: workers: 'many' is not",
        ),
    ];
    for (values, want) in cases {
        let conf = py(values);
        let e = load_with(&args(&["-c", "g.py", "a:b"]), &HashMap::new(), Some(&conf))
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{e}");
    }
    // Without the values (this crate cannot execute Python), a Python file is an error.
    let e = err(&["-c", "gunicorn.conf.py"]);
    assert!(
        e.contains("a Python config file is read by the bourbon command"),
        "{e}"
    );
}

#[test]
fn gunicorn_cmd_args_sits_between_the_file_and_bourbon_variables() {
    let conf = py(&[
        ("workers", text("2")),
        ("threads", text("2")),
        ("backlog", text("2")),
    ]);
    let gca = (
        "GUNICORN_CMD_ARGS",
        "--workers=3 --threads 3 --access-logformat '%(h)s %(r)s'",
    );
    // file < GUNICORN_CMD_ARGS
    let c = cfg_py(&["-c", "g.py", "a:b"], &[gca], &conf);
    assert_eq!((c.workers, c.threads, c.backlog), (3, 3, 2));
    assert_eq!(c.access_logformat, "%(h)s %(r)s");
    // GUNICORN_CMD_ARGS < BOURBON_*
    let c = cfg_py(
        &["-c", "g.py", "a:b"],
        &[gca, ("BOURBON_THREADS", "4")],
        &conf,
    );
    assert_eq!((c.workers, c.threads), (3, 4));
    // BOURBON_* < command line
    let c = cfg_py(
        &["-c", "g.py", "a:b", "-w", "5"],
        &[gca, ("BOURBON_WORKERS", "4")],
        &conf,
    );
    assert_eq!(c.workers, 5);
    // It may name the config file when the command line does not.
    let e = env(&[("GUNICORN_CMD_ARGS", "-c conf/gunicorn.conf.py")]);
    assert_eq!(
        python_config_location(&args(&["a:b"]), &e)
            .unwrap()
            .as_deref(),
        Some("conf/gunicorn.conf.py")
    );
    assert_eq!(
        python_config_location(&args(&["-c", "other.py"]), &e)
            .unwrap()
            .as_deref(),
        Some("other.py")
    );
    // Errors in it say where they came from.
    let msg = err_env(&[], &[("GUNICORN_CMD_ARGS", "-w many")]);
    assert!(
        msg.starts_with("error: GUNICORN_CMD_ARGS: -w: 'many'"),
        "{msg}"
    );
    let msg = err_env(&[], &[("GUNICORN_CMD_ARGS", "-k gevent")]);
    assert!(
        msg.starts_with("error: GUNICORN_CMD_ARGS: -k gevent: bourbon has one worker type"),
        "{msg}"
    );
    let msg = err_env(&[], &[("GUNICORN_CMD_ARGS", "--bind 'open")]);
    assert!(
        msg.contains("GUNICORN_CMD_ARGS: a single quote is not closed"),
        "{msg}"
    );
}

#[test]
fn python_config_locations() {
    let none = HashMap::new();
    let loc = |a: &[&str]| python_config_location(&args(a), &none).unwrap();
    assert_eq!(
        loc(&["-c", "gunicorn.conf.py"]).as_deref(),
        Some("gunicorn.conf.py")
    );
    assert_eq!(
        loc(&["-c", "python:pkg.conf"]).as_deref(),
        Some("python:pkg.conf")
    );
    assert_eq!(
        loc(&["-c", "file:conf.txt"]).as_deref(),
        Some("file:conf.txt")
    );
    assert_eq!(loc(&["-c", "bourbon.toml"]), None);
    assert_eq!(loc(&["--ini", "x.py"]), None);
    assert_eq!(loc(&[]), None);
}
