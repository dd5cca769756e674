//! Daphne's and Uvicorn's flags (issue #13): `--host`/`--port` and Daphne's `--bind` +
//! `--port` put together into one address, the sockets, the short flags that are
//! gunicorn's here, the WebSocket and keep-alive flags, gunicorn's ASGI worker classes as
//! `--interface asgi`, the flags that only warn, and the one-line refusals.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use bourbon_config::{
    load_with, Action, AppSpec, Bind, Config, EventLoop, Interface, Lifespan, Loaded, LogTarget,
    NoteLevel, PyValue, PythonConfig,
};
use common::{args, env, err, err_env, run, run_env, temp_file};

fn tcp(h: &str, p: u16) -> Bind {
    Bind::Tcp {
        host: h.into(),
        port: p,
    }
}

fn unix(p: &str) -> Bind {
    Bind::Unix(PathBuf::from(p))
}

/// Load with an APP appended; the notes too.
fn loaded(a: &[&str]) -> Loaded {
    let mut a = args(a);
    a.push("app:application".into());
    load_with(&a, &env(&[]), None).unwrap()
}

fn warnings(a: &[&str]) -> Vec<String> {
    loaded(a)
        .notes
        .iter()
        .filter(|n| n.level == NoteLevel::Warning)
        .map(|n| n.text.clone())
        .collect()
}

fn cfg(l: &Loaded) -> &Config {
    match &l.action {
        Action::Run(c) => c,
        other => panic!("expected Run, got {other:?}"),
    }
}

#[test]
fn uvicorn_host_and_port_make_one_address() {
    assert_eq!(
        run(&["--host", "0.0.0.0", "--port", "9000"]).bind,
        [tcp("0.0.0.0", 9000)]
    );
    // In either order, with `=`.
    assert_eq!(
        run(&["--port=9000", "--host=10.0.0.1"]).bind,
        [tcp("10.0.0.1", 9000)]
    );
    // --host alone: port 8000; --port alone: 127.0.0.1, as uvicorn does.
    assert_eq!(run(&["--host", "0.0.0.0"]).bind, [tcp("0.0.0.0", 8000)]);
    assert_eq!(run(&["--port", "9001"]).bind, [tcp("127.0.0.1", 9001)]);
    assert_eq!(run(&["--port", "0"]).bind, [tcp("127.0.0.1", 0)]);
    // An IPv6 host, as uvicorn takes it (no brackets).
    assert_eq!(
        run(&["--host", "::", "--port", "9000"]).bind,
        [tcp("::", 9000)]
    );
    // The last one given wins, as in uvicorn.
    assert_eq!(
        run(&["--port", "1", "--host", "a", "--port", "2"]).bind,
        [tcp("a", 2)]
    );
    // A command-line address replaces the environment's, like any bind.
    let c = run_env(&["--port", "9002"], &[("BOURBON_BIND", "0.0.0.0:1")]);
    assert_eq!(c.bind, [tcp("127.0.0.1", 9002)]);
    let c = run_env(&["--host", "0.0.0.0"], &[("PORT", "5000")]);
    assert_eq!(c.bind, [tcp("0.0.0.0", 8000)]);
}

