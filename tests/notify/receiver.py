"""A local HTTP receiver for Apprise's `json://` target: records every POSTed payload on 127.0.0.1.

It answers `status` (200 by default); with `hold` given, each request first waits until that event is set
(a receiver that hangs). `wait_for(n, timeout)` waits on a condition until `n` payloads arrived."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class JsonReceiver:
    """A threaded HTTP server collecting JSON bodies (use as a context manager)."""

    def __init__(self, status: int = 200, hold: threading.Event | None = None) -> None:
        self.status = status
        self.hold = hold
        self.payloads: list[dict[str, Any]] = []
        self.requests = 0
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                with receiver.arrived:
                    receiver.requests += 1
                    receiver.arrived.notify_all()
                if receiver.hold is not None:
                    receiver.hold.wait()
                with receiver.arrived:
                    if receiver.status < 300:
                        receiver.payloads.append(json.loads(body))
                    receiver.arrived.notify_all()
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="json-receiver", daemon=True)

    def url(self, path: str = "hook") -> str:
        """The Apprise URL of this receiver."""
        return f"json://127.0.0.1:{self.port}/{path}"

    def wait_for(self, count: int, timeout: float = 30.0) -> bool:
        """Wait until `count` payloads arrived."""
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.payloads) >= count, timeout)

    def wait_requests(self, count: int, timeout: float = 30.0) -> bool:
        """Wait until `count` requests started (answered or not)."""
        with self.arrived:
            return self.arrived.wait_for(lambda: self.requests >= count, timeout)

    def __enter__(self) -> JsonReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()
