"""Exchange emulator: a local HTTP server speaking the Binance spot REST endpoints that ccxt's `binance`
class calls, backed by candle frames, so tests drive the *real* ccxt client without touching the network.

Contracts:
- `with ExchangeEmulator({"BTC/USDT": frame}, timeframe="1h", now_ms=...) as emu:` starts a stdlib
  `ThreadingHTTPServer` on 127.0.0.1 (port 0) in a thread; `emu.url` is its origin (point ccxt's
  `urls['api']` there, e.g. `Settings.exchange.api_url`). Leaving the block stops it and releases slow
  requests at once.
- Endpoints (GET): `/api/v3/ping`, `/api/v3/time`, `/api/v3/exchangeInfo` (spot symbols of
  `agent.market.binance_spot.SPOT_SYMBOLS` plus the frames' symbols), `/api/v3/klines` (symbol, interval,
  startTime, endTime, limit: Binance's rules, limit 1..1000, default 500), `/api/v3/ticker/24hr` (symbol,
  symbols or none). Any other path answers 404 unless a scripted reply is queued for it.
- Time: `set_now(ms)` moves the simulated exchange clock. Bars with open time <= now are served; the bar
  containing now is the still-open candle and is served too, as Binance does, with partial values
  (open price only, volume pro rata) so a client that keeps it stores visibly wrong data.
- Faults on demand: `push(path, *faults)` queues `Fault`s for a path (HTTP 429 with Binance's body, 5xx,
  slow answers, malformed bodies, Binance error codes, canned replies); each request pops one.
- Bookkeeping for assertions: `count(path)`, `log` (every request: method, path, params, body),
  `max_in_flight`, `max_limit` (largest klines `limit` asked for).
"""

from __future__ import annotations

import json
import threading
from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pandas as pd

from agent.market import binance_spot as wire
from agent.market.binance_spot import SPOT_SYMBOLS, SpotSymbol
from agent.market.candles import timeframe_ms
from agent.market.replay import CandleArrays

MAX_LIMIT = 1000
DEFAULT_LIMIT = 500
_DAY_MS = 86_400_000
_HOST = "127.0.0.1"