#[test]
fn daphne_bind_takes_port() {
    assert_eq!(
        run(&["--bind", "0.0.0.0", "--port", "9000"]).bind,
        [tcp("0.0.0.0", 9000)]
    );
    assert_eq!(
        run(&["--port", "9000", "-b", "0.0.0.0"]).bind,
        [tcp("0.0.0.0", 9000)]
    );
    // Without --port, a bare host keeps meaning port 8000, as it always has.
    assert_eq!(run(&["--bind", "0.0.0.0"]).bind, [tcp("0.0.0.0", 8000)]);
    assert_eq!(run(&["-b", "localhost"]).bind, [tcp("localhost", 8000)]);
    // IPv6, bare as Daphne takes it, or in brackets.
    assert_eq!(
        run(&["--bind", "::1", "--port", "9000"]).bind,
        [tcp("::1", 9000)]
    );
    assert_eq!(
        run(&["--bind", "[::1]", "--port", "9000"]).bind,
        [tcp("::1", 9000)]
    );
    // Every host without a port takes it; an address with one keeps its own.
    assert_eq!(
        run(&["-b", "127.0.0.1:7000", "-b", "10.0.0.1", "--port", "9000"]).bind,
        [tcp("127.0.0.1", 7000), tcp("10.0.0.1", 9000)]
    );
    // Daphne's unix socket and fd are listened on beside the TCP address.
    assert_eq!(
        run(&["--unix-socket", "/tmp/d.sock", "--port", "9000"]).bind,
        [tcp("127.0.0.1", 9000), unix("/tmp/d.sock")]
    );
    assert_eq!(
        run(&[
            "-b",
            "0.0.0.0",
            "--port",
            "1",
            "--unix-socket",
            "/tmp/d.sock"
        ])
        .bind,
        [tcp("0.0.0.0", 1), unix("/tmp/d.sock")]
    );
    assert_eq!(
        run(&["--unix-socket", "/tmp/d.sock"]).bind,
        [unix("/tmp/d.sock")]
    );
    assert_eq!(
        run(&["--fd", "3", "--port", "9000"]).bind,
        [tcp("127.0.0.1", 9000), Bind::Fd(3)]
    );
}

#[test]
fn sockets() {
    assert_eq!(run(&["--uds", "/tmp/u.sock"]).bind, [unix("/tmp/u.sock")]);
    assert_eq!(run(&["--fd", "3"]).bind, [Bind::Fd(3)]);
    // One of each kind, the last winning, as in both servers.
    assert_eq!(
        run(&["--uds", "/tmp/a.sock", "--fd", "4", "--uds", "/tmp/b.sock"]).bind,
        [Bind::Fd(4), unix("/tmp/b.sock")]
    );
    assert_eq!(
        run(&["--uds", "/tmp/u.sock", "--bind", "127.0.0.1:1"]).bind,
        [tcp("127.0.0.1", 1), unix("/tmp/u.sock")]
    );
}

#[test]
fn address_refusals_name_the_flag_and_the_fix() {
    for (argv, want) in [
        (
            &["--port", "70000"][..],
            "error: --port: '70000' is not a port number (0-65535)",
        ),
        (
            &["--port", "http"][..],
            "error: --port: 'http' is not a port number (0-65535)",
        ),
        (
            &["--host", "no such host"][..],
            "error: --host: 'no such host:8000': 'no such host' is not a host name or address",
        ),
        (
            &["--fd", "three"][..],
            "error: --fd: 'fd://three': 'three' is not a file descriptor number",
        ),
        // uvicorn listens only on --uds (or --fd) and ignores --host/--port: listening
        // on them as well would open an address the user never had.
        (
            &["--uds", "/tmp/u.sock", "--port", "8000"][..],
            "error: --uds: uvicorn listens only there and ignores --port: drop --port (to listen on both, give each address as --bind)",
        ),
        (
            &["--host", "0.0.0.0", "--uds", "/tmp/u.sock"][..],
            "error: --uds: uvicorn listens only there and ignores --host",
        ),
        (
            &["--fd", "3", "--host", "0.0.0.0"][..],
            "error: --fd: uvicorn listens only there and ignores --host",
        ),
        (
            &["--bind", "127.0.0.1:7000", "--port", "9000"][..],
            "error: --port 9000: every --bind address has its port already: drop --port, or give --bind HOST for it to complete",
        ),
        (
            &["--bind", "unix:/tmp/x.sock", "--port", "9000"][..],
            "error: --port 9000: every --bind address has its port already",
        ),
        // Daphne's short flags are gunicorn's here.
        (
            &["-b", "0.0.0.0", "-p", "8001"][..],
            "error: -p 8001: -p is the pid file (gunicorn's); for Daphne's port give --port 8001 (or --pid 8001 for a pid file of that name)",
        ),
        (
            &["-u", "/tmp/daphne.sock"][..],
            "error: -u /tmp/daphne.sock: -u is the user to run as (gunicorn's); for Daphne's unix socket give --unix-socket /tmp/daphne.sock",
        ),
        (
            &["--endpoint", "tcp:8000:interface=0.0.0.0"][..],
            "error: --endpoint: give each address as --bind: tcp:PORT:interface=HOST is --bind HOST:PORT",
        ),
    ] {
        let e = err(argv);
        assert!(e.starts_with(want), "{argv:?}: {e}");
    }
    // A pid file and a user that cannot be Daphne's are gunicorn's, as always.
    let c = run(&["-p", "/tmp/x.pid", "-u", "www-data", "--pid", "8001"]);
    assert_eq!(c.pid, Some(PathBuf::from("8001")));
    assert_eq!(c.user.as_deref(), Some("www-data"));
    assert_eq!(run(&["-p", "x.pid"]).pid, Some(PathBuf::from("x.pid")));
}

