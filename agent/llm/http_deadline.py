"""Blocking HTTP with a total deadline: a silent or dripping server cannot hold the caller past it.

Contracts:
- `post_json(url, body, headers=..., deadline_s=...)` sends one POST and returns the status and the raw
  body. The deadline covers everything together: connecting, sending, the status line, the headers and the
  body. Before every socket operation the socket's timeout is set to what is left, so a server that sends
  one byte per second (which no per-read timeout ever trips) is cut off at the deadline too.
- Past the deadline it raises `DeadlineExceeded` (a `TimeoutError`); network faults raise `OSError` and
  malformed HTTP raises `http.client.HTTPException`, as `http.client` does.
- `post_json` opens one connection per call, closed on return. `JsonClient.post` (same arguments and
  results) keeps connections alive between calls, a few idle ones per server (thread-safe: a connection
  serves one exchange at a time): the hot path of token counting, one `/tokenize` per prompt part, then
  pays no TCP handshake per count. A kept connection the server has meanwhile closed is replaced and the
  exchange sent once more on a new one, within the same deadline (a POST here is a pure query); a
  connection whose exchange failed or was cut at the deadline is closed, never reused; a response that
  says the server will close is read to its end and its socket closed. `close()` closes the idle
  connections (also done when the client is garbage-collected or the interpreter exits).
- http and https; proxies from the environment are not used (the endpoints asked this way, the tokenizer
  of a self-hosted server, are reached directly). No event loop: about the cost of `urllib`.
"""

from __future__ import annotations

import http.client
import io
import json
import socket
import threading
import time
import weakref
from typing import Any
from urllib.parse import urlsplit


class DeadlineExceeded(TimeoutError):
    """The whole exchange took longer than its deadline."""


def post_json(
    url: str, body: Any, *, headers: dict[str, str] | None = None, deadline_s: float
) -> tuple[int, bytes]:
    """POST `body` as JSON to `url`; (status, body bytes) within `deadline_s` seconds in total."""
    parts = urlsplit(url)
    conn = _connection(parts.scheme, parts.hostname or "", parts.port, deadline_s)
    conn.deadline = time.monotonic() + deadline_s
    try:
        return _exchange(conn, _path(url), _payload(body), headers, deadline_s)[:2]
    finally:
        conn.drop()


class JsonClient:
    """`post_json` over kept-alive connections (see the module contract)."""

    def __init__(self, max_idle: int = 4) -> None:
        """Keep at most `max_idle` idle connections per server."""
        self._max_idle = max_idle
        self._idle: dict[tuple[str, str, int | None], list[_Bounded]] = {}
        self._lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _close_all, self._idle, self._lock)

    def post(
        self, url: str, body: Any, *, headers: dict[str, str] | None = None, deadline_s: float
    ) -> tuple[int, bytes]:
        """POST `body` as JSON to `url`; (status, body bytes) within `deadline_s` seconds in total."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "", parts.port)
        deadline = time.monotonic() + deadline_s
        path, payload = _path(url), _payload(body)
        conn = self._take(key)
        if conn is not None:
            conn.deadline = deadline
            try:
                status, data, keep = _exchange(conn, path, payload, headers, deadline_s)
            except _STALE:  # the server closed the idle connection: once more, on a new one
                conn.drop()
            except BaseException:
                conn.drop()
                raise
            else:
                self._give_back(key, conn, keep)
                return status, data
        conn = _connection(parts.scheme, key[1], key[2], deadline_s)
        conn.deadline = deadline
        try:
            status, data, keep = _exchange(conn, path, payload, headers, deadline_s)
        except BaseException:
            conn.drop()
            raise
        self._give_back(key, conn, keep)
        return status, data

    def idle_sockets(self) -> list[socket.socket]:
        """The sockets of the idle connections (for tests)."""
        with self._lock:
            return [c.raw for conns in self._idle.values() for c in conns if c.raw is not None]

    def close(self) -> None:
        """Close the idle connections (the client stays usable: it connects again when asked)."""
        _close_all(self._idle, self._lock)

    def _take(self, key: tuple[str, str, int | None]) -> _Bounded | None:
        with self._lock:
            conns = self._idle.get(key)
            return conns.pop() if conns else None

    def _give_back(self, key: tuple[str, str, int | None], conn: _Bounded, keep: bool) -> None:
        if keep:
            with self._lock:
                conns = self._idle.setdefault(key, [])
                if len(conns) < self._max_idle:
                    conns.append(conn)
                    return
        conn.drop()


_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)
"""What a kept connection the server has closed meanwhile raises on its next exchange."""


def _close_all(idle: dict[tuple[str, str, int | None], list[_Bounded]], lock: threading.Lock) -> None:
    with lock:
        conns = [c for cs in idle.values() for c in cs]
        idle.clear()
    for conn in conns:
        conn.drop()


def _path(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _payload(body: Any) -> bytes:
    return json.dumps(body).encode()


def _connection(scheme: str, host: str, port: int | None, deadline_s: float) -> _Bounded:
    cls = _HTTPS if scheme == "https" else _HTTP
    return cls(host, port, timeout=deadline_s)


def _exchange(
    conn: _Bounded, path: str, data: bytes, headers: dict[str, str] | None, deadline_s: float
) -> tuple[int, bytes, bool]:
    """One request and its whole response on `conn` (under `conn.deadline`): status, body, and whether the
    connection may serve another exchange."""
    try:
        conn.request("POST", path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        raw = resp.read()
    except TimeoutError as e:
        raise DeadlineExceeded(f"no complete answer within the {deadline_s:g} s deadline") from e
    return resp.status, raw, conn.sock is not None and not resp.will_close


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded("deadline passed")
    return left


class _Reader(io.RawIOBase):
    """The response side of the socket: each read may wait only until the connection's current deadline."""

    def __init__(self, sock: socket.socket, owner: _Bounded) -> None:
        self._sock = sock
        self._owner = owner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._sock.settimeout(_left(self._owner.deadline))
        return self._sock.recv_into(buffer)


class _Socket:
    """A connected socket whose sends and reads are bounded by the connection's current deadline (what
    http.client uses of it)."""

    def __init__(self, sock: socket.socket, owner: _Bounded) -> None:
        self._sock = sock
        self._owner = owner

    def sendall(self, data: bytes) -> None:
        self._sock.settimeout(_left(self._owner.deadline))
        self._sock.sendall(data)

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_Reader(self._sock, self._owner))

    def close(self) -> None:
        """Left to `_Bounded.drop`, which closes the socket once the body is read (http.client closes its
        side as soon as it knows the server will close, before the body is read)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _Bounded(http.client.HTTPConnection):
    deadline: float = 0.0
    """When the current exchange must be over (`time.monotonic`); set before each one."""
    raw: socket.socket | None = None

    def connect(self) -> None:
        self.timeout = _left(self.deadline)
        super().connect()
        self.raw = self.sock
        self.sock = _Socket(self.sock, self)

    def drop(self) -> None:
        """Close the connection and its socket for good."""
        self.close()
        if self.raw is not None:
            self.raw.close()
            self.raw = None


class _HTTP(_Bounded):
    pass


class _HTTPS(_Bounded, http.client.HTTPSConnection):
    pass
