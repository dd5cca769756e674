//! The server-mechanics settings of issue 4: umask, user, group, daemon, proc_name,
//! reuse_port. One test per setting: good values parse, bad ones give a one-line error.
#![allow(clippy::unwrap_used)]

mod common;

use common::{err, err_env, run, run_env, temp_file};

#[test]
fn umask() {
    assert_eq!(run(&[]).umask, 0);
    assert_eq!(run(&["--umask", "0o077"]).umask, 0o077);
    assert_eq!(run(&["--umask", "007"]).umask, 0o007);
    assert_eq!(run(&["-m", "0O22"]).umask, 0o022);
    assert_eq!(run(&["--umask=18"]).umask, 18);
    assert_eq!(run(&["--umask", "0x3f"]).umask, 0o077);
    assert_eq!(run(&["--umask", "0"]).umask, 0);
    assert_eq!(run_env(&[], &[("BOURBON_UMASK", "027")]).umask, 0o027);
    assert!(err(&["--umask", "0o8"]).contains("is not a umask"));
    assert!(err(&["--umask", "-1"]).contains("is not a umask"));
    assert!(err(&["--umask", "0o"]).contains("is not a umask"));
    assert_eq!(
        err(&["--umask", "0o1000"]),
        "error: --umask: '0o1000' is larger than 0o777"
    );
    // What --print-config writes is read back the same.
    let f = temp_file("umask = \"0o027\"\n");
    assert_eq!(run(&["-c", f.to_str().unwrap()]).umask, 0o027);
}

#[test]
fn user_and_group() {
    let c = run(&[]);
    assert_eq!((c.user, c.group), (None, None));
    let c = run(&["-u", "nobody", "-g", "nogroup"]);
    assert_eq!(c.user.as_deref(), Some("nobody"));
    assert_eq!(c.group.as_deref(), Some("nogroup"));
    let c = run(&["--user=65534", "--group", "65534"]);
    assert_eq!(c.user.as_deref(), Some("65534"));
    let c = run_env(&[], &[("BOURBON_USER", "www-data")]);
    assert_eq!(c.user.as_deref(), Some("www-data"));
    assert!(err(&["--user", "a b"]).starts_with("error: --user: 'a b' is not a user"));
    assert!(err(&["-g", "x:y"]).starts_with("error: -g: 'x:y' is not a user or group"));
}

#[test]
fn daemon() {
    assert!(!run(&[]).daemon);
    assert!(run(&["-D"]).daemon);
    assert!(run(&["--daemon"]).daemon);
    assert!(run_env(&[], &[("BOURBON_DAEMON", "yes")]).daemon);
    assert!(err(&["--daemon=perhaps"]).contains("is not a boolean"));
}

#[test]
fn proc_name() {
    assert_eq!(run(&[]).proc_name, None);
    assert_eq!(
        run(&["--proc-name", "site"]).proc_name.as_deref(),
        Some("site")
    );
    assert_eq!(run(&["-n", "x"]).proc_name.as_deref(), Some("x"));
    assert_eq!(run(&["--name", "y"]).proc_name.as_deref(), Some("y"));
}

#[test]
fn reuse_port() {
    assert!(!run(&[]).reuse_port);
    assert!(run(&["--reuse-port"]).reuse_port);
    assert!(run_env(&[], &[("BOURBON_REUSE_PORT", "1")]).reuse_port);
}

#[test]
fn preload() {
    assert!(!run(&[]).preload);
    assert!(run(&["--preload"]).preload);
    assert!(run(&["--preload-app"]).preload);
    assert!(run_env(&[], &[("BOURBON_PRELOAD", "true")]).preload);
    let f = temp_file("preload = true\n");
    assert!(run(&["-c", f.to_str().unwrap()]).preload);
    assert!(err(&["--preload=maybe"]).contains("is not a boolean"));
}

#[test]
fn reload_and_extra_files() {
    let c = run(&[]);
    assert!(!c.reload);
    assert!(c.reload_extra_file.is_empty());
    let c = run(&[
        "--reload",
        "--reload-extra-file",
        "templates/a.html",
        "--reload-extra-file=conf.ini",
    ]);
    assert!(c.reload);
    assert_eq!(
        c.reload_extra_file,
        vec![
            std::path::PathBuf::from("templates/a.html"),
            std::path::PathBuf::from("conf.ini")
        ]
    );
    let c = run_env(
        &[],
        &[
            ("BOURBON_RELOAD", "1"),
            ("BOURBON_RELOAD_EXTRA_FILE", "a.txt,b.txt"),
        ],
    );
    assert!(c.reload);
    assert_eq!(c.reload_extra_file.len(), 2);
    let f = temp_file("reload = true\nreload_extra_file = [\"x.html\"]\n");
    let c = run(&["-c", f.to_str().unwrap()]);
    assert!(c.reload);
    assert_eq!(
        c.reload_extra_file,
        vec![std::path::PathBuf::from("x.html")]
    );
}

#[test]
fn reload_with_preload_is_an_error() {
    let msg = err(&["--reload", "--preload"]);
    assert!(
        msg.contains("--reload cannot be combined with --preload"),
        "{msg}"
    );
    let msg = err_env(&["--reload"], &[("BOURBON_PRELOAD", "1")]);
    assert!(msg.contains("cannot be reloaded"), "{msg}");
}

#[test]
fn control_socket() {
    use bourbon_config::ControlSocket;
    use std::path::PathBuf;
    assert_eq!(run(&[]).control_socket, ControlSocket::Default);
    assert_eq!(
        run(&["--control-socket", "/run/x/c.sock"]).control_socket,
        ControlSocket::Path(PathBuf::from("/run/x/c.sock"))
    );
    assert_eq!(
        run(&["--control-socket", "off"]).control_socket,
        ControlSocket::Off
    );
    assert_eq!(
        run_env(&[], &[("BOURBON_CONTROL_SOCKET", "off")]).control_socket,
        ControlSocket::Off
    );
    let long = format!("/{}", "d".repeat(120));
    let msg = err(&["--control-socket", &long]);
    assert!(
        msg.starts_with("error: --control-socket: ") && msg.contains("at most 107"),
        "{msg}"
    );
    let f = temp_file("control_socket = \"/tmp/c.sock\"\n");
    assert_eq!(
        run(&["-c", f.to_str().unwrap()]).control_socket,
        ControlSocket::Path(PathBuf::from("/tmp/c.sock"))
    );
}