#[test]
fn timeouts_and_websocket_flags() {
    let c = run(&["--timeout-keep-alive", "7"]);
    assert_eq!(c.keep_alive, Duration::from_secs(7));
    // Daphne's spellings.
    let c = run(&[
        "--ping-interval",
        "15",
        "--ping-timeout",
        "25",
        "--websocket_timeout",
        "3600",
        "--websocket-max-message-size",
        "1048576",
    ]);
    assert_eq!(c.ws_ping_interval, Duration::from_secs(15));
    assert_eq!(c.ws_ping_timeout, Duration::from_secs(25));
    assert_eq!(c.ws_max_lifetime, Duration::from_secs(3600));
    assert_eq!(c.ws_max_size, 1 << 20);
    // Daphne's -1 is "never", bourbon's 0 (the default).
    assert_eq!(
        run(&["--websocket_timeout", "-1"]).ws_max_lifetime,
        Duration::ZERO
    );
    assert_eq!(run(&[]).ws_max_lifetime, Duration::ZERO);
    assert_eq!(
        run(&["--ws-max-lifetime", "60"]).ws_max_lifetime,
        Duration::from_secs(60)
    );
    assert_eq!(
        run_env(&[], &[("BOURBON_WS_MAX_LIFETIME", "1.5")]).ws_max_lifetime,
        Duration::from_millis(1500)
    );
    // Uvicorn's are bourbon's own.
    let c = run(&[
        "--ws-ping-interval",
        "3",
        "--ws-ping-timeout",
        "4",
        "--ws-max-size",
        "1M",
        "--ws-max-queue",
        "8",
        "--ws-per-message-deflate",
        "false",
        "--lifespan",
        "on",
        "--interface",
        "asgi3",
        "--root-path",
        "/api",
        "--workers",
        "3",
    ]);
    assert_eq!(
        (c.ws_ping_interval, c.ws_ping_timeout),
        (Duration::from_secs(3), Duration::from_secs(4))
    );
    assert_eq!((c.ws_max_size, c.ws_max_queue), (1 << 20, 8));
    assert!(!c.ws_per_message_deflate);
    assert_eq!((c.lifespan, c.interface), (Lifespan::On, Interface::Asgi3));
    assert_eq!((c.root_path.as_str(), c.workers), ("/api", 3));
    // Errors name the flag as typed.
    let e = err(&["--timeout-keep-alive", "soon"]);
    assert!(
        e.starts_with("error: --timeout-keep-alive: 'soon' is not a number of seconds"),
        "{e}"
    );
    let e = err(&["--websocket_timeout", "day"]);
    assert!(e.starts_with("error: --websocket_timeout: 'day'"), "{e}");
    let e = err(&["--websocket-max-message-size", "0"]);
    assert!(
        e.starts_with("error: --websocket-max-message-size: '0' leaves no room"),
        "{e}"
    );
}

