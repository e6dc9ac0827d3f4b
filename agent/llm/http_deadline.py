"""Blocking HTTP with a total deadline: a silent or dripping server cannot hold the caller past it.

Contracts:
- `post_json(url, body, headers=..., deadline_s=...)` sends one POST and returns the status and the raw
  body. The deadline covers everything together: connecting, sending, the status line, the headers and the
  body. Before every socket operation the socket's timeout is set to what is left, so a server that sends
  one byte per second (which no per-read timeout ever trips) is cut off at the deadline too.
- Past the deadline it raises `DeadlineExceeded` (a `TimeoutError`); network faults raise `OSError` and
  malformed HTTP raises `http.client.HTTPException`, as `http.client` does.
- One connection per call, closed on return; http and https; proxies from the environment are not used
  (the endpoints asked this way, the tokenizer of a self-hosted server, are reached directly).
- For the hot path of token counting: no event loop, no client object, about the cost of `urllib`.
"""

from __future__ import annotations

import http.client
import io
import json
import socket
import time
from typing import Any
from urllib.parse import urlsplit


class DeadlineExceeded(TimeoutError):
    """The whole exchange took longer than its deadline."""


def post_json(
    url: str, body: Any, *, headers: dict[str, str] | None = None, deadline_s: float
) -> tuple[int, bytes]:
    """POST `body` as JSON to `url`; (status, body bytes) within `deadline_s` seconds in total."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    cls = _HTTPS if parts.scheme == "https" else _HTTP
    conn = cls(parts.hostname or "", parts.port, timeout=deadline_s)
    conn.deadline = time.monotonic() + deadline_s
    data = json.dumps(body).encode()
    try:
        conn.request("POST", path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read()
    except TimeoutError as e:
        raise DeadlineExceeded(f"no complete answer within the {deadline_s:g} s deadline") from e
    finally:
        conn.close()
        if conn.raw is not None:
            conn.raw.close()


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded("deadline passed")
    return left


class _Reader(io.RawIOBase):
    """The response side of the socket: each read may wait only until the deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._sock.settimeout(_left(self._deadline))
        return self._sock.recv_into(buffer)


class _Socket:
    """A connected socket whose sends and reads are bounded by the deadline (what http.client uses of it)."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def sendall(self, data: bytes) -> None:
        self._sock.settimeout(_left(self._deadline))
        self._sock.sendall(data)

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_Reader(self._sock, self._deadline))

    def close(self) -> None:
        """Left to `post_json`, which closes the socket once the body is read (http.client closes its
        side as soon as it knows the server will close, before the body is read)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _Bounded(http.client.HTTPConnection):
    deadline: float = 0.0
    raw: socket.socket | None = None

    def connect(self) -> None:
        self.timeout = _left(self.deadline)
        super().connect()
        self.raw = self.sock
        self.sock = _Socket(self.sock, self.deadline)


class _HTTP(_Bounded):
    pass


class _HTTPS(_Bounded, http.client.HTTPSConnection):
    pass
