"""A tiny raw HTTP/1.x client for tests: send exact bytes, read exact responses.

The standard library's clients normalise too much (they add headers, refuse pipelining, hide
framing), so the tests speak HTTP over a plain socket with this module.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field


@dataclass
class Response:
    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    chunked: bool = False

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


class Closed(Exception):
    """The server closed the connection before a complete response."""


class Reader:
    """Reads responses one at a time from a socket, keeping leftover bytes."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise Closed("connection closed")
        self.buf += data

    def read_until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(marker)
        return head

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_to_close(self) -> bytes:
        while True:
            try:
                self._fill()
            except Closed:
                out, self.buf = self.buf, b""
                return out

    def at_eof(self, timeout: float = 5.0) -> bool:
        """True if the server closes the connection (no more bytes) within ``timeout``."""
        if self.buf:
            return False
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1)
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
        finally:
            self.sock.settimeout(old)
        if data:
            self.buf += data
            return False
        return True

    def response(self, method: str = "GET") -> Response:
        head = self.read_until(b"\r\n\r\n").decode("latin-1")
        lines = head.split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code, _, reason = rest.partition(" ")
        resp = Response(version, int(code), reason)
        for line in lines[1:]:
            k, _, v = line.partition(":")
            resp.headers.append((k.strip(), v.strip()))
        if method == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200:
            return resp
        te = resp.header("transfer-encoding")
        cl = resp.header("content-length")
        if te and "chunked" in te.lower():
            resp.chunked = True
            body = b""
            while True:
                size_line = self.read_until(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    self.read_until(b"\r\n")
                    break
                body += self.read_exact(size)
                self.read_exact(2)
            resp.body = body
        elif cl is not None:
            resp.body = self.read_exact(int(cl))
        else:
            resp.body = self.read_to_close()
        return resp


def request(sock: socket.socket, data: bytes, method: str = "GET") -> Response:
    sock.sendall(data)
    return Reader(sock).response(method)


def get(path: str = "/", host: str = "localhost", extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode("latin-1")