#[test]
fn other_uvicorn_flags() {
    let c = run(&[
        "--limit-max-requests",
        "500",
        "--timeout-graceful-shutdown",
        "9",
        "--app-dir",
        "src",
        "--backlog",
        "64",
        "--log-level",
        "debug",
    ]);
    assert_eq!(c.max_requests, 500);
    assert_eq!(c.graceful_timeout, Duration::from_secs(9));
    assert_eq!(c.pythonpath, [PathBuf::from("src")]);
    assert_eq!(c.backlog, 64);
    assert_eq!(c.log_level, bourbon_config::LogLevel::Debug);
    assert_eq!(
        run(&["--access-log", "-"]).access_logfile,
        Some(LogTarget::Stdout)
    );
    // --factory: APP is called, wherever the flag stands.
    let factory = AppSpec {
        module: "main".into(),
        attr: "create_app".into(),
        factory: true,
    };
    for argv in [
        ["--factory", "main:create_app"],
        ["main:create_app", "--factory"],
        ["main:create_app()", "--factory"],
    ] {
        match load_with(&args(&argv), &env(&[]), None).unwrap().action {
            Action::Run(c) => assert_eq!(c.app, Some(factory.clone()), "{argv:?}"),
            other => panic!("{other:?}"),
        }
    }
    let e = load_with(&args(&["--factory"]), &env(&[("BOURBON_APP", "a:b")]), None)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "error: --factory: give APP on the same command line (or write it as module:factory())"
    );
}

#[test]
fn asgi_worker_classes_mean_interface_asgi() {
    for class in [
        "uvicorn.workers.UvicornWorker",
        "uvicorn.workers.UvicornH11Worker",
        "uvicorn_worker.UvicornWorker",
        "uvicorn_worker.UvicornH11Worker",
        "asgi",
        "gunicorn.workers.gasgi.ASGIWorker",
        "egg:gunicorn#asgi",
    ] {
        assert_eq!(run(&["-k", class]).interface, Interface::Asgi3, "{class}");
        assert_eq!(
            run(&[&format!("--worker-class={class}")]).interface,
            Interface::Asgi3
        );
    }
    // bourbon's own classes leave the choice to the application.
    assert_eq!(run(&["-k", "sync"]).interface, Interface::Auto);
    assert_eq!(run(&["-k", "gthread"]).interface, Interface::Auto);
    // The later flag wins, as for any setting.
    assert_eq!(
        run(&[
            "-k",
            "uvicorn.workers.UvicornWorker",
            "--interface",
            "asgi2"
        ])
        .interface,
        Interface::Asgi2
    );
    assert_eq!(
        run(&["--interface", "wsgi", "-k", "uvicorn.workers.UvicornWorker"]).interface,
        Interface::Asgi3
    );
    // GUNICORN_CMD_ARGS, a TOML file and a gunicorn.conf.py say it too.
    let c = run_env(
        &[],
        &[("GUNICORN_CMD_ARGS", "-k uvicorn_worker.UvicornWorker -w 2")],
    );
    assert_eq!((c.interface, c.workers), (Interface::Asgi3, 2));
    let f = temp_file("worker_class = \"uvicorn.workers.UvicornWorker\"\n");
    assert_eq!(
        run(&["-c", f.to_str().unwrap()]).interface,
        Interface::Asgi3
    );
    let conf = PythonConfig {
        location: "gunicorn.conf.py".into(),
        values: vec![(
            "worker_class".into(),
            PyValue::Text("uvicorn.workers.UvicornWorker".into()),
        )],
    };
    let l = load_with(&args(&["-c", "g.py", "a:b"]), &env(&[]), Some(&conf)).unwrap();
    assert_eq!(cfg(&l).interface, Interface::Asgi3);
    // Any other class is refused in one line with the fix; a project's own subclass too.
    for class in [
        "gevent",
        "eventlet",
        "tornado",
        "myproject.workers.MyUvicornWorker",
    ] {
        let e = err(&["-k", class]);
        assert_eq!(
            e,
            format!("error: -k {class}: bourbon has one worker type (WSGI on threads, ASGI on an asyncio loop): drop -k/worker_class (give --threads N for WSGI concurrency within a worker, --interface asgi for an ASGI application)")
        );
    }
    // gunicorn's ASGI worker settings.
    assert_eq!(run(&["--asgi-lifespan", "off"]).lifespan, Lifespan::Off);
    assert_eq!(warnings(&["--asgi-loop", "asyncio"]), Vec::<String>::new());
    assert_eq!(
        run(&["--asgi-loop", "uvloop"]).event_loop,
        EventLoop::Uvloop
    );
}

