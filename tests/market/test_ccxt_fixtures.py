"""ccxt's own recorded Binance fixtures, replayed through the emulator to pin how the client parses
responses and builds requests (source: ccxt/ccxt ts/src/test/static/{response,request}/binance.json,
excerpted in SHARED_DIR/data/ccxt_static)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from agent.config import SHARED_DIR, load_settings
from agent.market.exchange import make_exchange
from agent.testing.exchange_emulator import Fault

STATIC = SHARED_DIR / "data" / "ccxt_static"
RESPONSES = json.loads((STATIC / "binance_response_excerpt.json").read_text())
REQUESTS = json.loads((STATIC / "binance_request_excerpt.json").read_text())
SECRET = "test-secret"

ENDPOINTS = {  # unified method -> (HTTP method, Binance spot path) it must call
    "fetchOHLCV": ("GET", "/api/v3/klines"),
    "fetchOrderBook": ("GET", "/api/v3/depth"),
    "fetchTrades": ("GET", "/api/v3/aggTrades"),
    "fetchTicker": ("GET", "/api/v3/ticker/24hr"),
    "fetchBalance": ("GET", "/api/v3/account"),
    "createOrder": ("POST", "/api/v3/order"),
    "fetchOrder": ("GET", "/api/v3/order"),
}


def cases(fixtures: dict[str, Any], spot: bool) -> list[Any]:
    out = []
    for method, entries in fixtures["methods"].items():
        for entry in entries:
            is_spot = ":" not in str((entry["input"] or [""])[0])
            if is_spot == spot:
                out.append(pytest.param(method, entry, id=f"{method}: {entry['description']}"))
    return out


def method_name(unified: str) -> str:
    """ccxt's Python method name: fetchOHLCV -> fetch_ohlcv, fetchOrderBook -> fetch_order_book."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", unified).lower()


def client(emu: Any, tmp_path: Path) -> Any:
    settings = load_settings(
        data_dir=tmp_path,
        exchange={"id": "binance", "api_url": emu.url, "api_key": "test-key", "secret": SECRET},
    )
    ex = make_exchange(settings)
    ex.options["fetchCurrencies"] = False  # private wallet endpoints are not emulated
    ex.options["fetchMargins"] = False
    ex.load_markets()
    return ex


@pytest.mark.parametrize(("method", "entry"), cases(RESPONSES, spot=True))
def test_recorded_spot_responses_parse_into_the_recorded_unified_result(emulator, tmp_path, method, entry):
    emu = emulator({})
    ex = client(emu, tmp_path)
    http_method, path = ENDPOINTS[method]
    emu.push(path, Fault.reply(entry["httpResponse"]))

    result = getattr(ex, method_name(method))(*entry["input"])

    assert emu.pending_faults(path) == 0
    assert (emu.log[-1].method, emu.log[-1].path) == (http_method, path)
    assert json.loads(json.dumps(result)) == entry["parsedResponse"]


@pytest.mark.parametrize(("method", "entry"), cases(RESPONSES, spot=False))
def test_recorded_derivative_candles_parse_with_ccxts_parser(tmp_path, method, entry):
    ex = make_exchange(load_settings(data_dir=tmp_path, exchange={"id": "binance"}))
    symbol, timeframe, since, limit = (entry["input"] + [None] * 4)[:4]
    assert method == "fetchOHLCV"
    assert ex.parse_ohlcvs(entry["httpResponse"], None, timeframe, since, limit) == entry["parsedResponse"]


def test_recorded_spot_ohlcv_request_parameters(emulator, tmp_path):
    entry = RESPONSES["methods"]["fetchOHLCV"][0]
    emu = emulator({})
    ex = client(emu, tmp_path)
    emu.push("/api/v3/klines", Fault.reply(entry["httpResponse"]))
    ex.fetch_ohlcv(*entry["input"])
    assert emu.log[-1].params == {
        "symbol": "BTCUSDT",
        "interval": "1h",
        "startTime": "1706628191000",
        "limit": "3",
    }


@pytest.mark.parametrize(("method", "entry"), cases(REQUESTS, spot=True))
def test_recorded_order_requests_match_what_ccxt_sends(emulator, tmp_path, method, entry):
    emu = emulator({})
    ex = client(emu, tmp_path)
    http_method, path = ENDPOINTS[method]
    emu.push(path, Fault.reply(RESPONSES["methods"]["createOrder"][0]["httpResponse"]))

    getattr(ex, method_name(method))(*entry["input"])

    sent = emu.log[-1]
    assert (sent.method, sent.path) == (http_method, urlsplit(entry["url"]).path)
    skip = set(REQUESTS["skipKeys"])
    sent_params = dict(parse_qsl(sent.body))
    assert {k: v for k, v in sent_params.items() if k not in skip} == {
        k: v for k, v in parse_qsl(entry["output"]) if k not in skip
    }
    unsigned = sent.body.rsplit("&signature=", 1)[0]
    expected_signature = hmac.new(SECRET.encode(), unsigned.encode(), hashlib.sha256).hexdigest()
    assert sent_params["signature"] == expected_signature
