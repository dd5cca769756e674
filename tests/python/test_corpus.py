"""gunicorn's request-parsing corpus, sent to a live bourbon over real sockets.

Each case's bytes are sent in one piece, then the client half-closes (``SHUT_WR``) so the end of
input is unambiguous. Expectations come from the corpus manifest (``expect``):

- ``accept``: exactly ``len(requests)`` responses, each a 200 from the echo app with the listed
  method, URI, headers and body, then the connection ends;
- ``reject``: a 4xx/501/505 or a close without a response; never a 2xx, never more than one
  response;
- ``accept_or_reject``: each request is either accepted as above, or the first refused one
  gets a 4xx/501/505 (or a close) and nothing follows; never extra responses.

Cases marked ``skip`` need non-default gunicorn features and are not collected.
Server limits are bourbon's defaults.

Where a case sends HTTP/1.1 without ``Host``, bourbon answers that request 400 "missing Host"
(RFC 9112 §3.2) where gunicorn accepts it: ``MISSING_HOST`` lists those cases, with how many
requests before it are answered, and replaces their manifest expectation. (The Rust harness,
``crates/bourbon-server/tests/corpus.rs``, still judges them as written with the Host rule
lifted.)
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
from contextlib import closing

import pytest
from conftest import CORPUS
from rawhttp import Closed, Reader, Response

APP = "http_app:app"
TIMEOUT = 5.0
REJECT_STATUSES = {400, 413, 414, 431, 501, 505}


def _manifest() -> dict:
    path = CORPUS / "manifest.json"
    if not path.exists():
        return {"cases": []}
    return json.loads(path.read_text(encoding="utf-8"))


CASES = [c for c in _manifest()["cases"] if c["expect"] != "skip"]

# RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any HTTP/1.1
# request message that lacks a Host header field". Case -> requests answered before the one
# without Host (the same list as MISSING_HOST in crates/bourbon-server/tests/corpus.rs).
MISSING_HOST = {
    # marked missing_host in the manifest (accept_or_reject there: gunicorn accepts them)
    **dict.fromkeys(["valid/004", "valid/005", "valid/006", "valid/007", "valid/010"], 0),
    **dict.fromkeys(["valid/011", "valid/012", "valid/013", "valid/018", "valid/021"], 0),
    "valid/022": 1,  # an HTTP/1.0 request first, which needs no Host
    **dict.fromkeys(["valid/023", "valid/031", "valid/100"], 0),
    # about something else (target, transfer codings, chunked framing), also without Host
    **dict.fromkeys(["valid/009", "valid/014", "valid/025", "valid/025_line"], 0),
    **dict.fromkeys(["valid/029", "valid/030", "invalid/010", "invalid/017", "invalid/019"], 0),
    **{f"invalid/chunked_{i:02}": 0 for i in (1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14)},
}


def decode_http_file(raw: bytes) -> bytes:
    """The manifest's ``http_file_encoding``: drop every LF byte, then turn the escapes
    ``\\r\\n``, ``\\0``, ``\\n``, ``\\t`` and ``\\xHH`` into the bytes they name."""
    data = raw.replace(b"\n", b"")
    data = data.replace(b"\\r\\n", b"\r\n")
    data = data.replace(b"\\0", b"\x00").replace(b"\\n", b"\n").replace(b"\\t", b"\t")
    data = re.sub(rb"\\x([0-9a-fA-F]{2})", lambda m: bytes([int(m.group(1), 16)]), data)
    assert b"\\" not in data, "unexpected escape in corpus file"
    return data


def test_corpus_present():
    assert (CORPUS / "manifest.json").exists(), f"corpus missing at {CORPUS}"
    assert len(CASES) > 100


def test_missing_host_list_names_real_cases():
    assert set(MISSING_HOST) <= {c["id"] for c in CASES}


def env_key(name: str) -> str:
    key = name.upper().replace("-", "_")
    return key if key in ("CONTENT_LENGTH", "CONTENT_TYPE") else "HTTP_" + key


def check_accepted(case: dict, i: int, resp: Response) -> None:
    """A 2xx answer to request ``i`` of ``case`` must be the echo app's, with what was sent."""
    cid = case["id"]
    assert resp.status == 200, f"{cid}: request {i} answered {resp.status}: {resp.body[:200]!r}"
    requests = case.get("requests")
    try:
        data = json.loads(resp.body)
    except ValueError:
        pytest.fail(f"{cid}: request {i}: 200 without the echo app's body: {resp}")
    if not requests:
        # an invalid-kind case bourbon accepted: only what the note demands is checked
        for k, v in case.get("env_exact", {}).items():
            assert data["env"].get(k) == v, f"{cid}: environ {k}={data['env'].get(k)!r}"
        for k, v in case.get("check_absent_env", {}).items():
            assert data["env"].get(k) != v, f"{cid}: environ {k} must not be {v!r}"
        if case["id"] == "invalid/chunked_07":
            body = b"hello world"
            assert (data["body_len"], data["body_sha256"]) == (
                len(body),
                hashlib.sha256(body).hexdigest(),
            ), f"{cid}: body not read as chunked"
        return
    exp = requests[i]
    assert data["method"] == exp["method"], f"{cid}: method {data['method']!r}"
    uri = exp["uri"]
    if "#" in uri and data["raw_uri"] == uri.split("#", 1)[0]:
        uri = uri.split("#", 1)[0]  # dropping a fragment is fine
    assert data["raw_uri"] == uri, f"{cid}: RAW_URI {data['raw_uri']!r} != {uri!r}"
    body = exp["body"].encode("latin-1")
    assert data["body_len"] == len(body), f"{cid}: body length {data['body_len']} != {len(body)}"
    assert data["body_sha256"] == hashlib.sha256(body).hexdigest(), f"{cid}: body differs"
    optional = {h.upper() for h in case.get("optional_headers", [])}
    env = data["env"]
    for name, value in exp["headers"]:
        if name.upper() in optional:
            continue
        key = env_key(name)
        assert key in env, f"{cid}: header {name} missing from environ ({sorted(env)})"
        assert value in env[key], f"{cid}: {key}={env[key]!r} does not carry {value!r}"
    for k, v in case.get("env_exact", {}).items():
        assert env.get(k) == v, f"{cid}: environ {k}={env.get(k)!r}, expected {v!r}"
    for k, v in case.get("check_absent_env", {}).items():
        assert env.get(k) != v, f"{cid}: environ {k} must not be {v!r}"


