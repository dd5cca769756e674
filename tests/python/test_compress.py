"""``bourbon compress DIR``: pre-compressed ``NAME.br`` / ``NAME.gz`` beside a static tree.

Every test runs the installed ``bourbon`` command on a tree in a temporary directory and reads
the variants back with Python's ``gzip`` and the ``brotli`` package (a test dependency in the
Makefile's ``DEV_PACKAGES``).
"""

from __future__ import annotations

import gzip
import http.client
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLE, base_env, bourbon_exe, run_bourbon
from procs import wait_until

try:
    import brotli
except ImportError:  # the venv predates DEV_PACKAGES having it
    brotli = None

SUMMARY = re.compile(
    r"^compressed (\d+) files? \(([\d.]+) MB → br ([\d.]+) MB, gz ([\d.]+) MB\), skipped (\d+)$"
)
CSS = "".join(f".c{i} {{ margin: {i % 9}px; color: #{i % 5:03x}; }}\n" for i in range(400))
JS = "".join(f"export function f{i}(x) {{ return x + {i % 7}; }}\n" for i in range(300))
SVG = '<svg xmlns="http://www.w3.org/2000/svg">' + '<rect width="1" height="1"/>' * 200 + "</svg>"


# What bourbon compress gives variants to (the module's COMPRESSIBLE list).
KINDS = {
    f".{ext}"
    for ext in (
        "css csv eot htm html ico js json map md mjs otf svg ttf txt wasm webmanifest xml"
    ).split()
}


def unbrotli(data: bytes) -> bytes:
    if brotli is None:
        pytest.fail(
            "the brotli package is missing from this venv: make venvs, or pip install brotli"
        )
    return brotli.decompress(data)


