"""The risk stages' inputs: each pure function receives typed records and only the settings section it reads,
never the whole `Settings`."""

from __future__ import annotations

import importlib
import inspect
import math
import pkgutil
import re
from pathlib import Path

import pytest

import agent.risk
from agent.config import BrokerSettings, RiskSettings
from agent.execution.costs import effective_fee
from agent.risk.allowance import allowance
from agent.risk.book import TradeCosts
from agent.risk.breakers import kill_switch_active
from agent.risk.inputs import Market, Proposal
from agent.risk.limits import apply_limits
from tests.risk.world import BTC, ETH, PRICE, RULES, T0, World, decision, kinds

_WHOLE_SETTINGS = re.compile(r"\bSettings\b")


def _public_functions() -> list[tuple[str, inspect.Signature]]:
    found = []
    for info in pkgutil.iter_modules(agent.risk.__path__):
        module = importlib.import_module(f"agent.risk.{info.name}")
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if fn.__module__ == module.__name__:
                found.append((f"{module.__name__}.{name}", inspect.signature(fn)))
    return found


def test_no_risk_function_receives_the_whole_settings() -> None:
    functions = _public_functions()
    assert len(functions) > 20  # every module was read
    wide = [
        (name, p.name)
        for name, sig in functions
        for p in sig.parameters.values()
        if _WHOLE_SETTINGS.search(str(p.annotation))
    ]
    assert wide == []


def test_the_stages_take_a_handful_of_records() -> None:
    assert list(inspect.signature(apply_limits).parameters) == [
        "proposal",
        "allowance",
        "market",
        "portfolio",
        "risk",
        "symbols",
    ]
    assert list(inspect.signature(allowance).parameters) == [
        "market",
        "portfolio",
        "marks",
        "risk",
        "kill_switch",
    ]


def test_the_stages_read_the_risk_section_and_the_symbols_they_are_given() -> None:
    """Only what is passed counts: the symbols list decides `unknown_symbol`, the section the clamps."""
    world = World()
    market = Market(BTC, T0, PRICE, world.atr, RULES, TradeCosts.of(RULES.taker_fee, 5.0))
    allowed = allowance(market, world.portfolio, world.marks, RiskSettings(), False)
    assert allowed.max_exposure == 0.5 and allowed.binding == "max_position_exposure"
    proposal = Proposal(decision("buy", 0.3))
    ok = apply_limits(proposal, allowed, market, world.portfolio, RiskSettings(), [BTC, ETH])
    assert ok.changes and not ok.rejected
    unconfigured = apply_limits(proposal, allowed, market, world.portfolio, RiskSettings(), [ETH])
    assert unconfigured.rejected and kinds(unconfigured) == ["unknown_symbol"]
    assert "(configured: ['ETH/USDT'])" in unconfigured.events[0].detail
    strict = RiskSettings(min_confidence=0.9)
    low = apply_limits(proposal, allowed, market, world.portfolio, strict, [BTC, ETH])
    assert low.rejected and kinds(low) == ["low_confidence"]


def test_a_market_without_a_usable_price_allows_hold_only() -> None:
    world = World()
    market = Market(BTC, T0, math.nan, world.atr, RULES, TradeCosts.of(RULES.taker_fee, 5.0))
    allowed = allowance(market, world.portfolio, {**world.marks, BTC: math.nan}, RiskSettings(), False)
    assert allowed.binding == "bad_market_data" and not allowed.llm_needed


def test_kill_switch_reads_only_its_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert not kill_switch_active(None)
    assert not kill_switch_active("")
    assert not kill_switch_active("STOP", session=None)
    (tmp_path / "STOP").touch()
    assert kill_switch_active("STOP")
    assert kill_switch_active(str(tmp_path / "STOP"))


def test_fill_costs_come_from_the_broker_section() -> None:
    assert effective_fee(RULES, BrokerSettings()) == RULES.taker_fee
    assert effective_fee(RULES, BrokerSettings(taker_fee=0.002)) == 0.002
    assert effective_fee(RULES, BrokerSettings(taker_fee=0.0)) == 0.0  # a zero override is an override
    broker = BrokerSettings(taker_fee=0.002, slippage_bps=10.0)
    assert TradeCosts.of_market(RULES, broker) == TradeCosts.of(0.002, 10.0)
    assert TradeCosts.of_market(RULES, BrokerSettings()) == TradeCosts.of(RULES.taker_fee, 5.0)
