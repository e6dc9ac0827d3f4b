"""Trading rules from a live exchange: every ccxt fault while loading them is a one-line tradegraph error."""

from __future__ import annotations

import ccxt
import pytest

from agent.config import load_settings
from agent.errors import ExchangeError
from agent.graph.factory import trading_rules
from agent.testing.exchange_emulator import ExchangeEmulator


def test_a_symbol_the_exchange_does_not_list_is_one_line_error() -> None:
    with ExchangeEmulator({}) as emu:
        settings = load_settings(
            symbols=["BTC/USDT", "NOPE/USDT"],
            exchange={"id": "binance", "api_url": emu.url, "max_retries": 0},
        )
        assert trading_rules(settings.model_copy(update={"symbols": ["BTC/USDT"]}))["BTC/USDT"].taker_fee > 0
        with pytest.raises(ExchangeError) as caught:
            trading_rules(settings)
    assert not isinstance(caught.value, ccxt.BaseError)
    assert (
        "NOPE/USDT" in str(caught.value)
        and "BadSymbol" in str(caught.value)
        and "\n" not in str(caught.value)
    )