def read_response(reader: Reader, method: str) -> Response | None:
    """The next response, or None when the server closed the connection first."""
    try:
        return reader.response(method)
    except Closed:
        return None
    except ConnectionResetError:
        return None


def method_of(case: dict, i: int) -> str:
    requests = case.get("requests") or []
    return requests[i]["method"] if i < len(requests) else "GET"


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_corpus_case(start_server, case):
    data = decode_http_file((CORPUS / case["file"]).read_bytes())
    srv = start_server(APP)
    expect = case["expect"]
    n_expected = len(case.get("requests") or []) or 1
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may already have refused and closed
        reader = Reader(s)
        try:
            if case["id"] in MISSING_HOST:
                answered = MISSING_HOST[case["id"]]
                for i in range(answered):
                    resp = read_response(reader, method_of(case, i))
                    assert resp is not None, f"closed after {i} of {answered} responses"
                    check_accepted(case, i, resp)
                resp = read_response(reader, "GET")
                assert resp is not None, "closed without the 400"
                assert (resp.status, resp.body) == (400, b"Bad Request: missing Host\n"), resp
                assert reader.at_eof(TIMEOUT), "a response after the rejection"
            elif expect == "accept":
                for i in range(n_expected):
                    resp = read_response(reader, method_of(case, i))
                    assert resp is not None, f"closed after {i} of {n_expected} responses"
                    check_accepted(case, i, resp)
                assert reader.at_eof(TIMEOUT), "extra bytes after the expected responses"
            elif expect == "reject":
                resp = read_response(reader, "GET")
                if resp is not None:
                    assert resp.status in REJECT_STATUSES, (
                        f"expected a rejection, got {resp.status}: {resp.body[:200]!r}"
                    )
                    assert reader.at_eof(TIMEOUT), "a response after the rejection"
            else:  # accept_or_reject
                refused = False
                for i in range(n_expected):
                    resp = read_response(reader, method_of(case, i))
                    if resp is None:
                        refused = True
                        break
                    if resp.status in REJECT_STATUSES:
                        refused = True
                        break
                    check_accepted(case, i, resp)
                assert reader.at_eof(TIMEOUT), (
                    f"extra response after {'a refusal' if refused else 'the expected ones'}"
                )
        except TimeoutError:
            pytest.fail(f"{case['id']}: the server neither answered nor closed in {TIMEOUT}s")
