"""Stopping the daemon: SIGTERM/SIGINT handlers and in-process stop requests, through one `StopSignal`.

Contracts:
- `StopSignal.request(reason)` may be called from any thread or from a signal handler: it only stores the
  reason and writes one byte to a self-pipe (async-signal-safe; no lock that the interrupted main thread
  could hold), so `wait(timeout)` in the main thread returns at once.
- `install(stop)` routes SIGTERM and SIGINT to `stop.request` (main thread only) and returns a function that
  restores the previous handlers.
- `requested` / `reason` tell workers to stop between ticks.
"""

from __future__ import annotations

import os
import select
import signal
from collections.abc import Callable
from types import FrameType


class StopSignal:
    """A stop request that a blocked main thread can wait for."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._closed = False
        self.reason: str | None = None

    @property
    def requested(self) -> bool:
        """True once a stop was requested."""
        return self.reason is not None

    def request(self, reason: str) -> None:
        """Ask the daemon to stop (the first reason wins)."""
        if self.reason is None:
            self.reason = reason
        if self._closed:
            return
        try:
            os.write(self._write, b"x")
        except (BlockingIOError, OSError):
            pass  # the pipe is full or closed: a wake-up is already pending, or nobody waits any more

    def wait(self, timeout: float | None) -> bool:
        """Block up to `timeout` seconds for a stop request; True when one was made."""
        if self.requested or self._closed:
            return self.requested
        try:
            ready, _, _ = select.select([self._read], [], [], timeout)
        except InterruptedError:  # pragma: no cover - PEP 475 retries select; kept for safety
            ready = []
        if ready:
            try:
                os.read(self._read, 4096)
            except BlockingIOError:  # pragma: no cover
                pass
        return self.requested

    def close(self) -> None:
        """Release the pipe (later requests still record their reason)."""
        if self._closed:
            return
        self._closed = True
        for fd in (self._read, self._write):
            try:
                os.close(fd)
            except OSError:
                pass


def install(stop: StopSignal) -> Callable[[], None]:
    """Make SIGTERM and SIGINT request a stop; returns a function restoring the previous handlers."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        stop.request(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