def compress(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_bourbon("compress", *args, cwd=cwd, timeout=100)


def summary(proc: subprocess.CompletedProcess) -> tuple[int, int]:
    """(compressed, skipped) from the one summary line on stdout."""
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout
    m = SUMMARY.match(lines[0])
    assert m, lines[0]
    return int(m.group(1)), int(m.group(5))


def write(root: Path, rel: str, data: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


def variant(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def assert_variants(path: Path) -> None:
    """Both variants exist, decode to the original, are smaller and carry its mtime."""
    original = path.read_bytes()
    br, gz = variant(path, ".br"), variant(path, ".gz")
    assert unbrotli(br.read_bytes()) == original, br
    gz_bytes = gz.read_bytes()
    assert gzip.decompress(gz_bytes) == original, gz
    assert gz_bytes[4:8] == b"\0\0\0\0", "gzip MTIME must be 0 (reproducible output)"
    for v in (br, gz):
        assert v.stat().st_size < len(original) * 0.95, v
        assert v.stat().st_mtime_ns == path.stat().st_mtime_ns, v


def assert_no_variants(path: Path) -> None:
    for suffix in (".br", ".gz"):
        assert not variant(path, suffix).exists(), variant(path, suffix)


def leftovers(root: Path) -> list[Path]:
    return sorted(root.rglob(".bourbon-compress-*"))


def test_writes_variants_for_compressible_files_only(tmp_path):
    root = tmp_path / "static"
    yes = [
        write(root, "css/site.css", CSS),
        write(root, "js/app.mjs", JS),
        write(root, "img/logo.svg", SVG),
        write(root, "data/list.json", '{"items": [' + ", ".join(["1"] * 500) + "]}"),
    ]
    no = [
        write(root, "img/photo.png", CSS),  # by extension, whatever the bytes
        write(root, "fonts/f.woff2", CSS),
        write(root, "css/old.css.gz", CSS),
        write(root, ".hidden.css", CSS),
        write(root, ".git/objects/x.js", JS),
        write(root, "random.txt", os.urandom(20_000)),  # compresses by less than 5%
        write(root, "tiny.js", "x"),
    ]
    proc = compress(str(root), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert summary(proc) == (4, 2)  # random.txt and tiny.js are skipped
    for path in yes:
        assert_variants(path)
    for path in no:
        assert_no_variants(path)
    assert leftovers(root) == []


def test_second_run_skips_current_variants_and_redoes_changed_files(tmp_path):
    root = tmp_path / "static"
    css = write(root, "site.css", CSS)
    js = write(root, "app.js", JS)
    assert summary(compress(str(root), cwd=tmp_path)) == (2, 0)
    inodes = {p: variant(p, ".br").stat().st_ino for p in (css, js)}

    proc = compress(str(root), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert summary(proc) == (0, 2)
    assert {p: variant(p, ".br").stat().st_ino for p in (css, js)} == inodes

    # A new version of one file (collectstatic rewrote it): only that one is redone.
    css.write_text(CSS + ".new { top: 0; }\n" * 50)
    st = css.stat()
    os.utime(css, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    assert summary(compress(str(root), cwd=tmp_path)) == (1, 1)
    assert_variants(css)
    assert variant(js, ".br").stat().st_ino == inodes[js]

    proc = compress("--force", str(root), cwd=tmp_path)
    assert summary(proc) == (2, 0)
    assert variant(js, ".br").stat().st_ino != inodes[js]
    assert_variants(js)


def test_stale_variant_removed_when_the_file_no_longer_compresses(tmp_path):
    root = tmp_path / "static"
    page = write(root, "page.html", CSS)
    compress(str(root), cwd=tmp_path)
    assert_variants(page)
    page.write_bytes(os.urandom(10_000))
    st = page.stat()
    os.utime(page, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    proc = compress(str(root), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert summary(proc) == (0, 1)
    assert_no_variants(page)


def test_no_brotli_and_no_gzip(tmp_path):
    root = tmp_path / "static"
    css = write(root, "site.css", CSS)
    proc = compress("--no-brotli", str(root), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"compressed 1 file \([\d.]+ MB → gz [\d.]+ MB\), skipped 0\n", proc.stdout)
    assert variant(css, ".gz").exists() and not variant(css, ".br").exists()
    proc = compress("--no-gzip", "--quiet", str(root), cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    assert_variants(css)


def test_symlinked_directory_is_not_followed(tmp_path):
    outside = tmp_path / "elsewhere"
    far = write(outside, "lib/far.css", CSS)
    root = tmp_path / "static"
    near = write(root, "css/near.css", CSS)
    (root / "lib").symlink_to(outside / "lib")
    (root / "again").symlink_to(root / "css")
    proc = compress(str(root), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert summary(proc) == (1, 0)
    assert_variants(near)
    assert_no_variants(far)


def test_a_failing_file_is_reported_and_exits_1(tmp_path):
    root = tmp_path / "static"
    bad = write(root, "bad.css", CSS)
    write(root, "bad.css.gz/in-the-way", "x")  # a directory where the variant should go
    good = write(root, "good.css", CSS)
    proc = compress(str(root), cwd=tmp_path)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    errors = proc.stderr.splitlines()
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith("error: ") and str(bad) + ".gz" in errors[0], errors[0]
    assert summary(proc) == (1, 0)  # bad.css is counted as failed, though its .br was written
    assert_variants(good)
    assert variant(bad, ".br").exists()
    assert leftovers(root) == []


@pytest.mark.parametrize(
    "args, must_name",
    [
        ([], "DIR"),
        (["--force"], "DIR"),
        (["no-such-dir"], "no-such-dir"),
        (["site.css"], "site.css"),
        (["--frobnicate", "."], "--frobnicate"),
        (["--no-brotli", "--no-gzip", "."], "--no-gzip"),
    ],
)
def test_usage_errors_exit_2_with_one_line(tmp_path, args, must_name):
    write(tmp_path, "site.css", CSS)
    proc = compress(*args, cwd=tmp_path)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert must_name in lines[0], lines[0]
    assert "bourbon compress" in lines[0], lines[0]  # the subcommand's words, not the server's
    assert proc.stdout == ""
    assert_no_variants(tmp_path / "site.css")


def test_help(tmp_path):
    proc = compress("--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: bourbon compress [OPTIONS] DIR [DIR...]")
    for option in ("--force", "--quiet", "--no-brotli", "--no-gzip", "compress:app"):
        assert option in proc.stdout, option
    main_help = run_bourbon("--help", cwd=tmp_path)
    assert main_help.returncode == 0
    assert "bourbon compress DIR [DIR...]" in main_help.stdout


def test_an_app_module_named_compress_is_still_served(tmp_path, start_server):
    (tmp_path / "compress.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'served by the compress module']\n"
    )
    srv = start_server("compress:app", cwd=tmp_path)
    conn = http.client.HTTPConnection(*srv.host_port, timeout=10)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (200, b"served by the compress module")
    finally:
        conn.close()


def test_ctrl_c_stops_it_at_once(tmp_path):
    # Big enough that brotli at quality 11 takes many seconds on it.
    write(tmp_path, "big.txt", os.urandom(6_000_000).hex())
    proc = subprocess.Popen(
        [bourbon_exe(), "compress", str(tmp_path)],
        env=base_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_until(lambda: leftovers(tmp_path) or proc.poll() is not None, what="compression")
        assert proc.poll() is None, proc.communicate()
        os.kill(proc.pid, signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            pytest.fail("bourbon compress went on after SIGINT")
        assert proc.returncode == -signal.SIGINT
        assert_no_variants(tmp_path / "big.txt")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)


def test_django_collectstatic_tree(tmp_path):
    """The example site's static files (Django's admin and the polls app) as collectstatic
    writes them with hashed names, without WhiteNoise's own compression."""
    root = tmp_path / "staticfiles"
    (tmp_path / "collect_settings.py").write_text(
        "from mysite.settings import *  # noqa: F403\n"
        f"STATIC_ROOT = {str(root)!r}\n"
        "STORAGES = {**STORAGES, 'staticfiles': {'BACKEND': "
        "'django.contrib.staticfiles.storage.ManifestStaticFilesStorage'}}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOURBON_", "DJANGO_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(EXAMPLE)])
    collect = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=EXAMPLE,
        env={**env, "DJANGO_SETTINGS_MODULE": "collect_settings"},
        capture_output=True,
        text=True,
        timeout=100,
        stdin=subprocess.DEVNULL,
    )
    assert collect.returncode == 0, collect.stderr
    files = sorted(p for p in root.rglob("*") if p.is_file())
    assert (root / "staticfiles.json").is_file()
    assert not [p for p in files if p.suffix in (".gz", ".br")], "collectstatic compressed"

    proc = compress(str(root), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    compressed, skipped = summary(proc)
    candidates = [p for p in files if p.suffix.lower() in KINDS]
    assert compressed + skipped == len(candidates)
    assert compressed > 50, proc.stdout
    with_variants = 0
    for path in candidates:
        br, gz = variant(path, ".br"), variant(path, ".gz")
        if br.exists() or gz.exists():
            with_variants += 1
        if br.exists():
            assert unbrotli(br.read_bytes()) == path.read_bytes(), br
        if gz.exists():
            assert gzip.decompress(gz.read_bytes()) == path.read_bytes(), gz
    assert with_variants == compressed
    for path in files:
        if path.suffix.lower() not in KINDS:
            assert_no_variants(path)
    # The hashed names the pages link to have theirs.
    hashed_css = [p for p in candidates if re.fullmatch(r"base\.[0-9a-f]{12}\.css", p.name)]
    assert hashed_css, "no hashed admin/css/base.css"
    assert_variants(hashed_css[0])
    assert summary(compress(str(root), cwd=tmp_path)) == (0, len(candidates))
