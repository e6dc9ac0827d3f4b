"""Token counting keeps its connection: many counts, one TCP connection (`http_deadline.JsonClient`), with
the total deadline still per count, and a fresh connection when the old one died."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.llm.http_deadline import DeadlineExceeded, JsonClient
from agent.llm.tokens import ServerTokenCounter
from agent.testing.vllm_emulator import VLLMEmulator


class _KeepAlive:
    """A /tokenize endpoint speaking HTTP/1.1 (keep-alive) or 1.0 (one request per connection) that
    records the client's address of every request."""

    def __init__(self, protocol: str) -> None:
        self.peers: list[tuple[str, int]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = protocol

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.peers.append(self.client_address)
                data = json.dumps({"count": len(body["prompt"].split())}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(params=["HTTP/1.1", "HTTP/1.0"])
def server(request: pytest.FixtureRequest) -> Iterator[_KeepAlive]:
    s = _KeepAlive(request.param)
    yield s
    s.close()


def test_counts_share_one_connection_when_the_server_keeps_it(server: _KeepAlive) -> None:
    counter = ServerTokenCounter(server.url)
    assert [counter.count("a b " * k) for k in range(1, 21)] == [2 * k for k in range(1, 21)]
    counter.close()
    keep_alive = server.httpd.RequestHandlerClass.protocol_version == "HTTP/1.1"  # type: ignore[attr-defined]
    assert len(server.peers) == 21  # the 20 counts and the empty text (the server's own additions)
    assert len(set(server.peers)) == (1 if keep_alive else 21)


def test_a_kept_connection_whose_peer_went_away_is_retried_once_on_a_new_one(server: _KeepAlive) -> None:
    client = JsonClient()
    url = server.url + "/tokenize"
    assert client.post(url, {"prompt": "x"}, deadline_s=5)[0] == 200
    for raw in client.idle_sockets():  # the idle connection is dead (as after a keep-alive timeout)
        raw.shutdown(socket.SHUT_RDWR)
    status, body = client.post(url, {"prompt": "x y"}, deadline_s=5)
    assert status == 200 and json.loads(body) == {"count": 2}
    client.close()


def test_the_deadline_is_per_exchange_on_a_kept_connection() -> None:
    with VLLMEmulator() as emu:
        client = JsonClient()
        url = emu.root_url + "/tokenize"
        assert client.post(url, {"prompt": "a"}, deadline_s=5)[0] == 200
        emu.tokenize_fault = "drip"
        with pytest.raises(DeadlineExceeded):
            client.post(url, {"prompt": "a"}, deadline_s=0.3)
        emu.tokenize_fault = None
        assert client.post(url, {"prompt": "a"}, deadline_s=5)[0] == 200  # a cut exchange's socket is dropped
        client.close()
