"""Fixtures for market-data tests: an exchange emulator factory stopped after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pandas as pd
import pytest

from agent.testing.exchange_emulator import ExchangeEmulator


@pytest.fixture
def emulator() -> Iterator[Callable[..., ExchangeEmulator]]:
    """Start emulators (stopped after the test): `emulator({"BTC/USDT": frame}, now_ms=...)`."""
    started: list[ExchangeEmulator] = []

    def start(candles: dict[str, pd.DataFrame], **kwargs: object) -> ExchangeEmulator:
        emu = ExchangeEmulator(candles, **kwargs)  # type: ignore[arg-type]
        emu.__enter__()
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.__exit__(None, None, None)
