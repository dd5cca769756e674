//! Generated text: `docs/settings.md` must match the registry (doc drift),
//! and `--help` must mention every flag.
#![allow(clippy::unwrap_used)]

const DOCS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/settings.md");

#[test]
fn settings_md_is_up_to_date() {
    let want = bourbon_config::settings_markdown();
    if std::env::var("BOURBON_BLESS").as_deref() == Ok("1") {
        std::fs::write(DOCS, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(DOCS).unwrap_or_default();
    assert!(
        have == want,
        "docs/settings.md is out of date with the settings registry; regenerate it with \
         BOURBON_BLESS=1 cargo test -p bourbon-config --test docs"
    );
}

#[test]
fn help_mentions_every_flag() {
    let help = bourbon_config::help_text();
    for flag in [
        "APP",
        "-c, --config FILE",
        "--chdir",
        "--pythonpath",
        "-e, --env KEY=VALUE",
        "-b, --bind ADDR",
        "-w, --workers N",
        "--threads",
        "--keep-alive",
        "--backlog",
        "--limit-request-line",
        "--limit-request-fields",
        "--limit-request-field_size",
        "--limit-request-body",
        "--header-timeout",
        "--write-timeout",
        "--post-buffering",
        "--root-path",
        "--log-level",
        "--error-logfile",
        "--access-logfile",
        "--access-logformat",
        "--check-config",
        "--print-config",
        "-v, --version",
        "-h, --help",
        "bourbon compress DIR",
    ] {
        assert!(help.contains(flag), "{flag} missing from help:\n{help}");
    }
    let md = bourbon_config::settings_markdown();
    assert!(md.starts_with("<!-- GENERATED FILE"));
    assert!(md.contains("`BOURBON_LIMIT_REQUEST_FIELD_SIZE`"));
    assert!(md.contains("`--log-file FILE`"));
}

const MIGRATING: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/migrating.md");

/// `docs/migrating.md` is written by hand around a generated part: the tables of
/// gunicorn's and uWSGI's words, from the table that also answers them.
#[test]
fn migrating_md_tables_are_up_to_date() {
    use bourbon_config::{migrating_markdown, MIGRATING_BEGIN, MIGRATING_END};
    let have = std::fs::read_to_string(MIGRATING).unwrap();
    let (Some(b), Some(e)) = (have.find(MIGRATING_BEGIN), have.find(MIGRATING_END)) else {
        panic!("docs/migrating.md lacks the generated-part markers");
    };
    let want = format!(
        "{}{MIGRATING_BEGIN}\n\n{}\n\n{}",
        &have[..b],
        migrating_markdown(),
        &have[e..]
    );
    if std::env::var("BOURBON_BLESS").as_deref() == Ok("1") {
        std::fs::write(MIGRATING, &want).unwrap();
        return;
    }
    assert!(
        have == want,
        "docs/migrating.md's tables are out of date with foreign.rs; regenerate them with \
         BOURBON_BLESS=1 cargo test -p bourbon-config --test docs"
    );
}

#[test]
fn settings_md_shows_other_servers_names() {
    let md = bourbon_config::settings_markdown();
    assert!(md.contains("| Also accepted | gunicorn: `accesslog` (config file)"));
    assert!(md.contains("uWSGI: `processes` (ini), `--processes`"));
    assert!(md.contains("`--chmod-socket[=MODE]`"));
}
