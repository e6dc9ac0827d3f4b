"""The exchange emulator over plain HTTP: Binance's klines rules, the open candle, faults, bookkeeping."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest

from agent.testing.exchange_emulator import ExchangeEmulator, Fault
from tests.market.helpers import HOUR_MS, ms, shared_candles

SRC = shared_candles("BTC/USDT").iloc[:100]
T0 = ms(SRC.index[0])


def get(emu: ExchangeEmulator, path: str, timeout: float = 10) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(emu.url + path, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        body = e.read()
        return e.code, json.loads(body) if body.startswith(b"{") else body


def test_klines_follow_binance_paging_rules(emulator):
    emu = emulator({"BTC/USDT": SRC}, now_ms=T0 + 50 * HOUR_MS)
    status, rows = get(
        emu, f"/api/v3/klines?symbol=BTCUSDT&interval=1h&startTime={T0 + 10 * HOUR_MS}&limit=5"
    )
    assert status == 200 and [r[0] for r in rows] == [T0 + h * HOUR_MS for h in range(10, 15)]
    assert [float(v) for v in rows[0][1:6]] == SRC.iloc[10].tolist() and rows[0][6] == T0 + 11 * HOUR_MS - 1
    _, latest = get(emu, "/api/v3/klines?symbol=BTCUSDT&interval=1h&limit=3")
    assert [r[0] for r in latest] == [T0 + h * HOUR_MS for h in (48, 49, 50)]
    _, until = get(emu, f"/api/v3/klines?symbol=BTCUSDT&interval=1h&endTime={T0 + 5 * HOUR_MS}&limit=2")
    assert [r[0] for r in until] == [T0 + 4 * HOUR_MS, T0 + 5 * HOUR_MS]
    _, default = get(emu, f"/api/v3/klines?symbol=BTCUSDT&interval=1h&startTime={T0}")
    assert len(default) == 51  # default limit 500, capped by now
    assert emu.count("/api/v3/klines") == 4 and emu.max_limit == 500


def test_the_open_candle_is_served_with_partial_values(emulator):
    emu = emulator({"BTC/USDT": SRC}, now_ms=T0 + 20 * HOUR_MS + HOUR_MS // 4)
    _, rows = get(emu, f"/api/v3/klines?symbol=BTCUSDT&interval=1h&startTime={T0 + 19 * HOUR_MS}")
    closed, open_bar = rows
    assert float(closed[4]) == SRC["close"].iloc[19]
    bar = SRC.iloc[20]
    assert open_bar[0] == T0 + 20 * HOUR_MS
    assert [float(v) for v in open_bar[1:5]] == [bar["open"]] * 4
    assert float(open_bar[5]) == pytest.approx(bar["volume"] / 4)
    emu.set_now(T0 + 21 * HOUR_MS)
    _, rows = get(emu, f"/api/v3/klines?symbol=BTCUSDT&interval=1h&startTime={T0 + 20 * HOUR_MS}&limit=1")
    assert float(rows[0][4]) == bar["close"]


def test_bad_requests_get_binance_error_codes(emulator):
    emu = emulator({"BTC/USDT": SRC})
    assert get(emu, "/api/v3/klines?symbol=NOPE&interval=1h") == (
        400,
        {"code": -1121, "msg": "Invalid symbol."},
    )
    assert get(emu, "/api/v3/klines?symbol=BTCUSDT&interval=4h")[1]["code"] == -1120
    assert get(emu, "/api/v3/klines?symbol=BTCUSDT&interval=1h&limit=1001")[1]["code"] == -1130
    assert get(emu, "/api/v3/klines?symbol=BTCUSDT&interval=1h&limit=x")[1]["code"] == -1100
    assert get(emu, "/api/v3/unknown")[0] == 404


def test_time_ping_exchange_info_and_tickers(emulator):
    emu = emulator({"BTC/USDT": SRC}, now_ms=T0 + 30 * HOUR_MS)
    assert get(emu, "/api/v3/ping") == (200, {})
    assert get(emu, "/api/v3/time") == (200, {"serverTime": T0 + 30 * HOUR_MS})
    info = get(emu, "/api/v3/exchangeInfo")[1]
    btc = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
    lot = next(f for f in btc["filters"] if f["filterType"] == "LOT_SIZE")
    assert lot["stepSize"] == "0.00001000" and btc["status"] == "TRADING"
    ticker = get(emu, "/api/v3/ticker/24hr?symbol=BTCUSDT")[1]
    assert float(ticker["lastPrice"]) == SRC["open"].iloc[30]  # the open bar: only its open is known
    assert float(ticker["highPrice"]) == SRC["high"].iloc[7:30].max()
    tickers = get(emu, "/api/v3/ticker/24hr")[1]
    assert {t["symbol"] for t in tickers} >= {"BTCUSDT", "ETHUSDT"}


def test_scripted_faults_are_consumed_in_order(emulator):
    emu = emulator({"BTC/USDT": SRC})
    emu.push(
        "/api/v3/time",
        Fault.too_many_requests(),
        Fault.server_error(502),
        Fault.malformed(),
        Fault.reply({"serverTime": 1}),
    )
    assert get(emu, "/api/v3/time") == (429, Fault.too_many_requests().body)
    assert get(emu, "/api/v3/time")[0] == 502
    with urllib.request.urlopen(emu.url + "/api/v3/time") as resp:
        assert resp.status == 200 and resp.read() == Fault.malformed().raw
    assert get(emu, "/api/v3/time") == (200, {"serverTime": 1})
    assert get(emu, "/api/v3/time")[1]["serverTime"] == emu.now_ms
    assert emu.count("/api/v3/time") == 5 and emu.pending_faults("/api/v3/time") == 0


def test_a_slow_answer_is_released_when_the_emulator_stops():
    emu = ExchangeEmulator({"BTC/USDT": SRC})
    with emu:
        emu.push("/api/v3/ping", Fault.slow(3600))
        outcome: list[object] = []
        client = threading.Thread(target=lambda: outcome.append(get(emu, "/api/v3/ping", timeout=600)))
        client.start()
        deadline = threading.Event()
        for _ in range(500):  # poll a readiness condition: the request has reached the server
            if emu.in_flight == 1:
                break
            deadline.wait(0.01)
        assert emu.in_flight == 1
    client.join(timeout=30)
    assert not client.is_alive() and emu.in_flight == 0