@dataclass(frozen=True)
class Fault:
    """One scripted answer: a status and JSON body, raw bytes, and/or a delay before answering normally."""

    status: int = 200
    body: Any = None
    raw: bytes | None = None
    delay_s: float = 0.0

    @classmethod
    def too_many_requests(cls) -> Fault:
        """HTTP 429 with Binance's rate-limit body (ccxt raises a NetworkError subclass)."""
        msg = "Too many requests; current limit of IP(127.0.0.1) is 6000 requests per minute."
        return cls(429, {"code": -1003, "msg": msg})

    @classmethod
    def server_error(cls, status: int = 503) -> Fault:
        """A 5xx outage answer."""
        return cls(status, raw=b"<html><body>Service Unavailable</body></html>")

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        """Answer normally, but only after `seconds` (longer than the client's timeout makes it time out)."""
        return cls(delay_s=seconds)

    @classmethod
    def malformed(cls) -> Fault:
        """HTTP 200 with a truncated JSON body."""
        return cls(raw=b'[[1700000000000, "1.0", "2.')

    @classmethod
    def error(cls, status: int, code: int, msg: str) -> Fault:
        """A Binance error answer, e.g. `Fault.error(400, -1121, "Invalid symbol.")`."""
        return cls(status, {"code": code, "msg": msg})

    @classmethod
    def bad_symbol(cls) -> Fault:
        """Binance's answer for a symbol it does not know (ccxt raises BadSymbol)."""
        return cls.error(400, -1121, "Invalid symbol.")

    @classmethod
    def reply(cls, body: Any, status: int = 200) -> Fault:
        """A canned JSON answer (used to replay recorded Binance responses)."""
        return cls(status, body)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the emulator received."""

    method: str
    path: str
    params: dict[str, str]
    body: str


class ExchangeEmulator:
    """A Binance-spot-like REST server over given candle frames (see the module docstring)."""

    def __init__(
        self, candles: dict[str, pd.DataFrame], timeframe: str = "1h", now_ms: int | None = None
    ) -> None:
        self.timeframe = timeframe
        self.tf_ms = timeframe_ms(timeframe)
        self._series = {sym: CandleArrays(frame) for sym, frame in candles.items()}
        last = max((int(s.ts[-1]) for s in self._series.values() if len(s.ts)), default=0)
        self._now = now_ms if now_ms is not None else last + self.tf_ms
        self._symbols = dict(SPOT_SYMBOLS)
        for sym in candles:
            if sym not in self._symbols:
                base, quote = sym.split("/")
                self._symbols[sym] = SpotSymbol(base, quote, "0.01", "0.00001", "0.00001", "9000.0")
        self._by_id = {s.market_id: sym for sym, s in self._symbols.items()}
        self._lock = threading.Lock()
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        self._stopping = threading.Event()
        self.requests: Counter[str] = Counter()
        self.log: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.max_limit = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------------------------

    def __enter__(self) -> ExchangeEmulator:
        server = _Server(self)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="exchange-emulator", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        """The server's origin, e.g. `http://127.0.0.1:54321`."""
        assert self._server is not None, "start the emulator with `with ExchangeEmulator(...) as emu:`"
        return f"http://{_HOST}:{self._server.server_port}"

    # ---- control and bookkeeping -------------------------------------------------------------------------

    @property
    def now_ms(self) -> int:
        """The simulated exchange clock (ms since the epoch)."""
        return self._now

    def set_now(self, ms: int) -> None:
        """Move the simulated clock (bars opening after it become invisible)."""
        with self._lock:
            self._now = int(ms)

    def push(self, path: str, *faults: Fault) -> None:
        """Queue scripted answers for `path`; each request to it consumes one."""
        with self._lock:
            self._faults[path].extend(faults)

    def count(self, path: str) -> int:
        """How many requests reached `path`."""
        with self._lock:
            return self.requests[path]

    def pending_faults(self, path: str) -> int:
        """Scripted answers still queued for `path`."""
        with self._lock:
            return len(self._faults[path])

    # ---- request handling (called from server threads) ---------------------------------------------------

    def _enter(self, req: RecordedRequest) -> Fault | None:
        with self._lock:
            self.requests[req.path] += 1
            self.log.append(req)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            queue = self._faults.get(req.path)
            return queue.popleft() if queue else None

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def answer(self, req: RecordedRequest) -> tuple[int, bytes]:
        """The status and body for one request (scripted fault first, then the route)."""
        fault = self._enter(req)
        try:
            if fault is not None and fault.delay_s > 0:
                self._stopping.wait(fault.delay_s)
            if fault is not None and (fault.raw is not None or fault.body is not None):
                return fault.status, fault.raw if fault.raw is not None else json.dumps(fault.body).encode()
            status, body = self._route(req)
            return status, json.dumps(body).encode()
        finally:
            self._leave()

    def _route(self, req: RecordedRequest) -> tuple[int, Any]:
        routes = {
            "/api/v3/ping": lambda p: (200, {}),
            "/api/v3/time": lambda p: (200, {"serverTime": self._now}),
            "/api/v3/exchangeInfo": self._exchange_info,
            "/api/v3/klines": self._klines,
            "/api/v3/ticker/24hr": self._ticker_24hr,
        }
        route = routes.get(req.path)
        if route is None or req.method != "GET":
            return 404, {"code": -1000, "msg": f"emulator: no route {req.method} {req.path}"}
        return route(req.params)

    def _symbol(self, market_id: str | None) -> str | None:
        return self._by_id.get(market_id or "")

    def _exchange_info(self, params: dict[str, str]) -> tuple[int, Any]:
        return 200, wire.exchange_info(list(self._symbols.values()), self._now)

    def _klines(self, params: dict[str, str]) -> tuple[int, Any]:
        symbol = self._symbol(params.get("symbol"))
        if symbol is None:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        if params.get("interval") != self.timeframe:
            return 400, {"code": -1120, "msg": "Invalid interval."}
        try:
            limit = int(params.get("limit", DEFAULT_LIMIT))
        except ValueError:
            return 400, {"code": -1100, "msg": "Illegal characters found in parameter 'limit'."}
        with self._lock:
            self.max_limit = max(self.max_limit, limit)
        if not 1 <= limit <= MAX_LIMIT:
            return 400, {"code": -1130, "msg": "Data sent for parameter 'limit' is not valid."}
        series = self._series.get(symbol)
        if series is None:
            return 200, []
        now = self._now
        visible = int(np.searchsorted(series.ts, now, side="right"))
        hi = visible
        if "endTime" in params:
            hi = min(hi, int(np.searchsorted(series.ts, int(params["endTime"]), side="right")))
        if "startTime" in params:
            lo = int(np.searchsorted(series.ts, int(params["startTime"]), side="left"))
            hi = min(hi, lo + limit)
        else:
            lo = max(0, hi - limit)
        return 200, [self._kline(series, i, now) for i in range(lo, hi)]

    def _kline(self, series: CandleArrays, i: int, now: int) -> list[Any]:
        ts = int(series.ts[i])
        o, h, low, c, v = series.ohlcv[i]
        if ts + self.tf_ms > now:  # still open: only the opening price is known, volume so far
            h = low = c = o
            v = v * (now - ts) / self.tf_ms
        return wire.kline(ts, self.tf_ms, o, h, low, c, v)

    def _ticker_24hr(self, params: dict[str, str]) -> tuple[int, Any]:
        if "symbol" in params:
            symbol = self._symbol(params["symbol"])
            if symbol is None:
                return 400, {"code": -1121, "msg": "Invalid symbol."}
            return 200, self._ticker(symbol)
        wanted = json.loads(params["symbols"]) if "symbols" in params else list(self._by_id)
        symbols = [self._symbol(w) for w in wanted]
        if any(s is None for s in symbols):
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        return 200, [self._ticker(s) for s in symbols if s is not None]

    def _ticker(self, symbol: str) -> dict[str, Any]:
        now = self._now
        series = self._series.get(symbol)
        day = (
            []
            if series is None
            else [
                self._kline(series, i, now)
                for i in range(
                    int(np.searchsorted(series.ts, now - _DAY_MS, side="right")),
                    int(np.searchsorted(series.ts, now, side="right")),
                )
            ]
        )
        return wire.ticker_24hr(self._symbols[symbol], day, now)


class _Server(ThreadingHTTPServer):
    """The HTTP server on 127.0.0.1 (any free port), holding the emulator its handlers answer from."""

    daemon_threads = True

    def __init__(self, emulator: ExchangeEmulator) -> None:
        super().__init__((_HOST, 0), _Handler)
        self.emulator = emulator


class _Handler(BaseHTTPRequestHandler):
    """Turns HTTP requests into `ExchangeEmulator.answer` calls."""

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._handle()

    def do_POST(self) -> None:  # noqa: N802
        self._handle()

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle()

    def do_PUT(self) -> None:  # noqa: N802
        self._handle()

    def _handle(self) -> None:
        assert isinstance(self.server, _Server)
        emulator = self.server.emulator
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        req = RecordedRequest(self.command, parts.path, dict(parse_qsl(parts.query)), body)
        status, payload = emulator.answer(req)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout): nothing to do
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence the default stderr access log (the emulator keeps its own `log`)."""