#[test]
fn flags_that_change_nothing_here_warn_or_pass_quietly() {
    // Values that are bourbon's way: no warning, nothing set.
    let quiet = loaded(&[
        "--loop",
        "asyncio",
        "--http",
        "h11",
        "--ws",
        "wsproto",
        "--proxy-headers",
        "--no-access-log",
        "--use-colors",
        "--server-header",
        "--date-header",
        "--websocket-max-frame-size",
        "65536",
    ]);
    assert!(
        quiet.notes.iter().all(|n| n.level == NoteLevel::Debug),
        "{:?}",
        quiet.notes
    );
    // uvicorn's --http is told apart from uWSGI's --http ADDR by its value.
    assert_eq!(cfg(&quiet).bind, [tcp("127.0.0.1", 8000)]);
    assert_eq!(run(&["--http", ":9000"]).bind, [tcp("0.0.0.0", 9000)]);
    assert_eq!(run(&["--http", "httptools"]).bind, [tcp("127.0.0.1", 8000)]);
    // Values bourbon cannot honour: a warning naming the flag and what bourbon does.
    assert_eq!(
        warnings(&["--no-proxy-headers"]),
        ["--no-proxy-headers: has no effect in bourbon: give --forwarded-allow-ips '' to trust no TCP peer"]
    );
    // uvicorn's --forwarded-allow-ips is bourbon's.
    let trusted = run(&["--forwarded-allow-ips", "10.0.0.0/8"]).forwarded_allow_ips;
    assert!(trusted.allows("10.1.2.3".parse().unwrap()));
    assert!(!trusted.allows("127.0.0.1".parse().unwrap()));
    assert_eq!(warnings(&["--loop", "uvloop"]), Vec::<String>::new());
    assert_eq!(run(&["--loop", "uvloop"]).event_loop, EventLoop::Uvloop);
    assert_eq!(run(&["--loop", "none"]).event_loop, EventLoop::Asyncio);
    assert_eq!(
        warnings(&["--ws", "none"]),
        ["--ws none: has no effect in bourbon: bourbon frames WebSockets itself and serves them whenever the ASGI application accepts them"]
    );
    for (argv, want) in [
        (
            &["--no-server-header"][..],
            "--no-server-header: has no effect in bourbon: responses carry Server: bourbon",
        ),
        (
            &["--limit-concurrency", "100"][..],
            "--limit-concurrency: has no effect in bourbon",
        ),
        (
            &["--reload-dir", "src"][..],
            "--reload-dir: has no effect in bourbon: --reload watches every *.py file",
        ),
        (
            &["--verbosity", "2"][..],
            "--verbosity: has no effect in bourbon: give --log-level",
        ),
        (
            &["--http-timeout", "60"][..],
            "--http-timeout: has no effect in bourbon",
        ),
        (
            &["--websocket_connect_timeout", "5"][..],
            "--websocket_connect_timeout: has no effect in bourbon",
        ),
        (
            &["--ssl-ciphers", "x"][..],
            "--ssl-ciphers: has no effect in bourbon: bourbon does not terminate TLS",
        ),
    ] {
        let w = warnings(argv);
        assert!(w.len() == 1 && w[0].starts_with(want), "{argv:?}: {w:?}");
    }
    // And the warnings do not stop the server from serving.
    assert!(matches!(
        loaded(&["--proxy-headers", "--ws", "none"]).action,
        Action::Run(_)
    ));
}

#[test]
fn refused_peer_flags_are_one_line_with_the_fix() {
    for (argv, want) in [
        (
            &["--env-file", ".env"][..],
            "error: --env-file: give each variable as -e KEY=VALUE",
        ),
        (
            &["--ssl-certfile", "c.pem"][..],
            "error: --ssl-certfile: bourbon does not terminate TLS",
        ),
        (
            &["--ssl-keyfile", "k.pem"][..],
            "error: --ssl-keyfile: bourbon does not terminate TLS",
        ),
        (
            &["--port", "--workers", "2"][..],
            "error: --port: missing value",
        ),
        (
            &["--host", "--port", "1"][..],
            "error: --host: missing value",
        ),
    ] {
        let e = err(argv);
        assert!(e.starts_with(want), "{argv:?}: {e}");
    }
    // Typos of the peers' flags are suggested.
    let e = err(&["--timeout-keepalive", "5"]);
    assert!(e.contains("(did you mean --timeout-keep-alive?)"), "{e}");
    let e = err(&["--unix-sockt", "/x"]);
    assert!(e.contains("(did you mean --unix-socket?)"), "{e}");
    // Errors in GUNICORN_CMD_ARGS say where they came from.
    let e = err_env(&[], &[("GUNICORN_CMD_ARGS", "--port 99999")]);
    assert!(
        e.starts_with("error: GUNICORN_CMD_ARGS: --port: '99999' is not a port number"),
        "{e}"
    );
}

#[test]
fn whole_command_lines() {
    // uvicorn main:app --host 0.0.0.0 --port 8080 --workers 4 --proxy-headers ...
    let l = loaded(&[
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
        "--workers",
        "4",
        "--proxy-headers",
        "--forwarded-allow-ips",
        "*",
        "--timeout-keep-alive",
        "5",
        "--lifespan",
        "on",
        "--log-level",
        "warning",
        "--no-access-log",
    ]);
    let c = cfg(&l);
    assert_eq!(c.bind, [tcp("0.0.0.0", 8080)]);
    assert_eq!(c.workers, 4);
    assert_eq!(c.keep_alive, Duration::from_secs(5));
    assert_eq!(c.lifespan, Lifespan::On);
    assert_eq!(c.access_logfile, None);
    assert_eq!(
        l.notes
            .iter()
            .filter(|n| n.level == NoteLevel::Warning)
            .count(),
        0
    );
    assert!(c.forwarded_allow_ips.allows_any());
    // daphne -b 0.0.0.0 --port 8001 --root-path /x --ping-interval 15 ... myproject.asgi:application
    let c = run(&[
        "-b",
        "0.0.0.0",
        "--port",
        "8001",
        "--root-path",
        "/x",
        "--ping-interval",
        "15",
        "--ping-timeout",
        "30",
        "--websocket_timeout",
        "86400",
        "--access-log",
        "/tmp/daphne-access.log",
    ]);
    assert_eq!(c.bind, [tcp("0.0.0.0", 8001)]);
    assert_eq!(c.root_path, "/x");
    assert_eq!(c.ws_ping_interval, Duration::from_secs(15));
    assert_eq!(c.ws_ping_timeout, Duration::from_secs(30));
    assert_eq!(c.ws_max_lifetime, Duration::from_secs(86400));
    assert_eq!(
        c.access_logfile,
        Some(LogTarget::File(PathBuf::from("/tmp/daphne-access.log")))
    );
}
